package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/socius/socius"
	"github.com/socius/socius/gigya"
	"github.com/socius/socius/http1"
)

// Test credentials: the lab site of the shared captures.
const (
	testAPIKey = "3_LabApiKey_AbC-123"
	testSecret = "c2VjcmV0LWZvci10aGUtZ2lneWEtbGFiLTEyMzQ1Ng=="
)

// testServer is Socius running in-process, as `socius serve` runs it: real listeners on
// port 0, a real SQLite file in a temp folder, real TLS.
type testServer struct {
	*Main
	Clock  *socius.OffsetClock
	client *http.Client // trusts the server's certificate
}

// startServer runs Socius with the lab site. Extra flags may be given.
func startServer(t *testing.T, flags ...string) *testServer {
	t.Helper()
	return startMain(t, nil, flags...)
}

// startMain runs Socius like startServer, letting setup change Main (where its logs
// and its output go) before it runs.
func startMain(t *testing.T, setup func(*Main), flags ...string) *testServer {
	t.Helper()
	m := NewMain()
	args := append([]string{"--data", t.TempDir(), "--http", "127.0.0.1:0", "--https", "127.0.0.1:0",
		"--admin", "127.0.0.1:0", "--site-api-key", testAPIKey, "--site-secret", testSecret, "--log-level", "error"}, flags...)
	if err := m.ParseFlags(args, func(string) (string, bool) { return "", false }, io.Discard); err != nil {
		t.Fatal(err)
	}
	clock := &socius.OffsetClock{}
	m.Clock = clock
	m.Stdout = io.Discard
	if setup != nil {
		setup(m)
	}
	if err := m.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	c := httpClient()
	if m.CertFile != "" {
		pem, err := os.ReadFile(m.CertFile)
		if err != nil {
			t.Fatal(err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			t.Fatal("cannot read the generated certificate")
		}
		c.Transport.(*http.Transport).TLSClientConfig = &tls.Config{RootCAs: pool}
	}
	return &testServer{Main: m, Clock: clock, client: c}
}

// storeFault is a real store whose operation named by fail ("Site", "Users" or
// "RevokeToken") fails as it does with the database gone (500028); the others reach
// the store. It has no view (Snapshot): an export reads it page by page.
type storeFault struct {
	socius.Store
	fail string
}

var errStoreGone = socius.DatabaseError("test", errors.New("connection refused"))

func (s storeFault) Site(ctx context.Context, apiKey string) (*socius.Site, error) {
	if s.fail == "Site" {
		return nil, errStoreGone
	}
	return s.Store.Site(ctx, apiKey)
}

func (s storeFault) PutSite(ctx context.Context, site *socius.Site) error {
	if s.fail == "PutSite" {
		return errStoreGone
	}
	return s.Store.PutSite(ctx, site)
}

func (s storeFault) Users(ctx context.Context, apiKey, after string, limit int) ([]*socius.User, error) {
	if s.fail == "Users" {
		return nil, errStoreGone
	}
	return s.Store.Users(ctx, apiKey, after, limit)
}

func (s storeFault) RevokeToken(ctx context.Context, hash string, now time.Time) (int, error) {
	if s.fail == "RevokeToken" {
		return 0, errStoreGone
	}
	return s.Store.RevokeToken(ctx, hash, now)
}

func httpClient() *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{}}
}

// answer is a decoded envelope.
type answer map[string]any

func (a answer) code() int {
	f, _ := a["errorCode"].(float64)
	return int(f)
}

func (a answer) str(k string) string {
	s, _ := a[k].(string)
	return s
}

// post sends the parameters as a form body to base+"/"+method and decodes the answer.
func (ts *testServer) post(t *testing.T, base, method string, params url.Values) answer {
	t.Helper()
	body, _ := ts.postRaw(t, base, method, params.Encode())
	var a answer
	if err := json.Unmarshal(body, &a); err != nil {
		t.Fatalf("%s: answer is not JSON: %v\n%s", method, err, body)
	}
	return a
}

