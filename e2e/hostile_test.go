package e2e

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/socius/socius/gigya"
)

// A hostile request, sent as raw bytes over a fresh connection, and what it must get.
type hostile struct {
	name string
	tls  bool   // over the HTTPS listener
	req  string // the whole request: request line, headers, body

	// before runs first, e.g. to send the original of a replay; the store is
	// compared with its state after before ran.
	before func(t *testing.T)

	code    int    // the errorCode
	details string // a part of errorDetails
	format  string // "json" (the default), "jsonp:<callback>" or "xml"
	status  int    // the HTTP status; 200 when zero

	// transport: the request is refused by Go's HTTP server before Socius's handler
	// sees it (malformed HTTP, header limits); the answer is a bare status line and
	// no envelope, so only status is checked.
	transport bool

	check func(t *testing.T, body []byte, a answer) // extra checks
}

// request builds raw HTTP/1.1 request bytes. A body, when not empty, is sent with a
// Content-Length and the form content type, unless headers give their own.
func request(method, target, host, body string, headers ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n", method, target, host)
	hasCT, hasLen := false, false
	for _, h := range headers {
		lh := strings.ToLower(h)
		hasCT = hasCT || strings.HasPrefix(lh, "content-type:")
		hasLen = hasLen || strings.HasPrefix(lh, "content-length:") || strings.HasPrefix(lh, "transfer-encoding:")
		b.WriteString(h + "\r\n")
	}
	if body != "" && !hasCT {
		b.WriteString("Content-Type: application/x-www-form-urlencoded\r\n")
	}
	if body != "" && !hasLen {
		fmt.Fprintf(&b, "Content-Length: %d\r\n", len(body))
	}
	b.WriteString("\r\n")
	b.WriteString(body)
	return b.String()
}

// exchange sends raw over a new connection and reads one response. The request is
// written concurrently: the server may answer (413001) and close before reading it all.
func (p *proc) exchange(secure bool, raw string) (*http.Response, []byte, error) {
	var conn net.Conn
	var err error
	if secure {
		conn, err = tls.Dial("tcp", strings.TrimPrefix(p.HTTPSURL, "https://"), p.client.Transport.(*http.Transport).TLSClientConfig)
	} else {
		conn, err = net.Dial("tcp", p.HTTPAddr)
	}
	if err != nil {
		return nil, nil, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(15 * time.Second))
	go io.WriteString(conn, raw)
	method, _, _ := strings.Cut(raw, " ")
	resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: method})
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

// goErrorText are fragments of Go error strings and crash output that must never
// reach a client.
var goErrorText = regexp.MustCompile(`runtime error|goroutine \d|panic|invalid memory|nil pointer|sql: |sqlite|database is|%!|<nil>|EOF|context canceled|http: |\.go:\d`)

