// Package http1 serves HTTP/1.1 requests of the shape API clients send (GET or
// POST, a path or an http(s) URL as target, Content-Length or no body, Expect:
// 100-continue or none, a head that fits 4 KiB) to an http.Handler itself, and hands
// every other connection to a net/http server. It serves plain TCP connections and TLS
// ones (a listener from tls.NewListener): it runs their handshake as net/http does and
// gives the requests their TLS state (r.TLS), on the fast path and after a handover.
//
// Why: a signed setUserInfo or getUserInfo costs Socius tens of microseconds of its
// own, and net/http's per-request work (a goroutine reading in the background to notice
// a client gone away, a context with cancellation, header maps built from textproto,
// a buffered writer per request) costs about as much again: on a machine shared with
// the clients that is throughput and tail latency lost (docs/performance.md).
//
// The fast path is deliberately narrow. A connection is handed to Fallback, with the
// bytes already read, the moment a request is anything else: another method, HTTP/1.0,
// chunked bodies, another expectation, a bare LF, a malformed or too long head. net/http
// then serves that connection until it closes, with its own checks and answers (400,
// 431, 417 ...), so unusual requests get exactly net/http's behaviour and the fast path
// never has to answer a request it did not understand.
//
// What the fast path does not give a handler: the request's context is not cancelled
// when the client goes away (nothing reads the connection while the handler runs; it
// ends when the handler returns, or at Close), and the ResponseWriter has no Flush or
// Hijack. Handlers that need either are served by net/http (Socius serves its
// emulator, whose fault delays end when the client gives up, through net/http alone).
// The writer otherwise follows net/http's rules: the header as it was at WriteHeader,
// Date, sniffing, the declared Content-Length, no body for 204 and 304.
package http1

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// headBuffer is the size of a connection's read buffer: a request's head must fit in
// it, or the connection goes to net/http (which allows MaxHeaderBytes).
const headBuffer = 4 << 10

// maxDiscard bounds what is left unread of a request body that is read and dropped to
// keep the connection: less than it is, and from it on the connection is closed after
// the answer (as net/http, which closes at 256 KiB left).
const maxDiscard = 256 << 10

// conflictWriteTimeout bounds the write of the refusal of a request whose framing
// conflicts.
const conflictWriteTimeout = 5 * time.Second

// Server serves HTTP/1.1 connections. Its zero value is not usable: Handler and
// Fallback are needed. Fallback's Handler should be Handler (the connections it gets
// are the same clients'); its timeouts apply to the connections it gets.
type Server struct {
	Handler  http.Handler
	Fallback *http.Server

	// As in http.Server: ReadHeaderTimeout bounds the wait for a request's head (0:
	// ReadTimeout) and ReadTimeout the whole request, both from the connection's start
	// for its first request and from a later request's first bytes; WriteTimeout runs
	// from the end of the head to the end of the answer; IdleTimeout is the wait for a
	// next request on a kept connection (0: ReadTimeout). 0 is no limit.
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	WriteTimeout      time.Duration
	IdleTimeout       time.Duration
	// MaxHeaderBytes: a longer head goes to Fallback, which applies its own limit.
	MaxHeaderBytes int

	// ConnState, if set, is told of the fast path's connections' states as
	// http.Server tells its own. A connection handed over is reported StateHijacked;
	// Fallback then reports it again (as another net.Conn) with its own hook.
	ConnState func(net.Conn, http.ConnState)

	// ErrorLog receives handler panics, failed TLS handshakes and accept errors that
	// are retried; nil: the log package's logger.
	ErrorLog *log.Logger

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}
	handoff   *handoffListener
	fallback  chan error // Fallback.Serve's end
	closing   atomic.Bool
	ctx       context.Context
	cancel    context.CancelFunc
}

// ErrServerClosed is what Serve returns after Shutdown or Close: http.ErrServerClosed,
// so that callers treat both servers alike.
var ErrServerClosed = http.ErrServerClosed

// Serve accepts connections on ln until Shutdown or Close, and serves each on a
// goroutine of its own.
func (s *Server) Serve(ln net.Listener) error {
	if !s.track(ln) {
		ln.Close()
		return ErrServerClosed
	}
	defer s.untrack(ln)
	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.closing.Load() {
				return ErrServerClosed
			}
			// As net/http: an accept error that says it is temporary (EMFILE, ...) is
			// retried after a growing pause, and logged in net/http's words, so that
			// the log says why no client gets in.
			if te, ok := err.(interface{ Temporary() bool }); ok && te.Temporary() {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.logf("http: Accept error: %v; retrying in %v", err, delay)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		c := s.newConn(nc)
		if c == nil {
			nc.Close()
			continue
		}
		go c.serve()
	}
}

