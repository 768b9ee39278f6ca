//go:build unix

package main

import "syscall"

// fdLimit returns how many files the process may have open (its RLIMIT_NOFILE, which
// Go raises to the hard limit at start), when the system says.
func fdLimit() (int64, bool) {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil || r.Cur > 1<<40 {
		return 0, false
	}
	return int64(r.Cur), true
}
