package postgres

import (
	"context"
	"crypto/sha256"
	"time"
)

// Nonce housekeeping: every sweepEvery-th UseNonce of a store starts, in the
// background, the deletion of the nonces that expired before that call's now, in
// batches of sweepBatch rows. Each call adds one row and each sweep can remove many
// batches, so the table stays near the number of nonces of one timestamp window
// however long the nodes run. Every node sweeps; the deletions are idempotent.
const (
	sweepEvery = 256
	sweepBatch = 1000
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
	if s.nonceCalls.Add(1)%sweepEvery == 0 {
		s.sweepNonces(now)
	}
	return fresh, nil
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
		s.DeleteExpiredNonces(s.background, now)
	}()
}

// DeleteExpiredNonces removes the nonces that expired strictly before `before`, in
// batches so that no statement holds many rows at once, and reports how many.
func (s *Store) DeleteExpiredNonces(ctx context.Context, before time.Time) (int, error) {
	total := 0
	for {
		var n int
		err := s.write(ctx, "delete expired nonces", func(ctx context.Context) error {
			// The outer condition is checked again on a row that a UseNonce took over
			// meanwhile (its new expiry is later), so that the sweep leaves it alone.
			tag, err := s.pool.Exec(ctx, `DELETE FROM nonces WHERE expires_at < $1 AND key IN
				(SELECT key FROM nonces WHERE expires_at < $1 LIMIT $2)`, millis(before), sweepBatch)
			n = int(tag.RowsAffected())
			return err
		})
		total += n
		if err != nil || n < sweepBatch {
			return total, err
		}
	}
}
