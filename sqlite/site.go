package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/socius/socius"
)

// CreateSite adds a site; socius.ErrExists if its apiKey is taken.
func (s *Store) CreateSite(ctx context.Context, site *socius.Site) error {
	return s.write(ctx, func(tx *sql.Tx) error { return createSite(tx, site) })
}

func createSite(tx *sql.Tx, s *socius.Site) error {
	_, err := tx.Exec(`INSERT INTO sites (api_key, secret, name, created_at, id) VALUES (?, ?, ?, ?, `+nextSiteID+`)`,
		s.APIKey, s.Secret, s.Name, millis(s.CreatedAt))
	if err != nil {
		return errorFor("create site", err)
	}
	return nil
}

// PutSite creates the site or, if it exists, replaces its secret and name. The site
// keeps its creation time, its keys and its users.
func (s *Store) PutSite(ctx context.Context, site *socius.Site) error {
	return s.write(ctx, func(tx *sql.Tx) error { return putSite(tx, site) })
}

func putSite(tx *sql.Tx, s *socius.Site) error {
	// An upsert, not INSERT OR REPLACE: a replace deletes the row first, and the
	// delete would cascade to the site's keys and users.
	_, err := tx.Exec(`INSERT INTO sites (api_key, secret, name, created_at, id) VALUES (?, ?, ?, ?, `+nextSiteID+`)
		ON CONFLICT (api_key) DO UPDATE SET secret = excluded.secret, name = excluded.name`,
		s.APIKey, s.Secret, s.Name, millis(s.CreatedAt))
	if err != nil {
		return errorFor("put site", err)
	}
	return nil
}

// nextSiteID is the number of a new site (sites.id, which the users table refers to):
// one more than the highest, found through the unique index. Site writes go through the
// store's single writer, or wait for its lock in another process.
const nextSiteID = `(SELECT COALESCE(MAX(id), 0) + 1 FROM sites)`

const selectSite = `SELECT api_key, secret, name, created_at FROM sites WHERE api_key = ?`

// Site returns the site with the apiKey, or socius.ErrNotFound.
func (s *Store) Site(ctx context.Context, apiKey string) (*socius.Site, error) {
	if err := ctx.Err(); err != nil {
		return nil, errorFor("site", err)
	}
	return s.cachedSite(apiKey, func() (*socius.Site, error) {
		site, err := scanSite(s.siteStmt.QueryRowContext(lookupContext(ctx), apiKey))
		if errors.Is(err, sql.ErrNoRows) {
			return nil, socius.ErrNotFound
		}
		if err != nil {
			return nil, errorFor("site", err)
		}
		return site, nil
	})
}

// Sites lists every site, ordered by creation time, then by insertion.
func (s *Store) Sites(ctx context.Context) ([]*socius.Site, error) {
	return querySites(ctx, s.rdb)
}

// A querier runs queries: the read pool, or the connection of a view (snapshot.go).
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// querySites is Sites, read with q.
func querySites(ctx context.Context, q querier) ([]*socius.Site, error) {
	rows, err := q.QueryContext(ctx, `SELECT api_key, secret, name, created_at FROM sites ORDER BY created_at, rowid`)
	if err != nil {
		return nil, errorFor("sites", err)
	}
	defer rows.Close()
	var sites []*socius.Site
	for rows.Next() {
		site, err := scanSite(rows)
		if err != nil {
			return nil, errorFor("sites", err)
		}
		sites = append(sites, site)
	}
	if err := rows.Err(); err != nil {
		return nil, errorFor("sites", err)
	}
	return sites, nil
}

// scanner is a *sql.Row or *sql.Rows.
type scanner interface {
	Scan(dest ...any) error
}

func scanSite(row scanner) (*socius.Site, error) {
	var s socius.Site
	var created int64
	if err := row.Scan(&s.APIKey, &s.Secret, &s.Name, &created); err != nil {
		return nil, err
	}
	s.CreatedAt = fromMillis(created)
	return &s, nil
}

// CreateKey adds a key to an existing site: socius.ErrExists if the userKey is taken,
// socius.ErrNotFound if the site does not exist.
func (s *Store) CreateKey(ctx context.Context, k *socius.Key) error {
	// Methods are stored comma-joined; a comma in a name would split it in two.
	for _, m := range k.Methods {
		if strings.Contains(m, ",") {
			return fmt.Errorf("sqlite: create key: method name %q contains a comma", m)
		}
	}
	if err := s.clearLeftTokens(ctx, k.UserKey); err != nil {
		return err
	}
	return s.write(ctx, func(tx *sql.Tx) error { return createKey(tx, k) })
}

