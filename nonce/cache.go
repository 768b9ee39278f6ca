// Package nonce remembers the nonces of signed requests in memory, for a single server
// node (the embedded store). A nonce only has to be remembered while its request could
// still pass the timestamp check, so every entry carries an expiry and memory stays
// bounded by the request rate times the window; a hard cap refuses new signed requests
// rather than forget a nonce early (forgetting would open a replay).
package nonce

import (
	"context"
	"crypto/sha256"
	"sort"
	"sync"
	"time"

	"github.com/socius/socius"
)

const shards = 16

// DefaultMax is the default cap on remembered nonces: about 40 MB, or 8,000 signed
// requests a second sustained over a 120 s window.
const DefaultMax = 1_000_000

// Cache is an in-memory socius.NonceStore.
type Cache struct {
	max    int
	shards [shards]shard
}

type shard struct {
	mu      sync.Mutex
	seen    map[[16]byte]int64   // key -> expiry, Unix seconds
	byTime  map[int64][][16]byte // expiry second -> keys, for eviction
	seconds []int64              // expiry seconds present in byTime, unsorted
	evicted int64                // every expiry up to this second is gone
}

var _ socius.NonceStore = (*Cache)(nil)

// New returns a cache that holds at most max nonces (DefaultMax when max <= 0).
func New(max int) *Cache {
	if max <= 0 {
		max = DefaultMax
	}
	c := &Cache{max: max}
	for i := range c.shards {
		c.shards[i].seen = make(map[[16]byte]int64)
		c.shards[i].byTime = make(map[int64][][16]byte)
	}
	return c
}

// UseNonce records (credential, nonce) until expires; it reports false when the pair
// is already remembered and not expired.
func (c *Cache) UseNonce(_ context.Context, credential, nonce string, expires, now time.Time) (bool, error) {
	h := sha256.New()
	h.Write([]byte(credential))
	h.Write([]byte{0})
	h.Write([]byte(nonce))
	var sum [sha256.Size]byte
	var key [16]byte
	copy(key[:], h.Sum(sum[:0]))

	s := &c.shards[key[0]%shards]
	s.mu.Lock()
	defer s.mu.Unlock()
	nowSec := now.Unix()
	s.evict(nowSec)
	if exp, ok := s.seen[key]; ok && exp >= nowSec {
		return false, nil
	}
	if len(s.seen) >= c.max/shards {
		return false, socius.Errorf(socius.CodeRateLimited, "Too many signed requests within the timestamp window: the nonce memory is full")
	}
	exp := expires.Unix()
	s.seen[key] = exp
	if _, ok := s.byTime[exp]; !ok {
		s.seconds = append(s.seconds, exp)
	}
	s.byTime[exp] = append(s.byTime[exp], key)
	return true, nil
}

// evict drops every entry that expired before now.
func (s *shard) evict(now int64) {
	if now <= s.evicted || len(s.seconds) == 0 {
		return
	}
	s.evicted = now
	sort.Slice(s.seconds, func(i, j int) bool { return s.seconds[i] < s.seconds[j] })
	n := 0
	for _, sec := range s.seconds {
		if sec >= now {
			break
		}
		for _, k := range s.byTime[sec] {
			if s.seen[k] == sec {
				delete(s.seen, k)
			}
		}
		delete(s.byTime, sec)
		n++
	}
	s.seconds = append(s.seconds[:0], s.seconds[n:]...)
}

// Len returns the number of nonces remembered (expired ones may still count until
// the next call on their shard).
func (c *Cache) Len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		n += len(s.seen)
		s.mu.Unlock()
	}
	return n
}
