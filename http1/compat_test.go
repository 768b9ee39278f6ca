package http1

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestCRLFAfterPOST: net/http skips up to four CR or LF left after a POST's body (old
// clients send one), and so must the fast path: seen as an empty request line, they
// made the connection go to net/http, which answered the next request 400.
func TestCRLFAfterPOST(t *testing.T) {
	fastAddr, _ := start(t, http.HandlerFunc(echo), true, nil)
	netAddr, _ := start(t, http.HandlerFunc(echo), false, nil)
	raw := "POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nxyz\r\n" +
		"GET /b HTTP/1.1\r\nHost: h\r\n\r\n"
	got := send(t, fastAddr, raw, 2)
	want := send(t, netAddr, raw, 2)
	status := func(a []string) []string {
		var s []string
		for _, x := range a {
			s = append(s, strings.SplitN(x, "\r\n", 2)[0])
		}
		return s
	}
	if len(want) != 2 || !strings.HasPrefix(want[1], "HTTP/1.1 200") {
		t.Fatalf("net/http alone: %q", status(want))
	}
	if len(got) != 2 || !strings.HasPrefix(got[1], "HTTP/1.1 200") {
		t.Errorf("fast path: %q, net/http alone: %q", status(got), status(want))
	}
}

// TestConnectionTokenASCII: "Connection: close" is matched in ASCII case only, as
// net/http matches it ("cloſe", with U+017F, is not close).
func TestConnectionTokenASCII(t *testing.T) {
	head := "GET /a HTTP/1.1\r\nHost: h\r\nConnection: clo\u017fe\r\n\r\n"
	p, ok := parseRequest([]byte(head), nil)
	if !ok {
		t.Fatal("not taken")
	}
	r, err := http.ReadRequest(bufio.NewReader(bytes.NewReader([]byte(head))))
	if err != nil {
		t.Fatal(err)
	}
	if p.close != r.Close {
		t.Errorf("Close: fast path %v, net/http %v", p.close, r.Close)
	}
}

// TestCutOffHead: a head that ends before its blank line, the client's side closed, is
// answered as net/http answers it (400), on the first request of a connection and
// after a whole one; the fast path closed such a connection without a word.
func TestCutOffHead(t *testing.T) {
	fastAddr, _ := start(t, http.HandlerFunc(echo), true, nil)
	netAddr, _ := start(t, http.HandlerFunc(echo), false, nil)
	whole := "GET /a HTTP/1.1\r\nHost: h\r\n\r\n"
	for _, raw := range []string{
		"GET /socialize.getUserInfo HTTP/1.1\r\nHost: x\r\n",
		"GET /socialize.getUserInfo HTTP/1.1\r\nHost: x",
		"GET /socialize.getUserInfo HTTP/1.1\r\n",
		"GET /soc",
		whole + "GET /socialize.getUserInfo HTTP/1.1\r\nHost: x\r\n",
		"POST /a HTTP/1.1\r\nHost: h\r\nContent-Type: application/x-www-form-urlencoded\r\n\r\napiKey=3_k",
	} {
		want := send(t, netAddr, raw, 3)
		got := send(t, fastAddr, raw, 3)
		if len(want) == 0 || !strings.HasPrefix(want[len(want)-1], "HTTP/1.1 400") {
			t.Fatalf("%q: net/http alone answered %q", raw, want)
		}
		// The echo handler says which server served it; nothing else may differ.
		if strings.ReplaceAll(strings.Join(got, ""), `"served":"fast"`, `"served":"slow"`) != strings.Join(want, "") {
			t.Errorf("%q:\nfast path %q\nnet/http  %q", raw, got, want)
		}
	}
}

// TestCloseRequestUnreadBody: a request with Connection: close whose handler answers
// without reading its body (a refusal before the body) is answered at once, as net/http
// answers it: the fast path waited for the rest of the body, until the read deadline,
// and with the default timeouts (read and write 30 s) the answer then went out after
// the write deadline, that is never.
func TestCloseRequestUnreadBody(t *testing.T) {
	refuse := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Date", "Sun, 29 Nov 2026 12:00:00 GMT")
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, "refused")
	})
	timeouts := func(s *Server) { s.ReadTimeout, s.WriteTimeout = 3*time.Second, 3*time.Second }
	fastAddr, _ := start(t, refuse, true, timeouts)
	netAddr, _ := start(t, refuse, false, nil)
	// Two bytes of ten: the client sends the rest later, or never.
	raw := "POST /socialize.getUserInfo?a=%zz HTTP/1.1\r\nHost: h\r\nConnection: close\r\nContent-Length: 10\r\n\r\nab"
	answer := func(addr string) (string, time.Duration) {
		c := dial(t, addr)
		if _, err := io.WriteString(c, raw); err != nil {
			t.Fatal(err)
		}
		begin := time.Now()
		got := readAnswers(t, bufio.NewReader(c), 1)
		return strings.Join(got, ""), time.Since(begin)
	}
	want, _ := answer(netAddr)
	if !strings.HasPrefix(want, "HTTP/1.1 400") {
		t.Fatalf("net/http alone: %q", want)
	}
	got, took := answer(fastAddr)
	if got != want {
		t.Errorf("fast path: %q\nnet/http:  %q", got, want)
	}
	if took > time.Second {
		t.Errorf("fast path: answered after %v, net/http at once", took.Round(time.Millisecond))
	}
}
