package gigya

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/socius/socius"
	"github.com/socius/socius/internal/vectors"
)

func mustKey(t testing.TB, secret string) []byte {
	t.Helper()
	k, err := socius.DecodeSecret(secret)
	if err != nil {
		t.Fatalf("decode secret %q: %v", secret, err)
	}
	return k
}

func toParams(pairs [][2]string) []Param {
	out := make([]Param, len(pairs))
	for i, p := range pairs {
		out[i] = Param{p[0], p[1]}
	}
	return out
}

func loadVectors(t *testing.T) *vectors.File {
	t.Helper()
	f, err := vectors.Load()
	if err != nil {
		t.Fatal(err)
	}
	if len(f.RequestSignatureVectors) != 21 || len(f.UIDSignatureVectors) != 4 || len(f.CapturedWireRequests) != 16 {
		t.Fatalf("test-vectors.json changed shape: %d request, %d UID, %d captured vectors",
			len(f.RequestSignatureVectors), len(f.UIDSignatureVectors), len(f.CapturedWireRequests))
	}
	return f
}

// decodeWire decodes an SDK's body. Parameters that differ only in letter case (the
// key-order vector's Zeta and zeta) are refused by Decode with 400006, as SPEC section
// 1 requires; the signature over them must still be computed right, so they are
// decoded here without that rule.
func decodeWire(body string) (*Params, error) {
	var p Params
	err := p.Decode(body)
	if socius.ErrorCode(err) == socius.CodeInvalidValue && strings.Contains(err.Error(), "Duplicate parameter") {
		q, perr := url.ParseQuery(body)
		if perr != nil {
			return nil, perr
		}
		p.Reset()
		for name, vals := range q {
			for _, v := range vals {
				p.Add(name, v)
			}
		}
		return &p, nil
	}
	return &p, err
}

// urlParts splits a vector URL into what a server would see: scheme, Host, path.
func urlParts(t *testing.T, raw string) (scheme, host, path string) {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return strings.ToLower(u.Scheme), u.Host, u.Path
}

func TestRequestSignatureVectors(t *testing.T) {
	for _, v := range loadVectors(t).RequestSignatureVectors {
		t.Run(v.ID, func(t *testing.T) {
			key := mustKey(t, v.Secret)
			norm, err := NormalizeURL(v.URL)
			if err != nil {
				t.Fatal(err)
			}
			if norm != v.NormalizedURL {
				t.Errorf("NormalizeURL(%q) = %q, want %q", v.URL, norm, v.NormalizedURL)
			}
			params := toParams(v.Params)
			if got := BaseString(v.HTTPMethod, v.NormalizedURL, params); got != v.ExpectedBaseString {
				t.Errorf("base string\n got %s\nwant %s", got, v.ExpectedBaseString)
			}
			if got := Sign(key, v.HTTPMethod, v.NormalizedURL, params); got != v.ExpectedSig {
				t.Errorf("Sign = %s, want %s", got, v.ExpectedSig)
			}
			// Every SDK's body, as the server receives it, verifies against the URL the
			// request was sent to - including .NET's port-less signature.
			scheme, host, path := urlParts(t, v.URL)
			cands := CandidateURLs(scheme, host, path)
			if len(v.WireBodies) == 0 {
				t.Fatal("vector has no wire bodies")
			}
			for sdk, body := range v.WireBodies {
				p, err := decodeWire(body)
				if err != nil {
					t.Errorf("%s body: %v", sdk, err)
					continue
				}
				i := Verify(key, p.Get("sig"), "POST", cands, p.All())
				if i < 0 {
					t.Errorf("%s body does not verify against %v", sdk, cands)
				}
				if j := VerifyRequest(key, p.Get("sig"), "POST", scheme, host, path, p.All()); j != i {
					t.Errorf("%s body: VerifyRequest = %d, Verify = %d", sdk, j, i)
				}
				// A changed value must not verify.
				p.Set("nonce", p.Get("nonce")+"x")
				if Verify(key, p.Get("sig"), "POST", cands, p.All()) >= 0 {
					t.Errorf("%s body with a changed nonce still verifies", sdk)
				}
			}
		})
	}
}

