// Package ratelimit limits the call rate of each apiKey with token buckets, in the
// memory of one server node: each node of a deployment counts its own calls.
//
// A bucket holds at most burst tokens and refills at rate tokens a second; a call
// takes one token or is refused. A caller that must do some work before it knows
// whether a call counts (the server authenticates it first) asks Ready before the work
// and calls Take (or Charge) after it: the calls that did not count took nothing, and
// those that did may overdraw the bucket by as many as were in between, a debt the
// next calls wait out. Time is passed in by the caller (the server's injected clock),
// so tests move it without sleeping.
//
// Memory stays bounded whatever keys clients invent: a bucket that has refilled to
// full is indistinguishable from a new one, so full buckets are dropped when a shard
// reaches its share of MaxKeys (at most once a second). If a shard is still at its cap
// (more than MaxKeys keys all called within the last burst/rate seconds), a new key
// takes the place of the bucket nearest to full of a few the shard holds (evict): it
// is tracked, so that a flood of new keys cannot make every key after it unlimited, and
// what is forgotten is a bucket that was about to be forgotten anyway, rather than a
// debt: a key kept spent stays limited while the flood goes on.
package ratelimit

import (
	"hash/maphash"
	"math"
	"strings"
	"sync"
	"time"
)

// DefaultMaxKeys is the default cap on tracked keys.
const DefaultMaxKeys = 100_000

const shards = 16

// Limiter is a set of token buckets, one per key.
type Limiter struct {
	rate     float64 // tokens a second
	burst    float64
	maxShard int
	seed     maphash.Seed
	shards   [shards]shard
}

type shard struct {
	mu      sync.Mutex
	buckets map[string]*bucket
	swept   time.Time // the last sweep, so that a flood of new keys sweeps once a second at most
}

type bucket struct {
	tokens float64
	last   time.Time
}

// New returns a limiter that allows rate calls a second per key, and bursts of up to
// burst calls (at least 1). maxKeys caps the keys tracked (DefaultMaxKeys when <= 0).
func New(rate float64, burst, maxKeys int) *Limiter {
	if burst < 1 {
		burst = 1
	}
	if maxKeys <= 0 {
		maxKeys = DefaultMaxKeys
	}
	l := &Limiter{rate: rate, burst: float64(burst), maxShard: max(1, maxKeys/shards), seed: maphash.MakeSeed()}
	for i := range l.shards {
		l.shards[i].buckets = make(map[string]*bucket)
	}
	return l
}

// Rate returns the calls a second allowed per key.
func (l *Limiter) Rate() float64 { return l.rate }

// Burst returns the largest burst allowed per key.
func (l *Limiter) Burst() int { return int(l.burst) }