// track registers a listener and, the first time, starts the fallback server.
func (s *Server) track(ln net.Listener) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing.Load() {
		return false
	}
	if s.listeners == nil {
		s.listeners = make(map[net.Listener]struct{})
		s.conns = make(map[*conn]struct{})
		s.ctx, s.cancel = context.WithCancel(context.Background())
		s.handoff = newHandoffListener(ln.Addr())
		s.fallback = make(chan error, 1)
		go func() { s.fallback <- s.Fallback.Serve(s.handoff) }()
	}
	s.listeners[ln] = struct{}{}
	return true
}

func (s *Server) untrack(ln net.Listener) {
	s.mu.Lock()
	delete(s.listeners, ln)
	s.mu.Unlock()
}

// Shutdown stops accepting, closes the connections waiting for a request, lets the
// others finish the request under way and close, and waits for that (or for ctx). The
// fallback server is shut down alongside.
func (s *Server) Shutdown(ctx context.Context) error {
	s.closing.Store(true)
	s.mu.Lock()
	for ln := range s.listeners {
		ln.Close()
	}
	fallback := s.fallback != nil
	if s.handoff != nil {
		s.handoff.Close()
	}
	s.mu.Unlock()
	errc := make(chan error, 1)
	if fallback {
		go func() { errc <- s.Fallback.Shutdown(ctx) }()
	} else {
		errc <- nil
	}
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !s.closeIdle() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	return <-errc
}

// closeIdle closes the connections between requests and reports whether none is left.
func (s *Server) closeIdle() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		if c.state.CompareAndSwap(stateIdle, stateClosed) {
			c.rwc.Close()
		}
	}
	return len(s.conns) == 0
}

// Close closes the listeners and every connection at once, and the fallback server.
func (s *Server) Close() error {
	s.closing.Store(true)
	s.mu.Lock()
	defer s.mu.Unlock()
	for ln := range s.listeners {
		ln.Close()
	}
	for c := range s.conns {
		c.rwc.Close()
	}
	if s.cancel != nil {
		s.cancel()
	}
	if s.handoff != nil {
		s.handoff.Close()
		return s.Fallback.Close()
	}
	return nil
}

func (s *Server) newConn(nc net.Conn) *conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing.Load() {
		return nil
	}
	c := &conn{s: s, rwc: nc, remote: nc.RemoteAddr().String(), ctx: s.ctx}
	s.conns[c] = struct{}{}
	s.setState(nc, http.StateNew)
	return c
}

func (s *Server) setState(nc net.Conn, state http.ConnState) {
	if s.ConnState != nil {
		s.ConnState(nc, state)
	}
}

func (s *Server) logf(format string, args ...any) {
	if s.ErrorLog != nil {
		s.ErrorLog.Printf(format, args...)
		return
	}
	log.Printf(format, args...)
}

// A connection's states. Idle: waiting for a request, or reading its head (a
// connection without a request yet too); Shutdown closes it. Active: from a whole head
// to the end of the answer. Closed: by Shutdown. Idle to active and idle to closed are
// compare-and-swaps, so that Shutdown never closes a connection that has begun a call.
const (
	stateIdle int32 = iota
	stateActive
	stateClosed
)

// conn is one client connection on the fast path.
type conn struct {
	s      *Server
	rwc    net.Conn
	br     *bufio.Reader
	remote string
	ctx    context.Context
	state  atomic.Int32 // stateIdle, stateActive or stateClosed
	keys   []string     // header names being sorted, reused
	start  time.Time    // the first byte of the request under way
	// The last request's target and host, and the URL parsed from the target: a
	// client sends the same ones again and again.
	lastTarget string
	lastURL    url.URL
	lastHost   string
	req        request
	values     [8]keyValue // header values of the last requests, by name (see value)
	nvalues    int
	afterPOST  bool // the last request was a POST (see serve)
	unread     bool // closing with request bytes unread (see lingerClose)
	// tlsState is the TLS connection's state after its handshake, shared by its
	// requests as net/http shares it; nil on a plain connection.
	tlsState *tls.ConnectionState
}

var readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, headBuffer) }}

