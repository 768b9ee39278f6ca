package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/socius/socius"
)

// TestGigyaNpmPackage drives Socius with the real `gigya` npm package (3.0.1, pinned by
// compat/node/package-lock.json), unmodified, in each of its credential modes: plain
// partner secret over HTTPS, userKey-signed requests with millisecond timestamps, an
// access token from socialize.getToken passed as oauth_token (no apiKey, no signature),
// and userKey + RSA private key (an RS256 JWT in Authorization: Bearer).
// compat/node/drive.js explains how the package is pointed at the server: a CONNECT
// proxy (HTTPS_PROXY) that tunnels every connection to the HTTPS listener, so that the
// package builds, signs and sends https://socialize.localtest.gigya.com/... itself.
//
// It needs node and npm; without them it fails, unless SOCIUS_SKIP_NODE=1.
func TestGigyaNpmPackage(t *testing.T) {
	node, dir := nodePackage(t, "the gigya npm package compatibility test")

	ts := startServer(t)
	const (
		userKey    = "AUserKeyLab1"
		userSecret = "dXNlci1zZWNyZXQtZm9yLWxhYg=="
		// Valid base64 of at least 16 bytes, but not the right secrets.
		wrongPartnerSecret = "bm90LXRoZS1wYXJ0bmVyLXNlY3JldC0wMDA=" // not-the-partner-secret-000
		wrongUserSecret    = "bm90LXRoZS11c2VyLWtleS1zZWNyZXQ="     // not-the-user-key-secret
	)
	if err := ts.Store.CreateKey(context.Background(), &socius.Key{
		UserKey: userKey, APIKey: testAPIKey, Secret: userSecret, CreatedAt: time.Now(),
	}); err != nil {
		t.Fatal(err)
	}
	// Bearer mode: a key pair made here, the public half registered for the userKey.
	const bearerUserKey = "ABearerKeyLab"
	bearerKey, bearerPEM := rsaKeyPEM(t)
	_, wrongPEM := rsaKeyPEM(t)
	bearerPub, err := socius.EncodeRSAPublicKey(&bearerKey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := ts.Store.CreateKey(context.Background(), &socius.Key{
		UserKey: bearerUserKey, APIKey: testAPIKey, Secret: socius.NewSecret(), PublicKey: bearerPub, CreatedAt: time.Now(),
	}); err != nil {
		t.Fatal(err)
	}
	proxy := startConnectProxy(t, strings.TrimPrefix(ts.HTTPSURL, "https://"))

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "drive.js")
	cmd.Dir = dir
	cmd.Env = append(nodeEnv(),
		"HTTPS_PROXY=http://"+proxy.addr,
		// The package pins its own CA bundle, which replaces Node's trust store, so
		// NODE_EXTRA_CA_CERTS cannot add the self-signed certificate: see drive.js.
		"NODE_TLS_REJECT_UNAUTHORIZED=0",
		"GIGYA_API_KEY="+testAPIKey,
		"GIGYA_DATA_CENTER=localtest",
		"GIGYA_PARTNER_SECRET="+testSecret,
		"GIGYA_USER_KEY="+userKey,
		"GIGYA_USER_SECRET="+userSecret,
		"GIGYA_WRONG_PARTNER_SECRET="+wrongPartnerSecret,
		"GIGYA_WRONG_USER_SECRET="+wrongUserSecret,
		"GIGYA_UID_PREFIX=npm",
		"GIGYA_BEARER_USER_KEY="+bearerUserKey,
		"GIGYA_BEARER_PRIVATE_KEY="+bearerPEM,
		"GIGYA_WRONG_PRIVATE_KEY="+wrongPEM,
	)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("node drive.js: %v (timeout: %v)\nstdout:\n%s\nstderr:\n%s", err, ctx.Err(), stdout.String(), stderr.String())
	}
	t.Logf("drive.js stderr:\n%s", stderr.String())

	type line struct {
		Mode       string         `json:"mode"`
		Step       string         `json:"step"`
		OK         bool           `json:"ok"`
		ErrorCode  *int           `json:"errorCode"`
		GigyaError bool           `json:"gigyaError"`
		Error      string         `json:"error"`
		Valid      *bool          `json:"valid"`
		Response   map[string]any `json:"response"`
		Sent       map[string]any `json:"sent"`
		MS         int            `json:"ms"`
		Wire       []wireRecord   `json:"wire"`
	}
	results := map[string]line{} // by mode/step
	calls, done := 0, false
	sc := bufio.NewScanner(&stdout)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var l line
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("drive.js printed a line that is not JSON: %v\n%s", err, sc.Text())
		}
		t.Logf("%s", sc.Text())
		if l.Step == "done" {
			done = true
			continue
		}
		if l.Valid == nil {
			calls++ // a line per API call; validate* lines are local checks
			checkWire(t, l.Mode, l.Step, l.Wire)
		}
		results[l.Mode+"/"+l.Step] = l
	}
	if !done {
		t.Fatalf("drive.js did not finish\nstdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	}
	get := func(mode, step string) line {
		t.Helper()
		l, ok := results[mode+"/"+step]
		if !ok {
			t.Fatalf("drive.js printed no result for %s %s", mode, step)
		}
		return l
	}
	code := func(l line) int {
		if l.ErrorCode == nil {
			return -1
		}
		return *l.ErrorCode
	}
	succeeded := func(mode, step string) line {
		t.Helper()
		l := get(mode, step)
		if !l.OK || code(l) != 0 {
			t.Errorf("%s %s: want errorCode 0, got ok=%v errorCode=%d error=%q answer=%v", mode, step, l.OK, code(l), l.Error, l.Response)
		}
		return l
	}
	failedWith := func(mode, step string, want int) {
		t.Helper()
		l := get(mode, step)
		if l.OK || !l.GigyaError || code(l) != want {
			t.Errorf("%s %s: want a GigyaError with errorCode %d, got ok=%v gigyaError=%v errorCode=%d error=%q answer=%v",
				mode, step, want, l.OK, l.GigyaError, code(l), l.Error, l.Response)
		}
	}

	for _, mode := range []string{"plain", "signed", "bearer"} {
		siteUID := "npm-" + mode
		login := succeeded(mode, "notifyLogin")
		if uid, _ := login.Response["UID"].(string); uid != siteUID {
			t.Errorf("%s notifyLogin: UID = %q, want the siteUID %q", mode, uid, siteUID)
		}
		if v := get(mode, "validateLoginSignature").Valid; v == nil || !*v {
			t.Errorf("%s notifyLogin: the package's SigUtils.validateUserSignature rejects UIDSignature %v / signatureTimestamp %v",
				mode, login.Response["UIDSignature"], login.Response["signatureTimestamp"])
		}
		set := succeeded(mode, "setUserInfo")
		got := succeeded(mode, "getUserInfo")
		if uid, _ := got.Response["UID"].(string); uid != siteUID {
			t.Errorf("%s getUserInfo: UID = %q, want %q", mode, uid, siteUID)
		}
		if len(set.Sent) == 0 {
			t.Errorf("%s setUserInfo: drive.js did not report the userInfo it sent", mode)
		}
		for field, want := range set.Sent {
			if have, ok := got.Response[field]; !ok || have != want {
				t.Errorf("%s getUserInfo: %s = %#v (present: %v), want %#v as set", mode, field, have, ok, want)
			}
		}
		if v := get(mode, "validateUserInfoSignature").Valid; v == nil || !*v {
			t.Errorf("%s getUserInfo: the package's SigUtils.validateUserSignature rejects UIDSignature %v / signatureTimestamp %v",
				mode, got.Response["UIDSignature"], got.Response["signatureTimestamp"])
		}
		failedWith(mode, "setUserInfoUnknownUID", 403005)
	}
	other := succeeded("signed", "getUserInfoOtherMode")
	for field, want := range get("plain", "setUserInfo").Sent {
		if have := other.Response[field]; have != want {
			t.Errorf("signed getUserInfo of the plain-mode user: %s = %#v, want %#v", field, have, want)
		}
	}
	failedWith("plainWrongSecret", "getUserInfo", 403003)
	failedWith("signedWrongSecret", "getUserInfo", 403003)
	failedWith("bearerWrongKey", "getUserInfo", 403003)

	// Token mode: getToken with x_siteUID through the package's request(), then only
	// the token; it is bound to its user and ends with logout.
	grant := succeeded("plain", "getToken")
	if tok, _ := grant.Response["access_token"].(string); !strings.HasPrefix(tok, socius.AccessTokenPrefix) {
		t.Errorf("getToken: access_token = %q", tok)
	}
	if _, ok := grant.Response["expires_in"]; ok {
		t.Errorf("getToken without x_sessionExpiration: expires_in = %v", grant.Response["expires_in"])
	}
	tokenSet := succeeded("token", "setUserInfo")
	tokenGot := succeeded("token", "getUserInfo")
	if uid, _ := tokenGot.Response["UID"].(string); uid != "npm-token" {
		t.Errorf("token getUserInfo: UID = %q, want npm-token (x_siteUID)", uid)
	}
	if ln, _ := tokenGot.Response["lastName"].(string); ln != "Granted" {
		t.Errorf("token getUserInfo: lastName = %q, want Granted (x_userInfo)", ln)
	}
	for field, want := range tokenSet.Sent {
		if have := tokenGot.Response[field]; have != want {
			t.Errorf("token getUserInfo: %s = %#v, want %#v as set", field, have, want)
		}
	}
	failedWith("token", "getUserInfoOtherUID", 403007)
	failedWith("token", "getUserInfoUnknownToken", 403025)
	succeeded("token", "logout")
	failedWith("token", "getUserInfoAfterLogout", 403025)

	// Every call went through the proxy, to the host the package built itself, once: a
	// second tunnel for one call would be one of the package's retries (it tries a
	// call that gets 500001, 504001 or 409030 up to 5 times, 5 s apart).
	targets := proxy.targets()
	if len(targets) != calls {
		t.Errorf("the proxy saw %d CONNECT tunnels for %d calls (retries?): %v", len(targets), calls, targets)
	}
	for _, target := range targets {
		if target != "socialize.localtest.gigya.com:443" {
			t.Errorf("CONNECT %s, want socialize.localtest.gigya.com:443", target)
		}
	}
}

// wireRecord is what drive.js saw the package hand to its transport for one call.
type wireRecord struct {
	Host          string   `json:"host"`
	Endpoint      string   `json:"endpoint"`
	Params        []string `json:"params"` // form field names
	Timestamp     string   `json:"timestamp"`
	Authorization bool     `json:"authorization"`
}

// checkWire asserts that one API call made exactly one request, to the host the package
// builds for data center "localtest", with the credential fields of its mode: the
// partner secret in plain; userKey + millisecond timestamp + nonce + sig; oauth_token
// alone; or an Authorization header with apiKey.
func checkWire(t *testing.T, mode, step string, wire []wireRecord) {
	t.Helper()
	if len(wire) != 1 {
		t.Errorf("%s %s: the package made %d requests for one call, want 1 (retries?): %+v", mode, step, len(wire), wire)
		return
	}
	w := wire[0]
	bearer := strings.HasPrefix(mode, "bearer")
	if w.Host != "socialize.localtest.gigya.com" || !strings.HasPrefix(w.Endpoint, "socialize.") || w.Authorization != bearer {
		t.Errorf("%s %s: request to host %q endpoint %q (Authorization header: %v), want socialize.localtest.gigya.com, socialize.*, Authorization header %v",
			mode, step, w.Host, w.Endpoint, w.Authorization, bearer)
	}
	has := map[string]bool{}
	for _, p := range w.Params {
		has[p] = true
	}
	var want, absent []string
	switch {
	case strings.HasPrefix(mode, "plain"):
		want, absent = []string{"apiKey", "secret", "format"}, []string{"sig", "timestamp", "nonce", "userKey"}
	case strings.HasPrefix(mode, "token"):
		want, absent = []string{"oauth_token", "format"}, []string{"apiKey", "secret", "sig", "timestamp", "nonce", "userKey"}
	case bearer:
		want, absent = []string{"apiKey", "format"}, []string{"secret", "sig", "timestamp", "nonce", "userKey"}
	case strings.HasPrefix(mode, "signed"):
		want, absent = []string{"apiKey", "userKey", "timestamp", "nonce", "sig", "format"}, []string{"secret"}
		// Milliseconds, within a minute of now: the server must read them as such.
		ms, err := strconv.ParseInt(w.Timestamp, 10, 64)
		if now := time.Now().UnixMilli(); err != nil || ms < now-60_000 || ms > now+60_000 {
			t.Errorf("%s %s: timestamp %q is not the current time in milliseconds", mode, step, w.Timestamp)
		}
	default:
		t.Errorf("drive.js printed an unknown mode %q", mode)
	}
	for _, p := range want {
		if !has[p] {
			t.Errorf("%s %s: the package sent no %s (fields: %v)", mode, step, p, w.Params)
		}
	}
	for _, p := range absent {
		if has[p] {
			t.Errorf("%s %s: the package sent %s (fields: %v)", mode, step, p, w.Params)
		}
	}
}

// rsaKeyPEM makes an RSA key pair and returns it with its private key as PKCS #8 PEM.
func rsaKeyPEM(t *testing.T) (*rsa.PrivateKey, string) {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return k, string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
}

// TestGigyaNpmPackageVerified: the `gigya` package, unmodified, given
// compat/node/transport.js as its transport (the package's own constructor argument for
// one), talks to Socius over HTTPS with the server's certificate verified: no proxy, no
// NODE_TLS_REJECT_UNAUTHORIZED, and the data center names of production kept (the
// package signs for socialize.<dc>.gigya.com, which the transport keeps as the Host).
// Plain and signed calls work; without the certificate the connection is refused; an
// http:// URL is refused by the transport.
func TestGigyaNpmPackageVerified(t *testing.T) {
	node, dir := nodePackage(t, "the gigya npm package compatibility test")
	ts := startServer(t)
	const userKey, userSecret = "AUserKeyVerified", "dmVyaWZpZWQta2V5LXNlY3JldA=="
	if err := ts.Store.CreateKey(context.Background(), &socius.Key{
		UserKey: userKey, APIKey: testAPIKey, Secret: userSecret, CreatedAt: time.Now(),
	}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "verified.js")
	cmd.Dir = dir
	cmd.Env = append(nodeEnv(),
		"SOCIUS_URL="+ts.HTTPSURL,
		"SOCIUS_CA_FILE="+ts.CertFile,
		"GIGYA_API_KEY="+testAPIKey,
		"GIGYA_PARTNER_SECRET="+testSecret,
		"GIGYA_USER_KEY="+userKey,
		"GIGYA_USER_SECRET="+userSecret,
		"GIGYA_UID_PREFIX=verified",
	)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("node verified.js: %v (timeout: %v)\nstdout:\n%s\nstderr:\n%s", err, ctx.Err(), stdout.String(), stderr.String())
	}
	if strings.Contains(stderr.String(), "NODE_TLS_REJECT_UNAUTHORIZED") {
		t.Errorf("verified.js ran with certificate checks off:\n%s", stderr.String())
	}
	type line struct {
		Step      string `json:"step"`
		OK        bool   `json:"ok"`
		Result    any    `json:"result"`
		ErrorCode *int   `json:"errorCode"`
		Code      string `json:"code"`
		Error     string `json:"error"`
	}
	got := map[string]line{}
	sc := bufio.NewScanner(&stdout)
	for sc.Scan() {
		var l line
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("verified.js printed a line that is not JSON: %v\n%s", err, sc.Text())
		}
		t.Logf("%s", sc.Text())
		got[l.Step] = l
	}
	want := map[string]any{
		"plain-notifyLogin":  "verified-plain",
		"plain-setUserInfo":  float64(0),
		"plain-getUserInfo":  "Verified",
		"signed-setUserInfo": float64(0),
		"signed-getUserInfo": "Signed",
		"named-getUserInfo":  "Signed",
	}
	for step, result := range want {
		if l, ok := got[step]; !ok || !l.OK || l.Result != result {
			t.Errorf("%s: %+v, want ok with %v", step, l, result)
		}
	}
	if l := got["signed-unknownUser"]; l.OK || l.ErrorCode == nil || *l.ErrorCode != socius.CodeUnauthorizedUser {
		t.Errorf("signed-unknownUser: %+v, want the package's error with errorCode 403005", l)
	}
	if l := got["no-ca-getUserInfo"]; l.OK || l.ErrorCode != nil || !strings.Contains(l.Code, "CERT") {
		t.Errorf("no-ca-getUserInfo: %+v, want a certificate error from Node's TLS", l)
	}
	if l := got["http-url"]; l.OK || !strings.Contains(l.Error, "must be https://") {
		t.Errorf("http-url: %+v, want the transport to refuse a plain-HTTP URL", l)
	}
}

