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

// TestHeadTimeoutNotExtended: ReadHeaderTimeout bounds the first head from the accept,
// as in net/http, however its bytes come; and a head handed to net/http keeps what was
// left of it (net/http's own deadline would have started afresh).
func TestHeadTimeoutNotExtended(t *testing.T) {
	const rht = 300 * time.Millisecond
	cfg := func(s *Server) { s.ReadHeaderTimeout = rht }
	fastAddr, _ := start(t, http.HandlerFunc(echo), true, cfg)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: http.HandlerFunc(echo), ReadHeaderTimeout: rht}
	go hs.Serve(ln)
	defer hs.Close()
	netAddr := ln.Addr().String()

	slow := func(addr string, parts []string, pause time.Duration) (answered bool, took time.Duration) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		begin := time.Now()
		for _, p := range parts {
			time.Sleep(pause)
			if _, err := io.WriteString(c, p); err != nil {
				return false, time.Since(begin)
			}
		}
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		return err == nil && resp.StatusCode == 200, time.Since(begin) // net/http answers a timed-out head 408
	}
	t.Run("first-byte", func(t *testing.T) {
		// 250 ms silent, then the head in three parts 150 ms apart: done at ~550 ms.
		// 250 ms silent, then the head in three parts 120 ms apart: done at ~490 ms.
		parts := []string{"G", "ET /a HTTP/1.1\r\n", "Host: h\r\n\r\n"}
		run := func(addr string) (bool, time.Duration) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			begin := time.Now()
			time.Sleep(250 * time.Millisecond)
			for i, p := range parts {
				if i > 0 {
					time.Sleep(120 * time.Millisecond)
				}
				io.WriteString(c, p)
			}
			c.SetReadDeadline(time.Now().Add(2 * time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			return err == nil && resp.StatusCode == 200, time.Since(begin)
		}
		na, nt := run(netAddr)
		fa, ft := run(fastAddr)
		t.Logf("net/http answered %v (%v), fast path answered %v (%v)", na, nt.Round(time.Millisecond), fa, ft.Round(time.Millisecond))
		if fa && !na {
			t.Errorf("the fast path took a head that ended %v after the accept; ReadHeaderTimeout is %v", ft.Round(10*time.Millisecond), rht)
		}
	})
	t.Run("handoff", func(t *testing.T) {
		// A 6 KiB head in parts sent over ~500 ms (the 4 KiB buffer full at ~250 ms).
		head := "GET /a HTTP/1.1\r\nHost: h\r\nX-Pad: " + strings.Repeat("p", 6<<10) + "\r\n\r\n"
		var parts []string
		for i := 0; i < len(head); i += 1 << 10 {
			parts = append(parts, head[i:min(i+1<<10, len(head))])
		}
		na, nt := slow(netAddr, parts, 75*time.Millisecond)
		fa, ft := slow(fastAddr, parts, 75*time.Millisecond)
		t.Logf("net/http answered %v (%v), fast path answered %v (%v)", na, nt.Round(time.Millisecond), fa, ft.Round(time.Millisecond))
		if fa && !na {
			t.Errorf("fast path + handoff took a head sent over %v; ReadHeaderTimeout is %v", ft.Round(10*time.Millisecond), rht)
		}
	})
}
