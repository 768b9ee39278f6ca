//go:build !linux

package pgtest

import "syscall"

// childAttr is what a child process starts with. pgtest finds the server's binaries
// where Debian puts them, and runs as another user (o) only when it runs as root: on
// Linux (child_linux.go). Elsewhere the child runs as the current user, o is nil, and
// nothing stops the child if the test binary dies: there is no Pdeathsig.
func childAttr(o *owner, deathSig syscall.Signal) *syscall.SysProcAttr {
	return nil
}

// killChildren would kill the children of pid; without /proc to find them it does
// nothing, and Kill kills the postmaster alone.
func killChildren(pid int) {}