// PutKey creates the key or replaces its secret, methods and public key, in one
// transaction: socius.ErrNotFound if the site does not exist, socius.ErrExists if the
// userKey belongs to another site.
func (s *Store) PutKey(ctx context.Context, k *socius.Key) error {
	for _, m := range k.Methods {
		if strings.Contains(m, ",") {
			return fmt.Errorf("sqlite: put key: method name %q contains a comma", m)
		}
	}
	if err := s.clearLeftTokens(ctx, k.UserKey); err != nil {
		return err
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.Exec(`UPDATE keys SET secret = ?, methods = ?, public_key = ? WHERE user_key = ? AND api_key = ?`,
			k.Secret, strings.Join(k.Methods, ","), k.PublicKey, k.UserKey, k.APIKey)
		if err != nil {
			return errorFor("put key", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return errorFor("put key", err)
		} else if n == 1 {
			return nil
		}
		return createKey(tx, k) // a userKey of another site fails as ErrExists
	})
}

func createKey(tx *sql.Tx, k *socius.Key) error {
	// Tokens a DeleteKey cut short left of an earlier key of this userKey (not this
	// key's): clearLeftTokens took them before, a batch at a time; any left now are
	// few.
	if _, err := deleteKeyTokens(tx, k.UserKey, -1); err != nil {
		return err
	}
	_, err := tx.Exec(`INSERT INTO keys (user_key, api_key, secret, methods, public_key, created_at)
		VALUES (?, ?, ?, ?, ?, ?)`,
		k.UserKey, k.APIKey, k.Secret, strings.Join(k.Methods, ","), k.PublicKey, millis(k.CreatedAt))
	if err != nil {
		return errorFor("create key", err) // the site's foreign key makes a missing site ErrNotFound
	}
	return nil
}

const (
	keyColumns = `user_key, api_key, secret, methods, public_key, created_at`
	selectKey  = `SELECT ` + keyColumns + ` FROM keys WHERE user_key = ?`
)

// Key returns the key, or socius.ErrNotFound.
func (s *Store) Key(ctx context.Context, userKey string) (*socius.Key, error) {
	if err := ctx.Err(); err != nil {
		return nil, errorFor("key", err)
	}
	return s.cachedKey(userKey, func() (*socius.Key, error) {
		k, err := scanKey(s.keyStmt.QueryRowContext(lookupContext(ctx), userKey))
		if errors.Is(err, sql.ErrNoRows) {
			return nil, socius.ErrNotFound
		}
		if err != nil {
			return nil, errorFor("key", err)
		}
		return k, nil
	})
}

// Keys lists the keys of a site (of every site when apiKey is empty), ordered by
// creation time, then by insertion.
func (s *Store) Keys(ctx context.Context, apiKey string) ([]*socius.Key, error) {
	return queryKeys(ctx, s.rdb, apiKey)
}

// queryKeys is Keys, read with q.
func queryKeys(ctx context.Context, q querier, apiKey string) ([]*socius.Key, error) {
	var rows *sql.Rows
	var err error
	if apiKey == "" {
		rows, err = q.QueryContext(ctx, `SELECT `+keyColumns+` FROM keys ORDER BY created_at, rowid`)
	} else {
		rows, err = q.QueryContext(ctx, `SELECT `+keyColumns+` FROM keys WHERE api_key = ? ORDER BY created_at, rowid`, apiKey)
	}
	if err != nil {
		return nil, errorFor("keys", err)
	}
	defer rows.Close()
	var keys []*socius.Key
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return nil, errorFor("keys", err)
		}
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil {
		return nil, errorFor("keys", err)
	}
	return keys, nil
}

func scanKey(row scanner) (*socius.Key, error) {
	var k socius.Key
	var methods string
	var created int64
	if err := row.Scan(&k.UserKey, &k.APIKey, &k.Secret, &methods, &k.PublicKey, &created); err != nil {
		return nil, err
	}
	if methods != "" {
		k.Methods = strings.Split(methods, ",")
	}
	k.CreatedAt = fromMillis(created)
	return &k, nil
}

