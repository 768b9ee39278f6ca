package sqlite

import (
	"errors"
	"fmt"
	"os"

	sqlite3 "modernc.org/sqlite/lib"
)

// A database file deleted or replaced while the store has it open (an `rm` of the data
// folder, a restore moved in its place) keeps taking writes: SQLite writes to the file
// it opened, which no path names any more, and everything written since is gone at the
// next start. (A file overwritten in place, as `cp` onto it does, is the same file to
// the system and is not seen; it is corrupted rather than lost, which no check here
// can mend.) So the store remembers which files it opened, and the writer checks,
// after each commit and before it answers, that the paths still name them: if not,
// the batch fails (500028) and so does every later one, and Healthy says why, so that
// /readyz takes the node out of rotation. One stat of each file a batch.
//
// The WAL-index (-shm) is checked by Healthy only. SQLite maps it once and keeps using
// the file it mapped, so the store's own connections stay in step when it is deleted or
// replaced, and what they commit is kept: its writes go on. But the WAL-index is where
// SQLite's connections find each other's locks (the write lock, the readers' marks)
// and the WAL's committed frames; another process that opens the database (`socius user
// export` or `import` beside the server, the sqlite3 shell, a backup tool) makes a new
// file at the path, rebuilds it from the WAL and from then on sees none of the store's
// locks nor its commits: its writes can interleave with the store's in the WAL, and the
// store's checkpoints can copy pages under its reads, which corrupts the database or
// what it reads. So /readyz says so, and a restart makes one WAL-index again.

// files are the database, WAL and WAL-index files the store opened, by path.
type files struct {
	db, wal, shm             string
	dbInfo, walInfo, shmInfo os.FileInfo // nil: the file was not there at Open
}

func openFiles(path string) files {
	f := files{db: path, wal: path + "-wal", shm: path + "-shm"}
	f.dbInfo, _ = os.Stat(f.db)
	f.walInfo, _ = os.Stat(f.wal)
	f.shmInfo, _ = os.Stat(f.shm)
	return f
}

// unwritable is, for a write that failed with an I/O error or a file SQLite could not
// open, what a client is told when the system would not let this process write the
// database or WAL file (see readOnly), else "": the driver's errors, unlike those of
// the writer's C API connection, hold no system error number, so the system is asked
// (access(2), which opens nothing: closing a descriptor of the database file would drop
// SQLite's locks on it).
func (f files) unwritable(err error) string {
	if code := resultCode(err) & 0xff; code != sqlite3.SQLITE_IOERR && code != sqlite3.SQLITE_CANTOPEN {
		return ""
	}
	for _, path := range []string{f.db, f.wal} {
		if why := refusedWrite(writeAccess(path)); why != "" {
			return why
		}
	}
	return ""
}

// errFileGone is the error of a store whose files are no longer at their paths.
var errFileGone = errors.New("the database file was deleted or replaced while Socius ran; what was written since is not in it: restore the files and restart Socius")

// check reports whether the files opened are still at their paths.
func (f files) check() error {
	for _, p := range []struct {
		path string
		info os.FileInfo
	}{{f.db, f.dbInfo}, {f.wal, f.walInfo}} {
		if p.info == nil {
			continue
		}
		now, err := os.Stat(p.path)
		if err != nil || !os.SameFile(now, p.info) {
			return fmt.Errorf("%w (%s)", errFileGone, p.path)
		}
	}
	return nil
}

// errIndexGone is the error of a store whose WAL-index is no longer at its path.
var errIndexGone = errors.New("the database's WAL-index file was deleted or replaced while Socius ran: Socius's writes are kept, but another process that opens the database now (socius user export or import, sqlite3) would not see Socius's locks and could corrupt it; restart Socius")

// checkIndex reports whether the WAL-index opened is still at its path.
func (f files) checkIndex() error {
	if f.shmInfo == nil {
		return nil
	}
	if now, err := os.Stat(f.shm); err != nil || !os.SameFile(now, f.shmInfo) {
		return fmt.Errorf("%w (%s)", errIndexGone, f.shm)
	}
	return nil
}

// What a client is told of a write refused because the store's files are gone, or
// because a sync failed before it (the server's log has the cause, with the paths):
// that the store takes no writes, and until when, so that a client knows that trying
// again soon is no use. The write refused for files gone was committed into files that
// no path names any more, which the next start does not find.
const (
	filesGoneDetails  = "the store's database file was deleted or replaced on the server, which refuses writes until it is restarted; this write is not kept"
	syncFailedDetails = "a sync of the store to its disk failed on the server, which refuses writes until it is restarted; nothing was written"
)

// errSyncFailed is the error of a store whose disk failed a sync (see fail).
var errSyncFailed = errors.New("a sync of the database to the disk failed, so the disk may not hold what it was given: writes are refused until Socius restarts, when SQLite recovers from the WAL (a write answered with this error may be found stored then)")

// fail marks the store failed for good, keeping the first reason: a sync to the disk
// failed. Healthy reports it, every later write fails with it, and Close leaves the
// database's connections open to the process's end, so that the last of them does not
// checkpoint and delete the WAL: the next start recovers from it (see
// checkpointer.syncFailed).
func (s *Store) fail(err error) {
	s.broken.CompareAndSwap(nil, &err)
}

// failure is the reason given to fail, or nil.
func (s *Store) failure() error {
	if p := s.broken.Load(); p != nil {
		return *p
	}
	return nil
}

// syncFailure reports whether err is SQLite's failed sync of a file (a commit whose
// WAL fsync failed).
func syncFailure(err error) bool {
	code := resultCode(err)
	return code == sqlite3.SQLITE_IOERR_FSYNC || code == sqlite3.SQLITE_IOERR_DIR_FSYNC
}

// Healthy reports whether the store can still keep what it is given: an error when its
// database file was deleted or replaced under it (see files), or when a sync to the
// disk failed (see fail); and whether another process may safely open the database
// beside it: an error when its WAL-index was deleted or replaced (see files).
func (s *Store) Healthy() error {
	select {
	case <-s.closing:
		return dbError("sqlite", errors.New("the store is closed"))
	default:
	}
	if err := s.failure(); err != nil {
		return dbError("sqlite", err)
	}
	if err := s.files.check(); err != nil {
		return dbError("sqlite", err)
	}
	if err := s.files.checkIndex(); err != nil {
		return dbError("sqlite", err)
	}
	return nil
}
