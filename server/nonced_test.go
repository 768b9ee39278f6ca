package server

import (
	"context"
	"errors"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/socius/socius"
	"github.com/socius/socius/gigya"
)

// noncedStore is a Config.Nonced for fault injection: the test server's own nonces and
// store, one after the other (PostgreSQL's does both in one statement; its own tests
// are in the postgres and cmd/socius packages). before runs first in each operation
// and may panic or cancel the client's context; fail, when set, fails the operation
// before it records anything, as a failed statement does. calls counts operations.
type noncedStore struct {
	st     socius.Store
	ns     socius.NonceStore
	before func()
	after  func() // runs once the nonce is recorded
	fail   error
	calls  int
}

func (n *noncedStore) start(ctx context.Context, nu socius.NonceUse) (bool, error) {
	n.calls++
	if n.before != nil {
		n.before()
	}
	if err := ctx.Err(); err != nil {
		return false, err // as a database driver gives up on a cancelled context
	}
	if n.fail != nil {
		return false, n.fail
	}
	fresh, err := n.ns.UseNonce(ctx, nu.Credential, nu.Nonce, nu.Expires, nu.Now)
	if err == nil && n.after != nil {
		n.after()
	}
	return fresh, err
}

func (n *noncedStore) UpdateProfileNonced(ctx context.Context, nu socius.NonceUse, apiKey, uid string, p *socius.Patch, now time.Time) (bool, error) {
	fresh, err := n.start(ctx, nu)
	if err != nil || !fresh {
		return fresh, err
	}
	if p.Empty() {
		_, err = n.st.User(ctx, apiKey, uid)
		return true, err
	}
	return true, n.st.UpdateProfile(ctx, apiKey, uid, p, now)
}

func (n *noncedStore) UserNonced(ctx context.Context, nu socius.NonceUse, apiKey, uid string) (bool, *socius.User, error) {
	fresh, err := n.start(ctx, nu)
	if err != nil || !fresh {
		return fresh, nil, err
	}
	u, err := n.st.User(ctx, apiKey, uid)
	return true, u, err
}

// ctxNonces refuses a cancelled context, as the PostgreSQL store does.
type ctxNonces struct{ socius.NonceStore }

func (n ctxNonces) UseNonce(ctx context.Context, credential, nonce string, expires, now time.Time) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	return n.NonceStore.UseNonce(ctx, credential, nonce, expires, now)
}

// cancelOnSite cancels the client's context once the call has read its site, in its
// authentication: everything after runs for a client that has gone.
type cancelOnSite struct {
	socius.Store
	cancel context.CancelFunc
}

func (s cancelOnSite) Site(ctx context.Context, apiKey string) (*socius.Site, error) {
	site, err := s.Store.Site(ctx, apiKey)
	s.cancel()
	return site, err
}

// newNoncedServer is newTestServer with a noncedStore as Config.Nonced.
func newNoncedServer(t *testing.T) (*Server, *noncedStore) {
	s := newTestServer(t, t.TempDir(), nil)
	s.cfg.Nonces = ctxNonces{s.cfg.Nonces}
	n := &noncedStore{st: s.cfg.Store, ns: s.cfg.Nonces}
	s.cfg.Nonced = n
	return s, n
}

// signedBody signs params (with the nonce given) for a POST of method over HTTP to
// socialize.localtest at labTime with the lab site's secret.
func signedBody(method, nonce string, params url.Values) string {
	p := url.Values{"apiKey": {labAPIKey}, "timestamp": {strconv.FormatInt(labTime.Unix(), 10)}, "nonce": {nonce}}
	for k, v := range params {
		p[k] = v
	}
	var list []gigya.Param
	for k, vs := range p {
		list = append(list, gigya.Param{Name: k, Value: vs[0]})
	}
	key, _ := socius.DecodeSecret(labSecret)
	p.Set("sig", gigya.Sign(key, "POST", "http://socialize.localtest/"+method, list))
	return p.Encode()
}

// send posts body to method over HTTP; ctx, when not nil, is the request's.
func send(s *Server, ctx context.Context, method, body string) string {
	return postBody(s, ctx, false, method, body)
}

