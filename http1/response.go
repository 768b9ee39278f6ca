package http1

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// maxBuffered is how much of an answer's body is held so that the answer goes out
// in one write with its Content-Length; past it, the head is sent and the body
// streams (chunked, unless the handler gave a Content-Length).
const maxBuffered = 256 << 10

// response is the fast path's http.ResponseWriter. The head is built when the handler
// calls WriteHeader (or first writes), from the header as it is then, as net/http
// does; the body is buffered and goes out with the head in one write when the handler
// returns, unless it grows past maxBuffered.
type response struct {
	c       *conn
	reqBody *bodyReader // its 100 Continue is not sent once the answer has begun
	header  http.Header
	status  int
	// head holds the status line, the handler's header and Date, built by WriteHeader;
	// the framing headers are added when the answer goes out.
	headBuf   *[]byte
	head      []byte
	buf       *[]byte  // the pooled buffer body lives in
	body      []byte   // the buffered body
	declared  int64    // the handler's valid Content-Length; -1: none
	hasType   bool     // the handler set Content-Type (or needs none): no sniffing
	keepConn  []string // the handler's Connection header, written unless the answer closes
	streaming bool     // the head is sent; further writes go out as they come
	chunked   bool
	sent      int64
	// close: the answer is the connection's last (the request's or the handler's
	// Connection: close, Shutdown, a failed write): what is left of the request's body
	// is not waited for (Server.serveRequest).
	close bool
	err   error
}

// errFinished is what a write after the handler's return gets.
var errFinished = errors.New("http1: write after the handler returned")

// buffers hold answers being built; one that grew large is not kept.
var buffers = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

const maxPooled = 64 << 10

func putBuffer(p *[]byte, b []byte) {
	if p != nil && cap(b) <= maxPooled {
		*p = b[:0]
		buffers.Put(p)
	}
}

func (w *response) Header() http.Header { return w.header }

// SetWriteDeadline sets the connection's write deadline, as net/http's ResponseWriter
// does for http.ResponseController; the next request's head sets it again.
func (w *response) SetWriteDeadline(t time.Time) error { return w.c.rwc.SetWriteDeadline(t) }

func (w *response) WriteHeader(code int) {
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code)) // as net/http
	}
	if w.status != 0 || code < 200 || w.err != nil {
		return // a second call, or an informational answer, which the fast path does not send
	}
	w.status = code
	w.snapshot()
}