func (ts *testServer) postRaw(t *testing.T, base, method, body string) ([]byte, *http.Response) {
	t.Helper()
	resp, err := ts.client.Post(base+"/"+method, "application/x-www-form-urlencoded", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b, resp
}

// answerOf sends req with the test server's client and decodes its answer.
func (ts *testServer) answerOf(t *testing.T, req *http.Request) answer {
	t.Helper()
	return answerVia(t, ts.client, req)
}

// answerVia sends req with c (a client of another source address, or one through a
// proxy) and decodes its answer.
func answerVia(t *testing.T, c *http.Client, req *http.Request) answer {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var a answer
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		t.Fatalf("%s: the answer is not JSON: %v", req.URL.Path, err)
	}
	return a
}

var nonceSeq atomic.Int64

// signed adds apiKey, timestamp, nonce and sig, signing for the URL the request goes
// to, as the SDKs do. userKey/userSecret sign with a key instead of the partner secret.
func (ts *testServer) signed(t *testing.T, base, method string, params url.Values, userKey, secret string) url.Values {
	t.Helper()
	p := url.Values{}
	for k, v := range params {
		p[k] = v
	}
	if p.Get("timestamp") == "" {
		p.Set("timestamp", strconv.FormatInt(ts.Clock.Now().Unix(), 10))
	}
	return signedFor(t, base, method, p, userKey, secret)
}

// signedFor signs params for base/method (timestamp: now, unless given).
func signedFor(t *testing.T, base, method string, params url.Values, userKey, secret string) url.Values {
	t.Helper()
	p := url.Values{}
	for k, v := range params {
		p[k] = v
	}
	if p.Get("apiKey") == "" {
		p.Set("apiKey", testAPIKey)
	}
	if userKey != "" {
		p.Set("userKey", userKey)
	}
	if secret == "" {
		secret = testSecret
	}
	p.Set("format", "json")
	p.Set("httpStatusCodes", "false")
	if p.Get("timestamp") == "" {
		p.Set("timestamp", strconv.FormatInt(time.Now().Unix(), 10))
	}
	if p.Get("nonce") == "" {
		p.Set("nonce", strconv.FormatInt(time.Now().UnixNano(), 10)+"_"+strconv.FormatInt(nonceSeq.Add(1), 10))
	}
	norm, err := gigya.NormalizeURL(base + "/" + method)
	if err != nil {
		t.Fatal(err)
	}
	var list []gigya.Param
	for k, vs := range p {
		for _, v := range vs {
			list = append(list, gigya.Param{Name: k, Value: v})
		}
	}
	key, err := socius.DecodeSecret(secret)
	if err != nil {
		t.Fatal(err)
	}
	p.Set("sig", gigya.Sign(key, "POST", norm, list))
	return p
}

// call signs with the partner secret over plain HTTP and posts.
func (ts *testServer) call(t *testing.T, method string, params url.Values) answer {
	t.Helper()
	return ts.post(t, ts.HTTPURL, method, ts.signed(t, ts.HTTPURL, method, params, "", ""))
}

// login creates a user through socialize.notifyLogin.
func (ts *testServer) login(t *testing.T, uid string) {
	t.Helper()
	if a := ts.call(t, "socialize.notifyLogin", url.Values{"siteUID": {uid}}); a.code() != 0 {
		t.Fatalf("notifyLogin %s: %v", uid, a)
	}
}

func TestServeSetAndGetUserInfo(t *testing.T) {
	ts := startServer(t)
	ts.login(t, "u1")
	a := ts.call(t, "socialize.setUserInfo", url.Values{"UID": {"u1"}, "userInfo": {`{"firstName":"David","gender":"m","age":30}`}})
	if a.code() != 0 {
		t.Fatalf("setUserInfo: %v", a)
	}
	a = ts.call(t, "socialize.getUserInfo", url.Values{"UID": {"u1"}})
	if a.code() != 0 || a.str("firstName") != "David" || a.str("gender") != "m" || a["age"] != 30.0 {
		t.Fatalf("getUserInfo: %v", a)
	}
}

