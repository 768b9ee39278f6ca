package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
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
