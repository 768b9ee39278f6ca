package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/socius/socius"
)

// CreateSite adds a site; socius.ErrExists if its apiKey is taken.
func (s *Store) CreateSite(ctx context.Context, site *socius.Site) error {
	return s.write(ctx, "create site", func(ctx context.Context) error {
		_, err := s.pool.Exec(ctx, `INSERT INTO sites (api_key, secret, name, created_at) VALUES ($1, $2, $3, $4)`,
			site.APIKey, site.Secret, site.Name, millis(site.CreatedAt))
		return err
	})
}

// PutSite creates the site or, if it exists, replaces its secret and name. The site
// keeps its creation time, its keys and its users.
func (s *Store) PutSite(ctx context.Context, site *socius.Site) error {
	return s.write(ctx, "put site", func(ctx context.Context) error {
		_, err := s.pool.Exec(ctx, `INSERT INTO sites (api_key, secret, name, created_at) VALUES ($1, $2, $3, $4)
			ON CONFLICT (api_key) DO UPDATE SET secret = excluded.secret, name = excluded.name`,
			site.APIKey, site.Secret, site.Name, millis(site.CreatedAt))
		return err
	})
}

const siteColumns = `api_key, secret, name, created_at`

// Site returns the site with the apiKey, or socius.ErrNotFound.
func (s *Store) Site(ctx context.Context, apiKey string) (*socius.Site, error) {
	var site *socius.Site
	err := s.read(ctx, "site", func(ctx context.Context) error {
		var err error
		site, err = scanSite(s.pool.QueryRow(ctx, `SELECT `+siteColumns+` FROM sites WHERE api_key = $1`, apiKey))
		return err
	})
	if err != nil {
		return nil, err
	}
	return site, nil
}

// Sites lists every site, ordered by creation time, then by insertion.
func (s *Store) Sites(ctx context.Context) ([]*socius.Site, error) {
	var sites []*socius.Site
	err := s.read(ctx, "sites", func(ctx context.Context) error {
		var err error
		sites, err = querySites(ctx, s.pool)
		return err
	})
	return sites, err
}

// A querier runs queries: the pool, or the transaction of a view (snapshot.go).
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// querySites is Sites' query, on q.
func querySites(ctx context.Context, q querier) ([]*socius.Site, error) {
	rows, err := q.Query(ctx, `SELECT `+siteColumns+` FROM sites ORDER BY created_at, seq`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (*socius.Site, error) { return scanSite(row) })
}

func scanSite(row pgx.Row) (*socius.Site, error) {
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
			return fmt.Errorf("postgres: create key: method name %q contains a comma", m)
		}
	}
	return s.write(ctx, "create key", func(ctx context.Context) error {
		_, err := s.pool.Exec(ctx, `INSERT INTO keys (user_key, api_key, secret, methods, public_key, created_at)
			VALUES ($1, $2, $3, $4, $5, $6)`,
			k.UserKey, k.APIKey, k.Secret, strings.Join(k.Methods, ","), k.PublicKey, millis(k.CreatedAt))
		return err // the site's foreign key makes a missing site ErrNotFound
	})
}

// PutKey creates the key or replaces its secret, methods and public key, in one
// statement: socius.ErrNotFound if the site does not exist, socius.ErrExists if the
// userKey belongs to another site (the conflict's WHERE then updates no row).
func (s *Store) PutKey(ctx context.Context, k *socius.Key) error {
	for _, m := range k.Methods {
		if strings.Contains(m, ",") {
			return fmt.Errorf("postgres: put key: method name %q contains a comma", m)
		}
	}
	return s.write(ctx, "put key", func(ctx context.Context) error {
		tag, err := s.pool.Exec(ctx, `INSERT INTO keys (user_key, api_key, secret, methods, public_key, created_at)
			VALUES ($1, $2, $3, $4, $5, $6)
			ON CONFLICT (user_key) DO UPDATE SET secret = excluded.secret, methods = excluded.methods, public_key = excluded.public_key
			WHERE keys.api_key = excluded.api_key`,
			k.UserKey, k.APIKey, k.Secret, strings.Join(k.Methods, ","), k.PublicKey, millis(k.CreatedAt))
		if err != nil {
			return err // the site's foreign key makes a missing site ErrNotFound
		}
		if tag.RowsAffected() == 0 {
			return socius.ErrExists
		}
		return nil
	})
}

const keyColumns = `user_key, api_key, secret, methods, public_key, created_at`

// Key returns the key, or socius.ErrNotFound.
func (s *Store) Key(ctx context.Context, userKey string) (*socius.Key, error) {
	var k *socius.Key
	err := s.read(ctx, "key", func(ctx context.Context) error {
		var err error
		k, err = scanKey(s.pool.QueryRow(ctx, `SELECT `+keyColumns+` FROM keys WHERE user_key = $1`, userKey))
		return err
	})
	if err != nil {
		return nil, err
	}
	return k, nil
}

