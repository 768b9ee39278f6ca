package sqlite

import (
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/socius/socius"
	"github.com/socius/socius/internal/syncbuf"
	sqlite3 "modernc.org/sqlite/lib"
)

// TestUnwritableFilesSaid: when the database files cannot be written under a running
// store (made immutable with chattr +i, which root only can, on a file system that has
// the flag; skipped otherwise), a write fails with 500028 whose details say so in words,
// on both of the writer's paths: a profile update on its C API connection, whose error
// holds the system's error number, and a login through the driver, whose error does
// not. The error kept for the log names the system's reason. Before, both said only
// "Database error".
func TestUnwritableFilesSaid(t *testing.T) {
	chattr, err := exec.LookPath("chattr")
	if err != nil {
		t.Skip("no chattr")
	}
	s, path := siteStore(t)
	loginUsers(t, s, "3_site", "u1")
	files := []string{path, path + "-wal"}
	if out, err := exec.Command(chattr, append([]string{"+i"}, files...)...).CombinedOutput(); err != nil {
		t.Skipf("cannot make the database files immutable (root only, on a file system with the flag): %v %s", err, out)
	}
	writable := func() {
		if out, err := exec.Command(chattr, append([]string{"-i"}, files...)...).CombinedOutput(); err != nil {
			t.Errorf("chattr -i: %v %s", err, out)
		}
	}
	t.Cleanup(writable) // before the store's cleanup, which closes it

	want := "Database error: " + readOnlyFiles
	err = s.UpdateProfile(t.Context(), "3_site", "u1", patchOf(map[socius.Field]string{socius.Nickname: "refused"}), now)
	var se *socius.Error
	if !errors.As(err, &se) || se.Code != socius.CodeDatabaseError || se.Details != want {
		t.Errorf("UpdateProfile with the files immutable: %v, want 500028 %q", err, want)
	} else if !strings.Contains(se.Err.Error(), "operation not permitted") {
		t.Errorf("UpdateProfile's error for the log: %v, want the system's reason", se.Err)
	}
	_, err = s.Login(t.Context(), "3_site", "u2", patchOf(map[socius.Field]string{socius.Nickname: "new"}), now)
	if !errors.As(err, &se) || se.Code != socius.CodeDatabaseError || se.Details != want {
		t.Errorf("Login with the files immutable: %v, want 500028 %q", err, want)
	}
	if got := getNickname(t, s, "u1"); got != "old" {
		t.Errorf("nickname after the refused write: %q, want \"old\"", got)
	}

	writable()
	if err := s.UpdateProfile(t.Context(), "3_site", "u1", patchOf(map[socius.Field]string{socius.Nickname: "after"}), now); err != nil {
		t.Fatalf("UpdateProfile once the files are writable again: %v", err)
	}
}

// TestReadOnlyDetails: which failures are said to be files that cannot be written, and
// how; any other I/O error stays a bare database error.
func TestReadOnlyDetails(t *testing.T) {
	for _, c := range []struct {
		name string
		err  error
		want string
	}{
		{"SQLITE_READONLY", &cError{op: "step", code: sqlite3.SQLITE_READONLY, msg: "attempt to write a readonly database"}, "Database error: " + readOnlyFiles},
		{"SQLITE_READONLY_DBMOVED", &cError{op: "step", code: sqlite3.SQLITE_READONLY_DBMOVED, msg: "attempt to write a readonly database"}, "Database error: " + readOnlyFiles},
		{"EPERM", &cError{op: "commit", code: sqlite3.SQLITE_IOERR_WRITE, msg: "disk I/O error", errno: syscall.EPERM}, "Database error: " + readOnlyFiles},
		{"EACCES", &cError{op: "commit", code: sqlite3.SQLITE_CANTOPEN, msg: "unable to open database file", errno: syscall.EACCES}, "Database error: " + readOnlyFiles},
		{"EROFS", &cError{op: "commit", code: sqlite3.SQLITE_IOERR_WRITE, msg: "disk I/O error", errno: syscall.EROFS}, "Database error: " + readOnlyFileSystem},
		{"EIO", &cError{op: "commit", code: sqlite3.SQLITE_IOERR_WRITE, msg: "disk I/O error", errno: syscall.EIO}, "Database error"},
		{"SQLITE_FULL", &cError{op: "commit", code: sqlite3.SQLITE_FULL, msg: "database or disk is full"}, "Database error: the store's disk is full; nothing was written"},
	} {
		var se *socius.Error
		if err := dbError("sqlite", c.err); !errors.As(err, &se) || se.Code != socius.CodeDatabaseError || se.Details != c.want {
			t.Errorf("%s: %v, want 500028 %q", c.name, err, c.want)
		}
	}
}

