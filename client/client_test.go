package client

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"go/parser"
	"go/token"
	"io"
	"log"
	"math"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/socius/socius/gigya"
	"github.com/socius/socius/internal/vectors"
)

const (
	labAPIKey  = vectors.LabAPIKey
	labSecret  = vectors.LabPartnerSecret
	labUserKey = vectors.LabUserKey
	labUserSec = vectors.LabUserSecret
)

type fixedClock struct{ t time.Time }

func (c fixedClock) Now() time.Time { return c.t }

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// obj builds a gigya.Object from name, value pairs.
func obj(pairs ...any) gigya.Object {
	o := make(gigya.Object, 0, len(pairs)/2)
	for i := 0; i < len(pairs); i += 2 {
		o = append(o, gigya.KV{Key: pairs[i].(string), Value: pairs[i+1]})
	}
	return o
}

// answer renders an answer as Socius renders it.
func answer(code int, details string, data gigya.Object) *http.Response {
	env := gigya.Envelope{CallID: gigya.NewCallID(), Code: code, Details: details, Time: time.Now(), Data: data}
	body, ct := gigya.Encode(gigya.JSON, "socialize.x", "", env.Object())
	h := http.Header{"Content-Type": {ct}, "Date": {time.Now().UTC().Format(http.TimeFormat)}}
	return &http.Response{StatusCode: 200, Header: h, Body: io.NopCloser(strings.NewReader(string(body)))}
}

// capture is a transport that records each request's body and answers with next.
type capture struct {
	mu     sync.Mutex
	reqs   []*http.Request
	bodies []string
	next   func(n int, r *http.Request) (*http.Response, error)
}

func (c *capture) RoundTrip(r *http.Request) (*http.Response, error) {
	b, _ := io.ReadAll(r.Body)
	c.mu.Lock()
	c.reqs = append(c.reqs, r)
	c.bodies = append(c.bodies, string(b))
	n := len(c.bodies)
	c.mu.Unlock()
	if c.next != nil {
		return c.next(n, r)
	}
	return answer(0, "", nil), nil
}

