//go:build !unix

package main

import "testing"

// makeFifo skips the test where the system has no named pipes in its file system.
func makeFifo(t *testing.T, path string, perm uint32) {
	t.Skipf("no named pipe at %s: this system has none in its file system", path)
}