func TestUIDSignatureVectors(t *testing.T) {
	now := time.Unix(1700000000, 0)
	for _, v := range loadVectors(t).UIDSignatureVectors {
		t.Run(v.ID, func(t *testing.T) {
			key := mustKey(t, v.Secret)
			var got string
			switch v.Kind {
			case "UIDSignature":
				got = UIDSignature(key, v.Timestamp, v.UID)
				if !ValidateUIDSignature(key, v.UID, v.Timestamp, v.ExpectedSig, 0, now) {
					t.Error("ValidateUIDSignature rejects the vector")
				}
				if ValidateUIDSignature(key, v.UID+"x", v.Timestamp, v.ExpectedSig, 0, now) {
					t.Error("ValidateUIDSignature accepts another UID")
				}
			case "friendshipSignature":
				got = FriendshipSignature(key, v.Timestamp, v.FriendUID, v.UID)
			default:
				t.Fatalf("unknown kind %q", v.Kind)
			}
			if got != v.ExpectedSig {
				t.Errorf("signature = %s, want %s", got, v.ExpectedSig)
			}
		})
	}
}

func TestValidateUIDSignatureExpiry(t *testing.T) {
	key := mustKey(t, vectors.LabPartnerSecret)
	sig := UIDSignature(key, "1700000000", "u1")
	base := time.Unix(1700000000, 0)
	if !ValidateUIDSignature(key, "u1", "1700000000", sig, 180*time.Second, base.Add(179*time.Second)) {
		t.Error("rejected inside the window")
	}
	if ValidateUIDSignature(key, "u1", "1700000000", sig, 180*time.Second, base.Add(181*time.Second)) {
		t.Error("accepted after the window")
	}
	if ValidateUIDSignature(key, "u1", "1700000000", sig, 180*time.Second, base.Add(-181*time.Second)) {
		t.Error("accepted before the window")
	}
}

// requestTarget splits "POST <target> HTTP/1.1".
func requestTarget(t *testing.T, line string) string {
	f := strings.Fields(line)
	if len(f) != 3 {
		t.Fatalf("bad request line %q", line)
	}
	return f[1]
}

func TestCapturedWireRequests(t *testing.T) {
	for i, c := range loadVectors(t).CapturedWireRequests {
		var p Params
		if err := p.Decode(c.Body); err != nil {
			t.Errorf("#%d %s %s: decode: %v", i, c.SDK, c.AuthMode, err)
			continue
		}
		if c.AuthMode != "signature" {
			if c.AuthMode == "oauth_token" && !p.Has("oauth_token") || c.AuthMode == "secret" && !p.Has("secret") {
				t.Errorf("#%d %s %s: credential parameter missing", i, c.SDK, c.AuthMode)
			}
			continue
		}
		target := requestTarget(t, c.RequestLine)
		path := target
		if u, err := url.Parse(target); err == nil && u.IsAbs() {
			path = u.Path
		}
		cands := CandidateURLs(c.SchemeOnWire, c.HostHeader, path)
		if Verify(mustKey(t, c.SecretUsed), p.Get("sig"), "POST", cands, p.All()) < 0 {
			t.Errorf("#%d %s %s over %s: signature does not verify against %v", i, c.SDK, c.AuthMode, c.SchemeOnWire, cands)
		}
	}
}

