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

// startTimed serves echo on ln through the fast path or through net/http alone, both
// with the same timeouts (start() gives net/http alone none of them).
func startTimed(t *testing.T, ln net.Listener, fast bool, rht, rt, idle time.Duration) string {
	t.Helper()
	if fast {
		addr, _ := startOn(t, ln, http.HandlerFunc(echo), true, func(s *Server) {
			s.ReadHeaderTimeout, s.ReadTimeout, s.IdleTimeout = rht, rt, idle
			s.Fallback.ReadHeaderTimeout, s.Fallback.ReadTimeout, s.Fallback.IdleTimeout = rht, rt, idle
		})
		return addr
	}
	hs := &http.Server{Handler: http.HandlerFunc(echo), ReadHeaderTimeout: rht, ReadTimeout: rt, IdleTimeout: idle}
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })
	return ln.Addr().String()
}

// TestBodyCutShort: a body that ends (the client's side closed) before its
// Content-Length is an error for the handler (io.ErrUnexpectedEOF, as net/http says),
// never a shorter body read as if whole.
func TestBodyCutShort(t *testing.T) {
	for _, fast := range []bool{false, true} {
		addr, _ := start(t, http.HandlerFunc(echo), fast, nil)
		got := send(t, addr, "POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc", 1)
		if len(got) != 1 || !strings.Contains(got[0], `"readErr":"unexpected EOF"`) {
			t.Errorf("fast %v: a body of 3 bytes of 10, then EOF: %q; want the handler's read to fail with unexpected EOF", fast, got)
		}
	}
}

// TestKeptConnectionBodyTime: a later request's ReadTimeout runs from its own first
// bytes, not from the connection's start: on a connection kept idle for longer than
// ReadTimeout, a POST whose body follows its head a moment later is read whole.
func TestKeptConnectionBodyTime(t *testing.T) {
	const rt = time.Second
	for _, fast := range []bool{false, true} {
		addr := startTimed(t, listen(t), fast, rt, rt, 10*time.Second)
		// The body must come within ReadTimeout of the head: a test process descheduled
		// for most of a second between the two writes would see its body refused, which
		// is the server's right. Such a try checks nothing and is made again on a new
		// connection.
		for try := 1; ; try++ {
			got, gap := keptConnectionPost(t, addr, fast, rt)
			if gap < rt/2 {
				if len(got) != 1 || !strings.Contains(got[0], `"body":"hello"`) || !strings.Contains(got[0], `"readErr":"\u003cnil\u003e"`) {
					t.Errorf("fast %v: a body %v after its head, on a connection idle for %v: %q", fast, gap.Round(time.Millisecond), rt+300*time.Millisecond, got)
				}
				break
			}
			if try == 3 {
				t.Logf("fast %v: not checked, the body was written %v after the head in each of %d tries (a paused machine)", fast, gap.Round(time.Millisecond), try)
				break
			}
			t.Logf("fast %v: the body was written %v after the head: again", fast, gap.Round(time.Millisecond))
		}
	}
}

// keptConnectionPost sends a GET on a new connection to addr, keeps the connection idle
// for longer than rt, then sends a POST whose body follows its head by 50 ms. It
// returns the answers to the POST and the time from the start of the head's write to
// the end of the body's (50 ms, or more when the test process was not scheduled).
func keptConnectionPost(t *testing.T, addr string, fast bool, rt time.Duration) (answers []string, gap time.Duration) {
	t.Helper()
	// The first head must come within ReadTimeout of the server's accept: written
	// again on a new connection if this side was paused for half of it.
	c := dialWrite(t, addr, "GET /a HTTP/1.1\r\nHost: h\r\n\r\n", rt/2)
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	if got := readAnswers(t, br, 1); len(got) != 1 {
		t.Fatalf("fast %v: no answer to the first request", fast)
	}
	time.Sleep(rt + 300*time.Millisecond) // idle: longer than ReadTimeout, within IdleTimeout
	c.SetDeadline(time.Now().Add(10 * time.Second))
	begin := time.Now()
	io.WriteString(c, "POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n")
	time.Sleep(50 * time.Millisecond)
	io.WriteString(c, "hello")
	gap = time.Since(begin)
	return readAnswers(t, br, 1), gap
}

