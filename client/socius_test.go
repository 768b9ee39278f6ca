package client_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/socius/socius"
	"github.com/socius/socius/client"
	"github.com/socius/socius/nonce"
	"github.com/socius/socius/server"
	"github.com/socius/socius/sqlite"
)

// The tests here check the client against a real Socius of their own (TestMain's has
// one site and no keys): the server verifies every signature, remembers every nonce
// and keeps its own clock.

const (
	userKey       = "AUserKeyOfTheExampleSite"
	userKeySecret = "dXNlci1rZXktc2VjcmV0LWZvci10aGUtY2xpZW50LXRlc3Q="
	rsaUserKey    = "ARSAKeyOfTheExampleSite"
)

// testServer is a Socius with the example site, a userKey with a secret and one with an
// RSA public key, on plain HTTP and on HTTPS; hc trusts the HTTPS listener.
type testServer struct {
	httpURL, httpsURL string
	hc                *http.Client
	rsaKey            *rsa.PrivateKey
}

func startSocius(t *testing.T) *testServer {
	t.Helper()
	st, err := sqlite.Open(t.TempDir() + "/socius.db")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	ctx, now := context.Background(), time.Now()
	for _, err := range []error{
		st.CreateSite(ctx, &socius.Site{APIKey: apiKey, Secret: partnerSecret, CreatedAt: now}),
		st.CreateKey(ctx, &socius.Key{UserKey: userKey, APIKey: apiKey, Secret: userKeySecret, CreatedAt: now}),
		st.CreateKey(ctx, &socius.Key{UserKey: rsaUserKey, APIKey: apiKey, CreatedAt: now,
			PublicKey: string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))}),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	h := server.New(server.Config{Store: st, Nonces: nonce.New(0), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	plain, tls := httptest.NewServer(h), httptest.NewUnstartedServer(h)
	tls.Config.ErrorLog = log.New(io.Discard, "", 0) // the handshakes TestErrorsShowNoSecret fails
	tls.StartTLS()
	t.Cleanup(plain.Close)
	t.Cleanup(tls.Close)
	return &testServer{httpURL: plain.URL, httpsURL: tls.URL, hc: tls.Client(), rsaKey: key}
}

// newClient is a client of s: over HTTPS, or over plain HTTP when plainHTTP.
func (s *testServer) newClient(t *testing.T, cred client.Credentials, plainHTTP bool, opts ...client.Option) *client.Client {
	t.Helper()
	if plainHTTP {
		opts = append(opts, client.WithBaseURL(s.httpURL))
	} else {
		opts = append(opts, client.WithBaseURL(s.httpsURL), client.WithHTTPClient(s.hc))
	}
	c, err := client.New(cred, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// everyCredential returns a client of s in each credential shape, by name, with the
// user u1 logged in (a token and a mobile session are bound to it).
func (s *testServer) everyCredential(t *testing.T, opts ...client.Option) map[string]*client.Client {
	t.Helper()
	ctx := context.Background()
	admin := s.newClient(t, client.PartnerSecret(apiKey, partnerSecret), false, opts...)
	if _, err := admin.NotifyLogin(ctx, client.NotifyLoginRequest{SiteUID: "u1", NewUser: true}); err != nil {
		t.Fatal(err)
	}
	grant, err := admin.GetToken(ctx, client.GetTokenRequest{SiteUID: "u1"})
	if err != nil {
		t.Fatal(err)
	}
	login, err := admin.NotifyLogin(ctx, client.NotifyLoginRequest{SiteUID: "u1", TargetEnv: "mobile"})
	if err != nil {
		t.Fatal(err)
	}
	return map[string]*client.Client{
		"signed, partner secret, HTTP": s.newClient(t, client.PartnerSecret(apiKey, partnerSecret), true, opts...),
		"signed, userKey, HTTP":        s.newClient(t, client.UserKey(apiKey, userKey, userKeySecret), true, opts...),
		"signed, partner secret":       admin,
		"plain partner secret":         s.newClient(t, client.PartnerSecret(apiKey, partnerSecret), false, append([]client.Option{client.WithPlainSecret()}, opts...)...),
		"plain userKey secret":         s.newClient(t, client.UserKey(apiKey, userKey, userKeySecret), false, append([]client.Option{client.WithPlainSecret()}, opts...)...),
		"access token":                 s.newClient(t, client.Token(grant.AccessToken), false, opts...),
		"mobile session":               s.newClient(t, client.Session(login.SessionToken, login.SessionSecret), false, opts...),
		"userKey and RSA key":          s.newClient(t, client.UserKeyRSA(apiKey, rsaUserKey, s.rsaKey), false, opts...),
	}
}

// TestOddValuesEveryCredential: values that the signature's percent-encoding treats
// specially (non-ASCII, astral, space, '+', '~', reserved characters, control
// characters, empty, near the 64 KiB a value may have) are signed as Socius verifies them, in every credential
// shape, and come back as they were sent.
func TestOddValuesEveryCredential(t *testing.T) {
	values := []string{"Dávid", "🎉 party", "a b", "a+b", "~tilde~", "a&b=c%20d", "*/?#[]:@!$'()", "", "tab\tline\nend",
		"null", "0", strings.Repeat("long é ", 8000)}
	ctx := context.Background()
	for name, c := range startSocius(t).everyCredential(t) {
		uid := "u1"
		if name == "access token" || name == "mobile session" {
			uid = "" // the credential implies the user
		}
		for _, v := range values {
			p := client.Params{"x_odd": v, "A": v, "zz": v}
			if uid != "" {
				p["UID"] = uid
			}
			if _, err := c.Call(ctx, "socialize.getUserInfo", p); err != nil {
				t.Errorf("%s: a parameter %.20q: %v", name, v, err)
			}
			nick := v
			if len(nick) > 200 {
				nick = nick[:200]
			}
			if nick == "" || strings.ContainsAny(nick, "\t\n") {
				continue // not a nickname Socius keeps as it is
			}
			if err := c.SetUserInfo(ctx, uid, client.UserInfo{Nickname: nick}); err != nil {
				t.Errorf("%s: nickname %.20q: %v", name, nick, err)
				continue
			}
			if u, err := c.GetUserInfo(ctx, uid); err != nil || u.Nickname != nick {
				t.Errorf("%s: nickname %.20q came back as %v, %v", name, nick, u, err)
			}
		}
	}
}

// TestConcurrentCalls: one client's calls from many goroutines at once each get a
// nonce of their own (Socius refuses a repeated one with 403004).
func TestConcurrentCalls(t *testing.T) {
	s := startSocius(t)
	c := s.newClient(t, client.PartnerSecret(apiKey, partnerSecret), true)
	ctx := context.Background()
	if _, err := c.NotifyLogin(ctx, client.NotifyLoginRequest{SiteUID: "u1", NewUser: true}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 300)
	for range 300 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.GetUserInfo(ctx, "u1"); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// skewedClock is the system clock off by d.
type skewedClock struct{ d time.Duration }

func (c skewedClock) Now() time.Time { return time.Now().Add(c.d) }

// TestClockSkewAgainstSocius: a client whose clock is far off gets 403002 once, learns
// the server's time from the Date header and succeeds; later calls need no retry.
func TestClockSkewAgainstSocius(t *testing.T) {
	s := startSocius(t)
	ctx := context.Background()
	for _, skew := range []time.Duration{time.Hour, -time.Hour, 3 * time.Minute, -100 * 24 * time.Hour} {
		attempts := 0
		c := s.newClient(t, client.PartnerSecret(apiKey, partnerSecret), true, client.WithClock(skewedClock{skew}),
			client.WithTrace(func(*client.Trace) { attempts++ }))
		if _, err := c.NotifyLogin(ctx, client.NotifyLoginRequest{SiteUID: "u1", NewUser: true}); err != nil || attempts != 2 {
			t.Errorf("clock off by %v: %v after %d attempts, want success after 2", skew, err, attempts)
		}
		if d := c.ClockOffset() + skew; d.Abs() > 2*time.Second {
			t.Errorf("clock off by %v: offset %v", skew, c.ClockOffset())
		}
		attempts = 0
		if _, err := c.GetUserInfo(ctx, "u1"); err != nil || attempts != 1 {
			t.Errorf("clock off by %v, the next call: %v after %d attempts, want success at once", skew, err, attempts)
		}
	}
}

// TestErrorsShowNoSecret: whatever fails (a wrong secret or token, an unknown key, a
// refused configuration, no server, an untrusted certificate), the error, printed in
// any verb, shows no secret and no token.
func TestErrorsShowNoSecret(t *testing.T) {
	s := startSocius(t)
	const wrong = "d3Jvbmctc2VjcmV0LW5ldmVyLWluLWFuLWVycm9yLTEyMzQ="
	ctx := context.Background()
	var errs []error
	call := func(c *client.Client, err error) {
		errs = append(errs, err)
		if c == nil {
			return
		}
		_, err = c.GetUserInfo(ctx, "u1")
		errs = append(errs, err)
		_, err = c.GetToken(ctx, client.GetTokenRequest{SiteUID: "u1"})
		errs = append(errs, err)
		_, err = c.Call(ctx, "socialize.getUserInfo", client.Params{"UID": "u1", "client_secret": wrong, "password": wrong})
		errs = append(errs, err)
	}
	targets := [][]client.Option{
		{client.WithBaseURL(s.httpURL)},
		{client.WithBaseURL(s.httpsURL), client.WithHTTPClient(s.hc)},
		{client.WithBaseURL(s.httpsURL), client.WithHTTPClient(s.hc), client.WithPlainSecret()},
		{client.WithBaseURL(s.httpsURL)}, // a certificate the default client does not trust
		{client.WithBaseURL("http://127.0.0.1:1"), client.WithRetries(0)},
		{client.WithBaseURL("https://nowhere.invalid"), client.WithRetries(0)},
	}
	creds := []client.Credentials{client.PartnerSecret(apiKey, wrong), client.UserKey(apiKey, userKey, wrong),
		client.PartnerSecret("3_NoSuchSite", wrong), client.Token(wrong), client.Session(wrong, wrong),
		client.PartnerSecret(apiKey, "!"+wrong), client.Session(wrong, wrong+"!")}
	for _, opts := range targets {
		for _, cred := range creds {
			call(client.New(cred, opts...))
		}
	}
	failed := 0
	for _, err := range errs {
		if err == nil {
			continue
		}
		failed++
		for _, verb := range []string{"%v", "%+v", "%#v"} {
			if out := fmt.Sprintf(verb, err); strings.Contains(out, wrong[:24]) {
				t.Errorf("an error shows the secret: %s", out)
			}
		}
	}
	if failed < len(targets)*len(creds) {
		t.Errorf("only %d of the calls failed", failed)
	}
}

// TestConcurrentUseEveryCredential: one client in each credential shape, with a trace
// function, used from many goroutines at once for reads and writes while other
// goroutines read its clock offset, print it and derive clients from it: every call
// succeeds (a nonce of its own each: no 403004), every attempt is traced, and under
// -race nothing is shared unguarded.
func TestConcurrentUseEveryCredential(t *testing.T) {
	var traces atomic.Int64
	trace := client.WithTrace(func(tr *client.Trace) { traces.Add(1) })
	ctx := context.Background()
	const goroutines = 40
	for name, c := range startSocius(t).everyCredential(t, trace) {
		uid := "u1"
		if name == "access token" || name == "mobile session" {
			uid = "" // the credential implies the user
		}
		before := traces.Load()
		var wg sync.WaitGroup
		errs := make(chan error, goroutines)
		for i := range goroutines {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var err error
				switch i % 4 {
				case 0:
					_, err = c.GetUserInfo(ctx, uid)
				case 1:
					err = c.SetUserInfo(ctx, uid, client.UserInfo{Nickname: fmt.Sprintf("n%d", i), Age: client.Age(i)})
				case 2:
					p := client.Params{"x_n": i}
					if uid != "" {
						p["UID"] = uid
					}
					_, err = c.Call(ctx, "socialize.getUserInfo", p)
				case 3:
					_, _ = c.ClockOffset(), c.String()
					var d *client.Client
					if d, err = c.WithCredentials(client.PartnerSecret(apiKey, partnerSecret)); err == nil {
						_, err = d.GetUserInfo(ctx, "u1")
					}
				}
				if err != nil {
					errs <- fmt.Errorf("%s: goroutine %d: %w", name, i, err)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if n := traces.Load() - before; n != goroutines {
			t.Errorf("%s: %d attempts traced for %d calls", name, n, goroutines)
		}
	}
}

// TestClockSkewEveryCredential: with the client's clock an hour off, each credential
// shape that puts a time on its requests (a signature's timestamp, a bearer JWT's iat)
// gets 403002 once, learns the server's time and succeeds on its second attempt; the
// shapes that send no time succeed at once. Either way the next call takes one attempt.
func TestClockSkewEveryCredential(t *testing.T) {
	ctx := context.Background()
	for _, skew := range []time.Duration{time.Hour, -time.Hour} {
		var attempts atomic.Int64
		clients := startSocius(t).everyCredential(t, client.WithClock(skewedClock{skew}),
			client.WithTrace(func(*client.Trace) { attempts.Add(1) }))
		for name, c := range clients {
			uid := "u1"
			if name == "access token" || name == "mobile session" {
				uid = "" // the credential implies the user
			}
			want := int64(1)
			switch name {
			case "signed, partner secret, HTTP", "signed, userKey, HTTP", "mobile session", "userKey and RSA key":
				want = 2
			case "signed, partner secret":
				// everyCredential's calls with it learned the offset already.
			}
			attempts.Store(0)
			if _, err := c.GetUserInfo(ctx, uid); err != nil || attempts.Load() != want {
				t.Errorf("clock off by %v, %s: %v after %d attempts, want success after %d", skew, name, err, attempts.Load(), want)
			}
			attempts.Store(0)
			if err := c.SetUserInfo(ctx, uid, client.UserInfo{Nickname: "skewed"}); err != nil || attempts.Load() != 1 {
				t.Errorf("clock off by %v, %s, the next call: %v after %d attempts, want success at once", skew, name, err, attempts.Load())
			}
		}
	}
}

// TestDerivedTokenClientValidatesUIDSignature: the token client that a partner-secret
// client derives from its GetToken validates the UIDSignature of a real Socius's
// getUserInfo answer with the partner secret it was given once.
func TestDerivedTokenClientValidatesUIDSignature(t *testing.T) {
	ctx := context.Background()
	s := startSocius(t)
	c := s.newClient(t, client.PartnerSecret(apiKey, partnerSecret), false)
	grant, err := c.GetToken(ctx, client.GetTokenRequest{SiteUID: "u1"})
	if err != nil {
		t.Fatal(err)
	}
	tc, err := c.WithCredentials(client.Token(grant.AccessToken))
	if err != nil {
		t.Fatal(err)
	}
	u, err := tc.GetUserInfo(ctx, "")
	if err != nil || u.UIDSignature == "" {
		t.Fatalf("getUserInfo with the token: %v, %+v", err, u)
	}
	if err := tc.ValidateUIDSignature(u.UID, u.SignatureTimestamp, u.UIDSignature); err != nil {
		t.Errorf("the token client validating the answer's UIDSignature: %v", err)
	}
	if err := tc.ValidateUIDSignature(u.UID, u.SignatureTimestamp, "AAAAAAAAAAAAAAAAAAAAAAAAAAA="); !errors.Is(err, client.ErrInvalidSignature) {
		t.Errorf("a forged UIDSignature: %v", err)
	}
}
