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
// deadline. Handed over at about 150 ms (past the 4 KiB buffer), finished at about
// 400 ms: past the 300 ms ReadHeaderTimeout from the accept, within the 300 ms net/http
// would have given from the handover.
func TestHandoffKeepsHeadDeadline(t *testing.T) {
	const rht = 300 * time.Millisecond
	addr, _ := start(t, http.HandlerFunc(echo), true, func(s *Server) {
		s.ReadHeaderTimeout = rht
		s.Fallback.ReadHeaderTimeout = rht
	})
	head := "GET /a HTTP/1.1\r\nHost: h\r\nX-Pad: " + strings.Repeat("p", 5<<10) + "\r\n\r\n"
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	time.Sleep(150 * time.Millisecond)
	io.WriteString(c, head[:len(head)-10]) // more than 4 KiB: handed over now
	time.Sleep(250 * time.Millisecond)
	io.WriteString(c, head[len(head)-10:])
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err == nil && resp.StatusCode == 200 {
		t.Error("a head that ended ~400 ms after the accept was answered; ReadHeaderTimeout is 300 ms")
	}
}
