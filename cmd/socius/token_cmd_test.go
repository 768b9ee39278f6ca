package main

import (
	"context"
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

	for _, c := range []struct {
		args []string
		code int
		err  string
	}{
		{[]string{"st2.at.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}, 1, "unknown token"},
		{[]string{"not-a-token"}, 1, "not a Socius token"},
		{[]string{"--token-file", filepath.Join(t.TempDir(), "missing")}, 1, "missing"},
		{[]string{token, other}, 2, "one token at a time"},
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
