// Package sqlite is the embedded default store of Socius: one SQLite file, pure Go
// (modernc.org/sqlite, no cgo), that implements socius.Store.
//
// # Durability and throughput
//
// The contract says a write returns only after it is durable, so the database runs in
// WAL mode with synchronous=FULL: every commit fsyncs the write-ahead log. An fsync
// costs from tens of microseconds to several milliseconds, and SQLite allows one writer
// at a time, so one transaction per request would cap the server at one request per
// fsync.
//
// Instead every write goes through a single writer goroutine (group commit). A write is
// a small function of a *sql.Tx, sent to the writer over a channel. The writer takes
// whatever is pending (up to maxBatch operations), runs them all in one transaction,
// each inside its own SAVEPOINT so that an operation that fails (an unknown user, a
// taken key) rolls back only itself, commits once and answers every caller. One fsync
// then covers the whole batch: the busier the server, the larger the batches. Writes
// that arrive while a batch runs join it, and a batch much smaller than the previous
// one waits up to commitDelay for the rest of a busy moment's writes (under load,
// callers come back in a group once answered). A caller blocks until its batch has
// committed; its context is honoured while it waits to be taken, but once taken it
// learns the real outcome of the commit. The hot writes are fixed statements prepared
// once on the writer's connection. Profile updates, the hottest write, also have a form
// for a second writer connection opened with SQLite's C API: a batch made only of them
// runs there, without database/sql and without savepoints (see fastwrite.go).
//
// Reads never wait behind the writer: they use a separate pool of read-only
// connections, and WAL lets them read the last committed state while a batch is being
// written. The user lookup of getUserInfo has connections of its own, used through
// SQLite's C API rather than database/sql (see lookup.go). Sites and keys, read by
// every call, are served from memory for as long as the WAL-index header shows that
// nothing has been committed since, other than the writer's own commits of users and
// tokens (see cache.go and carryCache).
//
// The WAL is copied back into the database file beside the writer, by a checkpointer
// whose copies are on disk before SQLite may start the WAL over (see checkpoint.go).
//
// # Schema
//
// The schema lives in numbered files under migrations/, embedded in the binary. Open
// applies, in order, those that schema_migrations does not list, each in one transaction
// with its record, so that reopening a database applies nothing twice. The SQL stays
// plain (no JSON, no SQLite-only functions) so that the PostgreSQL store can mirror it:
// times are integer Unix milliseconds, an empty value (a profile field, a token's UID or
// userKey, a time that never came) is NULL. One difference: here the users table is keyed
// by (site, uid), site being a small number of the site (sites.id), in a table without
// rowid, so that a lookup is one search of one B-tree (0003; PostgreSQL keys users by
// api_key).
//
// # Tokens
//
// A token names its user by UID, without a foreign key to users: Logout and DeleteUser
// revoke a user's tokens in the same operation as they change the user, and the rows of
// a deleted user's tokens stay, revoked, until DeleteExpiredTokens, so that a client
// presenting one is told it was revoked rather than that it never existed. A token that
// is revoked stays revoked at its first revocation time, however often it is revoked
// again. RenameUser moves the tokens with the user; DeleteUsers removes every token
// bound to a UID of the site, those of users deleted before included.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/socius/socius"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

var _ socius.Store = (*Store)(nil)

// Store is a socius.Store kept in one SQLite file.
type Store struct {
	wdb *sql.DB // one connection, used only by the writer goroutine (and by Open to migrate)
	rdb *sql.DB // read-only pool

	// The lookups of every request, prepared once on the read pool: parsing their SQL
	// would cost about a third of running them.
	siteStmt, keyStmt, tokenStmt *sql.Stmt
	// lookups read users (User), outside database/sql: see lookup.go.
	lookups lookups
	// The statements of the writer's hot path, prepared once on its connection.
	stmts writeStmts
	// wc is the writer's second connection, for batches of profile updates (see
	// fastwrite.go); carry is an operation the writer took while such a batch ran,
	// which starts its next batch. Both are the writer goroutine's.
	wc      *writeConn
	carry   *writeOp
	carries atomic.Int64 // operations carried so: for tests
	// cache serves Site and Key while the database is unchanged; nil: uncached.
	cache *cache
	// strayShm is a descriptor of the WAL-index that a cache could not use, to close
	// after every connection (see openCache).
	strayShm *os.File
	// files are the database files opened, checked after each commit (files.go).
	files files
	// broken is set by fail: a sync to the disk failed (files.go).
	broken atomic.Pointer[error]
	// afterCommit, when set (by tests), runs right after each batch commits.
	afterCommit func()

	ops     chan *writeOp // to the writer; unbuffered, so a sent op is always taken
	closing chan struct{} // closed by Close: the writer stops, new writes fail
	stopped chan struct{} // closed by the writer when it has stopped

	// The checkpointer, its database handle, the commits it watches, and its end.
	ckpt        *checkpointer
	ckdb        *sql.DB
	commits     atomic.Int64
	ckptStopped chan struct{}

	// readDSN opens a read-only connection: the views' (snapshot.go). views are
	// the views open, which Close ends first; viewsClosed refuses new ones.
	readDSN     string
	viewsMu     sync.Mutex
	views       map[*view]struct{}
	viewsClosed bool

	closeOnce sync.Once
	closeErr  error
}

