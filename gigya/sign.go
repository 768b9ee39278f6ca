package gigya

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// AppendEscape appends s percent-encoded as the signature requires: UTF-8 bytes, every
// byte outside A-Z a-z 0-9 - . _ ~ as %XX with upper-case hex.
func AppendEscape(dst []byte, s string) []byte { return appendEscape(dst, s) }

func appendEscape[T string | []byte](dst []byte, s T) []byte {
	const hexDigits = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		c := s[i]
		if unreserved(c) {
			dst = append(dst, c)
		} else {
			dst = append(dst, '%', hexDigits[c>>4], hexDigits[c&15])
		}
	}
	return dst
}

// Escape returns s percent-encoded (see AppendEscape).
func Escape(s string) string { return string(AppendEscape(nil, s)) }

func unreserved(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

// NormalizeURL returns the URL as it enters the base string: scheme and host in lower
// case, the port only when it is not the scheme's default, the path as given, no query.
// Its errors show no query, fragment or password of rawURL, which can hold a secret
// (the REST documentation's URLs carry secret=...).
func NormalizeURL(rawURL string) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		// Not url.Error's text, which quotes rawURL whole.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return "", fmt.Errorf("gigya: not a URL: %v", err)
	}
	if u.Scheme == "" || u.Host == "" {
		shown := *u
		shown.RawQuery, shown.ForceQuery, shown.Fragment, shown.RawFragment = "", false, "", ""
		return "", errors.New("gigya: URL needs a scheme and a host: " + shown.Redacted())
	}
	return NormalizedURL(u.Scheme, u.Host, u.EscapedPath()), nil
}

// OtherScheme reports whether an absolute-form request target (what a client sends its
// proxy) names a scheme other than http or https, and if so says so for an answer: an
// ftp: URL is for an FTP proxy, and no page of Socius has it. net/http passes any
// scheme on, lower-cased. The scheme is clipped, and masked if it looks like a
// credential.
func OtherScheme(scheme string) (refusal string, other bool) {
	if scheme == "" || scheme == "http" || scheme == "https" {
		return "", false
	}
	shown := MaskCredentials(scheme)
	if len(shown) > 16 {
		shown = shown[:16] + "..."
	}
	return fmt.Sprintf("the request target's scheme %q is not http or https: send the path alone, or an http:// or https:// URL", shown), true
}

// NormalizedURL assembles a normalized URL from its parts; host may carry a port.
func NormalizedURL(scheme, host, path string) string {
	return string(appendNormalizedURL(nil, scheme, host, path))
}

// appendNormalizedURL appends the normalized URL: scheme and host in lower case, the
// port only when it is not the scheme's default, the path as given.
func appendNormalizedURL(dst []byte, scheme, host, path string) []byte {
	start := len(dst)
	dst = appendLower(dst, scheme)
	lowScheme := dst[start:]
	dst = append(dst, "://"...)
	if h, port, ok := splitPort(host); ok && isDefaultPort(lowScheme, port) {
		host = h
	}
	dst = appendLower(dst, host)
	return append(dst, path...)
}

func appendLower(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst
}

// isDefaultPort reports whether port is the default port of the lower-case scheme.
func isDefaultPort(scheme []byte, port string) bool {
	switch string(scheme) {
	case "http":
		return port == "80"
	case "https":
		return port == "443"
	}
	return false
}

// splitPort splits "host:port" (and "[v6]:port"); ok is false when there is no port.
func splitPort(hostport string) (host, port string, ok bool) {
	i := strings.LastIndexByte(hostport, ':')
	if i < 0 || strings.IndexByte(hostport[i:], ']') >= 0 {
		return hostport, "", false
	}
	return hostport[:i], hostport[i+1:], true
}

// CandidateURLs lists the normalized URLs a client may have signed for a request that
// reached the server with this scheme, Host and path: the scheme as received and the
// other one (TLS terminators), the host with its non-default port and without it (.NET
// never signs the port). The most likely comes first, then the scheme received without
// the port.
func CandidateURLs(scheme, host, path string) []string {
	var c candidates
	c.init(scheme, host, path)
	out := make([]string, 0, c.n)
	for u := range c.each {
		out = append(out, string(u))
	}
	return out
}

