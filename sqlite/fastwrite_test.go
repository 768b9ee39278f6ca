package sqlite

import (
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	sqlite3 "modernc.org/sqlite/lib"

	"github.com/socius/socius"
)

// errRanOnSQL and errRanFast are what an operation's unwanted form returns in these
// tests, to show which connection a batch ran on.
var (
	errRanOnSQL = errors.New("ran on the database/sql connection")
	errRanFast  = errors.New("ran on the C API connection")
)

// fastOnly is the profile update of UpdateProfile that fails if it runs through
// database/sql.
func fastOnly(s *Store, apiKey, uid string, patch *socius.Patch, at time.Time) *writeOp {
	op := s.updateProfileOp(apiKey, uid, patch, at)
	op.fn = func(*sql.Tx) error { return errRanOnSQL }
	return op
}

// sqlOnly is the profile update of UpdateProfile without its fast form.
func sqlOnly(s *Store, apiKey, uid string, patch *socius.Patch, at time.Time) *writeOp {
	op := s.updateProfileOp(apiKey, uid, patch, at)
	op.fast = nil
	return op
}

func patchOf(kv map[socius.Field]string) *socius.Patch {
	var p socius.Patch
	for f, v := range kv {
		p.Set(f, v)
	}
	return &p
}

func loginUsers(t *testing.T, s *Store, apiKey string, uids ...string) {
	t.Helper()
	for _, uid := range uids {
		if _, err := s.Login(t.Context(), apiKey, uid, patchOf(map[socius.Field]string{socius.Nickname: "old", socius.Age: "30"}), now); err != nil {
			t.Fatal(err)
		}
	}
}

// cpragma reads a pragma's value on a C API connection.
func cpragma(t *testing.T, c *cconn, name string) string {
	t.Helper()
	stmt, err := c.prepare("PRAGMA " + name)
	if err != nil {
		t.Fatal(err)
	}
	defer c.finalize(stmt)
	if rc := sqlite3.Xsqlite3_step(c.tls, stmt); rc != sqlite3.SQLITE_ROW {
		t.Fatalf("PRAGMA %s: %v", name, c.err("step", rc))
	}
	return c.text(stmt, 0)
}

// TestWriteConnPragmas: the writer's C API connection commits as durably as the
// database/sql one.
func TestWriteConnPragmas(t *testing.T) {
	s := newStore(t)
	for name, want := range map[string]string{
		"journal_mode": "wal",
		"synchronous":  "2", // FULL
		"foreign_keys": "1",
		"busy_timeout": strconv.Itoa(int(busyTimeout.Milliseconds())),
		"query_only":   "0",
	} {
		if got := cpragma(t, &s.wc.cconn, name); got != want {
			t.Errorf("%s = %s, want %s", name, got, want)
		}
	}
}