// serve runs the connection's requests until it closes or is handed over.
func (c *conn) serve() {
	handedOver := false
	defer func() {
		if v := recover(); v != nil && v != http.ErrAbortHandler {
			c.s.logf("http1: panic serving %s: %v\n%s", c.remote, v, debug.Stack())
		}
		if !handedOver {
			if c.unread {
				c.lingerClose()
			}
			c.rwc.Close()
			c.s.setState(c.rwc, http.StateClosed)
			c.br.Reset(nil)
			readers.Put(c.br)
		}
		c.s.mu.Lock()
		delete(c.s.conns, c)
		c.s.mu.Unlock()
	}()
	c.br = readers.Get().(*bufio.Reader)
	c.br.Reset(c.rwc)
	if tc, ok := c.rwc.(*tls.Conn); ok && !c.handshake(tc) {
		return
	}
	// As net/http: the first request's head and body are timed from the connection's
	// start, a later request's from its first byte (the wait for it is IdleTimeout).
	c.start = time.Now()
	c.rwc.SetReadDeadline(c.headDeadline())
	first := true
	for {
		if !first {
			// As net/http: the wait for the next request is IdleTimeout's until four
			// bytes have come (no request is shorter); its head's time starts then.
			wait := c.s.IdleTimeout
			if wait == 0 {
				wait = c.s.ReadTimeout
			}
			c.rwc.SetReadDeadline(deadline(time.Now(), wait))
			if _, err := c.br.Peek(4); err != nil {
				return
			}
			c.start = time.Now()
		} else if _, err := c.br.Peek(1); err != nil {
			return
		}
		first = false
		if c.afterPOST {
			// As net/http: up to four CR or LF left after a POST's body by old clients
			// are skipped.
			c.afterPOST = false
			peek, _ := c.br.Peek(4)
			n := 0
			for n < len(peek) && (peek[n] == '\r' || peek[n] == '\n') {
				n++
			}
			c.br.Discard(n)
		}
		// The connection stays idle, for Shutdown to close, until its head is whole (as
		// net/http's does). The deadline for the rest of the head is set only when a
		// read has to wait.
		head, err := readHead(c.br, c.s.MaxHeaderBytes, c.waitHead)
		if err != nil {
			// A head cut short (the client closed its side, or the head's time ran out,
			// with part of it read) goes to net/http too, to be answered as net/http
			// answers it (400 for a head that ends before its blank line).
			if (errors.Is(err, errNotMine) || c.br.Buffered() > 0) && c.activate() {
				// A head over the buffer, or with bare LFs: what of it is here is
				// checked for conflicting framing all the same.
				if start, _ := c.br.Peek(c.br.Buffered()); framingConflict(headStart(start)) {
					c.refuseConflict()
					return
				}
				handedOver = c.handOver()
			}
			return
		}
		if !c.activate() {
			return // Shutdown closed it, or began: the request is dropped, as net/http drops it
		}
		req, ok := c.parse(head)
		if !ok {
			if framingConflict(head) {
				c.refuseConflict()
				return
			}
			handedOver = c.handOver()
			return
		}
		c.br.Discard(len(head))
		if int64(c.br.Buffered()) < req.contentLength {
			c.rwc.SetReadDeadline(deadline(c.start, c.s.ReadTimeout))
		}
		if c.s.WriteTimeout > 0 { // as net/http: from the end of the head
			c.rwc.SetWriteDeadline(time.Now().Add(c.s.WriteTimeout))
		}
		c.afterPOST = req.method == http.MethodPost
		keep := c.serveRequest(req)
		if !keep || c.s.closing.Load() {
			return
		}
		c.state.Store(stateIdle)
		c.s.setState(c.rwc, http.StateIdle)
		if c.s.closing.Load() {
			return
		}
	}
}

// refuseConflict answers a request with both Transfer-Encoding and Content-Length. RFC
// 9112 6.1: such a request may be refused, and the connection must close after it
// either way; net/http (Go 1.26) reads it as chunked and keeps the connection, which a
// proxy in front that framed it by its Content-Length would read another way
// (smuggling). The connection closes when serve returns.
func (c *conn) refuseConflict() {
	c.rwc.SetWriteDeadline(time.Now().Add(conflictWriteTimeout))
	io.WriteString(c.rwc, "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"+
		"400 Bad Request: a request with both Transfer-Encoding and Content-Length")
	c.unread = true // its body: closed gently, so that the refusal is read
}

