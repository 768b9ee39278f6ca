package sqlite

import (
	"errors"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/socius/socius"
)

// TestCheckpointSyncFailureStops: when the checkpointer's fdatasync of the database
// file fails once (a lost write-back: the copied pages never reach the disk), the
// store stops writing for good and keeps the WAL, which still holds the pages. Before,
// the next cycle's fdatasync (which Linux lets succeed after reporting the error once)
// released the pin, SQLite, counting the frames as copied, started the WAL over at the
// next commit, and an acknowledged write was lost.
func TestCheckpointSyncFailureStops(t *testing.T) {
	s, path := siteStore(t)
	ctx := t.Context()
	users := uids(20)
	loginUsers(t, s, "3_site", users...)
	for _, uid := range users { // a page of its own for each user
		if err := s.UpdateProfile(ctx, "3_site", uid, bigPatch(uid+"-old-", 3000), now); err != nil {
			t.Fatal(err)
		}
	}
	c := s.ckpt
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(checkpointEvery) {
		if mx, done := walFrames(t, s); mx > 0 && done == mx {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the WAL was never copied back")
		}
	}
	time.Sleep(5 * checkpointEvery)
	realDB := c.db
	fi, err := realDB.Stat()
	if err != nil {
		t.Fatal(err)
	}
	before := make([]byte, fi.Size())
	if _, err := realDB.ReadAt(before, 0); err != nil {
		t.Fatal(err)
	}
	var fired, failNext, committed atomic.Bool
	hook := func() {
		// The cycle to fail is one that copied the write below: a cycle that runs
		// before it commits (late on a loaded machine) also finds every frame copied,
		// and failing it would fail the write itself.
		if !committed.Load() {
			return
		}
		if mx, done, err := readWALFrames(s); err != nil || mx == 0 || done != mx || !fired.CompareAndSwap(false, true) {
			return
		}
		// The copied pages never reach the disk, and this cycle's fdatasync fails;
		// the next would succeed.
		if _, err := realDB.WriteAt(before, 0); err != nil {
			panic(err)
		}
		failNext.Store(true)
	}
	fault := func(f *os.File) error {
		if f == realDB && failNext.CompareAndSwap(true, false) {
			return errors.New("input/output error (injected)")
		}
		return nil
	}
	c.afterCopy.Store(&hook)
	c.syncFault.Store(&fault)
	want := bigValue("acknowledged-", 3000)
	if err := s.UpdateProfile(ctx, "3_site", users[3], bigPatch("acknowledged-", 3000), now); err != nil {
		t.Fatal(err)
	}
	committed.Store(true)
	for deadline := time.Now().Add(5 * time.Second); !fired.Load(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no cycle copied the write")
		}
	}
	time.Sleep(10 * checkpointEvery)
	// The cycle's sync fails after the hook: on a loaded machine the checkpointer may
	// not have got there yet.
	for deadline := time.Now().Add(5 * time.Second); !errors.Is(s.Healthy(), errSyncFailed) && time.Now().Before(deadline); {
		time.Sleep(checkpointEvery)
	}
	if err := s.Healthy(); !errors.Is(err, errSyncFailed) {
		t.Errorf("Healthy after a failed sync: %v, want errSyncFailed", err)
	}
	restarts := walRestarts(t, path)
	err = s.UpdateProfile(ctx, "3_site", users[10], patchOf(map[socius.Field]string{socius.Nickname: "later"}), now)
	if socius.ErrorCode(err) != socius.CodeDatabaseError || !errors.Is(err, errSyncFailed) {
		t.Errorf("a write after the failed sync: %v, want 500028 for the failed sync", err)
	}
	if got := walRestarts(t, path); got != restarts {
		t.Errorf("the WAL started over after the failed sync (%d -> %d restarts)", restarts, got)
	}
	if err := s.Close(); !errors.Is(err, errSyncFailed) {
		t.Errorf("Close: %v, want the failed sync", err)
	}
	// The process ends: what the next start finds.
	db := otherReader(t, crashCopy(t, path))
	integrityOK(t, db)
	if got := nickname(t, db, users[3]); got != want {
		t.Errorf("after the restart, %s's nickname is %.20q..., want the acknowledged %.20q...", users[3], got, want)
	}
}

// TestCommitSyncFailureStops: a commit whose WAL fsync fails fails its callers (500028)
// and stops the store's writes for good: the frames may be on the disk, and the disk
// in no known state, so a write answered as failed may be found stored after a
// restart (the error says so). What the next start finds is a sound database.
func TestCommitSyncFailureStops(t *testing.T) {
	s, path := siteStore(t)
	users := uids(10)
	loginUsers(t, s, "3_site", users...)
	w := writerWAL(t, s)
	w.failSync = true // the writer reads it after it takes the write below
	err := s.UpdateProfile(t.Context(), "3_site", users[0], patchOf(map[socius.Field]string{socius.Nickname: "failed"}), now)
	if socius.ErrorCode(err) != socius.CodeDatabaseError {
		t.Fatalf("a write whose fsync failed: %v, want 500028", err)
	}
	err = s.UpdateProfile(t.Context(), "3_site", users[1], patchOf(map[socius.Field]string{socius.Nickname: "after"}), now)
	if !errors.Is(err, errSyncFailed) {
		t.Errorf("a write after the failed fsync: %v, want refused for it", err)
	}
	const details = "Database error: a sync of the store to its disk failed on the server, which refuses writes until it is restarted; nothing was written"
	if se := (*socius.Error)(nil); !errors.As(err, &se) || se.Details != details {
		t.Errorf("a write after the failed fsync: errorDetails %v, want %q (it was \"Database error\" alone)", err, details)
	}
	if err := s.Healthy(); !errors.Is(err, errSyncFailed) {
		t.Errorf("Healthy: %v, want the failed sync", err)
	}
	if got := getNickname(t, s, users[1]); got == "after" {
		t.Error("a write after the failed fsync was stored")
	}
	s.Close()
	db := otherReader(t, crashCopy(t, path))
	integrityOK(t, db)
	if got := nickname(t, db, users[1]); got == "after" {
		t.Error("after the restart, a write refused after the failed fsync is stored")
	}
}

func getNickname(t *testing.T, s *Store, uid string) string {
	t.Helper()
	u, err := s.User(t.Context(), "3_site", uid)
	if err != nil {
		t.Fatal(err)
	}
	return u.Profile[socius.Nickname]
}
