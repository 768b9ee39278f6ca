package postgres

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/socius/socius"
)

// sweepFixture is a store with 5,000 tokens of one site, in the order of i from 1 to
// 5,000 over some hundred blocks of the table, every block with dead and live ones:
// 1,000 expired and 1,000 revoked before now (dead), 1,000 that never expire and 2,000
// that expire later (live). count counts the tokens that match a WHERE clause.
func sweepFixture(t *testing.T) (s *Store, count func(where string, args ...any) int) {
	t.Helper()
	s = newStore(t)
	ctx := t.Context()
	if err := s.CreateSite(ctx, &socius.Site{APIKey: "3_site", Secret: "c2VjcmV0LTAxMjM0NTY3ODlhYmM=", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.pool.Exec(ctx, `INSERT INTO tokens (hash, kind, api_key, uid, created_at, expires_at, revoked_at)
		SELECT encode(sha256(i::text::bytea), 'hex'), 'access', '3_site', 'u' || i, $1,
			CASE WHEN i % 5 = 1 THEN $2::bigint WHEN i % 5 = 0 THEN NULL ELSE $3::bigint END,
			CASE WHEN i % 5 = 2 THEN $2::bigint END
		FROM generate_series(1, 5000) AS i`,
		millis(now.Add(-time.Hour)), millis(now.Add(-time.Minute)), millis(now.Add(time.Hour))); err != nil {
		t.Fatal(err)
	}
	count = func(where string, args ...any) int {
		t.Helper()
		var n int
		if err := s.pool.QueryRow(ctx, `SELECT COUNT(*) FROM tokens WHERE `+where, args...).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	return s, count
}

// dead is the WHERE clause of the tokens dead at $1.
const dead = `(expires_at < $1 OR revoked_at < $1)`

// tableBlocks is how many blocks the table of tokens has.
func tableBlocks(t *testing.T, s *Store) int64 {
	t.Helper()
	var n int64
	if err := s.pool.QueryRow(t.Context(), `SELECT pg_relation_size('tokens') / current_setting('block_size')::int`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestTokenSweepPastTheDeadline: a sweep of dead tokens whose one statement cannot
// finish within the store's deadline (here because another transaction holds a dead
// token's row; a backlog of millions takes longer the same way) fails, and the next
// sweeps go by ranges of the table's blocks: the ranges the held row is not in are
// deleted while it is held, where every sweep failed having deleted nothing; once every
// range went through, the sweeps are one statement again. Live tokens stay.
func TestTokenSweepPastTheDeadline(t *testing.T) {
	s, count := sweepFixture(t)
	ctx := t.Context()
	// Token 1 (expired) held by another transaction. The deadline of every statement,
	// the parts' that must go through too: a second, room for a loaded machine.
	s.OpTimeout = time.Second
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background())
	var held string
	if err := tx.QueryRow(ctx, `SELECT hash FROM tokens WHERE hash = encode(sha256('1'::bytea), 'hex') FOR UPDATE`).Scan(&held); err != nil {
		t.Fatal(err)
	}
	if n, err := s.DeleteExpiredTokens(ctx, now); err == nil || n != 0 {
		t.Fatalf("the sweep of one statement past the deadline: %d, %v; want 0 and an error", n, err)
	}
	if left := count(dead, millis(now)); left != 2000 {
		t.Fatalf("%d dead tokens after a sweep that failed, want the 2000", left)
	}
	// The next sweep, the row still held: every part but the held row's, the first
	// sixteenth of the blocks (token 1 is in the first block).
	firstPart := pgtype.TID{BlockNumber: uint32((tableBlocks(t, s) + 15) / 16), Valid: true}
	if count(`hash = $1 AND ctid < $2::tid`, held, firstPart) != 1 {
		t.Fatal("the held token is not in the first sixteenth of the blocks")
	}
	inPart := count(dead+` AND ctid < $2::tid`, millis(now), firstPart)
	if inPart == 0 || inPart > 2000/8 {
		t.Fatalf("%d dead tokens in the first sixteenth of the blocks, want a sixteenth of the 2000 or so", inPart)
	}
	n, err := s.DeleteExpiredTokens(ctx, now)
	if err == nil || n != 2000-inPart {
		t.Errorf("the sweep by parts with a row held: %d, %v; want %d and the held part's error", n, err, 2000-inPart)
	}
	if left := count(dead, millis(now)); left != inPart {
		t.Errorf("%d dead tokens after the sweep by parts, want the %d of the held row's part", left, inPart)
	}
	// Released: the next sweep (by smaller parts) deletes the rest, and the one after
	// it is one statement again.
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if n, err := s.DeleteExpiredTokens(ctx, now); err != nil || n != inPart {
		t.Errorf("the sweep after the row's release: %d, %v; want %d, nil", n, err, inPart)
	}
	if next := s.tokenSweep.load(); next.byRanges {
		t.Errorf("after a sweep by ranges that went through, the next is %+v, want one statement", next)
	}
	if all, left := count(`true`), count(dead, millis(now)); all != 3000 || left != 0 {
		t.Errorf("after the sweeps: %d tokens, %d of them dead; want the 3,000 live ones", all, left)
	}
}

// blockTID is the first row's place in a block: the start of a range of blocks.
func blockTID(block int64) pgtype.TID {
	return pgtype.TID{BlockNumber: uint32(block), Valid: true}
}

// holdToken holds, in a transaction of its own, the row of the first token dead at
// `at` in or after the block, so that a sweep's statement over it waits; the rollback
// releases it.
func holdToken(t *testing.T, s *Store, at time.Time, block int64) pgx.Tx {
	t.Helper()
	tx, err := s.pool.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tx.Rollback(context.Background()) })
	var hash string
	if err := tx.QueryRow(t.Context(), `SELECT hash FROM tokens WHERE `+dead+` AND ctid >= $2::tid ORDER BY ctid LIMIT 1 FOR UPDATE`,
		millis(at), blockTID(block)).Scan(&hash); err != nil {
		t.Fatal(err)
	}
	return tx
}

// waitForHeldSweep returns once a sweep's statement waits for a row lock.
func waitForHeldSweep(t *testing.T, s *Store) {
	t.Helper()
	waitForSweepStatements(t, s, `wait_event_type = 'Lock'`, true, "no sweep waited for the held row within 10 s")
}

// waitForSweepGone returns once no statement of a sweep runs: one whose caller
// stopped waiting runs until the cancel request reaches the server.
func waitForSweepGone(t *testing.T, s *Store) {
	t.Helper()
	waitForSweepStatements(t, s, `state = 'active'`, false, "a statement of a stopped sweep still ran after 10 s")
}

// waitForSweepStatements waits up to 10 s until some statement of a sweep matches
// where in pg_stat_activity (or, with some false, none does), else fails with failure.
func waitForSweepStatements(t *testing.T, s *Store, where string, some bool, failure string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		var n int
		if err := s.pool.QueryRow(t.Context(), `SELECT COUNT(*) FROM pg_stat_activity
			WHERE datname = current_database() AND `+where+` AND query LIKE 'DELETE FROM tokens%'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 == some {
			return
		}
	}
	t.Fatal(failure)
}

// sweepResult is what a DeleteExpiredTokens run in a goroutine reported.
type sweepResult struct {
	n   int
	err error
}

// sweepInBackground runs DeleteExpiredTokens in a goroutine; its result comes on the
// channel.
func sweepInBackground(ctx context.Context, s *Store, before time.Time) <-chan sweepResult {
	done := make(chan sweepResult, 1)
	go func() {
		n, err := s.DeleteExpiredTokens(ctx, before)
		done <- sweepResult{n, err}
	}()
	return done
}

// TestTokenSweepByBlockRanges: a sweep by ranges of the table's blocks deletes every
// dead token, those of the first and the last block included, and no live one, also
// of those stored while it runs; a dead token stored meanwhile is the next sweep's, if
// this one did not reach it.
func TestTokenSweepByBlockRanges(t *testing.T) {
	s, count := sweepFixture(t)
	ctx := t.Context()
	size := tableBlocks(t, s)
	if size < 32 {
		t.Fatalf("the tokens take %d blocks, want enough for many parts", size)
	}
	for _, block := range []int64{0, size - 1} {
		if n := count(dead+` AND ctid >= $2::tid AND ctid < $3::tid`, millis(now), blockTID(block), blockTID(block+1)); n == 0 {
			t.Fatalf("no dead token in block %d of %d", block, size)
		}
	}
	s.tokenSweep.store(sweepState{byRanges: true, blocks: 2})
	// A dead token of the middle block held, so that the sweep waits there while
	// tokens are stored.
	held := holdToken(t, s, now, size/2)
	done := sweepInBackground(ctx, s, now)
	waitForHeldSweep(t, s)
	if _, err := s.pool.Exec(ctx, `INSERT INTO tokens (hash, kind, api_key, uid, created_at, expires_at)
		SELECT encode(sha256(('meanwhile ' || i)::bytea), 'hex'), 'access', '3_site', 'u' || i, $1,
			CASE WHEN i = 0 THEN $1::bigint ELSE $2::bigint END
		FROM generate_series(0, 300) AS i`, millis(now.Add(-time.Hour)), millis(now.Add(time.Hour))); err != nil {
		t.Fatal(err)
	}
	if err := held.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	r := <-done
	left := count(dead, millis(now))
	if r.err != nil || left > 1 || r.n+left != 2001 {
		t.Errorf("the sweep by ranges: %d, %v, and %d dead left; want the 2,000 and the one stored meanwhile, deleted or left, nil", r.n, r.err, left)
	}
	if live := count(`NOT COALESCE(`+dead+`, false)`, millis(now)); live != 3300 {
		t.Errorf("%d live tokens after the sweep, want the 3,000 and the 300 stored meanwhile", live)
	}
	if next := s.tokenSweep.load(); next.byRanges {
		t.Errorf("after a sweep by ranges that went through, the next is %+v, want one statement", next)
	}
	if n, err := s.DeleteExpiredTokens(ctx, now); err != nil || n != left {
		t.Errorf("the next sweep: %d, %v; want the %d left, nil", n, err, left)
	}
	if all, left := count(`true`), count(dead, millis(now)); all != 3300 || left != 0 {
		t.Errorf("after the sweeps: %d tokens, %d of them dead; want the 3,300 live ones", all, left)
	}
}

// TestTokenSweepResumes: a sweep by ranges that stops with ranges left (here its
// caller ends it; the budget of deadlines the same way) resumes where it stopped, goes
// to the end of the table and round to its start, rather than starting over.
func TestTokenSweepResumes(t *testing.T) {
	s, count := sweepFixture(t)
	size := tableBlocks(t, s)
	// The tokens dead at a time, in the blocks from one up to another.
	deadIn := func(at time.Time, from, to int64) int {
		t.Helper()
		return count(dead+` AND ctid >= $2::tid AND ctid < $3::tid`, millis(at), blockTID(from), blockTID(to))
	}
	s.tokenSweep.store(sweepState{byRanges: true})
	stopped := func(before time.Time) (sweepResult, sweepState) {
		t.Helper()
		ctx, stop := context.WithCancel(t.Context())
		defer stop()
		done := sweepInBackground(ctx, s, before)
		waitForHeldSweep(t, s)
		stop()
		r := <-done
		waitForSweepGone(t, s)
		return r, s.tokenSweep.load()
	}

	// Stopped while a part in the middle of the table waits for a row.
	held := holdToken(t, s, now, size/2)
	r, next := stopped(now)
	if r.err == nil || !next.byRanges || next.from == 0 || next.from > size/2 {
		t.Fatalf("the sweep stopped in the middle: %d, %v, the next %+v; want an error and the next from the held part", r.n, r.err, next)
	}
	resume := next.from
	if before, after := deadIn(now, 0, resume), deadIn(now, resume, size); before != 0 || r.n+after != 2000 {
		t.Fatalf("after the sweep that stopped at block %d: %d deleted, %d dead before it, %d from it; want all before it deleted, none after", resume, r.n, before, after)
	}
	if err := held.Rollback(t.Context()); err != nil {
		t.Fatal(err)
	}

	// The next, two hours later (the 2,000 that expire in an hour dead too), stopped
	// at the table's first block, where one of those is held: it went from where the
	// last one stopped to the end first, and nothing before it.
	later := now.Add(2 * time.Hour)
	ahead, behind := deadIn(later, resume, size), deadIn(later, 0, resume)
	held = holdToken(t, s, later, 0)
	r, next = stopped(later)
	if r.err == nil || r.n != ahead || deadIn(later, resume, size) != 0 || deadIn(later, 0, resume) != behind || next.from != 0 {
		t.Errorf("the sweep resumed at block %d, stopped at the first: %d, %v, %d dead left from there, %d before it, the next %+v; want the %d from there deleted, the %d before it left and the next from block 0",
			resume, r.n, r.err, deadIn(later, resume, size), deadIn(later, 0, resume), next, ahead, behind)
	}
	if err := held.Rollback(t.Context()); err != nil {
		t.Fatal(err)
	}

	// Released: the next sweep deletes the rest, and the one after is one statement.
	if n, err := s.DeleteExpiredTokens(t.Context(), later); err != nil || n != behind {
		t.Errorf("the last sweep: %d, %v; want the %d left, nil", n, err, behind)
	}
	if next := s.tokenSweep.load(); next.byRanges {
		t.Errorf("after a sweep by ranges that went through, the next is %+v, want one statement", next)
	}
	if all, left := count(`true`), count(dead, millis(later)); all != 1000 || left != 0 {
		t.Errorf("after the sweeps: %d tokens, %d of them dead; want the 1,000 that never expire", all, left)
	}
}

// TestTokenSweepPartPlan: PostgreSQL reads a part of a sweep by ranges through a TID
// Range Scan, its blocks only, as a custom plan and as the generic plan of a prepared
// statement.
func TestTokenSweepPartPlan(t *testing.T) {
	s, _ := sweepFixture(t)
	ctx := t.Context()
	if _, err := s.pool.Exec(ctx, `ANALYZE tokens`); err != nil {
		t.Fatal(err)
	}
	size := tableBlocks(t, s)
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	rows, err := conn.Query(ctx, `EXPLAIN `+deadTokensInBlocks, millis(now), blockTID(size/4), blockTID(size/2))
	if err != nil {
		t.Fatal(err)
	}
	if plan := planLines(t, rows); !strings.Contains(plan, "Tid Range Scan") {
		t.Errorf("the plan of a part:\n%s\nwant a Tid Range Scan", plan)
	}
	for _, q := range []string{`SET plan_cache_mode = force_generic_plan`, `PREPARE part(bigint, tid, tid) AS ` + deadTokensInBlocks} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	rows, err = conn.Query(ctx, fmt.Sprintf(`EXPLAIN EXECUTE part(%d, '(%d,0)', '(%d,0)')`, millis(now), size/4, size/2))
	if err != nil {
		t.Fatal(err)
	}
	if plan := planLines(t, rows); !strings.Contains(plan, "Tid Range Scan") {
		t.Errorf("the generic plan of a part:\n%s\nwant a Tid Range Scan", plan)
	}
	for _, q := range []string{`DEALLOCATE part`, `RESET plan_cache_mode`} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
}

// TestTokenSweepPartsRefused: parts that fail otherwise than by their deadline (here a
// trigger refuses every delete; on a database without ctid every part fails so) leave
// the next sweep to one statement, not to ranges again every hour.
func TestTokenSweepPartsRefused(t *testing.T) {
	s, count := sweepFixture(t)
	ctx := t.Context()
	for _, q := range []string{
		`CREATE FUNCTION refuse_delete() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'deletes refused'; END $$`,
		`CREATE TRIGGER refuse_delete BEFORE DELETE ON tokens FOR EACH ROW EXECUTE FUNCTION refuse_delete()`,
	} {
		if _, err := s.pool.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	s.tokenSweep.store(sweepState{byRanges: true, blocks: 8})
	n, err := s.DeleteExpiredTokens(ctx, now)
	if err == nil || !strings.Contains(err.Error(), "deletes refused") || n != 0 {
		t.Fatalf("a sweep whose parts are refused: %d, %v; want 0 and the refusal", n, err)
	}
	if next := s.tokenSweep.load(); next.byRanges {
		t.Errorf("after a pass whose parts were refused, not late, the next is %+v; want one statement", next)
	}
	if _, err := s.pool.Exec(ctx, `DROP TRIGGER refuse_delete ON tokens`); err != nil {
		t.Fatal(err)
	}
	if n, err := s.DeleteExpiredTokens(ctx, now); err != nil || n != 2000 || count(dead, millis(now)) != 0 {
		t.Errorf("the next sweep, one statement: %d, %v; want the 2,000 dead deleted", n, err)
	}
}
