package gigya

import (
	"encoding/base64"
	"strings"
	"testing"
)

const swiftURL = "https://socialize.us1.gigya.com/socialize.setUserInfo"

// The Swift SDK's base strings, written out by hand from its escaping rules: a value's
// byte that it escapes becomes %25XX, one that it keeps stays as it is.
func TestSwiftBaseString(t *testing.T) {
	params := []Param{
		{"oauth_token", "st2.x"},
		{"nickname", "a<b|c d/é^`"},
		{"sig", "ignored"},
		{"apikey", "3_k"},
	}
	head := "POST&https%3A%2F%2Fsocialize.us1.gigya.com%2Fsocialize.setUserInfo&"
	for v, want := range []string{
		head + "apikey%3D3_k%26nickname%3Da<b|c%2520d%252F%25C3%25A9^`%26oauth_token%3Dst2.x",
		head + "apikey%3D3_k%26nickname%3Da<b%257Cc%2520d%252F%25C3%25A9%255E`%26oauth_token%3Dst2.x",
	} {
		if got := SwiftBaseString(v, swiftURL, params); got != want {
			t.Errorf("version %d:\n got %s\nwant %s", v, got, want)
		}
	}
	if got, want := SwiftKept(params), "<^`|"; got != want {
		t.Errorf("SwiftKept = %q, want %q", got, want)
	}
}

// Without a byte that only the other SDKs escape, the Swift SDK signs what they sign.
func TestSwiftBaseStringStandard(t *testing.T) {
	params := []Param{
		{"UID", "user 1"},
		{"userInfo", `{"firstName":"Zoë","photoURL":"https://x.example/a?b=c&d=[1]"}`},
		{"apiKey", "3_k"},
		{"nonce", "1700000000_-12"},
		{"timestamp", "1700000000"},
	}
	if kept := SwiftKept(params); kept != "" {
		t.Fatalf("SwiftKept = %q, want none", kept)
	}
	want := BaseString("POST", swiftURL, params)
	for v := range swiftSets {
		if got := SwiftBaseString(v, swiftURL, params); got != want {
			t.Errorf("version %d:\n got %s\nwant %s", v, got, want)
		}
	}
}

func TestVerifySwift(t *testing.T) {
	key := []byte("0123456789abcdef")
	params := []Param{{"nickname", "<b>"}, {"oauth_token", "st2.x"}}
	urls := []string{"https://socius.test/socialize.setUserInfo", swiftURL}
	for v := range swiftSets {
		sig := SignBase(key, SwiftBaseString(v, swiftURL, params))
		if !VerifySwift(key, sig, urls, params) {
			t.Errorf("version %d: its own signature does not verify", v)
		}
		if Verify(key, sig, "POST", urls, params) >= 0 {
			t.Errorf("version %d: the Swift signature verifies as a standard one", v)
		}
	}
	for _, sig := range []string{
		Sign(key, "POST", swiftURL, params), // the standard signature
		SignBase([]byte("another key, 16"), SwiftBaseString(0, swiftURL, params)),
		SignBase(key, SwiftBaseString(0, "https://elsewhere.test/socialize.setUserInfo", params)),
		base64.StdEncoding.EncodeToString([]byte("not twenty bytes")),
	} {
		if VerifySwift(key, sig, urls, params) {
			t.Errorf("VerifySwift(%q) = true, want false", sig)
		}
	}
}

// A base string longer than writeSwiftBase's buffer is written whole, in order, and
// verifies.
func TestSwiftBaseStringLong(t *testing.T) {
	value := strings.Repeat("a<é", 2000)
	params := []Param{{"v", value}}
	want := "POST&https%3A%2F%2Fsocialize.us1.gigya.com%2Fsocialize.setUserInfo&v%3D" + strings.Repeat("a<%25C3%25A9", 2000)
	if got := SwiftBaseString(0, swiftURL, params); got != want {
		t.Errorf("long base string differs: got %d bytes, want %d", len(got), len(want))
	}
	key := []byte("0123456789abcdef")
	if !VerifySwift(key, SignBase(key, want), []string{swiftURL}, params) {
		t.Errorf("the signature of the long base string does not verify")
	}
}