// TestHostileRequests sends malformed and malicious requests to the real binary. Each
// must get its intended errorCode with a useful errorDetails, over HTTP 200 (unless
// httpStatusCodes=true), in the requested format, never 500001 nor a Go error text,
// and none may change anything stored: the whole store (sites, keys, users) is compared
// before and after each request. Requests that Go's HTTP server itself refuses (bad
// framing, header floods) are marked transport: they get a bare 4xx from the
// transport, also without touching the store.
func TestHostileRequests(t *testing.T) {
	dir := t.TempDir()
	// Another site, whose tokens the lab site must refuse.
	admin(t, "site", "create", "--data", dir, "--api-key", siteB.APIKey, "--secret", siteB.Secret)
	p := serve(t, dir, append(append([]string{}, labFlags...), "--log-level", "debug")...)
	db := openDB(t, p)
	// The lab user, with values that break XML, HTML and JSONP when not escaped.
	const xmlBreaker = `<b>"Ada" & 'Bob'</b>]]><!--`
	p.login(lab, "u1", "")
	p.mustCall(lab, "socialize.setUserInfo", url.Values{"UID": {"u1"},
		"userInfo": {fmt.Sprintf(`{"firstName":%q,"nickname":"line\u2028sep </script>","age":33,"gender":"f"}`, xmlBreaker)}})
	p.login(lab, "u2", "")
	p.login(siteB, "u1", "")
	token := func(cred credential, params url.Values) string {
		params.Set("grant_type", "none")
		return p.mustCall(plain(cred), "socialize.getToken", params).str("access_token")
	}
	tokenB := token(siteB, url.Values{})                                                    // site B's, for the whole site
	tokenBu1 := token(siteB, url.Values{"x_siteUID": {"u1"}})                               // site B's, bound to B's u1
	tokenRevoked := token(lab, url.Values{"x_siteUID": {"u2"}})                             // revoked below
	p.mustCall(lab, "socialize.logout", url.Values{"UID": {"u2"}})                          // revokes every token of u2
	tokenU2 := token(lab, url.Values{"x_siteUID": {"u2"}})                                  // a live one again
	tokenShort := token(lab, url.Values{"x_siteUID": {"u2"}, "x_sessionExpiration": {"1"}}) // expires in 1 s
	shortUntil := time.Now().Add(1100 * time.Millisecond)
	session := p.mustCall(siteB, "socialize.notifyLogin", url.Values{"siteUID": {"u1"}, "targetEnv": {"mobile"}})
	withToken := func(tok string, params url.Values) string {
		params.Set("oauth_token", tok)
		return params.Encode()
	}
	jwtNone := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","kid":"AKeyOfSiteA1"}`)) + "." +
		base64.RawURLEncoding.EncodeToString([]byte(`{"iat":`+strconv.FormatInt(time.Now().Unix(), 10)+`,"jti":"1"}`)) + "."

	host, hostS := p.HTTPAddr, strings.TrimPrefix(p.HTTPSURL, "https://")
	base, baseS := p.HTTPURL, p.HTTPSURL
	signed := func(method string, params url.Values) url.Values { return authorize(lab, base, method, params) }
	signedBody := func(method string, params url.Values) string { return signed(method, params).Encode() }
	post := func(method, body string, headers ...string) string {
		return request("POST", "/"+method, host, body, headers...)
	}
	postS := func(method, body string, headers ...string) string {
		return request("POST", "/"+method, hostS, body, headers...)
	}
	get := func(target string, headers ...string) string { return request("GET", target, host, "", headers...) }
	u1 := url.Values{"UID": {"u1"}}
	set := func(userInfo string) url.Values { return url.Values{"UID": {"u1"}, "userInfo": {userInfo}} }
	plainSecret := func(params url.Values) url.Values {
		params.Set("apiKey", lab.APIKey)
		params.Set("secret", lab.Secret)
		return params
	}
	// mustSend sends a request that must succeed (the originals of replays).
	mustSend := func(t *testing.T, raw string) {
		t.Helper()
		_, body, err := p.exchange(false, raw)
		if err != nil || !bytes.Contains(body, []byte(`"errorCode":0`)) {
			t.Fatalf("original request: %v %s", err, body)
		}
	}
	replay := func(raw string) func(*testing.T) { return func(t *testing.T) { mustSend(t, raw) } }

	// Requests used twice (originals and their replays) are built once.
	readU1 := signedBody("socialize.getUserInfo", u1)
	writeOld := signedBody("socialize.setUserInfo", set(`{"lastName":"old value"}`))
	writeNew := signedBody("socialize.setUserInfo", set(`{"lastName":"newer value"}`))
	oldTS := strconv.FormatInt(time.Now().Add(-time.Hour).Unix(), 10)
	expired := signedBody("socialize.setUserInfo", url.Values{"UID": {"u1"}, "userInfo": {`{"nickname":"late"}`}, "timestamp": {oldTS}})
	readRev := signed("socialize.getUserInfo", u1)
	tampered := signed("socialize.setUserInfo", set(`{"nickname":"signed"}`))
	tampered.Set("userInfo", `{"nickname":"tampered"}`)
	added := signed("socialize.setUserInfo", set(`{"nickname":"signed"}`))
	added.Set("gender", "m")
	removed := signed("socialize.setUserInfo", url.Values{"UID": {"u1"}, "userInfo": {`{"nickname":"x"}`}, "context": {"c"}})
	removed.Del("context")
	otherHost := authorize(lab, "http://evil.example", "socialize.setUserInfo", set(`{"nickname":"x"}`))
	deleteSig := signed("socialize.setUserInfo", url.Values{"UID": {"u2"}, "userInfo": {`{}`}})
	split := signed("socialize.getUserInfo", u1)
	splitQuery := url.Values{"UID": split["UID"], "nonce": split["nonce"], "sig": split["sig"]}.Encode()
	for _, k := range []string{"UID", "nonce", "sig"} {
		split.Del(k)
	}

	fieldIs := func(field, want string) func(*testing.T, []byte, answer) {
		return func(t *testing.T, body []byte, a answer) {
			if a.str(field) != want {
				t.Errorf("%s = %q, want %q", field, a.str(field), want)
			}
		}
	}
	noScript := func(t *testing.T, body []byte, a answer) {
		if bytes.Contains(bytes.ToLower(body), []byte("</script")) || bytes.Contains(body, []byte("\u2028")) {
			t.Errorf("the JSONP body can break out of a script: %s", body)
		}
	}

	rows := []hostile{
		// Oversized bodies and fields.
		{name: "body over the limit", req: post("socialize.setUserInfo", signedBody("socialize.setUserInfo", set(`{"nickname":"`+strings.Repeat("a", 1<<20)+`"}`))),
			code: 413001, details: "exceeds 1048576 bytes"},
		{name: "chunked body over the limit", req: post("socialize.setUserInfo", chunked(signedBody("socialize.setUserInfo", set(`{"nickname":"`+strings.Repeat("a", 1<<20)+`"}`))), "Transfer-Encoding: chunked"),
			code: 413001, details: "exceeds 1048576 bytes"},
		{name: "Expect 100-continue with a body over the limit", req: request("POST", "/socialize.setUserInfo", host, "", "Content-Type: application/x-www-form-urlencoded", "Content-Length: 5000000", "Expect: 100-continue"),
			code: 413001, details: "exceeds 1048576 bytes"},
		{name: "text field over 1000 characters", req: post("socialize.setUserInfo", signedBody("socialize.setUserInfo", set(`{"firstName":"`+strings.Repeat("ß", 1001)+`"}`))),
			code: 400006, details: "firstName is longer than 1000"},
		{name: "URL field over 2048 characters", req: post("socialize.setUserInfo", signedBody("socialize.setUserInfo", set(`{"thumbnailURL":"https://x/`+strings.Repeat("a", 2040)+`"}`))),
			code: 400006, details: "thumbnailURL is longer than 2048"},
		{name: "siteUID over 252 characters", req: post("socialize.notifyLogin", signedBody("socialize.notifyLogin", url.Values{"siteUID": {strings.Repeat("u", 253)}})),
			code: 400006, details: "longer than 252"},
		{name: "UID over 252 characters", req: post("socialize.setUserInfo", signedBody("socialize.setUserInfo", url.Values{"UID": {strings.Repeat("u", 253)}, "userInfo": {`{"nickname":"x"}`}})),
			code: 400006, details: "longer than 252"},
		{name: "nonce over 256 characters", req: post("socialize.setUserInfo", signedBody("socialize.setUserInfo", url.Values{"UID": {"u1"}, "userInfo": {`{"nickname":"x"}`}, "nonce": {strings.Repeat("n", 257)}})),
			code: 400006, details: "nonce is longer than 256"},
		{name: "parameter name over 128 characters", req: post("socialize.getUserInfo", strings.Repeat("n", 129)+"=1&"+readU1),
			code: 400001, details: "Malformed parameter name"},
		{name: "more than 256 parameters", req: post("socialize.setUserInfo", manyParams(300)+signedBody("socialize.setUserInfo", set(`{"nickname":"x"}`))),
			code: 400006, details: "Invalid parameter value: too many parameters: at most 256 are allowed"},
		{name: "apiKey over 128 characters", req: post("socialize.getUserInfo", "apiKey="+strings.Repeat("k", 129)+"&UID=u1&secret=x"),
			code: 400093, details: "not a valid apiKey"},
		{name: "100 KB signature", req: post("socialize.setUserInfo", strings.Replace(signedBody("socialize.setUserInfo", set(`{"nickname":"x"}`)), "sig=", "sig="+strings.Repeat("A", 100<<10), 1)),
			code: 400006, details: "sig is longer than 65536 bytes"},
		{name: "timestamp of 20 digits", req: post("socialize.setUserInfo", signedBody("socialize.setUserInfo", url.Values{"UID": {"u1"}, "userInfo": {`{"nickname":"x"}`}, "timestamp": {strings.Repeat("9", 20)}})),
			code: 400006, details: "timestamp must be Unix time"},
		{name: "userInfo with 4,000 unknown keys", req: post("socialize.setUserInfo", signedBody("socialize.setUserInfo", set(manyKeys(4000)))),
			code: 400006, details: "more than 256 keys"},
		{name: "userInfo with 40,000 unknown keys", req: post("socialize.setUserInfo", signedBody("socialize.setUserInfo", set(manyKeys(40000)))),
			code: 400006, details: "more than 10000 values"},
		{name: "age beyond any integer", req: post("socialize.setUserInfo", signedBody("socialize.setUserInfo", set(`{"age":"99999999999999999999999"}`))),
			code: 400006, details: "age must be an integer"},
		{name: "age 1e400", req: post("socialize.setUserInfo", signedBody("socialize.setUserInfo", set(`{"age":1e400}`))),
			code: 400006, details: "age must be an integer from 0 to 150"},

		// Invalid UTF-8 and NUL bytes.
		{name: "invalid UTF-8 in a value", req: post("socialize.getUserInfo", "UID=%C3%28&"+signedBody("socialize.getUserInfo", nil)),
			code: 400006, details: "UID is not valid UTF-8"},
		// The bytes go in where the nickname's "~" is: a character that no signature
		// (base64, escaped) or nonce holds, so that the replacement cannot land there.
		{name: "invalid UTF-8 inside userInfo", req: post("socialize.setUserInfo", strings.Replace(signedBody("socialize.setUserInfo", set(`{"nickname":"A~B"}`)), "~", "%FF", 1)),
			code: 400006, details: "userInfo is not valid UTF-8"},
		{name: "overlong UTF-8 encoding of /", req: post("socialize.setUserInfo", strings.Replace(signedBody("socialize.setUserInfo", set(`{"nickname":"A~B"}`)), "~", "%C0%AF", 1)),
			code: 400006, details: "userInfo is not valid UTF-8"},
		{name: "invalid UTF-8 in a parameter name", req: post("socialize.getUserInfo", "%FF=1&"+readU1),
			code: 400001, details: "Malformed parameter name"},
		{name: "raw invalid UTF-8 in the path", req: get("/socialize.getUser\xff\xfeInfo"),
			code: 400001, details: "Unknown method: socialize.getUser\ufffd\ufffdInfo"},
		{name: "NUL in a value", req: post("socialize.setUserInfo", "UID=u1%00&"+signedBody("socialize.setUserInfo", url.Values{"userInfo": {`{"nickname":"x"}`}})),
			code: 400006, details: "UID contains a NUL character"},
		{name: "NUL escaped inside userInfo", req: post("socialize.setUserInfo", signedBody("socialize.setUserInfo", set(`{"nickname":"a\u0000b"}`))),
			code: 400006, details: "nickname contains a NUL character"},
		{name: "signed parameters folded into one name", req: post("socialize.setUserInfo", strings.Replace(signedBody("socialize.setUserInfo", set(`{"nickname":"x"}`)), "UID=u1&apiKey=", "UID%3Du1%26apiKey=", 1)),
			code: 400001, details: "Malformed parameter name"},
		{name: "NUL in a parameter name", req: post("socialize.getUserInfo", "U%00ID=1&"+readU1),
			code: 400001, details: "Malformed parameter name"},
		{name: "NUL in the path, percent-encoded", req: get("/socialize.getUserInfo%00"),
			code: 400001, details: "Unknown method: socialize.getUserInfo\x00"},
		{name: "raw NUL in the request line", req: get("/socialize.getUserInfo\x00x"), transport: true, status: 400},
		{name: "NUL in a header value", req: get("/socialize.getUserInfo", "X-Evil: a\x00b"), transport: true, status: 400},

		// Deeply nested and malformed JSON.
		{name: "userInfo nested 100,000 deep", req: post("socialize.setUserInfo", signedBody("socialize.setUserInfo", set(strings.Repeat("[", 100000)))),
			code: 400006, details: "nested deeper than 32"},
		{name: "a field nested 40 deep", req: post("socialize.setUserInfo", signedBody("socialize.setUserInfo", set(`{"nickname":`+strings.Repeat(`{"a":`, 40)+"1"+strings.Repeat("}", 40)+"}"))),
			code: 400006, details: "nested deeper than 32"},
		{name: "userInfo null", req: post("socialize.setUserInfo", signedBody("socialize.setUserInfo", set("null"))),
			code: 400006, details: "userInfo must be a JSON object"},
		{name: "userInfo empty", req: post("socialize.setUserInfo", signedBody("socialize.setUserInfo", set(""))),
			code: 400002, details: "Missing required parameter: userInfo"},
		{name: "userInfo with trailing garbage", req: post("socialize.setUserInfo", signedBody("socialize.setUserInfo", set(`{"nickname":"x"} {"age":1}`))),
			code: 400006, details: "after the value"},
		{name: "a field an array of 1,000", req: post("socialize.setUserInfo", signedBody("socialize.setUserInfo", set(`{"nickname":[`+strings.Repeat("0,", 1000)+`0]}`))),
			code: 400006, details: "nickname: must be a string"},
		{name: "an array of 100,000", req: post("socialize.setUserInfo", signedBody("socialize.setUserInfo", set(`{"nickname":[`+strings.Repeat("0,", 100000)+`0]}`))),
			code: 400006, details: "more than 10000 values"},

		// Duplicate parameters.
		{name: "UID twice", req: post("socialize.getUserInfo", "UID=u2&"+readU1),
			code: 400006, details: "Duplicate parameter: UID"},
		{name: "UID in two letter cases", req: post("socialize.getUserInfo", "uid=u2&"+readU1),
			code: 400006, details: "Duplicate parameter: UID"},
		{name: "apiKey in the query and the body", req: request("POST", "/socialize.getUserInfo?apiKey=3_Other", host, readU1),
			code: 400006, details: "Duplicate parameter: apiKey"},
		{name: "sig twice", req: post("socialize.getUserInfo", readU1+"&sig=AAAA"),
			code: 400006, details: "Duplicate parameter: sig"},
		{name: "a field twice in userInfo", req: post("socialize.setUserInfo", signedBody("socialize.setUserInfo", set(`{"firstName":"a","FIRSTNAME":"b"}`))),
			code: 400006, details: "sets firstName twice"},

		// Header floods. Past MaxHeaderBytes (64 KiB) Go refuses the request itself.
		{name: "2,000 headers", req: get("/socialize.getUserInfo", manyHeaders(2000, 40)...), transport: true, status: 431},
		{name: "one 100 KB header", req: get("/socialize.getUserInfo", "X-Big: "+strings.Repeat("b", 100<<10)), transport: true, status: 431},
		{name: "100 KB request target", req: get("/socialize.getUserInfo?UID=" + strings.Repeat("u", 100<<10)), transport: true, status: 431},
		{name: "250 headers under the limits", req: post("socialize.getUserInfo", signedBody("socialize.getUserInfo", u1), manyHeaders(250, 40)...), code: 0,
			check: fieldIs("firstName", xmlBreaker)},
		{name: "300 headers, over the fields' limit", req: post("socialize.getUserInfo", signedBody("socialize.getUserInfo", u1), manyHeaders(300, 40)...), transport: true, status: 431},

		// Unknown methods and HTTP methods.
		{name: "unknown method", req: post("socialize.nope", readU1), code: 400001, details: "Unknown method: socialize.nope"},
		{name: "another namespace", req: post("accounts.getAccountInfo", readU1), code: 400001, details: "Unknown method: accounts.getAccountInfo"},
		{name: "no method", req: get("/"), code: 400001, details: "no method in the path"},
		{name: "favicon", req: get("/favicon.ico"), code: 400001, details: "Unknown method: favicon.ico"},
		{name: "10 KB method name", req: get("/socialize." + strings.Repeat("m", 10<<10)), code: 400001, details: "mmm..."},
		{name: "PUT", req: request("PUT", "/socialize.setUserInfo", host, signedBody("socialize.setUserInfo", set(`{"nickname":"put"}`))),
			code: 400001, details: "HTTP method PUT is not supported"},
		{name: "DELETE", req: request("DELETE", "/socialize.deleteAccount?"+signedBody("socialize.deleteAccount", url.Values{"UID": {"u2"}}), host, ""),
			code: 400001, details: "HTTP method DELETE is not supported"},
		{name: "OPTIONS", req: request("OPTIONS", "/socialize.getUserInfo", host, ""), code: 400001, details: "HTTP method OPTIONS"},
		{name: "OPTIONS *", req: request("OPTIONS", "*", host, ""), code: 400001, details: "HTTP method OPTIONS"},
		{name: "TRACE", req: request("TRACE", "/socialize.getUserInfo", host, "", "X-Echo: me"), code: 400001, details: "HTTP method TRACE"},
		{name: "made-up HTTP method", req: request("BREW", "/socialize.getUserInfo", host, ""), code: 400001, details: "HTTP method BREW"},
		{name: "HEAD", req: request("HEAD", "/socialize.getUserInfo?"+signedBody("socialize.getUserInfo", u1), host, ""), code: -1,
			check: func(t *testing.T, body []byte, a answer) {
				if len(body) != 0 {
					t.Errorf("HEAD has a body: %q", body)
				}
			}},
		{name: "not an HTTP method token", req: request("GE(T", "/socialize.getUserInfo", host, ""), transport: true, status: 400},
		{name: "malformed escape in the path", req: request("GET", "/socialize.getUser%ZZInfo", host, ""), transport: true, status: 400},

		// Path tricks: Socius routes on the path as received, never cleaned.
		{name: "dot-dot before the method", req: post("../socialize.setUserInfo", signedBody("socialize.setUserInfo", set(`{"nickname":"x"}`))),
			code: 400001, details: "Unknown method: ../socialize.setUserInfo"},
		{name: "encoded dot-dot", req: post("%2e%2e/socialize.deleteAccount", signedBody("socialize.deleteAccount", url.Values{"UID": {"u2"}})),
			code: 400001, details: "Unknown method: ../socialize.deleteAccount"},
		{name: "double slash", req: post("/socialize.setUserInfo", signedBody("socialize.setUserInfo", set(`{"nickname":"x"}`))),
			code: 400001, details: "Unknown method: /socialize.setUserInfo"},
		{name: "trailing slash", req: post("socialize.deleteAccount/", signedBody("socialize.deleteAccount", url.Values{"UID": {"u2"}})),
			code: 400001, details: "Unknown method: socialize.deleteAccount/"},
		{name: "encoded slash and dot-dot after the method", req: post("socialize.setUserInfo%2f..%2fx", signedBody("socialize.setUserInfo", set(`{"nickname":"x"}`))),
			code: 400001, details: "Unknown method: socialize.setUserInfo/../x"},
		{name: "path parameter", req: post("socialize.deleteAccount;jsessionid=1", signedBody("socialize.deleteAccount", url.Values{"UID": {"u2"}})),
			code: 400001, details: `Unknown method: socialize.deleteAccount;... is not a method Socius serves: the path goes on after socialize.deleteAccount with ";"`},
		{name: "encoded question mark", req: get("/socialize.getUserInfo%3F" + readU1), code: 400001, details: "Unknown method: socialize.getUserInfo?"},
		{name: "absolute form naming another host", req: request("POST", "http://evil.example/socialize.setUserInfo", "evil.example", signedBody("socialize.setUserInfo", set(`{"nickname":"x"}`))),
			code: 403003, details: "for POST http://evil.example/socialize.setUserInfo"},
		{name: "absolute form of another scheme", req: request("POST", "ftp://"+host+"/socialize.getUserInfo", host, readU1),
			code: 400001, details: `the request target's scheme "ftp" is not http or https`},
		{name: "absolute form in upper case", req: request("POST", "HTTP://"+host+"/socialize.getUserInfo", host, signedBody("socialize.getUserInfo", u1)), code: 0},
		{name: "signed for another host", req: post("socialize.setUserInfo", otherHost.Encode()), code: 403003, details: "Invalid request signature"},
		{name: "method in upper case is the method", req: request("POST", "/SOCIALIZE.GETUSERINFO", host, authorize(lab, base, "SOCIALIZE.GETUSERINFO", u1).Encode()), code: 0},

		// JSONP callback injection: refused, and then the answer is plain JSON.
		{name: "jsonp callback with a call", req: get("/socialize.getUserInfo?format=jsonp&callback=alert(1)//&" + readU1), code: 400006, details: "callback may hold only"},
		{name: "jsonp callback closing the script", req: get("/socialize.getUserInfo?format=jsonp&callback=" + url.QueryEscape("</script><script>alert(1)</script>")), code: 400006, details: "callback may hold only"},
		{name: "jsonp callback with a newline", req: get("/socialize.getUserInfo?format=jsonp&callback=a%0Ab"), code: 400006, details: "callback may hold only"},
		{name: "jsonp callback of 129 characters", req: get("/socialize.getUserInfo?format=jsonp&callback=" + strings.Repeat("c", 129)), code: 400006, details: "at most 128"},
		{name: "jsonp without callback", req: get("/socialize.getUserInfo?format=jsonp"), code: 400002, details: "callback"},
		{name: "jsonp with script-breaking values", req: post("socialize.getUserInfo", signedBody("socialize.getUserInfo", url.Values{"UID": {"u1"}, "format": {"jsonp"}, "callback": {"cb.x$_1"}, "context": {"</script><script>alert(1)</script>\u2028"}})),
			format: "jsonp:cb.x$_1", code: 0, check: noScript},

		// Values that would break XML if they were not escaped.
		{name: "xml with markup in the profile and the context", req: postS("socialize.getUserInfo", plainSecret(url.Values{"UID": {"u1"}, "format": {"xml"}, "context": {"]]></context><evil/><!--"}}).Encode()),
			tls: true, format: "xml", code: 0, check: func(t *testing.T, body []byte, a answer) {
				fieldIs("firstName", xmlBreaker)(t, body, a)
				fieldIs("context", "]]></context><evil/><!--")(t, body, a)
			}},
		{name: "xml error with markup in the method name", req: get("/socialize.%3Cx%20a%22%27%22%3E?format=xml"), format: "xml", code: 400001, details: `Unknown method: socialize.<x a"'"> is`},
		{name: "xml error with markup in the method name, cut", req: get("/socialize.%3Cx%20a=%22%26%22%3E?format=xml"), format: "xml", code: 400001, details: `Unknown method: socialize.<x a=... is`},
		{name: "xml with control characters in the context", req: postS("socialize.getUserInfo", plainSecret(url.Values{"UID": {"u1"}, "format": {"xml"}, "context": {"a\x01\x02\x1bb"}}).Encode()),
			tls: true, format: "xml", code: 0},
		{name: "xml with markup in ignored names", req: postS("socialize.setUserInfo", plainSecret(url.Values{"UID": {"u1"}, "format": {"xml"}, "a<b>": {"1"}, "userInfo": {`{"<x y='1'>":1}`}}).Encode()),
			tls: true, format: "xml", code: 0, check: func(t *testing.T, body []byte, a answer) {
				if !bytes.Contains(body, []byte("userInfo.&lt;x y=&apos;1&apos;&gt;")) {
					t.Errorf("the ignored userInfo key is not listed, escaped: %s", body)
				}
			}},

		// Replayed, reordered and tampered signed requests.
		{name: "replayed read", before: replay(post("socialize.getUserInfo", readU1)), req: post("socialize.getUserInfo", readU1), code: 403004, details: "Duplicate nonce"},
		{name: "replayed write after a newer one", before: func(t *testing.T) {
			mustSend(t, post("socialize.setUserInfo", writeOld))
			mustSend(t, post("socialize.setUserInfo", writeNew))
		}, req: post("socialize.setUserInfo", writeOld), code: 403004, details: "Duplicate nonce"},
		{name: "replay with its parameters reordered", req: post("socialize.setUserInfo", reversedBody(writeNew)), code: 403004, details: "Duplicate nonce"},
		{name: "replay moved into the query string", req: request("POST", "/socialize.setUserInfo?"+writeOld, host, ""), code: 403004, details: "Duplicate nonce"},
		{name: "replay over HTTPS", tls: true, req: request("POST", "/socialize.setUserInfo", host, writeOld), code: 403004, details: "Duplicate nonce"},
		{name: "replay on another method", req: post("socialize.deleteAccount", writeOld), code: 403003, details: "Invalid request signature"},
		{name: "expired request", req: post("socialize.setUserInfo", expired), code: 403002, details: "Request has expired"},
		{name: "expired request, sent again", req: post("socialize.setUserInfo", expired), code: 403002, details: "Request has expired"},
		{name: "fresh request with its parameters reordered", req: post("socialize.getUserInfo", reversedBody(readRev.Encode())), code: 0},
		{name: "fresh request split between query and body", req: request("POST", "/socialize.getUserInfo?"+splitQuery, host, split.Encode()), code: 0},
		{name: "userInfo changed after signing", req: post("socialize.setUserInfo", tampered.Encode()), code: 403003, details: "Invalid request signature"},
		{name: "parameter added after signing", req: post("socialize.setUserInfo", added.Encode()), code: 403003, details: "Invalid request signature"},
		{name: "parameter removed after signing", req: post("socialize.setUserInfo", removed.Encode()), code: 403003, details: "Invalid request signature"},
		{name: "signature of one user's write on another's", req: post("socialize.deleteAccount", deleteSig.Encode()), code: 403003, details: "Invalid request signature"},

		// Secrets over plain HTTP: refused before the secret is even compared.
		{name: "partner secret over HTTP", req: post("socialize.setUserInfo", plainSecret(set(`{"nickname":"x"}`)).Encode()), code: 403006, details: "only be sent over HTTPS"},
		{name: "wrong secret over HTTP", req: post("socialize.deleteAccount", url.Values{"apiKey": {lab.APIKey}, "secret": {"d3Jvbmctc2VjcmV0LXdyb25n"}, "UID": {"u2"}}.Encode()), code: 403006, details: "only be sent over HTTPS"},
		{name: "secret in the query string over HTTP", req: get("/socialize.getUserInfo?" + plainSecret(url.Values{"UID": {"u1"}}).Encode()), code: 403006, details: "only be sent over HTTPS"},
		{name: "X-Forwarded-Proto from an untrusted client", req: post("socialize.setUserInfo", plainSecret(set(`{"nickname":"x"}`)).Encode(), "X-Forwarded-Proto: https"), code: 403006, details: "only be sent over HTTPS"},
		{name: "wrong secret over HTTPS", tls: true, req: postS("socialize.setUserInfo", url.Values{"apiKey": {lab.APIKey}, "secret": {"d3Jvbmctc2VjcmV0LXdyb25n"}, "UID": {"u1"}, "userInfo": {`{"nickname":"x"}`}}.Encode()),
			code: 403003, details: "secret does not match"},

		// Tokens: none is valid here, and one is never accepted over plain HTTP.
		{name: "token over HTTP", req: post("socialize.setUserInfo", url.Values{"oauth_token": {"st2.abc"}, "UID": {"u1"}, "userInfo": {`{"nickname":"x"}`}}.Encode()), code: 403025, details: "only be sent over HTTPS"},
		{name: "unknown token", tls: true, req: postS("socialize.setUserInfo", url.Values{"oauth_token": {"st2.abc"}, "userInfo": {`{"nickname":"x"}`}}.Encode()), code: 403025, details: "Invalid token"},
		{name: "token in the Authorization header", tls: true, req: postS("socialize.deleteAccount", "UID=u2", "Authorization: OAuth st2.abc"), code: 403025, details: "Invalid token"},
		{name: "another site's token with the lab's apiKey", tls: true, req: postS("socialize.setUserInfo", withToken(tokenB, url.Values{"apiKey": {lab.APIKey}, "UID": {"u1"}, "userInfo": {`{"nickname":"x"}`}})),
			code: 403025, details: "the token was not issued for apiKey " + lab.APIKey},
		{name: "another site's token on the lab's UID", tls: true, req: postS("socialize.getUserInfo", withToken(tokenB, url.Values{"UID": {"u2"}})),
			code: 403005, details: "UID not found"},
		{name: "another site's user token on the lab's UID", tls: true, req: postS("socialize.setUserInfo", withToken(tokenBu1, url.Values{"UID": {"u2"}, "userInfo": {`{"nickname":"x"}`}})),
			code: 403007, details: "bound to another user"},
		{name: "another site's token in the header, the lab's apiKey", tls: true, req: postS("socialize.deleteAccount", "apiKey="+lab.APIKey+"&UID=u1", "Authorization: Bearer "+tokenB),
			code: 403025, details: "not issued for apiKey"},
		{name: "another site's session token, unsigned", tls: true, req: postS("socialize.getUserInfo", withToken(session.str("sessionToken"), url.Values{"UID": {"u1"}})),
			code: 400002, details: "Missing required parameter: sig"},
		{name: "another site's session token signed with the lab secret", tls: true, req: postS("socialize.getUserInfo", authorize(lab, baseS, "socialize.getUserInfo", url.Values{"oauth_token": {session.str("sessionToken")}, "UID": {"u1"}}).Encode()),
			code: 403025, details: "not issued for apiKey"},
		{name: "a user's token on another user", tls: true, req: postS("socialize.setUserInfo", withToken(tokenU2, url.Values{"UID": {"u1"}, "userInfo": {`{"nickname":"x"}`}})),
			code: 403007, details: "bound to another user"},
		{name: "a user's token deleting its user", tls: true, req: postS("socialize.deleteAccount", withToken(tokenU2, url.Values{})),
			code: 403007, details: ""},
		{name: "revoked token", tls: true, req: postS("socialize.setUserInfo", withToken(tokenRevoked, url.Values{"userInfo": {`{"nickname":"x"}`}})),
			code: 403025, details: "the token was revoked"},
		{name: "expired token", tls: true, before: func(t *testing.T) { time.Sleep(time.Until(shortUntil)) },
			req: postS("socialize.setUserInfo", withToken(tokenShort, url.Values{"userInfo": {`{"nickname":"x"}`}})), code: 403025, details: "the token expired"},
		{name: "two different tokens", tls: true, req: postS("socialize.setUserInfo", withToken(tokenU2, url.Values{"userInfo": {`{"nickname":"x"}`}}), "Authorization: OAuth "+tokenB),
			code: 400008, details: "carry different tokens"},
		{name: "token of the wrong shape", tls: true, req: postS("socialize.getUserInfo", withToken("st2.at.'; DROP TABLE users; --", url.Values{"UID": {"u1"}})),
			code: 403025, details: "unknown token"},
		{name: "bearer JWT of alg none", tls: true, req: postS("socialize.deleteAccount", "apiKey="+lab.APIKey+"&UID=u2", "Authorization: Bearer "+jwtNone),
			code: 400008, details: `JWT alg "none" is not accepted`},
		{name: "bearer that is no JWT", tls: true, req: postS("socialize.deleteAccount", "apiKey="+lab.APIKey+"&UID=u2", "Authorization: Bearer a.b"),
			code: 400008, details: "not a JWT"},
		{name: "bearer JWT over plain HTTP", req: post("socialize.deleteAccount", "apiKey="+lab.APIKey+"&UID=u2", "Authorization: Bearer "+jwtNone),
			code: 403006, details: "bearer JWT may only be sent over HTTPS"},

		// Credentials that look like injections.
		{name: "SQL in the UID", req: post("socialize.setUserInfo", signedBody("socialize.setUserInfo", url.Values{"UID": {"u1' OR '1'='1"}, "userInfo": {`{"nickname":"x"}`}})), code: 403005, details: "UID not found"},
		{name: "SQL in the apiKey", req: post("socialize.getUserInfo", "apiKey=3_x'--&UID=u1&sig=x&nonce=1&timestamp=1"), code: 400093, details: `no site has apiKey "3_x"... (length 6)`},
		{name: "SQL in the userKey", req: post("socialize.deleteAccount", authorize(credential{APIKey: lab.APIKey, UserKey: "A'||'1", Secret: lab.Secret}, base, "socialize.deleteAccount", url.Values{"UID": {"u2"}}).Encode()), code: 403005, details: "is not a key of this site"},
		{name: "apiKey with a space", req: post("socialize.getUserInfo", "apiKey=3_a+b&UID=u1"), code: 400093, details: "not a valid apiKey"},

		// Malformed bodies and framing.
		{name: "JSON body", req: post("socialize.setUserInfo", `{"UID":"u1","userInfo":{"nickname":"x"}}`, "Content-Type: application/json"), code: 400001, details: "must be application/x-www-form-urlencoded"},
		{name: "multipart body", req: post("socialize.setUserInfo", "--b\r\nContent-Disposition: form-data; name=\"UID\"\r\n\r\nu1\r\n--b--\r\n", "Content-Type: multipart/form-data; boundary=b"), code: 400001, details: "must be application/x-www-form-urlencoded"},
		{name: "unparsable content type", req: post("socialize.getUserInfo", readU1, "Content-Type: ;;;"), code: 400001, details: "must be application/x-www-form-urlencoded"},
		{name: "two content types, the form first", req: post("socialize.getUserInfo", readU1, "Content-Type: application/x-www-form-urlencoded", "Content-Type: text/plain"),
			code: 400001, details: `2 Content-Type headers that differ ("application/x-www-form-urlencoded", "text/plain"); send one`},
		{name: "two content types, the form second", req: post("socialize.getUserInfo", readU1, "Content-Type: text/plain", "Content-Type: application/x-www-form-urlencoded"),
			code: 400001, details: `2 Content-Type headers that differ ("text/plain", "application/x-www-form-urlencoded"); send one`},
		{name: "broken percent-encoding", req: post("socialize.getUserInfo", "UID=%zz&"+readU1), code: 400001, details: "Malformed percent-encoding in parameter: UID"},
		{name: "format yaml", req: get("/socialize.getUserInfo?format=yaml"), code: 400006, details: "format must be json, jsonp or xml"},
		{name: "httpStatusCodes maybe", req: get("/socialize.getUserInfo?httpStatusCodes=maybe"), code: 400006, details: "httpStatusCodes must be true or false"},
		{name: "httpStatusCodes=true on an unknown method", req: get("/socialize.nope?httpStatusCodes=true"), status: 400, code: 400001, details: "Unknown method"},
		{name: "httpStatusCodes=true added after signing", req: post("socialize.getUserInfo", readU1+"&httpStatusCodes=true"), status: 403, code: 403003, details: "Invalid request signature"},
		// Refused and the connection closed (RFC 9112 6.1), so that what follows the
		// body cannot become a request of its own, whichever framing a proxy read.
		{name: "Content-Length and Transfer-Encoding both", req: post("socialize.getUserInfo", chunked(signedBody("socialize.getUserInfo", u1))+"GET /socialize.deleteAccount HTTP/1.1\r\n\r\n", "Transfer-Encoding: chunked", "Content-Length: 10"),
			transport: true, status: 400},
		{name: "negative Content-Length", req: post("socialize.getUserInfo", readU1, "Content-Length: -1"), transport: true, status: 400},
		{name: "two Host headers", req: post("socialize.getUserInfo", readU1, "Host: evil.example"), transport: true, status: 400},
		{name: "HTTP/1.0 without Host", req: "GET /socialize.getUserInfo?UID=u1 HTTP/1.0\r\n\r\n", code: 400093, details: "Missing required parameter: apiKey"},
		{name: "a thousand empty parameters", req: post("socialize.getUserInfo", strings.Repeat("&", 1000)+readU1+strings.Repeat("&", 1000)), code: 403004, details: "Duplicate nonce"},
	}
	if len(rows) < 60 {
		t.Fatalf("only %d hostile requests", len(rows))
	}

	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			if row.before != nil {
				row.before(t)
			}
			before := snapshot(t, db, "")
			resp, body, err := p.exchange(row.tls, row.req)
			if err != nil {
				t.Fatalf("no answer: %v", err)
			}
			if after := snapshot(t, db, ""); after != before {
				t.Errorf("the store changed:\nbefore:\n%s\nafter:\n%s", before, after)
			}
			want := row.status
			if want == 0 {
				want = 200
			}
			if resp.StatusCode != want {
				t.Errorf("HTTP %d, want %d: %.300s", resp.StatusCode, want, body)
			}
			if row.transport {
				if bytes.Contains(body, []byte("errorCode")) {
					t.Errorf("Socius answered what the transport should refuse: %.300s", body)
				}
				return
			}
			if row.code == -1 {
				row.check(t, body, nil)
				return
			}
			a := decodeAnswer(t, body, resp, row.format)
			if a == nil {
				return
			}
			if a.code() == 500001 {
				t.Fatalf("500001: %.300s", body)
			}
			if a.code() != row.code || !strings.Contains(a.str("errorDetails"), row.details) {
				t.Errorf("got %d %.200q, want %d with %q", a.code(), a.str("errorDetails"), row.code, row.details)
			}
			if sc := a.str("statusCode"); sc != "" && sc != strconv.Itoa(statusOf(row.code)) {
				t.Errorf("statusCode %s for errorCode %d", sc, row.code)
			}
			if m := goErrorText.FindString(a.str("errorDetails")); m != "" {
				t.Errorf("errorDetails carries Go error text %q: %.300s", m, a.str("errorDetails"))
			}
			if row.check != nil {
				row.check(t, body, a)
			}
		})
	}
	// Clients that hang up as soon as their call is sent: the calls are cut short, but
	// that is no server failure to log (it was 500001, logged as an error).
	for i := 0; i < 100; i++ {
		conn, err := net.Dial("tcp", host)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(conn, post("socialize.setUserInfo", signedBody("socialize.setUserInfo", set(`{"lastName":"newer value"}`))))
		conn.(*net.TCPConn).SetLinger(0) // reset, not a polite close
		conn.Close()
	}
	time.Sleep(200 * time.Millisecond)
	// errorCode=, not the bare number: a random call ID may contain "500001".
	if s := p.stderr.String(); strings.Contains(s, "panic") || strings.Contains(s, "errorCode=500001") || strings.Contains(s, "level=ERROR") {
		t.Errorf("the server log has a panic, an error or a 500001:\n%s", s)
	}
	// The server is still well, and u1 is as it was set up (with lastName from the
	// replay rows' originals).
	a := p.mustCall(lab, "socialize.getUserInfo", u1)
	if a.str("firstName") != xmlBreaker || a.str("lastName") != "newer value" || a.str("nickname") != "line\u2028sep </script>" {
		t.Errorf("u1 after the hostile requests: %v", a)
	}
	p.stop()
}

