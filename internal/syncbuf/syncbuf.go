// Package syncbuf is a bytes.Buffer that one goroutine may write while another reads
// it: what a test gives a server as its log, or a command as its output, and reads
// while they run.
package syncbuf

import (
	"bytes"
	"sync"
)

// A Buffer is a bytes.Buffer behind a mutex. The zero Buffer is empty and ready.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p to the buffer.
func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what was written so far.
func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
