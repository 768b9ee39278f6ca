package sqlite

import (
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/socius/socius"
)

// TestBackupWhileWriting: a backup of a store that keeps writing holds every write
// that returned before the backup began, and passes CheckCopy, which counts what it
// holds; the store's writes go on during the backup; the source is left without a
// file of the backup's beside it. The copy sits in a folder whose name has the
// characters a SQLite URI gives a meaning to.
func TestBackupWhileWriting(t *testing.T) {
	s, path := siteStore(t)
	var acked atomic.Int64 // users 0 to acked-1 are written
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var writeErr atomic.Pointer[error]
	wg.Go(func() {
		for i := int64(0); ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			uid := fmt.Sprintf("u%d", i)
			if _, err := s.Login(t.Context(), "3_site", uid, patchOf(map[socius.Field]string{socius.Nickname: uid}), now); err != nil {
				writeErr.Store(&err)
				return
			}
			acked.Store(i + 1)
		}
	})
	t.Cleanup(func() { close(stop); wg.Wait() })
	// waitWrites waits until at least n users are written, for up to writesBound: a
	// writer that stalls fails the test, saying where, instead of hanging it until
	// the package's timeout.
	const writesBound = 30 * time.Second
	waitWrites := func(n int64, when string) {
		t.Helper()
		for deadline := time.Now().Add(writesBound); acked.Load() < n; time.Sleep(time.Millisecond) {
			if p := writeErr.Load(); p != nil {
				t.Fatal(*p)
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d users written after %v, want %d: the writer stalled", when, acked.Load(), writesBound, n)
			}
		}
	}
	waitWrites(200, "before the backup")

	dir := filepath.Join(t.TempDir(), "a?b#c%d")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, "copy.db")
	before := acked.Load()
	schema, err := Backup(t.Context(), path, dst)
	after := acked.Load()
	if err != nil {
		t.Fatalf("Backup: %v", err)
	}
	if schema != SchemaVersion() {
		t.Errorf("Backup's schema version %d, want %d", schema, SchemaVersion())
	}
	info, err := CheckCopy(t.Context(), dst)
	if err != nil {
		t.Fatalf("CheckCopy: %v", err)
	}
	if info.Schema != SchemaVersion() || info.Sites != 1 || info.Users < before || info.Users > after+1 {
		t.Errorf("CheckCopy: %+v, want schema %d, 1 site, %d to %d users", info, SchemaVersion(), before, after+1)
	}
	// The users the copy holds are the first ones written, none missing.
	db, err := sql.Open("sqlite", fileURI(dst)+"?mode=ro&immutable=1")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, i := range []int64{0, before / 2, before - 1} {
		var n int
		if err := db.QueryRow(`SELECT COUNT(*) FROM users WHERE uid = ?`, fmt.Sprintf("u%d", i)).Scan(&n); err != nil || n != 1 {
			t.Errorf("user u%d in the copy: %d, %v", i, n, err)
		}
	}
	var most int64
	if err := db.QueryRow(`SELECT MAX(CAST(substr(uid, 2) AS INTEGER)) FROM users`).Scan(&most); err != nil || most != info.Users-1 {
		t.Errorf("the copy's newest user u%d (%v), want u%d: a user written before is missing", most, err, info.Users-1)
	}
	// The store went on writing after the backup.
	waitWrites(acked.Load()+10, "after the backup")
	files, _ := os.ReadDir(dir)
	if len(files) != 1 {
		t.Errorf("the copy's folder holds %d files, want the copy alone", len(files))
	}
}

// TestCheckCopyRefuses: CheckCopy fails on a damaged copy, on a database that is no
// Socius store, and on one a newer Socius migrated, and says which.
func TestCheckCopyRefuses(t *testing.T) {
	s, path := siteStore(t)
	loginUsers(t, s, "3_site", "u1", "u2")
	good := filepath.Join(t.TempDir(), "good.db")
	if _, err := Backup(t.Context(), path, good); err != nil {
		t.Fatal(err)
	}
	copyOf := func(name string, change func(db *sql.DB)) string {
		t.Helper()
		b, err := os.ReadFile(good)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if change != nil {
			db, err := sql.Open("sqlite", p)
			if err != nil {
				t.Fatal(err)
			}
			change(db)
			db.Close()
		}
		return p
	}

	damaged := copyOf("damaged.db", nil)
	b, _ := os.ReadFile(damaged)
	pageSize := int(b[16])<<8 | int(b[17])
	if pageSize == 1 {
		pageSize = 65536
	}
	// Every page but the first (the schema) overwritten: the tables' B-trees are gone.
	for i := pageSize; i < len(b); i++ {
		b[i] = 0x55
	}
	if err := os.WriteFile(damaged, b, 0o600); err != nil {
		t.Fatal(err)
	}
	newer := copyOf("newer.db", func(db *sql.DB) {
		if _, err := db.Exec(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, 'from_the_future.sql', 0)`, SchemaVersion()+1); err != nil {
			t.Fatal(err)
		}
	})
	other := filepath.Join(t.TempDir(), "other.db")
	func() {
		db, err := sql.Open("sqlite", other)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if _, err := db.Exec(`CREATE TABLE notes (body TEXT)`); err != nil {
			t.Fatal(err)
		}
	}()
	for _, c := range []struct{ name, path, want string }{
		{"damaged", damaged, "malformed"},
		{"newer", newer, "migrated by a newer Socius"},
		{"other", other, "not a Socius store"},
	} {
		_, err := CheckCopy(t.Context(), c.path)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("CheckCopy of the %s copy: %v, want an error saying %q", c.name, err, c.want)
		}
	}
	if info, err := CheckCopy(t.Context(), good); err != nil || info.Users != 2 || info.Sites != 1 {
		t.Errorf("CheckCopy of the good copy: %+v, %v", info, err)
	}
	// Backup refuses a store a newer Socius migrated (this one cannot check its copy)
	// and a file that is no store, and makes none where there is none.
	none := filepath.Join(t.TempDir(), "none.db")
	for _, src := range []string{newer, other, none} {
		dst := filepath.Join(t.TempDir(), "copy.db")
		if _, err := Backup(t.Context(), src, dst); err == nil {
			t.Errorf("Backup of %s: no error", src)
		}
		if _, err := os.Stat(dst); err == nil {
			t.Errorf("Backup of %s made %s", src, dst)
		}
	}
	if _, err := os.Stat(none); err == nil {
		t.Error("Backup of a missing store made it")
	}
}
