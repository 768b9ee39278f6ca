package sqlite

import (
	"time"

	"modernc.org/libc"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/socius/socius"
)

// The user lookup of getUserInfo is the hottest read, and through database/sql a
// third of its cost is not SQLite's: the pool and its locks, the driver describing
// the thirteen result columns again on every query (name and declared type of each,
// as Go strings), and the conversion of each value into the Scan destinations. So
// the store reads users through connections of its own, opened with SQLite's C API
// (modernc.org/sqlite/lib, the same library the driver runs on, so the same locks
// and the same WAL-index as every other connection of the process): a statement
// prepared once per connection, its two parameters copied into a buffer the
// connection owns, the columns read straight into a socius.User.

// A lookupConn is one read-only connection and its prepared user statement; one
// goroutine uses it at a time.
type lookupConn struct {
	cconn
	user uintptr // selectUser, prepared
}

// lookups is a pool of lookupConns.
type lookups chan *lookupConn

// openLookups opens n lookup connections to the database at path, with the store's
// busy timeout (busy).
func openLookups(path string, n int, busy time.Duration) (lookups, error) {
	pool := make(lookups, n)
	for range n {
		c, err := openLookupConn(path, busy)
		if err != nil {
			pool.close()
			return nil, err
		}
		pool <- c
	}
	return pool, nil
}

func openLookupConn(path string, busy time.Duration) (*lookupConn, error) {
	c := &lookupConn{cconn: cconn{tls: libc.NewTLS()}}
	if err := c.openLookup(path, busy); err != nil {
		c.close()
		return nil, err
	}
	return c, nil
}

// openLookup opens the connection and prepares its statement. Opened as the read
// pool's connections are: read-write, made read-only by query_only, so that it shares
// the WAL-index as they do.
func (c *lookupConn) openLookup(path string, busy time.Duration) error {
	if err := c.open(path, busy); err != nil {
		return err
	}
	if err := c.exec(`PRAGMA query_only = 1`); err != nil {
		return err
	}
	var err error
	c.user, err = c.prepare(selectUser)
	return err
}

func (c *lookupConn) close() {
	c.finalize(c.user)
	c.cconn.close()
}

// lookupUser reads the user uid of the site apiKey: found is false when there is none.
func (c *lookupConn) lookupUser(apiKey, uid string) (u *socius.User, found bool, err error) {
	stmt := c.user
	defer sqlite3.Xsqlite3_reset(c.tls, stmt)
	b := c.binder(stmt, len(apiKey)+1+len(uid)+1)
	b.text(apiKey)
	b.text(uid)
	if b.err != nil {
		return nil, false, b.err
	}
	switch rc := sqlite3.Xsqlite3_step(c.tls, stmt); rc {
	case sqlite3.SQLITE_ROW:
	case sqlite3.SQLITE_DONE:
		return nil, false, nil
	default:
		return nil, false, c.err("step", rc)
	}
	// The columns of userColumns, in order.
	u = &socius.User{APIKey: apiKey, UID: c.text(stmt, 0)}
	for f := range socius.NumFields {
		u.Profile[f] = c.text(stmt, int32(1+f))
	}
	u.CreatedAt = fromMillis(c.int64(stmt, 9))
	u.UpdatedAt = fromMillis(c.int64(stmt, 10))
	if !c.null(stmt, 11) {
		u.LoginAt = fromMillis(c.int64(stmt, 11))
	}
	u.LoggedIn = c.int64(stmt, 12) != 0
	return u, true, nil
}

// lookupUser reads a user through a connection of the pool, once one is free; found is
// false when there is no such user. The connection goes back to the pool whatever
// happens, so that Close, which waits for every connection, cannot wait forever.
func (s *Store) lookupUser(apiKey, uid string) (u *socius.User, found bool, err error) {
	var c *lookupConn
	select {
	case c = <-s.lookups:
	case <-s.closing:
		return nil, false, errClosed
	}
	defer func() { s.lookups <- c }()
	return c.lookupUser(apiKey, uid)
}

// drain closes every connection of the pool, waiting for those in use to come back:
// once the store is closing, User takes none.
func (p lookups) drain() {
	for range cap(p) {
		(<-p).close()
	}
}

// close closes the connections of the pool that are not in use.
func (p lookups) close() {
	for {
		select {
		case c := <-p:
			c.close()
		default:
			return
		}
	}
}