// candidates builds the candidate URLs of CandidateURLs into one buffer, so that
// VerifyRequest can try them without allocating.
type candidates struct {
	buf  []byte
	ends [4]int // each URL is buf[ends[i-1]:ends[i]]
	n    int
}

func (c *candidates) init(scheme, host, path string) {
	other := "http"
	if scheme == "http" {
		other = "https"
	}
	c.buf, c.n = c.buf[:0], 0
	// The scheme received first, with the port and then without it (the .NET SDK on a
	// non-default port), then the other scheme: a large request tries only the first
	// ones (a server's hashing budget), and a TLS terminator keeps a default port.
	h, _, hasPort := splitPort(host)
	c.add(scheme, host, path)
	if hasPort {
		c.add(scheme, h, path)
	}
	c.add(other, host, path)
	if hasPort {
		c.add(other, h, path)
	}
}

// add appends a candidate unless it equals an earlier one.
func (c *candidates) add(scheme, host, path string) {
	start := len(c.buf)
	c.buf = appendNormalizedURL(c.buf, scheme, host, path)
	u := c.buf[start:]
	for i := range c.n {
		if string(c.url(i)) == string(u) {
			c.buf = c.buf[:start]
			return
		}
	}
	c.ends[c.n] = len(c.buf)
	c.n++
}

func (c *candidates) url(i int) []byte {
	start := 0
	if i > 0 {
		start = c.ends[i-1]
	}
	return c.buf[start:c.ends[i]]
}

// each yields the candidates in order (the slices are valid until the next init).
func (c *candidates) each(yield func([]byte) bool) {
	for i := range c.n {
		if !yield(c.url(i)) {
			return
		}
	}
}

// ParamString returns the sorted parameter string of the base string: every parameter
// except sig, sorted by name in byte order, as name=escaped(value) joined with '&'.
// Names are not escaped (real names are plain ASCII).
func ParamString(params []Param) string {
	var b []byte
	var buf [MaxParams]int
	for n, i := range sortedParams(params, buf[:0]) {
		if n > 0 {
			b = append(b, '&')
		}
		b = append(b, params[i].Name...)
		b = append(b, '=')
		b = AppendEscape(b, params[i].Value)
	}
	return string(b)
}

// appendEscapedParamString appends escape(ParamString(params)) in one pass: a value
// byte that the first escape keeps stays, any other becomes %25XX (its %XX escaped
// again); '=' and '&' become %3D and %26.
func appendEscapedParamString(dst []byte, params []Param) []byte {
	// The order lives on the stack while it fits (it always does for decoded
	// requests, which hold at most MaxParams parameters).
	var buf [MaxParams]int
	return writeEscapedParamString(dst, params, sortedParams(params, buf[:0]), nil)
}

// escapedChunk is how much of an escaped parameter string writeEscapedParamString
// holds before it hands it on.
const escapedChunk = 4 << 10

// writeEscapedParamString appends escape(ParamString(params)), the parameters in
// order, to dst. With w set, it hands dst to w whenever it holds escapedChunk bytes or
// more and starts it again, so that the whole string (up to five times the request) is
// never held; it returns what is left for w.
func writeEscapedParamString(dst []byte, params []Param, order []int, w func([]byte)) []byte {
	const hexDigits = "0123456789ABCDEF"
	for n, i := range order {
		if n > 0 {
			dst = append(dst, "%26"...)
		}
		dst = AppendEscape(dst, params[i].Name)
		dst = append(dst, "%3D"...)
		v := params[i].Value
		for j := 0; j < len(v); j++ {
			c := v[j]
			if unreserved(c) {
				dst = append(dst, c)
			} else {
				dst = append(dst, '%', '2', '5', hexDigits[c>>4], hexDigits[c&15])
			}
			if w != nil && len(dst) >= escapedChunk {
				w(dst)
				dst = dst[:0]
			}
		}
	}
	return dst
}

