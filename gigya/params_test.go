package gigya

import (
	"errors"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/socius/socius"
)

func TestDecode(t *testing.T) {
	var p Params
	if err := p.Decode("uid=a+b&userInfo=%7B%22x%22%3A1%7D&flag&empty=&t=%7E~"); err != nil {
		t.Fatal(err)
	}
	if got := p.Get("UID"); got != "a b" {
		t.Errorf("UID = %q (case-insensitive lookup, + is a space)", got)
	}
	if got := p.Get("userinfo"); got != `{"x":1}` {
		t.Errorf("userInfo = %q", got)
	}
	if v, ok := p.Lookup("flag"); !ok || v != "" {
		t.Errorf("flag = %q, %v; want present and empty", v, ok)
	}
	if got := p.Get("t"); got != "~~" {
		t.Errorf("t = %q", got)
	}
	if p.All()[0].Name != "uid" {
		t.Error("the name's spelling as sent must be kept for the signature")
	}
}

// TestMalformedNameMasksAnEncodedSecret: a base64 secret sent as a parameter name (a
// form of "$SECRET" alone) is quoted in errorDetails, and so in the call's log line,
// by its first four characters: its escaped "+" and "/" do not leave longer runs of
// it whole (before, this one was quoted as "mcx3KmZFvoNaUmIb%2BzE...%3D").
func TestMalformedNameMasksAnEncodedSecret(t *testing.T) {
	const secret = "mcx3KmZFvoNaUmIb+zE8kXz1PdD3YfWKcTxZKKHQ538="
	var p Params
	err := p.Decode("apiKey=3_x&" + url.QueryEscape(secret) + "=1")
	want := `Malformed parameter name: "mcx3...%3D"`
	if se := (*socius.Error)(nil); !errors.As(err, &se) || se.Code != socius.CodeInvalidRequest || se.Details != want {
		t.Errorf("got %v, want 400001 %q", err, want)
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		in   string
		code int
		want string
	}{
		{"UID=1&uid=2", socius.CodeInvalidValue, "Duplicate parameter: uid"},
		{"a=1&a=1", socius.CodeInvalidValue, "Duplicate parameter: a"},
		{"a=%zz", socius.CodeInvalidRequest, "Malformed percent-encoding in parameter: a"},
		{"a=%4", socius.CodeInvalidRequest, "Malformed percent-encoding"},
		{"%zz=1", socius.CodeInvalidRequest, "Malformed parameter name"},
		{"=1", socius.CodeInvalidRequest, "Malformed parameter name"},
		{"a%00b=1", socius.CodeInvalidRequest, "Malformed parameter name"},
		{"a%3D1%26b=2", socius.CodeInvalidRequest, "Malformed parameter name"},
		{"a%3D1=2", socius.CodeInvalidRequest, "Malformed parameter name"},
		{"a%26b=2", socius.CodeInvalidRequest, "Malformed parameter name"},
		{"a=%ff%fe", socius.CodeInvalidValue, "a is not valid UTF-8"},
		{"a=x%00y", socius.CodeInvalidValue, "a contains a NUL character"},
		{strings.Repeat("n", 129) + "=1", socius.CodeInvalidRequest, "Malformed parameter name"},
	}
	for _, tt := range tests {
		var p Params
		err := p.Decode(tt.in)
		if socius.ErrorCode(err) != tt.code || err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Decode(%.40q) = %v; want code %d with %q", tt.in, err, tt.code, tt.want)
		}
	}
	var many strings.Builder
	for i := 0; i <= MaxParams; i++ {
		many.WriteString("p" + strings.Repeat("x", i%5) + string(rune('a'+i%26)) + itoa(i) + "=1&")
	}
	var p Params
	err := p.Decode(many.String())
	// As every other 400006: "Invalid parameter value:", then the parameter (the first
	// one past the limit).
	want := "Invalid parameter value: too many parameters: at most 256 are allowed, and pxw256 is parameter 257"
	if se := (*socius.Error)(nil); !errors.As(err, &se) || se.Code != socius.CodeInvalidValue || se.Details != want {
		t.Errorf("too many parameters: %v, want 400006 %q", err, want)
	}
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b []byte
	for ; i > 0; i /= 10 {
		b = append([]byte{byte('0' + i%10)}, b...)
	}
	return string(b)
}

