//go:build !unix

package main

// fdLimit: not known on this system.
func fdLimit() (int64, bool) { return 0, false }
