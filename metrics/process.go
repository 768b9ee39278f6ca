package metrics

import (
	"os"
	"runtime"
	rtmetrics "runtime/metrics"
	"strconv"
	"strings"
	"time"
)

// RegisterProcess adds the usual process and Go runtime gauges, read at scrape time:
// goroutines, heap in use, resident memory and open file descriptors (the last two on
// Linux only), and the start time.
func RegisterProcess(r *Registry) {
	start := float64(time.Now().UnixNano()) / 1e9
	r.NewGaugeFunc("process_start_time_seconds", "Start time of the process since the Unix epoch, in seconds.", func() float64 { return start })
	r.NewGaugeFunc("go_goroutines", "Number of goroutines that currently exist.", func() float64 { return float64(runtime.NumGoroutine()) })
	r.NewGaugeFunc("go_memstats_heap_alloc_bytes", "Bytes of allocated heap objects.", func() float64 {
		// runtime/metrics reads this without stopping the world, unlike ReadMemStats.
		s := []rtmetrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		rtmetrics.Read(s)
		if s[0].Value.Kind() != rtmetrics.KindUint64 {
			return 0
		}
		return float64(s[0].Value.Uint64())
	})
	if _, err := residentBytes(); err == nil {
		r.NewGaugeFunc("process_resident_memory_bytes", "Resident memory size in bytes.", func() float64 {
			n, _ := residentBytes()
			return float64(n)
		})
	}
	if _, err := os.ReadDir("/proc/self/fd"); err == nil {
		r.NewGaugeFunc("process_open_fds", "Number of open file descriptors.", func() float64 {
			fds, _ := os.ReadDir("/proc/self/fd")
			return float64(len(fds))
		})
	}
}

// residentBytes reads the resident set size from /proc/self/statm (Linux).
func residentBytes() (int64, error) {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0, os.ErrInvalid
	}
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return 0, err
	}
	return pages * int64(os.Getpagesize()), nil
}