// TestFastBatch commits a batch of profile updates on the C API connection: each
// caller gets its own outcome, a failed or panicking update changes nothing, the
// others are kept.
func TestFastBatch(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	createSiteAndKey(t, s, "")
	loginUsers(t, s, "3_site", "u1", "u2", "u3")
	later := now.Add(time.Hour)
	panicking := fastOnly(s, "3_site", "u3", patchOf(map[socius.Field]string{socius.Nickname: "never"}), later)
	panicking.fast = func(c *writeConn) error {
		if err := c.updateProfile("3_site", "u3", patchOf(map[socius.Field]string{socius.Nickname: "never"}), millis(later)); err != nil {
			return err
		}
		panic("boom")
	}
	batch := []*writeOp{
		fastOnly(s, "3_site", "u1", patchOf(map[socius.Field]string{socius.Nickname: "Ada", socius.Email: "ada@example.com"}), later),
		fastOnly(s, "3_site", "nobody", patchOf(map[socius.Field]string{socius.Nickname: "x"}), later),
		fastOnly(s, "3_none", "u1", patchOf(map[socius.Field]string{socius.Nickname: "x"}), later),
		fastOnly(s, "3_site", "u2", patchOf(map[socius.Field]string{socius.Age: ""}), later), // clears
	}
	// The writer is idle: nothing else uses the connections.
	if _, err := s.commit(batch); err != nil {
		t.Fatalf("commit: %v", err)
	}
	for i, want := range []error{nil, socius.ErrNotFound, socius.ErrNotFound, nil} {
		if got := batch[i].err; !errors.Is(got, want) || (want == nil && got != nil) {
			t.Errorf("op %d: got %v, want %v", i, got, want)
		}
	}
	// A panic: the update it made before panicking is committed with its batch (it
	// is one statement, with nothing to undo), and the caller gets the panic.
	if _, err := s.commit([]*writeOp{panicking}); err != nil {
		t.Fatalf("commit: %v", err)
	}
	if panicking.panicked != "boom" || !errors.Is(panicking.err, errPanicked) {
		t.Errorf("panicking op: panicked %v, err %v", panicking.panicked, panicking.err)
	}
	for uid, want := range map[string]socius.Profile{
		"u1": {socius.Nickname: "Ada", socius.Age: "30", socius.Email: "ada@example.com"},
		"u2": {socius.Nickname: "old"},
		"u3": {socius.Nickname: "never", socius.Age: "30"},
	} {
		u, err := s.User(ctx, "3_site", uid)
		if err != nil {
			t.Fatal(err)
		}
		if u.Profile != want {
			t.Errorf("%s: profile %q, want %q", uid, u.Profile, want)
		}
	}
	u, err := s.User(ctx, "3_site", "u1")
	if err != nil || !u.UpdatedAt.Equal(later) {
		t.Errorf("u1 updated at %v (%v), want %v", u.UpdatedAt, err, later)
	}
}

// TestFastBatchLost: when SQLite rolls a fast batch's transaction back (as it may on a
// full disk or an I/O error; here an operation does it), every caller of the batch gets
// a database error and nothing of the batch is written, the updates before the failure
// included. The writer goes on.
func TestFastBatchLost(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	createSiteAndKey(t, s, "")
	loginUsers(t, s, "3_site", "u1")
	errDisk := errors.New("disk full")
	batch := []*writeOp{
		fastOnly(s, "3_site", "u1", patchOf(map[socius.Field]string{socius.Nickname: "lost"}), now),
		{fn: func(*sql.Tx) error { return errRanOnSQL }, fast: func(c *writeConn) error {
			if err := c.run(c.rollback, "rollback"); err != nil {
				return err
			}
			return errDisk
		}},
	}
	_, err := s.commit(batch)
	if socius.ErrorCode(err) != socius.CodeDatabaseError || !errors.Is(err, errDisk) {
		t.Errorf("commit of a rolled back batch: %v, want a database error wrapping %v", err, errDisk)
	}
	if u, err := s.User(ctx, "3_site", "u1"); err != nil || u.Profile[socius.Nickname] != "old" {
		t.Errorf("u1 after the lost batch: %+v, %v", u, err)
	}
	if err := s.UpdateProfile(ctx, "3_site", "u1", patchOf(map[socius.Field]string{socius.Nickname: "kept"}), now); err != nil {
		t.Fatalf("UpdateProfile after the lost batch: %v", err)
	}
	if u, err := s.User(ctx, "3_site", "u1"); err != nil || u.Profile[socius.Nickname] != "kept" {
		t.Errorf("u1: %+v, %v", u, err)
	}
}

