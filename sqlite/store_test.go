package sqlite

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/socius/socius"
	"github.com/socius/socius/storetest"
)

var now = time.Date(2026, time.November, 28, 10, 30, 0, 0, time.UTC)

func open(t testing.TB, path string) *Store {
	t.Helper()
	s, err := Open(path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

// newStore opens a new database in a folder that does not exist yet.
func newStore(t testing.TB) *Store {
	t.Helper()
	s := open(t, filepath.Join(t.TempDir(), "data", "socius.db"))
	t.Cleanup(func() { s.Close() })
	return s
}

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) socius.Store {
		return open(t, filepath.Join(t.TempDir(), "data", "socius.db"))
	})
}

func TestReopen(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "socius.db")
	s := open(t, path)
	site := &socius.Site{APIKey: "3_site", Secret: "c2VjcmV0LTAxMjM0NTY3ODlhYmM=", Name: "Site", CreatedAt: now}
	key := &socius.Key{UserKey: "Akey", APIKey: "3_site", Secret: "a2V5LTAxMjM0NTY3ODlhYmNkZWY=", Methods: []string{"socialize.getUserInfo"}, CreatedAt: now}
	var p socius.Patch
	p.Set(socius.FirstName, "Zoë 👩🏽‍💻")
	p.Set(socius.Age, "36")
	if err := s.CreateSite(ctx, site); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateKey(ctx, key); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Login(ctx, "3_site", "u1", &p, now); err != nil {
		t.Fatal(err)
	}
	tok := &socius.Token{Hash: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", Kind: socius.SessionToken,
		APIKey: "3_site", UID: "u1", UserKey: "Akey", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	if err := s.CreateToken(ctx, tok); err != nil {
		t.Fatal(err)
	}
	if err := s.Logout(ctx, "3_site", "u1", now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s = open(t, path)
	defer s.Close()
	gotSite, err := s.Site(ctx, "3_site")
	if err != nil || gotSite.Secret != site.Secret || !gotSite.CreatedAt.Equal(now) {
		t.Errorf("site after reopen: %+v, %v", gotSite, err)
	}
	gotKey, err := s.Key(ctx, "Akey")
	if err != nil || gotKey.Secret != key.Secret || len(gotKey.Methods) != 1 {
		t.Errorf("key after reopen: %+v, %v", gotKey, err)
	}
	u, err := s.User(ctx, "3_site", "u1")
	if err != nil {
		t.Fatalf("user after reopen: %v", err)
	}
	want := socius.Profile{socius.FirstName: "Zoë 👩🏽‍💻", socius.Age: "36"}
	if u.Profile != want || u.LoggedIn || !u.LoginAt.Equal(now) || !u.CreatedAt.Equal(now) {
		t.Errorf("user after reopen: %+v, want profile %q, logged out, logged in and created at %s", u, want, now)
	}
	gotTok, err := s.Token(ctx, tok.Hash)
	if err != nil || gotTok.UID != "u1" || gotTok.UserKey != "Akey" || !gotTok.ExpiresAt.Equal(tok.ExpiresAt) || !gotTok.RevokedAt.Equal(now.Add(time.Minute)) {
		t.Errorf("token after reopen: %+v, %v; want revoked at %s", gotTok, err, now.Add(time.Minute))
	}
}

// olderStore creates the database at path with only the given migrations applied, as
// an older Socius left it, and returns it open for the test to fill.
func olderStore(t *testing.T, path string, migrations ...string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path+"?_pragma=foreign_keys(1)&_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Exec(`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	for i, name := range migrations {
		if ok, err := applyMigration(db, i+1, "migrations/"+name); !ok || err != nil {
			t.Fatalf("applying %s: %v, %v", name, ok, err)
		}
	}
	return db
}

