package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/socius/socius"
)

// TestTokenSweepPastTheDeadline: a sweep of dead tokens whose one statement cannot
// finish within the store's deadline (here because another transaction holds a dead
// token's row; a backlog of millions takes longer the same way) fails, and the next
// sweeps go by parts of the hashes: the parts the held row is not in are deleted while
// it is held, where every sweep failed having deleted nothing; once every part went
// through, the sweeps are one statement again. Live tokens stay.
func TestTokenSweepPastTheDeadline(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	if err := s.CreateSite(ctx, &socius.Site{APIKey: "3_site", Secret: "c2VjcmV0LTAxMjM0NTY3ODlhYmM=", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	// 5,000 tokens, their hashes spread over the hex digits as SHA-256's are: 1,000
	// expired and 1,000 revoked before now (dead), 1,000 that never expire and 2,000
	// that expire later (live).
	if _, err := s.pool.Exec(ctx, `INSERT INTO tokens (hash, kind, api_key, uid, created_at, expires_at, revoked_at)
		SELECT encode(sha256(i::text::bytea), 'hex'), 'access', '3_site', 'u' || i, $1,
			CASE WHEN i % 5 = 1 THEN $2::bigint WHEN i % 5 = 0 THEN NULL ELSE $3::bigint END,
			CASE WHEN i % 5 = 2 THEN $2::bigint END
		FROM generate_series(1, 5000) AS i`,
		millis(now.Add(-time.Hour)), millis(now.Add(-time.Minute)), millis(now.Add(time.Hour))); err != nil {
		t.Fatal(err)
	}
	count := func(where string, args ...any) int {
		t.Helper()
		var n int
		if err := s.pool.QueryRow(ctx, `SELECT COUNT(*) FROM tokens WHERE `+where, args...).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	const dead = `expires_at < $1 OR revoked_at < $1`
	// Token 1 (expired) held by another transaction.
	s.OpTimeout = 300 * time.Millisecond
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
	// The next sweep, the row still held: every part but the held row's.
	inPart := count(`(`+dead+`) AND left(hash, 1) = $2`, millis(now), held[:1])
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
	if d := s.tokenParts.Load(); d != 0 {
		t.Errorf("after a sweep by parts that went through, the next goes by %d digits, want one statement", d)
	}
	if all, left := count(`true`), count(dead, millis(now)); all != 3000 || left != 0 {
		t.Errorf("after the sweeps: %d tokens, %d of them dead; want the 3,000 live ones", all, left)
	}
}
