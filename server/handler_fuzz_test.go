package server

import (
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/socius/socius"
	"github.com/socius/socius/gigya"
)

// FuzzUserInfo feeds arbitrary text to the userInfo reader (JSON parsing, field
// matching, value validation). It must answer either a patch whose every value is
// valid and normalized, or a 400006 (403007 only under checkParams) without panicking.
func FuzzUserInfo(f *testing.F) {
	for _, s := range []string{
		`{"firstName":"David","lastName":"Lab","age":30,"gender":"m","email":"d@x"}`,
		`{firstName: "David", 'lastName': 'Lab', age: "30",}`,
		`{"nickname":null,"photoURL":"","thumbnailURL":"http:\/\/x\/t.png"}`,
		`{"age":30.5}`, `{"age":"-1"}`, `{"age":" 7 "}`, `{"age":1e2}`, `{"age":true}`,
		`{"gender":"x"}`, `{"nickname":{"a":1}}`, `{"nickname":["a"]}`,
		`{"shoeSize":44,"FirstName":"a"}`, `{"nickname":"a","Nickname":"b"}`,
		`{"nickname":"\u0000"}`, `{"nickname":"\ud800"}`, `{"nickname":"\ud83c\udf89"}`,
		`[]`, `null`, `"x"`, ``, `{`, `{"a":` + strings.Repeat("[", 40),
		`{"email":"` + strings.Repeat("é", 1001) + `"}`,
	} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, raw string, checkParams bool) {
		c := &call{checkParam: checkParams}
		patch, err := c.userInfo("userInfo", raw)
		if err != nil {
			switch code := socius.ErrorCode(err); {
			case code == socius.CodeInvalidValue:
			case code == socius.CodePermissionDenied && checkParams:
			default:
				t.Fatalf("error code %d: %v", code, err)
			}
			if patch != nil {
				t.Fatal("a patch with an error")
			}
			return
		}
		if len(c.ignored) > maxUserInfoKeys {
			t.Fatalf("%d ignored keys", len(c.ignored))
		}
		if checkParams && len(c.ignored) > 0 {
			t.Fatal("unknown keys ignored under checkParams")
		}
		for _, ig := range c.ignored {
			if !strings.HasPrefix(ig.Name, "userInfo.") || ig.WarningCode != socius.CodePermissionDenied {
				t.Fatalf("ignored %+v", ig)
			}
		}
		for _, f := range patch.Fields() {
			v, _ := patch.Get(f)
			if v == "" {
				continue // clears the field
			}
			if !utf8.ValidString(v) || strings.IndexByte(v, 0) >= 0 {
				t.Fatalf("%s = %q", f.Name(), v)
			}
			again, err := f.Validate(v)
			if err != nil || again != v {
				t.Fatalf("%s = %q does not validate as itself: %q, %v", f.Name(), v, again, err)
			}
		}
	})
}

// FuzzHandler sends arbitrary requests (HTTP method, path and query, body, headers,
// TLS or not) through the whole handler on a real SQLite store. Whatever comes in, the
// answer is one envelope in the format asked for (JSON starting with '{', JSONP, or
// well-formed XML) with a known errorCode, never 500001 or any 5xx, statusCode =
// errorCode/1000, and an HTTP status of 200 or, with httpStatusCodes=true, statusCode.
func FuzzHandler(f *testing.F) {
	s := newTestServer(f, f.TempDir(), nil)
	secret := url.QueryEscape(labSecret)
	plain := "apiKey=" + labAPIKey + "&secret=" + secret + "&"
	for _, sd := range []struct {
		method, target, body, headers string
		secure                        bool
	}{
		{"POST", "/socialize.setUserInfo", plain + `UID=u1&userInfo={"nickname":"n","age":"30"}`, "Content-Type: application/x-www-form-urlencoded", true},
		{"POST", "/socialize.getUserInfo", plain + "UID=u1&format=xml&context=<a>&shoeSize=1", "", true},
		{"GET", "/socialize.getUserInfo?" + plain + "UID=u1&format=jsonp&callback=cb", "", "", true},
		{"POST", "/socialize.notifyLogin", plain + `siteUID=u2&userInfo={firstName:'x'}&newUser=true`, "", true},
		{"POST", "/socialize.setUID", plain + "UID=u2&siteUID=u3", "", true},
		{"POST", "/socialize.notifyRegistration", plain + "UID=u3&siteUID=u2", "", true},
		{"POST", "/socialize.logout", plain + "UID=u2&httpStatusCodes=true", "", true},
		{"POST", "/socialize.deleteAccount", plain + "UID=u2&checkParams=true", "", true},
		{"POST", "/socialize.getUserInfo", "apiKey=" + labAPIKey + "&userKey=" + labUserKey + "&secret=" + url.QueryEscape(labKeySec) + "&UID=u1", "", true},
		{"POST", "/socialize.getUserInfo", plain + "UID=u1", "X-Forwarded-Proto: https", false},
		{"POST", "/socialize.getUserInfo", signedForm("socialize.getUserInfo", "UID=u1"), "", false},
		{"POST", "/socialize.setUserInfo", signedForm("socialize.setUserInfo", `UID=u1&userInfo={"age":31}`), "", false},
		{"GET", "/socialize.getUserInfo?oauth_token=abc", "", "Authorization: OAuth abc", true},
		{"POST", "/socialize.getUserInfo", "", "Authorization: Bearer a.b.c", true},
		{"PUT", "/socialize.nope", "a=%zz", "Content-Type: application/json", false},
		{"POST", "/", "UID=a&uid=b", "", false},
		{"GET", "/socialize.getUserInfo?format=jsonp&callback=alert(1)", "", "", false},
		{"POST", "/socialize.setUserInfo", plain + "UID=u1&userInfo=" + strings.Repeat("[", 50), "", true},
		{"POST", "/socialize.getToken", plain + `grant_type=none&x_siteUID=u1&x_userInfo={"age":3}&x_sessionExpiration=60`, "", true},
		{"POST", "/socialize.getToken", "grant_type=client_credentials", "Authorization: Basic " + basic(labAPIKey, labSecret), true},
		{"POST", "/socialize.notifyLogin", plain + "siteUID=u1&targetEnv=mobile&sessionExpiration=-1", "", true},
		{"POST", "/socialize.notifyLogin", plain + `siteUID=u1&providerSessions={"facebook":{"authToken":"t"}}&actionAttributes=null`, "", true},
		{"POST", "/socialize.notifyLogin", plain + "siteUID=u1&providerSessions=[1]&actionAttributes=%EF%BB%BF", "", true},
		{"POST", "/_emulator/api/faults", "x=" + strings.Repeat("a", 70000), "", false},
		{"GET", "/socialize.noSuchMethod?userInfo=" + strings.Repeat("b", 70000), "", "", false},
	} {
		f.Add(sd.method, sd.target, sd.body, sd.headers, sd.secure)
	}
	f.Fuzz(func(t *testing.T, method, target, body, headers string, secure bool) {
		path, query, _ := strings.Cut(target, "?")
		r := &http.Request{
			Method:        method,
			URL:           &url.URL{Path: path, RawQuery: query},
			Proto:         "HTTP/1.1",
			ProtoMajor:    1,
			ProtoMinor:    1,
			Host:          "socialize.localtest",
			Header:        http.Header{},
			Body:          io.NopCloser(strings.NewReader(body)),
			ContentLength: int64(len(body)),
			RemoteAddr:    "192.0.2.1:1234",
		}
		if body == "" {
			r.Body = http.NoBody
		}
		for _, line := range strings.Split(headers, "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok {
				if strings.EqualFold(k, "Host") {
					r.Host = strings.TrimSpace(v)
				} else {
					r.Header.Add(k, strings.TrimSpace(v))
				}
			}
		}
		if secure {
			r.TLS = &tls.ConnectionState{}
		}
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		checkAnswer(t, w)
	})
}

