package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/socius/socius"
	"github.com/socius/socius/internal/pgtest"
	"github.com/socius/socius/sealed"
)

func TestMain(m *testing.M) {
	code := pgtest.Run(m)
	removeBinary()
	os.Exit(code)
}

// TestServeDatabaseOutage stops PostgreSQL under a running server: calls during the
// outage get 500028 Database error (never 500001, which the Node SDK retries five
// times), and once the database is back the same server answers again, on its own.
func TestServeDatabaseOutage(t *testing.T) {
	srv := pgtest.Start(t)
	m := NewMain()
	args := []string{"--store", srv.NewURL(t), "--master-key-file", testMasterKeyFile(t), "--data", t.TempDir(), "--http", "127.0.0.1:0", "--https", "", "--admin", "",
		"--site-api-key", testAPIKey, "--site-secret", testSecret, "--log-level", "error"}
	if err := m.ParseFlags(args, noEnv, io.Discard); err != nil {
		t.Fatal(err)
	}
	clock := &socius.OffsetClock{}
	m.Clock = clock
	m.Stdout = io.Discard
	m.Logger = discardLogger()
	if err := m.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ts := &testServer{Main: m, Clock: clock, client: httpClient()}
	ts.login(t, "u1")

	srv.Stop()
	for _, c := range []struct {
		method string
		params url.Values
	}{
		{"socialize.getUserInfo", url.Values{"UID": {"u1"}}},
		{"socialize.setUserInfo", url.Values{"UID": {"u1"}, "userInfo": {`{"firstName":"Ada"}`}}},
		{"socialize.notifyLogin", url.Values{"siteUID": {"u2"}}},
	} {
		start := time.Now()
		a := ts.call(t, c.method, c.params)
		if a.code() != socius.CodeDatabaseError || a.str("errorMessage") != "Database error" {
			t.Errorf("%s while the database is down: %v, want 500028 Database error", c.method, a)
		}
		if d := time.Since(start); d > 15*time.Second {
			t.Errorf("%s while the database is down took %s", c.method, d)
		}
	}

	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	if a := ts.call(t, "socialize.setUserInfo", url.Values{"UID": {"u1"}, "userInfo": {`{"firstName":"Ada"}`}}); a.code() != 0 {
		t.Fatalf("setUserInfo once the database is back: %v", a)
	}
	if a := ts.call(t, "socialize.getUserInfo", url.Values{"UID": {"u1"}}); a.code() != 0 || a.str("firstName") != "Ada" {
		t.Errorf("getUserInfo once the database is back: %v", a)
	}
	// Nothing of the failed calls was written.
	if a := ts.call(t, "socialize.getUserInfo", url.Values{"UID": {"u2"}}); a.code() != socius.CodeUnauthorizedUser {
		t.Errorf("getUserInfo of the user whose notifyLogin failed: %v, want 403005", a)
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// TestUserExportImportAcrossStores moves a site and its users from the embedded store
// to PostgreSQL with the admin commands, and back: every export is the same, byte for
// byte.
func TestUserExportImportAcrossStores(t *testing.T) {
	const n = 500
	dir := t.TempDir()
	st := openDataStore(t, dir)
	ctx := context.Background()
	site := &socius.Site{APIKey: testAPIKey, Secret: testSecret, Name: "lab", CreatedAt: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	if err := st.CreateSite(ctx, site); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateKey(ctx, &socius.Key{UserKey: "AKey", APIKey: testAPIKey, Secret: testSecret,
		Methods: []string{"socialize.getUserInfo"}, CreatedAt: site.CreatedAt}); err != nil {
		t.Fatal(err)
	}
	seedUsers(t, st, testAPIKey, n)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	pgKey := testMasterKeyFile(t)
	pg := pgtest.URL(t)
	export := func(store ...string) string {
		t.Helper()
		code, out, errOut := runCLI(t, noEnv, append([]string{"user", "export", "--site", testAPIKey, "--with-site"}, store...)...)
		if code != 0 {
			t.Fatalf("export from %v: exit %d %s", store, code, errOut)
		}
		return out
	}
	importTo := func(file string, store ...string) {
		t.Helper()
		code, out, errOut := runCLI(t, noEnv, append([]string{"user", "import", "--in", file}, store...)...)
		if code != 0 || !strings.Contains(out, fmt.Sprintf("imported %d users, 0 bad lines", n)) {
			t.Fatalf("import into %v: exit %d\n%s%s", store, code, out, errOut)
		}
	}
	fromSQLite := export("--data", dir)
	file := filepath.Join(t.TempDir(), "users.jsonl")
	if err := os.WriteFile(file, []byte(fromSQLite), 0o600); err != nil {
		t.Fatal(err)
	}
	importTo(file, "--store", pg, "--master-key-file", pgKey)
	fromPostgres := export("--store", pg, "--master-key-file", pgKey)
	if fromPostgres != fromSQLite {
		t.Errorf("the export from PostgreSQL differs from the SQLite export it was imported from")
	}
	file = filepath.Join(t.TempDir(), "users.jsonl")
	if err := os.WriteFile(file, []byte(fromPostgres), 0o600); err != nil {
		t.Fatal(err)
	}
	back := t.TempDir()
	importTo(file, "--data", back)
	if again := export("--data", back); again != fromSQLite {
		t.Errorf("the export from a new SQLite store, imported from PostgreSQL's export, differs")
	}
}

// testMasterKeyFile writes a master key for a store that several commands or processes
// share: with PostgreSQL the key must be given, never generated per data folder.
func testMasterKeyFile(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "master.key")
	if _, err := sealed.CreateKeyFile(path); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestPostgresFirstStart: the documented first start with PostgreSQL, with a --data
// folder that does not exist yet (it will hold only the TLS certificate), serves, and
// its /readyz answers 200 while the database answers.
func TestPostgresFirstStart(t *testing.T) {
	data := filepath.Join(t.TempDir(), "not", "yet")
	ts := startServer(t, "--store", pgtest.URL(t), "--master-key-file", testMasterKeyFile(t), "--data", data)
	if _, err := os.Stat(filepath.Join(data, "tls-cert.pem")); err != nil {
		t.Errorf("the certificate: %v", err)
	}
	if status, body := get(t, ts.AdminURL+"/readyz"); status != 200 || body != "ready\n" {
		t.Errorf("/readyz on PostgreSQL: %d %q", status, body)
	}
	if a := ts.call(t, "socialize.notifyLogin", url.Values{"siteUID": {"u1"}}); a.code() != 0 {
		t.Errorf("a call: %v", a)
	}
}

// TestPostgresRefusesBadKeysItself: a userKey that no key can have (a NUL byte, which a
// JWT's kid can carry in JSON and PostgreSQL refuses as an error of its own) is
// 403005 before the database is asked, never 500028 and an error in the log.
func TestPostgresRefusesBadKeysItself(t *testing.T) {
	ts := startServer(t, "--store", pgtest.URL(t), "--master-key-file", testMasterKeyFile(t))
	b64 := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	jwt := b64(`{"alg":"RS256","kid":"\u0000x"}`) + "." + b64(fmt.Sprintf(`{"iat":%d,"jti":"j1"}`, time.Now().Unix())) + ".AAAA"
	req, err := http.NewRequest("POST", ts.HTTPSURL+"/socialize.getUserInfo",
		strings.NewReader(url.Values{"apiKey": {testAPIKey}, "UID": {"u1"}}.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer "+jwt)
	resp, err := ts.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var a answer
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		t.Fatal(err)
	}
	if a.code() != 403005 || !strings.Contains(fmt.Sprint(a["errorDetails"]), "not a valid userKey") {
		t.Errorf("a JWT whose kid holds a NUL byte: %v; want 403005 not a valid userKey", a)
	}
}
