package loadgen

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"

	"github.com/socius/socius"
)

// A conn is one keep-alive HTTP/1.1 connection, used by one worker at a time. It is
// deliberately small: the load generator shares the machine with the server it
// measures, so every microsecond it spends per request is taken from the server. It
// writes a request in one system call and reads an answer with a Content-Length or a
// chunked body, which is all a Go net/http server sends.
type conn struct {
	addr string // host:port
	host string // Host header
	// deadline bounds each request (write and answer); zero: requestTimeout from
	// its start.
	deadline time.Time
	c        net.Conn
	br       *bufio.Reader
	wbuf     []byte
	body     []byte // the last answer's body; reused
}

func newConn(addr string) *conn {
	return &conn{addr: addr, host: addr, wbuf: make([]byte, 0, 1024), body: make([]byte, 0, 2048)}
}

func (c *conn) dial() error {
	nc, err := net.DialTimeout("tcp", c.addr, 5*time.Second)
	if err != nil {
		return err
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	c.c = nc
	if c.br == nil {
		c.br = bufio.NewReaderSize(nc, 8192)
	} else {
		c.br.Reset(nc)
	}
	return nil
}

func (c *conn) close() {
	if c.c != nil {
		c.c.Close()
		c.c = nil
	}
}

// post sends a form body to path and returns the status and the answer's body (valid
// until the next call). On any transport error the connection is closed; the next call
// dials again.
func (c *conn) post(path string, form []byte) (int, []byte, error) {
	if c.c == nil {
		if err := c.dial(); err != nil {
			return 0, nil, err
		}
	}
	b := c.wbuf[:0]
	b = append(b, "POST "...)
	b = append(b, path...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, c.host...)
	b = append(b, "\r\nUser-Agent: socius-bench\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(len(form)), 10)
	b = append(b, "\r\n\r\n"...)
	b = append(b, form...)
	c.wbuf = b
	d := c.deadline
	if d.IsZero() {
		d = time.Now().Add(requestTimeout)
	}
	c.c.SetDeadline(d)
	if _, err := c.c.Write(b); err != nil {
		c.close()
		return 0, nil, err
	}
	status, keep, err := c.readResponse()
	if err != nil {
		c.close()
		return 0, nil, err
	}
	if !keep {
		c.close()
	}
	return status, c.body, nil
}

// requestTimeout bounds a request outside a measured run (counting and creating the
// users): a server that accepts and never answers fails them.
const requestTimeout = 30 * time.Second

var errMalformed = errors.New("malformed HTTP answer")

// readResponse reads one answer into c.body. keep is false when the server will close
// the connection.
func (c *conn) readResponse() (status int, keep bool, err error) {
	line, err := c.line()
	if err != nil {
		return 0, false, err
	}
	// HTTP/1.1 200 OK
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
		return 0, false, fmt.Errorf("%w: status line %q", errMalformed, line)
	}
	status, err = strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, false, fmt.Errorf("%w: status line %q", errMalformed, line)
	}
	keep = true
	length := -1
	chunked := false
	for {
		line, err := c.line()
		if err != nil {
			return 0, false, err
		}
		if len(line) == 0 {
			break
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return 0, false, fmt.Errorf("%w: header line %q", errMalformed, line)
		}
		value = bytes.TrimSpace(value)
		switch {
		case socius.EqualFoldASCII(name, "Content-Length"):
			if length, err = strconv.Atoi(string(value)); err != nil || length < 0 {
				return 0, false, fmt.Errorf("%w: Content-Length %q", errMalformed, value)
			}
		case socius.EqualFoldASCII(name, "Transfer-Encoding"):
			chunked = socius.EqualFoldASCII(value, "chunked")
		case socius.EqualFoldASCII(name, "Connection"):
			if socius.EqualFoldASCII(value, "close") {
				keep = false
			}
		}
	}
	c.body = c.body[:0]
	switch {
	case chunked:
		err = c.readChunked()
	case length >= 0:
		err = c.readN(length)
	default:
		return 0, false, fmt.Errorf("%w: neither Content-Length nor chunked", errMalformed)
	}
	return status, keep, err
}

func (c *conn) readN(n int) error {
	if cap(c.body)-len(c.body) < n {
		nb := make([]byte, len(c.body), len(c.body)+n)
		copy(nb, c.body)
		c.body = nb
	}
	start := len(c.body)
	c.body = c.body[:start+n]
	_, err := io.ReadFull(c.br, c.body[start:])
	return err
}

func (c *conn) readChunked() error {
	for {
		line, err := c.line()
		if err != nil {
			return err
		}
		if i := bytes.IndexByte(line, ';'); i >= 0 {
			line = line[:i]
		}
		n, err := strconv.ParseUint(string(bytes.TrimSpace(line)), 16, 32)
		if err != nil {
			return fmt.Errorf("%w: chunk size %q", errMalformed, line)
		}
		if n == 0 {
			for { // trailers, then the empty line
				line, err := c.line()
				if err != nil {
					return err
				}
				if len(line) == 0 {
					return nil
				}
			}
		}
		if err := c.readN(int(n)); err != nil {
			return err
		}
		if line, err := c.line(); err != nil || len(line) != 0 {
			return fmt.Errorf("%w: chunk not followed by CRLF", errMalformed)
		}
	}
}

// line returns the next line without its CRLF; it is valid until the next read.
func (c *conn) line() ([]byte, error) {
	line, err := c.br.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, fmt.Errorf("%w: line longer than %d bytes", errMalformed, c.br.Size())
		}
		return nil, err
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}
