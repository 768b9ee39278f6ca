package main

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// TestWriteOutThroughRelativeLink: a relative link is resolved as the kernel resolves
// it, from its folder's real place: lt/sub is a link to real/deep, and the link
// real/deep/out.jsonl names ../target.jsonl, which is real/target.jsonl (not
// lt/target.jsonl, as joining the text would have it). The file it names gets the
// export, and the links stay.
func TestWriteOutThroughRelativeLink(t *testing.T) {
	lt := t.TempDir()
	if err := os.MkdirAll(filepath.Join(lt, "real", "deep"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join("real", "deep"), filepath.Join(lt, "sub")); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(lt, "real", "target.jsonl")
	if err := os.WriteFile(target, []byte("old\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join("..", "target.jsonl"), filepath.Join(lt, "real", "deep", "out.jsonl")); err != nil {
		t.Fatal(err)
	}
	err := writeOut(filepath.Join(lt, "sub", "out.jsonl"), func(w io.Writer) error {
		_, err := io.WriteString(w, "new\n")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(target); err != nil || string(b) != "new\n" {
		t.Errorf("the file the links name: %q, %v; want the export", b, err)
	}
	if _, err := os.Stat(filepath.Join(lt, "target.jsonl")); !os.IsNotExist(err) {
		t.Errorf("a file was made where joining the link's text leads: %v", err)
	}
	if fi, err := os.Lstat(filepath.Join(lt, "real", "deep", "out.jsonl")); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the link after the export: %v %v", fi, err)
	}
}

// TestOutFileErrorsNameTheFile: an --out (or --export-on-exit) file that cannot be made
// is said by the name the user gave, not by the temporary file's beside it, which was
// never theirs (".socius-out-2822273411"). The --out of user export and of emulator
// export is checked before the export runs (before the store is opened, or the
// emulator asked), a usage error naming the flag (exit 2), as the bench's --json and
// serve's --export-on-exit are.
func TestOutFileErrorsNameTheFile(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	if code, _, errOut := runCLI(t, noEnv, "site", "create", "--api-key", "3_Out", "--data", data); code != 0 {
		t.Fatalf("site create: %d %s", code, errOut)
	}
	out := filepath.Join(dir, "nofolder", "users.jsonl")
	want := "cannot create " + out + ": no such file or directory"
	if code, _, errOut := runCLI(t, noEnv, "user", "export", "--site", "3_Out", "--out", out, "--data", data); code != 2 || errOut != "socius: --out: "+want+"\n" {
		t.Errorf("user export: exit %d %q; want 2 and %q", code, errOut, "--out: "+want)
	}
	// Checked before the store is opened: with no store there, the --out is said.
	if code, _, errOut := runCLI(t, noEnv, "user", "export", "--site", "3_Out", "--out", out, "--data", filepath.Join(dir, "nostore")); code != 2 || errOut != "socius: --out: "+want+"\n" {
		t.Errorf("user export, no store: exit %d %q; want 2 and %q", code, errOut, "--out: "+want)
	}
	if code, _, errOut := runCLI(t, noEnv, "user", "export", "--site", "3_Out", "--out", dir, "--data", data); code != 2 || errOut != "socius: --out: "+dir+" is a folder\n" {
		t.Errorf("user export to a folder: exit %d %q", code, errOut)
	}
	// emulator export asks no emulator (none listens at port 1) with an --out it
	// could not write.
	if code, _, errOut := runCLI(t, noEnv, "emulator", "export", "--url", "http://127.0.0.1:1", "--out", out); code != 2 || errOut != "socius: --out: "+want+"\n" {
		t.Errorf("emulator export: exit %d %q; want 2 and %q", code, errOut, "--out: "+want)
	}
	// A file there already that its owner may not write is replaced (the export is
	// renamed onto it), so it is not refused up front.
	readOnly := filepath.Join(dir, "read-only.jsonl")
	if err := os.WriteFile(readOnly, []byte("old\n"), 0o400); err != nil {
		t.Fatal(err)
	}
	if err := checkOutFolder(readOnly); err != nil {
		t.Errorf("checkOutFolder of a read-only file in a folder that takes files: %v", err)
	}
	if b, err := os.ReadFile(readOnly); err != nil || string(b) != "old\n" {
		t.Errorf("the file after the check: %q %v; want it as it was", b, err)
	}
	if err := checkWritable(out); err == nil || err.Error() != want {
		t.Errorf("checkWritable: %v; want %q", err, want)
	}
	// A write that fails on the temporary file (as on a full disk: here, at an offset
	// no file system takes) is said of the file named too.
	err := writeOut(filepath.Join(dir, "out.jsonl"), func(w io.Writer) error {
		f := w.(*os.File)
		_, err := f.WriteAt([]byte("x"), 1<<62) // beyond what any file system takes
		return err
	})
	if err == nil || !strings.HasPrefix(err.Error(), "cannot write "+filepath.Join(dir, "out.jsonl")+": ") {
		t.Errorf("a failed write: %v; want it said of out.jsonl", err)
	}
}

// TestWriteOutSyncsFolder: once the file is renamed into place, whole, its folder (the
// one a link leads to) is synced, so that the rename outlasts a power loss; a folder
// that cannot be synced is said, the file left in place. user export --out is written
// so. The folder was not synced: after a power loss the export could be gone, or the
// file it replaced back.
func TestWriteOutSyncsFolder(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Windows syncs no folder")
	}
	defer func(f func(string) error) { syncFolder = f }(syncFolder)
	var synced []string
	var failWith error
	syncFolder = func(dir string) error {
		// What the folder holds when it is synced: the file, whole.
		b, _ := os.ReadFile(filepath.Join(dir, "target.jsonl"))
		synced = append(synced, dir+": "+string(b))
		return failWith
	}
	dir, real := t.TempDir(), t.TempDir()
	link := filepath.Join(dir, "out.jsonl")
	if err := os.Symlink(filepath.Join(real, "target.jsonl"), link); err != nil {
		t.Fatal(err)
	}
	write := func(w io.Writer) error { _, err := io.WriteString(w, "new\n"); return err }
	if err := writeOut(link, write); err != nil {
		t.Fatal(err)
	}
	if want := []string{real + ": new\n"}; !slices.Equal(synced, want) {
		t.Errorf("synced %q, want %q", synced, want)
	}

	synced, failWith = nil, errors.New("open "+real+": permission denied")
	os.Remove(filepath.Join(real, "target.jsonl"))
	err := writeOut(link, write)
	want := link + " is written, but its folder could not be synced (open " + real + ": permission denied): a power loss before the system writes the folder out may lose it"
	if err == nil || err.Error() != want {
		t.Errorf("a folder not synced: %v, want %q", err, want)
	}
	if b, err := os.ReadFile(link); err != nil || string(b) != "new\n" {
		t.Errorf("the file whose folder was not synced: %q, %v; want it in place", b, err)
	}

	// user export --out.
	data := filepath.Join(dir, "data")
	if code, _, errOut := runCLI(t, noEnv, "site", "create", "--api-key", "3_Out", "--data", data); code != 0 {
		t.Fatalf("site create: %d %s", code, errOut)
	}
	out := filepath.Join(real, "target.jsonl")
	synced, failWith = nil, nil
	if code, _, errOut := runCLI(t, noEnv, "user", "export", "--site", "3_Out", "--with-site", "--data", data, "--out", out); code != 0 || len(synced) != 1 || !strings.HasPrefix(synced[0], real+": {") {
		t.Errorf("user export --out: exit %d %q, synced %q; want 0 and the folder synced with the export in it", code, errOut, synced)
	}
	failWith = errors.New("input/output error")
	code, _, errOut := runCLI(t, noEnv, "user", "export", "--site", "3_Out", "--data", data, "--out", out)
	if want := "socius: " + out + " is written, but its folder could not be synced (input/output error)"; code != 1 || !strings.HasPrefix(errOut, want) {
		t.Errorf("user export --out, the folder not synced: exit %d %q; want 1 and %q", code, errOut, want)
	}
}
