package http1

import (
	"bufio"
	"bytes"
	"errors"
	"net/http"
	"net/url"
)

// errNotMine says the request is not for the fast path: its connection goes to net/http.
var errNotMine = errors.New("http1: request for net/http")

// readHead returns the request's head, from its first byte to the empty line that ends
// it, still in br's buffer (nothing is consumed). A head that does not fit the buffer,
// a line ending in a bare LF and an empty first line are errNotMine; other errors are
// the connection's. A positive limit lowers the largest head taken. wait, if not nil,
// is called once before the first read that has to wait for more bytes.
func readHead(br *bufio.Reader, limit int, wait func()) ([]byte, error) {
	size := br.Size()
	if limit > 0 && limit < size {
		size = limit
	}
	scanned, lineStart := 0, 0
	for {
		buf, _ := br.Peek(br.Buffered())
		for {
			i := bytes.IndexByte(buf[scanned:], '\n')
			if i < 0 {
				break
			}
			end := scanned + i // the LF
			if end == 0 || buf[end-1] != '\r' {
				return nil, errNotMine
			}
			if end-1 == lineStart { // an empty line
				if lineStart == 0 {
					return nil, errNotMine
				}
				if end+1 > size {
					return nil, errNotMine
				}
				return buf[:end+1], nil
			}
			scanned, lineStart = end+1, end+1
		}
		scanned = len(buf)
		if len(buf) >= size {
			return nil, errNotMine
		}
		if wait != nil {
			wait()
			wait = nil
		}
		if _, err := br.Peek(len(buf) + 1); err != nil {
			return nil, err
		}
	}
}

// request is what parseRequest read of a request's head.
type request struct {
	method         string
	target         string
	url            *url.URL
	host           string
	header         http.Header
	contentLength  int64
	close          bool
	expectContinue bool // Expect: 100-continue
}

// parse is parseRequest with the connection's last target and host reused.
func (c *conn) parse(head []byte) (*request, bool) {
	return parseRequest(head, c)
}

// parseRequest reads a head that readHead returned. It reports false for every request
// that is not of the fast path's shape, valid as net/http would take it or not, so that
// net/http answers it as it would have. c, if not nil, keeps the last target and host.
func parseRequest(head []byte, c *conn) (*request, bool) {
	line, rest, _ := bytes.Cut(head, crlf)
	var p *request
	if c != nil {
		p = &c.req // its fields go to the handler's request; the struct is the connection's
		*p = request{}
	} else {
		p = new(request)
	}
	switch {
	case bytes.HasPrefix(line, []byte("POST ")):
		p.method, line = http.MethodPost, line[5:]
	case bytes.HasPrefix(line, []byte("GET ")):
		p.method, line = http.MethodGet, line[4:]
	default:
		return nil, false
	}
	target, version, ok := bytes.Cut(line, []byte(" "))
	// A path, or an absolute URL in lower-case http or https (what an SDK sends
	// through an HTTP proxy); anything else (*, authority-form, other schemes) goes to
	// net/http.
	absolute := bytes.HasPrefix(target, []byte("http://")) || bytes.HasPrefix(target, []byte("https://"))
	if !ok || string(version) != "HTTP/1.1" || len(target) == 0 || target[0] != '/' && !absolute {
		return nil, false
	}
	for _, b := range target {
		if b <= ' ' || b >= 0x7f {
			return nil, false
		}
	}
	if c != nil && c.lastTarget != "" && string(target) == c.lastTarget {
		p.target = c.lastTarget
		u := c.lastURL // a copy: a handler may change its request's URL
		p.url = &u
	} else {
		p.target = string(target)
		u, err := url.ParseRequestURI(p.target)
		if err != nil {
			return nil, false
		}
		p.url = u
		if c != nil {
			c.lastTarget, c.lastURL = p.target, *u
		}
	}
	lines := bytes.Count(rest, crlf) - 1 // the last is the empty line
	p.header = make(http.Header, lines)
	values := make([]string, lines) // one allocation for every header's value slice
	haveHost, haveLength := false, false
	for len(rest) > 2 {
		line, rest, _ = bytes.Cut(rest, crlf)
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || !validName(line[:colon]) {
			return nil, false // also a folded line, which starts with a space
		}
		value := trimSpace(line[colon+1:])
		if !validValue(value) {
			return nil, false
		}
		key := canonicalName(line[:colon])
		switch key {
		case "Host":
			if haveHost || !validHost(value) {
				return nil, false
			}
			haveHost = true
			if c != nil && string(value) == c.lastHost {
				p.host = c.lastHost
			} else {
				p.host = string(value)
				if c != nil {
					c.lastHost = p.host
				}
			}
			continue // net/http keeps it in Request.Host only
		case "Content-Length":
			n, ok := parseLength(value)
			if haveLength || !ok {
				return nil, false
			}
			haveLength = true
			p.contentLength = n
		case "Expect":
			// 100-continue, as net/http serves it; any other expectation, or a second
			// Expect, goes to net/http (417).
			if p.expectContinue || !hasToken(value, "100-continue") {
				return nil, false
			}
			p.expectContinue = true
		case "Transfer-Encoding":
			return nil, false
		case "Connection":
			if hasToken(value, "close") {
				p.close = true
			}
		}
		v := c.value(key, value)
		if old := p.header[key]; old != nil {
			p.header[key] = append(old, v)
			continue
		}
		values[0] = v
		p.header[key] = values[:1:1]
		values = values[1:]
	}
	if !haveHost {
		return nil, false // required with an absolute URL too, as net/http requires it
	}
	if p.url.Host != "" {
		p.host = p.url.Host // as net/http: an absolute URL's host wins over Host
	}
	if pragma := p.header["Pragma"]; len(pragma) > 0 && pragma[0] == "no-cache" && p.header["Cache-Control"] == nil {
		p.header["Cache-Control"] = []string{"no-cache"} // as net/http does
	}
	return p, true
}

