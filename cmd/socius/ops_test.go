package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/socius/socius"
	"github.com/socius/socius/gigya"
	"github.com/socius/socius/internal/syncbuf"
	"github.com/socius/socius/internal/vectors"
)

// get fetches a URL and returns the status and body.
func get(t *testing.T, u string) (int, string) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// metricValue finds one sample in a scrape.
func metricValue(t *testing.T, scrape, sample string) float64 {
	t.Helper()
	for _, line := range strings.Split(scrape, "\n") {
		if v, ok := strings.CutPrefix(line, sample+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	t.Errorf("no sample %s in the scrape", sample)
	return -1
}

func TestAdminListener(t *testing.T) {
	ts := startServer(t)
	ts.login(t, "u1")
	for i := 0; i < 2; i++ {
		ts.call(t, "socialize.getUserInfo", url.Values{"UID": {"u1"}})
	}
	bad := ts.signed(t, ts.HTTPURL, "socialize.getUserInfo", url.Values{"UID": {"u1"}}, "", "")
	bad.Set("sig", "AAAAAAAAAAAAAAAAAAAAAAAAAAA=")
	ts.post(t, ts.HTTPURL, "socialize.getUserInfo", bad)
	ts.post(t, ts.HTTPURL, "socialize.nope", url.Values{})
	ts.waitInFlight(t, 0)

	status, body := get(t, ts.AdminURL+"/metrics")
	if status != 200 {
		t.Fatalf("/metrics: HTTP %d", status)
	}
	for sample, want := range map[string]float64{
		`socius_calls_total{method="socialize.notifyLogin",code="0"}`:        1,
		`socius_calls_total{method="socialize.getUserInfo",code="0"}`:        2,
		`socius_calls_total{method="socialize.getUserInfo",code="403003"}`:   1,
		`socius_calls_total{method="unknown",code="400001"}`:                 1,
		`socius_call_duration_seconds_count{method="socialize.getUserInfo"}`: 3,
		`socius_nonce_cache_size`:                                            3, // three signed calls passed
		`socius_calls_in_flight`:                                             0,
	} {
		if got := metricValue(t, body, sample); got != want {
			t.Errorf("%s = %v, want %v", sample, got, want)
		}
	}
	// Every getUserInfo looked its site up; notifyLogin wrote through the group commit.
	if n := metricValue(t, body, `socius_store_duration_seconds_count{op="site"}`); n < 4 {
		t.Errorf("store site lookups timed: %v", n)
	}
	if n := metricValue(t, body, `socius_store_duration_seconds_count{op="login"}`); n != 1 {
		t.Errorf("store logins timed: %v", n)
	}
	for _, re := range []string{`(?m)^socius_build_info\{version="[^"]+",goversion="go[^"]+"\} 1$`, `(?m)^go_goroutines \d+$`,
		`(?m)^# TYPE socius_call_duration_seconds histogram$`, `(?m)^process_resident_memory_bytes \d`} {
		if !regexp.MustCompile(re).MatchString(body) {
			t.Errorf("the scrape lacks %s", re)
		}
	}
	// The API listener does not serve the admin paths: they are unknown methods there.
	if _, b := get(t, ts.HTTPURL+"/metrics"); !strings.Contains(b, `"errorCode":400001`) {
		t.Errorf("/metrics on the API listener: %s", b)
	}

	if status, body := get(t, ts.AdminURL+"/healthz"); status != 200 || body != "ok\n" {
		t.Errorf("/healthz: %d %q", status, body)
	}
	if status, body := get(t, ts.AdminURL+"/readyz"); status != 200 || body != "ready\n" {
		t.Errorf("/readyz: %d %q", status, body)
	}
	// The store goes away: not ready, still alive.
	ts.Store.Close()
	if status, _ := get(t, ts.AdminURL+"/readyz"); status != 503 {
		t.Errorf("/readyz without a store: %d", status)
	}
	if status, _ := get(t, ts.AdminURL+"/healthz"); status != 200 {
		t.Errorf("/healthz without a store: %d", status)
	}
}

// TestReadyzStoreFails: a store that cannot tell its health (no Healthy method) is
// ready while it answers a read, and not ready once a read fails.
func TestReadyzStoreFails(t *testing.T) {
	st := openDataStore(t, t.TempDir())
	defer st.Close()
	m := &Main{Logger: discardLogger()}
	for _, c := range []struct {
		fail   string
		status int
		body   string
	}{
		{"", 200, "ready\n"},
		{"Site", 503, "not ready: the store failed a read (the log says why)\n"},
	} {
		rec := httptest.NewRecorder()
		m.readyStore = storeFault{Store: st, fail: c.fail}
		m.serving.Store(true)
		m.adminHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
		if rec.Code != c.status || rec.Body.String() != c.body {
			t.Errorf("/readyz, %q failing: %d %q; want %d %q", c.fail, rec.Code, rec.Body.String(), c.status, c.body)
		}
	}
}

// TestAdminServesWhileStarting: the admin listener answers from the moment it is
// bound, through a start that takes long (here the store's first read of the site,
// held; with PostgreSQL, a migration waiting for a lock): /healthz 200, /readyz 503
// "not ready: starting", then 200 "ready" once the API listeners serve. It was bound
// but served only at the end of the start, so that a liveness probe's connection hung
// unanswered for as long, and a probe that gives up restarted a start still at work.
func TestAdminServesWhileStarting(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	admin := ln.Addr().String()
	ln.Close()
	m := NewMain()
	args := []string{"--data", t.TempDir(), "--http", "127.0.0.1:0", "--https", "", "--admin", admin,
		"--site-api-key", testAPIKey, "--site-secret", testSecret, "--log-level", "error"}
	if err := m.ParseFlags(args, func(string) (string, bool) { return "", false }, io.Discard); err != nil {
		t.Fatal(err)
	}
	m.Stdout = io.Discard
	release := make(chan struct{})
	m.wrapStore = func(st socius.Store) socius.Store { return heldSite{st, release} }
	started := make(chan error, 1)
	go func() { started <- m.Run(context.Background()) }()
	ran := false // Run returned, and its result was taken from started
	defer func() {
		if !ran {
			close(release)
			if <-started != nil {
				return
			}
		}
		m.Close()
	}()
	c := &http.Client{Timeout: time.Second}
	probe := func(path string) (int, string, error) {
		resp, err := c.Get("http://" + admin + path)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), err
	}
	var status int
	var body string
	for deadline := time.Now().Add(5 * time.Second); ; {
		if status, body, err = probe("/healthz"); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if status != 200 || body != "ok\n" {
		t.Fatalf("/healthz while starting: %d %q, %v; want 200 \"ok\\n\"", status, body, err)
	}
	if status, body, err := probe("/readyz"); status != 503 || body != "not ready: starting\n" {
		t.Errorf("/readyz while starting: %d %q, %v; want 503 \"not ready: starting\\n\"", status, body, err)
	}
	close(release)
	ran = true
	if err := <-started; err != nil {
		t.Fatal(err)
	}
	if status, body, err := probe("/readyz"); status != 200 || body != "ready\n" {
		t.Errorf("/readyz once started: %d %q, %v; want 200 \"ready\\n\"", status, body, err)
	}
}

// heldSite is a store whose Site waits until release is closed.
type heldSite struct {
	socius.Store
	release chan struct{}
}

func (s heldSite) Site(ctx context.Context, apiKey string) (*socius.Site, error) {
	<-s.release
	return s.Store.Site(ctx, apiKey)
}

// TestReadyzFileGone: the database files deleted under a running server: writes are
// refused (500028), not acknowledged into files no path names, and /readyz says why.
func TestReadyzFileGone(t *testing.T) {
	ts := startServer(t)
	ts.login(t, "u1")
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if err := os.Remove(filepath.Join(ts.DataDir, "socius.db"+suffix)); err != nil {
			t.Fatal(err)
		}
	}
	if a := ts.call(t, "socialize.setUserInfo", url.Values{"UID": {"u1"}, "userInfo": {`{"nickname":"lost"}`}}); a.code() != 500028 {
		t.Errorf("setUserInfo after the files went: %v", a)
	}
	if status, body := get(t, ts.AdminURL+"/readyz"); status != 503 || !strings.Contains(body, "not ready: sqlite: the database file was deleted or replaced") {
		t.Errorf("/readyz after the files went: %d %q", status, body)
	}
}

// TestReadyzIndexGone: the WAL-index (socius.db-shm) deleted under a running server:
// /readyz says so (another process opening the database now would not see the
// server's locks), and writes go on.
func TestReadyzIndexGone(t *testing.T) {
	ts := startServer(t)
	ts.login(t, "u1")
	if err := os.Remove(filepath.Join(ts.DataDir, "socius.db-shm")); err != nil {
		t.Fatal(err)
	}
	if status, body := get(t, ts.AdminURL+"/readyz"); status != 503 || !strings.Contains(body, "not ready: sqlite: the database's WAL-index file was deleted or replaced") {
		t.Errorf("/readyz after the WAL-index went: %d %q", status, body)
	}
	if a := ts.call(t, "socialize.setUserInfo", url.Values{"UID": {"u1"}, "userInfo": {`{"nickname":"kept"}`}}); a.code() != 0 {
		t.Errorf("setUserInfo after the WAL-index went: %v", a)
	}
}

func TestAdminListenerDisabled(t *testing.T) {
	ts := startServer(t, "--admin", "")
	if ts.AdminURL != "" {
		t.Errorf("--admin \"\" still listens on %s", ts.AdminURL)
	}
}

// TestCallLogNeverHoldsCredentials makes calls with every kind of credential (and a
// signature that fails, whose base strings are logged at debug level) and checks that
// the log has one JSON line per call with its fields, and none of the credentials.
func TestCallLogNeverHoldsCredentials(t *testing.T) {
	var logs syncbuf.Buffer
	ts := startMain(t, func(m *Main) { m.LogOutput = &logs }, "--log-format", "json", "--log-level", "debug")
	ctx := context.Background()
	if err := ts.Store.CreateKey(ctx, &socius.Key{UserKey: vectors.LabUserKey, APIKey: testAPIKey, Secret: vectors.LabUserSecret, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	var secrets []string // every credential value sent or answered
	calls := 0
	send := func(base, method string, p url.Values) answer {
		t.Helper()
		for _, name := range []string{"secret", "sig", "oauth_token"} {
			if v := p.Get(name); v != "" {
				secrets = append(secrets, v)
			}
		}
		calls++
		return ts.post(t, base, method, p)
	}
	a := send(ts.HTTPURL, "socialize.notifyLogin", ts.signed(t, ts.HTTPURL, "socialize.notifyLogin", url.Values{"siteUID": {"u1"}}, "", ""))
	if a.code() != 0 || a.str("cookieValue") == "" {
		t.Fatalf("notifyLogin: %v", a)
	}
	secrets = append(secrets, a.str("cookieValue"), a.str("UIDSignature"))
	send(ts.HTTPSURL, "socialize.getUserInfo", url.Values{"apiKey": {testAPIKey}, "secret": {testSecret}, "UID": {"u1"}})
	send(ts.HTTPSURL, "socialize.getUserInfo", url.Values{"apiKey": {testAPIKey}, "userKey": {vectors.LabUserKey}, "secret": {vectors.LabUserSecret}, "UID": {"u1"}})
	send(ts.HTTPURL, "socialize.getUserInfo", ts.signed(t, ts.HTTPURL, "socialize.getUserInfo", url.Values{"UID": {"u1"}}, vectors.LabUserKey, vectors.LabUserSecret))
	send(ts.HTTPSURL, "socialize.getUserInfo", url.Values{"oauth_token": {"st2.s.AcbHQ2Rz0A.token-value-1234"}})
	send(ts.HTTPSURL, "socialize.getUserInfo", url.Values{"apiKey": {testAPIKey}, "secret": {"d3Jvbmctc2VjcmV0LXdyb25n"}, "UID": {"u1"}})
	// A signature that does not match, sent with a secret too (which then enters the
	// base string), over HTTPS (over HTTP the secret is refused first).
	p := ts.signed(t, ts.HTTPSURL, "socialize.getUserInfo", url.Values{"UID": {"u1"}, "secret": {"c29tZS1vdGhlci1zZWNyZXQtdmFsdWU="}}, "", "")
	p.Set("sig", "AAAAAAAAAAAAAAAAAAAAAAAAAAA=")
	if a := send(ts.HTTPSURL, "socialize.getUserInfo", p); a.code() != 403003 {
		t.Fatalf("bad signature: %v", a)
	}
	// Credentials sent the wrong way round: the secret where the apiKey, client_id or
	// userKey goes. The answer and the log name the unknown value shortened, never whole.
	swapped := []struct {
		method string
		p      url.Values
		basic  [2]string
		code   int
		want   string
	}{
		{"socialize.getUserInfo", url.Values{"apiKey": {testSecret}, "secret": {testAPIKey}, "UID": {"u1"}}, [2]string{}, 400093, `no site has apiKey "c2Vj"... (length 44)`},
		// Not an apiKey's shape: answered as a userKey whose secret was not sent is.
		{"socialize.getToken", url.Values{"grant_type": {"none"}, "client_id": {testSecret}, "client_secret": {testAPIKey}}, [2]string{}, 403003, `client_id "c2Vj"... (length 44) is neither`},
		{"socialize.getToken", url.Values{"grant_type": {"none"}}, [2]string{testSecret, testAPIKey}, 403003, `client_id "c2Vj"... (length 44) is neither`},
		{"socialize.getUserInfo", url.Values{"apiKey": {testAPIKey}, "userKey": {vectors.LabUserSecret}, "secret": {vectors.LabUserKey}, "UID": {"u1"}}, [2]string{}, 403005, "userKey "},
	}
	for _, c := range swapped {
		req, err := http.NewRequest("POST", ts.HTTPSURL+"/"+c.method, strings.NewReader(c.p.Encode()))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if c.basic[0] != "" {
			req.SetBasicAuth(c.basic[0], c.basic[1])
		}
		calls++
		a := ts.answerOf(t, req)
		if a.code() != c.code || !strings.Contains(a.str("errorDetails"), c.want) ||
			strings.Contains(a.str("errorDetails"), testSecret) || strings.Contains(a.str("errorDetails"), vectors.LabUserSecret) {
			t.Errorf("%s %v: %v", c.method, c.p, a)
		}
	}
	secrets = append(secrets, testSecret, vectors.LabUserSecret)
	ts.waitInFlight(t, 0)

	out := logs.String()
	for _, s := range secrets {
		for _, form := range []string{s, gigya.Escape(s), gigya.Escape(gigya.Escape(s))} {
			if strings.Contains(out, form) {
				t.Errorf("the log holds the credential %q", form)
			}
		}
	}
	if key, _ := socius.DecodeSecret(testSecret); strings.Contains(out, string(key)) {
		t.Error("the log holds the decoded partner secret")
	}

	var callLines, mismatch int
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var line map[string]any
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("not a JSON line: %s", sc.Text())
		}
		switch line["msg"] {
		case "call":
			callLines++
			for _, k := range []string{"time", "level", "callId", "method", "apiKey", "errorCode", "latencyMs", "remote"} {
				if _, ok := line[k]; !ok {
					t.Errorf("call line without %s: %s", k, sc.Text())
				}
			}
			if line["level"] != "INFO" || !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(line["callId"].(string)) {
				t.Errorf("call line: %s", sc.Text())
			}
			if line["errorCode"] != 0.0 && line["errorDetails"] == nil {
				t.Errorf("a failed call without errorDetails: %s", sc.Text())
			}
		case "signature mismatch":
			mismatch++
			if !strings.Contains(sc.Text(), "secret%3D%252A%252A%252A") { // secret=*** in the base string
				t.Errorf("the base string of a call carrying a secret is not redacted: %s", sc.Text())
			}
		}
	}
	if callLines != calls || mismatch != 1 {
		t.Errorf("%d call lines for %d calls, %d signature mismatch lines\n%s", callLines, calls, mismatch, out)
	}
	for _, want := range []string{`"credential":"partner-signature"`, `"credential":"key-secret"`, `"userKey":"` + vectors.LabUserKey + `"`, `"errorCode":403025`} {
		if !strings.Contains(out, want) {
			t.Errorf("the log lacks %s", want)
		}
	}
}

func TestTextLogsAndNoCallLog(t *testing.T) {
	var logs syncbuf.Buffer
	ts := startMain(t, func(m *Main) { m.LogOutput = &logs }, "--log-level", "info")
	ts.login(t, "u1")
	ts.waitInFlight(t, 0)
	if !regexp.MustCompile(`(?m)^time=\S+ level=INFO msg=call callId=[0-9a-f]{32} method=socialize.notifyLogin apiKey=` + testAPIKey + ` credential=partner-signature errorCode=0 latencyMs=`).MatchString(logs.String()) {
		t.Errorf("text call line:\n%s", logs.String())
	}
	// A call refused for its apiKey, or before its site was read, names the apiKey it
	// sent, a malformed one too (since 2026-11-30; it was left out), by its start and
	// length when not all of it has an apiKey's shape (since the twenty-ninth session).
	ts.post(t, ts.HTTPURL, "socialize.getUserInfo", url.Values{"apiKey": {"3_typo"}, "UID": {"u1"}, "secret": {"x"}})
	ts.post(t, ts.HTTPURL, "socialize.getUserInfo", url.Values{"apiKey": {testAPIKey}, "UID": {"u1"}, "timestamp": {"yesterday"}, "sig": {"x"}, "nonce": {"1"}})
	ts.post(t, ts.HTTPURL, "socialize.getUserInfo", url.Values{"apiKey": {"3_no pe"}, "UID": {"u1"}, "secret": {"x"}})
	ts.waitInFlight(t, 0)
	for _, line := range []string{`apiKey=3_typo (credential=\S+ )?errorCode=400093`, `apiKey=` + testAPIKey + ` (credential=\S+ )?errorCode=400006`, `apiKey="\\"3_no\\"... \(length 7\)" (credential=\S+ )?errorCode=400093`} {
		if !regexp.MustCompile(`(?m)^time=\S+ level=INFO msg=call callId=[0-9a-f]{32} method=socialize.getUserInfo ` + line).MatchString(logs.String()) {
			t.Errorf("no call line with %s:\n%s", line, logs.String())
		}
	}
	var quiet syncbuf.Buffer
	ts = startMain(t, func(m *Main) { m.LogOutput = &quiet }, "--log-level", "info", "--log-calls=false")
	ts.login(t, "u1")
	ts.waitInFlight(t, 0)
	if strings.Contains(quiet.String(), "msg=call") {
		t.Errorf("--log-calls=false still logs calls:\n%s", quiet.String())
	}
}

func TestLoggerMasksCredentialAttributes(t *testing.T) {
	var b bytes.Buffer
	l, err := newLogger(&b, "json", "debug")
	if err != nil {
		t.Fatal(err)
	}
	l.Info("oops", "secret", "s3cr3t", "Sig", "abc", "oauth_token", "tok", "Authorization", "Bearer eyJ", "signature", "c2ln", "apiKey", "3_visible")
	if out := b.String(); strings.Contains(out, "s3cr3t") || strings.Contains(out, `"abc"`) || strings.Contains(out, "tok\"") || strings.Contains(out, "eyJ") ||
		strings.Contains(out, "c2ln") || !strings.Contains(out, "3_visible") {
		t.Errorf("masked log: %s", out)
	}
}

func TestVersion(t *testing.T) {
	code, out, _ := runCLI(t, noEnv, "version")
	if code != 0 || !strings.HasPrefix(out, "socius ") || !strings.Contains(out, runtime.Version()+" "+runtime.GOOS+"/"+runtime.GOARCH) {
		t.Errorf("version: %d %q", code, out)
	}
	defer func(v string) { version = v }(version)
	version = "v1.2.3"
	if _, out, _ := runCLI(t, noEnv, "version"); !strings.HasPrefix(out, "socius v1.2.3\n") {
		t.Errorf("with -X main.version: %q", out)
	}
}

func TestServeLimitFlags(t *testing.T) {
	m := NewMain()
	if m.ReadHeaderTimeout != 10*time.Second || m.ReadTimeout != 30*time.Second || m.WriteTimeout != 30*time.Second ||
		m.IdleTimeout != 2*time.Minute || m.MaxHeaderBytes != 64<<10 || m.MaxConcurrent != 1024 || m.RateLimit != 0 || m.AdminAddr != "127.0.0.1:9090" ||
		m.HTTPAddr != "127.0.0.1:8080" || m.HTTPSAddr != "127.0.0.1:8443" || m.DataDir != "socius-data" || m.MaxBodyBytes != 1<<20 {
		t.Errorf("defaults: %+v", m)
	}
	// The largest values the README allows.
	for _, good := range [][]string{
		{"--max-body-bytes", "1073741824"},
		{"--max-concurrent", "1048576"},
		{"--max-concurrent", "0"},
	} {
		if err := NewMain().ParseFlags(good, noEnv, io.Discard); err != nil {
			t.Errorf("ParseFlags(%q): %v", good, err)
		}
	}
	for _, bad := range [][]string{
		{"--read-timeout", "0s"},
		{"--idle-timeout", "-1s"},
		{"--max-concurrent", "-1"},
		{"--rate-limit", "-2"},
		{"--log-format", "xml"},
		{"--max-body-bytes", "0"},
	} {
		if err := NewMain().ParseFlags(bad, noEnv, io.Discard); err == nil {
			t.Errorf("ParseFlags(%q) accepted", bad)
		}
	}
	env := map[string]string{"SOCIUS_RATE_LIMIT": "2.5", "SOCIUS_READ_TIMEOUT": "5s", "SOCIUS_ADMIN": ""}
	m = NewMain()
	if err := m.ParseFlags(nil, func(k string) (string, bool) { v, ok := env[k]; return v, ok }, io.Discard); err != nil {
		t.Fatal(err)
	}
	if m.RateLimit != 2.5 || m.ReadTimeout != 5*time.Second || m.AdminAddr != "" {
		t.Errorf("from the environment: rate %v, read timeout %v, admin %q", m.RateLimit, m.ReadTimeout, m.AdminAddr)
	}
}

// In emulator mode the admin listener is off unless asked for: several emulators
// share CI hosts, and the emulator has its own API.
func TestEmulatorAdminListenerOnlyWhenAsked(t *testing.T) {
	m := NewMain()
	if err := m.ParseFlags([]string{"--emulator"}, noEnv, io.Discard); err != nil {
		t.Fatal(err)
	}
	if m.AdminAddr != "" {
		t.Errorf("--emulator: admin listener on %q", m.AdminAddr)
	}
	for _, tt := range []struct {
		args []string
		env  map[string]string
	}{
		{[]string{"--emulator", "--admin", "127.0.0.1:9191"}, nil},
		{[]string{"--emulator"}, map[string]string{"SOCIUS_ADMIN": "127.0.0.1:9191"}},
	} {
		m := NewMain()
		if err := m.ParseFlags(tt.args, func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok }, io.Discard); err != nil {
			t.Fatal(err)
		}
		if m.AdminAddr != "127.0.0.1:9191" {
			t.Errorf("%q %v: admin %q", tt.args, tt.env, m.AdminAddr)
		}
	}
	if m := NewMain(); m.ParseFlags(nil, noEnv, io.Discard) != nil || m.AdminAddr != "127.0.0.1:9090" {
		t.Errorf("without --emulator: admin %q", m.AdminAddr)
	}
}

