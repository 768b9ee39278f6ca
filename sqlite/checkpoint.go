package sqlite

import (
	"database/sql"
	"sync/atomic"
	"time"
)

// Checkpoints copy the pages that commits appended to the WAL back into the database
// file, and fsync it. SQLite runs one in the committing connection once the WAL holds
// 1000 pages: with random updates over a large table those are 1000 scattered writes
// and an fsync, all inside a commit, while every write of the next batch waits (the
// p99 of setUserInfo over a million users was set by them). So a checkpointer
// goroutine runs passive checkpoints on a connection of its own soon after commits:
// they copy the pages while the writer goes on committing. The writer keeps SQLite's
// own checkpoint, which then finds little or nothing left to copy, and restarts the
// WAL from its beginning as before, so the WAL does not grow.
const checkpointEvery = 20 * time.Millisecond

// checkpointer runs a passive checkpoint at most every checkpointEvery while commits
// happen, until the store closes.
func (s *Store) checkpointer(db *sql.DB, commits *atomic.Int64, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(checkpointEvery)
	defer t.Stop()
	var seen int64
	for {
		select {
		case <-s.closing:
			return
		case <-t.C:
		}
		if n := commits.Load(); n != seen {
			seen = n
			// A failure (the database busy with another checkpoint, an I/O error)
			// leaves the work to the writer's own checkpoint.
			db.Exec(`PRAGMA wal_checkpoint(PASSIVE)`)
		}
	}
}
