package vectors

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestCopyIsCurrent: the evidence in testdata/spec is byte for byte the team's
// ../shared/spec (test-vectors.json, error-codes.tsv, captures/), so that a checkout
// without the shared folder tests against the same. Without the shared folder there is
// nothing to compare: the test says so and skips.
func TestCopyIsCurrent(t *testing.T) {
	shared, err := SharedSpecDir()
	if err != nil {
		t.Skipf("no shared folder to compare the copy with: %v", err)
	}
	cp, err := CopyDir()
	if err != nil {
		t.Fatal(err)
	}
	captures, err := filepath.Glob(filepath.Join(shared, "captures", "*"))
	if err != nil || len(captures) == 0 {
		t.Fatalf("no captures in %s: %v", shared, err)
	}
	names := []string{"test-vectors.json", "error-codes.tsv"}
	for _, c := range captures {
		names = append(names, filepath.Join("captures", filepath.Base(c)))
	}
	for _, name := range names {
		want, err := os.ReadFile(filepath.Join(shared, name))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(cp, name))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: the copy differs from %s (copy it again: cp -r %s/{test-vectors.json,error-codes.tsv,captures} %s): %v", name, shared, shared, cp, err)
		}
	}
	copied, _ := filepath.Glob(filepath.Join(cp, "captures", "*"))
	if len(copied) != len(captures) {
		t.Errorf("the copy has %d captures, the shared folder %d", len(copied), len(captures))
	}
}

// TestSpecDirWithoutShared: from a folder with no ../shared/spec above it, the
// evidence comes from the copy.
func TestSpecDirWithoutShared(t *testing.T) {
	tmp := t.TempDir()
	t.Chdir(tmp)
	if _, err := SharedSpecDir(); err == nil {
		t.Skip("a ../shared/spec is above the temp folder")
	}
	dir, err := SpecDir()
	if err != nil {
		t.Fatal(err)
	}
	cp, _ := CopyDir()
	if dir != cp {
		t.Errorf("SpecDir = %s, want the copy %s", dir, cp)
	}
	if f, err := Load(); err != nil || len(f.RequestSignatureVectors) == 0 {
		t.Errorf("Load from the copy: %d vectors, %v", len(f.RequestSignatureVectors), err)
	}
}
