package sqlite

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/socius/socius"
)

// TestCacheSeesOtherWriters checks that Site and Key, served from memory while the
// database is unchanged, see at once what another store on the same file (as `socius
// site` or `socius key` beside a running server) commits.
func TestCacheSeesOtherWriters(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "socius.db")
	server, admin := open(t, path), open(t, path)
	defer server.Close()
	defer admin.Close()
	if server.cache == nil {
		t.Fatal("the store runs without its cache")
	}
	createSiteAndKey(t, admin, "one")
	for range 3 { // fill the cache, then hit it
		if got, err := server.Site(ctx, "3_site"); err != nil || got.Name != "one" {
			t.Fatalf("Site: %+v, %v", got, err)
		}
		if got, err := server.Key(ctx, "Akey"); err != nil || len(got.Methods) != 1 {
			t.Fatalf("Key: %+v, %v", got, err)
		}
	}
	// A caller that changes what it got does not change the cache.
	got, _ := server.Key(ctx, "Akey")
	got.Methods[0] = "changed"
	got2, _ := server.Site(ctx, "3_site")
	got2.Name = "changed"
	if k, _ := server.Key(ctx, "Akey"); k.Methods[0] != "socialize.getUserInfo" {
		t.Errorf("the cached key changed with a caller's copy: %v", k.Methods)
	}
	if s, _ := server.Site(ctx, "3_site"); s.Name != "one" {
		t.Errorf("the cached site changed with a caller's copy: %q", s.Name)
	}

	site := &socius.Site{APIKey: "3_site", Secret: "bmV3LXNlY3JldC0wMTIzNDU2Nzg5YWI=", Name: "two", CreatedAt: now}
	if err := admin.PutSite(ctx, site); err != nil {
		t.Fatal(err)
	}
	if got, err := server.Site(ctx, "3_site"); err != nil || got.Name != "two" || got.Secret != site.Secret {
		t.Errorf("Site after another store changed it: %+v, %v", got, err)
	}
	if err := admin.DeleteKey(ctx, "Akey"); err != nil {
		t.Fatal(err)
	}
	if _, err := server.Key(ctx, "Akey"); !errors.Is(err, socius.ErrNotFound) {
		t.Errorf("Key after another store deleted it: %v, want %v", err, socius.ErrNotFound)
	}
}

