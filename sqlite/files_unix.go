//go:build unix

package sqlite

import (
	"errors"
	"syscall"

	"golang.org/x/sys/unix"
)

// writeAccess is the system's answer to whether this process may write the file at
// path: 0, or the error number it would refuse a write with (EROFS, EPERM for an
// immutable file, EACCES).
func writeAccess(path string) syscall.Errno {
	var errno syscall.Errno
	errors.As(unix.Access(path, unix.W_OK), &errno)
	return errno
}