// busyTimeout is how long a connection waits for a lock held by another process (an
// admin command writing to the same file) before it fails with SQLITE_BUSY, unless
// Options.BusyTimeout says otherwise.
const busyTimeout = 5 * time.Second

// Options are the settings of a store that Open leaves at their defaults.
type Options struct {
	// BusyTimeout is how long a connection waits for a lock that another process
	// holds (an admin command, a backup, any program writing to the file) before the
	// operation fails with SQLITE_BUSY (a database error, 500028 to a caller): 5 s when
	// zero. A server whose answers must go out by a deadline sets it shorter, so that
	// such a wait ends in time for the answer.
	BusyTimeout time.Duration
}

// Open opens the database at path, creating it and its folder when missing, and brings
// its schema up to date. The file and folder are created readable by the owner only:
// they hold the sites' secrets.
func Open(path string) (*Store, error) {
	return OpenWith(path, Options{})
}

// OpenWith is Open with the settings of o.
func OpenWith(path string, o Options) (*Store, error) {
	busyFor := o.BusyTimeout
	if busyFor <= 0 {
		busyFor = busyTimeout
	}
	// The path is handed to the driver followed by "?pragmas": it must be a plain file
	// name, not a URI or an in-memory database (which each connection would see apart).
	if path == "" || path == ":memory:" || strings.HasPrefix(path, "file:") || strings.Contains(path, "?") {
		return nil, fmt.Errorf("sqlite: open %q: want the path of a database file", path)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	// SQLite gives the -wal and -shm files the mode of the database file.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, unwritableDatabase(path, err))
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}

	// What cannot be written is asked before SQLite opens anything (see
	// unwritableAtOpen), and said only if SQLite then cannot write.
	unwritable := unwritableAtOpen(path)

	busy := fmt.Sprintf("_pragma=busy_timeout(%d)", busyFor.Milliseconds())
	wdb, err := sql.Open("sqlite", path+"?"+busy+
		"&_pragma=foreign_keys(1)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)"+
		"&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	wdb.SetMaxOpenConns(1)
	wdb.SetMaxIdleConns(1)
	wdb.SetConnMaxLifetime(0)
	wdb.SetConnMaxIdleTime(0)
	applied, err := migrate(wdb)
	if err != nil {
		// The first statements that write are the migrations': a file or folder that
		// cannot be written fails them, which is said as what it is.
		if cannotWrite(err) {
			if unwritable == nil {
				unwritable = unwritableAtOpen(path)
			}
			if unwritable != nil {
				err = unwritable
			}
		}
		wdb.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	if applied > 0 {
		compact(wdb)
	}

	readDSN := path + "?" + busy + "&_pragma=query_only(1)"
	rdb, err := sql.Open("sqlite", readDSN)
	if err != nil {
		wdb.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	readers := max(4, runtime.GOMAXPROCS(0))
	rdb.SetMaxOpenConns(readers)
	rdb.SetMaxIdleConns(readers)

	s := &Store{
		wdb:     wdb,
		rdb:     rdb,
		ops:     make(chan *writeOp),
		closing: make(chan struct{}),
		stopped: make(chan struct{}),
		readDSN: readDSN,
	}
	for _, p := range []struct {
		db   *sql.DB
		stmt **sql.Stmt
		sql  string
	}{
		{rdb, &s.siteStmt, selectSite},
		{rdb, &s.keyStmt, selectKey},
		{rdb, &s.tokenStmt, selectToken},
		{wdb, &s.stmts.savepoint, `SAVEPOINT op`},
		{wdb, &s.stmts.release, `RELEASE SAVEPOINT op`},
		{wdb, &s.stmts.rollbackTo, `ROLLBACK TO SAVEPOINT op`},
		{wdb, &s.stmts.updateProfile, updateProfileSQL},
		{wdb, &s.stmts.loginUpdate, loginUpdateSQL},
		{wdb, &s.stmts.loginInsert, loginInsertSQL},
		{wdb, &s.stmts.dataVersion, `PRAGMA data_version`},
	} {
		if *p.stmt, err = p.db.Prepare(p.sql); err != nil {
			s.closeStmts()
			rdb.Close()
			wdb.Close()
			return nil, fmt.Errorf("sqlite: open %s: prepare: %w", path, err)
		}
	}
	if s.lookups, err = openLookups(path, readers, busyFor); err != nil {
		s.closeStmts()
		rdb.Close()
		wdb.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	if s.wc, err = openWriteConn(path, busyFor); err != nil {
		s.lookups.close()
		s.closeStmts()
		rdb.Close()
		wdb.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	s.cache, s.strayShm = openCache(path, readDSN)
	s.files = openFiles(path)
	// Without its checkpointer, the store still works: the writer's own checkpoints
	// copy everything (see checkpoint.go).
	if s.ckdb, err = sql.Open("sqlite", path+"?"+busy+"&_pragma=synchronous(OFF)"); err == nil {
		s.ckdb.SetMaxOpenConns(2) // the pin and the copy
		if s.ckpt, err = openCheckpointer(s.ckdb, path); err == nil {
			s.ckpt.onSyncFail = s.fail
			auto := fmt.Sprintf("PRAGMA wal_autocheckpoint = %d", writerAutoCheckpoint)
			s.wc.exec(auto)
			s.wdb.Exec(auto) // its only connection, kept open
			s.ckptStopped = make(chan struct{})
			go s.checkpoints()
		} else {
			s.ckdb.Close()
			s.ckdb = nil
		}
	}
	go s.writer()
	return s, nil
}

// writeStmts are the statements of the writer's hot path.
type writeStmts struct {
	savepoint, release, rollbackTo          *sql.Stmt
	updateProfile, loginUpdate, loginInsert *sql.Stmt
	dataVersion                             *sql.Stmt
}

// lookupContext is the context of a point lookup: ctx without its cancellation. A
// lookup by primary key takes microseconds, too short to interrupt, and the driver
// watches a cancellable context with a goroutine per statement, which costs more than
// the lookup's own work. A context that is already done still fails the lookup.
func lookupContext(ctx context.Context) context.Context {
	return context.WithoutCancel(ctx)
}

func (s *Store) closeStmts() error {
	var errs []error
	w := s.stmts
	for _, stmt := range []*sql.Stmt{s.siteStmt, s.keyStmt, s.tokenStmt,
		w.savepoint, w.release, w.rollbackTo, w.updateProfile, w.loginUpdate, w.loginInsert, w.dataVersion} {
		if stmt != nil {
			errs = append(errs, stmt.Close())
		}
	}
	return errors.Join(errs...)
}

// Close stops the writer, after the batch it is committing, and closes the database.
// Writes that are still waiting fail, and so do the reads of views left open (Close
// ends them first). Close may be called more than once.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		// The views first: their connections must be closed before the store's own
		// descriptors of the files are (see checkpointer.closeFiles).
		s.closeViews()
		close(s.closing)
		<-s.stopped
		if err := s.failure(); err != nil {
			// Closed, the last connection would checkpoint, trusting the disk, and
			// delete the WAL: left open, the process's end leaves the WAL to the
			// next start's recovery (see checkpointer.syncFailed).
			if s.ckpt != nil {
				<-s.ckptStopped
			}
			s.closeErr = fmt.Errorf("sqlite: close: %w; the database stays open until the process ends", err)
			return
		}
		s.wc.close()
		var ckErr error
		if s.ckpt != nil {
			<-s.ckptStopped
			ckErr = errors.Join(s.ckpt.close(), s.ckdb.Close())
		}
		s.lookups.drain()
		s.closeErr = errors.Join(s.closeStmts(), s.cache.closeConns(), ckErr, s.wdb.Close(), s.rdb.Close())
		// The store's own descriptors, after every connection (see closeFiles).
		s.closeErr = errors.Join(s.closeErr, s.cache.closeFile())
		if s.strayShm != nil {
			s.closeErr = errors.Join(s.closeErr, s.strayShm.Close())
		}
		if s.ckpt != nil {
			s.closeErr = errors.Join(s.closeErr, s.ckpt.closeFiles())
		}
		if s.closeErr != nil {
			s.closeErr = fmt.Errorf("sqlite: close: %w", s.closeErr)
		}
	})
	return s.closeErr
}

//go:embed migrations/*.sql migrations/superseded/*.sql
var migrations embed.FS

// migrate applies the migrations that the database has not seen, in order, and
// reports how many it applied.
func migrate(db *sql.DB) (int, error) {
	if _, err := db.Exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		name       TEXT NOT NULL,
		applied_at INTEGER NOT NULL
	)`); err != nil {
		return 0, fmt.Errorf("create schema_migrations: %w", err)
	}
	names, err := fs.Glob(migrations, "migrations/*.sql") // in lexical order: 0001_, 0002_, ...
	if err != nil {
		return 0, err
	}
	// A store that a newer Socius migrated has tables this one does not know how to use.
	var newest int
	if err := db.QueryRow(`SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&newest); err != nil {
		return 0, fmt.Errorf("read schema_migrations: %w", err)
	}
	if known := migrationVersion(names[len(names)-1]); newest > known {
		return 0, fmt.Errorf("the store was migrated by a newer Socius (schema version %d; this one knows up to %d): run that version, or restore the backup taken before the upgrade", newest, known)
	}
	applied := 0
	for _, name := range names {
		base := filepath.Base(name)
		version := migrationVersion(name)
		if version == 0 {
			return applied, fmt.Errorf("migration %s: name does not start with a number", base)
		}
		ok, err := applyMigration(db, version, name)
		if err != nil {
			return applied, fmt.Errorf("migration %s: %w", base, err)
		}
		if ok {
			applied++
		}
	}
	return applied, nil
}

