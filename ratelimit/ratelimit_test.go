package ratelimit

import (
	"hash/maphash"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, time.November, 28, 10, 0, 0, 0, time.UTC)

func allowed(l *Limiter, key string, now time.Time, n int) int {
	ok := 0
	for i := 0; i < n; i++ {
		if l.Allow(key, now) {
			ok++
		}
	}
	return ok
}

func TestBucket(t *testing.T) {
	l := New(2, 5, 0) // 2 a second, bursts of 5
	if got := allowed(l, "a", t0, 10); got != 5 {
		t.Fatalf("burst: %d allowed, want 5", got)
	}
	// Half a second earns one token.
	if got := allowed(l, "a", t0.Add(500*time.Millisecond), 3); got != 1 {
		t.Errorf("after 0.5 s: %d allowed, want 1", got)
	}
	// Another key has its own bucket.
	if got := allowed(l, "b", t0, 10); got != 5 {
		t.Errorf("second key: %d allowed, want 5", got)
	}
	// A long pause refills to the burst, never beyond.
	if got := allowed(l, "a", t0.Add(time.Hour), 10); got != 5 {
		t.Errorf("after an hour: %d allowed, want 5", got)
	}
	// A clock that goes backwards earns nothing (and does not panic), and the bucket
	// goes on from there: it does not wait for the clock to catch up (an hour here).
	if got := allowed(l, "a", t0, 3); got != 0 {
		t.Errorf("clock went back: %d allowed, want 0", got)
	}
	if got := allowed(l, "a", t0.Add(time.Second), 3); got != 2 {
		t.Errorf("a second after the clock went back: %d allowed, want 2", got)
	}
	// A call that began a little earlier (a slow upload: calls read the time when they
	// start) comes late: it earns nothing, and the next call is not paid for the same
	// seconds again.
	l = New(1, 1, 0)
	late := t0.Add(10 * time.Second)
	if !l.Allow("s", late) || l.Allow("s", late) {
		t.Fatal("burst 1 at 10 s")
	}
	if l.Allow("s", t0) {
		t.Error("a call of 10 s ago was allowed")
	}
	if got := allowed(l, "s", late, 5); got != 0 {
		t.Errorf("after a late call: %d allowed at the same instant, want 0", got)
	}
	// A sustained rate: one call every 0.5 s is always allowed.
	l = New(2, 1, 0)
	for i := 0; i < 20; i++ {
		if !l.Allow("c", t0.Add(time.Duration(i)*500*time.Millisecond)) {
			t.Fatalf("call %d at the allowed rate refused", i)
		}
	}
	if l.Allow("c", t0.Add(19*500*time.Millisecond+100*time.Millisecond)) {
		t.Error("a call 0.1 s after the last one was allowed at 2/s with burst 1")
	}
}

// TestBurstAtLeastOne: a burst below 1 is 1, as New says.
func TestBurstAtLeastOne(t *testing.T) {
	l := New(1, 0, 0)
	if l.Burst() != 1 || !l.Allow("k", t0) || l.Allow("k", t0) || !l.Allow("k", t0.Add(time.Second)) {
		t.Errorf("burst 0: Burst() = %d, or not one call a second", l.Burst())
	}
}

func TestFractionalRate(t *testing.T) {
	l := New(0.5, 1, 0) // one call every two seconds
	if !l.Allow("k", t0) || l.Allow("k", t0.Add(time.Second)) {
		t.Fatal("first call must pass, the second a second later must not")
	}
	if !l.Allow("k", t0.Add(2*time.Second)) {
		t.Error("a call two seconds later was refused")
	}
}

