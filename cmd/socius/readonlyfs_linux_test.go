package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/socius/socius/sqlite"
)

// readOnlyStore makes a store with one site in a data folder on a tmpfs, stopped
// cleanly (no WAL), then mounts that file system read-only, as a snapshot mounted to be
// looked at or a volume the kernel remounted read-only after an error; it returns the
// data folder. The test needs root to mount, and is skipped otherwise.
func readOnlyStore(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=4m,mode=0700"); err != nil {
		t.Skipf("cannot mount a file system for the data folder (root only): %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmount: %v", err)
		}
	})
	data := filepath.Join(dir, "data")
	if code, stdout, stderr := runCLI(t, noEnv, "site", "create", "--data", data, "--name", "shop"); code != 0 {
		t.Fatalf("site create: exit %d\n%s%s", code, stdout, stderr)
	}
	if _, err := os.Stat(filepath.Join(data, "socius.db-wal")); err == nil {
		t.Fatal("socius.db-wal is left after site create; the test needs a store stopped cleanly")
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_REMOUNT|syscall.MS_RDONLY, ""); err != nil {
		t.Fatalf("remount read-only: %v", err)
	}
	return data
}

// TestServeReadOnlyFileSystem: serve on a data folder whose file system is mounted
// read-only refuses to start (exit 1) saying so and what to do, where it said only
// "open DIR/serve.lock: read-only file system".
func TestServeReadOnlyFileSystem(t *testing.T) {
	data := readOnlyStore(t)
	code, _, stderr := runCLI(t, noEnv, "serve", "--data", data, "--http", "127.0.0.1:0", "--https", "", "--admin", "")
	for _, want := range []string{
		"open " + filepath.Join(data, "serve.lock") + ": read-only file system",
		"the data folder " + data + " is on a file system mounted read-only",
		"remount it read-write, or give a --data on a file system that can be written",
	} {
		if code != 1 || !strings.Contains(stderr, want) {
			t.Errorf("serve on a read-only file system: exit %d, %q; want 1, saying %q", code, stderr, want)
		}
	}
}

// TestBackupReadOnlyFileSystem: socius backup copies a store stopped cleanly on a file
// system mounted read-only (reading it as immutable), where it refused, telling root
// that it could not write socius.db and to run the backup as the user the server runs
// as (root), or beside a server (which cannot serve there).
func TestBackupReadOnlyFileSystem(t *testing.T) {
	data := readOnlyStore(t)
	out := filepath.Join(t.TempDir(), "copy.db")
	code, stdout, stderr := runCLI(t, noEnv, "backup", "--data", data, "--out", out)
	if code != 0 {
		t.Fatalf("backup of a store on a read-only file system: exit %d\n%s%s\nwant it copied", code, stdout, stderr)
	}
	info, err := sqlite.CheckCopy(t.Context(), out)
	if err != nil || info.Sites != 1 {
		t.Errorf("the copy: %+v, %v; want it whole, with the site", info, err)
	}
}