// migrationVersion is the number a migration's file name starts with; 0 if none.
func migrationVersion(name string) int {
	prefix, _, _ := strings.Cut(filepath.Base(name), "_")
	v, err := strconv.Atoi(prefix)
	if err != nil || v <= 0 {
		return 0
	}
	return v
}

// compact gives the file's free pages back when more than a quarter of it is free, as
// after a migration that rebuilt a table (0003 rebuilds the users table: a store of a
// million users would otherwise keep the old table's 230 MB as free pages). VACUUM
// rewrites the whole database, a couple of seconds for a million users, once. It is
// best effort: when it cannot run (another process writing to the database, say), the
// free pages are reused by later writes instead.
func compact(db *sql.DB) {
	var pages, free int64
	if db.QueryRow(`PRAGMA page_count`).Scan(&pages) != nil || db.QueryRow(`PRAGMA freelist_count`).Scan(&free) != nil {
		return
	}
	if free*4 > pages {
		db.Exec(`VACUUM`)
	}
}

// applyMigration runs one migration and records it in the same transaction, unless
// it is recorded already. The transaction begins IMMEDIATE (the writer's DSN says so),
// so a second process opening the same file waits, then finds the record.
func applyMigration(db *sql.DB, version int, name string) (bool, error) {
	tx, err := db.Begin()
	if err != nil {
		return false, err
	}
	defer tx.Rollback()

	base := filepath.Base(name)
	var recorded string
	err = tx.QueryRow(`SELECT name FROM schema_migrations WHERE version = ?`, version).Scan(&recorded)
	switch {
	case err == nil && recorded == base:
		return false, nil
	case err == nil:
		// The version was applied by a development build that had another migration
		// of that number: repaired when Socius knows it, else refused (the statements
		// of this version's migration may not fit what that one made).
		repair, rerr := supersededRepair(version, recorded, base)
		if rerr != nil {
			return false, rerr
		}
		if _, err := tx.Exec(string(repair)); err != nil {
			return false, fmt.Errorf("repairing %s: %w", recorded, err)
		}
		if _, err := tx.Exec(`UPDATE schema_migrations SET name = ?, applied_at = ? WHERE version = ?`,
			base, time.Now().UnixMilli(), version); err != nil {
			return false, err
		}
		return true, tx.Commit()
	case !errors.Is(err, sql.ErrNoRows):
		return false, err
	}
	body, err := migrations.ReadFile(name)
	if err != nil {
		return false, err
	}
	if _, err := tx.Exec(string(body)); err != nil {
		return false, err
	}
	if _, err := tx.Exec(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
		version, filepath.Base(name), time.Now().UnixMilli()); err != nil {
		return false, err
	}
	return true, tx.Commit()
}

