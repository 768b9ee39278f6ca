package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/socius/socius"
)

// lifecycleTests cover calls that cannot be served: their context ended, or the store
// is closed. Each fails as a database failure (500028), never as a domain error or an
// answer, and changes nothing.
var lifecycleTests = []test{
	{"CancelledCallsChangeNothing", func(t *testing.T, s socius.Store) {
		// The context ended before the call: the context's error inside a database
		// failure (as the server's 504002 for a client gone looks for it), whatever the
		// method and whether the store has the answer in memory; and nothing written.
		seedEveryCall(t, s)
		done, cancel := context.WithCancel(t.Context())
		cancel()
		for _, c := range everyCall(done, s) {
			if !errors.Is(c.err, context.Canceled) || socius.ErrorCode(c.err) != socius.CodeDatabaseError {
				t.Errorf("%s with its context ended: %v; want context.Canceled, a database error (500028)", c.name, c.err)
			}
		}
		checkEveryCallUndone(t, s)
	}},

	{"ClosedStoreFails", func(t *testing.T, s socius.Store) {
		seedEveryCall(t, s)
		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if err := s.Close(); err != nil {
			t.Errorf("Close again: %v", err)
		}
		for _, c := range everyCall(t.Context(), s) {
			if socius.ErrorCode(c.err) != socius.CodeDatabaseError {
				t.Errorf("%s after Close: %v; want a database error (500028)", c.name, c.err)
			}
		}
	}},
}

// seedEveryCall stores what everyCall's calls would change: site 3_site with key Akey,
// user u1 with a token, a token that expired, and reads the site, key and user once, so
// that a store that keeps them in memory has them there.
func seedEveryCall(t *testing.T, s socius.Store) {
	t.Helper()
	createSite(t, s, "3_site", base)
	createKey(t, s, "3_site", "Akey", base)
	login(t, s, "3_site", "u1", patch(map[socius.Field]string{socius.Nickname: "ada"}), base)
	createToken(t, s, newToken("t1", "3_site", "u1"))
	createToken(t, s, &socius.Token{Hash: hashOf("expired"), Kind: socius.AccessToken, APIKey: "3_site", CreatedAt: base, ExpiresAt: at(time.Minute)})
	s.Site(t.Context(), "3_site")
	s.Key(t.Context(), "Akey")
	getUser(t, s, "3_site", "u1")
}

type callResult struct {
	name string
	err  error
}

