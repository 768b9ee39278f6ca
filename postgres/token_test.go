package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/socius/socius"
)

// TestTokenSweepPastTheDeadline: a sweep of dead tokens whose one statement cannot
// finish within the store's deadline (here because another transaction holds a dead
// token's row for twice the deadline; a backlog of millions takes longer the same way)
// still deletes every dead token, a part of the hashes at a time, where it was
// cancelled having deleted nothing, as it would be again every hour. Live tokens stay.
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
	// Token 1 (expired) held for twice the deadline.
	s.OpTimeout = 300 * time.Millisecond
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `SELECT 1 FROM tokens WHERE hash = encode(sha256('1'::bytea), 'hex') FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	released := time.AfterFunc(2*s.OpTimeout, func() { tx.Rollback(context.Background()) })
	defer released.Stop()
	defer tx.Rollback(context.Background())

	start := time.Now()
	n, err := s.DeleteExpiredTokens(ctx, now)
	took := time.Since(start)
	if err != nil || n != 2000 {
		t.Errorf("DeleteExpiredTokens: %d, %v; want 2000, nil", n, err)
	}
	if took < s.OpTimeout {
		t.Errorf("the sweep took %v, less than the deadline: it never waited for the held row", took)
	}
	var dead, all int
	if err := s.pool.QueryRow(ctx, `SELECT COUNT(*) FILTER (WHERE expires_at < $1 OR revoked_at < $1), COUNT(*) FROM tokens`,
		millis(now)).Scan(&dead, &all); err != nil {
		t.Fatal(err)
	}
	if dead != 0 || all != 3000 {
		t.Errorf("after the sweep: %d tokens, %d of them dead; want the 3,000 live ones", all, dead)
	}
}
