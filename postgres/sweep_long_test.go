package postgres

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/socius/socius"
	"github.com/socius/socius/internal/pgtest"
)

// TestTokenSweepOfABacklog measures the housekeeping sweep of dead tokens over a
// backlog of millions (SOCIUS_LONG_TOKENS, 3,000,000 by default) on a server of its
// own with PostgreSQL's durability defaults (fsync, synchronous_commit and
// full_page_writes on, as the other tests' servers have them off). It loads the
// backlog through the store's schema, runs DeleteExpiredTokens with the store's real
// deadlines as the housekeeping would, sweep after sweep until one finds nothing, and
// meanwhile makes the store reads and writes of a signed call every 100 ms, logging
// their latency, the time and outcome of every sweep, and the plans PostgreSQL picks.
// It measures rather than checks, so it runs only with SOCIUS_LONG=1: loading the
// backlog takes minutes.
func TestTokenSweepOfABacklog(t *testing.T) {
	if os.Getenv("SOCIUS_LONG") != "1" {
		t.Skip("a measurement of minutes: SOCIUS_LONG=1 runs it")
	}
	total := 3_000_000
	if v := os.Getenv("SOCIUS_LONG_TOKENS"); v != "" {
		var err error
		if total, err = strconv.Atoi(v); err != nil {
			t.Fatalf("SOCIUS_LONG_TOKENS=%q: %v", v, err)
		}
	}
	srv := pgtest.StartWith(t, pgtest.Setup{Settings: []string{
		"fsync=on", "synchronous_commit=on", "full_page_writes=on",
		// Every part's statement, with its duration, in the server's log.
		"log_min_duration_statement=0", "log_statement=none",
	}})
	s := open(t, srv.NewURL(t))
	t.Cleanup(func() { s.Close() })
	ctx := t.Context()
	now := time.Now()
	before := now.Add(-7 * 24 * time.Hour) // the housekeeping's tokenRetention
	if err := s.CreateSite(ctx, &socius.Site{APIKey: "3_site", Secret: "c2VjcmV0LTAxMjM0NTY3ODlhYmM=", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}

	// The backlog: hashes shaped as the store's (lower-case hex SHA-256); of every 20
	// tokens, 9 expired and 9 revoked between 8 and 15 days ago (dead), one that never
	// expires and one that expires tomorrow (live). 200,000 users, a few tokens each.
	// The secondary indexes are dropped for the load and made again after it, with
	// their definitions as the migrations made them: minutes faster than keeping them
	// up to date row by row.
	var indexes []string
	rows, err := s.pool.Query(ctx, `SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema() AND tablename = 'tokens' AND indexname <> 'tokens_pkey'`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var def string
		if err := rows.Scan(&def); err != nil {
			t.Fatal(err)
		}
		indexes = append(indexes, def)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for _, def := range indexes {
		name := strings.Fields(strings.TrimPrefix(def, "CREATE INDEX "))[0]
		if _, err := s.pool.Exec(ctx, `DROP INDEX `+name); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	const chunk = 500_000
	for from := 1; from <= total; from += chunk {
		to := min(from+chunk-1, total)
		if _, err := s.pool.Exec(ctx, `INSERT INTO tokens (hash, kind, api_key, uid, created_at, expires_at, revoked_at)
			SELECT encode(sha256(('backlog ' || i)::bytea), 'hex'), 'access', '3_site', 'u' || (i % 200000),
				$1::bigint - (i % 604800) * 1000,
				CASE WHEN i % 20 < 9 THEN $1::bigint - (i % 604800) * 1000
					WHEN i % 20 = 18 THEN NULL ELSE $2::bigint END,
				CASE WHEN i % 20 BETWEEN 9 AND 17 THEN $1::bigint - (i % 604800) * 1000 END
			FROM generate_series($3::int, $4::int) AS i`,
			millis(now.Add(-8*24*time.Hour)), millis(now.Add(24*time.Hour)), from, to); err != nil {
			t.Fatal(err)
		}
		t.Logf("loaded %d tokens in %v", to, time.Since(start).Round(time.Second))
	}
	for _, def := range indexes {
		if _, err := s.pool.Exec(ctx, def); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("loaded with the indexes %v: %s", time.Since(start).Round(time.Second), strings.Join(indexes, "; "))
	// What autovacuum would have done for a backlog that grew over hours.
	vacuumStart := time.Now()
	if _, err := s.pool.Exec(ctx, `VACUUM ANALYZE tokens`); err != nil {
		t.Fatal(err)
	}
	t.Logf("VACUUM ANALYZE: %v", time.Since(vacuumStart).Round(time.Millisecond))
	var dead, size int64
	if err := s.pool.QueryRow(ctx, `SELECT COUNT(*) FILTER (WHERE expires_at < $1 OR revoked_at < $1), pg_total_relation_size('tokens') FROM tokens`,
		millis(before)).Scan(&dead, &size); err != nil {
		t.Fatal(err)
	}
	t.Logf("backlog: %d tokens, %d dead; the table with its indexes %d MB", total, dead, size>>20)

	// The plans, for the whole statement and for a part of a 16th and a 256th of the blocks,
	// as a custom plan (the values known) and as the generic plan a prepared statement
	// may switch to after five runs.
	explain := func(name, q string, args ...any) {
		t.Helper()
		rows, err := s.pool.Query(ctx, "EXPLAIN "+q, args...)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("plan, %s:\n%s", name, planLines(t, rows))
	}
	var blocks uint32
	if err := s.pool.QueryRow(ctx, `SELECT pg_relation_size('tokens') / current_setting('block_size')::int`).Scan(&blocks); err != nil {
		t.Fatal(err)
	}
	t.Logf("the table: %d blocks", blocks)
	tid := func(block uint32) pgtype.TID { return pgtype.TID{BlockNumber: block, Valid: true} }
	explain("one statement", deadTokens, millis(before))
	for _, parts := range []uint32{16, 256} {
		explain(fmt.Sprintf("a %dth of the blocks", parts), deadTokensInBlocks, millis(before), tid(blocks/2), tid(blocks/2+blocks/parts))
	}
	func() {
		conn, err := s.pool.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Release()
		for _, q := range []string{
			`SET plan_cache_mode = force_generic_plan`,
			`PREPARE part(bigint, tid, tid) AS ` + deadTokensInBlocks,
		} {
			if _, err := conn.Exec(ctx, q); err != nil {
				t.Fatal(err)
			}
		}
		rows, err := conn.Query(ctx, fmt.Sprintf(`EXPLAIN EXECUTE part(%d, '(%d,0)', '(%d,0)')`, millis(before), blocks/2, blocks/2+blocks/16))
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("plan, a 16th of the blocks, generic:\n%s", planLines(t, rows))
		for _, q := range []string{`DEALLOCATE part`, `RESET plan_cache_mode`} {
			if _, err := conn.Exec(ctx, q); err != nil {
				t.Fatal(err)
			}
		}
	}()

	// A signed call's store work meanwhile: the site, the nonce with the user (a signed
	// getUserInfo), a token read and a token stored, every 100 ms.
	if _, err := s.Login(ctx, "3_site", "caller", nil, now); err != nil {
		t.Fatal(err)
	}
	var live string
	if err := s.pool.QueryRow(ctx, `SELECT hash FROM tokens WHERE expires_at IS NULL LIMIT 1`).Scan(&live); err != nil {
		t.Fatal(err)
	}
	type sample struct {
		at      time.Duration
		latency time.Duration
		err     error
	}
	var mu sync.Mutex
	var samples []sample
	callsCtx, stopCalls := context.WithCancel(ctx)
	var calls sync.WaitGroup
	calls.Add(1)
	sweepStart := time.Now()
	go func() {
		defer calls.Done()
		for i := 0; callsCtx.Err() == nil; i++ {
			began := time.Now()
			err := func() error {
				if _, err := s.Site(callsCtx, "3_site"); err != nil {
					return err
				}
				n := socius.NonceUse{Credential: "3_site", Nonce: fmt.Sprintf("n%d", i), Expires: began.Add(time.Minute), Now: began}
				if _, _, err := s.UserNonced(callsCtx, n, "3_site", "caller"); err != nil {
					return err
				}
				if _, err := s.Token(callsCtx, live); err != nil {
					return err
				}
				exp := began.Add(time.Hour)
				return s.CreateToken(callsCtx, &socius.Token{Hash: fmt.Sprintf("%064x", i+1), Kind: socius.AccessToken, APIKey: "3_site", UID: "caller", CreatedAt: began, ExpiresAt: exp})
			}()
			if err != nil && callsCtx.Err() != nil {
				return // ended by the test, not failed
			}
			mu.Lock()
			samples = append(samples, sample{began.Sub(sweepStart), time.Since(began), err})
			mu.Unlock()
			select {
			case <-callsCtx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	report := func(name string, from, to time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		var lat []time.Duration
		failed := 0
		for _, x := range samples {
			if x.at >= from && x.at < to {
				lat = append(lat, x.latency)
				if x.err != nil {
					failed++
				}
			}
		}
		if len(lat) == 0 {
			return
		}
		slices.Sort(lat)
		q := func(p float64) time.Duration { return lat[int(p*float64(len(lat)-1))].Round(100 * time.Microsecond) }
		t.Logf("  signed calls during %s: %d, %d failed; median %v, p90 %v, p99 %v, max %v",
			name, len(lat), failed, q(0.5), q(0.9), q(0.99), lat[len(lat)-1].Round(100*time.Microsecond))
	}
	// A quiet second first, for the calls' latency without a sweep.
	time.Sleep(3 * time.Second)
	report("no sweep", 0, 3*time.Second)

	// SOCIUS_LONG_RANGES=1 starts with a sweep by ranges of blocks, as after a sweep
	// that failed, for a backlog whose one statement fits.
	if os.Getenv("SOCIUS_LONG_RANGES") == "1" {
		s.tokenSweep.store(sweepState{byRanges: true})
	}
	// The sweeps, back to back (the housekeeping runs them an hour apart), until one
	// deletes nothing and the next would be one statement.
	for i := 1; i <= 10; i++ {
		was := s.tokenSweep.load()
		from := time.Since(sweepStart)
		n, err := s.DeleteExpiredTokens(ctx, before)
		to := time.Since(sweepStart)
		next := s.tokenSweep.load()
		t.Logf("sweep %d (%+v): deleted %d in %v, err %v; the next %+v",
			i, was, n, (to - from).Round(time.Millisecond), err, next)
		report(fmt.Sprintf("sweep %d", i), from, to)
		if err == nil && n == 0 && !next.byRanges {
			break
		}
	}
	stopCalls()
	calls.Wait()
	t.Logf("the sweeps in all: %v", time.Since(sweepStart).Round(time.Millisecond))
	// What the sweeps must have done whatever their times: every dead token gone, the
	// live ones (a tenth of the backlog, and the calls' own) kept, no call failed.
	var left int
	if err := s.pool.QueryRow(ctx, `SELECT COUNT(*) FROM tokens WHERE expires_at < $1 OR revoked_at < $1`, millis(before)).Scan(&left); err != nil {
		t.Fatal(err)
	}
	if left != 0 {
		t.Errorf("%d dead tokens left after the sweeps, want none", left)
	}
	var all int
	if err := s.pool.QueryRow(ctx, `SELECT COUNT(*) FROM tokens`).Scan(&all); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if want := int(int64(total)-dead) + len(samples); all != want {
		t.Errorf("%d tokens after the sweeps, want the %d live ones and the %d the calls stored", all, int64(total)-dead, len(samples))
	}
	for _, x := range samples {
		if x.err != nil {
			t.Errorf("a signed call at %v of the sweeps failed: %v", x.at.Round(time.Millisecond), x.err)
		}
	}
	mu.Unlock()

	// The parts' durations, from the server's log.
	var dataDir string
	if err := s.pool.QueryRow(ctx, `SHOW data_directory`).Scan(&dataDir); err != nil {
		t.Fatal(err)
	}
	logText, err := os.ReadFile(filepath.Join(filepath.Dir(dataDir), "postgres.log"))
	if err != nil {
		t.Fatal(err)
	}
	var parts []float64
	for line := range strings.Lines(string(logText)) {
		if !strings.Contains(line, " execute ") || strings.Contains(line, "EXPLAIN") || !strings.Contains(line, "DELETE FROM tokens WHERE (expires_at") || !strings.Contains(line, "ctid >= $2") {
			continue
		}
		_, rest, ok := strings.Cut(line, "duration: ")
		if !ok {
			continue
		}
		ms, err := strconv.ParseFloat(strings.Fields(rest)[0], 64)
		if err == nil {
			parts = append(parts, ms)
		}
	}
	if len(parts) > 0 {
		sorted := slices.Clone(parts)
		slices.Sort(sorted)
		var sum float64
		for _, ms := range parts {
			sum += ms
		}
		t.Logf("parts that completed: %d; ms each: min %.0f, median %.0f, max %.0f, sum %.0f",
			len(parts), sorted[0], sorted[len(sorted)/2], sorted[len(sorted)-1], sum)
		if len(parts) <= 64 {
			t.Logf("the parts in order, ms: %v", parts)
		}
	}
	for line := range strings.Lines(string(logText)) {
		if strings.Contains(line, "canceling statement") || strings.Contains(line, "ERROR") {
			t.Logf("server log: %s", strings.TrimSpace(line))
		}
	}
}

// planLines reads the lines of an EXPLAIN, one a row, into one text.
func planLines(t *testing.T, rows pgx.Rows) string {
	t.Helper()
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, line)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return strings.Join(plan, "\n")
}
