package server_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/socius/socius"
	"github.com/socius/socius/gigya"
	"github.com/socius/socius/nonce"
	"github.com/socius/socius/server"
	"github.com/socius/socius/sqlite"
)

// apiKey and secret, the lab site's, are token_test.go's.

// hookServer is a Server over a temp SQLite store with one site and user "u1".
func hookServer(t *testing.T, cfg server.Config) (*httptest.Server, *[]server.Call) {
	t.Helper()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "socius.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ctx := context.Background()
	if err := st.CreateSite(ctx, &socius.Site{APIKey: apiKey, Secret: secret, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Login(ctx, apiKey, "u1", nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	calls := new([]server.Call)
	cfg.Store, cfg.Nonces = st, nonce.New(0)
	cfg.Observe = func(c *server.Call) {
		mu.Lock()
		*calls = append(*calls, *c)
		mu.Unlock()
	}
	ts := httptest.NewServer(server.New(cfg))
	t.Cleanup(ts.Close)
	return ts, calls
}

// signedCall signs params with secret for base/method and posts them.
func signedCall(t *testing.T, base, method string, params url.Values, key string) map[string]any {
	t.Helper()
	p := url.Values{"apiKey": {apiKey}, "timestamp": {strconv.FormatInt(time.Now().Unix(), 10)},
		"nonce": {strconv.FormatInt(time.Now().UnixNano(), 10)}}
	for k, v := range params {
		p[k] = v
	}
	var list []gigya.Param
	for k, vs := range p {
		list = append(list, gigya.Param{Name: k, Value: vs[0]})
	}
	norm, _ := gigya.NormalizeURL(base + "/" + method)
	raw, _ := socius.DecodeSecret(key)
	p.Set("sig", gigya.Sign(raw, "POST", norm, list))
	return post(t, base+"/"+method, p)
}

func post(t *testing.T, u string, p url.Values) map[string]any {
	t.Helper()
	resp, err := http.PostForm(u, p)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var a map[string]any
	if err := json.Unmarshal(b, &a); err != nil {
		t.Fatalf("not JSON: %s", b)
	}
	return a
}

func code(a map[string]any) int { f, _ := a["errorCode"].(float64); return int(f) }

func details(a map[string]any) string { s, _ := a["errorDetails"].(string); return s }

// wrongSecret is valid base64 of 16+ bytes, but not the site's secret.
const wrongSecret = "bm90LXRoZS1wYXJ0bmVyLXNlY3JldC0wMDA="

func TestExplainSignatures(t *testing.T) {
	params := url.Values{"UID": {"u1"}}
	t.Run("off", func(t *testing.T) {
		ts, _ := hookServer(t, server.Config{})
		a := signedCall(t, ts.URL, "socialize.getUserInfo", params, wrongSecret)
		if code(a) != 403003 || strings.Contains(details(a), "POST&") || strings.Contains(details(a), "also tried") {
			t.Errorf("without ExplainSignatures: %d %q", code(a), details(a))
		}
	})
	t.Run("on", func(t *testing.T) {
		ts, calls := hookServer(t, server.Config{ExplainSignatures: true})
		a := signedCall(t, ts.URL, "socialize.getUserInfo", params, wrongSecret)
		d := details(a)
		c := (*calls)[0]
		if code(a) != 403003 || len(c.BaseStrings) != 4 || len(c.SignedURLs) != 4 {
			t.Fatalf("%d %q, call %+v", code(a), d, c)
		}
		// What the client needs to compare its own base string with: the server's, the
		// URL it was built for, and the other URLs tried.
		want := "the server signed " + c.BaseStrings[0] + " for " + c.SignedURLs[0] + " (also tried: " + strings.Join(c.SignedURLs[1:], ", ") + ")"
		if !strings.Contains(d, want) {
			t.Errorf("errorDetails\n%s\ndoes not say\n%s", d, want)
		}
		if !strings.HasPrefix(c.BaseStrings[0], "POST&"+gigya.Escape(c.SignedURLs[0])+"&") || !strings.Contains(c.BaseStrings[0], "UID%3Du1") {
			t.Errorf("base string %q", c.BaseStrings[0])
		}
		// Never the secret, never the signature the server expected.
		raw, _ := socius.DecodeSecret(secret)
		norm, _ := gigya.NormalizeURL(ts.URL + "/socialize.getUserInfo")
		expected := gigya.SignBase(raw, c.BaseStrings[0])
		for _, leak := range []string{secret, expected, gigya.Escape(expected), norm + "?"} {
			if strings.Contains(d, leak) {
				t.Errorf("errorDetails leaks %q: %s", leak, d)
			}
		}
		// A right signature still passes.
		if a := signedCall(t, ts.URL, "socialize.getUserInfo", params, secret); code(a) != 0 {
			t.Errorf("a good signature: %v", a)
		}
		// A secret sent beside the sig, over plain HTTP, is refused as sent in the
		// clear, and not echoed (its masking in base strings: TestCredentialsMaskedBeforeTheCut).
		a = signedCall(t, ts.URL, "socialize.getUserInfo", url.Values{"UID": {"u1"}, "secret": {wrongSecret}}, wrongSecret)
		if code(a) != 403006 || strings.Contains(details(a), wrongSecret) || strings.Contains(details(a), gigya.Escape(wrongSecret)) {
			t.Errorf("a secret beside the sig: %d %s", code(a), details(a))
		}
	})
}

// swiftCall signs a call as Gigya's Swift SDK (its first versions) does, with the
// secret of the given base64.
func swiftCall(t *testing.T, base, method string, params url.Values, key string) map[string]any {
	t.Helper()
	p := url.Values{"apiKey": {apiKey}, "timestamp": {strconv.FormatInt(time.Now().Unix(), 10)},
		"nonce": {strconv.FormatInt(time.Now().UnixNano(), 10)}}
	var list []gigya.Param
	for k, vs := range params {
		p[k] = vs
	}
	for k, vs := range p {
		list = append(list, gigya.Param{Name: k, Value: vs[0]})
	}
	norm, _ := gigya.NormalizeURL(base + "/" + method)
	raw, _ := socius.DecodeSecret(key)
	p.Set("sig", gigya.SignBase(raw, gigya.SwiftBaseString(0, norm, list)))
	return post(t, base+"/"+method, p)
}

// A signature made the Swift SDK's way, over a value with bytes that only the other
// SDKs escape, is refused as at Gigya, and the emulator's errorDetails say why.
func TestExplainSwiftSignature(t *testing.T) {
	params := url.Values{"UID": {"u1"}, "context": {"<b>|x"}}
	ts, _ := hookServer(t, server.Config{ExplainSignatures: true})
	a := swiftCall(t, ts.URL, "socialize.getUserInfo", params, secret)
	if d := details(a); code(a) != 403003 || !strings.Contains(d, "Swift (iOS) SDK") || !strings.Contains(d, `"<>|"`) {
		t.Errorf("a Swift signature: %d %q", code(a), d)
	}
	// The same values, signed as the other SDKs sign them, pass.
	if a := signedCall(t, ts.URL, "socialize.getUserInfo", params, secret); code(a) != 0 {
		t.Errorf("a standard signature: %v", a)
	}
	// A Swift signature with the wrong secret is only wrong.
	if a := swiftCall(t, ts.URL, "socialize.getUserInfo", params, wrongSecret); code(a) != 403003 || strings.Contains(details(a), "Swift") {
		t.Errorf("a Swift signature with a wrong secret: %d %q", code(a), details(a))
	}
	// Without ExplainSignatures, the plain 403003.
	plain, _ := hookServer(t, server.Config{})
	if a := swiftCall(t, plain.URL, "socialize.getUserInfo", params, secret); code(a) != 403003 || strings.Contains(details(a), "Swift") {
		t.Errorf("without ExplainSignatures: %d %q", code(a), details(a))
	}
}

func TestFaultHook(t *testing.T) {
	type ask struct{ method, apiKey string }
	var mu sync.Mutex
	var asked []ask
	rule := struct {
		code  int
		delay time.Duration
		ok    bool
	}{}
	ts, calls := hookServer(t, server.Config{Fault: func(method, key string) (int, time.Duration, bool) {
		mu.Lock()
		defer mu.Unlock()
		asked = append(asked, ask{method, key})
		return rule.code, rule.delay, rule.ok
	}})
	get := url.Values{"UID": {"u1"}}

	// Authentication comes first: a bad signature is a 403003, and the rules are not
	// even asked.
	rule.code, rule.ok = 500001, true
	if a := signedCall(t, ts.URL, "socialize.getUserInfo", get, wrongSecret); code(a) != 403003 {
		t.Errorf("bad signature under a fault rule: %v", a)
	}
	if a := post(t, ts.URL+"/socialize.getUserInfo", url.Values{"UID": {"u1"}}); code(a) != 400093 {
		t.Errorf("no apiKey under a fault rule: %v", a)
	}
	if len(asked) != 0 {
		t.Errorf("the fault hook was asked about unauthenticated calls: %v", asked)
	}

	// An authenticated call gets the rule's error, with the code table's message.
	a := signedCall(t, ts.URL, "socialize.getUserInfo", get, secret)
	if code(a) != 500001 || a["errorMessage"] != "General Server error" || !strings.Contains(details(a), "injected") || a["statusCode"] != 500.0 {
		t.Errorf("injected 500001: %v", a)
	}
	if len(asked) != 1 || asked[0] != (ask{"socialize.getUserInfo", apiKey}) {
		t.Errorf("asked %v", asked)
	}
	if last := (*calls)[len(*calls)-1]; !last.Injected || last.Code != 500001 {
		t.Errorf("observed %+v", last)
	}

	// Latency only: the call succeeds, later.
	rule.code, rule.delay = 0, 150*time.Millisecond
	start := time.Now()
	if a := signedCall(t, ts.URL, "socialize.getUserInfo", get, secret); code(a) != 0 || a["UID"] != "u1" {
		t.Errorf("delayed call: %v", a)
	}
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Errorf("delayed call took %v", d)
	}
	if last := (*calls)[len(*calls)-1]; !last.Injected || last.Duration < 150*time.Millisecond {
		t.Errorf("observed %+v", last)
	}

	// No rule: nothing changes.
	rule.ok, rule.delay = false, 0
	if a := signedCall(t, ts.URL, "socialize.getUserInfo", get, secret); code(a) != 0 {
		t.Errorf("no rule: %v", a)
	}
	if last := (*calls)[len(*calls)-1]; last.Injected {
		t.Errorf("observed %+v", last)
	}
}

// A signature made the gigya npm package's way, 0 and false signed as empty but sent
// as they are, is refused as at Gigya, and the emulator's errorDetails say why.
func TestExplainNodeFalsySignature(t *testing.T) {
	ts, _ := hookServer(t, server.Config{ExplainSignatures: true})
	p := url.Values{"apiKey": {apiKey}, "timestamp": {strconv.FormatInt(time.Now().Unix(), 10)},
		"nonce": {strconv.FormatInt(time.Now().UnixNano(), 10)}, "UID": {"u1"}, "includeAllIdentities": {"false"}, "n": {"0"}}
	var signed []gigya.Param
	for k, vs := range p {
		v := vs[0]
		if v == "0" || v == "false" {
			v = "" // the package's (value || '').toString()
		}
		signed = append(signed, gigya.Param{Name: k, Value: v})
	}
	norm, _ := gigya.NormalizeURL(ts.URL + "/socialize.getUserInfo")
	raw, _ := socius.DecodeSecret(secret)
	p.Set("sig", gigya.Sign(raw, "POST", norm, signed))
	a := post(t, ts.URL+"/socialize.getUserInfo", p)
	if d := details(a); code(a) != 403003 || !strings.Contains(d, "gigya npm package") || !strings.Contains(d, "includeAllIdentities") {
		t.Errorf("the npm package's signature: %d %q", code(a), d)
	}
}

// TestExplainHandSignedMistakes: the emulator's 403003 says when the sig is right with
// the secret's text as the HMAC key (not base64-decoded), or for the other HTTP method
// than the one the request came with: the two mistakes of a hand-written signer, which
// the plain explanation left to guess.
func TestExplainHandSignedMistakes(t *testing.T) {
	ts, _ := hookServer(t, server.Config{ExplainSignatures: true})
	base, method := ts.URL, "socialize.getUserInfo"
	signWith := func(key []byte, signedMethod string) url.Values {
		p := url.Values{"apiKey": {apiKey}, "UID": {"u1"}, "timestamp": {strconv.FormatInt(time.Now().Unix(), 10)},
			"nonce": {strconv.FormatInt(time.Now().UnixNano(), 10)}}
		var list []gigya.Param
		for k, vs := range p {
			list = append(list, gigya.Param{Name: k, Value: vs[0]})
		}
		norm, _ := gigya.NormalizeURL(base + "/" + method)
		p.Set("sig", gigya.Sign(key, signedMethod, norm, list))
		return p
	}
	raw, _ := socius.DecodeSecret(secret)
	if a := post(t, base+"/"+method, signWith([]byte(secret), "POST")); code(a) != 403003 || !strings.Contains(details(a), "right with the secret's text as the HMAC key") {
		t.Errorf("signed with the secret's text: %d %s", code(a), details(a))
	}
	if a := post(t, base+"/"+method, signWith(raw, "GET")); code(a) != 403003 || !strings.Contains(details(a), "the sig is right for GET, and the request came as POST") {
		t.Errorf("signed for GET, sent as POST: %d %s", code(a), details(a))
	}
	// A sig that is simply wrong says neither.
	wrong, _ := socius.DecodeSecret(wrongSecret)
	if a := post(t, base+"/"+method, signWith(wrong, "POST")); code(a) != 403003 || strings.Contains(details(a), "HMAC key") || strings.Contains(details(a), "right for GET") {
		t.Errorf("a wrong secret: %d %s", code(a), details(a))
	}
	if a := post(t, base+"/"+method, signWith(raw, "POST")); code(a) != 0 {
		t.Errorf("a right signature: %v", a)
	}
}
