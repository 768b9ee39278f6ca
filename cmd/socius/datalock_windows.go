//go:build windows

package main

import (
	"errors"
	"os"

	"golang.org/x/sys/windows"
)

// lockFile takes an exclusive lock on a byte of f far past its content (Windows locks
// are mandatory: one on the content would keep a second serve from reading the process
// id), without waiting.
func lockFile(f *os.File) error {
	ol := windows.Overlapped{OffsetHigh: 1 << 30} // byte 2^62
	err := windows.LockFileEx(windows.Handle(f.Fd()), windows.LOCKFILE_EXCLUSIVE_LOCK|windows.LOCKFILE_FAIL_IMMEDIATELY, 0, 1, 0, &ol)
	if errors.Is(err, windows.ERROR_LOCK_VIOLATION) {
		return errLocked
	}
	return err
}
