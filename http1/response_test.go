package http1

import (
	"io"
	"net/http"
	"slices"
	"testing"
)

// TestResponseRules: the fast path's writer follows net/http's rules where a handler
// could tell: the header is sent as it was at WriteHeader (or the first Write); no
// Content-Type is sniffed for an encoded body; a 304 has no Content-Type; a declared
// Content-Length is sent as declared (nothing is written past it, and a short body ends
// the connection).
func TestResponseRules(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/after-write", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusCreated)
		w.Header().Set("X-Late", "1")
		io.WriteString(w, "ok")
		w.Header().Set("X-Later", "1")
	})
	mux.HandleFunc("/gzip-no-sniff", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Encoding", "gzip")
		w.Write([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0})
	})
	mux.HandleFunc("/304", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusNotModified)
	})
	mux.HandleFunc("/short-declared", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "10")
		io.WriteString(w, "abc")
	})
	mux.HandleFunc("/long-declared", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "2")
		io.WriteString(w, "abcdef")
	})
	fastAddr, _ := start(t, mux, true, nil)
	netAddr, _ := start(t, mux, false, nil)
	for _, path := range []string{"/after-write", "/gzip-no-sniff", "/304", "/short-declared", "/long-declared"} {
		raw := "GET " + path + " HTTP/1.1\r\nHost: h\r\n\r\n"
		got, want := send(t, fastAddr, raw, 1), send(t, netAddr, raw, 1)
		if len(got) != 1 || len(want) != 1 {
			// net/http's short-declared answer is cut off: compare the heads only.
			t.Errorf("%s: %d answers from the fast path, %d from net/http\nfast: %q\nnet/http: %q", path, len(got), len(want), got, want)
			continue
		}
		if path == "/short-declared" || path == "/long-declared" {
			if undated(got[0]) != undated(want[0]) {
				t.Errorf("%s:\nfast path: %q\nnet/http:  %q", path, got[0], want[0])
			}
			continue
		}
		g, w := parseAnswer(t, got[0]), parseAnswer(t, want[0])
		if g.status != w.status || g.body != w.body || !slices.Equal(g.header, w.header) {
			t.Errorf("%s:\nfast path: %d %q %q\nnet/http:  %d %q %q", path, g.status, g.header, g.body, w.status, w.header, w.body)
		}
	}
}
