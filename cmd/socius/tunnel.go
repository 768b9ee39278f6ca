package main

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// tunnelToSelf lets the plain HTTP listener act as an HTTPS proxy for SDKs that can
// only be redirected through one (the gigya npm package, Python over HTTPS): a CONNECT
// request, whatever host it names, is tunnelled to Socius's own HTTPS listener and
// nowhere else. Every other request goes to next.
//
// open counts the tunnels: a hijacked connection is no longer the HTTP server's, so its
// Shutdown does not wait for it; Main.Close does, so that an answer on its way back
// through a tunnel is not cut off by the exit. A tunnel is counted from before the
// hijack (while the server still waits for its connection) until it closes.
//
// peers learns each tunnel's client, for the HTTPS side's logs (see tunnelPeers).
//
// The HTTPS side's timeouts end what goes through the tunnel, and the tunnel with it:
// an idle or slow client's HTTPS connection is closed there, and the tunnel closes
// when it does. But the HTTPS side cannot see a client that stops reading the tunnel:
// what it wrote sits in the tunnel's buffers. So each write to the client has
// writeTimeout (the HTTP server's write timeout) to go out, or the tunnel closes.
//
// A tunnel that cannot reach the HTTPS listener is answered 502 and logged (a warning
// with the client and the cause): no call reaches the server to be logged, and the SDK
// sees only a failed proxy.
func tunnelToSelf(httpsAddr string, writeTimeout time.Duration, next http.Handler, open *sync.WaitGroup, peers *tunnelPeers, logger *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodConnect {
			next.ServeHTTP(w, r)
			return
		}
		open.Add(1)
		defer open.Done()
		hj, ok := w.(http.Hijacker)
		if !ok {
			http.Error(w, "CONNECT is not supported here", http.StatusMethodNotAllowed)
			return
		}
		upstream, err := net.DialTimeout("tcp", httpsAddr, 5*time.Second)
		if err != nil {
			logger.Warn("tunnel: the HTTPS listener is not reachable; CONNECT answered 502", "remote", r.RemoteAddr, "err", err)
			http.Error(w, "the HTTPS listener is not reachable", http.StatusBadGateway)
			return
		}
		client, buf, err := hj.Hijack()
		if err != nil {
			upstream.Close()
			return
		}
		inner := upstream.LocalAddr().String() // what the HTTPS listener sees
		peers.add(inner, r.RemoteAddr)
		defer peers.remove(inner)
		// The tunnel outlives the HTTP server's read and write deadlines.
		client.SetDeadline(time.Time{})
		if _, err := io.WriteString(client, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
			client.Close()
			upstream.Close()
			return
		}
		go func() {
			if n := buf.Reader.Buffered(); n > 0 {
				b, _ := buf.Reader.Peek(n)
				upstream.Write(b)
			}
			io.Copy(upstream, client)
			upstream.Close()
		}()
		io.Copy(deadlineWriter{client, writeTimeout}, upstream)
		client.Close()
		upstream.Close()
	})
}

// deadlineWriter gives each write to conn timeout (none when 0) to go out.
type deadlineWriter struct {
	conn    net.Conn
	timeout time.Duration
}

func (w deadlineWriter) Write(p []byte) (int, error) {
	if w.timeout > 0 {
		w.conn.SetWriteDeadline(time.Now().Add(w.timeout))
	}
	return w.conn.Write(p)
}

// tunnelPeers maps the address that Socius's own HTTPS listener sees for a tunnel (its
// upstream connection, from this process) to the client's address at the tunnel's
// entrance, so that a call that came through a tunnel logs its client's address, not
// Socius's own.
type tunnelPeers struct{ m sync.Map }

func (p *tunnelPeers) add(inner, client string) { p.m.Store(inner, client) }
func (p *tunnelPeers) remove(inner string)      { p.m.Delete(inner) }

// clientAddr wraps the HTTPS listener's handler: a request from a tunnel gets the
// tunnel's client as its RemoteAddr.
func (p *tunnelPeers) clientAddr(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if client, ok := p.m.Load(r.RemoteAddr); ok {
			r = r.WithContext(r.Context()) // a shallow copy: the server's request stays as it was
			r.RemoteAddr = client.(string)
		}
		next.ServeHTTP(w, r)
	})
}
