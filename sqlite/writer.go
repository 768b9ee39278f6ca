package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/socius/socius"
)

// maxBatch caps the operations committed together, so that one batch holds the write
// lock for a bounded time and its callers are answered soon.
const maxBatch = 256

// commitDelay is the longest a batch waits for the writes of a busy moment to gather:
// a fraction of an fsync.
const commitDelay = 500 * time.Microsecond

var errClosed = errors.New("store is closed")

// A writeOp is one write: fn runs inside the batch's transaction, in its own savepoint.
// An operation that is one profile update also has fast, the same write on the
// writer's C API connection (fastwrite.go), used when the whole batch has it.
type writeOp struct {
	fn   func(tx *sql.Tx) error
	fast func(c *writeConn) error
	// userData: fn writes users and tokens only, never sites or keys, so a batch of
	// such operations leaves the cached sites and keys true (see carryCache).
	userData bool
	err      error      // what fn returned; set by the writer
	panicked any        // what fn panicked with, if it did; set by the writer
	done     chan error // the outcome, once the batch has committed or failed
}

var errPanicked = errors.New("write panicked")

// run calls fn, runFast fast. A panic is caught and handed back to the caller's
// goroutine, where write panics again: a bug in one write fails that call, as it
// would without the writer, and neither kills the writer nor the other writes of its
// batch.
func (op *writeOp) run(tx *sql.Tx) (err error) {
	defer op.catch(&err)
	return op.fn(tx)
}

func (op *writeOp) runFast(c *writeConn) (err error) {
	defer op.catch(&err)
	return op.fast(c)
}

func (op *writeOp) catch(err *error) {
	if r := recover(); r != nil {
		op.panicked = r
		*err = errPanicked
	}
}

// write runs fn in the writer's next batch and returns once that batch is durable.
// ctx is honoured only while the write waits to be taken: after that, the caller waits
// for the real outcome, whatever its context says.
func (s *Store) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	return s.send(ctx, &writeOp{fn: fn})
}

// writeUserData is write for an fn that writes users and tokens only, never a site or
// a key.
func (s *Store) writeUserData(ctx context.Context, fn func(tx *sql.Tx) error) error {
	return s.send(ctx, &writeOp{fn: fn, userData: true})
}

// send hands op to the writer. A context that ends before the writer takes op fails
// the write, having written nothing, as a database error that wraps the context's
// error, as the store's reads and PostgreSQL's calls fail (a deadline is "the store did
// not answer in time").
func (s *Store) send(ctx context.Context, op *writeOp) error {
	if err := ctx.Err(); err != nil {
		return dbError("sqlite: write", err)
	}
	op.done = make(chan error, 1)
	select {
	case s.ops <- op:
	case <-ctx.Done():
		return dbError("sqlite: write", ctx.Err())
	case <-s.closing:
		return dbError("sqlite: write", errClosed)
	}
	err := <-op.done
	if op.panicked != nil {
		panic(op.panicked)
	}
	return err
}