// TestMixedBatchRunsOnSQL: a batch that holds any write without a fast form runs
// whole on the database/sql connection, profile updates included.
func TestMixedBatchRunsOnSQL(t *testing.T) {
	s := newStore(t)
	createSiteAndKey(t, s, "")
	loginUsers(t, s, "3_site", "u1")
	update := s.updateProfileOp("3_site", "u1", patchOf(map[socius.Field]string{socius.FirstName: "Grace"}), now)
	update.fast = func(*writeConn) error { return errRanFast }
	site := &socius.Site{APIKey: "3_other", Secret: "c2VjcmV0LTAxMjM0NTY3ODlhYmM=", CreatedAt: now}
	batch := []*writeOp{update, {fn: func(tx *sql.Tx) error { return createSite(tx, site) }}}
	if _, err := s.commit(batch); err != nil {
		t.Fatal(err)
	}
	for i, op := range batch {
		if op.err != nil {
			t.Errorf("op %d: %v", i, op.err)
		}
	}
	if u, err := s.User(t.Context(), "3_site", "u1"); err != nil || u.Profile[socius.FirstName] != "Grace" {
		t.Errorf("User: %+v, %v", u, err)
	}
	if _, err := s.Site(t.Context(), "3_other"); err != nil {
		t.Errorf("Site: %v", err)
	}
}

// TestFastAndSQLUpdatesAgree applies the same patches to two users, one through each
// connection: they end with the same profile and times, whatever the values' bytes.
func TestFastAndSQLUpdatesAgree(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	createSiteAndKey(t, s, "")
	loginUsers(t, s, "3_site", "fast", "sql")
	long := strings.Repeat("ß", 5000)
	patches := []map[socius.Field]string{
		{socius.Nickname: "a\x00b", socius.PhotoURL: "https://example.com/p.png"},
		{socius.FirstName: "Zoë 👩🏽‍💻", socius.LastName: long, socius.Gender: "f"},
		{socius.Nickname: "", socius.Age: "41"}, // clears the nickname
		{socius.ThumbnailURL: "https://example.com/t.png", socius.Email: "x@example.com", socius.LastName: "short"},
	}
	for i, kv := range patches {
		at := now.Add(time.Duration(i+1) * time.Minute)
		f, q := fastOnly(s, "3_site", "fast", patchOf(kv), at), sqlOnly(s, "3_site", "sql", patchOf(kv), at)
		for _, batch := range [][]*writeOp{{f}, {q}} {
			if _, err := s.commit(batch); err != nil || batch[0].err != nil {
				t.Fatalf("patch %d: %v, %v", i, err, batch[0].err)
			}
		}
		a, errA := s.User(ctx, "3_site", "fast")
		b, errB := s.User(ctx, "3_site", "sql")
		if errA != nil || errB != nil {
			t.Fatal(errA, errB)
		}
		b.UID = a.UID
		if *a != *b {
			t.Errorf("after patch %d:\nfast %+v\nsql  %+v", i, a, b)
		}
		if !a.UpdatedAt.Equal(at) {
			t.Errorf("after patch %d: updated at %v, want %v", i, a.UpdatedAt, at)
		}
	}
}

// TestCarriedWrite: a write without a fast form that arrives while a batch of profile
// updates runs is taken by the writer but left for its next batch, where it lands.
func TestCarriedWrite(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	createSiteAndKey(t, s, "")
	loginUsers(t, s, "3_site", "u1")
	for try := 0; s.carries.Load() == 0; try++ {
		if try == 20 {
			t.Fatalf("no write carried over in %d tries", try)
		}
		hold, held := make(chan struct{}), make(chan struct{})
		update := fastOnly(s, "3_site", "u1", patchOf(map[socius.Field]string{socius.Nickname: strconv.Itoa(try)}), now)
		fast := update.fast
		update.fast = func(c *writeConn) error {
			close(held)
			<-hold
			return fast(c)
		}
		first := make(chan error, 1)
		go func() { first <- s.send(ctx, update) }()
		<-held
		uid := fmt.Sprintf("new%d", try)
		second := make(chan error, 1)
		go func() {
			_, err := s.Login(ctx, "3_site", uid, nil, now)
			second <- err
		}()
		// Wait until the login's write waits for the writer, which is inside the
		// batch. A fixed 20 ms here lost the try whenever the login came later, as it
		// may on a loaded machine (a batch of its own), and 20 such tries fail the test.
		for deadline := time.Now().Add(10 * time.Second); sending() == 0; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				close(hold) // or the batch holds the writer, and the store's Close, for ever
				t.Fatal("after 10 s, the login's write does not wait for the writer")
			}
		}
		close(hold)
		if err := <-first; err != nil {
			t.Fatalf("UpdateProfile: %v", err)
		}
		if err := <-second; err != nil {
			t.Fatalf("Login: %v", err)
		}
		if _, err := s.User(ctx, "3_site", uid); err != nil {
			t.Fatalf("User(%s): %v", uid, err)
		}
		if u, err := s.User(ctx, "3_site", "u1"); err != nil || u.Profile[socius.Nickname] != strconv.Itoa(try) {
			t.Fatalf("User(u1): %+v, %v", u, err)
		}
	}
}

