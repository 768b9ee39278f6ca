package postgres

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/socius/socius"
)

// CreateToken stores a token: socius.ErrExists if its hash is taken, socius.ErrNotFound
// if the site does not exist, socius.ErrKeyGone if its userKey names no key of the
// site (keyHeld). The UID is not checked against the users: a token may be
// granted for a user that has not logged in yet.
//
// The token goes in after an UPDATE that changes nothing of its user's row: a new
// version of the row, under its lock. What ends a user's tokens (Logout, DeleteUser,
// RenameUser) changes the user's row first and the tokens after; its tokens statement
// sees only the tokens committed before it (before its statement at READ COMMITTED,
// before its first statement at REPEATABLE READ), so a token inserted meanwhile would
// outlive it. Written so, the two are ordered: a token that goes in first makes the
// revoker wait for it, and then, at READ COMMITTED, see it, or at REPEATABLE READ or
// SERIALIZABLE (snapshot isolation: YugabyteDB's default, CockroachDB's only level)
// fail with 40001, which write runs again on a fresh snapshot; one that waits for the
// revoker goes in after it has committed, and outlives it: so the server stores a
// user's token with the user's login, in one transaction (LoginWithToken), whose
// UPDATE or INSERT of the user orders it with the revoker. (A share lock was
// enough at READ COMMITTED only: a lock is no new version, and a snapshot taken before
// the wait never saw the token.) DeleteKey orders itself with tokens in another way,
// so that tokens issued with one key do not wait for each other: see there.
func (s *Store) CreateToken(ctx context.Context, t *socius.Token) error {
	return s.tx(ctx, "create token", func(ctx context.Context, tx pgx.Tx) error {
		if err := keyHeld(ctx, tx, t); err != nil {
			return err
		}
		if t.UID != "" {
			if _, err := tx.Exec(ctx, `UPDATE users SET logged_in = logged_in WHERE api_key = $1 AND uid = $2`, t.APIKey, []byte(t.UID)); err != nil {
				return err
			}
		}
		if err := rootLives(ctx, tx, t); err != nil {
			return err
		}
		return insertToken(ctx, tx, t)
	})
}

// keyHeld returns socius.ErrKeyGone when t was obtained with a userKey that names no
// key of t's site, and otherwise holds a share lock on the key's row until the
// transaction ends. So a DeleteKey ends before the token's check (then the check finds
// no key; at REPEATABLE READ or SERIALIZABLE, if it committed after the snapshot, the
// lock fails with 40001 and write runs the transaction again, to find no key), or its
// DELETE of the key waits for the token's commit, and its tokens statement, at READ
// COMMITTED, sees the token (see DeleteKey). The lock (KEY SHARE, as
// foreign keys take) lets tokens of one key go in side by side, and, on PostgreSQL, a
// change of the key's secret or methods too.
func keyHeld(ctx context.Context, tx pgx.Tx, t *socius.Token) error {
	if t.UserKey == "" {
		return nil
	}
	if !storable(t.UserKey) {
		return socius.ErrKeyGone
	}
	var site string
	err := tx.QueryRow(ctx, `SELECT api_key FROM keys WHERE user_key = $1 FOR KEY SHARE`, t.UserKey).Scan(&site)
	if errors.Is(err, pgx.ErrNoRows) || err == nil && site != t.APIKey {
		return socius.ErrKeyGone
	}
	return err
}

// rootLives returns socius.ErrRootGone when t was minted from a token whose root is
// revoked or no longer stored, and otherwise holds a share lock on the root's row
// until the transaction ends. So a RevokeToken of the root commits before the check
// (then the check sees it revoked; at REPEATABLE READ or SERIALIZABLE, if it committed
// after the snapshot, the lock fails with 40001 and write runs the transaction again),
// or its UPDATE of the root waits for the token's commit, and its statements for the
// minted tokens, at READ COMMITTED, see the token (see RevokeToken). Taken after the
// user's row (as Logout takes the user's row, then the tokens), so that a login with a
// token and a logout do not wait for each other crosswise.
//
// The token the call authenticated with (t.MintedWith, when it is not the root) is
// checked and locked the same way, so that a logout of its user, or its revocation,
// comes before the new token (refused) or after it (which then revokes it too).
func rootLives(ctx context.Context, tx pgx.Tx, t *socius.Token) error {
	return tokensLive(ctx, tx, "", t.Root, t.MintedWith)
}