func statusOf(code int) int {
	if code == 0 {
		return 200
	}
	return code / 1000
}

// decodeAnswer reads the envelope in its format, checking the framing of each: JSON's
// first byte is '{', JSONP is callback(...); and XML is well-formed. Values come back
// as strings for XML, as JSON types otherwise (statusCode as a string in both, for
// comparison).
func decodeAnswer(t *testing.T, body []byte, resp *http.Response, format string) answer {
	t.Helper()
	ct := resp.Header.Get("Content-Type")
	switch {
	case format == "xml":
		if ct != "text/xml; charset=utf-8" {
			t.Errorf("Content-Type %q for XML", ct)
		}
		a, err := xmlAnswer(body)
		if err != nil {
			t.Errorf("not well-formed XML: %v\n%.500s", err, body)
			return nil
		}
		return a
	case strings.HasPrefix(format, "jsonp:"):
		cb := strings.TrimPrefix(format, "jsonp:")
		if ct != "text/javascript; charset=utf-8" || !bytes.HasPrefix(body, []byte(cb+"({")) || !bytes.HasSuffix(body, []byte("});")) {
			t.Errorf("not JSONP for %s (%s): %.300s", cb, ct, body)
			return nil
		}
		body = body[len(cb)+1 : len(body)-2]
	default:
		if ct != "application/json; charset=utf-8" || len(body) == 0 || body[0] != '{' {
			t.Errorf("not a JSON envelope (%s): %.300s", ct, body)
			return nil
		}
	}
	var a answer
	if err := json.Unmarshal(body, &a); err != nil {
		t.Errorf("not JSON: %v: %.300s", err, body)
		return nil
	}
	if f, ok := a["statusCode"].(float64); ok {
		a["statusCode"] = strconv.Itoa(int(f))
	}
	return a
}

