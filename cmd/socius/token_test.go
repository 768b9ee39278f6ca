package main

import (
	"bufio"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/socius/socius"
	"github.com/socius/socius/gigya"
	"github.com/socius/socius/internal/vectors"
)

// do sends params to base/method with the HTTP method and extra headers, and decodes
// the answer.
func (ts *testServer) do(t *testing.T, httpMethod, base, method string, params url.Values, header http.Header) answer {
	t.Helper()
	var req *http.Request
	var err error
	if httpMethod == http.MethodGet {
		req, err = http.NewRequest(httpMethod, base+"/"+method+"?"+params.Encode(), nil)
	} else {
		req, err = http.NewRequest(httpMethod, base+"/"+method, strings.NewReader(params.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := ts.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var a answer
	if err := json.Unmarshal(body, &a); err != nil {
		t.Fatalf("%s: answer is not JSON: %v\n%s", method, err, body)
	}
	return a
}

// tlsPost posts params over TLS.
func (ts *testServer) tlsPost(t *testing.T, method string, params url.Values) answer {
	t.Helper()
	return ts.post(t, ts.HTTPSURL, method, params)
}

// withToken returns params plus oauth_token: a token call as every SDK sends it.
func withToken(token string, params url.Values) url.Values {
	p := url.Values{"oauth_token": {token}}
	for k, v := range params {
		p[k] = v
	}
	return p
}

// getToken asks for an access token over TLS with the partner secret in plain (as the
// npm package does) and returns the answer.
func (ts *testServer) getToken(t *testing.T, params url.Values) answer {
	t.Helper()
	p := url.Values{"apiKey": {testAPIKey}, "secret": {testSecret}}
	for k, v := range params {
		p[k] = v
	}
	return ts.tlsPost(t, "socialize.getToken", p)
}

// accessToken gets a token bound to uid (no expiry) and returns it.
func (ts *testServer) accessToken(t *testing.T, uid string) string {
	t.Helper()
	a := ts.getToken(t, url.Values{"grant_type": {"none"}, "x_siteUID": {uid}})
	if a.code() != 0 || !strings.HasPrefix(a.str("access_token"), socius.AccessTokenPrefix) {
		t.Fatalf("getToken for %s: %v", uid, a)
	}
	return a.str("access_token")
}

// want checks an answer's code and that errorDetails holds details.
func want(t *testing.T, what string, a answer, code int, details string) {
	t.Helper()
	if a.code() != code || !strings.Contains(a.str("errorDetails"), details) {
		t.Errorf("%s: got %d %q, want %d with %q", what, a.code(), a.str("errorDetails"), code, details)
	}
	if code != 0 && a.str("errorMessage") != gigya.Message(code) {
		t.Errorf("%s: errorMessage %q, want %q", what, a.str("errorMessage"), gigya.Message(code))
	}
}

// wantAlive is want(t, what, a, 0, "") for a token or session of the given lifetime,
// issued once the clock read issued, asked a second before that lifetime ends. The
// clock is the system time plus an offset: it runs on while a loaded machine pauses,
// and an answer that comes when it reads issued+lifetime or later may rightly say
// expired (the server read its clock before the answer came, after the token's issue):
// that one checks nothing.
func wantAlive(t *testing.T, ts *testServer, what string, a answer, issued time.Time, lifetime time.Duration) {
	t.Helper()
	if age := ts.Clock.Now().Sub(issued); age >= lifetime {
		t.Logf("%s: not checked, the answer came %v after the issue (a paused machine)", what, age.Round(time.Millisecond))
		return
	}
	want(t, what, a, 0, "")
}

// TestTokenEndToEnd is the OAuth 2.0 flow of the issue: getToken with x_siteUID, then
// setUserInfo and getUserInfo with only the token, over real TLS; the token stops
// working after logout, deleteAccount and expiry.
func TestTokenEndToEnd(t *testing.T) {
	ts := startServer(t)
	ts.login(t, "bob")

	// A signed getToken, as the Java SDK sends it (java-403002-retry.jsonl line 11).
	p := ts.signed(t, ts.HTTPSURL, "socialize.getToken", url.Values{"grant_type": {"none"}, "x_siteUID": {"alice"},
		"x_userInfo": {`{"firstName":"Alice","age":33}`}}, "", "")
	a := ts.tlsPost(t, "socialize.getToken", p)
	token := a.str("access_token")
	if a.code() != 0 || !regexp.MustCompile(`^st2\.at\.[A-Za-z0-9_-]{43}$`).MatchString(token) {
		t.Fatalf("getToken: %v", a)
	}
	if _, ok := a["expires_in"]; ok {
		t.Errorf("a token without x_sessionExpiration has expires_in: %v", a)
	}

	// Only the token: no apiKey, no UID, no signature.
	a = ts.tlsPost(t, "socialize.setUserInfo", withToken(token, url.Values{"userInfo": {`{"nickname":"ally"}`}}))
	want(t, "setUserInfo with the token", a, 0, "")
	a = ts.tlsPost(t, "socialize.getUserInfo", withToken(token, nil))
	want(t, "getUserInfo with the token", a, 0, "")
	if a.str("UID") != "alice" || a.str("firstName") != "Alice" || a["age"] != 33.0 || a.str("nickname") != "ally" || a["isLoggedIn"] != true {
		t.Errorf("getUserInfo with the token: %v", a)
	}
	key, _ := socius.DecodeSecret(testSecret)
	if !gigya.ValidateUIDSignature(key, "alice", a.str("signatureTimestamp"), a.str("UIDSignature"), time.Minute, ts.Clock.Now()) {
		t.Errorf("UIDSignature of a token call does not validate with the partner secret")
	}
	// The SDK captures send UID along with the token: its own UID is fine, another
	// user's is not.
	want(t, "token with its own UID", ts.tlsPost(t, "socialize.getUserInfo", withToken(token, url.Values{"UID": {"alice"}})), 0, "")
	want(t, "token with another UID", ts.tlsPost(t, "socialize.getUserInfo", withToken(token, url.Values{"UID": {"bob"}})), 403007, "bound to another user")
	want(t, "token setting another UID", ts.tlsPost(t, "socialize.setUserInfo", withToken(token, url.Values{"UID": {"bob"}, "userInfo": {`{"nickname":"x"}`}})), 403007, "bound to another user")
	want(t, "token logging in another user", ts.tlsPost(t, "socialize.notifyLogin", withToken(token, url.Values{"siteUID": {"bob"}})), 403007, "bound to another user")
	if b := ts.call(t, "socialize.getUserInfo", url.Values{"UID": {"bob"}}); b.str("nickname") != "" {
		t.Errorf("bob changed: %v", b)
	}

	// The header forms.
	oauth := http.Header{"Authorization": {"OAuth " + token}}
	want(t, "Authorization: OAuth", ts.do(t, "POST", ts.HTTPSURL, "socialize.getUserInfo", url.Values{}, oauth), 0, "")
	bearer := http.Header{"Authorization": {"Bearer " + token}}
	want(t, "Authorization: Bearer <access token>", ts.do(t, "GET", ts.HTTPSURL, "socialize.getUserInfo", url.Values{}, bearer), 0, "")
	want(t, "header and parameter differ", ts.do(t, "POST", ts.HTTPSURL, "socialize.getUserInfo", url.Values{"oauth_token": {token + "x"}}, oauth), 400008, "different tokens")

	// Plain HTTP: refused before the token is looked at, in both forms.
	want(t, "token over HTTP", ts.post(t, ts.HTTPURL, "socialize.getUserInfo", withToken(token, nil)), 403025, "only be sent over HTTPS")
	want(t, "OAuth header over HTTP", ts.do(t, "POST", ts.HTTPURL, "socialize.getUserInfo", url.Values{}, oauth), 403025, "only be sent over HTTPS")

	// Unknown tokens, of Socius's shape or not; a token for another apiKey.
	want(t, "unknown token", ts.tlsPost(t, "socialize.getUserInfo", withToken(socius.NewTokenText(socius.AccessToken), nil)), 403025, "unknown token")
	want(t, "foreign token", ts.tlsPost(t, "socialize.getUserInfo", withToken("lab-oauth-token-123", nil)), 403025, "unknown token")
	want(t, "empty token", ts.tlsPost(t, "socialize.getUserInfo", withToken("", nil)), 403025, "empty")
	want(t, "token with another apiKey", ts.tlsPost(t, "socialize.getUserInfo", withToken(token, url.Values{"apiKey": {"3_Other"}})), 403025, "not issued for apiKey 3_Other")
	want(t, "token with its apiKey", ts.tlsPost(t, "socialize.getUserInfo", withToken(token, url.Values{"ApiKey": {testAPIKey}})), 0, "")

	// deleteAccount needs server credentials.
	want(t, "deleteAccount with a token", ts.tlsPost(t, "socialize.deleteAccount", withToken(token, nil)), 403007, "needs server credentials")

	// logout with the token ends it, and every other token of the user.
	other := ts.accessToken(t, "alice")
	want(t, "logout with the token", ts.tlsPost(t, "socialize.logout", withToken(token, nil)), 0, "")
	want(t, "token after logout", ts.tlsPost(t, "socialize.getUserInfo", withToken(token, nil)), 403025, "revoked")
	want(t, "second token after logout", ts.tlsPost(t, "socialize.getUserInfo", withToken(other, nil)), 403025, "revoked")
	if a := ts.call(t, "socialize.getUserInfo", url.Values{"UID": {"alice"}}); a["isLoggedIn"] != false {
		t.Errorf("after logout: %v", a)
	}

	// A new login, a new token; deleteAccount (server credentials) ends it.
	token = ts.accessToken(t, "alice")
	want(t, "new token", ts.tlsPost(t, "socialize.getUserInfo", withToken(token, nil)), 0, "")
	want(t, "deleteAccount", ts.call(t, "socialize.deleteAccount", url.Values{"UID": {"alice"}}), 0, "")
	want(t, "token after deleteAccount", ts.tlsPost(t, "socialize.getUserInfo", withToken(token, nil)), 403025, "revoked")

	// A token with a lifetime: expires_in, then expiry on the server's clock.
	issued := ts.Clock.Now()
	a = ts.getToken(t, url.Values{"grant_type": {"client_credentials"}, "x_siteUID": {"carol"}, "x_sessionExpiration": {"60"}})
	if a.code() != 0 || a["expires_in"] != 60.0 {
		t.Fatalf("getToken with x_sessionExpiration=60: %v", a)
	}
	token = a.str("access_token")
	ts.Clock.Advance(59 * time.Second)
	wantAlive(t, ts, "token at 59 s", ts.tlsPost(t, "socialize.getUserInfo", withToken(token, nil)), issued, 60*time.Second)
	ts.Clock.Advance(time.Second)
	want(t, "token at 60 s", ts.tlsPost(t, "socialize.getUserInfo", withToken(token, nil)), 403025, "expired at")
	// Logout after expiry: the token is still reported as expired, not revoked.
	ts.call(t, "socialize.logout", url.Values{"UID": {"carol"}})
	want(t, "expired, then revoked", ts.tlsPost(t, "socialize.getUserInfo", withToken(token, nil)), 403025, "expired at")

	// -1: 60 s.
	a = ts.getToken(t, url.Values{"grant_type": {"none"}, "x_siteUID": {"carol"}, "x_sessionExpiration": {"-1"}})
	if a.code() != 0 || a["expires_in"] != 60.0 {
		t.Errorf("x_sessionExpiration=-1: %v", a)
	}
	// 0 and -2: no expiry.
	for _, v := range []string{"0", "-2"} {
		a = ts.getToken(t, url.Values{"grant_type": {"none"}, "x_siteUID": {"carol"}, "x_sessionExpiration": {v}})
		if _, ok := a["expires_in"]; a.code() != 0 || ok {
			t.Errorf("x_sessionExpiration=%s: %v", v, a)
		}
		ts.Clock.Advance(100 * 365 * 24 * time.Hour)
		want(t, "token with x_sessionExpiration="+v+" a century later", ts.tlsPost(t, "socialize.getUserInfo", withToken(a.str("access_token"), nil)), 0, "")
	}
}

// TestTokenFollowsRename: setUID and notifyRegistration move the user's tokens along.
func TestTokenFollowsRename(t *testing.T) {
	ts := startServer(t)
	token := ts.accessToken(t, "dave")
	want(t, "setUID with the token", ts.tlsPost(t, "socialize.setUID", withToken(token, ts.uidSig(t, "dave-2", ts.Clock.Now()))), 0, "")
	if a := ts.tlsPost(t, "socialize.getUserInfo", withToken(token, nil)); a.code() != 0 || a.str("UID") != "dave-2" {
		t.Errorf("after setUID: %v", a)
	}
	// A server call renames; the token follows too.
	want(t, "notifyRegistration", ts.call(t, "socialize.notifyRegistration", url.Values{"UID": {"dave-2"}, "siteUID": {"dave-3"}}), 0, "")
	if a := ts.tlsPost(t, "socialize.getUserInfo", withToken(token, nil)); a.code() != 0 || a.str("UID") != "dave-3" {
		t.Errorf("after notifyRegistration: %v", a)
	}
	want(t, "token with the old UID", ts.tlsPost(t, "socialize.getUserInfo", withToken(token, url.Values{"UID": {"dave-2"}})), 403007, "bound to another user")
}

// uidSig returns siteUID with the site's consent to it: UIDSig, the partner secret's
// signature of "<UIDTimestamp>_<siteUID>", and UIDTimestamp, at the given time.
func (ts *testServer) uidSig(t *testing.T, siteUID string, at time.Time) url.Values {
	t.Helper()
	key, err := socius.DecodeSecret(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	stamp := strconv.FormatInt(at.Unix(), 10)
	return url.Values{"siteUID": {siteUID}, "UIDSig": {gigya.UIDSignature(key, stamp, siteUID)}, "UIDTimestamp": {stamp}}
}

// TestTokenRenameNeedsConsent: a token bound to a user (an access token, a mobile
// session: credentials a client holds) renames its user only with the site's UIDSig
// for the new UID. Without it, a client could take a UID that the site gives later to
// another user, and read and write that user's profile once the site logs them in.
func TestTokenRenameNeedsConsent(t *testing.T) {
	ts := startServer(t)
	now := ts.Clock.Now()
	a := ts.call(t, "socialize.notifyLogin", url.Values{"siteUID": {"mallory"}, "targetEnv": {"mobile"}})
	session, secret := a.str("sessionToken"), a.str("sessionSecret")
	sign := func(method string, p url.Values) url.Values {
		return ts.sessionSigned(t, ts.HTTPSURL, method, p, session, secret)
	}
	access, other := ts.accessToken(t, "trudy"), ts.accessToken(t, "trudy2")
	for _, method := range []string{"socialize.setUID", "socialize.notifyRegistration"} {
		want(t, method+" by a session without UIDSig", ts.tlsPost(t, method, sign(method, url.Values{"siteUID": {"victim"}})), 400002, "Missing required parameter: UIDSig")
		want(t, method+" by an access token without UIDSig", ts.tlsPost(t, method, withToken(access, url.Values{"siteUID": {"victim"}})), 400002, "Missing required parameter: UIDSig")
		p := ts.uidSig(t, "victim", now)
		p.Del("UIDTimestamp")
		want(t, method+" without UIDTimestamp", ts.tlsPost(t, method, sign(method, p)), 400002, "Missing required parameter: UIDTimestamp")
		// Consent to another UID, a stale one, one signed with another secret.
		p = ts.uidSig(t, "other", now)
		p.Set("siteUID", "victim")
		want(t, method+" with the UIDSig of another UID", ts.tlsPost(t, method, sign(method, p)), 403003, "UIDSig is not the site's signature")
		want(t, method+" with a stale UIDSig", ts.tlsPost(t, method, sign(method, ts.uidSig(t, "victim", now.Add(-121*time.Second)))), 403002, "UIDTimestamp")
		p = ts.uidSig(t, "victim", now)
		p.Set("UIDSig", gigya.UIDSignature([]byte("not the partner secret"), p.Get("UIDTimestamp"), "victim"))
		want(t, method+" with a UIDSig of another secret", ts.tlsPost(t, method, withToken(access, p)), 403003, "UIDSig")
		p.Set("UIDTimestamp", "soon")
		want(t, method+" with a UIDTimestamp not a time", ts.tlsPost(t, method, withToken(access, p)), 400006, "UIDTimestamp")
		// The identity's providerUIDSig, which the token's holder reads with signIDs,
		// signs "<ts>_site_<UID>": as a UIDSig it would consent to "site_<UID>".
		g := ts.tlsPost(t, "socialize.getUserInfo", withToken(access, url.Values{"signIDs": {"true"}}))
		ids, _ := g["identities"].([]any)
		if len(ids) != 1 {
			t.Fatalf("getUserInfo with signIDs: %v", g)
		}
		id := ids[0].(map[string]any)
		forged := url.Values{"siteUID": {"site_trudy"}, "UIDSig": {fmt.Sprint(id["providerUIDSig"])}, "UIDTimestamp": {g.str("signatureTimestamp")}}
		want(t, method+" with the providerUIDSig as UIDSig", ts.tlsPost(t, method, withToken(access, forged)), 403007, "starting with site_")
		// The same consent, taken to another user of the same client.
		want(t, method+" of another user with the providerUIDSig as UIDSig", ts.tlsPost(t, method, withToken(other, forged)), 403007, "starting with site_")
	}
	// Nothing was renamed: the site's own victim, logged in later, is a new user that
	// neither token reaches.
	a = ts.call(t, "socialize.notifyLogin", url.Values{"siteUID": {"victim"}, "userInfo": {`{"email":"victim@example.com"}`}})
	if a.code() != 0 {
		t.Fatalf("notifyLogin victim: %v", a)
	}
	for name, p := range map[string]url.Values{"session": sign("socialize.getUserInfo", nil), "access token": withToken(access, nil)} {
		if a := ts.tlsPost(t, "socialize.getUserInfo", p); a.code() != 0 || a.str("UID") == "victim" || a.str("email") != "" {
			t.Errorf("%s after the refused renames: %v", name, a)
		}
	}
	// With the site's consent the session renames its user, and follows it.
	want(t, "setUID by a session with UIDSig", ts.tlsPost(t, "socialize.setUID", sign("socialize.setUID", ts.uidSig(t, "mallory-2", now))), 0, "")
	if a := ts.tlsPost(t, "socialize.getUserInfo", sign("socialize.getUserInfo", nil)); a.code() != 0 || a.str("UID") != "mallory-2" {
		t.Errorf("session after its consented rename: %v", a)
	}
	// Server credentials need no UIDSig.
	want(t, "notifyRegistration by the server", ts.call(t, "socialize.notifyRegistration", url.Values{"UID": {"mallory-2"}, "siteUID": {"mallory-3"}}), 0, "")
}

// TestGetTokenCredentials: every client-credential shape of SPEC 5, and every refusal.
func TestGetTokenCredentials(t *testing.T) {
	ts := startServer(t)
	ctx := context.Background()
	const keySecret = vectors.LabUserSecret
	createKeys(t, ts,
		&socius.Key{UserKey: "AFullKey", APIKey: testAPIKey, Secret: keySecret},
		&socius.Key{UserKey: "ATokenReader", APIKey: testAPIKey, Secret: keySecret, Methods: []string{"socialize.getToken", "socialize.notifyLogin", "socialize.getUserInfo"}},
		&socius.Key{UserKey: "ANoLogins", APIKey: testAPIKey, Secret: keySecret, Methods: []string{"socialize.getToken", "socialize.getUserInfo"}},
		&socius.Key{UserKey: "ANoTokens", APIKey: testAPIKey, Secret: keySecret, Methods: []string{"socialize.getUserInfo"}},
	)
	grant := func(extra url.Values) url.Values {
		p := url.Values{"grant_type": {"none"}, "x_siteUID": {"eve"}}
		for k, v := range extra {
			p[k] = v
		}
		return p
	}
	tests := []struct {
		name       string
		httpMethod string
		https      bool
		params     url.Values
		header     http.Header
		code       int
		details    string
	}{
		{"Basic apiKey:partner secret", "POST", true, grant(nil), basicAuth(testAPIKey, testSecret), 0, ""},
		{"Basic form-encoded secret", "POST", true, grant(nil), basicAuth(testAPIKey, url.QueryEscape(testSecret)), 0, ""},
		{"Basic userKey:key secret", "POST", true, grant(nil), basicAuth("AFullKey", keySecret), 0, ""},
		{"client_id + client_secret", "POST", true, grant(url.Values{"client_id": {testAPIKey}, "client_secret": {testSecret}}), nil, 0, ""},
		{"client_id=userKey + client_secret", "POST", true, grant(url.Values{"client_id": {"AFullKey"}, "client_secret": {keySecret}}), nil, 0, ""},
		{"client_id + userKey + secret", "POST", true, grant(url.Values{"client_id": {testAPIKey}, "userKey": {"AFullKey"}, "secret": {keySecret}}), nil, 0, ""},
		{"client_id=userKey beside apiKey + userKey + secret", "POST", true, grant(url.Values{"client_id": {"AFullKey"}, "apiKey": {testAPIKey}, "userKey": {"AFullKey"}, "secret": {keySecret}}), nil, 0, ""},
		{"apiKey + userKey + secret", "POST", true, grant(url.Values{"apiKey": {testAPIKey}, "userKey": {"AFullKey"}, "secret": {keySecret}}), nil, 0, ""},
		{"apiKey + partner secret", "POST", true, grant(url.Values{"apiKey": {testAPIKey}, "secret": {testSecret}}), nil, 0, ""},
		{"signed, partner", "POST", true, ts.signed(t, ts.HTTPSURL, "socialize.getToken", grant(nil), "", ""), nil, 0, ""},
		{"signed, userKey", "POST", true, ts.signed(t, ts.HTTPSURL, "socialize.getToken", grant(nil), "AFullKey", keySecret), nil, 0, ""},
		{"signed with client_id for apiKey", "POST", true, func() url.Values {
			p := ts.signed(t, ts.HTTPSURL, "socialize.getToken", grant(url.Values{"client_id": {testAPIKey}, "apiKey": {testAPIKey}}), "", "")
			return p
		}(), nil, 0, ""},

		{"over plain HTTP, signed", "POST", false, ts.signed(t, ts.HTTPURL, "socialize.getToken", grant(nil), "", ""), nil, 403006, "HTTPS only"},
		{"over plain HTTP, Basic", "POST", false, grant(nil), basicAuth(testAPIKey, testSecret), 403006, "HTTPS only"},
		{"GET", "GET", true, grant(url.Values{"client_id": {testAPIKey}, "client_secret": {testSecret}}), nil, 400001, "must be a POST"},
		{"wrong client_secret", "POST", true, grant(url.Values{"client_id": {testAPIKey}, "client_secret": {keySecret}}), nil, 403003, "client secret does not match the secret of apiKey"},
		{"wrong Basic secret", "POST", true, grant(nil), basicAuth("AFullKey", testSecret), 403003, "client_id \"AF\"... (length 8) is neither a site's apiKey nor a userKey whose secret is the client_secret"},
		{"wrong plain secret", "POST", true, grant(url.Values{"apiKey": {testAPIKey}, "secret": {keySecret}}), nil, 403003, "secret does not match"},
		{"Basic not base64", "POST", true, grant(nil), http.Header{"Authorization": {"Basic !!!"}}, 400008, "base64(client_id:client_secret)"},
		{"Basic without colon", "POST", true, grant(nil), http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte(testAPIKey))}}, 400008, "base64(client_id:client_secret)"},
		{"Basic and client_id differ", "POST", true, grant(url.Values{"client_id": {"AFullKey"}}), basicAuth(testAPIKey, testSecret), 400008, "differ"},
		{"Basic and client_secret", "POST", true, grant(url.Values{"client_secret": {testSecret}}), basicAuth(testAPIKey, testSecret), 400008, "not both"},
		{"Basic client_id that is no id", "POST", true, grant(nil), basicAuth("3_no pe", testSecret), 400093, "client_id is not a valid apiKey or userKey"},
		{"client_secret without client_id", "POST", true, grant(url.Values{"client_secret": {testSecret}}), nil, 400002, "client_id"},
		{"unknown client_id", "POST", true, grant(url.Values{"client_id": {"3_nobody"}, "client_secret": {testSecret}}), nil, 400093, "client_id 3_nobody is neither a site's apiKey nor a userKey"},
		{"client_id and apiKey differ", "POST", true, grant(url.Values{"client_id": {"3_nobody"}, "apiKey": {testAPIKey}, "secret": {testSecret}}), nil, 400006, "client_id"},
		{"client_id + client_secret, apiKey of another site", "POST", true, grant(url.Values{"client_id": {testAPIKey}, "client_secret": {testSecret}, "apiKey": {"3_OtherSite"}}), nil, 400006, "client_id and apiKey name different sites"},
		{"client_id=userKey + client_secret, apiKey of another site", "POST", true, grant(url.Values{"client_id": {"AFullKey"}, "client_secret": {keySecret}, "apiKey": {"3_OtherSite"}}), nil, 403005, "not a key of this site"},
		{"no credentials", "POST", true, grant(nil), nil, 400093, "Missing required parameter: apiKey"},
		{"with a token", "POST", true, grant(url.Values{"oauth_token": {socius.NewTokenText(socius.AccessToken)}}), nil, 403007, "not a token"},
		{"key without notifyLogin, x_siteUID", "POST", true, grant(url.Values{"x_siteUID": {"mallory"}, "x_userInfo": {`{"firstName":"M"}`}, "client_id": {"ANoLogins"}, "client_secret": {keySecret}}), nil, 403007, "may not call socialize.notifyLogin, which getToken with x_siteUID does"},
		{"client_id=userKey + secret", "POST", true, grant(url.Values{"client_id": {"AFullKey"}, "secret": {keySecret}}), nil, 400093, "client_id AFullKey is a userKey"},
		{"key without getToken", "POST", true, grant(url.Values{"client_id": {"ANoTokens"}, "client_secret": {keySecret}}), nil, 403007, "may not call socialize.getToken"},
		{"missing grant_type", "POST", true, url.Values{"client_id": {testAPIKey}, "client_secret": {testSecret}}, nil, 400002, "grant_type"},
		{"empty grant_type", "POST", true, url.Values{"grant_type": {""}, "client_id": {testAPIKey}, "client_secret": {testSecret}}, nil, 400002, "grant_type"},
		{"grant_type authorization_code", "POST", true, grant(url.Values{"grant_type": {"authorization_code"}, "code": {"abc"}, "redirect_uri": {"https://x/"}, "client_id": {testAPIKey}, "client_secret": {testSecret}}), nil, 400013, "authorization_code"},
		{"grant_type password", "POST", true, grant(url.Values{"grant_type": {"password"}, "client_id": {testAPIKey}, "client_secret": {testSecret}}), nil, 400013, "Unsupported grant type"},
		{"x_userInfo without x_siteUID", "POST", true, url.Values{"grant_type": {"none"}, "x_userInfo": {`{"firstName":"x"}`}, "client_id": {testAPIKey}, "client_secret": {testSecret}}, nil, 400002, "x_siteUID"},
		{"bad x_userInfo", "POST", true, grant(url.Values{"x_userInfo": {`{"gender":"x"}`}, "client_id": {testAPIKey}, "client_secret": {testSecret}}), nil, 400006, "x_userInfo.gender"},
		{"bad x_siteUID", "POST", true, grant(url.Values{"x_siteUID": {"é"}, "client_id": {testAPIKey}, "client_secret": {testSecret}}), nil, 400006, "x_siteUID"},
		{"bad x_sessionExpiration", "POST", true, grant(url.Values{"x_sessionExpiration": {"soon"}, "client_id": {testAPIKey}, "client_secret": {testSecret}}), nil, 400006, "x_sessionExpiration"},
		{"x_sessionExpiration below -2", "POST", true, grant(url.Values{"x_sessionExpiration": {"-3"}, "client_id": {testAPIKey}, "client_secret": {testSecret}}), nil, 400006, "x_sessionExpiration"},
		{"x_sessionExpiration at its most", "POST", true, grant(url.Values{"x_sessionExpiration": {"2147483647"}, "client_id": {testAPIKey}, "client_secret": {testSecret}}), nil, 0, ""},
		{"x_sessionExpiration beyond its most", "POST", true, grant(url.Values{"x_sessionExpiration": {"2147483648"}, "client_id": {testAPIKey}, "client_secret": {testSecret}}), nil, 400006, "x_sessionExpiration"},
		{"x_sessionExpiration empty", "POST", true, grant(url.Values{"x_sessionExpiration": {""}, "client_id": {testAPIKey}, "client_secret": {testSecret}}), nil, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := ts.HTTPURL
			if tt.https {
				base = ts.HTTPSURL
			}
			a := ts.do(t, tt.httpMethod, base, "socialize.getToken", tt.params, tt.header)
			want(t, tt.name, a, tt.code, tt.details)
			if tt.code == 0 {
				if b := ts.tlsPost(t, "socialize.getUserInfo", withToken(a.str("access_token"), nil)); b.code() != 0 || b.str("UID") != "eve" {
					t.Errorf("using the token: %v", b)
				}
			}
		})
	}
	// A refused getToken created no user.
	for _, uid := range []string{"é", "mallory"} {
		if a := ts.call(t, "socialize.getUserInfo", url.Values{"UID": {uid}}); a.code() == 0 {
			t.Errorf("a refused getToken created a user: %v", a)
		}
	}
	// A key without notifyLogin still gets a token for the site.
	if a := ts.tlsPost(t, "socialize.getToken", url.Values{"grant_type": {"none"}, "client_id": {"ANoLogins"}, "client_secret": {keySecret}}); a.code() != 0 {
		t.Errorf("a site token for a key without notifyLogin: %v", a)
	}

	// A token has the permissions of the key that obtained it, while the key lives.
	a := ts.getToken(t, url.Values{"grant_type": {"none"}, "x_siteUID": {"eve"}, "apiKey": {testAPIKey}, "userKey": {"ATokenReader"}, "secret": {keySecret}})
	if a.code() != 0 {
		t.Fatal(a)
	}
	token := a.str("access_token")
	want(t, "key token reads", ts.tlsPost(t, "socialize.getUserInfo", withToken(token, nil)), 0, "")
	want(t, "key token writes", ts.tlsPost(t, "socialize.setUserInfo", withToken(token, url.Values{"userInfo": {"{}"}})), 403007, "userKey ATokenReader may not call socialize.setUserInfo")
	if err := ts.Store.DeleteKey(ctx, "ATokenReader"); err != nil {
		t.Fatal(err)
	}
	want(t, "token of a deleted key", ts.tlsPost(t, "socialize.getUserInfo", withToken(token, nil)), 403025, "unknown token")
	// A key created again under the same name does not bring its tokens back.
	if err := ts.Store.CreateKey(ctx, &socius.Key{UserKey: "ATokenReader", APIKey: testAPIKey, Secret: socius.NewSecret(), CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	want(t, "token of a deleted key, the key created again", ts.tlsPost(t, "socialize.getUserInfo", withToken(token, nil)), 403025, "unknown token")
}

// TestGetTokenUnknownClientID: getToken answers a client_id that names nothing as it
// answers one that names a userKey whose secret was not sent, in every credential
// shape, so that it does not tell which userKeys exist (an apiKey is public: every
// method answers an unknown one 400093). An id shaped like Gigya's apiKeys is 400093,
// any other 403003; with an apiKey, the 403005 of a key of another site. Before, an
// unknown one was 400093 "client_id K is neither an apiKey nor a userKey" where a
// userKey was 403003 "the client secret does not match the secret of userKey K", 403005
// or 400006, or, with a secret, 400093 "client_id K is a userKey".
func TestGetTokenUnknownClientID(t *testing.T) {
	ts := startServer(t)
	ctx := context.Background()
	const keySecret = vectors.LabUserSecret
	const otherSite = "3_OtherSite"
	if err := ts.Store.PutSite(ctx, &socius.Site{APIKey: otherSite, Secret: socius.NewSecret(), CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	createKeys(t, ts,
		&socius.Key{UserKey: "AFullKey", APIKey: testAPIKey, Secret: keySecret},
		&socius.Key{UserKey: "3_ShapedKey", APIKey: testAPIKey, Secret: keySecret},
		&socius.Key{UserKey: "AOtherKey", APIKey: otherSite, Secret: keySecret},
	)
	grant := func(extra url.Values) url.Values {
		p := url.Values{"grant_type": {"none"}}
		for k, v := range extra {
			p[k] = v
		}
		return p
	}
	// Each case is asked with a userKey (known, the wrong secret sent) and with an id
	// that names nothing; the answers must be the same, the id aside (an id that is not
	// apiKey-shaped is named by its first characters and length: the two ids share both).
	for _, c := range []struct {
		name           string
		known, unknown string
		ask            func(id string) (url.Values, http.Header)
		code           int
	}{
		{"client_secret", "AFullKey", "AFnobody", func(id string) (url.Values, http.Header) {
			return grant(url.Values{"client_id": {id}, "client_secret": {testSecret}}), nil
		}, 403003},
		{"HTTP Basic", "AFullKey", "AFnobody", func(id string) (url.Values, http.Header) {
			return grant(nil), basicAuth(id, testSecret)
		}, 403003},
		{"HTTP Basic, apiKey-shaped", "3_ShapedKey", "3_Nobody", func(id string) (url.Values, http.Header) {
			return grant(nil), basicAuth(id, testSecret)
		}, 400093},
		{"client_secret and another userKey", "AFullKey", "AFnobody", func(id string) (url.Values, http.Header) {
			return grant(url.Values{"client_id": {id}, "client_secret": {testSecret}, "userKey": {"AOtherKey"}}), nil
		}, 403003},
		{"client_secret and the apiKey", "AOtherKey", "AOnobody1", func(id string) (url.Values, http.Header) {
			return grant(url.Values{"client_id": {id}, "client_secret": {keySecret}, "apiKey": {testAPIKey}}), nil
		}, 403005},
		{"secret", "AFullKey", "AFnobody", func(id string) (url.Values, http.Header) {
			return grant(url.Values{"client_id": {id}, "secret": {testSecret}}), nil
		}, 400093},
	} {
		t.Run(c.name, func(t *testing.T) {
			var details [2]string
			for i, id := range []string{c.known, c.unknown} {
				params, header := c.ask(id)
				a := ts.do(t, "POST", ts.HTTPSURL, "socialize.getToken", params, header)
				if a.code() != c.code {
					t.Errorf("client_id %s: %d %q, want %d", id, a.code(), a.str("errorDetails"), c.code)
				}
				details[i] = strings.ReplaceAll(a.str("errorDetails"), id, "ID")
			}
			if details[0] != details[1] {
				t.Errorf("a userKey and an unknown client_id are told apart:\n%s: %q\n%s: %q", c.known, details[0], c.unknown, details[1])
			}
		})
	}
	// With the key's secret, a client_id sent with a secret says it is a userKey.
	want(t, "the key's own secret", ts.do(t, "POST", ts.HTTPSURL, "socialize.getToken", grant(url.Values{"client_id": {"AFullKey"}, "secret": {keySecret}}), nil),
		400093, "client_id AFullKey is a userKey")
}

// TestUnboundToken: a client_credentials token without x_siteUID acts for the site, as
// its credentials would, except that it cannot delete accounts.
func TestUnboundToken(t *testing.T) {
	ts := startServer(t)
	ts.login(t, "u1")
	a := ts.getToken(t, url.Values{"grant_type": {"client_credentials"}})
	if a.code() != 0 {
		t.Fatal(a)
	}
	token := a.str("access_token")
	want(t, "no UID", ts.tlsPost(t, "socialize.getUserInfo", withToken(token, nil)), 400002, "Missing required parameter: UID")
	want(t, "set u1", ts.tlsPost(t, "socialize.setUserInfo", withToken(token, url.Values{"UID": {"u1"}, "userInfo": {`{"nickname":"site"}`}})), 0, "")
	if a := ts.tlsPost(t, "socialize.getUserInfo", withToken(token, url.Values{"UID": {"u1"}})); a.str("nickname") != "site" {
		t.Errorf("get u1: %v", a)
	}
	want(t, "notifyLogin", ts.tlsPost(t, "socialize.notifyLogin", withToken(token, url.Values{"siteUID": {"u2"}})), 0, "")
	want(t, "deleteAccount", ts.tlsPost(t, "socialize.deleteAccount", withToken(token, url.Values{"UID": {"u2"}})), 403007, "not a token")
	// Logging a user out does not end a token bound to no user.
	want(t, "logout u1", ts.tlsPost(t, "socialize.logout", withToken(token, url.Values{"UID": {"u1"}})), 0, "")
	want(t, "after logout", ts.tlsPost(t, "socialize.getUserInfo", withToken(token, url.Values{"UID": {"u2"}})), 0, "")
}

// sessionSigned signs params as the mobile SDKs sign a session call: oauth_token, then
// timestamp, nonce and sig, the key being the base64-decoded session secret. No apiKey
// is added.
func (ts *testServer) sessionSigned(t *testing.T, base, method string, params url.Values, token, secret string) url.Values {
	t.Helper()
	p := url.Values{"oauth_token": {token}}
	for k, v := range params {
		p[k] = v
	}
	if p.Get("timestamp") == "" {
		p.Set("timestamp", strconv.FormatInt(ts.Clock.Now().Unix(), 10))
	}
	if p.Get("nonce") == "" {
		p.Set("nonce", strconv.FormatInt(time.Now().UnixNano(), 10)+"_"+strconv.FormatInt(nonceSeq.Add(1), 10))
	}
	norm, err := gigya.NormalizeURL(base + "/" + method)
	if err != nil {
		t.Fatal(err)
	}
	var list []gigya.Param
	for k, vs := range p {
		list = append(list, gigya.Param{Name: k, Value: vs[0]})
	}
	key, err := base64.StdEncoding.DecodeString(secret)
	if err != nil {
		t.Fatal(err)
	}
	p.Set("sig", gigya.Sign(key, "POST", norm, list))
	return p
}

// TestMobileSession: notifyLogin with targetEnv=mobile hands out a session token and
// secret; calls carrying the token and signed with the secret work, others do not.
func TestMobileSession(t *testing.T) {
	ts := startServer(t)
	a := ts.call(t, "socialize.notifyLogin", url.Values{"siteUID": {"m1"}, "targetEnv": {"mobile"}})
	token, secret := a.str("sessionToken"), a.str("sessionSecret")
	if a.code() != 0 || a.str("UID") != "m1" || !strings.HasPrefix(token, socius.SessionTokenPrefix) {
		t.Fatalf("notifyLogin mobile: %v", a)
	}
	if raw, err := base64.StdEncoding.DecodeString(secret); err != nil || len(raw) != 32 {
		t.Errorf("sessionSecret %q is not standard base64 of 32 bytes", secret)
	}
	if _, ok := a["cookieName"]; ok {
		t.Errorf("a mobile login has cookie fields: %v", a)
	}
	if a := ts.call(t, "socialize.notifyLogin", url.Values{"siteUID": {"m1"}, "targetEnv": {"Mobile"}}); !strings.HasPrefix(a.str("sessionToken"), socius.SessionTokenPrefix) {
		t.Errorf("notifyLogin targetEnv=Mobile: %v", a)
	}
	// Browser mode (the default) answers the login cookie instead.
	b := ts.call(t, "socialize.notifyLogin", url.Values{"siteUID": {"m1"}})
	if b.str("cookieName") != "glt_"+testAPIKey || b.str("cookieValue") == "" || b.str("cookiePath") != "/" || b.str("cookieDomain") != "127.0.0.1" || b["sessionToken"] != nil {
		t.Errorf("notifyLogin browser: %v", b)
	}

	sign := func(method string, p url.Values) url.Values {
		return ts.sessionSigned(t, ts.HTTPSURL, method, p, token, secret)
	}
	want(t, "signed session setUserInfo", ts.tlsPost(t, "socialize.setUserInfo", sign("socialize.setUserInfo", url.Values{"userInfo": {`{"firstName":"Mo"}`}})), 0, "")
	a = ts.tlsPost(t, "socialize.getUserInfo", sign("socialize.getUserInfo", nil))
	if a.code() != 0 || a.str("UID") != "m1" || a.str("firstName") != "Mo" {
		t.Errorf("signed session getUserInfo: %v", a)
	}
	// Android sends ApiKey too and signs with URL-safe base64.
	p := sign("socialize.getUserInfo", url.Values{"ApiKey": {testAPIKey}})
	p.Set("sig", strings.NewReplacer("+", "-", "/", "_").Replace(p.Get("sig")))
	want(t, "Android-style session call", ts.tlsPost(t, "socialize.getUserInfo", p), 0, "")

	want(t, "unsigned session call", ts.tlsPost(t, "socialize.getUserInfo", withToken(token, nil)), 400002, "Missing required parameter: sig")
	want(t, "session call over HTTP", ts.post(t, ts.HTTPURL, "socialize.getUserInfo", ts.sessionSigned(t, ts.HTTPURL, "socialize.getUserInfo", nil, token, secret)), 403025, "only be sent over HTTPS")
	want(t, "signed with the partner secret", ts.tlsPost(t, "socialize.getUserInfo", ts.sessionSigned(t, ts.HTTPSURL, "socialize.getUserInfo", nil, token, testSecret)), 403003, "sessionSecret of the session token")
	p = sign("socialize.getUserInfo", nil)
	p.Set("UID", "m1") // added after signing
	want(t, "parameter added after signing", ts.tlsPost(t, "socialize.getUserInfo", p), 403003, "Invalid request signature")
	p = sign("socialize.getUserInfo", nil)
	want(t, "first", ts.tlsPost(t, "socialize.getUserInfo", p), 0, "")
	want(t, "replay", ts.tlsPost(t, "socialize.getUserInfo", p), 403004, "Duplicate nonce")
	old := sign("socialize.getUserInfo", url.Values{"timestamp": {strconv.FormatInt(ts.Clock.Now().Unix()-121, 10)}})
	want(t, "stale timestamp", ts.tlsPost(t, "socialize.getUserInfo", old), 403002, "by more than 120 s")
	want(t, "stale timestamp again (Java retry)", ts.tlsPost(t, "socialize.getUserInfo", old), 403002, "Request has expired")
	// A session token is not a server credential either.
	want(t, "deleteAccount with a session", ts.tlsPost(t, "socialize.deleteAccount", sign("socialize.deleteAccount", nil)), 403007, "not a token")
	// logout with the session ends it.
	want(t, "logout", ts.tlsPost(t, "socialize.logout", sign("socialize.logout", nil)), 0, "")
	want(t, "session after logout", ts.tlsPost(t, "socialize.getUserInfo", sign("socialize.getUserInfo", nil)), 403025, "revoked")

	// sessionExpiration sets the session's lifetime on the server's clock.
	issued := ts.Clock.Now()
	a = ts.call(t, "socialize.notifyLogin", url.Values{"siteUID": {"m2"}, "targetEnv": {"mobile"}, "sessionExpiration": {"120"}})
	token, secret = a.str("sessionToken"), a.str("sessionSecret")
	ts.Clock.Advance(119 * time.Second)
	wantAlive(t, ts, "session at 119 s", ts.tlsPost(t, "socialize.getUserInfo", sign("socialize.getUserInfo", nil)), issued, 120*time.Second)
	ts.Clock.Advance(time.Second)
	want(t, "session at 120 s", ts.tlsPost(t, "socialize.getUserInfo", sign("socialize.getUserInfo", nil)), 403025, "expired at")
	want(t, "bad sessionExpiration", ts.call(t, "socialize.notifyLogin", url.Values{"siteUID": {"m2"}, "targetEnv": {"mobile"}, "sessionExpiration": {"1.5"}}), 400006, "sessionExpiration")

	// Changing the partner secret ends every mobile session of the site: the session
	// secrets derive from it.
	a = ts.call(t, "socialize.notifyLogin", url.Values{"siteUID": {"m3"}, "targetEnv": {"mobile"}})
	token, secret = a.str("sessionToken"), a.str("sessionSecret")
	want(t, "before rotation", ts.tlsPost(t, "socialize.getUserInfo", sign("socialize.getUserInfo", nil)), 0, "")
	if err := ts.Store.PutSite(context.Background(), &socius.Site{APIKey: testAPIKey, Secret: socius.NewSecret(), CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	want(t, "after rotation", ts.tlsPost(t, "socialize.getUserInfo", sign("socialize.getUserInfo", nil)), 403003, "sessionSecret")
}

// TestSessionsEndWithTheirToken: a mobile session minted with a token (notifyLogin
// called with a site token, or with a session) lives no longer than that token, whatever
// sessionExpiration asks: a leaked token of a minute must not yield sessions for ever.
func TestSessionsEndWithTheirToken(t *testing.T) {
	ts := startServer(t)
	issued := ts.Clock.Now()
	a := ts.getToken(t, url.Values{"grant_type": {"none"}, "x_sessionExpiration": {"60"}})
	siteToken := a.str("access_token")
	if a.code() != 0 || siteToken == "" {
		t.Fatalf("getToken: %v", a)
	}
	var sessions [][2]string
	for _, exp := range []string{"-2", "", "3600"} { // for ever, the default (for ever), an hour
		p := url.Values{"siteUID": {"u1"}, "targetEnv": {"mobile"}}
		if exp != "" {
			p.Set("sessionExpiration", exp)
		}
		a := ts.tlsPost(t, "socialize.notifyLogin", withToken(siteToken, p))
		if a.code() != 0 {
			t.Fatalf("notifyLogin with the site token, sessionExpiration %q: %v", exp, a)
		}
		sessions = append(sessions, [2]string{a.str("sessionToken"), a.str("sessionSecret")})
	}
	// A session minted by such a session ends with the first token too.
	first := sessions[0]
	p := ts.sessionSigned(t, ts.HTTPSURL, "socialize.notifyLogin", url.Values{"siteUID": {"u1"}, "targetEnv": {"mobile"}, "sessionExpiration": {"-2"}}, first[0], first[1])
	a = ts.tlsPost(t, "socialize.notifyLogin", p)
	if a.code() != 0 {
		t.Fatalf("notifyLogin with a session: %v", a)
	}
	sessions = append(sessions, [2]string{a.str("sessionToken"), a.str("sessionSecret")})
	call := func(s [2]string) answer {
		return ts.tlsPost(t, "socialize.getUserInfo", ts.sessionSigned(t, ts.HTTPSURL, "socialize.getUserInfo", nil, s[0], s[1]))
	}
	ts.Clock.Advance(59 * time.Second)
	for i, s := range sessions {
		wantAlive(t, ts, fmt.Sprintf("session %d at 59 s", i), call(s), issued, 60*time.Second)
	}
	ts.Clock.Advance(time.Second)
	for i, s := range sessions {
		want(t, fmt.Sprintf("session %d at 60 s, when the site token expired", i), call(s), 403025, "expired at")
	}
	// A shorter session than its token keeps its own lifetime.
	a = ts.getToken(t, url.Values{"grant_type": {"none"}, "x_sessionExpiration": {"600"}})
	a = ts.tlsPost(t, "socialize.notifyLogin", withToken(a.str("access_token"), url.Values{"siteUID": {"u1"}, "targetEnv": {"mobile"}, "sessionExpiration": {"30"}}))
	short := [2]string{a.str("sessionToken"), a.str("sessionSecret")}
	ts.Clock.Advance(30 * time.Second)
	want(t, "a 30 s session of a 600 s token at 30 s", call(short), 403025, "expired at")
}

// jwtFor builds an RS256 JWT as the SDKs do (header alg, typ, kid; claims iat, jti),
// encoded with enc.
func jwtFor(t *testing.T, priv *rsa.PrivateKey, header, claims map[string]any, enc *base64.Encoding) string {
	t.Helper()
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	input := enc.EncodeToString(h) + "." + enc.EncodeToString(c)
	digest := sha256.Sum256([]byte(input))
	sig, err := rsa.SignPKCS1v15(rand.Reader, priv, crypto.SHA256, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	return input + "." + enc.EncodeToString(sig)
}

// TestBearerJWT: Authorization: Bearer <JWT> with a userKey whose public key is
// registered.
func TestBearerJWT(t *testing.T) {
	ts := startServer(t)
	ts.login(t, "u1")
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	stranger, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := socius.EncodeRSAPublicKey(&priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	createKeys(t, ts,
		&socius.Key{UserKey: "AJwtKey", APIKey: testAPIKey, Secret: vectors.LabUserSecret, PublicKey: pub},
		&socius.Key{UserKey: "AJwtReader", APIKey: testAPIKey, Secret: vectors.LabUserSecret, PublicKey: pub, Methods: []string{"socialize.getUserInfo"}},
		&socius.Key{UserKey: "ANoPublicKey", APIKey: testAPIKey, Secret: vectors.LabUserSecret},
	)
	var jti int
	claims := func(iat time.Time) map[string]any {
		jti++
		return map[string]any{"iat": iat.Unix(), "jti": strconv.Itoa(jti) + "-" + strconv.FormatInt(time.Now().UnixNano(), 10)}
	}
	hdr := func(kid string) map[string]any { return map[string]any{"alg": "RS256", "typ": "JWT", "kid": kid} }
	now := ts.Clock.Now
	valid := func() string { return jwtFor(t, priv, hdr("AJwtKey"), claims(now()), base64.RawURLEncoding) }
	call := func(method, jwt string, params url.Values) answer {
		t.Helper()
		p := url.Values{"apiKey": {testAPIKey}, "UID": {"u1"}}
		for k, v := range params {
			p[k] = v
		}
		return ts.do(t, "POST", ts.HTTPSURL, method, p, http.Header{"Authorization": {"Bearer " + jwt}})
	}

	// A JWT signs no part of the request: over plain HTTP it could be spent on another
	// call by whoever is on the path. Refused before it is read, its jti left unused.
	overHTTP := valid()
	want(t, "over plain HTTP", ts.do(t, "POST", ts.HTTPURL, "socialize.deleteAccount", url.Values{"apiKey": {testAPIKey}, "UID": {"u1"}}, http.Header{"Authorization": {"Bearer " + overHTTP}}), 403006, "bearer JWT may only be sent over HTTPS")
	want(t, "over plain HTTP, not a JWT", ts.do(t, "POST", ts.HTTPURL, "socialize.getUserInfo", url.Values{"apiKey": {testAPIKey}, "UID": {"u1"}}, http.Header{"Authorization": {"Bearer abc"}}), 403006, "bearer JWT")
	want(t, "the same JWT over HTTPS", call("socialize.getUserInfo", overHTTP, nil), 0, "")

	want(t, "valid JWT", call("socialize.getUserInfo", valid(), nil), 0, "")
	want(t, "scheme in lower case", ts.do(t, "POST", ts.HTTPSURL, "socialize.getUserInfo", url.Values{"apiKey": {testAPIKey}, "UID": {"u1"}}, http.Header{"Authorization": {"bearer " + valid()}}), 0, "")
	want(t, "valid JWT sets", call("socialize.setUserInfo", valid(), url.Values{"userInfo": {`{"nickname":"jwt"}`}}), 0, "")
	want(t, "standard base64, padded (.NET)", call("socialize.getUserInfo", jwtFor(t, priv, hdr("AJwtKey"), claims(now()), base64.StdEncoding), nil), 0, "")
	jwt := valid()
	want(t, "first use", call("socialize.getUserInfo", jwt, nil), 0, "")
	want(t, "jti replay", call("socialize.getUserInfo", jwt, nil), 403004, "Duplicate nonce")
	// A jti is a nonce of its key: another key may use it.
	reused := claims(now())
	reused["jti"] = "shared-jti"
	want(t, "a jti", call("socialize.getUserInfo", jwtFor(t, priv, hdr("AJwtKey"), reused, base64.RawURLEncoding), nil), 0, "")
	want(t, "the jti with another key", call("socialize.getUserInfo", jwtFor(t, priv, hdr("AJwtReader"), reused, base64.RawURLEncoding), nil), 0, "")
	// A jti of at most 256 bytes: 129 characters of two bytes each are 258 bytes, which
	// the message said were too many characters.
	for _, tt := range []struct {
		jti     string
		code    int
		details string
	}{
		{strings.Repeat("j", 256), 0, ""},
		{strings.Repeat("é", 128), 0, ""},
		{strings.Repeat("j", 257), 400008, "the JWT jti claim is longer than 256 bytes"},
		{strings.Repeat("é", 129), 400008, "the JWT jti claim is longer than 256 bytes"},
	} {
		long := claims(now())
		long["jti"] = tt.jti
		want(t, fmt.Sprintf("jti of %d bytes", len(tt.jti)), call("socialize.getUserInfo", jwtFor(t, priv, hdr("AJwtKey"), long, base64.RawURLEncoding), nil), tt.code, tt.details)
	}
	padded := claims(now())
	padded["pad"] = strings.Repeat("p", 16<<10)
	want(t, "JWT longer than 16 KiB", call("socialize.getUserInfo", jwtFor(t, priv, hdr("AJwtKey"), padded, base64.RawURLEncoding), nil), 400008, "not a JWT")
	want(t, "iat too old", call("socialize.getUserInfo", jwtFor(t, priv, hdr("AJwtKey"), claims(now().Add(-121*time.Second)), base64.RawURLEncoding), nil), 403002, "JWT iat")
	want(t, "iat in the future", call("socialize.getUserInfo", jwtFor(t, priv, hdr("AJwtKey"), claims(now().Add(200*time.Second)), base64.RawURLEncoding), nil), 403002, "ahead of")
	expired := claims(now())
	expired["exp"] = now().Add(-time.Second).Unix()
	want(t, "exp passed", call("socialize.getUserInfo", jwtFor(t, priv, hdr("AJwtKey"), expired, base64.RawURLEncoding), nil), 403002, "exp")
	for _, exp := range []float64{32503680000, 7258118400.5} { // the years 3000 and 2200 (past int64 nanoseconds, and not)
		far := claims(now())
		far["exp"] = exp
		want(t, "exp far ahead", call("socialize.getUserInfo", jwtFor(t, priv, hdr("AJwtKey"), far, base64.RawURLEncoding), nil), 0, "")
	}
	want(t, "signed by another key", call("socialize.getUserInfo", jwtFor(t, stranger, hdr("AJwtKey"), claims(now()), base64.RawURLEncoding), nil), 403003, "does not verify")
	tampered := valid()
	parts := strings.Split(tampered, ".")
	other := strings.Split(valid(), ".")
	want(t, "claims swapped", call("socialize.getUserInfo", parts[0]+"."+other[1]+"."+parts[2], nil), 403003, "does not verify")
	want(t, "alg none", call("socialize.getUserInfo", strings.Join(strings.Split(jwtFor(t, priv, map[string]any{"alg": "none", "kid": "AJwtKey"}, claims(now()), base64.RawURLEncoding), ".")[:2], ".")+".", nil), 400008, `alg "none"`)
	want(t, "alg HS256", call("socialize.getUserInfo", jwtFor(t, priv, map[string]any{"alg": "HS256", "kid": "AJwtKey"}, claims(now()), base64.RawURLEncoding), nil), 400008, "only RS256")
	want(t, "not a JWT", call("socialize.getUserInfo", "abc", nil), 400008, "not a JWT")
	want(t, "header not JSON", call("socialize.getUserInfo", "bm90IGpzb24."+other[1]+"."+other[2], nil), 400008, "header")
	want(t, "no kid", call("socialize.getUserInfo", jwtFor(t, priv, map[string]any{"alg": "RS256"}, claims(now()), base64.RawURLEncoding), nil), 400008, "no kid")
	want(t, "no iat", call("socialize.getUserInfo", jwtFor(t, priv, hdr("AJwtKey"), map[string]any{"jti": "x"}, base64.RawURLEncoding), nil), 400008, "no iat")
	want(t, "no jti", call("socialize.getUserInfo", jwtFor(t, priv, hdr("AJwtKey"), map[string]any{"iat": now().Unix()}, base64.RawURLEncoding), nil), 400008, "no jti")
	want(t, "key without a public key", call("socialize.getUserInfo", jwtFor(t, priv, hdr("ANoPublicKey"), claims(now()), base64.RawURLEncoding), nil), 400008, "no public key registered")
	want(t, "unknown kid", call("socialize.getUserInfo", jwtFor(t, priv, hdr("ANobody"), claims(now()), base64.RawURLEncoding), nil), 403005, "not a key of this site")
	want(t, "userKey parameter differs from kid", call("socialize.getUserInfo", valid(), url.Values{"userKey": {"AJwtReader"}}), 400008, "differ")
	want(t, "key permissions", call("socialize.setUserInfo", jwtFor(t, priv, hdr("AJwtReader"), claims(now()), base64.RawURLEncoding), url.Values{"userInfo": {"{}"}}), 403007, "may not call")
	want(t, "no apiKey", ts.do(t, "POST", ts.HTTPSURL, "socialize.getUserInfo", url.Values{"UID": {"u1"}}, http.Header{"Authorization": {"Bearer " + valid()}}), 400093, "apiKey")

	// A bearer JWT is a client credential for getToken too.
	a := ts.do(t, "POST", ts.HTTPSURL, "socialize.getToken", url.Values{"apiKey": {testAPIKey}, "grant_type": {"none"}, "x_siteUID": {"u1"}}, http.Header{"Authorization": {"Bearer " + valid()}})
	if a.code() != 0 {
		t.Fatalf("getToken with a bearer JWT: %v", a)
	}
	if b := ts.tlsPost(t, "socialize.getUserInfo", withToken(a.str("access_token"), nil)); b.str("nickname") != "jwt" {
		t.Errorf("the token of a JWT-authenticated getToken: %v", b)
	}
}

// TestKeyCreatePublicKey: `socius key create --public-key FILE` stores the key's RSA
// public key (PKIX or PKCS #1 PEM), and the server then accepts the key's JWTs.
func TestKeyCreatePublicKey(t *testing.T) {
	dir := t.TempDir()
	if code, _, errOut := runCLI(t, noEnv, "site", "create", "--data", dir, "--api-key", testAPIKey, "--secret", testSecret); code != 0 {
		t.Fatal(errOut)
	}
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pkix, _ := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	smallDER, _ := x509.MarshalPKIXPublicKey(&small.PublicKey)
	// A modulus of 16385 bits (2^16384 + 1, no product of two primes: only its size
	// counts), past the largest the server verifies with.
	hugeDER, _ := x509.MarshalPKIXPublicKey(&rsa.PublicKey{N: new(big.Int).Add(new(big.Int).Lsh(big.NewInt(1), socius.MaxRSABits), big.NewInt(1)), E: 65537})
	files := map[string][]byte{
		"huge.pem":  pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: hugeDER}),
		"pkix.pem":  pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pkix}),
		"pkcs1.pem": pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&priv.PublicKey)}),
		"small.pem": pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: smallDER}),
		"priv.pem":  pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(priv)}),
		"junk.pem":  []byte("not a key"),
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []struct{ file, userKey string }{{"pkix.pem", "APkix"}, {"pkcs1.pem", "APkcs1"}} {
		code, out, errOut := runCLI(t, noEnv, "key", "create", "--data", dir, "--site", testAPIKey, "--user-key", f.userKey, "--public-key", filepath.Join(dir, f.file))
		if code != 0 || !strings.Contains(out, "bearer:  RS256") {
			t.Fatalf("key create --public-key %s: %d %s %s", f.file, code, out, errOut)
		}
	}
	for _, f := range []struct{ file, err string }{{"small.pem", "1024 bits"}, {"huge.pem", "RSA key of 16385 bits, at most 16384 are accepted"}, {"priv.pem", "not a public key"}, {"junk.pem", "no PEM block"}, {"missing.pem", "no such file"}} {
		code, _, errOut := runCLI(t, noEnv, "key", "create", "--data", dir, "--site", testAPIKey, "--public-key", filepath.Join(dir, f.file))
		if code != 2 || !strings.Contains(errOut, f.err) {
			t.Errorf("key create --public-key %s: %d %s, want exit 2 and %q", f.file, code, errOut, f.err)
		}
	}
	if code, out, _ := runCLI(t, noEnv, "key", "list", "--data", dir); code != 0 || strings.Count(out, "RS256") != 2 {
		t.Errorf("key list: %s", out)
	}

	m := NewMain()
	// Behind a TLS terminator (a JWT goes only over HTTPS).
	if err := m.ParseFlags([]string{"--data", dir, "--http", "127.0.0.1:0", "--https", "", "--admin", "", "--log-level", "error", "--trust-forwarded-proto"}, noEnv, io.Discard); err != nil {
		t.Fatal(err)
	}
	m.Stdout = io.Discard
	if err := m.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ts := &testServer{Main: m, Clock: &socius.OffsetClock{}, client: httpClient()}
	ts.login(t, "u1")
	for i, kid := range []string{"APkix", "APkcs1"} {
		jwt := jwtFor(t, priv, map[string]any{"alg": "RS256", "typ": "JWT", "kid": kid}, map[string]any{"iat": time.Now().Unix(), "jti": strconv.Itoa(i)}, base64.RawURLEncoding)
		a := ts.do(t, "POST", m.HTTPURL, "socialize.getUserInfo", url.Values{"apiKey": {testAPIKey}, "UID": {"u1"}}, http.Header{"Authorization": {"Bearer " + jwt}, "X-Forwarded-Proto": {"https"}})
		want(t, "JWT of "+kid, a, 0, "")
	}
}

