//go:build unix

package main

import (
	"syscall"
	"testing"
)

// makeFifo makes a named pipe at path, with the permissions perm.
func makeFifo(t *testing.T, path string, perm uint32) {
	t.Helper()
	if err := syscall.Mkfifo(path, perm); err != nil {
		t.Fatal(err)
	}
}