func (c *capture) form(t *testing.T, i int) url.Values {
	t.Helper()
	v, err := url.ParseQuery(c.bodies[i])
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func newTestClient(t *testing.T, cred Credentials, tr http.RoundTripper, opts ...Option) *Client {
	t.Helper()
	opts = append([]Option{WithHTTPClient(&http.Client{Transport: tr})}, opts...)
	c, err := New(cred, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestSignedRequestsMatchVectors sends every signature vector through the client, with
// its clock and nonce fixed to the vector's: the body must be byte for byte what the
// Java SDK sends (same sorted order, same encoding) and the sig the one every SDK
// computed.
func TestSignedRequestsMatchVectors(t *testing.T) {
	f, err := vectors.Load()
	if err != nil {
		t.Fatal(err)
	}
	if len(f.RequestSignatureVectors) != 21 {
		t.Fatalf("%d vectors", len(f.RequestSignatureVectors))
	}
	for _, v := range f.RequestSignatureVectors {
		t.Run(v.ID, func(t *testing.T) {
			u, err := url.Parse(v.URL)
			if err != nil {
				t.Fatal(err)
			}
			var ts, nonce, apiKey, userKey, sdk string
			params := Params{}
			for _, p := range v.Params {
				switch p[0] {
				case "timestamp":
					ts = p[1]
				case "nonce":
					nonce = p[1]
				case "apiKey":
					apiKey = p[1]
				case "userKey":
					userKey = p[1]
				case "sdk":
					sdk = p[1]
				case "format", "httpStatusCodes":
				default:
					params[p[0]] = p[1]
				}
			}
			sec, _ := strconv.ParseInt(ts, 10, 64)
			cred := PartnerSecret(apiKey, v.Secret)
			if userKey != "" {
				cred = UserKey(apiKey, userKey, v.Secret)
			}
			var tr capture
			var traced *Trace
			c := newTestClient(t, cred, &tr, WithBaseURL(u.Scheme+"://"+u.Host), WithClock(fixedClock{time.Unix(sec, 0)}),
				WithTrace(func(x *Trace) { traced = x }))
			c.newNonce = func() string { return nonce }
			c.sdk = sdk
			_, err = c.Call(context.Background(), u.Path, params)
			if v.ID == "key-order" {
				// Zeta and zeta are one parameter to Gigya: the client refuses to send both.
				if err == nil || !strings.Contains(err.Error(), "letter case") {
					t.Fatalf("Zeta and zeta: got %v, want a refusal", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := tr.reqs[0].URL.String(); !strings.EqualFold(got, v.URL) {
				t.Errorf("sent to %s, want %s", got, v.URL)
			}
			if got := tr.form(t, 0).Get("sig"); got != v.ExpectedSig {
				t.Errorf("sig %s, want %s", got, v.ExpectedSig)
			}
			if traced.BaseString != v.ExpectedBaseString {
				t.Errorf("base string\n got %s\nwant %s", traced.BaseString, v.ExpectedBaseString)
			}
			if want := v.WireBodies["java"]; tr.bodies[0] != want {
				t.Errorf("body\n got %s\nwant %s (Java's)", tr.bodies[0], want)
			}
			if ct := tr.reqs[0].Header.Get("Content-Type"); ct != "application/x-www-form-urlencoded" {
				t.Errorf("Content-Type %q", ct)
			}
		})
	}
}

func TestUIDSignatureVectors(t *testing.T) {
	f, err := vectors.Load()
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range f.UIDSignatureVectors {
		switch v.Kind {
		case "UIDSignature":
			got, err := UIDSignature(v.Secret, v.UID, v.Timestamp)
			if err != nil || got != v.ExpectedSig {
				t.Errorf("%s: %s %v, want %s", v.ID, got, err, v.ExpectedSig)
			}
			if err := ValidateUIDSignature(v.Secret, v.UID, v.Timestamp, v.ExpectedSig, 0); err != nil {
				t.Errorf("%s: %v", v.ID, err)
			}
			// The vectors are years old: with an age limit they are expired.
			if err := ValidateUIDSignature(v.Secret, v.UID, v.Timestamp, v.ExpectedSig, time.Hour); !errors.Is(err, ErrSignatureExpired) {
				t.Errorf("%s with max age: %v", v.ID, err)
			}
			if err := ValidateUIDSignature(v.Secret, v.UID+"x", v.Timestamp, v.ExpectedSig, 0); !errors.Is(err, ErrInvalidSignature) {
				t.Errorf("%s other UID: %v", v.ID, err)
			}
		case "friendshipSignature":
			got, err := FriendSignature(v.Secret, v.UID, v.FriendUID, v.Timestamp)
			if err != nil || got != v.ExpectedSig {
				t.Errorf("%s: %s %v, want %s", v.ID, got, err, v.ExpectedSig)
			}
			// The deprecated form, its arguments in the order of the signed string,
			// still gives the same.
			if got, err := FriendshipSignature(v.Secret, v.Timestamp, v.FriendUID, v.UID); err != nil || got != v.ExpectedSig {
				t.Errorf("%s FriendshipSignature: %s %v, want %s", v.ID, got, err, v.ExpectedSig)
			}
			if got, _ := FriendSignature(v.Secret, v.FriendUID, v.UID, v.Timestamp); got == v.ExpectedSig {
				t.Errorf("%s: FriendSignature with the user and friend swapped gave the same signature", v.ID)
			}
			if err := ValidateFriendshipSignature(v.Secret, v.UID, v.FriendUID, v.Timestamp, v.ExpectedSig, 0); err != nil {
				t.Errorf("%s: %v", v.ID, err)
			}
			if err := ValidateFriendshipSignature(v.Secret, v.FriendUID, v.UID, v.Timestamp, v.ExpectedSig, 0); !errors.Is(err, ErrInvalidSignature) {
				t.Errorf("%s swapped: %v", v.ID, err)
			}
			// The whole signature is compared: one that differs only in its last
			// character is forged too.
			digit := "A" // the last digit before the padding: 4 bits of the HMAC
			if v.ExpectedSig[len(v.ExpectedSig)-2] == 'A' {
				digit = "E"
			}
			forged := v.ExpectedSig[:len(v.ExpectedSig)-2] + digit + v.ExpectedSig[len(v.ExpectedSig)-1:]
			if err := ValidateFriendshipSignature(v.Secret, v.UID, v.FriendUID, v.Timestamp, forged, 0); !errors.Is(err, ErrInvalidSignature) {
				t.Errorf("%s with its last base64 digit changed (%s): %v", v.ID, forged, err)
			}
		default:
			t.Errorf("unknown vector kind %q", v.Kind)
		}
	}
	if _, err := UIDSignature("not base64!", "u", "1"); err == nil {
		t.Error("bad secret: want an error")
	}
}

// TestFriendshipSignatureAge: with a maxAge, a timestamp too far from now either way
// is expired, as the UIDSignature's is: a timestamp in the future is not a fresh one.
func TestFriendshipSignatureAge(t *testing.T) {
	now := time.Now()
	for _, tt := range []struct {
		at   time.Time
		want error
	}{{now, nil}, {now.Add(-time.Hour), ErrSignatureExpired}, {now.Add(time.Hour), ErrSignatureExpired}} {
		ts := strconv.FormatInt(tt.at.Unix(), 10)
		sig, err := FriendSignature(labSecret, "u1", "f1", ts)
		if err != nil {
			t.Fatal(err)
		}
		if err := ValidateFriendshipSignature(labSecret, "u1", "f1", ts, sig, 3*time.Minute); !errors.Is(err, tt.want) {
			t.Errorf("timestamp %v from now: %v, want %v", tt.at.Sub(now).Round(time.Second), err, tt.want)
		}
	}
}

func TestRequestSignatureVector(t *testing.T) {
	f, err := vectors.Load()
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range f.RequestSignatureVectors {
		q := url.Values{}
		for _, p := range v.Params {
			q.Add(p[0], p[1])
		}
		q.Set("sig", "ignored")
		sig, base, err := RequestSignature(v.Secret, v.HTTPMethod, v.URL, q)
		if err != nil || sig != v.ExpectedSig || base != v.ExpectedBaseString {
			t.Errorf("%s: %s %v", v.ID, sig, err)
		}
	}
}

func TestEndpoints(t *testing.T) {
	tests := []struct {
		opt    Option
		method string
		want   string
	}{
		{nil, "socialize.setUserInfo", "https://socialize.us1.gigya.com/socialize.setUserInfo"},
		{nil, "setUserInfo", "https://socialize.us1.gigya.com/socialize.setUserInfo"},
		{nil, "/socialize.getUserInfo", "https://socialize.us1.gigya.com/socialize.getUserInfo"},
		{WithDataCenter("EU1.gigya.com"), "accounts.getAccountInfo", "https://accounts.eu1.gigya.com/accounts.getAccountInfo"},
		{WithBaseURL("http://127.0.0.1:8080"), "socialize.notifyLogin", "http://127.0.0.1:8080/socialize.notifyLogin"},
		{WithBaseURL("https://gw.example.com/gigya/"), "socialize.logout", "https://gw.example.com/gigya/socialize.logout"},
	}
	for _, tt := range tests {
		var tr capture
		opts := []Option{}
		if tt.opt != nil {
			opts = append(opts, tt.opt)
		}
		c := newTestClient(t, PartnerSecret(labAPIKey, labSecret), &tr, opts...)
		if _, err := c.Call(context.Background(), tt.method, nil); err != nil {
			t.Fatal(err)
		}
		if got := tr.reqs[0].URL.String(); got != tt.want {
			t.Errorf("%s: sent to %s, want %s", tt.method, got, tt.want)
		}
	}
	c := newTestClient(t, PartnerSecret(labAPIKey, labSecret), &capture{})
	for _, m := range []string{"", "socialize.", "../etc/passwd", "a b", "socialize.x?y=1"} {
		if _, err := c.Call(context.Background(), m, nil); err == nil {
			t.Errorf("method %q: want an error", m)
		}
	}
	for _, o := range []Option{WithBaseURL("ftp://x"), WithBaseURL("http://"), WithBaseURL("http://x/?a=1"), WithDataCenter("us1.gigya.com/x"), WithRetries(-1)} {
		if _, err := New(PartnerSecret(labAPIKey, labSecret), o); err == nil {
			t.Error("bad option accepted")
		}
	}
	// A base URL refused for its query or fragment is not repeated with them: they may
	// hold a secret or a token.
	for _, base := range []string{"https://socius.test/?secret=s3cr3tValue", "https://socius.test/#oauth_token=s3cr3tValue", "https://u:s3cr3tValue@socius.test/"} {
		_, err := New(PartnerSecret(labAPIKey, labSecret), WithBaseURL(base))
		if err == nil || strings.Contains(err.Error(), "s3cr3tValue") || !strings.Contains(err.Error(), "socius.test") {
			t.Errorf("base URL %q: %v; want an error naming the host without the secret", base, err)
		}
	}
}

func TestCredentialShapes(t *testing.T) {
	ctx := context.Background()
	https := WithBaseURL("https://socius.test")
	t.Run("partner signed", func(t *testing.T) {
		var tr capture
		c := newTestClient(t, PartnerSecret(labAPIKey, labSecret), &tr, WithBaseURL("http://socius.test:8080"))
		if _, err := c.Call(ctx, "socialize.getUserInfo", Params{"UID": "u1"}); err != nil {
			t.Fatal(err)
		}
		f := tr.form(t, 0)
		for _, k := range []string{"apiKey", "timestamp", "nonce", "sig", "format", "httpStatusCodes", "sdk", "UID"} {
			if f.Get(k) == "" {
				t.Errorf("no %s in %s", k, tr.bodies[0])
			}
		}
		if f.Has("secret") || f.Has("userKey") || f.Get("sdk") != "go_"+Version || f.Get("format") != "json" || f.Get("httpStatusCodes") != "false" {
			t.Errorf("body %s", tr.bodies[0])
		}
		sig, _, _ := RequestSignature(labSecret, "POST", "http://socius.test:8080/socialize.getUserInfo", f)
		if sig != f.Get("sig") {
			t.Errorf("sig %s, want %s", f.Get("sig"), sig)
		}
		if ts, _ := strconv.ParseInt(f.Get("timestamp"), 10, 64); time.Since(time.Unix(ts, 0)).Abs() > 5*time.Second {
			t.Errorf("timestamp %s is not now in seconds", f.Get("timestamp"))
		}
		if len(f.Get("nonce")) != 32 {
			t.Errorf("nonce %q: want 128 random bits in hex", f.Get("nonce"))
		}
	})
	t.Run("user key plain", func(t *testing.T) {
		var tr capture
		c := newTestClient(t, UserKey(labAPIKey, labUserKey, labUserSec), &tr, https, WithPlainSecret())
		if _, err := c.Call(ctx, "socialize.getUserInfo", Params{"UID": "u1"}); err != nil {
			t.Fatal(err)
		}
		f := tr.form(t, 0)
		if f.Get("apiKey") != labAPIKey || f.Get("userKey") != labUserKey || f.Get("secret") != labUserSec || f.Has("sig") || f.Has("nonce") || f.Has("timestamp") {
			t.Errorf("body %s", tr.bodies[0])
		}
	})
	t.Run("plain secret read with its newline", func(t *testing.T) {
		// Decoding skips the whitespace, so the secret signs; sent as text it must
		// go without it too.
		var tr capture
		c := newTestClient(t, UserKey(labAPIKey, labUserKey, " "+labUserSec+"\r\n"), &tr, https, WithPlainSecret())
		if _, err := c.Call(ctx, "socialize.getUserInfo", Params{"UID": "u1"}); err != nil {
			t.Fatal(err)
		}
		if got := tr.form(t, 0).Get("secret"); got != labUserSec {
			t.Errorf("secret sent as %q, want %q", got, labUserSec)
		}
	})
	t.Run("token", func(t *testing.T) {
		var tr capture
		c := newTestClient(t, Token("tok-1"), &tr, https)
		if _, err := c.Call(ctx, "socialize.getUserInfo", nil); err != nil {
			t.Fatal(err)
		}
		f := tr.form(t, 0)
		if f.Get("oauth_token") != "tok-1" || f.Has("apiKey") || f.Has("sig") || f.Has("timestamp") || len(f) != 4 {
			t.Errorf("body %s", tr.bodies[0])
		}
	})
	t.Run("session, plain secret asked for", func(t *testing.T) {
		// A session's secret signs; it is never sent, WithPlainSecret or not.
		var tr capture
		c := newTestClient(t, Session("st2.session", labUserSec), &tr, https, WithPlainSecret())
		if _, err := c.Call(ctx, "socialize.getUserInfo", nil); err != nil {
			t.Fatal(err)
		}
		f := tr.form(t, 0)
		if f.Get("oauth_token") != "st2.session" || f.Get("sig") == "" || f.Get("nonce") == "" || f.Get("timestamp") == "" ||
			f.Has("secret") || f.Has("apiKey") || strings.Contains(tr.bodies[0], url.QueryEscape(labUserSec)) {
			t.Errorf("body %s", tr.bodies[0])
		}
	})
	t.Run("rsa", func(t *testing.T) {
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		var tr capture
		c := newTestClient(t, UserKeyRSA(labAPIKey, labUserKey, key), &tr, https)
		if _, err := c.Call(ctx, "socialize.getUserInfo", Params{"UID": "u1"}); err != nil {
			t.Fatal(err)
		}
		f := tr.form(t, 0)
		if f.Get("apiKey") != labAPIKey || f.Get("timestamp") == "" || f.Has("sig") || f.Has("secret") || f.Has("userKey") {
			t.Errorf("body %s", tr.bodies[0])
		}
		auth := tr.reqs[0].Header.Get("Authorization")
		jwt, ok := strings.CutPrefix(auth, "Bearer ")
		parts := strings.Split(jwt, ".")
		if !ok || len(parts) != 3 {
			t.Fatalf("Authorization %q", auth)
		}
		header, _ := base64.RawURLEncoding.DecodeString(parts[0])
		if !strings.Contains(string(header), `"kid":"`+labUserKey+`"`) || !strings.Contains(string(header), `"alg":"RS256"`) {
			t.Errorf("JWT header %s", header)
		}
		sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
		sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
		if err := rsa.VerifyPKCS1v15(&key.PublicKey, crypto.SHA256, sum[:], sig); err != nil {
			t.Errorf("JWT does not verify: %v", err)
		}
	})
	t.Run("never insecure", func(t *testing.T) {
		httpURL := WithBaseURL("http://socius.test")
		for _, tc := range []struct {
			cred Credentials
			opts []Option
		}{
			{Token("t"), []Option{httpURL}},
			{Session("st2.session", labUserSec), []Option{httpURL}},
			{UserKeyRSA(labAPIKey, labUserKey, testRSAKey(t)), []Option{httpURL}},
			{PartnerSecret(labAPIKey, labSecret), []Option{httpURL, WithPlainSecret()}},
			{UserKey(labAPIKey, labUserKey, labUserSec), []Option{httpURL, WithPlainSecret()}},
		} {
			if c, err := New(tc.cred, tc.opts...); !errors.Is(err, ErrInsecure) || c != nil {
				t.Errorf("%v: got %v, %v; want no Client and ErrInsecure", tc.cred, c, err)
			}
		}
		c, err := New(PartnerSecret(labAPIKey, labSecret), httpURL)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.WithCredentials(Token("t")); !errors.Is(err, ErrInsecure) {
			t.Errorf("derived token client over http: %v", err)
		}
	})
	t.Run("bad credentials", func(t *testing.T) {
		for _, cred := range []Credentials{{}, PartnerSecret("", labSecret), PartnerSecret(labAPIKey, "not base64!"),
			PartnerSecret(labAPIKey, ""), UserKey(labAPIKey, "", labUserSec), Token(""), UserKeyRSA(labAPIKey, labUserKey, nil)} {
			if _, err := New(cred); err == nil {
				t.Errorf("%v accepted", cred)
			}
		}
	})
}

// testRSAKey is one RSA key for the tests that need any (generating one is slow).
func testRSAKey(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	rsaKeyOnce.Do(func() { rsaKey, rsaKeyErr = rsa.GenerateKey(rand.Reader, 2048) })
	if rsaKeyErr != nil {
		t.Fatal(rsaKeyErr)
	}
	return rsaKey
}

var (
	rsaKeyOnce sync.Once
	rsaKey     *rsa.PrivateKey
	rsaKeyErr  error
)

func TestParams(t *testing.T) {
	checkEncoding(t, Params{
		"s": "a b", "b": true, "i": 42, "i64": int64(-7), "f": 1.5, "n": json.Number("3"), "raw": json.RawMessage(`{"a":1}`),
		"nil": nil, "obj": map[string]any{"u": "http://x/?a=1&b=<2>"}, "ui": UserInfo{FirstName: "D", Age: Age(0)},
	}, `b=true,f=1.5,i=42,i64=-7,n=3,obj={"u":"http://x/?a=1&b=<2>"},raw={"a":1},s=a b,ui={"firstName":"D","age":0}`)
	for _, p := range []Params{{"APIKEY": "x"}, {"sig": "x"}, {"Nonce": "1"}, {"uid": "a", "UID": "b"}, {"Uid": "a", "uID": "b"}, {"": "x"}, {"c": make(chan int)}} {
		if _, err := p.encode(); err == nil {
			t.Errorf("%v accepted", p)
		}
	}
}

func TestUserInfoJSON(t *testing.T) {
	tests := []struct {
		info  UserInfo
		clear []string
		want  string
	}{
		{UserInfo{FirstName: "David", Gender: "m", Age: Age(30)}, nil, `{"firstName":"David","gender":"m","age":30}`},
		{UserInfo{Nickname: "<b>&", Email: "a@b"}, []string{"LastName", "age"}, `{"nickname":"<b>&","email":"a@b","lastName":null,"age":null}`},
		{UserInfo{}, nil, `{}`},
	}
	for _, tt := range tests {
		got, err := userInfoJSON(&tt.info, tt.clear)
		if err != nil || string(got) != tt.want {
			t.Errorf("got %s %v, want %s", got, err, tt.want)
		}
	}
	if _, err := userInfoJSON(&UserInfo{FirstName: "x"}, []string{"firstName"}); err == nil {
		t.Error("set and cleared: want an error")
	}
	if _, err := userInfoJSON(&UserInfo{}, []string{"shoeSize"}); err == nil {
		t.Error("unknown field: want an error")
	}
}

// TestClockSkewRetry: a server whose clock is 3 hours ahead refuses the first request
// with 403002; the client learns the offset from Date and succeeds on the one retry,
// with a new timestamp, nonce and signature.
func TestClockSkewRetry(t *testing.T) {
	skew := 3 * time.Hour
	var seen []url.Values
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		mu.Lock()
		seen = append(seen, r.PostForm)
		mu.Unlock()
		now := time.Now().Add(skew)
		w.Header().Set("Date", now.UTC().Format(http.TimeFormat))
		ts, _ := gigya.ParseTimestamp(r.PostForm.Get("timestamp"))
		code := 0
		if d := now.Sub(ts); d > 2*time.Minute || d < -2*time.Minute {
			code = 403002
		}
		env := gigya.Envelope{CallID: gigya.NewCallID(), Code: code, Details: "Request has expired", Time: now}
		body, _ := gigya.Encode(gigya.JSON, "m", "", env.Object())
		w.Write(body)
	}))
	defer srv.Close()
	var traces []Trace
	c, err := New(PartnerSecret(labAPIKey, labSecret), WithBaseURL(srv.URL), WithTrace(func(tr *Trace) { traces = append(traces, *tr) }))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Call(context.Background(), "socialize.setUserInfo", Params{"UID": "u1", "userInfo": "{}"}); err != nil {
		t.Fatalf("after the retry: %v", err)
	}
	if len(seen) != 2 {
		t.Fatalf("%d attempts, want 2", len(seen))
	}
	if seen[0].Get("nonce") == seen[1].Get("nonce") || seen[0].Get("sig") == seen[1].Get("sig") || seen[0].Get("timestamp") == seen[1].Get("timestamp") {
		t.Errorf("the retry repeated the first request: %v / %v", seen[0], seen[1])
	}
	if d := c.ClockOffset() - skew; d.Abs() > 2*time.Second {
		t.Errorf("offset %v, want about %v", c.ClockOffset(), skew)
	}
	if len(traces) != 2 || !strings.Contains(traces[0].Retry, "clock offset") || traces[0].ErrorCode != 403002 || traces[1].Retry != "" {
		t.Errorf("traces %+v", traces)
	}
	// The offset stays: the next call needs no retry.
	seen = nil
	if _, err := c.Call(context.Background(), "socialize.getUserInfo", Params{"UID": "u1"}); err != nil || len(seen) != 1 {
		t.Errorf("next call: %v after %d attempts", err, len(seen))
	}
}

// TestClockSkewRetriesOnce: a server that keeps answering 403002 gets two attempts,
// then the error; without a Date header there is nothing to learn and no retry; plain
// secrets and tokens carry no timestamp and are never retried on 403002.
func TestClockSkewRetriesOnce(t *testing.T) {
	expired := func(date bool) *capture {
		return &capture{next: func(int, *http.Request) (*http.Response, error) {
			r := answer(403002, "Request has expired", nil)
			if date {
				r.Header.Set("Date", time.Now().Add(time.Hour).UTC().Format(http.TimeFormat))
			} else {
				r.Header.Del("Date")
			}
			return r, nil
		}}
	}
	for _, tc := range []struct {
		name  string
		cred  Credentials
		opts  []Option
		date  bool
		tries int
	}{
		{"signed", PartnerSecret(labAPIKey, labSecret), nil, true, 2},
		{"signed, no Date", PartnerSecret(labAPIKey, labSecret), nil, false, 1},
		{"plain", PartnerSecret(labAPIKey, labSecret), []Option{WithPlainSecret()}, true, 1},
		{"token", Token("t"), nil, true, 1},
	} {
		tr := expired(tc.date)
		c := newTestClient(t, tc.cred, tr, tc.opts...)
		_, err := c.Call(context.Background(), "socialize.getUserInfo", Params{"UID": "u1"})
		var e *Error
		if !errors.As(err, &e) || e.Code != 403002 || len(tr.bodies) != tc.tries {
			t.Errorf("%s: %v after %d attempts, want 403002 after %d", tc.name, err, len(tr.bodies), tc.tries)
		}
	}
}

func TestTypedErrors(t *testing.T) {
	tr := &capture{next: func(int, *http.Request) (*http.Response, error) {
		return answer(301001, "Invalid data center", obj("apiDomain", "eu1.gigya.com")), nil
	}}
	c := newTestClient(t, PartnerSecret(labAPIKey, labSecret), tr)
	_, err := c.GetUserInfo(context.Background(), "u1")
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("%T %v is not an *Error", err, err)
	}
	if e.Code != 301001 || e.Details != "Invalid data center" || e.Method != "socialize.getUserInfo" || len(e.CallID) != 32 || e.StatusCode != 301 {
		t.Errorf("%+v", e)
	}
	var data struct {
		APIDomain string `json:"apiDomain"`
		ErrorCode int    `json:"errorCode"`
	}
	if err := e.Decode(&data); err != nil || data.APIDomain != "eu1.gigya.com" || data.ErrorCode != 301001 {
		t.Errorf("data of the error answer: %+v %v", data, err)
	}
	if ErrorCode(err) != 301001 || !strings.Contains(err.Error(), "301001") || !strings.Contains(err.Error(), e.CallID) {
		t.Errorf("ErrorCode %d, text %q", ErrorCode(err), err)
	}

	for _, body := range []string{"<html>Bad Gateway</html>", "", `{"callId":"x"}`} {
		tr := &capture{next: func(int, *http.Request) (*http.Response, error) {
			return &http.Response{StatusCode: 502, Header: http.Header{"Content-Type": {"text/html"}}, Body: io.NopCloser(strings.NewReader(body))}, nil
		}}
		c := newTestClient(t, PartnerSecret(labAPIKey, labSecret), tr)
		// A write: sent once (getUserInfo is tried again, TestGatewayFailures).
		_, err := c.Call(context.Background(), "socialize.setUserInfo", Params{"UID": "u1"})
		var re *ResponseError
		if !errors.As(err, &re) || !errors.Is(err, gigya.ErrNotAnswer) || re.HTTPStatus != 502 || len(tr.bodies) != 1 {
			t.Errorf("%q: %T %v", body, err, err)
		}
		if ErrorCode(err) != 500000 {
			t.Errorf("ErrorCode of a non-answer: %d", ErrorCode(err))
		}
	}
}

func dialError() error {
	return &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
}

// TestRetryRules: dial errors are retried for any method, other transport errors only
// for methods that change nothing; every retry carries a new nonce.
func TestRetryRules(t *testing.T) {
	tests := []struct {
		name   string
		method string
		errs   []error // the transport's failures, in order; then success
		opts   []Option
		tries  int
		ok     bool
	}{
		{"write, dial error", "socialize.setUserInfo", []error{dialError()}, nil, 2, true},
		{"write, reset after sending", "socialize.setUserInfo", []error{io.ErrUnexpectedEOF}, nil, 1, false},
		{"write, DNS", "socialize.notifyLogin", []error{&net.DNSError{Err: "no such host", Name: "x"}}, nil, 2, true},
		{"no such host", "socialize.getUserInfo", []error{&net.DNSError{Err: "no such host", Name: "socialize.eu9.gigya.com", IsNotFound: true}}, nil, 1, false},
		{"read, reset", "socialize.getUserInfo", []error{io.ErrUnexpectedEOF, io.ErrUnexpectedEOF}, nil, 3, true},
		{"read, too many", "socialize.getUserInfo", []error{io.ErrUnexpectedEOF, io.ErrUnexpectedEOF, io.ErrUnexpectedEOF}, nil, 3, false},
		{"no retries", "socialize.getUserInfo", []error{dialError()}, []Option{WithRetries(0)}, 1, false},
		{"getToken is a write", "socialize.getToken", []error{io.ErrUnexpectedEOF}, nil, 1, false},
		{"untrusted certificate", "socialize.getUserInfo", []error{&tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}}, nil, 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := &capture{next: func(n int, r *http.Request) (*http.Response, error) {
				if n <= len(tt.errs) {
					return nil, tt.errs[n-1]
				}
				return answer(0, "", nil), nil
			}}
			c := newTestClient(t, PartnerSecret(labAPIKey, labSecret), tr, tt.opts...)
			_, err := c.Call(context.Background(), tt.method, Params{"UID": "u1"})
			if (err == nil) != tt.ok || len(tr.bodies) != tt.tries {
				t.Fatalf("%v after %d attempts; want ok=%v after %d", err, len(tr.bodies), tt.ok, tt.tries)
			}
			var te *TransportError
			if err != nil && (!errors.As(err, &te) || te.Attempts != tt.tries) {
				t.Errorf("%T %v", err, err)
			}
			nonces := map[string]bool{}
			for i := range tr.bodies {
				nonces[tr.form(t, i).Get("nonce")] = true
			}
			if len(nonces) != len(tr.bodies) {
				t.Errorf("a nonce was sent twice: %v", tr.bodies)
			}
		})
	}
}