// TestServeGCPercent: serve sets the collector's target to serveGCPercent, unless
// the GOGC variable chooses.
func TestServeGCPercent(t *testing.T) {
	current := func() int {
		p := debug.SetGCPercent(100)
		debug.SetGCPercent(p)
		return p
	}
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	if !setGCPercent(noEnv) || current() != serveGCPercent {
		t.Errorf("without GOGC: GC percent %d, want %d", current(), serveGCPercent)
	}
	debug.SetGCPercent(100)
	gogc := func(k string) (string, bool) {
		if k == "GOGC" {
			return "50", true
		}
		return "", false
	}
	if setGCPercent(gogc) || current() != 100 {
		t.Errorf("with GOGC set: GC percent %d, want it left at 100", current())
	}
}

// TestOneCPUServesWithTwoProcs starts the real binary on a CPU set of one CPU: serve
// raises GOMAXPROCS to 2 and says so, unless the GOMAXPROCS variable chooses.
func TestOneCPUServesWithTwoProcs(t *testing.T) {
	taskset, err := exec.LookPath("taskset")
	if err != nil {
		t.Skip("no taskset (util-linux) to give the process one CPU")
	}
	bin := binary(t)
	const line = "socius: 1 CPU available: running with GOMAXPROCS=2"
	for _, c := range []struct {
		name string
		env  []string
		want bool
	}{
		{"default", nil, true},
		{"GOMAXPROCS set", []string{"GOMAXPROCS=1"}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, taskset, "-c", "0", bin, "serve", "--data", t.TempDir(),
				"--http", "127.0.0.1:0", "--https", "", "--admin", "")
			// The test's own GOMAXPROCS, if any, must not choose for the child.
			env := slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "GOMAXPROCS=") })
			cmd.Env = append(env, c.env...)
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() { cmd.Process.Kill(); cmd.Wait() }()
			var said bool
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				said = said || strings.HasPrefix(sc.Text(), line)
				if strings.HasPrefix(sc.Text(), "socius: serving HTTP on ") {
					break
				}
			}
			if said != c.want {
				t.Errorf("%q said: %v, want %v", line, said, c.want)
			}
		})
	}
}

