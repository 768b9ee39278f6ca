package postgres

import (
	"context"
	"crypto/sha256"
	"errors"
	"math"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/socius/socius"
	"github.com/socius/socius/internal/errtext"
)

// Nonce housekeeping: every sweepEvery-th UseNonce of a store starts, in the
// background, the deletion of the nonces that expired before that call's now, in
// batches of sweepBatch rows. Each call adds one row and each sweep can remove many
// batches, so the table stays near the number of nonces of one timestamp window
// however long the nodes run. Every node sweeps; the deletions are idempotent.
const (
	sweepEvery = 256
	sweepBatch = 10000
)

// nonceKey is the key of a (credential, nonce) pair: SHA-256 of both with a NUL byte
// between, so that ("a b", "c") and ("a", "b c") stay apart.
func nonceKey(credential, nonce string) []byte {
	h := sha256.New()
	h.Write([]byte(credential))
	h.Write([]byte{0})
	h.Write([]byte(nonce))
	return h.Sum(nil)
}

// nonceSyncSQL records a pair: a row comes back when the pair is inserted, or when an
// expired row is taken over (nonceConflict); a live row is left alone and nothing
// comes back.
const nonceSyncSQL = `INSERT INTO nonces (key, expires_at) VALUES ($1, $2)` + nonceConflict

const nonceConflict = `
	ON CONFLICT (key) DO UPDATE SET expires_at = excluded.expires_at WHERE nonces.expires_at < $3
	RETURNING expires_at`

// nonceAsyncSQL is nonceSyncSQL committed without waiting for the WAL flush (the
// store URL's nonce_commit=async): set_config(..., true) turns synchronous_commit off
// for the statement's own transaction only, and the statement answers as soon as
// PostgreSQL has the row in memory. A crash of the database can then lose the nonces of
// its last fraction of a second (up to three wal_writer_delay), which makes a request
// captured in that time replayable within its timestamp window; a node's in-memory
// nonces (the SQLite store) are all lost when the node restarts.
const nonceAsyncSQL = `INSERT INTO nonces (key, expires_at)
	SELECT $1::bytea, $2::bigint FROM (SELECT set_config('synchronous_commit', 'off', true)) AS async` + nonceConflict

// nonceSQL is the statement of UseNonce, as nonce_commit chose.
func (s *Store) nonceSQL() string {
	if s.asyncNonces {
		return nonceAsyncSQL
	}
	return nonceSyncSQL
}

// UseNonce records (credential, nonce) until expires and reports whether it was new: a
// pair remembered and not expired at now reports false. One statement decides, so two
// nodes given the same pair at once cannot both accept it.
func (s *Store) UseNonce(ctx context.Context, credential, nonce string, expires, now time.Time) (bool, error) {
	key := nonceKey(credential, nonce)
	var fresh bool
	err := s.write(ctx, "use nonce", func(ctx context.Context) error {
		rows, err := s.pool.Query(ctx, s.nonceSQL(), key, millis(expires), millis(now))
		if err != nil {
			return err
		}
		fresh = false
		for rows.Next() {
			fresh = true
		}
		return rows.Err()
	})
	if err != nil {
		return false, err
	}
	s.countNonce(now)
	return fresh, nil
}

// countNonce counts a recorded nonce, and starts a sweep every sweepEvery of them.
func (s *Store) countNonce(now time.Time) {
	if s.nonceCalls.Add(1)%sweepEvery == 0 {
		s.sweepNonces(now)
	}
}

