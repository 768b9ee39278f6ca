package http1

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// TestHeadTimeoutNotExtended: ReadHeaderTimeout bounds the first head from the accept,
// as in net/http, however its bytes come (TestHandoffKeepsHeadDeadline: a head handed
// to net/http keeps what is left of it).
func TestHeadTimeoutNotExtended(t *testing.T) {
	const rht = 300 * time.Millisecond
	cfg := func(s *Server) { s.ReadHeaderTimeout = rht }
	fastLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fastClock := newHeadClock(fastLn)
	fastAddr, _ := startOn(t, fastClock, http.HandlerFunc(echo), true, cfg)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	netClock := newHeadClock(ln)
	hs := &http.Server{Handler: http.HandlerFunc(echo), ReadHeaderTimeout: rht}
	go hs.Serve(netClock)
	defer hs.Close()
	netAddr := ln.Addr().String()

	t.Run("first-byte", func(t *testing.T) {
		// Silent until 50 ms before the head's deadline, then the head in three parts
		// 120 ms apart: done 190 ms after it (the times are from the deadline the
		// server set, so a late accept does not move them).
		parts := []string{"G", "ET /a HTTP/1.1\r\n", "Host: h\r\n\r\n"}
		run := func(addr string, clock *headClock) (bool, time.Duration) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			deadline := clock.deadline(t)
			for i, p := range parts {
				time.Sleep(time.Until(deadline.Add(time.Duration(120*i-50) * time.Millisecond)))
				io.WriteString(c, p)
			}
			done := time.Since(deadline)
			c.SetReadDeadline(time.Now().Add(2 * time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			return err == nil && resp.StatusCode == 200, done
		}
		na, nt := run(netAddr, netClock)
		fa, ft := run(fastAddr, fastClock)
		t.Logf("net/http answered %v (head done %v past its deadline), fast path answered %v (%v)", na, nt.Round(time.Millisecond), fa, ft.Round(time.Millisecond))
		if fa && !na {
			t.Errorf("the fast path took a head that ended %v after its deadline (ReadHeaderTimeout %v from the connection's start)", ft.Round(10*time.Millisecond), rht)
		}
	})
}