func firstName(t *testing.T, s *Server) string {
	t.Helper()
	u, err := s.cfg.Store.User(context.Background(), labAPIKey, "u1")
	if err != nil {
		t.Fatal(err)
	}
	return u.Profile[socius.FirstName]
}

// TestNoncedFaults: with the nonce recorded by the call's own store work
// (Config.Nonced), every call whose signature was checked still leaves its nonce, so
// that its replay is 403004 and changes nothing: a call that panics in its store work
// (recoverCall records it; the answer stays the panic's when the store work had
// recorded it), one whose store work fails (recorded on its own), and one whose client
// has gone (before or during its store work).
func TestNoncedFaults(t *testing.T) {
	write := func(name string) url.Values {
		return url.Values{"UID": {"u1"}, "userInfo": {`{"firstName":"` + name + `"}`}}
	}
	t.Run("panic in the store work", func(t *testing.T) {
		s, n := newNoncedServer(t)
		n.before = func() { n.before = nil; panic("injected") }
		body := signedBody("socialize.setUserInfo", "n-panic", write("Panicked"))
		if got := send(s, nil, "socialize.setUserInfo", body); !strings.Contains(got, `"errorCode":500001`) {
			t.Fatalf("the panicking call: %s", got)
		}
		if got := send(s, nil, "socialize.setUserInfo", body); !strings.Contains(got, `"errorCode":403004`) {
			t.Errorf("its replay: %s, want 403004", got)
		}
		if got := firstName(t, s); got != "Ada" {
			t.Errorf("firstName %q after the replay, want Ada", got)
		}
	})
	t.Run("panic once the nonce is recorded", func(t *testing.T) {
		// The request's own first use: the answer is the panic's, not 403004.
		s, n := newNoncedServer(t)
		n.after = func() { n.after = nil; panic("injected") }
		body := signedBody("socialize.getUserInfo", "n-panic-after", url.Values{"UID": {"u1"}})
		if got := send(s, nil, "socialize.getUserInfo", body); !strings.Contains(got, `"errorCode":500001`) {
			t.Fatalf("the panicking call: %s, want 500001", got)
		}
		if got := send(s, nil, "socialize.getUserInfo", body); !strings.Contains(got, `"errorCode":403004`) {
			t.Errorf("its replay: %s, want 403004", got)
		}
	})
	t.Run("not found, nothing recorded", func(t *testing.T) {
		// A failure the store reports as ErrNotFound without recording the nonce
		// (fresh false) still leaves the nonce.
		s, n := newNoncedServer(t)
		n.fail = socius.ErrNotFound
		body := signedBody("socialize.setUserInfo", "n-notfound", write("Missing"))
		if got := send(s, nil, "socialize.setUserInfo", body); !strings.Contains(got, `"errorCode":403005`) {
			t.Fatalf("the failing call: %s, want 403005", got)
		}
		n.fail = nil
		if got := send(s, nil, "socialize.setUserInfo", body); !strings.Contains(got, `"errorCode":403004`) {
			t.Errorf("its replay: %s, want 403004", got)
		}
	})
	t.Run("store failure", func(t *testing.T) {
		s, n := newNoncedServer(t)
		n.fail = socius.DatabaseError("injected", errors.New("connection lost"))
		body := signedBody("socialize.setUserInfo", "n-fail", write("Failed"))
		if got := send(s, nil, "socialize.setUserInfo", body); !strings.Contains(got, `"errorCode":500028`) {
			t.Fatalf("the failing call: %s", got)
		}
		n.fail = nil
		if got := send(s, nil, "socialize.setUserInfo", body); !strings.Contains(got, `"errorCode":403004`) {
			t.Errorf("its replay: %s, want 403004", got)
		}
		if got := firstName(t, s); got != "Ada" {
			t.Errorf("firstName %q after the replay, want Ada", got)
		}
	})
	for _, c := range []struct {
		name, method string
		params       url.Values
		code         string
	}{
		{"client gone before the store work", "socialize.setUserInfo", write("Gone"), `"errorCode":0`},
		{"client gone before a read", "socialize.getUserInfo", url.Values{"UID": {"u1"}}, `"errorCode":0`},
		{"client gone, the call refused before its store work", "socialize.setUserInfo", url.Values{"UID": {"u1"}, "userInfo": {"{"}}, `"errorCode":400006`},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, _ := newNoncedServer(t)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			s.cfg.Store = cancelOnSite{s.cfg.Store, cancel}
			body := signedBody(c.method, "n-gone", c.params)
			if got := send(s, ctx, c.method, body); !strings.Contains(got, c.code) {
				t.Errorf("the call: %s, want %s", got, c.code)
			}
			if got := send(s, nil, c.method, body); !strings.Contains(got, `"errorCode":403004`) {
				t.Errorf("its replay: %s, want 403004", got)
			}
		})
	}
	t.Run("replays", func(t *testing.T) {
		s, n := newNoncedServer(t)
		body := signedBody("socialize.setUserInfo", "n-once", write("Once"))
		if got := send(s, nil, "socialize.setUserInfo", body); !strings.Contains(got, `"errorCode":0`) {
			t.Fatalf("the call: %s", got)
		}
		again := signedBody("socialize.setUserInfo", "n-once", write("Twice"))
		if got := send(s, nil, "socialize.setUserInfo", again); !strings.Contains(got, `"errorCode":403004`) {
			t.Errorf("another write under its nonce: %s, want 403004", got)
		}
		if got := firstName(t, s); got != "Once" {
			t.Errorf("firstName %q, want Once", got)
		}
		if n.calls != 2 {
			t.Errorf("%d Nonced operations, want 2", n.calls)
		}
	})
}