// silentServer is a server that never answers; it lets its calls go when the test ends.
func silentServer(t *testing.T) *httptest.Server {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) }) // runs first
	return srv
}

func TestContextAndTimeouts(t *testing.T) {
	srv := silentServer(t)
	c, err := New(PartnerSecret(labAPIKey, labSecret), WithBaseURL(srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = c.GetUserInfo(ctx, "u1")
	// Ended by the context's deadline, not the call's own (DefaultTimeout, 30 s): the
	// bound is well under that, and long enough for a loaded machine.
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 10*time.Second {
		t.Errorf("deadline: %v after %v", err, time.Since(start))
	}
	if ErrorCode(err) != 504002 {
		t.Errorf("ErrorCode of a timeout: %d", ErrorCode(err))
	}
	var te *TransportError
	if !errors.As(err, &te) || te.Attempts != 1 {
		t.Errorf("a context deadline must not be retried: %#v", err)
	}

	// The HTTP client's own timeout.
	c2, err := New(PartnerSecret(labAPIKey, labSecret), WithBaseURL(srv.URL), WithRetries(0),
		WithHTTPClient(&http.Client{Timeout: 100 * time.Millisecond}))
	if err != nil {
		t.Fatal(err)
	}
	if err := c2.SetUserInfo(context.Background(), "u1", UserInfo{Nickname: "x"}); ErrorCode(err) != 504002 {
		t.Errorf("client timeout: %v", err)
	}

	// Cancelled while waiting to retry: ends at once.
	var attempts atomic.Int32
	tr := roundTripFunc(func(*http.Request) (*http.Response, error) { attempts.Add(1); return nil, dialError() })
	c3 := newTestClient(t, PartnerSecret(labAPIKey, labSecret), tr, WithRetries(100))
	ctx, cancel = context.WithTimeout(context.Background(), 250*time.Millisecond)
	defer cancel()
	start = time.Now()
	_, err = c3.Call(ctx, "socialize.setUserInfo", Params{"UID": "u1"})
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 10*time.Second || attempts.Load() > 4 {
		t.Errorf("cancel during backoff: %v after %v and %d attempts", err, time.Since(start), attempts.Load())
	}
}

func TestGetUserInfoChecksUIDSignature(t *testing.T) {
	now := time.Now()
	key, _ := decodeSecret(labSecret)
	user := func(ts time.Time, sig string) gigya.Object {
		s := strconv.FormatInt(ts.Unix(), 10)
		if sig == "" {
			sig = gigya.UIDSignature(key, s, "u1")
		}
		return obj("UID", "u1", "UIDSignature", sig, "signatureTimestamp", s, "isLoggedIn", true,
			"firstName", "Ada", "age", 36, "providers", "site",
			"identities", []gigya.Object{obj("provider", "site", "providerUID", "u1", "age", "36", "lastUpdatedTimestamp", now.UnixMilli())})
	}
	tests := []struct {
		name string
		data gigya.Object
		cred Credentials
		opts []Option
		want error
	}{
		{"valid", user(now, ""), PartnerSecret(labAPIKey, labSecret), nil, nil},
		{"forged", user(now, "AAAAAAAAAAAAAAAAAAAAAAAAAAA="), PartnerSecret(labAPIKey, labSecret), nil, ErrInvalidSignature},
		{"old", user(now.Add(-time.Hour), ""), PartnerSecret(labAPIKey, labSecret), nil, ErrSignatureExpired},
		{"old, no age limit", user(now.Add(-time.Hour), ""), PartnerSecret(labAPIKey, labSecret), []Option{WithUIDSignatureMaxAge(-1)}, nil},
		{"userKey: not checked", user(now, "AAAAAAAAAAAAAAAAAAAAAAAAAAA="), UserKey(labAPIKey, labUserKey, labUserSec), nil, nil},
		{"userKey with partner secret", user(now, "AAAAAAAAAAAAAAAAAAAAAAAAAAA="), UserKey(labAPIKey, labUserKey, labUserSec), []Option{WithPartnerSecret(labSecret)}, ErrInvalidSignature},
	}
	for _, tt := range tests {
		tr := &capture{next: func(int, *http.Request) (*http.Response, error) { return answer(0, "", tt.data), nil }}
		c := newTestClient(t, tt.cred, tr, tt.opts...)
		u, err := c.GetUserInfo(context.Background(), "u1")
		if !errors.Is(err, tt.want) {
			t.Errorf("%s: got %v, want %v", tt.name, err, tt.want)
			continue
		}
		if err == nil && (u.FirstName != "Ada" || u.Age == nil || *u.Age != 36 || !u.IsLoggedIn || len(u.Providers) != 1 ||
			len(u.Identities) != 1 || u.Identities[0].Age == nil || *u.Identities[0].Age != 36 || u.Identities[0].LastUpdated.IsZero()) {
			t.Errorf("%s: user %+v", tt.name, u)
		}
	}
}

func TestTraceMasksSecrets(t *testing.T) {
	var traces []*Trace
	c := newTestClient(t, PartnerSecret(labAPIKey, labSecret), &capture{}, WithBaseURL("https://socius.test"), WithPlainSecret(),
		WithTrace(func(tr *Trace) { traces = append(traces, tr) }))
	if _, err := c.Call(context.Background(), "socialize.getToken", Params{"client_secret": "cs", "grant_type": "none"}); err != nil {
		t.Fatal(err)
	}
	c2 := newTestClient(t, Token("tok-secret"), &capture{}, WithBaseURL("https://socius.test"), WithTrace(func(tr *Trace) { traces = append(traces, tr) }))
	if _, err := c2.Call(context.Background(), "socialize.getUserInfo", nil); err != nil {
		t.Fatal(err)
	}
	c3 := newTestClient(t, UserKeyRSA(labAPIKey, labUserKey, testRSAKey(t)), &capture{}, WithBaseURL("https://socius.test"),
		WithTrace(func(tr *Trace) { traces = append(traces, tr) }))
	if _, err := c3.Call(context.Background(), "socialize.getUserInfo", Params{"UID": "u1"}); err != nil {
		t.Fatal(err)
	}
	if auth := traces[len(traces)-1].Header.Get("Authorization"); auth != "Bearer ***" {
		t.Errorf("trace shows Authorization %q, want the bearer token masked", auth)
	}
	for _, tr := range traces {
		for _, p := range tr.Params {
			if gigya.IsCredential(p.Name) && p.Value != "***" || strings.Contains(p.Value, labSecret) || strings.Contains(p.Value, "tok-secret") || p.Value == "cs" {
				t.Errorf("trace shows %s=%s", p.Name, p.Value)
			}
		}
	}
}

// TestImportsOnlyProtocol keeps the client apart from the server: it speaks the
// protocol through package gigya and never imports the server or a store. It writes
// the server's text in its errors with internal/errtext, as socius call does.
func TestImportsOnlyProtocol(t *testing.T) {
	pkgs, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, name := range pkgs {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path := strings.Trim(imp.Path.Value, `"`)
			if strings.HasPrefix(path, "github.com/socius/socius/") && path != "github.com/socius/socius/gigya" &&
				path != "github.com/socius/socius/internal/errtext" {
				t.Errorf("%s imports %s: the client may use only package gigya, internal/errtext (and the root vocabulary)", name, path)
			}
		}
	}
}

// TestNoRedirects: a redirect is never followed, with the default HTTP client or the
// caller's, so that a plain secret is never sent again elsewhere (here: to plain HTTP).
func TestNoRedirects(t *testing.T) {
	var plainHits atomic.Int32
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { plainHits.Add(1) }))
	defer plain.Close()
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, plain.URL+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	defer tlsSrv.Close()
	caller := tlsSrv.Client() // follows redirects
	c, err := New(PartnerSecret(labAPIKey, labSecret), WithBaseURL(tlsSrv.URL), WithPlainSecret(), WithHTTPClient(caller), WithRetries(0))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SetUserInfo(context.Background(), "u1", UserInfo{Nickname: "x"}); err == nil {
		t.Error("a redirected call succeeded")
	}
	if n := plainHits.Load(); n != 0 {
		t.Errorf("the redirect was followed: %d requests over plain HTTP", n)
	}
	if caller.CheckRedirect != nil {
		t.Error("WithHTTPClient changed the caller's client")
	}
}