// tokensLive is socius.ErrRootGone unless every token named by its hash ("" names
// none) is stored and not revoked, and, when uid is not "", socius.ErrTokenMoved if
// one of them is bound to a user other than uid (a login's: its user renamed since);
// each row read is held (FOR SHARE) until the transaction ends, so that a revocation
// or a rename waits for it.
func tokensLive(ctx context.Context, tx pgx.Tx, uid string, hashes ...string) error {
	for _, hash := range hashes {
		if hash == "" {
			continue
		}
		var revoked *int64
		var boundTo *string
		err := tx.QueryRow(ctx, `SELECT revoked_at, uid FROM tokens WHERE hash = $1 FOR SHARE`, hash).Scan(&revoked, &boundTo)
		if errors.Is(err, pgx.ErrNoRows) || err == nil && revoked != nil {
			return socius.ErrRootGone
		}
		if err != nil {
			return err
		}
		if uid != "" && boundTo != nil && *boundTo != uid {
			return socius.ErrTokenMoved
		}
	}
	return nil
}

// tokensLiveRootsFirst is tokensLive for tokens named in any order (LoginWhile's: the
// server names the call's token before the one at the top of its chain): their rows
// are held roots first (a root's own root is NULL), the order in which RevokeToken
// takes a root and then the tokens minted from it. Held in the order named, a minted
// token's row was held while the check waited for its root's, which a revocation held
// while it waited for the minted token's: a deadlock, which PostgreSQL broke after
// deadlock_timeout (a second by default) by failing one of them. As tokensLive, a
// token bound to a user other than uid (when not "") is socius.ErrTokenMoved.
func tokensLiveRootsFirst(ctx context.Context, tx pgx.Tx, uid string, hashes ...string) error {
	var named []string
	for _, hash := range hashes {
		if hash != "" && !slices.Contains(named, hash) {
			named = append(named, hash)
		}
	}
	if len(named) == 0 {
		return nil
	}
	// The rows are locked as the sort gives them (FOR SHARE locks after ORDER BY).
	rows, err := tx.Query(ctx, `SELECT revoked_at, uid FROM tokens WHERE hash = ANY($1) ORDER BY root IS NOT NULL, hash FOR SHARE`, named)
	if err != nil {
		return err
	}
	type state struct {
		revoked *int64
		uid     *string
	}
	found, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (st state, err error) {
		err = row.Scan(&st.revoked, &st.uid)
		return st, err
	})
	if err != nil {
		return err
	}
	if len(found) < len(named) || slices.ContainsFunc(found, func(st state) bool { return st.revoked != nil }) {
		return socius.ErrRootGone
	}
	if uid != "" && slices.ContainsFunc(found, func(st state) bool { return st.uid != nil && *st.uid != uid }) {
		return socius.ErrTokenMoved
	}
	return nil
}

