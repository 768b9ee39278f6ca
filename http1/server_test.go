package http1

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// echo answers with what the handler saw of the request, and whether the fast path
// served it (net/http's writer can Flush, the fast path's cannot).
func echo(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	_, flusher := w.(http.Flusher)
	served := "fast"
	if flusher {
		served = "slow"
	}
	view := map[string]any{
		"served": served, "method": r.Method, "url": r.URL.String(), "path": r.URL.Path,
		"query": r.URL.RawQuery, "host": r.Host, "header": r.Header, "body": string(body),
		"readErr": fmt.Sprint(err), "length": r.ContentLength, "close": r.Close,
		"proto": r.Proto, "requestURI": r.RequestURI, "remote": r.RemoteAddr != "",
		"tls": r.TLS != nil && r.TLS.HandshakeComplete,
	}
	out, _ := json.Marshal(view)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Date", "Sun, 29 Nov 2026 12:00:00 GMT")
	w.Header().Set("X-Multi", "a")
	w.Header().Add("X-Multi", "b")
	w.Write(out)
}

// start serves h on a fresh port: through http1 (fast) or through net/http alone.
func start(t testing.TB, h http.Handler, fast bool, configure func(*Server)) (addr string, srv *Server) {
	t.Helper()
	return startOn(t, listen(t), h, fast, configure)
}

// listen opens a listener on a fresh loopback port.
func listen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// startOn is start on a listener of the test's.
func startOn(t testing.TB, ln net.Listener, h http.Handler, fast bool, configure func(*Server)) (addr string, srv *Server) {
	t.Helper()
	quiet := log.New(io.Discard, "", 0)
	if !fast {
		hs := &http.Server{Handler: h, ErrorLog: quiet}
		go hs.Serve(ln)
		t.Cleanup(func() { hs.Close() })
		return ln.Addr().String(), nil
	}
	srv = &Server{Handler: h, Fallback: &http.Server{Handler: h, ErrorLog: quiet}, ErrorLog: quiet}
	if configure != nil {
		configure(srv)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve: %v, want ErrServerClosed", err)
		}
	})
	return ln.Addr().String(), srv
}

// headClock wraps a listener: each connection it accepts sends on first the first read
// deadline the server sets on it, its first head's, so that a test can time its writes
// from the server's own start of the head's time rather than from its dial (a server
// descheduled before its accept starts that time late).
type headClock struct {
	net.Listener
	first chan time.Time
}

func newHeadClock(ln net.Listener) *headClock {
	return &headClock{Listener: ln, first: make(chan time.Time, 16)}
}

func (l *headClock) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &headClockConn{Conn: c, first: l.first}, nil
}

// deadline waits for the head deadline of the next connection.
func (l *headClock) deadline(t *testing.T) time.Time {
	t.Helper()
	select {
	case d := <-l.first:
		if d.IsZero() {
			t.Fatal("the first read deadline of a connection is none")
		}
		return d
	case <-time.After(10 * time.Second):
		t.Fatal("the server set no read deadline on the connection within 10 s")
	}
	return time.Time{}
}

type headClockConn struct {
	net.Conn
	once  sync.Once
	first chan time.Time
}

func (c *headClockConn) SetReadDeadline(d time.Time) error {
	c.once.Do(func() { c.first <- d })
	return c.Conn.SetReadDeadline(d)
}

func (c *headClockConn) CloseWrite() error { return c.Conn.(*net.TCPConn).CloseWrite() }

// dialWrite dials addr and writes raw, on a new connection again if the write ended
// limit or more after the dial began: the server's time for a first head starts at its
// accept, after the dial began, so a write within limit (less than that time) reaches
// it in time, however late the server is; a client descheduled in between would see
// its head refused.
func dialWrite(t *testing.T, addr, raw string, limit time.Duration) net.Conn {
	t.Helper()
	for try := 1; ; try++ {
		begin := time.Now()
		c := dial(t, addr)
		if _, err := io.WriteString(c, raw); err != nil {
			t.Fatal(err)
		}
		if time.Since(begin) < limit || try == 5 {
			return c
		}
		t.Logf("the write ended %v after the dial began: again", time.Since(begin).Round(time.Millisecond))
		c.Close()
	}
}