// TestAtLeastTwoProcs: GOMAXPROCS is raised from 1 only; 2 or more stay as they are,
// and so does any value the GOMAXPROCS variable chose.
func TestAtLeastTwoProcs(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	for _, c := range []struct {
		procs  int
		env    func(string) (string, bool)
		from   int
		raised bool
		after  int
	}{
		{1, noEnv, 1, true, 2},
		{2, noEnv, 2, false, 2},
		{3, noEnv, 3, false, 3},
		{1, envOf("GOMAXPROCS=1"), 0, false, 1},
	} {
		runtime.GOMAXPROCS(c.procs)
		from, raised := atLeastTwoProcs(c.env)
		if after := runtime.GOMAXPROCS(0); from != c.from || raised != c.raised || after != c.after {
			t.Errorf("GOMAXPROCS %d: from %d, raised %v, now %d; want %d, %v, %d", c.procs, from, raised, after, c.from, c.raised, c.after)
		}
	}
}

// TestShutdownClosesSilentConns: connections that never sent a request (a browser's
// speculative one, a TCP health check), over HTTP and over TLS, do not hold a shutdown
// for the five seconds net/http gives them: they are closed about silentGrace after it
// began (at once by the fast path), and a call in flight still finishes. Each is timed
// from before its dial: net/http alone closes it more than 5 s after it opened, however
// loaded the machine, and the reaper about silentGrace after the shutdown began.
func TestShutdownClosesSilentConns(t *testing.T) {
	for _, fast := range []string{"--fast-path=true", "--fast-path=false"} {
		t.Run(fast, func(t *testing.T) { testShutdownClosesSilentConns(t, fast) })
	}
}

