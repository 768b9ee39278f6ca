package server

import (
	"fmt"
	"testing"
	"time"
)

func TestClientAddress(t *testing.T) {
	for _, tt := range []struct{ remote, want string }{
		{"127.0.0.1:5000", "127.0.0.1"},
		{"192.0.2.7:1", "192.0.2.7"},
		// One IPv6 host's /64 is one address: a host is given a whole /64, and would
		// otherwise have 2^64 budgets.
		{"[2001:db8:1:2:3:4:5:6]:443", "2001:db8:1:2::/64"},
		{"[2001:db8:1:2:ffff::1]:443", "2001:db8:1:2::/64"},
		{"[::1]:8080", "::/64"},
		{"[fe80::1%eth0]:80", "fe80::/64"},
		// An IPv4 client of a dual-stack listener.
		{"[::ffff:192.0.2.7]:80", "192.0.2.7"},
		// IPv4 clients translated to the well-known NAT64 prefix: each its own
		// address, not all of them the prefix's /64; another prefix's /64 as any.
		{"[64:ff9b::192.0.2.7]:80", "192.0.2.7"},
		{"[64:ff9b::198.51.100.1]:80", "198.51.100.1"},
		{"[64:ff9b:1::192.0.2.7]:80", "64:ff9b:1::/64"},
		// Not an IP and a port: the host part, else the whole, bounded.
		{"localhost:80", "localhost"},
		{"@", "@"},
		{"", ""},
	} {
		if got := clientAddress(tt.remote); got != tt.want {
			t.Errorf("clientAddress(%q) = %q, want %q", tt.remote, got, tt.want)
		}
	}
}

// TestAuthFailuresWindow: the check before authentication looks in the table only
// while some address may have spent its budget (until); once the clock is past it,
// every address is ready, so that skipping the lookup refuses nobody it should.
func TestAuthFailuresWindow(t *testing.T) {
	t0 := time.Date(2026, time.December, 1, 10, 0, 0, 0, time.UTC)
	a := newAuthFailures(4, 3) // a token back every 250 ms
	at := func(addr string, d time.Duration) *call {
		c := &call{now: t0.Add(d)}
		c.RemoteAddr = addr + ":1"
		return c
	}
	if a.until.Load() > t0.UnixNano() {
		t.Fatal("a new limit has a window")
	}
	// Failures from three addresses at uneven times, some beyond their budgets.
	addrs := []string{"192.0.2.1", "192.0.2.2", "192.0.2.3"}
	for i := range 40 {
		d := time.Duration(i*i%97) * 7 * time.Millisecond
		a.failed(at(addrs[i%3], d))
		for _, probe := range []time.Duration{d, d + 100*time.Millisecond, d + 250*time.Millisecond, d + time.Second} {
			now := t0.Add(probe)
			if now.UnixNano() < a.until.Load() {
				continue
			}
			for _, addr := range addrs {
				if w := a.limiter.ReadyIn(addr, now); w > 0 {
					t.Fatalf("after failure %d, at +%v (past the window): %s must wait %v", i, probe, addr, w)
				}
			}
		}
	}
	// Spent: refused for the time a token takes, then ready; the window ends with it.
	b := newAuthFailures(4, 2)
	b.failed(at("192.0.2.9", 0))
	b.failed(at("192.0.2.9", 0))
	if w := b.readyIn(at("192.0.2.9", 0)); w != 250*time.Millisecond {
		t.Errorf("spent: wait %v, want 250ms", w)
	}
	if w := b.readyIn(at("192.0.2.10", 0)); w != 0 {
		t.Errorf("another address: wait %v, want 0", w)
	}
	if got, want := b.until.Load(), t0.Add(250*time.Millisecond).UnixNano(); got != want {
		t.Errorf("window until %v, want %v", time.Unix(0, got).UTC(), time.Unix(0, want).UTC())
	}
	if w := b.readyIn(at("192.0.2.9", 250*time.Millisecond)); w != 0 {
		t.Errorf("a token later: wait %v, want 0", w)
	}
}

