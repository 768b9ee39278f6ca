package sqlite

import (
	"errors"
	"fmt"
	"syscall"
	"time"
	"unsafe"

	"modernc.org/libc"
	sqlite3 "modernc.org/sqlite/lib"
)

// A cconn is a connection opened with SQLite's C API (modernc.org/sqlite/lib, the
// library database/sql's driver runs on, so the same locks and the same WAL-index as
// every other connection of the process), for the two hottest paths: the user lookup
// (lookup.go) and the writer's profile updates (fastwrite.go). One goroutine uses it at
// a time. Statements are prepared once; their text parameters are copied into a buffer
// the connection owns and bound in place, and nothing goes through database/sql's
// pool, locks and value conversions.
type cconn struct {
	tls  *libc.TLS
	db   uintptr
	buf  uintptr // the bound text parameters' bytes, from libc's allocator
	size int     // buf's size
}

// open opens the database at path, read-write, with the store's busy timeout (busy).
// Its temporary C memory is freed when it returns; on failure the caller closes c.
func (c *cconn) open(path string, busy time.Duration) error {
	name, err := libc.CString(path)
	if err != nil {
		return err
	}
	defer libc.Xfree(c.tls, name)
	pdb := libc.Xmalloc(c.tls, 8)
	if pdb == 0 {
		return errors.New("open: out of memory")
	}
	defer libc.Xfree(c.tls, pdb)
	*(*uintptr)(cmem(pdb)) = 0
	rc := sqlite3.Xsqlite3_open_v2(c.tls, name, pdb, sqlite3.SQLITE_OPEN_READWRITE|sqlite3.SQLITE_OPEN_NOMUTEX, 0)
	c.db = *(*uintptr)(cmem(pdb)) // a handle even on failure, to read the error from and close
	if rc != sqlite3.SQLITE_OK {
		return c.err("open", rc)
	}
	sqlite3.Xsqlite3_extended_result_codes(c.tls, c.db, 1)
	sqlite3.Xsqlite3_busy_timeout(c.tls, c.db, int32(busy.Milliseconds()))
	return nil
}