// DeleteKey removes a key and the tokens it obtained; socius.ErrNotFound if there is
// none. The key goes first, with up to socius.MintedBatch of its tokens, in one
// transaction: from then on every token it obtained is refused (a token is taken only
// while its key lives). The rest go right after, a batch a transaction, paced so that
// a server's writes get in between (a key with half a million tokens held the store
// for seconds, and the server's writes failed). A key created again under the same
// userKey first deletes whatever tokens of the old one are left (createKey), so that
// none comes back with it.
func (s *Store) DeleteKey(ctx context.Context, userKey string) error {
	var n int
	err := s.write(ctx, func(tx *sql.Tx) (err error) {
		res, err := tx.Exec(`DELETE FROM keys WHERE user_key = ?`, userKey)
		if err := affected(res, err, "delete key"); err != nil {
			return err
		}
		n, err = deleteKeyTokens(tx, userKey, socius.MintedBatch)
		return err
	})
	var p pacer
	for err == nil && n == socius.MintedBatch {
		p.pause()
		err = s.write(ctx, func(tx *sql.Tx) (err error) {
			n, err = deleteKeyTokens(tx, userKey, socius.MintedBatch)
			return err
		})
	}
	return err
}

// deleteKeyTokens deletes up to limit tokens obtained with userKey (all of them when
// limit is negative) and reports how many. It searches the index of migration 0004,
// not the whole table.
func deleteKeyTokens(tx *sql.Tx, userKey string, limit int) (int, error) {
	res, err := tx.Exec(deleteTokensOfKey, userKey, limit)
	return rowCount(res, err, "delete key: its tokens")
}

const deleteTokensOfKey = `DELETE FROM tokens WHERE rowid IN (SELECT rowid FROM tokens WHERE user_key = ? LIMIT ?)`

// clearLeftTokens deletes, a batch a transaction paced as DeleteKey's, the tokens that
// a DeleteKey cut short left of a key of userKey, before a key of that userKey is
// created: in the creating transaction, half a million of them held the store for
// seconds. It stops at once when a key of that userKey exists (its tokens are its own).
func (s *Store) clearLeftTokens(ctx context.Context, userKey string) error {
	var p pacer
	for n := socius.MintedBatch; n == socius.MintedBatch; {
		err := s.write(ctx, func(tx *sql.Tx) (err error) {
			n = 0
			var exists int
			switch err := tx.QueryRow(`SELECT 1 FROM keys WHERE user_key = ?`, userKey).Scan(&exists); {
			case err == nil:
				return nil
			case !errors.Is(err, sql.ErrNoRows):
				return errorFor("create key: tokens left of an earlier key", err)
			}
			n, err = deleteKeyTokens(tx, userKey, socius.MintedBatch)
			return err
		})
		if err != nil {
			return err
		}
		if n == socius.MintedBatch {
			p.pause()
		}
	}
	return nil
}

// pacer spaces the transactions of a long batched operation (DeleteKey, RevokeToken),
// which an admin command runs beside a server: after about batchHold of them back to
// back it pauses batchPause, longer than SQLite's busy handler waits between two tries
// (at most 100 ms), so that a writer of another process waiting for the lock gets it.
type pacer struct{ since time.Time }

const (
	batchHold  = 200 * time.Millisecond
	batchPause = 120 * time.Millisecond
)

func (p *pacer) pause() {
	switch {
	case p.since.IsZero():
		p.since = time.Now()
	case time.Since(p.since) >= batchHold:
		time.Sleep(batchPause)
		p.since = time.Now()
	}
}

// rowCount is how many rows a statement changed, or its error as errorFor gives it.
func rowCount(res sql.Result, err error, op string) (int, error) {
	if err != nil {
		return 0, errorFor(op, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, errorFor(op, err)
	}
	return int(n), nil
}

// affected turns the result of an UPDATE or DELETE of one row into an error:
// socius.ErrNotFound when no row matched.
func affected(res sql.Result, err error, op string) error {
	n, err := rowCount(res, err, op)
	if err == nil && n == 0 {
		return socius.ErrNotFound
	}
	return err
}

// SwapSiteSecret replaces the site's stored secret with new while it is old, and
// reports whether it did (socius.SecretSwapper).
func (s *Store) SwapSiteSecret(ctx context.Context, apiKey, old, new string) (bool, error) {
	return s.swap(ctx, "swap site secret", `UPDATE sites SET secret = ? WHERE api_key = ? AND secret = ?`, new, apiKey, old)
}

// SwapKeySecret replaces the key's stored secret with new while it is old, and reports
// whether it did (socius.SecretSwapper).
func (s *Store) SwapKeySecret(ctx context.Context, userKey, old, new string) (bool, error) {
	return s.swap(ctx, "swap key secret", `UPDATE keys SET secret = ? WHERE user_key = ? AND secret = ?`, new, userKey, old)
}

func (s *Store) swap(ctx context.Context, op, query string, args ...any) (bool, error) {
	var swapped bool
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.Exec(query, args...)
		if err != nil {
			return errorFor(op, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return errorFor(op, err)
		}
		swapped = n == 1
		return nil
	})
	return swapped, err
}