// handshake runs a TLS connection's handshake as net/http runs it: within the
// shortest of the read-header, read and write timeouts; a client that spoke plain
// HTTP gets net/http's 400, any other failure is logged and ends the connection. It
// reports whether the connection can go on.
func (c *conn) handshake(tc *tls.Conn) bool {
	var wait time.Duration
	for _, d := range [...]time.Duration{c.s.ReadHeaderTimeout, c.s.ReadTimeout, c.s.WriteTimeout} {
		if d > 0 && (wait == 0 || d < wait) {
			wait = d
		}
	}
	if wait > 0 {
		tc.SetDeadline(time.Now().Add(wait))
	}
	if err := tc.HandshakeContext(c.ctx); err != nil {
		var re tls.RecordHeaderError
		if errors.As(err, &re) && re.Conn != nil && looksLikeHTTP(re.RecordHeader) {
			io.WriteString(re.Conn, "HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n")
			re.Conn.Close()
			return false
		}
		c.s.logf("http: TLS handshake error from %s: %v", c.remote, err)
		return false
	}
	tc.SetDeadline(time.Time{})
	state := tc.ConnectionState()
	c.tlsState = &state
	return true
}

// looksLikeHTTP reports whether the first bytes of a TLS record are those of a plain
// HTTP request (net/http's test).
func looksLikeHTTP(hdr [5]byte) bool {
	switch string(hdr[:]) {
	case "GET /", "HEAD ", "POST ", "PUT /", "OPTIO":
		return true
	}
	return false
}

// activate marks the connection busy with a request whose head has come, unless
// Shutdown has begun or has closed it.
func (c *conn) activate() bool {
	if c.s.closing.Load() || !c.state.CompareAndSwap(stateIdle, stateActive) {
		return false
	}
	c.s.setState(c.rwc, http.StateActive)
	return true
}

// headDeadline is when the head of the request under way must have come.
func (c *conn) headDeadline() time.Time {
	wait := c.s.ReadHeaderTimeout
	if wait == 0 {
		wait = c.s.ReadTimeout
	}
	return deadline(c.start, wait)
}

// waitHead sets the deadline of a head that did not come whole.
func (c *conn) waitHead() {
	c.rwc.SetReadDeadline(c.headDeadline())
}

func deadline(from time.Time, d time.Duration) time.Time {
	if d <= 0 {
		return time.Time{}
	}
	return from.Add(d)
}

// lingerDelay is how long a connection closed with request bytes unread waits after
// its answer: closing at once would make the kernel reset the connection, and a reset
// can destroy the answer before the client has read it (net/http waits as long).
const lingerDelay = 500 * time.Millisecond

func (c *conn) lingerClose() {
	if cw, ok := c.rwc.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
		time.Sleep(lingerDelay)
	}
}

// handOver gives the connection, with what was read and not consumed, to the fallback
// server. It reports false when the fallback has stopped taking connections.
func (c *conn) handOver() bool {
	// net/http sets its own deadlines; its first for the head is held to what is left
	// of this one, so that a slow head gains no time by being handed over.
	hc := &handedConn{Conn: c.rwc, r: c.br, head: c.headDeadline()}
	// Until net/http sets its own (which it may not, without timeouts of its own), the
	// read deadline is what is left of the head's: a head cut short by its deadline
	// is over at once.
	c.rwc.SetWriteDeadline(time.Time{})
	c.rwc.SetReadDeadline(hc.head)
	var nc net.Conn = hc
	if c.tlsState != nil {
		nc = handedTLSConn{hc, c.tlsState}
	}
	if !c.s.handoff.give(nc) {
		return false
	}
	c.s.setState(c.rwc, http.StateHijacked)
	return true
}

// exchange is the state of one request that the handler sees: allocated for each
// request, so that a body or writer kept past the handler's return never reaches
// another request's bytes.
type exchange struct {
	body bodyReader
	resp response
}