func (c *cconn) prepare(query string) (uintptr, error) {
	q, err := libc.CString(query)
	if err != nil {
		return 0, err
	}
	defer libc.Xfree(c.tls, q)
	pp := libc.Xmalloc(c.tls, 8)
	if pp == 0 {
		return 0, errors.New("prepare: out of memory")
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
func (c *cconn) exec(query string) error {
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

// A cError is a failure of a C API call: what was done (open, prepare, step, ...), the
// (extended) result code and SQLite's message, and for a failure of the system (an I/O
// error, a file that could not be opened) the system's error number, which says why
// (a full disk, a file that may not be written, a failing disk). The caller says what
// for.
type cError struct {
	op    string
	code  int32
	msg   string
	errno syscall.Errno // 0: none
}

func (e *cError) Error() string {
	if e.errno != 0 {
		return fmt.Sprintf("%s: %s (%d): %v", e.op, e.msg, e.code, e.errno)
	}
	return fmt.Sprintf("%s: %s (%d)", e.op, e.msg, e.code)
}

// err is the error of the result code rc, with SQLite's message and, for a failure of
// the system, its error number. (SQLite records the number for those only, and keeps
// the last one: with any other code it belongs to an earlier failure.)
func (c *cconn) err(op string, rc int32) error {
	msg := "out of memory"
	var errno syscall.Errno
	if c.db != 0 {
		msg = libc.GoString(sqlite3.Xsqlite3_errmsg(c.tls, c.db))
		if ext := sqlite3.Xsqlite3_extended_errcode(c.tls, c.db); ext&0xff == rc&0xff {
			rc = ext
		}
		if rc&0xff == sqlite3.SQLITE_IOERR || rc&0xff == sqlite3.SQLITE_CANTOPEN {
			errno = syscall.Errno(sqlite3.Xsqlite3_system_errno(c.tls, c.db))
		}
	}
	return &cError{op: op, code: rc, msg: msg, errno: errno}
}

// finalize finalizes stmt, if prepared.
func (c *cconn) finalize(stmt uintptr) {
	if stmt != 0 {
		sqlite3.Xsqlite3_finalize(c.tls, stmt)
	}
}

// close closes the connection (its statements finalized first by the caller) and
// frees its buffer and TLS.
func (c *cconn) close() {
	if c.db != 0 {
		sqlite3.Xsqlite3_close_v2(c.tls, c.db)
	}
	if c.buf != 0 {
		libc.Xfree(c.tls, c.buf)
	}
	c.tls.Close()
}

// A binder binds one statement's parameters, in order from the first. Texts are
// copied into the connection's buffer and bound in place (SQLITE_STATIC): they stay
// valid until the next binder of the connection. The first failure is kept in err and
// every later call does nothing.
type binder struct {
	c    *cconn
	stmt uintptr
	i    int32
	off  int
	err  error
}

// binder starts binding stmt's parameters, with room in the buffer for texts of
// textBytes bytes (each text needs its length plus one).
func (c *cconn) binder(stmt uintptr, textBytes int) binder {
	b := binder{c: c, stmt: stmt}
	if textBytes > c.size {
		if c.buf != 0 {
			libc.Xfree(c.tls, c.buf)
		}
		size := max(textBytes, 256)
		if c.buf = libc.Xmalloc(c.tls, libc.Tsize_t(size)); c.buf == 0 {
			c.size = 0
			b.err = errors.New("bind: out of memory")
			return b
		}
		c.size = size
	}
	return b
}

// text binds s. At least a byte of the buffer is used for each, so that no pointer is
// nil (a nil pointer would bind NULL).
func (b *binder) text(s string) {
	if b.err != nil {
		return
	}
	b.i++
	if b.off+len(s)+1 > b.c.size {
		b.err = errors.New("bind: texts larger than reserved")
		return
	}
	mem := unsafe.Slice((*byte)(cmem(b.c.buf)), b.c.size)
	copy(mem[b.off:], s)
	if rc := sqlite3.Xsqlite3_bind_text(b.c.tls, b.stmt, b.i, b.c.buf+uintptr(b.off), int32(len(s)), 0); rc != sqlite3.SQLITE_OK {
		b.err = b.c.err("bind", rc)
	}
	b.off += len(s) + 1
}

// int64 binds v.
func (b *binder) int64(v int64) {
	if b.err != nil {
		return
	}
	b.i++
	if rc := sqlite3.Xsqlite3_bind_int64(b.c.tls, b.stmt, b.i, v); rc != sqlite3.SQLITE_OK {
		b.err = b.c.err("bind", rc)
	}
}

// null binds NULL.
func (b *binder) null() {
	if b.err != nil {
		return
	}
	b.i++
	if rc := sqlite3.Xsqlite3_bind_null(b.c.tls, b.stmt, b.i); rc != sqlite3.SQLITE_OK {
		b.err = b.c.err("bind", rc)
	}
}

// textOrNull binds s, or NULL when s is empty (an empty value is stored as NULL).
func (b *binder) textOrNull(s string) {
	if s == "" {
		b.null()
		return
	}
	b.text(s)
}

// text returns column i of stmt's current row as a Go string; "" for NULL.
func (c *cconn) text(stmt uintptr, i int32) string {
	p := sqlite3.Xsqlite3_column_text(c.tls, stmt, i)
	n := sqlite3.Xsqlite3_column_bytes(c.tls, stmt, i)
	if p == 0 || n == 0 {
		return ""
	}
	return string(unsafe.Slice((*byte)(cmem(p)), n))
}

func (c *cconn) int64(stmt uintptr, i int32) int64 {
	return sqlite3.Xsqlite3_column_int64(c.tls, stmt, i)
}

func (c *cconn) null(stmt uintptr, i int32) bool {
	return sqlite3.Xsqlite3_column_type(c.tls, stmt, i) == sqlite3.SQLITE_NULL
}
