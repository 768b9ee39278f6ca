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

// TestReuseIsolation: the connection's caches (the last URL, host and header values)
// never let a request see another's: a handler that rewrites its URL, a Host that
// changes on a kept connection.
func TestReuseIsolation(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Host+" "+r.URL.String())
		r.URL.Path, r.URL.RawQuery = "/mutated", "m=1" // a handler (or middleware) rewriting its URL
	})
	addr, _ := start(t, h, true, nil)
	raw := "GET /a?q=1 HTTP/1.1\r\nHost: one\r\n\r\n" +
		"GET /a?q=1 HTTP/1.1\r\nHost: two\r\n\r\n" +
		"GET /a?q=1 HTTP/1.1\r\nHost: two\r\n\r\n"
	got := send(t, addr, raw, 3)
	want := []string{"one /a?q=1", "two /a?q=1", "two /a?q=1"}
	if len(got) != 3 {
		t.Fatalf("%d answers", len(got))
	}
	for i, a := range got {
		if body := a[strings.Index(a, "\r\n\r\n")+4:]; body != want[i] {
			t.Errorf("answer %d: %q, want %q", i, body, want[i])
		}
	}
}

// TestNoContinueAfterAnswerBegun: as net/http, no 100 Continue once the handler has
// begun its answer (a body written before the first read).
func TestNoContinueAfterAnswerBegun(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "early")
		io.ReadAll(r.Body)
	})
	for _, fast := range []bool{false, true} {
		addr, _ := start(t, h, fast, nil)
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(c, "POST /a HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
		time.Sleep(300 * time.Millisecond) // as curl: the body after a wait, 100 or not
		io.WriteString(c, "hello")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		c.Close()
		if err != nil {
			t.Fatalf("fast %v: %v", fast, err)
		}
		if resp.StatusCode != 200 {
			t.Errorf("fast %v: first answer %d, want 200 (no 100 Continue after the answer began)", fast, resp.StatusCode)
		}
	}
}

// TestHeaderMapOutlivesRequest: the answer's header map is the request's own: one kept
// by a handler past its return (a goroutine, a deferred logger) does not reach the
// next request's answer, as with net/http.
func TestHeaderMapOutlivesRequest(t *testing.T) {
	var kept http.Header
	mux := http.NewServeMux()
	mux.HandleFunc("/keep", func(w http.ResponseWriter, r *http.Request) {
		kept = w.Header()
		io.WriteString(w, "kept")
	})
	mux.HandleFunc("/next", func(w http.ResponseWriter, r *http.Request) {
		kept.Set("X-Leaked-From-Previous", "1") // what a late goroutine of /keep would do
		io.WriteString(w, "next")
	})
	for _, fast := range []bool{false, true} {
		addr, _ := start(t, mux, fast, nil)
		got := send(t, addr, "GET /keep HTTP/1.1\r\nHost: h\r\n\r\nGET /next HTTP/1.1\r\nHost: h\r\n\r\n", 2)
		if len(got) != 2 {
			t.Fatalf("fast %v: %d answers", fast, len(got))
		}
		if strings.Contains(got[1], "X-Leaked-From-Previous") {
			t.Errorf("fast %v: the second answer carries a header set through the first request's writer:\n%s", fast, got[1])
		}
	}
}