func TestParseBool(t *testing.T) {
	for in, want := range map[string]bool{"true": true, "True": true, "TRUE": true, "1": true, "false": false, "False": false, "0": false, "": false} {
		got, ok := ParseBool(in)
		if !ok || got != want {
			t.Errorf("ParseBool(%q) = %v, %v", in, got, ok)
		}
	}
	for _, in := range []string{"yes", "2", "tru", " true"} {
		if _, ok := ParseBool(in); ok {
			t.Errorf("ParseBool(%q) accepted", in)
		}
	}
	var p Params
	p.Add("httpStatusCodes", "maybe")
	if _, err := p.Bool("httpstatuscodes", false); socius.ErrorCode(err) != socius.CodeInvalidValue {
		t.Errorf("Bool of a bad value: %v", err)
	}
	if v, err := p.Bool("absent", true); err != nil || !v {
		t.Errorf("Bool default: %v, %v", v, err)
	}
}

func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		"UID=lab-uid-1&apiKey=3_LabApiKey_AbC-123&format=json&userInfo=%7B%22firstName%22%3A%22David%22%7D",
		"a=1&A=2", "a=%zz", "=&&&=", "a+b=c+d", "x=%F0%9F%8E%89", "a=%00",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var p Params
		err := p.Decode(s)
		if err != nil {
			if code := socius.ErrorCode(err); code != socius.CodeInvalidRequest && code != socius.CodeInvalidValue {
				t.Fatalf("unexpected code %d", code)
			}
			return
		}
		for _, q := range p.All() {
			if q.Name == "" || strings.IndexByte(q.Value, 0) >= 0 {
				t.Fatalf("bad param %q", q)
			}
			if v, ok := p.Lookup(strings.ToUpper(q.Name)); !ok || v != q.Value {
				t.Fatalf("lookup of %q failed", q.Name)
			}
		}
		// What decodes encodes as a form body (as the client sends one) that decodes
		// back to the same parameters, in the same order and spelling.
		var again Params
		if err := again.Decode(EncodeForm(p.All())); err != nil || !slices.Equal(again.All(), p.All()) {
			t.Fatalf("%q encodes as %q, which decodes as %q, %v", p.All(), EncodeForm(p.All()), again.All(), err)
		}
		// What decodes must sign and verify without trouble.
		key := []byte("0123456789abcdef")
		sig := Sign(key, "POST", "http://h/p", p.All())
		if Verify(key, sig, "POST", []string{"http://h/p"}, p.All()) != 0 {
			t.Fatal("own signature does not verify")
		}
	})
}

func FuzzVerify(f *testing.F) {
	f.Add("UID=u&apiKey=k&nonce=1&timestamp=1", "On6Zf0Ref7hBarhdK1xjORyPcik=", "socialize.localtest:8080", "/socialize.setUserInfo")
	f.Add("a=b", "-_-_-_-_-_-_-_-_-_-_-_-_-_-", "", "")
	f.Fuzz(func(t *testing.T, body, sig, host, path string) {
		var p Params
		if p.Decode(body) != nil {
			return
		}
		key := []byte("secret-secret-16")
		cands := CandidateURLs("http", host, path)
		i := Verify(key, sig, "POST", cands, p.All())
		if i >= len(cands) {
			t.Fatalf("index %d out of range", i)
		}
		if j := VerifyRequest(key, sig, "POST", "http", host, path, p.All()); j != i {
			t.Fatalf("VerifyRequest = %d, Verify = %d", j, i)
		}
		// A signature made for any candidate verifies, at that candidate's index
		// (or an earlier one with the same base string).
		for k, u := range cands {
			good := Sign(key, "POST", u, p.All())
			if j := VerifyRequest(key, good, "POST", "http", host, path, p.All()); j < 0 || j > k {
				t.Fatalf("signature for %s: VerifyRequest = %d, want <= %d", u, j, k)
			}
		}
	})
}

