package gigya

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"sort"
	"strings"
	"testing"
)

// FuzzBaseString checks the base string, the signature and its verification against a
// model written from the protocol notes (section 3.2) as plainly as it reads, the HMAC
// by crypto/hmac: every parameter but sig sorted by name, name=enc(value) joined by
// '&', METHOD&enc(URL)&enc(that). The code builds it in one escaping pass, hashes it in
// pieces with an HMAC of its own and tries the candidate URLs from one buffer; the
// model does none of that. Keys of any length (over 64 bytes an HMAC key is hashed
// first); long, a length to which one value is filled, reaches the pieces of 4 KiB.
func FuzzBaseString(f *testing.F) {
	f.Add("POST", "socialize.us1.gigya.com", "/socialize.setUserInfo", "UID=u1&apiKey=3_k&userInfo=%7B%22a%22%3A1%7D&sig=x", []byte("sixteen byte key"), uint16(0))
	f.Add("post", "Socialize.Localtest:8080", "/a%20b/~c", "b=2&a=1&A=0&Sig=s&a.b=%F0%9F%8E%89+%2B", []byte{}, uint16(0))
	f.Add("GET", "[::1]:443", "/x", "z=%3C%26%3D%3E", []byte(strings.Repeat("k", 65)), uint16(5000))
	f.Add("POST", "h:80", "", "", []byte(strings.Repeat("long key ", 20)), uint16(4097))
	f.Fuzz(func(t *testing.T, method, host, path, body string, key []byte, long uint16) {
		var p Params
		if p.Decode(body) != nil {
			return
		}
		params := p.All()
		if long > 0 {
			fill := strings.Repeat("<é~ ", int(long)/5+1)[:long]
			params = append(params[:len(params):len(params)], Param{"zzLong", fill})
		}
		if got, want := EscapedLen(params), len(modelEscape(modelParamString(params))); got != want {
			t.Fatalf("EscapedLen = %d, model %d", got, want)
		}
		if got, want := ParamString(params), modelParamString(params); got != want {
			t.Fatalf("ParamString:\n%q\nmodel\n%q", got, want)
		}
		urls := CandidateURLs("http", host, path)
		bases := make([]string, len(urls))
		for i, u := range urls {
			bases[i] = modelBaseString(method, u, params)
			if got := BaseString(method, u, params); got != bases[i] {
				t.Fatalf("BaseString for %s:\n%q\nmodel\n%q", u, got, bases[i])
			}
		}
		for k, u := range urls {
			sig := modelSign(key, bases[k])
			if got := Sign(key, method, u, params); got != sig {
				t.Fatalf("Sign for %s with a %d-byte key: %s, model %s", u, len(key), got, sig)
			}
			// The first candidate with the same base string verifies it.
			want := k
			for j := range k {
				if bases[j] == bases[k] {
					want = j
					break
				}
			}
			if got := VerifyRequest(key, sig, method, "http", host, path, params); got != want {
				t.Fatalf("VerifyRequest of the signature for %s (%d of %q): %d", u, k, urls, got)
			}
			if got := Verify(key, sig, method, urls, params); got != want {
				t.Fatalf("Verify of the signature for %s (%d of %q): %d", u, k, urls, got)
			}
		}
	})
}

// modelParamString is the parameter string of the protocol notes. (The names are
// ASCII, as Decode takes them: strings.EqualFold folds no other letter into "sig".)
func modelParamString(params []Param) string { return modelParamStringBy(params, modelEscape) }

// modelParamStringBy is a parameter string whose values escape escapes: every
// parameter but sig, sorted by name, name=value joined by "&".
func modelParamStringBy(params []Param, escape func(string) string) string {
	var kept []Param
	for _, p := range params {
		if !strings.EqualFold(p.Name, "sig") {
			kept = append(kept, p)
		}
	}
	sort.SliceStable(kept, func(i, j int) bool { return kept[i].Name < kept[j].Name })
	pairs := make([]string, len(kept))
	for i, p := range kept {
		pairs[i] = p.Name + "=" + escape(p.Value)
	}
	return strings.Join(pairs, "&")
}

// modelEscape percent-encodes every byte but A-Z a-z 0-9 - . _ ~, in upper-case hex.
func modelEscape(s string) string {
	const keep = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(keep, s[i]) >= 0 {
			b.WriteByte(s[i])
		} else {
			fmt.Fprintf(&b, "%%%02X", s[i])
		}
	}
	return b.String()
}

// modelBaseString is the base string of the protocol notes, the method in upper case
// (ASCII only: a method is an HTTP token).
func modelBaseString(method, normalizedURL string, params []Param) string {
	upper := []byte(method)
	for i, c := range upper {
		if 'a' <= c && c <= 'z' {
			upper[i] = c - 'a' + 'A'
		}
	}
	return string(upper) + "&" + modelEscape(normalizedURL) + "&" + modelEscape(modelParamString(params))
}

// modelSign is the signature of a base string, by crypto/hmac.
func modelSign(key []byte, base string) string {
	m := hmac.New(sha1.New, key)
	m.Write([]byte(base))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}
