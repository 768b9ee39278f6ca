//go:build !unix

package server_test

// cpuTime reads no CPU time where there is no getrusage: the benchmarks then report
// none.
func cpuTime() (int64, bool) { return 0, false }
