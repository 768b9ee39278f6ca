package http1

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// selfSigned returns a certificate for 127.0.0.1 and a client configuration that
// trusts it.
func selfSigned(t testing.TB) (tls.Certificate, *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, &tls.Config{RootCAs: pool}
}

// startTLS serves h over TLS on a fresh port, through http1 (fast) or net/http alone,
// with the given read-header timeout (0: none).
func startTLS(t *testing.T, h http.Handler, fast bool, cert tls.Certificate, rht time.Duration) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tln := tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	quiet := log.New(io.Discard, "", 0)
	if !fast {
		hs := &http.Server{Handler: h, ErrorLog: quiet, ReadHeaderTimeout: rht}
		go hs.Serve(tln)
		t.Cleanup(func() { hs.Close() })
		return ln.Addr().String()
	}
	srv := &Server{Handler: h, Fallback: &http.Server{Handler: h, ErrorLog: quiet, ReadHeaderTimeout: rht}, ErrorLog: quiet, ReadHeaderTimeout: rht}
	go srv.Serve(tln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// TestTLS: over TLS the fast path serves the ordinary requests, with the connection's
// TLS state in r.TLS; a request it hands to net/http has it too; a plain-HTTP request
// to the TLS port gets net/http's answer; a handshake that never comes ends at the
// handshake's timeout (the read-header timeout).
func TestTLS(t *testing.T) {
	cert, client := selfSigned(t)
	// The handshake and the head of each ordinary request below must come within the
	// read-header timeout, and a loaded machine can keep this client off the CPU between
	// its dial and its write for seconds (300 ms: "connection reset by peer"; 1 s was a
	// guess too): a minute for them, and 1 s only on the server the silent client tries.
	fastAddr := startTLS(t, http.HandlerFunc(echo), true, cert, time.Minute)
	netAddr := startTLS(t, http.HandlerFunc(echo), false, cert, time.Minute)
	const handshakeTimeout = time.Second
	silentAddr := startTLS(t, http.HandlerFunc(echo), true, cert, handshakeTimeout)

	view := func(addr, raw string) map[string]any {
		t.Helper()
		c, err := tls.Dial("tcp", addr, client)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, raw)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("%q: %v", raw, err)
		}
		defer resp.Body.Close()
		var v map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
			t.Fatalf("%q: %v", raw, err)
		}
		return v
	}
	post := "POST /socialize.getUserInfo HTTP/1.1\r\nHost: h\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 6\r\n\r\nUID=u1"
	chunked := "POST /socialize.getUserInfo HTTP/1.1\r\nHost: h\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nUID=u1\r\n0\r\n\r\n"
	for _, c := range []struct {
		raw, served string
	}{{post, "fast"}, {chunked, "slow"}} {
		got, want := view(fastAddr, c.raw), view(netAddr, c.raw)
		if got["served"] != c.served || got["tls"] != true || got["body"] != "UID=u1" {
			t.Errorf("%q through the fast path's listener: %v", c.raw, got)
		}
		if want["tls"] != true {
			t.Errorf("%q through net/http: %v", c.raw, want)
		}
	}

	plain := func(addr string) string {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, "GET /socialize.getUserInfo HTTP/1.1\r\nHost: h\r\n\r\n")
		b, _ := io.ReadAll(c)
		return string(b)
	}
	if got, want := plain(fastAddr), plain(netAddr); got != want || !strings.Contains(want, "Client sent an HTTP request to an HTTPS server") {
		t.Errorf("plain HTTP to the TLS port: fast path %q, net/http %q", got, want)
	}

	// A client that connects and says nothing is cut off at the handshake's timeout:
	// not before it (timed from before the dial, so from before the server's accept),
	// and not long after. The upper bound only tells a timeout applied from one never
	// applied: ten times the timeout, for a loaded machine that is slow to close or to
	// schedule this reader.
	start := time.Now()
	c, err := net.Dial("tcp", silentAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(start.Add(20 * handshakeTimeout))
	_, err = io.ReadAll(c)
	if took := time.Since(start); err != nil || took < handshakeTimeout || took > 10*handshakeTimeout {
		t.Errorf("a silent client: %v after %v; want closed after the handshake's timeout, %v", err, took.Round(time.Millisecond), handshakeTimeout)
	}
}
