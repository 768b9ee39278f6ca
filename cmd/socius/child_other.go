//go:build !linux

package main

import "os/exec"

// dieWithParent: only Linux lets a child die with its parent (Pdeathsig).
func dieWithParent(*exec.Cmd) {}