// TestCacheKeptAcrossOwnUserWrites checks that the store's own writes of users and
// tokens leave the cached site and key in place (without that, every commit of a
// busy server emptied the cache), while its own writes of sites and keys do not.
func TestCacheKeptAcrossOwnUserWrites(t *testing.T) {
	ctx := t.Context()
	s := open(t, filepath.Join(t.TempDir(), "socius.db"))
	defer s.Close()
	createSiteAndKey(t, s, "one")
	lookBoth := func() {
		t.Helper()
		if _, err := s.Site(ctx, "3_site"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Key(ctx, "Akey"); err != nil {
			t.Fatal(err)
		}
	}
	lookBoth() // fills the cache
	before := s.cache.misses.Load()
	var p socius.Patch
	p.Set(socius.Nickname, "ada")
	for i := range 20 {
		p.Set(socius.Age, strconv.Itoa(i)) // a change: a write of equal values commits nothing
		if _, err := s.Login(ctx, "3_site", "u"+strconv.Itoa(i%3), &p, now); err != nil {
			t.Fatal(err)
		}
		if err := s.UpdateProfile(ctx, "3_site", "u0", &p, now); err != nil {
			t.Fatal(err)
		}
		lookBoth()
	}
	if err := s.CreateToken(ctx, &socius.Token{Hash: strings.Repeat("a", 64), APIKey: "3_site", UID: "u0", ExpiresAt: now.Add(time.Hour), CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if err := s.Logout(ctx, "3_site", "u1", now); err != nil {
		t.Fatal(err)
	}
	lookBoth()
	if n := s.cache.misses.Load() - before; n != 0 {
		t.Errorf("%d lookups queried the database after the store's own user writes, want 0", n)
	}

	// The store's own write of a site empties the cache.
	site := &socius.Site{APIKey: "3_site", Secret: "bmV3LXNlY3JldC0wMTIzNDU2Nzg5YWI=", Name: "two", CreatedAt: now}
	if err := s.PutSite(ctx, site); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Site(ctx, "3_site"); err != nil || got.Name != "two" {
		t.Errorf("Site after the store changed it: %+v, %v", got, err)
	}
	if _, err := s.Login(ctx, "3_site", "u9", &p, now); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteKey(ctx, "Akey"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Key(ctx, "Akey"); !errors.Is(err, socius.ErrNotFound) {
		t.Errorf("Key after the store deleted it: %v, want %v", err, socius.ErrNotFound)
	}
}

// TestCacheOtherCommitRightAfterOwn has another store commit a change of the site
// between the server's commit of a user write and the moment the server decides
// whether its cache survives that commit: the cache must not survive it.
func TestCacheOtherCommitRightAfterOwn(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "socius.db")
	server, admin := open(t, path), open(t, path)
	defer server.Close()
	defer admin.Close()
	createSiteAndKey(t, admin, "one")
	var p socius.Patch
	p.Set(socius.Nickname, "ada")
	if _, err := server.Login(ctx, "3_site", "u1", &p, now); err != nil {
		t.Fatal(err)
	}
	if _, err := server.Site(ctx, "3_site"); err != nil { // cached
		t.Fatal(err)
	}
	var hookErr error
	server.afterCommit = func() {
		server.afterCommit = nil // runs on the writer goroutine: once
		hookErr = admin.PutSite(ctx, &socius.Site{APIKey: "3_site", Secret: "bmV3LXNlY3JldC0wMTIzNDU2Nzg5YWI=", Name: "two", CreatedAt: now})
	}
	p.Set(socius.Age, "36")
	if err := server.UpdateProfile(ctx, "3_site", "u1", &p, now); err != nil {
		t.Fatal(err)
	}
	if hookErr != nil {
		t.Fatal(hookErr)
	}
	if got, err := server.Site(ctx, "3_site"); err != nil || got.Name != "two" {
		t.Errorf("Site after another store changed it right after the server's commit: %+v, %v", got, err)
	}
}

// createSiteAndKey creates the site 3_site, named name, and its key Akey (allowed
// socialize.getUserInfo).
func createSiteAndKey(t *testing.T, s *Store, name string) {
	t.Helper()
	if err := s.CreateSite(t.Context(), &socius.Site{APIKey: "3_site", Secret: "c2VjcmV0LTAxMjM0NTY3ODlhYmM=", Name: name, CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateKey(t.Context(), &socius.Key{UserKey: "Akey", APIKey: "3_site", Secret: "a2V5LTAxMjM0NTY3ODlhYmNkZWY=", Methods: []string{"socialize.getUserInfo"}, CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
}

// TestCacheSeesOtherProcesses has another process (this test binary, run as a helper)
// change and delete what the store has cached, as `socius site` and `socius key` do
// beside a running server.
func TestCacheSeesOtherProcesses(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "socius.db")
	s := open(t, path)
	defer s.Close()
	if err := s.CreateSite(ctx, &socius.Site{APIKey: "3_site", Secret: "c2VjcmV0LTAxMjM0NTY3ODlhYmM=", Name: "before", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateKey(ctx, &socius.Key{UserKey: "Akey", APIKey: "3_site", Secret: "a2V5LTAxMjM0NTY3ODlhYmNkZWY=", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if site, err := s.Site(ctx, "3_site"); err != nil || site.Name != "before" {
			t.Fatalf("Site: %+v, %v", site, err)
		}
		if _, err := s.Key(ctx, "Akey"); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestCacheHelperProcess$")
	cmd.Env = append(os.Environ(), "SOCIUS_SQLITE_HELPER="+path)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("helper process: %v\n%s", err, out)
	}
	if site, err := s.Site(ctx, "3_site"); err != nil || site.Name != "after" {
		t.Errorf("Site after another process changed it: %+v, %v", site, err)
	}
	if _, err := s.Key(ctx, "Akey"); !errors.Is(err, socius.ErrNotFound) {
		t.Errorf("Key after another process deleted it: %v, want %v", err, socius.ErrNotFound)
	}
}

// TestCacheHelperProcess is the other process of TestCacheSeesOtherProcesses.
func TestCacheHelperProcess(t *testing.T) {
	path := os.Getenv("SOCIUS_SQLITE_HELPER")
	if path == "" {
		t.Skip("run by TestCacheSeesOtherProcesses")
	}
	s := open(t, path)
	defer s.Close()
	if err := s.PutSite(t.Context(), &socius.Site{APIKey: "3_site", Secret: "bmV3LXNlY3JldC0wMTIzNDU2Nzg5YWI=", Name: "after", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteKey(t.Context(), "Akey"); err != nil {
		t.Fatal(err)
	}
}

// TestCacheNeverServesOldData has one store rewrite a site's name with a counter while
// readers on another store check that each read is at least as new as the last write
// that had returned before the read began, and that other store writes users.
func TestCacheNeverServesOldData(t *testing.T) {
	t.Run("mapped", func(t *testing.T) { testCacheNeverServesOldData(t, true) })
	t.Run("pread", func(t *testing.T) { testCacheNeverServesOldData(t, false) })
}

func testCacheNeverServesOldData(t *testing.T, mapped bool) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "socius.db")
	server, admin := open(t, path), open(t, path)
	defer server.Close()
	defer admin.Close()
	if !mapped {
		server.cache.unmapHeader()
	} else if server.cache.mem.Load() == nil && runtime.GOOS != "windows" {
		t.Fatal("the WAL-index header is not mapped")
	}
	put := func(n int64) error {
		return admin.PutSite(ctx, &socius.Site{APIKey: "3_site", Secret: "c2VjcmV0LTAxMjM0NTY3ODlhYmM=", Name: strconv.FormatInt(n, 10), CreatedAt: now})
	}
	if err := put(0); err != nil {
		t.Fatal(err)
	}
	var written atomic.Int64 // the last version whose PutSite has returned
	var wg sync.WaitGroup
	stop := make(chan struct{})
	// Meanwhile the server writes users, whose commits it may carry its cache across.
	wg.Go(func() {
		var p socius.Patch
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			p.Set(socius.Age, strconv.Itoa(i))
			if _, err := server.Login(ctx, "3_site", "u"+strconv.Itoa(i%10), &p, now); err != nil {
				t.Error(err)
				return
			}
		}
	})
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				floor := written.Load()
				s, err := server.Site(ctx, "3_site")
				if err != nil {
					t.Error(err)
					return
				}
				if n, _ := strconv.ParseInt(s.Name, 10, 64); n < floor {
					t.Errorf("read version %d after version %d was written", n, floor)
					return
				}
			}
		})
	}
	for n := int64(1); n <= 100; n++ {
		if err := put(n); err != nil {
			t.Fatal(err)
		}
		written.Store(n)
	}
	close(stop)
	wg.Wait()
}

// BenchmarkSite measures the lookup every call starts with, on an unchanged database.
func BenchmarkSite(b *testing.B) {
	s := newStore(b)
	ctx := b.Context()
	if err := s.CreateSite(ctx, &socius.Site{APIKey: "3_site", Secret: "c2VjcmV0LTAxMjM0NTY3ODlhYmM=", CreatedAt: now}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Site(ctx, "3_site"); err != nil {
			b.Fatal(err)
		}
	}
}