// TestNoCookiesCarried: a cookie that the server (or a proxy in front of it, here a
// load balancer's stickiness cookie) sets is not sent with a later call, with the
// default HTTP client or a caller's that has a cookie Jar; nor is one the Jar held
// already, and the Jar is left as it was. Gigya's SDKs carry no cookies between calls:
// a call is its credentials and its parameters, and nothing a server said before.
func TestNoCookiesCarried(t *testing.T) {
	var (
		mu      sync.Mutex
		cookies []string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		cookies = append(cookies, strings.Join(r.Header.Values("Cookie"), "; "))
		mu.Unlock()
		http.SetCookie(w, &http.Cookie{Name: "AWSALB", Value: "node-2", Path: "/"})
		http.SetCookie(w, &http.Cookie{Name: "gmid", Value: "g1", Path: "/", HttpOnly: true})
		io.WriteString(w, `{"errorCode":0,"statusCode":200,"callId":"c"}`)
	}))
	defer srv.Close()
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	jar.SetCookies(u, []*http.Cookie{{Name: "browser", Value: "b1", Path: "/"}})
	for _, c := range []struct {
		name string
		opts []Option
	}{
		{"the default HTTP client", nil},
		{"a caller's client with a Jar", []Option{WithHTTPClient(&http.Client{Jar: jar})}},
	} {
		mu.Lock()
		cookies = nil
		mu.Unlock()
		cl, err := New(PartnerSecret(labAPIKey, labSecret), append([]Option{WithBaseURL(srv.URL)}, c.opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		for range 3 {
			if _, err := cl.Call(context.Background(), "socialize.setUserInfo", Params{"UID": "u1", "data": `{"a":1}`}); err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
		}
		mu.Lock()
		if len(cookies) != 3 || cookies[0] != "" || cookies[1] != "" || cookies[2] != "" {
			t.Errorf("%s: the calls sent the cookies %q; want none", c.name, cookies)
		}
		mu.Unlock()
	}
	if got := jar.Cookies(u); len(got) != 1 || got[0].Name != "browser" {
		t.Errorf("the caller's Jar holds %v; want its own cookie alone", got)
	}
}

// TestTraceBaseStringMasked: the base string a trace shows has the secrets masked,
// while the signature covers the real values.
func TestTraceBaseStringMasked(t *testing.T) {
	var traces []*Trace
	cap := &capture{}
	c := newTestClient(t, PartnerSecret(labAPIKey, labSecret), cap, WithTrace(func(tr *Trace) { traces = append(traces, tr) }))
	if _, err := c.Call(context.Background(), "socialize.getToken", Params{"client_secret": "the-client-secret", "code": "the-code", "grant_type": "none"}); err != nil {
		t.Fatal(err)
	}
	tr := traces[0]
	if tr.BaseString == "" || strings.Contains(tr.BaseString, "the-client-secret") || strings.Contains(tr.BaseString, "the-code") || !strings.Contains(tr.BaseString, "client_secret%3D%252A%252A%252A") {
		t.Errorf("trace base string %q", tr.BaseString)
	}
	sent := cap.form(t, 0)
	key, _ := base64.StdEncoding.DecodeString(labSecret)
	var ps []gigya.Param
	for k, vs := range sent {
		if k != "sig" {
			ps = append(ps, gigya.Param{Name: k, Value: vs[0]})
		}
	}
	if want := gigya.SignBase(key, gigya.BaseString("POST", tr.NormalizedURL, ps)); sent.Get("sig") != want {
		t.Errorf("sig %s does not sign the real values (want %s)", sent.Get("sig"), want)
	}
}

// TestCallTimeoutBoundsEveryAttempt: with the default HTTP client the timeout bounds a
// whole call, retries included, not each attempt. Against a server that never answers,
// a call safe to repeat is tried once: its one attempt ends at the call's deadline,
// after which nothing is tried again. A timeout of each attempt would let the two
// retries run (three attempts, about 1.4 s for a 300 ms timeout), which a bound on the
// time taken can only tell on an idle machine; the attempts are counted instead, and
// the time taken bounds only a call that the timeout never ends.
func TestCallTimeoutBoundsEveryAttempt(t *testing.T) {
	srv := silentServer(t)
	var traces []*Trace
	c, err := New(PartnerSecret(labAPIKey, labSecret), WithBaseURL(srv.URL), WithTrace(func(tr *Trace) { traces = append(traces, tr) }))
	if err != nil {
		t.Fatal(err)
	}
	if c.cfg.callTimeout != DefaultTimeout || c.http.Timeout != 0 || c.cfg.retries != DefaultRetries || DefaultRetries == 0 {
		t.Fatalf("the default client: call timeout %v, per-attempt timeout %v, %d retries", c.cfg.callTimeout, c.http.Timeout, c.cfg.retries)
	}
	c.cfg.callTimeout = 300 * time.Millisecond // DefaultTimeout, shortened for the test
	// Only so that a call the timeout does not end still ends the test.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	_, err = c.GetUserInfo(ctx, "u1") // safe to repeat: retried after a transport error
	took := time.Since(start)
	var te *TransportError
	if !errors.Is(err, context.DeadlineExceeded) || !errors.As(err, &te) || took > 20*time.Second {
		t.Fatalf("GetUserInfo against a silent server: %v after %v", err, took)
	}
	if !strings.Contains(err.Error(), "context deadline exceeded: the call took longer than client.DefaultTimeout (300ms)") || ErrorCode(err) != 504002 {
		t.Errorf("GetUserInfo against a silent server: %v (ErrorCode %d); want it to say that the client's DefaultTimeout ended it", err, ErrorCode(err))
	}
	if te.Attempts != 1 || len(traces) != 1 || traces[0].Retry != "" {
		t.Errorf("GetUserInfo against a silent server: %d attempts (%d traced), want 1: the timeout bounds each attempt, not the call", te.Attempts, len(traces))
		for _, tr := range traces {
			t.Logf("attempt %d: %v after %v; retry: %q", tr.Attempt, tr.Err, tr.Duration, tr.Retry)
		}
	}
	// A deadline of the caller's, before the client's, is not said to be the client's.
	short, cancelShort := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancelShort()
	if _, err := c.GetUserInfo(short, "u1"); !errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "DefaultTimeout") {
		t.Errorf("GetUserInfo against a silent server, with a deadline of 100 ms: %v; want the caller's deadline alone", err)
	}
}

// TestSessionExpirationRounding: a positive lifetime is sent in whole seconds rounded
// up (0 would mean no expiry); a negative one (Gigya's -1, -2) as it is.
func TestSessionExpirationRounding(t *testing.T) {
	cap := &capture{next: func(int, *http.Request) (*http.Response, error) {
		return answer(0, "", gigya.Object{{Key: "access_token", Value: "tok"}}), nil
	}}
	c := newTestClient(t, PartnerSecret(labAPIKey, labSecret), cap)
	for i, tt := range []struct {
		d    time.Duration
		want string
	}{{500 * time.Millisecond, "1"}, {90 * time.Second, "90"}, {1500 * time.Millisecond, "2"}, {-2 * time.Second, "-2"}} {
		if _, err := c.GetToken(context.Background(), GetTokenRequest{SessionExpiration: tt.d}); err != nil {
			t.Fatal(err)
		}
		if got := cap.form(t, i).Get("x_sessionExpiration"); got != tt.want {
			t.Errorf("SessionExpiration %v sent as %q, want %q", tt.d, got, tt.want)
		}
	}
}

// TestExpiresIn: a token's lifetime is read in seconds; one that a Duration cannot
// hold, or a negative one, is an error (it wrapped around to a negative lifetime).
func TestExpiresIn(t *testing.T) {
	for _, tt := range []struct {
		expiresIn any
		want      time.Duration
		ok        bool
	}{{3600, time.Hour, true}, {"60", time.Minute, true}, {nil, 0, true},
		{int64(1e10), 0, false}, {-5, 0, false}, {"soon", 0, false}} {
		data := gigya.Object{{Key: "access_token", Value: "tok"}}
		if tt.expiresIn != nil {
			data = append(data, gigya.KV{Key: "expires_in", Value: tt.expiresIn})
		}
		c := newTestClient(t, PartnerSecret(labAPIKey, labSecret), &capture{next: func(int, *http.Request) (*http.Response, error) {
			return answer(0, "", data), nil
		}})
		g, err := c.GetToken(context.Background(), GetTokenRequest{})
		switch {
		case tt.ok && (err != nil || g.ExpiresIn != tt.want):
			t.Errorf("expires_in %v: %v, %v; want %v", tt.expiresIn, g, err, tt.want)
		case !tt.ok && (err == nil || !strings.Contains(err.Error(), "expires_in")):
			t.Errorf("expires_in %v: %+v, %v; want an error", tt.expiresIn, g, err)
		}
	}
}

// TestParamKinds: named types of the plain kinds, pointers to values and text
// marshalers are sent as their text, not as JSON (which quoted a named string type:
// UID "\"au1\"").
func TestParamKinds(t *testing.T) {
	type ID string
	type Count int
	s, n := "plain", 7
	var nilPtr *string
	var nilTime *time.Time
	when := time.Date(2026, 11, 29, 8, 0, 0, 0, time.UTC)
	checkEncoding(t, Params{
		"id": ID("au1"), "count": Count(-3), "ptr": &s, "intPtr": &n, "nilPtr": nilPtr, "f32": float32(0.5),
		"u8": uint8(200), "when": when, "whenPtr": &when, "nilTime": nilTime, "b": true,
	}, "b=true,count=-3,f32=0.5,id=au1,intPtr=7,ptr=plain,u8=200,when=2026-11-29T08:00:00Z,whenPtr=2026-11-29T08:00:00Z")
	// A []byte is its text, as a json.RawMessage is: json.Marshal's output was sent as
	// a quoted base64 string, which setUserInfo refused as no JSON object.
	type Blob []byte
	ui, _ := json.Marshal(map[string]string{"nickname": "x"})
	checkEncoding(t, Params{"userInfo": ui, "context": Blob("c d"), "empty": []byte{}},
		`context=c d,empty=,userInfo={"nickname":"x"}`)
	// A nil map or slice is no value, as nil is; NaN and the infinities are refused.
	// So is a nil json.RawMessage (an unset field of that type), as a nil []byte of any
	// other type.
	checkEncoding(t, Params{"userInfo": map[string]any(nil), "list": []string(nil), "data": []byte(nil), "UID": "u1",
		"context": json.RawMessage(nil), "blob": Blob(nil)}, "UID=u1")
	// A time.Duration is nanoseconds, which Gigya would read as seconds: refused, the
	// error saying what to give instead, where an hour went as 3600000000000.
	hour := time.Hour
	for _, d := range []any{time.Hour, &hour} {
		if _, err := (Params{"sessionExpiration": d}).encode(); err == nil || !strings.Contains(err.Error(), "whole seconds") {
			t.Errorf("sessionExpiration %v: %v, want an error", d, err)
		}
	}
	for _, f := range []any{math.NaN(), math.Inf(1), float32(math.Inf(-1))} {
		if _, err := (Params{"age": f}).encode(); err == nil || !strings.Contains(err.Error(), "not a number") {
			t.Errorf("age %v: %v, want an error", f, err)
		}
	}
}

// checkEncoding encodes p and compares its name=value pairs, joined with commas, with
// want.
func checkEncoding(t *testing.T, p Params, want string) {
	t.Helper()
	ps, err := p.encode()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, q := range ps {
		got = append(got, q.Name+"="+q.Value)
	}
	if strings.Join(got, ",") != want {
		t.Errorf("got  %s\nwant %s", strings.Join(got, ","), want)
	}
}

// TestNegativeSessionExpiration: a negative lifetime is one of Gigya's special values
// in whole seconds; -500ms, which rounded to 0 (no expiry), is refused before sending.
func TestNegativeSessionExpiration(t *testing.T) {
	var tr capture
	c := newTestClient(t, PartnerSecret(labAPIKey, labSecret), &tr)
	if _, err := c.GetToken(context.Background(), GetTokenRequest{SessionExpiration: -500 * time.Millisecond}); err == nil || !strings.Contains(err.Error(), "-1s or -2s") {
		t.Errorf("SessionExpiration -500ms: %v", err)
	}
	if len(tr.bodies) != 0 {
		t.Errorf("a refused GetToken was sent: %v", tr.bodies)
	}
}

// TestPrintingHidesSecrets: a Client or Credentials printed with any verb shows no
// secret, token or key.
func TestPrintingHidesSecrets(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	for _, cred := range []Credentials{PartnerSecret(labAPIKey, labSecret), UserKey(labAPIKey, labUserKey, labUserSec),
		Token("st2.token-text-1234"), Session("st2.session-text-1234", labUserSec), UserKeyRSA(labAPIKey, labUserKey, key)} {
		c := newTestClient(t, cred, &capture{}, WithBaseURL("https://socius.test"), WithPartnerSecret(labSecret))
		// Inside a caller's value, in unexported fields, fmt cannot call Format.
		type appConfig struct {
			name   string
			cred   Credentials
			client Client
			ptr    *Client
		}
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%d", "%t", "%o", "%x", "%X", "%T"} {
			for _, v := range []any{c, *c, cred, appConfig{"svc", cred, *c, c}, []Credentials{cred}, map[string]Client{"a": *c}} {
				out := fmt.Sprintf(verb, v)
				for _, secret := range []string{labSecret, labUserSec, "token-text", "session-text", key.D.String()[:20]} {
					if strings.Contains(out, secret) {
						t.Errorf("%s of a %T with %s shows a secret: %s", verb, v, cred, out)
					}
				}
			}
		}
	}
}

