//go:build !linux

package main

import "os/exec"

// dieWithParent: only Linux lets a child die with its parent (Pdeathsig).
func dieWithParent(*exec.Cmd) {}

// processExists reports whether a process with the id may run: only its sign is
// checked where processes cannot be probed without a handle.
func processExists(pid int) bool { return pid > 0 }
