package sqlite

import (
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
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
//
// How often to copy depends on the writes. When they are spread over more pages than
// a period's commits (a large table: each write dirties a page of its own), waiting
// saves no work, and the copies are best small: a cycle every checkpointEvery. When
// they fall on a small set of pages (a small table, or a few hot users), the same
// pages come back again and again, and a cycle copies each once however many times it
// was written: waiting longer copies less. So each cycle counts the distinct pages
// among the frames it copied (from the WAL-index, which lists each frame's page); when
// they are fewer than shortRepeats of the frames, the checkpointer waits
// checkpointEveryLong between cycles, until they are again more than longRepeats of
// the frames of a long cycle (a long cycle sees more repeats than a short one over the
// same pages, hence two thresholds).
const (
	checkpointEvery     = 20 * time.Millisecond
	checkpointEveryLong = 100 * time.Millisecond
	shortRepeats        = 0.8
	longRepeats         = 0.5
	// judgeFrames is the fewest frames a cycle must copy for its count to decide.
	judgeFrames = 32
)

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
	shm       *os.File // the WAL-index, to read which pages a cycle copied; nil: not read
	pinned    bool     // the pin's transaction is open: a copy is not yet durable

	// The last cycle's copy: the frames it took, from copied[0]+1 to copied[1], how
	// many they are and how many distinct pages among them (0, 0: not known). pages is
	// reused from cycle to cycle.
	copied           [2]uint32
	frames, distinct int
	pages            []uint32
	// long is set while cycles are checkpointEveryLong apart (read by tests).
	long atomic.Bool
	// catchUp is set by a long-apart cycle that found the WAL at restartFrames: it
	// spread its pages as usual, and the next cycle, checkpointEvery later, asks the
	// writer (see cycle).
	catchUp bool

	// restart is set by the checkpointer when the WAL has grown to restartFrames,
	// and cleared by the writer once it has copied the rest (Store.restartWAL).
	restart atomic.Bool

	// failed is set by a sync that failed (syncFailed): the checkpointer stops for
	// good, pinned. onSyncFail tells the store.
	failed     error
	onSyncFail func(error)

	// copyErr is why the copies fail, since the last one that worked (nil: they
	// work); logger, when set, is told once when they start failing and once when
	// they work again (see noteCopy). path is the database file's.
	copyErr    error
	copyFailed time.Time // the last copy that failed
	logger     atomic.Pointer[slog.Logger]
	path       string

	// afterCopy, when set (by tests), runs after each copy, before its sync.
	afterCopy atomic.Pointer[func()]
	// syncFault, when set (by tests), runs before each sync, and a failure it returns
	// is the sync's.
	syncFault atomic.Pointer[func(*os.File) error]
	spreads   atomic.Int64 // cycles whose pages went to the disk in parts: for tests
	uncopied  atomic.Int64 // cycles whose copy failed: for tests
	catchUps  atomic.Int64 // long-apart cycles that spread before asking: for tests
}

