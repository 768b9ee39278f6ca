package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"sync"

	"github.com/socius/socius"
)

// Snapshots
//
// A view (socius.View) reads the store as it was when it opened: one read
// transaction, on a connection of its own, which WAL mode keeps apart from every
// commit made after its first read (the writer's, and those of other processes),
// however long it lasts. The connection comes from a handle of its own, not from the
// read pool, so that a view held through a long export takes nothing from the reads
// of a server in the same process, and no view waits for a pooled connection.
//
// The price is the WAL's: no checkpoint copies a frame newer than what a reader sees,
// and SQLite starts the WAL over only when no reader uses it, so while a view is open
// the WAL grows with every commit, and is copied back and started over after it is
// closed, from the next commit on. The server's writes go on meanwhile (the checkpoints are PASSIVE, see
// checkpoint.go): a view is for an export, minutes at most, not to keep open.

var _ socius.Snapshotter = (*Store)(nil)

// errViewClosed is a read of a view after its Close (or the store's).
var errViewClosed = errors.New("the view is closed")

// Snapshot opens a view of the store as it is now: one read transaction on a
// connection of its own, which the view's Close (or the store's) gives back.
func (s *Store) Snapshot(ctx context.Context) (socius.View, error) {
	db, err := sql.Open("sqlite", s.readDSN)
	if err != nil {
		return nil, dbError("sqlite: snapshot", err)
	}
	db.SetMaxOpenConns(1)
	v := &view{store: s, db: db}
	if err := v.begin(ctx); err != nil {
		db.Close()
		return nil, err
	}
	s.viewsMu.Lock()
	if s.viewsClosed {
		s.viewsMu.Unlock()
		v.end()
		return nil, dbError("sqlite: snapshot", errors.New("the store is closed"))
	}
	if s.views == nil {
		s.views = make(map[*view]struct{})
	}
	s.views[v] = struct{}{}
	s.viewsMu.Unlock()
	return v, nil
}

// closeViews ends the views still open and refuses new ones: the first step of Close.
func (s *Store) closeViews() {
	s.viewsMu.Lock()
	s.viewsClosed = true
	views := make([]*view, 0, len(s.views))
	for v := range s.views {
		views = append(views, v)
	}
	s.viewsMu.Unlock()
	for _, v := range views {
		v.Close()
	}
}

// A view is a socius.View of a Store: a read transaction on conn, the only connection
// of db.
type view struct {
	store *Store
	db    *sql.DB

	mu     sync.Mutex // held by each read and by Close
	conn   *sql.Conn
	closed bool
}

// begin opens the view's transaction and takes its snapshot.
func (v *view) begin(ctx context.Context) error {
	var err error
	if v.conn, err = v.db.Conn(ctx); err != nil {
		return dbError("sqlite: snapshot", err)
	}
	if _, err := v.conn.ExecContext(ctx, `BEGIN`); err != nil {
		v.conn.Close()
		return dbError("sqlite: snapshot", err)
	}
	// A transaction's snapshot is taken by its first read, not by BEGIN: read now, so
	// that the view is of this moment rather than of its first use.
	var n int
	if err := v.conn.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations`).Scan(&n); err != nil {
		v.conn.ExecContext(context.Background(), `ROLLBACK`)
		v.conn.Close()
		return dbError("sqlite: snapshot", err)
	}
	return nil
}

// read runs fn on the view's connection, unless the view is closed.
func (v *view) read(op string, fn func(q querier) error) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.closed {
		return dbError("sqlite: "+op, errViewClosed)
	}
	return fn(v.conn)
}

// Site returns the site with the apiKey as of the view's moment, or
// socius.ErrNotFound.
func (v *view) Site(ctx context.Context, apiKey string) (*socius.Site, error) {
	var site *socius.Site
	err := v.read("view: site", func(q querier) error {
		var err error
		site, err = scanSite(q.QueryRowContext(ctx, selectSite, apiKey))
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return socius.ErrNotFound
		case err != nil:
			return errorFor("view: site", err)
		}
		return nil
	})
	return site, err
}

// Sites lists the sites as of the view's moment, as Store.Sites.
func (v *view) Sites(ctx context.Context) ([]*socius.Site, error) {
	var sites []*socius.Site
	err := v.read("view: sites", func(q querier) (err error) {
		sites, err = querySites(ctx, q)
		return err
	})
	return sites, err
}

// Keys lists the keys as of the view's moment, as Store.Keys.
func (v *view) Keys(ctx context.Context, apiKey string) ([]*socius.Key, error) {
	var keys []*socius.Key
	err := v.read("view: keys", func(q querier) (err error) {
		keys, err = queryKeys(ctx, q, apiKey)
		return err
	})
	return keys, err
}

// Users returns a page of users as of the view's moment, as Store.Users.
func (v *view) Users(ctx context.Context, apiKey, after string, limit int) ([]*socius.User, error) {
	var users []*socius.User
	err := v.read("view: users", func(q querier) (err error) {
		users, err = queryUsers(ctx, q, apiKey, after, limit)
		return err
	})
	return users, err
}

// Close ends the view's transaction and closes its connection; the checkpoints may
// then copy, and start over, the WAL it held.
func (v *view) Close() error {
	v.mu.Lock()
	if v.closed {
		v.mu.Unlock()
		return nil
	}
	v.closed = true
	err := v.end()
	v.mu.Unlock()
	v.store.viewsMu.Lock()
	delete(v.store.views, v)
	v.store.viewsMu.Unlock()
	if err != nil {
		return dbError("sqlite: close view", err)
	}
	return nil
}

// end rolls the transaction back and closes the connection and its handle.
func (v *view) end() error {
	_, err := v.conn.ExecContext(context.Background(), `ROLLBACK`)
	return errors.Join(err, v.conn.Close(), v.db.Close())
}
