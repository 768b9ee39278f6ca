package gigya

import (
	"crypto/hmac"
	"crypto/sha1"
	"io"
	"strings"
)

// Gigya's Swift (iOS) SDK escapes fewer bytes than the other SDKs when it builds a base
// string. It percent-encodes a byte of a value only when it is in a set of its own, or
// not ASCII, and escapes the parameter string the same way again. Its first versions'
// set was !*'();/:@&=+$,?%#[]{}" and the space; later ones add | ^ and \ (a public
// variable, GigyaDefinitions.charactersAllowedInSig, that an app may change). Every
// other ASCII byte stays as it is, where the other SDKs and Gigya escape it: < > ` and
// the control characters, and | ^ \ in the first versions. A request whose values hold
// one does not verify, at Gigya either: the SDK's issue tracker has such requests
// refused (SAP/gigya-swift-sdk issue 48, '<' and '>' in a profile update). Socius
// refuses them as well; these functions let it say why.

// swiftSets are the bytes each version of the Swift SDK escapes, besides non-ASCII.
var swiftSets = [...]string{
	"!*'();/:@&=+$,?%#[]{}\" ",
	"!*'|();/:@&=^+$,?%#\\[]{}\" ",
}

func swiftEscapes(set string, c byte) bool {
	return c >= 0x80 || strings.IndexByte(set, c) >= 0
}

// SwiftKept returns, in byte order and once each, the bytes of the parameters' values
// that the first versions of the Swift SDK leave unescaped and the other SDKs escape: a
// request holds one when the Swift SDK's base string differs from the others'.
func SwiftKept(params []Param) string {
	var seen [128]bool
	for _, p := range params {
		for i := 0; i < len(p.Value); i++ {
			if c := p.Value[i]; !unreserved(c) && !swiftEscapes(swiftSets[0], c) {
				seen[c] = true
			}
		}
	}
	var kept []byte
	for c, ok := range seen {
		if ok {
			kept = append(kept, byte(c))
		}
	}
	return string(kept)
}

// SwiftBaseString returns the base string of a request as version v of the Swift SDK
// (an index of swiftSets) builds it: it always signs a POST, and escapes the
// parameters (every one but sig, sorted by name) its way, twice.
func SwiftBaseString(v int, normalizedURL string, params []Param) string {
	var b strings.Builder
	writeSwiftBase(&b, v, normalizedURL, params)
	return b.String()
}

// writeSwiftBase writes the base string of SwiftBaseString to w through a small buffer,
// so that a signature can be checked without holding the whole string (up to three
// times the request).
func writeSwiftBase(w io.Writer, v int, normalizedURL string, params []Param) {
	const hexDigits = "0123456789ABCDEF"
	set := swiftSets[v]
	b := appendHead(make([]byte, 0, 1024), "POST", normalizedURL)
	flush := func() {
		if len(b) > 1000 {
			w.Write(b)
			b = b[:0]
		}
	}
	var buf [MaxParams]int
	for n, i := range sortedParams(params, buf[:0]) {
		if n > 0 {
			b = append(b, "%26"...)
		}
		name := params[i].Name
		for j := 0; j < len(name); j++ {
			if c := name[j]; swiftEscapes(set, c) {
				b = append(b, '%', hexDigits[c>>4], hexDigits[c&15])
			} else {
				b = append(b, c)
			}
			flush()
		}
		b = append(b, "%3D"...)
		v := params[i].Value
		for j := 0; j < len(v); j++ {
			if c := v[j]; swiftEscapes(set, c) {
				// Escaped once as %XX, then its '%' again.
				b = append(b, '%', '2', '5', hexDigits[c>>4], hexDigits[c&15])
			} else {
				b = append(b, c)
			}
			flush()
		}
	}
	w.Write(b)
}

// VerifySwift reports whether sig is a Swift SDK's signature of the request for one of
// urls, in any version of its escaping: what that SDK sent for a request that the
// standard base string refused. Each comparison is in constant time.
func VerifySwift(key []byte, sig string, urls []string, params []Param) bool {
	var want [sha1.Size]byte
	if !DecodeSignature(sig, &want) {
		return false
	}
	mac := hmac.New(sha1.New, key)
	for version := range swiftSets {
		for _, u := range urls {
			mac.Reset()
			writeSwiftBase(mac, version, u, params)
			if hmac.Equal(mac.Sum(nil), want[:]) {
				return true
			}
		}
	}
	return false
}
