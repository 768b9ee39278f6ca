package storetest

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/socius/socius"
)

// tokenTests cover the TokenStore. A token revoked twice, by RevokeToken, Logout or
// DeleteUser, keeps its first revocation time: that is when it stopped working, and
// housekeeping must not find it younger than it is. The contract leaves this open; the
// suite holds every store to it so that the server sees one behaviour.
var tokenTests = []test{
	{"CreateAndGet", func(t *testing.T, s socius.Store) {
		createSite(t, s, "3_site", base)
		createKey(t, s, "3_site", "Akey", base)
		paris := time.FixedZone("CET", 3600)
		tokens := []*socius.Token{
			// Bound to no user, obtained with the partner secret.
			{Hash: hashOf("client"), Kind: socius.AccessToken, APIKey: "3_site", CreatedAt: base, ExpiresAt: at(time.Hour)},
			// Every field set, times given in another location.
			{Hash: hashOf("full"), Kind: socius.AccessToken, APIKey: "3_site", UID: "u1", UserKey: "Akey",
				CreatedAt: base.In(paris), ExpiresAt: at(time.Hour).In(paris), RevokedAt: at(time.Minute).In(paris)},
			// Zero times stay zero: never expires, live. Minted from the one before.
			{Hash: hashOf("session"), Kind: socius.SessionToken, APIKey: "3_site", UID: "u1", CreatedAt: at(time.Second), Root: hashOf("client")},

			// A UID of any punctuation, for a user that has not logged in: tokens do not
			// need a user.
			{Hash: hashOf("odd"), Kind: socius.AccessToken, APIKey: "3_site", UID: `a'b"c%_\ ~`, CreatedAt: base, ExpiresAt: at(-time.Hour)},
		}
		for _, tok := range tokens {
			createToken(t, s, tok)
		}
		for _, want := range tokens {
			checkToken(t, getToken(t, s, want.Hash), want)
		}
	}},

	{"CreateTaken", func(t *testing.T, s socius.Store) {
		createSite(t, s, "3_a", base)
		createSite(t, s, "3_b", base)
		want := createToken(t, s, newToken("t1", "3_a", "u1"))
		// A hash is unique across sites.
		for _, apiKey := range []string{"3_a", "3_b"} {
			err := s.CreateToken(t.Context(), &socius.Token{Hash: want.Hash, Kind: socius.SessionToken, APIKey: apiKey, UID: "u2", CreatedAt: at(time.Minute)})
			wantErr(t, "CreateToken of a taken hash on "+apiKey, err, socius.ErrExists)
		}
		checkToken(t, getToken(t, s, want.Hash), want)
	}},

	{"LoginWithToken", func(t *testing.T, s socius.Store) {
		createSite(t, s, "3_site", base)
		var p socius.Patch
		p.Set(socius.Nickname, "ada")
		// A new user, then one who logged out before.
		tok := withUID(newToken("t1", "3_site", ""), "u1")
		created, err := s.LoginWithToken(t.Context(), "3_site", "u1", &p, at(time.Second), tok)
		if !created || err != nil {
			t.Fatalf("LoginWithToken of a new user: %v, %v; want true, nil", created, err)
		}
		checkToken(t, getToken(t, s, tok.Hash), tok)
		if u := getUser(t, s, "3_site", "u1"); !u.LoggedIn || u.Profile[socius.Nickname] != "ada" || !sameTime(u.LoginAt, at(time.Second)) {
			t.Errorf("user after LoginWithToken: %+v", u)
		}
		if err := s.Logout(t.Context(), "3_site", "u1", at(2*time.Second)); err != nil {
			t.Fatal(err)
		}
		checkToken(t, getToken(t, s, tok.Hash), revoked(tok, at(2*time.Second)))
		tok2 := withUID(newToken("t2", "3_site", ""), "u1")
		created, err = s.LoginWithToken(t.Context(), "3_site", "u1", nil, at(3*time.Second), tok2)
		if created || err != nil {
			t.Fatalf("LoginWithToken of an existing user: %v, %v; want false, nil", created, err)
		}
		checkToken(t, getToken(t, s, tok2.Hash), tok2)
		if u := getUser(t, s, "3_site", "u1"); !u.LoggedIn || u.Profile[socius.Nickname] != "ada" || !sameTime(u.LoginAt, at(3*time.Second)) {
			t.Errorf("user after the second LoginWithToken: %+v", u)
		}
	}},

	{"LoginWithTokenAllOrNothing", func(t *testing.T, s socius.Store) {
		createSite(t, s, "3_site", base)
		var before, after socius.Patch
		before.Set(socius.Nickname, "before")
		after.Set(socius.Nickname, "after")
		login(t, s, "3_site", "old", &before, base)
		if err := s.Logout(t.Context(), "3_site", "old", base); err != nil {
			t.Fatal(err)
		}
		taken := createToken(t, s, newToken("taken", "3_site", "someone"))
		// The token cannot be stored: neither is the login, of a new user or an old one.
		for _, uid := range []string{"new", "old"} {
			tok := withUID(newToken("taken", "3_site", ""), uid)
			created, err := s.LoginWithToken(t.Context(), "3_site", uid, &after, at(time.Minute), tok)
			wantErr(t, "LoginWithToken with a taken hash for "+uid, err, socius.ErrExists)
			if created {
				t.Errorf("LoginWithToken with a taken hash for %s reports the user created", uid)
			}
		}
		if _, err := s.User(t.Context(), "3_site", "new"); err == nil {
			t.Error("the new user of a failed LoginWithToken exists")
		}
		if u := getUser(t, s, "3_site", "old"); u.LoggedIn || u.Profile[socius.Nickname] != "before" || !sameTime(u.LoginAt, base) {
			t.Errorf("the old user after a failed LoginWithToken: %+v; want logged out, as before", u)
		}
		checkToken(t, getToken(t, s, taken.Hash), taken)
		// A site that does not exist: ErrNotFound, and nothing stored.
		tok := withUID(newToken("t3", "3_none", ""), "u1")
		_, err := s.LoginWithToken(t.Context(), "3_none", "u1", nil, base, tok)
		wantErr(t, "LoginWithToken on an unknown site", err, socius.ErrNotFound)
		_, err = s.Token(t.Context(), tok.Hash)
		wantErr(t, "Token after a failed LoginWithToken", err, socius.ErrNotFound)
	}},

	{"LoginWhile", func(t *testing.T, s socius.Store) {
		// A login made only while tokens live: with every named token live it is
		// Login; with one revoked or unknown it is ErrRootGone and changes nothing, of
		// a new user or an old one.
		createSite(t, s, "3_site", base)
		var before, after socius.Patch
		before.Set(socius.Nickname, "before")
		after.Set(socius.Nickname, "after")
		live := createToken(t, s, newToken("live", "3_site", ""))
		root := createToken(t, s, newToken("root", "3_site", ""))
		created, err := s.LoginWhile(t.Context(), "3_site", "u1", &before, at(time.Second), live.Hash, root.Hash, "")
		if !created || err != nil {
			t.Fatalf("LoginWhile of a new user with live tokens: %v, %v; want true, nil", created, err)
		}
		if u := getUser(t, s, "3_site", "u1"); !u.LoggedIn || u.Profile[socius.Nickname] != "before" || !sameTime(u.LoginAt, at(time.Second)) {
			t.Errorf("user after LoginWhile: %+v", u)
		}
		if err := s.Logout(t.Context(), "3_site", "u1", at(2*time.Second)); err != nil {
			t.Fatal(err)
		}
		created, err = s.LoginWhile(t.Context(), "3_site", "u1", &after, at(3*time.Second), "")
		if created || err != nil {
			t.Fatalf("LoginWhile of an existing user naming no token: %v, %v; want false, nil", created, err)
		}
		if u := getUser(t, s, "3_site", "u1"); !u.LoggedIn || u.Profile[socius.Nickname] != "after" || !sameTime(u.LoginAt, at(3*time.Second)) {
			t.Errorf("user after LoginWhile naming no token: %+v", u)
		}
		if err := s.Logout(t.Context(), "3_site", "u1", at(4*time.Second)); err != nil {
			t.Fatal(err)
		}
		if _, err := s.RevokeToken(t.Context(), root.Hash, at(5*time.Second)); err != nil {
			t.Fatal(err)
		}
		for name, hashes := range map[string][]string{
			"revoked":            {live.Hash, root.Hash},
			"unknown":            {hashOf("never")},
			"revoked and a live": {root.Hash, live.Hash},
		} {
			for _, uid := range []string{"u1", "new"} {
				created, err := s.LoginWhile(t.Context(), "3_site", uid, &before, at(time.Minute), hashes...)
				wantErr(t, "LoginWhile of "+uid+" with a token "+name, err, socius.ErrRootGone)
				if created {
					t.Errorf("LoginWhile of %s with a token %s reports the user created", uid, name)
				}
			}
		}
		if _, err := s.User(t.Context(), "3_site", "new"); !errors.Is(err, socius.ErrNotFound) {
			t.Errorf("the new user of a refused LoginWhile: %v; want ErrNotFound", err)
		}
		if u := getUser(t, s, "3_site", "u1"); u.LoggedIn || u.Profile[socius.Nickname] != "after" || !sameTime(u.LoginAt, at(3*time.Second)) {
			t.Errorf("the old user after a refused LoginWhile: %+v; want logged out, as before", u)
		}
		// A site that does not exist: ErrNotFound.
		_, err = s.LoginWhile(t.Context(), "3_none", "u1", nil, base, live.Hash)
		wantErr(t, "LoginWhile on an unknown site", err, socius.ErrNotFound)
		// A token bound to another user (its user renamed since, the token with it) is
		// ErrTokenMoved, and the login's UID is not made again; one bound to uid, or to
		// no user, lets the login be.
		login(t, s, "3_site", "u2", nil, base)
		own := createToken(t, s, withUID(newToken("own", "3_site", ""), "u2"))
		if created, err := s.LoginWhile(t.Context(), "3_site", "u2", nil, at(time.Minute), own.Hash, live.Hash); created || err != nil {
			t.Fatalf("LoginWhile with u2's own token and a site token: %v, %v; want false, nil", created, err)
		}
		if err := s.RenameUser(t.Context(), "3_site", "u2", "u2-renamed"); err != nil {
			t.Fatal(err)
		}
		created, err = s.LoginWhile(t.Context(), "3_site", "u2", &before, at(time.Minute), live.Hash, own.Hash)
		wantErr(t, "LoginWhile of u2 with its token moved to u2-renamed", err, socius.ErrTokenMoved)
		if created {
			t.Error("LoginWhile with a moved token reports the user created")
		}
		if _, err := s.User(t.Context(), "3_site", "u2"); !errors.Is(err, socius.ErrNotFound) {
			t.Errorf("u2 after a LoginWhile with its moved token: %v; want ErrNotFound", err)
		}
	}},

	{"LoginWithTokenOfAMovedRoot", func(t *testing.T, s socius.Store) {
		// A token made from a token (its Root, or MintedWith) that is bound to a user
		// other than the login's (renamed since) is ErrTokenMoved: neither the login nor
		// the token is stored. A root bound to no user (a site's token) mints for any.
		createSite(t, s, "3_site", base)
		login(t, s, "3_site", "u1", nil, base)
		root := createToken(t, s, withUID(newToken("root", "3_site", ""), "u1"))
		siteRoot := createToken(t, s, newToken("site-root", "3_site", ""))
		if err := s.RenameUser(t.Context(), "3_site", "u1", "u1-renamed"); err != nil {
			t.Fatal(err)
		}
		for name, tok := range map[string]*socius.Token{
			"Root":       {Hash: hashOf("s1"), Kind: socius.SessionToken, APIKey: "3_site", UID: "u1", CreatedAt: base, Root: root.Hash},
			"MintedWith": {Hash: hashOf("s2"), Kind: socius.SessionToken, APIKey: "3_site", UID: "u1", CreatedAt: base, Root: siteRoot.Hash, MintedWith: root.Hash},
		} {
			created, err := s.LoginWithToken(t.Context(), "3_site", "u1", nil, at(time.Minute), tok)
			wantErr(t, "LoginWithToken with its "+name+" moved to u1-renamed", err, socius.ErrTokenMoved)
			if created {
				t.Errorf("LoginWithToken with its %s moved reports the user created", name)
			}
			if _, err := s.Token(t.Context(), tok.Hash); !errors.Is(err, socius.ErrNotFound) {
				t.Errorf("the token of a refused LoginWithToken (%s moved): %v; want ErrNotFound", name, err)
			}
		}
		if _, err := s.User(t.Context(), "3_site", "u1"); !errors.Is(err, socius.ErrNotFound) {
			t.Errorf("u1 after LoginWithToken with moved roots: %v; want ErrNotFound", err)
		}
		tok := &socius.Token{Hash: hashOf("s3"), Kind: socius.SessionToken, APIKey: "3_site", UID: "u1", CreatedAt: base, Root: siteRoot.Hash}
		if created, err := s.LoginWithToken(t.Context(), "3_site", "u1", nil, at(time.Minute), tok); !created || err != nil {
			t.Errorf("LoginWithToken for u1 from a site's token: %v, %v; want true, nil", created, err)
		}
	}},

	{"CreateOfAKeyGone", func(t *testing.T, s socius.Store) {
		// A token obtained with a userKey is stored only while the key exists, and is a
		// key of the token's site: a key deleted after the call authenticated (or
		// deleted and created again for another site) stores nothing, with CreateToken
		// or with LoginWithToken (no login either).
		createSite(t, s, "3_site", base)
		createSite(t, s, "3_other", base)
		createKey(t, s, "3_site", "Akept", base)
		createKey(t, s, "3_site", "Agone", base)
		createKey(t, s, "3_other", "Aelsewhere", base)
		if err := s.DeleteKey(t.Context(), "Agone"); err != nil {
			t.Fatal(err)
		}
		ofKey := func(text, uid, userKey string) *socius.Token {
			tok := newToken(text, "3_site", uid)
			tok.UserKey = userKey
			return tok
		}
		for _, userKey := range []string{"Agone", "Aelsewhere", "Anever"} {
			refusedBothWays(t, s, "with userKey "+userKey, socius.ErrKeyGone, func(text, uid string) *socius.Token {
				return ofKey(text+"-"+userKey, uid, userKey)
			})
		}
		// The key that is there takes tokens both ways.
		checkToken(t, getToken(t, s, createToken(t, s, ofKey("create-kept", "u1", "Akept")).Hash), ofKey("create-kept", "u1", "Akept"))
		tok := ofKey("login-kept", "u2", "Akept")
		if _, err := s.LoginWithToken(t.Context(), "3_site", "u2", nil, base, tok); err != nil {
			t.Fatalf("LoginWithToken with a key that exists: %v", err)
		}
		checkToken(t, getToken(t, s, tok.Hash), tok)
	}},

	{"RevokeMinted", func(t *testing.T, s socius.Store) {
		// Revoking a token revokes the tokens whose root it is, never before they were
		// made; other roots' tokens, and the root's own root, stay live; a token revoked
		// before keeps its time. Revoking a minted token revokes it alone.
		createSite(t, s, "3_site", base)
		mint := func(text, uid, root string) *socius.Token {
			tok := newToken(text, "3_site", uid)
			tok.Kind, tok.Root = socius.SessionToken, root
			return createToken(t, s, tok)
		}
		root := mint("root", "", "")
		a, b := mint("a", "u1", root.Hash), mint("b", "u2", root.Hash)
		a1 := mint("a1", "u1", root.Hash) // made with a: its root is a's
		early := mint("early", "u1", root.Hash)
		other := mint("other", "u1", "")
		ofOther := mint("of-other", "u1", other.Hash)
		// Made after the time the root is revoked at (the revoker's clock behind the
		// server's): revoked when it was made, never before.
		later := newToken("later", "3_site", "u3")
		later.Root, later.CreatedAt = root.Hash, at(2*time.Hour)
		createToken(t, s, later)
		if _, err := s.RevokeToken(t.Context(), early.Hash, at(time.Second)); err != nil {
			t.Fatal(err)
		}
		if n, err := s.RevokeToken(t.Context(), a.Hash, at(time.Minute)); err != nil || n != 0 {
			t.Fatalf("RevokeToken of a minted token: %d minted revoked, %v; want 0", n, err)
		}
		checkTokens(t, s, root, b, a1, later, other, ofOther, revoked(early, at(time.Second)), revoked(a, at(time.Minute)))
		// Of the root's minted tokens, a and early were revoked before: b, a1, later.
		if n, err := s.RevokeToken(t.Context(), root.Hash, at(time.Hour)); err != nil || n != 3 {
			t.Fatalf("RevokeToken: %d minted revoked, %v; want 3", n, err)
		}
		checkTokens(t, s, other, ofOther, revoked(root, at(time.Hour)), revoked(b, at(time.Hour)), revoked(a1, at(time.Hour)),
			revoked(later, at(2*time.Hour)), revoked(early, at(time.Second)), revoked(a, at(time.Minute)))
	}},

	{"RevokeManyMinted", func(t *testing.T, s socius.Store) {
		// More minted tokens than one batch revokes: every one is revoked.
		createSite(t, s, "3_site", base)
		root := createToken(t, s, newToken("root", "3_site", ""))
		n := 2*socius.MintedBatch + socius.MintedBatch/2
		minted := make([]*socius.Token, n)
		for i := range minted {
			tok := newToken(fmt.Sprintf("m%d", i), "3_site", fmt.Sprintf("u%d", i%7))
			tok.Root = root.Hash
			minted[i] = createToken(t, s, tok)
		}
		if got, err := s.RevokeToken(t.Context(), root.Hash, at(time.Minute)); err != nil || got != n {
			t.Fatalf("RevokeToken: %d minted tokens revoked, %v; want %d", got, err, n)
		}
		live := 0
		for _, tok := range minted {
			if getToken(t, s, tok.Hash).RevokedAt.IsZero() {
				live++
			}
		}
		if live != 0 {
			t.Errorf("%d of %d minted tokens live after their root's revocation", live, n)
		}
	}},

	{"RevokeAgainRevokesMinted", func(t *testing.T, s socius.Store) {
		// A token revoked by a logout, whose minted tokens another user holds:
		// revoking it again revokes them, and keeps its own time. (So is a revocation
		// that failed half way finished.)
		root, child := loggedOutRoot(t, s, "")
		checkTokens(t, s, revoked(root, at(time.Second)), child)
		if _, err := s.RevokeToken(t.Context(), root.Hash, at(time.Minute)); err != nil {
			t.Fatalf("RevokeToken of a revoked token: %v", err)
		}
		checkTokens(t, s, revoked(root, at(time.Second)), revoked(child, at(time.Minute)))
	}},

	{"RevokeOfARemovedRoot", func(t *testing.T, s socius.Store) {
		// A token housekeeping removed (here a week after a logout revoked it): revoking
		// it revokes the live tokens minted from it, which nothing else names any more,
		// and then, with none left, is ErrNotFound like any unknown token.
		root, child := loggedOutRoot(t, s, "u2")
		other := createToken(t, s, newToken("other", "3_site", "u2"))
		if n, err := s.DeleteExpiredTokens(t.Context(), at(time.Minute)); err != nil || n != 1 {
			t.Fatalf("DeleteExpiredTokens: %d, %v; want the root alone", n, err)
		}
		_, err := s.Token(t.Context(), root.Hash)
		wantErr(t, "Token of a removed token", err, socius.ErrNotFound)
		if n, err := s.RevokeToken(t.Context(), root.Hash, at(30*time.Minute)); err != nil || n != 1 {
			t.Fatalf("RevokeToken of a removed root: %d minted revoked, %v; want 1", n, err)
		}
		checkTokens(t, s, revoked(child, at(30*time.Minute)), other)
		_, err = s.RevokeToken(t.Context(), root.Hash, at(40*time.Minute))
		wantErr(t, "RevokeToken of a removed root with nothing left", err, socius.ErrNotFound)
		checkTokens(t, s, revoked(child, at(30*time.Minute)), other)
		_, err = s.Token(t.Context(), root.Hash)
		wantErr(t, "Token of a removed token after RevokeToken", err, socius.ErrNotFound)
	}},

	{"CreateOfARootGone", func(t *testing.T, s socius.Store) {
		// A token minted from a token is stored only while its root is stored and not
		// revoked: CreateToken and LoginWithToken store nothing otherwise (no login
		// either). An expired root does not matter: the server caps its tokens' expiry
		// at the expiry of the token they were made with.
		createSite(t, s, "3_site", base)
		live := createToken(t, s, newToken("live", "3_site", ""))
		gone := createToken(t, s, newToken("gone", "3_site", ""))
		expired := createToken(t, s, &socius.Token{Hash: hashOf("expired"), Kind: socius.AccessToken, APIKey: "3_site", CreatedAt: base, ExpiresAt: at(-time.Minute)})
		if _, err := s.RevokeToken(t.Context(), gone.Hash, at(time.Second)); err != nil {
			t.Fatal(err)
		}
		minted := func(text, uid, root string) *socius.Token {
			tok := newToken(text, "3_site", uid)
			tok.Root = root
			return tok
		}
		for name, hash := range map[string]string{"revoked": gone.Hash, "unknown": hashOf("never")} {
			refusedBothWays(t, s, "from a root "+name, socius.ErrRootGone, func(text, uid string) *socius.Token {
				return minted(text+"-root-"+name, uid, hash)
			})
			// The token the call was made with, when it is not the root, must live too.
			refusedBothWays(t, s, "made with a token "+name, socius.ErrRootGone, func(text, uid string) *socius.Token {
				tok := minted(text+"-with-"+name, uid+"-with", live.Hash)
				tok.MintedWith = hash
				return tok
			})
		}
		with := createToken(t, s, minted("middle", "u1", live.Hash))
		tok := minted("made-with-middle", "u1", live.Hash)
		tok.MintedWith = with.Hash
		createToken(t, s, tok)
		tok.MintedWith = "" // not stored
		checkToken(t, getToken(t, s, tok.Hash), tok)
		for _, root := range []*socius.Token{live, expired} {
			tok := createToken(t, s, minted("create-of-"+root.Hash, "u1", root.Hash))
			checkToken(t, getToken(t, s, tok.Hash), tok)
			tok = minted("login-of-"+root.Hash, "u2", root.Hash)
			if _, err := s.LoginWithToken(t.Context(), "3_site", "u2", nil, base, tok); err != nil {
				t.Fatalf("LoginWithToken from a live root: %v", err)
			}
			checkToken(t, getToken(t, s, tok.Hash), tok)
		}
	}},

	{"CreateUnknownSite", func(t *testing.T, s socius.Store) {
		createSite(t, s, "3_site", base)
		err := s.CreateToken(t.Context(), newToken("t1", "3_none", "u1"))
		wantErr(t, "CreateToken on an unknown site", err, socius.ErrNotFound)
		_, err = s.Token(t.Context(), hashOf("t1"))
		wantErr(t, "Token after a failed CreateToken", err, socius.ErrNotFound)
	}},

	{"NotFound", func(t *testing.T, s socius.Store) {
		createSite(t, s, "3_site", base)
		tok := createToken(t, s, newToken("t1", "3_site", "u1"))
		// Hashes match exactly.
		for _, hash := range []string{hashOf("t2"), strings.ToUpper(tok.Hash), tok.Hash[:63], tok.Hash + " ", ""} {
			_, err := s.Token(t.Context(), hash)
			wantErr(t, "Token("+hash+")", err, socius.ErrNotFound)
		}
	}},

	{"Revoke", func(t *testing.T, s socius.Store) {
		createSite(t, s, "3_site", base)
		t1 := createToken(t, s, newToken("t1", "3_site", "u1"))
		t2 := createToken(t, s, newToken("t2", "3_site", "u1"))
		if _, err := s.RevokeToken(t.Context(), t1.Hash, at(time.Minute)); err != nil {
			t.Fatalf("RevokeToken: %v", err)
		}
		// Only RevokedAt changes, of that token only.
		checkToken(t, getToken(t, s, t1.Hash), revoked(t1, at(time.Minute)))
		checkToken(t, getToken(t, s, t2.Hash), t2)

		if _, err := s.RevokeToken(t.Context(), t1.Hash, at(time.Hour)); err != nil {
			t.Fatalf("RevokeToken of a revoked token: %v", err)
		}
		checkToken(t, getToken(t, s, t1.Hash), revoked(t1, at(time.Minute)))

		_, err := s.RevokeToken(t.Context(), hashOf("t3"), at(time.Hour))
		wantErr(t, "RevokeToken of an unknown token", err, socius.ErrNotFound)
		_, err = s.Token(t.Context(), hashOf("t3"))
		wantErr(t, "Token after a failed RevokeToken", err, socius.ErrNotFound)
	}},

	{"RevokedAndExpiredAreKept", func(t *testing.T, s socius.Store) {
		// Token returns dead tokens, so that a client can be told why they fail.
		createSite(t, s, "3_site", base)
		expired := createToken(t, s, &socius.Token{Hash: hashOf("expired"), Kind: socius.AccessToken, APIKey: "3_site", UID: "u1",
			CreatedAt: at(-2 * time.Hour), ExpiresAt: at(-time.Hour)})
		gone := createToken(t, s, newToken("revoked", "3_site", "u1"))
		if _, err := s.RevokeToken(t.Context(), gone.Hash, at(-time.Minute)); err != nil {
			t.Fatalf("RevokeToken: %v", err)
		}
		checkToken(t, getToken(t, s, expired.Hash), expired)
		checkToken(t, getToken(t, s, gone.Hash), revoked(gone, at(-time.Minute)))
	}},

	{"DeleteExpired", func(t *testing.T, s socius.Store) {
		createSite(t, s, "3_a", base)
		createSite(t, s, "3_b", base)
		cutoff := at(time.Hour)
		tok := func(name, apiKey string, expires, revokedAt time.Time) *socius.Token {
			return createToken(t, s, &socius.Token{Hash: hashOf(name), Kind: socius.AccessToken, APIKey: apiKey, UID: "u1",
				CreatedAt: base, ExpiresAt: expires, RevokedAt: revokedAt})
		}
		var never time.Time
		// Expired or revoked strictly before the cutoff: removed, on every site.
		dead := []*socius.Token{
			tok("expired", "3_a", cutoff.Add(-time.Millisecond), never),
			tok("expired long ago", "3_b", at(-24*time.Hour), never),
			tok("revoked", "3_a", never, cutoff.Add(-time.Millisecond)),
			tok("revoked, would expire later", "3_a", at(48*time.Hour), at(time.Minute)),
			tok("expired and revoked", "3_b", at(time.Minute), at(time.Second)),
		}
		kept := []*socius.Token{
			tok("live forever", "3_a", never, never),
			tok("expires at the cutoff", "3_a", cutoff, never),
			tok("expires after", "3_b", cutoff.Add(time.Millisecond), never),
			tok("revoked at the cutoff", "3_a", never, cutoff),
			tok("revoked after", "3_b", at(48*time.Hour), cutoff.Add(time.Second)),
		}
		n, err := s.DeleteExpiredTokens(t.Context(), cutoff)
		if err != nil {
			t.Fatalf("DeleteExpiredTokens: %v", err)
		}
		if n != len(dead) {
			t.Errorf("DeleteExpiredTokens removed %d tokens, want %d", n, len(dead))
		}
		for _, d := range dead {
			_, err := s.Token(t.Context(), d.Hash)
			wantErr(t, "Token of a removed token", err, socius.ErrNotFound)
		}
		for _, k := range kept {
			checkToken(t, getToken(t, s, k.Hash), k)
		}

		// Nothing more to remove at the same cutoff.
		if n, err := s.DeleteExpiredTokens(t.Context(), cutoff); err != nil || n != 0 {
			t.Errorf("DeleteExpiredTokens again: %d, %v; want 0, nil", n, err)
		}
		// A later cutoff takes the tokens that were at or after the first, never the
		// one that neither expires nor was revoked.
		if n, err := s.DeleteExpiredTokens(t.Context(), at(100*time.Hour)); err != nil || n != len(kept)-1 {
			t.Errorf("DeleteExpiredTokens later: %d, %v; want %d, nil", n, err, len(kept)-1)
		}
		checkToken(t, getToken(t, s, kept[0].Hash), kept[0])
	}},
}

