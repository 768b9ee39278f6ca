package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/socius/socius"
	"github.com/socius/socius/internal/pgtest"
	"github.com/socius/socius/storetest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

var now = time.Date(2026, time.November, 28, 10, 30, 0, 0, time.UTC)

func open(t testing.TB, url string) *Store {
	t.Helper()
	s, err := Open(t.Context(), url)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

// newStore opens a store on a new database; the test's cleanup closes it.
func newStore(t testing.TB) *Store {
	t.Helper()
	s := open(t, pgtest.URL(t))
	t.Cleanup(func() { s.Close() })
	return s
}

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) socius.Store { return open(t, pgtest.URL(t)) })
}

// TestStoreAtStricterIsolation runs the conformance suite with the database's
// transactions at REPEATABLE READ and at SERIALIZABLE (a DBA's
// default_transaction_isolation, YugabyteDB's snapshot isolation, CockroachDB's only
// level): each store operation holds its contract there too, its transactions run
// again where the database asks (40001).
func TestStoreAtStricterIsolation(t *testing.T) {
	for _, level := range []string{"repeatable read", "serializable"} {
		t.Run(strings.ReplaceAll(level, " ", "-"), func(t *testing.T) {
			storetest.Run(t, func(t *testing.T) socius.Store {
				s := open(t, pgtest.URL(t)+"&default_transaction_isolation="+url.PathEscape(level))
				var got string
				if err := s.pool.QueryRow(t.Context(), `SHOW transaction_isolation`).Scan(&got); err != nil || got != level {
					t.Fatalf("transaction_isolation %q, %v; want %q", got, err, level)
				}
				return s
			})
		})
	}
}

func TestNonced(t *testing.T) {
	storetest.RunNonced(t, func(t *testing.T) storetest.NoncedStore { return newStore(t) })
}