// Keys lists the keys of a site (of every site when apiKey is empty), ordered by
// creation time, then by insertion.
func (s *Store) Keys(ctx context.Context, apiKey string) ([]*socius.Key, error) {
	if !storable(apiKey) {
		return nil, nil
	}
	var keys []*socius.Key
	err := s.read(ctx, "keys", func(ctx context.Context) error {
		var err error
		keys, err = queryKeys(ctx, s.pool, apiKey)
		return err
	})
	return keys, err
}

// queryKeys is Keys' query, on q.
func queryKeys(ctx context.Context, q querier, apiKey string) ([]*socius.Key, error) {
	var rows pgx.Rows
	var err error
	if apiKey == "" {
		rows, err = q.Query(ctx, `SELECT `+keyColumns+` FROM keys ORDER BY created_at, seq`)
	} else {
		rows, err = q.Query(ctx, `SELECT `+keyColumns+` FROM keys WHERE api_key = $1 ORDER BY created_at, seq`, apiKey)
	}
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (*socius.Key, error) { return scanKey(row) })
}

func scanKey(row pgx.Row) (*socius.Key, error) {
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

// deleteTokensOfKey searches the index of migration 0004, not the whole table.
const deleteTokensOfKey = `DELETE FROM tokens WHERE user_key = $1`

// DeleteKey removes a key and the tokens it obtained, at once; socius.ErrNotFound if
// there is none. The tokens go with it so that a key created again under the same
// userKey does not bring them back.
//
// A token being issued with the key meanwhile (on another node) holds a share lock on
// the key's row (keyHeld) until it commits, so the DELETE of the key waits for it. The
// transaction runs at READ COMMITTED whatever the database's default: its tokens
// statement, after that wait, then takes a snapshot that holds the token. (At
// REPEATABLE READ the transaction's snapshot is its first statement's, taken before
// the wait: the token would be missed, and a key created again under the name right
// after would make it usable.) A token that comes after the DELETE finds no key and is
// not stored (socius.ErrKeyGone). A share lock, not a write to the key's row, so that
// tokens issued with one key do not wait for each other.
//
// Where READ COMMITTED is not to be had (YugabyteDB runs it as REPEATABLE READ unless
// configured; CockroachDB as SERIALIZABLE, which orders the two by itself), a second
// statement, once the transaction has committed, deletes on a snapshot of its own the
// tokens of the key that came in meanwhile, unless the key was created again. It runs
// also when the key is already gone: a DeleteKey tried again after that statement
// failed finishes its work.
func (s *Store) DeleteKey(ctx context.Context, userKey string) error {
	if !storable(userKey) {
		return socius.ErrNotFound
	}
	err := s.txWith(ctx, "delete key", pgx.TxOptions{IsoLevel: pgx.ReadCommitted}, func(ctx context.Context, tx pgx.Tx) error {
		if err := affected(tx.Exec(ctx, `DELETE FROM keys WHERE user_key = $1`, userKey)); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, deleteTokensOfKey, userKey)
		return err
	})
	if err != nil && !errors.Is(err, socius.ErrNotFound) {
		return err
	}
	if sweep := s.write(ctx, "delete key", func(ctx context.Context) error {
		_, err := s.pool.Exec(ctx, deleteTokensOfKey+` AND NOT EXISTS (SELECT 1 FROM keys WHERE user_key = $1)`, userKey)
		return err
	}); sweep != nil {
		return sweep
	}
	return err
}

// SwapSiteSecret replaces the site's stored secret with new while it is old, and
// reports whether it did (socius.SecretSwapper).
func (s *Store) SwapSiteSecret(ctx context.Context, apiKey, old, new string) (bool, error) {
	return s.swap(ctx, "swap site secret", `UPDATE sites SET secret = $1 WHERE api_key = $2 AND secret = $3`, new, apiKey, old)
}

// SwapKeySecret replaces the key's stored secret with new while it is old, and reports
// whether it did (socius.SecretSwapper).
func (s *Store) SwapKeySecret(ctx context.Context, userKey, old, new string) (bool, error) {
	return s.swap(ctx, "swap key secret", `UPDATE keys SET secret = $1 WHERE user_key = $2 AND secret = $3`, new, userKey, old)
}

func (s *Store) swap(ctx context.Context, op, query string, args ...any) (bool, error) {
	var swapped bool
	err := s.write(ctx, op, func(ctx context.Context) error {
		tag, err := s.pool.Exec(ctx, query, args...)
		swapped = err == nil && tag.RowsAffected() == 1
		return err
	})
	return swapped, err
}
