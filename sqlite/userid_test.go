package sqlite

import (
	"database/sql"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/socius/socius"
	"github.com/socius/socius/storetest"
)

// withUserIDs makes fn the store's user numbers until the test ends.
func withUserIDs(t *testing.T, fn func(apiKey, uid string) int64) {
	old := userID
	userID = fn
	t.Cleanup(func() { userID = old })
}

// TestUserIDStable pins the numbers: they are in every store, so a change of the
// function would send every lookup of an existing user through the index.
func TestUserIDStable(t *testing.T) {
	for _, c := range []struct {
		apiKey, uid string
		want        int64
	}{
		{"3_site", "u1", 3603006502084732455},
		{"3_other", "u1", 4015007668158741658},
	} {
		if got := hashUserID(c.apiKey, c.uid); got != c.want {
			t.Errorf("hashUserID(%q, %q) = %d, want %d", c.apiKey, c.uid, got, c.want)
		}
	}
	apiKey, uid := "3_"+strings.Repeat("k", 64), strings.Repeat("u", 64)
	if n := testing.AllocsPerRun(100, func() { hashUserID(apiKey, uid) }); n != 0 {
		t.Errorf("hashUserID of a 66-byte key and a 64-byte UID: %v allocations, want 0", n)
	}
	// Longer than the stack buffer: still the same function.
	long := strings.Repeat("x", 300)
	if hashUserID(long, "u") == hashUserID(long, "v") || hashUserID(long, "u") < 0 {
		t.Error("hashUserID of a long key: equal numbers for different UIDs, or negative")
	}
}

// TestStoreFewNumbers runs the conformance suite with three user numbers in all, so
// that most users collide: the first user of a number is found by it, every other one
// through the index, and numbers are freed and taken again as users go.
func TestStoreFewNumbers(t *testing.T) {
	withUserIDs(t, func(apiKey, uid string) int64 { return hashUserID(apiKey, uid) % 3 })
	storetest.Run(t, func(t *testing.T) socius.Store {
		return open(t, filepath.Join(t.TempDir(), "data", "socius.db"))
	})
}

// rowID is the rowid of a user's row; -1 when there is none.
func rowID(t *testing.T, s *Store, apiKey, uid string) int64 {
	t.Helper()
	id := int64(-1)
	err := s.rdb.QueryRow(`SELECT id FROM users WHERE site = `+siteOf+` AND uid = ?`, apiKey, uid).Scan(&id)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		t.Fatal(err)
	}
	return id
}

