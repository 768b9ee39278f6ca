package gigya

import (
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/socius/socius"
)

// A Param is one request parameter, its name as the client sent it.
type Param struct {
	Name  string
	Value string
}

// Limits on parameters, checked while decoding.
const (
	MaxParams       = 256
	MaxParamNameLen = 128
)

// Params is the set of parameters of one request: the query string and the form body,
// merged. Names match case-insensitively, as Gigya matches them; the spelling the client
// used is kept, because the signature covers it.
type Params struct {
	list []Param
}

// Reset empties p, keeping its storage for reuse (but none of the old values).
func (p *Params) Reset() {
	clear(p.list)
	p.list = p.list[:0]
}

// All returns the parameters in the order received. The caller must not modify it.
func (p *Params) All() []Param { return p.list }

// Len returns the number of parameters.
func (p *Params) Len() int { return len(p.list) }

// Lookup returns the value of the parameter whose name equals name case-insensitively.
func (p *Params) Lookup(name string) (string, bool) {
	for i := range p.list {
		if equalFoldASCII(p.list[i].Name, name) {
			return p.list[i].Value, true
		}
	}
	return "", false
}

// Get returns the value of a parameter, "" when absent.
func (p *Params) Get(name string) string {
	v, _ := p.Lookup(name)
	return v
}

// Has reports whether the parameter was sent (even with an empty value).
func (p *Params) Has(name string) bool {
	_, ok := p.Lookup(name)
	return ok
}

// Add appends a parameter without checks (for building requests).
func (p *Params) Add(name, value string) { p.list = append(p.list, Param{name, value}) }

// Set replaces the value of a parameter, or appends it.
func (p *Params) Set(name, value string) {
	for i := range p.list {
		if equalFoldASCII(p.list[i].Name, name) {
			p.list[i].Value = value
			return
		}
	}
	p.Add(name, value)
}

// Del removes a parameter.
func (p *Params) Del(name string) {
	out := p.list[:0]
	for _, q := range p.list {
		if !equalFoldASCII(q.Name, name) {
			out = append(out, q)
		}
	}
	p.list = out
}

// Decode parses an application/x-www-form-urlencoded string (a query string or a form
// body) and adds its parameters to p. Both '+' and "%20" decode to a space. It fails
// with a Gigya error: 400001 for broken encoding, 400006 for a parameter sent twice (in
// any letter case), a value that is not UTF-8 or holds a NUL byte, or too many
// parameters.
func (p *Params) Decode(s string) error {
	if s == "" {
		return nil
	}
	// One allocation for the list, not one per doubling.
	p.list = slices.Grow(p.list, min(strings.Count(s, "&")+1, MaxParams+1))
	for s != "" {
		var pair string
		pair, s, _ = strings.Cut(s, "&")
		if pair == "" {
			continue
		}
		rawName, rawValue := pair, ""
		if i := strings.IndexByte(pair, '='); i >= 0 {
			rawName, rawValue = pair[:i], pair[i+1:]
		}
		name, ok := unescape(rawName)
		if !ok || name == "" || len(name) > MaxParamNameLen || !validName(name) {
			return socius.Errorf(socius.CodeInvalidRequest, "Malformed parameter name: %q", clip(MaskCredentials(rawName), 40))
		}
		value, ok := unescape(rawValue)
		if !ok {
			return socius.Errorf(socius.CodeInvalidRequest, "Malformed percent-encoding in parameter: %s", MaskCredentials(name))
		}
		if !utf8.ValidString(value) {
			return socius.Errorf(socius.CodeInvalidValue, "Invalid parameter value: %s is not valid UTF-8", MaskCredentials(name))
		}
		if strings.IndexByte(value, 0) >= 0 {
			return socius.Errorf(socius.CodeInvalidValue, "Invalid parameter value: %s contains a NUL character", MaskCredentials(name))
		}
		for i := range p.list {
			if equalFoldASCII(p.list[i].Name, name) {
				return socius.Errorf(socius.CodeInvalidValue, "Duplicate parameter: %s", MaskCredentials(name))
			}
		}
		if len(p.list) >= MaxParams {
			// Worded as every other refusal of a value (400006): "Invalid parameter
			// value:" and the parameter, here the first one past the limit.
			return socius.Errorf(socius.CodeInvalidValue, "Invalid parameter value: too many parameters: at most %d are allowed, and %s is parameter %d",
				MaxParams, clip(MaskCredentials(name), 40), MaxParams+1)
		}
		p.list = append(p.list, Param{name, value})
	}
	return nil
}

