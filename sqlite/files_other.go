//go:build !unix

package sqlite

import "syscall"

// writeAccess is not asked on this system: 0, so that an I/O error is reported as one.
func writeAccess(string) syscall.Errno { return 0 }

// unwritableAtOpen is not asked on this system: SQLite's own error is reported.
func unwritableAtOpen(string) error { return nil }

// unwritableDatabase is not asked on this system: the error opening the file as it is.
func unwritableDatabase(_ string, err error) error { return err }

// readOnlyCopy is not asked on this system: SQLite's own error is reported.
func readOnlyCopy(string) (immutable bool, err error) { return false, nil }

// serverStopped is not asked on this system: SQLite's own error is reported.
func serverStopped(string) error { return nil }
