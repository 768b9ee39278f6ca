package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/socius/socius"
	"github.com/socius/socius/client"
	"github.com/socius/socius/internal/syncbuf"
	"github.com/socius/socius/internal/vectors"
)

// nginxPath finds Debian's nginx (./test.sh installs nginx-light), or fails the test
// saying how to get it.
func nginxPath(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("SOCIUS_NGINX"), "/usr/sbin/nginx"} {
		if p == "" {
			continue
		}
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("nginx"); err == nil {
		return p
	}
	t.Fatal("nginx was not found in /usr/sbin or on PATH: run ./test.sh, which installs it (Debian package nginx-light), or name it in SOCIUS_NGINX")
	return ""
}

// startNginx starts a real nginx that terminates TLS on a free port of 127.0.0.1 and
// passes every request to upstream (host:port) with the headers of hostHeader and
// X-Forwarded-Proto, as docs/operations.md has it, and the directives of extra; its
// cleanup stops it. It returns nginx's https:// URL and the certificate it presents.
func startNginx(t *testing.T, upstream, hostHeader, extra string) (string, []byte) {
	t.Helper()
	bin := nginxPath(t)
	dir := t.TempDir()
	certPEM, keyPEM, err := selfSignedCert(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{"cert.pem": certPEM, "key.pem": keyPEM} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	addr := freeAddr(t)
	// One process (no master, no workers to switch users), its temp folders and logs
	// in dir. nginx talks HTTP/1.0 to the upstream by default, without keep-alive.
	conf := fmt.Sprintf(`daemon off;
master_process off;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log;
events { worker_connections 64; }
http {
	access_log off;
	client_body_temp_path %[1]s/body;
	proxy_temp_path %[1]s/proxy;
	fastcgi_temp_path %[1]s/fastcgi;
	uwsgi_temp_path %[1]s/uwsgi;
	scgi_temp_path %[1]s/scgi;
	upstream socius {
		server %[3]s;
		keepalive 8;
	}
	server {
		listen %[2]s ssl;
		ssl_certificate %[1]s/cert.pem;
		ssl_certificate_key %[1]s/key.pem;
		location / {
			proxy_pass http://socius;
			proxy_set_header Host %[4]s;
			proxy_set_header X-Forwarded-Proto $scheme;
			%[5]s
		}
	}
}
`, dir, addr, upstream, hostHeader, extra)
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", filepath.Join(dir, "nginx.conf"))
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		<-exited
	})
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		select {
		case <-exited:
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Fatalf("nginx exited at start:\n%s", log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx does not listen on %s: %v", addr, err)
		}
	}
	return "https://" + addr, certPEM
}

// TestBehindNginx puts Socius behind a real nginx that terminates TLS, configured as
// docs/operations.md says (Host kept, X-Forwarded-Proto set, Socius with
// --trust-forwarded-proto), and drives every method through it with the Go client over
// HTTPS: signed and plain-secret calls, with the partner secret and with a userKey,
// each request's body of a known length. The client signs the URL it calls, with
// nginx's port; which Host header keeps that port for Socius is what the subtests tell
// apart.
func TestBehindNginx(t *testing.T) {
	ts := startServer(t, "--trust-forwarded-proto")
	ts.createKey(t, vectors.LabUserKey, vectors.LabUserSecret)
	// $http_host is the Host the client sent, with nginx's port; so Socius checks the
	// signature against the URL the client signed. nginx's default is HTTP/1.0 to the
	// upstream, a connection per request; with HTTP/1.1 it keeps connections open
	// (Socius's fast path serves those).
	upstream := strings.TrimPrefix(ts.HTTPURL, "http://")
	for name, extra := range map[string]string{
		"http_host":           "",
		"http_host keepalive": `proxy_http_version 1.1; proxy_set_header Connection "";`,
	} {
		t.Run(name, func(t *testing.T) { throughNginx(t, upstream, extra) })
	}

	// $host drops a port that is not the scheme's: a client that signed the URL with
	// nginx's port then fails its signature (403003), while plain secrets, which sign
	// nothing, go through.
	t.Run("host", func(t *testing.T) {
		base, certPEM := startNginx(t, upstream, "$host", "")
		ctx := context.Background()
		_, err := nginxClient(t, base, certPEM, client.PartnerSecret(testAPIKey, testSecret)).NotifyLogin(ctx, client.NotifyLoginRequest{SiteUID: "nginx-host"})
		wantCode(t, "a signed call through nginx with Host $host", err, socius.CodeInvalidSignature, "")
		if _, err := nginxClient(t, base, certPEM, client.PartnerSecret(testAPIKey, testSecret), client.WithPlainSecret()).NotifyLogin(ctx, client.NotifyLoginRequest{SiteUID: "nginx-host"}); err != nil {
			t.Errorf("a plain-secret call through nginx with Host $host: %v", err)
		}
	})
}