// answerParams say how a request is answered (SPEC 2): its format, and the status and
// context the answer carries.
var answerParams = [...]string{"format", "callback", "httpStatusCodes", "context"}

// DecodeAnswerParams adds to p those of format, callback, httpStatusCodes and context
// that s holds and p lacks, skipping every other pair and any pair that Decode would
// refuse. After Decode refused s, its refusal is still answered as the request asks,
// whether these came before the pair refused or after it.
func (p *Params) DecodeAnswerParams(s string) {
	for s != "" {
		var pair string
		pair, s, _ = strings.Cut(s, "&")
		rawName, rawValue, _ := strings.Cut(pair, "=")
		if len(rawName) > 3*len("httpStatusCodes") { // the longest, every byte escaped
			continue
		}
		name, ok := unescape(rawName)
		if !ok || !slices.ContainsFunc(answerParams[:], func(a string) bool { return equalFoldASCII(a, name) }) || p.Has(name) {
			continue
		}
		value, ok := unescape(rawValue)
		if !ok || !utf8.ValidString(value) || strings.IndexByte(value, 0) >= 0 {
			continue
		}
		p.list = append(p.list, Param{name, value})
	}
}

// validName accepts printable ASCII names without spaces, '=' or '&': every real Gigya
// parameter name is such. A name decoded from %3D or %26 would make the signature's base
// string ambiguous: there names are joined to their values by '=' and to each other by
// '&' unescaped, so the name "a=1&b" with the value 2 signs as the two parameters a=1
// and b=2, and a request could hide signed parameters in one name.
func validName(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c > '~' || c == '=' || c == '&' {
			return false
		}
	}
	return true
}

// MaskCredentials returns name, a method or parameter name as a client sent it, for an
// answer's errorDetails and the server's log, with any part that could be a token or
// a secret cut short: a client that puts its credentials where a name goes (a URL with
// "&" for "?", curl -d "$TOKEN") must not find them in the log. Such a part is a run of
// the characters tokens and base64 secrets are made of (ASCII letters and digits, "+",
// "/", "_" and "-", and the space a form's "+" decodes to) that is at least 2*maskRun
// long, or at least maskRun long and holds a digit, a "+" or "/", or two upper-case
// letters in a row: a secret without digits almost always holds one of those (a
// 24-byte secret without a digit is one in 230), a name in camel case none of them. It
// is shown as its first four characters and "...". A percent-escape of one of those
// characters counts as that character, so that a name quoted as the client encoded it
// ("%2B" for the "+" of a secret) is masked as the decoded one would be. The names of
// methods and parameters are shorter runs, or camel case without digits.
func MaskCredentials(name string) string {
	var b strings.Builder
	last := 0
	for i := 0; i < len(name); {
		if _, w := credentialCharAt(name, i); w == 0 {
			i++
			continue
		}
		j, n, marked := i, 0, false
		var prev byte
		for {
			c, w := credentialCharAt(name, j)
			if w == 0 {
				break
			}
			marked = marked || c >= '0' && c <= '9' || c == '+' || c == '/' ||
				n > 0 && isUpper(c) && isUpper(prev)
			prev, n, j = c, n+1, j+w
		}
		if n >= 2*maskRun || n >= maskRun && marked {
			b.WriteString(name[last : i+4])
			b.WriteString("...")
			last = j
		}
		i = j
	}
	if last == 0 {
		return name
	}
	b.WriteString(name[last:])
	return b.String()
}

func isUpper(c byte) bool { return c >= 'A' && c <= 'Z' }

const maskRun = 20

// credentialCharAt returns the character of a possible credential at name[i], and how
// many bytes of name it takes: one, or three for a percent-escape of such a character
// (a raw query's "%2B" and "%2F", the "+" and "/" of a base64 secret, must not split
// the secret into runs too short to be masked); 0 when there is none.
func credentialCharAt(name string, i int) (byte, int) {
	if i >= len(name) {
		return 0, 0
	}
	if c := name[i]; c != '%' {
		if credentialChar(c) {
			return c, 1
		}
		return 0, 0
	}
	if i+2 < len(name) && isHex(name[i+1]) && isHex(name[i+2]) {
		if c := unhex(name[i+1])<<4 | unhex(name[i+2]); credentialChar(c) {
			return c, 3
		}
	}
	return 0, 0
}

func credentialChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '+' || c == '/' || c == '_' || c == '-' || c == ' '
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// unescape decodes %XX and '+'. It returns false on a malformed escape.
func unescape(s string) (string, bool) {
	n := 0
	plus := false
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '%':
			if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
				return "", false
			}
			n++
			i += 2
		case '+':
			plus = true
		}
	}
	if n == 0 && !plus {
		return s, true
	}
	// A Builder hands its bytes over as the string: one allocation, not two.
	var b strings.Builder
	b.Grow(len(s) - 2*n)
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '%':
			b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
			i += 2
		case '+':
			b.WriteByte(' ')
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), true
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

func equalFoldASCII(a, b string) bool { return socius.EqualFoldASCII(a, b) }

// ParseBool reads a boolean the way the SDKs send them: true, True, 1 are true; false,
// False, 0 and the empty string (PHP's false) are false. Letter case is ignored.
func ParseBool(s string) (v, ok bool) {
	switch {
	case s == "1" || equalFoldASCII(s, "true"):
		return true, true
	case s == "" || s == "0" || equalFoldASCII(s, "false"):
		return false, true
	}
	return false, false
}

// MaxIntegerDigits is the most digits an integer parameter may have: as many as the
// largest int64 has.
const MaxIntegerDigits = 19

// ParseInteger reads an integer parameter (timestamp, UIDTimestamp, sessionExpiration,
// x_sessionExpiration) by the one rule Socius holds them all to: decimal digits,
// leading zeros allowed ("060" is 60), at most MaxIntegerDigits of them; a "-" before
// them only when negative (the parameter has negative values that mean something) and
// the value is not zero ("-0" is refused: no parameter means anything by it); no "+",
// no space, no decimal point. strconv takes "+60" and "-0", and an SDK sends neither:
// such a value is more likely a mistake (a timezone offset, a sign pasted in) than a
// number. The caller checks the range and names the parameter in its refusal (400006).
func ParseInteger(s string, negative bool) (int64, bool) {
	digits := s
	if negative && strings.HasPrefix(s, "-") {
		digits = s[1:]
	}
	if digits == "" || len(digits) > MaxIntegerDigits || strings.TrimLeft(digits, "0123456789") != "" {
		return 0, false
	}
	if len(digits) < len(s) && strings.TrimLeft(digits, "0") == "" {
		return 0, false // "-0", "-00"
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, false // out of the int64 range
	}
	return n, true
}

// Bool reads a boolean parameter: def when absent, a 400006 error when unreadable.
func (p *Params) Bool(name string, def bool) (bool, error) {
	s, ok := p.Lookup(name)
	if !ok {
		return def, nil
	}
	v, ok := ParseBool(s)
	if !ok {
		return false, socius.Errorf(socius.CodeInvalidValue, "Invalid parameter value: %s must be true or false", name)
	}
	return v, nil
}

// credentialParams are the parameters whose values are credentials, signatures, tokens
// or session values: what the server shows its hooks, and the client its traces, as
// "***".
var credentialParams = []string{
	"sig", "UIDSig", "cookieValue", "cookie", "code", "vToken", "secretAnswer",
}

// credentialWords mark a credential anywhere in a name, in any case: secret,
// client_secret, sessionSecret; oauth_token, regToken, passwordResetToken, idToken;
// password, newPassword. Gigya's other namespaces (accounts.*) send such parameters
// through socius call and the client's traces too.
var credentialWords = []string{"secret", "token", "password"}

// IsCredential reports whether a parameter's value is a credential (names match in
// ASCII case).
func IsCredential(name string) bool {
	for _, c := range credentialParams {
		if equalFoldASCII(c, name) {
			return true
		}
	}
	for _, w := range credentialWords {
		if containsFoldASCII(name, w) {
			return true
		}
	}
	return false
}

// containsFoldASCII reports whether s holds word (lower-case ASCII) in any ASCII case,
// without the copy strings.ToLower makes of every name with a capital: IsCredential
// runs for each parameter of each call.
func containsFoldASCII(s, word string) bool {
	for i := 0; i+len(word) <= len(s); i++ {
		if equalFoldASCII(s[i:i+len(word)], word) {
			return true
		}
	}
	return false
}
