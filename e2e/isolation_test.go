package e2e

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"database/sql"
	"encoding/pem"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
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

// limitedA and limitedB are keys of A and B that may call limitedMethods only.
var (
	limitedA       = credential{APIKey: siteA.APIKey, UserKey: "ALimitedKeyA1", Secret: "bGltaXRlZC1rZXktb2Ytc2l0ZS1BLTAwMA=="}
	limitedB       = credential{APIKey: siteB.APIKey, UserKey: "ALimitedKeyB1", Secret: "bGltaXRlZC1rZXktb2Ytc2l0ZS1CLTAwMA=="}
	limitedMethods = []string{"socialize.getUserInfo", "socialize.setUserInfo", "socialize.getToken"}
)

// jwtA and jwtB are keys of A and B that call with bearer JWTs. They share one RSA key
// pair (generating one is slow): what tells them apart is the kid, the userKey.
var (
	jwtA = credential{APIKey: siteA.APIKey, UserKey: "AJwtKeyOfA1"}
	jwtB = credential{APIKey: siteB.APIKey, UserKey: "AJwtKeyOfB1"}

	rsaOnce sync.Once
	rsaKey  *rsa.PrivateKey
)

func jwtKey(t *testing.T) *rsa.PrivateKey {
	rsaOnce.Do(func() {
		var err error
		if rsaKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
	})
	return rsaKey
}

func jwtPublicPEM(t *testing.T) []byte {
	der, err := x509.MarshalPKIXPublicKey(&jwtKey(t).PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

var (
	twoSitesOnce  sync.Once
	twoSitesFiles map[string][]byte // the SQLite data folder made by makeTwoSites, by file name
	twoSitesErr   error
)

// makeTwoSites runs the admin commands that create the sites and keys in the store
// that storeFlags choose (the SQLite file in dir when none).
func makeTwoSites(t *testing.T, dir string, storeFlags []string) error {
	run := func(args ...string) { admin(t, append(append(args, "--data", dir), storeFlags...)...) }
	for _, s := range []credential{siteA, siteB} {
		run("site", "create", "--api-key", s.APIKey, "--secret", s.Secret, "--name", s.APIKey)
	}
	for _, k := range []credential{keyA, keyB} {
		run("key", "create", "--site", k.APIKey, "--user-key", k.UserKey, "--secret", k.Secret)
	}
	for _, k := range []credential{limitedA, limitedB} {
		run("key", "create", "--site", k.APIKey, "--user-key", k.UserKey, "--secret", k.Secret, "--methods", strings.Join(limitedMethods, ","))
	}
	pubFile := filepath.Join(dir, "jwt-public.pem")
	if err := os.WriteFile(pubFile, jwtPublicPEM(t), 0o600); err != nil {
		return err
	}
	for _, k := range []credential{jwtA, jwtB} {
		run("key", "create", "--site", k.APIKey, "--user-key", k.UserKey, "--public-key", pubFile)
	}
	return nil
}

// sqliteTwoSites makes the two sites once in a SQLite data folder and returns its
// files: the store (closed, so complete without its write-ahead log) and the master
// key that encrypts its secrets. Copying them is faster than running the commands.
func sqliteTwoSites(t *testing.T) (map[string][]byte, error) {
	dir, err := os.MkdirTemp("", "socius-two-sites-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	if err := makeTwoSites(t, dir, nil); err != nil {
		return nil, err
	}
	files := map[string][]byte{}
	for _, name := range []string{"socius.db", "master.key"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, err
		}
		files[name] = b
	}
	return files, nil
}

// bMarker is in every value site B stores: no answer to site A may contain it.
const bMarker = "only-site-B-has-this"

// serveTwoSites starts the server on a store of backend b with sites A and B, a key of
// each, a key of each limited to limitedMethods, and a bearer-JWT key of each, made
// with the admin commands. Both sites have a user "shared-uid" (the same UID, two
// different users); B also has "b-only".
func serveTwoSites(t *testing.T, b backend) *proc {
	t.Helper()
	dir := t.TempDir()
	flags := b.flags(t, dir)
	if b.file {
		twoSitesOnce.Do(func() { twoSitesFiles, twoSitesErr = sqliteTwoSites(t) })
		if twoSitesErr != nil {
			t.Fatal(twoSitesErr)
		}
		for name, b := range twoSitesFiles {
			if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	} else if err := makeTwoSites(t, dir, flags); err != nil {
		t.Fatal(err)
	}
	p := serve(t, dir, flags...)
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
	for _, b := range backends {
		for _, kind := range kinds {
			t.Run(b.name+"/"+kind.name, func(t *testing.T) {
				isolation(t, b, kind.a, kind.b)
			})
		}
	}
}

// isolation checks that a, a credential of site A, reaches nothing of site B, and that
// b, the same kind of credential of B, reaches nothing of A.
func isolation(t *testing.T, backend backend, a, b credential) {
	p := serveTwoSites(t, backend)
	db := openDB(t, p)
	before := snapshot(t, db, siteB.APIKey)
	if !strings.Contains(before, bMarker) || strings.Count(before, "\n") < 5 {
		t.Fatalf("site B's rows are not set up:\n%s", before)
	}
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

	attempts := []attempt{
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
	tryAll(t, p, db, before, attempts)
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
}

// An attempt is one call of the isolation tests and the answer it must get.
type attempt struct {
	name    string
	cred    credential
	method  string
	params  url.Values
	code    int
	details string
}

// tryAll makes each attempt: its answer must have the code and details, must carry none
// of site B's data, a UIDSignature in it must be site A's, and site B's rows in the
// store must still be before.
func tryAll(t *testing.T, p *proc, db *sql.DB, before string, attempts []attempt) {
	t.Helper()
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
		if sig := ans.str("UIDSignature"); sig != "" {
			key, _ := socius.DecodeSecret(siteA.Secret)
			if !gigya.ValidateUIDSignature(key, ans.str("UID"), ans.str("signatureTimestamp"), sig, time.Minute, time.Now()) {
				t.Errorf("%s: UIDSignature is not site A's", at.name)
			}
		}
		if after := snapshot(t, db, siteB.APIKey); after != before {
			t.Fatalf("%s changed site B's store:\nbefore:\n%s\nafter:\n%s", at.name, before, after)
		}
	}
}

// TestTenantIsolationTokens: the token credentials of site A (access tokens for the
// site, bound to a user, obtained by a key; mobile session tokens; bearer JWTs of a
// key) never read or write a user of site B, and B's never reach A's users.
func TestTenantIsolationTokens(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { isolationTokens(t, b) })
	}
}