// TestFastAndOtherWritesInterleaved runs profile updates and other writes (logins of
// new users, updates of missing users) together: every write lands, and every caller
// gets its own outcome.
func TestFastAndOtherWritesInterleaved(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	createSiteAndKey(t, s, "")
	const updaters = 16
	for i := range updaters {
		loginUsers(t, s, "3_site", fmt.Sprintf("u%d", i))
	}
	var wg sync.WaitGroup
	for i := range updaters {
		wg.Go(func() {
			uid := fmt.Sprintf("u%d", i)
			for n := range 20 {
				if err := s.UpdateProfile(ctx, "3_site", uid, patchOf(map[socius.Field]string{socius.Nickname: strconv.Itoa(n)}), now); err != nil {
					t.Errorf("UpdateProfile(%s): %v", uid, err)
					return
				}
			}
		})
	}
	for i := range 4 {
		wg.Go(func() {
			for n := range 10 {
				uid := fmt.Sprintf("new-%d-%d", i, n)
				if _, err := s.Login(ctx, "3_site", uid, nil, now); err != nil {
					t.Errorf("Login(%s): %v", uid, err)
					return
				}
				if err := s.UpdateProfile(ctx, "3_site", "missing-"+uid, patchOf(map[socius.Field]string{socius.Nickname: "x"}), now); !errors.Is(err, socius.ErrNotFound) {
					t.Errorf("UpdateProfile of a missing user: %v", err)
				}
			}
		})
	}
	wg.Wait()
	for i := range updaters {
		if u, err := s.User(ctx, "3_site", fmt.Sprintf("u%d", i)); err != nil || u.Profile[socius.Nickname] != "19" {
			t.Errorf("u%d: %+v, %v", i, u, err)
		}
	}
	for i := range 4 {
		for n := range 10 {
			if _, err := s.User(ctx, "3_site", fmt.Sprintf("new-%d-%d", i, n)); err != nil {
				t.Errorf("new-%d-%d: %v", i, n, err)
			}
		}
	}
}

// TestBusyTimeoutOption: Options.BusyTimeout is the busy timeout of the store's
// connections: the writer's, the lookups' and the database/sql pools'. (The
// checkpointer's connections are its own, held by it.)
func TestBusyTimeoutOption(t *testing.T) {
	s, err := OpenWith(filepath.Join(t.TempDir(), "socius.db"), Options{BusyTimeout: 1500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const want = "1500"
	lc := <-s.lookups
	got := map[string]string{"writer": cpragma(t, &s.wc.cconn, "busy_timeout"), "lookup": cpragma(t, &lc.cconn, "busy_timeout")}
	s.lookups <- lc
	for name, db := range map[string]*sql.DB{"wdb": s.wdb, "rdb": s.rdb} {
		var v string
		if err := db.QueryRow("PRAGMA busy_timeout").Scan(&v); err != nil {
			t.Fatal(err)
		}
		got[name] = v
	}
	for name, v := range got {
		if v != want {
			t.Errorf("%s: busy_timeout %s, want %s", name, v, want)
		}
	}
}
