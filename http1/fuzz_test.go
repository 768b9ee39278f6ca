package http1

import (
	"bufio"
	"bytes"
	"maps"
	"net/http"
	"slices"
	"testing"
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
