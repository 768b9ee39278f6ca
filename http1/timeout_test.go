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
	fastAddr, _ := start(t, http.HandlerFunc(echo), true, cfg)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: http.HandlerFunc(echo), ReadHeaderTimeout: rht}
	go hs.Serve(ln)
	defer hs.Close()
	netAddr := ln.Addr().String()

	t.Run("first-byte", func(t *testing.T) {
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
}
