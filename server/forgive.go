package server

import (
	"sync"
	"time"
)

// forgivenNonces holds the nonces that emulator fault rules took back: a 403002 or
// 403003 that a rule injects after the call's nonce was recorded answers as Gigya's
// own would, before any nonce is recorded, so the request may come again. (The Java
// SDK re-sends a request byte for byte after a 403002, to correct its clock.) The
// next use of a forgiven nonce is fresh once; entries go with their nonces' expiry.
type forgivenNonces struct {
	mu      sync.Mutex
	entries map[forgivenKey]time.Time // the nonce's expiry
}

type forgivenKey struct{ credential, nonce string }

// maxForgiven bounds the entries held: a fault rule can match any number of calls.
const maxForgiven = 4096

// add forgives the nonce until it expires; when the table is full of live entries,
// the nonce stays used.
func (f *forgivenNonces) add(credential, nonce string, expires, now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.entries == nil {
		f.entries = make(map[forgivenKey]time.Time)
	}
	if len(f.entries) >= maxForgiven {
		for k, exp := range f.entries {
			if !exp.After(now) {
				delete(f.entries, k)
			}
		}
		if len(f.entries) >= maxForgiven {
			return
		}
	}
	f.entries[forgivenKey{credential, nonce}] = expires
}

// take reports whether the nonce was forgiven and its forgiveness has not expired (a
// nonce of the same pair signed later is another request), and forgets that it was.
func (f *forgivenNonces) take(credential, nonce string, now time.Time) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := forgivenKey{credential, nonce}
	expires, ok := f.entries[k]
	if !ok {
		return false
	}
	delete(f.entries, k)
	return expires.After(now)
}
