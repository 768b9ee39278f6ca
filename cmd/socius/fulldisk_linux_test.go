//go:build linux

package main

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/socius/socius"
	"github.com/socius/socius/internal/syncbuf"
)

// TestFullDisk runs Socius on a data folder whose file system fills up: a small tmpfs,
// mounted by the test (which needs root to mount it, and is skipped without). Writes
// then get 500028 and change nothing, reads go on, /readyz stays ready (a full disk is
// not a failed sync), and once space is freed writes succeed again, without a restart.
func TestFullDisk(t *testing.T) {
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=4m,mode=0700"); err != nil {
		t.Skipf("cannot mount a small file system for the data folder (root only): %v", err)
	}
	// Registered before the server's cleanup, so it runs after the server closed.
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmount: %v", err)
		}
	})
	ts := startServer(t, "--data", dir)
	ts.login(t, "u1")
	set := func(nick string) answer {
		t.Helper()
		return ts.call(t, "socialize.setUserInfo", url.Values{"UID": {"u1"}, "userInfo": {`{"nickname":"` + nick + `"}`}})
	}
	nickname := func() string {
		t.Helper()
		a := ts.call(t, "socialize.getUserInfo", url.Values{"UID": {"u1"}})
		if a.code() != 0 {
			t.Fatalf("getUserInfo: %v", a)
		}
		return a.str("nickname")
	}
	if a := set("before"); a.code() != 0 {
		t.Fatalf("setUserInfo: %v", a)
	}

	filler := filepath.Join(dir, "filler")
	fill(t, filler)
	// The WAL may still have room in its file for some writes; one soon needs more.
	stored := "before"
	var refused answer
	for i := range 5000 {
		nick := fmt.Sprintf("n%d", i)
		a := set(nick)
		if a.code() != 0 {
			refused = a
			break
		}
		stored = nick
	}
	if refused == nil {
		t.Fatal("5,000 writes on a full disk all succeeded")
	}
	if refused.code() != socius.CodeDatabaseError || refused.str("errorMessage") != "Database error" ||
		refused.str("errorDetails") != "Database error: the store's disk is full; nothing was written" {
		t.Fatalf("setUserInfo on a full disk: %v, want 500028 Database error, saying the disk is full", refused)
	}
	if got := nickname(); got != stored {
		t.Errorf("nickname after the refused write: %q, want %q, the last one acknowledged", got, stored)
	}
	if a := ts.call(t, "socialize.notifyLogin", url.Values{"siteUID": {"u2"}}); a.code() != socius.CodeDatabaseError {
		t.Errorf("notifyLogin of a new user on a full disk: %v, want 500028", a)
	}
	if status, body := get(t, ts.AdminURL+"/readyz"); status != 200 {
		t.Errorf("/readyz on a full disk: %d %q, want ready", status, body)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if a := set("after"); a.code() != 0 {
		t.Fatalf("setUserInfo once space is freed: %v", a)
	}
	if got := nickname(); got != "after" {
		t.Errorf("nickname once space is freed: %q, want %q", got, "after")
	}
	if a := ts.call(t, "socialize.getUserInfo", url.Values{"UID": {"u2"}}); a.code() != socius.CodeUnauthorizedUser {
		t.Errorf("getUserInfo of the user whose notifyLogin was refused: %v, want 403005", a)
	}
	if status, body := get(t, ts.AdminURL+"/readyz"); status != 200 {
		t.Errorf("/readyz once space is freed: %d %q", status, body)
	}
}

// fill writes to path until its file system is full.
func fill(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 64<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling the disk: %v", err)
			}
			break
		}
	}
	// Fill the last bytes too, a page at a time.
	for _, err := f.Write(chunk[:4096]); err == nil; _, err = f.Write(chunk[:4096]) {
	}
}

