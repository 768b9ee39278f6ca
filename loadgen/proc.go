package loadgen

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"runtime"
	"strconv"
)

// PeakRSS returns the peak resident memory (VmHWM) of process pid, in bytes, as Linux
// reports it in /proc/<pid>/status.
func PeakRSS(pid int) (int64, error) {
	return procStatus(pid, "VmHWM:")
}

// ResetPeakRSS sets the peak resident memory of process pid back to its current
// resident memory (writing 5 to /proc/<pid>/clear_refs), so that the next PeakRSS is
// the peak since now. It fails where the kernel or the permissions do not allow it;
// the peak then covers the process's whole life.
func ResetPeakRSS(pid int) error {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
}

func procStatus(pid int, field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Bytes()
		if !bytes.HasPrefix(line, []byte(field)) {
			continue
		}
		f := bytes.Fields(line[len(field):])
		if len(f) != 2 || string(f[1]) != "kB" {
			break
		}
		kb, err := strconv.ParseInt(string(f[0]), 10, 64)
		if err != nil {
			break
		}
		return kb << 10, nil
	}
	return 0, fmt.Errorf("loadgen: /proc/%d/status has no readable %s line", pid, field)
}

// userHZ is the unit of the CPU times in /proc (USER_HZ, 100 on every Linux
// architecture Go supports).
const userHZ = 100

// processCPU returns the CPU time (user + system, every thread) process pid has used,
// in ticks of 1/userHZ s; pid 0 is this process.
func processCPU(pid int) (int64, bool) {
	path := "/proc/self/stat"
	if pid > 0 {
		path = fmt.Sprintf("/proc/%d/stat", pid)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	// pid (comm) state ppid ...: comm may hold spaces and parentheses, so fields
	// are counted from the last ')'. utime and stime are fields 14 and 15.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 13 {
		return 0, false
	}
	u, err1 := strconv.ParseInt(string(f[11]), 10, 64)
	s, err2 := strconv.ParseInt(string(f[12]), 10, 64)
	return u + s, err1 == nil && err2 == nil
}

// machineCPU is the machine-wide CPU time from /proc/stat, in ticks.
type machineCPU struct {
	busy  int64 // user + nice + system: time spent running processes
	steal int64 // time the hypervisor gave to someone else
	total int64
	cpus  int // the machine's CPUs ("cpuN" lines), which total sums over: not
	// runtime.NumCPU, which counts only those this process may run on (taskset)
}

func readMachineCPU() (machineCPU, bool) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return machineCPU{}, false
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := bytes.Fields(line)
	if len(f) < 9 || string(f[0]) != "cpu" {
		return machineCPU{}, false
	}
	var v [8]int64 // user nice system idle iowait irq softirq steal
	for i := range v {
		n, err := strconv.ParseInt(string(f[i+1]), 10, 64)
		if err != nil {
			return machineCPU{}, false
		}
		v[i] = n
	}
	m := machineCPU{busy: v[0] + v[1] + v[2], steal: v[7]}
	for _, n := range v {
		m.total += n
	}
	m.cpus = countCPULines(b)
	return m, m.cpus > 0
}

// cpuWindow is the wall time, in seconds, between two readings of the machine's CPU
// time: what every CPU spent, divided by the machine's CPUs.
func cpuWindow(a, b machineCPU) float64 {
	if b.cpus == 0 {
		return 0
	}
	return float64(b.total-a.total) / userHZ / float64(b.cpus)
}

// MachineCPUs returns the machine's CPUs: those /proc/stat lists, not only those this
// process may run on (runtime.NumCPU under taskset); runtime.NumCPU where there is no
// /proc/stat.
func MachineCPUs() int {
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		if n := countCPULines(b); n > 0 {
			return n
		}
	}
	return runtime.NumCPU()
}

// countCPULines counts the per-CPU lines ("cpu0", "cpu1", ...) of /proc/stat.
func countCPULines(stat []byte) int {
	n := 0
	for _, line := range bytes.Split(stat, []byte("\n")) {
		if len(line) > 3 && bytes.HasPrefix(line, []byte("cpu")) && '0' <= line[3] && line[3] <= '9' {
			n++
		}
	}
	return n
}

// cpuSample is what the CPU counters read at one instant.
type cpuSample struct {
	server, self int64
	machine      machineCPU
	ok           bool
}

func sampleCPU(serverPID int) cpuSample {
	var s cpuSample
	var ok1, ok2, ok3 bool
	s.self, ok1 = processCPU(0)
	s.machine, ok2 = readMachineCPU()
	ok3 = true
	if serverPID > 0 {
		s.server, ok3 = processCPU(serverPID)
	}
	s.ok = ok1 && ok2 && ok3
	return s
}