// dial connects to addr, closed with the test, with a deadline of 5 s for everything.
func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(5 * time.Second))
	return c
}

// send sends raw bytes on a new connection and reads answers until the server
// closes it or want answers have come.
func send(t *testing.T, addr, raw string, want int) []string {
	t.Helper()
	c := dial(t, addr)
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	c.(*net.TCPConn).CloseWrite() // nothing more: the server closes after the last answer
	return readAnswers(t, bufio.NewReader(c), want)
}

// readAnswers reads up to want raw answers (head and body, as bytes on the wire).
func readAnswers(t *testing.T, br *bufio.Reader, want int) []string {
	t.Helper()
	var answers []string
	for len(answers) < want {
		var raw bytes.Buffer
		tee := bufio.NewReader(io.TeeReader(br, &raw))
		resp, err := http.ReadResponse(tee, nil)
		if err != nil {
			break
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		// The tee's reader may have read ahead into the next answer: keep only this one's
		// bytes, and give back the rest.
		n := raw.Len() - tee.Buffered()
		rest, _ := io.ReadAll(io.LimitReader(tee, int64(tee.Buffered())))
		answers = append(answers, raw.String()[:n])
		if len(rest) > 0 {
			br = bufio.NewReader(io.MultiReader(bytes.NewReader(rest), br))
		}
	}
	return answers
}

// TestSameAsNetHTTP sends each request to the fast path and to net/http alone: the
// answers must be the same bytes but for the fast flag, and the fast path must have
// served exactly the requests of its shape (the others went to net/http).
func TestSameAsNetHTTP(t *testing.T) {
	fastAddr, _ := start(t, http.HandlerFunc(echo), true, nil)
	netAddr, _ := start(t, http.HandlerFunc(echo), false, nil)
	form := "apiKey=3_x&userInfo=%7B%22firstName%22%3A%22Ada%22%7D&sig=a%2Bb%3D"
	long := strings.Repeat("a", 5000)
	tests := []struct {
		name    string
		raw     string
		answers int
		fast    []bool // per answer: served by the fast path
	}{
		{"post", "POST /socialize.setUserInfo HTTP/1.1\r\nHost: api.example\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: " + fmt.Sprint(len(form)) + "\r\n\r\n" + form, 1, []bool{true}},
		{"get with query", "GET /socialize.getUserInfo?apiKey=3_x&UID=a%20b&x=%E2%82%AC HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n", 1, []bool{true}},
		{"header case and spaces", "GET /a HTTP/1.1\r\nhost: h\r\nuser-AGENT:   Gigya-SDK/1.0  \r\nx-forwarded-proto:https\r\naccept:\r\n\r\n", 1, []bool{true}},
		{"repeated header", "GET /a HTTP/1.1\r\nHost: h\r\nAccept: a\r\nX-Y: 1\r\naccept: b\r\n\r\n", 1, []bool{true}},
		{"pragma", "GET /a HTTP/1.1\r\nHost: h\r\nPragma: no-cache\r\n\r\n", 1, []bool{true}},
		{"connection close", "GET /a HTTP/1.1\r\nHost: h\r\nConnection: Keep-Alive, close\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n", 1, []bool{true}},
		{"pipelined", "GET /a HTTP/1.1\r\nHost: h\r\n\r\nPOST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nxyzGET /c?d HTTP/1.1\r\nHost: h\r\n\r\n", 3, []bool{true, true, true}},
		{"post without length", "POST /a HTTP/1.1\r\nHost: h\r\n\r\n", 1, []bool{true}},
		{"zero length", "POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n", 1, []bool{true}},
		{"empty host", "GET /a HTTP/1.1\r\nHost:\r\n\r\n", 1, []bool{true}},
		{"ipv6 host", "GET /a HTTP/1.1\r\nHost: [::1]:80\r\n\r\n", 1, []bool{true}},
		// Handed to net/http, with what follows on the connection.
		{"put", "PUT /a HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n\r\nxGET /b HTTP/1.1\r\nHost: h\r\n\r\n", 2, []bool{false, false}},
		{"options", "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n", 1, []bool{false}},
		{"http/1.0", "GET /a HTTP/1.0\r\n\r\n", 1, []bool{false}},
		{"chunked", "POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", 1, []bool{false}},
		{"expect 100-continue", "POST /a HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nab" +
			"POST /b HTTP/1.1\r\nHost: h\r\nexpect: 100-Continue\r\nContent-Length: 0\r\n\r\n", 3, []bool{false, true, true}},
		{"other expectation", "POST /a HTTP/1.1\r\nHost: h\r\nExpect: 200-ok\r\nContent-Length: 2\r\n\r\nab", 1, []bool{false}},
		{"two expectations", "POST /a HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nab", 1, []bool{false}},
		{"bare lf", "GET /a HTTP/1.1\nHost: h\n\n", 1, []bool{false}},
		{"bare lf in header", "GET /a HTTP/1.1\r\nHost: h\nX: y\r\n\r\n", 1, []bool{false}},
		{"folded header", "GET /a HTTP/1.1\r\nHost: h\r\nX: y\r\n z\r\n\r\n", 1, []bool{false}},
		{"space before colon", "GET /a HTTP/1.1\r\nHost : h\r\n\r\n", 1, []bool{false}},
		{"no host", "GET /a HTTP/1.1\r\nX: y\r\n\r\n", 1, []bool{false}},
		{"two hosts", "GET /a HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 1, []bool{false}},
		{"bad host", "GET /a HTTP/1.1\r\nHost: a b\r\n\r\n", 1, []bool{false}},
		{"two lengths", "POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\na", 1, []bool{false}},
		{"signed length", "POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: +1\r\n\r\na", 1, []bool{false}},
		{"control in value", "GET /a HTTP/1.1\r\nHost: h\r\nX: a\x01b\r\n\r\n", 1, []bool{false}},
		{"empty header name", "GET /a HTTP/1.1\r\nHost: h\r\n: x\r\n\r\n", 1, []bool{false}},
		{"space in header name", "GET /a HTTP/1.1\r\nHost: h\r\nX Y: z\r\n\r\n", 1, []bool{false}},
		{"length past int64", "POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 9999999999999999999\r\n\r\nab", 1, []bool{false}},
		{"http/1.0 with host", "GET /a HTTP/1.0\r\nHost: h\r\n\r\nGET /b HTTP/1.0\r\nHost: h\r\n\r\n", 1, []bool{false}},
		{"crlf after get", "GET /a HTTP/1.1\r\nHost: h\r\n\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n", 2, []bool{true, false}},
		{"absolute target", "POST http://socialize.localtest/socialize.setUserInfo HTTP/1.1\r\nHost: socialize.localtest\r\nProxy-Connection: keep-alive\r\nContent-Length: 3\r\n\r\nabc", 1, []bool{true}},
		{"absolute target, other host", "GET https://a.example:8443/a?b=c HTTP/1.1\r\nHost: h\r\n\r\n", 1, []bool{true}},
		{"absolute target, no host", "GET http:///a HTTP/1.1\r\nHost: h\r\n\r\n", 1, []bool{true}},
		{"absolute target without Host", "GET http://h/a HTTP/1.1\r\n\r\n", 1, []bool{false}},
		{"absolute target, upper-case scheme", "GET HTTP://h/a HTTP/1.1\r\nHost: h\r\n\r\n", 1, []bool{false}},
		{"absolute target, bad host", "GET http://a b/a HTTP/1.1\r\nHost: h\r\n\r\n", 1, []bool{false}},
		{"asterisk", "GET * HTTP/1.1\r\nHost: h\r\n\r\n", 1, []bool{false}},
		{"lower-case method", "get /a HTTP/1.1\r\nHost: h\r\n\r\n", 1, []bool{false}},
		{"leading empty line", "\r\nGET /a HTTP/1.1\r\nHost: h\r\n\r\n", 1, []bool{false}},
		{"long head", "GET /a HTTP/1.1\r\nHost: h\r\nX-Long: " + long + "\r\n\r\n", 1, []bool{false}},
		{"long target", "GET /a?" + long + " HTTP/1.1\r\nHost: h\r\n\r\n", 1, []bool{false}},
		{"bad escape", "GET /a%zz HTTP/1.1\r\nHost: h\r\n\r\n", 1, []bool{false}},
		{"fast then handed", "GET /a HTTP/1.1\r\nHost: h\r\n\r\nDELETE /b HTTP/1.1\r\nHost: h\r\n\r\nGET /c HTTP/1.1\r\nHost: h\r\n\r\n", 3, []bool{true, false, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := send(t, fastAddr, tt.raw, tt.answers)
			want := send(t, netAddr, tt.raw, tt.answers)
			if len(got) != len(want) || len(got) != tt.answers {
				t.Fatalf("fast path: %d answers, net/http: %d, want %d\nfast: %q\nnet/http: %q", len(got), len(want), tt.answers, got, want)
			}
			for i := range got {
				served := strings.Contains(got[i], `"served":"fast"`)
				if strings.Contains(got[i], `"served"`) && served != tt.fast[i] {
					t.Errorf("answer %d: served by the fast path %v, want %v", i, served, tt.fast[i])
				}
				norm := strings.Replace(got[i], `"served":"fast"`, `"served":"slow"`, 1)
				// Answers net/http makes itself (OPTIONS *, the 417 of an unknown
				// expectation) carry the real Date: the two sends may straddle a second.
				if undated(norm) != undated(want[i]) {
					t.Errorf("answer %d differs\nfast path: %q\nnet/http:  %q", i, got[i], want[i])
				}
			}
		})
	}
}

func TestAnswers(t *testing.T) {
	big := strings.Repeat("0123456789", maxBuffered/10+100)
	mux := http.NewServeMux()
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, big) })
	mux.HandleFunc("/big-declared", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(len(big)))
		io.WriteString(w, big)
	})
	mux.HandleFunc("/none", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
		if _, err := w.Write([]byte("x")); !errors.Is(err, http.ErrBodyNotAllowed) {
			panic("write after 204: " + fmt.Sprint(err))
		}
	})
	mux.HandleFunc("/status", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusTeapot)
		w.WriteHeader(http.StatusOK) // superfluous: ignored
		io.WriteString(w, "<html><body>tea</body></html>")
	})
	mux.HandleFunc("/inject", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Value", "a\r\nSet-Cookie: evil=1")
		w.Header()["Bad Name"] = []string{"x"}
		io.WriteString(w, "ok")
	})
	mux.HandleFunc("/unread", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	mux.HandleFunc("/close", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		io.WriteString(w, "bye")
	})
	fastAddr, _ := start(t, mux, true, nil)
	netAddr, _ := start(t, mux, false, nil)
	get := func(path string) string { return "GET " + path + " HTTP/1.1\r\nHost: h\r\n\r\n" }
	for _, tt := range []struct {
		name, raw string
		answers   int
	}{
		{"chunked when large", get("/big") + get("/none"), 2},
		{"declared length when large", get("/big-declared") + get("/none"), 2},
		{"no content", get("/none") + get("/none"), 2},
		{"status and sniffing", get("/status"), 1},
		{"no header injection", get("/inject"), 1},
		{"unread body is skipped", "POST /unread HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nabcde" + get("/none"), 2},
		// A body the handler did not read is skipped, never read as a request of its own.
		{"unread body that is a request", "POST /unread HTTP/1.1\r\nHost: h\r\nContent-Length: " + fmt.Sprint(len(get("/status"))) + "\r\n\r\n" + get("/status") + get("/none"), 2},
		{"handler closes", get("/close") + get("/none"), 1},
		{"expect, body never read", "POST /unread HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n" + get("/none"), 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := send(t, fastAddr, tt.raw, tt.answers+1) // one more: none must come
			want := send(t, netAddr, tt.raw, tt.answers+1)
			if len(got) != tt.answers || len(want) != tt.answers {
				t.Fatalf("answers: fast path %d, net/http %d, want %d", len(got), len(want), tt.answers)
			}
			for i := range got {
				g, w := parseAnswer(t, got[i]), parseAnswer(t, want[i])
				if g.status != w.status || g.body != w.body || !slices.Equal(g.header, w.header) {
					t.Errorf("answer %d:\nfast path: %d %q %q\nnet/http:  %d %q %q", i, g.status, g.header, clip(g.body), w.status, w.header, clip(w.body))
				}
			}
		})
	}
}

