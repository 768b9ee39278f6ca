package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"sync/atomic"
	"time"
)

// Checkpoints copy the pages that commits appended to the WAL back into the database
// file. SQLite runs one in the committing connection once the WAL holds 1000 pages:
// with random updates over a large table those are 1000 scattered writes and an fsync,
// all inside a commit, while every write of the next batch waits. So a checkpointer
// goroutine copies the pages soon after commits, on connections of its own, while the
// writer goes on committing.
//
// A checkpoint as SQLite runs it fsyncs the WAL, copies the pages and fsyncs the
// database file: the copied pages reach the disk in one burst, and the fsync of every
// commit made meanwhile waits behind them (with a million users, a few hundred random
// pages every checkpoint, and the p99 of a durable write was twice its median). So the
// checkpointer copies on a connection with synchronous=OFF, which does not sync, then
// hands the copied pages to the disk a part of the file at a time, a little apart
// (sync_file_range on Linux), and only then makes them durable with one fdatasync.
//
// A copy that is not yet durable must not lose its source: SQLite starts the WAL over,
// writing its new frames over the old ones, once every frame has been copied and no
// reader uses the WAL, trusting the copies to be on disk. So the checkpointer holds a
// read transaction (the pin) from before its copy until after its fdatasync. While a
// reader uses the WAL, no connection, of this process or another, starts it over; and
// no checkpoint copies a frame newer than what a reader sees, so the pin, taken just
// before, lets this copy take every frame committed until then.
//
// The pin has a price: under a steady stream of commits, the copy is always behind the
// end of the WAL by the commits of the last cycle, and the WAL is started over only
// after a copy that reaches its end. So once the WAL holds restartFrames frames, the
// checkpointer ends that cycle without spreading its pages, so that the pin is held
// for as short a time as it can be, and stops; the writer, between two batches, runs
// SQLite's own checkpoint (which syncs) to copy the rest, what was committed during
// that short cycle: its next commit then starts the WAL over.
// SQLite's own automatic checkpoint on the writer's connections is set far beyond
// that (writerAutoCheckpoint), as a bound should the checkpointer fail.
const checkpointEvery = 20 * time.Millisecond

// The copied pages go to the disk in writeBackParts parts of the file, writeBackPause
// apart: within the checkpoint period, so that the fsyncs of the commits in between
// each carry a part.
const (
	writeBackParts = 8
	writeBackPause = 2 * time.Millisecond
)

// restartFrames is the WAL's length (in frames: pages) at which the writer is asked to
// copy the rest, so that the WAL starts over: about 16 MB with 4 KiB pages.
var restartFrames int64 = 4000

// restartWait is how many checkpoint periods the checkpointer waits for the writer to
// start the WAL over before it goes on copying.
const restartWait = 5

// writerAutoCheckpoint is SQLite's automatic checkpoint threshold on the writer's
// connections when the checkpointer runs.
const writerAutoCheckpoint = 16000

// A checkpointer copies the WAL back into the database file (see above). Its
// connections come from a handle opened with synchronous=OFF, and are its own.
type checkpointer struct {
	pin, copy *sql.Conn
	db, wal   *os.File // the database file and its WAL, for syncing
	pinned    bool     // the pin's transaction is open: a copy is not yet durable

	// restart is set by the checkpointer when the WAL has grown to restartFrames,
	// and cleared by the writer once it has copied the rest (Store.restartWAL).
	restart atomic.Bool

	// afterCopy, when set (by tests), runs after each copy, before its sync.
	afterCopy atomic.Pointer[func()]
	spreads   atomic.Int64 // cycles whose pages went to the disk in parts: for tests
}

// openCheckpointer opens the checkpointer of the database at path, on db, its own
// handle on that database, with synchronous=OFF.
func openCheckpointer(db *sql.DB, path string) (*checkpointer, error) {
	ctx := context.Background()
	c := &checkpointer{}
	var err error
	if c.pin, err = db.Conn(ctx); err == nil {
		if c.copy, err = db.Conn(ctx); err == nil {
			// Read-write: Windows syncs only a file opened for writing. The database
			// file last, so that a failure never closes a descriptor of it (see
			// closeFiles).
			if c.wal, err = os.OpenFile(path+"-wal", os.O_RDWR, 0); err == nil {
				c.db, err = os.OpenFile(path, os.O_RDWR, 0)
			}
		}
	}
	if err != nil {
		return nil, errors.Join(err, c.close(), c.closeFiles())
	}
	return c, nil
}

