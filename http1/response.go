package http1

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"sync/atomic"
	"time"
)

// maxBuffered is how much of an answer's body is held so that the answer goes out
// in one write with its Content-Length; past it, the head is sent and the body
// streams (chunked, unless the handler gave a Content-Length).
const maxBuffered = 256 << 10

// response is the fast path's http.ResponseWriter. The head and the body are built in
// the connection's buffer and written once, when the handler returns.
type response struct {
	c         *conn
	header    http.Header
	status    int
	body      []byte // the buffered body (the connection's, reused)
	streaming bool   // the head is sent; further writes go out as they come
	chunked   bool
	declared  int64 // the handler's Content-Length while streaming; -1: none
	sent      int64
	close     bool
	err       error
	sniff     []byte // what the Content-Type is sniffed from, if the handler set none
}

func (w *response) Header() http.Header { return w.header }

func (w *response) WriteHeader(code int) {
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code)) // as net/http
	}
	if w.status != 0 || code < 200 {
		return // a second call, or an informational answer, which the fast path does not send
	}
	w.status = code
}

func (w *response) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if !bodyAllowed(w.status) {
		return 0, http.ErrBodyNotAllowed
	}
	if w.err != nil {
		return 0, w.err
	}
	if !w.streaming {
		if len(w.body)+len(p) <= maxBuffered {
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
	w.sniff = w.body
	if len(w.sniff) == 0 {
		w.sniff = next
	}
	w.declared = -1
	if v := w.header.Get("Content-Length"); v != "" {
		if n, ok := parseLength([]byte(v)); ok {
			w.declared = n
		}
	}
	w.chunked = w.declared < 0
	out := w.head(w.c.out[:0], -1)
	w.c.out = out
	w.sniff = nil
	if _, err := w.c.rwc.Write(out); err != nil {
		w.err, w.close = err, true
		return err
	}
	body := w.body
	w.body = nil
	return w.send(body)
}

// send writes p as it comes, a chunk of its own when chunked.
func (w *response) send(p []byte) error {
	if len(p) == 0 {
		return nil
	}
	if w.declared >= 0 && w.sent+int64(len(p)) > w.declared {
		w.close = true
		return http.ErrContentLength
	}
	out := p
	if w.chunked {
		out = strconv.AppendInt(w.c.out[:0], int64(len(p)), 16)
		out = append(out, "\r\n"...)
		out = append(out, p...)
		out = append(out, "\r\n"...)
		w.c.out = out
	}
	if _, err := w.c.rwc.Write(out); err != nil {
		w.err, w.close = err, true
		return err
	}
	w.sent += int64(len(p))
	return nil
}

// finish writes the answer, or ends the streamed one.
func (w *response) finish() error {
	if w.err != nil {
		return w.err
	}
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if w.streaming {
		if w.chunked {
			_, err := w.c.rwc.Write([]byte("0\r\n\r\n"))
			return err
		}
		if w.sent != w.declared {
			w.close = true // the client waits for bytes that never come: end it
		}
		return nil
	}
	w.sniff = w.body
	out := w.head(w.c.out[:0], int64(len(w.body)))
	out = append(out, w.body...)
	w.c.out = out
	_, err := w.c.rwc.Write(out)
	if cap(w.c.out) > 64<<10 {
		w.c.out = nil // one large answer does not pin its buffer to the connection
	}
	return err
}

// head appends the status line and the header; length is the body's length, or -1
// when the body streams.
func (w *response) head(out []byte, length int64) []byte {
	out = append(out, statusLine(w.status)...)
	if w.c.s.closing.Load() {
		w.close = true // Shutdown has begun: this answer is the connection's last
	}
	if v := w.header["Connection"]; len(v) > 0 && hasToken([]byte(v[0]), "close") {
		w.close = true
	}
	keys := w.c.keys[:0]
	for k := range w.header {
		switch k {
		case "Content-Length", "Transfer-Encoding", "Connection":
			continue // written below
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
	if _, ok := w.header["Content-Type"]; !ok && len(w.sniff) > 0 && bodyAllowed(w.status) {
		out = append(out, "Content-Type: "...)
		out = append(out, http.DetectContentType(w.sniff)...)
		out = append(out, "\r\n"...)
	}
	switch {
	case !bodyAllowed(w.status):
	case length >= 0:
		out = append(out, "Content-Length: "...)
		out = strconv.AppendInt(out, length, 10)
		out = append(out, "\r\n"...)
	case w.chunked:
		out = append(out, "Transfer-Encoding: chunked\r\n"...)
	default:
		out = append(out, "Content-Length: "...)
		out = strconv.AppendInt(out, w.declared, 10)
		out = append(out, "\r\n"...)
	}
	if w.close {
		out = append(out, "Connection: close\r\n"...)
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
