package gigya

import (
	"fmt"
	"sort"
	"strings"
	"testing"
)

// FuzzSwiftBaseString checks the Swift SDK's base string, SwiftKept and VerifySwift
// against a model of what that SDK does (its SignatureUtils.oauth1SignatureBaseString,
// as the API notes describe it: "a non-RFC3986 character set for values"): the
// parameters but sig sorted by name, name=value with each value percent-encoded by its
// own set, joined by '&', and that whole string percent-encoded by the same set again,
// after POST & the escaped URL. Each step is written out as plainly as it reads, apart
// from the code's one pass through a small buffer.
func FuzzSwiftBaseString(f *testing.F) {
	f.Add("UID=u1&apiKey=3_k&userInfo=%7B%22a%22%3A%22%3Cb%3E%22%7D&sig=x", "socialize.setUserInfo", []byte("sixteen byte key"), uint16(0))
	f.Add("b=%7C%5E%5C%60&a=%C3%A9+%2B&Sig=s&c=", "x.y", []byte{}, uint16(0))
	f.Add("z=%00%1F%7F&%3C=%3E", "", []byte(strings.Repeat("k", 65)), uint16(3000))
	f.Fuzz(func(t *testing.T, body, method string, key []byte, long uint16) {
		var p Params
		if p.Decode(body) != nil {
			return
		}
		params := p.All()
		if long > 0 {
			// Past the code's buffer of about 1,000 bytes.
			fill := strings.Repeat("<é|~ ", int(long)/6+1)[:long]
			params = append(params[:len(params):len(params)], Param{"zzLong", fill})
		}
		url := "https://socialize.us1.gigya.com/" + method
		bases := make([]string, len(modelSwiftSets))
		for v, set := range modelSwiftSets {
			bases[v] = modelSwiftBase(set, url, params)
			if got := SwiftBaseString(v, url, params); got != bases[v] {
				t.Fatalf("SwiftBaseString version %d:\n%q\nmodel\n%q", v, got, bases[v])
			}
			// The Swift SDK's signature verifies, for either of the candidate URLs.
			sig := modelSign(key, bases[v])
			if !VerifySwift(key, sig, []string{"http://other.example/x", url}, params) {
				t.Fatalf("VerifySwift refused the signature of version %d of\n%q", v, bases[v])
			}
		}
		kept := modelSwiftKept(params)
		if got := SwiftKept(params); got != kept {
			t.Fatalf("SwiftKept = %q, model %q", got, kept)
		}
		// Without a byte that only the other SDKs escape (in a value, or in a name, which
		// no SDK escapes but once), the Swift SDK signs what they sign.
		standard := modelBaseString("POST", url, params)
		names := true
		for _, p := range params {
			names = names && modelEscape(p.Name) == modelSwiftEscape(modelSwiftSets[0], p.Name)
		}
		if kept == "" && names {
			for v := range bases {
				if bases[v] != standard {
					t.Fatalf("nothing kept, but version %d differs from the standard base string:\n%q\n%q", v, bases[v], standard)
				}
			}
		}
		// And a signature of the standard base string is no Swift signature when that
		// differs from both of the Swift SDK's.
		if standard != bases[0] && standard != bases[1] && VerifySwift(key, modelSign(key, standard), []string{url}, params) {
			t.Fatalf("VerifySwift took the standard signature of\n%q", standard)
		}
	})
}

// modelSwiftSets are the bytes that the Swift SDK percent-encodes besides non-ASCII: its
// first versions' set, and the later one with | ^ and \ added.
var modelSwiftSets = []string{
	`!*'();/:@&=+$,?%#[]{}" `,
	`!*'();/:@&=+$,?%#[]{}" |^\`,
}

// modelSwiftEscape percent-encodes the bytes of s in set and those not ASCII, in
// upper-case hex.
func modelSwiftEscape(set, s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 || strings.IndexByte(set, s[i]) >= 0 {
			fmt.Fprintf(&b, "%%%02X", s[i])
		} else {
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

// modelSwiftBase is the Swift SDK's base string: always POST; the parameter string
// (names as they are, values escaped) escaped as a whole a second time.
func modelSwiftBase(set, url string, params []Param) string {
	escape := func(v string) string { return modelSwiftEscape(set, v) }
	return "POST&" + modelEscape(url) + "&" + escape(modelParamStringBy(params, escape))
}

// modelSwiftKept is what the first versions leave of the values that the others
// escape: the ASCII bytes outside both A-Z a-z 0-9 - . _ ~ and the Swift set, sorted,
// once each.
func modelSwiftKept(params []Param) string {
	seen := map[byte]bool{}
	for _, p := range params {
		for i := 0; i < len(p.Value); i++ {
			c := p.Value[i]
			if c < 0x80 && modelEscape(string(c)) != string(c) && strings.IndexByte(modelSwiftSets[0], c) < 0 {
				seen[c] = true
			}
		}
	}
	var kept []byte
	for c := range seen {
		kept = append(kept, c)
	}
	sort.Slice(kept, func(i, j int) bool { return kept[i] < kept[j] })
	return string(kept)
}