// writer is the only goroutine that writes. It takes every pending operation, commits
// them as one batch, answers their callers, and starts over.
func (s *Store) writer() {
	defer close(s.stopped)
	batch := make([]*writeOp, 0, maxBatch)
	wait := time.NewTimer(time.Hour)
	wait.Stop()
	last := 0 // the size of the last batch
	for {
		if s.carry != nil {
			// Taken during the last batch, which it could not join.
			batch = append(batch, s.carry)
			s.carry = nil
		} else {
			select {
			case <-s.closing:
				return
			case op := <-s.ops:
				batch = append(batch, op)
			}
		}
	collect:
		for len(batch) < maxBatch {
			select {
			case op := <-s.ops:
				batch = append(batch, op)
			default:
				break collect
			}
		}
		// Under load, callers come back in a group once their batch is answered:
		// a batch that starts with the first few of them would cost a whole fsync
		// and make the rest wait for it. So while the batch is much smaller than
		// the last one, wait a little (at most commitDelay) for the others.
		if len(batch) < last/2 {
			wait.Reset(commitDelay)
		gather:
			for len(batch) < last {
				select {
				case op := <-s.ops:
					batch = append(batch, op)
				case <-wait.C:
					break gather
				}
			}
			wait.Stop()
		}

		var err error
		if ferr := s.failure(); ferr != nil {
			// A sync failed: nothing more is written (see fail).
			err = socius.DatabaseErrorSaying(syncFailedDetails, "sqlite", ferr)
		} else if batch, err = s.commit(batch); err == nil {
			// Committed, but into the files the store opened: still the store's? (Not
			// Healthy, which a closing store fails: Close lets this batch finish.)
			if ferr := s.files.check(); ferr != nil {
				err = socius.DatabaseErrorSaying(filesGoneDetails, "sqlite", ferr)
			}
		} else if syncFailure(err) {
			// Rolled back as far as SQLite knows, but the frames may be on the disk,
			// and the disk in no known state: stop writing (see fail).
			s.fail(fmt.Errorf("%w: commit: %v", errSyncFailed, err))
		}
		last = len(batch)
		s.commits.Add(1)
		for _, op := range batch {
			if err != nil {
				op.done <- err
			} else {
				op.done <- op.err
			}
		}
		clear(batch)
		batch = batch[:0]
	}
}

// commit runs a batch in one transaction. An operation that fails is rolled back to its
// savepoint and the batch goes on. Operations that arrive while the batch runs join it
// (up to maxBatch), so that they share its fsync instead of waiting for a whole batch
// of their own; commit returns the batch with them. It returns an error only when the
// batch as a whole is lost (the transaction could not begin, continue or commit):
// then nothing in it was written, and every caller gets that error. A batch whose
// operations all have a fast form runs on the C API connection instead (commitFast).
func (s *Store) commit(batch []*writeOp) ([]*writeOp, error) {
	s.restartWAL()
	if allFast(batch) {
		return s.commitFast(batch)
	}
	tx, err := s.wdb.Begin()
	if err != nil {
		return batch, s.dbError("sqlite: begin", err)
	}
	defer tx.Rollback() // after Commit, a no-op
	mark := s.markCache(func() (v int64, err error) {
		err = tx.Stmt(s.stmts.dataVersion).QueryRow().Scan(&v)
		return v, err
	})

	savepoint, release := tx.Stmt(s.stmts.savepoint), tx.Stmt(s.stmts.release)
	for i := 0; i < len(batch); i++ {
		op := batch[i]
		if _, err := savepoint.Exec(); err != nil {
			return batch, s.dbError("sqlite: savepoint", err)
		}
		op.err = op.run(tx)
		if op.err != nil {
			// If SQLite already rolled the whole transaction back (it may, on a full
			// disk or an I/O error), the savepoint is gone and this fails.
			if _, err := tx.Stmt(s.stmts.rollbackTo).Exec(); err != nil {
				return batch, s.dbError("sqlite: rollback to savepoint", errors.Join(err, op.err))
			}
		}
		if _, err := release.Exec(); err != nil {
			return batch, s.dbError("sqlite: release savepoint", err)
		}
		if i == len(batch)-1 {
			batch = s.join(batch, false)
		}
	}
	if err := tx.Commit(); err != nil {
		return batch, s.dbError("sqlite: commit", err)
	}
	if s.afterCommit != nil {
		s.afterCommit()
	}
	s.carryCache(mark, batch, func() (v int64, err error) {
		err = s.stmts.dataVersion.QueryRow().Scan(&v)
		return v, err
	})
	return batch, nil
}

