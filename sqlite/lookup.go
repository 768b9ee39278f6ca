package sqlite

import (
	"errors"
	"fmt"
	"unsafe"

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
	tls  *libc.TLS
	db   uintptr
	user uintptr // selectUser, prepared
	buf  uintptr // the bound parameters' bytes, from libc's allocator
	size int     // buf's size
}

// lookups is a pool of lookupConns.
type lookups chan *lookupConn

// openLookups opens n lookup connections to the database at path.
func openLookups(path string, n int) (lookups, error) {
	pool := make(lookups, n)
	for range n {
		c, err := openLookupConn(path)
		if err != nil {
			pool.close()
			return nil, err
		}
		pool <- c
	}
	return pool, nil
}

func openLookupConn(path string) (*lookupConn, error) {
	c := &lookupConn{tls: libc.NewTLS()}
	if err := c.open(path); err != nil {
		c.close()
		return nil, err
	}
	return c, nil
}

// open opens the connection and prepares its statement. Its temporary C memory is
// freed when it returns, before a failed connection is closed (with its TLS).
func (c *lookupConn) open(path string) error {
	name, err := libc.CString(path)
	if err != nil {
		return err
	}
	defer libc.Xfree(c.tls, name)
	pdb := libc.Xmalloc(c.tls, 8)
	if pdb == 0 {
		return errors.New("sqlite: lookup connection: out of memory")
	}
	defer libc.Xfree(c.tls, pdb)
	*(*uintptr)(cmem(pdb)) = 0
	// Opened as the read pool's connections are: read-write, made read-only by
	// query_only, so that it shares the WAL-index as they do.
	rc := sqlite3.Xsqlite3_open_v2(c.tls, name, pdb, sqlite3.SQLITE_OPEN_READWRITE|sqlite3.SQLITE_OPEN_NOMUTEX, 0)
	c.db = *(*uintptr)(cmem(pdb)) // a handle even on failure, to read the error from and close
	if rc != sqlite3.SQLITE_OK {
		return c.err("open", rc)
	}
	sqlite3.Xsqlite3_busy_timeout(c.tls, c.db, int32(busyTimeout.Milliseconds()))
	if err := c.exec(`PRAGMA query_only = 1`); err != nil {
		return err
	}
	c.user, err = c.prepare(selectUser)
	return err
}

func (c *lookupConn) prepare(query string) (uintptr, error) {
	q, err := libc.CString(query)
	if err != nil {
		return 0, err
	}
	defer libc.Xfree(c.tls, q)
	pp := libc.Xmalloc(c.tls, 8)
	if pp == 0 {
		return 0, errors.New("sqlite: prepare: out of memory")
	}
	defer libc.Xfree(c.tls, pp)
	*(*uintptr)(cmem(pp)) = 0
	if rc := sqlite3.Xsqlite3_prepare_v3(c.tls, c.db, q, -1, sqlite3.SQLITE_PREPARE_PERSISTENT, pp, 0); rc != sqlite3.SQLITE_OK {
		return 0, c.err("prepare", rc)
	}
	return *(*uintptr)(cmem(pp)), nil
}

// cmem is the memory at p, an address that libc's allocator or SQLite handed out:
// outside the Go heap, so neither moved nor freed by the collector. (Written as a load
// through the variable's address, which go vet accepts, rather than a conversion of
// the integer.)
func cmem(p uintptr) unsafe.Pointer {
	return *(*unsafe.Pointer)(unsafe.Pointer(&p))
}

// exec runs a statement that returns no rows.
func (c *lookupConn) exec(query string) error {
	q, err := libc.CString(query)
	if err != nil {
		return err
	}
	defer libc.Xfree(c.tls, q)
	if rc := sqlite3.Xsqlite3_exec(c.tls, c.db, q, 0, 0, 0); rc != sqlite3.SQLITE_OK {
		return c.err("exec", rc)
	}
	return nil
}

// err is the error of the result code rc, with SQLite's message.
func (c *lookupConn) err(op string, rc int32) error {
	msg := "out of memory"
	if c.db != 0 {
		msg = libc.GoString(sqlite3.Xsqlite3_errmsg(c.tls, c.db))
	}
	return fmt.Errorf("sqlite: %s: %s (%d)", op, msg, rc)
}

func (c *lookupConn) close() {
	if c.user != 0 {
		sqlite3.Xsqlite3_finalize(c.tls, c.user)
	}
	if c.db != 0 {
		sqlite3.Xsqlite3_close_v2(c.tls, c.db)
	}
	if c.buf != 0 {
		libc.Xfree(c.tls, c.buf)
	}
	c.tls.Close()
}

// bind copies the parameters into buf and binds them, in order, to stmt. They stay
// bound until the next bind: the statement reads them in place (SQLITE_STATIC).
func (c *lookupConn) bind(stmt uintptr, params ...string) error {
	n := 0
	for _, p := range params {
		n += len(p) + 1 // at least a byte each, so that no pointer is nil
	}
	if n > c.size {
		if c.buf != 0 {
			libc.Xfree(c.tls, c.buf)
		}
		size := max(n, 256)
		if c.buf = libc.Xmalloc(c.tls, libc.Tsize_t(size)); c.buf == 0 {
			c.size = 0
			return errors.New("sqlite: bind: out of memory")
		}
		c.size = size
	}
	mem := unsafe.Slice((*byte)(cmem(c.buf)), c.size)
	off := 0
	for i, p := range params {
		copy(mem[off:], p)
		if rc := sqlite3.Xsqlite3_bind_text(c.tls, stmt, int32(i+1), c.buf+uintptr(off), int32(len(p)), 0); rc != sqlite3.SQLITE_OK {
			return c.err("bind", rc)
		}
		off += len(p) + 1
	}
	return nil
}

// text returns column i of stmt's current row as a Go string; "" for NULL.
func (c *lookupConn) text(stmt uintptr, i int32) string {
	p := sqlite3.Xsqlite3_column_text(c.tls, stmt, i)
	n := sqlite3.Xsqlite3_column_bytes(c.tls, stmt, i)
	if p == 0 || n == 0 {
		return ""
	}
	return string(unsafe.Slice((*byte)(cmem(p)), n))
}

func (c *lookupConn) int64(stmt uintptr, i int32) int64 {
	return sqlite3.Xsqlite3_column_int64(c.tls, stmt, i)
}

func (c *lookupConn) null(stmt uintptr, i int32) bool {
	return sqlite3.Xsqlite3_column_type(c.tls, stmt, i) == sqlite3.SQLITE_NULL
}

// lookupUser reads the user uid of the site apiKey: found is false when there is none.
func (c *lookupConn) lookupUser(apiKey, uid string) (u *socius.User, found bool, err error) {
	stmt := c.user
	defer sqlite3.Xsqlite3_reset(c.tls, stmt)
	if err := c.bind(stmt, apiKey, uid); err != nil {
		return nil, false, err
	}
	switch rc := sqlite3.Xsqlite3_step(c.tls, stmt); rc {
	case sqlite3.SQLITE_ROW:
	case sqlite3.SQLITE_DONE:
		return nil, false, nil
	default:
		return nil, false, c.err("user", rc)
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