// dialCapture connects to the listener a captured request reached (TLS for https).
func dialCapture(t *testing.T, ts *testServer, c vectors.Capture) net.Conn {
	t.Helper()
	var conn net.Conn
	var err error
	if c.Listener == "https" {
		conn, err = tlsDial(ts, strings.TrimPrefix(ts.HTTPSURL, "https://"))
	} else {
		conn, err = net.Dial("tcp", strings.TrimPrefix(ts.HTTPURL, "http://"))
	}
	if err != nil {
		t.Fatal(err)
	}
	return conn
}

// sendCapture sends a captured request as it was sent (request target, Host, body) to
// the listener it reached, and returns the answer.
func sendCapture(t *testing.T, ts *testServer, c vectors.Capture) answer {
	t.Helper()
	conn := dialCapture(t, ts, c)
	defer conn.Close()
	req := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		c.Method, c.Target, c.Header("Host"), len(c.Body), c.Body)
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("%s:%d: %v", c.File, c.Line, err)
	}
	body, _ := io.ReadAll(resp.Body)
	var a answer
	if err := json.Unmarshal(body, &a); err != nil {
		t.Fatalf("%s:%d: %v\n%s", c.File, c.Line, err, body)
	}
	return a
}

// TestJavaGetTokenCapture replays the signed socialize.getToken the real Java SDK sent
// (java-403002-retry.jsonl: GSRequest(apiKey, secret, "socialize.getToken",
// {grant_type: none, x_siteUID: lab-uid-1}, useHTTPS)) at the moment it was captured,
// then uses the token as the Java SDK's token constructor sends it.
func TestJavaGetTokenCapture(t *testing.T) {
	caps, err := vectors.Captures("java-403002-retry.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	var getToken, tokenCall *vectors.Capture
	for i := range caps {
		switch c := &caps[i]; {
		case c.Path == "/socialize.getToken" && getToken == nil:
			getToken = c
		case strings.Contains(c.Body, "oauth_token=") && tokenCall == nil:
			tokenCall = c
		}
	}
	if getToken == nil || tokenCall == nil {
		t.Fatal("java-403002-retry.jsonl holds no getToken call or no token call")
	}
	ts := startServer(t)
	received, err := time.Parse(time.RFC3339Nano, getToken.ReceivedAt)
	if err != nil {
		t.Fatal(err)
	}
	ts.Clock.Set(received)
	a := sendCapture(t, ts, *getToken)
	token := a.str("access_token")
	if a.code() != 0 || !strings.HasPrefix(token, socius.AccessTokenPrefix) {
		t.Fatalf("%s:%d: %v", getToken.File, getToken.Line, a)
	}
	// The SDK's byte-identical retry is a replay once the first one succeeded.
	want(t, "the retry", sendCapture(t, ts, *getToken), 403004, "Duplicate nonce")
	// The captured token call, its unknown token replaced by the one just issued.
	tc := *tokenCall
	want(t, "the captured token call", sendCapture(t, ts, tc), 403025, "unknown token")
	tc.Body = strings.Replace(tc.Body, "oauth_token=not-a-real-token", "oauth_token="+url.QueryEscape(token), 1)
	if a := sendCapture(t, ts, tc); a.code() != 0 || a.str("UID") != "lab-uid-1" {
		t.Errorf("getUserInfo with the issued token: %v", a)
	}
}

// TestTokenHousekeeping: dead tokens are kept for tokenRetention (so that clients are
// told "expired" or "revoked"), then removed; live ones stay.
func TestTokenHousekeeping(t *testing.T) {
	ts := startServer(t)
	ctx := context.Background()
	a := ts.getToken(t, url.Values{"grant_type": {"none"}, "x_siteUID": {"h1"}, "x_sessionExpiration": {"60"}})
	expiring := a.str("access_token")
	revoked := ts.accessToken(t, "h2")
	live := ts.accessToken(t, "h3")
	want(t, "logout h2", ts.call(t, "socialize.logout", url.Values{"UID": {"h2"}}), 0, "")
	ts.Clock.Advance(time.Minute)
	if n := ts.sweepTokens(ctx); n != 0 {
		t.Errorf("swept %d tokens that died a minute ago", n)
	}
	want(t, "expired, kept", ts.tlsPost(t, "socialize.getUserInfo", withToken(expiring, nil)), 403025, "expired at")
	ts.Clock.Advance(tokenRetention)
	if n := ts.sweepTokens(ctx); n != 2 {
		t.Errorf("swept %d tokens, want 2", n)
	}
	want(t, "expired, swept", ts.tlsPost(t, "socialize.getUserInfo", withToken(expiring, nil)), 403025, "unknown token")
	want(t, "revoked, swept", ts.tlsPost(t, "socialize.getUserInfo", withToken(revoked, nil)), 403025, "unknown token")
	want(t, "live", ts.tlsPost(t, "socialize.getUserInfo", withToken(live, nil)), 0, "")
}

// createKeys stores the keys in the server's store, created now.
func createKeys(t *testing.T, ts *testServer, keys ...*socius.Key) {
	t.Helper()
	for _, k := range keys {
		k.CreatedAt = time.Now()
		if err := ts.Store.CreateKey(context.Background(), k); err != nil {
			t.Fatal(err)
		}
	}
}

// basicAuth is the Authorization header of HTTP Basic client credentials.
func basicAuth(id, secret string) http.Header {
	return http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte(id+":"+secret))}}
}
