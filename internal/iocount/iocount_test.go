package iocount

import (
	"bytes"
	"errors"
	"testing"
)

// short takes at most 3 bytes a write, then fails.
type short struct{ got []byte }

func (s *short) Write(p []byte) (int, error) {
	n := min(len(p), 3)
	s.got = append(s.got, p[:n]...)
	if n < len(p) {
		return n, errors.New("short write")
	}
	return n, nil
}

func TestWriterCounts(t *testing.T) {
	var b bytes.Buffer
	w := &Writer{W: &b}
	w.Write([]byte("hello, "))
	w.Write([]byte("world"))
	if w.N != 12 || b.String() != "hello, world" {
		t.Errorf("counted %d for %q", w.N, b.String())
	}
	// What the underlying writer took, not what it was given.
	s := &short{}
	w = &Writer{W: s}
	if n, err := w.Write([]byte("abcdef")); n != 3 || err == nil || w.N != 3 {
		t.Errorf("a short write: %d, %v, counted %d", n, err, w.N)
	}
}