// typicalSetUserInfo is the body of a signed setUserInfo as the Java SDK sends it.
const typicalSetUserInfo = "UID=lab-uid-1&apiKey=3_LabApiKey_AbC-123&format=json&httpStatusCodes=false&nonce=1700000000123_42&sdk=java_3.2.4&timestamp=1700000000&userInfo=%7B%22firstName%22%3A%22David%22%2C%22gender%22%3A%22m%22%2C%22age%22%3A30%7D&sig=On6Zf0Ref7hBarhdK1xjORyPcik%3D"

// BenchmarkDecode decodes the parameters of a typical signed setUserInfo body into a
// reused Params, as the server does for every call.
func BenchmarkDecode(b *testing.B) {
	var p Params
	b.ReportAllocs()
	for b.Loop() {
		p.Reset()
		if err := p.Decode(typicalSetUserInfo); err != nil {
			b.Fatal(err)
		}
	}
}

func TestIsCredential(t *testing.T) {
	for name, want := range map[string]bool{"secret": true, "SIG": true, "sessionsecret": true, "Password": true,
		"newPassword": true, "passwordResetToken": true, "secretAnswer": true, "idToken": true, "vToken": true,
		"UIDSig": true, "x_client_secret": true, "regToken": true,
		"UID": false, "userInfo": false, "ſig": false, "": false, "signIDs": false, "sessionExpiration": false,
		"UIDTimestamp": false, "siteUID": false} {
		if got := IsCredential(name); got != want {
			t.Errorf("IsCredential(%q) = %v", name, got)
		}
	}
}

// IsCredential runs for every parameter of every call: it must not allocate.
func TestIsCredentialAllocates(t *testing.T) {
	names := []string{"apiKey", "UID", "userInfo", "oauth_token", "sessionExpiration", "newPassword"}
	if n := testing.AllocsPerRun(100, func() {
		for _, name := range names {
			IsCredential(name)
		}
	}); n != 0 {
		t.Errorf("IsCredential allocates %v times for %d names", n, len(names))
	}
}

