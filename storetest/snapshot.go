package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/socius/socius"
)

// snapshotTests cover socius.Snapshotter: a view reads the store as it was when it
// opened, whatever is written meanwhile, and its Close gives its connection back.
var snapshotTests = []test{
	{"ViewIsOfItsMoment", func(t *testing.T, s socius.Store) {
		ctx := t.Context()
		a := createSite(t, s, "3_a", base)
		b := createSite(t, s, "3_b", at(time.Second))
		ka := createKey(t, s, "3_a", "Ka", base, "socialize.getUserInfo")
		want := map[string]*socius.User{}
		for i, uid := range []string{"u1", "u2", "u3", "u4", "u5"} {
			now := at(time.Duration(i) * time.Minute)
			p := map[socius.Field]string{socius.Nickname: "nick " + uid}
			login(t, s, "3_a", uid, patch(p), now)
			want[uid] = &socius.User{APIKey: "3_a", UID: uid, Profile: socius.Profile{socius.Nickname: "nick " + uid},
				CreatedAt: now, UpdatedAt: now, LoginAt: now, LoggedIn: true}
		}
		login(t, s, "3_b", "b1", nil, base)
		b1 := &socius.User{APIKey: "3_b", UID: "b1", CreatedAt: base, UpdatedAt: base, LoginAt: base, LoggedIn: true}

		v := snapshot(t, s)
		defer v.Close()

		// Every kind of change, each after the view opened.
		later := at(time.Hour)
		updateProfile(t, s, "3_a", "u1", patch(map[socius.Field]string{socius.Nickname: "changed", socius.Email: "u1@example.com"}), later)
		if err := s.DeleteUser(ctx, "3_a", "u2", later); err != nil {
			t.Fatalf("DeleteUser: %v", err)
		}
		// One renamed past the end of the pages, one before their start.
		if err := s.RenameUser(ctx, "3_a", "u3", "z3"); err != nil {
			t.Fatalf("RenameUser: %v", err)
		}
		if err := s.RenameUser(ctx, "3_a", "u5", "a5"); err != nil {
			t.Fatalf("RenameUser: %v", err)
		}
		if err := s.Logout(ctx, "3_a", "u4", later); err != nil {
			t.Fatalf("Logout: %v", err)
		}
		login(t, s, "3_a", "u6", nil, later)
		login(t, s, "3_b", "b0", nil, later)
		if _, err := s.DeleteUsers(ctx, "3_b"); err != nil {
			t.Fatalf("DeleteUsers: %v", err)
		}
		createKey(t, s, "3_a", "Kb", later)
		createKey(t, s, "3_b", "Kc", later)
		if err := s.PutKey(ctx, &socius.Key{UserKey: "Ka", APIKey: "3_a", Secret: "cm90YXRlZC1rZXktc2VjcmV0", CreatedAt: base}); err != nil {
			t.Fatalf("PutKey: %v", err)
		}
		if err := s.PutSite(ctx, &socius.Site{APIKey: "3_a", Secret: "cm90YXRlZC1zaXRlLXNlY3JldA==", Name: "Renamed", CreatedAt: base}); err != nil {
			t.Fatalf("PutSite: %v", err)
		}
		createSite(t, s, "3_c", later)

		// The store has them all...
		if got := getUser(t, s, "3_a", "u1"); got.Profile[socius.Nickname] != "changed" {
			t.Fatalf("the store's u1 after the update: %+v", got)
		}
		if n, err := s.CountUsers(ctx, "3_a"); err != nil || n != 5 {
			t.Fatalf("the store's CountUsers(3_a) = %d, %v; want 5", n, err)
		}
		// ...the view none: every read, however many pages, is of its moment.
		sites, err := v.Sites(ctx)
		if err != nil {
			t.Fatalf("view: Sites: %v", err)
		}
		checkSites(t, sites, a, b)
		site, err := v.Site(ctx, "3_a")
		if err != nil {
			t.Fatalf("view: Site(3_a): %v", err)
		}
		checkSite(t, site, a)
		_, err = v.Site(ctx, "3_c")
		wantErr(t, "view: Site(3_c), created after the view", err, socius.ErrNotFound)
		for _, c := range []struct {
			apiKey string
			want   []*socius.Key
		}{{"3_a", []*socius.Key{ka}}, {"3_b", nil}, {"", []*socius.Key{ka}}} {
			keys, err := v.Keys(ctx, c.apiKey)
			if err != nil {
				t.Fatalf("view: Keys(%q): %v", c.apiKey, err)
			}
			checkKeys(t, keys, c.want...)
		}
		for _, limit := range []int{1, 2, 10} {
			var got []*socius.User
			for u, err := range socius.AllUsers(ctx, v, "3_a", limit) {
				if err != nil {
					t.Fatalf("view: users of 3_a, pages of %d: %v", limit, err)
				}
				got = append(got, u)
			}
			if len(got) != len(want) {
				t.Fatalf("view: pages of %d: got %d users %v, want the %d of its moment", limit, len(got), uidsOf(got), len(want))
			}
			for _, u := range got {
				if want[u.UID] == nil {
					t.Fatalf("view: pages of %d: got user %q, not there at its moment", limit, u.UID)
				}
				checkUser(t, u, want[u.UID])
			}
		}
		gotB, err := v.Users(ctx, "3_b", "", 10)
		if err != nil || len(gotB) != 1 {
			t.Fatalf("view: Users(3_b) = %v, %v; want b1 alone", uidsOf(gotB), err)
		}
		checkUser(t, gotB[0], b1)
	}},
	{"CloseGivesBack", func(t *testing.T, s socius.Store) {
		ctx := t.Context()
		createSite(t, s, "3_a", base)
		login(t, s, "3_a", "u1", nil, base)
		v := snapshot(t, s)
		if err := v.Close(); err != nil {
			t.Fatalf("view: Close: %v", err)
		}
		if err := v.Close(); err != nil {
			t.Errorf("view: Close again: %v", err)
		}
		if _, err := v.Users(ctx, "3_a", "", 10); err == nil {
			t.Errorf("view: Users after Close: no error")
		}
		if _, err := v.Sites(ctx); err == nil {
			t.Errorf("view: Sites after Close: no error")
		}
		// Writes go on; and views opened and closed one after the other, more than
		// the connections of a pool, each see the writes before them.
		for i := range 40 {
			login(t, s, "3_a", "u1", patch(map[socius.Field]string{socius.Age: time.Duration(i).String()}), at(time.Duration(i)*time.Second))
			v := snapshot(t, s)
			users, err := v.Users(ctx, "3_a", "", 10)
			if err != nil || len(users) != 1 || users[0].Profile[socius.Age] != time.Duration(i).String() {
				t.Fatalf("view %d: Users = %v, %v; want u1 of age %q", i, users, err, time.Duration(i).String())
			}
			if err := v.Close(); err != nil {
				t.Fatalf("view %d: Close: %v", i, err)
			}
		}
		// Two views at once, of two moments.
		v1 := snapshot(t, s)
		defer v1.Close()
		login(t, s, "3_a", "u2", nil, base)
		v2 := snapshot(t, s)
		defer v2.Close()
		for _, c := range []struct {
			v    socius.View
			want int
		}{{v1, 1}, {v2, 2}} {
			users, err := c.v.Users(ctx, "3_a", "", 10)
			if err != nil || len(users) != c.want {
				t.Errorf("Users of a view = %v, %v; want %d users", uidsOf(users), err, c.want)
			}
		}
	}},
	{"ViewReadCancelledFirst", func(t *testing.T, s socius.Store) {
		// A read whose context ended before it began fails, and takes nothing from the
		// view: the next reads are of its moment still.
		ctx := t.Context()
		createSite(t, s, "3_a", base)
		login(t, s, "3_a", "u1", nil, base)
		v := snapshot(t, s)
		defer v.Close()
		login(t, s, "3_a", "u2", nil, base)
		done, cancel := context.WithCancel(ctx)
		cancel()
		if users, err := v.Users(done, "3_a", "", 10); err == nil {
			t.Fatalf("view: Users with its context ended: %v, no error", uidsOf(users))
		}
		if _, err := v.Sites(done); err == nil {
			t.Fatal("view: Sites with its context ended: no error")
		}
		users, err := v.Users(ctx, "3_a", "", 10)
		if err != nil || len(users) != 1 || users[0].UID != "u1" {
			t.Fatalf("view: Users after a read cancelled first: %v, %v; want u1 alone, of the view's moment", uidsOf(users), err)
		}
		if sites, err := v.Sites(ctx); err != nil || len(sites) != 1 {
			t.Fatalf("view: Sites after a read cancelled first: %d sites, %v; want 1", len(sites), err)
		}
	}},
	{"ViewUnstorableKeysFindNothing", func(t *testing.T, s socius.Store) {
		// A view's reads of keys no row can hold (UnstorableKeysFindNothing) find
		// nothing, as the store's own, never a database error; and the view reads on,
		// of its moment (PostgreSQL fails a transaction at its first refused statement).
		ctx := t.Context()
		createSite(t, s, "3_site", base)
		login(t, s, "3_site", "u1", nil, base)
		v := snapshot(t, s)
		defer v.Close()
		login(t, s, "3_site", "u2", nil, base)
		for _, bad := range []string{"3_\x00", "3_\xff", "u\x00", "u\xff\xfe"} {
			_, err := v.Site(ctx, bad)
			wantErr(t, fmt.Sprintf("view: Site(%q)", bad), err, socius.ErrNotFound)
			if keys, err := v.Keys(ctx, bad); err != nil || len(keys) != 0 {
				t.Errorf("view: Keys(%q) = %d keys, %v; want none", bad, len(keys), err)
			}
			if users, err := v.Users(ctx, bad, "", 10); err != nil || len(users) != 0 {
				t.Errorf("view: Users(%q) = %v, %v; want none", bad, uidsOf(users), err)
			}
			if users, err := v.Users(ctx, "3_site", bad, 10); err != nil {
				t.Errorf("view: Users(3_site, after %q): %v", bad, err)
			} else if bad[0] == 'u' && (len(users) != 0) != (bad < "u1") {
				t.Errorf("view: Users(3_site, after %q) = %v", bad, uidsOf(users))
			}
			users, err := v.Users(ctx, "3_site", "", 10)
			if err != nil || len(users) != 1 || users[0].UID != "u1" {
				t.Fatalf("view: Users after the reads of %q: %v, %v; want u1 alone, of the view's moment", bad, uidsOf(users), err)
			}
		}
	}},
	{"StoreCloseEndsViews", func(t *testing.T, s socius.Store) {
		createSite(t, s, "3_a", base)
		v := snapshot(t, s)
		done := make(chan error, 1)
		go func() { done <- s.Close() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Close with a view open: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Close with a view open: still waiting after 10 s")
		}
		_, err := v.Sites(t.Context())
		if err == nil {
			t.Errorf("view: Sites after the store's Close: no error")
		} else if socius.ErrorCode(err) != socius.CodeDatabaseError {
			t.Errorf("view: Sites after the store's Close: %v, want a database error (500028)", err)
		}
		if err := v.Close(); err != nil {
			t.Errorf("view: Close after the store's: %v", err)
		}
	}},
}

// snapshot opens a view of s; the test is skipped for a store that has none.
func snapshot(t *testing.T, s socius.Store) socius.View {
	t.Helper()
	sn, ok := s.(socius.Snapshotter)
	if !ok {
		t.Skipf("%T is not a socius.Snapshotter", s)
	}
	v, err := sn.Snapshot(t.Context())
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	return v
}

func uidsOf(users []*socius.User) []string {
	var uids []string
	for _, u := range users {
		uids = append(uids, u.UID)
	}
	return uids
}