// serveRequest runs the handler for one request and writes its answer. It reports
// whether the connection can take another request.
func (c *conn) serveRequest(p *request) bool {
	x := new(exchange)
	body := &x.body
	*body = bodyReader{br: c.br, remaining: p.contentLength}
	if p.expectContinue && p.contentLength > 0 {
		body.rwc, body.canContinue = c.rwc, true
	}
	// The request's context ends when its handler returns, or when Close cuts the
	// connection off (not when the client goes away: nothing watches the connection
	// during the call).
	ctx, cancel := context.WithCancel(c.ctx)
	defer cancel()
	r := baseRequest.WithContext(ctx)
	r.Method = p.method
	r.URL = p.url
	r.Proto, r.ProtoMajor, r.ProtoMinor = "HTTP/1.1", 1, 1
	r.Header = p.header
	r.ContentLength = p.contentLength
	r.Body = http.NoBody
	if p.contentLength > 0 {
		r.Body = body
	}
	r.Host = p.host
	r.RemoteAddr = c.remote
	r.RequestURI = p.target
	r.TLS = c.tlsState
	r.Close = p.close
	w := &x.resp
	// The header map is the request's own, as the body and the writer are: one kept by
	// a handler past its return must not reach the next answer.
	*w = response{c: c, header: make(http.Header, 8), reqBody: body, close: p.close || c.s.closing.Load()}
	c.s.Handler.ServeHTTP(w, r)
	cancel()
	body.closed = true
	if p.expectContinue && body.remaining > 0 {
		// As net/http: a client that asked before sending its body may or may not send
		// it now; the connection ends after the answer.
		w.close, c.unread = true, true
	} else if body.remaining > 0 {
		// As net/http, 256 KiB or more left closes; and an answer that closes the
		// connection, for the request's Connection: close or the handler's or for
		// Shutdown, does not wait for the rest (a refusal before the body, which a
		// client that stalls it would otherwise hold until the read deadline, the
		// answer lost after it).
		if body.err != nil || body.remaining >= maxDiscard || w.close || c.s.closing.Load() {
			w.close, c.unread = true, body.err == nil
		} else if _, err := c.br.Discard(int(body.remaining)); err != nil {
			w.close = true
		}
	}
	if body.err != nil {
		w.close = true
	}
	err := w.finish()
	return err == nil && !w.close
}

// baseRequest is the zero request copied, by WithContext, into each new one.
var baseRequest = new(http.Request)

// bodyReader is a request body of a known length, read from the connection's buffer.
type bodyReader struct {
	br        *bufio.Reader
	remaining int64
	closed    bool
	err       error // a read error: the connection cannot be kept
	// For Expect: 100-continue: the interim answer goes out before the first read,
	// unless the handler has begun its answer.
	rwc         net.Conn
	canContinue bool
}

func (b *bodyReader) Read(p []byte) (int, error) {
	if b.closed {
		return 0, http.ErrBodyReadAfterClose
	}
	if b.err != nil {
		return 0, b.err
	}
	if b.remaining <= 0 {
		return 0, io.EOF
	}
	if b.canContinue {
		b.canContinue = false
		if _, err := io.WriteString(b.rwc, "HTTP/1.1 100 Continue\r\n\r\n"); err != nil {
			b.err = err
			return 0, err
		}
	}
	if int64(len(p)) > b.remaining {
		p = p[:b.remaining]
	}
	n, err := b.br.Read(p)
	b.remaining -= int64(n)
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		b.err = err
		return n, err
	}
	if b.remaining == 0 {
		return n, io.EOF
	}
	return n, nil
}

func (b *bodyReader) Close() error {
	b.closed = true
	return nil
}

// handedConn is a connection given to net/http: its reads start with the bytes the
// fast path had read and not consumed, and its first read deadline (net/http's for
// the head) is no later than head.
type handedConn struct {
	net.Conn
	r      *bufio.Reader
	head   time.Time
	capped atomic.Bool
}

// handedTLSConn is a TLS connection given to net/http, which sees a wrapper, not a
// *tls.Conn: a connection with a ConnectionState method is one over TLS to net/http,
// which gives its requests that state (r.TLS). Only TLS connections have the method.
type handedTLSConn struct {
	*handedConn
	state *tls.ConnectionState
}

func (h handedTLSConn) ConnectionState() tls.ConnectionState { return *h.state }

func (h *handedConn) SetReadDeadline(t time.Time) error {
	if !h.capped.Swap(true) && !h.head.IsZero() && (t.IsZero() || t.After(h.head)) {
		t = h.head
	}
	return h.Conn.SetReadDeadline(t)
}

func (h *handedConn) Read(p []byte) (int, error) {
	if h.r != nil {
		if h.r.Buffered() > 0 {
			return h.r.Read(p)
		}
		h.r = nil
	}
	return h.Conn.Read(p)
}

// CloseWrite lets net/http half-close the connection (after an error answer) when the
// connection can.
func (h *handedConn) CloseWrite() error {
	if cw, ok := h.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// handoffListener is the listener the fallback server accepts handed connections on.
type handoffListener struct {
	addr  net.Addr
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newHandoffListener(addr net.Addr) *handoffListener {
	return &handoffListener{addr: addr, conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *handoffListener) give(c net.Conn) bool {
	select {
	case l.conns <- c:
		return true
	case <-l.done:
		return false
	}
}

func (l *handoffListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *handoffListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *handoffListener) Addr() net.Addr { return l.addr }