// TestPrintingAnswersHidesCredentials: a Login or TokenGrant printed while debugging,
// in any verb, shows that its session or token is set, not what it is.
func TestPrintingAnswersHidesCredentials(t *testing.T) {
	login := Login{UID: "u1", CookieName: "glt_3_x", CookieValue: "cookie-text-1234",
		SessionToken: "st2.session-text-1234", SessionSecret: labUserSec}
	grant := TokenGrant{AccessToken: "st2.token-text-1234", ExpiresIn: time.Hour}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%d", "%x"} {
		for _, v := range []any{login, &login, grant, &grant, []Login{login}, map[string]*TokenGrant{"a": &grant}} {
			out := fmt.Sprintf(verb, v)
			for _, secret := range []string{"cookie-text", "session-text", labUserSec, "token-text"} {
				if strings.Contains(out, secret) {
					t.Errorf("%s of a %T shows a credential: %s", verb, v, out)
				}
			}
		}
	}
	if got := fmt.Sprint(login); !strings.Contains(got, `"u1"`) || !strings.Contains(got, "session token set, secret set") {
		t.Errorf("a Login prints as %s: its UID, and that its session is set, should show", got)
	}
	if got := fmt.Sprint(TokenGrant{}); got != "access token none, no expiry" {
		t.Errorf("an empty TokenGrant prints as %q", got)
	}
}

// TestClockFollowsDate: every answer's Date sets the clock offset when the clocks
// disagree by more than a second, so that a client that sends no timestamp (plain
// secret, tokens) checks UIDSignatures against the server's time: its own clock five
// minutes off no longer fails every GetUserInfo.
func TestClockFollowsDate(t *testing.T) {
	server := time.Now().Truncate(time.Second)
	key, _ := decodeSecret(labSecret)
	stamp := strconv.FormatInt(server.Unix(), 10)
	tr := &capture{next: func(int, *http.Request) (*http.Response, error) {
		resp := answer(0, "", obj("UID", "u1", "UIDSignature", gigya.UIDSignature(key, stamp, "u1"), "signatureTimestamp", stamp))
		resp.Header.Set("Date", server.UTC().Format(http.TimeFormat))
		return resp, nil
	}}
	c := newTestClient(t, PartnerSecret(labAPIKey, labSecret), tr, WithBaseURL("https://socius.test"), WithPlainSecret(),
		WithClock(fixedClock{server.Add(-5 * time.Minute)}))
	if _, err := c.GetUserInfo(context.Background(), "u1"); err != nil {
		t.Fatalf("GetUserInfo with the clock 5 minutes behind: %v", err)
	}
	if off := c.ClockOffset(); off < 5*time.Minute-time.Second || off > 5*time.Minute+time.Second {
		t.Errorf("ClockOffset %v, want about 5m", off)
	}
}

// TestHTTPServerForHTTPSNotRetried: an https URL that reaches a plain HTTP server is
// not tried again (as the package says): no retry can mend it.
func TestHTTPServerForHTTPSNotRetried(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer ts.Close()
	c, err := New(PartnerSecret(labAPIKey, labSecret), WithBaseURL(strings.Replace(ts.URL, "http://", "https://", 1)), WithRetries(3))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Call(context.Background(), "socialize.getUserInfo", Params{"UID": "u1"})
	var te *TransportError
	if !errors.As(err, &te) || te.Attempts != 1 {
		t.Errorf("an HTTP server on an https URL: %v (attempts %v)", err, te)
	}
}

// zeros is an endless reader of '0's.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = '0'
	}
	return len(p), nil
}

// TestAnswersThatAreNotAnswers: an answer too long to read and a redirect are
// ResponseErrors (the server answered), never retried, whatever their body says.
func TestAnswersThatAreNotAnswers(t *testing.T) {
	ctx := context.Background()
	https := WithBaseURL("https://socius.test")
	tooLong := &capture{next: func(int, *http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: 502, Header: http.Header{"Content-Type": {"text/html"}},
			Body: io.NopCloser(io.LimitReader(zeros{}, MaxResponseBytes+100))}, nil
	}}
	c := newTestClient(t, PartnerSecret(labAPIKey, labSecret), tooLong, https)
	_, err := c.GetUserInfo(ctx, "u1")
	var re *ResponseError
	if !errors.As(err, &re) || re.HTTPStatus != 502 || !errors.Is(err, gigya.ErrNotAnswer) || !strings.Contains(err.Error(), "longer than") {
		t.Errorf("an answer over MaxResponseBytes: %v (%T); want a ResponseError", err, err)
	}
	if len(tooLong.bodies) != 1 {
		t.Errorf("an answer over MaxResponseBytes was asked for %d times, want once", len(tooLong.bodies))
	}
	// The error keeps the start of the answer, not the MaxResponseBytes read: a caller
	// that keeps such errors (a batch's failures) would otherwise hold 32 MiB each.
	if re != nil && cap(re.Body) > 2048 {
		t.Errorf("the ResponseError of an answer over MaxResponseBytes holds %d bytes (cap), want its first 2048 only", cap(re.Body))
	}
	if re != nil && re.Size != MaxResponseBytes+1 {
		t.Errorf("the ResponseError of an answer over MaxResponseBytes says its Size is %d, want MaxResponseBytes+1 (as much as was read)", re.Size)
	}

	redirect := &capture{next: func(int, *http.Request) (*http.Response, error) {
		resp := answer(0, "", obj("UID", "u1"))
		resp.StatusCode = 302
		resp.Header.Set("Location", "http://elsewhere.test/")
		return resp, nil
	}}
	c = newTestClient(t, PartnerSecret(labAPIKey, labSecret), redirect, https)
	_, err = c.Call(ctx, "socialize.setUserInfo", Params{"UID": "u1", "userInfo": `{"nickname":"x"}`})
	if !errors.As(err, &re) || re.HTTPStatus != 302 || !strings.Contains(err.Error(), "elsewhere.test") || len(redirect.bodies) != 1 {
		t.Errorf("a redirect with a Gigya-shaped body: %v (%T), %d requests; want one ResponseError", err, err, len(redirect.bodies))
	}
	if re != nil && (re.Size == 0 || re.Size != len(re.Body)) {
		t.Errorf("a redirect's ResponseError: Size %d, Body %d bytes; want the whole body's length", re.Size, len(re.Body))
	}

	// A numeric signatureTimestamp does not fail a login that happened.
	numeric := &capture{next: func(int, *http.Request) (*http.Response, error) {
		return answer(0, "", obj("UID", "u1", "UIDSignature", "x", "signatureTimestamp", 1795943862)), nil
	}}
	c = newTestClient(t, PartnerSecret(labAPIKey, labSecret), numeric, https)
	if l, err := c.NotifyLogin(ctx, NotifyLoginRequest{SiteUID: "u1"}); err != nil || l.SignatureTimestamp != "1795943862" || l.UID != "u1" {
		t.Errorf("NotifyLogin with a numeric signatureTimestamp: %+v, %v", l, err)
	}
}

// TestBaseURLShapes: a base URL's password never shows in an error, a host that Go
// would send in punycode is refused, and an empty port is the default one, signed as
// sent.
func TestBaseURLShapes(t *testing.T) {
	for _, base := range []string{"https://admin:hunter2-pass@socius.test", "https://admin:hunter2-pass@socius.test/%zz", "ht tp://admin:hunter2-pass@x"} {
		_, err := New(PartnerSecret(labAPIKey, labSecret), WithBaseURL(base))
		if err == nil || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("WithBaseURL(%q): %v; want an error without the password", base, err)
		}
	}
	if _, err := New(PartnerSecret(labAPIKey, labSecret), WithBaseURL("https://bücher.test")); err == nil || !strings.Contains(err.Error(), "punycode") {
		t.Errorf("a non-ASCII host: %v", err)
	}
	var tr capture
	c := newTestClient(t, PartnerSecret(labAPIKey, labSecret), &tr, WithBaseURL("http://socius.test:"))
	if _, err := c.Call(context.Background(), "socialize.getUserInfo", Params{"UID": "u1"}); err != nil {
		t.Fatal(err)
	}
	r := tr.reqs[0]
	f := tr.form(t, 0)
	key, _ := decodeSecret(labSecret)
	var ps []gigya.Param
	for k, v := range f {
		if k != "sig" {
			ps = append(ps, gigya.Param{Name: k, Value: v[0]})
		}
	}
	want := gigya.SignBase(key, gigya.BaseString("POST", "http://"+r.Host+r.URL.Path, ps))
	if r.Host != "socius.test" || f.Get("sig") != want {
		t.Errorf("empty port: sent to host %q, sig %s; want socius.test and %s", r.Host, f.Get("sig"), want)
	}
}

// TestZeroClient: a Client that New did not make says what is missing rather than
// panic.
func TestZeroClient(t *testing.T) {
	var c Client
	if err := c.ValidateUIDSignature("u1", "1795943862", "sig"); err == nil {
		t.Error("a zero Client validated a UIDSignature")
	}
	// Its calls, its clock offset and a client derived from it: an error (or zero),
	// where they dereferenced the nil HTTP client, clock and offset.
	ctx := context.Background()
	if off := c.ClockOffset(); off != 0 {
		t.Errorf("a zero Client's clock offset is %v", off)
	}
	if _, err := c.Call(ctx, "socialize.getUserInfo", Params{"UID": "u1"}); !errors.Is(err, errZeroClient) {
		t.Errorf("Call on a zero Client: %v", err)
	}
	if _, err := c.GetUserInfo(ctx, "u1"); !errors.Is(err, errZeroClient) {
		t.Errorf("GetUserInfo on a zero Client: %v", err)
	}
	if err := c.SetUserInfo(ctx, "u1", UserInfo{FirstName: "A"}); !errors.Is(err, errZeroClient) {
		t.Errorf("SetUserInfo on a zero Client: %v", err)
	}
	if d, err := c.WithCredentials(PartnerSecret("3_a", "c2VjcmV0")); !errors.Is(err, errZeroClient) || d != nil {
		t.Errorf("WithCredentials of a zero Client: %v, %v", d, err)
	}
	if ErrorCode(errZeroClient) != 500000 {
		t.Errorf("ErrorCode(a zero Client's error) = %d", ErrorCode(errZeroClient))
	}
}

// TestNoncesAreRandom: a nonce is 128 random bits in hex: every one of its 32 digits
// varies from nonce to nonce (none is fixed, none follows the clock), so that no two
// clients, or two calls at the same instant, send the same one.
func TestNoncesAreRandom(t *testing.T) {
	var nonces []string
	for range 64 {
		n := newNonce()
		if len(n) != 32 || strings.Trim(n, "0123456789abcdef") != "" {
			t.Fatalf("nonce %q: want 32 hex digits", n)
		}
		nonces = append(nonces, n)
	}
	for i := range 32 {
		seen := map[byte]bool{}
		for _, n := range nonces {
			seen[n[i]] = true
		}
		if len(seen) == 1 {
			t.Errorf("digit %d of the nonce is the same in 64 nonces: %v", i, nonces[:4])
		}
	}
}

// TestTransportTimeoutIsRequestTimeout: a transport's own timeout (a net.Error whose
// Timeout is true, not a context deadline) is reported as 504002 by ErrorCode.
func TestTransportTimeoutIsRequestTimeout(t *testing.T) {
	tr := roundTripFunc(func(*http.Request) (*http.Response, error) {
		return nil, &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}
	})
	c := newTestClient(t, PartnerSecret(labAPIKey, labSecret), tr, WithRetries(0))
	_, err := c.Call(context.Background(), "socialize.setUserInfo", Params{"UID": "u1"})
	if errors.Is(err, context.DeadlineExceeded) {
		t.Fatal("the transport's timeout is a context deadline: this test no longer tests the net.Error case")
	}
	if ErrorCode(err) != 504002 {
		t.Errorf("ErrorCode(%v) = %d, want 504002", err, ErrorCode(err))
	}
}

