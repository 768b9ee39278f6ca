package sqlite

import (
	"time"

	"modernc.org/libc"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/socius/socius"
)

// Every setUserInfo is one profile update, and the writer runs them one after the
// other: while it does, every write of the server waits. Through database/sql each
// update cost the writer about twice SQLite's own work (the driver converting and
// binding nineteen parameters, copying each text into memory of its own; database/sql's
// locks; a savepoint and its release around the statement). So the writer has a
// second connection, opened with the C API (cconn), on which it runs the batches made
// only of profile updates: one statement prepared once, its parameters bound from the
// connection's buffer, and no savepoint, because a profile update is one statement and
// SQLite undoes a statement that fails by itself. A batch holding any other write runs
// on the database/sql connection as before, profile updates included (an operation has
// both forms).
//
// The two connections are used by the writer goroutine only, one after the other, and
// each takes the write lock for its transaction, so they never write at once.

// A writeConn is the writer's C API connection and its prepared statements.
type writeConn struct {
	cconn
	begin, commit, rollback, update, dataVersion uintptr

	out uintptr    // 8 bytes of libc memory for a file control's answer
	wal *walBuffer // the WAL file's buffer, once installed (walbuf.go)
}

func openWriteConn(path string, busy time.Duration) (*writeConn, error) {
	c := &writeConn{cconn: cconn{tls: libc.NewTLS()}}
	if err := c.openWrite(path, busy); err != nil {
		c.close()
		return nil, err
	}
	return c, nil
}

// openWrite opens the connection with the settings of the database/sql writer
// connection (see Open): synchronous FULL above all, so that a commit is durable
// when it returns.
func (c *writeConn) openWrite(path string, busy time.Duration) error {
	if err := c.open(path, busy); err != nil {
		return err
	}
	if err := c.exec(`PRAGMA foreign_keys = 1; PRAGMA synchronous = FULL`); err != nil {
		return err
	}
	for _, p := range []struct {
		stmt *uintptr
		sql  string
	}{
		{&c.begin, `BEGIN IMMEDIATE`},
		{&c.commit, `COMMIT`},
		{&c.rollback, `ROLLBACK`},
		{&c.update, updateProfileSQL},
		{&c.dataVersion, `PRAGMA data_version`},
	} {
		var err error
		if *p.stmt, err = c.prepare(p.sql); err != nil {
			return err
		}
	}
	return nil
}

func (c *writeConn) close() {
	for _, stmt := range []uintptr{c.begin, c.commit, c.rollback, c.update, c.dataVersion} {
		c.finalize(stmt)
	}
	if c.out != 0 {
		libc.Xfree(c.tls, c.out)
	}
	c.cconn.close() // closes the WAL file, and with it frees its buffer
}

// run steps stmt, which returns no rows, and resets it.
func (c *writeConn) run(stmt uintptr, op string) error {
	defer sqlite3.Xsqlite3_reset(c.tls, stmt)
	if rc := sqlite3.Xsqlite3_step(c.tls, stmt); rc != sqlite3.SQLITE_DONE {
		return c.err(op, rc)
	}
	return nil
}

// inTx reports whether a transaction is open: after a failed statement, false means
// that SQLite rolled the whole transaction back (as it may on a full disk or an I/O
// error).
func (c *writeConn) inTx() bool {
	return sqlite3.Xsqlite3_get_autocommit(c.tls, c.db) == 0
}

// version returns the connection's data version (see carryCache).
func (c *writeConn) version() (int64, error) {
	stmt := c.dataVersion
	defer sqlite3.Xsqlite3_reset(c.tls, stmt)
	if rc := sqlite3.Xsqlite3_step(c.tls, stmt); rc != sqlite3.SQLITE_ROW {
		return 0, c.err("step", rc)
	}
	return c.int64(stmt, 0), nil
}

// updateProfile is Store.updateProfile on this connection: the same statement with
// the same parameters.
func (c *writeConn) updateProfile(apiKey, uid string, patch *socius.Patch, now int64) error {
	stmt := c.update
	n := len(apiKey) + 1 + len(uid) + 1
	for f := range socius.NumFields {
		if v, held := patch.Get(f); held {
			n += len(v) + 1
		}
	}
	b := c.binder(stmt, n)
	for f := range socius.NumFields {
		v, held := patch.Get(f)
		if held {
			b.int64(1)
			b.textOrNull(v)
		} else {
			b.int64(0)
			b.null()
		}
	}
	b.int64(now)
	b.text(apiKey)
	b.text(uid)
	if b.err != nil {
		return errorFor("update profile", b.err)
	}
	if err := c.run(stmt, "step"); err != nil {
		return errorFor("update profile", err)
	}
	if sqlite3.Xsqlite3_changes(c.tls, c.db) == 0 {
		return socius.ErrNotFound
	}
	return nil
}
