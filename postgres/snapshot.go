package postgres

import (
	"context"
	"errors"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/socius/socius"
)

// Snapshots
//
// A view (socius.View) reads the database as it was when it opened: one transaction,
// REPEATABLE READ READ ONLY, on one connection of the pool that it keeps until its
// Close. At REPEATABLE READ every statement of the transaction sees the snapshot that
// its first statement took, whatever the nodes commit meanwhile, and a read-only
// transaction takes no lock that a write would wait for. While it is open, VACUUM
// keeps the row versions it may still read (the tables grow by the rows changed
// meanwhile): a view is for an export, minutes at most, not to keep open.

var _ socius.Snapshotter = (*Store)(nil)

// errViewClosed is a read of a view after its Close (or the store's).
var errViewClosed = errors.New("the view is closed")

// snapshotOptions are the view's transaction's.
var snapshotOptions = pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}

// Snapshot opens a view of the database as it is now: one REPEATABLE READ READ ONLY
// transaction on a connection of the pool, which the view's Close (or the store's)
// gives back.
func (s *Store) Snapshot(ctx context.Context) (socius.View, error) {
	v := &view{store: s}
	err := s.read(ctx, "snapshot", func(ctx context.Context) error {
		tx, err := s.pool.BeginTx(ctx, snapshotOptions)
		if err != nil {
			return err
		}
		// The snapshot is taken by the transaction's first statement, not by BEGIN:
		// one now, so that the view is of this moment rather than of its first use.
		var one int
		if err := tx.QueryRow(ctx, `SELECT 1`).Scan(&one); err != nil {
			rollback(tx)
			return err
		}
		v.tx = tx
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		rollback(v.tx)
		return nil, socius.DatabaseError("postgres: snapshot", errors.New("the store is closed"))
	}
	if s.views == nil {
		s.views = make(map[*view]struct{})
	}
	s.views[v] = struct{}{}
	s.mu.Unlock()
	return v, nil
}

// rollback ends a view's transaction, within the store's default operation timeout,
// and reports how it went.
func rollback(tx pgx.Tx) error {
	ctx, cancel := context.WithTimeout(context.Background(), DefaultOpTimeout)
	defer cancel()
	return tx.Rollback(ctx)
}

// A view is a socius.View of a Store: a transaction on one connection, which runs one
// statement at a time.
type view struct {
	store *Store

	mu     sync.Mutex // held by each read and by Close
	tx     pgx.Tx
	closed bool
}

// read runs fn in the view's transaction, under the store's operation timeout: once,
// as a read that lost its connection has lost the snapshot with it.
func (v *view) read(ctx context.Context, op string, fn func(ctx context.Context, q querier) error) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.closed {
		return socius.DatabaseError("postgres: "+op, errViewClosed)
	}
	ctx, cancel := v.store.withTimeout(ctx)
	defer cancel()
	err := fn(ctx, v.tx)
	v.store.lost(err)
	if unstorable(err) {
		return socius.ErrNotFound // no row holds what the database cannot store
	}
	return errorFor(op, err)
}

// Site returns the site with the apiKey as of the view's moment, or
// socius.ErrNotFound.
func (v *view) Site(ctx context.Context, apiKey string) (*socius.Site, error) {
	if !storable(apiKey) {
		return nil, socius.ErrNotFound
	}
	var site *socius.Site
	err := v.read(ctx, "view: site", func(ctx context.Context, q querier) (err error) {
		site, err = scanSite(q.QueryRow(ctx, `SELECT `+siteColumns+` FROM sites WHERE api_key = $1`, apiKey))
		return err
	})
	if err != nil {
		return nil, err
	}
	return site, nil
}

// Sites lists the sites as of the view's moment, as Store.Sites.
func (v *view) Sites(ctx context.Context) ([]*socius.Site, error) {
	var sites []*socius.Site
	err := v.read(ctx, "view: sites", func(ctx context.Context, q querier) (err error) {
		sites, err = querySites(ctx, q)
		return err
	})
	return sites, err
}

// Keys lists the keys as of the view's moment, as Store.Keys.
func (v *view) Keys(ctx context.Context, apiKey string) ([]*socius.Key, error) {
	if !storable(apiKey) {
		return nil, nil
	}
	var keys []*socius.Key
	err := v.read(ctx, "view: keys", func(ctx context.Context, q querier) (err error) {
		keys, err = queryKeys(ctx, q, apiKey)
		return err
	})
	return keys, err
}

// Users returns a page of users as of the view's moment, as Store.Users.
func (v *view) Users(ctx context.Context, apiKey, after string, limit int) ([]*socius.User, error) {
	if limit <= 0 || !storable(apiKey) {
		return nil, nil
	}
	var users []*socius.User
	err := v.read(ctx, "view: users", func(ctx context.Context, q querier) (err error) {
		users, err = queryUsers(ctx, q, apiKey, after, limit)
		return err
	})
	if err != nil {
		return nil, err
	}
	return users, nil
}

// Close rolls the view's transaction back and gives its connection back to the pool.
func (v *view) Close() error {
	v.mu.Lock()
	if v.closed {
		v.mu.Unlock()
		return nil
	}
	v.closed = true
	err := rollback(v.tx)
	v.mu.Unlock()
	v.store.mu.Lock()
	delete(v.store.views, v)
	v.store.mu.Unlock()
	if err != nil && !errors.Is(err, pgx.ErrTxClosed) {
		return errorFor("close view", err)
	}
	return nil
}