// hashOf returns the hash under which a store keeps the token text: lower-case hex
// SHA-256.
// refusedBothWays checks that a token that mint makes ("create" or "login", and a
// UID) is refused with want by CreateToken and by LoginWithToken, and that neither
// stored anything: no token, no user created by the login.
func refusedBothWays(t *testing.T, s socius.Store, what string, want error, mint func(text, uid string) *socius.Token) {
	t.Helper()
	tok := mint("create", "u1")
	wantErr(t, "CreateToken "+what, s.CreateToken(t.Context(), tok), want)
	_, err := s.Token(t.Context(), tok.Hash)
	wantErr(t, "Token after a CreateToken "+what, err, socius.ErrNotFound)

	tok = mint("login", "new-"+tok.Hash[:8])
	created, err := s.LoginWithToken(t.Context(), tok.APIKey, tok.UID, nil, base, tok)
	wantErr(t, "LoginWithToken "+what, err, want)
	if created {
		t.Errorf("LoginWithToken %s reports the user created", what)
	}
	_, err = s.User(t.Context(), tok.APIKey, tok.UID)
	wantErr(t, "the user of a LoginWithToken "+what, err, socius.ErrNotFound)
	_, err = s.Token(t.Context(), tok.Hash)
	wantErr(t, "Token after a LoginWithToken "+what, err, socius.ErrNotFound)
}

