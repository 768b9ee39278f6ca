package main

import (
	"os/exec"
	"syscall"
)

// dieWithParent has the kernel kill cmd's process when the bench dies, however it
// dies (a SIGKILL gives the bench no chance to stop its servers).
//
// The kernel sends it when the thread that started the child ends, not the process
// (golang/go#27505). Go ends a thread only when a goroutine returns while locked to it
// (runtime.LockOSThread), so no code in the bench's process may do that: the
// children started from that thread would die with it (an instrumented build that
// did, in the checkpointer of the store the bench preloads, lost its servers).
func dieWithParent(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
}

// processExists reports whether a process with the id runs (signal 0 checks only).
func processExists(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || err == syscall.EPERM // EPERM: it runs, as another user
}
