package sqlite

import (
	"database/sql"
	"encoding/binary"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/socius/socius"
)

// walFrames reads the WAL-index: mxFrame, the WAL's last frame, is at byte 16 of the
// header; nBackfill, the frames copied back, at byte 96 (the checkpoint-info after
// the two header copies).
func walFrames(t *testing.T, s *Store) (mx, backfilled uint32) {
	t.Helper()
	b := make([]byte, 100)
	if _, err := s.cache.shm.ReadAt(b, 0); err != nil {
		t.Fatal(err)
	}
	return binary.NativeEndian.Uint32(b[16:]), binary.NativeEndian.Uint32(b[96:])
}

// walRestarts reads the checkpoint sequence number of the WAL's file header, which
// SQLite increments each time it starts the WAL over.
func walRestarts(t *testing.T, path string) uint32 {
	t.Helper()
	f, err := os.Open(path + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 16)
	if _, err := f.ReadAt(b, 0); err != nil {
		t.Fatal(err)
	}
	return binary.BigEndian.Uint32(b[12:])
}

// TestCheckpointer checks that commits are copied back into the database file soon
// after, off the writer's path: once writes stop, the WAL-index shows every frame of
// the WAL backfilled within a few checkpoint periods.
func TestCheckpointer(t *testing.T) {
	s := newStore(t)
	if err := s.CreateSite(t.Context(), &socius.Site{APIKey: "3_site", Secret: "c2VjcmV0LTAxMjM0NTY3ODlhYmM=", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		loginUsers(t, s, "3_site", "u"+strconv.Itoa(i))
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		mx, done := walFrames(t, s)
		if mx > 0 && done == mx {
			if canWriteBack && s.ckpt.spreads.Load() == 0 {
				t.Error("no cycle handed its pages to the disk in parts")
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d WAL frames backfilled after 5 s", done, mx)
		}
		time.Sleep(checkpointEvery)
	}
}

// TestCheckpointPinKeepsWAL checks what makes copying without a sync safe: between
// the checkpointer's copy and its sync, no connection starts the WAL over, not even
// one of another program that commits when every frame has been copied (as SQLite
// would, trusting the copies to be on disk). After the sync, one does.
func TestCheckpointPinKeepsWAL(t *testing.T) {
	path := filepath.Join(t.TempDir(), "socius.db")
	s := open(t, path)
	defer s.Close()
	createSiteAndKey(t, s, "one")

	copied, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	hook := func() { once.Do(func() { close(copied); <-release }) }
	s.ckpt.afterCopy.Store(&hook)
	loginUsers(t, s, "3_site", "u1")
	select {
	case <-copied:
	case <-time.After(5 * time.Second):
		close(release)
		t.Fatal("no checkpoint copied the commit within 5 s")
	}

	// Every frame is copied, none of it synced: the case in which SQLite would
	// start the WAL over at the next commit.
	if mx, done := walFrames(t, s); mx == 0 || done != mx {
		close(release)
		t.Fatalf("after the copy, %d of %d WAL frames backfilled; the test needs all", done, mx)
	}
	other, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	before := walRestarts(t, path)
	if _, err := other.Exec(`PRAGMA user_version = 1`); err != nil {
		close(release)
		t.Fatal(err)
	}
	if got := walRestarts(t, path); got != before {
		close(release)
		t.Fatalf("the WAL was started over (%d to %d) while the copy was not yet durable", before, got)
	}
	close(release)

	// Once the cycle has synced and let go, the other program's own checkpoint
	// copies its commit and its next commit starts the WAL over.
	deadline := time.Now().Add(5 * time.Second)
	for v := 2; walRestarts(t, path) == before; v++ {
		if time.Now().After(deadline) {
			t.Fatal("the WAL was not started over within 5 s of the sync")
		}
		time.Sleep(checkpointEvery)
		if _, err := other.Exec(`PRAGMA wal_checkpoint(PASSIVE)`); err != nil {
			t.Fatal(err)
		}
		if _, err := other.Exec(`PRAGMA user_version = ` + strconv.Itoa(v)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestWALStartsOver checks that under a steady stream of commits, which keeps every
// copy behind the end of the WAL, the WAL is still started over once it holds
// restartFrames frames, and so stays short.
func TestWALStartsOver(t *testing.T) {
	defer func(n int64) { restartFrames = n }(restartFrames)
	restartFrames = 40
	path := filepath.Join(t.TempDir(), "socius.db")
	s := open(t, path)
	defer s.Close()
	createSiteAndKey(t, s, "one")

	before := walRestarts(t, path)
	var longest int64
	for i := 0; i < 3000 && walRestarts(t, path) < before+3; i++ {
		loginUsers(t, s, "3_site", "u"+strconv.Itoa(i))
		if fi, err := os.Stat(path + "-wal"); err == nil {
			longest = max(longest, fi.Size())
		}
	}
	if got := walRestarts(t, path); got < before+3 {
		t.Fatalf("the WAL was started over %d times in 3000 commits; want 3 or more", got-before)
	}
	// A frame is a page and a 24-byte header. The writer's own threshold
	// (writerAutoCheckpoint) is far beyond this.
	if limit := int64(20*restartFrames) * (4096 + 24); longest > limit {
		t.Errorf("the WAL grew to %d bytes; want at most %d", longest, limit)
	}
}

// TestCycleBeforeRestartIsShort checks that the cycle which asks the writer to copy
// the rest lets go of its pin at once, without spreading its pages over writeBackParts
// pauses: the writer waits for its own copy, which takes what was committed meanwhile.
func TestCycleBeforeRestartIsShort(t *testing.T) {
	defer func(n int64) { restartFrames = n }(restartFrames)
	restartFrames = 1 // every cycle finds the WAL long
	path := filepath.Join(t.TempDir(), "socius.db")
	s := open(t, path)
	defer s.Close()
	createSiteAndKey(t, s, "one")

	before := walRestarts(t, path)
	for i := 0; i < 3000 && walRestarts(t, path) < before+2; i++ {
		loginUsers(t, s, "3_site", "u"+strconv.Itoa(i))
	}
	if walRestarts(t, path) < before+2 {
		t.Fatal("the WAL was not started over twice in 3000 commits")
	}
	if n := s.ckpt.spreads.Load(); n != 0 {
		t.Errorf("%d cycles that asked the writer spread their pages; want none", n)
	}
}
