package main

import (
	"errors"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestBackupUnwritableOutFolder: a backup into a folder that its user may not write
// (run as nobody when the test runs as root) is a usage error, exit 2, that names
// --out and the file, before anything is copied.
func TestBackupUnwritableOutFolder(t *testing.T) {
	dir, bin := unprivilegedSetup(t)
	data := backupStore(t, 3)
	moved := filepath.Join(dir, "data")
	if err := os.Mkdir(moved, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"socius.db", "master.key"} {
		copyFile(t, filepath.Join(data, name), filepath.Join(moved, name), 0o600)
		giveUnprivileged(t, filepath.Join(moved, name))
	}
	readOnly := filepath.Join(dir, "backups")
	if err := os.Mkdir(readOnly, 0o500); err != nil {
		t.Fatal(err)
	}
	giveUnprivileged(t, moved, readOnly)
	out := filepath.Join(readOnly, "socius.db")
	cmd := exec.Command(bin, "backup", "--data", moved, "--out", out)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	if os.Geteuid() == 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: unprivilegedID, Gid: unprivilegedID}}
	}
	b, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 || !strings.Contains(string(b), "--out: cannot create "+out+": permission denied") {
		t.Errorf("backup into a folder it may not write: %v\n%s\nwant exit 2 and --out: cannot create %s: permission denied", err, b, out)
	}
	if files, _ := os.ReadDir(readOnly); len(files) != 0 {
		t.Errorf("the folder holds %d files after the refused backup", len(files))
	}
}

// TestBackupFullDisk: a backup into a folder whose file system fills up (a small
// tmpfs, mounted by the test, which needs root and is skipped without) fails with
// exit 1, says the disk is full, and leaves the file there before as it was and no
// temporary file.
func TestBackupFullDisk(t *testing.T) {
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=64k,mode=0700"); err != nil {
		t.Skipf("cannot mount a small file system for the backups (root only): %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmount: %v", err)
		}
	})
	data := backupStore(t, 1000)
	out := filepath.Join(dir, "socius.db")
	const yesterday = "yesterday's backup"
	if err := os.WriteFile(out, []byte(yesterday), 0o600); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runCLI(t, noEnv, "backup", "--data", data, "--out", out)
	if code != 1 || !strings.Contains(stderr, out+" is left as it was") || !strings.Contains(stderr, "the copy's disk is full") {
		t.Errorf("backup onto a full disk: exit %d\n%s%s\nwant 1, the disk full and %s left as it was", code, stdout, stderr, out)
	}
	if b, err := os.ReadFile(out); err != nil || string(b) != yesterday {
		t.Errorf("%s after the failed backup: %q, %v; want it as it was", out, b, err)
	}
	if files, _ := os.ReadDir(dir); len(files) != 1 {
		t.Errorf("the folder holds %d files after the failed backup, want %s alone", len(files), filepath.Base(out))
	}
}

// TestBackupAsAReader: a backup run by a user who may read the data folder and the
// store's files but not write them (nobody, the files root's; the test needs root).
// Beside a server serving the store, which keeps its WAL and WAL-index there, SQLite
// reads the store read-only: the copy is whole, and the server goes on writing. With
// no server (no WAL, no WAL-index) the backup is refused before anything is copied,
// saying what it needs, where it said "not a Socius store: read schema_migrations:
// attempt to write a readonly database"; so is a WAL-index the user may not read.
func TestBackupAsAReader(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("runs the backup as another user than the store's (nobody): root only")
	}
	dir, bin := unprivilegedSetup(t)
	const users = 50
	made := backupStore(t, users)
	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"socius.db", "master.key"} {
		copyFile(t, filepath.Join(made, name), filepath.Join(data, name), 0o644)
	}
	backups := filepath.Join(dir, "backups")
	if err := os.Mkdir(backups, 0o700); err != nil {
		t.Fatal(err)
	}
	giveUnprivileged(t, backups)
	out := filepath.Join(backups, "socius.db")
	backupAsNobody := func() (int, string) {
		t.Helper()
		cmd := exec.Command(bin, "backup", "--data", data, "--out", out)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: unprivilegedID, Gid: unprivilegedID}}
		b, err := cmd.CombinedOutput()
		var exit *exec.ExitError
		switch {
		case errors.As(err, &exit):
			return exit.ExitCode(), string(b)
		case err != nil:
			t.Fatal(err)
		}
		return 0, string(b)
	}
	db := filepath.Join(data, "socius.db")

	code, said := backupAsNobody()
	for _, want := range []string{
		db + " cannot be written by this user (nobody), and no server serves it (" + db + "-wal is not there)",
		"run the backup while the server serves the store, or as the user the server runs as (root owns socius.db)",
	} {
		if code != 1 || !strings.Contains(said, want) {
			t.Errorf("backup with no server: exit %d\n%s\nwant 1 and %q", code, said, want)
		}
	}
	if files, _ := os.ReadDir(backups); len(files) != 0 {
		t.Errorf("the backups' folder holds %d files after the refused backup", len(files))
	}
	for _, side := range []string{db + "-wal", db + "-shm"} {
		if _, err := os.Stat(side); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s after the refused backup: %v, want none", side, err)
		}
	}

	srv, err := startNode(t, bin, "serving", "--data", data, "--http", "127.0.0.1:0", "--https", "", "--admin", "", "--log-level", "error")
	if err != nil {
		t.Fatal(err)
	}
	if code, said := backupAsNobody(); code != 0 {
		t.Fatalf("backup beside the server: exit %d\n%s", code, said)
	}
	if got := copyNicknames(t, out); len(got) != users {
		t.Errorf("the copy holds %d users, want %d", len(got), users)
	}
	client := &http.Client{Timeout: 30 * time.Second}
	if a, err := callNode(t, client, srv, "socialize.setUserInfo", url.Values{"UID": {"p1"}, "userInfo": {`{"nickname":"after"}`}}); err != nil || a.code() != 0 {
		t.Errorf("setUserInfo after the backup: %v %v", a, err)
	}

	if err := os.Chmod(db+"-shm", 0o600); err != nil {
		t.Fatal(err)
	}
	code, said = backupAsNobody()
	if want := db + "-shm cannot be read: permission denied (this user is nobody)"; code != 1 || !strings.Contains(said, want) {
		t.Errorf("backup with a WAL-index it may not read: exit %d\n%s\nwant 1 and %q", code, said, want)
	}
	if got := copyNicknames(t, out); len(got) != users || got["p1"] != "old" {
		t.Errorf("the copy after the refused backup: %d users, p1's nickname %q; want it as it was", len(got), got["p1"])
	}
}