// everyCall calls every method of s (and of socius.SecretSwapper, when s is one) with
// ctx, on what seedEveryCall stored, and returns their errors.
func everyCall(ctx context.Context, s socius.Store) []callResult {
	p := patch(map[socius.Field]string{socius.Nickname: "changed"})
	var r []callResult
	call := func(name string, err error) { r = append(r, callResult{name, err}) }
	ignore := func(_ any, err error) error { return err }

	call("Site", ignore(s.Site(ctx, "3_site")))
	call("Sites", ignore(s.Sites(ctx)))
	call("Key", ignore(s.Key(ctx, "Akey")))
	call("Keys", ignore(s.Keys(ctx, "3_site")))
	call("Keys of every site", ignore(s.Keys(ctx, "")))
	call("User", ignore(s.User(ctx, "3_site", "u1")))
	call("Users", ignore(s.Users(ctx, "3_site", "", 10)))
	call("CountUsers", ignore(s.CountUsers(ctx, "3_site")))
	call("CountUsers of every site", ignore(s.CountUsers(ctx, "")))
	call("Token", ignore(s.Token(ctx, hashOf("t1"))))

	call("CreateSite", s.CreateSite(ctx, &socius.Site{APIKey: "3_new", Secret: "bmV3LXNlY3JldA==", CreatedAt: base}))
	call("PutSite", s.PutSite(ctx, &socius.Site{APIKey: "3_site", Secret: "bmV3LXNlY3JldA==", Name: "Changed", CreatedAt: base}))
	call("CreateKey", s.CreateKey(ctx, &socius.Key{UserKey: "Anew", APIKey: "3_site", Secret: "bmV3LXNlY3JldA==", CreatedAt: base}))
	call("PutKey", s.PutKey(ctx, &socius.Key{UserKey: "Akey", APIKey: "3_site", Secret: "bmV3LXNlY3JldA==", CreatedAt: base}))
	call("DeleteKey", s.DeleteKey(ctx, "Akey"))
	call("Login of a new user", ignore(s.Login(ctx, "3_site", "u2", p, at(time.Hour))))
	call("Login", ignore(s.Login(ctx, "3_site", "u1", p, at(time.Hour))))
	call("LoginWithToken", ignore(s.LoginWithToken(ctx, "3_site", "u3", p, at(time.Hour), newToken("t3", "3_site", "u3"))))
	call("UpdateProfile", s.UpdateProfile(ctx, "3_site", "u1", p, at(time.Hour)))
	call("UpdateProfile with an empty patch", s.UpdateProfile(ctx, "3_site", "u1", nil, at(time.Hour)))
	call("Logout", s.Logout(ctx, "3_site", "u1", at(time.Hour)))
	call("DeleteUser", s.DeleteUser(ctx, "3_site", "u1", at(time.Hour)))
	call("RenameUser", s.RenameUser(ctx, "3_site", "u1", "u9"))
	call("PutUser", s.PutUser(ctx, &socius.User{APIKey: "3_site", UID: "u4", CreatedAt: base, UpdatedAt: base}))
	call("DeleteUsers", ignore(s.DeleteUsers(ctx, "3_site")))
	call("DeleteUsers of every site", ignore(s.DeleteUsers(ctx, "")))
	call("CreateToken", s.CreateToken(ctx, newToken("t5", "3_site", "u1")))
	call("RevokeToken", ignore(s.RevokeToken(ctx, hashOf("t1"), at(time.Hour))))
	call("DeleteExpiredTokens", ignore(s.DeleteExpiredTokens(ctx, at(100*time.Hour))))
	if sw, ok := s.(socius.SecretSwapper); ok {
		call("SwapSiteSecret", ignore(sw.SwapSiteSecret(ctx, "3_site", "c2VjcmV0LW9mLSIgKyBhcGlLZXk=", "c3dhcHBlZA==")))
		call("SwapKeySecret", ignore(sw.SwapKeySecret(ctx, "Akey", "a2V5LXNlY3JldC0wMTIzNDU2Nzg5", "c3dhcHBlZA==")))
	}
	return r
}

// checkEveryCallUndone checks that s holds what seedEveryCall stored, and nothing that
// everyCall's calls would have written.
func checkEveryCallUndone(t *testing.T, s socius.Store) {
	t.Helper()
	ctx := t.Context()
	sites, err := s.Sites(ctx)
	if err != nil {
		t.Fatalf("Sites: %v", err)
	}
	checkSites(t, sites, &socius.Site{APIKey: "3_site", Secret: "c2VjcmV0LW9mLSIgKyBhcGlLZXk=", Name: "Site 3_site", CreatedAt: base})
	keys, err := s.Keys(ctx, "")
	if err != nil {
		t.Fatalf("Keys: %v", err)
	}
	checkKeys(t, keys, &socius.Key{UserKey: "Akey", APIKey: "3_site", Secret: "a2V5LXNlY3JldC0wMTIzNDU2Nzg5", CreatedAt: base})
	page := users(t, s, "3_site", "", 10)
	if len(page) != 1 {
		t.Fatalf("users: %q, want u1 alone", uidsOf(page))
	}
	checkUser(t, page[0], &socius.User{APIKey: "3_site", UID: "u1", Profile: socius.Profile{socius.Nickname: "ada"},
		CreatedAt: base, UpdatedAt: base, LoginAt: base, LoggedIn: true})
	checkTokens(t, s, newToken("t1", "3_site", "u1"),
		&socius.Token{Hash: hashOf("expired"), Kind: socius.AccessToken, APIKey: "3_site", CreatedAt: base, ExpiresAt: at(time.Minute)})
	for _, text := range []string{"t3", "t5"} {
		_, err := s.Token(ctx, hashOf(text))
		wantErr(t, "Token "+text, err, socius.ErrNotFound)
	}
}