// TestBodyTimeFromConnectionStart: ReadTimeout bounds the first request's head and
// body together from the connection's start, as in net/http: a body that comes after
// it is not read, though it came within ReadTimeout of the end of the head. The times
// are the server's: from the head deadline it set (ReadHeaderTimeout from its start).
func TestBodyTimeFromConnectionStart(t *testing.T) {
	const rht, rt = 2 * time.Second, time.Second
	for _, fast := range []bool{false, true} {
		clock := newHeadClock(listen(t))
		addr := startTimed(t, clock, fast, rht, rt, 0)
		c := dial(t, addr)
		c.SetDeadline(time.Now().Add(10 * time.Second))
		begin := clock.deadline(t).Add(-rht) // the server's start of the connection
		time.Sleep(time.Until(begin.Add(700 * time.Millisecond)))
		io.WriteString(c, "POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n")
		time.Sleep(time.Until(begin.Add(rt + 300*time.Millisecond))) // past ReadTimeout from the start
		io.WriteString(c, "hello")
		if got := readAnswers(t, bufio.NewReader(c), 1); len(got) == 1 && strings.Contains(got[0], `"body":"hello"`) {
			t.Errorf("fast %v: a body that came %v after the connection's start (ReadTimeout %v) was read: %q", fast, rt+300*time.Millisecond, rt, got)
		}
	}
}

// TestShortDeclaredLengthEndsConnection: an answer shorter than the Content-Length its
// handler declared ends the connection, as with net/http: the next answer on it would
// be read by the client as the rest of this one's body.
func TestShortDeclaredLengthEndsConnection(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "10")
		io.WriteString(w, "abc")
	})
	for _, fast := range []bool{false, true} {
		addr, _ := start(t, h, fast, nil)
		c := dial(t, addr)
		c.SetReadDeadline(time.Now().Add(10 * time.Second)) // a connection left open is read until then
		io.WriteString(c, "GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n")
		raw, err := io.ReadAll(c) // the connection stays open for writing: only the server can end it
		if err != nil || strings.Count(string(raw), "HTTP/1.1 ") != 1 {
			t.Errorf("fast %v: %q, %v; want one answer, then the connection closed", fast, raw, err)
		}
	}
}

// TestBareLFHandedOverAtOnce: a head with bare LF line ends goes to net/http as soon as
// it is read, not when its deadline ends: a client that waits for the answer with its
// side open gets it at once (net/http takes such heads). The client waits 10 s, half
// the head's time: long enough for a loaded machine, short of the deadline.
func TestBareLFHandedOverAtOnce(t *testing.T) {
	addr := startTimed(t, listen(t), true, 20*time.Second, 0, 0)
	for _, raw := range []string{"GET /a HTTP/1.1\nHost: h\n\n", "GET /a HTTP/1.1\r\nHost: h\nX: y\n\n"} {
		c := dial(t, addr)
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(c, raw)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != 200 {
			t.Errorf("%q: %v; want net/http's answer at once (ReadHeaderTimeout 20s)", raw, err)
		}
	}
}

// TestHeadTimeoutDefaultsToReadTimeout: without a ReadHeaderTimeout, ReadTimeout bounds
// the head, as in net/http: a head never finished does not hold its connection.
func TestHeadTimeoutDefaultsToReadTimeout(t *testing.T) {
	addr, _ := start(t, http.HandlerFunc(echo), true, func(s *Server) { s.ReadTimeout = 300 * time.Millisecond })
	c := dial(t, addr)
	io.WriteString(c, "GET /a HTTP/1.1\r\nHost:")
	c.SetReadDeadline(time.Now().Add(10 * time.Second)) // without the timeout, never closed
	if _, err := io.ReadAll(c); err != nil {
		t.Errorf("a head never finished, ReadTimeout 300ms and no ReadHeaderTimeout: %v, want the connection closed", err)
	}
}