// supersededRepair returns the statements that turn a store on which a development
// build applied recorded as its migration version into one on which this build applied
// want, from migrations/superseded; an error that says what to do when Socius has none.
func supersededRepair(version int, recorded, want string) ([]byte, error) {
	// Only a repair of that version: its file name starts with the version's number.
	if fs.ValidPath(recorded) && !strings.Contains(recorded, "/") && strings.HasPrefix(recorded, fmt.Sprintf("%04d_", version)) {
		if body, err := migrations.ReadFile("migrations/superseded/" + recorded); err == nil {
			return body, nil
		}
	}
	return nil, fmt.Errorf("the store's schema version %d is %q, which this Socius does not know (its version %d is %s): "+
		"a development build of Socius made the store; with that build, export it (`socius user export --with-site`) and import the file into a new store", version, recorded, version, want)
}

// resultCode is SQLite's (extended) result code in err, from the driver or from the
// writer's C API connection; -1 when err holds none.
func resultCode(err error) int {
	var e *sqlite.Error
	var ce *cError
	switch {
	case errors.As(err, &e):
		return e.Code()
	case errors.As(err, &ce):
		return int(ce.code)
	}
	return -1
}

// errorFor translates a driver error at the store's boundary: a taken primary key is
// socius.ErrExists, a reference to a missing site socius.ErrNotFound, anything else a
// database error (500028) that keeps the cause for the logs.
func errorFor(op string, err error) error {
	switch resultCode(err) {
	case sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY, sqlite3.SQLITE_CONSTRAINT_UNIQUE:
		return socius.ErrExists
	case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
		return socius.ErrNotFound
	case sqlite3.SQLITE_CONSTRAINT_NOTNULL:
		// Every NOT NULL column is written from a Go value except a user's site
		// number, which siteOf finds: NULL when the site does not exist.
		return socius.ErrNotFound
	}
	return dbError("sqlite: "+op, err)
}