// TestReadyAndTake: Ready looks without taking; Take charges a call let through, and
// may overdraw the bucket, down to minus the burst, which later calls wait out.
func TestReadyAndTake(t *testing.T) {
	l := New(2, 2, 0) // 2 a second, bursts of 2
	for i := 0; i < 5; i++ {
		if !l.Ready("a", t0) {
			t.Fatalf("Ready %d of a key never charged: false", i)
		}
	}
	if n := l.Len(); n != 0 {
		t.Fatalf("Ready tracked %d keys; it must charge nothing", n)
	}
	// Four calls found it ready before any was charged: two beyond the burst.
	for range 4 {
		l.Take("a", t0)
	}
	if l.Ready("a", t0) || l.Allow("a", t0) {
		t.Fatal("ready after four calls were charged to a burst of 2")
	}
	// A second earns two tokens, which pay the debt of two: not ready yet.
	if l.Ready("a", t0.Add(time.Second)) {
		t.Error("ready a second later, with a debt of two calls")
	}
	if !l.Ready("a", t0.Add(1500*time.Millisecond)) || !l.Allow("a", t0.Add(1500*time.Millisecond)) {
		t.Error("not ready once the debt is paid and a token earned")
	}
	if l.Ready("a", t0.Add(1500*time.Millisecond)) {
		t.Error("ready after Allow took the one token")
	}
	// Every call charged is paid for, however many: 100 at once at 1 a second, a
	// burst of 2, leave a debt of 98 calls, and the next is ready 99 s later.
	l = New(1, 2, 0)
	for range 100 {
		l.Take("b", t0)
	}
	if l.Ready("b", t0.Add(98500*time.Millisecond)) {
		t.Error("ready before the debt of 98 calls and a token were earned")
	}
	if !l.Ready("b", t0.Add(99500*time.Millisecond)) {
		t.Error("not ready after 99.5 s")
	}
	// Give returns a token, never beyond the burst, and tracks no key.
	l = New(1, 2, 0)
	l.Take("c", t0)
	l.Take("c", t0)
	l.Give("c", t0)
	if !l.Allow("c", t0) || l.Allow("c", t0) {
		t.Error("Give did not return exactly one token")
	}
	for range 5 {
		l.Give("c", t0.Add(time.Hour))
	}
	if got := allowed(l, "c", t0.Add(time.Hour), 5); got != 2 {
		t.Errorf("after Give beyond the burst: %d allowed, want the burst, 2", got)
	}
	l.Give("never", t0)
	if l.Len() != 1 {
		t.Errorf("Give tracked a key: %d tracked", l.Len())
	}
}

// TestCallsInFlightArePaidFor: a client that keeps many calls in flight, each let
// through by Ready before any of them is charged, is held to the rate all the same:
// over a minute it gets no more than the burst, the rate's calls and one round of
// calls in flight.
func TestCallsInFlightArePaidFor(t *testing.T) {
	const rate, burst, inFlight = 1, 2, 64
	l := New(rate, burst, 0)
	served := 0
	for ms := range 60_000 {
		now := t0.Add(time.Duration(ms) * time.Millisecond)
		ready := 0
		for range inFlight {
			if l.Ready("k", now) {
				ready++
			}
		}
		for range ready {
			l.Take("k", now)
		}
		served += ready
	}
	if most := burst + rate*60 + inFlight; served > most {
		t.Errorf("%d calls served in 60 s at %d a second (burst %d, %d in flight); want at most %d", served, rate, burst, inFlight, most)
	}
}

func TestMemoryBound(t *testing.T) {
	l := New(1, 2, 16*10) // 10 keys a shard
	for i := 0; i < 10_000; i++ {
		l.Allow("key-"+strconv.Itoa(i), t0)
	}
	if n := l.Len(); n > 16*10 {
		t.Fatalf("%d keys tracked, cap is %d", n, 16*10)
	}
	// A key that is tracked and in debt stays limited while new keys flood in.
	l = New(1, 1, 16*10)
	l.Allow("busy", t0)
	l.Take("busy", t0) // a second call in flight: a token owed
	for i := 0; i < 10_000; i++ {
		l.Allow("key-"+strconv.Itoa(i), t0)
	}
	if l.Allow("busy", t0.Add(time.Second)) {
		t.Error("the flood freed the busy key")
	}
	// With every shard at its cap, a new key is tracked all the same, in the place of
	// another: its second call is refused.
	if first, second := l.Allow("newcomer", t0), l.Allow("newcomer", t0); !first || second {
		t.Errorf("a new key beyond the cap: first call allowed %v, second %v; want true, false", first, second)
	}
	if n := l.Len(); n > 16*10 {
		t.Errorf("%d keys tracked, cap is %d", n, 16*10)
	}
	// Two seconds later every bucket but the busy key's is full again: the next new
	// key sweeps its shard.
	late := t0.Add(2 * time.Second)
	if !l.Allow("fresh", late) || l.Allow("fresh", late) {
		t.Error("after the sweep a new key is not limited")
	}
	if n := l.Len(); n > 16*10-8 {
		t.Errorf("after one shard's sweep %d keys tracked, want at most %d", n, 16*10-8)
	}
}