// UpdateProfileNonced records the nonce as UseNonce does and, when it is fresh,
// updates the profile as UpdateProfile does, in one statement: UseNonce's INSERT and
// UpdateProfile's UPDATE are the two data-modifying parts of one WITH, and the UPDATE
// takes effect only when the INSERT returned its row. One round trip and one commit
// (with its WAL flush) instead of two. The commit waits for the flush whatever
// nonce_commit says: the profile is written. (socius.NoncedUserStore)
func (s *Store) UpdateProfileNonced(ctx context.Context, n socius.NonceUse, apiKey, uid string, patch *socius.Patch, now time.Time) (bool, error) {
	if patch.Empty() {
		// Nothing to write, but an unknown user is still an error.
		fresh, _, err := s.UserNonced(ctx, n, apiKey, uid)
		return fresh, err
	}
	var set columnList
	set.arg(nonceKey(n.Credential, n.Nonce)) // $1, $2 and $3: nonceSyncSQL's
	set.arg(millis(n.Expires))
	set.arg(millis(n.Now))
	set.addPatch(patch)
	set.add("updated_at", millis(now))
	query := `WITH n AS (` + nonceSyncSQL + `),
		u AS (UPDATE users SET ` + set.assignments() + ` WHERE api_key = ` + set.arg(apiKey) + ` AND uid = ` + set.arg([]byte(uid)) + `
			AND EXISTS (SELECT 1 FROM n) RETURNING 1)
		SELECT EXISTS (SELECT 1 FROM n), EXISTS (SELECT 1 FROM u)`
	var fresh, updated bool
	err := s.write(ctx, "update profile", func(ctx context.Context) error {
		return s.pool.QueryRow(ctx, query, set.args...).Scan(&fresh, &updated)
	})
	if err != nil {
		return false, err
	}
	s.countNonce(n.Now)
	if fresh && !updated {
		return true, socius.ErrNotFound
	}
	return fresh, nil
}

// UserNonced records the nonce as UseNonce does and reads the user as User does, in
// one round trip: the two statements sent together, which PostgreSQL runs as one
// transaction (nonce_commit=async applies to it). (socius.NoncedUserStore)
func (s *Store) UserNonced(ctx context.Context, n socius.NonceUse, apiKey, uid string) (bool, *socius.User, error) {
	key := nonceKey(n.Credential, n.Nonce)
	var fresh bool
	var u *socius.User
	err := s.write(ctx, "user", func(ctx context.Context) error {
		fresh, u = false, nil
		var b pgx.Batch
		b.Queue(s.nonceSQL(), key, millis(n.Expires), millis(n.Now))
		b.Queue(`SELECT `+userColumns+` FROM users WHERE api_key = $1 AND uid = $2`, apiKey, []byte(uid))
		results := s.pool.SendBatch(ctx, &b)
		defer results.Close() // again after the Close below: a no-op; after a panic: the connection back to the pool
		rows, err := results.Query()
		if err == nil {
			for rows.Next() {
				fresh = true
			}
			err = rows.Err()
		}
		if err == nil {
			u, err = scanUser(results.QueryRow(), apiKey)
			if errors.Is(err, pgx.ErrNoRows) {
				u, err = nil, nil
			}
		}
		if cerr := results.Close(); err == nil {
			err = cerr
		}
		return err
	})
	if err != nil {
		return false, nil, err
	}
	s.countNonce(n.Now)
	switch {
	case !fresh:
		return false, nil, nil
	case u == nil:
		return true, nil, socius.ErrNotFound
	}
	return true, u, nil
}

// sweepNonces starts deleting, in the background, the nonces expired before now,
// unless a sweep is running or the store is closing (which stops a sweep).
func (s *Store) sweepNonces(now time.Time) {
	if !s.sweeping.CompareAndSwap(false, true) {
		return
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.sweeping.Store(false)
		return
	}
	s.sweeps.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.sweeps.Done()
		defer s.sweeping.Store(false)
		// A failed sweep is left for the next one: the rows it missed stay expired.
		ctx, cancel := context.WithTimeout(s.background, nonceSweepTimeout)
		n, err := s.DeleteExpiredNonces(ctx, now)
		cancel()
		s.noteSweep(n, err)
	}()
}

// nonceSweepTimeout bounds a background sweep, all its batches (each has the store's
// OpTimeout besides): a database that answers each batch slowly held the sweep, and
// with it every later one of the node, for as long as batches were left (a variable
// for tests).
var nonceSweepTimeout = 5 * time.Minute