// dbError is socius.DatabaseError, or socius.DiskFullError when SQLite found the disk
// full (SQLITE_FULL: a write or the WAL could not grow), or one that says the store's
// files cannot be written when SQLite or the system said so (see readOnly).
func dbError(op string, err error) error {
	if code := resultCode(err); code >= 0 && code&0xff == sqlite3.SQLITE_FULL {
		return socius.DiskFullError(op, err)
	}
	if why := readOnly(err); why != "" {
		return socius.DatabaseErrorSaying(why, op, err)
	}
	return socius.DatabaseError(op, err)
}

// Store.dbError is dbError for the writer's batches: it also tells a write that failed
// because the store's files cannot be written when the error itself does not say so
// (see files.unwritable).
func (s *Store) dbError(op string, err error) error {
	if readOnly(err) == "" {
		if why := s.files.unwritable(err); why != "" {
			return socius.DatabaseErrorSaying(why, op, err)
		}
	}
	return dbError(op, err)
}

// readOnly is what a client is told when err is a write refused because the store's
// files cannot be written, else "": SQLite found the database read-only
// (SQLITE_READONLY: it could open the files for reading only), or the system refused
// a write (EROFS: a read-only file system, as the kernel makes one after an error;
// EPERM: an immutable file; EACCES: the files' permissions). The client learns what
// happened, in words, and the log has the error itself (the path, the system's
// message). With the driver's errors, which hold no system error number, an I/O error
// is not told apart here: see Store.dbError.
func readOnly(err error) string {
	if code := resultCode(err); code >= 0 && code&0xff == sqlite3.SQLITE_READONLY {
		return readOnlyFiles
	}
	var ce *cError
	if errors.As(err, &ce) {
		return refusedWrite(ce.errno)
	}
	return ""
}

// cannotWrite reports whether err is SQLite's failure to write or open a file: the
// database read-only, a file it could not open, an I/O error, a refused permission.
func cannotWrite(err error) bool {
	switch resultCode(err) & 0xff {
	case sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_PERM:
		return true
	}
	return false
}

// The details of a write refused because the store's files cannot be written.
const (
	readOnlyFiles      = "the store's files cannot be written (read-only); nothing was written"
	readOnlyFileSystem = "the store's files cannot be written (a read-only file system); nothing was written"
)

// refusedWrite is readOnly for a system error number: "" unless it is a refused write.
func refusedWrite(errno syscall.Errno) string {
	switch errno {
	case syscall.EROFS:
		return readOnlyFileSystem
	case syscall.EPERM, syscall.EACCES:
		return readOnlyFiles
	}
	return ""
}

// millis and fromMillis convert times to and from the stored Unix milliseconds.
func millis(t time.Time) int64 { return t.UnixMilli() }

func fromMillis(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

// nullMillis and fromNullMillis do the same for optional times: the zero time is NULL.
func nullMillis(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return millis(t)
}

func fromNullMillis(ms sql.NullInt64) time.Time {
	if !ms.Valid {
		return time.Time{}
	}
	return fromMillis(ms.Int64)
}