// join adds to the batch an operation that is waiting, if there is one and the batch
// has room: writes that arrive while a batch runs share its fsync. In a fast batch
// (fast), an operation without a fast form does not join but starts the next batch
// (s.carry).
func (s *Store) join(batch []*writeOp, fast bool) []*writeOp {
	if len(batch) >= maxBatch {
		return batch
	}
	select {
	case op := <-s.ops:
		if fast && op.fast == nil {
			s.carry = op
			s.carries.Add(1)
			return batch
		}
		return append(batch, op)
	default:
		return batch
	}
}

func allFast(batch []*writeOp) bool {
	for _, op := range batch {
		if op.fast == nil {
			return false
		}
	}
	return true
}

// commitFast is commit for a batch of operations that all have their fast form, on
// the writer's C API connection. Those are single statements, which SQLite undoes by
// themselves when they fail, so they need no savepoint. An operation that arrives
// while the batch runs joins it only if it has a fast form too; otherwise it starts
// the next batch (s.carry).
func (s *Store) commitFast(batch []*writeOp) ([]*writeOp, error) {
	c := s.wc
	if err := c.run(c.begin, "begin"); err != nil {
		return batch, s.dbError("sqlite", err)
	}
	c.bufferWAL()
	committed := false
	defer func() {
		if committed {
			return
		}
		if c.inTx() {
			c.run(c.rollback, "rollback")
		}
		// Rolled back, by the connection or by SQLite itself (a read error, memory):
		// the WAL bytes still held are frames past the last commit, which the next
		// transaction, of this connection or another, writes over. Written later, they
		// would land over that transaction's frames.
		c.dropWAL()
	}()
	mark := s.markCache(c.version)
	for i := 0; i < len(batch); i++ {
		op := batch[i]
		op.err = op.runFast(c)
		if op.err != nil && !c.inTx() {
			// SQLite rolled the transaction back: the batch is lost.
			return batch, s.dbError("sqlite: write", op.err)
		}
		if i == len(batch)-1 {
			batch = s.join(batch, true)
		}
	}
	if err := c.run(c.commit, "commit"); err != nil {
		return batch, s.dbError("sqlite", err)
	}
	committed = true
	if s.afterCommit != nil {
		s.afterCommit()
	}
	s.carryCache(mark, batch, c.version)
	return batch, nil
}

// A cacheMark is the WAL-index header and the writer connection's data version at
// the start of a batch, read under the write lock, so that no commit comes between
// the two reads.
type cacheMark struct {
	header  [walHeaderSize]byte
	version int64
	ok      bool
}

// markCache reads the mark; version reads the data version of the batch's connection,
// inside its transaction.
func (s *Store) markCache(version func() (int64, error)) cacheMark {
	if s.cache == nil {
		return cacheMark{}
	}
	var m cacheMark
	var err error
	if m.version, err = version(); err != nil {
		return cacheMark{}
	}
	m.header, m.ok = s.cache.header()
	return m
}

// carryCache keeps the cached sites and keys across the batch just committed when
// nothing but that batch has been committed since mark and the batch wrote users and
// tokens only. Otherwise every commit, the server's own included, would empty the
// cache, and under a steady stream of writes nearly every call would query its site.
//
// Whether another connection (another process, another store on the file) committed
// is told by SQLite's data version of the writer's connection: it changes when a read
// finds the database changed by any other connection, never for the connection's own
// commits. The header is read first, then the version: if the version is still the
// mark's, no other commit came before that read, so the header read before it is that
// of this batch's commit (the version read starts a read transaction, which sees any
// commit made after the batch's).
//
// The writer has two connections (see fastwrite.go); each batch reads the version of
// the one it committed on, to which the other's commits are those of another
// connection, committed before the batch took the write lock and so before its mark.
func (s *Store) carryCache(mark cacheMark, batch []*writeOp, version func() (int64, error)) {
	if !mark.ok {
		return
	}
	for _, op := range batch {
		if !op.userData {
			return
		}
	}
	h, ok := s.cache.header()
	if !ok {
		return
	}
	if v, err := version(); err != nil || v != mark.version {
		return
	}
	s.cache.advance(mark.header, h)
}