// openCheckpointer opens the checkpointer of the database at path, on db, its own
// handle on that database, with synchronous=OFF.
func openCheckpointer(db *sql.DB, path string) (*checkpointer, error) {
	ctx := context.Background()
	c := &checkpointer{path: path}
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
	// Without the WAL-index (it cannot be opened), cycles stay checkpointEvery apart.
	if shm, err := os.Open(path + "-shm"); err == nil {
		c.shm = shm
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
	for _, f := range []*os.File{c.shm, c.db, c.wal} {
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
	if c.failed != nil {
		return c.failed
	}
	long := false // the WAL has grown to restartFrames: the writer is to copy the rest
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
		if err := c.sync(c.wal); err != nil {
			return c.syncFailed("the WAL", err)
		}
		// A checkpoint that fails (another one under way, an I/O error) copied
		// nothing or a part: either way, the sync below covers it.
		c.frames, c.distinct = 0, 0
		before, known := c.backfilled()
		var busy, frames, copied int64
		fresh := true // whether this copy took frames no copy took before, as far as is known
		err := c.copy.QueryRowContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &frames, &copied)
		// Only a copy that took frames tells that copies work: one that found nothing
		// it could take yet (a reader's older snapshot) tried nothing.
		c.noteCopy(err, err == nil && copied > int64(before))
		if err == nil {
			// Nothing new: the WAL empty (it just started over), or everything in it
			// copied already, or another checkpoint under way (busy, -1 frames: the
			// writer's, which syncs its own copy).
			fresh = !known || copied > int64(before)
			long, c.catchUp = askWriter(frames >= restartFrames, c.long.Load(), c.catchUp)
			if c.catchUp {
				c.catchUps.Add(1)
			}
			// Counted only when the copy goes on from the last one: the first copy
			// after the WAL started over covers only the frames since.
			if known && before > 0 && copied > int64(before) {
				c.countPages(before, uint32(copied))
			}
		}
		if hook := c.afterCopy.Load(); hook != nil {
			(*hook)()
		}
		// When the writer is to copy the rest, the pin goes as soon as it can: the
		// writer's copy, which it waits for, takes what was committed meanwhile. A copy
		// that took nothing new has no pages to hand to the disk, and holding the pin
		// through the parts' pauses for nothing would put off the WAL's restart.
		if !long && fresh {
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

// copiesWorkAfter is how long copies must have taken frames without a failure before
// they are said to work again: with socius.db made immutable under the server, a copy
// was seen to take frames between failed ones (about one run in ten of
// cmd/socius.TestUncopiedWALLogged, cause not found), and failures that come and go
// are told once, not at each turn.
const copiesWorkAfter = time.Second

// noteCopy logs, once, that the cycles' copies fail (err) or that they work again
// (took: a copy took frames, and none failed for copiesWorkAfter). Until a copy works,
// the WAL grows with every write and nothing is lost; the store answers as before, its
// writes included, but the WAL may come to fill the disk. Before, a failed copy was
// left to the next cycle without a word: a database file made immutable or read-only
// under the server (its writes go to the WAL, which it still may write) had the WAL
// grow without bound, unseen. Each cycle's copy fails the same way, every
// checkpointEvery, so only the change is told.
func (c *checkpointer) noteCopy(err error, took bool) {
	switch {
	case err != nil:
		c.uncopied.Add(1)
		c.copyFailed = time.Now()
		if c.copyErr != nil {
			return
		}
	case c.copyErr == nil || !took || time.Since(c.copyFailed) < copiesWorkAfter:
		return
	}
	c.copyErr = err
	l := c.logger.Load()
	if l == nil {
		return
	}
	if err == nil {
		l.Info("sqlite: the WAL is copied into the database file again", "db", c.path)
		return
	}
	why := err.Error()
	// The driver's error holds no system error number: the system is asked whether
	// the database file may be written (see files.unwritable).
	if errno := writeAccess(c.path); errno != 0 {
		why += ": " + errno.Error()
	}
	l.Warn("sqlite: the WAL cannot be copied into the database file; it grows with every write until it can (nothing is lost, but it may fill the disk)",
		"db", c.path, "err", why)
}

// SetLogger gives the store a logger, for what it notices outside any call: the WAL
// that cannot be copied into the database file (see checkpointer.noteCopy).
func (s *Store) SetLogger(l *slog.Logger) {
	if s.ckpt != nil {
		s.ckpt.logger.Store(l)
	}
}

// The WAL-index (the -shm file; https://www.sqlite.org/walformat.html) is in native
// byte order: nBackfill, the frames copied back, at byte 96; the page number of each
// frame in an array from byte 136 of its first 32 KiB block (frames 1 to 4062), then
// from the start of each following block (4096 frames a block).
const (
	shmBackfill     = 96
	shmBlock        = 32768
	shmFirstFrames  = 4062
	shmBlockFrames  = 4096
	shmFirstPgnoOff = 136
)

// backfilled reads nBackfill from the WAL-index.
func (c *checkpointer) backfilled() (uint32, bool) {
	if c.shm == nil {
		return 0, false
	}
	var b [4]byte
	if _, err := c.shm.ReadAt(b[:], shmBackfill); err != nil {
		return 0, false
	}
	return binary.NativeEndian.Uint32(b[:]), true
}

// countPages sets c.frames and c.distinct for the frames from+1 to to, which the
// cycle copied: the pin keeps the WAL, and with it their entries in the WAL-index,
// from being started over meanwhile. On a read failure, both stay 0.
func (c *checkpointer) countPages(from, to uint32) {
	pages, err := c.framePages(from, to, c.pages[:0])
	if err != nil {
		return
	}
	slices.Sort(pages)
	c.pages = pages
	c.copied = [2]uint32{from, to}
	c.frames, c.distinct = len(pages), len(slices.Compact(pages))
}

// framePages appends to pages the page numbers of frames from+1 to to, in order, as
// the WAL-index lists them.
func (c *checkpointer) framePages(from, to uint32, pages []uint32) ([]uint32, error) {
	var buf [4 * 1024]byte
	for frame := from + 1; frame <= to; {
		// The frame's entry, and how many follow it in the same block.
		off, left := int64(shmFirstPgnoOff)+4*int64(frame-1), shmFirstFrames-int64(frame-1)
		if frame > shmFirstFrames {
			k := int64(frame - shmFirstFrames - 1)
			off, left = shmBlock*(1+k/shmBlockFrames)+4*(k%shmBlockFrames), shmBlockFrames-k%shmBlockFrames
		}
		n := min(left, int64(to-frame+1), int64(len(buf)/4))
		if _, err := c.shm.ReadAt(buf[:4*n], off); err != nil {
			return pages, err
		}
		for i := range n {
			pages = append(pages, binary.NativeEndian.Uint32(buf[4*i:]))
		}
		frame += uint32(n)
	}
	return pages, nil
}

// askWriter reports whether a cycle asks the writer to copy the rest (so that the WAL
// starts over), and whether the next cycle is to come checkpointEvery later to do it
// instead (catchUp), given that the WAL holds restartFrames frames or more (walLong),
// that cycles are checkpointEveryLong apart (longApart) and that this cycle is such a
// catch-up (caughtUp). The writer copies what was committed since the cycle's pin,
// and every write waits for that copy; after a cycle of checkpointEveryLong that would
// be everything committed during its whole copy and sync, which a cycle that asks does
// not spread. So such a cycle spreads its pages as any other, and the next one,
// checkpointEvery later and small, asks.
func askWriter(walLong, longApart, caughtUp bool) (ask, catchUp bool) {
	if walLong && longApart && !caughtUp {
		return false, true
	}
	return walLong, false
}

// period is how long to wait after a cycle that copied frames frames of distinct
// pages, when cycles were long apart (long) or not.
func period(long bool, frames, distinct int) time.Duration {
	switch {
	case frames < judgeFrames:
		if long {
			return checkpointEveryLong
		}
	case long && float64(distinct) < longRepeats*float64(frames):
		return checkpointEveryLong
	case !long && float64(distinct) < shortRepeats*float64(frames):
		return checkpointEveryLong
	}
	return checkpointEvery
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
	if c.failed != nil {
		return c.failed
	}
	if err := c.sync(c.db); err != nil {
		return c.syncFailed("the database file", err)
	}
	c.pinned = false
	_, err := c.pin.ExecContext(context.Background(), `ROLLBACK`)
	return err
}

// sync is datasync, after the tests' syncFault.
func (c *checkpointer) sync(f *os.File) error {
	if fault := c.syncFault.Load(); fault != nil {
		if err := (*fault)(f); err != nil {
			return err
		}
	}
	return datasync(f)
}

// syncFailed stops the checkpointer for good after a failed sync, pinned, and tells
// the store (Store.fail). A sync that failed leaves the copy's pages in no known state,
// and trying again proves nothing: Linux, after a failed write-back, marks the pages
// clean and reports the error once, so the next fdatasync succeeds without writing
// them. And SQLite already counts them as copied (the copy ran without syncing), so no
// checkpoint would copy them again: once the WAL started over, writes acknowledged
// long before would be lost. Pinned, the WAL never starts over; the store refuses
// writes and, at its close, leaves the WAL for SQLite's recovery at the next start,
// which copies every frame again.
func (c *checkpointer) syncFailed(what string, err error) error {
	c.failed = fmt.Errorf("%w: checkpoint: %s: %v", errSyncFailed, what, err)
	if c.onSyncFail != nil {
		c.onSyncFail(c.failed)
	}
	return c.failed
}

// checkpoints runs a cycle at most every checkpointEvery (or checkpointEveryLong, see
// period) while commits happen, until the store closes. While the writer is asked to
// start the WAL over, it waits, for at most restartWait periods (a writer without
// writes to run does not answer).
func (s *Store) checkpoints() {
	defer close(s.ckptStopped)
	c := s.ckpt
	t := time.NewTicker(checkpointEvery)
	defer t.Stop()
	var seen int64
	waited := 0
	wait, last := checkpointEvery, time.Now()
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
		if time.Since(last) < wait-checkpointEvery/2 && !c.pinned {
			continue
		}
		if n := s.commits.Load(); n != seen || c.pinned {
			seen = n
			last = time.Now()
			// A failure leaves the work to the next cycle.
			if c.cycle(s.closing) == nil {
				wait = period(c.long.Load(), c.frames, c.distinct)
				c.long.Store(wait == checkpointEveryLong)
				if c.catchUp {
					wait = checkpointEvery
				}
			}
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
