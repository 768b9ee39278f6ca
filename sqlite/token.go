package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/socius/socius"
)

// CreateToken stores a token: socius.ErrExists if its hash is taken, socius.ErrNotFound
// if the site does not exist, socius.ErrKeyGone if its userKey names no key of the
// site. The UID is not checked against the users: a token may be granted for a user
// that has not logged in yet.
func (s *Store) CreateToken(ctx context.Context, t *socius.Token) error {
	return s.writeUserData(ctx, func(tx *sql.Tx) error { return createToken(tx, t) })
}

// createToken runs in the writer's transaction, which holds the write lock: a key the
// check finds stays until the token is stored, and a deletion of it after deletes the
// token too.
func createToken(tx *sql.Tx, t *socius.Token) error {
	if err := keyHeld(tx, t); err != nil {
		return err
	}
	if err := rootLives(tx, t); err != nil {
		return err
	}
	return insertToken(tx, t)
}

// insertToken is the token's INSERT.
func insertToken(tx *sql.Tx, t *socius.Token) error {
	_, err := tx.Exec(`INSERT INTO tokens (hash, kind, api_key, uid, user_key, created_at, expires_at, revoked_at, root)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		t.Hash, string(t.Kind), t.APIKey, nullString(t.UID), nullString(t.UserKey),
		millis(t.CreatedAt), nullMillis(t.ExpiresAt), nullMillis(t.RevokedAt), nullString(t.Root))
	if err != nil {
		return errorFor("create token", err) // the primary key makes ErrExists, the site's foreign key ErrNotFound
	}
	return nil
}

// keyHeld returns socius.ErrKeyGone when t was obtained with a userKey that names no
// key of t's site.
func keyHeld(tx *sql.Tx, t *socius.Token) error {
	if t.UserKey == "" {
		return nil
	}
	var site string
	err := tx.QueryRow(`SELECT api_key FROM keys WHERE user_key = ?`, t.UserKey).Scan(&site)
	if errors.Is(err, sql.ErrNoRows) || err == nil && site != t.APIKey {
		return socius.ErrKeyGone
	}
	if err != nil {
		return errorFor("create token: its key", err)
	}
	return nil
}

// rootLives returns socius.ErrRootGone when t was minted from a token whose root, or
// the token it was minted with, is revoked or no longer stored. In the writer's
// transaction, like keyHeld: a revocation (or a logout) comes before the check, or
// after the token is stored, and then revokes it with the root's others (or the
// user's).
func rootLives(tx *sql.Tx, t *socius.Token) error {
	return tokensLive(tx, "", t.Root, t.MintedWith)
}

// tokensLive is socius.ErrRootGone unless every token named by its hash ("" names
// none) is stored and not revoked, and, when uid is not "", socius.ErrTokenMoved if
// one of them is bound to a user other than uid (a login's: its user renamed since).
func tokensLive(tx *sql.Tx, uid string, hashes ...string) error {
	for _, hash := range hashes {
		if hash == "" {
			continue
		}
		var revoked sql.NullInt64
		var boundTo sql.NullString
		err := tx.QueryRow(`SELECT revoked_at, uid FROM tokens WHERE hash = ?`, hash).Scan(&revoked, &boundTo)
		if errors.Is(err, sql.ErrNoRows) || err == nil && revoked.Valid {
			return socius.ErrRootGone
		}
		if err != nil {
			return errorFor("create token: the token it is made from", err)
		}
		if uid != "" && boundTo.Valid && boundTo.String != uid {
			return socius.ErrTokenMoved
		}
	}
	return nil
}

const selectToken = `SELECT hash, kind, api_key, uid, user_key, created_at, expires_at, revoked_at, root
	FROM tokens WHERE hash = ?`

// Token returns the token with the hash, revoked and expired ones included, or
// socius.ErrNotFound.
func (s *Store) Token(ctx context.Context, hash string) (*socius.Token, error) {
	var t socius.Token
	var kind string
	var uid, userKey, root sql.NullString
	var created int64
	var expires, revoked sql.NullInt64
	err := s.tokenStmt.QueryRowContext(ctx, hash).Scan(&t.Hash, &kind, &t.APIKey, &uid, &userKey, &created, &expires, &revoked, &root)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, socius.ErrNotFound
	}
	if err != nil {
		return nil, errorFor("token", err)
	}
	t.Kind = socius.TokenKind(kind)
	t.UID, t.UserKey, t.Root = uid.String, userKey.String, root.String // NULL is ""
	t.CreatedAt = fromMillis(created)
	t.ExpiresAt = fromNullMillis(expires)
	t.RevokedAt = fromNullMillis(revoked)
	return &t, nil
}

// RevokeToken marks a token revoked at now, and the tokens whose root it is;
// socius.ErrNotFound if there is neither. The token goes first, with up to
// socius.MintedBatch of its minted tokens, in one writer transaction; from then on
// createToken refuses tokens minted from it, and the rest go socius.MintedBatch a
// transaction, until one finds none, so that the writer is never held long. Revoking a
// revoked token succeeds and keeps the first revocation time: that is when the token
// stopped working, and a later call must not put off its removal. A token no longer
// stored (housekeeping removed it) still has its live minted tokens revoked: no token
// is minted from a token that is not stored, so they are a fixed set too.
func (s *Store) RevokeToken(ctx context.Context, hash string, now time.Time) (int, error) {
	n, minted := 0, 0
	err := s.writeUserData(ctx, func(tx *sql.Tx) error {
		// The WHERE clause matches a revoked token too (COALESCE keeps its time), so
		// that only a missing token affects no row.
		res, err := tx.Exec(`UPDATE tokens SET revoked_at = COALESCE(revoked_at, ?) WHERE hash = ?`, millis(now), hash)
		err = affected(res, err, "revoke token")
		gone := errors.Is(err, socius.ErrNotFound)
		if err != nil && !gone {
			return err
		}
		n, err = revokeMinted(tx, hash, now)
		if err == nil && gone && n == 0 {
			return socius.ErrNotFound
		}
		return err
	})
	var p pacer
	for err == nil && n > 0 {
		minted += n
		p.pause() // an admin command beside a server: let its writes in
		err = s.writeUserData(ctx, func(tx *sql.Tx) (err error) {
			n, err = revokeMinted(tx, hash, now)
			return err
		})
	}
	return minted, err
}

// revokeMinted revokes up to socius.MintedBatch live tokens whose root is hash, never
// before they were made (a clock behind the server's that made them: a revocation
// dated before the token would look a week old to housekeeping at once), and reports
// how many.
func revokeMinted(tx *sql.Tx, hash string, now time.Time) (int, error) {
	res, err := tx.Exec(revokeMintedBatch, hash, millis(now), socius.MintedBatch)
	return rowCount(res, err, "revoke token: the tokens minted from it")
}

// revokeMintedBatch finds its tokens through tokens_live_by_root, which holds only the
// live ones: each batch starts where there is something to revoke. The unary + keeps
// the planner from walking every live token through the index on revoked_at instead
// of updating the batch's by hash.
const revokeMintedBatch = `UPDATE tokens SET revoked_at = max(?2, created_at)
	WHERE hash IN (SELECT hash FROM tokens WHERE root = ?1 AND revoked_at IS NULL LIMIT ?3) AND +revoked_at IS NULL`

const revokeTokensOfUser = `UPDATE tokens SET revoked_at = ? WHERE api_key = ? AND uid = ? AND revoked_at IS NULL`

// revokeUserTokens revokes, at now, the live tokens of a user (Logout, DeleteUser).
// Those revoked already keep their first revocation time, as with RevokeToken.
func revokeUserTokens(tx *sql.Tx, op, apiKey, uid string, now time.Time) error {
	_, err := tx.Exec(revokeTokensOfUser, millis(now), apiKey, uid)
	if err != nil {
		return errorFor(op+": revoke tokens", err)
	}
	return nil
}

// DeleteExpiredTokens removes the tokens that expired, or were revoked, strictly before
// `before`, and reports how many. Tokens that never expire and were never revoked stay.
func (s *Store) DeleteExpiredTokens(ctx context.Context, before time.Time) (int, error) {
	var n int
	err := s.writeUserData(ctx, func(tx *sql.Tx) error {
		var err error
		n, err = deleteExpiredTokens(tx, before)
		return err
	})
	return n, err
}

// deleteDeadTokens removes the tokens that expired or were revoked before a time. NULL
// (never expires, live) compares as unknown: neither term matches it.
const deleteDeadTokens = `DELETE FROM tokens WHERE expires_at < ? OR revoked_at < ?`

func deleteExpiredTokens(tx *sql.Tx, before time.Time) (int, error) {
	res, err := tx.Exec(deleteDeadTokens, millis(before), millis(before))
	if err != nil {
		return 0, errorFor("delete expired tokens", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, errorFor("delete expired tokens", err)
	}
	return int(n), nil
}
