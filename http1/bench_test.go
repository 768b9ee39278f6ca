package http1

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
)

// BenchmarkServe: one keep-alive connection, a form POST and its answer per iteration,
// over the loopback, plain and over TLS, through the fast path and through net/http
// alone, with a handler
// that reads the body and answers a small envelope (as loadgen's baseline does). The
// client reads the answers without allocating, so the allocations are the server's.
func BenchmarkServe(b *testing.B) {
	answer := []byte(`{"callId":"8d1f0c2a9b7e4f6a8c3d5e7f9a1b2c3d","errorCode":0,"statusCode":200}`)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.Write(answer)
	})
	body := "apiKey=3_x&format=json&nonce=1&timestamp=1&UID=u1&userInfo=%7B%22firstName%22%3A%22Ada%22%7D&sig=abc"
	req := []byte("POST /socialize.setUserInfo HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: bench\r\n" +
		"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\n" + body[:100])
	var cert tls.Certificate
	var client *tls.Config
	for _, c := range []struct {
		fast, tls bool
	}{{true, false}, {false, false}, {true, true}, {false, true}} {
		fast := c.fast
		name := "http1"
		if !fast {
			name = "net-http"
		}
		if c.tls {
			name += "-tls"
			if client == nil {
				cert, client = selfSigned(b)
			}
		}
		b.Run(name, func(b *testing.B) {
			var ln net.Listener
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			if c.tls {
				ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}})
			}
			if fast {
				srv := &Server{Handler: h, Fallback: &http.Server{Handler: h}}
				go srv.Serve(ln)
				defer srv.Close()
			} else {
				srv := &http.Server{Handler: h}
				go srv.Serve(ln)
				defer srv.Close()
			}
			var conn net.Conn
			if c.tls {
				conn, err = tls.Dial("tcp", ln.Addr().String(), client)
			} else {
				conn, err = net.Dial("tcp", ln.Addr().String())
			}
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()
			br := bufio.NewReader(conn)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := conn.Write(req); err != nil {
					b.Fatal(err)
				}
				if err := readAnswer(br); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// readAnswer reads one answer with a Content-Length, without allocating.
func readAnswer(br *bufio.Reader) error {
	length := -1
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return err
		}
		if len(line) <= 2 {
			break
		}
		if rest, ok := bytes.CutPrefix(line, []byte("Content-Length:")); ok {
			if n, ok := parseLength(trimSpace(bytes.TrimSuffix(rest, []byte("\r\n")))); ok {
				length = int(n)
			}
		}
	}
	if length < 0 {
		return errors.New("no Content-Length")
	}
	_, err := br.Discard(length)
	return err
}
