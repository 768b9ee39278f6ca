//go:build unix

package sqlite

import "syscall"

// cpuTime is the CPU time (user and system) this process has used, in nanoseconds,
// and whether it could be read.
func cpuTime() (int64, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	return ru.Utime.Nano() + ru.Stime.Nano(), true
}