// TestMigrateExisting opens a database that has only the first migration, with data,
// as an older Socius left it: the later migrations apply and the data stays.
func TestMigrateExisting(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "socius.db")
	db := olderStore(t, path, "0001_init.sql")
	for _, q := range []string{
		`INSERT INTO sites (api_key, secret, name, created_at) VALUES ('3_site', 'c2VjcmV0LTAxMjM0NTY3ODlhYmM=', 'Site', 0)`,
		`INSERT INTO users (api_key, uid, first_name, created_at, updated_at, logged_in) VALUES ('3_site', 'u1', 'Ada', 0, 0, 1)`,
		// A second site with a user of the same UID: 0003 must keep them apart.
		`INSERT INTO sites (api_key, secret, name, created_at) VALUES ('3_other', 'c2VjcmV0LTAxMjM0NTY3ODlhYmM=', 'Other', 0)`,
		`INSERT INTO users (api_key, uid, first_name, created_at, updated_at, logged_in) VALUES ('3_other', 'u1', 'Grace', 0, 0, 0)`,
		`INSERT INTO users (api_key, uid, first_name, created_at, updated_at, logged_in) VALUES ('3_other', 'u2', 'Edsger', 0, 0, 0)`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	s := open(t, path)
	defer s.Close()
	u, err := s.User(ctx, "3_site", "u1")
	if err != nil || u.Profile[socius.FirstName] != "Ada" || !u.LoggedIn || !u.LoginAt.IsZero() {
		t.Errorf("user after the migrations: %+v, %v", u, err)
	}
	if u, err := s.User(ctx, "3_other", "u1"); err != nil || u.Profile[socius.FirstName] != "Grace" || u.LoggedIn {
		t.Errorf("the other site's u1 after the migrations: %+v, %v", u, err)
	}
	for apiKey, want := range map[string]int{"3_site": 1, "3_other": 2, "": 3} {
		if n, err := s.CountUsers(ctx, apiKey); n != want || err != nil {
			t.Errorf("CountUsers(%q) after the migrations: %d, %v; want %d", apiKey, n, err, want)
		}
	}
	// A site created after the migration takes a number of its own: its users are not
	// those of an older site.
	if err := s.CreateSite(ctx, &socius.Site{APIKey: "3_new", Secret: "c2VjcmV0LTAxMjM0NTY3ODlhYmM=", Name: "New", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.User(ctx, "3_new", "u1"); !errors.Is(err, socius.ErrNotFound) {
		t.Errorf("u1 of a new site: %v, want ErrNotFound", err)
	}
	if created, err := s.Login(ctx, "3_new", "u1", nil, now); !created || err != nil {
		t.Errorf("Login on the new site: %v, %v", created, err)
	}
	if n, err := s.DeleteUsers(ctx, "3_other"); n != 2 || err != nil {
		t.Errorf("DeleteUsers of a migrated site: %d, %v; want 2", n, err)
	}
	if n, err := s.CountUsers(ctx, ""); n != 2 || err != nil {
		t.Errorf("CountUsers after DeleteUsers: %d, %v; want 2", n, err)
	}
	if err := s.CreateToken(ctx, &socius.Token{Hash: "h", Kind: socius.AccessToken, APIKey: "3_site", UID: "u1", CreatedAt: now}); err != nil {
		t.Errorf("CreateToken after the migrations: %v", err)
	}
	if err := s.Logout(ctx, "3_site", "u1", now); err != nil {
		t.Errorf("Logout after the migrations: %v", err)
	}
	if tok, err := s.Token(ctx, "h"); err != nil || !tok.RevokedAt.Equal(now) {
		t.Errorf("token after Logout: %+v, %v", tok, err)
	}
}

// TestMigrateCompacts upgrades a store of 20,000 users from before 0003: the users are
// all there after, and the file gave the old users table's pages back.
func TestMigrateCompacts(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "socius.db")
	db := olderStore(t, path, "0001_init.sql", "0002_tokens.sql")
	const apiKey = "3_aVeryLongApiKeyAsGigyaGivesThem0123456789abcdefghijklmnopqrstuvwx"
	for _, q := range []string{
		`INSERT INTO sites (api_key, secret, name, created_at) VALUES ('` + apiKey + `', 'c2VjcmV0LTAxMjM0NTY3ODlhYmM=', 'Site', 0)`,
		`WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 19999)
		 INSERT INTO users (api_key, uid, first_name, email, created_at, updated_at, logged_in)
		 SELECT '` + apiKey + `', 'user-' || i, 'Ada', 'ada' || i || '@example.com', 0, 0, 0 FROM n`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	pagesBefore := pragma(t, db, "page_count")
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	s := open(t, path)
	defer s.Close()
	if n, err := s.CountUsers(ctx, apiKey); n != 20000 || err != nil {
		t.Fatalf("CountUsers after the migration: %d, %v; want 20000", n, err)
	}
	if u, err := s.User(ctx, apiKey, "user-12345"); err != nil || u.Profile[socius.Email] != "ada12345@example.com" {
		t.Errorf("a user after the migration: %+v, %v", u, err)
	}
	pages, free := pragma(t, s.wdb, "page_count"), pragma(t, s.wdb, "freelist_count")
	if free*4 > pages || pages >= pagesBefore {
		t.Errorf("after the migration: %d pages, %d free; before: %d pages", pages, free, pagesBefore)
	}
}

func pragma(t *testing.T, db *sql.DB, name string) int64 {
	t.Helper()
	var n int64
	if err := db.QueryRow(`PRAGMA ` + name).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestQueryPlans checks that the queries that could grow with the number of users or
// tokens use an index: a scan or a sort of a big table on the read pool is slow, and in
// the writer it holds up every write.
func TestQueryPlans(t *testing.T) {
	s := newStore(t)
	for _, c := range []struct {
		name, query string
		args        []any
	}{
		{"users page", selectUsersPage, []any{"3_site", "u1", 10}},
		{"user", selectUser, []any{"3_site", "u1"}},
		{"update profile", updateProfileSQL, append(make([]any, 2*socius.NumFields+1), "3_site", "u1")},
		{"token", selectToken, []any{"h"}},
		{"revoke tokens of user", revokeTokensOfUser, []any{0, "3_site", "u1"}},
		{"delete dead tokens", deleteDeadTokens, []any{0, 0}},
		{"delete tokens of key", deleteTokensOfKey, []any{"key", 1000}},
		{"revoke minted tokens", revokeMintedBatch, []any{"h", 0, 1000}},
	} {
		rows, err := s.wdb.Query(`EXPLAIN QUERY PLAN `+c.query, c.args...)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		if err := rows.Close(); err != nil {
			t.Fatal(err)
		}
		// A user is found by one search of the users table's own B-tree (it has no
		// rowid), not through a separate index.
		if (c.name == "user" || c.name == "update profile") && !slices.Contains(plan, "SEARCH users USING PRIMARY KEY (site=? AND uid=?)") {
			t.Errorf("%s: plan %q does not search the users table by its primary key", c.name, plan)
		}
		// The minted tokens still live are found through the index that holds only
		// those, and updated by hash.
		byHash := slices.ContainsFunc(plan, func(step string) bool {
			return strings.HasPrefix(step, "SEARCH tokens USING") && strings.HasSuffix(step, "sqlite_autoindex_tokens_1 (hash=?)")
		})
		if c.name == "revoke minted tokens" && (!slices.Contains(plan, "SEARCH tokens USING INDEX tokens_live_by_root (root=?)") || !byHash) {
			t.Errorf("%s: plan %q does not find the live minted tokens by root and update them by hash", c.name, plan)
		}
		for _, step := range plan {
			if strings.HasPrefix(step, "SCAN") || strings.Contains(step, "TEMP B-TREE") {
				t.Errorf("%s: plan %q scans or sorts", c.name, plan)
				break
			}
		}
	}
}

func TestMigrationsRunOnce(t *testing.T) {
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil || len(names) == 0 {
		t.Fatalf("no migrations: %v", err)
	}
	path := filepath.Join(t.TempDir(), "socius.db")
	for range 2 {
		s := open(t, path)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}

	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	applied, err := migrate(db)
	if err != nil || applied != 0 {
		t.Errorf("migrate on a migrated database: applied %d, %v; want 0, nil", applied, err)
	}
	var n, versions int
	if err := db.QueryRow(`SELECT COUNT(*), COUNT(DISTINCT version) FROM schema_migrations`).Scan(&n, &versions); err != nil {
		t.Fatal(err)
	}
	if n != len(names) || versions != len(names) {
		t.Errorf("schema_migrations has %d rows of %d versions, want %d", n, versions, len(names))
	}
}

func TestMigrateNew(t *testing.T) {
	db, err := sql.Open("sqlite", filepath.Join(t.TempDir(), "socius.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	names, _ := fs.Glob(migrations, "migrations/*.sql")
	if applied, err := migrate(db); err != nil || applied != len(names) {
		t.Errorf("migrate on a new database: applied %d, %v; want %d, nil", applied, err, len(names))
	}
}

func TestPragmas(t *testing.T) {
	s := newStore(t)
	for _, c := range []struct {
		db     *sql.DB
		pragma string
		want   string
	}{
		{s.wdb, "journal_mode", "wal"},
		{s.wdb, "synchronous", "2"}, // FULL
		{s.wdb, "foreign_keys", "1"},
		{s.wdb, "busy_timeout", strconv.Itoa(int(busyTimeout.Milliseconds()))},
		{s.rdb, "journal_mode", "wal"},
		{s.rdb, "query_only", "1"},
		{s.rdb, "busy_timeout", strconv.Itoa(int(busyTimeout.Milliseconds()))},
	} {
		var got string
		if err := c.db.QueryRow("PRAGMA " + c.pragma).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != c.want {
			t.Errorf("%s = %s, want %s", c.pragma, got, c.want)
		}
	}
	if _, err := s.rdb.Exec(`INSERT INTO sites (api_key, secret, name, created_at) VALUES ('x', 'x', 'x', 0)`); err == nil {
		t.Errorf("a write through the read pool succeeded")
	}
}

func TestFileMode(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	s := open(t, filepath.Join(dir, "socius.db"))
	defer s.Close()
	for path, want := range map[string]fs.FileMode{dir: 0o700 | fs.ModeDir, filepath.Join(dir, "socius.db"): 0o600} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode() & (fs.ModeDir | fs.ModePerm); got&^want != 0 {
			t.Errorf("%s: mode %v, want at most %v", path, got, want)
		}
	}
}

func TestOpenRefusesNonFiles(t *testing.T) {
	for _, path := range []string{"", ":memory:", "file:x.db", "x.db?mode=ro"} {
		if s, err := Open(path); err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded", path)
		}
	}
}

// TestBatchRollsBackOnlyTheFailure commits a crafted batch: a failing operation's own
// writes are undone, the others' are kept, and each caller gets its own outcome.
func TestBatchRollsBackOnlyTheFailure(t *testing.T) {
	s := newStore(t)
	site := func(apiKey string) *socius.Site {
		return &socius.Site{APIKey: apiKey, Secret: "c2VjcmV0LTAxMjM0NTY3ODlhYmM=", CreatedAt: now}
	}
	errPartial := errors.New("fails after writing")
	batch := []*writeOp{
		{fn: func(tx *sql.Tx) error { return createSite(tx, site("3_a")) }},
		{fn: func(tx *sql.Tx) error {
			if err := createSite(tx, site("3_b")); err != nil {
				return err
			}
			return errPartial
		}},
		{fn: func(tx *sql.Tx) error { return createSite(tx, site("3_a")) }},
		{fn: func(tx *sql.Tx) error {
			return createKey(tx, &socius.Key{UserKey: "Ak", APIKey: "3_none", CreatedAt: now})
		}},
		{fn: func(tx *sql.Tx) error { return createSite(tx, site("3_c")) }},
	}
	// The writer is idle: nothing else uses the connection.
	if _, err := s.commit(batch); err != nil {
		t.Fatalf("commit: %v", err)
	}
	for i, want := range []error{nil, errPartial, socius.ErrExists, socius.ErrNotFound, nil} {
		if got := batch[i].err; !errors.Is(got, want) || (want == nil && got != nil) {
			t.Errorf("op %d: got %v, want %v", i, got, want)
		}
	}
	for apiKey, want := range map[string]error{"3_a": nil, "3_b": socius.ErrNotFound, "3_c": nil} {
		if _, err := s.Site(t.Context(), apiKey); !errors.Is(err, want) {
			t.Errorf("Site(%q): %v, want %v", apiKey, err, want)
		}
	}
}

// TestGroupCommit checks that concurrent writes share transactions: while the writer
// is held in one operation, the writes that pile up go in together.
func TestGroupCommit(t *testing.T) {
	s := newStore(t)
	const n = 64
	var mu sync.Mutex
	txs := make(map[*sql.Tx]int)
	record := func(tx *sql.Tx) error {
		mu.Lock()
		txs[tx]++
		mu.Unlock()
		return nil
	}

	hold, held := make(chan struct{}), make(chan struct{})
	first := make(chan error)
	go func() {
		first <- s.write(t.Context(), func(tx *sql.Tx) error {
			close(held)
			<-hold
			return record(tx)
		})
	}()
	<-held
	var started, wg sync.WaitGroup
	for range n - 1 {
		started.Add(1)
		wg.Go(func() {
			started.Done()
			if err := s.write(t.Context(), record); err != nil {
				t.Error(err)
			}
		})
	}
	started.Wait()
	// Each goroutine has started, but has not necessarily handed its write over yet:
	// wait until all are blocked in the send while the writer is held, or on a busy
	// machine the writer, once let go, finds them one at a time (seen once in CI: 62
	// transactions, after a fixed 200 ms).
	for deadline := time.Now().Add(10 * time.Second); sending() < n-1; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Errorf("after 10 s, %d of %d writes wait for the writer", sending(), n-1)
			break
		}
	}
	close(hold)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	t.Logf("%d writes in %d transactions", n, len(txs))
	if len(txs) > n/4 {
		t.Errorf("%d writes took %d transactions: no group commit", n, len(txs))
	}
}

// sending counts the goroutines blocked handing a write to the writer (in send's
// select).
func sending() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	count := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "[select") && strings.Contains(g, "sqlite.(*Store).send(") {
			count++
		}
	}
	return count
}

// TestWritePanics checks that a panic in a write reaches its caller, is rolled back,
// and leaves the writer and the other writes working.
func TestWritePanics(t *testing.T) {
	s := newStore(t)
	site := &socius.Site{APIKey: "3_site", Secret: "c2VjcmV0LTAxMjM0NTY3ODlhYmM=", CreatedAt: now}
	func() {
		defer func() {
			if r := recover(); r != "boom" {
				t.Errorf("write recovered %v, want the panic %q", r, "boom")
			}
		}()
		s.write(t.Context(), func(tx *sql.Tx) error {
			if err := createSite(tx, site); err != nil {
				return err
			}
			panic("boom")
		})
		t.Errorf("write did not panic")
	}()
	if _, err := s.Site(t.Context(), "3_site"); !errors.Is(err, socius.ErrNotFound) {
		t.Errorf("Site written by a write that panicked: %v, want %v", err, socius.ErrNotFound)
	}
	if err := s.CreateSite(t.Context(), site); err != nil {
		t.Errorf("CreateSite after a panic: %v", err)
	}
}

func TestCancelledWrite(t *testing.T) {
	s := newStore(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	err := s.CreateSite(ctx, &socius.Site{APIKey: "3_site", Secret: "c2VjcmV0LTAxMjM0NTY3ODlhYmM=", CreatedAt: now})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("CreateSite with a cancelled context: %v, want %v", err, context.Canceled)
	}
	if _, err := s.Site(t.Context(), "3_site"); !errors.Is(err, socius.ErrNotFound) {
		t.Errorf("Site after a cancelled CreateSite: %v, want %v", err, socius.ErrNotFound)
	}
}

func TestClosed(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "socius.db"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	err := s.CreateSite(t.Context(), &socius.Site{APIKey: "3_site", CreatedAt: now})
	if socius.ErrorCode(err) != socius.CodeDatabaseError {
		t.Errorf("CreateSite after Close: %v, want a database error", err)
	}
	if _, err := s.Site(t.Context(), "3_site"); socius.ErrorCode(err) != socius.CodeDatabaseError {
		t.Errorf("Site after Close: %v, want a database error", err)
	}
	if _, err := s.User(t.Context(), "3_site", "u1"); socius.ErrorCode(err) != socius.CodeDatabaseError {
		t.Errorf("User after Close: %v, want a database error", err)
	}
}

// TestUserLookups checks the connections that User reads through, outside
// database/sql: values of any bytes and length come back as written, NULLs as empty,
// and parameters longer than the connection's buffer are bound whole.
func TestUserLookups(t *testing.T) {
	ctx := t.Context()
	s := newStore(t)
	if err := s.CreateSite(ctx, &socius.Site{APIKey: "3_site", Secret: "c2VjcmV0LTAxMjM0NTY3ODlhYmM=", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("é", 3000) // 6,000 bytes
	users := []*socius.User{
		{APIKey: "3_site", UID: "u1", Profile: socius.Profile{"a\x00b", "", "https://example.com/t.png", "Zoë 👩🏽‍💻", long, "", "36", ""},
			CreatedAt: now, UpdatedAt: now.Add(time.Second), LoginAt: now.Add(time.Minute), LoggedIn: true},
		{APIKey: "3_site", UID: "u2", CreatedAt: now, UpdatedAt: now}, // never logged in: login_at NULL
		{APIKey: "3_site", UID: strings.Repeat("U", 1000), Profile: socius.Profile{socius.Nickname: "long uid"}, CreatedAt: now, UpdatedAt: now},
	}
	for _, u := range users {
		if err := s.PutUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 { // the second time through connections that have bound the long UID
		for _, want := range users {
			got, err := s.User(ctx, "3_site", want.UID)
			if err != nil {
				t.Fatalf("User(%.20q): %v", want.UID, err)
			}
			if *got != *want {
				t.Errorf("User(%.20q) =\n%+v\nwant\n%+v", want.UID, got, want)
			}
		}
		for _, missing := range [][2]string{{"3_site", "u"}, {"3_site", "u1\x00"}, {"3_other", "u1"}, {"", ""}} {
			if _, err := s.User(ctx, missing[0], missing[1]); !errors.Is(err, socius.ErrNotFound) {
				t.Errorf("User(%q, %q): %v, want %v", missing[0], missing[1], err, socius.ErrNotFound)
			}
		}
	}
	var got string
	if err := s.wdb.QueryRow(`SELECT nickname FROM users WHERE uid = 'u1'`).Scan(&got); err != nil || got != "a\x00b" {
		t.Errorf("stored nickname %q, %v", got, err)
	}
	c := <-s.lookups
	err := c.exec(`INSERT INTO sites (api_key, secret, name, created_at) VALUES ('x', 'x', 'x', 0)`)
	s.lookups <- c
	if err == nil {
		t.Errorf("a write through a lookup connection succeeded")
	}
}

// TestUserLookupsWhileClosing reads users from many goroutines while the store
// closes: every read answers (a user or a database error), none hangs, and Close
// waits for the reads in flight.
func TestUserLookupsWhileClosing(t *testing.T) {
	ctx := t.Context()
	s := open(t, filepath.Join(t.TempDir(), "socius.db"))
	if err := s.CreateSite(ctx, &socius.Site{APIKey: "3_site", Secret: "c2VjcmV0LTAxMjM0NTY3ODlhYmM=", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Login(ctx, "3_site", "u1", nil, now); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var ok, failed atomic.Int64
	for range 16 {
		wg.Go(func() {
			for range 200 {
				u, err := s.User(ctx, "3_site", "u1")
				switch {
				case err == nil && u.UID == "u1":
					ok.Add(1)
				case socius.ErrorCode(err) == socius.CodeDatabaseError:
					failed.Add(1)
				default:
					t.Errorf("User: %+v, %v", u, err)
					return
				}
			}
		})
	}
	time.Sleep(5 * time.Millisecond)
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	wg.Wait()
	if ok.Load() == 0 || failed.Load() == 0 {
		t.Logf("reads before Close %d, after %d (the test wants both to show the race)", ok.Load(), failed.Load())
	}
}

// BenchmarkUpdateProfileParallel measures durable profile updates of distinct users by
// many concurrent callers, as an HTTP server makes them: group commit lets one fsync
// cover many of them.
func BenchmarkUpdateProfileParallel(b *testing.B) {
	s := newStore(b)
	ctx := b.Context()
	if err := s.CreateSite(ctx, &socius.Site{APIKey: "3_site", Secret: "c2VjcmV0LTAxMjM0NTY3ODlhYmM=", CreatedAt: now}); err != nil {
		b.Fatal(err)
	}
	// Requests spend most of their time waiting on the disk, so a server has far more
	// of them in flight than it has CPUs.
	const perCPU = 16
	b.SetParallelism(perCPU)
	var next atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	cpu0, measured := cpuTime()
	defer func() {
		// The machine may be shared: the process's CPU time per update says what an
		// update costs better than the elapsed time does.
		if cpu1, ok := cpuTime(); measured && ok {
			b.ReportMetric(float64(cpu1-cpu0)/float64(b.N)/1e3, "cpu-µs/op")
		}
	}()
	b.RunParallel(func(pb *testing.PB) {
		uid := fmt.Sprintf("u%d", next.Add(1))
		if _, err := s.Login(ctx, "3_site", uid, nil, now); err != nil {
			b.Error(err)
			return
		}
		var p socius.Patch
		for i := 0; pb.Next(); i++ {
			p.Set(socius.Field(i%int(socius.NumFields)), strconv.Itoa(i))
			if err := s.UpdateProfile(ctx, "3_site", uid, &p, now); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkUpdateProfile is one caller at a time: one fsync per update, the cost group
// commit spreads.
func BenchmarkUpdateProfile(b *testing.B) {
	s := newStore(b)
	ctx := b.Context()
	if err := s.CreateSite(ctx, &socius.Site{APIKey: "3_site", Secret: "c2VjcmV0LTAxMjM0NTY3ODlhYmM=", CreatedAt: now}); err != nil {
		b.Fatal(err)
	}
	if _, err := s.Login(ctx, "3_site", "u1", nil, now); err != nil {
		b.Fatal(err)
	}
	var p socius.Patch
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		p.Set(socius.FirstName, strconv.Itoa(i))
		if err := s.UpdateProfile(ctx, "3_site", "u1", &p, now); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkUser measures reads of a user with a full profile, from the read pool.
func BenchmarkUser(b *testing.B) {
	s := newStore(b)
	ctx := b.Context()
	if err := s.CreateSite(ctx, &socius.Site{APIKey: "3_site", Secret: "c2VjcmV0LTAxMjM0NTY3ODlhYmM=", CreatedAt: now}); err != nil {
		b.Fatal(err)
	}
	prof := socius.Profile{"ada", "https://example.com/ada.png", "https://example.com/ada-t.png", "Ada", "Lovelace", "f", "36", "ada@example.com"}
	if _, err := s.Login(ctx, "3_site", "u1", socius.PatchOf(&prof), now); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			u, err := s.User(ctx, "3_site", "u1")
			if err != nil || u.Profile != prof {
				b.Errorf("User: %+v, %v", u, err)
				return
			}
		}
	})
}

// TestNewerStoreRefused: a store that a newer Socius migrated (a schema version this
// one does not know) is refused at Open with a clear reason, and left as it is.
func TestNewerStoreRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "socius.db")
	s := open(t, path)
	if _, err := s.wdb.Exec(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, '9999_future.sql', 0)`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	_, err := Open(path)
	if err == nil || !strings.Contains(err.Error(), "migrated by a newer Socius (schema version 9999") {
		t.Fatalf("Open of a newer store: %v", err)
	}
}

// TestFileGone: a database file deleted, or replaced, while the store has it open
// keeps taking writes that the next start will not find: the store refuses them
// instead (500028) and says why in Healthy; writes already answered stay answered.
func TestFileGone(t *testing.T) {
	for _, how := range []string{"deleted", "replaced", "WAL deleted"} {
		t.Run(how, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "socius.db")
			s := open(t, path)
			defer s.Close()
			ctx := t.Context()
			if err := s.CreateSite(ctx, &socius.Site{APIKey: "3_site", Secret: "c2VjcmV0LTAxMjM0NTY3ODlhYmM=", CreatedAt: now}); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Login(ctx, "3_site", "u1", nil, now); err != nil {
				t.Fatal(err)
			}
			if err := s.Healthy(); err != nil {
				t.Fatalf("Healthy before: %v", err)
			}
			switch how {
			case "deleted":
				for _, suffix := range []string{"", "-wal", "-shm"} {
					if err := os.Remove(path + suffix); err != nil {
						t.Fatal(err)
					}
				}
			case "replaced":
				other := filepath.Join(dir, "restored.db")
				if err := os.WriteFile(other, nil, 0o600); err != nil {
					t.Fatal(err)
				}
				if err := os.Rename(other, path); err != nil {
					t.Fatal(err)
				}
			case "WAL deleted":
				if err := os.Remove(path + "-wal"); err != nil {
					t.Fatal(err)
				}
			}
			var p socius.Patch
			p.Set(socius.Nickname, "lost")
			for name, err := range map[string]error{
				"UpdateProfile": s.UpdateProfile(ctx, "3_site", "u1", &p, now),
				"Login":         func() error { _, err := s.Login(ctx, "3_site", "u2", nil, now); return err }(),
			} {
				if socius.ErrorCode(err) != socius.CodeDatabaseError || !strings.Contains(err.Error(), "deleted or replaced") {
					t.Errorf("%s after the file was %s: %v", name, how, err)
				}
				// The client is told that much, and that retrying soon is no use;
				// it was told "Database error" alone.
				const details = "Database error: the store's database file was deleted or replaced on the server, which refuses writes until it is restarted; this write is not kept"
				if se := (*socius.Error)(nil); !errors.As(err, &se) || se.Details != details {
					t.Errorf("%s after the file was %s: %v, want errorDetails %q", name, how, err, details)
				}
			}
			if err := s.Healthy(); err == nil || !strings.Contains(err.Error(), "deleted or replaced") {
				t.Errorf("Healthy after the file was %s: %v", how, err)
			}
		})
	}
}

// TestIndexGone: a WAL-index (-shm) deleted, or replaced, while the store has it open
// is said by Healthy, so that /readyz takes the node out of rotation (another process
// opening the database now would make a WAL-index of its own and not see the store's
// locks); the store's own writes go on and are kept. Before, Healthy saw nothing.
func TestIndexGone(t *testing.T) {
	for _, how := range []string{"deleted", "replaced"} {
		t.Run(how, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "socius.db")
			s := open(t, path)
			t.Cleanup(func() { s.Close() })
			createSiteAndKey(t, s, "")
			loginUsers(t, s, "3_site", "u1")
			if err := s.Healthy(); err != nil {
				t.Fatalf("Healthy before: %v", err)
			}
			switch how {
			case "deleted":
				if err := os.Remove(path + "-shm"); err != nil {
					t.Fatal(err)
				}
			case "replaced":
				other := filepath.Join(dir, "other-shm")
				if err := os.WriteFile(other, make([]byte, 32<<10), 0o600); err != nil {
					t.Fatal(err)
				}
				if err := os.Rename(other, path+"-shm"); err != nil {
					t.Fatal(err)
				}
			}
			err := s.Healthy()
			if socius.ErrorCode(err) != socius.CodeDatabaseError || !strings.Contains(err.Error(), "WAL-index file was deleted or replaced") {
				t.Errorf("Healthy after the WAL-index was %s: %v", how, err)
			}
			if err := s.UpdateProfile(t.Context(), "3_site", "u1", patchOf(map[socius.Field]string{socius.Nickname: "kept"}), now); err != nil {
				t.Fatalf("UpdateProfile after the WAL-index was %s: %v", how, err)
			}
			if _, err := s.Login(t.Context(), "3_site", "u2", nil, now); err != nil {
				t.Fatalf("Login after the WAL-index was %s: %v", how, err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = open(t, path)
			if got := getNickname(t, s, "u1"); got != "kept" {
				t.Errorf("nickname after a restart: %q, want \"kept\"", got)
			}
			if _, err := s.User(t.Context(), "3_site", "u2"); err != nil {
				t.Errorf("u2 after a restart: %v", err)
			}
			if err := s.Healthy(); err != nil {
				t.Errorf("Healthy after a restart: %v", err)
			}
		})
	}
}

// TestIndexGoneOtherProcess shows why a WAL-index deleted under the store matters
// (TestIndexGone): another process that opens the database then makes a new one and
// does not see the store's locks. It takes the write lock, and the store commits all
// the same, without waiting: two writers at once in one WAL, which SQLite's locks are
// there to prevent. (With the WAL-index in place the store's write would wait for the
// lock, up to its busy timeout.)
func TestIndexGoneOtherProcess(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "socius.db")
	s := open(t, path)
	defer s.Close()
	createSiteAndKey(t, s, "")
	loginUsers(t, s, "3_site", "u1")
	opened, err := os.Stat(path + "-shm")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(path + "-shm"); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestIndexHelperProcess$")
	cmd.Env = append(os.Environ(), "SOCIUS_SQLITE_INDEX_HELPER="+path)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer stdin.Close() // the helper rolls back and ends
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "locked\n" {
		t.Fatalf("helper process: %q, %v", line, err)
	}
	if made, err := os.Stat(path + "-shm"); err != nil || os.SameFile(made, opened) {
		t.Fatalf("the helper's WAL-index: %v, %v; want a new file", made, err)
	}
	start := time.Now()
	err = s.UpdateProfile(t.Context(), "3_site", "u1", patchOf(map[socius.Field]string{socius.Nickname: "beside"}), now)
	if err != nil || time.Since(start) >= busyTimeout {
		t.Errorf("UpdateProfile while the other process holds the write lock: %v after %v; want it committed without waiting (the locks are not shared)", err, time.Since(start))
	}
}

// TestIndexHelperProcess is the other process of TestIndexGoneOtherProcess: it opens
// the database, takes the write lock (BEGIN IMMEDIATE), says "locked" and holds it until
// its standard input closes.
func TestIndexHelperProcess(t *testing.T) {
	path := os.Getenv("SOCIUS_SQLITE_INDEX_HELPER")
	if path == "" {
		t.Skip("run by TestIndexGoneOtherProcess")
	}
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(100)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	conn, err := db.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(t.Context(), "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	fmt.Println("locked")
	io.Copy(io.Discard, os.Stdin)
	conn.ExecContext(t.Context(), "ROLLBACK")
}

// TestCommitDuringClose: a batch that commits while the store closes (Close lets it
// finish) is answered as committed, not failed: its callers' writes are in the file.
func TestCommitDuringClose(t *testing.T) {
	path := filepath.Join(t.TempDir(), "socius.db")
	s := open(t, path)
	if err := s.CreateSite(t.Context(), &socius.Site{APIKey: "3_site", Secret: "c2VjcmV0LTAxMjM0NTY3ODlhYmM=", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	closed := make(chan error, 1)
	s.afterCommit = func() {
		once.Do(func() {
			go func() { closed <- s.Close() }()
			<-s.closing // Close has begun; this batch is still the writer's
		})
	}
	if _, err := s.Login(t.Context(), "3_site", "u1", nil, now); err != nil {
		t.Errorf("a login committed while the store closed: %v", err)
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	s = open(t, path)
	defer s.Close()
	if _, err := s.User(t.Context(), "3_site", "u1"); err != nil {
		t.Errorf("the login after reopening: %v", err)
	}
}

// TestMigrateSupersededTokenParents opens a store that a development build migrated
// with an earlier version 5 (0005_token_parents.sql: each minted token's parent, not
// its root): it is repaired as 0005_token_roots.sql would have made it, the roots
// found from the parents, and revoking a root ends the sessions under it.
func TestMigrateSupersededTokenParents(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "socius.db")
	db := olderStore(t, path, "0001_init.sql", "0002_tokens.sql", "0003_compact_users.sql", "0004_tokens_by_key.sql")
	for _, q := range []string{
		// The superseded migration, as 64755d8 had it.
		`ALTER TABLE tokens ADD COLUMN parent TEXT`,
		`CREATE INDEX tokens_by_parent ON tokens (parent) WHERE parent IS NOT NULL`,
		`INSERT INTO schema_migrations VALUES (5, '0005_token_parents.sql', 0)`,
		`INSERT INTO sites (api_key, secret, name, created_at) VALUES ('3_site', 'c2VjcmV0LTAxMjM0NTY3ODlhYmM=', 'Site', 0)`,
		`INSERT INTO tokens (hash, kind, api_key, uid, created_at, parent) VALUES
			('a', 'access', '3_site', 'u1', 0, NULL),
			('b', 'session', '3_site', 'u1', 0, 'a'),
			('c', 'session', '3_site', 'u1', 0, 'b'),
			('d', 'session', '3_site', 'u1', 0, 'gone'),
			('e', 'session', '3_site', 'u1', 0, 'd')`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	s := open(t, path)
	defer s.Close()
	for hash, root := range map[string]string{"a": "", "b": "a", "c": "a", "d": "gone", "e": "gone"} {
		if tok, err := s.Token(ctx, hash); err != nil || tok.Root != root {
			t.Errorf("token %s after the repair: %+v, %v; want root %q", hash, tok, err, root)
		}
	}
	if minted, err := s.RevokeToken(ctx, "a", now); minted != 2 || err != nil {
		t.Errorf("RevokeToken of the root: %d minted revoked, %v; want 2", minted, err)
	}
	for hash, revoked := range map[string]bool{"b": true, "c": true, "d": false} {
		if tok, err := s.Token(ctx, hash); err != nil || tok.RevokedAt.IsZero() == revoked {
			t.Errorf("token %s after revoking a: %+v, %v; want revoked %v", hash, tok, err, revoked)
		}
	}
	if err := s.CreateToken(ctx, &socius.Token{Hash: "f", Kind: socius.SessionToken, APIKey: "3_site", UID: "u1", Root: "d", CreatedAt: now}); err != nil {
		t.Errorf("a session minted from a repaired token: %v", err)
	}
	s.Close()
	// Repaired once: the next open finds version 5 as this build names it.
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var name string
	if err := db.QueryRow(`SELECT name FROM schema_migrations WHERE version = 5`).Scan(&name); err != nil || name != "0005_token_roots.sql" {
		t.Errorf("version 5 after the repair: %q, %v", name, err)
	}
}

// TestMigrateSupersededUsersByID opens a store that a development build migrated with
// an earlier version 5 (0005_users_by_id.sql: users in a rowid table keyed by a
// number): the users are back in the table this build reads, and version 5 is this
// build's.
func TestMigrateSupersededUsersByID(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "socius.db")
	db := olderStore(t, path, "0001_init.sql", "0002_tokens.sql", "0003_compact_users.sql", "0004_tokens_by_key.sql")
	for _, q := range []string{
		`INSERT INTO sites (id, api_key, secret, name, created_at) VALUES (1, '3_site', 'c2VjcmV0LTAxMjM0NTY3ODlhYmM=', 'Site', 0)`,
		`INSERT INTO users (site, uid, first_name, created_at, updated_at, logged_in) VALUES (1, 'u1', 'Ada', 0, 0, 1), (1, 'u2', 'Grace', 0, 0, 0)`,
		// The superseded migration's layout, as e8cd7fd made it.
		`CREATE TABLE users_by_id (id INTEGER PRIMARY KEY, site INTEGER NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
			uid TEXT NOT NULL, nickname TEXT, photo_url TEXT, thumbnail_url TEXT, first_name TEXT, last_name TEXT,
			gender TEXT, age TEXT, email TEXT, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,
			login_at INTEGER, logged_in INTEGER NOT NULL)`,
		`INSERT INTO users_by_id (id, site, uid, nickname, photo_url, thumbnail_url, first_name, last_name, gender, age,
			email, created_at, updated_at, login_at, logged_in)
			SELECT 9000000000000 - rowid, site, uid, nickname, photo_url, thumbnail_url, first_name, last_name, gender, age,
			email, created_at, updated_at, login_at, logged_in FROM (SELECT row_number() OVER () AS rowid, * FROM users)`,
		`CREATE UNIQUE INDEX users_by_uid ON users_by_id (site, uid)`,
		`DROP TABLE users`,
		`ALTER TABLE users_by_id RENAME TO users`,
		`INSERT INTO schema_migrations VALUES (5, '0005_users_by_id.sql', 0)`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	s := open(t, path)
	defer s.Close()
	if u, err := s.User(ctx, "3_site", "u1"); err != nil || u.Profile[socius.FirstName] != "Ada" || !u.LoggedIn {
		t.Errorf("u1 after the repair: %+v, %v", u, err)
	}
	if err := s.UpdateProfile(ctx, "3_site", "u2", patchOf(map[socius.Field]string{socius.LastName: "Hopper"}), now); err != nil {
		t.Errorf("UpdateProfile after the repair: %v", err)
	}
	if u, err := s.User(ctx, "3_site", "u2"); err != nil || u.Profile[socius.FirstName] != "Grace" || u.Profile[socius.LastName] != "Hopper" {
		t.Errorf("u2 after the repair and an update: %+v, %v", u, err)
	}
	if err := s.CreateToken(ctx, &socius.Token{Hash: "a", Kind: socius.AccessToken, APIKey: "3_site", UID: "u1", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateToken(ctx, &socius.Token{Hash: "b", Kind: socius.SessionToken, APIKey: "3_site", UID: "u1", Root: "a", CreatedAt: now}); err != nil {
		t.Errorf("a session with a root after the repair: %v", err)
	}
	if n, err := s.CountUsers(ctx, ""); n != 2 || err != nil {
		t.Errorf("CountUsers after the repair: %d, %v", n, err)
	}
}

// TestMigrateUnknownVersionName: a store whose version 5 is a migration this build
// does not know is refused with what to do, and left as it was.
func TestMigrateUnknownVersionName(t *testing.T) {
	path := filepath.Join(t.TempDir(), "socius.db")
	db := olderStore(t, path, "0001_init.sql", "0002_tokens.sql", "0003_compact_users.sql", "0004_tokens_by_key.sql")
	if _, err := db.Exec(`INSERT INTO schema_migrations VALUES (5, '0005_something_else.sql', 0)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	s, err := Open(path)
	if err == nil {
		s.Close()
		t.Fatal("Open of a store with an unknown version 5 succeeded")
	}
	for _, want := range []string{`schema version 5 is "0005_something_else.sql"`, "0005_token_roots.sql", "user export --with-site"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Open: %v; want it to say %q", err, want)
		}
	}
	db, err = sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(`SELECT COUNT(*) FROM pragma_table_info('tokens') WHERE name = 'root'`).Scan(&n); err != nil || n != 0 {
		t.Errorf("the refused store got a root column: %d, %v", n, err)
	}
}

// TestDeleteKeyInBatches: DeleteKey deletes a key with more tokens than one batch and
// every token it obtained; tokens left of an earlier key of a userKey (a DeleteKey cut
// short) go when a key of that userKey is created again, so none comes back with it.
func TestDeleteKeyInBatches(t *testing.T) {
	ctx := t.Context()
	s := newStore(t)
	if err := s.CreateSite(ctx, &socius.Site{APIKey: "3_site", Secret: "c2VjcmV0LTAxMjM0NTY3ODlhYmM=", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateKey(ctx, &socius.Key{UserKey: "AMany", APIKey: "3_site", Secret: "c2VjcmV0LTAxMjM0NTY3ODlhYmM=", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	count := func(userKey string) int {
		var n int
		if err := s.wdb.QueryRow(`SELECT COUNT(*) FROM tokens WHERE user_key = ?`, userKey).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	const many = 2*socius.MintedBatch + 500
	if _, err := s.wdb.Exec(`WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM g WHERE x < ?)
		INSERT INTO tokens (hash, kind, api_key, uid, user_key, created_at) SELECT 'h' || x, 'access', '3_site', 'u1', 'AMany', 0 FROM g`, many); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteKey(ctx, "AMany"); err != nil {
		t.Fatal(err)
	}
	if n := count("AMany"); n != 0 {
		t.Errorf("%d tokens of the deleted key left", n)
	}
	if _, err := s.Key(ctx, "AMany"); !errors.Is(err, socius.ErrNotFound) {
		t.Errorf("the deleted key: %v", err)
	}
	// Left by a DeleteKey cut short (more than a batch): gone when the userKey is
	// created again, by PutKey or CreateKey.
	for _, create := range []func(*socius.Key) error{
		func(k *socius.Key) error { return s.PutKey(ctx, k) },
		func(k *socius.Key) error { return s.CreateKey(ctx, k) },
	} {
		if _, err := s.wdb.Exec(`WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM g WHERE x < ?)
			INSERT INTO tokens (hash, kind, api_key, uid, user_key, created_at) SELECT 'left' || x, 'access', '3_site', 'u1', 'AMany', 0 FROM g`, many); err != nil {
			t.Fatal(err)
		}
		if err := create(&socius.Key{UserKey: "AMany", APIKey: "3_site", Secret: "c2VjcmV0LTAxMjM0NTY3ODlhYmM=", CreatedAt: now}); err != nil {
			t.Fatal(err)
		}
		if n := count("AMany"); n != 0 {
			t.Errorf("%d tokens of the earlier key came back with the new one", n)
		}
		// The key's own tokens stay when it is put again (or created again: ErrExists).
		if err := s.CreateToken(ctx, &socius.Token{Hash: "own", Kind: socius.AccessToken, APIKey: "3_site", UserKey: "AMany", CreatedAt: now}); err != nil {
			t.Fatal(err)
		}
		if err := s.PutKey(ctx, &socius.Key{UserKey: "AMany", APIKey: "3_site", Secret: "c2VjcmV0LTAxMjM0NTY3ODlhYmM=", CreatedAt: now}); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateKey(ctx, &socius.Key{UserKey: "AMany", APIKey: "3_site", Secret: "c2VjcmV0LTAxMjM0NTY3ODlhYmM=", CreatedAt: now}); !errors.Is(err, socius.ErrExists) {
			t.Errorf("CreateKey of an existing key: %v", err)
		}
		if n := count("AMany"); n != 1 {
			t.Errorf("the key's own token after PutKey and CreateKey again: %d left, want 1", n)
		}
		if err := s.DeleteKey(ctx, "AMany"); err != nil {
			t.Fatal(err)
		}
	}
}

// TestSupersededRepairOfItsVersion: a repair applies to the version its name starts
// with only; under another version the name is unknown.
func TestSupersededRepairOfItsVersion(t *testing.T) {
	if _, err := supersededRepair(5, "0005_token_parents.sql", "0005_token_roots.sql"); err != nil {
		t.Errorf("the repair of version 5: %v", err)
	}
	for _, name := range []string{"0005_token_parents.sql", "../0001_init.sql", "superseded/0005_token_parents.sql"} {
		if _, err := supersededRepair(2, name, "0002_tokens.sql"); err == nil {
			t.Errorf("version 2 recorded as %q was taken for a repair", name)
		}
	}
}
