package server_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
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

const (
	apiKey = "3_LabApiKey_AbC-123"
	secret = "c2VjcmV0LWZvci10aGUtZ2lneWEtbGFiLTEyMzQ1Ng=="
)

// TestCredentialsNeverObserved runs token, session and secret calls, good and bad,
// through a server whose Observe hook and debug log are recorded, and checks that no
// token, session secret or partner secret appears in either.
func TestCredentialsNeverObserved(t *testing.T) {
	ctx := context.Background()
	store, err := sqlite.Open(filepath.Join(t.TempDir(), "socius.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if err := store.CreateSite(ctx, &socius.Site{APIKey: apiKey, Secret: secret, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		calls []server.Call
		logs  bytes.Buffer
	)
	logger := slog.New(slog.NewTextHandler(&syncWriter{w: &logs, mu: &mu}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	logCall := server.LogCalls(logger) // the line per call, as socius serve logs it
	srv := httptest.NewUnstartedServer(server.New(server.Config{
		Store:  store,
		Nonces: nonce.New(0),
		Clock:  &socius.OffsetClock{},
		Logger: logger,
		Observe: func(c *server.Call) {
			logCall(c)
			mu.Lock()
			defer mu.Unlock()
			cp := *c
			cp.Params = append([]gigya.Param(nil), c.Params...)
			calls = append(calls, cp)
		},
	}))
	srv.StartTLS()
	defer srv.Close()
	client := srv.Client()
	post := func(params url.Values, header http.Header) map[string]any {
		t.Helper()
		req, _ := http.NewRequest("POST", srv.URL+"/"+params.Get("_method"), strings.NewReader(without(params, "_method").Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for k, v := range header {
			req.Header[k] = v
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		var a map[string]any
		if err := json.Unmarshal(body, &a); err != nil {
			t.Fatalf("%s", body)
		}
		return a
	}
	code := func(a map[string]any) int { f, _ := a["errorCode"].(float64); return int(f) }

	a := post(url.Values{"_method": {"socialize.getToken"}, "grant_type": {"none"}, "x_siteUID": {"u1"}, "client_id": {apiKey}, "client_secret": {secret}}, nil)
	access, _ := a["access_token"].(string)
	if code(a) != 0 || access == "" {
		t.Fatalf("getToken: %v", a)
	}
	basic := http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte(apiKey+":"+secret))}}
	if a := post(url.Values{"_method": {"socialize.getToken"}, "grant_type": {"none"}}, basic); code(a) != 0 {
		t.Fatalf("getToken with Basic: %v", a)
	}
	post(url.Values{"_method": {"socialize.getUserInfo"}, "oauth_token": {access}}, nil)
	post(url.Values{"_method": {"socialize.getUserInfo"}}, http.Header{"Authorization": {"OAuth " + access}})
	post(url.Values{"_method": {"socialize.getUserInfo"}, "oauth_token": {access + "-wrong"}}, nil)
	a = post(url.Values{"_method": {"socialize.notifyLogin"}, "siteUID": {"u1"}, "targetEnv": {"mobile"}, "apiKey": {apiKey}, "secret": {secret}}, nil)
	session, _ := a["sessionToken"].(string)
	sessionSecret, _ := a["sessionSecret"].(string)
	if code(a) != 0 || session == "" || sessionSecret == "" {
		t.Fatalf("notifyLogin: %v", a)
	}
	// A session call signed right, and one signed wrong: the server then records what
	// it signed (BaseStrings), which covers the oauth_token.
	for i, key := range []string{sessionSecret, secret} {
		p := url.Values{"oauth_token": {session}, "timestamp": {strconv.FormatInt(time.Now().Unix(), 10)}, "nonce": {strconv.Itoa(i)}}
		var list []gigya.Param
		for k, v := range p {
			list = append(list, gigya.Param{Name: k, Value: v[0]})
		}
		k, _ := base64.StdEncoding.DecodeString(key)
		norm, _ := gigya.NormalizeURL(srv.URL + "/socialize.getUserInfo")
		p.Set("sig", gigya.Sign(k, "POST", norm, list))
		p.Set("_method", "socialize.getUserInfo")
		post(p, nil)
	}

	mu.Lock()
	defer mu.Unlock()
	if len(calls) != 8 {
		t.Fatalf("observed %d calls, want 8", len(calls))
	}
	secrets := []string{access, session, sessionSecret, secret, strings.TrimRight(secret, "=")}
	creds := map[string]int{}
	for _, c := range calls {
		creds[c.Credential]++
		text := c.Details + " " + strings.Join(c.BaseStrings, " ") + " " + strings.Join(c.SignedURLs, " ")
		for _, p := range c.Params {
			text += " " + p.Value
			switch p.Name {
			case "oauth_token", "secret", "client_secret", "sig":
				if p.Value != "***" {
					t.Errorf("%s: %s = %q, want it masked", c.Method, p.Name, p.Value)
				}
			}
		}
		if c.Cause != nil {
			text += " " + c.Cause.Error()
		}
		for _, s := range secrets {
			if strings.Contains(text, s) {
				t.Errorf("%s (%s): a credential reached Observe: %s", c.Method, c.Credential, text)
			}
		}
	}
	if creds["access-token"] != 3 || creds["session-token"] != 2 || creds["partner-client-secret"] != 2 || creds["partner-secret"] != 1 {
		t.Errorf("credentials observed: %v", creds)
	}
	if n := len(calls[7].BaseStrings); n == 0 {
		t.Errorf("the badly signed session call recorded no base strings")
	}
	for _, s := range secrets {
		if strings.Contains(logs.String(), s) {
			t.Errorf("a credential reached the log:\n%s", logs.String())
		}
	}
	if !strings.Contains(logs.String(), "socialize.getToken") {
		t.Errorf("the debug log has no line per call:\n%s", logs.String())
	}
}

func without(p url.Values, name string) url.Values {
	out := url.Values{}
	for k, v := range p {
		if k != name {
			out[k] = v
		}
	}
	return out
}

type syncWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (s *syncWriter) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(b)
}