// noteSweep logs a background sweep's failure once for each streak of them (a database
// that keeps refusing would fill the log, one line every sweepEvery signed calls), and
// the first sweep that succeeds after a streak. A sweep stopped by Close is neither.
func (s *Store) noteSweep(deleted int, err error) {
	switch {
	case err != nil && s.background.Err() != nil:
	case err != nil:
		if s.sweepFailures.Add(1) == 1 && s.log != nil {
			s.log.Warn("postgres: the sweep of expired nonces failed; they stay until a later sweep succeeds (said once until one does)",
				"deleted", deleted, "err", errtext.Printable(err.Error()))
		}
	default:
		if failed := s.sweepFailures.Swap(0); failed > 0 && s.log != nil {
			s.log.Info("postgres: the sweep of expired nonces succeeded again", "failed_before", failed, "deleted", deleted)
		}
	}
}

// DeleteExpiredNonces removes the nonces that expired strictly before `before`, in
// batches of about sweepBatch rows, each its own statement and deadline, and reports
// how many.
//
// A batch is a range of expiry times, taken in order through nonces_by_expiry: from
// where the batch before stopped up to the expiry of the sweepBatch-th row after it.
// A batch that started again from the oldest expiry, as they did (key IN (SELECT ...
// LIMIT n)), stepped again over every row the batches before had deleted, until a
// vacuum removed them: a backlog of 3,000,000 nonces took 111 s in batches of 1,000
// so, 7 s in these (docs/postgresql.md, "Nonces"). One statement for the whole
// backlog, faster still (5.4 s), could not finish within the deadline for a larger
// one, and would then delete nothing each time it was tried.
func (s *Store) DeleteExpiredNonces(ctx context.Context, before time.Time) (int, error) {
	total, from := 0, int64(math.MinInt64)
	for {
		n, upto, err := s.deleteNonceBatch(ctx, millis(before), from)
		total += n
		if err != nil || upto >= millis(before)-1 {
			return total, err
		}
		from = upto + 1
	}
}

// nonceSweepSQL deletes the nonces that expire from $2 up to and including upto, and
// returns how many and upto: the expiry of the $3+1-th nonce from $2 on, or $1 - 1 when
// fewer expire before $1. The nonces that share upto's expiry go in the same batch, so
// each batch ends past where it began however many share one expiry. A row that a
// UseNonce took over meanwhile (its new expiry is later) is checked again by the
// DELETE at READ COMMITTED, and left alone.
const nonceSweepSQL = `WITH b AS (SELECT COALESCE((SELECT expires_at FROM nonces
		WHERE expires_at >= $2::bigint AND expires_at < $1::bigint ORDER BY expires_at OFFSET $3::bigint LIMIT 1), $1::bigint - 1) AS upto),
	d AS (DELETE FROM nonces WHERE expires_at >= $2::bigint AND expires_at <= (SELECT upto FROM b) RETURNING 1)
	SELECT (SELECT COUNT(*) FROM d), (SELECT upto FROM b)`

// deleteNonceBatch deletes the expired nonces of one batch (nonceSweepSQL), those
// expiring from `from` on, before `before` (Unix milliseconds both), and returns how
// many and the last expiry the batch covered.
func (s *Store) deleteNonceBatch(ctx context.Context, before, from int64) (deleted int, upto int64, err error) {
	err = s.write(ctx, "delete expired nonces", func(ctx context.Context) error {
		return s.pool.QueryRow(ctx, nonceSweepSQL, before, from, sweepBatch-1).Scan(&deleted, &upto)
	})
	return deleted, upto, err
}

// SharedNonceWindow records that a node accepts timestamps within window of its clock,
// and returns the longest window any node of the database has recorded: how long every
// node must remember a nonce, so that one with a longer window than the node that
// accepted a request refuses its replay (a node with a shorter window takes its own
// records for expired sooner than the other would). The value only grows: nonces then
// live longer than needed, never shorter, after a node with a long window is gone.
func (s *Store) SharedNonceWindow(ctx context.Context, window time.Duration) (time.Duration, error) {
	var ms int64
	err := s.write(ctx, "nonce window", func(ctx context.Context) error {
		return s.pool.QueryRow(ctx, `INSERT INTO settings (name, value) VALUES ('nonce_window_ms', $1)
			ON CONFLICT (name) DO UPDATE SET value = GREATEST(settings.value, excluded.value)
			RETURNING value`, window.Milliseconds()).Scan(&ms)
	})
	if err != nil {
		return 0, err
	}
	return time.Duration(ms) * time.Millisecond, nil
}
