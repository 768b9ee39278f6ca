package main

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestChunkedRequestEndsItsConnection: a request with both Transfer-Encoding and
// Content-Length on a connection net/http serves (handed over by the fast path after an
// HTTP/1.0 request, or every connection with --fast-path=false) ends its connection
// after its answer (RFC 9112 6.1), so that what a proxy took for its body is never read
// as a request of its own; net/http alone kept the connection and answered the
// smuggled request. A chunked request alone ends its connection too (net/http hides
// whether a Content-Length came with it), and so does every HTTP/1.0 request (net/http
// hides whether a Transfer-Encoding came with it, which RFC 9112 6.1 says makes the
// framing faulty: the connection must close).
func TestChunkedRequestEndsItsConnection(t *testing.T) {
	const smuggled = "GET /socialize.getUserInfo?smuggled=1 HTTP/1.1\r\nHost: socius\r\n\r\n"
	conflict := "POST /socialize.getUserInfo HTTP/1.1\r\nHost: socius\r\nContent-Type: application/x-www-form-urlencoded\r\n" +
		"Content-Length: 72\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled
	// An HTTP/1.0 request with a Transfer-Encoding: net/http ignores the header (and
	// deletes it), frames the body by its Content-Length, or as empty without one, and
	// keeps a keep-alive connection; a proxy in front that read it as chunked sent
	// what follows as part of its body.
	http10 := "POST /socialize.getUserInfo HTTP/1.0\r\nHost: socius\r\nConnection: keep-alive\r\nContent-Type: application/x-www-form-urlencoded\r\n" +
		"Transfer-Encoding: chunked\r\n"
	// OPTIONS is not of the fast path's shape: the connection is handed to net/http.
	const handOver = "OPTIONS /socialize.getUserInfo HTTP/1.1\r\nHost: socius\r\n\r\n"
	cases := map[string]struct {
		fast     string
		requests string
		answers  int // before the connection ends
	}{
		"handed over": {"true", handOver + conflict, 2},
		"net/http":    {"false", conflict, 1},
		"chunked alone, handed over": {"true",
			"POST /socialize.getUserInfo HTTP/1.1\r\nHost: socius\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nUID=u\r\n0\r\n\r\n" + smuggled, 1},
		"HTTP/1.0 with both, handed over":  {"true", handOver + http10 + "Content-Length: 0\r\n\r\n" + smuggled, 2},
		"HTTP/1.0 with both, net/http":     {"false", http10 + "Content-Length: 0\r\n\r\n" + smuggled, 1},
		"HTTP/1.0 chunked alone":           {"true", http10 + "\r\n" + smuggled, 1},
		"HTTP/1.0 chunked alone, net/http": {"false", http10 + "\r\n" + smuggled, 1},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			ts := startServer(t, "--fast-path="+c.fast)
			conn, err := net.Dial("tcp", hostPort(ts.HTTPURL))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := io.WriteString(conn, c.requests); err != nil {
				t.Fatal(err)
			}
			conn.SetReadDeadline(time.Now().Add(20 * time.Second))
			br := bufio.NewReader(conn)
			for i := 1; ; i++ {
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					if i <= c.answers {
						t.Fatalf("answer %d: %v", i, err)
					}
					if !strings.Contains(err.Error(), "EOF") {
						t.Fatalf("after %d answers the connection did not end: %v", c.answers, err)
					}
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if i > c.answers {
					t.Fatalf("answer %d, to what a proxy took for a body: %s", i, b)
				}
				if i == c.answers && !resp.Close {
					t.Errorf("answer %d does not close its connection: %v", i, resp.Header)
				}
			}
		})
	}
}