type answer struct {
	status int
	header []string // "Name: value", sorted, without Date
	body   string
}

func parseAnswer(t *testing.T, raw string) answer {
	t.Helper()
	resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(raw)), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	a := answer{status: resp.StatusCode, body: string(body)}
	for k, vs := range resp.Header {
		if k == "Date" {
			continue
		}
		for _, v := range vs {
			a.header = append(a.header, k+": "+v)
		}
	}
	if resp.TransferEncoding != nil {
		a.header = append(a.header, "Transfer-Encoding: "+strings.Join(resp.TransferEncoding, ","))
	}
	if resp.Close {
		a.header = append(a.header, "(close)")
	}
	slices.Sort(a.header)
	return a
}

// dateLine is a Date header line's value in a raw answer.
var dateLine = regexp.MustCompile(`(?m)^(Date: )[^\r\n]*`)

// undated is a raw answer with its Date header's value blanked (the line kept), so
// that two answers sent a second apart compare equal when all else is.
func undated(raw string) string {
	return dateLine.ReplaceAllString(raw, "${1}-")
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

func TestLargeUnreadBodyClosesConnection(t *testing.T) {
	addr, _ := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }), true, nil)
	for _, n := range []int{maxDiscard + 1, maxDiscard} { // as net/http: 256 KiB left closes
		c := dial(t, addr)
		fmt.Fprintf(c, "POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\nabc", n)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		if !resp.Close || resp.StatusCode != 200 {
			t.Errorf("%d bytes unread: status %d, close %v: want 200 and Connection: close (the unread body is too large to skip)", n-3, resp.StatusCode, resp.Close)
		}
	}
}

