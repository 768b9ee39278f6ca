package pgtest

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
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
// and kills every process whose parent it is (SIGKILL), found in /proc.
func killChildren(pid int) {
	syscall.Kill(pid, syscall.SIGSTOP)
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so read after its ')'.
		s := string(stat)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(fields) > 1 && fields[1] == strconv.Itoa(pid) {
			syscall.Kill(child, syscall.SIGKILL)
		}
	}
}