// TestNoncedNotWithFaults: in emulator mode (Config.Fault) the nonce is recorded in
// the authentication, as without Nonced: a replay never reaches the fault rules, which
// count the calls they answer.
func TestNoncedNotWithFaults(t *testing.T) {
	s, n := newNoncedServer(t)
	faults := 0
	s.cfg.Fault = func(method, apiKey string) (int, time.Duration, bool) {
		faults++
		return 0, 0, false
	}
	body := signedBody("socialize.getUserInfo", "n-emu", url.Values{"UID": {"u1"}})
	if got := send(s, nil, "socialize.getUserInfo", body); !strings.Contains(got, `"errorCode":0`) {
		t.Fatalf("the call: %s", got)
	}
	if got := send(s, nil, "socialize.getUserInfo", body); !strings.Contains(got, `"errorCode":403004`) {
		t.Errorf("its replay: %s, want 403004", got)
	}
	if faults != 1 || n.calls != 0 {
		t.Errorf("fault rules asked %d times, Nonced used %d times; want 1 and 0", faults, n.calls)
	}
}

// TestNoncedReplayNamesNoIgnoredParams: a replay's 403004 lists no ignoredParams
// whether its nonce is recorded with the store work (Config.Nonced, the PostgreSQL
// store) or in the authentication: the first call's unknown parameters and userInfo
// keys, and those of a call refused before its store work, are not repeated.
func TestNoncedReplayNamesNoIgnoredParams(t *testing.T) {
	cases := []struct {
		method string
		params url.Values
	}{
		{"socialize.getUserInfo", url.Values{"UID": {"u1"}, "bogus": {"1"}}},
		{"socialize.setUserInfo", url.Values{"UID": {"u1"}, "userInfo": {`{"firstName":"A","unknownk":1}`}}},
		{"socialize.setUserInfo", url.Values{"UID": {"u1"}, "userInfo": {`{"unknownk":1}`}}},
		{"socialize.getUserInfo", url.Values{"bogus": {"1"}}}, // 400002 first: no UID
	}
	for _, nonced := range []bool{true, false} {
		var s *Server
		if nonced {
			s, _ = newNoncedServer(t)
		} else {
			s = newTestServer(t, t.TempDir(), nil)
		}
		if _, err := s.cfg.Store.Login(context.Background(), labAPIKey, "u1", nil, labTime); err != nil {
			t.Fatal(err)
		}
		for i, tc := range cases {
			body := signedBody(tc.method, "replay-ignored-"+strconv.Itoa(i), tc.params)
			first := send(s, nil, tc.method, body)
			if i < 3 && (!strings.Contains(first, `"errorCode":0`) || !strings.Contains(first, "ignoredParams")) {
				t.Fatalf("nonced %v, case %d: first answer %s", nonced, i, first)
			}
			again := send(s, nil, tc.method, body)
			if !strings.Contains(again, `"errorCode":403004`) || strings.Contains(again, "ignoredParams") {
				t.Errorf("nonced %v, case %d: replay answered %s", nonced, i, again)
			}
		}
	}
}