// TestFramingConflictRefused: a request with both Transfer-Encoding and Content-Length
// is refused (400) and the connection closed after it (RFC 9112 6.1), so that what a
// proxy framed by Content-Length cannot become a second request; net/http (Go 1.26)
// reads it as chunked and keeps the connection.
func TestFramingConflictRefused(t *testing.T) {
	calls := 0
	addr, _ := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { calls++; io.WriteString(w, "ok") }), true, nil)
	for _, head := range []string{
		"POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 50\r\nTransfer-Encoding: chunked\r\n\r\n",
		"POST /a HTTP/1.1\r\nHost: h\r\ntransfer-encoding: chunked\r\ncontent-LENGTH: 50\r\n\r\n",
		// Heads the fast path hands to net/http: bare LFs, and one over its buffer.
		"POST /a HTTP/1.1\nHost: h\nContent-Length: 50\nTransfer-Encoding: chunked\n\n",
		"POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 50\r\nTransfer-Encoding: chunked\r\nX-Pad: " + strings.Repeat("p", 5000) + "\r\n\r\n",
	} {
		c := dial(t, addr)
		io.WriteString(c, head+"5\r\nuid=a\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n")
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 400 || !resp.Close || !strings.Contains(string(body), "both Transfer-Encoding and Content-Length") {
			t.Errorf("status %d, close %v, body %q: want 400 and Connection: close", resp.StatusCode, resp.Close, body)
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if rest, err := io.ReadAll(br); len(rest) != 0 || err != nil {
			t.Errorf("after the refusal: %q, %v; want the connection closed", rest, err)
		}
	}
	if calls != 0 {
		t.Errorf("the handler ran %d times", calls)
	}
}