// snapshot builds the head from the header as it is now: later changes to the header
// are not sent (as with net/http).
func (w *response) snapshot() {
	w.headBuf = buffers.Get().(*[]byte)
	out := append((*w.headBuf)[:0], statusLine(w.status)...)
	w.declared = -1
	_, w.hasType = w.header["Content-Type"]
	if w.header["Content-Encoding"] != nil {
		w.hasType = true // as net/http: an encoded body is not sniffed
	}
	keys := w.c.keys[:0]
	for k, vs := range w.header {
		switch k {
		case "Transfer-Encoding":
			continue // the fast path frames the body itself
		case "Connection":
			w.keepConn = vs
			if len(vs) > 0 && hasToken([]byte(vs[0]), "close") {
				w.close = true
			}
			continue // written with the framing
		case "Content-Length":
			if len(vs) == 0 || !bodyAllowed(w.status) {
				continue
			}
			n, ok := parseLength([]byte(vs[0]))
			if !ok {
				continue // as net/http: an invalid length is not sent
			}
			w.declared = n
		case "Content-Type":
			if w.status == http.StatusNotModified {
				continue // as net/http: a 304 has no Content-Type
			}
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !validName([]byte(k)) {
			continue // as net/http: an invalid name is dropped, not sent
		}
		for _, v := range w.header[k] {
			out = append(out, k...)
			out = append(out, ": "...)
			out = appendValue(out, v)
			out = append(out, "\r\n"...)
		}
	}
	w.c.keys = keys[:0]
	if _, ok := w.header["Date"]; !ok {
		out = append(out, "Date: "...)
		out = append(out, httpDate()...)
		out = append(out, "\r\n"...)
	}
	w.head = out
}

func (w *response) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if !bodyAllowed(w.status) {
		return 0, http.ErrBodyNotAllowed
	}
	if w.reqBody != nil {
		w.reqBody.canContinue = false // as net/http: the answer has begun
	}
	if w.declared >= 0 && w.sent+int64(len(w.body)+len(p)) > w.declared {
		return 0, http.ErrContentLength // as net/http: nothing past the declared length
	}
	if !w.streaming {
		if len(w.body)+len(p) <= maxBuffered {
			if w.buf == nil {
				w.buf = buffers.Get().(*[]byte)
				w.body = (*w.buf)[:0]
			}
			w.body = append(w.body, p...)
			return len(p), nil
		}
		if err := w.startStreaming(p); err != nil {
			return 0, err
		}
	}
	if err := w.send(p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// startStreaming sends the head and what is buffered; next is the write that did not
// fit, to sniff the Content-Type from when nothing was buffered.
func (w *response) startStreaming(next []byte) error {
	w.streaming = true
	w.chunked = w.declared < 0
	sniff := w.body
	if len(sniff) == 0 {
		sniff = next
	}
	_, err := w.c.rwc.Write(w.framing(-1, sniff))
	w.releaseHead()
	if err != nil {
		w.err, w.close = err, true
		return err
	}
	body := w.body
	err = w.send(body)
	putBuffer(w.buf, body)
	w.buf, w.body = nil, nil
	return err
}

func (w *response) releaseHead() {
	putBuffer(w.headBuf, w.head)
	w.headBuf, w.head = nil, nil
}

// send writes p as it comes, a chunk of its own when chunked.
func (w *response) send(p []byte) error {
	if len(p) == 0 {
		return nil
	}
	var err error
	if w.chunked {
		// The chunk's size line, its bytes and its end in one system call, without
		// copying the bytes.
		size := strconv.AppendInt(make([]byte, 0, 20), int64(len(p)), 16)
		bufs := net.Buffers{append(size, "\r\n"...), p, []byte("\r\n")}
		_, err = bufs.WriteTo(w.c.rwc)
	} else {
		_, err = w.c.rwc.Write(p)
	}
	if err != nil {
		w.err, w.close = err, true
		return err
	}
	w.sent += int64(len(p))
	return nil
}

// finish writes the answer, or ends the streamed one. The writer takes no more
// writes after it.
func (w *response) finish() error {
	defer func() {
		w.releaseHead()
		putBuffer(w.buf, w.body)
		w.buf, w.body = nil, nil
		if w.err == nil {
			w.err = errFinished
		}
	}()
	if w.err != nil {
		return w.err
	}
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if w.streaming {
		if w.chunked {
			_, err := io.WriteString(w.c.rwc, "0\r\n\r\n")
			return err
		}
		if w.sent != w.declared {
			w.close = true // the client waits for bytes that never come: end it
		}
		return nil
	}
	buf := append(w.framing(int64(len(w.body)), w.body), w.body...)
	if w.declared >= 0 && int64(len(w.body)) != w.declared {
		w.close = true // as net/http: the declared length went out; the connection ends
	}
	_, err := w.c.rwc.Write(buf)
	w.head = buf
	return err
}

// framing completes the head with what net/http adds after the handler's header, in
// its order: Content-Length (unless declared), a sniffed Content-Type, Connection,
// Transfer-Encoding. length is the body's length, or -1 when the body streams.
func (w *response) framing(length int64, sniff []byte) []byte {
	out := w.head
	if w.c.s.closing.Load() {
		w.close = true // Shutdown has begun: this answer is the connection's last
	}
	allowed := bodyAllowed(w.status)
	if allowed && w.declared < 0 && length >= 0 {
		out = append(out, "Content-Length: "...)
		out = strconv.AppendInt(out, length, 10)
		out = append(out, "\r\n"...)
	}
	if allowed && !w.hasType && len(sniff) > 0 {
		out = append(out, "Content-Type: "...)
		out = append(out, http.DetectContentType(sniff)...)
		out = append(out, "\r\n"...)
	}
	switch {
	case w.close:
		out = append(out, "Connection: close\r\n"...)
	case len(w.keepConn) > 0:
		for _, v := range w.keepConn {
			out = append(out, "Connection: "...)
			out = appendValue(out, v)
			out = append(out, "\r\n"...)
		}
	}
	if allowed && w.chunked {
		out = append(out, "Transfer-Encoding: chunked\r\n"...)
	}
	return append(out, "\r\n"...)
}

// appendValue appends a header value with CR and LF made spaces, as net/http sends
// them, so that no value can add a header line.
func appendValue(out []byte, v string) []byte {
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c == '\r' || c == '\n' {
			c = ' '
		}
		out = append(out, c)
	}
	return out
}

func bodyAllowed(status int) bool {
	return status >= 200 && status != http.StatusNoContent && status != http.StatusNotModified
}

// statusLines are the status lines of the codes Socius answers, built once.
var statusLines = func() map[int]string {
	m := make(map[int]string)
	for code := 200; code < 600; code++ {
		if text := http.StatusText(code); text != "" {
			m[code] = "HTTP/1.1 " + strconv.Itoa(code) + " " + text + "\r\n"
		}
	}
	return m
}()

func statusLine(code int) string {
	if s, ok := statusLines[code]; ok {
		return s
	}
	return "HTTP/1.1 " + strconv.Itoa(code) + " status code " + strconv.Itoa(code) + "\r\n"
}

// dateCache holds the Date header's value of the current second.
type dateValue struct {
	unix int64
	text string
}

var dateCache atomic.Pointer[dateValue]

func httpDate() string {
	now := time.Now()
	if d := dateCache.Load(); d != nil && d.unix == now.Unix() {
		return d.text
	}
	d := &dateValue{unix: now.Unix(), text: now.UTC().Format(http.TimeFormat)}
	dateCache.Store(d)
	return d.text
}
