// Package storetest is the conformance suite of socius.Store. Every backend runs it from
// its own tests, so that SQLite, PostgreSQL and whatever comes next keep one contract:
//
//	func TestStore(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) socius.Store {
//			s, err := sqlite.Open(filepath.Join(t.TempDir(), "socius.db"))
//			if err != nil {
//				t.Fatal(err)
//			}
//			return s
//		})
//	}
//
// Every test gets a new, empty store and closes it at its end. Times are never read
// from a clock: tests pass fixed times as now, and compare what comes back at millisecond
// precision (what the wire shows), whatever the location.
package storetest

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/socius/socius"
)

// A test checks one behaviour of a new, empty store.
type test struct {
	name string
	run  func(t *testing.T, s socius.Store)
}

// Run runs the suite, one subtest per behaviour, grouped by aggregate. newStore returns
// a new, empty store; Run closes it when the subtest ends.
func Run(t *testing.T, newStore func(t *testing.T) socius.Store) {
	groups := []struct {
		name  string
		tests []test
	}{
		{"Sites", siteTests},
		{"Keys", keyTests},
		{"Users", userTests},
		{"UserTokens", userTokenTests},
		{"UserBulk", userBulkTests},
		{"Tokens", tokenTests},
		{"Isolation", isolationTests},
		{"Concurrency", concurrencyTests},
		{"Values", valueTests},
		{"Snapshot", snapshotTests},
		{"Lifecycle", lifecycleTests},
		{"Model", modelTests()},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			for _, tt := range g.tests {
				t.Run(tt.name, func(t *testing.T) {
					s := newStore(t)
					t.Cleanup(func() {
						if err := s.Close(); err != nil {
							t.Errorf("Close: %v", err)
						}
					})
					tt.run(t, s)
				})
			}
		})
	}
}

// base is the time the tests start at. Its sub-millisecond part must be lost or kept,
// never rounded up: stores keep at least milliseconds.
var base = time.Date(2026, time.November, 28, 10, 30, 0, 123_000_456, time.UTC)

// at returns base plus d.
func at(d time.Duration) time.Time { return base.Add(d) }

// sameTime reports whether a and b are the same instant at millisecond precision.
func sameTime(a, b time.Time) bool {
	return a.Truncate(time.Millisecond).Equal(b.Truncate(time.Millisecond))
}

// patch builds a patch from field, value pairs given as a map ("" clears the field).
func patch(fields map[socius.Field]string) *socius.Patch {
	var p socius.Patch
	for f, v := range fields {
		p.Set(f, v)
	}
	return &p
}

// wantErr fails the test unless errors.Is(err, target).
func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Errorf("%s: got error %v, want %v", what, err, target)
	} else if target != nil && socius.ErrorCode(err) == socius.CodeDatabaseError {
		t.Errorf("%s: got %v, the refusal inside a database failure (500028), want it alone", what, err)
	}
}

func createSite(t *testing.T, s socius.Store, apiKey string, createdAt time.Time) *socius.Site {
	t.Helper()
	site := &socius.Site{APIKey: apiKey, Secret: "c2VjcmV0LW9mLSIgKyBhcGlLZXk=", Name: "Site " + apiKey, CreatedAt: createdAt}
	if err := s.CreateSite(t.Context(), site); err != nil {
		t.Fatalf("CreateSite(%q): %v", apiKey, err)
	}
	return site
}

func createKey(t *testing.T, s socius.Store, apiKey, userKey string, createdAt time.Time, methods ...string) *socius.Key {
	t.Helper()
	k := &socius.Key{UserKey: userKey, APIKey: apiKey, Secret: "a2V5LXNlY3JldC0wMTIzNDU2Nzg5", Methods: methods, CreatedAt: createdAt}
	if err := s.CreateKey(t.Context(), k); err != nil {
		t.Fatalf("CreateKey(%q): %v", userKey, err)
	}
	return k
}

func login(t *testing.T, s socius.Store, apiKey, uid string, p *socius.Patch, now time.Time) bool {
	t.Helper()
	created, err := s.Login(t.Context(), apiKey, uid, p, now)
	if err != nil {
		t.Fatalf("Login(%q, %q): %v", apiKey, uid, err)
	}
	return created
}

func updateProfile(t *testing.T, s socius.Store, apiKey, uid string, p *socius.Patch, now time.Time) {
	t.Helper()
	if err := s.UpdateProfile(t.Context(), apiKey, uid, p, now); err != nil {
		t.Fatalf("UpdateProfile(%q, %q): %v", apiKey, uid, err)
	}
}

