package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/socius/socius/internal/testdirs"
)

// unprivilegedID is the user and group (nobody, nogroup) that a test of files that
// cannot be written runs socius as when the test runs as root, whom the permissions of
// files do not stop.
const unprivilegedID = 65534

// TestServeUnwritableStore: `socius serve`, run as a user that may not write the data
// folder, or a WAL left behind read-only, stops at start with status 1 and says which
// file or folder cannot be written and what to do, as for a database file it may not
// write; before, SQLite's "attempt to write a readonly database" from the first
// statement that writes ("create schema_migrations", "migration 0001_init.sql"). The
// folder was served before by the same user (serve.lock, master.key and the store are
// there), as after an upgrade that changed its permissions.
func TestServeUnwritableStore(t *testing.T) {
	data, bin := servedDataFolder(t)

	if err := os.Chmod(data, 0o500); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(data, "socius.db")
	out := serveUnprivileged(t, bin, data, false)
	for _, want := range []string{
		"socius: sqlite: open " + db + ": the folder " + data + " cannot be written: permission denied",
		"must create socius.db-wal and socius.db-shm beside socius.db",
		"chmod u+w " + data,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("serve with the data folder read-only:\n%s\nwant it to say %q", out, want)
		}
	}

	if err := os.Chmod(data, 0o700); err != nil {
		t.Fatal(err)
	}
	wal := db + "-wal"
	if err := os.WriteFile(wal, nil, 0o400); err != nil {
		t.Fatal(err)
	}
	giveUnprivileged(t, wal)
	out = serveUnprivileged(t, bin, data, false)
	for _, want := range []string{
		"socius: sqlite: open " + db + ": " + wal + " cannot be written: permission denied",
		"chmod u+w " + wal,
		"do not delete it",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("serve with a WAL left read-only:\n%s\nwant it to say %q", out, want)
		}
	}
	if strings.Contains(out, "readonly database") {
		t.Errorf("serve with a WAL left read-only:\n%s\nwant what cannot be written, not SQLite's error", out)
	}

	// A folder never served, read-only: serve.lock, the first file serve makes, cannot
	// be made. Its error said only "open DIR/serve.lock: permission denied".
	fresh := filepath.Join(filepath.Dir(data), "fresh")
	if err := os.Mkdir(fresh, 0o500); err != nil {
		t.Fatal(err)
	}
	giveUnprivileged(t, fresh)
	out = serveUnprivileged(t, bin, fresh, false)
	for _, want := range []string{
		"open " + filepath.Join(fresh, "serve.lock") + ": permission denied",
		"the data folder " + fresh + " and its files must be writable by the user Socius runs as",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("serve with a new data folder read-only:\n%s\nwant it to say %q", out, want)
		}
	}
}

// serveUnprivileged runs `socius serve` on data, with flags, as nobody when the test
// runs as root.
// When it should start, it is stopped once it serves; else it must exit with status 1
// (a store that cannot open), and what it wrote to its standard error is returned.
func serveUnprivileged(t *testing.T, bin, data string, starts bool, flags ...string) string {
	t.Helper()
	return serveUnprivilegedThen(t, bin, data, starts, nil, flags...)
}

// serveUnprivilegedThen is serveUnprivileged, calling whileServing (if not nil) once
// serve serves, before it is stopped.
func serveUnprivilegedThen(t *testing.T, bin, data string, starts bool, whileServing func(), flags ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"serve", "--data", data, "--http", "127.0.0.1:0", "--https", "",
		"--admin", "", "--log-level", "error"}, flags...)...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")} // the flags alone choose
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if os.Geteuid() == 0 {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: unprivilegedID, Gid: unprivilegedID}
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	serving := false
	for sc.Scan() {
		if strings.Contains(sc.Text(), "serving HTTP on") {
			serving = true
			if whileServing != nil {
				whileServing()
			}
			cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	io.Copy(io.Discard, stdout)
	err = cmd.Wait()
	var exit *exec.ExitError
	switch {
	case starts && (!serving || err != nil):
		t.Fatalf("serve on a folder it may write: %v\n%s", err, stderr.String())
	case !starts && serving:
		t.Fatalf("serve started:\n%s", stderr.String())
	case !starts && (!errors.As(err, &exit) || exit.ExitCode() != 1):
		t.Fatalf("serve: %v, want exit status 1\n%s", err, stderr.String())
	}
	return stderr.String()
}

// serveThenChmod serves the data folder as the unprivileged user, changes the folder's
// mode to perm while it serves, stops it, and returns its warnings.
func serveThenChmod(t *testing.T, bin, data string, perm os.FileMode) string {
	t.Helper()
	return serveUnprivilegedThen(t, bin, data, true, func() {
		if err := os.Chmod(data, perm); err != nil {
			t.Error(err)
		}
	}, "--log-level", "warn")
}

// unprivilegedSetup makes a folder that the unprivileged user may enter (see
// testdirs.Shared), with a copy of the socius binary that user may run (the go command
// builds it in a folder of the test's user's only).
func unprivilegedSetup(t *testing.T) (dir, bin string) {
	t.Helper()
	dir = testdirs.Shared(t)
	bin = filepath.Join(dir, "socius")
	copyFile(t, binary(t), bin, 0o755)
	return dir, bin
}

// servedDataFolder makes a data folder of the unprivileged user's in a folder of
// unprivilegedSetup's, and serves it once, as that user, to a clean stop: the folder
// then holds what a served one does (serve.lock, master.key, the store, the nonces).
// It returns the folder and the binary that user may run.
func servedDataFolder(t *testing.T) (data, bin string) {
	t.Helper()
	dir, bin := unprivilegedSetup(t)
	data = filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatal(err)
	}
	giveUnprivileged(t, data)
	serveUnprivileged(t, bin, data, true)
	return data, bin
}