func TestPanics(t *testing.T) {
	var logged bytes.Buffer
	var mu sync.Mutex
	mux := http.NewServeMux()
	mux.HandleFunc("/panic", func(w http.ResponseWriter, r *http.Request) { panic("boom") })
	mux.HandleFunc("/abort", func(w http.ResponseWriter, r *http.Request) { panic(http.ErrAbortHandler) })
	mux.HandleFunc("/bad-code", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(42) })
	addr, _ := start(t, mux, true, func(s *Server) {
		s.ErrorLog = log.New(writerFunc(func(p []byte) (int, error) {
			mu.Lock()
			defer mu.Unlock()
			return logged.Write(p)
		}), "", 0)
	})
	for _, path := range []string{"/panic", "/abort", "/bad-code"} {
		if got := send(t, addr, "GET "+path+" HTTP/1.1\r\nHost: h\r\n\r\n", 1); len(got) != 0 {
			t.Errorf("%s: %q, want the connection closed without an answer", path, got)
		}
	}
	// The server still serves.
	if got := send(t, addr, "GET /x HTTP/1.1\r\nHost: h\r\n\r\n", 1); len(got) != 1 {
		t.Fatalf("after the panics: %d answers", len(got))
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(logged.String(), "boom") || !strings.Contains(logged.String(), "invalid WriteHeader code 42") {
		t.Errorf("log %q: want both panics", logged.String())
	}
	if strings.Contains(logged.String(), "abort") {
		t.Errorf("log %q: ErrAbortHandler is not logged", logged.String())
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func TestTimeouts(t *testing.T) {
	readErrs := make(map[string]error) // by client address
	var mu sync.Mutex
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		mu.Lock()
		readErrs[r.RemoteAddr] = err
		mu.Unlock()
		io.WriteString(w, "ok")
	})
	addr, _ := start(t, h, true, func(s *Server) {
		s.ReadHeaderTimeout = 200 * time.Millisecond
		s.ReadTimeout = 400 * time.Millisecond
		s.IdleTimeout = 300 * time.Millisecond
	})
	closedWithin := func(c net.Conn, limit time.Duration) bool {
		c.SetReadDeadline(time.Now().Add(limit))
		_, err := io.ReadAll(c)
		return err == nil // EOF: closed by the server; a timeout: still open
	}
	t.Run("idle", func(t *testing.T) {
		c := dialWrite(t, addr, "GET /a HTTP/1.1\r\nHost: h\r\n\r\n", 100*time.Millisecond)
		br := bufio.NewReader(c)
		if _, err := http.ReadResponse(br, nil); err != nil {
			t.Fatal(err)
		}
		if !closedWithin(c, 10*time.Second) {
			t.Error("an idle kept connection was not closed")
		}
	})
	t.Run("slow head", func(t *testing.T) {
		c := dial(t, addr)
		io.WriteString(c, "GET /a HTTP/1.1\r\nHost:")
		if !closedWithin(c, 10*time.Second) {
			t.Error("a head never finished kept its connection")
		}
	})
	t.Run("slow body", func(t *testing.T) {
		c := dialWrite(t, addr, "POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc", 100*time.Millisecond)
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		io.ReadAll(c)
		mu.Lock()
		readErr := readErrs[c.LocalAddr().String()]
		mu.Unlock()
		var ne net.Error
		if !errors.As(readErr, &ne) || !ne.Timeout() {
			t.Errorf("the handler's read of a body never finished: %v, want a timeout", readErr)
		}
	})
}

