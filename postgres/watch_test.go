package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/socius/socius/internal/pgtest"
	"github.com/socius/socius/internal/syncbuf"
)

// shorten sets *v to d for the test, and back after it.
func shorten[T any](t *testing.T, v *T, d T) {
	old := *v
	*v = d
	t.Cleanup(func() { *v = old })
}

// textLogger is a logger into logs, at every level.
func textLogger(logs *syncbuf.Buffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// waitForLog waits until logs holds every one of want, and fails the test (named, not
// the package's timeout) when they have not come within a minute.
func waitForLog(t *testing.T, logs *syncbuf.Buffer, want ...string) string {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(10 * time.Millisecond) {
		text := logs.String()
		all := true
		for _, w := range want {
			all = all && strings.Contains(text, w)
		}
		if all {
			return text
		}
		if time.Now().After(deadline) {
			t.Fatalf("within a minute the log did not say %q:\n%s", want, text)
		}
	}
}

type opened struct {
	s   *Store
	err error
}

// openInBackground runs OpenWith, closing the store it opens; the result comes on the
// channel.
func openInBackground(ctx context.Context, url string, opts Options) chan opened {
	c := make(chan opened, 1)
	go func() {
		s, err := OpenWith(ctx, url, opts)
		if err == nil {
			s.Close()
		}
		c <- opened{s, err}
	}()
	return c
}

// result waits for a start begun by openInBackground, up to a minute.
func result(t *testing.T, c chan opened) error {
	t.Helper()
	select {
	case r := <-c:
		return r.err
	case <-time.After(time.Minute):
		t.Fatal("the start did not end within a minute")
		return nil
	}
}

// TestStartWaitSaid: a start whose schema check waits for a lock that another session
// holds (LOCK TABLE users in a transaction left open) logs, once a watch period has
// passed, the step that waits and the session that holds it: its pid, its
// application_name, its state and its statement. Cancelled, the start returns, its
// error naming that session. Before, the start said nothing until its deadline, and
// its error only "context canceled".
func TestStartWaitSaid(t *testing.T) {
	shorten(t, &startWatchPeriod, 50*time.Millisecond)
	dsn := pgtest.URL(t)
	open(t, dsn).Close()
	pid, _ := pgtest.HoldLock(t, dsn, "holder-psql", `LOCK TABLE users IN ACCESS EXCLUSIVE MODE`)
	var logs syncbuf.Buffer
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	c := openInBackground(ctx, dsn, Options{Logger: textLogger(&logs)})
	holderSaid := fmt.Sprintf("pid %d (holder-psql, user postgres, from 127.0.0.1, idle in transaction for ", pid)
	text := waitForLog(t, &logs, "level=WARN", `step="the check of table users"`, holderSaid,
		": LOCK TABLE users IN ACCESS EXCLUSIVE MODE)")
	if !strings.Contains(text, "pg_terminate_backend") {
		t.Errorf("the warning does not say what to do:\n%s", text)
	}
	cancel()
	err := result(t, c)
	if err == nil || !errors.Is(err, context.Canceled) ||
		!strings.Contains(err.Error(), "; it waited for a lock held by "+holderSaid) {
		t.Errorf("the cancelled start's error: %v; want it to name the holder, %s...", err, holderSaid)
	}
}

// TestStartGivesUpNamingHolder: a start that gives up at its deadline (the schema
// check's) names in its error the session that held the lock it waited for.
func TestStartGivesUpNamingHolder(t *testing.T) {
	shorten(t, &startWatchPeriod, 50*time.Millisecond)
	shorten(t, &schemaTimeout, 5*time.Second) // time enough for a look, on a slow machine too
	dsn := pgtest.URL(t)
	open(t, dsn).Close()
	pid, _ := pgtest.HoldLock(t, dsn, "holder-psql", `LOCK TABLE users IN ACCESS EXCLUSIVE MODE`)
	var logs syncbuf.Buffer
	s, err := OpenWith(t.Context(), dsn, Options{Logger: textLogger(&logs)})
	if err == nil {
		s.Close()
		t.Fatal("Open succeeded while users was locked")
	}
	defer func() {
		if t.Failed() {
			t.Logf("the start's log:\n%s", logs.String())
		}
	}()
	want := fmt.Sprintf("; it waited for a lock held by pid %d (holder-psql, user postgres, from 127.0.0.1, idle in transaction for ", pid)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "check table users") ||
		!strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), ": LOCK TABLE users IN ACCESS EXCLUSIVE MODE)") {
		t.Errorf("Open at its deadline: %v; want it to name the holder, %s...", err, want)
	}
}

// TestMigrationWaitSaid: a migration waiting for a lock, which it gives up each
// migrationLockTimeout to try again after a pause, is caught waiting by the watcher,
// which logs its holder, also between attempts; when the migration gives up (its
// deadline), the start's error names the holder.
func TestMigrationWaitSaid(t *testing.T) {
	shorten(t, &startWatchPeriod, 50*time.Millisecond)
	shorten(t, &migrationTimeout, 4*time.Second)
	dsn := pgtest.URL(t)
	olderDatabase(t, dsn, []string{"0001_init.sql", "0002_tokens.sql", "0003_nonces.sql", "0004_tokens_by_key.sql"})
	pid, _ := pgtest.HoldLock(t, dsn, "pg_dump", `SELECT count(*) FROM tokens`)
	var logs syncbuf.Buffer
	c := openInBackground(t.Context(), dsn, Options{Logger: textLogger(&logs)})
	holderSaid := fmt.Sprintf("pid %d (pg_dump, user postgres, from 127.0.0.1, idle in transaction for ", pid)
	waitForLog(t, &logs, `step="migration 0005_token_roots.sql"`, holderSaid, ": SELECT count(*) FROM tokens)")
	err := result(t, c)
	if err == nil || !strings.Contains(err.Error(), "another session held a lock that the migration needs") ||
		!strings.Contains(err.Error(), "; it waited for a lock held by "+holderSaid) {
		t.Errorf("the start whose migration gave up: %v; want it to name the holder, %s...", err, holderSaid)
	}
}

