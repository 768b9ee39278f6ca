package http1

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// TestShutdownWithPartialHead: a kept connection with part of its next head is idle
// for Shutdown, which closes it at once, as net/http does (the fast path had marked it
// active at the first byte, and Shutdown waited for the head's deadline). Shutdown has
// 10 s, half the head's time: long enough for a loaded machine, short of the deadline.
func TestShutdownWithPartialHead(t *testing.T) {
	for _, fast := range []bool{false, true} {
		hs := &http.Server{Handler: http.HandlerFunc(echo), ReadHeaderTimeout: 20 * time.Second}
		var srv interface{ Shutdown(context.Context) error } = hs
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		if fast {
			s := &Server{Handler: hs.Handler, Fallback: &http.Server{Handler: hs.Handler}, ReadHeaderTimeout: 20 * time.Second}
			go s.Serve(ln)
			srv = s
		} else {
			go hs.Serve(ln)
		}
		c := dial(t, ln.Addr().String())
		io.WriteString(c, "GET /a HTTP/1.1\r\nHost: h\r\n\r\n")
		if _, err := http.ReadResponse(bufio.NewReader(c), nil); err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, "GET /b HTTP/1.1\r\nHo")
		time.Sleep(100 * time.Millisecond)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		start := time.Now()
		err := srv.Shutdown(ctx)
		cancel()
		c.Close()
		if err != nil {
			t.Errorf("fast %v: Shutdown: %v after %v", fast, err, time.Since(start).Round(time.Millisecond))
		}
	}
}

// TestCRLFAfterPOSTThenIdle: an old client's CRLF after a POST's body, then the
// connection left for reuse: it waits under IdleTimeout, as with net/http (four bytes
// before the head's deadline starts), not under ReadHeaderTimeout.
func TestCRLFAfterPOSTThenIdle(t *testing.T) {
	for _, fast := range []bool{false, true} {
		addr, _ := start(t, http.HandlerFunc(echo), fast, func(s *Server) {
			s.ReadHeaderTimeout, s.IdleTimeout = 300*time.Millisecond, 2*time.Second
			s.Fallback.ReadHeaderTimeout, s.Fallback.IdleTimeout = 300*time.Millisecond, 2*time.Second
		})
		if !fast { // start() builds net/http alone without our timeouts: build it here
			ln, _ := net.Listen("tcp", "127.0.0.1:0")
			hs := &http.Server{Handler: http.HandlerFunc(echo), ReadHeaderTimeout: 300 * time.Millisecond, IdleTimeout: 2 * time.Second}
			go hs.Serve(ln)
			defer hs.Close()
			addr = ln.Addr().String()
		}
		// Timed from before the request: the server's wait for the next one starts after
		// its answer, however late this side reads it.
		begin := time.Now()
		c := dialWrite(t, addr, "POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nxyz\r\n", 150*time.Millisecond)
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		br.ReadByte() // until the server closes
		took := time.Since(begin)
		c.Close()
		if took < time.Second {
			t.Errorf("fast %v: the kept connection was closed after %v (IdleTimeout 2s, ReadHeaderTimeout 300ms)", fast, took.Round(time.Millisecond))
		}
	}
}