// TestCredentialParamsOverHTTP: over a plain-HTTP base URL the client sends no secret
// or token the caller put in the parameters, nor calls getToken (whose answer is a
// token); signatures, made to travel in the clear, go.
func TestCredentialParamsOverHTTP(t *testing.T) {
	tr := &capture{}
	c := newTestClient(t, PartnerSecret(labAPIKey, labSecret), tr, WithBaseURL("http://socius.test"))
	ctx := context.Background()
	for _, p := range []Params{{"client_secret": labSecret}, {"regToken": "x"}, {"newPassword": "x"}, {"cookieValue": "x"}, {"code": "x"}} {
		if _, err := c.Call(ctx, "socialize.notifyLogin", p); !errors.Is(err, ErrInsecure) {
			t.Errorf("%v over http: %v, want ErrInsecure", p, err)
		}
	}
	_, err := c.GetToken(ctx, GetTokenRequest{})
	if !errors.Is(err, ErrInsecure) {
		t.Errorf("getToken over http: %v, want ErrInsecure", err)
	}
	// Said once: the text read "client: socialize.getToken: client: a secret or token...".
	if want := "socialize.getToken: " + ErrInsecure.Error() + ": "; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("getToken over http: %v, want it to start with %q", err, want)
	}
	// A mobile login's answer is a session token and its secret.
	if _, err := c.NotifyLogin(ctx, NotifyLoginRequest{SiteUID: "u1", TargetEnv: "Mobile"}); !errors.Is(err, ErrInsecure) {
		t.Errorf("a mobile notifyLogin over http: %v, want ErrInsecure", err)
	}
	if _, err := c.Call(ctx, "socialize.notifyLogin", Params{"siteUID": "u1", "targetEnv": "mobile"}); !errors.Is(err, ErrInsecure) {
		t.Errorf("a mobile notifyLogin through Call over http: %v, want ErrInsecure", err)
	}
	if len(tr.bodies) != 0 {
		t.Errorf("%d requests sent: %v", len(tr.bodies), tr.bodies)
	}
	if _, err := c.Call(ctx, "socialize.setUID", Params{"UID": "u1", "UIDSig": "x", "siteUID": "u2"}); err != nil || len(tr.bodies) != 1 {
		t.Errorf("a signature parameter over http: %v, %d requests", err, len(tr.bodies))
	}
	https := newTestClient(t, PartnerSecret(labAPIKey, labSecret), tr, WithBaseURL("https://socius.test"))
	if _, err := https.Call(ctx, "socialize.notifyLogin", Params{"client_secret": labSecret}); err != nil {
		t.Errorf("over https: %v", err)
	}
}

// TestEndedWhileWaitingToRetry: a call whose context ends while it waits to try again
// reports both the end and the last attempt's failure, so that a caller can tell a
// request never sent (a refused connection) from an answer lost.
func TestEndedWhileWaitingToRetry(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	tr := &capture{next: func(int, *http.Request) (*http.Response, error) { return nil, refused }}
	c := newTestClient(t, PartnerSecret(labAPIKey, labSecret), tr, WithRetries(5))
	// The waits are 100 ms, 400 ms, 900 ms: a deadline 1 s away ends in the third. (It
	// was 30 ms, in the first wait, which a test process descheduled for 30 ms ended
	// during the first attempt: a call whose context has ended is not tried again, and
	// its error rightly says the attempt's failure alone.)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err := c.Call(ctx, "socialize.setUserInfo", Params{"UID": "u1"})
	var te *TransportError
	if !errors.As(err, &te) || !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, syscall.ECONNREFUSED) || ErrorCode(err) != 504002 {
		t.Errorf("%T %v: want a *TransportError with the deadline and the refused connection", err, err)
	}
}

// TestAnswerLostOnARealConnection: a server that reads the request and closes the
// connection without answering (a crash, a proxy's reset) leaves net/http's own error,
// not a dial error: a write is sent once, its *TransportError says one attempt, and a
// read is tried again, each attempt with a fresh nonce.
func TestAnswerLostOnARealConnection(t *testing.T) {
	var mu sync.Mutex
	var nonces []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		mu.Lock()
		nonces = append(nonces, r.PostForm.Get("nonce"))
		mu.Unlock()
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
	}))
	defer srv.Close()
	c, err := New(PartnerSecret(labAPIKey, labSecret), WithBaseURL(srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		method   string
		attempts int
	}{{"socialize.setUserInfo", 1}, {"socialize.notifyLogin", 1}, {"socialize.getUserInfo", 1 + DefaultRetries}} {
		mu.Lock()
		nonces = nil
		mu.Unlock()
		_, err := c.Call(context.Background(), tt.method, Params{"UID": "u1"})
		mu.Lock()
		sent := nonces
		mu.Unlock()
		var te *TransportError
		if !errors.As(err, &te) || te.Attempts != tt.attempts || len(sent) != tt.attempts {
			t.Errorf("%s: %T %v after %d requests; want a *TransportError after %d", tt.method, err, err, len(sent), tt.attempts)
			continue
		}
		seen := map[string]bool{}
		for _, n := range sent {
			seen[n] = true
		}
		if len(seen) != len(sent) || ErrorCode(err) != 500000 {
			t.Errorf("%s: nonces %v, ErrorCode %d", tt.method, sent, ErrorCode(err))
		}
	}
}