// sortedParams appends to idx the indexes of every parameter but sig, sorted by name.
func sortedParams(params []Param, idx []int) []int {
	for i := range params {
		if !equalFoldASCII(params[i].Name, "sig") { // names match in any case
			idx = append(idx, i)
		}
	}
	slices.SortStableFunc(idx, func(a, b int) int { return strings.Compare(params[a].Name, params[b].Name) })
	return idx
}

// appendHead appends the part of the base string before the parameters:
// METHOD & escape(normalized URL) &.
func appendHead[URL string | []byte](dst []byte, httpMethod string, normalizedURL URL) []byte {
	for i := 0; i < len(httpMethod); i++ {
		c := httpMethod[i]
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		dst = append(dst, c)
	}
	dst = append(dst, '&')
	dst = appendEscape(dst, normalizedURL)
	return append(dst, '&')
}

// BaseString returns the string a request signature covers:
// METHOD & escape(normalized URL) & escape(sorted parameter string).
func BaseString(httpMethod, normalizedURL string, params []Param) string {
	b := appendHead(make([]byte, 0, 256), httpMethod, normalizedURL)
	return string(appendEscapedParamString(b, params))
}

// SignBase returns base64(HMAC-SHA1(key, base)): the signature of a base string, key
// being the decoded secret.
func SignBase(key []byte, base string) string {
	v := verifiers.Get().(*verifier)
	defer verifiers.Put(v)
	v.head = append(v.head[:0], base...)
	return base64.StdEncoding.EncodeToString(v.mac(key, v.head, nil))
}

// Sign returns the sig parameter for a request.
func Sign(key []byte, httpMethod, normalizedURL string, params []Param) string {
	return SignBase(key, BaseString(httpMethod, normalizedURL, params))
}

// strictBase64 refuses a last digit whose spare bits are set (DecodeSignature).
var strictBase64 = base64.StdEncoding.Strict()

// DecodeSignature reads a sig value leniently: standard or URL-safe base64 (Android),
// padded or not, with '+' possibly turned into a space by a form decoder (Swift).
// It returns false unless the value decodes to exactly 20 bytes (an HMAC-SHA1), its
// 28th character, if any, the padding '=', and the 2 spare bits of its last digit zero
// (as every encoder writes them): so that each HMAC has one text per alphabet and
// padding, not 4 × 256.
func DecodeSignature(sig string, dst *[sha1.Size]byte) bool {
	if len(sig) != 27 && (len(sig) != 28 || sig[27] != '=') {
		return false
	}
	var buf [28]byte
	copy(buf[:], sig)
	buf[27] = '='
	for i := 0; i < len(sig); i++ {
		switch buf[i] {
		case '-', ' ':
			buf[i] = '+'
		case '_':
			buf[i] = '/'
		}
	}
	n, err := strictBase64.Decode(dst[:], buf[:])
	return err == nil && n == sha1.Size
}

// verifier holds the scratch space of one verification; pooled, so that checking a
// signature allocates nothing in the steady state.
type verifier struct {
	params []byte // escape(parameter string), shared by every candidate URL
	head   []byte // METHOD & escape(URL) &
	urls   candidates
	digest hash.Hash
	pad    [sha1.BlockSize]byte
	key    [sha1.Size]byte
	sum    [sha1.Size]byte
}

var verifiers = sync.Pool{New: func() any { return &verifier{digest: sha1.New()} }}

// macParams computes HMAC-SHA1(key, head || escape(ParamString(params))), the
// parameters taken in order, into v.sum: the parameter string is escaped in pieces
// into v.params as it is hashed, never held whole.
func (v *verifier) macParams(key, head []byte, params []Param, order []int) []byte {
	v.inner(key)
	v.digest.Write(head)
	rest := writeEscapedParamString(v.params[:0], params, order, func(b []byte) { v.digest.Write(b) })
	v.digest.Write(rest)
	v.params = rest[:0]
	return v.outer(key)
}