func testShutdownClosesSilentConns(t *testing.T, fast string) {
	ts := startServer(t, fast, "--shutdown-timeout", "20s")
	ts.login(t, "u1")
	// A call in flight: headers and half its body sent.
	busy, err := net.Dial("tcp", hostPort(ts.HTTPURL))
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	body := "apiKey=" + testAPIKey + "&UID=u1"
	fmt.Fprintf(busy, "POST /socialize.getUserInfo HTTP/1.1\r\nHost: socius\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n%s", len(body), body[:5])
	for deadline := time.Now().Add(10 * time.Second); ts.Server.BodyBytes() == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the server never began reading the body")
		}
	}
	dialed := time.Now()
	plain, err := net.Dial("tcp", hostPort(ts.HTTPURL))
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	secure, err := tls.Dial("tcp", hostPort(ts.HTTPSURL), ts.client.Transport.(*http.Transport).TLSClientConfig)
	if err != nil {
		t.Fatal(err)
	}
	defer secure.Close()
	type end struct {
		name string
		at   time.Time
		err  error
	}
	ends := make(chan end, 2)
	for name, c := range map[string]net.Conn{"plain": plain, "TLS": secure} {
		c.SetReadDeadline(time.Now().Add(15 * time.Second))
		go func() {
			_, err := c.Read(make([]byte, 1))
			ends <- end{name, time.Now(), err}
		}()
	}
	closed := make(chan error, 1)
	go func() { closed <- ts.Close() }()
	for range 2 {
		e := <-ends
		if e.err == nil || errors.Is(e.err, os.ErrDeadlineExceeded) {
			t.Errorf("the silent %s connection is still open: %v", e.name, e.err)
		} else if d := e.at.Sub(dialed); d >= 5*time.Second {
			t.Errorf("the silent %s connection was closed %v after it opened; net/http alone closes it after 5 s", e.name, d.Round(time.Millisecond))
		}
	}
	io.WriteString(busy, body[5:])
	resp, err := http.ReadResponse(bufio.NewReader(busy), nil)
	if err != nil {
		t.Fatalf("the call in flight: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), `"errorCode":400002`) { // no credentials, but answered
		t.Errorf("the call in flight: %s", b)
	}
	if err := <-closed; err != nil {
		t.Errorf("Close: %v", err)
	}
}