// TestAnswerBrokenOff: an answer whose body breaks off (the connection closed before
// its Content-Length, or the context ending while the body trickles in) is a
// *TransportError that says the server answered, with the HTTP status and how much
// came, not a bare "unexpected EOF" that could be the request's; the cause stays in
// the chain, and a write is sent once.
func TestAnswerBrokenOff(t *testing.T) {
	const part = `{"errorCode":0,"callId":"c1"`
	stall := make(chan struct{})
	defer close(stall)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "200")
		io.WriteString(w, part)
		if r.URL.Path == "/socialize.getUserInfo" {
			w.(http.Flusher).Flush()
			select { // the rest never comes
			case <-stall:
			case <-r.Context().Done():
			}
		}
	}))
	defer srv.Close()
	c, err := New(PartnerSecret(labAPIKey, labSecret), WithBaseURL(srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("the answer (HTTP 200) broke off after %d bytes: ", len(part))
	err = c.SetUserInfo(context.Background(), "u1", UserInfo{FirstName: "A"})
	var te *TransportError
	if !errors.As(err, &te) || te.Attempts != 1 || errors.Is(err, ErrNotSent) || !errors.Is(err, io.ErrUnexpectedEOF) ||
		!strings.Contains(err.Error(), want+"unexpected EOF") {
		t.Errorf("setUserInfo, its answer cut off: %T %v; want a *TransportError of one attempt saying %q", err, err, want)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_, err = c.GetUserInfo(ctx, "u1")
	if !errors.As(err, &te) || !errors.Is(err, context.DeadlineExceeded) || ErrorCode(err) != 504002 || !strings.Contains(err.Error(), want) {
		t.Errorf("getUserInfo, its answer stalled until the deadline: %T %v (ErrorCode %d); want a *TransportError saying %q", err, err, ErrorCode(err), want)
	}
}

// TestErrorsEscapeTheServersText: the server's text in an error (errorMessage,
// errorDetails, callId, a Content-Type, the UID of a getUserInfo answer whose
// UIDSignature fails) is written with its control characters, bidirectional overrides
// and invalid bytes escaped, so that logging or printing the error writes one line
// and no escape sequence; the fields keep what came.
func TestErrorsEscapeTheServersText(t *testing.T) {
	const details = `bad\r\nlevel=error msg=forged \u001b[2J\u009b31m\u202egnp.exe` // JSON escapes
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/socialize.setUserInfo":
			io.WriteString(w, `{"errorCode":400002,"errorMessage":"Missing\u0007 parameter","errorDetails":"`+details+`","callId":"c1\nc2","statusCode":400}`)
		case "/socialize.getUserInfo":
			io.WriteString(w, `{"errorCode":0,"statusCode":200,"callId":"c","UID":"u1\r\n\u001b]0;x\u0007","UIDSignature":"AAAAAAAAAAAAAAAAAAAAAAAAAAA=","signatureTimestamp":"1"}`)
		case "/socialize.deleteAccount":
			// Raw in the JSON text, which the error quotes as it came: U+202E, U+009B.
			io.WriteString(w, "{\"errorCode\":\"1\u202e2\u009b\"}")
		default:
			w.Header().Set("Content-Type", "text/html\xe2\x80\xae\xff")
			w.WriteHeader(502)
			io.WriteString(w, "<html>")
		}
	}))
	defer srv.Close()
	c, err := New(PartnerSecret(labAPIKey, labSecret), WithBaseURL(srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	oneLine := func(what string, err error, want ...string) {
		t.Helper()
		if err == nil {
			t.Fatalf("%s: no error", what)
		}
		s := err.Error()
		for _, r := range s {
			if r == utf8.RuneError || !strconv.IsPrint(r) {
				t.Errorf("%s: the error has %q: %q", what, r, s)
				break
			}
		}
		for _, w := range want {
			if !strings.Contains(s, w) {
				t.Errorf("%s: the error %q does not say %q", what, s, w)
			}
		}
	}
	err = c.SetUserInfo(context.Background(), "u1", UserInfo{FirstName: "A"})
	oneLine("an error answer", err, `Missing\a parameter: bad\r\nlevel=error msg=forged \x1b[2J\u009b31m\u202egnp.exe`, `(callId c1\nc2)`)
	var e *Error
	if !errors.As(err, &e) || e.Details != "bad\r\nlevel=error msg=forged \x1b[2J\u009b31m\u202egnp.exe" || e.CallID != "c1\nc2" {
		t.Errorf("the fields: %+v; want the text as it came", e)
	}
	_, err = c.GetUserInfo(context.Background(), "u1")
	oneLine("a UIDSignature that fails", err, `UIDSignature of u1\r\n\x1b]0;x\a: `)
	if !errors.Is(err, ErrInvalidSignature) {
		t.Errorf("a UIDSignature that fails: %v", err)
	}
	_, err = c.Call(context.Background(), "socialize.logout", nil)
	oneLine("a proxy's page", err, `(text/html\u202e\xff)`)
	err = c.DeleteAccount(context.Background(), "u1")
	oneLine("an errorCode that is no integer", err, `errorCode "1\u202e2\u009b" is not an integer`)
}

// TestDerivedClientsValidateUIDSignatures: a client derived with WithCredentials
// validates the UIDSignatures of its getUserInfo answers with the partner secret that
// the client it came from knew (its PartnerSecret credentials, or WithPartnerSecret),
// but for credentials of another site, which that secret does not sign for.
func TestDerivedClientsValidateUIDSignatures(t *testing.T) {
	key, _ := decodeSecret(labSecret)
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	good := obj("UID", "u1", "UIDSignature", gigya.UIDSignature(key, ts, "u1"), "signatureTimestamp", ts)
	forged := obj("UID", "u1", "UIDSignature", "AAAAAAAAAAAAAAAAAAAAAAAAAAA=", "signatureTimestamp", ts)
	otherSecret := "b3RoZXItc2l0ZS1zZWNyZXQ="
	tests := []struct {
		name    string
		from    Credentials
		opts    []Option
		derived Credentials
		want    error // for the forged signature; the good one passes whenever it is checked
		checked bool  // whether the derived client knows a partner secret at all
	}{
		{"token from partner secret", PartnerSecret(labAPIKey, labSecret), nil, Token("t"), ErrInvalidSignature, true},
		{"session from partner secret", PartnerSecret(labAPIKey, labSecret), nil, Session("st", labUserSec), ErrInvalidSignature, true},
		{"userKey of the site", PartnerSecret(labAPIKey, labSecret), nil, UserKey(labAPIKey, labUserKey, labUserSec), ErrInvalidSignature, true},
		{"RSA key of the site", PartnerSecret(labAPIKey, labSecret), nil, UserKeyRSA(labAPIKey, labUserKey, testRSAKey(t)), ErrInvalidSignature, true},
		{"userKey of another site", PartnerSecret(labAPIKey, labSecret), nil, UserKey("3_other", labUserKey, labUserSec), nil, false},
		{"partner secret of the site", PartnerSecret(labAPIKey, otherSecret), nil, PartnerSecret(labAPIKey, labSecret), ErrInvalidSignature, true},
		{"token, WithPartnerSecret", Token("t0"), []Option{WithPartnerSecret(labSecret)}, Token("t"), ErrInvalidSignature, true},
		{"token from a userKey", UserKey(labAPIKey, labUserKey, labUserSec), nil, Token("t"), nil, false},
	}
	for _, tt := range tests {
		var data gigya.Object
		tr := &capture{next: func(int, *http.Request) (*http.Response, error) { return answer(0, "", data), nil }}
		c := newTestClient(t, tt.from, tr, append([]Option{WithBaseURL("https://socius.test")}, tt.opts...)...)
		d, err := c.WithCredentials(tt.derived)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		data = forged
		if _, err := d.GetUserInfo(context.Background(), "u1"); !errors.Is(err, tt.want) {
			t.Errorf("%s: a forged UIDSignature: %v, want %v", tt.name, err, tt.want)
		}
		data = good
		if _, err := d.GetUserInfo(context.Background(), "u1"); err != nil {
			t.Errorf("%s: a good UIDSignature: %v", tt.name, err)
		}
		if err := d.ValidateUIDSignature("u1", ts, gigya.UIDSignature(key, ts, "u1")); (err == nil) != tt.checked {
			t.Errorf("%s: ValidateUIDSignature: %v, want a partner secret known: %v", tt.name, err, tt.checked)
		}
	}
}

// closingListener accepts connections on 127.0.0.1 and closes each at once, before a
// TLS handshake can finish: an https URL on it fails in the handshake. It counts them.
func closingListener(t *testing.T) (addr string, accepted *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted = new(atomic.Int32)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			conn.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String(), accepted
}

// TestBackoff: the pause before a retry grows as the square of the failures, from
// 0.1 s, and stops at maxBackoff (5 s): a client given WithRetries(100) paused for
// 1,000 s before its last attempt, and a larger count overflowed into negative pauses.
func TestBackoff(t *testing.T) {
	for _, tt := range []struct {
		failures int
		want     time.Duration
	}{
		{1, 100 * time.Millisecond}, {2, 400 * time.Millisecond}, {3, 900 * time.Millisecond},
		{7, 4900 * time.Millisecond}, {8, 5 * time.Second}, {100, 5 * time.Second},
		{1 << 32, 5 * time.Second}, {math.MaxInt, 5 * time.Second},
	} {
		if got := backoff(tt.failures); got != tt.want {
			t.Errorf("backoff(%d) = %v, want %v", tt.failures, got, tt.want)
		}
	}
}

// TestGatewayFailures: a proxy's 502, 503 or 504 page in front of a server restarting
// or down is, for getUserInfo, which changes nothing, tried again as a lost connection
// is (up to WithRetries times, each with its own nonce), and the answer after it is
// the call's; a write gets it as a *ResponseError after one request, as any other
// status that is not an answer. A direct connection refused during the same restart
// was retried for every method; behind nginx, nothing was.
func TestGatewayFailures(t *testing.T) {
	var mu sync.Mutex
	var nonces []string
	failFirst := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		mu.Lock()
		nonces = append(nonces, r.PostForm.Get("nonce"))
		n := len(nonces)
		mu.Unlock()
		if n <= failFirst {
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader([]int{502, 503, 504}[(n-1)%3])
			io.WriteString(w, "<html><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></html>\n")
			return
		}
		io.WriteString(w, `{"callId":"c1","errorCode":0,"statusCode":200,"statusReason":"OK","UID":"u1"}`)
	}))
	defer srv.Close()
	c, err := New(PartnerSecret(labAPIKey, labSecret), WithBaseURL(srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, tt := range []struct {
		name      string
		failFirst int
		call      func() error
		requests  int
		status    int // of the *ResponseError; 0 for success
	}{
		{"getUserInfo after a 502 and a 503", 2, func() error { _, err := c.GetUserInfo(ctx, "u1"); return err }, 3, 0},
		{"getUserInfo, every attempt refused", 9, func() error { _, err := c.GetUserInfo(ctx, "u1"); return err }, 1 + DefaultRetries, []int{502, 503, 504}[DefaultRetries%3]},
		{"setUserInfo after a 502", 1, func() error { return c.SetUserInfo(ctx, "u1", UserInfo{FirstName: "A"}) }, 1, 502},
		{"notifyLogin after a 502", 1, func() error { _, err := c.NotifyLogin(ctx, NotifyLoginRequest{SiteUID: "u1"}); return err }, 1, 502},
	} {
		mu.Lock()
		nonces, failFirst = nil, tt.failFirst
		mu.Unlock()
		err := tt.call()
		mu.Lock()
		sent := append([]string(nil), nonces...)
		mu.Unlock()
		var re *ResponseError
		switch {
		case tt.status == 0 && err != nil, tt.status != 0 && (!errors.As(err, &re) || re.HTTPStatus != tt.status):
			t.Errorf("%s: %T %v; want HTTP %d (0: success)", tt.name, err, err, tt.status)
		case len(sent) != tt.requests:
			t.Errorf("%s: %d requests, want %d", tt.name, len(sent), tt.requests)
		}
		seen := map[string]bool{}
		for _, n := range sent {
			if seen[n] {
				t.Errorf("%s: nonce %s sent twice", tt.name, n)
			}
			seen[n] = true
		}
	}
}

// TestEndedContextNotSent: a call given a context that has ended already, or whose
// context ends after a 403002 and before the attempt that would follow it, sends
// nothing more, and its *TransportError says so (ErrNotSent, as the package documents
// for a context that ended first): net/http fails such a request before it looks for
// a connection, and the client took that for a request that may have arrived.
func TestEndedContextNotSent(t *testing.T) {
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		w.Header().Set("Date", time.Now().Add(time.Hour).UTC().Format(http.TimeFormat))
		io.WriteString(w, `{"callId":"c1","errorCode":403002,"errorMessage":"Request has expired","statusCode":403}`)
	}))
	defer srv.Close()
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	expired, cancel2 := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel2()
	var cancelOn403002 atomic.Pointer[context.CancelFunc]
	trace := WithTrace(func(tr *Trace) {
		if f := cancelOn403002.Load(); f != nil && tr.ErrorCode == 403002 {
			(*f)() // the caller gives up as the 403002 comes back
		}
	})
	for _, opts := range [][]Option{nil, {WithHTTPClient(&http.Client{})}} {
		c, err := New(PartnerSecret(labAPIKey, labSecret), append([]Option{WithBaseURL(srv.URL), trace}, opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		for _, tt := range []struct {
			name string
			ctx  context.Context
			want error
			code int
		}{{"canceled", canceled, context.Canceled, 500000}, {"past its deadline", expired, context.DeadlineExceeded, 504002}} {
			requests.Store(0)
			err := c.SetUserInfo(tt.ctx, "u1", UserInfo{FirstName: "A"})
			var te *TransportError
			if !errors.As(err, &te) || !errors.Is(err, ErrNotSent) || !errors.Is(err, tt.want) || ErrorCode(err) != tt.code ||
				te.Attempts != 0 || requests.Load() != 0 {
				t.Errorf("a context %s (%d options): %T %v (%+v), %d requests; want a *TransportError, ErrNotSent, no attempt",
					tt.name, len(opts), err, err, te, requests.Load())
			}
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancelOn403002.Store(&cancel)
		requests.Store(0)
		err = c.SetUserInfo(ctx, "u1", UserInfo{FirstName: "A"})
		cancelOn403002.Store(nil)
		var te *TransportError
		if !errors.As(err, &te) || !errors.Is(err, ErrNotSent) || !errors.Is(err, context.Canceled) || te.Attempts != 1 || requests.Load() != 1 {
			t.Errorf("a context canceled during a 403002 (%d options): %T %v (%+v), %d requests; want a *TransportError, ErrNotSent, one attempt",
				len(opts), err, err, te, requests.Load())
		}
	}
}

// TestNotSent: errors.Is(err, ErrNotSent) tells a call that never reached the server
// (a refused connection, a TLS handshake that failed) from one whose answer was lost
// after the request went out (a server that reads it and closes the connection). A
// write that never reached the server is tried again, as one whose connection was
// refused always was.
func TestNotSent(t *testing.T) {
	ctx := context.Background()
	write := func(c *Client) error { return c.SetUserInfo(ctx, "u1", UserInfo{Nickname: "n"}) }

	// A closed port: the dial is refused.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String()
	ln.Close()
	c, err := New(PartnerSecret(labAPIKey, labSecret), WithBaseURL(closed), WithRetries(1))
	if err != nil {
		t.Fatal(err)
	}
	var te *TransportError
	if err := write(c); !errors.As(err, &te) || !errors.Is(err, ErrNotSent) || !te.NeverSent || te.Attempts != 2 {
		t.Errorf("a closed port: %T %v; want a *TransportError, ErrNotSent, after 2 attempts", err, err)
	}

	// A TLS handshake that the server ends: nothing was sent; the write is tried again.
	addr, accepted := closingListener(t)
	c, err = New(PartnerSecret(labAPIKey, labSecret), WithBaseURL("https://"+addr), WithRetries(1))
	if err != nil {
		t.Fatal(err)
	}
	if err := write(c); !errors.As(err, &te) || !errors.Is(err, ErrNotSent) || te.Attempts != 2 || accepted.Load() != 2 {
		t.Errorf("a TLS handshake ended: %T %v after %d connections; want a *TransportError, ErrNotSent, after 2", err, err, accepted.Load())
	}

	// A TLS handshake that the client ends (an untrusted certificate): nothing was
	// sent, and nothing is tried again.
	untrusted := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { t.Error("a request arrived") }))
	untrusted.Config.ErrorLog = log.New(io.Discard, "", 0)
	untrusted.StartTLS()
	defer untrusted.Close()
	c, err = New(PartnerSecret(labAPIKey, labSecret), WithBaseURL(untrusted.URL))
	if err != nil {
		t.Fatal(err)
	}
	if err := write(c); !errors.As(err, &te) || !errors.Is(err, ErrNotSent) || te.Attempts != 1 {
		t.Errorf("an untrusted certificate: %T %v; want a *TransportError, ErrNotSent, after 1 attempt", err, err)
	}

	// A server that reads the request and closes the connection: sent, answer lost.
	var requests atomic.Int32
	lost := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		requests.Add(1)
		if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
			conn.Close()
		}
	}))
	defer lost.Close()
	c, err = New(PartnerSecret(labAPIKey, labSecret), WithBaseURL(lost.URL))
	if err != nil {
		t.Fatal(err)
	}
	if err := write(c); !errors.As(err, &te) || errors.Is(err, ErrNotSent) || te.NeverSent || requests.Load() != 1 {
		t.Errorf("an answer lost: %T %v after %d requests; want a *TransportError, not ErrNotSent, after 1", err, err, requests.Load())
	}
	// A read is tried again after it; its earlier attempts may have arrived.
	if _, err := c.GetUserInfo(ctx, "u1"); !errors.As(err, &te) || errors.Is(err, ErrNotSent) || te.Attempts != 1+DefaultRetries {
		t.Errorf("a read whose answers were lost: %T %v", err, err)
	}

	// A RoundTripper that is not net/http's: only a dial error proves nothing was sent.
	for _, tt := range []struct {
		err     error
		notSent bool
	}{{dialError(), true}, {io.ErrUnexpectedEOF, false}} {
		tr := roundTripFunc(func(*http.Request) (*http.Response, error) { return nil, tt.err })
		c := newTestClient(t, PartnerSecret(labAPIKey, labSecret), tr, WithRetries(0))
		if err := write(c); errors.Is(err, ErrNotSent) != tt.notSent {
			t.Errorf("a RoundTripper failing with %v: %v; want ErrNotSent %v", tt.err, err, tt.notSent)
		}
	}
}

// TestRequestExpiredWithoutDate: a real server that answers 403002 without a Date
// header (net/http adds one unless told not to), or with one that is no HTTP date, or
// no time a clock can be set to (before 1970, or more than the 292 years a
// time.Duration holds from now), gives the client no server time to correct its clock
// with (it reads none from the answer's time field): the call fails at once with the
// 403002, after one request, rather than repeating a request that would expire again.
// Such a Date on an answer that succeeds leaves the clock alone too.
func TestRequestExpiredWithoutDate(t *testing.T) {
	for _, tt := range []struct {
		name string
		date []string // the Date header's values; nil for none
		body string
	}{
		{"no Date, no time", nil, `{"callId":"c1","errorCode":403002,"errorMessage":"Request has expired","errorDetails":"Request has expired","statusCode":403,"statusReason":"Forbidden"}`},
		{"no Date, a time", nil, `{"callId":"c1","errorCode":403002,"errorMessage":"Request has expired","errorDetails":"Request has expired","statusCode":403,"statusReason":"Forbidden","time":"2030-01-01T00:00:00.000Z"}`},
		{"a Date that is no date", []string{"yesterday"}, `{"callId":"c1","errorCode":403002,"errorMessage":"Request has expired","statusCode":403,"statusReason":"Forbidden"}`},
		// No Unix timestamp is before 1970; and an offset of more than 292 years is
		// clipped by time.Duration, so it would be wrong.
		{"a Date before 1970", []string{"Fri, 01 Jan 1960 00:00:00 GMT"}, `{"callId":"c1","errorCode":403002,"errorMessage":"Request has expired","statusCode":403,"statusReason":"Forbidden"}`},
		{"a Date of the year 1", []string{"Mon, 01 Jan 0001 00:00:00 GMT"}, `{"callId":"c1","errorCode":403002,"errorMessage":"Request has expired","statusCode":403,"statusReason":"Forbidden"}`},
		{"a Date of the year 9999", []string{"Fri, 31 Dec 9999 23:59:59 GMT"}, `{"callId":"c1","errorCode":403002,"errorMessage":"Request has expired","statusCode":403,"statusReason":"Forbidden"}`},
		// The same Dates on an answer that succeeds must leave the clock too.
		{"success, a Date before 1970", []string{"Fri, 01 Jan 1960 00:00:00 GMT"}, `{"callId":"c1","errorCode":0,"statusCode":200,"statusReason":"OK"}`},
		{"success, a Date of the year 1", []string{"Mon, 01 Jan 0001 00:00:00 GMT"}, `{"callId":"c1","errorCode":0,"statusCode":200,"statusReason":"OK"}`},
		{"success, a Date of the year 9999", []string{"Fri, 31 Dec 9999 23:59:59 GMT"}, `{"callId":"c1","errorCode":0,"statusCode":200,"statusReason":"OK"}`},
	} {
		var requests atomic.Int32
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			requests.Add(1)
			w.Header()["Date"] = tt.date // nil: net/http sends no Date
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, tt.body)
		}))
		c, err := New(PartnerSecret(labAPIKey, labSecret), WithBaseURL(srv.URL))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err = c.Call(ctx, "socialize.setUserInfo", Params{"UID": "u1", "userInfo": "{}"})
		cancel()
		srv.Close()
		var e *Error
		if strings.HasPrefix(tt.name, "success") {
			if err != nil || requests.Load() != 1 || c.ClockOffset() != 0 {
				t.Errorf("%s: %v after %d requests, clock offset %v; want success after 1, offset 0", tt.name, err, requests.Load(), c.ClockOffset())
			}
		} else if !errors.As(err, &e) || e.Code != 403002 || requests.Load() != 1 || c.ClockOffset() != 0 {
			t.Errorf("%s: %T %v after %d requests, clock offset %v; want the 403002 after 1, offset 0", tt.name, err, err, requests.Load(), c.ClockOffset())
		}
	}
}

