package syncbuf

import (
	"strings"
	"sync"
	"testing"
)

// TestBuffer: writes from several goroutines while another reads all arrive, whole
// (go test -race says whether the reads and writes are safe).
func TestBuffer(t *testing.T) {
	var b Buffer
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 100 {
				b.Write([]byte("line\n"))
			}
		})
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 100 {
			if s := b.String(); strings.Count(s, "line\n")*len("line\n") != len(s) {
				t.Errorf("a read in the middle of a write: %q", s)
				return
			}
		}
	}()
	wg.Wait()
	<-done
	if got := strings.Count(b.String(), "line\n"); got != 400 {
		t.Errorf("%d lines, want 400", got)
	}
}