var callIDPattern = regexp.MustCompile(`^[0-9a-f]{32}$`)

// checkAnswer checks the invariants of every answer.
func checkAnswer(t *testing.T, w *httptest.ResponseRecorder) {
	t.Helper()
	body := w.Body.Bytes()
	var env map[string]any
	switch ct := w.Header().Get("Content-Type"); ct {
	case gigya.ContentTypeJSON:
		if len(body) == 0 || body[0] != '{' {
			t.Fatalf("JSON answer does not start with '{': %.200q", body)
		}
		if err := json.Unmarshal(body, &env); err != nil {
			t.Fatalf("not JSON: %v: %.200q", err, body)
		}
	case gigya.ContentTypeJSONP:
		i := bytes.IndexByte(body, '(')
		if i < 0 || !gigya.ValidCallback(string(body[:i])) || !bytes.HasSuffix(body, []byte(");")) {
			t.Fatalf("not JSONP: %.200q", body)
		}
		if err := json.Unmarshal(body[i+1:len(body)-2], &env); err != nil {
			t.Fatalf("JSONP not wrapping JSON: %v: %.200q", err, body)
		}
	case gigya.ContentTypeXML:
		var err error
		if env, err = xmlEnvelope(body); err != nil {
			t.Fatalf("XML: %v: %.300q", err, body)
		}
	default:
		t.Fatalf("Content-Type %q: %.200q", ct, body)
	}
	code, ok := number(env["errorCode"])
	if !ok {
		t.Fatalf("no errorCode: %.200q", body)
	}
	if code >= 500000 {
		t.Fatalf("errorCode %d: %.300q", code, body)
	}
	if _, known := gigya.LookupCode(code); !known && code != 0 {
		t.Fatalf("errorCode %d is not in the code table", code)
	}
	status, _ := number(env["statusCode"])
	if want := gigya.StatusCode(code); status != want {
		t.Fatalf("statusCode %d for errorCode %d", status, code)
	}
	if w.Code != http.StatusOK && w.Code != status {
		t.Fatalf("HTTP %d for statusCode %d", w.Code, status)
	}
	if id, _ := env["callId"].(string); !callIDPattern.MatchString(id) {
		t.Fatalf("callId %q", id)
	}
	_, hasMessage := env["errorMessage"]
	if hasMessage != (code != 0) {
		t.Fatalf("errorMessage present: %v, errorCode %d", hasMessage, code)
	}
}

// number reads a JSON number (float64) or XML text as an int.
func number(v any) (int, bool) {
	switch v := v.(type) {
	case float64:
		return int(v), true
	case string:
		n, err := strconv.Atoi(v)
		return n, err == nil
	}
	return 0, false
}

// xmlEnvelope reads the top-level fields of an XML answer as text, requiring a
// well-formed document with the Gigya root element.
func xmlEnvelope(body []byte) (map[string]any, error) {
	fields, err := gigya.DecodeXMLAnswer(body)
	if err != nil {
		return nil, err
	}
	env := make(map[string]any, len(fields))
	for name, text := range fields {
		env[name] = text
	}
	return env, nil
}

// basic is an HTTP Basic credential.
func basic(user, password string) string {
	return base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
}

// signedForm signs form (not URL-encoded: names and values as written, '&'-joined) for
// a POST over HTTP to socialize.localtest at labTime, and returns it encoded.
func signedForm(method, form string) string {
	p := url.Values{}
	for _, kv := range strings.Split(form, "&") {
		k, v, _ := strings.Cut(kv, "=")
		p.Set(k, v)
	}
	return signedBody(method, "fuzz-"+method, p)
}