// TestOneServerPerDataFolder: a second serve on a data folder that a running serve
// holds (the embedded store) refuses to start, naming the first process, and stores
// nothing: the nonces live in one process's memory, so two servers would each take a
// request replayed to the other. Once the first stops, the folder serves again.
func TestOneServerPerDataFolder(t *testing.T) {
	data := t.TempDir()
	first := startServer(t, "--data", data)
	first.login(t, "u1")

	second := NewMain()
	args := []string{"--data", data, "--http", "127.0.0.1:0", "--https", "", "--admin", "", "--log-level", "error"}
	if err := second.ParseFlags(args, func(string) (string, bool) { return "", false }, io.Discard); err != nil {
		t.Fatal(err)
	}
	second.Stdout = io.Discard
	err := second.Run(context.Background())
	if err == nil {
		second.Close()
		t.Fatal("a second serve on the same data folder started")
	}
	if want := fmt.Sprintf("another socius serve is serving the data folder %s (process %d)", data, os.Getpid()); !strings.Contains(err.Error(), want) {
		t.Errorf("second serve: %v; want %q", err, want)
	}
	if a := first.call(t, "socialize.getUserInfo", url.Values{"UID": {"u1"}}); a.code() != 0 {
		t.Errorf("the first server after the refused second: %v", a)
	}

	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	third := startServer(t, "--data", data)
	if a := third.call(t, "socialize.getUserInfo", url.Values{"UID": {"u1"}}); a.code() != 0 {
		t.Errorf("a server started after the first stopped: %v", a)
	}
}

