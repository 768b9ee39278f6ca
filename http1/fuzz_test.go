package http1

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// FuzzParseRequest checks the fast path's parser against net/http's: every head the
// fast path takes, net/http takes too, and reads the same method, target, host,
// header, length and Connection: close from it.
func FuzzParseRequest(f *testing.F) {
	for _, seed := range []string{
		"POST /socialize.setUserInfo HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Type: application/x-www-form-urlencoded\r\n\r\nabc",
		"GET /a?b=c%20d HTTP/1.1\r\nHost: [::1]:8080\r\nAccept: a\r\naccept: b\r\nPragma: no-cache\r\n\r\n",
		"GET /a HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, CLOSE\r\nx-y:  z \t\r\n\r\n",
		"GET /a HTTP/1.1\r\nHost: h\r\nX: \x80\xff\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 007\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-CONTINUE, x\r\nContent-Length: 1\r\n\r\n",
		"POST http://socialize.localtest/socialize.setUserInfo?a=b HTTP/1.1\r\nHost: other\r\nContent-Length: 1\r\n\r\n",
		"GET https://[::1]:8443/a HTTP/1.1\r\nHost: h\r\n\r\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		head, err := readHead(bufio.NewReaderSize(bytes.NewReader(data), headBuffer), 0, nil)
		if err != nil {
			return
		}
		first, ok := parseRequest(head, nil)
		if !ok {
			return
		}
		r, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(head)))
		if err != nil {
			t.Fatalf("the fast path took %q, net/http refuses it: %v", head, err)
		}
		// Through a connection, twice: the second time from its caches (the last
		// target, host and header values).
		c := new(conn)
		for i := range 3 {
			p := first
			if i > 0 {
				p, _ = parseRequest(head, c)
			}
			same(t, head, p, r)
		}
	})
}

// same fails t unless the fast path's p reads head as net/http's r does.
func same(t *testing.T, head []byte, p *request, r *http.Request) {
	t.Helper()
	header := r.Header // without Host: net/http keeps it in Request.Host only
	switch {
	case r.Method != p.method, r.RequestURI != p.target, r.URL.String() != p.url.String(),
		r.Host != p.host, r.ContentLength != p.contentLength, r.Close != p.close:
		t.Fatalf("%q: fast path %q %q %q %d %v, net/http %q %q %q %d %v", head,
			p.method, p.target, p.host, p.contentLength, p.close,
			r.Method, r.RequestURI, r.Host, r.ContentLength, r.Close)
	case p.expectContinue != hasToken([]byte(r.Header.Get("Expect")), "100-continue"):
		t.Fatalf("%q: fast path reads Expect: 100-continue %v, net/http %q", head, p.expectContinue, r.Header.Get("Expect"))
	case !maps.EqualFunc(header, p.header, slices.Equal):
		t.Fatalf("%q: fast path header %q, net/http %q", head, p.header, header)
	}
}