// insertToken is the token's INSERT: the primary key makes ErrExists, the site's
// foreign key ErrNotFound.
func insertToken(ctx context.Context, q execer, t *socius.Token) error {
	_, err := q.Exec(ctx, `INSERT INTO tokens (hash, kind, api_key, uid, user_key, created_at, expires_at, revoked_at, root)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		t.Hash, string(t.Kind), t.APIKey, nullString(t.UID), nullString(t.UserKey),
		millis(t.CreatedAt), nullMillis(t.ExpiresAt), nullMillis(t.RevokedAt), nullString(t.Root))
	return err
}

// Token returns the token with the hash, revoked and expired ones included, or
// socius.ErrNotFound.
func (s *Store) Token(ctx context.Context, hash string) (*socius.Token, error) {
	var t socius.Token
	err := s.read(ctx, "token", func(ctx context.Context) error {
		var kind string
		var uid, userKey, root *string
		var created int64
		var expires, revoked *int64
		err := s.pool.QueryRow(ctx, `SELECT hash, kind, api_key, uid, user_key, created_at, expires_at, revoked_at, root
			FROM tokens WHERE hash = $1`, hash).Scan(&t.Hash, &kind, &t.APIKey, &uid, &userKey, &created, &expires, &revoked, &root)
		if err != nil {
			return err
		}
		t.Kind = socius.TokenKind(kind)
		t.UID, t.UserKey, t.Root = fromNullString(uid), fromNullString(userKey), fromNullString(root)
		t.CreatedAt = fromMillis(created)
		t.ExpiresAt = fromNullMillis(expires)
		t.RevokedAt = fromNullMillis(revoked)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &t, nil
}

// RevokeToken marks a token revoked at now, and the tokens whose root it is;
// socius.ErrNotFound if there is neither. Revoking a revoked token succeeds and keeps
// the first revocation time. A token no longer stored (housekeeping removed it) still
// has its live minted tokens revoked: rootLives refuses a token whose root is not
// stored, so they are a fixed set too.
//
// The token goes first, with up to socius.MintedBatch of its minted tokens, in a
// transaction at READ COMMITTED whatever the database's default: a token being minted
// from it holds a share lock on its row (rootLives), so the UPDATE waits for its
// commit, and the next statement, on a fresh snapshot, sees it. Once that transaction
// has committed no token is minted from it any more (rootLives finds it revoked), and
// the rest are revoked socius.MintedBatch a statement, each its own transaction on a
// fresh snapshot, until one finds none (at least one: where the first transaction ran
// on a snapshot after all, as in YugabyteDB without READ COMMITTED, it may have missed
// the one it waited for): a fixed set, however many, however fast clients mint. A
// batch may revoke fewer than it found (a token deleted by housekeeping, or revoked by
// a logout, while it waited), so only a batch that finds none ends the loop.
func (s *Store) RevokeToken(ctx context.Context, hash string, now time.Time) (int, error) {
	minted := 0
	err := s.txWith(ctx, "revoke token", pgx.TxOptions{IsoLevel: pgx.ReadCommitted}, func(ctx context.Context, tx pgx.Tx) error {
		// The WHERE clause matches a revoked token too (COALESCE keeps its time), so
		// that only a missing token affects no row.
		err := affected(tx.Exec(ctx, `UPDATE tokens SET revoked_at = COALESCE(revoked_at, $1) WHERE hash = $2`, millis(now), hash))
		gone := errors.Is(err, socius.ErrNotFound)
		if err != nil && !gone {
			return err
		}
		minted, err = revokeMinted(ctx, tx, hash, now) // anew if txWith runs it again
		if err == nil && gone && minted == 0 {
			return socius.ErrNotFound
		}
		return err
	})
	for n := 1; err == nil && n > 0; {
		err = s.write(ctx, "revoke token", func(ctx context.Context) (err error) {
			n, err = revokeMinted(ctx, s.pool, hash, now)
			return err
		})
		minted += n
	}
	return minted, err
}

// revokeMinted revokes up to socius.MintedBatch live tokens whose root is hash, never
// before they were made (a clock behind the server's that made them: a revocation
// dated before the token would look a week old to housekeeping at once), and reports
// how many.
func revokeMinted(ctx context.Context, q execer, hash string, now time.Time) (int, error) {
	tag, err := q.Exec(ctx, revokeMintedBatch, hash, millis(now), socius.MintedBatch)
	return int(tag.RowsAffected()), err
}

// revokeMintedBatch finds its tokens through tokens_live_by_root, which holds only the
// live ones: each batch starts where there is something to revoke. The outer
// "revoked_at + 0 IS NULL" looks again at a row a logout revoked while the batch
// waited for it (its first revocation time stays), without the planner walking the
// index on revoked_at for it.
const revokeMintedBatch = `UPDATE tokens SET revoked_at = GREATEST($2, created_at)
	WHERE hash IN (SELECT hash FROM tokens WHERE root = $1 AND revoked_at IS NULL LIMIT $3) AND revoked_at + 0 IS NULL`

// revokeUserTokens revokes, at now, the live tokens of a user (Logout, DeleteUser),
// inside the caller's transaction. Those revoked already keep their first revocation
// time.
func revokeUserTokens(ctx context.Context, tx pgx.Tx, apiKey, uid string, now time.Time) error {
	_, err := tx.Exec(ctx, `UPDATE tokens SET revoked_at = $1 WHERE api_key = $2 AND uid = $3 AND revoked_at IS NULL`,
		millis(now), apiKey, uid)
	return err
}

// DeleteExpiredTokens removes the tokens that expired, or were revoked, strictly before
// `before`, and reports how many. Tokens that never expire and were never revoked stay.
//
// One statement does it, within the store's deadline. One that cannot (a backlog of
// millions, or a row held by another transaction past the deadline) fails, having
// deleted nothing, and would fail so every hour while the backlog grew; so the next
// sweeps go by parts: ranges of the table's blocks, each in its own statement and
// deadline, read through a TID Range Scan (PostgreSQL 14 and later), so that the parts
// together read the table once, as the one statement does. (Parts by the first hex
// digits of the hashes, before 2026-12-01, read the whole table a part, or the pages of
// a part's rows one by one.)
//
// A sweep by ranges goes once over the blocks the table has when it starts (rows added
// after it beyond them are live, or the next sweep's), starting where the last one
// stopped and going round to there. The first part is a sixteenth of the table; a part
// that missed its deadline halves the next ones (and its range is left to the next
// sweep), a part that took less than an eighth of the deadline doubles them (a margin:
// on a busy machine a part twice the size took three times as long, measured). It stops
// after sweepBudget deadlines in all, or when ctx ends, and remembers where; it reports
// what its parts deleted, and the first failure. After a sweep by ranges that went over
// the whole table with no part past its deadline, the next is one statement again (a
// part that failed otherwise, as every part does on a database without ctid, or a size
// that could not be read, is left to that statement).
func (s *Store) DeleteExpiredTokens(ctx context.Context, before time.Time) (int, error) {
	sweep := s.tokenSweep.load()
	if !sweep.byRanges {
		n, err := s.deleteDeadTokens(ctx, deadTokens, millis(before))
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			s.tokenSweep.store(sweepState{byRanges: true})
		}
		return n, err
	}
	ctx, cancel := context.WithTimeout(ctx, sweepBudget*s.OpTimeout)
	defer cancel()
	var size int64
	err := s.read(ctx, "token housekeeping", func(ctx context.Context) error {
		return s.pool.QueryRow(ctx, `SELECT pg_relation_size('tokens') / current_setting('block_size')::int`).Scan(&size)
	})
	if err != nil {
		if ctx.Err() == nil && !errors.Is(err, context.DeadlineExceeded) {
			// A database without the size of a relation (CockroachDB, YugabyteDB):
			// the next sweep is one statement again, which fits a smaller backlog.
			s.tokenSweep.store(sweepState{})
		}
		return 0, err
	}
	blocks := sweep.blocks
	if blocks == 0 {
		blocks = max((size+15)/16, 1)
	}
	start := sweep.from
	if start >= size {
		start = 0 // the table is smaller than when the last sweep stopped
	}
	total, covered, at := 0, int64(0), start
	missed := false // a part missed its deadline
	var first error
	for covered < size && ctx.Err() == nil {
		end := min(at+blocks, size)
		if at < start {
			end = min(end, start) // gone round: up to where the sweep started
		}
		began := time.Now()
		n, err := s.deleteDeadTokens(ctx, deadTokensInBlocks, millis(before),
			pgtype.TID{BlockNumber: uint32(at), Valid: true}, pgtype.TID{BlockNumber: uint32(end), Valid: true})
		total += n
		if err != nil {
			first = cmp.Or(first, err)
			if ctx.Err() != nil {
				break // this part is the next sweep's first
			}
			if errors.Is(err, context.DeadlineExceeded) {
				missed = true
				blocks = max(blocks/2, 1)
			}
		} else if time.Since(began) < s.OpTimeout/8 {
			blocks = min(blocks*2, max(size, 1))
		}
		covered += end - at
		if at = end; at == size {
			at = 0
		}
	}
	// Ranges again only while their parts are needed: a pass over the whole table
	// whose parts all fitted their deadline (those that failed otherwise, as every
	// part fails on a database without ctid, are the next statement's) is followed by
	// one statement.
	if covered >= size && !missed {
		s.tokenSweep.store(sweepState{})
	} else {
		s.tokenSweep.store(sweepState{byRanges: true, from: at, blocks: blocks})
	}
	return total, first
}

// deadTokens is the statement of a sweep of dead tokens, and deadTokensInBlocks that
// of a part of one: the blocks from $2 up to $3 (a TID Range Scan). NULL (never
// expires, live) compares as unknown: neither term matches it.
const (
	deadTokens         = `DELETE FROM tokens WHERE (expires_at < $1 OR revoked_at < $1)`
	deadTokensInBlocks = deadTokens + ` AND ctid >= $2::tid AND ctid < $3::tid`
)

// sweepBudget is how many of the store's deadlines a sweep of dead tokens by parts may
// take in all: a database that answers nothing holds the housekeeping that long, not
// a deadline for every part.
const sweepBudget = 30

// tokenSweep is where the sweeps of dead tokens stand: what the next one does.
type tokenSweep struct {
	mu    sync.Mutex
	state sweepState
}

// sweepState is what the next sweep of dead tokens does: one statement, or a sweep by
// ranges of blocks that starts at block from, blocks at a time (0: a sixteenth of the
// table).
type sweepState struct {
	byRanges     bool
	from, blocks int64
}

func (t *tokenSweep) load() sweepState {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.state
}

func (t *tokenSweep) store(state sweepState) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.state = state
}

// deleteDeadTokens runs q, a statement of deadTokens, and reports how many it deleted.
func (s *Store) deleteDeadTokens(ctx context.Context, q string, args ...any) (int, error) {
	var n int
	err := s.write(ctx, "delete expired tokens", func(ctx context.Context) error {
		tag, err := s.pool.Exec(ctx, q, args...)
		n = int(tag.RowsAffected())
		return err
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}