// TestCaptures replays every signed request the real SDKs sent, with the clock set to
// the moment each was received, through the same steps the server takes: the timestamp
// (seconds, or milliseconds from the Node package) inside the window, then the
// signature against the candidate URLs.
func TestCaptures(t *testing.T) {
	caps, err := vectors.Captures("*-sdk.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	signed, ms, portHost := 0, 0, 0
	for _, c := range caps {
		var p Params
		if err := p.Decode(c.Query); err != nil {
			t.Fatalf("%s:%d query: %v", c.File, c.Line, err)
		}
		if err := p.Decode(c.Body); err != nil {
			t.Fatalf("%s:%d body: %v", c.File, c.Line, err)
		}
		if !p.Has("sig") {
			continue
		}
		signed++
		received, err := time.Parse(time.RFC3339Nano, c.ReceivedAt)
		if err != nil {
			t.Fatal(err)
		}
		ts, ok := ParseTimestamp(p.Get("timestamp"))
		if !ok {
			t.Errorf("%s:%d: bad timestamp %q", c.File, c.Line, p.Get("timestamp"))
			continue
		}
		if len(p.Get("timestamp")) > 11 {
			ms++
		}
		if d := received.Sub(ts); d < -120*time.Second || d > 120*time.Second {
			t.Errorf("%s:%d: timestamp %s is %v from the capture time", c.File, c.Line, p.Get("timestamp"), d)
		}
		secret := vectors.LabPartnerSecret
		if p.Has("userKey") {
			secret = vectors.LabUserSecret
		}
		host := c.Host()
		if strings.Contains(host, ":") {
			portHost++
		}
		cands := CandidateURLs(c.Listener, host, c.Path)
		if Verify(mustKey(t, secret), p.Get("sig"), c.Method, cands, p.All()) < 0 {
			t.Errorf("%s:%d: signature does not verify against %v", c.File, c.Line, cands)
		}
	}
	if signed != 11 || ms == 0 || portHost == 0 {
		t.Errorf("captures checked: %d signed, %d with ms timestamps, %d with a port in Host; expected all kinds", signed, ms, portHost)
	}
}

// TestJava403002Retry checks the capture of the Java SDK's retry after a 403002: every
// request is followed by a byte-identical copy (same timestamp, nonce and sig), which is
// why the server must check the timestamp before the nonce. The copies verify exactly
// when their originals do.
func TestJava403002Retry(t *testing.T) {
	caps, err := vectors.Captures("java-403002-retry.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	if len(caps) == 0 || len(caps)%2 != 0 {
		t.Fatalf("%d captures, want pairs", len(caps))
	}
	key := mustKey(t, vectors.LabPartnerSecret)
	expired := 0
	for i := 0; i < len(caps); i += 2 {
		a, b := caps[i], caps[i+1]
		if a.Body != b.Body || a.Target != b.Target {
			t.Errorf("line %d: the retry is not byte-identical", b.Line)
		}
		var p Params
		if err := p.Decode(a.Body); err != nil {
			t.Fatal(err)
		}
		if !p.Has("sig") {
			continue
		}
		received, _ := time.Parse(time.RFC3339Nano, a.ReceivedAt)
		ts, ok := ParseTimestamp(p.Get("timestamp"))
		if !ok {
			t.Fatalf("line %d: bad timestamp", a.Line)
		}
		if d := received.Sub(ts); d > 120*time.Second || d < -120*time.Second {
			expired++
		}
		cands := CandidateURLs(a.Listener, a.Host(), a.Path)
		if Verify(key, p.Get("sig"), a.Method, cands, p.All()) < 0 {
			t.Logf("line %d: signed with another secret (a 403003 case)", a.Line)
		}
	}
	if expired == 0 {
		t.Error("expected a pair whose timestamp is outside the window")
	}
}

func TestSharedErrorTableIsEmbedded(t *testing.T) {
	dir, err := vectors.SpecDir()
	if err != nil {
		t.Fatal(err)
	}
	shared, err := os.ReadFile(filepath.Join(dir, "error-codes.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	if string(shared) != codesTSV {
		t.Fatal("gigya/codes.tsv differs from ../shared/spec/error-codes.tsv: copy it again")
	}
	for code, want := range map[int]string{403003: "Invalid request signature", 403004: "Duplicate nonce", 400093: "Invalid ApiKey parameter", 403025: "Invalid token"} {
		if got := Message(code); got != want {
			t.Errorf("Message(%d) = %q, want %q", code, got, want)
		}
	}
	if StatusCode(0) != 200 || StatusCode(403048) != 403 || StatusCode(500028) != 500 {
		t.Error("status codes do not follow errorCode/1000")
	}
}

// TestStatusOfEveryCode: for every code of the table, statusCode is errorCode/1000
// (200 for success) and statusReason is the HTTP reason phrase of statusCode (SPEC 2),
// which httpStatusCodes=true also sends as the HTTP status line's.
func TestStatusOfEveryCode(t *testing.T) {
	for _, c := range Codes() {
		want := c.Code / 1000
		if c.Code == 0 {
			want = 200
		}
		if got := StatusCode(c.Code); got != want {
			t.Errorf("StatusCode(%d) = %d, want %d", c.Code, got, want)
		}
		if got := StatusReason(StatusCode(c.Code)); got != http.StatusText(want) {
			t.Errorf("statusReason of %d (statusCode %d) = %q, want %q", c.Code, want, got, http.StatusText(want))
		}
	}
}

func TestMACMatchesCryptoHMAC(t *testing.T) {
	v := verifiers.Get().(*verifier)
	for _, klen := range []int{16, 24, 64, 65, 200} {
		key := make([]byte, klen)
		for i := range key {
			key[i] = byte(i*7 + klen)
		}
		m := hmac.New(sha1.New, key)
		m.Write([]byte("head&"))
		m.Write([]byte("params"))
		want := m.Sum(nil)
		if got := v.mac(key, []byte("head&"), []byte("params")); !hmac.Equal(got, want) {
			t.Errorf("key length %d: mac differs from crypto/hmac", klen)
		}
	}
}

func TestDecodeSignatureVariants(t *testing.T) {
	raw := make([]byte, 20)
	for i := range raw {
		raw[i] = byte(0xfb + i) // produces '+' and '/' in base64
	}
	std := base64.StdEncoding.EncodeToString(raw)
	for _, s := range []string{
		std,
		base64.URLEncoding.EncodeToString(raw),
		base64.RawStdEncoding.EncodeToString(raw),
		base64.RawURLEncoding.EncodeToString(raw),
		strings.ReplaceAll(std, "+", " "),
	} {
		var got [20]byte
		if !DecodeSignature(s, &got) || string(got[:]) != string(raw) {
			t.Errorf("DecodeSignature(%q) failed", s)
		}
	}
	var got [20]byte
	for _, bad := range []string{"", "abc", std + "A", "!!!!!!!!!!!!!!!!!!!!!!!!!!!="} {
		if DecodeSignature(bad, &got) {
			t.Errorf("DecodeSignature(%q) accepted", bad)
		}
	}
}

// TestDecodeSignatureOneTextPerHMAC: of the texts that decode to an HMAC, those in
// the SDKs' alphabets and paddings (TestDecodeSignatureVariants), each HMAC has one
// per variant: a 28th character other than the padding '=', and set spare bits in the
// last digit (which holds 4 bits of the HMAC and 2 spare, zero as every encoder writes
// them), are refused. The 28th character was overwritten with '=' before decoding, so
// that a signature's text with any byte in its place verified, as did 4 last digits.
func TestDecodeSignatureOneTextPerHMAC(t *testing.T) {
	key := mustKey(t, vectors.LabPartnerSecret)
	params := []Param{{"UID", "u1"}, {"apiKey", "3_k"}, {"nonce", "n1"}, {"timestamp", "1700000000"}}
	const u = "http://socialize.us1.gigya.com/socialize.setUserInfo"
	sig := Sign(key, "POST", u, params)
	if Verify(key, sig, "POST", []string{u}, params) != 0 || Verify(key, sig[:27], "POST", []string{u}, params) != 0 {
		t.Fatalf("%s: the signature, padded or not, does not verify", sig)
	}
	const digits = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	last := strings.IndexByte(digits, sig[26])
	var forged []string
	for spare := 1; spare < 4; spare++ {
		d := string(digits[last|spare])
		forged = append(forged, sig[:26]+d+"=", sig[:26]+d)
	}
	for _, c := range []string{"A", "x", "0", "+", "-", " ", "%"} {
		forged = append(forged, sig[:27]+c)
	}
	for _, f := range forged {
		var got [sha1.Size]byte
		if DecodeSignature(f, &got) {
			t.Errorf("DecodeSignature(%q) accepted (the signature is %s)", f, sig)
		}
		if Verify(key, f, "POST", []string{u}, params) >= 0 {
			t.Errorf("Verify(%q) accepted (the signature is %s)", f, sig)
		}
	}
}

func TestCandidateURLs(t *testing.T) {
	tests := []struct {
		scheme, host string
		want         []string
	}{
		{"https", "socialize.localtest", []string{"https://socialize.localtest/p", "http://socialize.localtest/p"}},
		{"http", "Localhost:8080", []string{"http://localhost:8080/p", "http://localhost/p", "https://localhost:8080/p", "https://localhost/p"}},
		{"https", "h:443", []string{"https://h/p", "http://h:443/p", "http://h/p"}},
		{"http", "[::1]:8080", []string{"http://[::1]:8080/p", "http://[::1]/p", "https://[::1]:8080/p", "https://[::1]/p"}},
		{"http", "[::1]", []string{"http://[::1]/p", "https://[::1]/p"}},
	}
	for _, tt := range tests {
		got := CandidateURLs(tt.scheme, tt.host, "/p")
		if strings.Join(got, " ") != strings.Join(tt.want, " ") {
			t.Errorf("CandidateURLs(%s, %s) = %v, want %v", tt.scheme, tt.host, got, tt.want)
		}
	}
}

func TestParseTimestamp(t *testing.T) {
	tests := []struct {
		in   string
		want time.Time
		ok   bool
	}{
		{"1700000000", time.Unix(1700000000, 0), true},
		{"1700000000123", time.UnixMilli(1700000000123), true},
		{"99999999999", time.Unix(99999999999, 0), true},
		{"", time.Time{}, false},
		{"-5", time.Time{}, false},
		{"12a", time.Time{}, false},
		{"1.5", time.Time{}, false},
		{"99999999999999999999", time.Time{}, false},
		// Digits alone: strconv takes a sign.
		{"+1700000000", time.Time{}, false},
		{"-0", time.Time{}, false},
		{" 1700000000", time.Time{}, false},
		{"0001700000000", time.Unix(1700000000, 0), true},
	}
	for _, tt := range tests {
		got, ok := ParseTimestamp(tt.in)
		if ok != tt.ok || !got.Equal(tt.want) {
			t.Errorf("ParseTimestamp(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestParamStringSortsAndSkipsSig(t *testing.T) {
	got := ParamString([]Param{{"b", "x y"}, {"sig", "zzz"}, {"UID", "1"}, {"_x", ""}, {"a", "*~/"}})
	want := "UID=1&_x=&a=%2A~%2F&b=x%20y"
	if got != want {
		t.Errorf("ParamString = %q, want %q", got, want)
	}
}

func TestParamStringSkipsSigInAnyCase(t *testing.T) {
	got := ParamString([]Param{{"Sig", "zzz"}, {"UID", "1"}})
	if got != "UID=1" {
		t.Errorf("ParamString = %q, want UID=1", got)
	}
}

// TestBaseStringsCut: what a 403003 keeps to explain itself is the whole base string
// of a normal request, and for a huge one its first max bytes and a note, built
// without the whole (which is up to five times the request).
func TestBaseStringsCut(t *testing.T) {
	const u = "https://socialize.localtest/socialize.setUserInfo"
	whole := func(params []Param) string {
		return "POST&" + string(AppendEscape(nil, u)) + "&" + string(AppendEscape(nil, ParamString(params)))
	}
	small := []Param{{"UID", "u1"}, {"userInfo", `{"nickname":"!"}`}, {"sig", "x"}}
	if got := BaseStrings("POST", []string{u, u}, small, 8192); got[0] != whole(small) || got[1] != whole(small) {
		t.Errorf("BaseStrings = %q, want %q", got, whole(small))
	}
	huge := []Param{{"UID", "u1"}, {"userInfo", `{"nickname":"` + strings.Repeat("!", 1<<20) + `"}`}}
	for i := range 200 {
		huge = append(huge, Param{"p" + strconv.Itoa(i), strings.Repeat("?", 4096)})
	}
	const limit = 8192
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	got := BaseStrings("POST", []string{u, u, u, u}, huge, limit)
	runtime.ReadMemStats(&after)
	full := whole(huge)
	for _, g := range got {
		note := "... (cut at 8192 bytes)"
		if !strings.HasSuffix(g, note) || len(g) != limit+len(note) || g[:limit] != full[:limit] {
			t.Errorf("cut base string: %d bytes, ends %q", len(g), g[max(0, len(g)-40):])
		}
	}
	// The whole would be about 14 MiB a candidate; the cut one costs a few max.
	if n := after.TotalAlloc - before.TotalAlloc; n > 64*limit {
		t.Errorf("building the cut base strings allocated %d bytes", n)
	}
}

func BenchmarkVerify(b *testing.B) {
	key := mustKey(b, vectors.LabPartnerSecret)
	var p Params
	body := "UID=lab-uid-1&apiKey=3_LabApiKey_AbC-123&format=json&httpStatusCodes=false&nonce=1700000000123_42&sdk=java_3.2.4&timestamp=1700000000&userInfo=%7B%22firstName%22%3A%22David%22%2C%22gender%22%3A%22m%22%2C%22age%22%3A30%7D"
	if err := p.Decode(body); err != nil {
		b.Fatal(err)
	}
	cands := CandidateURLs("http", "localhost:8080", "/socialize.setUserInfo")
	p.Add("sig", Sign(key, "POST", cands[0], p.All()))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if Verify(key, p.Get("sig"), "POST", cands, p.All()) != 0 {
			b.Fatal("does not verify")
		}
	}
}

// BenchmarkVerifyPath is what the server does with a signed setUserInfo before the
// method runs: decode the body into fresh Params and verify the signature against the
// candidate URLs. Its allocations are the whole verify path's.
func BenchmarkVerifyPath(b *testing.B) {
	key := mustKey(b, vectors.LabPartnerSecret)
	var p Params
	if err := p.Decode(typicalSetUserInfo); err != nil {
		b.Fatal(err)
	}
	p.Set("sig", Sign(key, "POST", "http://localhost:8080/socialize.setUserInfo", p.All()))
	body := encodeForm(p.All())
	b.ReportAllocs()
	for b.Loop() {
		var p Params
		if err := p.Decode(body); err != nil {
			b.Fatal(err)
		}
		if VerifyRequest(key, p.Get("sig"), "POST", "http", "localhost:8080", "/socialize.setUserInfo", p.All()) != 0 {
			b.Fatal("does not verify")
		}
	}
}

func encodeForm(params []Param) string {
	var b []byte
	for i, p := range params {
		if i > 0 {
			b = append(b, '&')
		}
		b = append(b, p.Name...)
		b = append(b, '=')
		b = AppendEscape(b, p.Value)
	}
	return string(b)
}

// TestVerifyStreams: a signature over a parameter string longer than the verifier's
// piece (escaped five times over here) and keys of every length agree with the HMAC of
// the whole base string; a wrong one is checked against every candidate without
// holding the escaped string (five times the request).
func TestVerifyStreams(t *testing.T) {
	params := []Param{{"userInfo", strings.Repeat("<é>", 100_000)}, {"apiKey", "3_k"}, {"UID", "u1"}}
	u := "https://socialize.us1.gigya.com/socialize.setUserInfo"
	for _, key := range [][]byte{[]byte("sixteen byte key"), bytes.Repeat([]byte("k"), 64), bytes.Repeat([]byte("long key "), 20)} {
		m := hmac.New(sha1.New, key)
		m.Write([]byte(BaseString("POST", u, params)))
		sig := base64.StdEncoding.EncodeToString(m.Sum(nil))
		if Sign(key, "POST", u, params) != sig {
			t.Errorf("%d-byte key: Sign differs from the HMAC of the base string", len(key))
		}
		if i := Verify(key, sig, "POST", []string{"http://other/x", u}, params); i != 1 {
			t.Errorf("%d-byte key: Verify = %d, want 1", len(key), i)
		}
	}
	key := []byte("sixteen byte key")
	wrong := base64.StdEncoding.EncodeToString(make([]byte, 20))
	// Two collections empty the verifiers' pool (its victim cache too), so that no
	// buffer grown by the calls above is reused.
	runtime.GC()
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if VerifyRequest(key, wrong, "POST", "https", "socialize.us1.gigya.com", "/socialize.setUserInfo", params) != -1 {
		t.Fatal("a wrong signature verified")
	}
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 256<<10 {
		t.Errorf("checking a wrong signature of a %d-byte request allocated %d KiB", len(params[0].Value), grew>>10)
	}
}

// TestEscapedLen: EscapedLen is the length of the escaped parameter string a base
// string ends with, sig left out.
func TestEscapedLen(t *testing.T) {
	for _, params := range [][]Param{
		nil,
		{{Name: "UID", Value: "u1"}},
		{{Name: "sig", Value: "x"}, {Name: "UID", Value: "a b!é"}, {Name: "userInfo", Value: `{"nickname":"<&=>"}`}},
		{{Name: "n.a-me~", Value: ""}, {Name: "a", Value: "~._-"}},
	} {
		base := BaseString("POST", "http://h/m", params)
		want := len(base) - len(BaseString("POST", "http://h/m", nil))
		if got := EscapedLen(params); got != want {
			t.Errorf("EscapedLen(%v) = %d, want %d (%s)", params, got, want, base)
		}
	}
}

// TestVerifyRequestN: at most max candidates are tried, the most likely first; a
// signature for a later one is not found within a smaller max.
func TestVerifyRequestN(t *testing.T) {
	key := []byte("key")
	params := []Param{{Name: "UID", Value: "u1"}}
	urls := CandidateURLs("http", "h:8080", "/socialize.getUserInfo")
	if len(urls) != 4 {
		t.Fatalf("candidates %v", urls)
	}
	sig := Sign(key, "POST", urls[3], params)
	if i, next := VerifyRequestN(key, sig, "POST", "http", "h:8080", "/socialize.getUserInfo", params, 0, 4); i != 3 || next != 4 {
		t.Errorf("0 to 4: %d, next %d", i, next)
	}
	if i, next := VerifyRequestN(key, sig, "POST", "http", "h:8080", "/socialize.getUserInfo", params, 0, 2); i != -1 || next != 2 {
		t.Errorf("0 to 2: %d, next %d", i, next)
	}
	if i, next := VerifyRequestN(key, sig, "POST", "http", "h:8080", "/socialize.getUserInfo", params, 2, 9); i != 3 || next != 4 {
		t.Errorf("2 to 9: %d, next %d", i, next)
	}
	if i, next := VerifyRequestN(key, Sign(key, "POST", urls[0], params), "POST", "http", "h:8080", "/socialize.getUserInfo", params, 1, 4); i != -1 || next != 4 {
		t.Errorf("the first candidate's signature from 1: %d, next %d", i, next)
	}
	if i := VerifyRequest(key, sig, "POST", "http", "h:8080", "/socialize.getUserInfo", params); i != 3 {
		t.Errorf("VerifyRequest: %d", i)
	}
}

// TestOtherScheme: only a scheme that is neither http nor https (nor none: a path
// alone) is refused, named masked and clipped in the refusal.
func TestOtherScheme(t *testing.T) {
	for _, scheme := range []string{"", "http", "https"} {
		if refusal, other := OtherScheme(scheme); other || refusal != "" {
			t.Errorf("%q refused: %q", scheme, refusal)
		}
	}
	refusal, other := OtherScheme("ftp")
	if !other || !strings.Contains(refusal, `scheme "ftp" is not http or https`) {
		t.Errorf("ftp: %v %q", other, refusal)
	}
	refusal, other = OtherScheme(strings.Repeat("ab.", 10))
	if !other || !strings.Contains(refusal, `"`+strings.Repeat("ab.", 10)[:16]+`..."`) {
		t.Errorf("a long scheme: %v %q", other, refusal)
	}
	// A run that could be a secret is masked (MaskCredentials) before it is clipped.
	refusal, other = OtherScheme(strings.Repeat("x", 40))
	if !other || !strings.Contains(refusal, `"xxxx..."`) {
		t.Errorf("a scheme like a secret: %v %q", other, refusal)
	}
}