// inner starts the inner hash of an HMAC: the digest reset, then the key XOR ipad.
func (v *verifier) inner(key []byte) {
	if len(key) > sha1.BlockSize {
		v.digest.Reset()
		v.digest.Write(key)
		key = v.digest.Sum(v.key[:0])
	}
	for i := range v.pad {
		v.pad[i] = 0x36
	}
	for i, c := range key {
		v.pad[i] ^= c
	}
	v.digest.Reset()
	v.digest.Write(v.pad[:])
}

// outer ends an HMAC whose inner hash has been written, into v.sum.
func (v *verifier) outer(key []byte) []byte {
	if len(key) > sha1.BlockSize {
		key = v.key[:]
	}
	inner := v.digest.Sum(v.sum[:0])
	for i := range v.pad {
		v.pad[i] = 0x5c
	}
	for i, c := range key {
		v.pad[i] ^= c
	}
	v.digest.Reset()
	v.digest.Write(v.pad[:])
	v.digest.Write(inner)
	return v.digest.Sum(v.sum[:0])
}

// mac computes HMAC-SHA1(key, a || b) into v.sum (RFC 2104, by hand so that no
// per-call state is allocated).
func (v *verifier) mac(key, a, b []byte) []byte {
	v.inner(key)
	v.digest.Write(a)
	v.digest.Write(b)
	return v.outer(key)
}

// Verify checks a request signature against the candidate URLs, in order, each
// comparison in constant time. It returns the index of the first URL whose base string
// matches, or -1. key is the decoded secret.
//
// It stops at the first match: the most likely URL comes first, so a good signature
// costs one HMAC. Which candidate matched is no secret (the client chose the URL it
// signed); what must not leak, how many bytes of a forged signature are right, does
// not, since every comparison is constant-time.
func Verify(key []byte, sig, httpMethod string, urls []string, params []Param) int {
	var want [sha1.Size]byte
	if !DecodeSignature(sig, &want) {
		return -1
	}
	v := verifiers.Get().(*verifier)
	defer verifiers.Put(v)
	var buf [MaxParams]int
	order := sortedParams(params, buf[:0])
	for i, u := range urls {
		v.head = appendHead(v.head[:0], httpMethod, u)
		if hmac.Equal(v.macParams(key, v.head, params, order), want[:]) {
			return i
		}
	}
	return -1
}

// VerifyRequest is Verify against CandidateURLs(scheme, host, path), without building
// the list: it returns the index in that list of the first URL whose base string
// matches, or -1.
func VerifyRequest(key []byte, sig, httpMethod, scheme, host, path string, params []Param) int {
	i, _ := VerifyRequestN(key, sig, httpMethod, scheme, host, path, params, 0, len(candidates{}.ends))
	return i
}

// VerifyRequestN is VerifyRequest trying the candidate URLs from index from up to (not
// including) end, the most likely first; next is the index after the last it tried.
// Each candidate hashes the whole escaped parameter string (EscapedLen), which a
// sender controls: a server bounds what a request with a bad signature costs it by the
// number it lets it try.
func VerifyRequestN(key []byte, sig, httpMethod, scheme, host, path string, params []Param, from, end int) (index, next int) {
	var want [sha1.Size]byte
	if !DecodeSignature(sig, &want) {
		return -1, from
	}
	v := verifiers.Get().(*verifier)
	defer verifiers.Put(v)
	var buf [MaxParams]int
	order := sortedParams(params, buf[:0])
	v.urls.init(scheme, host, path)
	end = min(v.urls.n, end)
	for i := from; i < end; i++ {
		v.head = appendHead(v.head[:0], httpMethod, v.urls.url(i))
		if hmac.Equal(v.macParams(key, v.head, params, order), want[:]) {
			return i, i + 1
		}
	}
	return -1, max(from, end)
}

// EscapedLen returns the length of the escaped parameter string that a base string
// ends with (writeEscapedParamString), without building it: a value byte that the
// first escape keeps counts 1, any other 5 (%25XX); a name's bytes 1 or 3 (%XX); each
// separator 3.
func EscapedLen(params []Param) int {
	n := 0
	for _, p := range params {
		if equalFoldASCII(p.Name, "sig") {
			continue
		}
		if n > 0 {
			n += 3 // %26
		}
		n += escapedLen(p.Name, 3) + 3 + escapedLen(p.Value, 5) // %3D
	}
	return n
}