func hashOf(text string) string {
	sum := sha256.Sum256([]byte(text))
	return hex.EncodeToString(sum[:])
}

// loggedOutRoot stores site 3_site, its user u1 with a token (root), a token minted
// from root for childUID, and logs u1 out at 1 s: root is revoked, the child lives.
func loggedOutRoot(t *testing.T, s socius.Store, childUID string) (root, child *socius.Token) {
	t.Helper()
	createSite(t, s, "3_site", base)
	login(t, s, "3_site", "u1", nil, base)
	root = createToken(t, s, newToken("root", "3_site", "u1"))
	child = newToken("child", "3_site", childUID)
	child.Root = root.Hash
	createToken(t, s, child)
	if err := s.Logout(t.Context(), "3_site", "u1", at(time.Second)); err != nil {
		t.Fatal(err)
	}
	return root, child
}

// newToken returns a live access token that expires in an hour from base.
func newToken(text, apiKey, uid string) *socius.Token {
	return &socius.Token{Hash: hashOf(text), Kind: socius.AccessToken, APIKey: apiKey, UID: uid, CreatedAt: base, ExpiresAt: at(time.Hour)}
}

// revoked returns a copy of tok revoked at when.
func revoked(tok *socius.Token, when time.Time) *socius.Token {
	c := *tok
	c.RevokedAt = when
	return &c
}

