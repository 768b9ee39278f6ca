package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/socius/socius"
	"github.com/socius/socius/internal/linecount"
	"github.com/socius/socius/internal/vectors"
	"github.com/socius/socius/storetest"
)

// openDataStore opens the store of an admin command's --data folder.
func openDataStore(t *testing.T, dir string) socius.Store {
	t.Helper()
	st, err := (&storeFlags{data: dir, mayCreate: true}).open(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// labSiteStore opens the embedded store in a new temporary folder with the lab site in
// it; the test's cleanup closes it.
func labSiteStore(t *testing.T) socius.Store {
	t.Helper()
	st := openDataStore(t, t.TempDir())
	t.Cleanup(func() { st.Close() })
	if err := st.CreateSite(context.Background(), &socius.Site{APIKey: testAPIKey, Secret: testSecret, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	return st
}

// allUsers reads every user of a site, page by page.
func allUsers(t *testing.T, st socius.Store, apiKey string) []*socius.User {
	t.Helper()
	var out []*socius.User
	after := ""
	for {
		page, err := st.Users(context.Background(), apiKey, after, 777)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, page...)
		if len(page) < 777 {
			return out
		}
		after = page[len(page)-1].UID
	}
}

// seedUsers puts n users with varied profiles into the store, concurrently.
func seedUsers(t *testing.T, st socius.Store, apiKey string, n int) {
	t.Helper()
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 678_000_000, time.UTC)
	names := []string{"David", "Dávid 🎉", `quote " backslash \ <b>&amp;`, "tab\tnew\nline", "中文", strings.Repeat("x", 1000)}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 8 {
				u := &socius.User{APIKey: apiKey, UID: fmt.Sprintf("user-%05d", i), CreatedAt: t0.Add(time.Duration(i) * time.Millisecond)}
				if i%97 == 0 {
					u.UID = fmt.Sprintf(`odd "uid" \%d <&> ~`, i)
				}
				if i%3 != 0 {
					u.Profile[socius.FirstName] = names[i%len(names)]
					u.Profile[socius.Age] = strconv.Itoa(i % 151)
					u.Profile[socius.Gender] = []string{"m", "f", "u"}[i%3]
					u.UpdatedAt = u.CreatedAt.Add(time.Hour)
				}
				if i%5 == 0 {
					u.Profile[socius.Email] = fmt.Sprintf("u%d@example.com", i)
					u.Profile[socius.PhotoURL] = fmt.Sprintf("https://img.example.com/%d.png?a=1&b=2", i)
					u.Profile[socius.ThumbnailURL] = "https://img.example.com/t.png"
					u.Profile[socius.Nickname] = "n" + strconv.Itoa(i)
					u.Profile[socius.LastName] = "Ünal"
				}
				if i%2 == 0 {
					u.LoginAt = u.CreatedAt.Add(time.Minute)
					u.LoggedIn = i%4 == 0
				}
				if err := st.PutUser(context.Background(), u); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// TestUserExportImportRoundTrip exports 10,000 users, imports them into a fresh store
// and exports again: the two exports are the same bytes, and every user is equal in
// every field. A second import of the same file changes nothing.
func TestUserExportImportRoundTrip(t *testing.T) {
	const n = 10_000
	dirA, dirB := t.TempDir(), t.TempDir()
	st := openDataStore(t, dirA)
	ctx := context.Background()
	site := &socius.Site{APIKey: testAPIKey, Secret: testSecret, Name: "lab", CreatedAt: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	if err := st.CreateSite(ctx, site); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateKey(ctx, &socius.Key{UserKey: vectors.LabUserKey, APIKey: testAPIKey, Secret: vectors.LabUserSecret,
		Methods: []string{"socialize.getUserInfo"}, CreatedAt: site.CreatedAt}); err != nil {
		t.Fatal(err)
	}
	// Another site's users stay out of the export.
	if err := st.CreateSite(ctx, &socius.Site{APIKey: "3_Other", Secret: socius.NewSecret(), CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	seedUsers(t, st, "3_Other", 10)
	seedUsers(t, st, testAPIKey, n)
	want := allUsers(t, st, testAPIKey)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if len(want) != n {
		t.Fatalf("seeded %d users", len(want))
	}

	// The file holds secrets in clear: only its owner may read it, even one that was
	// there before with a wider mode.
	fileA := filepath.Join(t.TempDir(), "a.jsonl")
	if err := os.WriteFile(fileA, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := runCLI(t, noEnv, "user", "export", "--data", dirA, "--site", testAPIKey, "--with-site", "--out", fileA)
	if code != 0 || !strings.Contains(errOut, fmt.Sprintf("exported %d users", n)) {
		t.Fatalf("export: exit %d %s", code, errOut)
	}
	// What a move leaves behind is said where it starts.
	if !strings.Contains(errOut, "not exported: the site's tokens and mobile sessions") {
		t.Errorf("export --with-site does not say that tokens are not exported:\n%s", errOut)
	}
	if fi, err := os.Stat(fileA); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("the export file: %v %v, want mode 0600", fi.Mode(), err)
	}
	// A file that is not a regular one keeps its mode (as /dev/null must): a pipe here.
	fifo := filepath.Join(t.TempDir(), "pipe")
	makeFifo(t, fifo, 0o644)
	read := make(chan error, 1)
	go func() {
		f, err := os.Open(fifo)
		if err == nil {
			_, err = io.Copy(io.Discard, f)
			f.Close()
		}
		read <- err
	}()
	if code, _, errOut := runCLI(t, noEnv, "user", "export", "--data", dirA, "--site", testAPIKey, "--out", fifo); code != 0 {
		t.Errorf("export to a pipe: exit %d %s", code, errOut)
	}
	if err := <-read; err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(fifo); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("a pipe after an export: %v %v, want its mode 0644 kept", fi.Mode(), err)
	}
	code, out, errOut := runCLI(t, noEnv, "user", "import", "--data", dirB, "--in", fileA)
	if code != 0 || !strings.Contains(out, fmt.Sprintf("imported %d user records, 0 bad lines", n)) ||
		!strings.Contains(out, "created site "+testAPIKey) || !strings.Contains(out, "created key "+vectors.LabUserKey) {
		t.Fatalf("import: exit %d\n%s%s", code, out, errOut)
	}
	// Export to standard output this time.
	code, exportB, errOut := runCLI(t, noEnv, "user", "export", "--data", dirB, "--site", testAPIKey, "--with-site")
	if code != 0 {
		t.Fatalf("second export: exit %d %s", code, errOut)
	}
	exportA, err := os.ReadFile(fileA)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(exportA, []byte(exportB)) {
		t.Fatalf("the exports differ: %d and %d bytes", len(exportA), len(exportB))
	}
	if lines := bytes.Count(exportA, []byte("\n")); lines != n+2 {
		t.Errorf("%d lines, want %d users, a site and a key", lines, n)
	}

	stB := openDataStore(t, dirB)
	defer stB.Close()
	got := allUsers(t, stB, testAPIKey)
	if len(got) != len(want) {
		t.Fatalf("%d users after the import, want %d", len(got), len(want))
	}
	for i := range want {
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Fatalf("user %d differs:\n got %+v\nwant %+v", i, got[i], want[i])
		}
	}
	if others, _ := stB.CountUsers(ctx, ""); others != n {
		t.Errorf("%d users in the new store, want %d (another site's users leaked)", others, n)
	}
	gotSite, err := stB.Site(ctx, testAPIKey)
	if err != nil || gotSite.Secret != testSecret || gotSite.Name != "lab" || !gotSite.CreatedAt.Equal(site.CreatedAt) {
		t.Errorf("site %+v %v", gotSite, err)
	}
	key, err := stB.Key(ctx, vectors.LabUserKey)
	if err != nil || key.Secret != vectors.LabUserSecret || !reflect.DeepEqual(key.Methods, []string{"socialize.getUserInfo"}) {
		t.Errorf("key %+v %v", key, err)
	}
	stB.Close()

	// Importing again is idempotent: nothing created, nothing changed.
	code, out, errOut = runCLI(t, noEnv, "user", "import", "--data", dirB, "--in", fileA)
	if code != 0 || strings.Contains(out, "created") || !strings.Contains(out, fmt.Sprintf("imported %d user records, 0 bad lines", n)) {
		t.Fatalf("second import: exit %d\n%s%s", code, out, errOut)
	}
	// The site there is said to be merged into, with the users it had.
	if merged := fmt.Sprintf("site %s existed with the same secret and %d users: the file's users of it were merged in", testAPIKey, n); !strings.Contains(out, merged) {
		t.Errorf("second import does not say %q:\n%s", merged, out)
	}
	if code, again, _ := runCLI(t, noEnv, "user", "export", "--data", dirB, "--site", testAPIKey, "--with-site"); code != 0 || again != exportB {
		t.Error("a second import changed the store")
	}
}

// TestImportIntoASiteWithoutUsers: a site line for a site there with the same secret
// and no users says so, without "merged in (one with a UID there replaced it)", which
// it said with 0 users, where nothing could be merged with or replaced (the
// thirty-third session's walk of the README); with users there it says how a UID they
// share is taken.
func TestImportIntoASiteWithoutUsers(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "d")
	if code, _, errOut := runCLI(t, noEnv, "site", "create", "--data", dir, "--api-key", testAPIKey, "--secret", testSecret); code != 0 {
		t.Fatalf("site create: exit %d %s", code, errOut)
	}
	file := filepath.Join(t.TempDir(), "site.jsonl")
	lines := `{"kind":"site","apiKey":"` + testAPIKey + `","secret":"` + testSecret + `"}` + "\n" +
		`{"kind":"user","apiKey":"` + testAPIKey + `","UID":"u1","profile":{"firstName":"A"}}` + "\n"
	if err := os.WriteFile(file, []byte(lines), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCLI(t, noEnv, "user", "import", "--data", dir, "--in", file)
	if want := "site " + testAPIKey + " existed with the same secret and no users: the file's users of it were imported into it\n"; code != 0 || !strings.Contains(out, want) || strings.Contains(out, "merged") {
		t.Errorf("first import: exit %d %q %q; want %q", code, out, errOut, want)
	}
	code, out, errOut = runCLI(t, noEnv, "user", "import", "--data", dir, "--in", file)
	if want := "site " + testAPIKey + " existed with the same secret and 1 user: the file's users of it were merged in (each with a UID it had replaced that user)\n"; code != 0 || !strings.Contains(out, want) {
		t.Errorf("second import: exit %d %q %q; want %q", code, out, errOut, want)
	}
}

// TestUserExportFails: an export that the store fails half way, or that a signal
// stops, leaves the file there before as it was and makes none where there was none
// (half an export would pass for a whole one); nothing of it is left beside either. A
// pipe or a device given as --out is written as it is, and left. So on both ways an
// export reads: from a view of the store (both stores have one), failing or stopped at
// its second page of users, the view closed when the export ends (its connection
// given back: the store then closes at once); and from a store that has no view
// (storeFault hides it), failing at its first page.
func TestUserExportFails(t *testing.T) {
	defer func(n int) { exportPage = n }(exportPage)
	exportPage = 2
	st := labSiteStore(t)
	ctx := context.Background()
	for i := range 5 {
		if err := st.PutUser(ctx, &socius.User{APIKey: testAPIKey, UID: fmt.Sprint("u-", i), CreatedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	fifo := filepath.Join(dir, "pipe")
	makeFifo(t, fifo, 0o600)
	// The pipe's reader takes whatever comes, from every export that opens the pipe:
	// open for reading and writing, it neither waits for a writer nor sees the end
	// of one.
	reader, err := os.OpenFile(fifo, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	go io.Copy(io.Discard, reader)
	old := filepath.Join(dir, "backup.jsonl")
	if err := os.WriteFile(old, []byte("yesterday's export\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	views := &failingViews{Store: st}
	for _, c := range []struct {
		out  string
		kept bool
	}{{filepath.Join(dir, "users.jsonl"), false}, {old, true}, {fifo, true}} {
		for _, failing := range []socius.Store{views, storeFault{Store: st, fail: "Users"}} {
			err := exportUsers(ctx, failing, testAPIKey, false, true, c.out, io.Discard, io.Discard)
			if !errors.Is(err, errStoreGone) {
				t.Errorf("export to %s with %T failing: %v", c.out, failing, err)
			}
			if _, err := os.Lstat(c.out); (err == nil) != c.kept {
				t.Errorf("%s after the export %T failed: %v; want kept %v", c.out, failing, err, c.kept)
			}
		}
	}
	// Stopped by a signal (its context cancelled) once the export has begun.
	for _, stopped := range []func(context.CancelFunc) socius.Store{
		func(cancel context.CancelFunc) socius.Store { views.cancel = cancel; return views },
		func(cancel context.CancelFunc) socius.Store { return cancelOnUsers{Store: st, cancel: cancel} },
	} {
		stop, cancel := context.WithCancel(ctx)
		store := stopped(cancel)
		err := exportUsers(stop, store, testAPIKey, false, true, old, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "export stopped by a signal: "+old+" is left as it was") {
			t.Errorf("an export of %T stopped by a signal: %v", store, err)
		}
		cancel()
	}
	if b, err := os.ReadFile(old); err != nil || string(b) != "yesterday's export\n" {
		t.Errorf("the file there before, after the failed exports: %q, %v", b, err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("the folder after the failed exports holds %d entries, want the file and the pipe", len(entries))
	}
	if opened, open := views.opened.Load(), views.open.Load(); opened != 4 || open != 0 {
		t.Errorf("the failed exports opened %d views and left %d open; want 4 opened, none left", opened, open)
	}
	// Nothing of the exports holds the store: it closes at once.
	closed := make(chan error, 1)
	go func() { closed <- st.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("the store's Close after the failed exports: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("the store does not close after the failed exports")
	}
}

// failingViews is a store whose views read the store's own, but whose second page of
// users fails as the database gone away does (500028), or, cancel set, cancels the
// export's context as a signal would: an export cut short half way through its view.
// It counts the views opened and those left open.
type failingViews struct {
	socius.Store
	cancel       context.CancelFunc
	opened, open atomic.Int32
}

func (s *failingViews) Snapshot(ctx context.Context) (socius.View, error) {
	v, err := s.Store.(socius.Snapshotter).Snapshot(ctx)
	if err != nil {
		return nil, err
	}
	s.opened.Add(1)
	s.open.Add(1)
	return &failingView{View: v, s: s}, nil
}

type failingView struct {
	socius.View
	s      *failingViews
	pages  int
	closed bool
}

func (v *failingView) Users(ctx context.Context, apiKey, after string, limit int) ([]*socius.User, error) {
	if v.pages++; v.pages < 2 {
		return v.View.Users(ctx, apiKey, after, limit)
	}
	if v.s.cancel != nil {
		v.s.cancel()
		return nil, ctx.Err()
	}
	return nil, errStoreGone
}

func (v *failingView) Close() error {
	if !v.closed {
		v.closed = true
		v.s.open.Add(-1)
	}
	return v.View.Close()
}

// cancelOnUsers cancels the export's context when it reads its first page of users,
// as a signal would; it has no view (Snapshot), and the export reads it page by page.
type cancelOnUsers struct {
	socius.Store
	cancel context.CancelFunc
}

func (s cancelOnUsers) Users(ctx context.Context, apiKey, after string, limit int) ([]*socius.User, error) {
	s.cancel()
	return nil, ctx.Err()
}

// TestUserImportOneOfEach: counts of one are said in the singular, in the import's
// summary and the export's.
func TestUserImportOneOfEach(t *testing.T) {
	dir := t.TempDir()
	st := openDataStore(t, dir)
	if err := st.CreateSite(context.Background(), &socius.Site{APIKey: testAPIKey, Secret: testSecret, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	in := filepath.Join(t.TempDir(), "in.jsonl")
	lines := `{"kind":"user","apiKey":"` + testAPIKey + `","UID":"only"}` + "\n" + `{"kind":"user","UID":` + "\n"
	if err := os.WriteFile(in, []byte(lines), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := runCLI(t, noEnv, "user", "import", "--data", dir, "--in", in); code != 1 || !strings.Contains(out, "imported 1 user record, 1 bad line\n") ||
		!strings.Contains(errOut, "socius: import: 1 bad line skipped (see above)\n") {
		t.Errorf("import: exit %d\n%s%s", code, out, errOut)
	}
	if code, _, errOut := runCLI(t, noEnv, "user", "export", "--data", dir, "--site", testAPIKey, "--out", filepath.Join(t.TempDir(), "out.jsonl")); code != 0 || !strings.Contains(errOut, "exported 1 user of site ") {
		t.Errorf("export: exit %d\n%s", code, errOut)
	}
}

func TestUserImportBadLines(t *testing.T) {
	dir := t.TempDir()
	st := openDataStore(t, dir)
	if err := st.CreateSite(context.Background(), &socius.Site{APIKey: testAPIKey, Secret: testSecret, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	lines := []string{
		`{"kind":"user","apiKey":"` + testAPIKey + `","UID":"good-1","profile":{"firstName":"Ada","age":36}}`, // 1
		`{"kind":"user","apiKey":"` + testAPIKey + `","UID":`,                                                 // 2: broken JSON
		``, // 3: blank, skipped silently
		`{"kind":"user","apiKey":"3_Nowhere","UID":"u"}`,                                                                       // 4: unknown site
		`{"kind":"user","apiKey":"` + testAPIKey + `","UID":"u","profile":{"gender":"x"}}`,                                     // 5: bad value
		`{"kind":"robot","apiKey":"` + testAPIKey + `"}`,                                                                       // 6: unknown kind
		`{"apiKey":"` + testAPIKey + `","UID":"good-2","loggedIn":true,"loginAt":"2026-11-28T10:00:00.000Z"}`,                  // 7: a user without kind
		`{"kind":"site","apiKey":"` + testAPIKey + `","secret":"bm90LXRoZS1wYXJ0bmVyLXNlY3JldC0wMDA="}`,                        // 8: existing site, other secret
		`{"kind":"key","userKey":"AKey","apiKey":"3_Nowhere","secret":"` + vectors.LabUserSecret + `"}`,                        // 9: key of an unknown site
		`{"kind":"user","apiKey":"` + testAPIKey + `","UID":"good-1","profile":{"firstName":"Ada Lovelace"}}`,                  // 10: same user again: last wins
		`{"kind":"user","apiKey":"` + testAPIKey + `","UID":"u","shoeSize":44}`,                                                // 11: unknown field
		`{"kind":"site","apiKey":"3_New","secret":"` + testSecret + `","name":"new"}`,                                          // 12: a new site
		`{"kind":"user","apiKey":"3_New","UID":"good-3"}`,                                                                      // 13: a user of it
		`{"kind":"key","userKey":"AImp1","apiKey":"3_New","secret":"` + vectors.LabUserSecret + `","methods":[""]}`,            // 14: an empty method
		`{"kind":"key","userKey":"AImp2","apiKey":"3_New","secret":"` + vectors.LabUserSecret + `","methods":["getuserinfo"]}`, // 15: spelt as served
		`{"kind":"user","apiKey":"3_New","UID":"big","profile":{"firstName":"` + strings.Repeat("x", 2<<20) + `"}}`,            // 16: over 1 MiB
		`{"kind":"user","apiKey":"3_New","UID":"good-4"}`,                                                                      // 17: read after it
		`{"kind":"key","userKey":"AImp2","apiKey":"3_New","secret":"` + testSecret + `","methods":["getUserInfo"]}`,            // 18: existing key, other secret
		`{"kind":"key","userKey":"AImp2","apiKey":"3_New","secret":"` + vectors.LabUserSecret + `","methods":["setUserInfo"]}`, // 19: existing key, other methods
		`{"kind":"key","userKey":"AImp2","apiKey":"3_New","secret":"` + vectors.LabUserSecret + `","methods":["getUserInfo"]}`, // 20: the same key again
	}
	in := filepath.Join(t.TempDir(), "in.jsonl")
	if err := os.WriteFile(in, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	defer func(d time.Duration) { progressEvery = d }(progressEvery)
	progressEvery = 0 // a progress line for every record
	code, out, errOut := runCLI(t, noEnv, "user", "import", "--data", dir, "--in", in)
	if code != 1 {
		t.Errorf("exit %d, want 1 (bad lines)", code)
	}
	if !strings.Contains(out, "imported 5 user records, 11 bad lines") || !strings.Contains(out, "created site 3_New") {
		t.Errorf("summary:\n%s", out)
	}
	for _, want := range []string{
		"line 2: not a valid record", "line 4: user u: no site has apiKey 3_Nowhere", "line 5: user u: gender must be one of m, f, u",
		`line 6: unknown kind "robot"`, "line 8: site " + testAPIKey + " exists with another secret: not changed (an import never replaces credentials); the file's users of site " + testAPIKey + " are imported into it as it is, its keys are not", "line 9: key AKey: no site has apiKey 3_Nowhere",
		`line 11: not a valid record: unknown field "shoeSize"`,
		`line 14: key AImp1: "" is not a method Socius serves`, "line 16: longer than 1048576 bytes",
		"line 18: key AImp2 exists with other settings: not changed", "line 19: key AImp2 exists with other settings: not changed",
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	if regexp.MustCompile(`line (1|3|7|10|12|13|15|17|20):`).MatchString(errOut) {
		t.Errorf("a good line was reported:\n%s", errOut)
	}
	if !regexp.MustCompile(`importing: line \d+, \d+ user records imported, \d+ bad lines`).MatchString(errOut) {
		t.Errorf("no progress line:\n%s", errOut)
	}
	st = openDataStore(t, dir)
	defer st.Close()
	u, err := st.User(context.Background(), testAPIKey, "good-1")
	if err != nil || u.Profile[socius.FirstName] != "Ada Lovelace" || u.Profile[socius.Age] != "" {
		t.Errorf("good-1 = %+v %v: a later record replaces the user whole", u, err)
	}
	if s, err := st.Site(context.Background(), testAPIKey); err != nil || s.Secret != testSecret {
		t.Errorf("the existing site's secret changed: %+v %v", s, err)
	}
	if _, err := st.User(context.Background(), "3_New", "good-3"); err != nil {
		t.Errorf("user of the imported site: %v", err)
	}
	if _, err := st.User(context.Background(), "3_New", "good-4"); err != nil {
		t.Errorf("the user after an over-long line: %v", err)
	}
	if _, err := st.Key(context.Background(), "AImp1"); !errors.Is(err, socius.ErrNotFound) {
		t.Errorf("a key limited to the method \"\" was imported (it would be a key without limits): %v", err)
	}
	if k, err := st.Key(context.Background(), "AImp2"); err != nil || !slices.Equal(k.Methods, []string{"socialize.getUserInfo"}) || k.Secret != vectors.LabUserSecret {
		t.Errorf("a key limited to getuserinfo: %+v %v; want socialize.getUserInfo and its first secret", k, err)
	}
	// A site or key line without createdAt is created now, as a user's.
	if s, err := st.Site(context.Background(), "3_New"); err != nil || time.Since(s.CreatedAt) > time.Hour || s.CreatedAt.After(time.Now()) {
		t.Errorf("site 3_New, imported without createdAt: %+v %v", s, err)
	}
	// A line without times is a user created by the import, not in the year 1 (its
	// getUserInfo would say lastUpdated 0001-01-01).
	if u, err := st.User(context.Background(), testAPIKey, "good-2"); err != nil || time.Since(u.CreatedAt) > time.Hour || u.CreatedAt.After(time.Now()) {
		t.Errorf("good-2, imported without times: %+v %v", u, err)
	}
}

// TestImportRefusedSiteAddsNoKeys: the key lines of a site whose line was refused (it
// exists with another secret: the file is another installation's) are refused too,
// whether the key exists or not, so that such a file adds no credentials to the site;
// they were created when missing, with the file's secrets ("created key ..."). The
// site's users are still imported into it, as the site's line says.
func TestImportRefusedSiteAddsNoKeys(t *testing.T) {
	dir := t.TempDir()
	st := openDataStore(t, dir)
	ctx := context.Background()
	if err := st.CreateSite(ctx, &socius.Site{APIKey: testAPIKey, Secret: testSecret, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateKey(ctx, &socius.Key{UserKey: "AOld", APIKey: testAPIKey, Secret: vectors.LabUserSecret, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	other := "bm90LXRoZS1wYXJ0bmVyLXNlY3JldC0wMDA="
	lines := []string{
		`{"kind":"site","apiKey":"` + testAPIKey + `","secret":"` + other + `"}`,                                 // 1: refused
		`{"kind":"key","userKey":"ANew","apiKey":"` + testAPIKey + `","secret":"` + other + `"}`,                 // 2: a new key of it
		`{"kind":"key","userKey":"AOld","apiKey":"` + testAPIKey + `","secret":"` + vectors.LabUserSecret + `"}`, // 3: its key as it is
		`{"kind":"user","apiKey":"` + testAPIKey + `","UID":"u1"}`,                                               // 4: a user of it
	}
	in := filepath.Join(t.TempDir(), "in.jsonl")
	if err := os.WriteFile(in, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCLI(t, noEnv, "user", "import", "--data", dir, "--in", in)
	if code != 1 || !strings.Contains(out, "imported 1 user record, 3 bad lines\n") || strings.Contains(out, "created") {
		t.Errorf("import: exit %d\n%s%s", code, out, errOut)
	}
	for _, want := range []string{
		"line 1: site " + testAPIKey + " exists with another secret: not changed (an import never replaces credentials); the file's users of site " + testAPIKey + " are imported into it as it is, its keys are not\n",
		"line 2: key ANew: not imported: the line of its site " + testAPIKey + " (line 1) was refused, as that site exists with another secret (an import adds no key to it)\n",
		"line 3: key AOld: not imported: the line of its site " + testAPIKey + " (line 1) was refused",
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	st = openDataStore(t, dir)
	defer st.Close()
	if k, err := st.Key(ctx, "ANew"); !errors.Is(err, socius.ErrNotFound) {
		t.Errorf("a key of the refused site's line was created: %+v %v", k, err)
	}
	if k, err := st.Key(ctx, "AOld"); err != nil || k.Secret != vectors.LabUserSecret {
		t.Errorf("the existing key: %+v %v", k, err)
	}
	if _, err := st.User(ctx, testAPIKey, "u1"); err != nil {
		t.Errorf("the user of the site: %v", err)
	}
}

// TestImportKeyBeforeItsSiteLine: a key line placed before its site's line waits for
// that line: refused with it when the site there has another secret (the key was
// created in that site first, from another installation's file), created with it for a
// new site. Key lines of a site without a line in the file go into the site there, at
// the end; and an import holds a bounded number of them.
func TestImportKeyBeforeItsSiteLine(t *testing.T) {
	dir := t.TempDir()
	st := openDataStore(t, dir)
	ctx := context.Background()
	if err := st.CreateSite(ctx, &socius.Site{APIKey: testAPIKey, Secret: testSecret, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	other := "bm90LXRoZS1wYXJ0bmVyLXNlY3JldC0wMDA="
	lines := []string{
		`{"kind":"key","userKey":"ANew","apiKey":"` + testAPIKey + `","secret":"` + other + `"}`,                  // 1: before its site's line
		`{"kind":"key","userKey":"AThere","apiKey":"3_There","secret":"` + vectors.LabUserSecret + `"}`,           // 2: of a site with a later line
		`{"kind":"user","apiKey":"` + testAPIKey + `","UID":"u1"}`,                                                // 3: a user of the site there
		`{"kind":"site","apiKey":"` + testAPIKey + `","secret":"` + other + `"}`,                                  // 4: refused
		`{"kind":"site","apiKey":"3_There","secret":"` + testSecret + `"}`,                                        // 5: created
		`{"kind":"key","userKey":"AFree","apiKey":"` + testAPIKey + `","secret":"` + vectors.LabUserSecret + `"}`, // 6: after the refused line
	}
	in := filepath.Join(t.TempDir(), "in.jsonl")
	if err := os.WriteFile(in, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCLI(t, noEnv, "user", "import", "--data", dir, "--in", in)
	if code != 1 || out != "created site 3_There\ncreated key AThere\nimported 1 user record, 3 bad lines\n" {
		t.Errorf("import: exit %d\n%s%s", code, out, errOut)
	}
	for _, want := range []string{
		"line 4: site " + testAPIKey + " exists with another secret",
		"line 1: key ANew: not imported: the line of its site " + testAPIKey + " (line 4) was refused",
		"line 6: key AFree: not imported: the line of its site " + testAPIKey + " (line 4) was refused",
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	st = openDataStore(t, dir)
	if k, err := st.Key(ctx, "ANew"); !errors.Is(err, socius.ErrNotFound) {
		t.Errorf("the key line before its refused site's line was imported: %+v %v", k, err)
	}
	if k, err := st.Key(ctx, "AThere"); err != nil || k.APIKey != "3_There" {
		t.Errorf("the key line before its created site's line: %+v %v", k, err)
	}
	st.Close()

	// No site line for it in the file: the key goes into the site there.
	lines = []string{`{"kind":"key","userKey":"AOwn","apiKey":"` + testAPIKey + `","secret":"` + vectors.LabUserSecret + `"}`}
	if err := os.WriteFile(in, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := runCLI(t, noEnv, "user", "import", "--data", dir, "--in", in); code != 0 || out != "created key AOwn\nimported 0 user records, 0 bad lines\n" {
		t.Errorf("a key of the site there: exit %d\n%s%s", code, out, errOut)
	}

	// More key lines waiting than the bound: the import stops, saying why.
	defer func(n int) { heldKeysMax = n }(heldKeysMax)
	heldKeysMax = 1
	lines = []string{
		`{"kind":"key","userKey":"AK1","apiKey":"3_Later","secret":"` + vectors.LabUserSecret + `"}`,
		`{"kind":"key","userKey":"AK2","apiKey":"3_Later","secret":"` + vectors.LabUserSecret + `"}`,
		`{"kind":"site","apiKey":"3_Later","secret":"` + testSecret + `"}`,
	}
	if err := os.WriteFile(in, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errOut = runCLI(t, noEnv, "user", "import", "--data", dir, "--in", in)
	if want := "line 2: more than 1 key lines before their site's line"; code != 1 || !strings.Contains(errOut, want) {
		t.Errorf("over the bound: exit %d, stderr %q; want 1 saying %q", code, errOut, want)
	}
	st = openDataStore(t, dir)
	defer st.Close()
	if _, err := st.Site(ctx, "3_Later"); !errors.Is(err, socius.ErrNotFound) {
		t.Errorf("the import went on past the bound: %v", err)
	}
}

// TestImportPublicKeyComparedByKey: a key line's publicKey is stored as key create
// --public-key stores it (PKIX PEM), so that a key line giving in PKCS #1 the key that
// key create stored is the same key, not "exists with other settings" (an import
// compared the texts, and stored the line's as it was); a key an import stored before
// as its line gave it is compared by key too. An export then import of the key is the
// same bytes.
func TestImportPublicKeyComparedByKey(t *testing.T) {
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pkcs1 := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&priv.PublicKey)}))
	pkix, err := socius.EncodeRSAPublicKey(&priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pubFile := filepath.Join(t.TempDir(), "key.pub.pem")
	if err := os.WriteFile(pubFile, []byte(pkcs1), 0o600); err != nil {
		t.Fatal(err)
	}
	dirA := filepath.Join(t.TempDir(), "a")
	if code, _, errOut := runCLI(t, noEnv, "site", "create", "--data", dirA, "--api-key", testAPIKey, "--secret", testSecret); code != 0 {
		t.Fatalf("site create: exit %d %s", code, errOut)
	}
	if code, _, errOut := runCLI(t, noEnv, "key", "create", "--data", dirA, "--site", testAPIKey, "--user-key", "ABearer", "--secret", vectors.LabUserSecret, "--public-key", pubFile); code != 0 {
		t.Fatalf("key create: exit %d %s", code, errOut)
	}
	keyLine := func(userKey, publicKey string) string {
		pk, _ := json.Marshal(publicKey)
		return `{"kind":"key","userKey":"` + userKey + `","apiKey":"` + testAPIKey + `","secret":"` + vectors.LabUserSecret + `","publicKey":` + string(pk) + `}` + "\n"
	}
	in := filepath.Join(t.TempDir(), "in.jsonl")
	if err := os.WriteFile(in, []byte(`{"kind":"site","apiKey":"`+testAPIKey+`","secret":"`+testSecret+`"}`+"\n"+keyLine("ABearer", pkcs1)+keyLine("AOldImport", pkix)), 0o600); err != nil {
		t.Fatal(err)
	}
	// AOldImport as an import stored it before: the text of its line, PKCS #1.
	st := openDataStore(t, dirA)
	if err := st.CreateKey(context.Background(), &socius.Key{UserKey: "AOldImport", APIKey: testAPIKey, Secret: vectors.LabUserSecret, PublicKey: pkcs1, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	if code, out, errOut := runCLI(t, noEnv, "user", "import", "--data", dirA, "--in", in); code != 0 || errOut != "" || strings.Contains(out, "created") {
		t.Errorf("import of the keys there, in PKCS #1 and PKIX: exit %d\n%s%s", code, out, errOut)
	}
	// Into an empty store: the key is stored as key create stores it.
	dirB := filepath.Join(t.TempDir(), "b")
	if code, out, errOut := runCLI(t, noEnv, "user", "import", "--data", dirB, "--in", in); code != 0 || !strings.Contains(out, "created key ABearer\n") {
		t.Errorf("import into an empty store: exit %d\n%s%s", code, out, errOut)
	}
	stB := openDataStore(t, dirB)
	k, err := stB.Key(context.Background(), "ABearer")
	stB.Close()
	if err != nil || k.PublicKey != pkix {
		t.Errorf("the imported key's publicKey: %v\n%s; want\n%s", err, k.PublicKey, pkix)
	}
	// An export of the key key create made, imported elsewhere and exported again, is
	// the same bytes.
	code, exportA, errOut := runCLI(t, noEnv, "user", "export", "--data", dirA, "--site", testAPIKey, "--with-site")
	if code != 0 {
		t.Fatalf("export: exit %d %s", code, errOut)
	}
	fileA := filepath.Join(t.TempDir(), "a.jsonl")
	if err := os.WriteFile(fileA, []byte(exportA), 0o600); err != nil {
		t.Fatal(err)
	}
	dirC := filepath.Join(t.TempDir(), "c")
	if code, out, errOut := runCLI(t, noEnv, "user", "import", "--data", dirC, "--in", fileA); code != 0 {
		t.Fatalf("import of the export: exit %d\n%s%s", code, out, errOut)
	}
	code, exportC, errOut := runCLI(t, noEnv, "user", "export", "--data", dirC, "--site", testAPIKey, "--with-site")
	if code != 0 {
		t.Fatalf("second export: exit %d %s", code, errOut)
	}
	abearer := func(export string) string {
		for _, l := range strings.Split(export, "\n") {
			if strings.Contains(l, `"ABearer"`) {
				return l
			}
		}
		return ""
	}
	if a, c := abearer(exportA), abearer(exportC); a == "" || a != c {
		t.Errorf("the key's line changed from export to import to export:\n%s\n%s", a, c)
	}
}

func TestUserCommandErrors(t *testing.T) {
	dir := t.TempDir()
	openDataStore(t, dir).Close()
	if code, _, errOut := runCLI(t, noEnv, "user", "export", "--data", dir); code != 2 || !strings.Contains(errOut, "--site") {
		t.Errorf("export without --site: %d %s", code, errOut)
	}
	if code, _, errOut := runCLI(t, noEnv, "user", "export", "--data", dir, "--site", testAPIKey, "--all-sites"); code != 2 || !strings.Contains(errOut, "--site and --all-sites: give one of them") {
		t.Errorf("export with --site and --all-sites: %d %s", code, errOut)
	}
	// --data on the command line and SOCIUS_STORE naming PostgreSQL: the export would
	// read PostgreSQL, not the folder named, and say it exported no site.
	pgEnv := func(name string) (string, bool) {
		if name == "SOCIUS_STORE" {
			return "postgres://socius:hunter2@127.0.0.1:1/socius", true
		}
		return "", false
	}
	if code, stdout, errOut := runCLI(t, pgEnv, "user", "export", "--data", dir, "--all-sites", "--with-site"); code != 2 || stdout != "" ||
		!strings.Contains(errOut, "--data "+dir+" names an embedded store, but SOCIUS_STORE names PostgreSQL (postgres://socius:xxxxx@127.0.0.1:1/socius)") ||
		strings.Contains(errOut, "hunter2") {
		t.Errorf("export --data with SOCIUS_STORE set: %d %q %s", code, stdout, errOut)
	}
	if code, _, errOut := runCLI(t, pgEnv, "user", "export", "--data", dir, "--store", "sqlite", "--all-sites"); code != 0 {
		t.Errorf("export --data --store sqlite with SOCIUS_STORE set: %d %s", code, errOut)
	}
	// A store without sites exports nothing, and says so: not what an export of its
	// sites leaves out, when it exported none.
	if code, stdout, errOut := runCLI(t, noEnv, "user", "export", "--data", dir, "--all-sites", "--with-site"); code != 0 || stdout != "" ||
		!strings.Contains(errOut, "exported 0 sites") || strings.Contains(errOut, "not exported:") {
		t.Errorf("export --all-sites of no site: %d %q %s", code, stdout, errOut)
	}
	out := filepath.Join(t.TempDir(), "x.jsonl")
	if code, _, errOut := runCLI(t, noEnv, "user", "export", "--data", dir, "--site", "3_nope", "--out", out); code != 1 || !strings.Contains(errOut, "no site has apiKey 3_nope") {
		t.Errorf("export of an unknown site: %d %s", code, errOut)
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("a failed export left a file")
	}
	if code, _, _ := runCLI(t, noEnv, "user", "frobnicate"); code != 2 {
		t.Errorf("unknown subcommand: exit %d", code)
	}
	// An input that cannot be opened, or a folder, is a usage error (exit 2), as every
	// file a flag names.
	if code, _, errOut := runCLI(t, noEnv, "user", "import", "--data", dir, "--in", filepath.Join(dir, "missing.jsonl")); code != 2 || !strings.Contains(errOut, "--in ") {
		t.Errorf("missing input: %d %s", code, errOut)
	}
	if code, out, errOut := runCLI(t, noEnv, "user", "import", "--data", dir, "--in", dir); code != 2 || !strings.Contains(errOut, "is a directory") || out != "" {
		t.Errorf("a folder as the input: %d %q %q", code, out, errOut)
	}
	// An input that opens but cannot be read (Linux's /proc/self/mem: its first page is
	// not mapped) stops the import: exit 1.
	if _, err := os.Stat("/proc/self/mem"); err == nil {
		if code, out, errOut := runCLI(t, noEnv, "user", "import", "--data", dir, "--in", "/proc/self/mem"); code != 1 || !strings.Contains(errOut, "import stopped: ") || !strings.Contains(out, "imported 0 user records") {
			t.Errorf("unreadable input: %d %q %q", code, out, errOut)
		}
	}
	// An import interrupted (its context cancelled, as a signal does) says so.
	sigIn := filepath.Join(t.TempDir(), "one.jsonl")
	os.WriteFile(sigIn, []byte(`{"kind":"site","apiKey":"3_Sig","secret":"`+testSecret+`"}`+"\n"+`{"apiKey":"3_Sig","UID":"u1"}`+"\n"), 0o600)
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	var sigOut, sigErr bytes.Buffer
	if code := run(cancelled, []string{"user", "import", "--data", dir, "--in", sigIn}, noEnv, &sigOut, &sigErr); code != 1 || !strings.Contains(sigErr.String(), "import stopped by a signal") {
		t.Errorf("interrupted import: %d %q %q", code, sigOut.String(), sigErr.String())
	}
	// A line longer than the format allows stops the import.
	in := filepath.Join(t.TempDir(), "long.jsonl")
	os.WriteFile(in, []byte(`{"UID":"`+strings.Repeat("x", 2<<20)+`"}`+"\n"), 0o600)
	if code, _, errOut := runCLI(t, noEnv, "user", "import", "--data", dir, "--in", in); code != 1 || !strings.Contains(errOut, "longer than") {
		t.Errorf("overlong line: %d %s", code, errOut)
	}
}

// TestUserExportIsOneMoment: an export taken while the store is written is the
// export of the moment it began, byte for byte. Between every two pages of users it
// reads, another writer renames a user already exported to a UID past the pages
// (read again, it would be in the file twice) and one not yet exported to a UID before
// them (it would be missing), and changes the site exported after: a key added, a user
// deleted, another one created. Read page by page from the store, an export wrote
// renamed users twice and lost others, and the second site's key and users of a later
// moment than the first site's.
func TestUserExportIsOneMoment(t *testing.T) {
	defer func(n int) { exportPage = n }(exportPage)
	exportPage = 7
	ctx := t.Context()
	st := labSiteStore(t)
	const other = "3_other"
	if err := st.CreateSite(ctx, &socius.Site{APIKey: other, Secret: testSecret, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	const n = 60
	written := storetest.NewPagedWrites(t, st, testAPIKey, other, n, testSecret)
	written.Seed(ctx)
	export := func(st socius.Store) string {
		t.Helper()
		var out bytes.Buffer
		if err := exportUsers(ctx, st, "", true, true, "-", &out, io.Discard); err != nil {
			t.Fatalf("export: %v", err)
		}
		return out.String()
	}
	before := export(st)
	during := export(written)
	if written.Pages() < n/exportPage {
		t.Fatalf("the export read %d pages of users, want at least %d", written.Pages(), n/exportPage)
	}
	if during != before {
		t.Errorf("the export taken while the store was written differs from the export of its moment:\n%s", linecount.Diff(during, before))
	}
	if written.Views() != 1 || written.OpenViews() != 0 {
		t.Errorf("the export opened %d views, %d left open; want one, closed", written.Views(), written.OpenViews())
	}
	// The writes were made: the next export has them.
	if after := export(st); after == before || !strings.Contains(after, "AKeyOfLater") || !strings.Contains(after, `"z-001"`) {
		t.Errorf("the export after the writes does not have them:\n%s", after)
	}
}

// TestUserExportOutNotAStoreFile: an export's --out that names one of the store's own
// files (socius.db, master.key), any file in the data folder, or the master key file
// given with --master-key-file is a usage error, exit 2, with nothing written: the
// export renames its file onto --out, and renamed onto socius.db it replaced the store
// with its JSON lines (every later command: "file is not a database"), onto
// master.key the only key that opens the store's secrets. backup refused a file in
// the data folder; the export did not.
func TestUserExportOutNotAStoreFile(t *testing.T) {
	data := t.TempDir()
	st := openDataStore(t, data)
	if err := st.CreateSite(context.Background(), &socius.Site{APIKey: testAPIKey, Secret: testSecret, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	keyDir := t.TempDir()
	keyFile := filepath.Join(keyDir, "master.key")
	key, err := os.ReadFile(filepath.Join(data, "master.key"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, key, 0o600); err != nil {
		t.Fatal(err)
	}
	// A link elsewhere to the store is the store all the same.
	link := filepath.Join(t.TempDir(), "store.db")
	if err := os.Symlink(filepath.Join(data, "socius.db"), link); err != nil {
		t.Fatal(err)
	}
	before := map[string][]byte{}
	for _, f := range []string{filepath.Join(data, "socius.db"), filepath.Join(data, "master.key"), keyFile} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		before[f] = b
	}
	for _, c := range []struct {
		out, want string
		extra     []string
	}{
		{filepath.Join(data, "socius.db"), "in the data folder " + data, nil},
		{filepath.Join(data, "master.key"), "in the data folder " + data, nil},
		{filepath.Join(data, "users.jsonl"), "in the data folder " + data, nil},
		{link, "in the data folder " + data, nil},
		{keyFile, "is the master key file", []string{"--master-key-file", keyFile}},
		{keyFile, "is the master key file", []string{"--previous-master-key-file", keyFile}},
	} {
		args := append([]string{"user", "export", "--data", data, "--site", testAPIKey, "--with-site", "--out", c.out}, c.extra...)
		code, stdout, errOut := runCLI(t, noEnv, args...)
		if code != 2 || stdout != "" || !strings.Contains(errOut, "--out "+c.out+": "+c.want) {
			t.Errorf("export --out %s %v: %d %q %q; want exit 2 saying %q", c.out, c.extra, code, stdout, errOut, c.want)
		}
	}
	for f, b := range before {
		if now, err := os.ReadFile(f); err != nil || !bytes.Equal(now, b) {
			t.Errorf("%s after the refused exports: changed (%v)", f, err)
		}
	}
	if _, err := os.Stat(filepath.Join(data, "users.jsonl")); err == nil {
		t.Error("a refused export made its file in the data folder")
	}
	// The store is whole: it still opens and exports.
	if code, stdout, errOut := runCLI(t, noEnv, "user", "export", "--data", data, "--site", testAPIKey, "--with-site"); code != 0 || !strings.Contains(stdout, `"kind":"site"`) {
		t.Errorf("export after the refused ones: %d %q %q", code, stdout, errOut)
	}
	// Standard output, and a file outside the data folder, are exported to as before.
	out := filepath.Join(t.TempDir(), "users.jsonl")
	if code, _, errOut := runCLI(t, noEnv, "user", "export", "--data", data, "--site", testAPIKey, "--out", out); code != 0 {
		t.Errorf("export --out %s: %d %q", out, code, errOut)
	}
}

// TestEmptyFileFlags: a flag that names a file given empty ("--out $FILE" with the
// variable unset) is a usage error that says so, with nothing written or read;
// export's --out was renamed onto "" (exit 1, "rename ./.socius-out-N : no such file
// or directory"), and --in and --token-file said "--in : no such file or directory".
func TestEmptyFileFlags(t *testing.T) {
	dir := t.TempDir()
	st := openDataStore(t, dir)
	if err := st.CreateSite(context.Background(), &socius.Site{APIKey: testAPIKey, Secret: testSecret, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	wd := t.TempDir()
	t.Chdir(wd)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"user", "export", "--data", dir, "--site", testAPIKey, "--out", ""}, "--out is empty: give the file to write, or - (or no --out) for standard output"},
		{[]string{"user", "import", "--data", dir, "--in", ""}, "--in is empty: give a file, or - for standard input"},
		{[]string{"token", "revoke", "--data", dir, "--token-file", ""}, "--token-file is empty: give a file, or - for standard input"},
	} {
		code, stdout, errOut := runCLI(t, noEnv, c.args...)
		if code != 2 || stdout != "" || errOut != "socius: "+c.want+"\n" {
			t.Errorf("%q: %d %q %q; want exit 2 saying %q", c.args, code, stdout, errOut, c.want)
		}
	}
	if left, _ := os.ReadDir(wd); len(left) != 0 {
		t.Errorf("the refused commands left %v in the working folder", left)
	}
}

// TestInputStopsOnSignal: a command reading a file that sends nothing (standard input
// from a terminal or an idle pipe), or opening a named pipe that has no writer, stops
// at the first signal, saying so, with nothing changed; the read (and the open) waited
// on, and only a second Ctrl-C (which kills) ended it.
func TestInputStopsOnSignal(t *testing.T) {
	dir := t.TempDir()
	st := openDataStore(t, dir)
	if err := st.CreateSite(context.Background(), &socius.Site{APIKey: testAPIKey, Secret: testSecret, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	pr, pw, err := os.Pipe() // never written to
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	defer pw.Close()
	idle := fmt.Sprintf("/dev/fd/%d", pr.Fd())
	if _, err := os.Stat(idle); err != nil {
		t.Skipf("no %s: %v", idle, err)
	}
	// A named pipe that no program writes to: its open waits for a writer.
	fifo := filepath.Join(t.TempDir(), "pipe")
	makeFifo(t, fifo, 0o600)
	var cases []struct {
		args []string
		want string
	}
	for _, file := range []string{idle, fifo} {
		cases = append(cases, []struct {
			args []string
			want string
		}{
			{[]string{"user", "import", "--in", file}, "import stopped by a signal"},
			{[]string{"token", "revoke", "--token-file", file}, "stopped by a signal while reading the token: nothing was revoked"},
			{[]string{"site", "rotate-secret", testAPIKey, "--secret-file", file}, "stopped by a signal while reading --secret-file " + file + ": nothing was changed"},
		}...)
	}
	for _, c := range cases {
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(100*time.Millisecond, cancel)
		done := make(chan struct{})
		var code int
		var stderr bytes.Buffer
		go func() {
			defer close(done)
			code = run(ctx, append(c.args, "--data", dir), noEnv, io.Discard, &stderr)
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("%q: still reading 10 s after the signal", c.args)
		}
		if code != 1 || !strings.Contains(stderr.String(), c.want) {
			t.Errorf("%q: %d %q; want exit 1 saying %q", c.args, code, stderr.String(), c.want)
		}
	}
	st = openDataStore(t, dir)
	defer st.Close()
	if site, err := st.Site(context.Background(), testAPIKey); err != nil || site.Secret != testSecret {
		t.Errorf("the site after the stopped rotate-secret: %v", err)
	}
}

// TestImportWithNothingToStoreMakesNoStore: an import into a data folder without a
// store, from a file with no site line to import (bad lines, users and keys of sites
// the store would lack), leaves the folder as it was: no socius.db and master.key,
// which would read as an import's store (an empty one); the lines are said as before.
// A file with a site line makes the store for it, and what would refuse the store (a
// master key file that is not there) is said before the file is read.
func TestImportWithNothingToStoreMakesNoStore(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	in := filepath.Join(t.TempDir(), "in.jsonl")
	lines := []string{
		`{"kind":"user","apiKey":"3_Nowhere","UID":"u"}`,
		`{"kind":"key","userKey":"AKey","apiKey":"3_Nowhere","secret":"` + vectors.LabUserSecret + `"}`,
		`{"kind":"user","apiKey":`,
	}
	if err := os.WriteFile(in, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCLI(t, noEnv, "user", "import", "--data", dir, "--in", in)
	if code != 1 || !strings.Contains(out, "imported 0 user records, 3 bad lines") {
		t.Errorf("exit %d, stdout:\n%s", code, out)
	}
	for _, want := range []string{"line 1: user u: no site has apiKey 3_Nowhere", "line 2: key AKey: no site has apiKey 3_Nowhere", "line 3: not a valid record"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the data folder was made (%v): an import that stored nothing left a store behind", err)
	}

	// What would refuse the store is said before any line is read.
	code, _, errOut = runCLI(t, noEnv, "user", "import", "--data", dir, "--in", in, "--master-key-file", filepath.Join(t.TempDir(), "absent.key"))
	if code == 0 || !strings.Contains(errOut, "absent.key") || strings.Contains(errOut, "line 1") {
		t.Errorf("a master key file that is not there: exit %d, stderr:\n%s", code, errOut)
	}

	// A site line makes the store, at that line, and the users after it go in; the
	// key line before it waited for it, and goes in too.
	lines = append(lines,
		`{"kind":"site","apiKey":"3_Nowhere","secret":"`+testSecret+`"}`,
		`{"kind":"user","apiKey":"3_Nowhere","UID":"u2"}`)
	if err := os.WriteFile(in, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, _ = runCLI(t, noEnv, "user", "import", "--data", dir, "--in", in)
	if code != 1 || !strings.Contains(out, "imported 1 user record, 2 bad lines") || !strings.Contains(out, "created site 3_Nowhere\ncreated key AKey\n") {
		t.Errorf("with a site line: exit %d, stdout:\n%s", code, out)
	}
	st := openDataStore(t, dir)
	defer st.Close()
	if _, err := st.Key(context.Background(), "AKey"); err != nil {
		t.Errorf("the key line before its site's line: %v", err)
	}
	if _, err := st.User(context.Background(), "3_Nowhere", "u2"); err != nil {
		t.Errorf("the user after the site line: %v", err)
	}
	if _, err := st.User(context.Background(), "3_Nowhere", "u"); !errors.Is(err, socius.ErrNotFound) {
		t.Errorf("the user before the site line: %v, want not found (its line came first)", err)
	}
}
