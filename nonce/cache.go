// Package nonce remembers the nonces of signed requests in memory, for a single server
// node (the embedded store). A nonce only has to be remembered while its request could
// still pass the timestamp check, so every entry carries an expiry and memory stays
// bounded by the request rate times the window; a hard cap refuses new signed requests
// rather than forget a nonce early (forgetting would open a replay).
//
// Every signed request adds an entry that lives for the timestamp window (two minutes
// by default), so at a few thousand requests a second the cache holds millions of
// them. It is built for that: an entry is a 64-bit fingerprint of (credential, nonce)
// under a random per-process key and a 32-bit expiry, kept in open-addressing tables
// (12 bytes a slot, 16 to 19 bytes an entry), with no per-entry index for eviction:
// expired entries are reused in place or dropped when a table is rebuilt, which
// happens when it fills up and every few seconds. Two different pairs share a
// fingerprint with a probability of about one in 2^64 / (entries held); that can only
// refuse a fresh request as a replay (403004), never accept a replay.
package nonce

import (
	"context"
	"hash/maphash"
	"runtime"
	"sync"
	"time"

	"github.com/socius/socius"
)

const shards = 16

// DefaultMax is the default cap on remembered nonces: about 75 MB at most, or 33,000
// signed requests a second sustained over a 120 s window.
const DefaultMax = 4_000_000

// Table sizing: a table is rebuilt when its used slots (live or expired) would pass
// 3/4 of it, into a table of 8/5 slots per live entry (at least minSlots): between
// 1.33 and 1.6 slots, 16 to 19 bytes, per entry held. A table of any size maps a
// fingerprint to its first slot by multiplying (see home), so sizes need not be
// powers of two, which would leave between 2 and 4 slots per entry. Expired entries
// are swept out at least every sweepEvery.
const (
	minSlots   = 1024
	sweepEvery = 30 // seconds
)

// Cache is an in-memory socius.NonceStore.
type Cache struct {
	max    int
	seed   maphash.Seed
	shards [shards]shard
}

type shard struct {
	mu        sync.Mutex
	tab       *table // nil until the first nonce
	used      int    // slots that are not empty, expired or not
	lastSweep int64  // Unix seconds
	fullAt    int64  // 1 + the second the shard was last found full
}

func errFull() error {
	return socius.Errorf(socius.CodeRateLimited, "Too many signed requests within the timestamp window: the nonce memory is full")
}

var _ socius.NonceStore = (*Cache)(nil)

// New returns a cache that holds at most max nonces (DefaultMax when max <= 0).
func New(max int) *Cache {
	if max <= 0 {
		max = DefaultMax
	}
	return &Cache{max: max, seed: maphash.MakeSeed()}
}

// UseNonce records (credential, nonce) until expires; it reports false when the pair
// is already remembered and not expired.
func (c *Cache) UseNonce(_ context.Context, credential, nonce string, expires, now time.Time) (bool, error) {
	var h maphash.Hash
	h.SetSeed(c.seed)
	h.WriteString(credential)
	h.WriteByte(0)
	h.WriteString(nonce)
	fp := h.Sum64()
	if fp == 0 {
		fp = 1 // 0 marks an empty slot
	}
	s := &c.shards[fp>>60] // the top 4 bits pick the shard, the others the slot
	nowSec, exp := unixSeconds(now), uint32(unixSeconds(expires))

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tab == nil || nowSec-s.lastSweep >= sweepEvery {
		s.rebuild(nowSec)
	}
	t := s.tab
	reuse := -1
	i := t.home(fp)
	for ; t.keys[i] != 0; i = t.next(i) {
		if t.keys[i] == fp {
			if int64(t.exps[i]) >= nowSec {
				return false, nil
			}
			t.exps[i] = exp // the same pair, expired: remembered again
			return true, nil
		}
		if reuse < 0 && int64(t.exps[i]) < nowSec {
			reuse = int(i) // an expired entry of another pair: its slot can be taken
		}
	}
	if reuse >= 0 {
		t.keys[reuse], t.exps[reuse] = fp, exp
		return true, nil
	}
	if limit := c.max / shards; s.used+1 > limit || 4*(s.used+1) > 3*len(t.keys) {
		// Full, or too full to probe well: drop the expired entries, grow if
		// needed. A shard found full is not rebuilt again within the same second,
		// so that a flood at the cap costs no more than the refusals.
		if s.fullAt == nowSec+1 {
			return false, errFull()
		}
		if live := s.rebuild(nowSec); live+1 > limit {
			s.fullAt = nowSec + 1
			return false, errFull()
		}
		t = s.tab
		for i = t.home(fp); t.keys[i] != 0; i = t.next(i) {
		}
	}
	t.keys[i], t.exps[i] = fp, exp
	s.used++
	return true, nil
}

// rebuild moves the live entries into a new table of 8/5 slots each (at least
// minSlots), dropping the expired ones, and reports how many are live.
func (s *shard) rebuild(now int64) int {
	old := s.tab
	if old == nil {
		old = &table{}
	}
	live := 0
	for i, k := range old.keys {
		if k != 0 && int64(old.exps[i]) >= now {
			live++
		}
	}
	t := newTable(max(minSlots, live*8/5))
	for i, k := range old.keys {
		if k == 0 || int64(old.exps[i]) < now {
			continue
		}
		j := t.home(k)
		for t.keys[j] != 0 {
			j = t.next(j)
		}
		t.keys[j], t.exps[j] = k, old.exps[i]
	}
	s.tab, s.used, s.lastSweep = t, live, now
	runtime.KeepAlive(old) // its slots were read above: not unmapped before
	return live
}

// unixSeconds is t in Unix seconds, clamped to what an expiry slot holds.
func unixSeconds(t time.Time) int64 {
	return min(max(t.Unix(), 0), 1<<32-1)
}

// Len returns the number of nonces remembered at now. A shard that no call has swept
// for sweepEvery seconds is swept first: on a quiet node the count falls to what is
// live, and the tables shrink. (Between sweeps, expired entries still count, for at
// most sweepEvery seconds.) now must be the clock the calls use.
func (c *Cache) Len(now time.Time) int {
	nowSec := unixSeconds(now)
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		if s.tab != nil && nowSec-s.lastSweep >= sweepEvery {
			s.rebuild(nowSec)
		}
		n += s.used
		s.mu.Unlock()
	}
	return n
}
