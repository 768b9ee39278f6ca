//go:build unix

package nonce

import (
	"runtime"
	"strconv"
	"testing"
	"time"
)

// TestTablesOffHeap fills a cache with a million nonces: their tables (about 24 MB) are
// mapped outside the Go heap, which grows by little, and the nonces are all remembered.
func TestTablesOffHeap(t *testing.T) {
	const n = 1_000_000
	now := time.Unix(1_800_000_000, 0)
	c := New(0)
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := range n {
		if ok, err := c.UseNonce(t.Context(), "3_site", strconv.Itoa(i), now.Add(2*time.Minute), now); !ok || err != nil {
			t.Fatalf("nonce %d: %v, %v", i, ok, err)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if grown := int64(after.HeapAlloc) - int64(before.HeapAlloc); grown > 4<<20 {
		t.Errorf("the heap grew by %d bytes for %d nonces; want their tables off the heap", grown, n)
	}
	for _, i := range []int{0, n / 2, n - 1} {
		if ok, err := c.UseNonce(t.Context(), "3_site", strconv.Itoa(i), now.Add(2*time.Minute), now); ok || err != nil {
			t.Errorf("replayed nonce %d: %v, %v; want refused", i, ok, err)
		}
	}
	if got := c.Len(now); got != n {
		t.Errorf("Len = %d, want %d", got, n)
	}
	runtime.KeepAlive(c)
}
