package storetest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/socius/socius"
)

// RunNonces runs the conformance suite of socius.NonceStore, one subtest per
// behaviour. newStore returns a new nonce store that remembers nothing yet; closing it,
// if it needs closing, is newStore's business (t.Cleanup).
//
// Times are whole seconds: a store may keep its expiries at the second (the in-memory
// cache does). A pair is remembered up to and including its expiry instant, and may be
// used again after it.
func RunNonces(t *testing.T, newStore func(t *testing.T) socius.NonceStore) {
	for _, tt := range nonceTests {
		t.Run(tt.name, func(t *testing.T) {
			tt.run(t, newStore(t))
		})
	}
}

// nonceBase is the time the nonce tests start at: a whole second.
var nonceBase = time.Date(2026, time.November, 28, 10, 30, 0, 0, time.UTC)

func sec(n int) time.Time { return nonceBase.Add(time.Duration(n) * time.Second) }

// useNonce calls UseNonce and fails the test unless it reports want.
func useNonce(t *testing.T, s socius.NonceStore, credential, nonce string, expires, now time.Time, want bool) {
	t.Helper()
	got, err := s.UseNonce(t.Context(), credential, nonce, expires, now)
	if err != nil {
		t.Fatalf("UseNonce(%q, %q, expires %s, now %s): %v", credential, nonce, expires.Format(time.TimeOnly), now.Format(time.TimeOnly), err)
	}
	if got != want {
		t.Errorf("UseNonce(%q, %q, expires %s, now %s) = %v, want %v", credential, nonce, expires.Format(time.TimeOnly), now.Format(time.TimeOnly), got, want)
	}
}

var nonceTests = []struct {
	name string
	run  func(t *testing.T, s socius.NonceStore)
}{
	{"ReplayWithinWindow", func(t *testing.T, s socius.NonceStore) {
		useNonce(t, s, "apiKey 3_site", "n1", sec(120), sec(0), true)
		useNonce(t, s, "apiKey 3_site", "n1", sec(120), sec(0), false)
		useNonce(t, s, "apiKey 3_site", "n1", sec(120), sec(119), false)
		// Still remembered at the very instant it expires.
		useNonce(t, s, "apiKey 3_site", "n1", sec(120), sec(120), false)
	}},

	{"ReplayWithAnotherExpiry", func(t *testing.T, s socius.NonceStore) {
		// A replay with another timestamp is still a replay, whatever its expiry.
		useNonce(t, s, "apiKey 3_site", "n1", sec(120), sec(0), true)
		useNonce(t, s, "apiKey 3_site", "n1", sec(180), sec(60), false)
		useNonce(t, s, "apiKey 3_site", "n1", sec(30), sec(10), false)
	}},

	{"PairsAreApart", func(t *testing.T, s socius.NonceStore) {
		useNonce(t, s, "apiKey 3_a", "n1", sec(120), sec(0), true)
		// The same nonce of another credential, another nonce of the same credential.
		useNonce(t, s, "apiKey 3_b", "n1", sec(120), sec(0), true)
		useNonce(t, s, "userKey Ak", "n1", sec(120), sec(0), true)
		useNonce(t, s, "apiKey 3_a", "n2", sec(120), sec(0), true)
		// Nonces match exactly.
		useNonce(t, s, "apiKey 3_a", "N1", sec(120), sec(0), true)
		useNonce(t, s, "apiKey 3_a", "n1 ", sec(120), sec(0), true)
		// Where the credential ends and the nonce begins matters.
		useNonce(t, s, "apiKey 3_a b", "c", sec(120), sec(0), true)
		useNonce(t, s, "apiKey 3_a", "b c", sec(120), sec(0), true)
		useNonce(t, s, "apiKey 3_a", "n1", sec(120), sec(1), false)
	}},

	{"ExpiredMayBeUsedAgain", func(t *testing.T, s socius.NonceStore) {
		useNonce(t, s, "apiKey 3_site", "n1", sec(120), sec(0), true)
		useNonce(t, s, "apiKey 3_site", "n1", sec(300), sec(121), true)
		// Used again, it is remembered until its new expiry.
		useNonce(t, s, "apiKey 3_site", "n1", sec(300), sec(122), false)
		useNonce(t, s, "apiKey 3_site", "n1", sec(300), sec(300), false)
		useNonce(t, s, "apiKey 3_site", "n1", sec(500), sec(301), true)
	}},

	{"ManyAcrossTime", func(t *testing.T, s socius.NonceStore) {
		// Enough nonces for a store's housekeeping to run: it forgets the expired ones
		// only. Nonce i expires at 60 + i%10 seconds.
		const n = 600
		expiry := func(i int) time.Time { return sec(60 + i%10) }
		for i := range n {
			useNonce(t, s, "apiKey 3_site", fmt.Sprint(i), expiry(i), sec(0), true)
		}
		for i := range n {
			// At 65 s, those that expired at 60..64 s may be used again; the others
			// (65..69 s) are still remembered.
			useNonce(t, s, "apiKey 3_site", fmt.Sprint(i), sec(200), sec(65), i%10 < 5)
		}
		// Now every one is remembered: the reused ones until 200 s.
		for i := range n {
			useNonce(t, s, "apiKey 3_site", fmt.Sprint(i), sec(200), sec(65), false)
		}
	}},

	{"ConcurrentUseIsExactlyOnce", func(t *testing.T, s socius.NonceStore) {
		// Goroutines race on the same pairs: each pair is accepted exactly once.
		const goroutines, nonces = 8, 100
		var mu sync.Mutex
		wins := make(map[string]int)
		var wg sync.WaitGroup
		for g := range goroutines {
			wg.Go(func() {
				for i := range nonces {
					// Each goroutine goes through the nonces in another order.
					n := fmt.Sprint((i + g*nonces/goroutines) % nonces)
					ok, err := s.UseNonce(t.Context(), "apiKey 3_site", n, sec(120), sec(0))
					if err != nil {
						t.Errorf("UseNonce: %v", err)
						return
					}
					if ok {
						mu.Lock()
						wins[n]++
						mu.Unlock()
					}
				}
			})
		}
		wg.Wait()
		for n, w := range wins {
			if w != 1 {
				t.Errorf("nonce %s accepted %d times", n, w)
			}
		}
		if len(wins) != nonces {
			t.Errorf("%d nonces accepted, want %d", len(wins), nonces)
		}
	}},
}
