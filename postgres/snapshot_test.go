package postgres

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/socius/socius"
	"github.com/socius/socius/internal/pgtest"
)

// warmPool leaves n idle connections in the store's pool: n acquired at once, then
// given back.
func warmPool(t *testing.T, s *Store, n int) {
	t.Helper()
	conns := make([]interface{ Release() }, 0, n)
	for range n {
		c, err := s.pool.Acquire(t.Context())
		if err != nil {
			t.Fatalf("Acquire: %v", err)
		}
		conns = append(conns, c)
	}
	for _, c := range conns {
		c.Release()
	}
}

// lockUsers takes an ACCESS EXCLUSIVE lock on the users table of the schema at url,
// on a connection of its own, until the returned function is called: every read of
// the table waits for it.
func lockUsers(t *testing.T, url string) (release func()) {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	tx, err := conn.Begin(t.Context())
	if err != nil {
		t.Fatalf("begin: %v", err)
	}
	if _, err := tx.Exec(t.Context(), `LOCK TABLE users IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatalf("lock: %v", err)
	}
	var once sync.Once
	release = func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			tx.Rollback(ctx)
			conn.Close(ctx)
		})
	}
	t.Cleanup(release)
	return release
}

// databaseError returns err's *socius.Error, failing the test unless it is a 500028.
func databaseError(t *testing.T, what string, err error) *socius.Error {
	t.Helper()
	var se *socius.Error
	if !errors.As(err, &se) || se.Code != socius.CodeDatabaseError {
		t.Fatalf("%s: %v; want a 500028", what, err)
	}
	return se
}

// TestViewReadCutShort: a view whose read was cut short (its deadline passed while it
// waited for a lock, and pgx closed its connection) has lost its snapshot. Its next
// reads are refused by the view itself, saying so, and the store's pool is left as it
// was: the connection lost was the view's own, not a sign that the database went
// away, so the pool is not reset (a reset throws the idle connections away, and the
// calls after it must open new ones). The view's Close then succeeds, and the store
// serves on.
func TestViewReadCutShort(t *testing.T) {
	url := pgtest.URL(t)
	s := open(t, url)
	defer s.Close()
	ctx := t.Context()
	if err := s.CreateSite(ctx, &socius.Site{APIKey: "3_site", Secret: "c2VjcmV0LTAxMjM0NTY3ODlhYmM=", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	v, err := s.Snapshot(ctx)
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	defer v.Close()
	// Idle connections besides the view's: a reset of the pool would close them, and
	// the store's next operation would then open a new one.
	warmPool(t, s, 3)
	opened := s.pool.Stat().NewConnsCount()

	release := lockUsers(t, url)
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	_, err = v.Users(short, "3_site", "", 10)
	cancel()
	databaseError(t, "the read cut short", err)
	release()

	// Every read of the view after it, of any table, is refused by the view.
	const want = "the view's connection was lost: its snapshot is gone; open another"
	_, err = v.Users(ctx, "3_site", "", 10)
	if se := databaseError(t, "Users after the read cut short", err); !strings.Contains(se.Details, want) {
		t.Fatalf("Users after the read cut short: details %q; want them to say %q", se.Details, want)
	}
	_, err = v.Sites(ctx)
	if se := databaseError(t, "Sites after the read cut short", err); !strings.Contains(se.Details, want) {
		t.Fatalf("Sites after the read cut short: details %q; want them to say %q", se.Details, want)
	}

	// The store serves, on the connections it had: no reset.
	if _, err := s.Login(ctx, "3_site", "u1", nil, now); err != nil {
		t.Fatalf("Login: %v", err)
	}
	if _, err := s.User(ctx, "3_site", "u1"); err != nil {
		t.Fatalf("User: %v", err)
	}
	if _, err := s.Sites(ctx); err != nil {
		t.Fatalf("Sites: %v", err)
	}
	if n := s.pool.Stat().NewConnsCount(); n != opened {
		t.Fatalf("the pool opened %d connections after the view's read was cut short; want none (it was reset)", n-opened)
	}

	if err := v.Close(); err != nil {
		t.Fatalf("Close of the view whose connection was lost: %v; want nil", err)
	}
	// The pool destroys a closed connection given back in the background.
	for deadline := time.Now().Add(2 * time.Second); s.pool.Stat().AcquiredConns() != 0; {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections still taken 2 s after the view's Close; want none", s.pool.Stat().AcquiredConns())
		}
		time.Sleep(10 * time.Millisecond)
	}
	// A new view reads as any.
	v2, err := s.Snapshot(ctx)
	if err != nil {
		t.Fatalf("Snapshot after: %v", err)
	}
	defer v2.Close()
	if users, err := v2.Users(ctx, "3_site", "", 10); err != nil || len(users) != 1 {
		t.Fatalf("a new view's Users: %d users, %v; want 1", len(users), err)
	}
}

// TestViewTransactionFailed: a view whose read failed on the server (here it gave up
// waiting for a lock, lock_timeout) keeps its connection, but PostgreSQL takes no
// more statements in its transaction: its next reads are refused by the view, saying
// so, rather than with PostgreSQL's "current transaction is aborted", and its Close
// gives the connection back to the pool, where it serves again.
func TestViewTransactionFailed(t *testing.T) {
	url := pgtest.URL(t)
	s := open(t, url+"&lock_timeout=200")
	defer s.Close()
	ctx := t.Context()
	v, err := s.Snapshot(ctx)
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	defer v.Close()
	release := lockUsers(t, url)
	_, err = v.Users(ctx, "3_site", "", 10)
	databaseError(t, "the read that met the lock", err)
	release()

	const want = "the view's transaction failed: its snapshot is gone; open another"
	_, err = v.Sites(ctx)
	if se := databaseError(t, "Sites after the failed read", err); !strings.Contains(se.Details, want) {
		t.Fatalf("Sites after the failed read: details %q; want them to say %q", se.Details, want)
	}
	if err := v.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if st := s.pool.Stat(); st.AcquiredConns() != 0 || st.IdleConns() == 0 {
		t.Fatalf("after the view's Close: %d connections taken, %d idle; want none taken, its connection idle", st.AcquiredConns(), st.IdleConns())
	}
	if _, err := s.Sites(ctx); err != nil {
		t.Fatalf("the store's Sites: %v", err)
	}
}

// TestViewsBounded: a store keeps at most a quarter of its pool's connections as
// views open at once (2 of pool_max_conns=8). A Snapshot beyond them waits, taking no
// connection, and fails when its context ends first, saying why; one that is waiting
// when a view closes gets its place. The store serves its calls meanwhile.
func TestViewsBounded(t *testing.T) {
	for _, c := range []struct {
		maxConns int32
		want     int
	}{{1, 1}, {3, 1}, {4, 1}, {8, 2}, {16, 4}, {17, 4}} {
		if got := maxViews(c.maxConns); got != c.want {
			t.Errorf("maxViews(%d) = %d; want %d", c.maxConns, got, c.want)
		}
	}

	s := open(t, pgtest.URL(t)+"&pool_max_conns=8")
	defer s.Close()
	ctx := t.Context()
	if err := s.CreateSite(ctx, &socius.Site{APIKey: "3_site", Secret: "c2VjcmV0LTAxMjM0NTY3ODlhYmM=", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	var views []socius.View
	for i := range 2 {
		v, err := s.Snapshot(ctx)
		if err != nil {
			t.Fatalf("Snapshot %d: %v", i+1, err)
		}
		defer v.Close()
		views = append(views, v)
	}

	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	start := time.Now()
	v, err := s.Snapshot(short)
	cancel()
	if err == nil {
		v.Close()
		t.Fatal("a third Snapshot with two open succeeded; want it refused")
	}
	const want = "2 views of the database are open on this server"
	if se := databaseError(t, "the third Snapshot", err); !strings.Contains(se.Details, want) {
		t.Fatalf("the third Snapshot: details %q; want them to say %q", se.Details, want)
	}
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Fatalf("the third Snapshot failed after %v; want it to wait for its context (300 ms)", d)
	}

	// One waiting now, while the store serves.
	type opened struct {
		v   socius.View
		err error
	}
	third := make(chan opened, 1)
	go func() {
		v, err := s.Snapshot(ctx)
		third <- opened{v, err}
	}()
	if _, err := s.Login(ctx, "3_site", "u1", nil, now); err != nil {
		t.Fatalf("Login while a Snapshot waits: %v", err)
	}
	if _, err := s.User(ctx, "3_site", "u1"); err != nil {
		t.Fatalf("User while a Snapshot waits: %v", err)
	}
	select {
	case o := <-third:
		if o.v != nil {
			o.v.Close()
		}
		t.Fatalf("a third Snapshot returned (%v) while two views were open; want it to wait", o.err)
	case <-time.After(200 * time.Millisecond):
	}
	if n := s.pool.Stat().AcquiredConns(); n != 2 {
		t.Fatalf("%d connections taken while the third Snapshot waits; want the 2 views'", n)
	}
	if err := views[0].Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	var o opened
	select {
	case o = <-third:
	case <-time.After(5 * time.Second):
		t.Fatal("the waiting Snapshot did not open within 5 s of a view's Close")
	}
	if o.err != nil {
		t.Fatalf("the waiting Snapshot: %v", o.err)
	}
	defer o.v.Close()
	// It is of its own moment, after u1's login.
	if users, err := o.v.Users(ctx, "3_site", "", 10); err != nil || len(users) != 1 {
		t.Fatalf("the third view's Users: %d users, %v; want 1", len(users), err)
	}
	// A view closed twice gives back one place, not two.
	if err := views[0].Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	short, cancel = context.WithTimeout(ctx, 100*time.Millisecond)
	v, err = s.Snapshot(short)
	cancel()
	if err == nil {
		v.Close()
		t.Fatal("a Snapshot beyond two open, after a view closed twice, succeeded; want it refused")
	}
}

// otherEncoding returns the URL of a new database of the pgtest server at url (a
// schema's URL) whose encoding is EUC_JP: a database where PostgreSQL refuses a text
// that is valid UTF-8 but has a character EUC_JP lacks (an emoji: 22P05).
func otherEncoding(t *testing.T, url string) string {
	t.Helper()
	base, schema, ok := strings.Cut(url, "&search_path=")
	if !ok || !strings.Contains(base, "/socius?") {
		t.Fatalf("a pgtest URL not of the form expected: %s", url)
	}
	conn, err := pgx.Connect(t.Context(), strings.Replace(base, "/socius?", "/postgres?", 1))
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(context.Background())
	db := "euc_jp_" + schema
	if _, err := conn.Exec(t.Context(), `CREATE DATABASE `+db+` ENCODING 'EUC_JP' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0`); err != nil {
		t.Fatalf("create database: %v", err)
	}
	return strings.Replace(base, "/socius?", "/"+db+"?", 1)
}

// TestViewUnstorableValue: a read of a view that PostgreSQL refuses for its value (an
// apiKey that is valid UTF-8 but has a character the database's encoding lacks)
// finds nothing, as the store's own read does, and the view reads on, at its moment.
// It found nothing, but the failed statement had failed the view's transaction: every
// read after it was refused, 500028 "the view's transaction failed".
func TestViewUnstorableValue(t *testing.T) {
	url := otherEncoding(t, pgtest.URL(t))
	for _, mode := range []string{"cache_statement", "simple_protocol"} {
		t.Run(mode, func(t *testing.T) {
			s := open(t, url+"&client_encoding=UTF8&default_query_exec_mode="+mode)
			defer s.Close()
			ctx := t.Context()
			site := "3_" + mode
			if err := s.CreateSite(ctx, &socius.Site{APIKey: site, Secret: "c2VjcmV0LTAxMjM0NTY3ODlhYmM=", CreatedAt: now}); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Login(ctx, site, "u1", nil, now); err != nil {
				t.Fatal(err)
			}
			v, err := s.Snapshot(ctx)
			if err != nil {
				t.Fatalf("Snapshot: %v", err)
			}
			defer v.Close()
			if _, err := s.Login(ctx, site, "u2", nil, now); err != nil {
				t.Fatal(err)
			}

			const unstorable = "3_\U0001F600" // an emoji: no EUC_JP
			if _, err := s.Site(ctx, unstorable); !errors.Is(err, socius.ErrNotFound) {
				t.Fatalf("the store's Site(%q): %v; want not found", unstorable, err)
			}
			for name, read := range map[string]func() error{
				"Site":  func() error { _, err := v.Site(ctx, unstorable); return err },
				"Keys":  func() error { _, err := v.Keys(ctx, unstorable); return err },
				"Users": func() error { _, err := v.Users(ctx, unstorable, "", 10); return err },
			} {
				if err := read(); !errors.Is(err, socius.ErrNotFound) {
					t.Fatalf("view: %s(%q): %v; want not found, as the store's", name, unstorable, err)
				}
				// The view reads on, of its moment: u1, not u2 written after it.
				users, err := v.Users(ctx, site, "", 10)
				if err != nil || len(users) != 1 || users[0].UID != "u1" {
					t.Fatalf("view: Users after %s(%q): %v, %v; want u1 alone", name, unstorable, uidsOf(users), err)
				}
			}
			if err := v.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
		})
	}
}

func uidsOf(users []*socius.User) []string {
	var uids []string
	for _, u := range users {
		uids = append(uids, u.UID)
	}
	return uids
}