// escapedLen is the length of s with each byte that is not unreserved made wide bytes.
func escapedLen(s string, wide int) int {
	n := 0
	for i := 0; i < len(s); i++ {
		if unreserved(s[i]) {
			n++
		} else {
			n += wide
		}
	}
	return n
}

// BaseStrings returns the base string for each candidate URL (to tell a client what
// the server signed when its signature did not match). A base string longer than max
// bytes is cut there and ends with a note of how much was left out; building it costs
// about max bytes, not the whole (up to five times the request).
func BaseStrings(httpMethod string, urls []string, params []Param, max int) []string {
	// The parameters one at a time, each value cut to max first, so that no step
	// builds much more than max bytes.
	var eps []byte
	var buf [MaxParams]int
	cut := false
	for n, i := range sortedParams(params, buf[:0]) {
		if len(eps) >= max {
			cut = true
			break
		}
		if n > 0 {
			eps = append(eps, "%26"...)
		}
		p := params[i]
		if len(p.Value) > max {
			p.Value, cut = p.Value[:max], true
		}
		eps = appendEscapedParamString(eps, []Param{p})
	}
	out := make([]string, len(urls))
	for i, u := range urls {
		b := appendHead(nil, httpMethod, u)
		b = append(b, eps...)
		if len(b) > max || cut {
			b = append(b[:min(len(b), max)], "... (cut at "...)
			b = strconv.AppendInt(b, int64(max), 10)
			b = append(b, " bytes)"...)
		}
		out[i] = string(b)
	}
	return out
}

// UIDSignature returns base64(HMAC-SHA1(key, timestamp + "_" + UID)), the proof that a
// UID came from the server; key is the decoded partner secret.
func UIDSignature(key []byte, timestamp, uid string) string {
	v := verifiers.Get().(*verifier)
	defer verifiers.Put(v)
	v.head = append(append(append(v.head[:0], timestamp...), '_'), uid...)
	return base64.StdEncoding.EncodeToString(v.mac(key, v.head, nil))
}

// ProviderUIDSignature signs timestamp_provider_providerUID: an identity's
// providerUIDSig (getUserInfo with signIDs).
func ProviderUIDSignature(key []byte, timestamp, provider, providerUID string) string {
	return SignBase(key, timestamp+"_"+provider+"_"+providerUID)
}

// FriendshipSignature signs timestamp_friendUID_UID.
func FriendshipSignature(key []byte, timestamp, friendUID, uid string) string {
	return SignBase(key, timestamp+"_"+friendUID+"_"+uid)
}

// ValidateUIDSignature checks a UIDSignature in constant time and, when maxAge > 0,
// that signatureTimestamp is within maxAge of now (in either direction), as the SDKs do.
func ValidateUIDSignature(key []byte, uid, timestamp, signature string, maxAge time.Duration, now time.Time) bool {
	want := UIDSignature(key, timestamp, uid)
	if !hmac.Equal([]byte(want), []byte(signature)) {
		return false
	}
	if maxAge > 0 {
		ts, err := strconv.ParseInt(timestamp, 10, 64)
		if err != nil {
			return false
		}
		d := now.Sub(time.Unix(ts, 0))
		if d < -maxAge || d > maxAge {
			return false
		}
	}
	return true
}

// MillisecondThreshold: a timestamp above it is read as Unix milliseconds (the gigya npm
// package sends them), below it as seconds.
const MillisecondThreshold = 100_000_000_000

// ParseTimestamp reads a request timestamp: decimal Unix seconds, or milliseconds when
// the value is above MillisecondThreshold, as ParseInteger reads an integer without a
// sign (no "+1", "-0" or space).
func ParseTimestamp(s string) (time.Time, bool) {
	n, ok := ParseInteger(s, false)
	if !ok {
		return time.Time{}, false
	}
	if n > MillisecondThreshold {
		return time.UnixMilli(n), true
	}
	return time.Unix(n, 0), true
}
