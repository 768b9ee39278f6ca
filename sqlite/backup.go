package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"

	sqlite3 "modernc.org/sqlite/lib"
)

// Backups
//
// A backup is a copy of a database that a running store may be writing to, taken
// without stopping it. VACUUM INTO, on a connection of its own, reads the database in
// one read transaction, which in WAL mode sees every commit made before it began and
// none made after, and writes what it reads into a new file. It never blocks the
// store's writer: SQLite lets a reader and the writer run together in WAL mode, and the
// checkpointer's checkpoints are PASSIVE (they copy what no reader needs and never wait
// for one). The WAL only grows while the backup reads, as it cannot be started over
// under a reader. The copy is compacted (free pages left out) and in rollback-journal
// mode, which a store opened on it switches to WAL.
//
// A process that may read the store's files but not write them (a backup operator's
// account) reads it read-only, which SQLite does for a WAL database through the WAL
// and WAL-index a server serving it keeps: beside a server, then, and never after it
// stopped (readOnlyCopy). Such a reader cannot take a read mark in the WAL-index, and
// reads as one that needs the database file as it is: the checkpointer copies nothing
// into it until the backup ends, and the WAL grows meanwhile; the server's writes go
// on.

// backupChecked, when a test sets it, runs between Backup's check that SQLite can read
// the store (readOnlyCopy) and SQLite's open of it: the window in which a server that
// stops takes away the files a reader that may not write the store needs.
var backupChecked func()

// Backup writes a consistent copy of the database at src, a store's file, into dst, a
// file that does not exist yet or is empty, and returns the schema version of the
// database it copied. It writes nothing to src, and does not sync dst (the caller
// does, as it decides where the copy goes). A src that does not exist is an error: no
// empty database is made.
func Backup(ctx context.Context, src, dst string) (schema int, err error) {
	immutable, err := readOnlyCopy(src)
	if err != nil {
		return 0, fmt.Errorf("sqlite: %w", err)
	}
	if backupChecked != nil {
		backupChecked()
	}
	// mode=rw: the file must exist (the driver's plain names would create it). The
	// connection writes nothing; it is not query_only, which would refuse VACUUM INTO
	// its writes to the copy. A file this process may not write SQLite opens read-only
	// (readOnlyCopy checked that it can read it so), one on a read-only file system
	// with no WAL as immutable: no lock, no WAL-index.
	uri := fileURI(src) + "?mode=rw&_pragma=" + busyPragma()
	if immutable {
		uri += "&immutable=1"
	}
	db, err := sql.Open("sqlite", uri)
	if err != nil {
		return 0, fmt.Errorf("sqlite: open %s: %w", src, err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	stopped := func() error {
		if immutable {
			return nil // no server to stop
		}
		return serverStopped(src)
	}
	if schema, err = schemaVersion(ctx, db); err != nil {
		if gone := stopped(); gone != nil {
			return 0, fmt.Errorf("sqlite: %w", gone)
		}
		return 0, fmt.Errorf("sqlite: %s: %w", src, err)
	}
	if known := SchemaVersion(); schema > known {
		return schema, fmt.Errorf("sqlite: %s: %w", src, newerSchema(schema, known))
	}
	if _, err := db.ExecContext(ctx, `VACUUM INTO ?`, dst); err != nil {
		if gone := stopped(); gone != nil {
			return schema, fmt.Errorf("sqlite: %w", gone)
		}
		if resultCode(err)&0xff == sqlite3.SQLITE_FULL {
			// Only the copy is written.
			return schema, fmt.Errorf("sqlite: copy %s: the copy's disk is full: %w", src, err)
		}
		return schema, fmt.Errorf("sqlite: copy %s: %w", src, err)
	}
	return schema, nil
}

// CopyInfo is what CheckCopy found in a copy of a store.
type CopyInfo struct {
	Schema int   // the schema version: the number of the last migration applied
	Sites  int64 // how many sites it holds
	Users  int64 // how many users, of every site
}

// CheckCopy checks the database at path, a copy that no other process uses, without
// writing to it or making any file beside it: SQLite's integrity_check finds it whole,
// its schema is one that this Socius knows, and the tables a store reads can be read.
// It returns the schema version and what the copy holds.
func CheckCopy(ctx context.Context, path string) (CopyInfo, error) {
	var info CopyInfo
	// immutable=1: nothing changes the file while it is read, so SQLite takes no lock
	// and makes no journal or WAL-index beside it.
	db, err := sql.Open("sqlite", fileURI(path)+"?mode=ro&immutable=1")
	if err != nil {
		return info, err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	rows, err := db.QueryContext(ctx, `PRAGMA integrity_check`)
	if err != nil {
		return info, fmt.Errorf("integrity_check: %w", err)
	}
	var problems []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			rows.Close()
			return info, fmt.Errorf("integrity_check: %w", err)
		}
		if line != "ok" {
			problems = append(problems, line)
		}
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return info, fmt.Errorf("integrity_check: %w", err)
	}
	if len(problems) > 0 {
		const most = 5 // SQLite lists up to 100: the first few say enough
		more := ""
		if len(problems) > most {
			more = fmt.Sprintf(" (and %d more)", len(problems)-most)
			problems = problems[:most]
		}
		return info, fmt.Errorf("integrity_check found the copy damaged: %s%s", strings.Join(problems, "; "), more)
	}
	if info.Schema, err = schemaVersion(ctx, db); err != nil {
		return info, err
	}
	if info.Schema == 0 {
		return info, errors.New("not a Socius store: no migration recorded in schema_migrations")
	}
	if known := SchemaVersion(); info.Schema > known {
		return info, newerSchema(info.Schema, known)
	}
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM sites`).Scan(&info.Sites); err != nil {
		return info, fmt.Errorf("not a Socius store: count the sites: %w", err)
	}
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM users`).Scan(&info.Users); err != nil {
		return info, fmt.Errorf("not a Socius store: count the users: %w", err)
	}
	for _, table := range []string{"keys", "tokens"} {
		var n int64
		if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM (SELECT 1 FROM `+table+` LIMIT 1)`).Scan(&n); err != nil {
			return info, fmt.Errorf("not a Socius store: read the %s: %w", table, err)
		}
	}
	return info, nil
}

// SchemaVersion is the schema version of this Socius: the number of its last
// migration.
func SchemaVersion() int {
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil || len(names) == 0 {
		return 0
	}
	return migrationVersion(names[len(names)-1])
}

// schemaVersion is the number of the last migration applied to db; 0 when none is.
func schemaVersion(ctx context.Context, db *sql.DB) (int, error) {
	var v int
	if err := db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&v); err != nil {
		return 0, fmt.Errorf("not a Socius store: read schema_migrations: %w", err)
	}
	return v, nil
}

// newerSchema is the error of a database that a newer Socius migrated.
func newerSchema(schema, known int) error {
	return fmt.Errorf("the store was migrated by a newer Socius (schema version %d; this one knows up to %d): use that version", schema, known)
}

// busyPragma is the store's busy timeout as the value of a DSN's _pragma.
func busyPragma() string {
	return fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds())
}

// fileURI is path as a SQLite URI ("file:..."), in which the characters that a URI
// gives a meaning to are escaped: with a plain name, the driver would take what
// follows a '?' in it for its own parameters.
func fileURI(path string) string {
	r := strings.NewReplacer("%", "%25", "?", "%3F", "#", "%23")
	return "file:" + r.Replace(filepath.ToSlash(filepath.Clean(path)))
}