// TestAuthFailuresInFlight: the failures of calls that were in flight together, each
// let through by the check before any of them failed, each cost a token, beyond the
// budget too: a client that keeps many calls in flight, sent together the moment its
// address may try again (the 403048 says when), gets no more guesses than one that
// sends them one at a time.
func TestAuthFailuresInFlight(t *testing.T) {
	t0 := time.Date(2026, time.December, 1, 10, 0, 0, 0, time.UTC)
	a := newAuthFailures(1, 2) // a token back every second, bursts of 2
	at := func(d time.Duration) *call {
		c := &call{now: t0.Add(d)}
		c.RemoteAddr = "192.0.2.1:1"
		return c
	}
	const inFlight = 10
	calls := make([]*call, inFlight)
	for i := range calls {
		calls[i] = at(0)
		if w := a.readyIn(calls[i]); w != 0 {
			t.Fatalf("call %d in flight: refused for %v before any failed", i, w)
		}
	}
	for _, c := range calls {
		a.failed(c)
	}
	// Ten failures on a budget of 2: a token back takes the 8 beyond it and one more.
	want := (inFlight - 2 + 1) * time.Second
	if w := a.readyIn(at(0)); w != want {
		t.Errorf("after %d failures at once: wait %v, want %v", inFlight, w, want)
	}
	if got := a.until.Load(); got != t0.Add(want).UnixNano() {
		t.Errorf("window until +%v, want +%v", time.Unix(0, got).Sub(t0), want)
	}
	// Once it may try again, ten more at once: the debt is one token's worth each.
	for range inFlight {
		a.failed(at(want))
	}
	if w := a.readyIn(at(want)); w != inFlight*time.Second {
		t.Errorf("ten more when ready: wait %v, want %v", w, inFlight*time.Second)
	}
}

// TestAuthFailuresTinyRate: at a rate too small for a Duration, the window lasts a
// century, not until an overflowed moment that would never look in the table.
func TestAuthFailuresTinyRate(t *testing.T) {
	a := newAuthFailures(1e-300, 1)
	c := &call{now: time.Date(2026, time.December, 1, 10, 0, 0, 0, time.UTC)}
	c.RemoteAddr = "192.0.2.1:1"
	a.failed(c)
	if got, want := a.until.Load(), c.now.Add(maxWindow).UnixNano(); got != want {
		t.Errorf("window until %v, want %v", time.Unix(0, got).UTC(), time.Unix(0, want).UTC())
	}
	if w := a.readyIn(c); w <= 0 {
		t.Errorf("spent at a tiny rate: wait %v", w)
	}
}

// TestAuthFailuresAddressSpray: an attacker who fails once from each of more addresses
// than the table holds (IPv6 /64s are many) disables nothing: the address it guesses
// from stays limited, and so does a new one it guesses from after the spray.
func TestAuthFailuresAddressSpray(t *testing.T) {
	t0 := time.Date(2026, time.December, 1, 10, 0, 0, 0, time.UTC)
	a := newAuthFailures(1, 2) // a token back every second, bursts of 2
	at := func(addr string) *call {
		c := &call{now: t0}
		c.RemoteAddr = addr
		return c
	}
	for range 3 {
		a.failed(at("192.0.2.1:1"))
	}
	for i := range 2 * MaxAuthFailureAddresses {
		a.failed(at(fmt.Sprintf("[2001:db8:%x:%x::1]:1", i>>16, i&0xffff)))
	}
	if n := a.limiter.Len(); n > MaxAuthFailureAddresses {
		t.Errorf("%d addresses tracked, more than %d", n, MaxAuthFailureAddresses)
	}
	if w := a.readyIn(at("192.0.2.1:2")); w <= 0 {
		t.Error("the address that spent its budget before the spray may try again")
	}
	for range 3 {
		a.failed(at("192.0.2.2:1"))
	}
	if w := a.readyIn(at("192.0.2.2:2")); w <= 0 {
		t.Error("an address that spent its budget after the spray is not limited")
	}
}

// BenchmarkAuthFailureCheck is the check before authentication of a good call: past
// the window (no address may have spent its budget) it is an atomic load; within it
// (an address failed less than a refill ago) a lookup in the table.
func BenchmarkAuthFailureCheck(b *testing.B) {
	t0 := time.Date(2026, time.December, 1, 10, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		name  string
		after time.Duration
	}{{"past-window", time.Second}, {"in-window", 0}} {
		b.Run(tt.name, func(b *testing.B) {
			a := newAuthFailures(4, 3)
			for i := range 1000 {
				f := &call{now: t0}
				f.RemoteAddr = fmt.Sprintf("192.0.2.%d:1", i%250)
				a.failed(f)
			}
			c := &call{now: t0.Add(tt.after)}
			c.RemoteAddr = "198.51.100.1:5000"
			b.ReportAllocs()
			for b.Loop() {
				if a.readyIn(c) != 0 {
					b.Fatal("refused")
				}
			}
		})
	}
}