func isolationTokens(t *testing.T, backend backend) {
	p := serveTwoSites(t, backend)
	db := openDB(t, p)
	before := snapshot(t, db, siteB.APIKey)

	// accessToken gets a token from getToken with cred's plain secret.
	accessToken := func(cred credential, params url.Values) credential {
		t.Helper()
		params.Set("grant_type", "none")
		a := p.mustCall(plain(cred), "socialize.getToken", params)
		return credential{Token: a.str("access_token")}
	}
	// session logs uid in with targetEnv=mobile and returns its session token.
	session := func(cred credential, uid string) credential {
		t.Helper()
		a := p.mustCall(cred, "socialize.notifyLogin", url.Values{"siteUID": {uid}, "targetEnv": {"mobile"}})
		return credential{Token: a.str("sessionToken"), SessionSecret: a.str("sessionSecret")}
	}
	withAPIKey := func(c credential, apiKey string) credential {
		c.APIKey = apiKey
		return c
	}
	jwt := func(c credential) credential {
		c.JWT = jwtKey(t)
		return c
	}

	kinds := []struct {
		name  string
		a, b  credential
		bound bool // bound to A's shared-uid (and B's to B's shared-uid)
	}{
		{"access token of the site", accessToken(siteA, url.Values{}), accessToken(siteB, url.Values{}), false},
		{"access token bound to a user", accessToken(siteA, url.Values{"x_siteUID": {"shared-uid"}}), accessToken(siteB, url.Values{"x_siteUID": {"shared-uid"}}), true},
		{"access token of a key", accessToken(keyA, url.Values{"x_siteUID": {"shared-uid"}}), accessToken(keyB, url.Values{"x_siteUID": {"shared-uid"}}), true},
		{"mobile session token", session(siteA, "shared-uid"), session(siteB, "shared-uid"), true},
		{"bearer JWT of a key", jwt(jwtA), jwt(jwtB), false},
	}
	// Getting B's tokens logged B's shared-uid in (as it was) and left no other trace
	// in B's users; the tokens themselves are rows of B's.
	before = snapshot(t, db, siteB.APIKey)
	for _, kind := range kinds {
		t.Run(kind.name, func(t *testing.T) {
			a, b := kind.a, kind.b
			// Naming B's UID: a site-wide credential finds no such user of A; a bound
			// one may act on its own user only.
			otherUID, otherDetails := socius.CodeUnauthorizedUser, "UID not found"
			if kind.bound {
				otherUID, otherDetails = socius.CodePermissionDenied, "bound to another user"
			}
			// Presented with the other site's apiKey: a token is not that site's; a
			// JWT's key is not a key of that site.
			wrongSite, wrongDetails := socius.CodeInvalidToken, "the token was not issued for apiKey"
			// deleteAccount takes server credentials only.
			deleteCode, deleteDetails := socius.CodePermissionDenied, ""
			if a.JWT != nil {
				wrongSite, wrongDetails = socius.CodeUnauthorizedUser, "is not a key of this site"
				deleteCode, deleteDetails = otherUID, otherDetails
			}
			loginCode := 0
			if kind.bound {
				loginCode = socius.CodePermissionDenied
			}
			tryAll(t, p, db, before, []attempt{
				{"read B's UID", a, "socialize.getUserInfo", url.Values{"UID": {"b-only"}}, otherUID, otherDetails},
				{"write B's UID", a, "socialize.setUserInfo", url.Values{"UID": {"b-only"}, "userInfo": {`{"nickname":"pwned"}`}}, otherUID, otherDetails},
				{"rename B's UID", a, "socialize.setUID", url.Values{"UID": {"b-only"}, "siteUID": {"stolen"}}, otherUID, otherDetails},
				{"delete B's UID", a, "socialize.deleteAccount", url.Values{"UID": {"b-only"}}, deleteCode, deleteDetails},
				{"log out B's UID", a, "socialize.logout", url.Values{"UID": {"b-only"}}, otherUID, otherDetails},
				{"A's credential as B: read", withAPIKey(a, siteB.APIKey), "socialize.getUserInfo", url.Values{"UID": {"shared-uid"}}, wrongSite, wrongDetails},
				{"A's credential as B: write", withAPIKey(a, siteB.APIKey), "socialize.setUserInfo", url.Values{"UID": {"b-only"}, "userInfo": {`{"nickname":"pwned"}`}}, wrongSite, wrongDetails},
				{"A's credential as B: delete", withAPIKey(a, siteB.APIKey), "socialize.deleteAccount", url.Values{"UID": {"b-only"}}, wrongSite, wrongDetails},
				{"B's credential as A: read", withAPIKey(b, siteA.APIKey), "socialize.getUserInfo", url.Values{"UID": {"shared-uid"}}, wrongSite, wrongDetails},
				{"B's credential as A: write", withAPIKey(b, siteA.APIKey), "socialize.setUserInfo", url.Values{"UID": {"shared-uid"}, "userInfo": {`{"nickname":"pwned"}`}}, wrongSite, wrongDetails},
				{"read the shared UID", a, "socialize.getUserInfo", url.Values{"UID": {"shared-uid"}}, 0, ""},
				{"write the shared UID", a, "socialize.setUserInfo", url.Values{"UID": {"shared-uid"}, "userInfo": {`{"nickname":"A wrote this"}`}}, 0, ""},
				{"log in with B's UID", a, "socialize.notifyLogin", url.Values{"siteUID": {"b-only"}}, loginCode, ""},
			})
			// A's shared-uid holds what A wrote; B's is untouched (tryAll compared it).
			if ans := p.mustCall(siteA, "socialize.getUserInfo", url.Values{"UID": {"shared-uid"}}); ans.str("nickname") != "A wrote this" {
				t.Errorf("A's shared-uid: %v", ans)
			}
			if loginCode == 0 {
				p.mustCall(siteA, "socialize.deleteAccount", url.Values{"UID": {"b-only"}}) // A's, made by "log in with B's UID"
			}
		})
	}
	p.stop()
}

func plain(c credential) credential {
	c.Plain = true
	return c
}
