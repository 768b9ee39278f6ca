package e2e

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/socius/socius"
	"github.com/socius/socius/gigya"
)

// Two tenants of one Socius, each with a key.
var (
	siteA = lab
	siteB = credential{APIKey: "3_OtherSite_B-456", Secret: "c2l0ZS1CLXNlY3JldC1ub3QtdGhlLWxhYi0wMDAw"}
	keyA  = credential{APIKey: siteA.APIKey, UserKey: "AKeyOfSiteA1", Secret: "a2V5LW9mLXNpdGUtQS1zZWNyZXQtMDA="}
	keyB  = credential{APIKey: siteB.APIKey, UserKey: "AKeyOfSiteB1", Secret: "a2V5LW9mLXNpdGUtQi1zZWNyZXQtMDA="}
)

// bMarker is in every value site B stores: no answer to site A may contain it.
const bMarker = "only-site-B-has-this"

// serveTwoSites creates sites A and B and a key of each with the admin commands, then
// starts the server on them. Both sites have a user "shared-uid" (the same UID, two
// different users); B also has "b-only".
func serveTwoSites(t *testing.T) *proc {
	t.Helper()
	dir := t.TempDir()
	for _, s := range []credential{siteA, siteB} {
		admin(t, "site", "create", "--data", dir, "--api-key", s.APIKey, "--secret", s.Secret, "--name", s.APIKey)
	}
	for _, k := range []credential{keyA, keyB} {
		admin(t, "key", "create", "--data", dir, "--site", k.APIKey, "--user-key", k.UserKey, "--secret", k.Secret)
	}
	p := serve(t, dir)
	p.login(siteA, "shared-uid", `{"nickname":"site-A-user","firstName":"Alice"}`)
	for _, uid := range []string{"shared-uid", "b-only"} {
		p.login(siteB, uid, fmt.Sprintf(`{"nickname":"%s-%s","email":"%s@b.example","age":42}`, bMarker, uid, bMarker))
	}
	return p
}