// TestUnwritableFiles: the database files turn unwritable under a running server (made
// immutable with chattr +i, which root only can, on a file system that has the flag;
// skipped otherwise), as they do on a file system the kernel remounts read-only after an
// error. As with a full disk, writes get 500028, saying why, and change nothing, reads
// go on, /readyz stays ready (nothing failed to sync), and once the files are writable
// again writes succeed without a restart.
func TestUnwritableFiles(t *testing.T) {
	chattr, err := exec.LookPath("chattr")
	if err != nil {
		t.Skip("no chattr")
	}
	dir := t.TempDir()
	ts := startServer(t, "--data", dir)
	ts.login(t, "u1")
	set := func(nick string) answer {
		t.Helper()
		return ts.call(t, "socialize.setUserInfo", url.Values{"UID": {"u1"}, "userInfo": {`{"nickname":"` + nick + `"}`}})
	}
	if a := set("before"); a.code() != 0 {
		t.Fatalf("setUserInfo: %v", a)
	}
	files := []string{filepath.Join(dir, "socius.db"), filepath.Join(dir, "socius.db-wal")}
	writable := func() {
		if out, err := exec.Command(chattr, append([]string{"-i"}, files...)...).CombinedOutput(); err != nil {
			t.Errorf("chattr -i: %v %s", err, out)
		}
	}
	if out, err := exec.Command(chattr, append([]string{"+i"}, files...)...).CombinedOutput(); err != nil {
		t.Skipf("cannot make the database files immutable (root only, on a file system with the flag): %v %s", err, out)
	}
	t.Cleanup(writable) // before the server's cleanup, which closes the store
	// The client hears why, in words: no path, no error of Go or SQLite.
	if a := set("refused"); a.code() != socius.CodeDatabaseError ||
		a.str("errorDetails") != "Database error: the store's files cannot be written (read-only); nothing was written" {
		t.Errorf("setUserInfo with the files unwritable: %v, want 500028 saying the files cannot be written", a)
	}
	if a := ts.call(t, "socialize.getUserInfo", url.Values{"UID": {"u1"}}); a.code() != 0 || a.str("nickname") != "before" {
		t.Errorf("getUserInfo with the files unwritable: %v, want the nickname acknowledged last", a)
	}
	if status, body := get(t, ts.AdminURL+"/readyz"); status != 200 {
		t.Errorf("/readyz with the files unwritable: %d %q, want ready", status, body)
	}
	writable()
	if a := set("after"); a.code() != 0 {
		t.Fatalf("setUserInfo once the files are writable again: %v", a)
	}
	if a := ts.call(t, "socialize.getUserInfo", url.Values{"UID": {"u1"}}); a.str("nickname") != "after" {
		t.Errorf("nickname once the files are writable again: %v", a)
	}
	if status, body := get(t, ts.AdminURL+"/readyz"); status != 200 {
		t.Errorf("/readyz once the files are writable again: %d %q", status, body)
	}
}

// TestUncopiedWALLogged: with socius.db alone made immutable under the server (root
// only, as TestUnwritableFiles), writes go on into the WAL, which cannot be copied back
// into socius.db: the server's log says so once, with the system's reason, however
// many checkpoints fail, and /readyz stays ready (every call still works). Once the
// file can be written, the log says the copies work again.
func TestUncopiedWALLogged(t *testing.T) {
	chattr, err := exec.LookPath("chattr")
	if err != nil {
		t.Skip("no chattr")
	}
	dir := t.TempDir()
	var logs syncbuf.Buffer
	ts := startMain(t, func(m *Main) { m.LogOutput = &logs }, "--data", dir, "--log-level", "info")
	ts.login(t, "u1")
	set := func(nick string) {
		t.Helper()
		if a := ts.call(t, "socialize.setUserInfo", url.Values{"UID": {"u1"}, "userInfo": {`{"nickname":"` + nick + `"}`}}); a.code() != 0 {
			t.Fatalf("setUserInfo: %v", a)
		}
	}
	db := filepath.Join(dir, "socius.db")
	if out, err := exec.Command(chattr, "+i", db).CombinedOutput(); err != nil {
		t.Skipf("cannot make the database file immutable (root only, on a file system with the flag): %v %s", err, out)
	}
	writable := func() {
		if out, err := exec.Command(chattr, "-i", db).CombinedOutput(); err != nil {
			t.Errorf("chattr -i: %v %s", err, out)
		}
	}
	t.Cleanup(writable) // before the server's cleanup, which closes the store
	const failing, again = "the WAL cannot be copied into the database file", "the WAL is copied into the database file again"
	// Writes spread over many checkpoint periods (20 ms).
	for i := range 40 {
		set(fmt.Sprintf("n%d", i))
		time.Sleep(5 * time.Millisecond)
	}
	// On a loaded machine those can all come before the checkpointer's first failed
	// copy: write on until it has failed (the count below checks it is told once).
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; !strings.Contains(logs.String(), failing) && time.Now().Before(deadline); i++ {
		set(fmt.Sprintf("more%d", i))
		time.Sleep(5 * time.Millisecond)
	}
	if got := strings.Count(logs.String(), failing); got != 1 {
		t.Fatalf("log after writes over 40 checkpoint periods: %d lines saying the WAL cannot be copied, want 1:\n%s", got, logs.String())
	}
	if !strings.Contains(logs.String(), "operation not permitted") {
		t.Errorf("log:\n%s\nwant the system's reason", logs.String())
	}
	if status, body := get(t, ts.AdminURL+"/readyz"); status != 200 {
		t.Errorf("/readyz with socius.db immutable: %d %q, want ready", status, body)
	}
	writable()
	deadline = time.Now().Add(10 * time.Second) // copies that work for a second
	for i := 0; time.Now().Before(deadline) && !strings.Contains(logs.String(), again); i++ {
		set(fmt.Sprintf("after%d", i))
		time.Sleep(5 * time.Millisecond)
	}
	if got := strings.Count(logs.String(), again); got != 1 {
		t.Errorf("log once socius.db can be written: %d lines saying the copies work again, want 1:\n%s", got, logs.String())
	}
}