// TestCancelledStartLeavesItsPause: a start cancelled while its migration pauses
// between two attempts at a lock returns at once; it slept the pause out (up to 4 s,
// here two minutes).
func TestCancelledStartLeavesItsPause(t *testing.T) {
	shorten(t, &migrationLockPause, 2*time.Minute)
	dsn := pgtest.URL(t)
	olderDatabase(t, dsn, []string{"0001_init.sql", "0002_tokens.sql", "0003_nonces.sql", "0004_tokens_by_key.sql"})
	pgtest.HoldLock(t, dsn, "holder", `SELECT count(*) FROM tokens`)
	admin, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	c := openInBackground(ctx, dsn, Options{})
	// The migration waits for the lock, then gives the wait up: it is in its pause.
	waiting := func() int {
		var n int
		if err := admin.QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity
			WHERE wait_event_type = 'Lock' AND query LIKE '%ALTER TABLE tokens%'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	for deadline := time.Now().Add(time.Minute); waiting() == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the migration did not wait for the lock within a minute")
		}
	}
	for deadline := time.Now().Add(time.Minute); waiting() > 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the migration did not give up its wait within a minute")
		}
	}
	time.Sleep(100 * time.Millisecond) // past the moment between the wait and the pause
	cancel()
	if err := result(t, c); !errors.Is(err, context.Canceled) {
		t.Errorf("the cancelled start: %v, want context.Canceled", err)
	}
}

// TestStartWaitUnseenThroughPgBouncer: through PgBouncer, whose sessions are not the
// server's backends, the watcher cannot see what the start waits for: it says so once,
// and then only that the start waits.
func TestStartWaitUnseenThroughPgBouncer(t *testing.T) {
	shorten(t, &startWatchPeriod, 50*time.Millisecond)
	u, err := url.Parse(pgtest.URL(t)) // the shared server's address
	if err != nil {
		t.Fatal(err)
	}
	through, dsn := pgtest.StartBouncer(t, 4).NewURLVia(t, u.Host)
	through += "&default_query_exec_mode=exec"
	open(t, dsn).Close()
	pgtest.HoldLock(t, dsn, "holder-psql", `LOCK TABLE users IN ACCESS EXCLUSIVE MODE`)
	var logs syncbuf.Buffer
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	c := openInBackground(ctx, through, Options{Logger: textLogger(&logs)})
	for deadline := time.Now().Add(time.Minute); strings.Count(logs.String(), "what for cannot be seen") < 3; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("within a minute, not three lines saying the start waits:\n%s", logs.String())
		}
	}
	cancel()
	result(t, c)
	text := logs.String()
	if n := strings.Count(text, "unseen="); n != 1 || !strings.Contains(text, "not in pg_stat_activity") {
		t.Errorf("the reason said %d times, want once:\n%s", n, text)
	}
	if strings.Contains(text, "held_by") {
		t.Errorf("a holder named through PgBouncer:\n%s", text)
	}
}

// TestWithoutLiterals: a holder's statement is logged without the text of its string
// constants, which can hold another program's password or someone's data; its shape
// stays.
func TestWithoutLiterals(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"LOCK TABLE users IN ACCESS EXCLUSIVE MODE", "LOCK TABLE users IN ACCESS EXCLUSIVE MODE"},
		{"ALTER ROLE app PASSWORD 'hunter2'", "ALTER ROLE app PASSWORD '…'"},
		{"UPDATE users SET email = 'a@b.c' WHERE uid = $1", "UPDATE users SET email = '…' WHERE uid = $1"},
		{"SELECT 'it''s', 'x'", "SELECT '…', '…'"},
		{`SELECT E'a\'b secret', 1`, "SELECT E'…', 1"},
		{`SELECT e'\\', 'secret'`, "SELECT e'…', '…'"},
		{`SELECT 'a\', 'secret'`, "SELECT '…', '…'"},
		{`SELECT name'x\', 'secret'`, "SELECT name'…', '…'"},
		{"DO $$ BEGIN PERFORM 'x'; END $$; SELECT 1", "DO $$…$$; SELECT 1"},
		{"SELECT $fn$secret$fn$, $2", "SELECT $fn$…$fn$, $2"},
		{"ALTER ROLE app PASSWORD 'cut off by left(", "ALTER ROLE app PASSWORD '…'"},
		{"SELECT $tag$cut off", "SELECT $tag$…$tag$"},
		{"SELECT 1$", "SELECT 1$"},
	} {
		if got := withoutLiterals(tt.in); got != tt.want {
			t.Errorf("withoutLiterals(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	h := holder{pid: 7, exists: true, query: ptr("ALTER ROLE app PASSWORD 'hunter2'")}
	if s := h.String(); strings.Contains(s, "hunter2") || !strings.Contains(s, "ALTER ROLE app PASSWORD '…'") {
		t.Errorf("holder: %s", s)
	}
}

func ptr[T any](v T) *T { return &v }
