// Package testdirs makes folders for tests that run a program as another user.
package testdirs

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// Shared makes a new folder that any user may enter (t.TempDir's are their creator's
// only), so that a test may run a program as an unprivileged user inside it. It is
// removed at the test's end, whatever the test made read-only in it: its folders are
// made the owner's again first.
func Shared(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "socius-unwritable-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				os.Chmod(path, 0o700)
			}
			return nil
		})
		if err := os.RemoveAll(dir); err != nil {
			t.Error(err)
		}
	})
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}