// close ends a cycle under way (its copy made durable), leaves the copying
// connection syncing again, and closes the connections. The files stay open: see
// closeFiles.
func (c *checkpointer) close() error {
	var errs []error
	if c.pinned {
		errs = append(errs, c.finish())
	}
	if c.copy != nil {
		// Should this connection be the last one to close, SQLite would checkpoint
		// with its settings and delete the WAL.
		_, err := c.copy.ExecContext(context.Background(), `PRAGMA synchronous = FULL`)
		errs = append(errs, err, c.copy.Close())
	}
	if c.pin != nil {
		errs = append(errs, c.pin.Close())
	}
	return errors.Join(errs...)
}

// closeFiles closes the checkpointer's own descriptors of the database and its WAL.
// It must wait until every connection to the database in this process is closed:
// closing any descriptor of a file drops the POSIX locks that the process holds on
// it, SQLite's included.
func (c *checkpointer) closeFiles() error {
	var errs []error
	for _, f := range []*os.File{c.db, c.wal} {
		if f != nil {
			errs = append(errs, f.Close())
		}
	}
	return errors.Join(errs...)
}

// cycle copies the WAL's frames back into the database file and makes the copies
// durable. A cycle that fails while its copy is not yet durable stays pinned, and the
// next cycle starts with the sync.
func (c *checkpointer) cycle(closing <-chan struct{}) error {
	long := false // the WAL has grown to restartFrames
	if !c.pinned {
		ctx := context.Background()
		if _, err := c.pin.ExecContext(ctx, `BEGIN`); err != nil {
			// Should a transaction be left from a ROLLBACK that failed, end it.
			c.pin.ExecContext(ctx, `ROLLBACK`)
			return err
		}
		// The transaction's first read takes its snapshot: the pin.
		var n int
		if err := c.pin.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations`).Scan(&n); err != nil {
			c.pin.ExecContext(ctx, `ROLLBACK`)
			return err
		}
		c.pinned = true
		// What is copied must be durable in the WAL first. The server's commits are
		// (synchronous=FULL); another program's might not be.
		if err := datasync(c.wal); err != nil {
			return err
		}
		// A checkpoint that fails (another one under way, an I/O error) copied
		// nothing or a part: either way, the sync below covers it.
		var busy, frames, copied int64
		if c.copy.QueryRowContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &frames, &copied) == nil {
			long = frames >= restartFrames
		}
		if hook := c.afterCopy.Load(); hook != nil {
			(*hook)()
		}
		// When the writer is to copy the rest, the pin goes as soon as it can: the
		// writer's copy, which it waits for, takes what was committed meanwhile.
		if !long {
			c.writeBack(closing)
		}
	}
	if err := c.finish(); err != nil {
		return err
	}
	if long {
		c.restart.Store(true) // the writer's checkpoint must not meet the pin
	}
	return nil
}

// writeBack starts writing the database file's dirty pages to the disk, a part of
// the file at a time, writeBackPause apart, until done or closing.
func (c *checkpointer) writeBack(closing <-chan struct{}) {
	if !canWriteBack {
		return
	}
	fi, err := c.db.Stat()
	if err != nil {
		return
	}
	c.spreads.Add(1)
	part := (fi.Size() + writeBackParts - 1) / writeBackParts
	for i := range int64(writeBackParts) {
		if writeBackRange(c.db, i*part, part) != nil {
			return
		}
		select {
		case <-closing:
			return
		case <-time.After(writeBackPause):
		}
	}
}

// finish makes the cycle's copy durable and releases the pin.
func (c *checkpointer) finish() error {
	if err := datasync(c.db); err != nil {
		return err // stays pinned
	}
	c.pinned = false
	_, err := c.pin.ExecContext(context.Background(), `ROLLBACK`)
	return err
}

// checkpoints runs a cycle at most every checkpointEvery while commits happen, until
// the store closes. While the writer is asked to start the WAL over, it waits, for
// at most restartWait periods (a writer without writes to run does not answer).
func (s *Store) checkpoints() {
	defer close(s.ckptStopped)
	c := s.ckpt
	t := time.NewTicker(checkpointEvery)
	defer t.Stop()
	var seen int64
	waited := 0
	for {
		select {
		case <-s.closing:
			return
		case <-t.C:
		}
		if c.restart.Load() {
			if waited++; waited < restartWait {
				continue
			}
			c.restart.Store(false)
		}
		waited = 0
		if n := s.commits.Load(); n != seen || c.pinned {
			seen = n
			// A failure leaves the work to the next cycle.
			c.cycle(s.closing)
		}
	}
}

// restartWAL runs on the writer, between batches: when the checkpointer asks, it
// copies what the checkpointer has not, with SQLite's own checkpoint, which syncs.
// The WAL then holds no frame that is not in the database file, and the next commit
// starts it over.
func (s *Store) restartWAL() {
	if s.ckpt == nil || !s.ckpt.restart.Load() {
		return
	}
	s.wc.exec(`PRAGMA wal_checkpoint(PASSIVE)`)
	s.ckpt.restart.Store(false)
}