var crlf = []byte("\r\n")

// headStart is b up to the end of the head it starts with (the first empty line, after
// CRLF or a bare LF), or b whole when the head goes on past it.
func headStart(b []byte) []byte {
	for i := 0; i < len(b); i++ {
		if b[i] != '\n' {
			continue
		}
		switch {
		case i+1 < len(b) && b[i+1] == '\n':
			return b[:i+1]
		case i+2 < len(b) && b[i+1] == '\r' && b[i+2] == '\n':
			return b[:i+1]
		}
	}
	return b
}

// framingConflict reports whether a head (or its start) has both a Transfer-Encoding
// and a Content-Length header, in any letter case, its lines ended by CRLF or a bare
// LF (which net/http takes too).
func framingConflict(head []byte) bool {
	_, rest, _ := bytes.Cut(head, []byte("\n"))
	te, cl := false, false
	for len(rest) > 0 {
		var line []byte
		line, rest, _ = bytes.Cut(rest, []byte("\n"))
		name, _, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		switch {
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			te = true
		case bytes.EqualFold(name, []byte("Content-Length")):
			cl = true
		}
	}
	return te && cl
}

// validName reports whether b is an HTTP token (RFC 9110), as a header name must be.
func validName(b []byte) bool {
	for _, c := range b {
		if !isToken[c] {
			return false
		}
	}
	return true
}

var isToken = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

// validValue refuses control characters but the tab, as net/http does.
func validValue(b []byte) bool {
	for _, c := range b {
		if c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// validHost takes the host names and addresses clients send (a stricter set than
// net/http's: anything else goes to net/http, which decides).
func validHost(b []byte) bool {
	for _, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '.' || c == '-' || c == ':' || c == '[' || c == ']' || c == '_') {
			return false
		}
	}
	return true
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// parseLength reads a Content-Length: digits only, at most 18 of them.
func parseLength(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// hasToken reports whether the comma-separated list v has token t (lower case), in
// any ASCII case: as net/http, no Unicode folding ("cloſe" is not "close").
func hasToken(v []byte, t string) bool {
	for len(v) > 0 {
		var item []byte
		item, v, _ = bytes.Cut(v, []byte(","))
		if asciiEqualFold(trimSpace(item), t) {
			return true
		}
	}
	return false
}

func asciiEqualFold(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// canonicalName is textproto's canonical form of a valid header name, without an
// allocation for the names clients commonly send.
func canonicalName(b []byte) string {
	var buf [64]byte
	if len(b) > len(buf) {
		return http.CanonicalHeaderKey(string(b))
	}
	c := buf[:len(b)]
	upper := true
	for i, ch := range b {
		switch {
		case upper && 'a' <= ch && ch <= 'z':
			ch -= 'a' - 'A'
		case !upper && 'A' <= ch && ch <= 'Z':
			ch += 'a' - 'A'
		}
		c[i] = ch
		upper = ch == '-'
	}
	if s, ok := commonNames[string(c)]; ok {
		return s
	}
	return string(c)
}

var commonNames = interned(
	"Accept", "Accept-Charset", "Accept-Encoding", "Accept-Language", "Authorization",
	"Cache-Control", "Connection", "Content-Length", "Content-Type", "Cookie", "Host",
	"Keep-Alive", "Origin", "Pragma", "Referer", "Te", "Transfer-Encoding", "Expect",
	"User-Agent", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto",
	"X-Real-Ip", "X-Request-Id", "Forwarded", "Via",
)

// interned maps each of the strings to itself: a lookup by the bytes of a request
// gives the string without allocating one.
func interned(list ...string) map[string]string {
	m := make(map[string]string, len(list))
	for _, s := range list {
		m[s] = s
	}
	return m
}

// value is string(b) for the header key, without an allocation when the connection's
// last request had the same value (a client sends the same User-Agent, Content-Type,
// ... each time) or the value is a common one.
func (c *conn) value(key string, b []byte) string {
	if c == nil {
		return internValue(b)
	}
	for i := range c.values {
		if kv := &c.values[i]; kv.key == key {
			if kv.value != string(b) {
				kv.value = internValue(b)
			}
			return kv.value
		}
	}
	v := internValue(b)
	if c.nvalues < len(c.values) {
		c.values[c.nvalues] = keyValue{key, v}
		c.nvalues++
	}
	return v
}

type keyValue struct{ key, value string }

// internValue is string(b), without an allocation for values clients commonly send.
func internValue(b []byte) string {
	if s, ok := commonValues[string(b)]; ok {
		return s
	}
	return string(b)
}

var commonValues = interned(
	"application/x-www-form-urlencoded", "application/x-www-form-urlencoded; charset=utf-8",
	"application/x-www-form-urlencoded; charset=UTF-8", "keep-alive", "Keep-Alive", "close",
	"*/*", "gzip", "gzip, deflate", "gzip, deflate, br", "application/json", "no-cache",
)
