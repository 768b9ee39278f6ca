package main

import (
	"io"
	"os"
	"path/filepath"
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