// TestAnswerAfterWriteTimeout: an answer ready only after --write-timeout never reaches
// the client (net/http closes the connection), so it is counted and logged as 504002,
// not as what it would have said.
func TestAnswerAfterWriteTimeout(t *testing.T) {
	// The write takes 2 s (a loaded disk). Not a write lock held by another program:
	// the store's wait for one ends in time for the answer
	// (TestWriteLockWaitEndsWithinWriteTimeout).
	release := make(chan struct{})
	ts := startMain(t, func(m *Main) {
		m.wrapStore = func(st socius.Store) socius.Store { return blockedUpdates{st, release} }
	}, "--write-timeout", "1s")
	t.Cleanup(func() { <-release }) // before startMain's own cleanup
	ts.login(t, "u1")
	time.AfterFunc(2*time.Second, func() { close(release) })
	body := ts.signed(t, ts.HTTPURL, "socialize.setUserInfo", url.Values{"UID": {"u1"}, "userInfo": {`{"nickname":"late"}`}}, "", "").Encode()
	resp, err := ts.client.Post(ts.HTTPURL+"/socialize.setUserInfo", "application/x-www-form-urlencoded", strings.NewReader(body))
	if err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Errorf("an answer after the write timeout reached the client: %s", b)
	}
	ts.waitInFlight(t, 0)
	_, metrics := get(t, ts.AdminURL+"/metrics")
	if got := metricValue(t, metrics, `socius_calls_total{method="socialize.setUserInfo",code="504002"}`); got != 1 {
		t.Errorf("setUserInfo answered after the write timeout counted as 504002 %v times, want 1", got)
	}
	if strings.Contains(metrics, `socius_calls_total{method="socialize.setUserInfo",code="0"}`) {
		t.Error("the late answer was counted as a success")
	}
}