// giveUnprivileged gives the files at paths to the unprivileged user, when the test
// runs as root (otherwise they are the test's user's, who runs serve).
func giveUnprivileged(t *testing.T, paths ...string) {
	t.Helper()
	if os.Geteuid() != 0 {
		return
	}
	for _, p := range paths {
		if err := os.Chown(p, unprivilegedID, unprivilegedID); err != nil {
			t.Fatal(err)
		}
	}
}

// TestExportOnExitOverAReadOnlyFile: an --export-on-exit file that exists and that
// Socius's user may not write, in a folder it may write, is replaced at the exit by
// the export (renamed into place, as every export file is): it was refused at start
// (exit 2), checked by opening it for writing, which the export never does. The
// bench's --json is checked the same way.
func TestExportOnExitOverAReadOnlyFile(t *testing.T) {
	dir, bin := unprivilegedSetup(t)
	out := filepath.Join(dir, "out")
	if err := os.Mkdir(out, 0o700); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatal(err)
	}
	giveUnprivileged(t, out, data)
	export := filepath.Join(out, "export.jsonl")
	if err := os.WriteFile(export, []byte("old\n"), 0o444); err != nil { // root's, when root
		t.Fatal(err)
	}
	serveUnprivileged(t, bin, data, true, "--emulator", "--export-on-exit", export)
	b, err := os.ReadFile(export)
	if err != nil || !strings.Contains(string(b), `"apiKey"`) {
		t.Errorf("the export file after the exit: %v\n%s\nwant the export", err, b)
	}
}

// TestServeDataFolderUnwritableLater: the data folder made read-only while serve
// serves (an operator's chmod, a file system remounted read-only) leaves the nonces
// unsaved at the stop: one warning saying so and what it costs, and the stop is still
// clean, exit 0. It exited 1 ("save the nonces: cannot create DIR/nonces: permission
// denied") after serving for however long.
func TestServeDataFolderUnwritableLater(t *testing.T) {
	data, bin := servedDataFolder(t)
	out := serveThenChmod(t, bin, data, 0o500)
	nonces := filepath.Join(data, noncesFile)
	want := "nonces: not saved: cannot create " + nonces + ": permission denied: the next start refuses the signed requests timed before it"
	if strings.Count(out, "nonces: not saved") != 1 || !strings.Contains(out, want) || !strings.Contains(out, "The data folder "+data+" must stay writable") {
		t.Errorf("the stop with the data folder made read-only:\n%s\nwant one warning %q", out, want)
	}
	if _, err := os.Stat(nonces); !os.IsNotExist(err) {
		t.Errorf("%s: %v; want none", nonces, err)
	}
}

// TestServeDataFolderUnsyncable: a data folder its user may write but not read (mode
// -wx) takes the nonces' file at the stop, but cannot be synced after it. The warning
// said "nonces: not saved", though the file was there, whole (synced before its
// rename), and the next start loaded it; it says that they were saved, and what only a
// power loss could cost.
func TestServeDataFolderUnsyncable(t *testing.T) {
	data, bin := servedDataFolder(t)
	out := serveThenChmod(t, bin, data, 0o300)
	nonces := filepath.Join(data, noncesFile)
	want := "nonces: 0 saved for the next start in " + nonces + ", but the folder could not be synced (open " + data + ": permission denied): the next start loads them, unless the machine loses power"
	if strings.Contains(out, "not saved") || !strings.Contains(out, want) {
		t.Errorf("the stop with the data folder made unreadable:\n%s\nwant %q", out, want)
	}
	if _, err := os.Stat(nonces); err != nil {
		t.Fatalf("%s: %v", nonces, err)
	}
	if err := os.Chmod(data, 0o700); err != nil {
		t.Fatal(err)
	}
	if out := serveUnprivileged(t, bin, data, true, "--log-level", "info"); !strings.Contains(out, "nonces: 0 of the last shutdown remembered") || strings.Contains(out, "level=WARN") {
		t.Errorf("the next start:\n%s\nwant the nonces loaded, and no warning", out)
	}
}

