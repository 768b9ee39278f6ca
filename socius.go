// Package socius holds the vocabulary of Socius, a self-hosted server for the Gigya
// (SAP Customer Data Cloud) socialize REST API: sites and their keys, users and their
// profiles, the store contracts every backend implements, and the one error type that
// carries a Gigya errorCode from wherever a failure starts to the wire.
//
// It depends on the standard library only. The wire protocol lives in package gigya,
// HTTP in package server, the stores in packages sqlite and postgres.
package socius

import (
	"sync"
	"time"
)

// A Clock tells the time. Every rule that depends on time (timestamp windows, nonce
// retention, token expiry, signature timestamps) reads it from an injected Clock so
// that tests and the emulator can move it.
type Clock interface {
	Now() time.Time
}

// SystemClock is the real time.
type SystemClock struct{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }

// OffsetClock is the system clock moved by an adjustable offset. Tests and the emulator
// use it to move the server's notion of now without sleeping.
type OffsetClock struct {
	mu     sync.RWMutex
	offset time.Duration
}

// Now returns the system time plus the offset.
func (c *OffsetClock) Now() time.Time {
	c.mu.RLock()
	d := c.offset
	c.mu.RUnlock()
	return time.Now().Add(d)
}

// Set moves the clock so that it reads t now.
func (c *OffsetClock) Set(t time.Time) {
	c.mu.Lock()
	c.offset = time.Until(t)
	c.mu.Unlock()
}

// Advance moves the clock forward by d (backward when d is negative).
func (c *OffsetClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.offset += d
	c.mu.Unlock()
}

// Reset puts the clock back to the system time.
func (c *OffsetClock) Reset() {
	c.mu.Lock()
	c.offset = 0
	c.mu.Unlock()
}

// Offset reports how far the clock is from the system time.
func (c *OffsetClock) Offset() time.Duration {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.offset
}
