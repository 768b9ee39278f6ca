// Package nonce remembers the nonces of signed requests in memory, for a single server
// node (the embedded store). A nonce only has to be remembered while its request could
// still pass the timestamp check, so every entry carries an expiry and memory stays
// bounded by the request rate times the window; a hard cap refuses new signed requests
// rather than forget a nonce early (forgetting would open a replay).
//
// Every signed request adds an entry that lives for the timestamp window (two minutes
// by default), so at a few thousand requests a second the cache holds millions of
// them. It is built for that: an entry is a 64-bit fingerprint of (credential, nonce)
// under a random key (SipHash) and a 32-bit expiry, kept in open-addressing tables
// (12 bytes a slot, 16 to 19 bytes an entry), with no per-entry index for eviction:
// expired entries are reused in place or dropped when a table is rebuilt, which
// happens when it fills up and every few seconds. Two different pairs share a
// fingerprint with a probability of about one in 2^64 / (entries held); that can only
// refuse a fresh request as a replay (403004), never accept a replay.
//
// A cache can be saved (Save) and loaded into another process (Load), key and all, so
// that a server that restarts still knows the nonces of the window.
package nonce

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
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
	k0, k1 uint64 // the fingerprints' key
	shards [shards]shard
}

type shard struct {
	mu        sync.Mutex
	tab       *table // nil until the first nonce
	used      int    // slots that are not empty, expired or not
	lastSweep int64  // Unix seconds
	fullAt    int64  // 1 + the second the shard was last found full
}

// errFull is the refusal of a new signed request when the nonce memory is full,
// worded as the server's other 403048 (API Rate Limit Exceeded: what, retry later).
func errFull(max int) error {
	return socius.Errorf(socius.CodeRateLimited, "API Rate Limit Exceeded: too many signed requests within the timestamp window: the nonce memory of this server is full (%d nonces); retry later", max)
}

var _ socius.NonceStore = (*Cache)(nil)

// New returns a cache that holds at most max nonces (DefaultMax when max <= 0).
func New(max int) *Cache {
	if max <= 0 {
		max = DefaultMax
	}
	var key [16]byte
	rand.Read(key[:]) // never fails (crypto/rand)
	return &Cache{max: max, k0: binary.LittleEndian.Uint64(key[:8]), k1: binary.LittleEndian.Uint64(key[8:])}
}

// UseNonce records (credential, nonce) until expires; it reports false when the pair
// is already remembered and not expired.
func (c *Cache) UseNonce(_ context.Context, credential, nonce string, expires, now time.Time) (bool, error) {
	fp := sipHash(c.k0, c.k1, credential, nonce)
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
			return false, errFull(c.max)
		}
		if live := s.rebuild(nowSec); live+1 > limit {
			s.fullAt = nowSec + 1
			return false, errFull(c.max)
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
	t := newTable(tableSize(live))
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

// tableSize is the slots of a table made for n live entries: 8/5 a live entry, at
// least minSlots.
func tableSize(n int) int { return max(minSlots, n*8/5) }

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

// The format of Save: snapshotMagic, the key (16 bytes), the window the expiries were
// set for (8, nanoseconds), the number of entries (8), each entry's fingerprint (8) and
// expiry (4), then the SHA-256 of everything before it; integers little-endian.
const snapshotMagic = "socius nonces 2\n"

// Save writes the cache's key and the nonces it remembers at now (those not expired),
// with window, the time past a request's timestamp its nonce was kept for (Load keeps
// them longer for a wider one), and returns how many. The calls that may record
// nonces must have ended: one recorded during Save may be missing from what it writes.
func (c *Cache) Save(w io.Writer, now time.Time, window time.Duration) (int, error) {
	nowSec := unixSeconds(now)
	var entries []byte
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		if t := s.tab; t != nil {
			for j, k := range t.keys {
				if k != 0 && int64(t.exps[j]) >= nowSec {
					entries = binary.LittleEndian.AppendUint64(entries, k)
					entries = binary.LittleEndian.AppendUint32(entries, t.exps[j])
					n++
				}
			}
		}
		s.mu.Unlock()
	}
	h := sha256.New()
	bw := bufio.NewWriter(io.MultiWriter(w, h))
	bw.WriteString(snapshotMagic)
	var head [32]byte
	binary.LittleEndian.PutUint64(head[0:], c.k0)
	binary.LittleEndian.PutUint64(head[8:], c.k1)
	binary.LittleEndian.PutUint64(head[16:], uint64(window))
	binary.LittleEndian.PutUint64(head[24:], uint64(n))
	bw.Write(head[:])
	bw.Write(entries)
	if err := bw.Flush(); err != nil {
		return 0, err
	}
	_, err := w.Write(h.Sum(nil))
	return n, err
}