// Allow takes a token from key's bucket at time now and reports whether there was one.
func (l *Limiter) Allow(key string, now time.Time) bool {
	s, b := l.lock(key)
	defer s.mu.Unlock()
	if b == nil {
		l.track(s, key, now)
		return true
	}
	b.refill(l, now)
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// Ready reports whether key's bucket holds a token at time now, and takes none: a key
// never charged is ready.
func (l *Limiter) Ready(key string, now time.Time) bool {
	s, b := l.lock(key)
	defer s.mu.Unlock()
	if b == nil {
		return true
	}
	b.refill(l, now)
	return b.tokens >= 1
}

// ReadyIn returns how long after now key's bucket will hold a token: 0 when it holds
// one now (a key never charged holds one). It takes none.
func (l *Limiter) ReadyIn(key string, now time.Time) time.Duration {
	s, b := l.lock(key)
	defer s.mu.Unlock()
	if b == nil {
		return 0
	}
	b.refill(l, now)
	if b.tokens >= 1 {
		return 0
	}
	return b.ready(l).Sub(now)
}

// Charge takes a token from key's bucket at time now whether or not there is one, as
// Take does (the bucket may be overdrawn), and returns when the bucket holds a token
// again: no later than now when it still holds one or is not tracked; else from its
// last time (a bucket last touched by a call later than now, whose now was read first,
// is paid from that call's time), once it has earned its debt back too. It is for
// what is counted after the work a Ready or ReadyIn let through: the calls that were
// let through together each pay.
func (l *Limiter) Charge(key string, now time.Time) (ready time.Time) {
	s, b := l.lock(key)
	defer s.mu.Unlock()
	if b == nil {
		b = l.track(s, key, now)
	} else {
		b.refill(l, now)
		b.tokens--
	}
	if b.tokens >= 1 {
		return now
	}
	return b.ready(l)
}

// ready returns when a bucket that holds less than a token will hold one: its last
// time and the wait, rounded up to the next nanosecond (it is not ready a moment
// before). A rate so small that the wait overflows a Duration waits the longest one.
func (b *bucket) ready(l *Limiter) time.Time {
	d := math.Ceil((1 - b.tokens) / l.rate * float64(time.Second))
	if d >= math.MaxInt64 {
		return b.last.Add(math.MaxInt64)
	}
	return b.last.Add(time.Duration(d))
}

// Take takes a token from key's bucket at time now, whether or not there is one (the
// call was let through by Ready, and others took the token since): the bucket may be
// overdrawn, by at most the calls that were between their Ready and their Take at
// once, and is ready again once it has earned the debt back. (A floor under the debt
// would let a client that keeps many calls in flight have all but a few of them free.)
func (l *Limiter) Take(key string, now time.Time) {
	s, b := l.lock(key)
	defer s.mu.Unlock()
	if b == nil {
		l.track(s, key, now)
		return
	}
	b.refill(l, now)
	b.tokens--
}

// Give gives back to key's bucket, at time now, the token of a call that was charged
// and turned out not to count (the server's: a replayed request), never beyond the
// burst.
func (l *Limiter) Give(key string, now time.Time) {
	s, b := l.lock(key)
	defer s.mu.Unlock()
	if b != nil {
		b.refill(l, now)
		b.tokens = min(b.tokens+1, l.burst)
	}
}

// lock locks key's shard and returns it, with key's bucket or nil.
func (l *Limiter) lock(key string) (*shard, *bucket) {
	s := &l.shards[maphash.String(l.seed, key)%shards]
	s.mu.Lock()
	return s, s.buckets[key]
}

// track starts a bucket for key, its first token taken, and returns it; when the shard
// is at its cap, after a sweep (at most once a second) or else in the place of another
// bucket (evict; see the package's comment). s is locked.
func (l *Limiter) track(s *shard, key string, now time.Time) *bucket {
	if len(s.buckets) >= l.maxShard {
		if d := now.Sub(s.swept); d >= time.Second || d < 0 {
			l.sweep(s, now)
			s.swept = now
		}
		if len(s.buckets) >= l.maxShard {
			l.evict(s, now)
		}
	}
	// A copy: the key is often a slice of a request's body, which the map would
	// otherwise keep whole for as long as the bucket lives.
	b := &bucket{tokens: l.burst - 1, last: now}
	s.buckets[strings.Clone(key)] = b
	return b
}

// evictSample is how many buckets evict compares: enough that a spent one is dropped
// only when every one of them is as spent, few enough that a flood of new keys costs
// little each.
const evictSample = 8

// evict drops, of the first evictSample buckets of the shard in map order (which Go
// starts at a random place each time), the one holding the most tokens at now: the
// nearest to full, whose key loses the least by being forgotten. s is locked.
func (l *Limiter) evict(s *shard, now time.Time) {
	var (
		victim string
		most   = math.Inf(-1)
		seen   int
	)
	for k, b := range s.buckets {
		b.refill(l, now)
		if b.tokens > most {
			victim, most = k, b.tokens
		}
		if seen++; seen == evictSample {
			break
		}
	}
	delete(s.buckets, victim)
}

// clockJump is how far back a call's time must be from a bucket's last for the clock
// to have been moved back (the emulator's clock is moved back and forth), rather than
// the call having begun earlier: calls read the time when they start, and a slow one
// comes to its limit late.
const clockJump = time.Minute

// refill adds the tokens earned since the bucket was last touched. A time before the
// last earns nothing and leaves the last as it is (else the next call would be paid
// for the same seconds again), unless the clock jumped back: then the bucket goes on
// from now, instead of waiting for the clock to catch up.
func (b *bucket) refill(l *Limiter, now time.Time) {
	switch d := now.Sub(b.last); {
	case d > 0:
		b.tokens = min(l.burst, b.tokens+d.Seconds()*l.rate)
		b.last = now
	case d < -clockJump:
		b.last = now
	}
}

// sweep drops the buckets that are full at now.
func (l *Limiter) sweep(s *shard, now time.Time) {
	for k, b := range s.buckets {
		b.refill(l, now)
		if b.tokens >= l.burst {
			delete(s.buckets, k)
		}
	}
}

// Len returns the number of keys tracked.
func (l *Limiter) Len() int {
	n := 0
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		n += len(s.buckets)
		s.mu.Unlock()
	}
	return n
}
