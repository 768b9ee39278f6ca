package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/socius/socius/internal/proctest"
)

// TestBenchChildrenDieWithIt: the servers a bench starts (the baseline, socius serve)
// die with it when it is killed outright, which gives it no chance to stop them; they
// were left running, the store's temp folder in use.
func TestBenchChildrenDieWithIt(t *testing.T) {
	bench := exec.Command(binary(t), "bench", "--users", "20", "--connections", "1", "--duration", "60s", "--warmup", "0s",
		"--scenarios", "getUserInfo", "--store-dir", t.TempDir())
	if err := bench.Start(); err != nil {
		t.Fatal(err)
	}
	var kids []int
	for deadline := time.Now().Add(30 * time.Second); len(kids) == 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			bench.Process.Kill()
			t.Fatal("the bench started no server within 30 s")
		}
		kids = proctest.Children(bench.Process.Pid)
	}
	bench.Process.Signal(syscall.SIGKILL)
	bench.Wait()
	for _, kid := range kids {
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			if err := syscall.Kill(kid, 0); err != nil {
				break // gone
			}
			if stat, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(kid), "stat")); strings.Contains(string(stat), ") Z ") {
				break // a zombie: dead, waiting for init to reap it
			}
			if time.Now().After(deadline) {
				syscall.Kill(kid, syscall.SIGKILL)
				t.Fatalf("process %d, started by the bench, outlived it", kid)
			}
		}
	}
}