// FuzzConn sends arbitrary bytes on a connection, its sending side then closed, to the
// fast path and to net/http alone, both serving the echo handler, and requires the same
// answers back from both: the same requests, framed the same way, with the same bodies,
// and the same refusals, whether the fast path served them or handed the connection
// over in the middle. A difference in framing is a smuggling hazard behind a proxy that
// frames as net/http does.
//
// The answers are compared as HTTP reads them (status, header, body), for the
// differences docs/operations.md lists: an answer of more than 2 KiB is chunked by
// net/http only, and the two order Connection: close differently among the headers.
// The echo's "served" says which path served the request. Two more are deliberate and
// left out: a head with both Transfer-Encoding and Content-Length, which the fast path
// refuses and net/http reads as chunked (refuseConflict); and the answer to a request
// whose body the client's closing cut short, which the fast path marks Connection:
// close where net/http closes without saying so (nothing more can come on it).
func FuzzConn(f *testing.F) {
	form := "apiKey=3_x&userInfo=%7B%22firstName%22%3A%22Ada%22%7D"
	for _, seed := range []string{
		"POST /socialize.setUserInfo HTTP/1.1\r\nHost: h\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: " + strconv.Itoa(len(form)) + "\r\n\r\n" + form,
		"GET /a HTTP/1.1\r\nHost: h\r\n\r\nPOST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nxyzGET /c?d HTTP/1.1\r\nHost: h\r\n\r\n",
		"POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nxyz\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n",
		"GET /a HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n",
		"GET /a HTTP/1.1\r\nHost: h\r\n\r\nPUT /b HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n\r\nxGET /c HTTP/1.1\r\nHost: h\r\n\r\n",
		"POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n",
		"POST /a HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nabGET /b HTTP/1.1\r\nHost: h\r\n\r\n",
		"POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc",
		"POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 3000\r\n\r\n" + strings.Repeat("x", 3000),
		"GET /a HTTP/1.1\nHost: h\n\n",
		"GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /socialize.getUserInfo HTTP/1.1\r\nHost: x\r\n",
		"GET http://h/a?b HTTP/1.1\r\nHost: other\r\n\r\n",
	} {
		f.Add([]byte(seed))
	}
	fastAddr, _ := start(f, http.HandlerFunc(echo), true, nil)
	netAddr, _ := start(f, http.HandlerFunc(echo), false, nil)
	f.Fuzz(func(t *testing.T, raw []byte) {
		if lower := bytes.ToLower(raw); bytes.Contains(lower, []byte("transfer-encoding")) && bytes.Contains(lower, []byte("content-length")) {
			return
		}
		want, ok := converse(t, netAddr, raw)
		if !ok {
			return
		}
		got, ok := converse(t, fastAddr, raw)
		if !ok {
			return
		}
		if g, w := readAll(got), readAll(want); !slices.Equal(g, w) {
			t.Fatalf("%q:\nfast path %q\nnet/http  %q", raw, g, w)
		}
	})
}

// converse sends raw on a new connection to addr, closes its sending side, and returns
// all the server answered until it closed the connection. It reports false when the
// connection was reset (a server closing with bytes unread may reset it, and the
// client then loses answers by chance) and fails t when the server never closes it.
func converse(t *testing.T, addr string, raw []byte) ([]byte, bool) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	go func() {
		c.Write(raw)
		c.(*net.TCPConn).CloseWrite()
	}()
	answer, err := io.ReadAll(c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("%q: %s kept the connection open for 10 s after the client's last byte", raw, addr)
	}
	return answer, err == nil
}

// readAll reads the answers on a connection as a client reads them: each as its status
// line, its header in order of name (without the framing's Content-Length and
// Transfer-Encoding, and with the echo's "served" left out of the body) and its body;
// then any bytes that are not an answer.
func readAll(stream []byte) []string {
	var answers []string
	br := bufio.NewReader(bytes.NewReader(stream))
	for {
		if _, err := br.Peek(1); err != nil {
			return answers
		}
		rest, _ := br.Peek(br.Buffered())
		rest = slices.Clone(rest)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return append(answers, fmt.Sprintf("not an answer: %q", rest))
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return append(answers, fmt.Sprintf("%s, its body cut: %v", resp.Status, err))
		}
		body = bytes.ReplaceAll(body, []byte(`"served":"fast"`), []byte(`"served":"slow"`))
		header := resp.Header.Clone()
		header.Del("Content-Length")
		header.Del("Transfer-Encoding")
		if bytes.Contains(body, []byte(`"readErr":"unexpected EOF"`)) {
			header.Del("Connection")
		}
		var b strings.Builder
		fmt.Fprintf(&b, "%s %s\n", resp.Proto, resp.Status)
		for _, name := range slices.Sorted(maps.Keys(header)) {
			fmt.Fprintf(&b, "%s: %q\n", name, header[name])
		}
		b.Write(body)
		answers = append(answers, b.String())
	}
}
