//go:build unix

package sqlite

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/socius/socius/internal/testdirs"
)

// unprivilegedID is the user and group (nobody, nogroup) that a test of files that
// cannot be written runs its helper process as when the test runs as root, whom the
// permissions of files do not stop.
const unprivilegedID = 65534

// TestOpenUnwritableSaid: Open, run as a user that may not write a file or folder the
// store needs, says which and what to do, rather than SQLite's "attempt to write a
// readonly database" from the first statement that writes (before: "create
// schema_migrations: ... (1544)" for the folder, "migration 0001_init.sql: ... (8)" for
// a WAL or WAL-index left read-only). Open runs in a helper process, as nobody when the
// test runs as root. The store opens when everything can be written, so the helper
// itself is not what fails.
func TestOpenUnwritableSaid(t *testing.T) {
	bin := helperBinary(t)
	asRoot := os.Geteuid() == 0
	for _, c := range []struct {
		name  string
		spoil func(t *testing.T, data, path string) // makes something unwritable
		want  []string                              // in Open's error; nil: Open works
	}{
		{"writable", func(*testing.T, string, string) {}, nil},
		{"folder", func(t *testing.T, data, _ string) { chmod(t, data, 0o500) },
			[]string{"the folder DATA cannot be written: permission denied", "must create socius.db-wal and socius.db-shm beside socius.db", "chmod u+w DATA"}},
		{"WAL", func(t *testing.T, _, path string) { leave(t, path+"-wal", 0o400, false) },
			[]string{"DB-wal cannot be written: permission denied", "chmod u+w DB-wal", "do not delete it"}},
		{"WAL-index", func(t *testing.T, _, path string) { leave(t, path+"-shm", 0o400, false) },
			[]string{"DB-shm cannot be written: permission denied", "chmod u+w DB-shm"}},
		{"root's WAL", func(t *testing.T, _, path string) {
			if !asRoot {
				t.Skip("root only: a WAL that root left behind")
			}
			leave(t, path+"-wal", 0o644, true)
		}, []string{"DB-wal cannot be written: permission denied (owned by root, mode -rw-r--r--", "chown ", "do not delete it"}},
		// The database file itself, said as the others are (before: only "open DB:
		// permission denied", without its owner or what to do).
		{"database", func(t *testing.T, _, path string) { chmod(t, path, 0o444) },
			[]string{"open DB: DB cannot be written: permission denied (", "mode -r--r--r--", "chmod u+w DB"}},
		{"root's database", func(t *testing.T, _, path string) {
			if !asRoot {
				t.Skip("root only: a database file that root made")
			}
			if err := os.Chown(path, 0, 0); err != nil {
				t.Fatal(err)
			}
			chmod(t, path, 0o644)
		}, []string{"DB cannot be written: permission denied (owned by root, mode -rw-r--r--", "chown "}},
		{"folder without the database", func(t *testing.T, data, path string) {
			for _, f := range []string{path, path + "-wal", path + "-shm"} {
				if err := os.Remove(f); err != nil && !os.IsNotExist(err) {
					t.Fatal(err)
				}
			}
			chmod(t, data, 0o500)
		}, []string{"open DB: the folder DATA cannot be written: permission denied", "must create socius.db, socius.db-wal and socius.db-shm there", "chmod u+w DATA"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			data := filepath.Join(testdirs.Shared(t), "data")
			path := filepath.Join(data, "socius.db")
			s := open(t, path)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if asRoot {
				if err := exec.Command("chown", "-R", fmt.Sprintf("%d:%d", unprivilegedID, unprivilegedID), data).Run(); err != nil {
					t.Fatalf("chown: %v", err)
				}
			}
			c.spoil(t, data, path)
			got := openAsUnprivileged(t, bin, path)
			if c.want == nil {
				if got != "opened" {
					t.Fatalf("Open of a store that can be written: %s", got)
				}
				return
			}
			for _, w := range c.want {
				w = strings.NewReplacer("DATA", data, "DB", path).Replace(w)
				if !strings.Contains(got, w) {
					t.Errorf("Open: %s\nwant it to say %q", got, w)
				}
			}
			if strings.Contains(got, "readonly database") || strings.Contains(got, "migration") {
				t.Errorf("Open: %s\nwant what cannot be written, not SQLite's error", got)
			}
		})
	}
}

// TestOpenHelperProcess is the process of TestOpenUnwritableSaid that opens the store.
func TestOpenHelperProcess(t *testing.T) {
	path := os.Getenv("SOCIUS_OPEN_HELPER")
	if path == "" {
		t.Skip("run by TestOpenUnwritableSaid")
	}
	s, err := Open(path)
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := s.Close(); err != nil {
		fmt.Println("opened, but Close:", err)
		return
	}
	fmt.Println("opened")
}

// openAsUnprivileged opens the store at path in the helper process, as nobody when the
// test runs as root, and returns the line it printed: "opened" or Open's error.
func openAsUnprivileged(t *testing.T, bin, path string) string {
	t.Helper()
	cmd := exec.Command(bin, "-test.run=^TestOpenHelperProcess$")
	cmd.Env = append(os.Environ(), "SOCIUS_OPEN_HELPER="+path)
	if os.Geteuid() == 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: unprivilegedID, Gid: unprivilegedID}}
	}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helper process: %v\n%s", err, out)
	}
	got, _, _ := strings.Cut(string(out), "\n") // then the test's PASS
	return got
}

// helperBinary is a copy of the test binary that the unprivileged user may run: the
// go command builds it in a folder of its own user's only.
func helperBinary(t *testing.T) string {
	t.Helper()
	src, err := os.Open(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	bin := filepath.Join(testdirs.Shared(t), "sqlite.test")
	dst, err := os.OpenFile(bin, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	return bin
}

// leave makes an empty file at path with mode perm, as a WAL file left behind: the
// unprivileged user's unless byRoot.
func leave(t *testing.T, path string, perm os.FileMode, byRoot bool) {
	t.Helper()
	if err := os.WriteFile(path, nil, perm); err != nil {
		t.Fatal(err)
	}
	chmod(t, path, perm)
	if os.Geteuid() == 0 && !byRoot {
		if err := os.Chown(path, unprivilegedID, unprivilegedID); err != nil {
			t.Fatal(err)
		}
	}
}

func chmod(t *testing.T, path string, perm os.FileMode) {
	t.Helper()
	if err := os.Chmod(path, perm); err != nil {
		t.Fatal(err)
	}
}