func TestShutdown(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	var states []http.ConnState
	var mu sync.Mutex
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			entered <- struct{}{}
			<-release
		}
		io.WriteString(w, "ok")
	})
	addr, srv := start(t, h, true, func(s *Server) {
		s.ConnState = func(c net.Conn, st http.ConnState) {
			mu.Lock()
			states = append(states, st)
			mu.Unlock()
		}
	})
	// An idle kept connection, a connection mid-call and one handed to net/http.
	idle := dial(t, addr)
	io.WriteString(idle, "GET /a HTTP/1.1\r\nHost: h\r\n\r\n")
	if _, err := http.ReadResponse(bufio.NewReader(idle), nil); err != nil {
		t.Fatal(err)
	}
	// The server tells the connection idle after its answer went out, which the
	// client may read first: Shutdown before that closes it as active (a failure
	// seen once under load).
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		mu.Lock()
		told := slices.Contains(states, http.StateIdle)
		mu.Unlock()
		if told {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the kept connection was never told idle")
		}
	}
	handed := dial(t, addr)
	io.WriteString(handed, "HEAD /a HTTP/1.1\r\nHost: h\r\n\r\n")
	if _, err := http.ReadResponse(bufio.NewReader(handed), &http.Request{Method: "HEAD"}); err != nil {
		t.Fatal(err)
	}
	busy := dial(t, addr)
	io.WriteString(busy, "GET /slow HTTP/1.1\r\nHost: h\r\n\r\n")
	<-entered
	done := make(chan error, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	go func() { done <- srv.Shutdown(ctx) }()
	// The idle connection and the handed one are closed; the busy one is answered.
	for name, c := range map[string]net.Conn{"idle": idle, "handed over": handed} {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.ReadAll(c); err != nil {
			t.Errorf("%s connection: %v, want it closed by Shutdown", name, err)
		}
	}
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned %v with a call in flight", err)
	case <-time.After(100 * time.Millisecond):
	}
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		t.Error("a connection was accepted after Shutdown began")
	}
	close(release)
	busy.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(busy), nil)
	if err != nil {
		t.Fatalf("the call in flight: %v", err)
	}
	if !resp.Close {
		t.Error("the answer during Shutdown does not close its connection")
	}
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, want := range []http.ConnState{http.StateNew, http.StateActive, http.StateIdle, http.StateHijacked, http.StateClosed} {
		if !slices.Contains(states, want) {
			t.Errorf("ConnState never told %v (told %v)", want, states)
		}
	}
}

