package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/socius/socius"
)

// TestTokenRevokeCommand: `socius token revoke`, run beside a server on its store, ends
// a token that nothing else can end before it expires (one obtained with the partner
// secret and bound to no user: logout needs a user), and the server refuses it at
// once. The token is read from a file, from standard input, or given as an argument.
func TestTokenRevokeCommand(t *testing.T) {
	ts := startServer(t)
	ts.login(t, "alice")
	a := ts.getToken(t, url.Values{"grant_type": {"client_credentials"}})
	token := a.str("access_token")
	if a.code() != 0 || token == "" {
		t.Fatalf("getToken: %v", a)
	}
	get := url.Values{"UID": {"alice"}}
	want(t, "the site's token before", ts.tlsPost(t, "socialize.getUserInfo", withToken(token, get)), 0, "")
	other := ts.accessToken(t, "bob")

	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	store := []string{"--data", ts.DataDir}
	code, out, errOut := runCLI(t, noEnv, append([]string{"token", "revoke", "--token-file", file}, store...)...)
	if code != 0 || !strings.HasPrefix(out, "revoked: access token of apiKey "+testAPIKey+", bound to no user, issued ") ||
		!strings.Contains(out, ", no expiry") {
		t.Fatalf("revoke: exit %d, %q, %q", code, out, errOut)
	}
	if strings.Contains(out+errOut, token) {
		t.Errorf("the command printed the token: %q %q", out, errOut)
	}
	want(t, "the site's token after", ts.tlsPost(t, "socialize.getUserInfo", withToken(token, get)), 403025, "the token was revoked at ")
	if a := ts.tlsPost(t, "socialize.getUserInfo", withToken(token, get)); !strings.Contains(a.str("errorDetails"), "socius token revoke") {
		t.Errorf("the refusal does not name the command as a cause: %q", a.str("errorDetails"))
	}
	want(t, "another token", ts.tlsPost(t, "socialize.getUserInfo", withToken(other, nil)), 0, "")

	// Again, as an argument: the first revocation time stands.
	code, out, errOut = runCLI(t, noEnv, append([]string{"token", "revoke", token}, store...)...)
	if code != 0 || !strings.HasPrefix(out, "already revoked at ") || !strings.Contains(out, "bound to no user") {
		t.Errorf("revoke again: exit %d, %q, %q", code, out, errOut)
	}

	// A user's token names its user.
	code, out, errOut = runCLI(t, noEnv, append([]string{"token", "revoke", other}, store...)...)
	if code != 0 || !strings.Contains(out, "revoked: access token of apiKey "+testAPIKey+", UID bob, issued ") {
		t.Errorf("revoke bob's token: exit %d, %q, %q", code, out, errOut)
	}
	want(t, "bob's token after", ts.tlsPost(t, "socialize.getUserInfo", withToken(other, nil)), 403025, "revoked")

	// Without an argument or --token-file: standard input.
	third := ts.accessToken(t, "carol")
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	w.WriteString(third + "\n")
	w.Close()
	defer func(in *os.File) { os.Stdin = in }(os.Stdin)
	os.Stdin = r
	code, out, errOut = runCLI(t, noEnv, append([]string{"token", "revoke"}, store...)...)
	if code != 0 || !strings.Contains(out, "revoked: access token of apiKey "+testAPIKey+", UID carol, ") {
		t.Errorf("revoke from standard input: exit %d, %q, %q", code, out, errOut)
	}
	want(t, "carol's token after", ts.tlsPost(t, "socialize.getUserInfo", withToken(third, nil)), 403025, "revoked")

	// The server's clock a month ahead of this machine's (an emulator's, moved; an
	// admin host that lags): the revocation is not dated before the token was issued,
	// where the next sweep would have removed it at once, and a token already expired
	// says so.
	ts.Clock.Advance(30 * 24 * time.Hour)
	ahead := ts.accessToken(t, "dave")
	if code, out, errOut := runCLI(t, noEnv, append([]string{"token", "revoke", ahead}, store...)...); code != 0 || !strings.HasPrefix(out, "revoked: ") {
		t.Fatalf("revoke a token of the server's future: exit %d, %q, %q", code, out, errOut)
	}
	if tok, err := ts.Store.Token(context.Background(), socius.HashToken(ahead)); err != nil || tok.RevokedAt.Before(tok.CreatedAt) {
		t.Errorf("revoked %v, issued %v (%v): revoked before it was issued", tok.RevokedAt, tok.CreatedAt, err)
	}
	ts.sweepTokens(context.Background())
	want(t, "dave's token after a sweep", ts.tlsPost(t, "socialize.getUserInfo", withToken(ahead, nil)), 403025, "the token was revoked at ")
	// With the clocks together again, a token that expired a moment ago.
	ts.Clock.Advance(-30 * 24 * time.Hour)
	short := ts.getToken(t, url.Values{"grant_type": {"none"}, "x_siteUID": {"erin"}, "x_sessionExpiration": {"1"}}).str("access_token")
	time.Sleep(1100 * time.Millisecond) // this machine's clock is the command's
	if code, out, errOut := runCLI(t, noEnv, append([]string{"token", "revoke", short}, store...)...); code != 0 || !strings.HasPrefix(out, "revoked (it had expired already): ") {
		t.Errorf("revoke an expired token: exit %d, %q, %q", code, out, errOut)
	}

	empty := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		code int
		err  string
	}{
		{[]string{"st2.at.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}, 1, "unknown token"},
		{[]string{"not-a-token"}, 1, "not a Socius token"},
		{[]string{"--token-file", filepath.Join(t.TempDir(), "missing")}, 2, "missing"},
		{[]string{token, other}, 2, "one token at a time"},
		{[]string{""}, 2, "no token given: the argument is empty"},
		{[]string{" \n"}, 2, "no token given: the argument is empty"},
		{[]string{"--token-file", empty}, 2, "no token given: --token-file " + empty + " is empty"},
	} {
		code, out, errOut := runCLI(t, noEnv, append(append([]string{"token", "revoke"}, c.args...), store...)...)
		if code != c.code || !strings.Contains(errOut, c.err) || out != "" {
			t.Errorf("token revoke %v: exit %d, %q, %q; want %d with %q", c.args, code, out, errOut, c.code, c.err)
		}
	}
	if code, _, errOut := runCLI(t, noEnv, "token", "list"); code != 2 || !strings.Contains(errOut, "unknown subcommand") {
		t.Errorf("token list: exit %d, %q", code, errOut)
	}
}

// TestRevokeTokenEdges: a token revoked at the very instant it expires is said to
// have expired already (the server refuses it from that instant), and a store that
// fails the revocation is said as such, never as an unknown token.
func TestRevokeTokenEdges(t *testing.T) {
	st := labSiteStore(t)
	ctx := context.Background()
	issued := time.Now().Truncate(time.Millisecond)
	text := socius.NewTokenText(socius.AccessToken)
	tok := &socius.Token{Hash: socius.HashToken(text), Kind: socius.AccessToken, APIKey: testAPIKey, UID: "u1", CreatedAt: issued, ExpiresAt: issued.Add(time.Hour)}
	if err := st.CreateToken(ctx, tok); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name  string
		store socius.Store
		text  string
		out   string
		err   error
	}{
		{"a known token, the store failing", storeFault{Store: st, fail: "RevokeToken"}, text, "", errStoreGone},
		{"an unknown token, the store failing", storeFault{Store: st, fail: "RevokeToken"}, socius.NewTokenText(socius.AccessToken), "", errStoreGone},
		{"at its expiry", st, text, "revoked (it had expired already): access token of apiKey " + testAPIKey + ", UID u1, ", nil},
	} {
		var out strings.Builder
		err := revokeToken(ctx, c.store, c.text, tok.ExpiresAt, &out)
		if !errors.Is(err, c.err) || !strings.HasPrefix(out.String(), c.out) || c.out == "" && out.Len() > 0 {
			t.Errorf("%s: %v, %q; want %v, %q", c.name, err, out.String(), c.err, c.out)
		}
	}
}