// throughNginx runs every method with each credential shape through an nginx with Host
// $http_host and the directives of extra, in front of upstream.
func throughNginx(t *testing.T, upstream, extra string) {
	base, certPEM := startNginx(t, upstream, "$http_host", extra)
	partner := client.PartnerSecret(testAPIKey, testSecret)
	key := client.UserKey(testAPIKey, vectors.LabUserKey, vectors.LabUserSecret)
	for i, c := range []struct {
		name string
		cred client.Credentials
		opts []client.Option
	}{
		{"partner signed", partner, nil},
		{"partner plain", partner, []client.Option{client.WithPlainSecret()}},
		{"userKey signed", key, nil},
		{"userKey plain", key, []client.Option{client.WithPlainSecret(), client.WithPartnerSecret(testSecret)}},
	} {
		t.Run(c.name, func(t *testing.T) {
			lifecycle(t, nginxClient(t, base, certPEM, c.cred, c.opts...), fmt.Sprintf("nginx-%d-%d", len(extra), i))
		})
	}
}

// nginxClient is a client of Socius through nginx at base, trusting its certificate.
func nginxClient(t *testing.T, base string, certPEM []byte, cred client.Credentials, opts ...client.Option) *client.Client {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	c, err := client.New(cred, append([]client.Option{client.WithBaseURL(base), client.WithHTTPClient(hc)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestBehindNginxClientAddress puts Socius, with --trusted-proxies 127.0.0.1 and
// --auth-failure-limit, behind a real nginx that adds the address it saw to
// X-Forwarded-For ($proxy_add_x_forwarded_for), as docs/operations.md has it. Clients
// reach nginx from 127.0.0.2 and 127.0.0.3: the call log's remote is each one's, with
// nginx as peer; the first one's bad secret refuses its own calls only, even when it
// writes another address in X-Forwarded-For itself; and X-Forwarded-Proto from nginx
// still makes its calls secure (a plain secret passes).
func TestBehindNginxClientAddress(t *testing.T) {
	var logs syncbuf.Buffer
	ts := startMain(t, func(m *Main) { m.LogOutput = &logs }, "--trust-forwarded-proto", "--trusted-proxies", "127.0.0.1",
		"--auth-failure-limit", "0.01", "--log-level", "info") // 100 s refused: however slow the calls after
	ts.login(t, "u1")
	base, certPEM := startNginx(t, strings.TrimPrefix(ts.HTTPURL, "http://"), "$http_host",
		"proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;")
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	from := func(ip string) *http.Client {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: d.DialContext, TLSClientConfig: &tls.Config{RootCAs: pool}}}
	}
	get := func(c *http.Client, secret, forwardedFor string) answer {
		t.Helper()
		body := url.Values{"apiKey": {testAPIKey}, "secret": {secret}, "UID": {"u1"}}.Encode()
		r, err := http.NewRequest(http.MethodPost, base+"/socialize.getUserInfo", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if forwardedFor != "" {
			r.Header.Set("X-Forwarded-For", forwardedFor)
		}
		return answerVia(t, c, r)
	}
	a, b := from("127.0.0.2"), from("127.0.0.3")
	wrong := base64.StdEncoding.EncodeToString([]byte("not the secret of the test site"))

	want(t, "127.0.0.3's plain secret through nginx", get(b, testSecret, ""), 0, "")
	want(t, "127.0.0.2's wrong secret", get(a, wrong, ""), 403003, "")
	want(t, "127.0.0.2's good call after it", get(a, testSecret, ""), 403048, "address 127.0.0.2 made more")
	want(t, "127.0.0.2 naming another address itself", get(a, testSecret, "127.0.0.3"), 403048, "address 127.0.0.2 made more")
	want(t, "127.0.0.3 after 127.0.0.2's refusals", get(b, testSecret, ""), 0, "")

	ts.waitInFlight(t, 0)
	lines := grepLines(logs.String(), "msg=call")
	if n := strings.Count(lines, "remote=127.0.0.2 peer=127.0.0.1:"); n != 3 {
		t.Errorf("%d call lines say remote=127.0.0.2 peer=127.0.0.1:..., want 3:\n%s", n, lines)
	}
	if n := strings.Count(lines, "remote=127.0.0.3 peer=127.0.0.1:"); n != 2 {
		t.Errorf("%d call lines say remote=127.0.0.3 peer=127.0.0.1:..., want 2:\n%s", n, lines)
	}
}
