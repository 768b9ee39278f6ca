package postgres

import (
	"context"
	"errors"
	"fmt"
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

// errViewGone is a read of a view whose snapshot an earlier read lost (view.gone).
var errViewGone = errors.New("an earlier read of the view lost its snapshot")

// viewSavepoint is the savepoint a view's transaction takes once its snapshot is, to
// which a read that PostgreSQL refused for its value rolls back (view.read).
const viewSavepoint = "socius_view"

// snapshotOptions are the view's transaction's.
var snapshotOptions = pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}

// maxViews is how many views a store whose pool holds up to maxConns connections keeps
// open at once: a quarter of them, at least one. A view holds its connection for as
// long as its export runs, minutes perhaps; without a bound, exports started together
// (the emulator's admin API, several exports of one process) could take every
// connection, and the calls the server serves would wait for one and fail.
func maxViews(maxConns int32) int {
	return max(1, int(maxConns)/4)
}

// viewSlots returns the store's semaphore of open views: one element for each, up to
// maxViews of its pool.
func (s *Store) viewSlots() chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.slots == nil {
		s.slots = make(chan struct{}, maxViews(s.pool.Config().MaxConns))
	}
	return s.slots
}

// Snapshot opens a view of the database as it is now: one REPEATABLE READ READ ONLY
// transaction on a connection of the pool, which the view's Close (or the store's)
// gives back. When maxViews views are open already, it waits for one to close, within
// ctx and the store's operation timeout, and fails with a 500028 that says why if none
// does.
func (s *Store) Snapshot(ctx context.Context) (socius.View, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	slots := s.viewSlots()
	select {
	case slots <- struct{}{}:
	case <-ctx.Done():
		why := fmt.Sprintf("%d views of the database are open on this server, the most it keeps open at once (a quarter of pool_max_conns, at least 1), and none closed in time; try again once an export has finished", cap(slots))
		return nil, socius.DatabaseErrorSaying(why, "postgres: snapshot", ctx.Err())
	}
	v := &view{store: s, slots: slots}
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
		// A read refused for a value the database cannot hold fails the transaction;
		// rolled back to here (view.read), it goes on, its snapshot kept.
		if _, err := tx.Exec(ctx, `SAVEPOINT `+viewSavepoint); err != nil {
			rollback(tx)
			return err
		}
		v.tx = tx
		return nil
	})
	if err != nil {
		<-slots
		return nil, err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		rollback(v.tx)
		<-slots
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
	// slots is the store's semaphore of open views (viewSlots), of which the view
	// holds one until its Close.
	slots chan struct{}

	mu     sync.Mutex // held by each read and by Close
	tx     pgx.Tx
	closed bool
	// gone says, once a read failed so that the transaction cannot go on, why the
	// view's snapshot is gone (snapshotGone); the reads after it are refused.
	gone string
}

// read runs fn in the view's transaction, under the store's operation timeout: once,
// as a read that lost its connection has lost the snapshot with it.
//
// A failed read never resets the store's pool (Store.lost): the connection is the
// view's own, and the likeliest way to lose it is the read's own deadline or its
// caller's cancel, after which pgx closes the connection that it left mid-answer.
// That says nothing of the pool's other connections; were the database gone, the
// store's own operations would find out and reset the pool themselves. Nor can the
// view go on: a new connection would hold another snapshot, and a transaction that
// failed on the server takes no more statements. So a read that left the
// transaction unusable ends the view's reads, each refused after it with a 500028
// that says so, and the view's Close gives back (or lets the pool destroy) what is
// left.
func (v *view) read(ctx context.Context, op string, fn func(ctx context.Context, q querier) error) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.closed {
		return socius.DatabaseError("postgres: "+op, errViewClosed)
	}
	if v.gone != "" {
		return socius.DatabaseErrorSaying(v.gone, "postgres: "+op, errViewGone)
	}
	ctx, cancel := v.store.withTimeout(ctx)
	defer cancel()
	err := fn(ctx, v.tx)
	if unstorable(err) {
		// No row holds what the database cannot store. PostgreSQL failed the
		// transaction with the statement (a value that passed storable, as bytes
		// that are no text in a database of another encoding than UTF8): back to
		// the savepoint, the snapshot of the view's moment goes on.
		if _, rerr := v.tx.Exec(ctx, `ROLLBACK TO SAVEPOINT `+viewSavepoint); rerr != nil {
			v.gone = snapshotGone(v.tx)
		}
		return socius.ErrNotFound
	}
	if err != nil {
		v.gone = snapshotGone(v.tx)
	}
	return errorFor(op, err)
}

// snapshotGone says why the view's transaction tx can take no more statements after a
// failed one, or "" when it still can (the read failed before it was sent: its
// context was already done; or it found no row). Its connection closed: pgx closes a
// connection whose statement's context ended before the answer was read, and one
// that broke. Its transaction failed on the server: PostgreSQL ignores every
// statement after an error until the transaction ends.
func snapshotGone(tx pgx.Tx) string {
	conn := tx.Conn()
	switch {
	case conn.IsClosed():
		return "the view's connection was lost: its snapshot is gone; open another"
	case conn.PgConn().TxStatus() == 'E':
		return "the view's transaction failed: its snapshot is gone; open another"
	}
	return ""
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
// A view whose connection is already closed (a read lost it) has nothing to roll back:
// the rollback fails at once, and the pool destroys the closed connection as it takes
// it back (pgxpool's Release), so Close reports no error for it.
func (v *view) Close() error {
	v.mu.Lock()
	if v.closed {
		v.mu.Unlock()
		return nil
	}
	v.closed = true
	wasClosed := v.tx.Conn().IsClosed()
	err := rollback(v.tx)
	if wasClosed {
		err = nil
	}
	v.mu.Unlock()
	v.store.mu.Lock()
	delete(v.store.views, v)
	v.store.mu.Unlock()
	<-v.slots
	if err != nil && !errors.Is(err, pgx.ErrTxClosed) {
		return errorFor("close view", err)
	}
	return nil
}