// TestNoncedAsync runs the same tests with nonce_commit=async, whose nonce statement
// (of a read) differs: a nonce seen is refused all the same.
func TestNoncedAsync(t *testing.T) {
	storetest.RunNonced(t, func(t *testing.T) storetest.NoncedStore {
		s := open(t, pgtest.URL(t)+"&nonce_commit=async")
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestNonces(t *testing.T) {
	storetest.RunNonces(t, func(t *testing.T) socius.NonceStore { return newStore(t) })
}

// TestNoncesAsync runs the nonce suite on stores whose nonces commit without waiting
// for the flush (nonce_commit=async): a replay is refused all the same.
func TestNoncesAsync(t *testing.T) {
	storetest.RunNonces(t, func(t *testing.T) socius.NonceStore {
		s := open(t, pgtest.URL(t)+"&nonce_commit=async")
		t.Cleanup(func() { s.Close() })
		return s
	})
}

// TestNonceCommit checks what nonce_commit chooses. The statement of UseNonce leaves
// synchronous_commit off for its own transaction with async, and on with sync or
// without the parameter; in every case the connection's own setting stays on after
// it, so that the pool's next statement on that connection (a profile update, say)
// still waits for its flush. An unknown value fails Open.
func TestNonceCommit(t *testing.T) {
	ctx := t.Context()
	// The test server runs with synchronous_commit off; these sessions start with it
	// on, as a production server's do.
	url := pgtest.URL(t) + "&synchronous_commit=on"
	for i, c := range []struct{ param, inTx string }{
		{"", "on"},
		{"&nonce_commit=sync", "on"},
		{"&nonce_commit=async", "off"},
	} {
		s := open(t, url+c.param)
		key := nonceKey("3_site", strconv.Itoa(i))

		tx, err := s.pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		rows, err := tx.Query(ctx, s.nonceSQL(), key, int64(2), int64(1))
		if err != nil {
			t.Fatal(err)
		}
		rows.Close()
		var inTx string
		if err := tx.QueryRow(ctx, `SELECT current_setting('synchronous_commit')`).Scan(&inTx); err != nil {
			t.Fatal(err)
		}
		tx.Rollback(ctx)
		if inTx != c.inTx {
			t.Errorf("%q: synchronous_commit in the nonce's transaction = %s, want %s", c.param, inTx, c.inTx)
		}

		conn, err := s.pool.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var fresh bool
		if err := conn.QueryRow(ctx, s.nonceSQL(), key, int64(2), int64(1)).Scan(new(int64)); err == nil {
			fresh = true
		}
		var after string
		if err := conn.QueryRow(ctx, `SHOW synchronous_commit`).Scan(&after); err != nil {
			t.Fatal(err)
		}
		conn.Release()
		if !fresh || after != "on" {
			t.Errorf("%q: nonce recorded %v, synchronous_commit after it %s, want true and on", c.param, fresh, after)
		}
		s.Close()
	}
	if s, err := Open(ctx, url+"&nonce_commit=maybe"); err == nil {
		s.Close()
		t.Error("Open with nonce_commit=maybe succeeded")
	} else if !strings.Contains(err.Error(), "nonce_commit") {
		t.Errorf("Open with nonce_commit=maybe: %v, want an error naming nonce_commit", err)
	}
}

// TestNoncedProfileWaitsForFlush: with nonce_commit=async, a signed setUserInfo's
// nonce and profile go in one statement (UpdateProfileNonced), whose commit still
// waits for the WAL flush, as the documentation promises: the profile is a write the
// call acknowledges. So when it returns, the database has flushed its WAL past where
// it was before the call (an asynchronous commit leaves that to the WAL writer, up to
// wal_writer_delay later).
func TestNoncedProfileWaitsForFlush(t *testing.T) {
	ctx := t.Context()
	// The test server runs with synchronous_commit off; a production server's
	// sessions start with it on.
	s := open(t, pgtest.URL(t)+"&synchronous_commit=on&nonce_commit=async")
	defer s.Close()
	if err := s.CreateSite(ctx, &socius.Site{APIKey: "3_site", Secret: "c2VjcmV0", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Login(ctx, "3_site", "u1", nil, now); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		var before string
		if err := s.pool.QueryRow(ctx, `SELECT pg_current_wal_insert_lsn()::text`).Scan(&before); err != nil {
			t.Fatal(err)
		}
		var p socius.Patch
		p.Set(socius.Nickname, "n"+strconv.Itoa(i))
		n := socius.NonceUse{Credential: "apiKey 3_site", Nonce: strconv.Itoa(i), Expires: now.Add(time.Minute), Now: now}
		if fresh, err := s.UpdateProfileNonced(ctx, n, "3_site", "u1", &p, now); err != nil || !fresh {
			t.Fatalf("UpdateProfileNonced %d: %v, %v; want true, nil", i, fresh, err)
		}
		var flushed bool
		if err := s.pool.QueryRow(ctx, `SELECT pg_current_wal_flush_lsn() > $1::pg_lsn`, before).Scan(&flushed); err != nil {
			t.Fatal(err)
		}
		if !flushed {
			t.Fatalf("UpdateProfileNonced %d returned before the WAL was flushed past %s: its commit did not wait for the flush", i, before)
		}
	}
}

// TestNoncesSharedByNodes gives the same nonces to two stores on one database, as two
// server nodes would see a request and its replay: each pair is accepted once in all.
func TestNoncesSharedByNodes(t *testing.T) {
	url := pgtest.URL(t)
	a, b := open(t, url), open(t, url)
	defer a.Close()
	defer b.Close()
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := make(map[string]int)
	for _, s := range []*Store{a, b, a, b} {
		wg.Go(func() {
			for i := range 200 {
				n := strconv.Itoa(i)
				ok, err := s.UseNonce(t.Context(), "apiKey 3_site", n, now.Add(time.Minute), now)
				if err != nil {
					t.Error(err)
					return
				}
				if ok {
					mu.Lock()
					wins[n]++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	for n, w := range wins {
		if w != 1 {
			t.Errorf("nonce %s accepted %d times across the nodes", n, w)
		}
	}
	if len(wins) != 200 {
		t.Errorf("%d nonces accepted, want 200", len(wins))
	}
}

func TestNonceSweep(t *testing.T) {
	url := pgtest.URL(t)
	s := open(t, url)
	ctx := t.Context()
	count := func(s *Store) int {
		t.Helper()
		var n int
		if err := s.pool.QueryRow(ctx, `SELECT COUNT(*) FROM nonces`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	// More expired nonces than one batch of the sweep deletes.
	for i := range 2100 {
		if _, err := s.UseNonce(ctx, "apiKey 3_site", strconv.Itoa(i), now.Add(time.Duration(i%2)*time.Hour), now); err != nil {
			t.Fatal(err)
		}
	}
	// The background sweeps of those calls ran at now: nothing had expired.
	s.sweeps.Wait()
	n, err := s.DeleteExpiredNonces(ctx, now.Add(time.Minute))
	if err != nil || n != 1050 {
		t.Errorf("DeleteExpiredNonces: %d, %v; want 1050, nil", n, err)
	}
	if left := count(s); left != 1050 {
		t.Errorf("%d nonces left, want 1050", left)
	}
	// Calls at a later now sweep, in the background, what expired before it. (A sweep
	// is skipped while another runs; none runs now.)
	for i := range sweepEvery {
		if _, err := s.UseNonce(ctx, "apiKey 3_other", strconv.Itoa(i), now.Add(3*time.Hour), now.Add(2*time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	s.sweeps.Wait()
	s.Close()
	s = open(t, url)
	defer s.Close()
	if left := count(s); left != sweepEvery {
		t.Errorf("%d nonces left after the sweep, want the %d live ones", left, sweepEvery)
	}
}

// writeConcurrently has writers update one user through the stores in turn (as
// requests spread over server nodes), writer w owning field w%8 with the others of its
// group, each writing its own final value last. It returns the fields that do not end
// with the final value of one of their writers: updates that a read-modify-write lost.
func writeConcurrently(t *testing.T, stores []socius.Store, update func(s socius.Store, f socius.Field, v string) error) []string {
	t.Helper()
	const writers, rounds = 64, 16
	value := func(w, r int) string {
		if r == rounds-1 {
			return strconv.Itoa(w)
		}
		return strconv.Itoa(writers + r)
	}
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			f := socius.Field(w % int(socius.NumFields))
			for r := range rounds {
				if err := update(stores[(w+r)%len(stores)], f, value(w, r)); err != nil {
					t.Errorf("writer %d, round %d: %v", w, r, err)
					return
				}
			}
		})
	}
	wg.Wait()
	u, err := stores[0].User(t.Context(), "3_site", "u1")
	if err != nil {
		t.Fatal(err)
	}
	var lost []string
	for f := range socius.NumFields {
		var finals []string
		for w := int(f); w < writers; w += int(socius.NumFields) {
			finals = append(finals, value(w, rounds-1))
		}
		if !slices.Contains(finals, u.Profile[f]) {
			lost = append(lost, fmt.Sprintf("%s = %q", f.Name(), u.Profile[f]))
		}
	}
	return lost
}

func twoNodes(t *testing.T) []socius.Store { return twoNodesAt(t, pgtest.URL(t)) }

// twoNodesAt opens two stores on the database at url, with a site and its user u1.
func twoNodesAt(t *testing.T, url string) []socius.Store {
	t.Helper()
	a, b := open(t, url), open(t, url)
	t.Cleanup(func() { a.Close(); b.Close() })
	if err := a.CreateSite(t.Context(), &socius.Site{APIKey: "3_site", Secret: "c2VjcmV0LTAxMjM0NTY3ODlhYmM=", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Login(t.Context(), "3_site", "u1", nil, now); err != nil {
		t.Fatal(err)
	}
	return []socius.Store{a, b}
}

// TestTwoNodesLoseNothing runs the concurrent profile updates of the conformance suite
// through two stores (two pools, as two server nodes have) on one database.
func TestTwoNodesLoseNothing(t *testing.T) {
	if lost := writeConcurrently(t, twoNodes(t), updateField(t)); len(lost) > 0 {
		t.Errorf("updates were lost: %v", lost)
	}
}

// updateField is the write of writeConcurrently that must lose nothing: UpdateProfile
// of one field of u1.
func updateField(t *testing.T) func(s socius.Store, f socius.Field, v string) error {
	return func(s socius.Store, f socius.Field, v string) error {
		var p socius.Patch
		p.Set(f, v)
		return s.UpdateProfile(t.Context(), "3_site", "u1", &p, now)
	}
}

// TestReadModifyWriteIsCaught checks that the writers above are enough to catch the
// naive implementation: read the profile, change one field, write the whole profile
// back. If this test passed with the naive update, TestTwoNodesLoseNothing and the
// suite's UpdateProfileLosesNothing would prove nothing.
func TestReadModifyWriteIsCaught(t *testing.T) {
	for attempt := range 3 {
		stores := twoNodes(t)
		lost := writeConcurrently(t, stores, func(s socius.Store, f socius.Field, v string) error {
			u, err := s.User(t.Context(), "3_site", "u1")
			if err != nil {
				return err
			}
			u.Profile[f] = v
			return s.PutUser(t.Context(), u)
		})
		if len(lost) > 0 {
			t.Logf("attempt %d: the naive update lost %d fields: %v", attempt, len(lost), lost)
			return
		}
	}
	t.Errorf("a read-modify-write lost no update in 3 runs: the concurrency tests cannot tell it from an atomic update")
}

// TestConcurrentOpen starts several stores at once on a new database, as nodes
// starting together do: each migration is applied exactly once, and every store works.
func TestConcurrentOpen(t *testing.T) {
	for range 3 {
		url := pgtest.URL(t)
		const n = 4
		stores := make([]*Store, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				<-start
				stores[i], errs[i] = Open(t.Context(), url)
			})
		}
		close(start)
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("Open %d of %d at once: %v", i, n, err)
			}
			defer stores[i].Close()
		}
		checkMigrations(t, stores[0])
		for i, s := range stores {
			site := &socius.Site{APIKey: fmt.Sprintf("3_%d", i), Secret: "c2VjcmV0LTAxMjM0NTY3ODlhYmM=", CreatedAt: now}
			if err := s.CreateSite(t.Context(), site); err != nil {
				t.Errorf("CreateSite through store %d: %v", i, err)
			}
		}
		sites, err := stores[n-1].Sites(t.Context())
		if err != nil || len(sites) != n {
			t.Errorf("Sites: %d sites, %v; want %d", len(sites), err, n)
		}
	}
}

// checkMigrations checks that schema_migrations lists every migration once.
func checkMigrations(t *testing.T, s *Store) {
	t.Helper()
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil || len(names) == 0 {
		t.Fatalf("no migrations: %v", err)
	}
	var rows, versions int
	if err := s.pool.QueryRow(t.Context(), `SELECT COUNT(*), COUNT(DISTINCT version) FROM schema_migrations`).Scan(&rows, &versions); err != nil {
		t.Fatal(err)
	}
	if rows != len(names) || versions != len(names) {
		t.Errorf("schema_migrations has %d rows of %d versions, want %d", rows, versions, len(names))
	}
}

func TestMigrationsRunOnce(t *testing.T) {
	url := pgtest.URL(t)
	for range 2 {
		s := open(t, url)
		s.Close()
	}
	s := open(t, url)
	defer s.Close()
	checkMigrations(t, s)
	if applied, err := migrate(t.Context(), s.pool); err != nil || applied != 0 {
		t.Errorf("migrate on a migrated database: applied %d, %v; want 0, nil", applied, err)
	}
}

// TestMigrateExisting opens a database that has only the first migration, with data,
// as an older Socius left it: the later migrations apply and the data stays.
func TestMigrateExisting(t *testing.T) {
	url := pgtest.URL(t)
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	body, err := migrations.ReadFile("migrations/0001_init.sql")
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)`,
		string(body),
		`INSERT INTO schema_migrations VALUES (1, '0001_init.sql', 0)`,
		`INSERT INTO sites (api_key, secret, name, created_at) VALUES ('3_site', 'c2VjcmV0LTAxMjM0NTY3ODlhYmM=', 'Site', 0)`,
		`INSERT INTO users (api_key, uid, first_name, created_at, updated_at, logged_in) VALUES ('3_site', 'u1', 'Ada', 0, 0, TRUE)`,
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	conn.Close(ctx)

	s := open(t, url)
	defer s.Close()
	checkMigrations(t, s)
	u, err := s.User(ctx, "3_site", "u1")
	if err != nil || u.Profile[socius.FirstName] != "Ada" || !u.LoggedIn || !u.LoginAt.IsZero() {
		t.Errorf("user after the migrations: %+v, %v", u, err)
	}
	if err := s.CreateToken(ctx, &socius.Token{Hash: "h", Kind: socius.AccessToken, APIKey: "3_site", UID: "u1", CreatedAt: now}); err != nil {
		t.Errorf("CreateToken after the migrations: %v", err)
	}
	if ok, err := s.UseNonce(ctx, "apiKey 3_site", "n", now.Add(time.Minute), now); !ok || err != nil {
		t.Errorf("UseNonce after the migrations: %v, %v", ok, err)
	}
}

func TestOpenFails(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	for _, url := range []string{
		"not a url ://",
		fmt.Sprintf("postgres://postgres@127.0.0.1:%d/db?sslmode=disable", port), // nothing listens
	} {
		start := time.Now()
		s, err := Open(t.Context(), url)
		if err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded", url)
			continue
		}
		if d := time.Since(start); d > 2*DefaultConnectTimeout {
			t.Errorf("Open(%q) took %s to fail", url, d)
		}
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://socius:s3cret@db:5432/socius?sslmode=require":     "postgres://socius:xxxxx@db:5432/socius?sslmode=require",
		"postgres://socius@db/socius":                                 "postgres://socius@db/socius",
		"host=db user=socius password=s3cret":                         "(a connection string that is no URL)",
		"host=db user=socius":                                         "(a connection string that is no URL)",
		"postgres://db/socius?password=s3cret&sslmode=require":        "postgres://db/socius?password=xxxxx&sslmode=require",
		"postgres://db/socius?sslmode=verify-full&sslpassword=s3cret": "postgres://db/socius?sslmode=verify-full&sslpassword=xxxxx",
		// A password with '#' or '?' (unescaped) breaks the URL where the parser cannot
		// tell; one that is no URL at all.
		"postgres://su:s3cret#more@127.0.0.1:15433/s1": "(a connection string that is no URL)",
		"postgres://su:s3cret?more@127.0.0.1:15433/s1": "(a connection string that is no URL)",
		"postgres://db/s1#s3cret":                      "postgres://db/s1#xxxxx",
		"su:s3cret@db/x":                               "(a connection string that is no URL)",
		"postgres://su:/s3cret@db/x":                   "(a connection string that is no URL)",
		"postgres://su:123/s3cret@db/x":                "(a connection string that is no URL)",
		"postgres://su:123?s3cret@db/x":                "(a connection string that is no URL)",
		"postgres://su:12#s3cret@db/x":                 "(a connection string that is no URL)",
		"postgres//su:s3cret@db/x":                     "(a connection string that is no URL)",
	} {
		if got := Redact(in); got != want || strings.Contains(got, "s3cret") {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestClosed(t *testing.T) {
	s := open(t, pgtest.URL(t))
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
	if _, err := s.UseNonce(t.Context(), "c", "n", now, now); socius.ErrorCode(err) != socius.CodeDatabaseError {
		t.Errorf("UseNonce after Close: %v, want a database error", err)
	}
}

// TestRestart stops the database under a running store, as a PostgreSQL restart or a
// lost connection does: calls in flight and calls during the outage fail with a
// database error (500028), quickly; what they wrote is all there or not at all; and
// once the database is back the same store works again, without being reopened.
func TestRestart(t *testing.T) {
	srv := pgtest.Start(t)
	url := srv.NewURL(t)
	s := open(t, url)
	defer s.Close()
	s.OpTimeout = 3 * time.Second
	ctx := t.Context()
	if err := s.CreateSite(ctx, &socius.Site{APIKey: "3_site", Secret: "c2VjcmV0LTAxMjM0NTY3ODlhYmM=", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	// Users with a token each; writers delete them while the database goes away.
	const users = 200
	for i := range users {
		uid := fmt.Sprintf("u%d", i)
		if _, err := s.Login(ctx, "3_site", uid, nil, now); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateToken(ctx, &socius.Token{Hash: "h" + uid, Kind: socius.AccessToken, APIKey: "3_site", UID: uid, CreatedAt: now}); err != nil {
			t.Fatal(err)
		}
	}

	var wg sync.WaitGroup
	var mu sync.Mutex
	var failed, other []error
	var next int
	var deleted atomic.Int32
	stopped := make(chan struct{})
	for range 8 {
		wg.Go(func() {
			for {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= users {
					return
				}
				err := s.DeleteUser(ctx, "3_site", fmt.Sprintf("u%d", i), now.Add(time.Minute))
				mu.Lock()
				switch {
				case err == nil:
					deleted.Add(1)
				case socius.ErrorCode(err) == socius.CodeDatabaseError:
					failed = append(failed, err)
				default:
					other = append(other, err)
				}
				mu.Unlock()
				select {
				case <-stopped:
					return
				default:
				}
			}
		})
	}
	// Stop the database once the deletes are well under way.
	for deadline := time.Now().Add(10 * time.Second); deleted.Load() < 20 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	srv.Stop()
	close(stopped)
	wg.Wait()
	if len(other) > 0 {
		t.Errorf("%d calls failed with something else than a database error, e.g. %v", len(other), other[0])
	}
	t.Logf("of %d users, %d were deleted before the database stopped and %d deletes failed with 500028", users, deleted.Load(), len(failed))

	// During the outage: a database error, soon, for reads and writes alike.
	for _, c := range []struct {
		name string
		call func() error
	}{
		{"Site", func() error { _, err := s.Site(ctx, "3_site"); return err }},
		{"User", func() error { _, err := s.User(ctx, "3_site", "u199"); return err }},
		{"UpdateProfile", func() error {
			var p socius.Patch
			p.Set(socius.FirstName, "Ada")
			return s.UpdateProfile(ctx, "3_site", "u199", &p, now)
		}},
		{"UseNonce", func() error { _, err := s.UseNonce(ctx, "apiKey 3_site", "n", now.Add(time.Minute), now); return err }},
		{"Logout", func() error { return s.Logout(ctx, "3_site", "u199", now) }},
	} {
		start := time.Now()
		err := c.call()
		if socius.ErrorCode(err) != socius.CodeDatabaseError {
			t.Errorf("%s during the outage: %v, want a database error (500028)", c.name, err)
		}
		if d := time.Since(start); d > s.OpTimeout+time.Second {
			t.Errorf("%s during the outage took %s", c.name, d)
		}
	}

	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	// Back: the same store works, and every user is either gone with its token revoked
	// or there with its token live.
	if _, err := s.Site(ctx, "3_site"); err != nil {
		t.Fatalf("Site after the restart: %v", err)
	}
	for i := range users {
		uid := fmt.Sprintf("u%d", i)
		_, uerr := s.User(ctx, "3_site", uid)
		tok, err := s.Token(ctx, "h"+uid)
		if err != nil {
			t.Fatalf("Token after the restart: %v", err)
		}
		switch {
		case uerr == nil && !tok.RevokedAt.IsZero():
			t.Errorf("%s is there but its token was revoked: half a DeleteUser", uid)
		case errors.Is(uerr, socius.ErrNotFound) && tok.RevokedAt.IsZero():
			t.Errorf("%s is gone but its token lives: half a DeleteUser", uid)
		case uerr != nil && !errors.Is(uerr, socius.ErrNotFound):
			t.Errorf("User(%s) after the restart: %v", uid, uerr)
		}
	}
	var p socius.Patch
	p.Set(socius.FirstName, "Ada")
	if _, err := s.Login(ctx, "3_site", "after", &p, now); err != nil {
		t.Errorf("Login after the restart: %v", err)
	}
	if ok, err := s.UseNonce(ctx, "apiKey 3_site", "after", now.Add(time.Minute), now); !ok || err != nil {
		t.Errorf("UseNonce after the restart: %v, %v", ok, err)
	}
}

// TestReadRetriesOnce checks that reads on connections that the database closed while
// they sat in the pool (here: terminated by an administrator) succeed on their retry.
func TestReadRetriesOnce(t *testing.T) {
	url := pgtest.URL(t) + "&application_name=retry-test"
	s := open(t, url)
	defer s.Close()
	ctx := t.Context()
	if err := s.CreateSite(ctx, &socius.Site{APIKey: "3_site", Secret: "c2VjcmV0LTAxMjM0NTY3ODlhYmM=", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	// Fill the pool with a few idle connections.
	var conns []*pgxpool.Conn
	for range 4 {
		c, err := s.pool.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	for _, c := range conns {
		c.Release()
	}
	// Terminate them. The pool only pings connections idle for more than a second, so
	// it hands these out as they are: the next query on one fails.
	admin, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	var n int
	if err := admin.QueryRow(ctx, `SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE application_name = 'retry-test' AND pid <> pg_backend_pid()`).Scan(&n); err != nil || n < 4 {
		t.Fatalf("terminated %d connections (%v), want at least 4", n, err)
	}
	time.Sleep(50 * time.Millisecond) // the backends exit
	for range 10 {
		if _, err := s.Site(ctx, "3_site"); err != nil {
			t.Fatalf("Site after its connections were terminated: %v", err)
		}
	}
}

// TestNewerDatabaseUsed: a database that a newer Socius migrated (a schema version
// this one does not know) still opens: migrations only add, and the older nodes of a
// rolling upgrade must keep working on it.
func TestNewerDatabaseUsed(t *testing.T) {
	url := pgtest.URL(t)
	s := open(t, url)
	if _, err := s.pool.Exec(t.Context(), `INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, '9999_future.sql', 0)`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	st, err := Open(t.Context(), url)
	if err != nil {
		t.Fatalf("Open of a database a newer Socius migrated: %v", err)
	}
	st.Close()
}

// TestDeleteKeyUsesIndex: deleting a key's tokens searches the index of migration
// 0004. The test tables are tiny, where a scan is what the planner would pick, so
// scans are priced out for the one transaction the plan is asked in.
func TestDeleteKeyUsesIndex(t *testing.T) {
	if plan := explain(t, newStore(t), deleteTokensOfKey, "key"); !strings.Contains(plan, "tokens_by_user_key") {
		t.Errorf("plan of %q does not use tokens_by_user_key:\n%s", deleteTokensOfKey, plan)
	}
}

// explain returns the plan of the query, with scans priced out.
func explain(t *testing.T, s *Store, query string, args ...any) string {
	t.Helper()
	ctx := t.Context()
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SET LOCAL enable_seqscan = off`); err != nil {
		t.Fatal(err)
	}
	rows, err := tx.Query(ctx, `EXPLAIN `+query, args...)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(plan, "\n")
}

// TestTwoNodesSerializable: at SERIALIZABLE (a server's default_transaction_isolation,
// or CockroachDB's only level) concurrent updates of one user fail to serialize again
// and again; each is retried, spread out, until it lands, and none is lost.
func TestTwoNodesSerializable(t *testing.T) {
	u, err := url.Parse(pgtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("default_transaction_isolation", "serializable")
	u.RawQuery = q.Encode()
	stores := twoNodesAt(t, u.String())
	var level string
	if err := stores[0].(*Store).pool.QueryRow(t.Context(), `SHOW transaction_isolation`).Scan(&level); err != nil || level != "serializable" {
		t.Fatalf("transaction_isolation %q, %v", level, err)
	}
	if lost := writeConcurrently(t, stores, updateField(t)); len(lost) > 0 {
		t.Errorf("updates were lost: %v", lost)
	}
}

func TestRetryPause(t *testing.T) {
	for attempt, limit := range []time.Duration{time.Millisecond, 2 * time.Millisecond, 4 * time.Millisecond} {
		for range 100 {
			if d := retryPause(attempt); d <= 0 || d > limit {
				t.Fatalf("retryPause(%d) = %v, want (0, %v]", attempt, d, limit)
			}
		}
	}
	for _, attempt := range []int{7, 8, 30, 1000} {
		if d := retryPause(attempt); d <= 0 || d > 100*time.Millisecond {
			t.Fatalf("retryPause(%d) = %v, want (0, 100ms]", attempt, d)
		}
	}
}

// TestTokenWaitsForLogout: a token of a user that goes in while a logout of that user
// is under way goes in only after the logout has committed (the server stores a user's
// token with its login, LoginWithToken, which logs the user in again after such a
// logout; CreateToken alone, tested here, orders itself the same way). At READ COMMITTED the
// logout's tokens statement does not see a token committed after it began: inserted
// meanwhile, it outlived the logout on every node (an audit saw it in 84 of 275 races).
func TestTokenWaitsForLogout(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	if err := s.CreateSite(ctx, &socius.Site{APIKey: "3_site", Secret: "c2VjcmV0LTAxMjM0NTY3ODlhYmM=", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Login(ctx, "3_site", "u1", nil, now); err != nil {
		t.Fatal(err)
	}
	old := &socius.Token{Hash: strings.Repeat("a", 64), Kind: socius.AccessToken, APIKey: "3_site", UID: "u1", CreatedAt: now}
	if err := s.CreateToken(ctx, old); err != nil {
		t.Fatal(err)
	}
	// Hold the old token's row, so that the logout, having logged the user out, waits
	// in its tokens statement.
	hold, err := s.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer hold.Rollback(ctx)
	if _, err := hold.Exec(ctx, `SELECT 1 FROM tokens WHERE hash = $1 FOR UPDATE`, old.Hash); err != nil {
		t.Fatal(err)
	}
	logout := make(chan error, 1)
	go func() { logout <- s.Logout(ctx, "3_site", "u1", now) }()
	if !waitForLockWait(t, s, 1, 5*time.Second) {
		t.Fatal("the logout never waited for the held token")
	}

	// The new token, meanwhile.
	type created struct {
		err      error
		loggedIn bool
	}
	token := make(chan created, 1)
	go func() {
		err := s.CreateToken(ctx, &socius.Token{Hash: strings.Repeat("b", 64), Kind: socius.AccessToken, APIKey: "3_site", UID: "u1", CreatedAt: now})
		u, uerr := s.User(ctx, "3_site", "u1")
		token <- created{errors.Join(err, uerr), uerr == nil && u.LoggedIn}
	}()
	// Without the row update it does not wait at all, and ends: wait until it waits or
	// ends (a fixed 2 s was not always enough for it to start on a loaded machine; the
	// logout's own deadline is 10 s).
	waited := false
	for deadline := time.Now().Add(5 * time.Second); !waited && len(token) == 0 && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		waited = waitForLockWait(t, s, 2, 0)
	}
	if err := hold.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-logout; err != nil {
		t.Fatalf("Logout: %v", err)
	}
	c := <-token
	if c.err != nil {
		t.Fatalf("CreateToken: %v", c.err)
	}
	if c.loggedIn || !waited {
		t.Errorf("the token went in while the logout of its user was under way (waited for it: %v): the logout did not see it, and its user read as logged in: %v", waited, c.loggedIn)
	}
}

// waitForLockWait waits, for at most limit, until n backends of the test's database
// wait for a lock, and reports whether they did.
func waitForLockWait(t *testing.T, s *Store, n int, limit time.Duration) bool {
	t.Helper()
	for deadline := time.Now().Add(limit); ; time.Sleep(10 * time.Millisecond) {
		var waiting int
		if err := s.pool.QueryRow(t.Context(), `SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting >= n {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

// TestHealthyReadOnly: a database that takes no writes (read-only by its settings, as
// a standby is) is not healthy, though it answers reads.
func TestHealthyReadOnly(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	if err := s.Healthy(); err != nil {
		t.Fatalf("Healthy: %v", err)
	}
	set := func(v string) {
		t.Helper()
		conn, err := s.pool.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Release()
		if _, err := conn.Exec(ctx, `SET default_transaction_read_only = off`); err != nil {
			t.Fatal(err)
		}
		var db string
		if err := conn.QueryRow(ctx, `SELECT current_database()`).Scan(&db); err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Exec(ctx, `ALTER DATABASE `+pgx.Identifier{db}.Sanitize()+` SET default_transaction_read_only = `+v); err != nil {
			t.Fatal(err)
		}
		s.pool.Reset() // new connections take the database's setting
	}
	set("on")
	defer set("off")
	err := s.Healthy()
	if err == nil || !strings.Contains(err.Error(), "takes no writes") {
		t.Errorf("Healthy on a read-only database: %v", err)
	}
	if _, err := s.Site(ctx, "3_nobody"); !errors.Is(err, socius.ErrNotFound) {
		t.Errorf("a read on the read-only database: %v", err)
	}
}

// TestTokenRevocationAtSnapshotIsolation: with the database's transactions at
// REPEATABLE READ (a DBA's default_transaction_isolation, or YugabyteDB's default
// snapshot isolation), a token issued while its user is logged out, deleted or renamed,
// or its key deleted, on another node, does not outlive it. The issue path is the
// server's: the login and the token in one operation (LoginWithToken), which holds the
// key's row and stores nothing when the key went first. So a token left live at the end
// belongs to a user logged in at the end (the login came after the logout, deletion
// or rename, and logged the user in again) and to a key that exists. A share lock on
// the rows was enough at READ COMMITTED only: the revoker's snapshot, taken before it
// waited, never saw the token.
func TestTokenRevocationAtSnapshotIsolation(t *testing.T) {
	url := pgtest.URL(t) + "&default_transaction_isolation=repeatable%20read"
	a, b := open(t, url), open(t, url)
	defer a.Close()
	defer b.Close()
	ctx := t.Context()
	var level string
	if err := a.pool.QueryRow(ctx, `SHOW transaction_isolation`).Scan(&level); err != nil || level != "repeatable read" {
		t.Fatalf("isolation %q, %v", level, err)
	}
	if err := a.CreateSite(ctx, &socius.Site{APIKey: "3_site", Secret: "c2VjcmV0LTAxMjM0NTY3ODlhYmM=", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	issue := func(tok *socius.Token) error {
		_, err := a.LoginWithToken(ctx, tok.APIKey, tok.UID, nil, now, tok)
		if errors.Is(err, socius.ErrKeyGone) {
			return nil // the key went first: nothing stored
		}
		return err
	}
	revokers := map[string]func(uid, key string) error{
		"logout":     func(uid, _ string) error { return b.Logout(ctx, "3_site", uid, now) },
		"delete":     func(uid, _ string) error { return b.DeleteUser(ctx, "3_site", uid, now) },
		"rename":     func(uid, _ string) error { return b.RenameUser(ctx, "3_site", uid, uid+"-new") },
		"delete key": func(_, key string) error { return b.DeleteKey(ctx, key) },
	}
	n := 0
	for name, revoke := range revokers {
		live := 0
		for r := range 40 {
			n++
			uid, key := fmt.Sprintf("%s-u%d", strings.ReplaceAll(name, " ", ""), r), fmt.Sprintf("AKey%s%d", strings.ReplaceAll(name, " ", ""), r)
			if _, err := a.Login(ctx, "3_site", uid, nil, now); err != nil {
				t.Fatal(err)
			}
			if err := a.CreateKey(ctx, &socius.Key{UserKey: key, APIKey: "3_site", Secret: "c2VjcmV0LTAxMjM0NTY3ODlhYmM=", CreatedAt: now}); err != nil {
				t.Fatal(err)
			}
			tok := &socius.Token{Hash: fmt.Sprintf("%064x", n), Kind: socius.AccessToken, APIKey: "3_site", UID: uid, UserKey: key, CreatedAt: now}
			var wg sync.WaitGroup
			var issueErr, revokeErr error
			wg.Go(func() { issueErr = issue(tok) })
			wg.Go(func() { revokeErr = revoke(uid, key) })
			wg.Wait()
			if issueErr != nil || revokeErr != nil {
				t.Fatalf("%s round %d: issue %v, revoke %v", name, r, issueErr, revokeErr)
			}
			got, err := a.Token(ctx, tok.Hash)
			if errors.Is(err, socius.ErrNotFound) {
				continue // deleted with its key
			}
			if err != nil {
				t.Fatal(err)
			}
			if !got.RevokedAt.IsZero() {
				continue
			}
			u, uerr := a.User(ctx, "3_site", got.UID)
			k, kerr := a.Key(ctx, key)
			if uerr != nil || !u.LoggedIn || kerr != nil || k.APIKey != "3_site" {
				live++ // live, and its user logged out or gone, or its key gone
			}
		}
		if live > 0 {
			t.Errorf("%s: %d of 40 tokens issued meanwhile outlived it", name, live)
		}
	}
}

// TestKeyDeletionWaitsForItsToken: a token issued with a key holds a share lock on the
// key's row until it commits, and a DeleteKey on another node waits for it. With the
// database's transactions at REPEATABLE READ, the deletion's snapshot would be taken
// before that wait and miss the token; and a key created again under the name as soon
// as the deletion commits (on a third node) stops the later sweep. So DeleteKey runs at
// READ COMMITTED, and the token goes with its key.
func TestKeyDeletionWaitsForItsToken(t *testing.T) {
	url := pgtest.URL(t) + "&default_transaction_isolation=repeatable%20read"
	a, b, c := open(t, url), open(t, url), open(t, url)
	defer a.Close()
	defer b.Close()
	defer c.Close()
	ctx := t.Context()
	if err := a.CreateSite(ctx, &socius.Site{APIKey: "3_site", Secret: "c2VjcmV0LTAxMjM0NTY3ODlhYmM=", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	for r := range 10 {
		key := &socius.Key{UserKey: fmt.Sprintf("AHeld%d", r), APIKey: "3_site", Secret: "c2VjcmV0LTAxMjM0NTY3ODlhYmM=", CreatedAt: now}
		if err := a.CreateKey(ctx, key); err != nil {
			t.Fatal(err)
		}
		tok := &socius.Token{Hash: fmt.Sprintf("%064x", r+1), Kind: socius.AccessToken, APIKey: "3_site", UserKey: key.UserKey, CreatedAt: now}
		tx, err := a.pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := keyHeld(ctx, tx, tok); err != nil {
			t.Fatal(err)
		}
		if err := insertToken(ctx, tx, tok); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		var deleteErr error
		wg.Go(func() { deleteErr = b.DeleteKey(ctx, key.UserKey) })
		wg.Go(func() { // the key again, as soon as the name is free
			for {
				err := c.CreateKey(ctx, key)
				if err == nil {
					return
				}
				if !errors.Is(err, socius.ErrExists) {
					t.Errorf("CreateKey: %v", err)
					return
				}
				time.Sleep(time.Millisecond)
			}
		})
		// The token commits once the deletion waits for its lock.
		waitForLock(t, a, "DELETE FROM keys%")
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		if deleteErr != nil {
			t.Fatalf("round %d: DeleteKey: %v", r, deleteErr)
		}
		if got, err := a.Token(ctx, tok.Hash); !errors.Is(err, socius.ErrNotFound) {
			t.Errorf("round %d: the token of the deleted key: %+v, %v; want none", r, got, err)
		}
	}
}

// TestDeleteKeyAgainSweeps: a DeleteKey whose sweep failed after its transaction
// committed (a lost connection, its deadline) leaves tokens of a key that is gone; a
// DeleteKey tried again answers ErrNotFound and still removes them.
func TestDeleteKeyAgainSweeps(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	if err := s.CreateSite(ctx, &socius.Site{APIKey: "3_site", Secret: "c2VjcmV0LTAxMjM0NTY3ODlhYmM=", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	// What such a failure leaves: the key gone, a token of it stored.
	left := &socius.Token{Hash: strings.Repeat("e", 64), Kind: socius.AccessToken, APIKey: "3_site", UserKey: "AGone", CreatedAt: now}
	if err := insertToken(ctx, s.pool, left); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteKey(ctx, "AGone"); !errors.Is(err, socius.ErrNotFound) {
		t.Errorf("DeleteKey of a key that is gone: %v, want ErrNotFound", err)
	}
	if got, err := s.Token(ctx, left.Hash); !errors.Is(err, socius.ErrNotFound) {
		t.Errorf("the token left behind: %+v, %v; want none", got, err)
	}
}

// TestDeleteKeySweepSparesAKeyCreatedAgain: the statement after DeleteKey's
// transaction deletes the key's tokens only while the key is still gone: a key
// created again under the userKey in between (by another node, an import) keeps the
// tokens issued with it. The store's pool holds the sweep's connection until the key
// and its token are back.
func TestDeleteKeySweepSparesAKeyCreatedAgain(t *testing.T) {
	ctx := t.Context()
	url := pgtest.URL(t)
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	var hold atomic.Int32 // the acquisition to hold, counted down
	arrived, resume := make(chan struct{}), make(chan struct{})
	cfg.PrepareConn = func(context.Context, *pgx.Conn) (bool, error) {
		if hold.Load() > 0 && hold.Add(-1) == 0 {
			close(arrived)
			<-resume
		}
		return true, nil
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := migrate(ctx, pool); err != nil {
		pool.Close()
		t.Fatal(err)
	}
	background, cancel := context.WithCancel(context.Background())
	s := &Store{pool: pool, OpTimeout: DefaultOpTimeout, background: background, cancel: cancel}
	defer s.Close()
	other := open(t, url)
	defer other.Close()
	if err := other.CreateSite(ctx, &socius.Site{APIKey: "3_site", Secret: "c2VjcmV0LTAxMjM0NTY3ODlhYmM=", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	key := &socius.Key{UserKey: "AKey", APIKey: "3_site", Secret: "a2V5LXNlY3JldA==", CreatedAt: now}
	if err := other.CreateKey(ctx, key); err != nil {
		t.Fatal(err)
	}

	hold.Store(2) // DeleteKey's transaction, then its sweep
	done := make(chan error, 1)
	go func() { done <- s.DeleteKey(ctx, key.UserKey) }()
	select {
	case <-arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("DeleteKey's sweep did not come within 10 s")
	}
	// The key is deleted; before the sweep, another node creates it again and issues
	// a token with it.
	if err := other.CreateKey(ctx, key); err != nil {
		close(resume)
		t.Fatalf("CreateKey after DeleteKey's transaction: %v", err)
	}
	tok := &socius.Token{Hash: strings.Repeat("a", 64), Kind: socius.AccessToken, APIKey: "3_site", UserKey: key.UserKey, CreatedAt: now}
	if err := other.CreateToken(ctx, tok); err != nil {
		close(resume)
		t.Fatal(err)
	}
	close(resume)
	if err := <-done; err != nil {
		t.Fatalf("DeleteKey: %v", err)
	}
	if _, err := other.Token(ctx, tok.Hash); err != nil {
		t.Errorf("the token of the key created again, after DeleteKey's sweep: %v; want it kept", err)
	}
}

// TestRevokeWaitsForMintedTokens: a token being minted holds a share lock on its
// root; RevokeToken waits for it and revokes it once it committed, and a token minted
// after finds its root revoked. The database defaults to REPEATABLE READ, where a
// RevokeToken on one snapshot would miss the one it waited for.
func TestRevokeWaitsForMintedTokens(t *testing.T) {
	url := pgtest.URL(t) + "&default_transaction_isolation=repeatable%20read"
	a, b := open(t, url), open(t, url)
	defer a.Close()
	defer b.Close()
	ctx := t.Context()
	if err := a.CreateSite(ctx, &socius.Site{APIKey: "3_site", Secret: "c2VjcmV0LTAxMjM0NTY3ODlhYmM=", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	tok := func(n int, root string) *socius.Token {
		return &socius.Token{Hash: fmt.Sprintf("%064x", n), Kind: socius.SessionToken, APIKey: "3_site", CreatedAt: now, Root: root}
	}
	root := tok(1, "")
	before := tok(2, root.Hash)
	for _, tk := range []*socius.Token{root, before} {
		if err := a.CreateToken(ctx, tk); err != nil {
			t.Fatal(err)
		}
	}
	// A token in the minting, in an open transaction past its root's check.
	minting := tok(3, root.Hash)
	tx, err := a.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := rootLives(ctx, tx, minting); err != nil {
		t.Fatal(err)
	}
	if err := insertToken(ctx, tx, minting); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := b.RevokeToken(ctx, root.Hash, now.Add(time.Minute)); done <- err }()
	waitForLock(t, a, "UPDATE tokens%") // the root's UPDATE waits for the minting
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("RevokeToken: %v", err)
	}
	for _, tk := range []*socius.Token{root, before, minting} {
		got, err := a.Token(ctx, tk.Hash)
		if err != nil || !got.RevokedAt.Equal(now.Add(time.Minute)) {
			t.Errorf("token %.4s...: %+v, %v; want revoked at %s", tk.Hash[60:], got, err, now.Add(time.Minute))
		}
	}
	// A token minted after the revocation finds its root revoked, at REPEATABLE READ
	// too.
	if err := a.CreateToken(ctx, tok(4, root.Hash)); !errors.Is(err, socius.ErrRootGone) {
		t.Errorf("a token of a revoked root: %v; want ErrRootGone", err)
	}
}

// TestRevokeMintedUsesIndexes: the live minted tokens are found by the index that
// holds only them and updated by their hash (scans priced out, as in
// TestDeleteKeyUsesIndex).
func TestRevokeMintedUsesIndexes(t *testing.T) {
	p := explain(t, newStore(t), revokeMintedBatch, "h", 0, 1000)
	if !strings.Contains(p, "tokens_live_by_root") || !strings.Contains(p, "Index Cond: (root = ") ||
		!strings.Contains(p, "tokens_pkey") || !strings.Contains(p, "Index Cond: (hash = ") {
		t.Errorf("plan of revokeMintedBatch:\n%s", p)
	}
}

// TestRevokeBesideHousekeeping: a batch of RevokeToken that waits for a minted token
// being deleted (housekeeping removing it as expired) revokes one fewer than it found;
// the revocation still goes on to the end.
func TestRevokeBesideHousekeeping(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	if err := s.CreateSite(ctx, &socius.Site{APIKey: "3_site", Secret: "c2VjcmV0LTAxMjM0NTY3ODlhYmM=", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	root := &socius.Token{Hash: fmt.Sprintf("%064x", 0), Kind: socius.AccessToken, APIKey: "3_site", CreatedAt: now}
	if err := s.CreateToken(ctx, root); err != nil {
		t.Fatal(err)
	}
	n := socius.MintedBatch + socius.MintedBatch/2
	for i := 1; i <= n; i++ {
		tok := &socius.Token{Hash: fmt.Sprintf("%064x", i), Kind: socius.SessionToken, APIKey: "3_site", UID: "u", CreatedAt: now, Root: root.Hash}
		if i == 1 { // the first in the index: in the first batch
			tok.ExpiresAt = now.Add(time.Second)
		}
		if err := s.CreateToken(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `DELETE FROM tokens WHERE expires_at < $1 OR revoked_at < $1`, millis(now.Add(time.Minute))); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := s.RevokeToken(ctx, root.Hash, now.Add(time.Hour)); done <- err }()
	waitForLock(t, s, "UPDATE tokens SET revoked_at = GREATEST%")
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("RevokeToken: %v", err)
	}
	var live int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM tokens WHERE root = $1 AND revoked_at IS NULL`, root.Hash).Scan(&live); err != nil {
		t.Fatal(err)
	}
	if live != 0 {
		t.Errorf("%d of %d minted tokens live after RevokeToken returned", live, n-1)
	}
}

// waitForLock waits until a statement of the database that starts like (a LIKE
// pattern) waits for a lock.
func waitForLock(t *testing.T, s *Store, like string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second) // a named failure, not the package's timeout
	for waiting := 0; waiting == 0; time.Sleep(5 * time.Millisecond) {
		if err := s.pool.QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity
			WHERE wait_event_type = 'Lock' AND query LIKE $1`, like).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no statement like %q waited for a lock within 30 s", like)
		}
	}
}

// TestSharedNonceWindow: the window the nodes share is the longest any has recorded,
// and only grows.
func TestSharedNonceWindow(t *testing.T) {
	s := newStore(t)
	for _, c := range []struct{ mine, want time.Duration }{
		{2 * time.Minute, 2 * time.Minute},
		{10 * time.Minute, 10 * time.Minute},
		{2 * time.Minute, 10 * time.Minute},
		{1500 * time.Millisecond, 10 * time.Minute},
	} {
		if got, err := s.SharedNonceWindow(t.Context(), c.mine); err != nil || got != c.want {
			t.Errorf("SharedNonceWindow(%v) = %v, %v; want %v", c.mine, got, err, c.want)
		}
	}
}

// TestUnstorableWrite: a value PostgreSQL cannot hold as text (a NUL byte, invalid
// UTF-8) in a write is the caller's error, 400006, as errorFor says, not a database
// error (500028, which would fire the server-fault alert); nothing is stored. The
// server checks its own inputs first: this is the net under what other paths pass on.
func TestUnstorableWrite(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	for _, name := range []string{"a\x00b", "a\xffb"} {
		err := s.CreateSite(ctx, &socius.Site{APIKey: "3_site", Secret: "c2VjcmV0", Name: name, CreatedAt: now})
		var e *socius.Error
		if !errors.As(err, &e) || e.Code != socius.CodeInvalidValue {
			t.Errorf("CreateSite with the name %q: %v; want a %d error", name, err, socius.CodeInvalidValue)
		}
	}
	if _, err := s.Site(ctx, "3_site"); !errors.Is(err, socius.ErrNotFound) {
		t.Errorf("Site after the refused writes: %v; want ErrNotFound", err)
	}
}

// TestWriteCutAfterCommitNotRunAgain: a write whose connection breaks after the
// database committed it, before its answer came back, may have taken effect, so it is
// not run again: the call fails with 500028 (a second run would find its own row and
// answer "exists", or its own nonce and call the request a replay), what it wrote is
// stored, and the next call, on a new connection, succeeds. A proxy between the store
// and the database cuts the connection as the command's completion comes back: for a
// statement of its own, a query, a batch, and a transaction's COMMIT.
func TestWriteCutAfterCommitNotRunAgain(t *testing.T) {
	u, err := url.Parse(pgtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	p := startCutter(t, u.Host)
	u.Host = p.addr
	s := open(t, u.String())
	defer s.Close()
	ctx := t.Context()
	const secret = "c2VjcmV0LTAxMjM0NTY3ODlhYmM="
	if err := s.CreateSite(ctx, &socius.Site{APIKey: "3_site", Secret: secret, CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Login(ctx, "3_site", "u1", nil, now); err != nil {
		t.Fatal(err)
	}
	nonce := func(n string) socius.NonceUse {
		return socius.NonceUse{Credential: "3_site", Nonce: n, Expires: now.Add(time.Minute), Now: now}
	}
	var nick socius.Patch
	nick.Set(socius.Nickname, "cut")

	for _, c := range []struct {
		name string
		tag  string // the command completion to cut at
		// write runs the write with its n-th set of values: 0 is cut, 1 must succeed.
		write func(n int) error
		// stored checks that the cut write took effect.
		stored func() error
	}{{
		name: "CreateSite", tag: "INSERT 0 1",
		write: func(n int) error {
			return s.CreateSite(ctx, &socius.Site{APIKey: fmt.Sprintf("3_cut%d", n), Secret: secret, CreatedAt: now})
		},
		stored: func() error { _, err := s.Site(ctx, "3_cut0"); return err },
	}, {
		name: "CreateToken", tag: "COMMIT",
		write: func(n int) error {
			return s.CreateToken(ctx, &socius.Token{Hash: fmt.Sprintf("hash%d", n), Kind: socius.AccessToken, APIKey: "3_site", UID: "u1", CreatedAt: now})
		},
		stored: func() error { _, err := s.Token(ctx, "hash0"); return err },
	}, {
		// The tokens CreateToken made, before.
		name: "RevokeToken", tag: "COMMIT",
		write: func(n int) error {
			_, err := s.RevokeToken(ctx, fmt.Sprintf("hash%d", n), now)
			return err
		},
		stored: func() error {
			if tok, err := s.Token(ctx, "hash0"); err != nil || tok.RevokedAt.IsZero() {
				return fmt.Errorf("the token is %+v (%v), want it revoked", tok, err)
			}
			return nil
		},
	}, {
		name: "UseNonce", tag: "INSERT 0 1",
		write: func(n int) error {
			use := nonce(fmt.Sprintf("use%d", n))
			return nonceNew(s.UseNonce(ctx, use.Credential, use.Nonce, use.Expires, use.Now))
		},
		stored: func() error { return nonceUsed(s.UseNonce(ctx, "3_site", "use0", now.Add(time.Minute), now)) },
	}, {
		name: "UserNonced", tag: "SELECT 1",
		write: func(n int) error {
			fresh, _, err := s.UserNonced(ctx, nonce(fmt.Sprintf("user%d", n)), "3_site", "u1")
			return nonceNew(fresh, err)
		},
		stored: func() error { return nonceUsed(s.UseNonce(ctx, "3_site", "user0", now.Add(time.Minute), now)) },
	}, {
		name: "UpdateProfileNonced", tag: "SELECT 1",
		write: func(n int) error {
			return nonceNew(s.UpdateProfileNonced(ctx, nonce(fmt.Sprintf("profile%d", n)), "3_site", "u1", &nick, now))
		},
		stored: func() error {
			if u, err := s.User(ctx, "3_site", "u1"); err != nil || u.Profile.Get(socius.Nickname) != "cut" {
				return fmt.Errorf("the profile is %+v (%v), want the nickname written", u, err)
			}
			return nonceUsed(s.UseNonce(ctx, "3_site", "profile0", now.Add(time.Minute), now))
		},
	}} {
		t.Run(c.name, func(t *testing.T) {
			p.cutAt(c.tag)
			err := c.write(0)
			if n := p.cuts.Swap(0); n != 1 {
				t.Fatalf("the proxy cut %d connections, want 1 (the call: %v)", n, err)
			}
			var se *socius.Error
			if !errors.As(err, &se) || se.Code != socius.CodeDatabaseError {
				t.Fatalf("cut after its commit: %v, want a database error (500028), not a second run's answer", err)
			}
			if err := c.stored(); err != nil {
				t.Fatalf("what the cut write stored: %v", err)
			}
			if err := c.write(1); err != nil {
				t.Fatalf("the next write: %v", err)
			}
		})
	}
}

// TestCommitRefusedRunsAgain: a COMMIT that the database answered with a serialization
// failure rolled the transaction back, so the transaction runs again (unlike a commit
// without an answer, above). A deferred constraint trigger refuses the first commit.
func TestCommitRefusedRunsAgain(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	if _, err := s.pool.Exec(ctx, `
		CREATE TABLE probe (id INT);
		CREATE SEQUENCE probe_commits;
		CREATE FUNCTION probe_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF nextval('probe_commits') = 1 THEN
				RAISE EXCEPTION 'refused once' USING ERRCODE = '40001';
			END IF;
			RETURN NULL;
		END $$;
		CREATE CONSTRAINT TRIGGER probe_refuse AFTER INSERT ON probe
			DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION probe_refuse();`); err != nil {
		t.Fatal(err)
	}
	runs := 0
	err := s.tx(ctx, "probe", func(ctx context.Context, tx pgx.Tx) error {
		runs++
		_, err := tx.Exec(ctx, `INSERT INTO probe (id) VALUES ($1)`, runs)
		return err
	})
	var rows int
	if qerr := s.pool.QueryRow(ctx, `SELECT COUNT(*) FROM probe`).Scan(&rows); qerr != nil {
		t.Fatal(qerr)
	}
	if err != nil || runs != 2 || rows != 1 {
		t.Fatalf("tx: %v after %d runs, %d rows stored; want nil after 2 runs, 1 row", err, runs, rows)
	}
}

// nonceNew is nil when a call found its new nonce fresh, and nonceUsed when UseNonce
// found its nonce recorded before.
func nonceNew(fresh bool, err error) error {
	if err == nil && !fresh {
		return errors.New("a new nonce is not fresh")
	}
	return err
}

func nonceUsed(fresh bool, err error) error {
	if err == nil && fresh {
		return errors.New("the nonce was not recorded")
	}
	return err
}

// A cutter is a TCP proxy to a database that, once armed with a command tag, cuts the
// connection that brings that tag back from the database instead of passing it on.
type cutter struct {
	addr string                 // where it listens
	tag  atomic.Pointer[[]byte] // the CommandComplete to cut at; nil: pass all
	cuts atomic.Int32
}

// startCutter starts a cutter to target (host:port), stopped by the test's cleanup.
func startCutter(t *testing.T, target string) *cutter {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutter{addr: ln.Addr().String()}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			client, err := ln.Accept()
			if err != nil {
				return
			}
			db, err := net.Dial("tcp", target)
			if err != nil {
				client.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, client, db)
			mu.Unlock()
			wg.Go(func() { pump(db, client, nil) })
			wg.Go(func() { pump(client, db, p.cut) })
		}
	})
	return p
}

// pump copies from src to dst until either fails, or until cut (if not nil) says to
// drop what was read; then it closes both.
func pump(dst, src net.Conn, cut func([]byte) bool) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 64<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if cut != nil && cut(buf[:n]) {
				return
			}
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// cut reports whether b, from the database, brings back the armed tag, and disarms it.
func (p *cutter) cut(b []byte) bool {
	// A CommandComplete message: 'C', its length, the tag and a NUL.
	tag := p.tag.Load()
	if tag == nil || !bytes.Contains(b, append([]byte(*tag), 0)) || !p.tag.CompareAndSwap(tag, nil) {
		return false
	}
	p.cuts.Add(1)
	return true
}

// cutAt arms the cutter: the next connection to bring tag back is cut.
func (p *cutter) cutAt(tag string) {
	b := []byte(tag)
	p.tag.Store(&b)
}