// TestShutdownUnreadBody: a call under way when Shutdown begins, whose handler answers
// without reading all its body, is answered at once and its connection closed, as
// net/http answers it (Shutdown ends keep-alives): the fast path waited for the rest of
// the body until the read deadline, past Shutdown's own timeout, and the answer was
// lost when the server was then closed.
func TestShutdownUnreadBody(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	addr, srv := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
		io.WriteString(w, "refused")
	}), true, func(s *Server) { s.ReadTimeout = 3 * time.Second })
	c := dial(t, addr)
	io.WriteString(c, "POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nab")
	<-entered
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- srv.Shutdown(ctx) }()
	for !srv.closing.Load() {
		time.Sleep(time.Millisecond)
	}
	close(release)
	begin := time.Now()
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("the call in flight: %v", err)
	}
	if took := time.Since(begin); took > time.Second {
		t.Errorf("answered %v after the handler returned, want at once", took.Round(time.Millisecond))
	}
	if !resp.Close {
		t.Error("the answer during Shutdown does not close its connection")
	}
	if err := <-done; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

func TestShutdownTimesOut(t *testing.T) {
	entered := make(chan struct{})
	cancelled := make(chan error, 1)
	addr, srv := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-r.Context().Done()
		cancelled <- r.Context().Err()
	}), true, nil)
	c := dial(t, addr)
	io.WriteString(c, "GET /a HTTP/1.1\r\nHost: h\r\n\r\n")
	<-entered
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := srv.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown: %v, want the context's deadline", err)
	}
	// What serve does then: Close, which cancels the calls still running.
	srv.Close()
	select {
	case err := <-cancelled:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("the call's context ended with %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not cancel the call still running")
	}
}