// TestMaskCredentials: a run that could be a token or a secret is cut to four
// characters; the names of methods and parameters are left whole.
func TestMaskCredentials(t *testing.T) {
	const token = "st2.at.BnV3tcKw0E6LLrP-XXgyW0ETFP7H0tFIXtty2YvbGb0"
	for in, want := range map[string]string{
		"socialize.getUserInfo":                    "socialize.getUserInfo",
		"x_siteUID":                                "x_siteUID",
		"socialize.setUserInfo/../x":               "socialize.setUserInfo/../x",
		"userInfo.aVeryLongFieldNameWithoutDigits": "userInfo.aVeryLongFieldNameWithoutDigits",
		token:                            "st2.at.BnV3...",
		"socialize.getUserInfo/" + token: "socialize.getUserInfo/st2.at.BnV3...",
		"c2VjcmV0LWZvci10aGUtZ2lneWEtbGFiLTEyMzQ1Ng==": "c2Vj...==",
		"a" + token + "%3D":                            "ast2.at.BnV3...%3D",
		// Percent-escaped, as a malformed name is quoted: "%2B" and "%2F" (a secret's
		// "+" and "/") do not end the run, "%3D" ("=") does.
		"mcx3KmZFvoNaUmIb%2BzE8kXz1PdD3YfWKcTxZKKHQ538%3D": "mcx3...%3D",
		"gAYYQqyVgLFqUbx%2fjKXHA":                          "gAYY...",
		"abcdefghij%2F123456789":                           "abcd...",                // 20 characters, 22 bytes
		"abcdefghij%2F12345678":                            "abcdefghij%2F12345678",  // 19 characters
		"abcdefghij%3D123456789":                           "abcdefghij%3D123456789", // "=" ends a run
		"abcdefghij%zz123456789":                           "abcdefghij%zz123456789",
		"abcdefghij0123456789":                             "abcd...",             // 20 with a digit
		"abcdefghij012345678":                              "abcdefghij012345678", // 19
		strings.Repeat("m", 40):                            "mmmm...",             // 40 without one
		strings.Repeat("m", 39):                            strings.Repeat("m", 39),
		// Secrets without a digit (one in 230 of Socius's own): a "+", a "/" or two
		// upper-case letters in a row mark them; the "+" a form decodes to a space
		// keeps the run whole.
		"gAYYQqyVgLFqUbxjKXHA+kwGFHnLmF/U": "gAYY...",
		"gAYYQqyVgLFqUbxjKXHA kwGFHnLmF/U": "gAYY...",
		"hpSOhZlEFtjSPYY/tdyYoYywSscanMA/": "hpSO...",
		"hpSOhZlEFtjSPYYxtdyYoYywSscanMAx": "hpSO...",
		"aVeryLongFieldNameWithoutDigitsX": "aVeryLongFieldNameWithoutDigitsX", // camel case
		"a very long name of a parameter":  "a very long name of a parameter",
		"":                                 "",
	} {
		if got := MaskCredentials(in); got != want {
			t.Errorf("MaskCredentials(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestDecodeAnswerParams: after a refused form, format, callback, httpStatusCodes and
// context are taken from the rest of it, in any letter case, never over one already
// read, and never from a pair Decode would refuse.
func TestDecodeAnswerParams(t *testing.T) {
	var p Params
	if err := p.Decode("UID=a&uid=b&format=xml&context=c&HTTPSTATUSCODES=true"); err == nil {
		t.Fatal("a duplicate decoded")
	}
	p.DecodeAnswerParams("UID=a&uid=b&format=json&Callback=cb&context=%zz&context=c2&HTTPSTATUSCODES=true&context=c3&secret=s&%ff=1&callback=x%00")
	want := []Param{{"UID", "a"}, {"format", "json"}, {"Callback", "cb"}, {"context", "c2"}, {"HTTPSTATUSCODES", "true"}}
	if !slices.Equal(p.All(), want) {
		t.Errorf("got %v, want %v", p.All(), want)
	}
	p.Reset()
	p.DecodeAnswerParams("format=%C3%28&%66%6F%72%6D%61%74=xml")
	if p.Len() != 1 || p.Get("format") != "xml" {
		t.Errorf("invalid UTF-8 taken, or an escaped name not: %v", p.All())
	}
}

// TestParseInteger: the one rule of integer parameters. strconv alone takes "+60" and
// "-0", which no SDK sends.
func TestParseInteger(t *testing.T) {
	tests := []struct {
		in       string
		negative bool
		want     int64
		ok       bool
	}{
		{"60", false, 60, true},
		{"060", false, 60, true},
		{"0", false, 0, true},
		{"000", false, 0, true},
		{"9223372036854775807", false, 1<<63 - 1, true},
		{"-1", true, -1, true},
		{"-2", true, -2, true},
		{"-02", true, -2, true},
		{"-9223372036854775808", true, -1 << 63, true},
		// Refused.
		{"", false, 0, false},
		{"", true, 0, false},
		{"-", true, 0, false},
		{"-1", false, 0, false},
		{"-0", true, 0, false},
		{"-00", true, 0, false},
		{"-0", false, 0, false},
		{"+60", false, 0, false},
		{"+60", true, 0, false},
		{"+0", true, 0, false},
		{"--1", true, 0, false},
		{" 60", true, 0, false},
		{"60 ", true, 0, false},
		{"6 0", true, 0, false},
		{"1.5", true, 0, false},
		{"1e3", true, 0, false},
		{"0x10", true, 0, false},
		{"٦٠", true, 0, false}, // Arabic-Indic digits
		{"9223372036854775808", false, 0, false},
		{"00000000000000000001", false, 0, false}, // 20 digits
	}
	for _, tt := range tests {
		got, ok := ParseInteger(tt.in, tt.negative)
		if got != tt.want || ok != tt.ok {
			t.Errorf("ParseInteger(%q, %v) = %d, %v; want %d, %v", tt.in, tt.negative, got, ok, tt.want, tt.ok)
		}
	}
}
