package nonce

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/socius/socius"
	"github.com/socius/socius/storetest"
)

var t0 = time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)

func TestReplayWithinWindow(t *testing.T) {
	c := New(0)
	ctx := context.Background()
	exp := t0.Add(120 * time.Second)
	if ok, err := c.UseNonce(ctx, "s:key", "n1", exp, t0); !ok || err != nil {
		t.Fatalf("first use: %v %v", ok, err)
	}
	if ok, _ := c.UseNonce(ctx, "s:key", "n1", exp, t0.Add(119*time.Second)); ok {
		t.Error("replay inside the window accepted")
	}
	if ok, _ := c.UseNonce(ctx, "s:other", "n1", exp, t0); !ok {
		t.Error("same nonce of another credential refused")
	}
	// A replay with another timestamp is still a replay.
	if ok, _ := c.UseNonce(ctx, "s:key", "n1", exp.Add(time.Minute), t0.Add(time.Second)); ok {
		t.Error("replay with a later expiry accepted")
	}
}

func TestExpiryFreesMemory(t *testing.T) {
	c := New(0)
	ctx := context.Background()
	for i := 0; i < 1000; i++ {
		c.UseNonce(ctx, "s:key", fmt.Sprint(i), t0.Add(time.Duration(i%10)*time.Second), t0)
	}
	if c.Len(t0) != 1000 {
		t.Fatalf("Len = %d", c.Len(t0))
	}
	later := t0.Add(time.Hour)
	late := 0
	for touched := 0; touched < shards; late++ { // until every shard has had a call
		c.UseNonce(ctx, "s:key", fmt.Sprint("late", late), later.Add(time.Minute), later)
		touched = 0
		for i := range c.shards {
			if c.shards[i].lastSweep == later.Unix() {
				touched++
			}
		}
	}
	if n := c.Len(later); n != late {
		t.Errorf("after expiry Len = %d, want %d", n, late)
	}
	// An expired nonce may be used again.
	if ok, _ := c.UseNonce(ctx, "s:key", "5", later.Add(time.Minute), later); !ok {
		t.Error("expired nonce still refused")
	}
}

// TestReplayBehindAnExpiredEntry: between sweeps an expired entry keeps its slot, and
// a pair whose probe passes one (of another pair) on the way to its own entry is still
// found there: the expired slot is taken only once the whole probe has missed.
func TestReplayBehindAnExpiredEntry(t *testing.T) {
	c := New(0)
	ctx := context.Background()
	const n = 20_000
	for i := range n {
		exp := t0.Add(time.Minute)
		if i%2 == 0 {
			exp = t0.Add(time.Second)
		}
		if ok, err := c.UseNonce(ctx, "s:k", fmt.Sprint(i), exp, t0); !ok || err != nil {
			t.Fatalf("nonce %d: %v %v", i, ok, err)
		}
	}
	// The even nonces have expired; no shard has been swept since (sweepEvery).
	at := t0.Add(2 * time.Second)
	for i := 1; i < n; i += 2 {
		if ok, err := c.UseNonce(ctx, "s:k", fmt.Sprint(i), at.Add(time.Minute), at); ok || err != nil {
			t.Fatalf("nonce %d replayed at +2s: accepted %v, %v", i, ok, err)
		}
	}
}

func TestCapRefusesInsteadOfForgetting(t *testing.T) {
	c := New(shards * 2)
	ctx := context.Background()
	exp := t0.Add(time.Minute)
	accepted := 0
	var refused error
	for i := 0; i < 1000; i++ {
		ok, err := c.UseNonce(ctx, "s:k", fmt.Sprint(i), exp, t0)
		if ok {
			accepted++
		}
		if err != nil {
			refused = err
		}
	}
	if accepted > shards*2 || socius.ErrorCode(refused) != socius.CodeRateLimited {
		t.Errorf("accepted %d, last error %v", accepted, refused)
	}
	// Worded as every other 403048: the code's message first, then what to do.
	want := fmt.Sprintf("API Rate Limit Exceeded: too many signed requests within the timestamp window: the nonce memory of this server is full (%d nonces); retry later", shards*2)
	var e *socius.Error
	if !errors.As(refused, &e) || e.Details != want {
		t.Errorf("refused with %v, want errorDetails %q", refused, want)
	}
	if ok, _ := c.UseNonce(ctx, "s:k", "0", exp, t0); ok {
		t.Error("a remembered nonce was forgotten")
	}
}