// TestTenantIsolation: for each kind of credential, nothing of site A reads or writes
// a user of site B: not A's credential naming B's UIDs, not A's credential presented
// with B's apiKey, not B's key or signature presented with A's apiKey. Site B's rows
// in the store stay byte for byte the same, and no answer carries B's data.
func TestTenantIsolation(t *testing.T) {
	kinds := []struct {
		name string
		a, b credential
	}{
		{"apiKey+signature", siteA, siteB},
		{"apiKey+plain secret", plain(siteA), plain(siteB)},
		{"userKey+signature", keyA, keyB},
		{"userKey+plain secret", plain(keyA), plain(keyB)},
	}
	for _, kind := range kinds {
		t.Run(kind.name, func(t *testing.T) {
			p := serveTwoSites(t)
			db := openDB(t, p.dir)
			before := snapshot(t, db, siteB.APIKey)
			if !strings.Contains(before, bMarker) || strings.Count(before, "\n") < 5 {
				t.Fatalf("site B's rows are not set up:\n%s", before)
			}
			a, b := kind.a, kind.b

			// A's credential presented with B's apiKey, and B's credential presented
			// with A's apiKey: a partner signature or secret does not match the other
			// site's secret (403003); a key is not a key of the other site (403005).
			swapped := a
			swapped.APIKey = b.APIKey
			foreign := b
			foreign.APIKey = a.APIKey
			wrongSite, wrongSiteDetails := socius.CodeInvalidSignature, "Invalid request signature"
			if a.UserKey != "" {
				wrongSite, wrongSiteDetails = socius.CodeUnauthorizedUser, "is not a key of this site"
			}

			attempts := []struct {
				name    string
				cred    credential
				method  string
				params  url.Values
				code    int
				details string
			}{
				// A's own credential, naming a UID only B has.
				{"read B's UID", a, "socialize.getUserInfo", url.Values{"UID": {"b-only"}}, 403005, "UID not found"},
				{"write B's UID", a, "socialize.setUserInfo", url.Values{"UID": {"b-only"}, "userInfo": {`{"nickname":"pwned"}`}}, 403005, "UID not found"},
				{"log out B's UID", a, "socialize.logout", url.Values{"UID": {"b-only"}}, 403005, "UID not found"},
				{"delete B's UID", a, "socialize.deleteAccount", url.Values{"UID": {"b-only"}}, 403005, "UID not found"},
				{"rename B's UID", a, "socialize.setUID", url.Values{"UID": {"b-only"}, "siteUID": {"stolen"}}, 403005, "UID not found"},
				{"register B's UID", a, "socialize.notifyRegistration", url.Values{"UID": {"b-only"}, "siteUID": {"stolen"}}, 403005, "UID not found"},
				{"register B's UID without siteUID", a, "socialize.notifyRegistration", url.Values{"UID": {"b-only"}}, 403005, "UID not found"},

				// A's credential with B's apiKey.
				{"A's credential as B: read", swapped, "socialize.getUserInfo", url.Values{"UID": {"b-only"}}, wrongSite, wrongSiteDetails},
				{"A's credential as B: write", swapped, "socialize.setUserInfo", url.Values{"UID": {"shared-uid"}, "userInfo": {`{"nickname":"pwned"}`}}, wrongSite, wrongSiteDetails},
				{"A's credential as B: delete", swapped, "socialize.deleteAccount", url.Values{"UID": {"b-only"}}, wrongSite, wrongSiteDetails},
				{"A's credential as B: login", swapped, "socialize.notifyLogin", url.Values{"siteUID": {"b-only"}, "userInfo": {`{"nickname":"pwned"}`}}, wrongSite, wrongSiteDetails},
				{"A's credential as B: rename", swapped, "socialize.setUID", url.Values{"UID": {"b-only"}, "siteUID": {"stolen"}}, wrongSite, wrongSiteDetails},
				{"A's credential as B: log out", swapped, "socialize.logout", url.Values{"UID": {"b-only"}}, wrongSite, wrongSiteDetails},

				// B's credential with A's apiKey: the same refusal the other way round.
				{"B's credential as A: read", foreign, "socialize.getUserInfo", url.Values{"UID": {"shared-uid"}}, wrongSite, wrongSiteDetails},
				{"B's credential as A: write", foreign, "socialize.setUserInfo", url.Values{"UID": {"shared-uid"}, "userInfo": {`{"nickname":"pwned"}`}}, wrongSite, wrongSiteDetails},

				// The UID both sites have: A reaches its own user, never B's.
				{"read the shared UID", a, "socialize.getUserInfo", url.Values{"UID": {"shared-uid"}}, 0, ""},
				{"write the shared UID", a, "socialize.setUserInfo", url.Values{"UID": {"shared-uid"}, "userInfo": {`{"nickname":"A wrote this","age":7}`}}, 0, ""},
				{"log out the shared UID", a, "socialize.logout", url.Values{"UID": {"shared-uid"}}, 0, ""},
				{"rename the shared UID", a, "socialize.setUID", url.Values{"UID": {"shared-uid"}, "siteUID": {"renamed-in-A"}}, 0, ""},
				{"take a UID B has as a new name", a, "socialize.setUID", url.Values{"UID": {"renamed-in-A"}, "siteUID": {"b-only"}}, 0, ""},
				{"delete A's user now named b-only", a, "socialize.deleteAccount", url.Values{"UID": {"b-only"}}, 0, ""},
				{"log in again with the shared UID", a, "socialize.notifyLogin", url.Values{"siteUID": {"shared-uid"}}, 0, ""},
				{"read the new user", a, "socialize.getUserInfo", url.Values{"UID": {"shared-uid"}}, 0, ""},
			}
			for _, at := range attempts {
				ans, err := p.call(at.cred, at.method, at.params)
				if err != nil {
					t.Fatalf("%s: %v", at.name, err)
				}
				if ans.code() != at.code || !strings.Contains(ans.str("errorDetails"), at.details) {
					t.Errorf("%s: got %d %q, want %d with %q", at.name, ans.code(), ans.str("errorDetails"), at.code, at.details)
				}
				if s := fmt.Sprint(ans); strings.Contains(s, bMarker) {
					t.Errorf("%s: the answer carries site B's data: %s", at.name, s)
				}
				if at.method == "socialize.getUserInfo" && ans.code() == 0 {
					// The UID signature is made with A's secret, not B's.
					key, _ := socius.DecodeSecret(siteA.Secret)
					if !gigya.ValidateUIDSignature(key, ans.str("UID"), ans.str("signatureTimestamp"), ans.str("UIDSignature"), time.Minute, time.Now()) {
						t.Errorf("%s: UIDSignature is not site A's", at.name)
					}
				}
				if after := snapshot(t, db, siteB.APIKey); after != before {
					t.Fatalf("%s changed site B's store:\nbefore:\n%s\nafter:\n%s", at.name, before, after)
				}
			}
			if !a.Plain {
				// Nonces are remembered per credential: a nonce A has used does not
				// block B (or the other way round), and A's replay is refused.
				n := url.Values{"UID": {"b-only"}, "nonce": {"nonce-both-sites-use"}}
				if ans := p.mustCall(b, "socialize.getUserInfo", n); ans.str("nickname") == "" {
					t.Errorf("B with a fresh nonce: %v", ans)
				}
				n.Set("UID", "shared-uid")
				p.mustCall(a, "socialize.getUserInfo", n)
				if ans, _ := p.call(a, "socialize.getUserInfo", n); ans.code() != socius.CodeDuplicateNonce {
					t.Errorf("A reusing its nonce: %v", ans)
				}
			}
			// B still sees its users as they were.
			for _, uid := range []string{"shared-uid", "b-only"} {
				ans := p.mustCall(b, "socialize.getUserInfo", url.Values{"UID": {uid}})
				if ans.str("nickname") != bMarker+"-"+uid || ans["isLoggedIn"] != true {
					t.Errorf("site B's %s: %v", uid, ans)
				}
			}
			p.stop()
		})
	}

	t.Run("oauth_token", func(t *testing.T) {
		// TOKENS: socialize.getToken is being built on another branch. Once it is
		// served, this case gets a token of site B (x_siteUID=b-only and
		// x_siteUID=shared-uid) and checks that with it: getUserInfo/setUserInfo name
		// only B's own user whatever UID or apiKey of A is added; a token of B sent
		// with A's apiKey reads nothing of A; a token bound to B's shared-uid never
		// reaches A's shared-uid; deleteAccount is refused (403007).
		t.Skip("tokens: socialize.getToken is not served on this branch yet")
	})
}

func plain(c credential) credential {
	c.Plain = true
	return c
}