// TestWriteLockWaitEndsWithinWriteTimeout: a write lock that another program holds on
// the SQLite file is waited for no longer than leaves the answer time to go out before
// --write-timeout: the signed setUserInfo gets its 500028 envelope. The store waited
// SQLite's busy timeout of 5 s whatever the write timeout, and under a write timeout of
// about 5.5 s the connection closed at it, unanswered (counted as 504002).
func TestWriteLockWaitEndsWithinWriteTimeout(t *testing.T) {
	const writeTimeout = 2 * time.Second
	ts := startServer(t, "--write-timeout", writeTimeout.String())
	ts.login(t, "u1")
	db, err := sql.Open("sqlite", filepath.Join(ts.DataDir, "socius.db")+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(context.Background(), `BEGIN IMMEDIATE`); err != nil {
		t.Fatal(err)
	}
	defer conn.ExecContext(context.Background(), `ROLLBACK`)
	start := time.Now()
	a := ts.call(t, "socialize.setUserInfo", url.Values{"UID": {"u1"}, "userInfo": {`{"nickname":"locked out"}`}})
	if took := time.Since(start); a.code() != 500028 || took >= writeTimeout {
		t.Errorf("setUserInfo while another program holds the write lock: %v after %v; want 500028 within the write timeout of %v", a, took, writeTimeout)
	}
}

// TestSQLiteBusyTimeout: the embedded store's wait for another program's lock ends a
// quarter of --write-timeout before it, or 500 ms, with SQLite's 5 s at most and 100 ms
// at least.
func TestSQLiteBusyTimeout(t *testing.T) {
	for _, tt := range []struct{ writeTimeout, want time.Duration }{
		{0, 5 * time.Second},
		{30 * time.Second, 5 * time.Second},
		{5500 * time.Millisecond, 5 * time.Second},
		{5 * time.Second, 4500 * time.Millisecond},
		{2 * time.Second, 1500 * time.Millisecond},
		{400 * time.Millisecond, 300 * time.Millisecond},
		{100 * time.Millisecond, 100 * time.Millisecond},
	} {
		if got := sqliteBusyTimeout(tt.writeTimeout); got != tt.want {
			t.Errorf("--write-timeout %v: busy timeout %v, want %v", tt.writeTimeout, got, tt.want)
		}
	}
}

// TestServerLogLevels: what the listeners' servers log outside any call. A panic there
// (a bug: here a handler of the test's, served as the API listeners are, on both
// paths) and a failed accept are errors, in the log at the default level; a client's
// failed TLS handshake stays at debug level. Until 2026-11-30 all of it was at debug.
func TestServerLogLevels(t *testing.T) {
	var logs syncbuf.Buffer
	ts := startMain(t, func(m *Main) { m.LogOutput = &logs }, "--log-format", "json", "--log-level", "info")
	panicky := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { panic("boom outside a call") })
	for _, fast := range []bool{false, true} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		if fast {
			ts.serveFast(ln, panicky)
		} else {
			ts.serve(ln, panicky)
		}
		if resp, err := httpClient().Get("http://" + ln.Addr().String() + "/"); err == nil {
			resp.Body.Close()
			t.Errorf("fast %v: the panicking handler answered %s", fast, resp.Status)
		}
	}
	// Not TLS, to the HTTPS listener: a failed handshake, the client's doing.
	c, err := net.Dial("tcp", strings.TrimPrefix(ts.HTTPSURL, "https://"))
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, "\x16\x03\x01\x00\x05hello")
	io.Copy(io.Discard, c)
	c.Close()
	serverLog(ts.Logger).Printf("http: Accept error: accept tcp: too many open files; retrying in 5ms")

	deadline := time.Now().Add(5 * time.Second)
	want := []string{"http: panic serving ", "http1: panic serving ", "http: Accept error: "}
	var found map[string]bool
	for {
		found = map[string]bool{}
		sc := bufio.NewScanner(strings.NewReader(logs.String()))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var line map[string]any
			if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
				t.Fatalf("not a JSON line: %s", sc.Text())
			}
			msg, _ := line["msg"].(string)
			if strings.Contains(msg, "TLS handshake") {
				t.Errorf("a failed TLS handshake logged at info level or above: %s", sc.Text())
			}
			for _, w := range want {
				if strings.HasPrefix(msg, w) {
					found[w] = true
					if line["level"] != "ERROR" {
						t.Errorf("%s at level %v, want ERROR", w, line["level"])
					}
					stack, _ := line["stack"].(string)
					if strings.Contains(w, "panic") && (!strings.Contains(msg, "boom outside a call") || !strings.Contains(stack, "goroutine")) {
						t.Errorf("the panic's line lacks its value or stack: %s", sc.Text())
					}
				}
			}
		}
		if len(found) == len(want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, w := range want {
		if !found[w] {
			t.Errorf("no %q line at the default level:\n%s", w, logs.String())
		}
	}
}