// withUID returns a copy of tok bound to uid.
func withUID(tok *socius.Token, uid string) *socius.Token {
	c := *tok
	c.UID = uid
	return &c
}

func createToken(t *testing.T, s socius.Store, tok *socius.Token) *socius.Token {
	t.Helper()
	if err := s.CreateToken(t.Context(), tok); err != nil {
		t.Fatalf("CreateToken(%s): %v", fmtToken(tok), err)
	}
	return tok
}

func getToken(t *testing.T, s socius.Store, hash string) *socius.Token {
	t.Helper()
	tok, err := s.Token(t.Context(), hash)
	if err != nil {
		t.Fatalf("Token(%q): %v", hash, err)
	}
	return tok
}

// checkToken compares every field of a token, times at millisecond precision (a zero
// time only equals a zero time).
func checkToken(t *testing.T, got, want *socius.Token) {
	t.Helper()
	if !sameToken(got, want) {
		t.Errorf("token:\n got %s\nwant %s", fmtToken(got), fmtToken(want))
	}
}

// sameToken compares every field of a token that the store keeps, times at
// millisecond precision (a zero time only equals a zero time).
func sameToken(got, want *socius.Token) bool {
	return got.Hash == want.Hash && got.Kind == want.Kind && got.APIKey == want.APIKey && got.UID == want.UID &&
		got.UserKey == want.UserKey && got.Root == want.Root && sameTime(got.CreatedAt, want.CreatedAt) &&
		sameTime(got.ExpiresAt, want.ExpiresAt) && sameTime(got.RevokedAt, want.RevokedAt)
}