// TestAnswerSurvivesUnreadBody: a connection closed with a large body unread half-closes
// and waits before closing, as net/http does, so that the kernel does not reset it: a
// reset can throw away the answer the client has not read yet (not on Linux's loopback,
// which keeps it; the reset itself is what this test sees).
func TestAnswerSurvivesUnreadBody(t *testing.T) {
	addr, _ := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "refused") }), true, nil)
	c := dial(t, addr)
	fmt.Fprintf(c, "POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n", 1<<20)
	c.Write(make([]byte, 64<<10))      // more than the server reads: left in its kernel buffer
	time.Sleep(200 * time.Millisecond) // a reset, if any, has come by now
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("the answer was lost: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	if !resp.Close {
		t.Error("the answer does not say the connection closes")
	}
	// What follows the answer is the server's half-close (EOF), not a reset.
	if _, err := br.ReadByte(); err != io.EOF {
		t.Errorf("after the answer: %v, want EOF (a reset means the server closed with the body unread)", err)
	}
}

// TestExpectContinue: a client that waits for 100 Continue before sending its body (the
// .NET SDK's default) gets it from the fast path when the handler reads the body.
func TestExpectContinue(t *testing.T) {
	addr, _ := start(t, http.HandlerFunc(echo), true, nil)
	c := dial(t, addr)
	br := bufio.NewReader(c)
	for i := range 2 { // twice on one connection: it is kept
		io.WriteString(c, "POST /a HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
		interim, err := http.ReadResponse(br, nil)
		if err != nil || interim.StatusCode != http.StatusContinue {
			t.Fatalf("request %d: %v %v, want 100 Continue before the body", i, interim, err)
		}
		io.WriteString(c, "hello")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		if !strings.Contains(string(body), `"body":"hello"`) || !strings.Contains(string(body), `"served":"fast"`) || resp.Close {
			t.Errorf("request %d: %s (close %v)", i, body, resp.Close)
		}
	}
}

// failingListener fails its first accepts with a temporary error, as a process out of
// file descriptors sees (EMFILE).
type failingListener struct {
	net.Listener
	fails atomic.Int32
}

func (l *failingListener) Accept() (net.Conn, error) {
	if l.fails.Add(-1) >= 0 {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return l.Listener.Accept()
}

// TestAcceptErrorLogged: an accept that fails and is retried is logged, as net/http
// logs it (until 2026-11-30 the fast path retried without a word, and a server out of
// file descriptors refused every new client with nothing in its log); it still serves
// once the accepts succeed.
func TestAcceptErrorLogged(t *testing.T) {
	var logged bytes.Buffer
	var mu sync.Mutex
	ln := &failingListener{Listener: listen(t)}
	ln.fails.Store(2)
	addr, _ := startOn(t, ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}), true, func(s *Server) {
		s.ErrorLog = log.New(writerFunc(func(p []byte) (int, error) {
			mu.Lock()
			defer mu.Unlock()
			return logged.Write(p)
		}), "", 0)
	})
	if got := send(t, addr, "GET /x HTTP/1.1\r\nHost: h\r\n\r\n", 1); len(got) != 1 {
		t.Fatalf("after the failed accepts: %d answers", len(got))
	}
	mu.Lock()
	defer mu.Unlock()
	want := "http: Accept error: accept tcp: accept4: too many open files; retrying in 5ms\nhttp: Accept error: accept tcp: accept4: too many open files; retrying in 10ms\n"
	if logged.String() != want {
		t.Errorf("log %q, want %q", logged.String(), want)
	}
}

// TestUndated: undated blanks the Date header's value alone, so that the raw answers
// TestResponseRules compares still differ in anything else.
func TestUndated(t *testing.T) {
	a := "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nDate: Thu, 03 Dec 2026 12:00:29 GMT\r\n\r\n"
	b := "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nDate: Thu, 03 Dec 2026 12:00:30 GMT\r\n\r\n"
	if undated(a) != undated(b) {
		t.Errorf("undated(%q) = %q, undated(%q) = %q: want equal", a, undated(a), b, undated(b))
	}
	if want := "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nDate: -\r\n\r\n"; undated(a) != want {
		t.Errorf("undated(%q) = %q, want %q", a, undated(a), want)
	}
	if c := strings.Replace(b, "Content-Length: 2", "Content-Length: 3", 1); undated(c) == undated(a) {
		t.Errorf("undated hides a Content-Length that differs: %q", undated(c))
	}
}