func TestConcurrentUseIsExactlyOnce(t *testing.T) {
	c := New(0)
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := map[string]int{}
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 500; i++ {
				n := fmt.Sprint(i)
				if ok, _ := c.UseNonce(context.Background(), "s:k", n, t0.Add(time.Minute), t0); ok {
					mu.Lock()
					wins[n]++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	for n, w := range wins {
		if w != 1 {
			t.Errorf("nonce %s accepted %d times", n, w)
		}
	}
	if len(wins) != 500 {
		t.Errorf("%d nonces accepted, want 500", len(wins))
	}
}

func BenchmarkUseNonce(b *testing.B) {
	c := New(0)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i++
			c.UseNonce(context.Background(), "s:k", fmt.Sprint(i, "-", &i), t0.Add(time.Minute), t0)
		}
	})
}

// TestManyNonces fills the cache past several rebuilds and checks that every pair is
// remembered until it expires, then forgotten.
func TestManyNonces(t *testing.T) {
	c := New(0)
	ctx := context.Background()
	const n = 200_000
	for i := range n {
		exp := t0.Add(time.Duration(60+i%60) * time.Second)
		if ok, err := c.UseNonce(ctx, "s:k", fmt.Sprint(i), exp, t0); !ok || err != nil {
			t.Fatalf("nonce %d: %v %v", i, ok, err)
		}
	}
	for i := 0; i < n; i += 7 {
		if ok, _ := c.UseNonce(ctx, "s:k", fmt.Sprint(i), t0.Add(time.Hour), t0.Add(59*time.Second)); ok {
			t.Fatalf("nonce %d forgotten before its expiry", i)
		}
	}
	// At t0+90s the nonces that expire before then are gone, the others not.
	at := t0.Add(90 * time.Second)
	for i := 0; i < n; i += 5 {
		ok, err := c.UseNonce(ctx, "s:k", fmt.Sprint(i), at.Add(time.Minute), at)
		if err != nil {
			t.Fatal(err)
		}
		if expired := 60+i%60 < 90; ok != expired {
			t.Fatalf("nonce %d at +90s: accepted %v, want %v", i, ok, expired)
		}
	}
	if mem := c.Len(at); mem > n {
		t.Errorf("Len = %d after expiry, want at most %d", mem, n)
	}
}

// TestSlotsPerNonce checks the memory of the tables: a million live nonces take at
// most 1.6 slots each (12 bytes a slot), plus the smallest table of each shard.
func TestSlotsPerNonce(t *testing.T) {
	c := New(0)
	ctx := context.Background()
	const n = 1_000_000
	for i := range n {
		if ok, err := c.UseNonce(ctx, "s:k", strconv.Itoa(i), t0.Add(2*time.Minute), t0); !ok || err != nil {
			t.Fatalf("nonce %d: %v %v", i, ok, err)
		}
	}
	slots := 0
	for i := range c.shards {
		slots += len(c.shards[i].tab.keys)
	}
	if limit := n*8/5 + shards*minSlots; slots > limit {
		t.Errorf("%d slots for %d nonces (%.2f each), want at most %d", slots, n, float64(slots)/n, limit)
	}
	t.Logf("%d slots for %d nonces: %.2f each, %.1f bytes", slots, n, float64(slots)/n, 12*float64(slots)/n)
}

// BenchmarkUseNonceFull measures a cache that holds a million live nonces, as a server
// does at about 8,000 signed requests a second.
func BenchmarkUseNonceFull(b *testing.B) {
	c := New(0)
	ctx := context.Background()
	for i := range 1_000_000 {
		c.UseNonce(ctx, "apiKey 3_k", fmt.Sprint("warm", i), t0.Add(2*time.Minute), t0)
	}
	nonces := make([]string, 1<<16)
	for i := range nonces {
		nonces[i] = fmt.Sprint(i)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		c.UseNonce(ctx, "apiKey 3_k", nonces[i%len(nonces)]+"-"+fmt.Sprint(i/len(nonces)), t0.Add(2*time.Minute), t0)
	}
}

func TestConformance(t *testing.T) {
	storetest.RunNonces(t, func(*testing.T) socius.NonceStore { return New(0) })
}

// TestLenOfAQuietNode: with no calls, the count still falls as the nonces expire (the
// gauge of a node out of rotation does not keep its peak), and the live ones stay.
func TestLenOfAQuietNode(t *testing.T) {
	c := New(0)
	ctx := context.Background()
	for i := range 20 {
		c.UseNonce(ctx, "s:key", fmt.Sprint("short", i), t0.Add(2*time.Second), t0)
	}
	c.UseNonce(ctx, "s:key", "long", t0.Add(time.Hour), t0)
	if n := c.Len(t0); n != 21 {
		t.Fatalf("Len = %d, want 21", n)
	}
	later := t0.Add(sweepEvery * time.Second)
	if n := c.Len(later); n != 1 {
		t.Errorf("Len %v later, without a call = %d, want 1", later.Sub(t0), n)
	}
	if ok, _ := c.UseNonce(ctx, "s:key", "long", t0.Add(time.Hour), later); ok {
		t.Error("the live nonce was forgotten by counting")
	}
}