func getUser(t *testing.T, s socius.Store, apiKey, uid string) *socius.User {
	t.Helper()
	u, err := s.User(t.Context(), apiKey, uid)
	if err != nil {
		t.Fatalf("User(%q, %q): %v", apiKey, uid, err)
	}
	return u
}

func checkSite(t *testing.T, got, want *socius.Site) {
	t.Helper()
	if !sameSite(got, want) {
		t.Errorf("site:\n got %s\nwant %s", fmtSite(got), fmtSite(want))
	}
}

func fmtSite(s *socius.Site) string {
	return fmt.Sprintf("{APIKey:%q Secret:%q Name:%q CreatedAt:%s}", s.APIKey, s.Secret, s.Name, s.CreatedAt.UTC().Format(time.RFC3339Nano))
}

func checkSites(t *testing.T, got []*socius.Site, want ...*socius.Site) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d sites %v, want %d %v", len(got), siteKeys(got), len(want), siteKeys(want))
	}
	for i := range got {
		checkSite(t, got[i], want[i])
	}
}

func siteKeys(sites []*socius.Site) []string {
	var ks []string
	for _, s := range sites {
		ks = append(ks, s.APIKey)
	}
	return ks
}

func checkKey(t *testing.T, got, want *socius.Key) {
	t.Helper()
	if !sameKey(got, want) {
		t.Errorf("key:\n got %s\nwant %s", fmtKey(got), fmtKey(want))
	}
}

func fmtKey(k *socius.Key) string {
	return fmt.Sprintf("{UserKey:%q APIKey:%q Secret:%q Methods:%q PublicKey:%q CreatedAt:%s}",
		k.UserKey, k.APIKey, k.Secret, k.Methods, k.PublicKey, k.CreatedAt.UTC().Format(time.RFC3339Nano))
}

func checkKeys(t *testing.T, got []*socius.Key, want ...*socius.Key) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d keys %v, want %d %v", len(got), userKeys(got), len(want), userKeys(want))
	}
	for i := range got {
		checkKey(t, got[i], want[i])
	}
}

func userKeys(keys []*socius.Key) []string {
	var ks []string
	for _, k := range keys {
		ks = append(ks, k.UserKey)
	}
	return ks
}

// checkUser compares every field of a user, times at millisecond precision.
func checkUser(t *testing.T, got, want *socius.User) {
	t.Helper()
	if d := userDiff(got, want); d != "" {
		t.Errorf("user %s/%q: %s", want.APIKey, want.UID, d)
	}
}

// userDiff says how got differs from want ("" when it does not), times at millisecond
// precision.
func userDiff(got, want *socius.User) string {
	var d []string
	if got.APIKey != want.APIKey || got.UID != want.UID {
		d = append(d, fmt.Sprintf("is %s/%q", got.APIKey, got.UID))
	}
	for f := socius.Field(0); f < socius.NumFields; f++ {
		if got.Profile[f] != want.Profile[f] {
			d = append(d, fmt.Sprintf("%s %s, want %s", f.Name(), short(got.Profile[f]), short(want.Profile[f])))
		}
	}
	for _, tm := range []struct {
		name      string
		got, want time.Time
	}{{"CreatedAt", got.CreatedAt, want.CreatedAt}, {"UpdatedAt", got.UpdatedAt, want.UpdatedAt}, {"LoginAt", got.LoginAt, want.LoginAt}} {
		if !sameTime(tm.got, tm.want) {
			d = append(d, fmt.Sprintf("%s %s, want %s", tm.name, tm.got.UTC().Format(time.RFC3339Nano), tm.want.UTC().Format(time.RFC3339Nano)))
		}
	}
	if got.LoggedIn != want.LoggedIn {
		d = append(d, fmt.Sprintf("LoggedIn %v, want %v", got.LoggedIn, want.LoggedIn))
	}
	return strings.Join(d, "; ")
}

// sameSite and sameKey compare every field of a site or a key, times at millisecond
// precision; an empty and a nil Methods both mean every method.
func sameSite(got, want *socius.Site) bool {
	return got.APIKey == want.APIKey && got.Secret == want.Secret && got.Name == want.Name && sameTime(got.CreatedAt, want.CreatedAt)
}

func sameKey(got, want *socius.Key) bool {
	return got.UserKey == want.UserKey && got.APIKey == want.APIKey && got.Secret == want.Secret &&
		slices.Equal(got.Methods, want.Methods) && got.PublicKey == want.PublicKey && sameTime(got.CreatedAt, want.CreatedAt)
}

// short quotes s, cut to a readable length.
func short(s string) string {
	if r := []rune(s); len(r) > 40 {
		return fmt.Sprintf("%q... (%d runes)", string(r[:40]), len(r))
	}
	return fmt.Sprintf("%q", s)
}