// xmlAnswer parses an XML answer: the root's child elements, as text (errorCode as a
// number, so that answer.code works).
func xmlAnswer(body []byte) (answer, error) {
	fields, err := gigya.DecodeXMLAnswer(body)
	if err != nil {
		return nil, err
	}
	a := answer{}
	for name, text := range fields {
		a[name] = text
	}
	n, _ := strconv.Atoi(fields["errorCode"]) // an integer: DecodeXMLAnswer checks
	a["errorCode"] = float64(n)
	return a, nil
}

// chunked encodes body with chunked transfer encoding, in 64 KiB chunks.
func chunked(body string) string {
	var b strings.Builder
	for len(body) > 0 {
		n := min(len(body), 64<<10)
		fmt.Fprintf(&b, "%x\r\n%s\r\n", n, body[:n])
		body = body[n:]
	}
	b.WriteString("0\r\n\r\n")
	return b.String()
}

// manyParams is n distinct parameters, each followed by '&'.
func manyParams(n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "p%d=%d&", i, i)
	}
	return b.String()
}

// manyKeys is a userInfo object of n distinct keys that are not profile fields.
func manyKeys(n int) string {
	var b strings.Builder
	b.WriteByte('{')
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"k%d":0`, i)
	}
	b.WriteByte('}')
	return b.String()
}

// manyHeaders is n header lines of about size bytes each.
func manyHeaders(n, size int) []string {
	hs := make([]string, n)
	for i := range hs {
		hs[i] = fmt.Sprintf("X-Flood-%d: %s", i, strings.Repeat("f", size))
	}
	return hs
}

// reversedBody reverses the order of the parameters of an encoded form.
func reversedBody(form string) string {
	parts := strings.Split(form, "&")
	slices.Reverse(parts)
	return strings.Join(parts, "&")
}

// TestConnectGoesOnlyToSelf: the CONNECT tunnel of the HTTP listener (for SDKs that
// need a proxy) leads to Socius's own HTTPS listener whatever host it names: it is no
// open proxy to the network.
func TestConnectGoesOnlyToSelf(t *testing.T) {
	p := serve(t, t.TempDir(), labFlags...)
	decoy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer decoy.Close()
	reached := make(chan struct{}, 1)
	go func() {
		if c, err := decoy.Accept(); err == nil {
			reached <- struct{}{}
			c.Close()
		}
	}()
	for _, target := range []string{decoy.Addr().String(), "169.254.169.254:80", "localhost:22"} {
		conn, err := net.Dial("tcp", p.HTTPAddr)
		if err != nil {
			t.Fatal(err)
		}
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(conn, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target)
		br := bufio.NewReader(conn)
		resp, err := http.ReadResponse(br, &http.Request{Method: "CONNECT"})
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("CONNECT %s: %v %v", target, resp, err)
		}
		// Plain HTTP through the tunnel reaches a TLS server: Socius's HTTPS listener.
		io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		rest, _ := io.ReadAll(br)
		conn.Close()
		if !bytes.Contains(rest, []byte("HTTP request to an HTTPS server")) {
			t.Errorf("CONNECT %s led elsewhere than the HTTPS listener: %q", target, rest)
		}
	}
	select {
	case <-reached:
		t.Error("a CONNECT tunnel reached the host it named")
	case <-time.After(100 * time.Millisecond):
	}
}