// nodePackage returns node's path and compat/node's folder, the gigya package installed
// in it, for a test (what) that runs it; it skips the test when SOCIUS_SKIP_NODE=1, and
// fails it without node.
func nodePackage(t *testing.T, what string) (node, dir string) {
	t.Helper()
	if os.Getenv("SOCIUS_SKIP_NODE") == "1" {
		t.Skipf("SOCIUS_SKIP_NODE=1: not running %s", what)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is not installed (or not on PATH): %s needs Node.js and npm; set SOCIUS_SKIP_NODE=1 to skip it", what)
	}
	if dir, err = filepath.Abs(filepath.Join("..", "..", "compat", "node")); err != nil {
		t.Fatal(err)
	}
	ensureNodeModules(t, dir)
	return node, dir
}

// ensureNodeModules runs `npm ci` in dir when the gigya package is not installed yet.
func ensureNodeModules(t *testing.T, dir string) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "gigya", "package.json")); err == nil {
		return
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		t.Fatalf("npm is not installed (or not on PATH): the gigya npm package compatibility test needs it to install compat/node; set SOCIUS_SKIP_NODE=1 to skip it")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("npm ci in %s: %v (timeout: %v)\n%s", dir, err, ctx.Err(), out)
	}
}

// nodeEnv is the test process's environment without the variables that would change
// where or how the package connects.
func nodeEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch strings.ToUpper(name) {
		case "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY",
			"NODE_TLS_REJECT_UNAUTHORIZED", "NODE_OPTIONS", "GIGYA_VERBOSE_HTTP_LOGGING":
			continue
		}
		if strings.HasPrefix(name, "GIGYA_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// connectProxy is a minimal HTTP CONNECT proxy that tunnels every connection to one
// address, whatever host the client asks for, and records the requested targets.
type connectProxy struct {
	addr string
	ln   net.Listener

	mu    sync.Mutex
	seen  []string
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func startConnectProxy(t *testing.T, upstream string) *connectProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &connectProxy{addr: ln.Addr().String(), ln: ln, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if !p.track(c) {
				c.Close()
				return
			}
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				p.handle(c, upstream)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for c := range p.conns {
			c.Close()
		}
		p.conns = nil
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

// track registers c so that cleanup closes it; false once the proxy is closed.
func (p *connectProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conns == nil {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *connectProxy) untrack(c net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conns != nil {
		delete(p.conns, c)
	}
	c.Close()
}

func (p *connectProxy) targets() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.seen...)
}

func (p *connectProxy) handle(client net.Conn, upstream string) {
	defer p.untrack(client)
	client.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(client)
	req, err := http.ReadRequest(br)
	if err != nil {
		return
	}
	client.SetReadDeadline(time.Time{})
	if req.Method != http.MethodConnect {
		// Only tunnels: a plain-HTTP request through the proxy would mean the package
		// sent its secret unencrypted.
		fmt.Fprintf(client, "HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
		p.mu.Lock()
		p.seen = append(p.seen, req.Method+" "+req.URL.String())
		p.mu.Unlock()
		return
	}
	p.mu.Lock()
	p.seen = append(p.seen, req.Host)
	p.mu.Unlock()
	server, err := net.DialTimeout("tcp", upstream, 5*time.Second)
	if err != nil {
		fmt.Fprintf(client, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
		return
	}
	if !p.track(server) {
		server.Close()
		return
	}
	defer p.untrack(server)
	if _, err := io.WriteString(client, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		return
	}
	errc := make(chan error, 2)
	go func() {
		// br may already hold bytes the client sent after the CONNECT request.
		_, err := io.Copy(server, br)
		if tc, ok := server.(*net.TCPConn); ok {
			tc.CloseWrite()
		}
		errc <- err
	}()
	go func() {
		_, err := io.Copy(client, server)
		if tc, ok := client.(*net.TCPConn); ok {
			tc.CloseWrite()
		}
		errc <- err
	}()
	for i := 0; i < 2; i++ {
		if err := <-errc; err != nil && !errors.Is(err, net.ErrClosed) {
			return
		}
	}
}