// TestUserNumbers checks where rows go: under their number when it is free, elsewhere
// when it is taken, and that a user stored elsewhere is found, updated, renamed and
// deleted all the same, also once its number has come free.
func TestUserNumbers(t *testing.T) {
	ctx := t.Context()
	s := newStore(t)
	if err := s.CreateSite(ctx, &socius.Site{APIKey: "3_site", Secret: "c2VjcmV0LTAxMjM0NTY3ODlhYmM=", Name: "Site", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Login(ctx, "3_site", "u1", nil, now); err != nil {
		t.Fatal(err)
	}
	if got, want := rowID(t, s, "3_site", "u1"), hashUserID("3_site", "u1"); got != want {
		t.Errorf("u1 stored under %d, want its number %d", got, want)
	}
	if err := s.RenameUser(ctx, "3_site", "u1", "u1b"); err != nil {
		t.Fatal(err)
	}
	if got, want := rowID(t, s, "3_site", "u1b"), hashUserID("3_site", "u1b"); got != want {
		t.Errorf("renamed user stored under %d, want the new UID's number %d", got, want)
	}
	var u socius.User
	u.APIKey, u.UID, u.CreatedAt, u.UpdatedAt = "3_site", "put", now, now
	if err := s.PutUser(ctx, &u); err != nil {
		t.Fatal(err)
	}
	if got, want := rowID(t, s, "3_site", "put"), hashUserID("3_site", "put"); got != want {
		t.Errorf("PutUser stored under %d, want %d", got, want)
	}

	// Every user of the site "3_c" wants the number 42.
	withUserIDs(t, func(apiKey, uid string) int64 {
		if apiKey == "3_c" {
			return 42
		}
		return hashUserID(apiKey, uid)
	})
	if err := s.CreateSite(ctx, &socius.Site{APIKey: "3_c", Secret: "c2VjcmV0LTAxMjM0NTY3ODlhYmM=", Name: "C", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	for _, uid := range []string{"a", "b", "c"} {
		if created, err := s.Login(ctx, "3_c", uid, nil, now); !created || err != nil {
			t.Fatalf("Login(%s): %v, %v", uid, created, err)
		}
	}
	if id := rowID(t, s, "3_c", "a"); id != 42 {
		t.Errorf("first user of 42 stored under %d", id)
	}
	if id := rowID(t, s, "3_c", "b"); id == 42 || id < 0 {
		t.Errorf("second user of 42 stored under %d", id)
	}
	// a goes: 42 is free, and b and c are elsewhere.
	if err := s.DeleteUser(ctx, "3_c", "a", now); err != nil {
		t.Fatal(err)
	}
	var p socius.Patch
	p.Set(socius.Nickname, "bee")
	if err := s.UpdateProfile(ctx, "3_c", "b", &p, now); err != nil {
		t.Errorf("UpdateProfile of a user not under its number: %v", err)
	}
	if got, err := s.User(ctx, "3_c", "b"); err != nil || got.Profile[socius.Nickname] != "bee" {
		t.Errorf("User of a user not under its number: %+v, %v", got, err)
	}
	if _, err := s.Login(ctx, "3_c", "c", &p, now); err != nil {
		t.Errorf("Login of a user not under its number: %v", err)
	}
	if err := s.UpdateProfile(ctx, "3_c", "a", &p, now); !errors.Is(err, socius.ErrNotFound) {
		t.Errorf("UpdateProfile of a deleted user: %v, want ErrNotFound", err)
	}
	// A new user takes the free 42; renaming onto a taken UID still fails.
	if _, err := s.Login(ctx, "3_c", "d", nil, now); err != nil {
		t.Fatal(err)
	}
	if id := rowID(t, s, "3_c", "d"); id != 42 {
		t.Errorf("new user stored under %d, want the free 42", id)
	}
	if err := s.RenameUser(ctx, "3_c", "b", "d"); !errors.Is(err, socius.ErrExists) {
		t.Errorf("RenameUser onto a taken UID: %v, want ErrExists", err)
	}
	if err := s.RenameUser(ctx, "3_c", "d", "e"); err != nil {
		t.Fatal(err)
	}
	if id := rowID(t, s, "3_c", "e"); id != 42 {
		t.Errorf("renamed user under %d, want 42 (its new number is its old)", id)
	}
	if n, err := s.CountUsers(ctx, "3_c"); n != 3 || err != nil {
		t.Errorf("CountUsers: %d, %v; want 3", n, err)
	}
}

// TestMigrateNumbers upgrades a store from before 0005 whose users collide during the
// migration: every user lands, the first under the number, the others elsewhere, and
// all are found once the numbers are the real ones again.
func TestMigrateNumbers(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "socius.db")
	db := olderStore(t, path, "0001_init.sql", "0002_tokens.sql", "0003_compact_users.sql", "0004_tokens_by_key.sql")
	for _, q := range []string{
		`INSERT INTO sites (api_key, secret, name, created_at, id) VALUES ('3_site', 'c2VjcmV0LTAxMjM0NTY3ODlhYmM=', 'Site', 0, 1)`,
		`INSERT INTO sites (api_key, secret, name, created_at, id) VALUES ('3_other', 'c2VjcmV0LTAxMjM0NTY3ODlhYmM=', 'Other', 0, 2)`,
		`INSERT INTO users (site, uid, first_name, created_at, updated_at, logged_in) VALUES (1, 'u1', 'Ada', 0, 0, 1)`,
		`INSERT INTO users (site, uid, first_name, created_at, updated_at, logged_in) VALUES (1, 'u2', 'Alan', 0, 0, 0)`,
		`INSERT INTO users (site, uid, first_name, created_at, updated_at, logged_in) VALUES (2, 'u1', 'Grace', 0, 0, 0)`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	withUserIDs(t, func(string, string) int64 { return 7 })
	s := open(t, path)
	defer s.Close()
	var at7, elsewhere int
	for _, k := range [][2]string{{"3_site", "u1"}, {"3_site", "u2"}, {"3_other", "u1"}} {
		switch id := rowID(t, s, k[0], k[1]); {
		case id == 7:
			at7++
		case id >= 0:
			elsewhere++
		}
	}
	if at7 != 1 || elsewhere != 2 {
		t.Errorf("after the migration: %d users under 7 and %d elsewhere, want 1 and 2", at7, elsewhere)
	}

	userID = hashUserID
	for k, want := range map[[2]string]string{{"3_site", "u1"}: "Ada", {"3_site", "u2"}: "Alan", {"3_other", "u1"}: "Grace"} {
		if u, err := s.User(ctx, k[0], k[1]); err != nil || u.Profile[socius.FirstName] != want {
			t.Errorf("User%v after the migration: %+v, %v", k, u, err)
		}
		var p socius.Patch
		p.Set(socius.Nickname, "n")
		if err := s.UpdateProfile(ctx, k[0], k[1], &p, now); err != nil {
			t.Errorf("UpdateProfile%v after the migration: %v", k, err)
		}
	}
	if _, err := s.Login(ctx, "3_site", "u1", nil, now); err != nil {
		t.Fatal(err)
	}
	var idx int
	if err := s.rdb.QueryRow(`SELECT COUNT(*) FROM sqlite_schema WHERE type = 'index' AND name = 'users_by_uid'`).Scan(&idx); err != nil || idx != 1 {
		t.Errorf("index users_by_uid: %d, %v", idx, err)
	}
}
