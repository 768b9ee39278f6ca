package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/socius/socius"
	"github.com/socius/socius/client"
	"github.com/socius/socius/internal/vectors"
)

// End-to-end tests of the Go client: the real server (Main on port 0, real listeners,
// TLS and SQLite) driven only through package client.

// newClient returns a client of the test server over HTTP or HTTPS (trusting the
// server's certificate).
func (ts *testServer) newClient(t *testing.T, https bool, cred client.Credentials, opts ...client.Option) *client.Client {
	t.Helper()
	base := ts.HTTPURL
	if https {
		base = ts.HTTPSURL
	}
	c, err := client.New(cred, append([]client.Option{client.WithBaseURL(base), client.WithHTTPClient(ts.client)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// createKey adds a key with every permission to the lab site.
func (ts *testServer) createKey(t *testing.T, userKey, secret string, methods ...string) {
	t.Helper()
	if err := ts.Store.CreateKey(context.Background(), &socius.Key{UserKey: userKey, APIKey: testAPIKey, Secret: secret, Methods: methods, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
}

// wantCode fails unless err is a Gigya error with the code (and, if given, details
// containing the text).
func wantCode(t *testing.T, what string, err error, code int, details string) *client.Error {
	t.Helper()
	var e *client.Error
	if !errors.As(err, &e) {
		t.Fatalf("%s: got %T %v, want Gigya error %d", what, err, err, code)
	}
	if e.Code != code || !strings.Contains(e.Details, details) {
		t.Fatalf("%s: got %d %q, want %d with %q", what, e.Code, e.Details, code, details)
	}
	return e
}

var callIDPattern = regexp.MustCompile(`^[0-9a-f]{32}$`)

// lifecycle runs every socialize helper against one user: notifyLogin, setUserInfo,
// getUserInfo, a generic Call, logout, deleteAccount.
func lifecycle(t *testing.T, c *client.Client, uid string) {
	t.Helper()
	ctx := context.Background()
	login, err := c.NotifyLogin(ctx, client.NotifyLoginRequest{SiteUID: uid, NewUser: true, UserInfo: &client.UserInfo{Nickname: "nick", Age: client.Age(0)}})
	if err != nil {
		t.Fatalf("NotifyLogin: %v", err)
	}
	if login.UID != uid || login.CookieName != "glt_"+testAPIKey || login.CookieValue == "" || !callIDPattern.MatchString(login.Response.CallID) {
		t.Errorf("login %+v", login)
	}
	if err := client.ValidateUIDSignature(testSecret, login.UID, login.SignatureTimestamp, login.UIDSignature, time.Minute); err != nil {
		t.Errorf("notifyLogin UIDSignature: %v", err)
	}
	info := client.UserInfo{FirstName: "Dávid 🎉", LastName: "Lab", Gender: "m", Age: client.Age(30), Email: "d@example.com",
		PhotoURL: "http://x/p.png?a=1&b=2", ThumbnailURL: "http://x/t.png"}
	if err := c.SetUserInfo(ctx, uid, info); err != nil {
		t.Fatalf("SetUserInfo: %v", err)
	}
	if err := c.SetUserInfo(ctx, uid, client.UserInfo{LastName: "Changed"}, "nickname", "email"); err != nil {
		t.Fatalf("SetUserInfo clearing: %v", err)
	}
	u, err := c.GetUserInfo(ctx, uid)
	if err != nil {
		t.Fatalf("GetUserInfo: %v", err)
	}
	want := info
	want.LastName = "Changed"
	want.Email = ""
	if u.UID != uid || !u.IsLoggedIn || !u.IsSiteUID || u.LoginProvider != "site" || u.Age == nil || *u.Age != 30 ||
		u.FirstName != want.FirstName || u.LastName != want.LastName || u.Gender != "m" || u.Email != "" || u.Nickname != "" ||
		u.PhotoURL != want.PhotoURL || u.ThumbnailURL != want.ThumbnailURL {
		t.Errorf("GetUserInfo: %+v (profile %+v)", u, u.UserInfo)
	}
	if len(u.Identities) != 1 || u.Identities[0].Provider != "site" || u.Identities[0].FirstName != want.FirstName ||
		u.Identities[0].Age == nil || *u.Identities[0].Age != 30 || u.Identities[0].LastUpdated.IsZero() {
		t.Errorf("identities %+v", u.Identities)
	}
	if u.UIDSignature == "" || client.ValidateUIDSignature(testSecret, u.UID, u.SignatureTimestamp, u.UIDSignature, time.Minute) != nil {
		t.Errorf("getUserInfo UIDSignature %q at %s does not validate", u.UIDSignature, u.SignatureTimestamp)
	}
	// Any method, through Call: notifyRegistration without siteUID is a check that the
	// UID exists; unknown parameters come back in Ignored.
	resp, err := c.Call(ctx, "socialize.notifyRegistration", client.Params{"UID": uid, "shoeSize": 44})
	if err != nil {
		t.Fatalf("Call: %v", err)
	}
	if len(resp.Ignored) != 1 || resp.Ignored[0].Name != "shoeSize" || resp.StatusCode != 200 {
		t.Errorf("Call answer: %+v", resp)
	}
	if err := c.Logout(ctx, uid); err != nil {
		t.Fatalf("Logout: %v", err)
	}
	if u, err := c.GetUserInfo(ctx, uid); err != nil || u.IsLoggedIn {
		t.Errorf("after Logout: %+v %v", u, err)
	}
	if err := c.DeleteAccount(ctx, uid); err != nil {
		t.Fatalf("DeleteAccount: %v", err)
	}
	_, err = c.GetUserInfo(ctx, uid)
	wantCode(t, "GetUserInfo after DeleteAccount", err, 403005, "UID not found")
}

// TestClientAuthModes drives every method through every credential shape the server
// serves on main: partner secret and userKey + secret, each signed over HTTP and HTTPS
// and in plain over HTTPS.
func TestClientAuthModes(t *testing.T) {
	ts := startServer(t)
	ts.createKey(t, vectors.LabUserKey, vectors.LabUserSecret)
	partner := client.PartnerSecret(testAPIKey, testSecret)
	key := client.UserKey(testAPIKey, vectors.LabUserKey, vectors.LabUserSecret)
	tests := []struct {
		name  string
		https bool
		cred  client.Credentials
		opts  []client.Option
	}{
		{"partner signed over http", false, partner, nil},
		{"partner signed over https", true, partner, nil},
		{"partner plain over https", true, partner, []client.Option{client.WithPlainSecret()}},
		{"userKey signed over http", false, key, []client.Option{client.WithPartnerSecret(testSecret)}},
		{"userKey signed over https", true, key, nil},
		{"userKey plain over https", true, key, []client.Option{client.WithPlainSecret(), client.WithPartnerSecret(testSecret)}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lifecycle(t, ts.newClient(t, tt.https, tt.cred, tt.opts...), "user-"+string(rune('a'+i)))
		})
	}
}

// recorder is a transport that keeps every request body sent.
type recorder struct {
	rt     http.RoundTripper
	mu     sync.Mutex
	bodies []string
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	b, err := io.ReadAll(req.Body)
	if err != nil {
		return nil, err
	}
	req.Body = io.NopCloser(bytes.NewReader(b))
	r.mu.Lock()
	r.bodies = append(r.bodies, string(b))
	r.mu.Unlock()
	return r.rt.RoundTrip(req)
}

// TestClientClockSkewRetry moves the server's clock three hours ahead: the client's
// first signed call gets 403002, it learns the offset from Date and succeeds on its
// one retry, which carries a fresh nonce. Proof: the nonces differ, and a byte-identical
// replay of the successful request is a 403004 (its nonce was recorded), while a replay
// of the first one (the Java SDK's retry) is a 403002 again.
func TestClientClockSkewRetry(t *testing.T) {
	for _, skew := range []time.Duration{3 * time.Hour, -3 * time.Hour} {
		t.Run(skew.String(), func(t *testing.T) {
			ts := startServer(t)
			ts.Clock.Advance(skew)
			rec := &recorder{rt: ts.client.Transport}
			var traces []client.Trace
			c := ts.newClient(t, false, client.PartnerSecret(testAPIKey, testSecret),
				client.WithHTTPClient(&http.Client{Transport: rec, Timeout: 10 * time.Second}),
				client.WithTrace(func(tr *client.Trace) { traces = append(traces, *tr) }))
			if _, err := c.NotifyLogin(context.Background(), client.NotifyLoginRequest{SiteUID: "skewed"}); err != nil {
				t.Fatalf("NotifyLogin with the server clock moved by %v: %v", skew, err)
			}
			if len(rec.bodies) != 2 || len(traces) != 2 || traces[0].ErrorCode != 403002 || traces[1].ErrorCode != 0 {
				t.Fatalf("%d requests, traces %+v; want a 403002 then a success", len(rec.bodies), traces)
			}
			first, _ := url.ParseQuery(rec.bodies[0])
			second, _ := url.ParseQuery(rec.bodies[1])
			if first.Get("nonce") == second.Get("nonce") || first.Get("timestamp") == second.Get("timestamp") {
				t.Errorf("the retry reused the nonce or timestamp: %s / %s", rec.bodies[0], rec.bodies[1])
			}
			if d := c.ClockOffset() - skew; d.Abs() > 3*time.Second {
				t.Errorf("learned offset %v, want about %v", c.ClockOffset(), skew)
			}
			replay := func(body string) answer {
				t.Helper()
				b, _ := ts.postRaw(t, ts.HTTPURL, "socialize.notifyLogin", body)
				var a answer
				if err := json.Unmarshal(b, &a); err != nil {
					t.Fatal(err)
				}
				return a
			}
			if a := replay(rec.bodies[1]); a.code() != 403004 {
				t.Errorf("replay of the successful retry: %v, want 403004 (its nonce was used)", a)
			}
			if a := replay(rec.bodies[0]); a.code() != 403002 {
				t.Errorf("replay of the expired request: %v, want 403002", a)
			}
			// The offset stays: the next calls need no retry, and the UIDSignature
			// (stamped by the moved server clock) passes the age check.
			rec.bodies = nil
			u, err := c.GetUserInfo(context.Background(), "skewed")
			if err != nil || len(rec.bodies) != 1 || u.UID != "skewed" {
				t.Errorf("next call: %+v %v after %d requests", u, err, len(rec.bodies))
			}
		})
	}
}

// TestClientTypedErrors: Gigya errors come back as *client.Error with the code, message,
// details and callId, and the whole answer; failures without an answer are distinct.
func TestClientTypedErrors(t *testing.T) {
	ts := startServer(t)
	ctx := context.Background()
	ts.createKey(t, "AReadOnly", vectors.LabUserSecret, "socialize.getUserInfo")
	c := ts.newClient(t, false, client.PartnerSecret(testAPIKey, testSecret))

	_, err := c.GetUserInfo(ctx, "nobody")
	e := wantCode(t, "unknown UID", err, 403005, "UID not found")
	if e.Message != "Unauthorized user" || !callIDPattern.MatchString(e.CallID) || e.Method != "socialize.getUserInfo" || e.StatusCode != 403 {
		t.Errorf("error %+v", e)
	}
	var raw map[string]any
	if err := json.Unmarshal(e.Response, &raw); err != nil || raw["errorCode"] != 403005.0 || raw["callId"] != e.CallID {
		t.Errorf("raw answer %s: %v", e.Response, err)
	}
	if client.ErrorCode(err) != 403005 || !strings.Contains(err.Error(), "403005") || !strings.Contains(err.Error(), e.CallID) {
		t.Errorf("ErrorCode %d, message %q", client.ErrorCode(err), err)
	}

	err = c.SetUserInfo(ctx, "nobody", client.UserInfo{Gender: "x"})
	wantCode(t, "bad gender", err, 400006, "gender must be one of m, f, u")

	_, err = c.Call(ctx, "socialize.nope", nil)
	wantCode(t, "unknown method", err, 400001, "Unknown method: socialize.nope")

	wrong := ts.newClient(t, false, client.PartnerSecret(testAPIKey, "bm90LXRoZS1wYXJ0bmVyLXNlY3JldC0wMDA="))
	_, err = wrong.GetUserInfo(ctx, "u1")
	wantCode(t, "wrong secret", err, 403003, "Invalid request signature")

	other := ts.newClient(t, true, client.PartnerSecret("3_NoSuchSite", testSecret), client.WithPlainSecret())
	_, err = other.GetUserInfo(ctx, "u1")
	wantCode(t, "unknown apiKey", err, 400093, "no site has apiKey 3_NoSuchSite")

	ro := ts.newClient(t, false, client.UserKey(testAPIKey, "AReadOnly", vectors.LabUserSecret))
	err = ro.SetUserInfo(ctx, "u1", client.UserInfo{Nickname: "x"})
	wantCode(t, "key without permission", err, 403007, "may not call socialize.setUserInfo")

	// A secret is never sent over plain HTTP: refused before any request.
	if _, err := client.New(client.PartnerSecret(testAPIKey, testSecret), client.WithBaseURL(ts.HTTPURL), client.WithPlainSecret()); !errors.Is(err, client.ErrInsecure) {
		t.Errorf("plain secret over http: %v", err)
	}

	// No server: a transport error after the dial retries, not a Gigya error.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	gone, err := client.New(client.PartnerSecret(testAPIKey, testSecret), client.WithBaseURL("http://"+addr), client.WithRetries(1))
	if err != nil {
		t.Fatal(err)
	}
	err = gone.SetUserInfo(ctx, "u1", client.UserInfo{Nickname: "x"})
	var te *client.TransportError
	if !errors.As(err, &te) || te.Attempts != 2 || client.ErrorCode(err) != 500000 {
		t.Errorf("connection refused: %T %v", err, err)
	}

	// A cancelled context ends the call at once.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := c.GetUserInfo(cctx, "u1"); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: %v", err)
	}
}

// TestClientGetTokenAndTokenMode obtains access tokens with socialize.getToken (SPEC 5)
// and calls with them: the token implies the user, deleteAccount refuses it, logout
// ends it.
func TestClientGetTokenAndTokenMode(t *testing.T) {
	ts := startServer(t)
	ctx := context.Background()
	c := ts.newClient(t, true, client.PartnerSecret(testAPIKey, testSecret))
	grant, err := c.GetToken(ctx, client.GetTokenRequest{SiteUID: "tok-user", UserInfo: &client.UserInfo{FirstName: "Tokyo"}})
	if err != nil {
		t.Fatalf("GetToken: %v", err)
	}
	if grant.AccessToken == "" || grant.ExpiresIn != 0 {
		t.Errorf("grant %+v: want a token that does not expire", grant)
	}
	tc, err := c.WithCredentials(client.Token(grant.AccessToken))
	if err != nil {
		t.Fatal(err)
	}
	// The token implies the user: no UID.
	if err := tc.SetUserInfo(ctx, "", client.UserInfo{LastName: "Token"}); err != nil {
		t.Fatalf("SetUserInfo with a token: %v", err)
	}
	u, err := tc.GetUserInfo(ctx, "")
	if err != nil || u.UID != "tok-user" || u.FirstName != "Tokyo" || u.LastName != "Token" {
		t.Fatalf("GetUserInfo with a token: %+v %v", u, err)
	}
	// deleteAccount needs server credentials.
	wantCode(t, "DeleteAccount with a token", tc.DeleteAccount(ctx, "tok-user"), 403007, "")
	// Logout ends the token.
	if err := tc.Logout(ctx, ""); err != nil {
		t.Fatalf("Logout with a token: %v", err)
	}
	_, err = tc.GetUserInfo(ctx, "")
	wantCode(t, "token after logout", err, 403025, "")

	// Signed with a userKey, with an expiry; client_credentials without a user.
	ts.createKey(t, vectors.LabUserKey, vectors.LabUserSecret)
	kc := ts.newClient(t, true, client.UserKey(testAPIKey, vectors.LabUserKey, vectors.LabUserSecret))
	grant, err = kc.GetToken(ctx, client.GetTokenRequest{SiteUID: "tok-user-2", SessionExpiration: time.Hour})
	if err != nil || grant.ExpiresIn != time.Hour {
		t.Fatalf("GetToken with a userKey and an expiry: %+v %v", grant, err)
	}
	if _, err := kc.GetToken(ctx, client.GetTokenRequest{GrantType: "client_credentials"}); err != nil {
		t.Errorf("client_credentials: %v", err)
	}
	_, err = kc.GetToken(ctx, client.GetTokenRequest{GrantType: "password"})
	wantCode(t, "unsupported grant", err, 400013, "")
	// getToken answers with a credential: never over plain HTTP.
	_, err = ts.newClient(t, false, client.PartnerSecret(testAPIKey, testSecret)).GetToken(ctx, client.GetTokenRequest{SiteUID: "x"})
	if client.ErrorCode(err) == 0 {
		t.Error("getToken over plain HTTP succeeded")
	}
}

// TestClientBearerRSA calls with a userKey and an RSA private key (Authorization: Bearer
// JWT), which the server verifies with the key's registered public key.
func TestClientBearerRSA(t *testing.T) {
	ts := startServer(t)
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := ts.Store.CreateKey(context.Background(), &socius.Key{UserKey: "ARsaKey", APIKey: testAPIKey, Secret: socius.NewSecret(),
		PublicKey: string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})), CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	cred := client.UserKeyRSA(testAPIKey, "ARsaKey", priv)
	if _, err := client.New(cred, client.WithBaseURL(ts.HTTPURL)); !errors.Is(err, client.ErrInsecure) {
		t.Errorf("a bearer JWT client on an http URL: %v, want ErrInsecure", err)
	}
	c := ts.newClient(t, true, cred, client.WithPartnerSecret(testSecret))
	if _, err := c.NotifyLogin(context.Background(), client.NotifyLoginRequest{SiteUID: "rsa-user"}); err != nil {
		t.Fatalf("NotifyLogin with a bearer JWT: %v", err)
	}
	lifecycle(t, c, "rsa-user-2")
	// The clock correction works for JWTs too (iat is the timestamp).
	ts.Clock.Advance(time.Hour)
	if _, err := c.GetUserInfo(context.Background(), "rsa-user"); err != nil {
		t.Errorf("with the server clock an hour ahead: %v", err)
	}
	// Another key's private key does not verify.
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	bad := ts.newClient(t, true, client.UserKeyRSA(testAPIKey, "ARsaKey", other))
	_, err = bad.GetUserInfo(context.Background(), "rsa-user")
	wantCode(t, "wrong private key", err, 403003, "")
}

// TestClientMobileSession: a mobile session from NotifyLogin (targetEnv=mobile) calls
// through client.Session, signed with the session secret as the mobile SDKs sign, the
// session implying the UID; over plain HTTP it is refused before sending.
func TestClientMobileSession(t *testing.T) {
	ts := startServer(t)
	ctx := context.Background()
	// The answer is a session: the client asks for it over HTTPS only.
	if _, err := ts.newClient(t, false, client.PartnerSecret(testAPIKey, testSecret)).NotifyLogin(ctx,
		client.NotifyLoginRequest{SiteUID: "mob-1", TargetEnv: "mobile"}); !errors.Is(err, client.ErrInsecure) {
		t.Errorf("NotifyLogin mobile over plain HTTP: %v, want ErrInsecure", err)
	}
	c := ts.newClient(t, true, client.PartnerSecret(testAPIKey, testSecret))
	login, err := c.NotifyLogin(ctx, client.NotifyLoginRequest{SiteUID: "mob-1", TargetEnv: "mobile"})
	if err != nil || login.SessionToken == "" || login.SessionSecret == "" {
		t.Fatalf("NotifyLogin mobile: %+v %v", login, err)
	}
	sc := ts.newClient(t, true, client.Session(login.SessionToken, login.SessionSecret))
	if err := sc.SetUserInfo(ctx, "", client.UserInfo{Nickname: "mobile"}); err != nil {
		t.Fatalf("SetUserInfo with the session: %v", err)
	}
	u, err := sc.GetUserInfo(ctx, "")
	if err != nil || u.UID != "mob-1" || u.Nickname != "mobile" {
		t.Fatalf("GetUserInfo with the session: %+v %v", u, err)
	}
	// A wrong session secret is the server's 403003.
	bad := ts.newClient(t, true, client.Session(login.SessionToken, testSecret))
	var gerr *client.Error
	if _, err := bad.GetUserInfo(ctx, ""); !errors.As(err, &gerr) || gerr.Code != 403003 {
		t.Errorf("a session signed with another secret: %v", err)
	}
	if _, err := client.New(client.Session(login.SessionToken, login.SessionSecret), client.WithBaseURL(ts.HTTPURL)); !errors.Is(err, client.ErrInsecure) {
		t.Errorf("a session over plain HTTP: %v", err)
	}
	// socius call --token with --session-secret.
	code, out, errOut := runCLI(t, noEnv, "call", "--url", ts.HTTPSURL, "--ca-file", ts.CertFile,
		"--token", login.SessionToken, "--session-secret", login.SessionSecret, "socialize.getUserInfo")
	if a := decodeAnswer(t, out); code != 0 || a.str("UID") != "mob-1" {
		t.Errorf("socius call with a session: exit %d, %v, %s", code, a, errOut)
	}
}