// TestNilContext: a call given a nil Context fails with an error that says so, and
// sends nothing, with the default HTTP client (whose call timeout panicked on it in
// context.WithTimeout) and with one of the caller's (where net/http refused it).
func TestNilContext(t *testing.T) {
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { requests.Add(1) }))
	defer srv.Close()
	var nilCtx context.Context
	for _, opts := range [][]Option{nil, {WithHTTPClient(&http.Client{})}} {
		c, err := New(PartnerSecret(labAPIKey, labSecret), append([]Option{WithBaseURL(srv.URL)}, opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.GetUserInfo(nilCtx, "u1")
		if err == nil || !strings.Contains(err.Error(), "nil Context") || ErrorCode(err) != 500000 {
			t.Errorf("a nil Context (%d options): %v", len(opts), err)
		}
	}
	if n := requests.Load(); n != 0 {
		t.Errorf("%d requests sent with a nil Context", n)
	}
}

// TestAnswerTimeNeverSetsTheClock: the client's clock follows the Date header alone,
// never an answer's time field, which it reads only when it is RFC 3339 within the
// years 0000-9999 (else Response.Time is zero, as for an answer without one). A server
// 3 hours ahead by its Date, writing a time that is not RFC 3339 (an offset of +24:00,
// which time.Time's MarshalJSON cannot write) or 9999-12-31 an hour behind UTC (the
// year 10000), gets its retry after 403002, the offset of its Date; one that sends no
// Date gets no retry, whatever its time says.
func TestAnswerTimeNeverSetsTheClock(t *testing.T) {
	const skew = 3 * time.Hour
	var attempts atomic.Int32
	var noDate atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		attempts.Add(1)
		now := time.Now().Add(skew)
		if noDate.Load() {
			w.Header()["Date"] = nil // net/http adds none then
		} else {
			w.Header().Set("Date", now.UTC().Format(http.TimeFormat))
		}
		ts, _ := gigya.ParseTimestamp(r.PostForm.Get("timestamp"))
		if d := now.Sub(ts); d > 2*time.Minute || d < -2*time.Minute {
			fmt.Fprintf(w, `{"callId":"c1","errorCode":403002,"errorDetails":"Request has expired","statusCode":403,"time":"9999-12-31T23:59:59.000-01:00"}`)
			return
		}
		fmt.Fprintf(w, `{"callId":"c2","errorCode":0,"statusCode":200,"time":"%s+24:00"}`, now.UTC().Format("2006-01-02T15:04:05.000"))
	}))
	defer srv.Close()

	c, err := New(PartnerSecret(labAPIKey, labSecret), WithBaseURL(srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Call(context.Background(), "socialize.getUserInfo", Params{"UID": "u1"})
	if err != nil || attempts.Load() != 2 {
		t.Fatalf("%v after %d attempts, want success after 2", err, attempts.Load())
	}
	if d := c.ClockOffset() - skew; d.Abs() > 2*time.Second {
		t.Errorf("offset %v, want about %v (the Date header's)", c.ClockOffset(), skew)
	}
	if !resp.Time.IsZero() {
		t.Errorf("Response.Time %v from a time with an offset of +24:00, want zero", resp.Time)
	}
	if _, err := json.Marshal(resp.Time); err != nil {
		t.Errorf("Response.Time does not marshal: %v", err)
	}

	noDate.Store(true)
	attempts.Store(0)
	c, err = New(PartnerSecret(labAPIKey, labSecret), WithBaseURL(srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Call(context.Background(), "socialize.getUserInfo", Params{"UID": "u1"})
	if ErrorCode(err) != 403002 || attempts.Load() != 1 || c.ClockOffset() != 0 {
		t.Errorf("no Date: %v after %d attempts, offset %v; want 403002 after 1, offset 0", err, attempts.Load(), c.ClockOffset())
	}
}

// TestTransportErrorSaysTheURLOnce: a call that got no answer names its URL once;
// net/http's `Post "URL": ` before the cause repeated it (found by the documentation
// walk of the thirty-third session, in socius call's message for a closed port). The
// chain under it is kept: errors.As still finds the *url.Error, and a context's end
// beside it is still said.
func TestTransportErrorSaysTheURLOnce(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	ln.Close()
	c, err := New(PartnerSecret(labAPIKey, labSecret), WithBaseURL(base), WithRetries(0))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Call(context.Background(), "socialize.getUserInfo", Params{"UID": "u1"})
	endpoint := base + "/socialize.getUserInfo"
	var ue *url.Error
	if err == nil || !errors.As(err, &ue) {
		t.Fatalf("a closed port: %T %v; want a *url.Error under it", err, err)
	}
	msg := err.Error()
	if strings.Count(msg, endpoint) != 1 || strings.Contains(msg, `Post "`) ||
		!strings.HasPrefix(msg, "socialize.getUserInfo: POST "+endpoint+": dial tcp ") || !strings.Contains(msg, "connection refused") {
		t.Errorf("a closed port: %q; want the URL once and the dial's cause", msg)
	}

	// The cause of a call ended while it waited to try again holds both errors; the
	// URL is still said once.
	te := &TransportError{Method: "socialize.getUserInfo", URL: endpoint, Attempts: 2,
		Err: fmt.Errorf("%w; the last attempt: %w", context.DeadlineExceeded, ue)}
	if got := te.Error(); strings.Count(got, endpoint) != 1 || !strings.Contains(got, "context deadline exceeded; the last attempt: dial tcp ") ||
		!strings.HasSuffix(got, " (after 2 attempts)") {
		t.Errorf("two causes: %q", got)
	}
}

// TestSecretRefusalSaysWhatIsWrong: a secret that is not standard base64 is refused
// saying what is wrong with it (here a URL-safe base64 character, named by its place
// only, and a length), not with Go's "illegal base64 data at input byte N", by New and
// by the signature helpers.
func TestSecretRefusalSaysWhatIsWrong(t *testing.T) {
	for _, tc := range []struct{ secret, want string }{
		{"abcdefghijklmnop-rst", `character 17 is not in the standard base64 alphabet`},
		{"abc", "not a multiple of 4"},
	} {
		_, err := New(PartnerSecret(labAPIKey, tc.secret))
		if err == nil || !strings.Contains(err.Error(), "client: secret: not standard base64: ") || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "illegal") {
			t.Errorf("New with secret %q: %v; want it to say %q", tc.secret, err, tc.want)
		}
		_, _, err = RequestSignature(tc.secret, "POST", "http://localhost/socialize.getUserInfo", nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "illegal") {
			t.Errorf("RequestSignature with secret %q: %v; want it to say %q", tc.secret, err, tc.want)
		}
	}
}

// TestAnswerValuesInErrorsEscaped: a getUserInfo answer whose age is no whole number
// (at the top level or in an identity) and a getToken answer whose expires_in is no
// number of seconds fail with errors that quote the value escaped, as the other
// server text in the client's errors, and clipped: the value is the server's, sent
// raw in its JSON (U+009B, a terminal's CSI; U+202E) and as long as it likes.
func TestAnswerValuesInErrorsEscaped(t *testing.T) {
	long := strings.Repeat("9x", 50_000)
	for _, tt := range []struct {
		name, body string
		call       func(*Client) error
		want       string
	}{
		{"age", "{\"errorCode\":0,\"UID\":\"u1\",\"age\":\"3\u009b31m\u202e1\"}", nil, `age "3\u009b31m\u202e1" is not a whole number`},
		{"identity's age", "{\"errorCode\":0,\"UID\":\"u1\",\"identities\":[{\"provider\":\"site\",\"age\":\"\u009b2J\"}]}", nil, `identity site: age "\u009b2J" is not a whole number`},
		{"long age", `{"errorCode":0,"UID":"u1","age":"` + long + `"}`, nil, `age "9x9x`},
		{"expires_in", "{\"errorCode\":0,\"access_token\":\"t\",\"expires_in\":\"1\u009b31m\u202e\"}", func(c *Client) error {
			_, err := c.GetToken(context.Background(), GetTokenRequest{})
			return err
		}, `expires_in "1\u009b31m\u202e" is not a number of seconds`},
	} {
		c := newTestClient(t, PartnerSecret(labAPIKey, labSecret), &capture{next: func(int, *http.Request) (*http.Response, error) {
			return &http.Response{StatusCode: 200, Header: http.Header{}, Body: io.NopCloser(strings.NewReader(tt.body))}, nil
		}})
		call := tt.call
		if call == nil {
			call = func(c *Client) error { _, err := c.GetUserInfo(context.Background(), "u1"); return err }
		}
		err := call(c)
		if err == nil {
			t.Fatalf("%s: no error", tt.name)
		}
		s := err.Error()
		for _, r := range s {
			if r == utf8.RuneError || !strconv.IsPrint(r) {
				t.Errorf("%s: the error has %q: %q", tt.name, r, s)
				break
			}
		}
		if !strings.Contains(s, tt.want) {
			t.Errorf("%s: the error %.300q does not say %q", tt.name, s, tt.want)
		}
		if len(s) > 300 {
			t.Errorf("%s: the error is %d bytes long", tt.name, len(s))
		}
	}
}

// TestRequestSignatureURLErrorShowsNoQuery: a URL that RequestSignature cannot use (no
// scheme, as when copied without it from the REST documentation's
// https://...?apiKey=...&userKey=...&secret=..., or one that does not parse) is
// refused without its query, fragment or password, where a secret can be.
func TestRequestSignatureURLErrorShowsNoQuery(t *testing.T) {
	for _, raw := range []string{
		"socialize.us1.gigya.com/socialize.setUserInfo?apiKey=k&secret=S3cr3tS3cr3t",
		"https://socialize us1/socialize.setUserInfo?secret=S3cr3tS3cr3t",
		"https://socialize.us1.gigya.com/socialize.setUserInfo%zz?secret=S3cr3tS3cr3t#S3cr3tS3cr3t",
		"https://user:S3cr3tS3cr3t@[::1/socialize.setUserInfo",
		"//user:S3cr3tS3cr3t@/socialize.setUserInfo",
	} {
		_, _, err := RequestSignature(labSecret, "POST", raw, url.Values{"UID": {"u1"}})
		if err == nil {
			t.Errorf("%s: no error", raw)
			continue
		}
		if strings.Contains(err.Error(), "S3cr3t") {
			t.Errorf("%s: the error shows the secret: %v", raw, err)
		}
	}
}

// TestRefusedIDsClipped: an apiKey or userKey that New refuses is quoted in its error
// clipped to 16 bytes (4 for one that does not start as an apiKey: a secret in its
// place), with its length and, in one of at most 128 bytes, the byte that made it
// refused: it was quoted whole, a megabyte as a megabyte, and a secret given in its
// place (read with its newline) whole into an error that is often logged.
func TestRefusedIDsClipped(t *testing.T) {
	mega := "3_" + strings.Repeat("a", 1<<20)
	for _, tt := range []struct {
		name string
		cred Credentials
		want string
	}{
		{"a megabyte apiKey", PartnerSecret(mega, labSecret),
			`client: apiKey "3_aaaaaaaaaaaaaa"... (1048578 bytes): 1 to 128 printable characters`},
		// A secret in its place (no apiKey, whose digits and "_" a secret never holds)
		// is shown by 4 bytes at most, as the server's logs show it (unknownID): 16 were
		// half a secret.
		{"a secret with its newline as apiKey", PartnerSecret(labSecret+"\n", labSecret),
			fmt.Sprintf(`client: apiKey %q... (%d bytes, "\n" at byte %d): 1 to 128 printable characters`, labSecret[:4], len(labSecret)+1, len(labSecret)+1)},
		{"a megabyte userKey", UserKey(labAPIKey, mega, labUserSec),
			`client: userKey "3_aaaaaaaaaaaaaa"... (1048578 bytes): 1 to 128 printable characters`},
		{"both of UserKeyRSA", UserKeyRSA(mega, labUserSec+"\n", nil),
			fmt.Sprintf(`client: apiKey "3_aaaaaaaaaaaaaa"... (1048578 bytes) and userKey %q... (%d bytes, "\n" at byte %d): 1 to 128 printable characters each`, labUserSec[:4], len(labUserSec)+1, len(labUserSec)+1)},
		// A short one is quoted whole, as before.
		{"a short apiKey", PartnerSecret("3_a b", labSecret), `client: apiKey "3_a b": 1 to 128 printable characters`},
	} {
		_, err := New(tt.cred, WithBaseURL("https://socius.test"))
		if err == nil || err.Error() != tt.want {
			t.Errorf("%s: %.300v, want %q", tt.name, err, tt.want)
		}
	}
}
