package postgres

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
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

// TestStoreOverSimpleProtocol runs the conformance suite with every statement sent
// with the simple protocol, as through a pooler in transaction mode (PgBouncer), which
// cannot keep prepared statements: the arguments travel as text in the statement.
func TestStoreOverSimpleProtocol(t *testing.T) {
	storetest.Run(t, func(t *testing.T) socius.Store {
		return open(t, pgtest.URL(t)+"&default_query_exec_mode=simple_protocol")
	})
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

// TestMigrationCutRunsAgain: a migration whose connection breaks after its COMMIT
// (and the CREATE TABLE of schema_migrations, after it ran) runs again: each looks
// first at what is there, so running twice does no harm, and Open succeeds.
func TestMigrationCutRunsAgain(t *testing.T) {
	for _, tag := range []string{"CREATE TABLE", "COMMIT"} {
		t.Run(tag, func(t *testing.T) {
			s, p := storeThroughCutter(t, atTag(tag))
			if n := p.cuts.Load(); n != 1 {
				t.Fatalf("the proxy cut %d connections, want 1", n)
			}
			checkMigrations(t, s)
		})
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
	if applied, err := migrate(t.Context(), s.pool, nil); err != nil || applied != 0 {
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

// olderDatabase makes the database at url as an older Socius left it, with the given
// migrations applied (and listed under their versions), then runs more statements.
func olderDatabase(t *testing.T, url string, applied []string, more ...string) {
	t.Helper()
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	qs := []string{`CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)`}
	for i, name := range applied {
		body, err := migrations.ReadFile("migrations/" + name)
		if err != nil {
			t.Fatal(err)
		}
		qs = append(qs, string(body), fmt.Sprintf(`INSERT INTO schema_migrations VALUES (%d, '%s', 0)`, i+1, name))
	}
	for _, q := range append(qs, more...) {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%v\n%s", err, q)
		}
	}
}

// TestMigrateSupersededTokenParents opens a database that a development build migrated
// with an earlier version 5 (0005_token_parents.sql: each minted token's parent, not
// its root): it is repaired as 0005_token_roots.sql would have made it, the roots
// found from the parents, and revoking a root ends the sessions under it.
func TestMigrateSupersededTokenParents(t *testing.T) {
	url := pgtest.URL(t)
	ctx := t.Context()
	olderDatabase(t, url, []string{"0001_init.sql", "0002_tokens.sql", "0003_nonces.sql", "0004_tokens_by_key.sql"},
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
	)
	s := open(t, url)
	defer s.Close()
	checkMigrations(t, s)
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
	var name string
	if err := s.pool.QueryRow(ctx, `SELECT name FROM schema_migrations WHERE version = 5`).Scan(&name); err != nil || name != "0005_token_roots.sql" {
		t.Errorf("version 5 after the repair: %q, %v", name, err)
	}
	// A second node starting on the repaired database finds nothing to do.
	if applied, err := migrate(ctx, s.pool, nil); err != nil || applied != 0 {
		t.Errorf("migrate after the repair: applied %d, %v; want 0, nil", applied, err)
	}
}

// TestMigrateUnknownVersionName: a database whose version 5 is a migration this build
// does not know is refused with what to do, and left as it was.
func TestMigrateUnknownVersionName(t *testing.T) {
	url := pgtest.URL(t)
	olderDatabase(t, url, []string{"0001_init.sql", "0002_tokens.sql", "0003_nonces.sql", "0004_tokens_by_key.sql"},
		`INSERT INTO schema_migrations VALUES (5, '0005_something_else.sql', 0)`)
	s, err := Open(t.Context(), url)
	if err == nil {
		s.Close()
		t.Fatal("Open of a database with an unknown version 5 succeeded")
	}
	for _, want := range []string{`schema version 5 is "0005_something_else.sql"`, "0005_token_roots.sql", "user export --with-site"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Open: %v; want it to say %q", err, want)
		}
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
		// A password with '@' (unescaped): libpq and pgx end the user information at
		// the first '@', net/url at the last.
		"postgres://su:s3c@s3cret@db/x":             "(a connection string that is no URL)",
		"postgres://su:s3c@s3/cret@db/x":            "(a connection string that is no URL)",
		"postgres://su:s3c%40s3cret@db/x?app=a@b":   "postgres://su:xxxxx@db/x?app=a%40b",
		"postgresql://su@db/x?application_name=a@b": "postgresql://su@db/x?application_name=a%40b",
		// No host after the password: net/url takes "su:s3cret:" for a host with an
		// empty port. A password parameter that url.Query cannot read, or one after a
		// second '?', which url.Query reads as another parameter's value.
		"postgres://su:s3cret:":                            "(a connection string that is no URL)",
		"postgres://db/x?password=%41s3cret%zz":            "(a connection string that is no URL)",
		"postgres://db/x?sslmode=disable?password=s3cret":  "(a connection string that is no URL)",
		"postgres://db/x?pool_max_conns=4?password=s3cret": "(a connection string that is no URL)",
		"postgres://db/x?a;password=s3cret":                "(a connection string that is no URL)",
		"postgres://db/x?password=&s3cret":                 "(a connection string that is no URL)",
		"postgres://su:pw@[::1]:5432/x":                    "postgres://su:xxxxx@[::1]:5432/x",
		"postgres://su:pw@db1:5432,db2:5433/x":             "postgres://su:xxxxx@db1:5432,db2:5433/x",
	} {
		if got := Redact(in); got != want || strings.Contains(got, "s3cret") {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestCheckURLAtInPassword: a URL whose password holds an '@' not written %40 is
// refused before anything connects, without any of the password: pgx, as libpq, takes
// what follows the first '@' for the host, and its errors (a parse error, "lookup
// s3cret@db: no such host") printed it; so for a password with a '/' before its '@'
// the database's name ("failed to connect to `user=root database=s3cret@db/x`"). An
// '@' written %40, or in the query, is read.
func TestCheckURLAtInPassword(t *testing.T) {
	for _, u := range []string{
		"postgres://su:s3c@s3cret@127.0.0.1:1/x",
		"postgres://su:s3c@s3cret@127.0.0.1:1/x?sslmode=bogus",
		"postgresql://su:s3c@s3/cret@127.0.0.1:1/x",
		"postgres://su:s3c@s3cret@h1:1,h2:2/x",
		// A '/' before the '@': no user information at all, "su:12" the host and
		// port, the rest of the password the database's name.
		"postgres://su:12/s3cret@127.0.0.1:1/x",
		"postgres://su:s3/cret@127.0.0.1:1/x",
		// A '?' after that '/': pgx reads "s3cret" as the database's name, the rest as
		// a parameter; a '?' after an '@' of the password: "s3" the database's name.
		"postgres://su:12/s3cret?x=y@127.0.0.1:1/x",
		"postgres://su:ab@h/s3?x=y@127.0.0.1:1/x",
	} {
		err := CheckURL(u)
		if err == nil || !strings.Contains(err.Error(), "%40") || strings.Contains(err.Error(), "s3") {
			t.Errorf("CheckURL(%q) = %v, want a refusal that says %%40, without the password", u, err)
		}
		if _, err := Open(t.Context(), u); err == nil || strings.Contains(err.Error(), "s3") {
			t.Errorf("Open(%q) = %v, want the same refusal", u, err)
		}
	}
	for _, u := range []string{
		"postgres://su:s3c%40s3cret@127.0.0.1:1/x",
		"postgres://su@127.0.0.1:1/x?application_name=a@b",
		"postgres://127.0.0.1:1/x?password=s3c@s3cret",
		"postgres://su:12%2Fs3cret@127.0.0.1:1/x",
	} {
		if err := CheckURL(u); err != nil {
			t.Errorf("CheckURL(%q) = %v, want nil", u, err)
		}
	}
}

// TestCheckURLParseErrorWithoutPassword: a URL pgx cannot read is refused without any
// of its password, wherever the password's text would have ended up in pgx's own
// message: a URL without its host (the password read as a port), a password with a
// space, a '?', a '#' or a stray '%', a password in the query, each not
// percent-encoded. pgx's message repeated the URL, masked only where its own reading
// found a password.
func TestCheckURLParseErrorWithoutPassword(t *testing.T) {
	for _, u := range []string{
		"postgres://su:S3cr3tPW",
		"postgresql://su:S3cr3tPW/x",
		"postgres://su:S3cr:3tPW",
		"postgres://su:S3cr#3tPW",
		"postgres://su:S3cr?3tPW",
		"postgres://su:S3cr 3tPW",
		"postgres://su:S3cr%413tPW",
		"postgres://su:S3cr@x/S3cr?3tPW#S3cr:3tPW%S3cr 3tPW@127.0.0.1:1/x",
		"postgres://:S3cr@x/S3cr?3tPW#S3cr:3tPW%S3cr 3tPW@127.0.0.1:1/x",
		"postgres://127.0.0.1:1/x?user=su&password=S3cr@x/S3cr?3tPW#S3cr:3tPW%S3cr 3tPW",
	} {
		err := CheckURL(u)
		if err == nil {
			t.Errorf("CheckURL(%q) = nil, want a refusal", u)
			continue
		}
		for _, part := range []string{"S3cr", "3tPW"} {
			if strings.Contains(err.Error(), part) {
				t.Errorf("CheckURL(%q) = %v, which holds %q of the password", u, err, part)
			}
		}
		if !strings.Contains(err.Error(), "cannot parse") && !strings.Contains(err.Error(), "%40") {
			t.Errorf("CheckURL(%q) = %v, want pgx's reason after 'cannot parse', or the refusal of an '@' after the user information", u, err)
		}
	}
	// What is no password is still said: the parameter and the value refused.
	err := CheckURL("postgres://su:S3cr3tPW@127.0.0.1:1/x?pool_max_conns=many")
	if err == nil || !strings.Contains(err.Error(), "pool_max_conns") || !strings.Contains(err.Error(), `"many"`) ||
		!strings.Contains(err.Error(), "postgres://su:xxxxx@127.0.0.1:1/x") {
		t.Errorf("CheckURL with pool_max_conns=many = %v, want the parameter, its value and the masked URL said", err)
	}
}

// TestCheckURLEmptyPort: a URL that pgx reads with a host ending in ':' is refused
// without the URL: a password with a '/' before its '@' and a '?' after it
// ("postgres://su:/s3cret?x=y@host") was the host "su:", the database "s3cret" and a
// parameter, all said in pgx's connect error and PostgreSQL's refusal of the
// parameter. A host with a port, or none, is read.
func TestCheckURLEmptyPort(t *testing.T) {
	for _, u := range []string{
		"postgres://su:/s3cret?x=y@127.0.0.1:1/x",
		"postgres://su:?s3cret/=@0",
		"postgresql://su:/s3cret",
		"postgres://su:pw@h1:1,h2:/s3cret",
		"postgres://su:pw@[::1]:/s3cret",
	} {
		err := CheckURL(u)
		if err == nil || strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), "%2F") {
			t.Errorf("CheckURL(%q) = %v, want a refusal that says %%2F, without the password", u, err)
		}
	}
	for _, u := range []string{
		"postgres://su:pw@127.0.0.1:1/x",
		"postgres://su:pw@[::1]:1,h2/x",
		"postgres:///x?host=/tmp",
		"postgres://su:p%3A@h/x?application_name=a:",
	} {
		if err := CheckURL(u); err != nil {
			t.Errorf("CheckURL(%q) = %v, want nil", u, err)
		}
	}
}

// TestCheckURLHostNotAName: a "host" that no host name, address or socket folder
// is (a parameter written after a ',' instead of a '?': pgx reads it as a second host,
// which a connect error names, password and all) is refused without being said; host
// names, addresses with zones and socket folders are taken.
func TestCheckURLHostNotAName(t *testing.T) {
	for _, u := range []string{
		"postgres://su@[::1],&password=s3cret",
		"postgres://su@[?],&password=s3cret",
		"postgres://su@h1,password=s3cret/x",
	} {
		err := CheckURL(u)
		if err == nil || strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), "no host name") {
			t.Errorf("CheckURL(%q) = %v, want a refusal that says the host is no host name, without the password", u, err)
		}
	}
	for _, u := range []string{
		"postgres://su:pw@db-1.internal_zone.example:5432,10.0.0.2/x",
		"postgres://su:pw@[fe80::1%25eth0]:1/x",
		"postgres:///x?host=/var/run/postgresql",
		"postgres://su@localhost/x?host=/tmp,db2",
	} {
		if err := CheckURL(u); err != nil {
			t.Errorf("CheckURL(%q) = %v, want nil", u, err)
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
	restartUnderDeletes(t, srv, srv.NewURL(t), 0)
}

// TestRestartThroughPgBouncer is TestRestart with a real PgBouncer between the store
// and the database, whose own errors during the outage (FATAL, 08P01: "query_wait_timeout",
// "server login has been failing") are the database's failure, not the value's: until
// 2026-11-30 the store took them for PostgreSQL refusing a value with a NUL byte, and
// answered 400006 to writes and "not found" to reads (a site then unknown). After the
// restart PgBouncer fails calls until it tries to log in again (server_login_retry, 1 s
// here, 15 s by default).
func TestRestartThroughPgBouncer(t *testing.T) {
	srv := pgtest.Start(t)
	b := srv.StartBouncer(t, 4)
	restartUnderDeletes(t, srv, b.NewURL(t)+"&default_query_exec_mode=simple_protocol", 5*time.Second)
}

// callSlack is how much longer than the store's OpTimeout the tests let a call take:
// the time to give up once the deadline has passed, on a loaded machine, where a
// process waits its turn for the CPU at every step (a quarter of a second was tight
// for that). A call that outlives its deadline (pgx's goodbye to a connection that
// PgBouncer holds took 15 s, a database that does not answer holds it for ever) still
// fails the bound. What a call does past its deadline is a few milliseconds of work
// (pgx's deadline on the socket, the rollback refused at once, the connection closed
// in the background): 2026-11-30, with a busy loop on each of the two CPUs, the calls
// of eight runs of TestCutAnywhere that ran into their deadline (314, each with the
// database's last answer held back) ended at most 32 ms past it. A stall of this
// process long enough to use up the slack would fail other tests first; a wider one
// would still tell the 15 s apart, but nothing seen needs it.
const callSlack = 2 * time.Second

// restartUnderDeletes stops srv while users are being deleted through the store at
// url, checks the calls during the outage, starts srv again and checks that the store
// works within settle and that no delete was done by half.
func restartUnderDeletes(t *testing.T, srv *pgtest.Server, url string, settle time.Duration) {
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
		if d := time.Since(start); d > s.OpTimeout+callSlack {
			t.Errorf("%s during the outage took %s", c.name, d)
		}
	}

	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	// Back: the same store works, and every user is either gone with its token revoked
	// or there with its token live.
	for deadline := time.Now().Add(settle); ; time.Sleep(50 * time.Millisecond) {
		_, err := s.Site(ctx, "3_site")
		if err == nil {
			break
		}
		if time.Now().After(deadline) || socius.ErrorCode(err) != socius.CodeDatabaseError {
			t.Fatalf("Site after the restart: %v", err)
		}
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
	s := terminatedPool(t, "retry-test")
	for range 10 {
		if _, err := s.Site(t.Context(), "3_site"); err != nil {
			t.Fatalf("Site after its connections were terminated: %v", err)
		}
	}
}

// TestHealthyRetriesOnce: the readiness probe, as a read, tries again on a new
// connection when its pooled one was closed by the database: it does not call the node
// down while the calls' reads succeed.
func TestHealthyRetriesOnce(t *testing.T) {
	s := terminatedPool(t, "healthy-test")
	if err := s.Healthy(); err != nil {
		t.Errorf("Healthy after its connections were terminated: %v", err)
	}
}

// terminatedPool returns a store (a site 3_site in it) whose pool holds idle
// connections that an administrator has terminated. The pool only pings connections
// idle for more than a second, so it hands these out as they are: the next query on
// one fails.
func terminatedPool(t *testing.T, app string) *Store {
	url := pgtest.URL(t) + "&application_name=" + app
	s := open(t, url)
	t.Cleanup(func() { s.Close() })
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
	admin, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	var n int
	if err := admin.QueryRow(ctx, `SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE application_name = $1 AND pid <> pg_backend_pid()`, app).Scan(&n); err != nil || n < 4 {
		t.Fatalf("terminated %d connections (%v), want at least 4", n, err)
	}
	time.Sleep(50 * time.Millisecond) // the backends exit
	return s
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

// TestLoginWhileBesideRevocation: a LoginWhile naming a minted token before its root
// (the server's order: the call's token, then the one at the top of its chain) and a
// revocation of the root (RevokeToken: the root's row, then the rows of the tokens
// minted from it) do not wait for each other crosswise. LoginWhile held the minted
// token's row (FOR SHARE) while it waited for the root's, which the revocation held
// while it waited for the minted token's: a deadlock, which PostgreSQL broke after
// deadlock_timeout (a second by default) by failing one of them.
func TestLoginWhileBesideRevocation(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	if err := s.CreateSite(ctx, &socius.Site{APIKey: "3_site", Secret: "c2VjcmV0LTAxMjM0NTY3ODlhYmM=", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Login(ctx, "3_site", "u1", nil, now); err != nil {
		t.Fatal(err)
	}
	if err := s.Logout(ctx, "3_site", "u1", now); err != nil {
		t.Fatal(err)
	}
	root := &socius.Token{Hash: strings.Repeat("a", 64), Kind: socius.AccessToken, APIKey: "3_site", UID: "u1", CreatedAt: now}
	minted := &socius.Token{Hash: strings.Repeat("b", 64), Kind: socius.SessionToken, APIKey: "3_site", UID: "u1", CreatedAt: now, Root: root.Hash}
	for _, tok := range []*socius.Token{root, minted} {
		if err := s.CreateToken(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	// The revocation, its first statement made: it holds the root's row.
	revoke, err := s.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer revoke.Rollback(ctx)
	// This side looks for a deadlock first, and is the one failed.
	if _, err := revoke.Exec(ctx, `SET LOCAL deadlock_timeout = '50ms'`); err != nil {
		t.Fatal(err)
	}
	if _, err := revoke.Exec(ctx, `UPDATE tokens SET revoked_at = $1 WHERE hash = $2`, millis(now), root.Hash); err != nil {
		t.Fatal(err)
	}
	login := make(chan error, 1)
	go func() {
		_, err := s.LoginWhile(ctx, "3_site", "u1", nil, now, minted.Hash, root.Hash)
		login <- err
	}()
	if !waitForLockWait(t, s, 1, 5*time.Second) {
		t.Fatal("LoginWhile never waited for the root held by the revocation")
	}
	// The revocation's minted tokens, then its commit.
	if _, err := revokeMinted(ctx, revoke, root.Hash, now.Add(time.Second)); err != nil {
		t.Fatalf("the revocation's minted tokens beside LoginWhile: %v", err)
	}
	if err := revoke.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-login; !errors.Is(err, socius.ErrRootGone) {
		t.Errorf("LoginWhile beside the revocation of its root: %v, want ErrRootGone", err)
	}
	if u, err := s.User(ctx, "3_site", "u1"); err != nil || u.LoggedIn {
		t.Errorf("the user after LoginWhile refused: %+v, %v; want it logged out", u, err)
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
	if _, err := migrate(ctx, pool, nil); err != nil {
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
// failure (500028); it stores nothing, and it costs the pool none of its connections.
// With either protocol: over the simple one a NUL byte makes PostgreSQL refuse the
// whole message (08P01), which is still the value, not the connection; and so through
// PgBouncer, which passes that refusal on.
func TestUnstorableWrite(t *testing.T) {
	b := pgtest.StartBouncer(t, 2)
	for _, c := range []struct{ name, url string }{
		{"extended protocol", pgtest.URL(t)},
		{"simple protocol", pgtest.URL(t) + "&default_query_exec_mode=simple_protocol"},
		{"PgBouncer, simple protocol", b.NewURL(t) + "&default_query_exec_mode=simple_protocol"},
		{"PgBouncer, exec", b.NewURL(t) + "&default_query_exec_mode=exec"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := open(t, c.url)
			defer s.Close()
			ctx := t.Context()
			if err := s.CreateSite(ctx, &socius.Site{APIKey: "3_site", Secret: "c2VjcmV0", CreatedAt: now}); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Login(ctx, "3_site", "u1", nil, now); err != nil {
				t.Fatal(err)
			}
			conns := s.pool.Stat().NewConnsCount()
			for _, v := range []string{"a\x00b", "a\xffb"} {
				var p socius.Patch
				p.Set(socius.Nickname, v)
				for what, err := range map[string]error{
					"CreateSite":    s.CreateSite(ctx, &socius.Site{APIKey: "3_other", Secret: "c2VjcmV0", Name: v, CreatedAt: now}),
					"UpdateProfile": s.UpdateProfile(ctx, "3_site", "u1", &p, now),
				} {
					if socius.ErrorCode(err) != socius.CodeInvalidValue {
						t.Errorf("%s with %q: %v; want a %d error", what, v, err, socius.CodeInvalidValue)
					}
				}
			}
			if _, err := s.Site(ctx, "3_other"); !errors.Is(err, socius.ErrNotFound) {
				t.Errorf("Site after the refused writes: %v; want ErrNotFound", err)
			}
			if u, err := s.User(ctx, "3_site", "u1"); err != nil || u.Profile.Get(socius.Nickname) != "" {
				t.Errorf("User after the refused writes: %+v, %v; want no nickname", u, err)
			}
			if n := s.pool.Stat().NewConnsCount(); n != conns {
				t.Errorf("the pool opened %d connections for the refused writes, want none", n-conns)
			}
		})
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
	s, p := storeThroughCutter(t)
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
			p.arm(atTag(c.tag))
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

// TestConnectFailsWriteRunsAgain: a write whose new connection failed as it opened
// sent nothing, so it runs again, on another connection, and succeeds.
func TestConnectFailsWriteRunsAgain(t *testing.T) {
	s, p := storeThroughCutter(t)
	ctx := t.Context()
	for i, write := range []func(n string) error{
		func(n string) error { // one statement
			return s.CreateSite(ctx, &socius.Site{APIKey: "3_" + n, Secret: "c2VjcmV0LTAxMjM0NTY3ODlhYmM=", CreatedAt: now})
		},
		func(n string) error { // a transaction
			return s.CreateToken(ctx, &socius.Token{Hash: n, Kind: socius.AccessToken, APIKey: "3_w0", CreatedAt: now})
		},
	} {
		s.pool.Reset() // no idle connection: the write opens one
		p.refuse.Store(true)
		if err := write(fmt.Sprintf("w%d", i)); err != nil || p.refuse.Load() {
			t.Errorf("write %d, its first connection refused (refused: %v): %v", i, !p.refuse.Load(), err)
		}
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

// TestCutAnywhere cuts the connection under each write and read of the store at each
// protocol message in turn: first at one the client sends (the database never sees it
// nor what follows: before BEGIN, a statement or COMMIT, mid-transaction), then at one
// the database answers (the client never sees it: before a statement ran, after its
// answer began, after a commit), until the call ends without a cut. Each call works on
// values of its own. A write succeeds, having taken effect once (a second run would
// answer ErrExists, ErrNotFound, a replay or a wrong count), or gives its refusal, or
// fails with 500028, having taken effect whole or not at all, and not at all when its
// COMMIT never reached the database; a read, run again once, succeeds. Every call ends
// within the store's OpTimeout, also when the database's last answer is held back
// instead (a database that stops answering).
func TestCutAnywhere(t *testing.T) {
	target, err := url.Parse(pgtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cutCases() {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			p := startCutter(t, target.Host)
			url := pgtest.URL(t)
			d := open(t, url) // prepares and checks, on connections that stay
			defer d.Close()
			s := open(t, strings.Replace(url, target.Host, p.addr, 1)+c.params) // calls, through the cutter
			defer s.Close()
			cutSweep(t, c, p, d, s, func(context.Context) error {
				s.pool.Reset() // a new connection, so that each call sends the same messages
				return nil
			})
		})
	}
}

// TestCutAnywhereThroughPgBouncer is TestCutAnywhere behind a real PgBouncer in
// transaction mode, with the pgx modes exec and simple_protocol, and the cutter on
// either side of PgBouncer. On its server side, between PgBouncer and the
// database, PgBouncer sees its server connection break at each message, and the store
// gets whatever PgBouncer makes of it (an error of its own, FATAL "server conn
// crashed?", or nothing when PgBouncer can take another connection). PgBouncer has one
// server connection for the store's database, which it keeps across the store's
// connections and opens again, with its connect_query, after a cut: before each call a
// statement through PgBouncer makes sure it is open and has served a transaction, so
// that each call finds it the same, and each transaction of the call then begins, at
// the database, with PgBouncer's check of the connection ("select 1",
// server_check_delay = 0), at which the sweep cuts too. On its client side, between the
// store and PgBouncer, PgBouncer sees the store's connection break at each message.
func TestCutAnywhereThroughPgBouncer(t *testing.T) {
	target, err := url.Parse(pgtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	b := pgtest.StartBouncer(t, 1)
	bouncer := fmt.Sprintf("127.0.0.1:%d", b.Port())
	for _, mode := range []string{"simple_protocol", "exec"} {
		for _, side := range []string{"server", "client"} {
			t.Run(mode+"/"+side, func(t *testing.T) {
				for _, c := range cutCases() {
					if c.params != "" {
						continue // a case over the simple protocol: the mode is set here
					}
					t.Run(c.name, func(t *testing.T) {
						t.Parallel()
						var p *cutter
						var url, direct string
						if side == "server" {
							p = startCutter(t, target.Host)
							url, direct = b.NewURLVia(t, p.addr)
						} else {
							p = startCutter(t, bouncer)
							url, direct = b.NewURLVia(t, target.Host)
							url = strings.Replace(url, bouncer, p.addr, 1)
						}
						d := open(t, direct)
						defer d.Close()
						s := open(t, url+"&default_query_exec_mode="+mode)
						defer s.Close()
						cutSweep(t, c, p, d, s, func(ctx context.Context) error {
							s.pool.Reset()
							_, err := s.pool.Exec(ctx, "SELECT 1") // through PgBouncer's server connection
							s.pool.Reset()                         // and the call on a new connection to PgBouncer
							return err
						})
					})
				}
			})
		}
	}
}

// cutSweep is TestCutAnywhere's sweep of the case c, whose calls s makes through the
// cutter p, while d, on the same database without the cutter, prepares them and checks
// what they did. ready, called before each call once what it needs is stored, puts s
// and what lies between it and the cutter in the same state each time, so that each
// call sends the same messages past the cutter.
func cutSweep(t *testing.T, c cutCase, p *cutter, d, s *Store, ready func(ctx context.Context) error) {
	ctx := t.Context()
	if err := cutFixture(ctx, d); err != nil {
		t.Fatal(err)
	}
	n := 0 // the values of the next call
	// run makes a call with at armed and checks what it did: it reports whether
	// it was cut, the messages the cut looked at, and the call's error.
	run := func(at cut) (cuts, seen int32, err error) {
		defer func() { n++ }()
		if c.prepare != nil {
			if err := c.prepare(ctx, d, n); err != nil {
				t.Fatalf("prepare %d: %v", n, err)
			}
		}
		if err := ready(ctx); err != nil {
			t.Fatalf("ready for call %d: %v", n, err)
		}
		a := &armed{cut: at}
		p.armed.Store(a)
		start := time.Now()
		err = c.call(ctx, s, n)
		took := time.Since(start)
		p.armed.Store(nil)
		cuts = p.cuts.Swap(0)
		where := fmt.Sprintf("cut %+v, call %d", at, n)
		if err != nil && !errors.Is(err, c.want) && socius.ErrorCode(err) != socius.CodeDatabaseError {
			t.Errorf("%s: %v; want %v or a database error (500028)", where, err, c.want)
		}
		if took > s.OpTimeout+callSlack {
			t.Errorf("%s: took %s, OpTimeout is %s", where, took, s.OpTimeout)
		}
		if c.done != nil {
			done, derr := c.done(ctx, d, n)
			if derr != nil {
				t.Errorf("%s (the call: %v): %v", where, err, derr)
			} else if err == nil && !done {
				t.Errorf("%s: succeeded, and took no effect", where)
			} else if c.want != nil && errors.Is(err, c.want) && done {
				t.Errorf("%s: refused (%v), and took effect", where, err)
			}
		}
		return cuts, a.seen.Load(), err
	}
	s.OpTimeout = 5 * time.Second
	var last int32 // the messages the database answers the call with
	// The cuts fall before each statement the client sends to be run (Bind, a
	// prepared statement; Query, one sent whole: BEGIN, COMMIT, any with the
	// simple protocol), then at each message of the database's answers but
	// the descriptions that never begin or end one (ParameterDescription,
	// NoData): ParseComplete, BindComplete, RowDescription, DataRow,
	// CommandComplete, ErrorResponse, ReadyForQuery.
	for _, at := range []cut{{toDB: true, kinds: "BQ"}, {kinds: "12TDCEZ"}} {
		for ; ; at.skip++ {
			cuts, seen, err := run(at)
			if cuts == 0 && !errors.Is(err, c.want) || c.done == nil && err != nil {
				t.Errorf("cut %+v (%d cuts): %v; want %v", at, cuts, err, c.want)
			}
			if cuts == 0 {
				last = seen
				break
			}
		}
	}
	// A transaction whose connection broke before it sent its COMMIT took no
	// effect, so it runs again, on a new connection (cut at the answer to its
	// BEGIN). One whose COMMIT the database never saw took no effect either,
	// but the store sent it and cannot know.
	if cuts, _, err := run(atTag("BEGIN")); cuts > 0 && err != nil && !errors.Is(err, c.want) {
		t.Errorf("cut at the answer to BEGIN: %v; want it run again", err)
	}
	if cuts, _, err := run(cut{toDB: true, kinds: "Q", match: "commit\x00"}); cuts > 0 && err != nil {
		if done, _ := c.done(ctx, d, n-1); done {
			t.Errorf("cut before its COMMIT: %v, and it took effect", err)
		}
	}
	s.OpTimeout = 50 * time.Millisecond
	if _, _, err := run(cut{skip: last - 1, hold: true}); err == nil || socius.ErrorCode(err) != socius.CodeDatabaseError && !errors.Is(err, c.want) {
		t.Errorf("the last answer held back: %v; want a database error (500028)", err)
	}
}

// A cutCase is a store call for TestCutAnywhere.
type cutCase struct {
	name string
	// prepare, when set, stores what the n-th call needs.
	prepare func(ctx context.Context, s *Store, n int) error
	// call makes the n-th call: its error, or one for a wrong answer.
	call func(ctx context.Context, s *Store, n int) error
	// done reports whether the n-th call, a write, took effect: an error when it did in
	// part. Nil for a read.
	done cutCheck
	// want is the call's right answer when it is a refusal, which takes no effect.
	want error
	// params are more parameters of the URL of the store that makes the calls.
	params string
}

// A cutCheck looks at what the n-th call of a cutCase stored.
type cutCheck func(ctx context.Context, s *Store, n int) (bool, error)

// cutFixture stores what the cutCases use: the site 3_site, its key 3_key, its user u1
// and the token root.
func cutFixture(ctx context.Context, s *Store) error {
	if err := s.CreateSite(ctx, &socius.Site{APIKey: "3_site", Secret: "old", CreatedAt: now}); err != nil {
		return err
	}
	if err := s.CreateKey(ctx, &socius.Key{UserKey: "3_key", APIKey: "3_site", Secret: "old", CreatedAt: now}); err != nil {
		return err
	}
	if _, err := s.Login(ctx, "3_site", "u1", nil, now); err != nil {
		return err
	}
	return s.CreateToken(ctx, &socius.Token{Hash: "root", Kind: socius.AccessToken, APIKey: "3_site", CreatedAt: now})
}

func cutCases() []cutCase {
	id := func(prefix string, n int) string { return prefix + strconv.Itoa(n) }
	// found is whether a read found its row: nil, or ErrNotFound, or its error.
	found := func(_ any, err error) (bool, error) {
		if errors.Is(err, socius.ErrNotFound) {
			return false, nil
		}
		return err == nil, err
	}
	// A probe looks at one row.
	type probe = func(ctx context.Context, s *Store, key string) (bool, error)
	site := func(ctx context.Context, s *Store, apiKey string) (bool, error) { return found(s.Site(ctx, apiKey)) }
	key := func(ctx context.Context, s *Store, userKey string) (bool, error) { return found(s.Key(ctx, userKey)) }
	user := func(ctx context.Context, s *Store, uid string) (bool, error) {
		return found(s.User(ctx, "3_site", uid))
	}
	live := func(ctx context.Context, s *Store, hash string) (bool, error) {
		t, err := s.Token(ctx, hash)
		ok, err := found(t, err)
		return ok && t.RevokedAt.IsZero(), err
	}
	loggedIn := func(ctx context.Context, s *Store, uid string) (bool, error) {
		u, err := s.User(ctx, "3_site", uid)
		ok, err := found(u, err)
		return ok && u.LoggedIn, err
	}
	nicked := func(ctx context.Context, s *Store, uid string) (bool, error) {
		u, err := s.User(ctx, "3_site", uid)
		ok, err := found(u, err)
		return ok && u.Profile.Get(socius.Nickname) == "cut", err
	}
	siteSwapped := func(ctx context.Context, s *Store, apiKey string) (bool, error) {
		site, err := s.Site(ctx, apiKey)
		return err == nil && site.Secret == "new", err
	}
	keySwapped := func(ctx context.Context, s *Store, userKey string) (bool, error) {
		k, err := s.Key(ctx, userKey)
		return err == nil && k.Secret == "new", err
	}
	hasUsers := func(ctx context.Context, s *Store, apiKey string) (bool, error) {
		n, err := s.CountUsers(ctx, apiKey)
		return n > 0, err
	}
	// used reports whether a nonce was recorded (and records it).
	used := func(ctx context.Context, s *Store, nonce string) (bool, error) {
		fresh, err := s.UseNonce(ctx, "3_site", nonce, now.Add(time.Minute), now)
		return !fresh, err
	}
	// on is the probe of the n-th call's row, named prefix and n; not its negation.
	on := func(p probe, prefix string) cutCheck {
		return func(ctx context.Context, s *Store, n int) (bool, error) { return p(ctx, s, id(prefix, n)) }
	}
	not := func(c cutCheck) cutCheck {
		return func(ctx context.Context, s *Store, n int) (bool, error) {
			ok, err := c(ctx, s, n)
			return !ok, err
		}
	}
	// all is whether every part of a write took effect: an error when some did and
	// some did not. The parts are looked at one after the other, so a commit still
	// running when the call gave up (its answer cut or held back after the database
	// had all it needed to commit) can land between two looks: a half write seen is
	// looked at again until it settles, and is an error only when it stays for
	// seconds. (A transaction's commit is seen whole or not at all; a write that
	// stays half is the store's fault.)
	all := func(parts ...cutCheck) cutCheck {
		return func(ctx context.Context, s *Store, n int) (bool, error) {
			deadline := time.Now().Add(5 * time.Second)
			for {
				var got []bool
				for _, c := range parts {
					ok, err := c(ctx, s, n)
					if err != nil {
						return false, err
					}
					got = append(got, ok)
				}
				if !slices.Contains(got, !got[0]) {
					return got[0], nil
				}
				if time.Now().After(deadline) {
					return false, fmt.Errorf("half a write: parts done %v, for 5 s", got)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
	}
	// answer is the error of a call that answered got where want is right.
	answer := func(got, want any, err error) error {
		if err == nil && got != want {
			return fmt.Errorf("answered %v, want %v", got, want)
		}
		return err
	}
	// token is a session of uid minted from root with 3_key: each checked by the store.
	token := func(hash, uid, root string) *socius.Token {
		return &socius.Token{Hash: hash, Kind: socius.SessionToken, APIKey: "3_site", UID: uid, UserKey: "3_key", Root: root, CreatedAt: now}
	}
	// withToken stores the user named prefix and n, and a live token of the user, its
	// hash the same.
	withToken := func(prefix string) func(ctx context.Context, s *Store, n int) error {
		return func(ctx context.Context, s *Store, n int) error {
			if _, err := s.Login(ctx, "3_site", id(prefix, n), nil, now); err != nil {
				return err
			}
			return s.CreateToken(ctx, token(id(prefix, n), id(prefix, n), ""))
		}
	}
	var nick socius.Patch
	nick.Set(socius.Nickname, "cut")
	nonce := func(prefix string, n int) socius.NonceUse {
		return socius.NonceUse{Credential: "3_site", Nonce: id(prefix, n), Expires: now.Add(time.Minute), Now: now}
	}
	newKey := func(ctx context.Context, s *Store, n int) error {
		return s.CreateKey(ctx, &socius.Key{UserKey: id("k", n), APIKey: "3_site", Secret: "old", CreatedAt: now})
	}
	newSite := func(ctx context.Context, s *Store, n int) error {
		return s.CreateSite(ctx, &socius.Site{APIKey: id("s", n), Secret: "old", CreatedAt: now})
	}
	// removal is the case of a write that removes what count counts, of which add
	// stores two more before each call, and reports how many it removed.
	removal := func(name string, add func(ctx context.Context, s *Store, n int) error, count func(ctx context.Context, s *Store) (int, error), remove func(ctx context.Context, s *Store) (int, error)) cutCase {
		var want int
		return cutCase{
			name: name,
			prepare: func(ctx context.Context, s *Store, n int) (err error) {
				if err := cmp.Or(add(ctx, s, 2*n), add(ctx, s, 2*n+1)); err != nil {
					return err
				}
				want, err = count(ctx, s)
				return err
			},
			call: func(ctx context.Context, s *Store, n int) error {
				got, err := remove(ctx, s)
				return answer(got, want, err)
			},
			done: func(ctx context.Context, s *Store, n int) (bool, error) {
				left, err := count(ctx, s)
				if err == nil && left != 0 && left != want {
					err = fmt.Errorf("%d of %d left", left, want)
				}
				return left == 0, err
			},
		}
	}
	rows := func(query string) func(ctx context.Context, s *Store) (int, error) {
		return func(ctx context.Context, s *Store) (n int, err error) {
			err = s.pool.QueryRow(ctx, query, millis(now)).Scan(&n)
			return n, err
		}
	}

	cases := []cutCase{{
		name: "CreateSite",
		call: func(ctx context.Context, s *Store, n int) error { return newSite(ctx, s, n) },
		done: on(site, "s"),
	}, {
		name: "PutSite",
		call: func(ctx context.Context, s *Store, n int) error {
			return s.PutSite(ctx, &socius.Site{APIKey: id("s", n), Secret: "secret", CreatedAt: now})
		},
		done: on(site, "s"),
	}, {
		name: "CreateKey",
		call: func(ctx context.Context, s *Store, n int) error { return newKey(ctx, s, n) },
		done: on(key, "k"),
	}, {
		name: "PutKey",
		call: func(ctx context.Context, s *Store, n int) error {
			return s.PutKey(ctx, &socius.Key{UserKey: id("k", n), APIKey: "3_site", Secret: "secret", CreatedAt: now})
		},
		done: on(key, "k"),
	}, {
		name: "DeleteKey",
		prepare: func(ctx context.Context, s *Store, n int) error {
			return cmp.Or(newKey(ctx, s, n),
				s.CreateToken(ctx, &socius.Token{Hash: id("t", n), Kind: socius.AccessToken, APIKey: "3_site", UserKey: id("k", n), CreatedAt: now}))
		},
		call: func(ctx context.Context, s *Store, n int) error { return s.DeleteKey(ctx, id("k", n)) },
		done: all(not(on(key, "k")), not(on(live, "t"))),
	}, {
		name:    "SwapSiteSecret",
		prepare: newSite,
		call: func(ctx context.Context, s *Store, n int) error {
			ok, err := s.SwapSiteSecret(ctx, id("s", n), "old", "new")
			return answer(ok, true, err)
		},
		done: on(siteSwapped, "s"),
	}, {
		name:    "SwapKeySecret",
		prepare: newKey,
		call: func(ctx context.Context, s *Store, n int) error {
			ok, err := s.SwapKeySecret(ctx, id("k", n), "old", "new")
			return answer(ok, true, err)
		},
		done: on(keySwapped, "k"),
	}, {
		name: "CreateToken",
		call: func(ctx context.Context, s *Store, n int) error {
			return s.CreateToken(ctx, token(id("t", n), "u1", "root"))
		},
		done: on(live, "t"),
	}, {
		name: "RevokeToken",
		prepare: func(ctx context.Context, s *Store, n int) error {
			return cmp.Or(s.CreateToken(ctx, token(id("r", n), "u1", "")), s.CreateToken(ctx, token(id("m", n), "u1", id("r", n))))
		},
		call: func(ctx context.Context, s *Store, n int) error {
			minted, err := s.RevokeToken(ctx, id("r", n), now)
			return answer(minted, 1, err)
		},
		done: all(not(on(live, "r")), not(on(live, "m"))),
	}, {
		name: "Login",
		call: func(ctx context.Context, s *Store, n int) error {
			created, err := s.Login(ctx, "3_site", id("l", n), &nick, now)
			return answer(created, true, err)
		},
		done: on(nicked, "l"),
	}, {
		name: "LoginWithToken",
		call: func(ctx context.Context, s *Store, n int) error {
			created, err := s.LoginWithToken(ctx, "3_site", id("l", n), &nick, now, token(id("t", n), id("l", n), "root"))
			return answer(created, true, err)
		},
		done: all(on(nicked, "l"), on(live, "t")),
	}, {
		name: "LoginWithToken from a revoked root",
		prepare: func(ctx context.Context, s *Store, n int) error {
			if err := s.CreateToken(ctx, token(id("r", n), "u1", "")); err != nil {
				return err
			}
			_, err := s.RevokeToken(ctx, id("r", n), now)
			return err
		},
		call: func(ctx context.Context, s *Store, n int) error {
			created, err := s.LoginWithToken(ctx, "3_site", id("l", n), &nick, now, token(id("t", n), id("l", n), id("r", n)))
			return answer(created, false, err)
		},
		done: all(on(user, "l"), on(live, "t")),
		want: socius.ErrRootGone,
	}, {
		name:    "UpdateProfile",
		prepare: withToken("u"),
		call: func(ctx context.Context, s *Store, n int) error {
			return s.UpdateProfile(ctx, "3_site", id("u", n), &nick, now)
		},
		done: on(nicked, "u"),
	}, {
		name:    "UpdateProfileNonced",
		prepare: withToken("u"),
		call: func(ctx context.Context, s *Store, n int) error {
			fresh, err := s.UpdateProfileNonced(ctx, nonce("n", n), "3_site", id("u", n), &nick, now)
			return answer(fresh, true, err)
		},
		done: all(on(nicked, "u"), on(used, "n")),
	}, {
		name: "UserNonced",
		call: func(ctx context.Context, s *Store, n int) error {
			fresh, u, err := s.UserNonced(ctx, nonce("n", n), "3_site", "u1")
			return answer(fresh && u != nil && u.UID == "u1", true, err)
		},
		done: on(used, "n"),
	}, {
		name: "UseNonce",
		call: func(ctx context.Context, s *Store, n int) error {
			fresh, err := s.UseNonce(ctx, "3_site", id("n", n), now.Add(time.Minute), now)
			return answer(fresh, true, err)
		},
		done: on(used, "n"),
	}, {
		name:    "Logout",
		prepare: withToken("u"),
		call:    func(ctx context.Context, s *Store, n int) error { return s.Logout(ctx, "3_site", id("u", n), now) },
		done:    all(not(on(loggedIn, "u")), not(on(live, "u"))),
	}, {
		name:    "DeleteUser",
		prepare: withToken("u"),
		call:    func(ctx context.Context, s *Store, n int) error { return s.DeleteUser(ctx, "3_site", id("u", n), now) },
		done:    all(not(on(user, "u")), not(on(live, "u"))),
	}, {
		name:    "RenameUser",
		prepare: withToken("u"),
		call: func(ctx context.Context, s *Store, n int) error {
			return s.RenameUser(ctx, "3_site", id("u", n), id("v", n))
		},
		done: all(not(on(user, "u")), on(user, "v"), func(ctx context.Context, s *Store, n int) (bool, error) {
			t, err := s.Token(ctx, id("u", n))
			return err == nil && t.UID == id("v", n), err
		}),
	}, {
		name: "RenameUser to a taken UID",
		prepare: func(ctx context.Context, s *Store, n int) error {
			_, err := s.Login(ctx, "3_site", id("v", n), nil, now)
			return cmp.Or(err, withToken("u")(ctx, s, n))
		},
		call: func(ctx context.Context, s *Store, n int) error {
			return s.RenameUser(ctx, "3_site", id("u", n), id("v", n))
		},
		done: all(not(on(user, "u")), func(ctx context.Context, s *Store, n int) (bool, error) {
			t, err := s.Token(ctx, id("u", n))
			return err == nil && t.UID == id("v", n), err
		}),
		want: socius.ErrExists,
	}, {
		name: "PutUser",
		call: func(ctx context.Context, s *Store, n int) error {
			return s.PutUser(ctx, &socius.User{APIKey: "3_site", UID: id("u", n), Profile: socius.Profile{socius.Nickname: "cut"}, CreatedAt: now, UpdatedAt: now})
		},
		done: on(nicked, "u"),
	}, {
		name: "DeleteUsers",
		prepare: func(ctx context.Context, s *Store, n int) error {
			if err := newSite(ctx, s, n); err != nil {
				return err
			}
			for _, uid := range []string{"a", "b"} {
				if _, err := s.Login(ctx, id("s", n), uid, nil, now); err != nil {
					return err
				}
				if err := s.CreateToken(ctx, &socius.Token{Hash: id(uid, n), Kind: socius.AccessToken, APIKey: id("s", n), UID: uid, CreatedAt: now}); err != nil {
					return err
				}
			}
			return nil
		},
		call: func(ctx context.Context, s *Store, n int) error {
			deleted, err := s.DeleteUsers(ctx, id("s", n))
			return answer(deleted, 2, err)
		},
		done: all(not(on(hasUsers, "s")), not(on(live, "a")), not(on(live, "b"))),
	},
		removal("DeleteUsers of every site", func(ctx context.Context, s *Store, n int) error {
			_, err := s.Login(ctx, "3_site", id("u", n), nil, now)
			return err
		}, func(ctx context.Context, s *Store) (int, error) { return s.CountUsers(ctx, "") },
			func(ctx context.Context, s *Store) (int, error) { return s.DeleteUsers(ctx, "") }),
		removal("DeleteExpiredTokens", func(ctx context.Context, s *Store, n int) error {
			return s.CreateToken(ctx, &socius.Token{Hash: id("e", n), Kind: socius.AccessToken, APIKey: "3_site", CreatedAt: now.Add(-time.Hour), ExpiresAt: now.Add(-time.Minute)})
		}, rows(`SELECT COUNT(*) FROM tokens WHERE expires_at < $1 OR revoked_at < $1`),
			func(ctx context.Context, s *Store) (int, error) { return s.DeleteExpiredTokens(ctx, now) }),
		removal("DeleteExpiredNonces", func(ctx context.Context, s *Store, n int) error {
			_, err := s.UseNonce(ctx, "3_site", id("e", n), now.Add(-time.Minute), now.Add(-time.Hour))
			return err
		}, rows(`SELECT COUNT(*) FROM nonces WHERE expires_at < $1`),
			func(ctx context.Context, s *Store) (int, error) { return s.DeleteExpiredNonces(ctx, now) }),
		{
			name: "Site",
			call: func(ctx context.Context, s *Store, n int) error {
				site, err := s.Site(ctx, "3_site")
				return answer(err == nil && site.Secret == "old", true, err)
			},
		}, {
			name: "Key",
			call: func(ctx context.Context, s *Store, n int) error {
				k, err := s.Key(ctx, "3_key")
				return answer(err == nil && k.Secret == "old", true, err)
			},
		}, {
			name: "Token",
			call: func(ctx context.Context, s *Store, n int) error {
				t, err := s.Token(ctx, "root")
				return answer(err == nil && t.APIKey == "3_site", true, err)
			},
		}, {
			name: "User",
			call: func(ctx context.Context, s *Store, n int) error {
				u, err := s.User(ctx, "3_site", "u1")
				return answer(err == nil && u.LoggedIn, true, err)
			},
		}, {
			name: "Users",
			call: func(ctx context.Context, s *Store, n int) error {
				users, err := s.Users(ctx, "3_site", "", 10)
				return answer(len(users), 1, err)
			},
		}, {
			name: "CountUsers",
			call: func(ctx context.Context, s *Store, n int) error {
				count, err := s.CountUsers(ctx, "3_site")
				return answer(count, 1, err)
			},
		}}
	// Through PgBouncer in transaction mode the store sends every statement with the
	// simple protocol (docs/postgresql.md), whose answers pgx reads in another way: a
	// statement, a query, a batch, a write of several statements, a transaction, a read.
	for _, c := range cases {
		if slices.Contains([]string{"CreateSite", "UseNonce", "UserNonced", "Login", "DeleteUser", "User"}, c.name) {
			c.name += " over the simple protocol"
			c.params = "&default_query_exec_mode=simple_protocol"
			cases = append(cases, c)
		}
	}
	return cases
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

// A cutter is a TCP proxy to a database that, once armed with a cut, breaks a
// connection at one protocol message: one that the client sends (the database never
// sees it, nor what follows) or one that the database sends back (the client never
// sees it). It passes the messages on one at a time, so that a cut can fall between
// two messages of one answer, or of one write of the client.
type cutter struct {
	addr  string                // where it listens
	armed atomic.Pointer[armed] // the cut to make; nil: pass all
	cuts  atomic.Int32          // cuts made
	// refuse, when set, has the next connection closed as it opens, and is cleared.
	refuse atomic.Bool
}

// A cut is where a cutter breaks a connection: at the message that goes to the
// database (toDB) or comes from it, is of one of the types in kinds (any when empty),
// holds match, and comes after skip such messages, counted from when the cutter was
// armed. The messages that open a connection (up to the database's first
// ReadyForQuery) are not counted. With hold the connection is not closed, but nothing
// more passes on it in that direction: a database, or a network, that stops answering.
type cut struct {
	toDB  bool
	kinds string
	match string
	skip  int32
	hold  bool
}

// armed is a cut and the matching messages seen since it was armed.
type armed struct {
	cut
	seen atomic.Int32
}

// atTag is the cut where the database's completion of a command (a CommandComplete
// message: 'C', its length, the tag and a NUL) brings back tag: "INSERT 0 1", "COMMIT".
func atTag(tag string) cut { return cut{match: tag + "\x00"} }

// storeThroughCutter opens a store on a new schema through a new cutter, armed with
// the cut given, if any, before the store opens; the test's cleanup closes both.
func storeThroughCutter(t *testing.T, first ...cut) (*Store, *cutter) {
	t.Helper()
	u, err := url.Parse(pgtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	p := startCutter(t, u.Host)
	u.Host = p.addr
	for _, c := range first {
		p.arm(c)
	}
	s := open(t, u.String())
	t.Cleanup(func() { s.Close() }) // before the cutter's cleanup
	return s, p
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
			if p.refuse.CompareAndSwap(true, false) {
				client.Close()
				continue
			}
			db, err := net.Dial("tcp", target)
			if err != nil {
				client.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, client, db)
			mu.Unlock()
			var open atomic.Bool // the connection is open: its messages count
			wg.Go(func() { p.pump(db, client, true, &open) })
			wg.Go(func() { p.pump(client, db, false, &open) })
		}
	})
	return p
}

// pump passes the messages from src to dst, one at a time, until either side fails or
// the armed cut falls on one; then it closes both, or, holding, reads on and drops all.
// The client's first message (a startup message or a cancel request) has no type byte;
// the database's first ReadyForQuery opens the connection.
func (p *cutter) pump(dst, src net.Conn, toDB bool, open *atomic.Bool) {
	defer dst.Close()
	defer src.Close()
	r := bufio.NewReader(src)
	typed, held := !toDB, false
	for {
		head := 4 // the length, which counts itself
		if typed {
			head = 5 // the type byte, then the length
		}
		m := make([]byte, head)
		if _, err := io.ReadFull(r, m); err != nil {
			return
		}
		m = append(m, make([]byte, max(0, int(binary.BigEndian.Uint32(m[head-4:]))-4))...)
		if _, err := io.ReadFull(r, m[head:]); err != nil {
			return
		}
		typed = true
		if !held && open.Load() {
			if c := p.falls(toDB, m); c != nil {
				if !c.hold {
					return
				}
				held = true
			}
		}
		if held {
			continue
		}
		if !toDB && m[0] == 'Z' {
			open.Store(true)
		}
		if _, err := dst.Write(m); err != nil {
			return
		}
	}
}

// falls reports the armed cut if it falls on m, a message to the database (toDB) or
// from it, and then disarms it.
func (p *cutter) falls(toDB bool, m []byte) *armed {
	a := p.armed.Load()
	if a == nil || a.toDB != toDB || a.kinds != "" && strings.IndexByte(a.kinds, m[0]) < 0 || !bytes.Contains(m, []byte(a.match)) {
		return nil
	}
	if a.seen.Add(1) <= a.skip || !p.armed.CompareAndSwap(a, nil) {
		return nil
	}
	p.cuts.Add(1)
	return a
}

// arm arms the cutter with c.
func (p *cutter) arm(c cut) { p.armed.Store(&armed{cut: c}) }

// TestStoreThroughPgBouncer runs the conformance suites through a real PgBouncer in
// transaction mode with two server connections a database, so that the store's
// transactions and statements are spread over connections it does not choose, as they
// are behind such a pooler (docs/postgresql.md), with each of the pgx modes that
// docs/postgresql.md gives for it. (pgx's default mode, prepared statements, fails
// there: "prepared statement ... already exists"; describe_exec too: "unnamed prepared
// statement does not exist".)
func TestStoreThroughPgBouncer(t *testing.T) {
	b := pgtest.StartBouncer(t, 2)
	t.Run("pooled", func(t *testing.T) {
		// Five clients at once share the two server connections: the pooler does pool
		// by transaction (in session mode the third would wait for a free one).
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		url := b.NewURL(t) + "&default_query_exec_mode=simple_protocol"
		pids := map[uint32]bool{}
		for range 5 {
			c, err := pgx.Connect(ctx, url)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close(context.Background())
			var pid uint32
			if err := c.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
				t.Fatal(err)
			}
			pids[pid] = true
		}
		if len(pids) > 2 {
			t.Errorf("five clients got %d server connections, want at most 2", len(pids))
		}
	})
	for _, mode := range []string{"simple_protocol", "exec", "cache_describe"} {
		t.Run(mode, func(t *testing.T) {
			opt := "&default_query_exec_mode=" + mode
			t.Run("store", func(t *testing.T) {
				storetest.Run(t, func(t *testing.T) socius.Store { return open(t, b.NewURL(t)+opt) })
			})
			for _, nonces := range []string{"sync", "async"} {
				t.Run("nonced-"+nonces, func(t *testing.T) {
					storetest.RunNonced(t, func(t *testing.T) storetest.NoncedStore {
						s := open(t, b.NewURL(t)+opt+"&nonce_commit="+nonces)
						t.Cleanup(func() { s.Close() })
						return s
					})
				})
			}
		})
	}
}

// TestStoreOverTLS runs the conformance suite against a server that takes TCP
// connections only over TLS and with a password (scram-sha-256), through the kind of
// URL docs/postgresql.md gives (sslmode=verify-full with the server's CA): the
// connections are encrypted. With the wrong CA, or without TLS, Open fails, saying why,
// without the password.
func TestStoreOverTLS(t *testing.T) {
	certPEM, keyPEM := selfSignedPEM(t)
	otherPEM, _ := selfSignedPEM(t)
	srv := pgtest.StartWith(t, pgtest.Setup{
		Files:    map[string][]byte{"server.crt": certPEM, "server.key": keyPEM},
		Settings: []string{"ssl=on", "ssl_cert_file=server.crt", "ssl_key_file=server.key"},
		HBA:      "local all all trust\nhostssl all all 127.0.0.1/32 scram-sha-256\nhost all all 127.0.0.1/32 reject\n",
	})
	const password = "hunter2-pg"
	srv.Exec(t, `ALTER USER postgres PASSWORD '`+password+`'`)
	dir := t.TempDir()
	ca, other := dir+"/ca.pem", dir+"/other.pem"
	for p, b := range map[string][]byte{ca: certPEM, other: otherPEM} {
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// tlsURL turns the harness's URL of a new place into one with the password and
	// the given TLS parameters.
	tlsURL := func(t *testing.T, tlsParams string) string {
		u := srv.NewURL(t)
		u = strings.Replace(u, "postgres@", "postgres:"+password+"@", 1)
		return strings.Replace(u, "sslmode=disable", tlsParams, 1)
	}
	t.Run("verify-full", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) socius.Store {
			s := open(t, tlsURL(t, "sslmode=verify-full&sslrootcert="+ca))
			var ssl bool
			if err := s.pool.QueryRow(t.Context(), `SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()`).Scan(&ssl); err != nil || !ssl {
				t.Fatalf("the store's connection uses TLS: %v, %v; want true", ssl, err)
			}
			return s
		})
	})
	for _, c := range []struct{ name, params, want string }{
		{"wrong CA", "sslmode=verify-full&sslrootcert=" + other, "certificate"},
		{"no TLS", "sslmode=disable", "pg_hba.conf"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, err := Open(t.Context(), tlsURL(t, c.params))
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			if msg := err.Error(); !strings.Contains(msg, c.want) || strings.Contains(msg, password) {
				t.Errorf("Open: %v; want a reason about %q, without the password", err, c.want)
			}
		})
	}
}

// selfSignedPEM returns a self-signed certificate for 127.0.0.1 and localhost, good
// for an hour, and its key, in PEM.
func selfSignedPEM(t *testing.T) (cert, key []byte) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "pgtest"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		IsCA: true, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
}

// TestFailover: a store whose URL names a primary and its hot standby, with
// target_session_attrs=read-write (docs/postgresql.md), goes on by itself, without
// being reopened, once the primary has crashed under concurrent writes and the standby
// is promoted: in between its calls fail with 500028, and with synchronous replication
// (synchronous_standby_names on the primary, synchronous_commit=on in the URL) every
// write it acknowledged is there after. A store does not open on the standby alone.
// (Without synchronous_standby_names, by hand on 2026-11-30, three runs lost 0, 3 and
// 99 of about 200 acknowledged logins: the standby lags.)
func TestFailover(t *testing.T) {
	primary := pgtest.StartWith(t, pgtest.Setup{Settings: []string{"synchronous_standby_names=*"}})
	url := primary.NewURL(t)
	first := open(t, url) // creates the schema, which the standby then copies
	first.Close()
	standby := primary.StartStandby(t)
	hostOf := func(srv *pgtest.Server) string { return fmt.Sprintf("127.0.0.1:%d", srv.Port()) }
	// The test servers run with synchronous_commit off; a production server's default is on.
	s := open(t, strings.Replace(url, hostOf(primary), hostOf(primary)+","+hostOf(standby), 1)+
		"&target_session_attrs=read-write&synchronous_commit=on")
	defer s.Close()
	s.OpTimeout = 3 * time.Second
	ctx := t.Context()
	if err := s.CreateSite(ctx, &socius.Site{APIKey: "3_site", Secret: "c2VjcmV0LTAxMjM0NTY3ODlhYmM=", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}

	// A store does not open on the standby alone: its start needs a write.
	if ro, err := Open(ctx, strings.Replace(url, hostOf(primary), hostOf(standby), 1)); err == nil {
		ro.Close()
		t.Error("Open on the standby succeeded")
	} else if !strings.Contains(err.Error(), "read-only") {
		t.Errorf("Open on the standby: %v; want it to say the server is read-only", err)
	}

	// Writers log users in until the primary crashes under them.
	var mu sync.Mutex
	var acked []string
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				uid := fmt.Sprintf("w%d-%d", w, i)
				if _, err := s.Login(ctx, "3_site", uid, nil, now); err != nil {
					if socius.ErrorCode(err) != socius.CodeDatabaseError {
						t.Errorf("Login as the primary crashed: %v; want a database error (500028)", err)
					}
					return
				}
				mu.Lock()
				acked = append(acked, uid)
				mu.Unlock()
			}
		})
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= 200 {
			break
		}
	}
	primary.Crash()
	wg.Wait()

	// No primary: no server of the URL takes writes, so every call fails, soon.
	for what, call := range map[string]func() error{
		"Site":  func() error { _, err := s.Site(ctx, "3_site"); return err },
		"Login": func() error { _, err := s.Login(ctx, "3_site", "between", nil, now); return err },
	} {
		start := time.Now()
		if err := call(); socius.ErrorCode(err) != socius.CodeDatabaseError {
			t.Errorf("%s with no primary: %v; want a database error (500028)", what, err)
		}
		if d := time.Since(start); d > s.OpTimeout+callSlack {
			t.Errorf("%s with no primary took %s", what, d)
		}
	}

	standby.Promote(t)
	lost := 0
	for _, uid := range acked {
		if _, err := s.User(ctx, "3_site", uid); err != nil {
			if !errors.Is(err, socius.ErrNotFound) {
				t.Fatalf("User after the failover: %v", err)
			}
			lost++
		}
	}
	t.Logf("%d logins acknowledged before the crash, %d of them lost", len(acked), lost)
	if lost > 0 {
		t.Errorf("%d of the %d acknowledged logins are gone after the failover", lost, len(acked))
	}
	if created, err := s.Login(ctx, "3_site", "after", nil, now); err != nil || !created {
		t.Errorf("Login after the failover: %v, %v; want a new user", created, err)
	}
	if ok, err := s.UseNonce(ctx, "apiKey 3_site", "after", now.Add(time.Minute), now); !ok || err != nil {
		t.Errorf("UseNonce after the failover: %v, %v", ok, err)
	}
}

// loadedBound is how long the tests below let a call with a deadline of 1 s, or
// Close (closeWait, 2 s), take: a loaded machine stalls processes for seconds (bounds of
// 3 s and 5 s left a second or two for that). It is below the default deadlines
// (DefaultOpTimeout, 10 s), so a call that waits for the default instead still fails
// them, as do the waits they were written for (two minutes, 15 s, for ever).
const loadedBound = 8 * time.Second

// TestPgBouncerDatabaseDownBounded: behind a PgBouncer whose database is down, which
// holds each statement until its query_wait_timeout (two minutes), Open and Close end
// within their bounds: Open with the database already down, saying it got no answer
// (it waited the two minutes until 2026-11-30), and Close once a call has timed out
// there (it took 15 s more: pgx's goodbye to a connection PgBouncer holds).
func TestPgBouncerDatabaseDownBounded(t *testing.T) {
	srv := pgtest.Start(t)
	b := srv.StartBouncer(t, 2)
	// Two databases of PgBouncer: once one has failed to reach the server, PgBouncer
	// fails its next calls at once for a while (server_login_retry), not holding them.
	url, other := b.NewURL(t)+"&default_query_exec_mode=exec", b.NewURL(t)+"&default_query_exec_mode=exec"
	s := open(t, url)
	s.OpTimeout = time.Second
	if err := s.CreateSite(t.Context(), &socius.Site{APIKey: "3_site", Secret: "c2VjcmV0", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	srv.Stop()

	defer func(d time.Duration) { openPingTimeout = d }(openPingTimeout)
	openPingTimeout = time.Second
	start := time.Now()
	o, err := Open(t.Context(), other)
	took := time.Since(start)
	if err == nil {
		o.Close()
		t.Fatal("Open succeeded with the database down")
	}
	if !strings.Contains(err.Error(), "no answer within 1s") {
		t.Errorf("Open: %v; want it to say that the database did not answer in time", err)
	}
	if took > loadedBound {
		t.Errorf("Open took %s with a deadline of 1 s", took)
	}

	start = time.Now()
	if _, err := s.Site(t.Context(), "3_site"); socius.ErrorCode(err) != socius.CodeDatabaseError {
		t.Errorf("Site with the database down: %v; want a database error (500028)", err)
	}
	if took := time.Since(start); took < s.OpTimeout {
		t.Fatalf("Site failed after %s, not held by PgBouncer: the test checks nothing", took)
	}
	start = time.Now()
	s.Close()
	if took := time.Since(start); took > loadedBound {
		t.Errorf("Close took %s", took)
	}
}

// TestOpenSynchronousWithoutStandby: a first start on an empty database of a server
// whose commits wait for a synchronous standby, none attached, fails within Open's
// deadline for the schema instead of waiting for ever (it did until 2026-11-30).
func TestOpenSynchronousWithoutStandby(t *testing.T) {
	srv := pgtest.StartWith(t, pgtest.Setup{Settings: []string{"synchronous_standby_names=*"}})
	defer func(d time.Duration) { schemaTimeout = d }(schemaTimeout)
	schemaTimeout = time.Second
	start := time.Now()
	// The test servers run with synchronous_commit off; a production server's default is on.
	s, err := Open(t.Context(), srv.NewURL(t)+"&synchronous_commit=on")
	took := time.Since(start)
	if err == nil {
		s.Close()
		t.Fatal("Open succeeded with no standby to confirm its commits")
	}
	if !strings.Contains(err.Error(), "schema_migrations") || took > loadedBound {
		t.Errorf("Open: %v after %s; want the schema's creation to fail within its deadline of 1 s", err, took)
	}
}

// TestRefusedConnectionKeepsThePool: a new connection the database refuses (its slots
// full: 53300) leaves the pool's working connections alone. It reset the pool: under a
// full max_connections each refusal threw away the connections that worked, the calls
// after it had to connect, and were refused in turn (a fifth of the calls failed where
// a pool of the slots left failed none).
func TestRefusedConnectionKeepsThePool(t *testing.T) {
	ctx := t.Context()
	base := pgtest.URL(t)
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	role := fmt.Sprintf("slots_%d", time.Now().UnixNano())
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	schema := u.Query().Get("search_path") // the test's own
	for _, sql := range []string{`CREATE ROLE ` + role + ` LOGIN`, `ALTER SCHEMA "` + schema + `" OWNER TO ` + role} {
		if _, err := admin.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	u.User = url.User(role) // not a superuser: the limit holds for it
	s := open(t, u.String()+"&pool_max_conns=8")
	defer s.Close()

	// Every connection the pool holds, in use; then no slot for another.
	var held []*pgxpool.Conn
	for len(held) == 0 || s.pool.Stat().IdleConns() > 0 {
		c, err := s.pool.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	var backends int
	if err := admin.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE usename = $1`, role).Scan(&backends); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec(ctx, fmt.Sprintf(`ALTER ROLE %s CONNECTION LIMIT %d`, role, backends)); err != nil {
		t.Fatal(err)
	}
	actx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, refused := s.pool.Acquire(actx)
	var pe *pgconn.PgError
	if !errors.As(refused, &pe) || pe.Code != "53300" {
		t.Fatalf("a connection over the role's limit: %v", refused)
	}
	for _, c := range held {
		c.Release()
	}
	before := s.pool.Stat().TotalConns()
	if !s.lost(refused) {
		t.Error("a refused connection is not taken for a lost one (the call may try once more)")
	}
	if after := s.pool.Stat().TotalConns(); after != before {
		t.Errorf("the pool held %d connections before the refusal was handled, %d after", before, after)
	}
	// The connections kept still serve.
	if _, err := s.Site(ctx, "3_nosuchsite"); !errors.Is(err, socius.ErrNotFound) {
		t.Errorf("a read after the refusal: %v", err)
	}
}

// TestApplicationName: the store's connections are application_name=socius in
// pg_stat_activity, unless the URL or PGAPPNAME names them otherwise.
func TestApplicationName(t *testing.T) {
	dsn := pgtest.URL(t)
	name := func(url string) string {
		t.Helper()
		s := open(t, url)
		defer s.Close()
		var app string
		if err := s.pool.QueryRow(t.Context(), `SELECT application_name FROM pg_stat_activity WHERE pid = pg_backend_pid()`).Scan(&app); err != nil {
			t.Fatal(err)
		}
		return app
	}
	if got := name(dsn); got != "socius" {
		t.Errorf("application_name %q by default, want socius", got)
	}
	if got := name(dsn + "&application_name=node-7"); got != "node-7" {
		t.Errorf("application_name %q with the URL's node-7", got)
	}
	t.Setenv("PGAPPNAME", "from-env")
	if got := name(dsn); got != "from-env" {
		t.Errorf("application_name %q with PGAPPNAME=from-env", got)
	}
	if got := name(dsn + "&application_name=node-7"); got != "node-7" {
		t.Errorf("application_name %q with the URL's node-7 and PGAPPNAME=from-env, want the URL's", got)
	}
}