// TestNonAPIPathsRefuseOtherSchemes: the admin listener (/healthz, /readyz, /metrics),
// the profiler and the emulator's API and console, sent an absolute-form request target
// of a scheme other than http or https (`GET ftp://127.0.0.1/healthz HTTP/1.1`, what a
// client sends an FTP proxy), answer a plain 400 naming the scheme, as the API answers
// 400001: they served it as the path. The same targets in http:// are served. Raw
// requests over real connections: a client library would not send them.
func TestNonAPIPathsRefuseOtherSchemes(t *testing.T) {
	ts := startEmulator(t, "--pprof", "127.0.0.1:0")
	pprof, err := url.Parse(ts.PprofURL)
	if err != nil {
		t.Fatal(err)
	}
	raw := func(base, target string) (int, string) {
		t.Helper()
		u, err := url.Parse(base)
		if err != nil {
			t.Fatal(err)
		}
		conn, err := net.Dial("tcp", u.Host)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", target)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("GET %s: %v", target, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, tt := range []struct{ base, path string }{
		{ts.AdminURL, "/healthz"},
		{ts.AdminURL, "/readyz"},
		{ts.AdminURL, "/metrics"},
		{ts.PprofURL, pprof.Path},
		{ts.HTTPURL, "/_emulator/api/status"},
		{ts.HTTPURL, "/_emulator/"},
	} {
		for _, scheme := range []string{"ftp", "gopher", "file"} {
			status, body := raw(tt.base, scheme+"://127.0.0.1"+tt.path)
			if status != 400 || !strings.Contains(body, scheme) || !strings.Contains(body, "is not http or https") {
				t.Errorf("GET %s://127.0.0.1%s on %s: HTTP %d %.200q, want 400 naming the scheme", scheme, tt.path, tt.base, status, body)
			}
		}
		if status, body := raw(tt.base, "http://127.0.0.1"+tt.path); status != 200 {
			t.Errorf("GET http://127.0.0.1%s on %s: HTTP %d %.200q, want 200", tt.path, tt.base, status, body)
		}
	}
}

// TestLogLevels: --log-level takes debug, info, warn and error, in any letter case,
// and nothing else: not slog's offsets ("INFO+2", "debug-4"), which name no level the
// documentation does.
func TestLogLevels(t *testing.T) {
	for in, want := range map[string]slog.Level{"debug": slog.LevelDebug, "Info": slog.LevelInfo, "WARN": slog.LevelWarn, "error": slog.LevelError} {
		if got, err := parseLogLevel(in); err != nil || got != want {
			t.Errorf("--log-level %s: %v %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"INFO+2", "debug-4", "warn+0", "warning", "", "8"} {
		if _, err := newLogger(io.Discard, "text", in); err == nil || !strings.Contains(err.Error(), "debug, info, warn or error") {
			t.Errorf("--log-level %q: %v; want refused, listing the levels", in, err)
		}
	}
}