// tlsDial opens a TLS connection to the server, trusting its certificate.
func tlsDial(ts *testServer, addr string) (net.Conn, error) {
	return tls.Dial("tcp", addr, ts.client.Transport.(*http.Transport).TLSClientConfig)
}

// TestFastPathWiring: the API listeners, HTTP and HTTPS, are served by package http1
// unless --fast-path=false or in emulator mode (whose fault delays need net/http's
// context that ends when the client goes away); admin and pprof stay on net/http.
func TestFastPathWiring(t *testing.T) {
	fast := func(ts *testServer) int {
		n := 0
		for _, srv := range ts.servers {
			if _, ok := srv.(*http1.Server); ok {
				n++
			}
		}
		return n
	}
	for _, tt := range []struct {
		name string
		ts   func() *testServer
		want int
	}{
		{"default", func() *testServer { return startServer(t) }, 2}, // HTTP and HTTPS
		{"no HTTPS", func() *testServer { return startServer(t, "--https", "") }, 1},
		{"--fast-path=false", func() *testServer { return startServer(t, "--fast-path=false") }, 0},
		{"emulator", func() *testServer { return startEmulator(t) }, 0},
	} {
		ts := tt.ts()
		if got := fast(ts); got != tt.want {
			t.Errorf("%s: %d listeners on the fast path, want %d", tt.name, got, tt.want)
		}
		// Calls are answered either way, over HTTPS with a secret too (taken as sent
		// over TLS, on the fast path or not).
		if a := ts.call(t, "socialize.getUserInfo", url.Values{"UID": {"nobody"}}); a.code() != 403005 && a.code() != 0 {
			t.Errorf("%s: getUserInfo answered %d", tt.name, a.code())
		}
		if ts.HTTPSURL != "" {
			form := url.Values{"apiKey": {testAPIKey}, "secret": {testSecret}, "UID": {"nobody"}}
			if a := ts.tlsPost(t, "socialize.getUserInfo", form); a.code() != 403005 {
				t.Errorf("%s: getUserInfo with a secret over HTTPS answered %d %s", tt.name, a.code(), a.str("errorDetails"))
			}
			// Chunked: a request the fast path hands to net/http, TLS state and all.
			req, err := http.NewRequest("POST", ts.HTTPSURL+"/socialize.getUserInfo", io.MultiReader(strings.NewReader(form.Encode())))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.ContentLength = -1
			resp, err := ts.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var a answer
			err = json.NewDecoder(resp.Body).Decode(&a)
			resp.Body.Close()
			if err != nil || a.code() != 403005 {
				t.Errorf("%s: a chunked getUserInfo with a secret over HTTPS answered %v %v", tt.name, a, err)
			}
		}
	}
}

// TestSameStop: which signal after the first asks for the shutdown already running
// (a hangup; a SIGTERM within a second of a first SIGTERM, as GNU timeout sends two)
// and which stops the process at once.
func TestSameStop(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		first, sig os.Signal
		after      time.Duration
		same       bool
	}{
		{syscall.SIGTERM, syscall.SIGTERM, 0, true},
		{syscall.SIGTERM, syscall.SIGTERM, 999 * time.Millisecond, true},
		{syscall.SIGTERM, syscall.SIGTERM, time.Second, false},
		{syscall.SIGTERM, syscall.SIGINT, 0, false},
		{syscall.SIGINT, syscall.SIGINT, 0, false},
		{syscall.SIGINT, syscall.SIGTERM, 0, false},
		{syscall.SIGHUP, syscall.SIGTERM, 0, false},
		{syscall.SIGTERM, syscall.SIGHUP, time.Minute, true},
		{syscall.SIGHUP, syscall.SIGHUP, 0, true},
	} {
		if got := sameStop(c.first, t0, c.sig, t0.Add(c.after)); got != c.same {
			t.Errorf("%v, then %v after %v: sameStop %v, want %v", c.first, c.sig, c.after, got, c.same)
		}
	}
}