// TestNoncesLoadedFolderUnsyncable: a start that loads the nonces and removes their
// file, in a data folder it may write but not read (so not sync), keeps the nonces it
// loaded and warns that the removal may not outlive a power loss: the file was emptied
// (and synced) before it was removed, so a start that found it again would refuse the
// signed requests timed before it, as after a stop that was not clean. That start is
// the third here: the empty file put back as a power loss could leave it. The warning
// read "remove DIR/nonces: open DIR: permission denied", though the removal worked,
// and the start refused the signed requests timed before it, its nonces dropped.
func TestNoncesLoadedFolderUnsyncable(t *testing.T) {
	data, bin := servedDataFolder(t)
	nonces := filepath.Join(data, noncesFile)
	if _, err := os.Stat(nonces); err != nil {
		t.Fatalf("after a clean stop: %v", err)
	}
	if err := os.Chmod(data, 0o300); err != nil {
		t.Fatal(err)
	}
	out := serveUnprivileged(t, bin, data, true, "--log-level", "info")
	for _, want := range []string{
		"nonces: 0 of the last shutdown remembered",
		"nonces: " + nonces + " removed, but the folder could not be synced (open " + data + ": permission denied)",
		"emptied before it was removed",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("a start in a folder it may not read:\n%s\nwant %q", out, want)
		}
	}
	if strings.Contains(out, "refused") {
		t.Errorf("a start in a folder it may not read:\n%s\nwant the nonces kept, no request refused", out)
	}
	if err := os.Chmod(data, 0o700); err != nil {
		t.Fatal(err)
	}
	// What a power loss could leave: the removal undone, the emptying kept (in place
	// of the file the stop saved).
	if err := os.Remove(nonces); err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	if err := os.WriteFile(nonces, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	giveUnprivileged(t, nonces)
	out = serveUnprivileged(t, bin, data, true, "--log-level", "warn")
	if want := "nonces: " + nonces + " is empty"; !strings.Contains(out, want) || !strings.Contains(out, "refused for the next") {
		t.Errorf("a start that finds the emptied file:\n%s\nwant %q and the signed requests before it refused", out, want)
	}
}

// TestNoncesReadOnlyFolderUnsyncable: a nonces file its user may read but not write, in
// a data folder it may write but not read (so not sync), is loaded and removed, but
// could not be emptied first: the warning says so, and what a power loss could then
// cost (the whole file found again, the last window's signed requests replayable),
// not that it was emptied.
func TestNoncesReadOnlyFolderUnsyncable(t *testing.T) {
	data, bin := servedDataFolder(t)
	nonces := filepath.Join(data, noncesFile)
	if err := os.Chmod(nonces, 0o400); err != nil {
		t.Fatalf("after a clean stop: %v", err)
	}
	if err := os.Chmod(data, 0o300); err != nil {
		t.Fatal(err)
	}
	out := serveUnprivileged(t, bin, data, true, "--log-level", "info")
	for _, want := range []string{
		"nonces: 0 of the last shutdown remembered",
		"nonces: " + nonces + " removed, but the folder could not be synced (open " + data + ": permission denied)",
		"the file could not be emptied before it was removed (its user may not write it)",
		"could then be replayed",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("a start in a folder it may not read, the nonces file read-only:\n%s\nwant %q", out, want)
		}
	}
	if strings.Contains(out, "was emptied before") || strings.Contains(out, "refused") {
		t.Errorf("a start in a folder it may not read, the nonces file read-only:\n%s\nwant the nonces kept, and the file not said emptied", out)
	}
}

// TestServeSelfSignedUnwritable: with --https and no --tls-cert, a data folder whose
// self-signed certificate or key cannot be written (on the first start) or read fails
// the start, exit 1, naming the file and what to do, before the store, master key and
// demo site are made; it failed after them ("TLS certificate: open DIR/tls-key.pem:
// permission denied").
func TestServeSelfSignedUnwritable(t *testing.T) {
	dir, bin := unprivilegedSetup(t)
	for _, tt := range []struct {
		name  string
		files []string // made with mode 0: its user may neither read nor write them
		says  []string
	}{
		{"a key it may not write", []string{"tls-key.pem"}, []string{
			"socius: TLS certificate: DATA/tls-key.pem cannot be written: permission denied",
			"make DATA writable by the user Socius runs as",
			"--tls-cert and --tls-key", `--https ""`,
		}},
		{"a pair it may not read", []string{"tls-cert.pem", "tls-key.pem"}, []string{
			"socius: TLS certificate: DATA/tls-cert.pem cannot be read: permission denied",
			"must be readable by the user Socius runs as", "remove both",
		}},
	} {
		data := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-"))
		if err := os.Mkdir(data, 0o700); err != nil {
			t.Fatal(err)
		}
		for _, f := range tt.files {
			if err := os.WriteFile(filepath.Join(data, f), nil, 0); err != nil {
				t.Fatal(err)
			}
		}
		giveUnprivileged(t, data)
		out := serveUnprivileged(t, bin, data, false, "--https", "127.0.0.1:0")
		for _, want := range tt.says {
			if want = strings.ReplaceAll(want, "DATA", data); !strings.Contains(out, want) {
				t.Errorf("%s:\n%s\nwant it to say %q", tt.name, out, want)
			}
		}
		for _, made := range []string{"socius.db", "master.key", "serve.lock"} {
			if _, err := os.Stat(filepath.Join(data, made)); !os.IsNotExist(err) {
				t.Errorf("%s: %s made (%v)", tt.name, made, err)
			}
		}
	}
}
