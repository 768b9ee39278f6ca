package main

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/socius/socius"
	"github.com/socius/socius/internal/pgtest"
	"github.com/socius/socius/internal/syncbuf"
	"github.com/socius/socius/sealed"
)

func TestMain(m *testing.M) {
	code := pgtest.Run(m)
	removeBinary()
	os.Exit(code)
}

// TestServeDatabaseOutage stops PostgreSQL under a running server, directly and
// through a PgBouncer: calls during the outage get 500028 Database error (never
// 500001, which the Node SDK retries five times), /readyz answers 503, and once the
// database is back the same server answers again, on its own.
func TestServeDatabaseOutage(t *testing.T) {
	for _, through := range []string{"direct", "pgbouncer"} {
		t.Run(through, func(t *testing.T) { serveDatabaseOutage(t, through == "pgbouncer") })
	}
}

func serveDatabaseOutage(t *testing.T, bouncer bool) {
	srv := pgtest.Start(t)
	store := srv.NewURL(t)
	if bouncer {
		store = srv.StartBouncer(t, 4).NewURL(t) + "&default_query_exec_mode=exec"
	}
	ts := startMain(t, func(m *Main) { m.Logger = discardLogger() },
		"--store", store, "--master-key-file", testMasterKeyFile(t), "--https", "")
	m := ts.Main
	// A call during the outage may take the store's whole deadline, 10 s, as long as
	// httpClient waits.
	ts.client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{}}
	ts.login(t, "u1")
	if status, body := get(t, m.AdminURL+"/readyz"); status != 200 {
		t.Fatalf("/readyz with the database up: %d %q", status, body)
	}

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
	if status, body := get(t, m.AdminURL+"/readyz"); status != 503 {
		t.Errorf("/readyz while the database is down: %d %q, want 503", status, body)
	}

	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	// PgBouncer fails calls until it logs in again (server_login_retry, 1 s here).
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		a := ts.call(t, "socialize.setUserInfo", url.Values{"UID": {"u1"}, "userInfo": {`{"firstName":"Ada"}`}})
		if a.code() == 0 {
			break
		}
		if !bouncer || time.Now().After(deadline) {
			t.Fatalf("setUserInfo once the database is back: %v", a)
		}
	}
	if a := ts.call(t, "socialize.getUserInfo", url.Values{"UID": {"u1"}}); a.code() != 0 || a.str("firstName") != "Ada" {
		t.Errorf("getUserInfo once the database is back: %v", a)
	}
	// Nothing of the failed calls was written.
	if a := ts.call(t, "socialize.getUserInfo", url.Values{"UID": {"u2"}}); a.code() != socius.CodeUnauthorizedUser {
		t.Errorf("getUserInfo of the user whose notifyLogin failed: %v, want 403005", a)
	}
	if status, body := get(t, m.AdminURL+"/readyz"); status != 200 {
		t.Errorf("/readyz once the database is back: %d %q", status, body)
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
		if code != 0 || !strings.Contains(out, fmt.Sprintf("imported %d user records, 0 bad lines", n)) {
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
	// A password in the URL (which this server, trusting every local user, ignores) is
	// never printed.
	dsn := strings.Replace(pgtest.URL(t), "postgres@", "postgres:hunter2@", 1)
	var out strings.Builder
	ts := startMain(t, func(m *Main) { m.Stdout = &out }, "--store", dsn, "--master-key-file", testMasterKeyFile(t), "--data", data)
	if said := out.String(); !strings.Contains(said, "socius: store: PostgreSQL postgres://postgres:xxxxx@127.0.0.1:") || strings.Contains(said, "hunter2") {
		t.Errorf("serve said:\n%s", said)
	}
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
	a := ts.answerOf(t, req)
	if a.code() != 403005 || !strings.Contains(fmt.Sprint(a["errorDetails"]), "not a valid userKey") {
		t.Errorf("a JWT whose kid holds a NUL byte: %v; want 403005 not a valid userKey", a)
	}
}

// TestNonceWithItsWork: with PostgreSQL, a signed setUserInfo or getUserInfo records
// its nonce in the same database operation as its own work (--nonce-with-work, the
// default; the store's ops update_profile_with_nonce and user_with_nonce), and what a
// client sees is what it was with a round trip of its own (false): a replay is 403004
// and changes nothing; a call that fails before its store work has its nonce recorded
// all the same (its replay is 403004); and a nonce seen before is 403004 before any
// error of the call's own.
func TestNonceWithItsWork(t *testing.T) {
	for _, with := range []bool{true, false} {
		t.Run(fmt.Sprint("nonce-with-work=", with), func(t *testing.T) {
			ts := startServer(t, "--store", pgtest.URL(t), "--master-key-file", testMasterKeyFile(t), fmt.Sprint("--nonce-with-work=", with))
			ts.login(t, "u1")
			count := func(op string) float64 {
				_, body := get(t, ts.AdminURL+"/metrics")
				for _, line := range strings.Split(body, "\n") {
					if v, ok := strings.CutPrefix(line, `socius_store_duration_seconds_count{op="`+op+`"} `); ok {
						n, err := strconv.ParseFloat(v, 64)
						if err != nil {
							t.Fatal(err)
						}
						return n
					}
				}
				return 0
			}
			ops := func() [3]float64 {
				return [3]float64{count("update_profile_with_nonce"), count("user_with_nonce"), count("use_nonce")}
			}
			send := func(method string, p url.Values) answer { return ts.post(t, ts.HTTPURL, method, p) }
			sign := func(method string, params url.Values) url.Values {
				return ts.signed(t, ts.HTTPURL, method, params, "", "")
			}
			wantDuplicate := func(what, method string, p url.Values) {
				t.Helper()
				if a := send(method, p); a.code() != 403004 || a.str("errorDetails") != "Duplicate nonce" {
					t.Errorf("%s: %v, want 403004 Duplicate nonce", what, a)
				}
			}

			// Two calls and their replays: with the nonce in the operation, the four are
			// the two fused ops and no nonce of its own; without, four nonces.
			before := ops()
			set := sign("socialize.setUserInfo", url.Values{"UID": {"u1"}, "userInfo": {`{"nickname":"first"}`}})
			if a := send("socialize.setUserInfo", set); a.code() != 0 {
				t.Fatalf("setUserInfo: %v", a)
			}
			wantDuplicate("setUserInfo replayed", "socialize.setUserInfo", set)
			read := sign("socialize.getUserInfo", url.Values{"UID": {"u1"}})
			if a := send("socialize.getUserInfo", read); a.code() != 0 || a.str("nickname") != "first" {
				t.Fatalf("getUserInfo: %v", a)
			}
			wantDuplicate("getUserInfo replayed", "socialize.getUserInfo", read)
			after := ops()
			want := [3]float64{2, 2, 0}
			if !with {
				want = [3]float64{0, 0, 4}
			}
			if got := [3]float64{after[0] - before[0], after[1] - before[1], after[2] - before[2]}; got != want {
				t.Errorf("store ops (update_profile_with_nonce, user_with_nonce, use_nonce): %v, want %v", got, want)
			}

			// Another write under a nonce seen: 403004, nothing written.
			fixed := func(method string, params url.Values) url.Values {
				params.Set("nonce", "fixed-nonce")
				return sign(method, params)
			}
			if a := send("socialize.setUserInfo", fixed("socialize.setUserInfo", url.Values{"UID": {"u1"}, "userInfo": {`{"nickname":"second"}`}})); a.code() != 0 {
				t.Fatalf("setUserInfo: %v", a)
			}
			wantDuplicate("another write under its nonce", "socialize.setUserInfo",
				fixed("socialize.setUserInfo", url.Values{"UID": {"u1"}, "userInfo": {`{"nickname":"third"}`}}))
			if a := ts.call(t, "socialize.getUserInfo", url.Values{"UID": {"u1"}}); a.str("nickname") != "second" {
				t.Errorf("nickname after a write under a nonce seen: %v, want second", a)
			}

			// Calls that fail, before their store work or in it: each records its
			// nonce (its replay is 403004), and each is 403004 under a nonce seen.
			for i, c := range []struct {
				method string
				params url.Values
				code   int
			}{
				{"socialize.setUserInfo", url.Values{"UID": {"u1"}, "userInfo": {`{not json`}}, 400006},
				{"socialize.setUserInfo", url.Values{"UID": {"u1"}}, 400002},
				{"socialize.getUserInfo", url.Values{}, 400002},
				{"socialize.getUserInfo", url.Values{"UID": {"u1"}, "signIDs": {"maybe"}}, 400006},
				{"socialize.getUserInfo", url.Values{"UID": {"u1"}, "checkParams": {"true"}, "bogus": {"1"}}, 403007},
				{"socialize.setUserInfo", url.Values{"UID": {"ghost"}, "userInfo": {`{"nickname":"x"}`}}, 403005},
				{"socialize.setUserInfo", url.Values{"UID": {"ghost"}, "userInfo": {`{}`}}, 403005},
				{"socialize.getUserInfo", url.Values{"UID": {"ghost"}}, 403005},
			} {
				p := sign(c.method, c.params)
				if a := send(c.method, p); a.code() != c.code {
					t.Errorf("case %d, %s %v: %v, want %d", i, c.method, c.params, a, c.code)
				}
				wantDuplicate(fmt.Sprintf("case %d replayed", i), c.method, p)
				params := url.Values{}
				for k, v := range c.params {
					params[k] = v
				}
				params.Set("nonce", "fixed-nonce")
				wantDuplicate(fmt.Sprintf("case %d under a nonce seen", i), c.method, sign(c.method, params))
			}
		})
	}
}

// TestNonceWindowShared: nodes on one database with different --clock-skew remember
// nonces for the longest of their windows, so that a request accepted by a node with
// a short window is refused when replayed, after that window, to one with a long
// window (which still accepts its timestamp); without the shared window the long one
// took the short one's record for expired and ran the request again.
func TestNonceWindowShared(t *testing.T) {
	pg, key := pgtest.URL(t), testMasterKeyFile(t)
	short := startServer(t, "--store", pg, "--master-key-file", key, "--clock-skew", "2m")
	long := startServer(t, "--store", pg, "--master-key-file", key, "--clock-skew", "10m")
	short.login(t, "u1")
	// Both nodes behind one name, as behind a load balancer: one signature for both.
	p := signedFor(t, "http://lb.test", "socialize.setUserInfo", url.Values{"UID": {"u1"}, "userInfo": {`{"nickname":"once"}`}}, "", "")
	send := func(ts *testServer) answer {
		t.Helper()
		req, err := http.NewRequest("POST", ts.HTTPURL+"/socialize.setUserInfo", strings.NewReader(p.Encode()))
		if err != nil {
			t.Fatal(err)
		}
		req.Host = "lb.test"
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		return ts.answerOf(t, req)
	}
	// The short node, started first, learns the long node's window within its
	// housekeeping's period; here at once.
	if err := short.shareNonceWindow(context.Background()); err != nil {
		t.Fatal(err)
	}
	if a := send(short); a.code() != 0 {
		t.Fatalf("the first call, to the short node: %v", a)
	}
	for _, ts := range []*testServer{short, long} {
		ts.Clock.Advance(130 * time.Second) // past the short window, within the long
	}
	if a := send(long); a.code() != 403004 {
		t.Errorf("the replay to the long node after 130 s: %v, want 403004", a)
	}
	if a := send(short); a.code() != 403002 {
		t.Errorf("the replay to the short node after 130 s: %v, want 403002 (its window passed)", a)
	}
}

// TestPostgresIdleTimeoutAdvice: serve warns when the database would let a node that
// froze mid-call hold its rows' locks for ever (idle_in_transaction_session_timeout
// off, PostgreSQL's default), and says nothing once it is set.
func TestPostgresIdleTimeoutAdvice(t *testing.T) {
	dsn := pgtest.URL(t)
	key := testMasterKeyFile(t)
	start := func() string {
		var logs syncbuf.Buffer
		startMain(t, func(m *Main) { m.LogOutput = &logs }, "--store", dsn, "--master-key-file", key, "--log-level", "warn")
		return logs.String()
	}
	if logs := start(); !strings.Contains(logs, "idle_in_transaction_session_timeout is 0 (off)") {
		t.Errorf("no advice with the timeout off:\n%s", logs)
	}
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	// The database is the shared server's, every test's in this process (each has a
	// schema of its own): the setting outlives the test unless reset, and the test run
	// again (-count) found the timeout already set.
	alter := func(ctx context.Context, action string) error {
		_, err := conn.Exec(ctx, `DO $$ BEGIN EXECUTE format('ALTER DATABASE %I `+action+`', current_database()); END $$`)
		return err
	}
	t.Cleanup(func() {
		if err := alter(context.Background(), "RESET idle_in_transaction_session_timeout"); err != nil {
			t.Errorf("resetting the database's idle_in_transaction_session_timeout: %v", err)
		}
		conn.Close(context.Background())
	})
	if err := alter(t.Context(), "SET idle_in_transaction_session_timeout = ''30s''"); err != nil {
		t.Fatal(err)
	}
	if logs := start(); strings.Contains(logs, "idle_in_transaction_session_timeout") {
		t.Errorf("advice with the timeout set:\n%s", logs)
	}
}

// TestPostgresShortWriteTimeoutSaid: serve on PostgreSQL warns when --write-timeout
// leaves no room for two store deadlines (a call's site lookup and its work) and the
// answer, which a database that does not answer can take; at the default it says
// nothing.
func TestPostgresShortWriteTimeoutSaid(t *testing.T) {
	dsn := pgtest.URL(t)
	key := testMasterKeyFile(t)
	start := func(flags ...string) string {
		var logs syncbuf.Buffer
		startMain(t, func(m *Main) { m.LogOutput = &logs }, append([]string{"--store", dsn, "--master-key-file", key, "--log-level", "warn"}, flags...)...)
		return logs.String()
	}
	const said = "--write-timeout 15s is shorter than 21s"
	if logs := start("--write-timeout", "15s"); !strings.Contains(logs, said) {
		t.Errorf("no warning with --write-timeout 15s:\n%s", logs)
	}
	if logs := start(); strings.Contains(logs, "--write-timeout") {
		t.Errorf("a warning at the default write timeout:\n%s", logs)
	}
}

// TestPostgresAfterEmbeddedStop: a server moved to PostgreSQL with the data folder of
// the embedded server it replaces (to keep its TLS certificate) says that the
// folder's socius.db is not served, and, started less than a window after that
// server's clean stop, refuses a signed request timed before its start: the nonces the
// embedded server saved are in no PostgreSQL table, and a request it took was taken
// once more. A request signed after the start is served.
func TestPostgresAfterEmbeddedStop(t *testing.T) {
	dir := t.TempDir()
	addr, first := servedOnce(t, dir, url.Values{"UID": {"nobody"}, "nonce": {"before-the-move"}})
	logs := &syncbuf.Buffer{}
	ts := startMain(t, func(m *Main) {
		m.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	},
		"--data", dir, "--http", addr, "--store", pgtest.URL(t), "--master-key-file", filepath.Join(dir, "master.key"))
	if got := ts.post(t, ts.HTTPURL, "socialize.getUserInfo", first); got.code() != socius.CodeRequestExpired ||
		!strings.Contains(got.str("errorDetails"), "a move from the embedded store") {
		t.Errorf("a request the embedded server took, sent again to PostgreSQL's: %v, want 403002", got)
	}
	said := logs.String()
	for _, want := range []string{"holds an embedded store (" + filepath.Join(dir, "socius.db") + "), which this server does not serve",
		"Moving from the embedded store", "the nonces of its last signed requests are not in PostgreSQL"} {
		if !strings.Contains(said, want) {
			t.Errorf("the start's warnings do not say %q:\n%s", want, said)
		}
	}
	ts.Clock.Advance(time.Second) // past the second of the start
	fresh := ts.signed(t, ts.HTTPURL, "socialize.getUserInfo", url.Values{"UID": {"nobody"}}, "", "")
	if got := ts.post(t, ts.HTTPURL, "socialize.getUserInfo", fresh); got.code() != socius.CodeUnauthorizedUser {
		t.Errorf("a request signed after the start: %v, want 403005", got)
	}

	// An embedded server that saved no nonces (killed): when it stopped is not known.
	dir = t.TempDir()
	addr, first = servedOnce(t, dir, url.Values{"UID": {"nobody"}, "nonce": {"before-the-kill"}})
	if err := os.Remove(filepath.Join(dir, noncesFile)); err != nil {
		t.Fatal(err)
	}
	logs = &syncbuf.Buffer{}
	ts = startMain(t, func(m *Main) {
		m.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}, "--data", dir, "--http", addr, "--store", pgtest.URL(t), "--master-key-file", filepath.Join(dir, "master.key"))
	if got := ts.post(t, ts.HTTPURL, "socialize.getUserInfo", first); got.code() != socius.CodeRequestExpired {
		t.Errorf("a request an embedded server took before it was killed, sent again to PostgreSQL's: %v, want 403002", got)
	}
	if said := logs.String(); !strings.Contains(said, "saved none at its last stop") {
		t.Errorf("the start's warnings do not say that the embedded server saved no nonces:\n%s", said)
	}
}

// TestMoveToPostgres moves a served embedded store to PostgreSQL as
// docs/postgresql.md, "Moving from the embedded store", says: two sites, keys limited
// to methods (one with an RSA public key), users with every profile field, logged in
// and out, and an access token. After the stop, export --all-sites --with-site,
// import, and the PostgreSQL server with the same data folder and master key answers
// getUserInfo as the embedded one did, with the site's secret and with the keys,
// whose permissions carry over; the token issued before the move is refused (403025),
// and a new one is issued.
func TestMoveToPostgres(t *testing.T) {
	dir := t.TempDir()
	const blog, blogSecret = "3_Blog", "YmxvZy1zZWNyZXQtb2YtMjQtYnl0ZXM="
	const reader, readerSecret = "AReader", "cmVhZGVyLXNlY3JldC1vZi0yNC1ieXRl"
	const writer, writerSecret = "AWriter", "d3JpdGVyLXNlY3JldC1vZi0yNC1ieXRl"
	pub, _ := writeRSAKeyPair(t)
	for _, args := range [][]string{
		{"site", "create", "--data", dir, "--api-key", testAPIKey, "--secret", testSecret, "--name", "shop"},
		{"site", "create", "--data", dir, "--api-key", blog, "--secret", blogSecret, "--name", "Blog (staging)"},
		{"key", "create", "--data", dir, "--site", testAPIKey, "--user-key", reader, "--secret", readerSecret, "--methods", "socialize.getUserInfo"},
		{"key", "create", "--data", dir, "--site", blog, "--user-key", writer, "--secret", writerSecret,
			"--methods", "socialize.setUserInfo,socialize.notifyLogin", "--public-key", pub},
	} {
		if code, _, errOut := runCLI(t, noEnv, args...); code != 0 {
			t.Fatalf("%v: exit %d %s", args, code, errOut)
		}
	}

	// The embedded server, and what its clients do.
	a := startServer(t, "--data", dir)
	a.login(t, "alice")
	every := `{"nickname":"ali","photoURL":"https://x.example/a.png","thumbnailURL":"https://x.example/t.png",` +
		`"firstName":"Alice","lastName":"Liddell","gender":"f","age":31,"email":"alice@example.com"}`
	if got := a.call(t, "socialize.setUserInfo", url.Values{"UID": {"alice"}, "userInfo": {every}}); got.code() != 0 {
		t.Fatalf("setUserInfo: %v", got)
	}
	a.login(t, "bob")
	if got := a.call(t, "socialize.logout", url.Values{"UID": {"bob"}}); got.code() != 0 {
		t.Fatalf("logout: %v", got)
	}
	onBlog := func(ts *testServer, method string, params url.Values, userKey, secret string) answer {
		t.Helper()
		p := url.Values{"apiKey": {blog}}
		for k, v := range params {
			p[k] = v
		}
		return ts.post(t, ts.HTTPURL, method, ts.signed(t, ts.HTTPURL, method, p, userKey, secret))
	}
	if got := onBlog(a, "socialize.notifyLogin", url.Values{"siteUID": {"carol"}}, writer, writerSecret); got.code() != 0 {
		t.Fatalf("notifyLogin with the blog's key: %v", got)
	}
	if got := onBlog(a, "socialize.setUserInfo", url.Values{"UID": {"carol"}, "userInfo": {`{"email":"carol@example.org"}`}}, writer, writerSecret); got.code() != 0 {
		t.Fatalf("setUserInfo with the blog's key: %v", got)
	}
	token := a.accessToken(t, "dave")

	// What a client sees, but for what changes with every answer.
	seen := func(ts *testServer) []answer {
		t.Helper()
		var all []answer
		for _, uid := range []string{"alice", "bob", "dave"} {
			all = append(all, ts.call(t, "socialize.getUserInfo", url.Values{"UID": {uid}}))
		}
		all = append(all,
			ts.post(t, ts.HTTPURL, "socialize.getUserInfo", ts.signed(t, ts.HTTPURL, "socialize.getUserInfo", url.Values{"UID": {"alice"}}, reader, readerSecret)),
			ts.post(t, ts.HTTPURL, "socialize.logout", ts.signed(t, ts.HTTPURL, "socialize.logout", url.Values{"UID": {"alice"}}, reader, readerSecret)),
			onBlog(ts, "socialize.getUserInfo", url.Values{"UID": {"carol"}}, "", blogSecret),
			onBlog(ts, "socialize.getUserInfo", url.Values{"UID": {"carol"}}, writer, writerSecret))
		for _, ans := range all {
			for _, varies := range []string{"callId", "time", "UIDSignature", "signatureTimestamp"} {
				delete(ans, varies)
			}
		}
		return all
	}
	before := seen(a)
	if before[0].str("email") != "alice@example.com" || before[1]["isLoggedIn"] != false || before[4].code() != socius.CodePermissionDenied {
		t.Fatalf("before the move: %v", before)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}

	// The move, as the document gives it.
	file := filepath.Join(t.TempDir(), "store.jsonl")
	code, _, errOut := runCLI(t, noEnv, "user", "export", "--data", dir, "--all-sites", "--with-site", "--out", file)
	if code != 0 || !strings.Contains(errOut, "exported 2 sites\n") || !strings.Contains(errOut, "not exported: the sites' tokens") {
		t.Fatalf("export: exit %d\n%s", code, errOut)
	}
	pg := pgtest.URL(t)
	masterKey := filepath.Join(dir, "master.key")
	code, out, errOut := runCLI(t, noEnv, "user", "import", "--store", pg, "--master-key-file", masterKey, "--in", file)
	if code != 0 || !strings.Contains(out, "created site "+blog+"\n") || !strings.Contains(out, "created key "+writer+"\n") ||
		!strings.Contains(out, "imported 4 user records, 0 bad lines") {
		t.Fatalf("import: exit %d\n%s%s", code, out, errOut)
	}
	exported, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	code, again, errOut := runCLI(t, noEnv, "user", "export", "--store", pg, "--master-key-file", masterKey, "--all-sites", "--with-site")
	if code != 0 || again != string(exported) {
		t.Errorf("the export from PostgreSQL differs from the embedded store's: exit %d %s\n%s\nwant\n%s", code, errOut, again, exported)
	}

	b := startServer(t, "--data", dir, "--store", pg, "--master-key-file", masterKey)
	b.Clock.Advance(time.Second) // past the start's second, refused after the embedded server's stop
	if after := seen(b); !reflect.DeepEqual(after, before) {
		t.Errorf("after the move:\n%v\nwant, as before it:\n%v", after, before)
	}
	if got := b.tlsPost(t, "socialize.getUserInfo", withToken(token, nil)); got.code() != socius.CodeInvalidToken {
		t.Errorf("a token issued before the move: %v, want 403025", got)
	}
	if got := b.tlsPost(t, "socialize.getUserInfo", withToken(b.accessToken(t, "dave"), nil)); got.code() != 0 || got.str("UID") != "dave" {
		t.Errorf("a token issued after the move: %v", got)
	}
}