// TestTokenRevokeEndsMintedSessions: mobile sessions made with a token (notifyLogin
// with targetEnv=mobile and the token), and sessions made with those, end when the
// token is revoked; sessions made otherwise, and the token the revoked one was made
// from, live on. A token revoked by a logout, revoked again by the command, ends the
// sessions made from it that other users hold.
func TestTokenRevokeEndsMintedSessions(t *testing.T) {
	ts := startServer(t)
	store := []string{"--data", ts.DataDir}
	site := ts.getToken(t, url.Values{"grant_type": {"none"}}).str("access_token") // no user, no expiry
	mobile := func(token, uid string) [2]string {
		t.Helper()
		a := ts.tlsPost(t, "socialize.notifyLogin", withToken(token, url.Values{"siteUID": {uid}, "targetEnv": {"mobile"}}))
		if a.code() != 0 || a.str("sessionToken") == "" {
			t.Fatalf("notifyLogin with a token: %v", a)
		}
		return [2]string{a.str("sessionToken"), a.str("sessionSecret")}
	}
	sessionMobile := func(s [2]string, uid string) [2]string {
		t.Helper()
		a := ts.tlsPost(t, "socialize.notifyLogin", ts.sessionSigned(t, ts.HTTPSURL, "socialize.notifyLogin", url.Values{"siteUID": {uid}, "targetEnv": {"mobile"}}, s[0], s[1]))
		if a.code() != 0 || a.str("sessionToken") == "" {
			t.Fatalf("notifyLogin with a session: %v", a)
		}
		return [2]string{a.str("sessionToken"), a.str("sessionSecret")}
	}
	call := func(s [2]string) answer {
		return ts.tlsPost(t, "socialize.getUserInfo", ts.sessionSigned(t, ts.HTTPSURL, "socialize.getUserInfo", nil, s[0], s[1]))
	}
	alice := mobile(site, "alice")
	alice2 := sessionMobile(alice, "alice")
	bob := mobile(site, "bob")
	own := ts.call(t, "socialize.notifyLogin", url.Values{"siteUID": {"carol"}, "targetEnv": {"mobile"}}) // the partner's signature
	carol := [2]string{own.str("sessionToken"), own.str("sessionSecret")}
	for i, s := range [][2]string{alice, alice2, bob, carol} {
		want(t, fmt.Sprintf("session %d before", i), call(s), 0, "")
	}

	// Revoking alice's first session ends it alone: the one made with it acts for
	// alice too (a logout of alice ends both), and hangs from the site token.
	if code, out, errOut := runCLI(t, noEnv, append([]string{"token", "revoke", alice[0]}, store...)...); code != 0 || !strings.HasPrefix(out, "revoked: session token") ||
		!strings.Contains(out, "note: it was made from another token; sessions made with it stay until that token is revoked, or UID alice logs out") {
		t.Fatalf("revoke alice's session: exit %d, %q, %q", code, out, errOut)
	}
	want(t, "alice's session", call(alice), 403025, "revoked")
	want(t, "the session made with alice's", call(alice2), 0, "")
	want(t, "bob's session", call(bob), 0, "")
	want(t, "the site token", ts.tlsPost(t, "socialize.getUserInfo", withToken(site, url.Values{"UID": {"bob"}})), 0, "")

	// Revoking the site token ends every session made from it, directly (bob's) or
	// through another (alice's second); carol's, made with the partner secret, lives.
	if code, out, errOut := runCLI(t, noEnv, append([]string{"token", "revoke", site}, store...)...); code != 0 || !strings.HasPrefix(out, "revoked: access token") ||
		!strings.Contains(out, "; with it 2 sessions made from it") {
		t.Fatalf("revoke the site token: exit %d, %q, %q", code, out, errOut)
	}
	want(t, "bob's session after the site token", call(bob), 403025, "revoked")
	want(t, "alice's second session after the site token", call(alice2), 403025, "revoked")
	want(t, "carol's session", call(carol), 0, "")

	// A user's token, logged out (which revokes the user's tokens only), whose
	// session another user holds: the command, run on the revoked token, ends it.
	ts.login(t, "dave")
	daves := ts.accessToken(t, "dave")
	a := ts.tlsPost(t, "socialize.notifyLogin", withToken(daves, url.Values{"siteUID": {"dave"}, "targetEnv": {"mobile"}}))
	dave := [2]string{a.str("sessionToken"), a.str("sessionSecret")}
	want(t, "dave's session", call(dave), 0, "")
	ctx := context.Background()
	tok, err := ts.Store.Token(ctx, socius.HashToken(dave[0]))
	if err != nil || tok.Root != socius.HashToken(daves) {
		t.Fatalf("dave's session: %+v, %v; want minted from dave's token", tok, err)
	}
	// (A session of another user made with dave's token cannot be had through the
	// API: a token bound to a user acts for that user only. Stored by hand.)
	eve := &socius.Token{Hash: socius.HashToken("st2.ss.eve"), Kind: socius.SessionToken, APIKey: testAPIKey, UID: "eve", CreatedAt: time.Now(), Root: tok.Root}
	if err := ts.Store.CreateToken(ctx, eve); err != nil {
		t.Fatal(err)
	}
	want(t, "logout dave", ts.tlsPost(t, "socialize.logout", withToken(daves, nil)), 0, "")
	if got, _ := ts.Store.Token(ctx, eve.Hash); !got.RevokedAt.IsZero() {
		t.Fatalf("a logout of dave revoked eve's token")
	}
	if code, out, errOut := runCLI(t, noEnv, append([]string{"token", "revoke", daves}, store...)...); code != 0 || !strings.HasPrefix(out, "already revoked at ") ||
		!strings.Contains(out, "; with it 1 session made from it") {
		t.Fatalf("revoke dave's revoked token: exit %d, %q, %q", code, out, errOut)
	}
	if got, _ := ts.Store.Token(ctx, eve.Hash); got.RevokedAt.IsZero() {
		t.Errorf("eve's token, made with dave's, lives after the command revoked dave's again")
	}

	// The same with the logged-out token removed by housekeeping (a week after the
	// logout): the command still ends what was made from it, then knows it no more.
	ts.login(t, "henry")
	henrys := ts.accessToken(t, "henry")
	ivy := &socius.Token{Hash: socius.HashToken("st2.ss.ivy"), Kind: socius.SessionToken, APIKey: testAPIKey, UID: "ivy", CreatedAt: time.Now(), Root: socius.HashToken(henrys)}
	if err := ts.Store.CreateToken(ctx, ivy); err != nil {
		t.Fatal(err)
	}
	want(t, "logout henry", ts.tlsPost(t, "socialize.logout", withToken(henrys, nil)), 0, "")
	if _, err := ts.Store.DeleteExpiredTokens(ctx, time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.Store.Token(ctx, ivy.Root); !errors.Is(err, socius.ErrNotFound) {
		t.Fatalf("henry's token after housekeeping: %v; want it removed", err)
	}
	if code, out, errOut := runCLI(t, noEnv, append([]string{"token", "revoke", henrys}, store...)...); code != 0 ||
		out != "revoked 1 session made from it: the token itself was removed 7 days after it expired or was revoked\n" {
		t.Fatalf("revoke henry's removed token: exit %d, %q, %q", code, out, errOut)
	}
	if got, err := ts.Store.Token(ctx, ivy.Hash); err != nil || got.RevokedAt.IsZero() {
		t.Errorf("ivy's token, made with henry's: %+v, %v; want it revoked", got, err)
	}
	if code, out, errOut := runCLI(t, noEnv, append([]string{"token", "revoke", henrys}, store...)...); code != 1 || out != "" ||
		!strings.Contains(errOut, "unknown token: this store never issued it, deleted it with its userKey (socius key delete), or removed it 7 days after") {
		t.Fatalf("revoke henry's removed token again: exit %d, %q, %q; want exit 1, unknown token", code, out, errOut)
	}
}

// TestTokenRevokeKeyDeleted: a token that `socius key delete` deleted with its userKey
// is unknown to the store, and the command says that this is one of the reasons, as
// the server's 403025 does (`... or deleted with its userKey`): it said only "this
// store never issued it, or removed it 7 days after ...", which, right after the key's
// deletion, told the operator that the token came from elsewhere.
func TestTokenRevokeKeyDeleted(t *testing.T) {
	st := labSiteStore(t)
	ctx := context.Background()
	if err := st.CreateKey(ctx, &socius.Key{UserKey: "AKeyToDelete", APIKey: testAPIKey, Secret: testSecret, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	text := socius.NewTokenText(socius.AccessToken)
	if err := st.CreateToken(ctx, &socius.Token{Hash: socius.HashToken(text), Kind: socius.AccessToken, APIKey: testAPIKey, UserKey: "AKeyToDelete", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteKey(ctx, "AKeyToDelete"); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	err := revokeToken(ctx, st, text, time.Now(), &out)
	if err == nil || !strings.Contains(err.Error(), "unknown token: ") || !strings.Contains(err.Error(), "deleted it with its userKey (socius key delete)") || out.Len() != 0 {
		t.Errorf("revoke a token deleted with its key: %v, %q", err, out.String())
	}
}