// TestUncopiedWALLoggedOnce: when the database file alone cannot be written under a
// running store (chattr +i, root only; skipped otherwise), writes go on into the WAL,
// and every checkpointer cycle's copy fails. The store logs that once, with the
// system's reason, however many cycles fail, and once that the copies work again when
// the file can be written. Before, it said nothing, and the WAL grew without bound.
func TestUncopiedWALLoggedOnce(t *testing.T) {
	chattr, err := exec.LookPath("chattr")
	if err != nil {
		t.Skip("no chattr")
	}
	s, path := siteStore(t)
	var log syncbuf.Buffer
	s.SetLogger(slog.New(slog.NewTextHandler(&log, nil)))
	loginUsers(t, s, "3_site", "u1")
	if out, err := exec.Command(chattr, "+i", path).CombinedOutput(); err != nil {
		t.Skipf("cannot make the database file immutable (root only, on a file system with the flag): %v %s", err, out)
	}
	writable := func() {
		if out, err := exec.Command(chattr, "-i", path).CombinedOutput(); err != nil {
			t.Errorf("chattr -i: %v %s", err, out)
		}
	}
	t.Cleanup(writable) // before the store's cleanup, which closes it

	// Writes for a while: many checkpointer cycles (one every checkpointEvery while
	// commits happen).
	write := func(d time.Duration) {
		t.Helper()
		for i, start := 0, time.Now(); time.Since(start) < d; i++ {
			nick := fmt.Sprintf("n%d", i)
			if err := s.UpdateProfile(t.Context(), "3_site", "u1", patchOf(map[socius.Field]string{socius.Nickname: nick}), now); err != nil {
				t.Fatalf("UpdateProfile %d: %v", i, err)
			}
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for s.ckpt.uncopied.Load() < 5 && time.Now().Before(deadline) {
		write(5 * checkpointEvery)
	}
	failed := s.ckpt.uncopied.Load()
	if failed < 5 {
		t.Fatalf("%d checkpointer cycles failed to copy with the database file immutable, want 5 or more", failed)
	}
	const failing, again = "the WAL cannot be copied into the database file", "the WAL is copied into the database file again"
	if got := strings.Count(log.String(), failing); got != 1 {
		t.Fatalf("log after %d cycles failed to copy: %d lines saying so, want 1:\n%s", failed, got, log.String())
	}
	if !strings.Contains(log.String(), "operation not permitted") {
		t.Errorf("log: %s\nwant the system's reason", log.String())
	}

	writable()
	deadline = time.Now().Add(10 * time.Second)
	for !strings.Contains(log.String(), again) && time.Now().Before(deadline) {
		write(5 * checkpointEvery)
	}
	if got := strings.Count(log.String(), again); got != 1 {
		t.Errorf("log once the file can be written: %d lines saying the copies work again, want 1:\n%s", got, log.String())
	}
	if got := strings.Count(log.String(), failing); got != 1 {
		t.Errorf("log: %d lines saying the copies fail, want still 1:\n%s", got, log.String())
	}
	if got := getNickname(t, s, "u1"); !strings.HasPrefix(got, "n") {
		t.Errorf("nickname after the writes: %q", got)
	}
}