// checkTokens checks the stored state of every token in want.
func checkTokens(t *testing.T, s socius.Store, want ...*socius.Token) {
	t.Helper()
	for _, w := range want {
		checkToken(t, getToken(t, s, w.Hash), w)
	}
}

func fmtToken(tok *socius.Token) string {
	tm := func(t time.Time) string {
		if t.IsZero() {
			return "zero"
		}
		return t.UTC().Format(time.RFC3339Nano)
	}
	return fmt.Sprintf("{Hash:%.12s... Kind:%q APIKey:%q UID:%q UserKey:%q CreatedAt:%s ExpiresAt:%s RevokedAt:%s Root:%.12s}",
		tok.Hash, tok.Kind, tok.APIKey, tok.UID, tok.UserKey, tm(tok.CreatedAt), tm(tok.ExpiresAt), tm(tok.RevokedAt), tok.Root)
}

// tokensOfU1 makes sites 3_a and 3_b, users u1 and u2 of 3_a and u1 of 3_b, and
// tokens: three of 3_a's u1 (access, session, and one revoked at base+1m), and others
// that nothing done to 3_a's u1 may touch: the same UID on another site, another user,
// no user, a user who does not exist.
func tokensOfU1(t *testing.T, s socius.Store) (access, session, early *socius.Token, others []*socius.Token) {
	t.Helper()
	createSite(t, s, "3_a", base)
	createSite(t, s, "3_b", base)
	login(t, s, "3_a", "u1", nil, base)
	login(t, s, "3_a", "u2", nil, base)
	login(t, s, "3_b", "u1", nil, base)
	access = createToken(t, s, newToken("a-u1-access", "3_a", "u1"))
	session = createToken(t, s, &socius.Token{Hash: hashOf("a-u1-session"), Kind: socius.SessionToken, APIKey: "3_a", UID: "u1", CreatedAt: base})
	early = createToken(t, s, newToken("a-u1-revoked", "3_a", "u1"))
	if _, err := s.RevokeToken(t.Context(), early.Hash, at(time.Minute)); err != nil {
		t.Fatalf("RevokeToken: %v", err)
	}
	others = []*socius.Token{
		createToken(t, s, newToken("b-u1", "3_b", "u1")),
		createToken(t, s, newToken("a-u2", "3_a", "u2")),
		createToken(t, s, newToken("a-none", "3_a", "")),
		createToken(t, s, newToken("a-ghost", "3_a", "ghost")),
	}
	return access, session, early, others
}

