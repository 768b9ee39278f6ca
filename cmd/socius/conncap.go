package main

import (
	"net"
	"sync"
	"sync/atomic"
)

// connCap bounds the connections the API listeners hold open together (--max-connections):
// each is a file descriptor and some 15 to 30 KB, and a client that opens thousands and
// keeps them alive with a request every --idle-timeout would otherwise take every
// descriptor the process has, so that no one else, the admin listener's health checks
// and the store's own files included, could open one. Past the cap a new connection is
// accepted and closed at once: its client learns at once, rather than wait in the
// listen queue for a connection that will not come.
type connCap struct {
	max     int64 // 0: no cap
	open    atomic.Int64
	refused func() // counts a refused connection (a metric), when set
}

// setMax sets the cap from --max-connections, lowered to leave fdReserve of the
// process's file descriptors free (the store, the admin listener, PostgreSQL's pool),
// but to no fewer than 64; it reports the cap, and the descriptor limit when it was
// lowered for it (0 when not).
func (c *connCap) setMax(flag int) (n, fdLimitSeen int64) {
	c.max = int64(flag)
	if limit, ok := fdLimit(); ok && c.max > 0 && c.max > limit-fdReserve {
		c.max = max(limit-fdReserve, 64)
		return c.max, limit
	}
	return c.max, 0
}

const fdReserve = 1024

// listener returns ln with its connections counted, and refused past the cap.
func (c *connCap) listener(ln net.Listener) net.Listener { return &cappedListener{ln, c} }

type cappedListener struct {
	net.Listener
	cap *connCap
}

func (l *cappedListener) Accept() (net.Conn, error) {
	for {
		conn, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if n := l.cap.open.Add(1); l.cap.max > 0 && n > l.cap.max {
			l.cap.open.Add(-1)
			if l.cap.refused != nil {
				l.cap.refused()
			}
			conn.Close()
			continue
		}
		return &cappedConn{Conn: conn, cap: l.cap}, nil
	}
}

// cappedConn is a counted connection: its Close gives its place back, once.
type cappedConn struct {
	net.Conn
	cap  *connCap
	once sync.Once
}

func (c *cappedConn) Close() error {
	c.once.Do(func() { c.cap.open.Add(-1) })
	return c.Conn.Close()
}

// CloseWrite half-closes the connection, as net/http and the fast path do after some
// refusals, when the connection underneath can.
func (c *cappedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
