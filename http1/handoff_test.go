package http1

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestHandoffKeepsHeadDeadline: a head handed to net/http keeps what was left of its
// deadline. Handed over 150 ms before that deadline (past the 4 KiB buffer), finished
// 100 ms after it: past the 300 ms ReadHeaderTimeout from the connection's start,
// within the 300 ms net/http would have given from the handover. The times are the
// server's: from the deadline it set.
func TestHandoffKeepsHeadDeadline(t *testing.T) {
	const rht = 300 * time.Millisecond
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	clock := newHeadClock(ln)
	addr, _ := startOn(t, clock, http.HandlerFunc(echo), true, func(s *Server) {
		s.ReadHeaderTimeout = rht
		s.Fallback.ReadHeaderTimeout = rht
	})
	head := "GET /a HTTP/1.1\r\nHost: h\r\nX-Pad: " + strings.Repeat("p", 5<<10) + "\r\n\r\n"
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	deadline := clock.deadline(t)
	time.Sleep(time.Until(deadline.Add(-150 * time.Millisecond)))
	io.WriteString(c, head[:len(head)-10]) // more than 4 KiB: handed over now
	time.Sleep(time.Until(deadline.Add(100 * time.Millisecond)))
	io.WriteString(c, head[len(head)-10:])
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err == nil && resp.StatusCode == 200 {
		t.Error("a head that ended past its deadline, 300 ms after the connection's start, was answered")
	}
}
