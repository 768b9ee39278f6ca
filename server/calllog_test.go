package server

import (
	"bytes"
	"log/slog"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/socius/socius/gigya"
)

func TestLogCalls(t *testing.T) {
	var b bytes.Buffer
	log := LogCalls(slog.New(slog.NewTextHandler(&b, &slog.HandlerOptions{Level: slog.LevelDebug})))
	c := &Call{
		ID: "0123456789abcdef0123456789abcdef", Method: "socialize.getUserInfo", Known: true, APIKey: "3_a",
		Credential: "partner-signature", Code: 403003, Duration: 1500 * time.Microsecond, RemoteAddr: "127.0.0.1:5",
		Details:     "Invalid request signature: it does not match",
		Params:      []gigya.Param{{Name: "apiKey", Value: "3_a"}, {Name: "UID", Value: "private-uid"}, {Name: "userInfo", Value: `{"email":"a@b.c"}`}},
		SignedURLs:  []string{"http://h/socialize.getUserInfo"},
		BaseStrings: []string{"POST&http%3A%2F%2Fh%2Fsocialize.getUserInfo&UID%3Dx"},
	}
	log(c)
	out := b.String()
	for _, want := range []string{"msg=call callId=0123456789abcdef0123456789abcdef method=socialize.getUserInfo apiKey=3_a credential=partner-signature errorCode=403003 latencyMs=1.5 remote=127.0.0.1:5",
		`errorDetails="Invalid request signature: it does not match"`, `msg="signature mismatch"`, "UID%3Dx"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	// Parameter values (personal data as much as credentials) are not logged.
	for _, value := range []string{"private-uid", "a@b.c"} {
		if strings.Contains(out, value) {
			t.Errorf("log holds the parameter value %q:\n%s", value, out)
		}
	}
	// A success adds no errorDetails; below info level nothing is written.
	b.Reset()
	log(&Call{ID: "x", Method: "socialize.logout", Known: true})
	if !strings.Contains(b.String(), "msg=call") || strings.Contains(b.String(), "errorDetails") {
		t.Errorf("success line: %s", b.String())
	}
	// An unknown method's name and errorDetails are cut: both may quote the request.
	b.Reset()
	log(&Call{ID: "y", Method: strings.Repeat("m", 300), Code: 400001, Details: strings.Repeat("d", 3000)})
	if out := b.String(); !strings.Contains(out, "method="+strings.Repeat("m", 100)+"...") || strings.Contains(out, strings.Repeat("m", 101)) ||
		!strings.Contains(out, strings.Repeat("d", maxLoggedDetails)+"...") || strings.Contains(out, strings.Repeat("d", maxLoggedDetails+1)) {
		t.Errorf("a long method and errorDetails: a line of %d bytes: %.300s", len(out), out)
	}
	b.Reset()
	LogCalls(slog.New(slog.NewTextHandler(&b, &slog.HandlerOptions{Level: slog.LevelWarn})))(c)
	if b.Len() != 0 {
		t.Errorf("at warn level: %s", b.String())
	}
}

// TestCredentialsWhereNamesGo: a client that sends a token or a secret where a name
// goes (a URL with "&" for "?", a token as a parameter name) finds neither in the log
// nor in errorDetails; the answer says what went wrong.
func TestCredentialsWhereNamesGo(t *testing.T) {
	var b bytes.Buffer
	s := newTestServer(t, t.TempDir(), &b)
	s.cfg.Observe = LogCalls(slog.New(slog.NewTextHandler(&b, nil)))
	const token = "st2.at.BnV3tcKw0E6LLrP-XXgyW0ETFP7H0tFIXtty2YvbGb0"
	secret := url.QueryEscape(labSecret)
	for _, tt := range []struct {
		name, path, body, want string
	}{
		{"a token after & in the path", "socialize.getUserInfo&oauth_token=" + token, "",
			`"errorDetails":"Unknown method: socialize.getUserInfo\u0026... is not a method Socius serves: the path goes on after socialize.getUserInfo with \"\u0026\"; send the parameters after \"?\" or in the body"`},
		{"a secret after & in the path", "socialize.getUserInfo&apiKey=" + labAPIKey + "&secret=" + secret, "", `"errorCode":400001`},
		{"a token after ; in the path", "socialize.getUserInfo;" + token, "", "the path goes on after socialize.getUserInfo with \\\";\\\""},
		{"a token after / in the path", "socialize.getUserInfo/" + token, "", `"errorDetails":"Unknown method: socialize.getUserInfo/st2.at.BnV3... is not a method Socius serves"`},
		{"a token as a parameter name, checkParams", "socialize.getUserInfo", token + "&apiKey=" + labAPIKey + "&secret=" + secret + "&UID=u1&checkParams=true",
			`"errorDetails":"Permission denied: unrecognized parameters with checkParams=true: st2.at.BnV3..."`},
		{"a token as a malformed name", "socialize.getUserInfo", url.QueryEscape(token+"=") + "=1&apiKey=" + labAPIKey + "&secret=" + secret + "&UID=u1",
			`"errorCode":400001`},
		{"a token as a name, twice", "socialize.getUserInfo", token + "&" + token + "&apiKey=" + labAPIKey + "&secret=" + secret + "&UID=u1",
			`"errorDetails":"Duplicate parameter: st2.at.BnV3..."`},
	} {
		b.Reset()
		got := postBody(s, nil, true, tt.path, tt.body)
		if !strings.Contains(got, tt.want) {
			t.Errorf("%s: %s, want %s", tt.name, got, tt.want)
		}
		for _, credential := range []string{token[7:], labSecret, secret, token[7:18]} {
			if strings.Contains(got, credential) || strings.Contains(b.String(), credential) {
				t.Errorf("%s: %q in the answer or the log:\n%s\n%s", tt.name, credential, got, b.String())
			}
		}
		if !strings.Contains(b.String(), "msg=call") {
			t.Errorf("%s: no call line: %s", tt.name, b.String())
		}
	}
}

// TestMalformedAPIKeyLogged: a call refused for a malformed apiKey still names it in
// its log line, as one of no site is (shortened when it may be a secret).
func TestMalformedAPIKeyLogged(t *testing.T) {
	var b bytes.Buffer
	s := newTestServer(t, t.TempDir(), nil)
	s.cfg.Observe = LogCalls(slog.New(slog.NewTextHandler(&b, nil)))
	for key, want := range map[string]string{
		"3_has space":            `apiKey="\"3_has\"... (length 11)"`, // what follows the space may be a secret
		strings.Repeat("A", 200): `apiKey="\"AAAA\"... (length 200)"`,
	} {
		b.Reset()
		got := postBody(s, nil, true, "socialize.getUserInfo", "apiKey="+url.QueryEscape(key)+"&UID=u1&secret=x")
		if !strings.Contains(got, `"errorCode":400093`) || !strings.Contains(b.String(), want) {
			t.Errorf("apiKey %.20q: %s\n%s", key, got, b.String())
		}
	}
}

// TestCredentialNameInDebugBaseStrings: a token sent as a parameter name of a signed
// call with a bad signature is cut in the debug log's base strings as elsewhere.
func TestCredentialNameInDebugBaseStrings(t *testing.T) {
	var b bytes.Buffer
	s := newTestServer(t, t.TempDir(), &b)
	s.cfg.Observe = LogCalls(slog.New(slog.NewTextHandler(&b, &slog.HandlerOptions{Level: slog.LevelDebug})))
	const token = "st2.at.BnV3tcKw0E6LLrP-XXgyW0ETFP7H0tFIXtty2YvbGb0"
	body := token + "&apiKey=" + labAPIKey + "&UID=u1&timestamp=" + strconv.FormatInt(labTime.Unix(), 10) + "&nonce=n1&sig=AAAAAAAAAAAAAAAAAAAAAAAAAAA="
	if got := postBody(s, nil, false, "socialize.getUserInfo", body); !strings.Contains(got, `"errorCode":403003`) {
		t.Fatalf("a bad signature: %s", got)
	}
	if !strings.Contains(b.String(), "signature mismatch") || strings.Contains(b.String(), token[7:]) {
		t.Errorf("the debug log:\n%s", b.String())
	}
}

// TestGetTokenClientIDLogged: a getToken refused before its site was looked up, sent
// with client credentials and no apiKey, names its client_id (the parameter, or the id
// of HTTP Basic credentials) in the log line's apiKey, shortened when it is not shaped
// like an apiKey, as an unknown apiKey is; it named nobody (apiKey=""). Another
// method's client_id, an unknown parameter there, is not taken for its apiKey.
func TestGetTokenClientIDLogged(t *testing.T) {
	var b bytes.Buffer
	s := newTestServer(t, t.TempDir(), nil)
	s.cfg.Observe = LogCalls(slog.New(slog.NewTextHandler(&b, nil)))
	overHTTP := func(method, auth, body string) string {
		r := httptest.NewRequest("POST", "http://socialize.localtest/"+method, strings.NewReader(body))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if auth != "" {
			r.Header.Set("Authorization", auth)
		}
		return serve(s, r).Body.String()
	}
	for _, tt := range []struct{ name, method, auth, body, code, want string }{
		{"client_id", "socialize.getToken", "", "grant_type=none&client_id=" + labAPIKey + "&client_secret=x", `"errorCode":403006`, "apiKey=" + labAPIKey + " "},
		{"HTTP Basic", "socialize.getToken", "Basic " + basic(labAPIKey, "x"), "grant_type=none", `"errorCode":403006`, "apiKey=" + labAPIKey + " "},
		{"a userKey as client_id", "socialize.getToken", "", "grant_type=none&client_id=" + labUserKey + "&client_secret=x", `"errorCode":403006`,
			"apiKey=" + strconv.Quote(unknownID(labUserKey)) + " "},
		{"client_id on getUserInfo", "socialize.getUserInfo", "", "client_id=" + labAPIKey + "&secret=x&UID=u1", `"errorCode":400093`, `apiKey="" `},
	} {
		b.Reset()
		got := overHTTP(tt.method, tt.auth, tt.body)
		if !strings.Contains(got, tt.code) || !strings.Contains(b.String(), tt.want) {
			t.Errorf("%s: %s\nthe log: %s; want %s", tt.name, got, b.String(), tt.want)
		}
	}
}