// userTokenTests check what the user methods do to the users' tokens.
var userTokenTests = []test{
	{"LogoutRevokes", func(t *testing.T, s socius.Store) {
		access, session, early, others := tokensOfU1(t, s)

		if err := s.Logout(t.Context(), "3_a", "u1", at(time.Hour)); err != nil {
			t.Fatalf("Logout: %v", err)
		}
		if getUser(t, s, "3_a", "u1").LoggedIn {
			t.Errorf("user after Logout: LoggedIn = true, want false")
		}
		mine := []*socius.Token{revoked(access, at(time.Hour)), revoked(session, at(time.Hour)), revoked(early, at(time.Minute))}
		checkTokens(t, s, mine...)
		checkTokens(t, s, others...)

		// Logging out again revokes nothing anew.
		if err := s.Logout(t.Context(), "3_a", "u1", at(2*time.Hour)); err != nil {
			t.Fatalf("second Logout: %v", err)
		}
		checkTokens(t, s, mine...)

		// Logging out a user who does not exist fails and revokes nothing, even a token
		// bound to the UID.
		wantErr(t, "Logout of an unknown user", s.Logout(t.Context(), "3_a", "ghost", at(time.Hour)), socius.ErrNotFound)
		checkTokens(t, s, others...)

		// A new login does not bring the tokens back; a token granted after it lives.
		login(t, s, "3_a", "u1", nil, at(3*time.Hour))
		fresh := createToken(t, s, newToken("a-u1-fresh", "3_a", "u1"))
		checkTokens(t, s, mine...)
		checkTokens(t, s, fresh)
	}},

	{"DeleteUserRevokes", func(t *testing.T, s socius.Store) {
		access, session, early, others := tokensOfU1(t, s)

		if err := s.DeleteUser(t.Context(), "3_a", "u1", at(time.Hour)); err != nil {
			t.Fatalf("DeleteUser: %v", err)
		}
		_, err := s.User(t.Context(), "3_a", "u1")
		wantErr(t, "User after DeleteUser", err, socius.ErrNotFound)
		// The tokens stay, revoked, so that a client can be told so.
		mine := []*socius.Token{revoked(access, at(time.Hour)), revoked(session, at(time.Hour)), revoked(early, at(time.Minute))}
		checkTokens(t, s, mine...)
		checkTokens(t, s, others...)

		wantErr(t, "DeleteUser of an unknown user", s.DeleteUser(t.Context(), "3_a", "ghost", at(time.Hour)), socius.ErrNotFound)
		checkTokens(t, s, others...)

		// A new user of the same UID does not bring the tokens back.
		if created := login(t, s, "3_a", "u1", nil, at(2*time.Hour)); !created {
			t.Errorf("Login after DeleteUser: created = false, want true")
		}
		checkTokens(t, s, mine...)
	}},

	{"RenameUserMovesTokens", func(t *testing.T, s socius.Store) {
		createSite(t, s, "3_a", base)
		createSite(t, s, "3_b", base)
		login(t, s, "3_a", "old", nil, base)
		login(t, s, "3_a", "other", nil, base)
		login(t, s, "3_b", "old", nil, base)
		createKey(t, s, "3_a", "Akey", base)
		access := createToken(t, s, &socius.Token{Hash: hashOf("a-old-access"), Kind: socius.AccessToken, APIKey: "3_a", UID: "old",
			UserKey: "Akey", CreatedAt: base, ExpiresAt: at(time.Hour)})
		session := createToken(t, s, &socius.Token{Hash: hashOf("a-old-session"), Kind: socius.SessionToken, APIKey: "3_a", UID: "old", CreatedAt: base})
		early := createToken(t, s, newToken("a-old-revoked", "3_a", "old"))
		if _, err := s.RevokeToken(t.Context(), early.Hash, at(time.Minute)); err != nil {
			t.Fatalf("RevokeToken: %v", err)
		}
		others := []*socius.Token{
			createToken(t, s, newToken("b-old", "3_b", "old")),
			createToken(t, s, newToken("a-other", "3_a", "other")),
			createToken(t, s, newToken("a-none", "3_a", "")),
		}

		if err := s.RenameUser(t.Context(), "3_a", "old", "new"); err != nil {
			t.Fatalf("RenameUser: %v", err)
		}
		// Only the UID changes, of the user's tokens only, revoked ones included.
		moved := []*socius.Token{withUID(access, "new"), withUID(session, "new"), withUID(revoked(early, at(time.Minute)), "new")}
		checkTokens(t, s, moved...)
		checkTokens(t, s, others...)

		// The tokens are the renamed user's now: its logout revokes them.
		if err := s.Logout(t.Context(), "3_a", "new", at(time.Hour)); err != nil {
			t.Fatalf("Logout: %v", err)
		}
		checkTokens(t, s, revoked(moved[0], at(time.Hour)), revoked(moved[1], at(time.Hour)), moved[2])
		checkTokens(t, s, others...)
	}},

	{"RenameUserFailedMovesNothing", func(t *testing.T, s socius.Store) {
		createSite(t, s, "3_site", base)
		login(t, s, "3_site", "u1", nil, base)
		login(t, s, "3_site", "u2", nil, base)
		tokens := []*socius.Token{
			createToken(t, s, newToken("u1", "3_site", "u1")),
			createToken(t, s, newToken("u2", "3_site", "u2")),
			createToken(t, s, newToken("ghost", "3_site", "ghost")),
		}
		wantErr(t, "RenameUser to a taken UID", s.RenameUser(t.Context(), "3_site", "u1", "u2"), socius.ErrExists)
		checkTokens(t, s, tokens...)
		// A token bound to a UID without a user does not move either.
		wantErr(t, "RenameUser of an unknown user", s.RenameUser(t.Context(), "3_site", "ghost", "u3"), socius.ErrNotFound)
		checkTokens(t, s, tokens...)
	}},
}
