package postgres

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/socius/socius/internal/pgtest"
	"github.com/socius/socius/internal/syncbuf"
)

// TestNonceSweepReadsEachRowOnce: a sweep of a backlog of expired nonces, many
// batches long, reads each row's index entries a few times, not once more for every
// batch. Its batches used to start again from the oldest expiry, each stepping again
// over the rows the batches before it had deleted, which stay until a vacuum removes
// them (and longer while a transaction older than the sweep is open, as here): the
// work grew with the square of the backlog (60,000 rows in batches of 1,000 read
// 5,500,000 index entries). PostgreSQL counts what scans read in pg_stat_user_tables (seq_tup_read)
// and pg_stat_user_indexes (idx_tup_read); the store has one connection, whose counts
// are flushed on demand.
func TestNonceSweepReadsEachRowOnce(t *testing.T) {
	url := pgtest.URL(t)
	s := open(t, url+"&pool_max_conns=1")
	defer s.Close()
	ctx := t.Context()
	const expired = 6 * sweepBatch
	// The expired nonces, ten a millisecond, in the order of their expiry (as calls
	// insert them), and 6,000 live ones.
	if _, err := s.pool.Exec(ctx, `INSERT INTO nonces (key, expires_at)
		SELECT sha256(('e' || i)::bytea), $1::bigint - ($2::bigint - i) / 10 FROM generate_series(1, $2) AS i`,
		millis(now)-1, expired); err != nil {
		t.Fatal(err)
	}
	if _, err := s.pool.Exec(ctx, `INSERT INTO nonces (key, expires_at)
		SELECT sha256(('l' || i)::bytea), $1::bigint + i FROM generate_series(1, 6000) AS i`, millis(now)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.pool.Exec(ctx, `VACUUM ANALYZE nonces`); err != nil {
		t.Fatal(err)
	}
	// A transaction older than the sweep keeps the deleted rows, and their index
	// entries, where they are.
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	old, err := c.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead})
	if err != nil {
		t.Fatal(err)
	}
	defer old.Rollback(ctx)
	var all int
	if err := old.QueryRow(ctx, `SELECT COUNT(*) FROM nonces`).Scan(&all); err != nil || all != expired+6000 {
		t.Fatalf("%d nonces, %v; want %d", all, err, expired+6000)
	}
	// read is how many rows and index entries the store's scans of nonces have read.
	read := func() int64 {
		t.Helper()
		if _, err := s.pool.Exec(ctx, `SELECT pg_stat_force_next_flush()`); err != nil {
			t.Fatal(err)
		}
		var n int64
		if err := s.pool.QueryRow(ctx, `SELECT COALESCE(seq_tup_read, 0) +
			(SELECT COALESCE(SUM(idx_tup_read), 0) FROM pg_stat_user_indexes WHERE relid = 'nonces'::regclass)
			FROM pg_stat_user_tables WHERE relid = 'nonces'::regclass`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	start := read()
	n, err := s.DeleteExpiredNonces(ctx, now)
	if err != nil || n != expired {
		t.Fatalf("DeleteExpiredNonces: %d, %v; want %d, nil", n, err, expired)
	}
	// Each batch reads its rows' entries of nonces_by_expiry twice: to find where it
	// ends, and to delete them.
	if got := read() - start; got > 3*expired {
		t.Errorf("the sweep of %d nonces read %d rows and index entries, want at most %d", expired, got, 3*expired)
	}
	var left int
	if err := s.pool.QueryRow(ctx, `SELECT COUNT(*) FROM nonces`).Scan(&left); err != nil || left != 6000 {
		t.Errorf("%d nonces left, %v; want the 6,000 live ones", left, err)
	}
}

// TestNonceSweepOfOneExpiry: a sweep ends, having deleted them all, when more expired
// nonces than a batch share one expiry time (a batch takes every nonce of the expiry it
// ends at), and leaves the live ones.
func TestNonceSweepOfOneExpiry(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	shared := 2*sweepBatch + 500
	if _, err := s.pool.Exec(ctx, `INSERT INTO nonces (key, expires_at)
		SELECT sha256(('e' || i)::bytea), CASE WHEN i <= $2 THEN $1::bigint - 1000 WHEN i % 2 = 0 THEN $1::bigint - 1 ELSE $1::bigint END
		FROM generate_series(1, $2 + 3000) AS i`, millis(now), shared); err != nil {
		t.Fatal(err)
	}
	n, err := s.DeleteExpiredNonces(ctx, now)
	if err != nil || n != shared+1500 {
		t.Errorf("DeleteExpiredNonces: %d, %v; want %d, nil", n, err, shared+1500)
	}
	var left int
	if err := s.pool.QueryRow(ctx, `SELECT COUNT(*) FROM nonces WHERE expires_at >= $1`, millis(now)).Scan(&left); err != nil || left != 1500 {
		t.Errorf("%d live nonces left, %v; want 1,500", left, err)
	}
	if err := s.pool.QueryRow(ctx, `SELECT COUNT(*) FROM nonces`).Scan(&left); err != nil || left != 1500 {
		t.Errorf("%d nonces left, %v; want the 1,500 live ones", left, err)
	}
}

// TestNonceSweepFailuresSaid: a background sweep of expired nonces that fails (the
// role may not delete from nonces) is logged once for a streak of failures, and the
// sweep that succeeds after them once; a new streak is logged again. They were left
// for the next sweep without a word.
func TestNonceSweepFailuresSaid(t *testing.T) {
	base := pgtest.URL(t)
	open(t, base).Close() // migrated by its owner
	dml := roleURL(t, base, `GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA "%s" TO %s`)
	u, err := url.Parse(dml)
	if err != nil {
		t.Fatal(err)
	}
	role := u.User.Username()
	owner, err := pgx.Connect(t.Context(), base)
	if err != nil {
		t.Fatal(err)
	}
	defer owner.Close(context.Background())
	grant := func(sql string) {
		t.Helper()
		if _, err := owner.Exec(t.Context(), fmt.Sprintf(sql, role)); err != nil {
			t.Fatal(err)
		}
	}
	var logs syncbuf.Buffer
	s, err := OpenWith(t.Context(), dml, Options{Logger: textLogger(&logs)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	sweep := func() {
		s.sweepNonces(now)
		s.sweeps.Wait()
	}
	counts := func() (failed, recovered int) {
		text := logs.String()
		return strings.Count(text, "sweep of expired nonces failed"), strings.Count(text, "sweep of expired nonces succeeded again")
	}
	check := func(when string, failed, recovered int) {
		t.Helper()
		if f, r := counts(); f != failed || r != recovered {
			t.Errorf("%s: %d failures and %d recoveries logged, want %d and %d:\n%s", when, f, r, failed, recovered, logs.String())
		}
	}
	sweep()
	sweep()
	check("two sweeps refused", 1, 0)
	if text := logs.String(); !strings.Contains(text, "level=WARN") || !strings.Contains(text, "permission denied for table nonces") {
		t.Errorf("the failure's line:\n%s", text)
	}
	grant(`GRANT DELETE ON nonces TO %s`)
	sweep()
	check("a sweep allowed", 1, 1)
	if !strings.Contains(logs.String(), "level=INFO msg=\"postgres: the sweep of expired nonces succeeded again\" failed_before=2") {
		t.Errorf("the recovery's line:\n%s", logs.String())
	}
	sweep()
	check("another sweep allowed", 1, 1)
	grant(`REVOKE DELETE ON nonces FROM %s`)
	sweep()
	check("a sweep refused again", 2, 1)
}

// TestNonceSweepBounded: a background sweep ends, failed and logged, at its bound
// (nonceSweepTimeout) however long each batch may take: one waiting behind a lock held
// it, and every later sweep of the node, for as long as the lock was held, a batch
// at a time.
func TestNonceSweepBounded(t *testing.T) {
	shorten(t, &nonceSweepTimeout, 200*time.Millisecond)
	dsn := pgtest.URL(t)
	var logs syncbuf.Buffer
	s, err := OpenWith(t.Context(), dsn, Options{Logger: textLogger(&logs)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.OpTimeout = time.Hour
	_, tx := pgtest.HoldLock(t, dsn, "holder", `LOCK TABLE nonces IN ACCESS EXCLUSIVE MODE`)
	s.sweepNonces(now)
	waitForLog(t, &logs, "sweep of expired nonces failed", "deadline exceeded")
	if err := tx.Rollback(t.Context()); err != nil {
		t.Fatal(err)
	}
	s.sweeps.Wait()
}
