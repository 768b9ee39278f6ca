//go:build unix

package sqlite

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/socius/socius/internal/testdirs"
)

// TestBackupServerStopsAfterCheck: a backup by a user who may read the store but not
// write it, whose server stops after Backup found the WAL and the WAL-index there and
// before SQLite opened the store, says that the server stopped and what to do (run it
// again beside the server, or as a user who may write the store), not SQLite's error
// from the read-only open of a WAL database with neither ("not a Socius store: read
// schema_migrations: ... unable to open database file"). The backup runs in a helper
// process as nobody (root only), which stops in backupChecked until the store, open in
// this process as a server's, is closed: its close removes the two files.
func TestBackupServerStopsAfterCheck(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("runs the backup as another user than the store's (nobody): root only")
	}
	bin := helperBinary(t)
	dir := testdirs.Shared(t)
	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(data, "socius.db")
	if err := open(t, path).Close(); err != nil {
		t.Fatal(err)
	}
	chmod(t, path, 0o644) // nobody may read it, and so the WAL and WAL-index made like it
	backups := filepath.Join(dir, "backups")
	if err := os.Mkdir(backups, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(backups, unprivilegedID, unprivilegedID); err != nil {
		t.Fatal(err)
	}
	s := open(t, path) // the server: its WAL and WAL-index are there while it is open
	defer s.Close()
	for _, side := range []string{path + "-wal", path + "-shm"} {
		if _, err := os.Stat(side); err != nil {
			t.Fatalf("the open store's %s: %v", side, err)
		}
	}

	cmd := exec.Command(bin, "-test.run=^TestBackupHelperProcess$")
	cmd.Env = append(os.Environ(), "SOCIUS_BACKUP_HELPER="+path, "SOCIUS_BACKUP_HELPER_OUT="+filepath.Join(backups, "copy.db"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: unprivilegedID, Gid: unprivilegedID}}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer stdin.Close()
	lines := bufio.NewScanner(stdout)
	if !lines.Scan() || lines.Text() != "checked" {
		t.Fatalf("the helper's first line: %q, want \"checked\"", lines.Text())
	}
	// The server stops in the window.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for _, side := range []string{path + "-wal", path + "-shm"} {
		if _, err := os.Stat(side); err == nil {
			t.Fatalf("%s is still there after the store's close: the window is not forced", side)
		}
	}
	fmt.Fprintln(stdin, "stopped")
	var said []string
	for lines.Scan() && lines.Text() != "PASS" { // then the helper test's own lines
		said = append(said, lines.Text())
	}
	got := strings.Join(said, "\n")
	for _, want := range []string{
		"sqlite: the server serving " + path + " stopped during the backup",
		"run the backup again while the server serves the store, or as the user the server runs as (root owns socius.db)",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("Backup: %s\nwant it to say %q", got, want)
		}
	}
	for _, raw := range []string{"readonly database", "unable to open", "not a Socius store"} {
		if strings.Contains(got, raw) {
			t.Errorf("Backup: %s\nwant what happened and what to do, not SQLite's error (%q)", got, raw)
		}
	}
}

// TestBackupHelperProcess is the process of TestBackupServerStopsAfterCheck that runs
// the backup: it says "checked" when Backup has checked the store, waits for a line
// on its input (the server stopped), and prints Backup's error, or "copied".
func TestBackupHelperProcess(t *testing.T) {
	path := os.Getenv("SOCIUS_BACKUP_HELPER")
	if path == "" {
		t.Skip("run by TestBackupServerStopsAfterCheck")
	}
	in := bufio.NewScanner(os.Stdin)
	backupChecked = func() {
		fmt.Println("checked")
		in.Scan()
	}
	if _, err := Backup(context.Background(), path, os.Getenv("SOCIUS_BACKUP_HELPER_OUT")); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("copied")
}