// TestFloodKeepsDebts: keys flooding a limiter at its cap, each failing once, cannot
// free the keys that are spent. An attacker who fills the table of addresses from
// addresses of its own still has the address it guesses from limited, and every new
// one it adds limited too: once the flood's keys are tracked, each gets its burst
// and no more.
func TestFloodKeepsDebts(t *testing.T) {
	l := New(1, 2, 16*64)         // 64 keys a shard
	guessers := make([]string, 4) // fewer than evictSample in any shard
	for i := range guessers {
		guessers[i] = "guesser-" + strconv.Itoa(i)
		for range 3 {
			l.Charge(guessers[i], t0) // its burst and one more: a debt
		}
	}
	now := t0
	for round := range 50 {
		now = now.Add(10 * time.Millisecond) // no bucket of the flood's fills: no sweep drops any
		for i := range 16 * 64 {
			l.Charge("flood-"+strconv.Itoa(round)+"-"+strconv.Itoa(i), now)
		}
		if n := l.Len(); n > 16*64 {
			t.Fatalf("round %d: %d keys tracked, cap is %d", round, n, 16*64)
		}
		for _, g := range guessers {
			// 1 token a second, 1 owed at t0: ready at t0 + 2 s, and every round
			// is before it.
			if d := l.ReadyIn(g, now); d <= 0 {
				t.Fatalf("round %d (+%v): %s may try again: the flood freed it", round, now.Sub(t0), g)
			}
		}
	}
	// A key new after the flood is tracked: it has its burst, then waits.
	l.Charge("newcomer", now)
	if ready := l.Charge("newcomer", now); !ready.After(now) {
		t.Errorf("a new key charged its burst at the cap: ready at +%v, want later than now", ready.Sub(now))
	}
}

// TestSweepOncePerSecond: a shard at its cap is swept (its full buckets dropped) at
// most once a second, however many new keys come; in between, a new key takes the
// place of one bucket.
func TestSweepOncePerSecond(t *testing.T) {
	l := New(1, 1, 4*shards) // four keys a shard
	var keys []string        // keys of one shard
	for i := 0; len(keys) < 7; i++ {
		if k := "k" + strconv.Itoa(i); maphash.String(l.seed, k)%shards == maphash.String(l.seed, "k0")%shards {
			keys = append(keys, k)
		}
	}
	shard := &l.shards[maphash.String(l.seed, "k0")%shards]
	for _, k := range keys[:4] {
		l.Allow(k, t0) // tracked, empty
	}
	l.Allow(keys[4], t0.Add(500*time.Millisecond)) // swept: none full; one evicted
	if n := len(shard.buckets); n != 4 {
		t.Fatalf("after a sweep that dropped none: %d keys in the shard, want 4", n)
	}
	late := t0.Add(1200 * time.Millisecond) // the keys of t0 full, 0.7 s after the sweep
	l.Allow(keys[5], late)
	if n := len(shard.buckets); n != 4 {
		t.Errorf("0.7 s after the sweep: %d keys in the shard, want 4 (swept again?)", n)
	}
	later := t0.Add(1600 * time.Millisecond) // 1.1 s after the sweep
	l.Allow(keys[6], later)
	if n := len(shard.buckets); n > 3 {
		t.Errorf("1.1 s after the sweep: %d keys in the shard, want at most 3 (not swept?)", n)
	}
}

