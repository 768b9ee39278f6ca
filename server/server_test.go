package server

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/socius/socius"
	"github.com/socius/socius/gigya"
	"github.com/socius/socius/nonce"
	"github.com/socius/socius/sqlite"
)

// The lab site of the shared captures, a key of it, and the fixed time of the tests'
// server clock (signed requests made for it stay valid).
const (
	labAPIKey  = "3_LabApiKey_AbC-123"
	labSecret  = "c2VjcmV0LWZvci10aGUtZ2lneWEtbGFiLTEyMzQ1Ng=="
	labUserKey = "AUserKeyLab1"
	labKeySec  = "dXNlci1zZWNyZXQtZm9yLWxhYg=="
)

var labTime = time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)

type fixedClock struct{ t time.Time }

func (c fixedClock) Now() time.Time { return c.t }

// newTestServer returns a Server on a real SQLite store in a temp folder, with the lab
// site, a key of it limited to getUserInfo and setUserInfo, and the user u1. Its log
// goes to logs when not nil.
func newTestServer(tb testing.TB, dir string, logs io.Writer) *Server {
	tb.Helper()
	st, err := sqlite.Open(filepath.Join(dir, "socius.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	ctx := context.Background()
	if err := st.CreateSite(ctx, &socius.Site{APIKey: labAPIKey, Secret: labSecret, Name: "lab", CreatedAt: labTime}); err != nil {
		tb.Fatal(err)
	}
	if err := st.CreateKey(ctx, &socius.Key{UserKey: labUserKey, APIKey: labAPIKey, Secret: labKeySec,
		Methods: []string{"socialize.getUserInfo", "socialize.setUserInfo"}, CreatedAt: labTime}); err != nil {
		tb.Fatal(err)
	}
	var p socius.Patch
	p.Set(socius.FirstName, "Ada")
	if _, err := st.Login(ctx, labAPIKey, "u1", &p, labTime); err != nil {
		tb.Fatal(err)
	}
	if logs == nil {
		logs = io.Discard
	}
	return New(Config{
		Store:  st,
		Nonces: nonce.New(0),
		Clock:  fixedClock{labTime},
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
}

// TestCancelledCall: a call whose client has gone (its context is cancelled) is
// answered 504002 and logged at debug level, not as a 500001 server failure.
func TestCancelledCall(t *testing.T) {
	var logs bytes.Buffer
	s := newTestServer(t, t.TempDir(), &logs)
	for _, tt := range []struct{ method, body string }{
		{"socialize.setUserInfo", "UID=u1&userInfo=%7B%22nickname%22%3A%22x%22%7D"},
		{"socialize.getUserInfo", "UID=u1"},
		{"socialize.notifyLogin", "siteUID=u2"},
	} {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		body := "apiKey=" + labAPIKey + "&secret=" + url.QueryEscape(labSecret) + "&" + tt.body
		r := httptest.NewRequestWithContext(ctx, "POST", "https://socialize.localtest/"+tt.method, strings.NewReader(body))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.TLS = &tls.ConnectionState{}
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		if !strings.Contains(w.Body.String(), `"errorCode":504002`) {
			t.Errorf("%s with a cancelled context: %s", tt.method, w.Body)
		}
	}
	if strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("a cancelled call is logged as an error:\n%s", logs.String())
	}
}

// TestUserInfoKeyLimit: a userInfo object may have at most maxUserInfoKeys keys, so
// that its ignoredParams stay small.
func TestUserInfoKeyLimit(t *testing.T) {
	obj := func(n int) string {
		keys := make([]string, n)
		for i := range keys {
			keys[i] = `"k` + strconv.Itoa(i) + `":0` // distinct: a key given twice is ignored once
		}
		return "{" + strings.Join(keys, ",") + "}"
	}
	c := &call{}
	if _, err := c.userInfo("userInfo", obj(maxUserInfoKeys)); err != nil {
		t.Errorf("%d keys: %v", maxUserInfoKeys, err)
	}
	if len(c.ignored) != maxUserInfoKeys {
		t.Errorf("%d keys ignored, want %d", len(c.ignored), maxUserInfoKeys)
	}
	c = &call{}
	_, err := c.userInfo("userInfo", obj(maxUserInfoKeys+1))
	if socius.ErrorCode(err) != socius.CodeInvalidValue || !strings.Contains(err.Error(), "more than 256 keys") {
		t.Errorf("%d keys: %v", maxUserInfoKeys+1, err)
	}
}

// serve runs one request through s and returns the recorder.
func serve(s *Server, r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	return w
}

// TestCookieDomain: a browser notifyLogin names the host the call reached, without
// its port or an IPv6 address's brackets, and leaves cookieDomain out when the request
// names no host (SPEC 4: a field without data is left out, never "").
func TestCookieDomain(t *testing.T) {
	s := newTestServer(t, t.TempDir(), nil)
	for i, tt := range []struct{ host, want string }{
		{"socialize.localtest", `"cookieDomain":"socialize.localtest"`},
		{"socialize.localtest:8443", `"cookieDomain":"socialize.localtest"`},
		{"[::1]:8443", `"cookieDomain":"::1"`},
		{"[::1]", `"cookieDomain":"::1"`},
		{"", ""},
	} {
		body := "apiKey=" + labAPIKey + "&secret=" + url.QueryEscape(labSecret) + "&siteUID=cookie-" + string(rune('a'+i))
		r := httptest.NewRequest("POST", "https://socialize.localtest/socialize.notifyLogin", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.TLS = &tls.ConnectionState{}
		r.Host = tt.host
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		got := w.Body.String()
		if !strings.Contains(got, `"errorCode":0`) || !strings.Contains(got, `"cookiePath":"/"`) {
			t.Fatalf("Host %q: %s", tt.host, got)
		}
		if tt.want == "" {
			if strings.Contains(got, "cookieDomain") {
				t.Errorf("Host %q: cookieDomain sent: %s", tt.host, got)
			}
		} else if !strings.Contains(got, tt.want) {
			t.Errorf("Host %q: %s, want %s", tt.host, got, tt.want)
		}
	}
}

// TestTimestampWindowEdges: a signed request's timestamp may be the whole window from
// the server's time, behind or ahead, and not a second (or a millisecond) more (SPEC 4:
// outside +-120 s is 403002), whatever the fraction of the server's second: a
// timestamp in whole seconds is the client's clock cut to its second, and was compared
// with the server's uncut (119.6 s behind refused, 120.9 s ahead taken). A request
// taken in the window's last second is still a replay when sent again.
func TestTimestampWindowEdges(t *testing.T) {
	s := newTestServer(t, t.TempDir(), nil)
	for _, frac := range []time.Duration{0, 500 * time.Millisecond, 999 * time.Millisecond} {
		at := labTime.Add(frac)
		s.cfg.Clock = fixedClock{at}
		sec := func(d time.Duration) string { return strconv.FormatInt(at.Add(d).Unix(), 10) }
		ms := func(d time.Duration) string { return strconv.FormatInt(at.Add(d).UnixMilli(), 10) }
		for i, tt := range []struct {
			timestamp string
			want      string
		}{
			{sec(-DefaultSkew), `"errorCode":0`},
			{sec(DefaultSkew), `"errorCode":0`},
			{ms(-DefaultSkew), `"errorCode":0`},
			{ms(DefaultSkew), `"errorCode":0`},
			{sec(-DefaultSkew - time.Second), `"errorCode":403002`},
			{sec(DefaultSkew + time.Second), `"errorCode":403002`},
			{ms(-DefaultSkew - time.Millisecond), `"errorCode":403002`},
			{ms(DefaultSkew + time.Millisecond), `"errorCode":403002`},
		} {
			body := signedBody("socialize.getUserInfo", fmt.Sprintf("edge-%d-%d", frac, i), url.Values{"UID": {"u1"}, "timestamp": {tt.timestamp}})
			if got := send(s, nil, "socialize.getUserInfo", body); !strings.Contains(got, tt.want) {
				t.Errorf("timestamp %s at %s: %s, want %s", tt.timestamp, at.Format("15:04:05.000"), got, tt.want)
			}
		}
	}
	// Taken at the start of its second, sent again in the last of the window.
	s.cfg.Clock = fixedClock{labTime}
	body := signedBody("socialize.getUserInfo", "edge-replay", url.Values{"UID": {"u1"}, "timestamp": {strconv.FormatInt(labTime.Unix(), 10)}})
	if got := send(s, nil, "socialize.getUserInfo", body); !strings.Contains(got, `"errorCode":0`) {
		t.Fatalf("first: %s", got)
	}
	s.cfg.Clock = fixedClock{labTime.Add(DefaultSkew + 999*time.Millisecond)}
	if got := send(s, nil, "socialize.getUserInfo", body); !strings.Contains(got, `"errorCode":403004`) {
		t.Errorf("sent again %v later: %s, want 403004", DefaultSkew+999*time.Millisecond, got)
	}
	// The memory store keeps nonces by the second; PostgreSQL's compares milliseconds,
	// so the nonce's expiry itself covers that last second.
	c := &call{now: labTime}
	if exp := s.nonceExpiry(c, labTime); exp.Before(labTime.Add(DefaultSkew + time.Second)) {
		t.Errorf("a nonce of a request taken at its timestamp expires %v later, before the window's last second ends", exp.Sub(labTime))
	}
}

// TestTimestampWindowFraction: a 403002 states the window as configured, its fraction
// kept: --clock-skew 1500ms said "by more than 1 s", and 500ms "by more than 0 s".
func TestTimestampWindowFraction(t *testing.T) {
	s := newTestServer(t, t.TempDir(), nil)
	s.cfg.Clock = fixedClock{labTime}
	for i, skew := range []time.Duration{1500 * time.Millisecond, 500 * time.Millisecond} {
		s.cfg.Skew = skew
		ts := strconv.FormatInt(labTime.Add(-2*time.Second).UnixMilli(), 10)
		body := signedBody("socialize.getUserInfo", fmt.Sprintf("fraction-%d", i), url.Values{"UID": {"u1"}, "timestamp": {ts}})
		want := fmt.Sprintf("by more than %s s", strconv.FormatFloat(skew.Seconds(), 'f', -1, 64))
		if got := send(s, nil, "socialize.getUserInfo", body); !strings.Contains(got, `"errorCode":403002`) || !strings.Contains(got, want) {
			t.Errorf("--clock-skew %v, a timestamp 2 s behind: %s, want 403002 saying %q", skew, got, want)
		}
	}
}

// TestNotBefore: a node that lost the nonces of the requests before its start refuses
// those timed before it (or in its first second) for a window; not while its clock
// reads before the start (the emulator's, moved back), where every call was refused.
func TestNotBefore(t *testing.T) {
	s := newTestServer(t, t.TempDir(), nil)
	start := labTime.Add(500 * time.Millisecond)
	s.cfg.NotBefore = start
	for i, tt := range []struct {
		clock time.Time
		ts    time.Time
		want  string
	}{
		{start.Add(time.Second), labTime.Add(-5 * time.Second), `"errorCode":403002`}, // before the start
		{start.Add(time.Second), labTime, `"errorCode":403002`},                       // in its second
		{start.Add(time.Second), labTime.Add(time.Second), `"errorCode":0`},           // after it
		{start.Add(-10 * time.Minute), labTime.Add(-10 * time.Minute), `"errorCode":0`},
	} {
		s.cfg.Clock = fixedClock{tt.clock}
		body := signedBody("socialize.getUserInfo", fmt.Sprintf("nb-%d", i), url.Values{"UID": {"u1"}, "timestamp": {strconv.FormatInt(tt.ts.Unix(), 10)}})
		got := send(s, nil, "socialize.getUserInfo", body)
		if !strings.Contains(got, tt.want) || strings.Contains(tt.want, "403002") && !strings.Contains(got, "before this server's start") {
			t.Errorf("at %v, timestamp %v: %s, want %s", tt.clock.Sub(start), tt.ts.Sub(start), got, tt.want)
		}
	}
}

// TestAnswerHeaders: every answer, a refusal too, may not be kept by a cache (it can
// hold a token, a sessionSecret or a profile) nor be sniffed as another type
// (docs/compatibility.md).
func TestAnswerHeaders(t *testing.T) {
	s := newTestServer(t, t.TempDir(), nil)
	for _, target := range []string{
		"/socialize.getUserInfo?apiKey=" + labAPIKey + "&secret=" + url.QueryEscape(labSecret) + "&UID=u1",
		"/socialize.getUserInfo?apiKey=" + labAPIKey + "&secret=" + url.QueryEscape(labSecret) + "&UID=u1&format=xml",
		"/socialize.getUserInfo?apiKey=" + labAPIKey + "&UID=u1&format=jsonp&callback=cb",
	} {
		r := httptest.NewRequest("GET", "https://socialize.localtest"+target, nil)
		r.TLS = &tls.ConnectionState{}
		w := serve(s, r)
		if got := w.Header().Get("Cache-Control"); got != "no-store" {
			t.Errorf("%s: Cache-Control %q, want no-store", target, got)
		}
		if got := w.Header().Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("%s: X-Content-Type-Options %q, want nosniff", target, got)
		}
	}
}

// panickyStore is a fault injected into a real store: User panics, as a bug would.
type panickyStore struct{ socius.Store }

func (panickyStore) User(context.Context, string, string) (*socius.User, error) {
	panic("injected: a bug in the store")
}

// TestPanicIsAnswered: a call that panics (a bug) is answered 500001 in the format it
// asked for, logged as an error with its stack, and the server goes on serving.
func TestPanicIsAnswered(t *testing.T) {
	var logs bytes.Buffer
	s := newTestServer(t, t.TempDir(), &logs)
	s.cfg.Store = panickyStore{s.cfg.Store}
	call := func(method, params string) string { return postWithSecret(s, method, params) }
	got := call("socialize.getUserInfo", "UID=u1&format=xml")
	if !strings.Contains(got, "<socialize.getUserInfoResponse ") || !strings.Contains(got, "<errorCode>500001</errorCode>") || strings.Contains(got, "injected") {
		t.Errorf("a panicking call answered %s", got)
	}
	if l := logs.String(); !strings.Contains(l, "level=ERROR") || !strings.Contains(l, "call panicked") || !strings.Contains(l, "injected: a bug in the store") || !strings.Contains(l, "server.panickyStore.User") {
		t.Errorf("the panic is not logged as an error with its stack:\n%s", l)
	}
	if got := call("socialize.setUserInfo", "UID=u1&userInfo=%7B%22nickname%22%3A%22after%22%7D"); !strings.Contains(got, `"errorCode":0`) {
		t.Errorf("a call after the panic: %s", got)
	}
}

// tokenFault is a fault injected into a real store: something happens just before a
// token is stored (with its login, for a user), or just after, as a concurrent call
// could do.
type tokenFault struct {
	socius.Store
	before, after func(ctx context.Context, st socius.Store, t *socius.Token) error
	created       *[]string // the hashes of the tokens stored
}

func (s tokenFault) around(ctx context.Context, t *socius.Token, store func() error) error {
	if s.before != nil {
		if err := s.before(ctx, s.Store, t); err != nil {
			return err
		}
	}
	if err := store(); err != nil {
		return err
	}
	*s.created = append(*s.created, t.Hash)
	if s.after != nil {
		return s.after(ctx, s.Store, t)
	}
	return nil
}

func (s tokenFault) CreateToken(ctx context.Context, t *socius.Token) error {
	return s.around(ctx, t, func() error { return s.Store.CreateToken(ctx, t) })
}

func (s tokenFault) LoginWithToken(ctx context.Context, apiKey, uid string, p *socius.Patch, now time.Time, t *socius.Token) (bool, error) {
	var created bool
	err := s.around(ctx, t, func() (err error) {
		created, err = s.Store.LoginWithToken(ctx, apiKey, uid, p, now, t)
		return err
	})
	return created, err
}

// userTokenCalls are the calls that log a user in and hand out a token of the user.
var userTokenCalls = []struct{ method, params, token string }{
	{"socialize.getToken", "grant_type=none&x_siteUID=", "access_token"},
	{"socialize.notifyLogin", "targetEnv=mobile&siteUID=", "sessionToken"},
}

// postWithSecret makes a call with the site's secret over HTTPS and returns the answer.
func postWithSecret(s *Server, method, params string) string {
	return postBody(s, nil, true, method, "apiKey="+labAPIKey+"&secret="+url.QueryEscape(labSecret)+"&"+params)
}

// postBody posts body to method, over HTTPS when secure, and returns the answer; ctx,
// when not nil, is the request's.
func postBody(s *Server, ctx context.Context, secure bool, method, body string) string {
	scheme := "http"
	if secure {
		scheme = "https"
	}
	r := httptest.NewRequest("POST", scheme+"://socialize.localtest/"+method, strings.NewReader(body))
	if ctx != nil {
		r = r.WithContext(ctx)
	}
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if secure {
		r.TLS = &tls.ConnectionState{}
	}
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	return w.Body.String()
}

// TestLoginAndTokenTogether: the login of getToken (x_siteUID) or of a mobile
// notifyLogin and its token are one store write. When the token cannot be stored (its
// hash taken, in the real store), the call fails and neither a new user nor a login of
// an existing one is left behind. And the token is the user's: a logout, deleteAccount
// or setUID right after the call ends or moves it as it does every other. (That a
// logout cannot fall between the login and the token is the store's to keep: the
// conformance suite's LoginWithTokenBesideLogouts, and in the postgres package
// TestTokenRevocationAtSnapshotIsolation.)
func TestLoginAndTokenTogether(t *testing.T) {
	ctx := context.Background()
	for _, call := range userTokenCalls {
		t.Run("token not stored, "+call.method, func(t *testing.T) {
			s := newTestServer(t, t.TempDir(), nil)
			st := s.cfg.Store
			var p socius.Patch
			p.Set(socius.Nickname, "before")
			if _, err := st.Login(ctx, labAPIKey, "old", &p, labTime); err != nil {
				t.Fatal(err)
			}
			if err := st.Logout(ctx, labAPIKey, "old", labTime); err != nil {
				t.Fatal(err)
			}
			var created []string
			s.cfg.Store = tokenFault{Store: st, created: &created,
				before: func(ctx context.Context, st socius.Store, tok *socius.Token) error {
					taken := *tok
					taken.UID = "someone-else"
					return st.CreateToken(ctx, &taken) // the hash is taken when the call's write comes
				}}
			userInfo := "&userInfo=" + url.QueryEscape(`{"nickname":"after"}`)
			if call.method == "socialize.getToken" {
				userInfo = "&x_userInfo=" + url.QueryEscape(`{"nickname":"after"}`)
			}
			for _, uid := range []string{"newbie", "old"} {
				got := postWithSecret(s, call.method, call.params+uid+userInfo)
				if strings.Contains(got, `"errorCode":0`) || strings.Contains(got, call.token) || !strings.Contains(got, `"errorDetails"`) {
					t.Errorf("%s: answer %s, want an error and no token", uid, got)
				}
			}
			if _, err := st.User(ctx, labAPIKey, "newbie"); !errors.Is(err, socius.ErrNotFound) {
				t.Errorf("the new user after the failed call: %v, want ErrNotFound", err)
			}
			if u, err := st.User(ctx, labAPIKey, "old"); err != nil || u.LoggedIn || u.Profile[socius.Nickname] != "before" {
				t.Errorf("the existing user after the failed call: %+v, %v; want logged out, nickname before", u, err)
			}
		})
	}

	ends := map[string]func(ctx context.Context, st socius.Store, t *socius.Token) error{
		"logout": func(ctx context.Context, st socius.Store, t *socius.Token) error {
			return st.Logout(ctx, t.APIKey, t.UID, labTime)
		},
		"deleteAccount": func(ctx context.Context, st socius.Store, t *socius.Token) error {
			return st.DeleteUser(ctx, t.APIKey, t.UID, labTime)
		},
		"setUID": func(ctx context.Context, st socius.Store, t *socius.Token) error {
			return st.RenameUser(ctx, t.APIKey, t.UID, t.UID+"-renamed")
		},
	}
	for name, end := range ends {
		for _, call := range userTokenCalls {
			t.Run(name+" right after "+call.method, func(t *testing.T) {
				s := newTestServer(t, t.TempDir(), nil)
				st := s.cfg.Store
				var created []string
				s.cfg.Store = tokenFault{Store: st, after: end, created: &created}
				if got := postWithSecret(s, call.method, call.params+"leaver"); !strings.Contains(got, `"errorCode":0`) || !strings.Contains(got, call.token) {
					t.Fatalf("answer %s", got)
				}
				if len(created) != 1 {
					t.Fatalf("%d tokens stored, want 1", len(created))
				}
				tok, err := st.Token(ctx, created[0])
				if err != nil {
					t.Fatal(err)
				}
				if name == "setUID" {
					if tok.UID != "leaver-renamed" || !tok.RevokedAt.IsZero() {
						t.Errorf("the token after setUID: %+v; want it live, moved to leaver-renamed", tok)
					}
				} else if tok.RevokedAt.IsZero() {
					t.Errorf("the token after %s: %+v; want it revoked", name, tok)
				}
			})
		}
	}
}

// TestCredentialsMaskedBeforeTheCut: a 403003's base strings, cut at maxBaseString
// bytes, hold no part of a credential's value, even one that straddles the cut: every
// credential parameter is masked before they are built.
func TestCredentialsMaskedBeforeTheCut(t *testing.T) {
	s := newTestServer(t, t.TempDir(), nil)
	var bases []string
	s.cfg.Observe = func(c *Call) { bases = append(bases, c.BaseStrings...) }
	const password = "Hunter2-Very-Secret-Password-Value"
	for pad := maxBaseString - 400; pad < maxBaseString+100; pad += 25 {
		form := url.Values{"apiKey": {labAPIKey}, "UID": {"u1"}, "timestamp": {strconv.FormatInt(labTime.Unix(), 10)},
			"nonce": {"n" + strconv.Itoa(pad)}, "sig": {"AAAAAAAAAAAAAAAAAAAAAAAAAAA="}, "context": {strings.Repeat("c", pad)},
			"password": {password}, "sessionSecret": {password}, "secret": {password}}
		r := httptest.NewRequest("POST", "https://socialize.localtest/socialize.getUserInfo", strings.NewReader(form.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.TLS = &tls.ConnectionState{} // a secret beside the sig: over HTTPS, or refused first
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		if !strings.Contains(w.Body.String(), `"errorCode":403003`) {
			t.Fatalf("pad %d: %s", pad, w.Body)
		}
	}
	if len(bases) == 0 {
		t.Fatal("no base strings observed")
	}
	for _, b := range bases {
		if strings.Contains(b, "Hunter2") {
			t.Fatalf("a base string holds part of a credential: ...%s", b[max(0, len(b)-120):])
		}
	}
}

// TestCredentialValuesHiddenEverywhere: a credential's value sent again in another
// parameter (the secret as the context too) reaches no observer in any form: not in
// the parameters, the details (the emulator's, which quote a base string) nor the base
// strings; and a secret sent as apiKey, userKey or client_id is named as an unknown
// apiKey is, while the apiKey of a site the call found is shown whole.
func TestCredentialValuesHiddenEverywhere(t *testing.T) {
	s := newTestServer(t, t.TempDir(), nil)
	s.cfg.ExplainSignatures = true
	var calls []Call
	s.cfg.Observe = func(c *Call) { calls = append(calls, *c) }
	const sent = "ZW11bGF0b3Itc2VjcmV0LXZhbHVlLTEyMzQ1Njc4OQ==" // escaped, it changes
	send := func(form url.Values) string {
		method, ct := "socialize.getUserInfo", "application/x-www-form-urlencoded"
		if form.Has("grant_type") {
			method = "socialize.getToken"
		}
		if v := form.Get("Content-Type"); v != "" {
			ct = v
			form.Del("Content-Type")
		}
		r := httptest.NewRequest("POST", "https://socialize.localtest/"+method, strings.NewReader(form.Encode()))
		r.Header.Set("Content-Type", ct)
		r.TLS = &tls.ConnectionState{}
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		return w.Body.String()
	}
	body := send(url.Values{"apiKey": {labAPIKey}, "UID": {"u1"}, "timestamp": {strconv.FormatInt(labTime.Unix(), 10)},
		"nonce": {"n1"}, "sig": {"AAAAAAAAAAAAAAAAAAAAAAAAAAA="}, "secret": {sent}, "context": {sent}, "note": {"x" + sent + "y"}})
	if !strings.Contains(body, `"errorCode":403003`) {
		t.Fatalf("answer: %s", body)
	}
	for _, form := range []url.Values{
		{"apiKey": {sent}, "UID": {"u1"}, "secret": {labSecret}},
		{"apiKey": {labAPIKey}, "userKey": {sent}, "UID": {"u1"}, "secret": {labKeySec}},
		{"client_id": {sent}, "client_secret": {labSecret}, "grant_type": {"none"}},
		// Values that errorDetails quote, cut as names are.
		{"client_id": {labAPIKey}, "client_secret": {labSecret}, "grant_type": {sent}},
		{"apiKey": {labAPIKey}, "UID": {"u1"}, "Content-Type": {"text/" + sent}},
	} {
		send(form)
	}
	if len(calls) != 6 {
		t.Fatalf("%d calls observed", len(calls))
	}
	if len(calls[0].BaseStrings) == 0 || !strings.Contains(calls[0].Details, "POST&") {
		t.Fatalf("no base strings observed: %+v", calls[0])
	}
	for i, c := range calls {
		text := fmt.Sprintf("%+v", c)
		if i >= 4 {
			text = c.Details // the parameters hold what was sent, in no credential's place
		}
		for _, form := range []string{sent[4:20], gigya.Escape(sent), gigya.Escape(gigya.Escape(sent))} { // what a cut leaves too
			if strings.Contains(text, form) {
				t.Errorf("call %d: an observer sees %q: %s", i, form, text)
			}
		}
	}
	value := func(c Call, name string) string {
		for _, p := range c.Params {
			if p.Name == name {
				return p.Value
			}
		}
		return ""
	}
	if v := value(calls[0], "apiKey"); v != labAPIKey {
		t.Errorf("the apiKey of the site found: %q", v)
	}
	if v := value(calls[0], "note"); v != "x***y" {
		t.Errorf("note: %q", v)
	}
	if v := value(calls[1], "apiKey"); !strings.Contains(v, "(length 44)") {
		t.Errorf("a secret sent as apiKey: %q", v)
	}
	// The secret sent as the apiKey and as the secret: masked whole, not named as an
	// unknown apiKey of three characters.
	send(url.Values{"apiKey": {sent}, "UID": {"u1"}, "secret": {sent}})
	if v := value(calls[len(calls)-1], "apiKey"); v != "***" {
		t.Errorf("a secret sent as apiKey and as secret: %q", v)
	}
}

// TestTokenOfADeletedKey: a key deleted between a call's authentication and its
// token's write refuses the call (403005) and stores nothing: no token, and no login
// for a user token (getToken with x_siteUID, a mobile notifyLogin), nor for a client
// token (getToken without); a key created again under the name finds no token of the
// call. A key deleted right after the write takes the token with it, as it takes every
// token it obtained: the call, which came first, succeeds.
func TestTokenOfADeletedKey(t *testing.T) {
	ctx := context.Background()
	key := &socius.Key{UserKey: "ATokenKey", APIKey: labAPIKey, Secret: labKeySec, CreatedAt: labTime,
		Methods: []string{"socialize.getToken", "socialize.notifyLogin", "socialize.getUserInfo"}}
	deleteKey := func(ctx context.Context, st socius.Store, tok *socius.Token) error {
		return st.DeleteKey(ctx, tok.UserKey)
	}
	post := func(s *Server, method, params string) string {
		return postBody(s, nil, true, method, "apiKey="+labAPIKey+"&userKey=ATokenKey&secret="+url.QueryEscape(labKeySec)+"&"+params)
	}
	calls := []struct{ method, params, token, uid string }{
		{"socialize.getToken", "grant_type=none&x_siteUID=keyless", "access_token", "keyless"},
		{"socialize.notifyLogin", "targetEnv=mobile&siteUID=keyless", "sessionToken", "keyless"},
		{"socialize.getToken", "grant_type=none", "access_token", ""},
	}
	for _, call := range calls {
		name := call.method + " " + call.params
		t.Run("before the write, "+name, func(t *testing.T) {
			s := newTestServer(t, t.TempDir(), nil)
			st := s.cfg.Store
			if err := st.CreateKey(ctx, key); err != nil {
				t.Fatal(err)
			}
			var created []string
			var tried *socius.Token
			s.cfg.Store = tokenFault{Store: st, created: &created,
				before: func(ctx context.Context, st socius.Store, tok *socius.Token) error {
					tried = tok
					return deleteKey(ctx, st, tok)
				}}
			if got := post(s, call.method, call.params); !strings.Contains(got, `"errorCode":403005`) || !strings.Contains(got, "userKey ATokenKey was deleted while its token was issued") || strings.Contains(got, call.token) {
				t.Fatalf("answer %s", got)
			}
			if tried == nil || len(created) != 0 {
				t.Fatalf("tokens tried %v, stored %d; want one tried, none stored", tried, len(created))
			}
			if err := st.CreateKey(ctx, key); err != nil { // the key again, under the same name
				t.Fatal(err)
			}
			if tok, err := st.Token(ctx, tried.Hash); !errors.Is(err, socius.ErrNotFound) {
				t.Errorf("the call's token: %+v, %v; want none", tok, err)
			}
			if call.uid != "" {
				if _, err := st.User(ctx, labAPIKey, call.uid); !errors.Is(err, socius.ErrNotFound) {
					t.Errorf("the user of the refused call: %v; want ErrNotFound", err)
				}
			}
		})
		t.Run("after the write, "+name, func(t *testing.T) {
			s := newTestServer(t, t.TempDir(), nil)
			st := s.cfg.Store
			if err := st.CreateKey(ctx, key); err != nil {
				t.Fatal(err)
			}
			var created []string
			s.cfg.Store = tokenFault{Store: st, created: &created, after: deleteKey}
			if got := post(s, call.method, call.params); !strings.Contains(got, `"errorCode":0`) || !strings.Contains(got, call.token) {
				t.Fatalf("answer %s", got)
			}
			if len(created) != 1 {
				t.Fatalf("%d tokens stored, want 1", len(created))
			}
			if tok, err := st.Token(ctx, created[0]); !errors.Is(err, socius.ErrNotFound) {
				t.Errorf("the token after its key's deletion: %+v, %v; want none", tok, err)
			}
		})
	}
	// A mobile notifyLogin made with a token the key obtained, the key deleted before
	// the session's write: the call's token went with the key, and the answer is what
	// the call would have got a moment later, 403025; it was the key's 403005.
	t.Run("before the write, a session made with the key's token", func(t *testing.T) {
		s := newTestServer(t, t.TempDir(), nil)
		st := s.cfg.Store
		if err := st.CreateKey(ctx, key); err != nil {
			t.Fatal(err)
		}
		a := tokenFrom(t, post(s, "socialize.getToken", "grant_type=none&x_siteUID=keyless"))
		var created []string
		s.cfg.Store = tokenFault{Store: st, created: &created, before: deleteKey}
		if got := postBody(s, nil, true, "socialize.notifyLogin", "oauth_token="+a.AccessToken+"&targetEnv=mobile"); !strings.Contains(got, `"errorCode":403025`) ||
			!strings.Contains(got, "the userKey that obtained the token of this call was deleted while the call ran") || strings.Contains(got, "sessionToken") {
			t.Errorf("answer %s", got)
		}
		if len(created) != 0 {
			t.Errorf("%d tokens stored, want none", len(created))
		}
	})
	// A key of the name found of another site when the token is used (deleted and
	// created there meanwhile) lends the token none of its permissions.
	t.Run("key of another site at use", func(t *testing.T) {
		s := newTestServer(t, t.TempDir(), nil)
		st := s.cfg.Store
		if err := st.CreateKey(ctx, key); err != nil {
			t.Fatal(err)
		}
		a := tokenFrom(t, post(s, "socialize.getToken", "grant_type=none"))
		s.cfg.Store = keyElsewhere{st}
		if got := postBody(s, nil, true, "socialize.getUserInfo", "oauth_token="+a.AccessToken+"&UID=u1"); !strings.Contains(got, `"errorCode":403025`) || !strings.Contains(got, "the userKey that obtained the token no longer exists") {
			t.Errorf("answer %s", got)
		}
	})
}

// keyElsewhere is a fault injected into a real store: every key is found of another site.
type keyElsewhere struct{ socius.Store }

func (s keyElsewhere) Key(ctx context.Context, userKey string) (*socius.Key, error) {
	k, err := s.Store.Key(ctx, userKey)
	if err == nil {
		k.APIKey = "3_Elsewhere"
	}
	return k, err
}

// TestExpiryEdges: a token is expired from the instant its lifetime ends, and a bearer
// JWT from the instant of its exp claim (RFC 7519: the time must be before it), not a
// nanosecond later.
func TestExpiryEdges(t *testing.T) {
	s := newTestServer(t, t.TempDir(), nil)
	a := siteToken(t, s, "&x_sessionExpiration=60")
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := socius.EncodeRSAPublicKey(&priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cfg.Store.CreateKey(context.Background(), &socius.Key{UserKey: "AJwtKey", APIKey: labAPIKey, Secret: labKeySec, PublicKey: pub, CreatedAt: labTime}); err != nil {
		t.Fatal(err)
	}
	end := labTime.Add(60 * time.Second)
	seg := func(v any) string { b, _ := json.Marshal(v); return base64.RawURLEncoding.EncodeToString(b) }
	// jwtCall calls getUserInfo with a bearer JWT of the key, whose exp is exp.
	jwtCall := func(exp int64, jti string) string {
		input := seg(map[string]any{"alg": "RS256", "kid": "AJwtKey"}) + "." + seg(map[string]any{"iat": labTime.Unix(), "exp": exp, "jti": jti})
		digest := sha256.Sum256([]byte(input))
		sig, err := rsa.SignPKCS1v15(rand.Reader, priv, crypto.SHA256, digest[:])
		if err != nil {
			t.Fatal(err)
		}
		r := httptest.NewRequest("POST", "https://socialize.localtest/socialize.getUserInfo", strings.NewReader("apiKey="+labAPIKey+"&UID=u1"))
		r.Header.Set("Content-Type", formType)
		r.Header.Set("Authorization", "Bearer "+input+"."+base64.RawURLEncoding.EncodeToString(sig))
		r.TLS = &tls.ConnectionState{}
		return serve(s, r).Body.String()
	}
	for i, tt := range []struct {
		at         time.Time
		token, jwt string
	}{
		{end.Add(-time.Nanosecond), `"errorCode":0`, `"errorCode":0`},
		{end, `"errorCode":403025`, `"errorCode":403002`},
	} {
		s.cfg.Clock = fixedClock{tt.at}
		if got := postBody(s, nil, true, "socialize.getUserInfo", "oauth_token="+a.AccessToken+"&UID=u1"); !strings.Contains(got, tt.token) {
			t.Errorf("a token of 60 s at %v: %s, want %s", tt.at.Sub(labTime), got, tt.token)
		}
		if got := jwtCall(end.Unix(), "edge-"+strconv.Itoa(i)); !strings.Contains(got, tt.jwt) {
			t.Errorf("a JWT with exp at 60 s, at %v: %s, want %s", tt.at.Sub(labTime), got, tt.jwt)
		}
	}
	// An exp that is no time in seconds (milliseconds, here) is said as such, as an iat
	// is: it was "the JWT exp claim ... has passed".
	s.cfg.Clock = fixedClock{labTime}
	if got := jwtCall(end.UnixMilli(), "edge-ms"); !strings.Contains(got, "the JWT exp claim is not a Unix time in seconds") || strings.Contains(got, "403002") {
		t.Errorf("a JWT with exp in milliseconds: %s", got)
	}
}

// siteToken gets an access token of the lab site, bound to no user; extra adds
// parameters to the call ("&name=value").
func siteToken(t *testing.T, s *Server, extra string) (a struct {
	AccessToken string `json:"access_token"`
}) {
	t.Helper()
	return tokenFrom(t, postBody(s, nil, true, "socialize.getToken", "apiKey="+labAPIKey+"&secret="+url.QueryEscape(labSecret)+"&grant_type=none"+extra))
}

// tokenFrom reads the access token of getToken's answer got.
func tokenFrom(t *testing.T, got string) (a struct {
	AccessToken string `json:"access_token"`
}) {
	t.Helper()
	if err := json.Unmarshal([]byte(got), &a); err != nil || a.AccessToken == "" {
		t.Fatalf("getToken: %s", got)
	}
	return a
}

// TestTokenOfARevokedToken: a mobile notifyLogin called with a token that is revoked
// between the call's authentication and the session's write stores nothing (no session,
// no login) and is answered 403025, as the call would have been a moment later; one
// revoked after the write revokes the session with it.
func TestTokenOfARevokedToken(t *testing.T) {
	ctx := context.Background()
	for _, when := range []string{"before", "after"} {
		t.Run(when+" the write", func(t *testing.T) {
			s := newTestServer(t, t.TempDir(), nil)
			st := s.cfg.Store
			a, got := siteToken(t, s, ""), ""
			revoke := func(ctx context.Context, st socius.Store, tok *socius.Token) error {
				_, err := st.RevokeToken(ctx, tok.Root, labTime)
				return err
			}
			var created []string
			var tried *socius.Token
			fault := tokenFault{Store: st, created: &created}
			if when == "before" {
				fault.before = func(ctx context.Context, st socius.Store, tok *socius.Token) error {
					tried = tok
					return revoke(ctx, st, tok)
				}
			} else {
				fault.after = func(ctx context.Context, st socius.Store, tok *socius.Token) error {
					tried = tok
					return revoke(ctx, st, tok)
				}
			}
			s.cfg.Store = fault
			got = postBody(s, nil, true, "socialize.notifyLogin", "oauth_token="+a.AccessToken+"&siteUID=minted&targetEnv=mobile")
			if tried == nil || tried.Root != socius.HashToken(a.AccessToken) {
				t.Fatalf("the session tried: %+v; want one minted with the access token", tried)
			}
			if when == "before" {
				if !strings.Contains(got, `"errorCode":403025`) || !strings.Contains(got, "the token of this call, or the one it was made from, was revoked while the call ran") || strings.Contains(got, "sessionToken") {
					t.Fatalf("answer %s", got)
				}
				if tok, err := st.Token(ctx, tried.Hash); !errors.Is(err, socius.ErrNotFound) || len(created) != 0 {
					t.Errorf("the session: %+v, %v; want none", tok, err)
				}
				if _, err := st.User(ctx, labAPIKey, "minted"); !errors.Is(err, socius.ErrNotFound) {
					t.Errorf("the user of the refused call: %v; want ErrNotFound", err)
				}
				return
			}
			if !strings.Contains(got, `"errorCode":0`) || !strings.Contains(got, "sessionToken") {
				t.Fatalf("answer %s", got)
			}
			if tok, err := st.Token(ctx, tried.Hash); err != nil || tok.RevokedAt.IsZero() {
				t.Errorf("the session after its token's revocation: %+v, %v; want revoked", tok, err)
			}
		})
	}
}

// TestSessionOfALoggedOutSession: a mobile notifyLogin signed with a session that was
// itself made from a token (the middle of a chain), whose user is logged out, or which
// is revoked, between the call's authentication and the new session's write, stores
// nothing: no session, no login.
func TestSessionOfALoggedOutSession(t *testing.T) {
	ctx := context.Background()
	for name, end := range map[string]func(context.Context, socius.Store, *socius.Token) error{
		"logout": func(ctx context.Context, st socius.Store, tok *socius.Token) error {
			return st.Logout(ctx, labAPIKey, "alice", labTime)
		},
		"revocation": func(ctx context.Context, st socius.Store, tok *socius.Token) error {
			_, err := st.RevokeToken(ctx, tok.MintedWith, labTime)
			return err
		},
	} {
		t.Run(name, func(t *testing.T) {
			s := newTestServer(t, t.TempDir(), nil)
			st := s.cfg.Store
			a, got := siteToken(t, s, ""), ""
			got = postBody(s, nil, true, "socialize.notifyLogin", "oauth_token="+a.AccessToken+"&siteUID=alice&targetEnv=mobile")
			var m struct{ SessionToken, SessionSecret string }
			if err := json.Unmarshal([]byte(got), &m); err != nil || m.SessionToken == "" {
				t.Fatalf("notifyLogin with the site token: %s", got)
			}
			var tried *socius.Token
			var created []string
			s.cfg.Store = tokenFault{Store: st, created: &created, before: func(ctx context.Context, st socius.Store, tok *socius.Token) error {
				tried = tok
				return end(ctx, st, tok)
			}}
			p := url.Values{"oauth_token": {m.SessionToken}, "siteUID": {"alice"}, "targetEnv": {"mobile"},
				"timestamp": {strconv.FormatInt(labTime.Unix(), 10)}, "nonce": {"middle-" + name}}
			var list []gigya.Param
			for k, vs := range p {
				list = append(list, gigya.Param{Name: k, Value: vs[0]})
			}
			key, _ := socius.DecodeSecret(m.SessionSecret)
			p.Set("sig", gigya.Sign(key, "POST", "https://socialize.localtest/socialize.notifyLogin", list))
			got = postBody(s, nil, true, "socialize.notifyLogin", p.Encode())
			if tried == nil || tried.Root != socius.HashToken(a.AccessToken) || tried.MintedWith != socius.HashToken(m.SessionToken) {
				t.Fatalf("the session tried: %+v; want one of the site token's chain, made with alice's session", tried)
			}
			if !strings.Contains(got, `"errorCode":403025`) || strings.Contains(got, "sessionToken") || len(created) != 0 {
				t.Fatalf("answer %s, %d stored", got, len(created))
			}
			if _, err := st.Token(ctx, tried.Hash); !errors.Is(err, socius.ErrNotFound) {
				t.Errorf("the refused session: %v; want none", err)
			}
			if name == "logout" {
				if u, err := st.User(ctx, labAPIKey, "alice"); err != nil || u.LoggedIn {
					t.Errorf("alice after the refused login: %+v, %v; want logged out", u, err)
				}
			}
		})
	}
}

// loginFault is a fault injected into a real store: end runs just before a login
// (Login or LoginWhile) is written, as a concurrent call could run.
type loginFault struct {
	socius.Store
	end func(ctx context.Context, st socius.Store) error
}

func (s loginFault) Login(ctx context.Context, apiKey, uid string, p *socius.Patch, now time.Time) (bool, error) {
	if err := s.end(ctx, s.Store); err != nil {
		return false, err
	}
	return s.Store.Login(ctx, apiKey, uid, p, now)
}

func (s loginFault) LoginWhile(ctx context.Context, apiKey, uid string, p *socius.Patch, now time.Time, tokens ...string) (bool, error) {
	if err := s.end(ctx, s.Store); err != nil {
		return false, err
	}
	return s.Store.LoginWhile(ctx, apiKey, uid, p, now, tokens...)
}

// TestBrowserLoginOfAnEndedToken: a browser notifyLogin (no targetEnv=mobile) made
// with a user's token, whose user is logged out or deleted (which revokes the token)
// between the call's authentication and the login's write, is answered 403025 and
// leaves the user logged out, or gone: it logged the user in again, or made it again
// with the call's userInfo, though its token was revoked by then. A login with the
// site's secret is not held to any token.
func TestBrowserLoginOfAnEndedToken(t *testing.T) {
	ctx := context.Background()
	for _, end := range []string{"logout", "deleteAccount"} {
		t.Run(end, func(t *testing.T) {
			s := newTestServer(t, t.TempDir(), nil)
			st := s.cfg.Store
			a := tokenFrom(t, postWithSecret(s, "socialize.getToken", "grant_type=none&x_siteUID=alice"))
			ended := 0
			s.cfg.Store = loginFault{Store: st, end: func(ctx context.Context, st socius.Store) error {
				ended++
				if end == "logout" {
					return st.Logout(ctx, labAPIKey, "alice", labTime)
				}
				return st.DeleteUser(ctx, labAPIKey, "alice", labTime)
			}}
			got := postBody(s, nil, true, "socialize.notifyLogin", "oauth_token="+a.AccessToken+"&siteUID=alice&userInfo="+url.QueryEscape(`{"nickname":"again"}`))
			if ended != 1 {
				t.Fatalf("the login's write was reached %d times; want once", ended)
			}
			if !strings.Contains(got, `"errorCode":403025`) || !strings.Contains(got, "was revoked while the call ran") || strings.Contains(got, "cookieValue") {
				t.Fatalf("answer %s", got)
			}
			u, err := st.User(ctx, labAPIKey, "alice")
			switch {
			case end == "logout" && (err != nil || u.LoggedIn || u.Profile[socius.Nickname] != ""):
				t.Errorf("alice after the refused login: %+v, %v; want logged out, her profile as it was", u, err)
			case end == "deleteAccount" && !errors.Is(err, socius.ErrNotFound):
				t.Errorf("alice after the refused login: %+v, %v; want gone", u, err)
			}
			// The same call with the site's secret names no token: it logs alice in.
			s.cfg.Store = st
			got = postWithSecret(s, "socialize.notifyLogin", "siteUID=alice")
			if !strings.Contains(got, `"errorCode":0`) {
				t.Fatalf("a login with the site's secret: %s", got)
			}
			if u, err := st.User(ctx, labAPIKey, "alice"); err != nil || !u.LoggedIn {
				t.Errorf("alice after a login with the site's secret: %+v, %v; want logged in", u, err)
			}
		})
	}
}

// TestLoginOfAMovedToken: a notifyLogin made with a user's token, browser or mobile,
// whose user is given another UID (setUID, which moves the user's tokens) between the
// call's authentication and its login's write, is refused as a call with the moved
// token would be a moment later (403007, bound to another user) and does not make the
// old UID again: it made a new, logged-in user of the old UID (with a session of it,
// on mobile), beside the renamed one.
func TestLoginOfAMovedToken(t *testing.T) {
	ctx := context.Background()
	rename := func(ctx context.Context, st socius.Store) error {
		return st.RenameUser(ctx, labAPIKey, "alice", "alicia")
	}
	for _, mobile := range []bool{false, true} {
		t.Run(fmt.Sprintf("mobile %v", mobile), func(t *testing.T) {
			s := newTestServer(t, t.TempDir(), nil)
			st := s.cfg.Store
			a := tokenFrom(t, postWithSecret(s, "socialize.getToken", "grant_type=none&x_siteUID=alice"))
			renamed := 0
			params := "oauth_token=" + a.AccessToken + "&siteUID=alice"
			if mobile {
				var created []string
				s.cfg.Store = tokenFault{Store: st, created: &created, before: func(ctx context.Context, st socius.Store, _ *socius.Token) error {
					renamed++
					return rename(ctx, st)
				}}
				params += "&targetEnv=mobile"
			} else {
				s.cfg.Store = loginFault{Store: st, end: func(ctx context.Context, st socius.Store) error {
					renamed++
					return rename(ctx, st)
				}}
			}
			got := postBody(s, nil, true, "socialize.notifyLogin", params)
			if renamed != 1 {
				t.Fatalf("the login's write was reached %d times; want once", renamed)
			}
			if !strings.Contains(got, `"errorCode":403007`) || !strings.Contains(got, "its user was given another UID (setUID) while the call ran") ||
				strings.Contains(got, "cookieValue") || strings.Contains(got, "sessionToken") {
				t.Fatalf("answer %s", got)
			}
			if u, err := st.User(ctx, labAPIKey, "alice"); !errors.Is(err, socius.ErrNotFound) {
				t.Errorf("alice after the refused login: %+v, %v; want none (renamed to alicia)", u, err)
			}
			if _, err := st.User(ctx, labAPIKey, "alicia"); err != nil {
				t.Errorf("alicia: %v", err)
			}
		})
	}
}

// profileFault is a fault injected into a real store: end runs just before a profile
// update is written, as a concurrent call could run.
type profileFault struct {
	socius.Store
	end func(ctx context.Context, st socius.Store) error
}

func (s profileFault) UpdateProfile(ctx context.Context, apiKey, uid string, p *socius.Patch, now time.Time) error {
	if err := s.end(ctx, s.Store); err != nil {
		return err
	}
	return s.Store.UpdateProfile(ctx, apiKey, uid, p, now)
}

// TestProfileWriteOfAnEndedToken: a setUserInfo made with a user's token, whose user is
// logged out between the call's authentication and its write, still writes the profile
// and leaves the user logged out (it is no login, as docs/compatibility.md decides);
// one whose user is deleted meanwhile is 403005 and makes no user.
func TestProfileWriteOfAnEndedToken(t *testing.T) {
	ctx := context.Background()
	for _, end := range []string{"logout", "deleteAccount"} {
		t.Run(end, func(t *testing.T) {
			s := newTestServer(t, t.TempDir(), nil)
			st := s.cfg.Store
			a := tokenFrom(t, postWithSecret(s, "socialize.getToken", "grant_type=none&x_siteUID=alice"))
			s.cfg.Store = profileFault{Store: st, end: func(ctx context.Context, st socius.Store) error {
				if end == "logout" {
					return st.Logout(ctx, labAPIKey, "alice", labTime)
				}
				return st.DeleteUser(ctx, labAPIKey, "alice", labTime)
			}}
			got := postBody(s, nil, true, "socialize.setUserInfo", "oauth_token="+a.AccessToken+"&userInfo="+url.QueryEscape(`{"nickname":"late"}`))
			u, err := st.User(ctx, labAPIKey, "alice")
			if end == "logout" {
				if !strings.Contains(got, `"errorCode":0`) {
					t.Fatalf("answer %s", got)
				}
				if err != nil || u.LoggedIn || u.Profile[socius.Nickname] != "late" {
					t.Errorf("alice: %+v, %v; want logged out with the call's nickname", u, err)
				}
				return
			}
			if !strings.Contains(got, `"errorCode":403005`) || !strings.Contains(got, "UID not found") {
				t.Fatalf("answer %s", got)
			}
			if !errors.Is(err, socius.ErrNotFound) {
				t.Errorf("alice: %+v, %v; want gone", u, err)
			}
		})
	}
}

// TestCheckParamsListBounded: under checkParams=true the refusal names at most 20 of
// the unknown keys, each clipped, and says how many more there were: userInfo keys
// have no length of their own, and a 1 MB list was built (by repeated concatenation),
// answered and logged whole.
func TestCheckParamsListBounded(t *testing.T) {
	var logs bytes.Buffer
	s := newTestServer(t, t.TempDir(), nil)
	s.cfg.Observe = LogCalls(slog.New(slog.NewTextHandler(&logs, nil)))
	keys := make([]string, maxUserInfoKeys)
	for i := range keys {
		keys[i] = fmt.Sprintf(`"k%03d%s":0`, i, strings.Repeat("x", 3900))
	}
	body := url.Values{"apiKey": {labAPIKey}, "secret": {labSecret}, "UID": {"u1"}, "checkParams": {"true"},
		"userInfo": {"{" + strings.Join(keys, ",") + "}"}}.Encode()
	r := httptest.NewRequest("POST", "https://socialize.localtest/socialize.setUserInfo", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.TLS = &tls.ConnectionState{}
	w := serve(s, r)
	var a struct {
		ErrorCode    int
		ErrorDetails string
	}
	if err := json.Unmarshal(w.Body.Bytes(), &a); err != nil {
		t.Fatal(err)
	}
	if a.ErrorCode != socius.CodePermissionDenied || !strings.Contains(a.ErrorDetails, "k000") ||
		!strings.Contains(a.ErrorDetails, fmt.Sprintf("and %d more", maxUserInfoKeys-maxListedNames)) || len(a.ErrorDetails) > 3000 {
		t.Errorf("answer: %d, %d bytes of errorDetails: %.300s", a.ErrorCode, len(a.ErrorDetails), a.ErrorDetails)
	}
	for _, line := range strings.Split(logs.String(), "\n") {
		if len(line) > 4000 {
			t.Errorf("a log line of %d bytes: %.200s", len(line), line)
		}
	}
	if !strings.Contains(logs.String(), "errorCode=403007") {
		t.Errorf("the call was not logged: %.300s", logs.String())
	}
}

// TestIgnoredParamsNamesBounded: without checkParams, unknown userInfo keys are listed
// in ignoredParams each clipped: a key has no length of its own, and a body of a few
// long keys made an answer twice its size.
func TestIgnoredParamsNamesBounded(t *testing.T) {
	s := newTestServer(t, t.TempDir(), nil)
	long := strings.Repeat("k", 200<<10)
	short := strings.Repeat("s", 100)
	body := url.Values{"apiKey": {labAPIKey}, "secret": {labSecret}, "UID": {"u1"},
		"userInfo": {`{"` + long + `":1,"` + short + `":2,"nickname":"n"}`}}.Encode()
	got := postBody(s, nil, true, "socialize.setUserInfo", body)
	var a struct {
		ErrorCode     int
		IgnoredParams []struct{ ParamName string }
	}
	if err := json.Unmarshal([]byte(got), &a); err != nil {
		t.Fatal(err)
	}
	if len(got) > 4000 || a.ErrorCode != 0 || len(a.IgnoredParams) != 2 ||
		a.IgnoredParams[0].ParamName != "userInfo."+long[:maxIgnoredName-len("userInfo.")]+"..." || a.IgnoredParams[1].ParamName != "userInfo."+short {
		t.Errorf("answer of %d bytes: %.500s", len(got), got)
	}
}

// TestBodyGrowsAsItArrives: a body announced at 1 MiB of which a few bytes came holds
// a buffer of at most firstBodyRead, not the announced megabyte.
func TestBodyGrowsAsItArrives(t *testing.T) {
	s := New(Config{Store: nil, Nonces: nonce.New(0)})
	c := &call{}
	if err := s.readBody(c, strings.NewReader("UID=u1"), 1<<20); err != nil {
		t.Fatal(err)
	}
	if string(c.body) != "UID=u1" || cap(c.body) > firstBodyRead+1024 {
		t.Errorf("body %q in a buffer of %d bytes", c.body, cap(c.body))
	}
	// A body that arrives whole grows to about its length (the runtime rounds a
	// growth up).
	c = &call{}
	long := strings.Repeat("x", 200<<10)
	if err := s.readBody(c, strings.NewReader(long), int64(len(long))); err != nil {
		t.Fatal(err)
	}
	if string(c.body) != long || cap(c.body) > len(long)*5/4+firstBodyRead {
		t.Errorf("a body of %d bytes read into %d bytes (cap %d)", len(long), len(c.body), cap(c.body))
	}
	if held := s.bodies.Load(); held != int64(len("UID=u1")+len(long)) {
		t.Errorf("bodies held: %d", held)
	}
}

// TestBodyBudget: the bodies held at once are capped at MaxConcurrent times
// MaxBodyBytes. Clients that sent most of their bodies and then stopped use up the
// budget; the next body beyond it is answered 403048 at once; once they end, bodies are
// taken again and the budget is whole.
func TestBodyBudget(t *testing.T) {
	s := newTestServer(t, t.TempDir(), nil)
	s.cfg.MaxConcurrent, s.cfg.MaxBodyBytes = 2, 1024
	ts := httptest.NewServer(s)
	defer ts.Close()
	var held []net.Conn
	for range 2 {
		conn, err := net.Dial("tcp", ts.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "POST /socialize.getUserInfo HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 1024\r\n\r\nUID=u1&pad=%s", strings.Repeat("p", 1000-11))
		held = append(held, conn)
	}
	deadline := time.Now().Add(10 * time.Second)
	for s.bodies.Load() < 2000 {
		if time.Now().After(deadline) {
			t.Fatalf("the server holds %d bytes of the two bodies, want 2000", s.bodies.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
	body := "UID=u1&pad=" + strings.Repeat("p", 200)
	resp, err := http.Post(ts.URL+"/socialize.getUserInfo", "application/x-www-form-urlencoded", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), `"errorCode":403048`) || !strings.Contains(string(b), "request bodies") {
		t.Errorf("a body beyond the budget: %s", b)
	}
	for _, conn := range held {
		io.WriteString(conn, strings.Repeat("p", 24))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(b), `"errorCode":400093`) { // no apiKey, but read and answered
			t.Errorf("a held body ended with %s", b)
		}
	}
	// A wait of its own, not what the first left of its 10 s.
	for deadline := time.Now().Add(10 * time.Second); s.bodies.Load() != 0 || s.InFlight() != 0; {
		if time.Now().After(deadline) {
			t.Fatalf("after every call: %d bytes of bodies held, %d calls in flight", s.bodies.Load(), s.InFlight())
		}
		time.Sleep(5 * time.Millisecond)
	}
	resp, err = http.Post(ts.URL+"/socialize.getUserInfo", "application/x-www-form-urlencoded", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), `"errorCode":400093`) {
		t.Errorf("a body after the budget came back: %s", b)
	}
}

// TestBodyBudgetEdge: the budget's last byte may be taken; the next one is 403048.
func TestBodyBudgetEdge(t *testing.T) {
	s := New(Config{Store: nil, Nonces: nonce.New(0), MaxConcurrent: 1, MaxBodyBytes: 1024})
	if err := s.readBody(&call{}, strings.NewReader(strings.Repeat("x", 1024)), 1024); err != nil {
		t.Errorf("a body of the whole budget: %v", err)
	}
	if err := s.readBody(&call{}, strings.NewReader("x"), 1); socius.ErrorCode(err) != socius.CodeRateLimited {
		t.Errorf("a byte beyond the budget: %v", err)
	}
}

// TestTooLargeBodyDrained: a body over the limit is read and thrown away before the
// 413001, so that a client that sends its whole body before it reads reads the answer;
// not when the client waits for "100 Continue" (it has sent nothing), nor beyond
// drainFactor times the limit (the connection is cut instead).
func TestTooLargeBodyDrained(t *testing.T) {
	s := newTestServer(t, t.TempDir(), nil)
	s.cfg.MaxBodyBytes = 1024
	for _, tt := range []struct {
		name         string
		length, read int
		expect       string
	}{
		{"over the limit", 2048, 2048, ""},
		{"waiting for 100 Continue", 2048, 0, "100-continue"},
		{"beyond drainFactor times the limit", drainFactor*1024 + 1, 0, ""},
	} {
		body := strings.NewReader(strings.Repeat("x", tt.length))
		r := httptest.NewRequest("POST", "http://socialize.localtest/socialize.getUserInfo", body)
		r.Header.Set("Content-Type", formType)
		if tt.expect != "" {
			r.Header.Set("Expect", tt.expect)
		}
		if got := serve(s, r).Body.String(); !strings.Contains(got, `"errorCode":413001`) {
			t.Errorf("%s: %s", tt.name, got)
		}
		if read := tt.length - body.Len(); read != tt.read {
			t.Errorf("%s: %d bytes read, want %d", tt.name, read, tt.read)
		}
	}
}

// TestEmptyBodyOfAnyType: a body that holds nothing (chunked, as net/http hands it on)
// is not refused for its Content-Type: there is nothing to misread.
func TestEmptyBodyOfAnyType(t *testing.T) {
	s := newTestServer(t, t.TempDir(), nil)
	r := httptest.NewRequest("POST", "https://socialize.localtest/socialize.getUserInfo?apiKey="+labAPIKey+"&secret="+url.QueryEscape(labSecret)+"&UID=u1", strings.NewReader(""))
	r.Header.Set("Content-Type", "application/json")
	r.TLS = &tls.ConnectionState{}
	if got := serve(s, r).Body.String(); !strings.Contains(got, `"errorCode":0`) {
		t.Errorf("an empty JSON body: %s", got)
	}
}

// TestMethodInAnyCase: the path may name the method in any letter case; the answer,
// its XML root too, spells it as Socius does.
func TestMethodInAnyCase(t *testing.T) {
	s := newTestServer(t, t.TempDir(), nil)
	for _, method := range []string{"socialize.getuserinfo", "SOCIALIZE.GETUSERINFO"} {
		if got := postWithSecret(s, method, "UID=u1&format=xml"); !strings.Contains(got, "<socialize.getUserInfoResponse ") || !strings.Contains(got, "<errorCode>0</errorCode>") {
			t.Errorf("%s: %s", method, got)
		}
	}
	// ASCII letter case only: a Kelvin sign (U+212A) is not a k.
	if got := postWithSecret(s, "socialize.getUserInfo\u212a", "UID=u1"); !strings.Contains(got, `"errorCode":400001`) {
		t.Errorf("a method name with a Kelvin sign: %s", got)
	}
	if got := postWithSecret(s, "socialize.getTo\u212aen", "grant_type=none"); !strings.Contains(got, `"errorCode":400001`) {
		t.Errorf("getToken spelled with a Kelvin sign: %s", got)
	}
}

// TestMethodMisspeltWithSlashes: a path that names a method but for its "/" (doubled,
// trailing, "." and ".." segments, or in place of the "." after the namespace) is
// still refused, and the refusal says which path to call, naming the path in full
// when it holds nothing else; else as any unknown method, a secret in it masked.
func TestMethodMisspeltWithSlashes(t *testing.T) {
	s := newTestServer(t, t.TempDir(), nil)
	for path, want := range map[string]string{
		"socialize/getUserInfo":      `"Unknown method: socialize/getUserInfo is not a method Socius serves: call /socialize.getUserInfo"`,
		"socialize.getUserInfo/":     `"Unknown method: socialize.getUserInfo/ is not a method Socius serves: call /socialize.getUserInfo"`,
		"/SOCIALIZE.GETUSERINFO":     `"Unknown method: /SOCIALIZE.GETUSERINFO is not a method Socius serves: call /socialize.getUserInfo"`,
		"./socialize/setUserInfo/":   `"Unknown method: ./socialize/setUserInfo/ is not a method Socius serves: call /socialize.setUserInfo"`,
		"x/../socialize.getUserInfo": `"Unknown method: x/../socialize.getUserInfo is not a method Socius serves: call /socialize.getUserInfo"`,
		// What is not the method's name stays masked when it may be a secret.
		"c2VjcmV0LWZvci10aGUtZ2lneWEtbGFi/../socialize.getUserInfo": `"Unknown method: c2Vj...../socialize.getUserInfo is not a method Socius serves: call /socialize.getUserInfo"`,
		// No method so: refused as before (a run of 20 such characters with a "/" may be a secret).
		"socialize/frobnicate": `"Unknown method: soci... is not a method Socius serves"`,
	} {
		if got := postWithSecret(s, path, "UID=u1"); !strings.Contains(got, `"errorCode":400001`) || !strings.Contains(got, `"errorDetails":`+want) {
			t.Errorf("%s: %s", path, got)
		}
	}
}

// TestForwardedProtoEveryValue: with TrustForwardedProto, a plain-HTTP call counts as
// secure (a plain secret allowed) only when every X-Forwarded-Proto value says https:
// a proxy that appends its own value, as another field or after a comma, puts the
// client's first, and a client over plain HTTP that sent "https" itself is refused.
func TestForwardedProtoEveryValue(t *testing.T) {
	s := newTestServer(t, t.TempDir(), nil)
	s.cfg.TrustForwardedProto = true
	for _, tt := range []struct {
		values []string
		secure bool
	}{
		{[]string{"https"}, true},
		{[]string{"HTTPS"}, true},
		{[]string{" https "}, true},
		{[]string{"https", "https"}, true},
		{[]string{"https, https"}, true},
		{nil, false},
		{[]string{""}, false},
		{[]string{"http"}, false},
		{[]string{"https", "http"}, false}, // the client's, then the proxy's
		{[]string{"http", "https"}, false},
		{[]string{"https, http"}, false},
		{[]string{"https,"}, false},
	} {
		r := httptest.NewRequest("POST", "http://socialize.localtest/socialize.getUserInfo",
			strings.NewReader("apiKey="+labAPIKey+"&secret="+url.QueryEscape(labSecret)+"&UID=u1"))
		r.Header.Set("Content-Type", formType)
		r.Header["X-Forwarded-Proto"] = tt.values
		want := `"errorCode":403006`
		if tt.secure {
			want = `"errorCode":0`
		}
		if got := serve(s, r).Body.String(); !strings.Contains(got, want) {
			t.Errorf("X-Forwarded-Proto %q: %s, want %s", tt.values, got, want)
		}
	}
}

// TestRateBurstDefault: without RateBurst, the burst is the rate rounded up, at least 1.
func TestRateBurstDefault(t *testing.T) {
	for _, tt := range []struct {
		rate        float64
		burst, want int
	}{
		{0.5, 0, 1}, {1, 0, 1}, {2.5, 0, 3}, {2.5, 7, 7},
	} {
		if got := New(Config{RateLimit: tt.rate, RateBurst: tt.burst}).limiter.Burst(); got != tt.want {
			t.Errorf("RateLimit %v, RateBurst %d: burst %d, want %d", tt.rate, tt.burst, got, tt.want)
		}
	}
}

func TestUnknownID(t *testing.T) {
	for in, want := range map[string]string{
		"3_LabApiKey_AbC-123": "3_LabApiKey_AbC-123", // Gigya's shape: in full
		"42_x":                "42_x",
		"c2VjcmV0LWZvci10aGUtZ2lneWEtbGFiLTEyMzQ1Ng==": `"c2Vj"... (length 44)`, // a secret
		"AUserKeyLab1": `"AUs"... (length 12)`,
		"_3":           `""... (length 2)`,
		"3":            `""... (length 1)`,
		"3_":           "3_",
		"":             `""... (length 0)`,
		"abcdefg\xff":  `"ab"... (length 8)`,
		// Parameters separated by ";", taken for the apiKey's value: its start only.
		"3_LabApiKey;secret=c2VjcmV0LWZvci10aGUtZ2lneWEtbGFiLTEyMzQ1Ng==;UID=u1": `"3_LabApiKey"... (length 70)`,
		"3_LabApiKey&secret=c2VjcmV0":                                            `"3_LabApiKey"... (length 27)`, // "&" sent as %26
		"3_Lab Key":                                                              `"3_Lab"... (length 9)`,
	} {
		if got := unknownID(in); got != want {
			t.Errorf("unknownID(%q) = %s, want %s", in, got, want)
		}
	}
}

// TestSignedPathAsReceived: a signature is checked against the path as received, its
// percent-escapes as sent (SPEC 4), and against the path decoded, which a client that
// escapes only on the wire signs; the refusal names the path as received.
func TestSignedPathAsReceived(t *testing.T) {
	s := newTestServer(t, t.TempDir(), nil)
	const escaped = "socialize.get%55serInfo"
	get := url.Values{"UID": {"u1"}}
	for name, signedFor := range map[string]string{"as received": escaped, "decoded": "socialize.getUserInfo"} {
		if got := send(s, nil, escaped, signedBody(signedFor, "path-"+name, get)); !strings.Contains(got, `"errorCode":0`) {
			t.Errorf("signed for the path %s: %s", name, got)
		}
	}
	got := send(s, nil, escaped, signedBody("socialize.setUserInfo", "path-other", get))
	if !strings.Contains(got, `"errorCode":403003`) || !strings.Contains(got, "POST http://socialize.localtest/"+escaped) {
		t.Errorf("signed for another path: %s", got)
	}
}

// TestSecretStoredWithWhitespace: a secret stored as an operator typed it, with spaces
// and its newline (before 2026-11-30 the admin commands kept them), is compared in
// plain as the client sends it, without them: as a secret, a client_secret and over
// HTTP Basic, for a site and for a key; signing never minded.
func TestSecretStoredWithWhitespace(t *testing.T) {
	s := newTestServer(t, t.TempDir(), nil)
	ctx := context.Background()
	spaced := func(secret string) string { return " " + secret[:10] + "\n" + secret[10:] + "\r\n" }
	if err := s.cfg.Store.PutSite(ctx, &socius.Site{APIKey: "3_Spaced", Secret: spaced(labSecret), Name: "spaced", CreatedAt: labTime}); err != nil {
		t.Fatal(err)
	}
	if err := s.cfg.Store.CreateKey(ctx, &socius.Key{UserKey: "ASpacedKey", APIKey: "3_Spaced", Secret: spaced(labKeySec), CreatedAt: labTime}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.cfg.Store.Login(ctx, "3_Spaced", "u9", nil, labTime); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ name, method, body, basic string }{
		{"partner secret", "socialize.setUserInfo", "apiKey=3_Spaced&secret=" + url.QueryEscape(labSecret) + "&UID=u9&userInfo=%7B%7D", ""},
		{"key secret", "socialize.setUserInfo", "apiKey=3_Spaced&userKey=ASpacedKey&secret=" + url.QueryEscape(labKeySec) + "&UID=u9&userInfo=%7B%7D", ""},
		{"client_secret", "socialize.getToken", "client_id=3_Spaced&client_secret=" + url.QueryEscape(labSecret) + "&grant_type=none", ""},
		{"Basic", "socialize.getToken", "grant_type=none", "ASpacedKey:" + labKeySec},
	} {
		r := httptest.NewRequest("POST", "https://socialize.localtest/"+tt.method, strings.NewReader(tt.body))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.TLS = &tls.ConnectionState{}
		if tt.basic != "" {
			user, pass, _ := strings.Cut(tt.basic, ":")
			r.SetBasicAuth(user, pass)
		}
		if got := serve(s, r).Body.String(); !strings.Contains(got, `"errorCode":0`) {
			t.Errorf("%s: %s", tt.name, got)
		}
	}
	// Signed with the secret as stored, as before.
	key, err := socius.DecodeSecret(spaced(labSecret))
	if err != nil {
		t.Fatal(err)
	}
	p := []gigya.Param{{Name: "apiKey", Value: "3_Spaced"}, {Name: "UID", Value: "u9"}, {Name: "nonce", Value: "spaced"},
		{Name: "timestamp", Value: strconv.FormatInt(labTime.Unix(), 10)}}
	form := url.Values{"sig": {gigya.Sign(key, "POST", "http://socialize.localtest/socialize.getUserInfo", p)}}
	for _, kv := range p {
		form.Set(kv.Name, kv.Value)
	}
	if got := send(s, nil, "socialize.getUserInfo", form.Encode()); !strings.Contains(got, `"errorCode":0`) {
		t.Errorf("signed: %s", got)
	}
}

// TestLateAnswerCutsTheConnection: an answer ready after WriteTimeout is not written,
// and the handler aborts (http.ErrAbortHandler) rather than return: a handler that
// returned without writing would have net/http, or the fast path, send an empty 200
// whenever the connection's write deadline had not yet fired. The call is recorded as
// 504002.
func TestLateAnswerCutsTheConnection(t *testing.T) {
	s := newTestServer(t, t.TempDir(), nil)
	s.cfg.WriteTimeout = 20 * time.Millisecond
	s.cfg.Fault = func(string, string) (int, time.Duration, bool) { return 0, 50 * time.Millisecond, true }
	var observed *Call
	s.cfg.Observe = func(c *Call) { cc := *c; observed = &cc }
	w := httptest.NewRecorder()
	r := httptest.NewRequest("POST", "https://socialize.localtest/socialize.getUserInfo",
		strings.NewReader("apiKey="+labAPIKey+"&secret="+url.QueryEscape(labSecret)+"&UID=u1"))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.TLS = &tls.ConnectionState{}
	func() {
		defer func() {
			if v := recover(); v != http.ErrAbortHandler {
				t.Errorf("the late call ended with %v, want a panic with http.ErrAbortHandler", v)
			}
		}()
		s.ServeHTTP(w, r)
	}()
	if w.Body.Len() != 0 {
		t.Errorf("a late answer was written: %s", w.Body)
	}
	if observed == nil || observed.Code != socius.CodeRequestTimeout {
		t.Errorf("the late call observed as %+v, want 504002", observed)
	}
}

// TestOtherHTTPMethodAnsweredAsAsked: a refusal of the HTTP method takes the format and
// the HTTP status the query string asks for, as other refusals of the request do.
func TestOtherHTTPMethodAnsweredAsAsked(t *testing.T) {
	s := newTestServer(t, t.TempDir(), nil)
	for _, method := range []string{"PUT", "DELETE", "PATCH"} {
		w := serve(s, httptest.NewRequest(method, "http://socialize.localtest/socialize.getUserInfo?httpStatusCodes=true&format=xml", nil))
		if body := w.Body.String(); w.Code != 400 || !strings.Contains(body, "<errorCode>400001</errorCode>") || !strings.Contains(body, "HTTP method "+method+" is not supported") {
			t.Errorf("%s: HTTP %d %s", method, w.Code, body)
		}
	}
	w := serve(s, httptest.NewRequest("PUT", "http://socialize.localtest/socialize.getUserInfo?format=jsonp&callback=cb", nil))
	if body := w.Body.String(); w.Code != 200 || !strings.HasPrefix(body, "cb(") || !strings.Contains(body, `"errorCode":400001`) {
		t.Errorf("PUT, JSONP: HTTP %d %s", w.Code, body)
	}
	// A method that could be a secret (letters, digits and "+" are an HTTP token's
	// characters) is masked as a name is, not clipped to 16 of its characters: the
	// errorDetails are logged.
	w = serve(s, httptest.NewRequest("mcx3KmZFvoNaUmIb+zE8kXz1PdD3YfWKcTxZKKHQ538", "http://socialize.localtest/socialize.getUserInfo", nil))
	if body := w.Body.String(); !strings.Contains(body, "HTTP method mcx3... is not supported") || strings.Contains(body, "mcx3K") {
		t.Errorf("a method like a secret: %s", body)
	}
}

// TestConnectIsNoTunnel: a CONNECT that reaches the API (Socius's HTTPS listener, or
// its HTTP listener with no HTTPS listener to tunnel to) is refused with a non-2xx
// status whatever httpStatusCodes says, for a 2xx answer to a CONNECT opens a tunnel:
// the client would read the envelope as the tunnel's first bytes (the gigya npm
// package's proxy agent then crashed its process, given HTTPS_PROXY=https://... of the
// HTTPS listener). The details say which listener tunnels.
func TestConnectIsNoTunnel(t *testing.T) {
	s := newTestServer(t, t.TempDir(), nil)
	// A proxy client's CONNECT names a host and port (authority form); one that names a
	// path asks, in its query, for no HTTP status codes.
	authority := httptest.NewRequest(http.MethodConnect, "http://socialize.localtest.gigya.com:443", nil)
	authority.RequestURI, authority.URL = "socialize.localtest.gigya.com:443", &url.URL{Host: "socialize.localtest.gigya.com:443"}
	withPath := httptest.NewRequest(http.MethodConnect, "http://socialize.localtest/socialize.getUserInfo?httpStatusCodes=false", nil)
	for _, r := range []*http.Request{authority, withPath} {
		w := serve(s, r)
		body := w.Body.String()
		if w.Code != http.StatusBadRequest {
			t.Errorf("CONNECT %s: HTTP %d, want 400: %s", r.RequestURI, w.Code, body)
		}
		if !strings.Contains(body, `"errorCode":400001`) || !strings.Contains(body, "plain HTTP listener (--http) tunnels CONNECT") {
			t.Errorf("CONNECT %s: %s", r.RequestURI, body)
		}
	}
}

// TestExpiredByMovedClock: a signed request refused for a timestamp that the system
// time would take says that the server's clock was moved (the emulator's) and how to
// put it back; one outside the window of the system time too, or refused by a clock
// that was not moved, gets the plain details.
func TestExpiredByMovedClock(t *testing.T) {
	s := newTestServer(t, t.TempDir(), nil)
	clock := &socius.OffsetClock{}
	s.cfg.Clock = clock
	signedAt := func(name string, at time.Time) string {
		return signedBody("socialize.getUserInfo", name, url.Values{"UID": {"u1"}, "timestamp": {strconv.FormatInt(at.Unix(), 10)}})
	}
	const hint = "the server's clock is moved"
	for _, tt := range []struct {
		name     string
		offset   time.Duration
		at       time.Duration // from the system time
		want     string
		wantHint bool
	}{
		{"ahead", time.Hour, 0, "the server's clock is moved 1h0m0s ahead of it (the emulator's clock: socius emulator clock reset", true},
		{"behind", -15 * time.Minute, 0, "the server's clock is moved 15m0s behind it", true},
		{"client off too", time.Hour, -time.Hour, "is behind the server time", false},
		{"not moved", 0, -time.Hour, "is behind the server time", false},
	} {
		clock.Reset()
		clock.Advance(tt.offset)
		a := send(s, nil, "socialize.getUserInfo", signedAt(tt.name, time.Now().Add(tt.at)))
		if !strings.Contains(a, `"errorCode":403002`) || !strings.Contains(a, tt.want) || strings.Contains(a, hint) != tt.wantHint {
			t.Errorf("%s: %s", tt.name, a)
		}
	}
}

// TestEmptyCredentialsAreMissing: a credential or signing parameter sent empty is one
// not sent (400002), as every required parameter sent empty is; an empty userKey is
// named as such.
func TestEmptyCredentialsAreMissing(t *testing.T) {
	s := newTestServer(t, t.TempDir(), nil)
	signed, err := url.ParseQuery(signedBody("socialize.getUserInfo", "empty-ts", url.Values{"UID": {"u1"}}))
	if err != nil {
		t.Fatal(err)
	}
	signed.Set("timestamp", "")
	for _, tt := range []struct{ name, body, want string }{
		{"timestamp", signed.Encode(), `"errorCode":400002,"errorDetails":"Missing required parameter: timestamp"`},
		{"sig", "apiKey=" + labAPIKey + "&UID=u1&sig=", `"errorCode":400002,"errorDetails":"Missing required parameter: sig, secret or oauth_token"`},
		{"secret", "apiKey=" + labAPIKey + "&UID=u1&secret=", `"errorCode":400002,"errorDetails":"Missing required parameter: sig, secret or oauth_token"`},
		{"userKey", "apiKey=" + labAPIKey + "&UID=u1&userKey=&secret=" + url.QueryEscape(labKeySec), `"errorCode":403005,"errorDetails":"Unauthorized user: userKey is empty; leave it out to use the site's partner secret"`},
	} {
		if got := postBody(s, nil, true, "socialize.getUserInfo", tt.body); !strings.Contains(got, tt.want) {
			t.Errorf("%s sent empty: %s, want %s", tt.name, got, tt.want)
		}
	}
}

// TestTwoAuthorizationHeaders: a request with two Authorization headers is refused
// (400008): only the first would be read, and the second must not look accepted.
func TestTwoAuthorizationHeaders(t *testing.T) {
	s := newTestServer(t, t.TempDir(), nil)
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte(labAPIKey+":"+labSecret))
	for _, method := range []string{"socialize.getToken", "socialize.getUserInfo"} {
		r := httptest.NewRequest("POST", "https://socialize.localtest/"+method, strings.NewReader("grant_type=client_credentials&UID=u1"))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.Header.Add("Authorization", basic)
		r.Header.Add("Authorization", "Bearer eyJ.garbage.sig")
		r.TLS = &tls.ConnectionState{}
		if got := serve(s, r).Body.String(); !strings.Contains(got, `"errorCode":400008`) || !strings.Contains(got, "more than one Authorization header") {
			t.Errorf("%s with two Authorization headers: %s", method, got)
		}
	}
}

// TestBasicOutsideGetToken: HTTP Basic client credentials on another method are not
// taken; the answer says so over HTTPS, and over plain HTTP that the secret in them
// crossed the network in the clear (403006).
func TestBasicOutsideGetToken(t *testing.T) {
	s := newTestServer(t, t.TempDir(), nil)
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte(labAPIKey+":"+labSecret))
	for _, tt := range []struct {
		scheme, want string
	}{
		{"https", `"errorCode":400002,"errorDetails":"Missing required parameter: sig, secret or oauth_token (HTTP Basic credentials are taken by socialize.getToken only)"`},
		{"http", `"errorCode":403006`},
	} {
		r := httptest.NewRequest("POST", tt.scheme+"://socialize.localtest/socialize.getUserInfo", strings.NewReader("apiKey="+labAPIKey+"&UID=u1"))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.Header.Set("Authorization", basic)
		if tt.scheme == "https" {
			r.TLS = &tls.ConnectionState{}
		}
		if got := serve(s, r).Body.String(); !strings.Contains(got, tt.want) {
			t.Errorf("Basic over %s: %s, want %s", tt.scheme, got, tt.want)
		}
	}
}

// TestAuthorizationSchemeAlone: an Authorization header that names its scheme without
// credentials is that scheme's call with empty credentials: for OAuth an empty token
// (403025), not a call without credentials (400093).
func TestAuthorizationSchemeAlone(t *testing.T) {
	s := newTestServer(t, t.TempDir(), nil)
	for _, tt := range []struct{ header, want string }{
		{"OAuth", `"errorCode":403025,"errorDetails":"Invalid token: the token is empty"`},
		{"oauth ", `"errorCode":403025,"errorDetails":"Invalid token: the token is empty"`},
		{"OAuthX", `"errorCode":400093`},
	} {
		r := httptest.NewRequest("POST", "https://socialize.localtest/socialize.getUserInfo", strings.NewReader("UID=u1"))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.Header.Set("Authorization", tt.header)
		r.TLS = &tls.ConnectionState{}
		if got := serve(s, r).Body.String(); !strings.Contains(got, tt.want) {
			t.Errorf("Authorization: %q: %s, want %s", tt.header, got, tt.want)
		}
	}
}

// TestGetTokenUserKeyBesideClientSecret: a userKey beside client_id and client_secret
// must be the client_id's own key; another is refused (400006), not dropped.
func TestGetTokenUserKeyBesideClientSecret(t *testing.T) {
	s := newTestServer(t, t.TempDir(), nil)
	site := "client_id=" + labAPIKey + "&client_secret=" + url.QueryEscape(labSecret) + "&grant_type=none"
	key := "client_id=" + labUserKey + "&client_secret=" + url.QueryEscape(labKeySec) + "&grant_type=none"
	for _, tt := range []struct{ name, body, want string }{
		{"site's pair and a userKey", site + "&userKey=" + labUserKey, `"errorCode":400006,"errorDetails":"Invalid parameter value: userKey beside the site's client_id`},
		{"key's pair and another userKey", key + "&userKey=AOtherKey", `"errorCode":400006,"errorDetails":"Invalid parameter value: userKey and client_id name different keys"`},
		// Authenticated: the lab key's methods do not include getToken.
		{"key's pair and its own userKey", key + "&userKey=" + labUserKey, `"errorCode":403007,"errorDetails":"Permission denied: userKey AUserKeyLab1 may not call socialize.getToken"`},
		{"site's pair alone", site, `"errorCode":0`},
	} {
		if got := postBody(s, nil, true, "socialize.getToken", tt.body); !strings.Contains(got, tt.want) {
			t.Errorf("%s: %s, want %s", tt.name, got, tt.want)
		}
	}
}

// TestGetTokenOneCredential: a server call's credential beside client credentials
// (HTTP Basic, or client_id and client_secret) is checked too, not dropped: a
// signature that is never checked must not look accepted (an SDK configured with a
// secret adds its own beside the client's, and both pass). A bearer JWT beside them is
// refused. An empty x_siteUID is refused: a token of the whole site must be asked for
// by leaving it out.
func TestGetTokenOneCredential(t *testing.T) {
	s := newTestServer(t, t.TempDir(), nil)
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte(labAPIKey+":"+labSecret))
	pair := "client_id=" + labAPIKey + "&client_secret=" + url.QueryEscape(labSecret) + "&grant_type=none"
	for _, tt := range []struct{ name, auth, body, want string }{
		{"Basic and an expired sig", basic, "grant_type=none&apiKey=" + labAPIKey + "&timestamp=1&nonce=n1&sig=AAAAAAAAAAAAAAAAAAAAAAAAAAA=", `"errorCode":403002`},
		{"Basic and a bad sig", basic, "grant_type=none&apiKey=" + labAPIKey + "&timestamp=" + strconv.FormatInt(labTime.Unix(), 10) + "&nonce=n2&sig=AAAAAAAAAAAAAAAAAAAAAAAAAAA=", `"errorCode":403003`},
		{"Basic and a wrong secret", basic, "grant_type=none&secret=AAAAAAAAAAAAAAAAAAAAAA==", `"errorCode":403003,"errorDetails":"Invalid request signature: the secret does not match`},
		{"the pair and the right secret", "", pair + "&secret=" + url.QueryEscape(labSecret), `"errorCode":0`},
		{"Basic and a good signature", basic, signedBody("socialize.getToken", "basic-and-sig", url.Values{"grant_type": {"none"}}), `"errorCode":0`},
		// A key's pair beside the site's partner secret (an SDK configured with it): each
		// checked as its own.
		{"a key's pair and the partner secret", "", "client_id=" + labUserKey + "&client_secret=" + url.QueryEscape(labKeySec) + "&grant_type=none&apiKey=" + labAPIKey + "&secret=" + url.QueryEscape(labSecret), `"errorCode":403007`},
		{"a key's pair and a wrong partner secret", "", "client_id=" + labUserKey + "&client_secret=" + url.QueryEscape(labKeySec) + "&grant_type=none&apiKey=" + labAPIKey + "&secret=AAAAAAAAAAAAAAAAAAAAAA==", `"errorCode":403003,"errorDetails":"Invalid request signature: the secret does not match the secret of apiKey`},
		{"the pair and a bearer JWT", "Bearer e30.e30.sig", pair, `"errorCode":400008`},
		{"Basic and an empty x_siteUID", basic, "grant_type=none&x_siteUID=", `"errorCode":400006,"errorDetails":"Invalid parameter value: x_siteUID is empty`},
		{"the pair and an empty x_siteUID", "", pair + "&x_siteUID=", `"errorCode":400006,"errorDetails":"Invalid parameter value: x_siteUID is empty`},
		{"Basic alone", basic, "grant_type=none", `"errorCode":0`},
		{"the pair alone, for a user", "", pair + "&x_siteUID=u1", `"errorCode":0`},
	} {
		if got := getTokenOverTLS(s, tt.auth, tt.body); !strings.Contains(got, tt.want) {
			t.Errorf("%s: %s, want %s", tt.name, got, tt.want)
		}
	}
}

// getTokenOverTLS posts body to getToken as a request over TLS, with auth as its
// Authorization header unless empty, and returns the answer's body.
func getTokenOverTLS(s *Server, auth, body string) string {
	r := httptest.NewRequest("POST", "https://socialize.localtest/socialize.getToken", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if auth != "" {
		r.Header.Set("Authorization", auth)
	}
	r.TLS = &tls.ConnectionState{}
	return serve(s, r).Body.String()
}

// TestGetTokenEmptyClientSecret: a client_secret sent empty, as a parameter or after the
// colon of HTTP Basic credentials, is a missing one (400002 naming it), as every
// credential sent empty is, and as an empty client_id is beside it: it was 403003
// "the client secret does not match", a guess that --auth-failure-limit counted. No
// token is issued and no user created either way.
func TestGetTokenEmptyClientSecret(t *testing.T) {
	s := newTestServer(t, t.TempDir(), nil)
	for _, tt := range []struct{ name, auth, body, want string }{
		{"client_secret empty", "", "client_id=" + labAPIKey + "&client_secret=&grant_type=none&x_siteUID=nobody",
			`"errorCode":400002,"errorDetails":"Missing required parameter: client_secret"`},
		{"a key's client_secret empty", "", "client_id=" + labUserKey + "&client_secret=&grant_type=none",
			`"errorCode":400002,"errorDetails":"Missing required parameter: client_secret"`},
		{"Basic without a secret", "Basic " + base64.StdEncoding.EncodeToString([]byte(labAPIKey+":")), "grant_type=none&x_siteUID=nobody",
			`"errorCode":400002,"errorDetails":"Missing required parameter: client_secret (the HTTP Basic credentials hold none after the colon)"`},
		// Still checked first, as before.
		{"both empty", "", "client_id=&client_secret=&grant_type=none", `"errorCode":400002,"errorDetails":"Missing required parameter: client_id"`},
	} {
		if got := getTokenOverTLS(s, tt.auth, tt.body); !strings.Contains(got, tt.want) {
			t.Errorf("%s: %s, want %s", tt.name, got, tt.want)
		}
	}
	if got := postWithSecret(s, "socialize.getUserInfo", "UID=nobody"); !strings.Contains(got, `"errorCode":403005`) {
		t.Errorf("the user of a refused getToken: %s", got)
	}
}

// TestGetTokenWithoutCredential: getToken with an apiKey (or a client_id standing for
// it) and no credential says, after SPEC 3's words, which credentials getToken takes;
// it said only "sig, secret or oauth_token", as every other method does, and getToken
// refuses a token (403007). A
// method other than GET and POST is told to use POST, which getToken needs (a GET is
// 400001 too).
func TestGetTokenWithoutCredential(t *testing.T) {
	s := newTestServer(t, t.TempDir(), nil)
	const details = `"errorCode":400002,"errorDetails":"Missing required parameter: sig, secret or oauth_token (socialize.getToken takes client credentials, not an oauth_token: HTTP Basic apiKey:secret, client_id and client_secret, or the apiKey with a secret, a signature or a bearer JWT)"`
	for _, body := range []string{
		"apiKey=" + labAPIKey + "&grant_type=none",
		"client_id=" + labAPIKey + "&grant_type=none",
		"apiKey=" + labAPIKey + "&userKey=" + labUserKey + "&grant_type=none",
	} {
		if got := postBody(s, nil, true, "socialize.getToken", body); !strings.Contains(got, details) {
			t.Errorf("%s: %s, want %s", body, got, details)
		}
	}
	// Every other method's answer is as SPEC 3 words it.
	if got := postBody(s, nil, true, "socialize.getUserInfo", "apiKey="+labAPIKey+"&UID=u1"); !strings.Contains(got, `"errorDetails":"Missing required parameter: sig, secret or oauth_token"`) {
		t.Errorf("getUserInfo without a credential: %s", got)
	}
	for _, tt := range []struct{ method, want string }{
		{"socialize.getToken", "HTTP method PUT is not supported, use POST\""},
		{"socialize.getUserInfo", "HTTP method PUT is not supported, use GET or POST\""},
	} {
		r := httptest.NewRequest("PUT", "https://socialize.localtest/"+tt.method, nil)
		r.TLS = &tls.ConnectionState{}
		if got := serve(s, r).Body.String(); !strings.Contains(got, `"errorCode":400001`) || !strings.Contains(got, tt.want) {
			t.Errorf("PUT %s: %s, want %s", tt.method, got, tt.want)
		}
	}
}

// renameOnTokenRead is a store that renames a user right after a call has read its
// token, once: the rename that races a call of the user's token.
type renameOnTokenRead struct {
	socius.Store
	from, to string
	done     bool
}

func (r *renameOnTokenRead) Token(ctx context.Context, hash string) (*socius.Token, error) {
	t, err := r.Store.Token(ctx, hash)
	if err == nil && !r.done && t.UID == r.from {
		r.done = true
		if rerr := r.Store.RenameUser(ctx, t.APIKey, r.from, r.to); rerr != nil {
			return nil, rerr
		}
	}
	return t, err
}

// TestTokenCallRacingARename: a call with a user's token and no UID, whose user is
// renamed between the token's check and the call's work, acts on the user under its
// new UID (as it would a moment earlier or later), not 403005 for the old one.
func TestTokenCallRacingARename(t *testing.T) {
	s := newTestServer(t, t.TempDir(), nil)
	tok := siteToken(t, s, "&x_siteUID=u1").AccessToken
	race := &renameOnTokenRead{Store: s.cfg.Store, from: "u1", to: "u1-renamed"}
	s.cfg.Store = race
	got := postBody(s, nil, true, "socialize.setUserInfo", "oauth_token="+url.QueryEscape(tok)+`&userInfo={"nickname":"raced"}`)
	if !race.done || !strings.Contains(got, `"errorCode":0`) {
		t.Fatalf("setUserInfo with the token while its user is renamed: %s (renamed: %v)", got, race.done)
	}
	u, err := race.Store.User(context.Background(), labAPIKey, "u1-renamed")
	if err != nil || u.Profile[socius.Nickname] != "raced" {
		t.Errorf("the renamed user: %+v %v", u, err)
	}
}

// TestUserInfoSmallThings: includeAllIdentities is a boolean as signIDs is (400006
// otherwise); an unknown userInfo key given twice is listed once; x_userInfo's
// warning reads "an x_userInfo field".
func TestUserInfoSmallThings(t *testing.T) {
	s := newTestServer(t, t.TempDir(), nil)
	if got := postWithSecret(s, "socialize.getUserInfo", "UID=u1&includeAllIdentities=maybe"); !strings.Contains(got, `"errorCode":400006`) || !strings.Contains(got, "includeAllIdentities") {
		t.Errorf("includeAllIdentities=maybe: %s", got)
	}
	if got := postWithSecret(s, "socialize.getUserInfo", "UID=u1&includeAllIdentities=true"); !strings.Contains(got, `"errorCode":0`) {
		t.Errorf("includeAllIdentities=true: %s", got)
	}
	// skipValidation (notifyLogin) and dontHandleScreenSet (any method) are booleans too.
	for _, tc := range []struct{ method, body, name string }{
		{"socialize.notifyLogin", "siteUID=u1&skipValidation=maybe", "skipValidation"},
		{"socialize.getUserInfo", "UID=u1&dontHandleScreenSet=maybe", "dontHandleScreenSet"},
		{"socialize.setUserInfo", "UID=u1&userInfo={}&dontHandleScreenSet=2", "dontHandleScreenSet"},
	} {
		if got := postWithSecret(s, tc.method, tc.body); !strings.Contains(got, `"errorCode":400006`) || !strings.Contains(got, tc.name) {
			t.Errorf("%s %s: %s", tc.method, tc.body, got)
		}
	}
	for _, tc := range []struct{ method, body string }{
		{"socialize.notifyLogin", "siteUID=u1&skipValidation=true"},
		{"socialize.getUserInfo", "UID=u1&dontHandleScreenSet=false"},
	} {
		if got := postWithSecret(s, tc.method, tc.body); !strings.Contains(got, `"errorCode":0`) {
			t.Errorf("%s %s: %s", tc.method, tc.body, got)
		}
	}
	got := postWithSecret(s, "socialize.setUserInfo", "UID=u1&userInfo="+url.QueryEscape(`{"a":1,"a":2}`))
	if !strings.Contains(got, `"errorCode":0`) || strings.Count(got, `"userInfo.a"`) != 1 {
		t.Errorf("an unknown key twice: %s", got)
	}
	got = postWithSecret(s, "socialize.getToken", "grant_type=none&x_siteUID=u1&x_userInfo="+url.QueryEscape(`{"bad":1}`))
	if !strings.Contains(got, "Not an x_userInfo field; ignored") {
		t.Errorf("x_userInfo's warning: %s", got)
	}
}

// TestSignatureCheckBudget: a request whose escaped parameters are larger than the
// budget is checked against its most likely candidate URL only, so that a bad
// signature costs a bounded hash; an ordinary request is checked against every one
// (here the other scheme's, as behind a TLS terminator).
func TestSignatureCheckBudget(t *testing.T) {
	s := newTestServer(t, t.TempDir(), nil)
	key, _ := socius.DecodeSecret(labSecret)
	// The bulk in a key of setUserInfo's userInfo, which it ignores and only the body
	// limit bounds (no longer getUserInfo's userInfo, an unknown parameter bounded like
	// any since the thirtieth session).
	signedFor := func(scheme, nonce, bulk string) string {
		p := []gigya.Param{{Name: "apiKey", Value: labAPIKey}, {Name: "UID", Value: "u1"}, {Name: "nonce", Value: nonce},
			{Name: "timestamp", Value: strconv.FormatInt(labTime.Unix(), 10)}, {Name: "userInfo", Value: `{"padding":"` + bulk + `"}`}}
		form := url.Values{"sig": {gigya.Sign(key, "POST", scheme+"://socialize.localtest/socialize.setUserInfo", p)}}
		for _, kv := range p {
			form.Set(kv.Name, kv.Value)
		}
		return form.Encode()
	}
	if got := send(s, nil, "socialize.setUserInfo", signedFor("https", "small", "x")); !strings.Contains(got, `"errorCode":0`) {
		t.Errorf("an ordinary request signed for https, received over http: %s", got)
	}
	big := strings.Repeat(" ", verifyBudget/5+1) // one byte in the form (+), five in the base string (%2520)
	if got := send(s, nil, "socialize.setUserInfo", signedFor("http", "big-http", big)); !strings.Contains(got, `"errorCode":0`) {
		t.Errorf("a large request signed for the URL it was sent to: %.300s", got)
	}
	if got := send(s, nil, "socialize.setUserInfo", signedFor("https", "big-https", big)); !strings.Contains(got, `"errorCode":403003`) {
		t.Errorf("a large request signed for the other scheme: %.300s, want 403003 (one candidate tried)", got)
	}
}

// TestRefusedCallTakesNoSlot: a call refused by MaxConcurrent gives its slot back at
// once; while it is answered, only the calls in progress are counted.
func TestRefusedCallTakesNoSlot(t *testing.T) {
	s := newTestServer(t, t.TempDir(), nil)
	s.cfg.MaxConcurrent = 1
	release := make(chan struct{})
	s.cfg.Fault = func(string, string) (int, time.Duration, bool) { <-release; return 0, 0, false }
	inFlightAtRefusal := -1
	s.cfg.Observe = func(c *Call) {
		if c.Code == socius.CodeRateLimited {
			inFlightAtRefusal = s.InFlight()
		}
	}
	done := make(chan string)
	go func() { done <- postWithSecret(s, "socialize.getUserInfo", "UID=u1") }()
	for s.InFlight() != 1 {
		time.Sleep(time.Millisecond)
	}
	if got := postWithSecret(s, "socialize.getUserInfo", "UID=u1"); !strings.Contains(got, `"errorCode":403048`) || !strings.Contains(got, "busy with 1 call,") {
		t.Errorf("a call beyond MaxConcurrent: %s", got)
	}
	close(release)
	if got := <-done; !strings.Contains(got, `"errorCode":0`) {
		t.Errorf("the call in progress: %s", got)
	}
	if inFlightAtRefusal != 1 {
		t.Errorf("calls in progress while the refusal was answered: %d, want 1", inFlightAtRefusal)
	}
}

// TestStoredSecretsHiddenFromObservers: a site's or a key's secret that a call carries
// in a parameter no credential goes by (pasted into the context of a signed call)
// reaches no observer in any form, as a secret sent as the secret does not; the call
// is answered as before.
func TestStoredSecretsHiddenFromObservers(t *testing.T) {
	s := newTestServer(t, t.TempDir(), nil)
	s.cfg.ExplainSignatures = true
	if err := s.cfg.Store.CreateKey(context.Background(), &socius.Key{UserKey: "AHiddenKey", APIKey: labAPIKey,
		Secret: labKeySec, CreatedAt: labTime}); err != nil {
		t.Fatal(err)
	}
	var calls []Call
	s.cfg.Observe = func(c *Call) { calls = append(calls, *c) }
	ts := strconv.FormatInt(labTime.Unix(), 10)
	for _, form := range []url.Values{
		// Signed, the signature wrong: parameters, details and base strings observed.
		{"apiKey": {labAPIKey}, "UID": {"u1"}, "timestamp": {ts}, "nonce": {"n1"},
			"sig": {"AAAAAAAAAAAAAAAAAAAAAAAAAAA="}, "context": {labSecret}, "note": {"x" + labSecret}},
		{"apiKey": {labAPIKey}, "userKey": {"AHiddenKey"}, "UID": {"u1"}, "timestamp": {ts}, "nonce": {"n2"},
			"sig": {"AAAAAAAAAAAAAAAAAAAAAAAAAAA="}, "context": {labKeySec}},
		// The key's secret as the secret, the partner secret beside it: answered.
		{"apiKey": {labAPIKey}, "userKey": {"AHiddenKey"}, "secret": {labKeySec}, "UID": {"u1"}, "context": {labSecret}},
	} {
		r := httptest.NewRequest("POST", "https://socialize.localtest/socialize.getUserInfo", strings.NewReader(form.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.TLS = &tls.ConnectionState{}
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		want := `"errorCode":403003`
		if form.Has("secret") {
			want = `"errorCode":0`
		}
		if !strings.Contains(w.Body.String(), want) {
			t.Fatalf("%v: answer %s, want %s", form, w.Body, want)
		}
	}
	if len(calls) != 3 {
		t.Fatalf("%d calls observed", len(calls))
	}
	if len(calls[0].BaseStrings) == 0 || !strings.Contains(calls[0].Details, "POST&") {
		t.Fatalf("no base strings observed: %+v", calls[0])
	}
	for i, c := range calls {
		text := fmt.Sprintf("%+v", c)
		for _, secret := range []string{labSecret, labKeySec} {
			for _, form := range []string{secret[4:20], gigya.Escape(secret), gigya.Escape(gigya.Escape(secret))} {
				if strings.Contains(text, form) {
					t.Errorf("call %d: an observer sees %q: %s", i, form, text)
				}
			}
		}
	}
}

// TestIntegerParameters: sessionExpiration and x_sessionExpiration are read by the one
// rule of integer parameters (gigya.ParseInteger), as timestamp is: digits, leading
// zeros allowed, "-" only before a value that is negative; "+60", "-0" and spaces,
// which strconv took, are 400006 naming the parameter.
func TestIntegerParameters(t *testing.T) {
	s := newTestServer(t, t.TempDir(), nil)
	for _, tt := range []struct{ method, param, body string }{
		{"socialize.notifyLogin", "sessionExpiration", "siteUID=u1&targetEnv=mobile"},
		{"socialize.getToken", "x_sessionExpiration", "grant_type=none&x_siteUID=u1"},
	} {
		for _, v := range []string{"60", "060", "0", "-1", "-2", "2147483647"} {
			got := postWithSecret(s, tt.method, tt.body+"&"+tt.param+"="+url.QueryEscape(v))
			if !strings.Contains(got, `"errorCode":0`) {
				t.Errorf("%s %s=%q: %s", tt.method, tt.param, v, got)
			}
		}
		for _, v := range []string{"+60", "-0", "-00", "+0", " 60", "60 ", "1.5", "1e3", "-3", "2147483648"} {
			got := postWithSecret(s, tt.method, tt.body+"&"+tt.param+"="+url.QueryEscape(v))
			if !strings.Contains(got, `"errorCode":400006`) || !strings.Contains(got, `"errorDetails":"Invalid parameter value: `+tt.param+` must be`) {
				t.Errorf("%s %s=%q: %s", tt.method, tt.param, v, got)
			}
		}
	}
}

// TestTwoContentTypes: a body with two Content-Type fields that differ is refused
// (400001) in either order: Socius reads the first, as net/http does, while a proxy
// before it may read the last. The same field twice is one type.
func TestTwoContentTypes(t *testing.T) {
	s := newTestServer(t, t.TempDir(), nil)
	body := "apiKey=" + labAPIKey + "&secret=" + url.QueryEscape(labSecret) + "&UID=u1"
	for _, tt := range []struct {
		types []string
		want  string
	}{
		{[]string{formType, "text/plain"}, `"errorCode":400001,"errorDetails":"Invalid request format: 2 Content-Type headers that differ (\"application/x-www-form-urlencoded\", \"text/plain\"); send one"`},
		{[]string{"text/plain", formType}, `"errorCode":400001,"errorDetails":"Invalid request format: 2 Content-Type headers that differ (\"text/plain\", \"application/x-www-form-urlencoded\"); send one"`},
		{[]string{formType, formType, formType + "; charset=utf-8"}, `"errorCode":400001,"errorDetails":"Invalid request format: 3 Content-Type headers that differ (\"application/x-www-form-urlencoded\", \"application/x-www-form-urlencoded; charset=utf-8\"); send one"`},
		{[]string{formType, formType}, `"errorCode":0`},
		{[]string{formType}, `"errorCode":0`},
	} {
		r := httptest.NewRequest("POST", "https://socialize.localtest/socialize.getUserInfo", strings.NewReader(body))
		for _, ct := range tt.types {
			r.Header.Add("Content-Type", ct)
		}
		r.TLS = &tls.ConnectionState{}
		if got := serve(s, r).Body.String(); !strings.Contains(got, tt.want) {
			t.Errorf("Content-Type %q: %s, want %s", tt.types, got, tt.want)
		}
	}
}

// TestContentTypeQuoted: a refused Content-Type is quoted masked, but for the form
// type it starts with, which has the shape of a secret.
func TestContentTypeQuoted(t *testing.T) {
	s := newTestServer(t, t.TempDir(), nil)
	for ct, want := range map[string]string{
		"application/x-www-form-urlencoded;;;":       `not \"application/x-www-form-urlencoded;;;\"`,
		"text/plain; t=AbCdEfGhIjKlMnOpQrStUvWx1234": `not \"text/plain; t=AbCd...\"`,
	} {
		r := httptest.NewRequest("POST", "https://socialize.localtest/socialize.getUserInfo", strings.NewReader("UID=u1"))
		r.Header.Set("Content-Type", ct)
		if got := serve(s, r).Body.String(); !strings.Contains(got, `"errorCode":400001`) || !strings.Contains(got, want) {
			t.Errorf("Content-Type %q: %s, want %s", ct, got, want)
		}
	}
}

// TestUserInfoAfterByteOrderMark: a userInfo read from a file a Windows editor saved,
// a byte order mark first, is taken as the JSON after it; a context so sent, which is
// echoed, is echoed as sent.
func TestUserInfoAfterByteOrderMark(t *testing.T) {
	s := newTestServer(t, t.TempDir(), nil)
	got := postWithSecret(s, "socialize.setUserInfo", "UID=u1&userInfo="+url.QueryEscape("\ufeff"+`{"nickname":"bom"}`)+"&context="+url.QueryEscape("\ufeff{}"))
	if !strings.Contains(got, `"errorCode":0`) || !strings.Contains(got, `"context":"`+"\ufeff"+`{}"`) {
		t.Fatalf("userInfo after a byte order mark: %s", got)
	}
	if got := postWithSecret(s, "socialize.getUserInfo", "UID=u1"); !strings.Contains(got, `"nickname":"bom"`) {
		t.Errorf("after setUserInfo: %s", got)
	}
}

// TestAbsoluteTargetScheme: an absolute-form target is served for http and https (in
// any letter case; what an SDK sends through a proxy), and refused (400001) for any
// other scheme, which net/http passes on; the refusal is answered as the query asks.
func TestAbsoluteTargetScheme(t *testing.T) {
	s := newTestServer(t, t.TempDir(), nil)
	query := "?apiKey=" + labAPIKey + "&secret=" + url.QueryEscape(labSecret) + "&UID=u1"
	for _, tt := range []struct{ target, want string }{
		{"http://socialize.localtest/socialize.getUserInfo", `"errorCode":0`},
		{"https://socialize.localtest/socialize.getUserInfo", `"errorCode":0`},
		{"HTTPS://socialize.localtest/socialize.getUserInfo", `"errorCode":0`},
		{"ftp://socialize.localtest/socialize.getUserInfo", `"errorCode":400001,"errorDetails":"Invalid request format: the request target's scheme \"ftp\" is not http or https: send the path alone, or an http:// or https:// URL"`},
		{"javascript://x/socialize.getUserInfo", `scheme \"javascript\" is not http or https`},
		{"ws://x/socialize.getUserInfo", `scheme \"ws\" is not http or https`},
	} {
		r := httptest.NewRequest("GET", tt.target+query, nil)
		r.TLS = &tls.ConnectionState{}
		if got := serve(s, r).Body.String(); !strings.Contains(got, tt.want) {
			t.Errorf("GET %s: %s, want %s", tt.target, got, tt.want)
		}
	}
	r := httptest.NewRequest("GET", "ftp://x/socialize.getUserInfo?format=xml&httpStatusCodes=true", nil)
	if w := serve(s, r); w.Code != 400 || !strings.Contains(w.Body.String(), "<errorCode>400001</errorCode>") {
		t.Errorf("ftp: with format=xml&httpStatusCodes=true: HTTP %d %s", w.Code, w.Body)
	}
}

// TestTokenCallCredentialsBeside: sig, secret, timestamp, nonce and userKey sent beside
// an access token are not used (the token authenticates the call) and, being parameters
// every method knows, are not listed in ignoredParams, which names only parameters the
// method does not know (SPEC 2), so that checkParams=true does not fail the call (the
// Java SDK built with a secret signs a call that carries an oauth_token). A decision of
// the twenty-ninth session: docs/compatibility.md.
func TestTokenCallCredentialsBeside(t *testing.T) {
	s := newTestServer(t, t.TempDir(), nil)
	a := siteToken(t, s, "&x_siteUID=u1")
	beside := "&sig=AAAAAAAAAAAAAAAAAAAAAAAAAAA%3D&secret=" + url.QueryEscape(labKeySec) +
		"&timestamp=1&nonce=n&userKey=" + labUserKey + "&checkParams=true"
	got := postBody(s, nil, true, "socialize.getUserInfo", "oauth_token="+a.AccessToken+beside)
	if !strings.Contains(got, `"errorCode":0`) || strings.Contains(got, "ignoredParams") {
		t.Errorf("a token call with credentials beside it: %s", got)
	}
	got = postBody(s, nil, true, "socialize.getUserInfo", "oauth_token="+a.AccessToken+beside+"&shoeSize=44")
	if !strings.Contains(got, `"errorCode":403007`) || !strings.Contains(got, "unrecognized parameters with checkParams=true: shoeSize\"") {
		t.Errorf("with an unknown parameter too: %s", got)
	}
}

// TestBulkyParamsOnlyWhereTaken: userInfo and x_userInfo are bounded by the body limit
// alone only for a method that takes them; to any other method they are unknown
// parameters, ignored, and a value over MaxParamBytes is refused like any other's.
// (To a method Socius does not serve: TestUnknownMethodBeforeParamSizes.)
func TestBulkyParamsOnlyWhereTaken(t *testing.T) {
	s := newTestServer(t, t.TempDir(), nil)
	big := `{"nickname":"n","padding":"` + strings.Repeat("p", DefaultMaxParamBytes) + `"}`
	for _, tt := range []struct{ method, param, want string }{
		{"socialize.getUserInfo", "userInfo", `"errorCode":400006,"errorDetails":"Invalid parameter value: userInfo is longer than 65536 bytes (only a method that takes userInfo reads a longer one, and socialize.getUserInfo does not)"`},
		{"socialize.setUserInfo", "X_USERINFO", `"errorCode":400006,"errorDetails":"Invalid parameter value: X_USERINFO is longer than 65536 bytes (only a method that takes X_USERINFO reads a longer one, and socialize.setUserInfo does not)"`},
		// Taken: only the body limit bounds it (its key padding is ignored).
		{"socialize.setUserInfo", "userInfo", `"errorCode":0,`},
	} {
		body := "apiKey=" + labAPIKey + "&secret=" + url.QueryEscape(labSecret) + "&UID=u1&" + tt.param + "=" + url.QueryEscape(big)
		r := httptest.NewRequest("POST", "https://socialize.localtest/"+tt.method, strings.NewReader(body))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.TLS = &tls.ConnectionState{}
		if got := serve(s, r).Body.String(); !strings.Contains(got, tt.want) {
			t.Errorf("%s with a %d-byte %s: %s\nwant %s", tt.method, len(big), tt.param, got, tt.want)
		}
	}
}

// TestUnknownMethodBeforeParamSizes: a method Socius does not serve is refused as such
// (400001, SPEC 1), whatever its parameters: a parameter over MaxParamBytes sent to it
// was refused first, 400006, and the caller who mistyped the method's name heard of the
// parameter instead. A path under /_emulator/ on a server not in emulator mode is said
// to need it, whatever the size of the request. A known method still gets its 400006.
func TestUnknownMethodBeforeParamSizes(t *testing.T) {
	s := newTestServer(t, t.TempDir(), nil)
	big := strings.Repeat("p", DefaultMaxParamBytes+1)
	for _, tt := range []struct{ path, param, want string }{
		{"socialize.noSuchMethod", "padding", `"errorCode":400001,"errorDetails":"Unknown method: socialize.noSuchMethod is not a method Socius serves"`},
		{"socialize.noSuchMethod", "userInfo", `"errorCode":400001,"errorDetails":"Unknown method: socialize.noSuchMethod is not a method Socius serves"`},
		{"socialize.getUserInfos", "fields", `"errorCode":400001,"errorDetails":"Unknown method: socialize.getUserInfos is not a method Socius serves"`},
		{"_emulator/api/seed", "padding", `"errorCode":400001,"errorDetails":"Unknown method: the /_emulator/ paths are served only in emulator mode (socius serve --emulator)"`},
		{"_emulator/api/seed", "userInfo", `"errorCode":400001,"errorDetails":"Unknown method: the /_emulator/ paths are served only in emulator mode (socius serve --emulator)"`},
		{"_emulator/api/seed", "", `"errorCode":400001,"errorDetails":"Unknown method: the /_emulator/ paths are served only in emulator mode (socius serve --emulator)"`},
		{"socialize.getUserInfo", "padding", `"errorCode":400006,"errorDetails":"Invalid parameter value: padding is longer than 65536 bytes"`},
	} {
		body := "apiKey=" + labAPIKey + "&secret=" + url.QueryEscape(labSecret) + "&UID=u1"
		if tt.param != "" {
			body += "&" + tt.param + "=" + big
		}
		r := httptest.NewRequest("POST", "https://socialize.localtest/"+tt.path, strings.NewReader(body))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.TLS = &tls.ConnectionState{}
		if got := serve(s, r).Body.String(); !strings.Contains(got, tt.want) {
			t.Errorf("/%s with %s: %s\nwant %s", tt.path, tt.param, got, tt.want)
		}
	}
}

// TestUserKeyAsAPIKey: a server call that sends a userKey where the apiKey goes, with
// that key's own secret, is told so (400093, guessing nothing: the limit on failed
// authentications does not count it); with any other secret, or none, it is answered
// as any apiKey of no site is, which does not tell which userKeys exist.
func TestUserKeyAsAPIKey(t *testing.T) {
	s := newTestServer(t, t.TempDir(), nil)
	for _, tt := range []struct{ name, body, want string }{
		{"its own secret", "apiKey=" + labUserKey + "&secret=" + url.QueryEscape(labKeySec) + "&UID=u1",
			`"errorCode":400093,"errorDetails":"Invalid ApiKey parameter: apiKey AUserKeyLab1 is a userKey; send the site's apiKey as apiKey and this key as userKey beside its secret"`},
		{"another secret", "apiKey=" + labUserKey + "&secret=" + url.QueryEscape(labSecret) + "&UID=u1",
			`"errorCode":400093,"errorDetails":"Invalid ApiKey parameter: no site has apiKey \"AUs\"... (length 12)"`},
		{"a signature", "apiKey=" + labUserKey + "&UID=u1&timestamp=1&nonce=n&sig=AAAAAAAAAAAAAAAAAAAAAAAAAAA=",
			`"errorCode":400093,"errorDetails":"Invalid ApiKey parameter: no site has apiKey`},
	} {
		got := postBody(s, nil, true, "socialize.getUserInfo", tt.body)
		if !strings.Contains(got, tt.want) {
			t.Errorf("%s: %s, want %s", tt.name, got, tt.want)
		}
	}
}

// keyLookupFault is a fault injected into a real store: Key fails, as a database that
// went away would.
type keyLookupFault struct{ socius.Store }

func (keyLookupFault) Key(context.Context, string) (*socius.Key, error) {
	return nil, socius.DatabaseError("key", errors.New("injected: the database went away"))
}

// TestUserKeyAsAPIKeyStoreFault: when the store fails the lookup that tells a userKey
// sent as the apiKey (or getToken's client_id) with its own secret, the call is
// answered as any store failure is (500028, logged), not as an apiKey of no site:
// that 400093 told the client its credentials were wrong, and spent the address's
// budget of failed authentications.
func TestUserKeyAsAPIKeyStoreFault(t *testing.T) {
	var logs bytes.Buffer
	s := newTestServer(t, t.TempDir(), &logs)
	s.cfg.Store = keyLookupFault{s.cfg.Store}
	for _, tt := range []struct{ name, method, body string }{
		{"apiKey", "socialize.getUserInfo", "apiKey=" + labUserKey + "&secret=" + url.QueryEscape(labKeySec) + "&UID=u1"},
		{"client_id", "socialize.getToken", "client_id=" + labUserKey + "&secret=" + url.QueryEscape(labKeySec) + "&grant_type=none"},
	} {
		logs.Reset()
		got := postBody(s, nil, true, tt.method, tt.body)
		if !strings.Contains(got, `"errorCode":500028,"errorDetails":"Database error"`) || strings.Contains(got, "injected") {
			t.Errorf("%s: %s; want 500028 Database error", tt.name, got)
		}
		if l := logs.String(); !strings.Contains(l, "level=ERROR") || !strings.Contains(l, "injected: the database went away") {
			t.Errorf("%s: the store's failure is not logged as an error:\n%s", tt.name, l)
		}
	}
}

// TestNullUserInfoIsNone: notifyLogin's userInfo and getToken's x_userInfo sent as a
// JSON null (what the gigya npm package sends for a null) are none, as sent empty:
// the login is made with the profile unchanged, and a null x_userInfo asks for no
// x_siteUID. They were 400006 "must be a JSON object", and a null after a byte order
// mark (which ParseJSON skips) stayed so for a while. setUserInfo's userInfo, which
// the method needs, is still refused.
func TestNullUserInfoIsNone(t *testing.T) {
	s := newTestServer(t, t.TempDir(), nil)
	var kept socius.Patch
	kept.Set(socius.Nickname, "kept")
	if err := s.cfg.Store.UpdateProfile(context.Background(), labAPIKey, "u1", &kept, labTime); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ name, method, params, want string }{
		{"notifyLogin, a new user", "socialize.notifyLogin", "siteUID=newbie&userInfo=null", `"errorCode":0`},
		{"notifyLogin, a known user", "socialize.notifyLogin", "siteUID=u1&userInfo=%20null%0A", `"errorCode":0`},
		{"getToken, a site token", "socialize.getToken", "grant_type=none&x_userInfo=null", `"errorCode":0`},
		{"getToken, a user's", "socialize.getToken", "grant_type=none&x_siteUID=u1&x_userInfo=null", `"errorCode":0`},
		// A null as ParseJSON reads one: after a byte order mark too (a file saved by a
		// Windows editor), as providerSessions takes it.
		{"notifyLogin, a null after a byte order mark", "socialize.notifyLogin", "siteUID=u1&userInfo=%EF%BB%BF%20null&providerSessions=%EF%BB%BFnull", `"errorCode":0`},
		{"getToken, a null after a byte order mark", "socialize.getToken", "grant_type=none&x_userInfo=%EF%BB%BFnull", `"errorCode":0`},
		{"setUserInfo", "socialize.setUserInfo", "UID=u1&userInfo=null", `"errorCode":400006,"errorDetails":"Invalid parameter value: userInfo must be a JSON object"`},
		// Not a null: still read, and refused.
		{"notifyLogin, nulls", "socialize.notifyLogin", "siteUID=u1&userInfo=nullnull", `"errorCode":400006`},
	} {
		if got := postWithSecret(s, tt.method, tt.params); !strings.Contains(got, tt.want) {
			t.Errorf("%s: %s, want %s", tt.name, got, tt.want)
		}
	}
	for uid, nick := range map[string]string{"newbie": "", "u1": "kept"} {
		u, err := s.cfg.Store.User(context.Background(), labAPIKey, uid)
		if err != nil || u.Profile.Get(socius.Nickname) != nick || u.LoginAt.IsZero() {
			t.Errorf("%s after the logins: %+v %v; want logged in, nickname %q", uid, u, err, nick)
		}
	}
}

// TestUIDTakenAsSent: a siteUID with spaces around it, or of spaces only, makes a user
// of its own, taken byte for byte (docs/compatibility.md): neither trimmed into another
// user nor refused, and the UID names it after.
func TestUIDTakenAsSent(t *testing.T) {
	s := newTestServer(t, t.TempDir(), nil)
	for _, uid := range []string{" u1", "u1 ", "  "} {
		body := "siteUID=" + url.QueryEscape(uid) + "&userInfo=" + url.QueryEscape(`{"nickname":"`+strings.ReplaceAll(uid, " ", "_")+`"}`)
		if got := postWithSecret(s, "socialize.notifyLogin", body); !strings.Contains(got, `"errorCode":0`) || !strings.Contains(got, `"UID":"`+uid+`"`) {
			t.Errorf("notifyLogin of %q: %s", uid, got)
		}
		got := postWithSecret(s, "socialize.getUserInfo", "UID="+url.QueryEscape(uid))
		if want := `"nickname":"` + strings.ReplaceAll(uid, " ", "_") + `"`; !strings.Contains(got, want) || !strings.Contains(got, `"UID":"`+uid+`"`) {
			t.Errorf("getUserInfo of %q: %s, want %s and the UID as sent", uid, got, want)
		}
	}
	// u1 itself is as it was.
	u, err := s.cfg.Store.User(context.Background(), labAPIKey, "u1")
	if err != nil || strings.Contains(u.Profile.Get(socius.Nickname), "_") {
		t.Errorf("u1 after the others: %+v %v", u, err)
	}
}

// TestUserInfoValuesAsSent: what docs/compatibility.md says of userInfo's values and
// no test held. A number in a text field is stored as its text, as sent (2026-11-28,
// Methods); a value is trimmed of white space only where it is read as a number (age),
// so a nickname of spaces is stored as spaces and a gender " f" is refused; a \u
// escape of a lone UTF-16 surrogate is stored as U+FFFD (both 2026-11-29).
func TestUserInfoValuesAsSent(t *testing.T) {
	s := newTestServer(t, t.TempDir(), nil)
	ui := `{"nickname":"   ","firstName":1e2,"lastName":-0.50,"email":"\ud800@x","age":" 30 ","photoURL":007}`
	if got := postWithSecret(s, "socialize.setUserInfo", "UID=u1&userInfo="+url.QueryEscape(ui)); !strings.Contains(got, `"errorCode":0`) {
		t.Fatalf("setUserInfo %s: %s", ui, got)
	}
	u, err := s.cfg.Store.User(context.Background(), labAPIKey, "u1")
	if err != nil {
		t.Fatal(err)
	}
	want := socius.Profile{socius.Nickname: "   ", socius.FirstName: "1e2", socius.LastName: "-0.50", socius.Email: "\ufffd@x", socius.Age: "30", socius.PhotoURL: "007"}
	if u.Profile != want {
		t.Errorf("stored %q, want %q", u.Profile, want)
	}
	got := postWithSecret(s, "socialize.getUserInfo", "UID=u1")
	for _, w := range []string{`"nickname":"   "`, `"firstName":"1e2"`, `"lastName":"-0.50"`, `"email":"\ufffd@x"`, `"age":30,`, `"photoURL":"007"`} {
		if !strings.Contains(got, w) {
			t.Errorf("getUserInfo without %s: %s", w, got)
		}
	}
	for _, bad := range []string{`{"gender":" f"}`, `{"gender":"f "}`, `{"gender":"F"}`} {
		if got := postWithSecret(s, "socialize.setUserInfo", "UID=u1&userInfo="+url.QueryEscape(bad)); !strings.Contains(got, `"errorCode":400006`) || !strings.Contains(got, "gender must be one of m, f, u") {
			t.Errorf("setUserInfo %s: %s, want 400006 naming gender", bad, got)
		}
	}
}

// TestSerializationOfEachSDK: the value gigya-protocol-notes.md section 8 measured,
// userInfo {"firstName":"Dávid","photoURL":"http://x/y","age":30,"b":true} with flag
// true and n 0, as each SDK serializes and sends it: Python's json.dumps (", " and
// ": " spacing, \u00e1) and True, PHP's json_encode (\/ and \u00e1) and 1, Java's
// org.json (\/, raw UTF-8), .NET's System.Text.Json (\u00E1, upper-case hex) and
// True, each signed; the gigya npm package's JSON.stringify with its plain secret
// (it would sign the 0 as empty, a 403003 as at Gigya). Each is answered 0 and stores
// the same profile; flag, n and userInfo.b are listed in ignoredParams.
func TestSerializationOfEachSDK(t *testing.T) {
	for _, tt := range []struct {
		sdk, userInfo, flag string
		plain               bool
	}{
		{"python", `{"firstName": "D\u00e1vid", "photoURL": "http://x/y", "age": 30, "b": true}`, "True", false},
		{"php", `{"firstName":"D\u00e1vid","photoURL":"http:\/\/x\/y","age":30,"b":true}`, "1", false},
		{"java", `{"firstName":"Dávid","photoURL":"http:\/\/x\/y","age":30,"b":true}`, "true", false},
		{"dotnet", `{"firstName":"D\u00E1vid","photoURL":"http://x/y","age":30,"b":true}`, "True", false},
		{"node", `{"firstName":"Dávid","photoURL":"http://x/y","age":30,"b":true}`, "true", true},
	} {
		s := newTestServer(t, t.TempDir(), nil)
		p := url.Values{"UID": {"u1"}, "userInfo": {tt.userInfo}, "flag": {tt.flag}, "n": {"0"}, "format": {"json"}}
		var got string
		if tt.plain {
			got = postWithSecret(s, "socialize.setUserInfo", p.Encode())
		} else {
			p.Set("httpStatusCodes", "false")
			got = send(s, nil, "socialize.setUserInfo", signedBody("socialize.setUserInfo", tt.sdk+"-nonce", p))
		}
		var a struct {
			ErrorCode     int `json:"errorCode"`
			IgnoredParams []struct {
				ParamName string `json:"paramName"`
			} `json:"ignoredParams"`
		}
		if err := json.Unmarshal([]byte(got), &a); err != nil || a.ErrorCode != 0 {
			t.Errorf("%s: %s", tt.sdk, got)
			continue
		}
		var ignored []string
		for _, i := range a.IgnoredParams {
			ignored = append(ignored, i.ParamName)
		}
		sort.Strings(ignored)
		if strings.Join(ignored, " ") != "flag n userInfo.b" {
			t.Errorf("%s: ignoredParams %v, want flag, n and userInfo.b", tt.sdk, ignored)
		}
		u, err := s.cfg.Store.User(context.Background(), labAPIKey, "u1")
		if err != nil {
			t.Fatal(err)
		}
		want := socius.Profile{socius.FirstName: "Dávid", socius.PhotoURL: "http://x/y", socius.Age: "30"}
		if u.Profile != want {
			t.Errorf("%s: stored %q, want %q", tt.sdk, u.Profile, want)
		}
	}
}

// TestSDKParamsAsSent: two parameter sets of gigya-protocol-notes.md section 9 that no
// capture holds. The Python SDK sends (and signs) the _host it was given, which it
// otherwise ignores: answered 0, _host in ignoredParams. The Java SDK coaxed into
// plain mode (GSRequest(apiKey, null, method, {secret}, useHTTPS, userKey)) sends
// apiKey, userKey and the key's secret unsigned, in its TreeMap order: answered 0 over
// TLS, 403006 over http (useHTTPS=false), nothing stored.
func TestSDKParamsAsSent(t *testing.T) {
	s := newTestServer(t, t.TempDir(), nil)
	python := url.Values{"UID": {"u1"}, "_host": {"127.0.0.1:8080"}, "format": {"json"}, "httpStatusCodes": {"false"},
		"sdk": {"python_3.6.0"}, "userInfo": {`{"firstName": "Py"}`}}
	got := send(s, nil, "socialize.setUserInfo", signedBody("socialize.setUserInfo", "python-host", python))
	if !strings.Contains(got, `"errorCode":0`) || !strings.Contains(got, `"paramName":"_host"`) || firstName(t, s) != "Py" {
		t.Errorf("Python with _host: %s", got)
	}
	java := "UID=u1&apiKey=" + labAPIKey + "&format=json&httpStatusCodes=false&sdk=java_3.2.4&secret=" + url.QueryEscape(labKeySec) +
		"&userInfo=" + url.QueryEscape(`{"firstName":"Jo"}`) + "&userKey=" + labUserKey
	if got := postBody(s, nil, false, "socialize.setUserInfo", java); !strings.Contains(got, `"errorCode":403006`) || firstName(t, s) != "Py" {
		t.Errorf("Java plain mode over http: %s", got)
	}
	if got := postBody(s, nil, true, "socialize.setUserInfo", java); !strings.Contains(got, `"errorCode":0`) || strings.Contains(got, "ignoredParams") || firstName(t, s) != "Jo" {
		t.Errorf("Java plain mode over TLS: %s", got)
	}
}

// TestCanonicalMethodsClipsName: a method refused (an import's or a seed's key line)
// is quoted clipped, with its length: a name of most of a megabyte was quoted whole.
func TestCanonicalMethodsClipsName(t *testing.T) {
	name := strings.Repeat("x", 900_000)
	_, err := CanonicalMethods([]string{name})
	if err == nil || len(err.Error()) > 400 || !strings.HasPrefix(err.Error(), `"`+name[:64]+`"... (900000 bytes) is not a method Socius serves (`) {
		t.Errorf("%.300v (%d bytes)", err, len(fmt.Sprint(err)))
	}
	if _, err := CanonicalMethods([]string{"getUserInfo", "frobnicate"}); err == nil || !strings.HasPrefix(err.Error(), `"frobnicate" is not a method`) {
		t.Errorf("a short name: %v", err)
	}
}
