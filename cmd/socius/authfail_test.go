package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/socius/socius"
	"github.com/socius/socius/internal/syncbuf"
	"github.com/socius/socius/internal/vectors"
)

// clientFrom returns an HTTP client whose connections come from the loopback address
// ip (Linux answers the whole of 127.0.0.0/8): another client address than the test's
// usual 127.0.0.1.
func clientFrom(t *testing.T, ip string) *http.Client {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: d.DialContext}}
}

// postWith posts params to the server's HTTP listener with client c.
func (ts *testServer) postWith(t *testing.T, c *http.Client, method string, params url.Values) answer {
	t.Helper()
	resp, err := c.Post(ts.HTTPURL+"/"+method, "application/x-www-form-urlencoded", strings.NewReader(params.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var a answer
	if err := json.Unmarshal(b, &a); err != nil {
		t.Fatalf("%s: answer is not JSON: %v\n%s", method, err, b)
	}
	return a
}

// TestAuthFailureLimit: an address that fails to authenticate more than
// --auth-failure-limit allows has every call refused with 403048 before
// authentication, good ones too, until its bucket earns a token back; another address
// is not touched, and good calls spend nothing.
func TestAuthFailureLimit(t *testing.T) {
	var logs syncbuf.Buffer
	ts := startMain(t, func(m *Main) { m.LogOutput = &logs }, "--auth-failure-limit", "2", "--auth-failure-burst", "3", "--log-level", "info")
	ts.login(t, "u1")
	if err := ts.Store.CreateSite(t.Context(), &socius.Site{APIKey: "3_Other", Secret: testSecret, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	signedGet := func(apiKey string) url.Values {
		return ts.signed(t, ts.HTTPURL, "socialize.getUserInfo", url.Values{"UID": {"u1"}, "apiKey": {apiKey}}, "", "")
	}
	bad := func() url.Values {
		p := signedGet(testAPIKey)
		p.Set("sig", "AAAAAAAAAAAAAAAAAAAAAAAAAAA=")
		return p
	}
	codes := func(c *http.Client, n int, params func() url.Values) string {
		var out []int
		for range n {
			out = append(out, ts.postWith(t, c, "socialize.getUserInfo", params()).code())
		}
		return fmt.Sprint(out)
	}
	here, other := ts.client, clientFrom(t, "127.0.0.2")

	// Good calls spend nothing, however many.
	if got := codes(here, 10, func() url.Values { return signedGet(testAPIKey) }); got != "[0 0 0 0 0 0 0 0 0 0]" {
		t.Fatalf("good calls: %s", got)
	}
	if got := codes(here, 4, bad); got != "[403003 403003 403003 403048]" {
		t.Fatalf("bad signatures, bursts of 3: %s", got)
	}
	a := ts.postWith(t, here, "socialize.getUserInfo", signedGet(testAPIKey))
	want(t, "a good call from the address", a, 403048,
		"API Rate Limit Exceeded: address 127.0.0.1 made more than 2 failed authentications a second (bursts of 3) to this server; every call from it is refused before authentication until it may try again, in ")
	wantWait(t, "a good call from the address", a, 0.5)
	// The limit is the address's, whatever site it calls.
	want(t, "another site's call from the address", ts.postWith(t, here, "socialize.getUserInfo", signedGet("3_Other")), 403048, "address 127.0.0.1")
	// Another address has its own budget.
	want(t, "a good call from another address", ts.postWith(t, other, "socialize.getUserInfo", signedGet(testAPIKey)), 0, "")
	if got := codes(other, 2, bad); got != "[403003 403003]" {
		t.Errorf("bad signatures from another address: %s", got)
	}

	// 0.2 s later the wait is shorter; at 0.5 s a token is back. Good calls pass and
	// spend none of it; the next failure does, and the address is refused again.
	ts.Clock.Advance(200 * time.Millisecond)
	wantWait(t, "0.2 s later", ts.postWith(t, here, "socialize.getUserInfo", signedGet(testAPIKey)), 0.3)
	ts.Clock.Advance(300 * time.Millisecond)
	if got := codes(here, 3, func() url.Values { return signedGet(testAPIKey) }); got != "[0 0 0]" {
		t.Errorf("good calls once a token is back: %s", got)
	}
	if got := codes(here, 2, bad); got != "[403003 403048]" {
		t.Errorf("bad signatures once a token is back: %s", got)
	}

	// A long pause refills the burst. Credentials that name nothing count as a bad
	// signature does: an apiKey of no site, a userKey of none.
	ts.Clock.Advance(10 * time.Second)
	noKey := signedGet(testAPIKey)
	noKey.Set("userKey", "NoSuchKey")
	if got := codes(here, 1, func() url.Values { return signedGet("3_NoSuchSite") }) + codes(here, 1, func() url.Values { return noKey }) + codes(here, 1, bad); got != "[400093][403005][403003]" {
		t.Errorf("an apiKey of no site, a userKey of none, a bad signature: %s", got)
	}
	want(t, "after three kinds of failure", ts.postWith(t, here, "socialize.getUserInfo", signedGet(testAPIKey)), 403048, "address 127.0.0.1")

	// A replayed request and a timestamp out of the window do not count: an SDK sends
	// a request again as it is when its answer was lost, and a client's clock may be off.
	ts.Clock.Advance(10 * time.Second)
	p := signedGet(testAPIKey)
	want(t, "the first of a replayed request", ts.postWith(t, here, "socialize.getUserInfo", p), 0, "")
	old := ts.signed(t, ts.HTTPURL, "socialize.getUserInfo", url.Values{"UID": {"u1"}, "timestamp": {fmt.Sprint(ts.Clock.Now().Unix() - 3600)}}, "", "")
	for range 5 {
		want(t, "a replay", ts.postWith(t, here, "socialize.getUserInfo", p), 403004, "")
		want(t, "an hour old", ts.postWith(t, here, "socialize.getUserInfo", old), 403002, "")
	}
	want(t, "after replays and old timestamps", ts.postWith(t, here, "socialize.getUserInfo", signedGet(testAPIKey)), 0, "")

	// The refusals are counted under their own name, and their log lines say which
	// limit refused them.
	ts.waitInFlight(t, 0)
	_, text := get(t, ts.AdminURL+"/metrics")
	if !strings.Contains(text, "\nsocius_auth_failure_refusals_total 6\n") {
		t.Errorf("metrics: want socius_auth_failure_refusals_total 6 in\n%s", grepLines(text, "auth_failure"))
	}
	if n := strings.Count(logs.String(), "limit=auth-failures"); n != 6 {
		t.Errorf("%d call lines say limit=auth-failures, want 6:\n%s", n, logs.String())
	}
}

// wantWait checks that a refusal by the limit on failed authentications says the
// address may try again in at most hi seconds, and more than none. The test's clock
// runs on with the system's between the calls, so the wait is shorter than the
// offsets say, by as much as a loaded machine (-race) takes: no lower bound holds.
func wantWait(t *testing.T, what string, a answer, hi float64) {
	t.Helper()
	var wait float64
	d := a.str("errorDetails")
	i := strings.LastIndex(d, "may try again, in ")
	if a.code() != 403048 || i < 0 {
		t.Errorf("%s: got %d %q, want 403048 saying when to try again", what, a.code(), d)
		return
	}
	if _, err := fmt.Sscanf(d[i:], "may try again, in %g s", &wait); err != nil || wait <= 0 || wait > hi {
		t.Errorf("%s: %q; want a wait of more than 0 s and at most %g s", what, d, hi)
	}
}

// grepLines returns the lines of text that hold s.
func grepLines(text, s string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestAuthFailureLimitTokens: an access token that names nothing counts; the limit is
// checked on the HTTPS listener too.
func TestAuthFailureLimitTokens(t *testing.T) {
	ts := startServer(t, "--auth-failure-limit", "1")
	token := ts.accessToken(t, "u1")
	want(t, "an unknown token", ts.tlsPost(t, "socialize.getUserInfo", withToken(socius.AccessTokenPrefix+"nosuchtoken", nil)), 403025, "unknown token: never issued")
	want(t, "the good token after it", ts.tlsPost(t, "socialize.getUserInfo", withToken(token, nil)), 403048, "made more than 1 failed authentication a second (bursts of 1)")
	ts.Clock.Advance(time.Second)
	want(t, "the good token a second later", ts.tlsPost(t, "socialize.getUserInfo", withToken(token, nil)), 0, "")
}

// TestAuthFailureLimitTokensIssued: a token the server issued that has since expired
// or been revoked, or a token sent over plain HTTP, spends nothing: its sender was
// given it (and many apps whose sessions aged share a carrier's address), or it was
// refused before anything was looked up. Only a token that names nothing does.
func TestAuthFailureLimitTokensIssued(t *testing.T) {
	ts := startServer(t, "--auth-failure-limit", "1")
	token := ts.accessToken(t, "u1")
	a := ts.getToken(t, url.Values{"grant_type": {"none"}, "x_siteUID": {"u2"}, "x_sessionExpiration": {"60"}})
	if a.code() != 0 {
		t.Fatalf("getToken with x_sessionExpiration=60: %v", a)
	}
	expiring := a.str("access_token")
	revoked := ts.accessToken(t, "u3")
	want(t, "logout", ts.call(t, "socialize.logout", url.Values{"UID": {"u3"}}), 0, "")
	ts.Clock.Advance(time.Minute)
	for i := range 3 {
		want(t, fmt.Sprintf("expired token %d", i), ts.tlsPost(t, "socialize.getUserInfo", withToken(expiring, nil)), 403025, "expired at")
		want(t, fmt.Sprintf("revoked token %d", i), ts.tlsPost(t, "socialize.getUserInfo", withToken(revoked, nil)), 403025, "revoked at")
		want(t, fmt.Sprintf("token over HTTP %d", i), ts.post(t, ts.HTTPURL, "socialize.getUserInfo", withToken(token, nil)), 403025, "only be sent over HTTPS")
	}
	want(t, "the good token after them", ts.tlsPost(t, "socialize.getUserInfo", withToken(token, nil)), 0, "")
	want(t, "a token never issued", ts.tlsPost(t, "socialize.getUserInfo", withToken(socius.AccessTokenPrefix+"nosuchtoken", nil)), 403025, "unknown token")
	want(t, "the good token after it", ts.tlsPost(t, "socialize.getUserInfo", withToken(token, nil)), 403048, "made more than 1 failed authentication")
}

// TestAuthFailureLimitMalformedIDs: a 400093, 403005 or 403025 that guesses nothing
// spends nothing: an apiKey or client_id missing or not of an id's shape, a userKey
// empty or not of a key's shape, a token empty or of no kind Socius issues (a
// misconfigured SDK, each answered without asking the store), and a userKey sent as
// client_id or as apiKey with its own secret (the right secret, sent the wrong way), a client_secret
// sent empty (400002: no secret is empty). An apiKey of the right shape that names no
// site does spend.
func TestAuthFailureLimitMalformedIDs(t *testing.T) {
	ts := startServer(t, "--auth-failure-limit", "1")
	ts.login(t, "u1")
	const keySecret = vectors.LabUserSecret
	createKeys(t, ts, &socius.Key{UserKey: "AFullKey", APIKey: testAPIKey, Secret: keySecret})
	grant := url.Values{"grant_type": {"none"}, "x_siteUID": {"eve"}}
	getToken := func(extra url.Values, header http.Header) answer {
		p := url.Values{}
		for k, v := range grant {
			p[k] = v
		}
		for k, v := range extra {
			p[k] = v
		}
		return ts.do(t, "POST", ts.HTTPSURL, "socialize.getToken", p, header)
	}
	good := func() answer { return ts.call(t, "socialize.getUserInfo", url.Values{"UID": {"u1"}}) }
	for i := range 3 {
		want(t, fmt.Sprintf("no apiKey %d", i), ts.post(t, ts.HTTPURL, "socialize.getUserInfo", url.Values{"UID": {"u1"}}), 400093, "Missing required parameter: apiKey")
		want(t, fmt.Sprintf("an apiKey of no id's shape %d", i), ts.post(t, ts.HTTPURL, "socialize.getUserInfo", url.Values{"UID": {"u1"}, "apiKey": {"3_no pe"}}), 400093, "not a valid apiKey")
		want(t, fmt.Sprintf("a Basic client_id of no id's shape %d", i), getToken(nil, basicAuth("3_no pe", testSecret)), 400093, "client_id is not a valid apiKey or userKey")
		want(t, fmt.Sprintf("a userKey as client_id with its secret %d", i), getToken(url.Values{"client_id": {"AFullKey"}, "secret": {keySecret}}, nil), 400093, "client_id AFullKey is a userKey")
		want(t, fmt.Sprintf("a userKey as apiKey with its secret %d", i), ts.tlsPost(t, "socialize.getUserInfo", url.Values{"UID": {"u1"}, "apiKey": {"AFullKey"}, "secret": {keySecret}}),
			400093, "apiKey AFullKey is a userKey; send the site's apiKey as apiKey and this key as userKey")
		want(t, fmt.Sprintf("an empty client_secret %d", i), getToken(url.Values{"client_id": {testAPIKey}, "client_secret": {""}}, nil), 400002, "Missing required parameter: client_secret")
		want(t, fmt.Sprintf("Basic credentials without a secret %d", i), getToken(nil, basicAuth(testAPIKey, "")), 400002, "Missing required parameter: client_secret")
		for _, k := range []struct{ userKey, details string }{{"", "userKey is empty"}, {"no pe", "is not a valid userKey"}} {
			p := ts.signed(t, ts.HTTPURL, "socialize.getUserInfo", url.Values{"UID": {"u1"}}, "", "")
			p.Set("userKey", k.userKey)
			want(t, fmt.Sprintf("userKey %q %d", k.userKey, i), ts.post(t, ts.HTTPURL, "socialize.getUserInfo", p), 403005, k.details)
		}
		want(t, fmt.Sprintf("an empty token %d", i), ts.tlsPost(t, "socialize.getUserInfo", withToken("", nil)), 403025, "the token is empty")
		want(t, fmt.Sprintf("a token of no kind %d", i), ts.tlsPost(t, "socialize.getUserInfo", withToken("st2.SomeGigyaToken", nil)), 403025, "unknown token")
	}
	want(t, "a good call after them", good(), 0, "")
	want(t, "an apiKey of no site", ts.post(t, ts.HTTPURL, "socialize.getUserInfo", url.Values{"UID": {"u1"}, "apiKey": {"3_NoSuchSite"}}), 400093, "no site has apiKey")
	want(t, "a good call after it", good(), 403048, "made more than 1 failed authentication")
}

// Without --auth-failure-limit there is no limit: a test suite that sends bad
// signatures on purpose, as many as it likes, is never refused for them.
func TestNoAuthFailureLimitByDefault(t *testing.T) {
	ts := startServer(t)
	ts.login(t, "u1")
	for i := range 100 {
		p := ts.signed(t, ts.HTTPURL, "socialize.getUserInfo", url.Values{"UID": {"u1"}}, "", "")
		p.Set("sig", "AAAAAAAAAAAAAAAAAAAAAAAAAAA=")
		if a := ts.post(t, ts.HTTPURL, "socialize.getUserInfo", p); a.code() != 403003 {
			t.Fatalf("bad signature %d: %v", i, a)
		}
	}
	if a := ts.call(t, "socialize.getUserInfo", url.Values{"UID": {"u1"}}); a.code() != 0 {
		t.Errorf("a good call after 100 bad ones: %v", a)
	}
	if ts.Server.AuthFailureAddresses() != 0 {
		t.Errorf("%d addresses tracked with the limit off", ts.Server.AuthFailureAddresses())
	}
}

// postForwarded posts params to the server's HTTP listener with client c, as a proxy
// would: with X-Forwarded-For fields (none when forwardedFor is empty).
func (ts *testServer) postForwarded(t *testing.T, c *http.Client, method string, params url.Values, forwardedFor ...string) answer {
	t.Helper()
	r, err := http.NewRequest(http.MethodPost, ts.HTTPURL+"/"+method, strings.NewReader(params.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Header["X-Forwarded-For"] = forwardedFor
	return answerVia(t, c, r)
}

// TestAuthFailureLimitBehindProxy: with --trusted-proxies 127.0.0.1, the clients of a
// proxy there have a budget of failed authentications each, by the address
// X-Forwarded-For names: one is refused for its failures, another through the same
// proxy is not, and the first cannot get out by writing another address before its
// own. A peer that is no trusted proxy is its own client, whatever it writes. The log
// line says the client's address as remote, the proxy's as peer.
func TestAuthFailureLimitBehindProxy(t *testing.T) {
	var logs syncbuf.Buffer
	// 0.01 a second: an address that failed once is refused for 100 s, however slowly
	// the calls after come on a loaded machine.
	ts := startMain(t, func(m *Main) { m.LogOutput = &logs }, "--auth-failure-limit", "0.01", "--trusted-proxies", "127.0.0.1", "--log-level", "info")
	ts.login(t, "u1")
	good := func() url.Values {
		return ts.signed(t, ts.HTTPURL, "socialize.getUserInfo", url.Values{"UID": {"u1"}}, "", "")
	}
	bad := func() url.Values {
		p := good()
		p.Set("sig", "AAAAAAAAAAAAAAAAAAAAAAAAAAA=")
		return p
	}
	proxy, stranger := ts.client, clientFrom(t, "127.0.0.2")

	want(t, "client A's bad signature", ts.postForwarded(t, proxy, "socialize.getUserInfo", bad(), "198.51.100.1"), 403003, "")
	want(t, "client A's good call after it", ts.postForwarded(t, proxy, "socialize.getUserInfo", good(), "198.51.100.1"), 403048, "address 198.51.100.1 made more than 0.01 failed authentications a second (bursts of 1)")
	want(t, "client B through the same proxy", ts.postForwarded(t, proxy, "socialize.getUserInfo", good(), "198.51.100.2"), 0, "")
	want(t, "client A forging a leftmost entry", ts.postForwarded(t, proxy, "socialize.getUserInfo", good(), "198.51.100.2, 198.51.100.1"), 403048, "address 198.51.100.1")
	want(t, "client A forging a field of its own", ts.postForwarded(t, proxy, "socialize.getUserInfo", good(), "198.51.100.2", "198.51.100.1"), 403048, "address 198.51.100.1")
	want(t, "the proxy's own call", ts.postForwarded(t, proxy, "socialize.getUserInfo", good()), 0, "")

	// 127.0.0.2 is not trusted: its X-Forwarded-For is ignored, its failures are its own.
	want(t, "an untrusted peer's bad signature", ts.postForwarded(t, stranger, "socialize.getUserInfo", bad(), "198.51.100.3"), 403003, "")
	want(t, "the untrusted peer naming another client", ts.postForwarded(t, stranger, "socialize.getUserInfo", good(), "198.51.100.4"), 403048, "address 127.0.0.2 made more")

	ts.waitInFlight(t, 0)
	lines := grepLines(logs.String(), "msg=call")
	if n := strings.Count(lines, "remote=198.51.100.1 peer=127.0.0.1:"); n != 4 {
		t.Errorf("%d call lines say remote=198.51.100.1 peer=127.0.0.1:..., want 4:\n%s", n, lines)
	}
	if n := strings.Count(lines, "remote=127.0.0.2:"); n != 2 || strings.Contains(lines, "198.51.100.3") || strings.Contains(lines, "198.51.100.4") {
		t.Errorf("the untrusted peer's lines: want remote=127.0.0.2:... twice, its X-Forwarded-For nowhere:\n%s", lines)
	}
}

// TestForwardedProtoFromTrustedProxiesOnly: with --trusted-proxies, --trust-forwarded-proto
// believes X-Forwarded-Proto from the proxies listed only: a plain secret sent over
// plain HTTP with "X-Forwarded-Proto: https" passes from 127.0.0.1 and is refused with
// 403006 from 127.0.0.2, which reached Socius without a proxy.
func TestForwardedProtoFromTrustedProxiesOnly(t *testing.T) {
	ts := startServer(t, "--trust-forwarded-proto", "--trusted-proxies", "127.0.0.1")
	ts.login(t, "u1")
	call := func(c *http.Client) answer {
		t.Helper()
		body := url.Values{"apiKey": {testAPIKey}, "secret": {testSecret}, "UID": {"u1"}}.Encode()
		r, err := http.NewRequest(http.MethodPost, ts.HTTPURL+"/socialize.getUserInfo", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.Header.Set("X-Forwarded-Proto", "https")
		return answerVia(t, c, r)
	}
	want(t, "from the trusted proxy", call(ts.client), 0, "")
	want(t, "from an address not listed", call(clientFrom(t, "127.0.0.2")), 403006, "")
}
