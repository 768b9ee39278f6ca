package pgtest

import (
	"syscall"

	"github.com/socius/socius/internal/proctest"
)

// childAttr is what a child process (the server, PgBouncer, initdb) starts with: run
// as o (nil: as the current user), and sent deathSig (0: none) when the test binary
// dies, so that a crashed or timed-out test leaves no server behind.
func childAttr(o *owner, deathSig syscall.Signal) *syscall.SysProcAttr {
	attr := &syscall.SysProcAttr{Pdeathsig: deathSig}
	if o != nil {
		attr.Credential = &syscall.Credential{Uid: uint32(o.uid), Gid: uint32(o.gid)}
	}
	return attr
}

// killChildren stops the process pid (SIGSTOP, so that it starts no other meanwhile)
// and kills every process whose parent it is (SIGKILL).
func killChildren(pid int) {
	syscall.Kill(pid, syscall.SIGSTOP)
	for _, child := range proctest.Children(pid) {
		syscall.Kill(child, syscall.SIGKILL)
	}
}