// TestInjectedExpiryLeavesTheNonce: in emulator mode an injected 403002 or 403003
// leaves the request's nonce unused, as Gigya's own (checked before the nonce), so
// that the byte-identical request the Java SDK re-sends after a 403002 goes through;
// another injected error used the nonce, and its re-send is 403004.
func TestInjectedExpiryLeavesTheNonce(t *testing.T) {
	for _, tc := range []struct {
		code  int
		again string
	}{
		{socius.CodeRequestExpired, `"errorCode":0`},
		{socius.CodeInvalidSignature, `"errorCode":0`},
		{socius.CodeGeneralServerError, `"errorCode":403004`},
	} {
		s := newTestServer(t, t.TempDir(), nil)
		if _, err := s.cfg.Store.Login(context.Background(), labAPIKey, "u1", nil, labTime); err != nil {
			t.Fatal(err)
		}
		left := 1
		s.cfg.Fault = func(method, apiKey string) (int, time.Duration, bool) {
			if left == 0 {
				return 0, 0, false
			}
			left--
			return tc.code, 0, true
		}
		body := signedBody("socialize.setUserInfo", "injected-"+strconv.Itoa(tc.code), url.Values{"UID": {"u1"}, "userInfo": {`{"firstName":"Retried"}`}})
		if got := send(s, nil, "socialize.setUserInfo", body); !strings.Contains(got, `"errorCode":`+strconv.Itoa(tc.code)) {
			t.Fatalf("injected %d: %s", tc.code, got)
		}
		if got := send(s, nil, "socialize.setUserInfo", body); !strings.Contains(got, tc.again) {
			t.Errorf("the same request after an injected %d: %s, want %s", tc.code, got, tc.again)
		}
		// Forgiven once: a third copy is a replay.
		if got := send(s, nil, "socialize.setUserInfo", body); !strings.Contains(got, `"errorCode":403004`) {
			t.Errorf("a third copy after an injected %d: %s, want 403004", tc.code, got)
		}
	}
}

// TestForgivenNonceExpires: a forgiven nonce whose time has passed is not forgiven: a
// later request that uses the pair again is another request, and its own replay is
// a replay.
func TestForgivenNonceExpires(t *testing.T) {
	var f forgivenNonces
	f.add("apiKey 3_x", "n1", labTime.Add(time.Minute), labTime)
	if f.take("apiKey 3_x", "n1", labTime.Add(2*time.Minute)) {
		t.Error("a forgiveness taken after its expiry")
	}
	if f.take("apiKey 3_x", "n1", labTime) {
		t.Error("a forgiveness taken twice")
	}
	f.add("apiKey 3_x", "n2", labTime.Add(time.Minute), labTime)
	if !f.take("apiKey 3_x", "n2", labTime.Add(30*time.Second)) {
		t.Error("a forgiveness not taken within its time")
	}
}

// TestInjectedDataCenterNamesOne: an injected 301001 carries apiDomain and location, as
// Gigya's does; they name the data center called, so a client that follows them comes
// back.
func TestInjectedDataCenterNamesOne(t *testing.T) {
	s := newTestServer(t, t.TempDir(), nil)
	s.cfg.Fault = func(method, apiKey string) (int, time.Duration, bool) { return 301001, 0, true }
	body := signedBody("socialize.getUserInfo", "injected-dc", url.Values{"UID": {"u1"}})
	got := send(s, nil, "socialize.getUserInfo", body)
	for _, want := range []string{`"errorCode":301001`, `"apiDomain":"localtest"`, `"location":"http://socialize.localtest/socialize.getUserInfo"`} {
		if !strings.Contains(got, want) {
			t.Errorf("an injected 301001: %s, want %s", got, want)
		}
	}
}