// ErrBadSnapshot: what Load read is not a whole Save (cut short, changed, or another
// file).
var ErrBadSnapshot = errors.New("nonce: not a whole snapshot of a nonce cache")

// Load returns a cache of at most max nonces (DefaultMax when max <= 0) under the key
// of a Save, holding the nonces it wrote that are not expired at now, and how many.
// Those past max are dropped: max is what the cache may hold, as New's. window is the
// loading server's: when it is wider than the saved one, each nonce is kept as much
// longer, since the server takes its request's timestamp for as much longer.
func Load(r io.Reader, max int, now time.Time, window time.Duration) (*Cache, int, error) {
	const head = len(snapshotMagic) + 32
	// No Save writes more nonces than its cache holds, DefaultMax in serve: what is
	// longer than a snapshot of as many (or of max, when more) is not one, and is not
	// read whole (a file of gigabytes in its place, /dev/zero, would take the memory).
	most := DefaultMax
	if max > most {
		most = max
	}
	longest := int64(head) + 12*int64(most) + sha256.Size
	data, err := io.ReadAll(io.LimitReader(r, longest+1))
	if err != nil {
		return nil, 0, err
	}
	if int64(len(data)) > longest {
		return nil, 0, fmt.Errorf("%w: longer than %d bytes, a snapshot of %d nonces", ErrBadSnapshot, longest, most)
	}
	if len(data) < head+sha256.Size {
		return nil, 0, ErrBadSnapshot
	}
	body, sum := data[:len(data)-sha256.Size], data[len(data)-sha256.Size:]
	digest := sha256.Sum256(body)
	if !bytes.Equal(digest[:], sum) || !bytes.HasPrefix(body, []byte(snapshotMagic)) {
		return nil, 0, ErrBadSnapshot
	}
	b := body[len(snapshotMagic):]
	entries := b[32:]
	// The count is compared by division: 12 times a count near 2^62 wraps around to a
	// small number, which the entries' length could match.
	if count := binary.LittleEndian.Uint64(b[24:32]); len(entries)%12 != 0 || count != uint64(len(entries)/12) {
		return nil, 0, ErrBadSnapshot
	}
	// Save never writes a negative window; taken as one, the difference below would
	// wrap and shorten the expiries instead.
	saved := time.Duration(binary.LittleEndian.Uint64(b[16:24]))
	if saved < 0 {
		return nil, 0, ErrBadSnapshot
	}
	longer := int64(0) // seconds more for each expiry
	if window > saved {
		longer = int64((window - saved + time.Second - 1) / time.Second)
	}
	c := New(max)
	c.k0, c.k1 = binary.LittleEndian.Uint64(b[0:]), binary.LittleEndian.Uint64(b[8:])
	nowSec := unixSeconds(now)
	// each calls f for the entries that are loaded: not expired, and within max.
	each := func(f func(fp uint64, exp uint32) bool) bool {
		n := 0
		for e := entries; len(e) >= 12 && n < c.max; e = e[12:] {
			fp, exp := binary.LittleEndian.Uint64(e), binary.LittleEndian.Uint32(e[8:])
			exp = uint32(min(int64(exp)+longer, 1<<32-1))
			if fp == 0 || int64(exp) < nowSec {
				continue
			}
			if !f(fp, exp) {
				return false
			}
			n++
		}
		return true
	}
	// Each shard's table is made once, at its size: grown entry by entry, as calls grow
	// it, a shard would make a table at every fifth more, and the old ones are unmapped
	// only at the next collection, which a server that has just started and takes no
	// calls yet may not run for minutes: loading 570,000 nonces left 56 MB of old tables
	// resident, three times what the nonces hold.
	var live [shards]int
	each(func(fp uint64, _ uint32) bool { live[fp>>60]++; return true })
	for i, n := range live {
		if n > 0 {
			c.shards[i].tab, c.shards[i].lastSweep = newTable(tableSize(n)), nowSec
		}
	}
	loaded := 0
	ok := each(func(fp uint64, exp uint32) bool {
		loaded++
		return c.shards[fp>>60].insert(fp, exp)
	})
	if !ok {
		// Save writes each fingerprint once: this is no Save's. Held twice, it
		// would be counted and saved twice.
		return nil, 0, ErrBadSnapshot
	}
	return c, loaded, nil
}

// insert adds an entry (Load's) to the shard's table, which Load made for every entry
// it inserts (8/5 slots each: never full), and reports false, adding nothing, when the
// fingerprint is already held.
func (s *shard) insert(fp uint64, exp uint32) bool {
	t := s.tab
	i := t.home(fp)
	for ; t.keys[i] != 0; i = t.next(i) {
		if t.keys[i] == fp {
			return false
		}
	}
	t.keys[i], t.exps[i] = fp, exp
	s.used++
	return true
}