// TestKeysAreCopies: the limiter keeps its own copy of a key, not the string it was
// given, which is often a slice of a whole request body.
func TestKeysAreCopies(t *testing.T) {
	l := New(1, 1, 0)
	body := strings.Repeat("x", 1<<20)
	key := body[:9]
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := 0; i < 64; i++ {
		b := []byte(body)
		copy(b, strconv.Itoa(1000000+i))
		l.Allow(string(b)[:9], t0) // the body would be kept by its key
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if grew := int64(after.HeapAlloc) - int64(before.HeapAlloc); grew > 8<<20 {
		t.Errorf("64 keys sliced from 1 MiB bodies keep %d MiB alive", grew>>20)
	}
	if l.Len() != 64 || !l.Allow(key, t0) {
		t.Errorf("%d keys tracked", l.Len())
	}
}

func BenchmarkAllow(b *testing.B) {
	l := New(1e9, 1<<30, 0)
	keys := make([]string, 64)
	for i := range keys {
		keys[i] = "3_key" + strconv.Itoa(i)
	}
	now := t0
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			l.Allow(keys[i%len(keys)], now)
			i++
		}
	})
}

// TestReadyIn: how long until a spent bucket holds a token again, and that asking
// takes none.
func TestReadyIn(t *testing.T) {
	l := New(4, 2, 0) // 4 a second, bursts of 2
	if d := l.ReadyIn("a", t0); d != 0 {
		t.Errorf("a key never charged: ready in %v, want 0", d)
	}
	allowed(l, "a", t0, 2)
	if d := l.ReadyIn("a", t0); d != 250*time.Millisecond {
		t.Errorf("spent: ready in %v, want 250ms", d)
	}
	if d := l.ReadyIn("a", t0.Add(100*time.Millisecond)); d != 150*time.Millisecond {
		t.Errorf("0.1 s later: ready in %v, want 150ms", d)
	}
	if d := l.ReadyIn("a", t0.Add(250*time.Millisecond)); d != 0 {
		t.Errorf("0.25 s later: ready in %v, want 0", d)
	}
	// ReadyIn took nothing: the token earned is there to take, and only it.
	if got := allowed(l, "a", t0.Add(250*time.Millisecond), 2); got != 1 {
		t.Errorf("after ReadyIn: %d allowed, want 1", got)
	}
}

// TestCharge: Charge takes a token, when the bucket has none too, and says when the
// bucket holds one again: after its debt, from the latest time it was touched at
// when a call read its time earlier.
func TestCharge(t *testing.T) {
	l := New(4, 2, 0) // 4 a second, bursts of 2
	if ready := l.Charge("a", t0); !ready.Equal(t0) {
		t.Errorf("first: ready at +%v; want at once", ready.Sub(t0))
	}
	if ready := l.Charge("a", t0); ready.Sub(t0) != 250*time.Millisecond {
		t.Errorf("second: ready at +%v; want +250ms", ready.Sub(t0))
	}
	// Spent: charged all the same, a debt of one token to earn back first.
	if ready := l.Charge("a", t0.Add(100*time.Millisecond)); ready.Sub(t0) != 500*time.Millisecond {
		t.Errorf("spent: ready at +%v; want +500ms", ready.Sub(t0))
	}
	if d := l.ReadyIn("a", t0.Add(100*time.Millisecond)); d != 400*time.Millisecond {
		t.Errorf("in debt: ready in %v, want 400ms", d)
	}
	// A call whose time is before the bucket's last earns nothing, and is paid from
	// the last.
	l.Charge("b", t0.Add(time.Second))
	if ready := l.Charge("b", t0); ready.Sub(t0) != 1250*time.Millisecond {
		t.Errorf("out of order: ready at +%v; want +1.25s", ready.Sub(t0))
	}
	if d := l.ReadyIn("b", t0); d != 1250*time.Millisecond {
		t.Errorf("out of order: ready in %v, want 1.25s", d)
	}
	// Burst 1: the first call spends the bucket.
	if ready := New(4, 1, 0).Charge("a", t0); ready.Sub(t0) != 250*time.Millisecond {
		t.Errorf("burst 1: ready at +%v; want +250ms", ready.Sub(t0))
	}
}
