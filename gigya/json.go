package gigya

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// MaxJSONDepth is how deeply JSON parameters may nest.
const MaxJSONDepth = 32

// MaxJSONValues is how many values (objects, arrays, strings, numbers, literals) a JSON
// parameter may hold. A parsed value takes tens of bytes for the few of text that
// spell it ("[]," is three), so without a bound a megabyte of text became tens of
// megabytes of tree; a profile has eight fields.
const MaxJSONValues = 10000

// Number is a JSON number, kept as its text.
type Number string

// ParseJSON parses a JSON-typed parameter (userInfo, x_userInfo, context) leniently, as
// the documentation's own examples need: standard JSON, plus unquoted object keys
// ({firstName: "David"}), single-quoted strings and trailing commas. Objects come back
// as Object (keys in order), arrays as []any, strings as string, numbers as Number,
// true/false as bool, null as nil. Nesting deeper than MaxJSONDepth, or more than
// MaxJSONValues values, is an error. A byte order mark before the text is skipped, as
// RFC 8259 lets a parser do: Windows editors write one at the start of a file, which
// `curl --data-urlencode userInfo@profile.json` sends. Error offsets count it.
func ParseJSON(s string) (any, error) {
	p := jsonParser{s: s}
	if strings.HasPrefix(s, byteOrderMark) {
		p.i = len(byteOrderMark)
	}
	p.space()
	v, err := p.value(0)
	if err != nil {
		return nil, err
	}
	p.space()
	if p.i < len(p.s) {
		return nil, p.errorf("unexpected %s after the value", p.what())
	}
	return v, nil
}

// byteOrderMark is U+FEFF in UTF-8.
const byteOrderMark = "\ufeff"

type jsonParser struct {
	s      string
	i      int
	values int // parsed so far
}

// JSONError says where and why JSON text failed to parse.
type JSONError struct {
	Offset int
	Msg    string
}

// Error says where and what.
func (e *JSONError) Error() string { return fmt.Sprintf("at offset %d: %s", e.Offset, e.Msg) }

func (p *jsonParser) errorf(format string, args ...any) error {
	return &JSONError{Offset: p.i, Msg: fmt.Sprintf(format, args...)}
}

func (p *jsonParser) what() string {
	if p.i >= len(p.s) {
		return "end of text"
	}
	r, _ := utf8.DecodeRuneInString(p.s[p.i:])
	return strconv.QuoteRune(r)
}

func (p *jsonParser) space() {
	for p.i < len(p.s) {
		switch p.s[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *jsonParser) value(depth int) (any, error) {
	if p.i >= len(p.s) {
		return nil, p.errorf("unexpected end of text, a value was expected")
	}
	if p.values++; p.values > MaxJSONValues {
		return nil, p.errorf("more than %d values", MaxJSONValues)
	}
	switch c := p.s[p.i]; {
	case c == '{':
		return p.object(depth + 1)
	case c == '[':
		return p.array(depth + 1)
	case c == '"' || c == '\'':
		return p.str()
	case c == '-' || '0' <= c && c <= '9':
		return p.number()
	case strings.HasPrefix(p.s[p.i:], "true"):
		p.i += 4
		return true, nil
	case strings.HasPrefix(p.s[p.i:], "false"):
		p.i += 5
		return false, nil
	case strings.HasPrefix(p.s[p.i:], "null"):
		p.i += 4
		return nil, nil
	}
	return nil, p.errorf("unexpected %s, a value was expected", p.what())
}

func (p *jsonParser) object(depth int) (any, error) {
	if depth > MaxJSONDepth {
		return nil, p.errorf("nested deeper than %d levels", MaxJSONDepth)
	}
	p.i++ // {
	obj := Object{}
	for {
		p.space()
		if p.i < len(p.s) && p.s[p.i] == '}' {
			p.i++
			return obj, nil
		}
		key, err := p.key()
		if err != nil {
			return nil, err
		}
		p.space()
		if p.i >= len(p.s) || p.s[p.i] != ':' {
			// The key as a name is quoted (MaskCredentials, clipped): the error reaches
			// errorDetails, and so the call's log line, and a key may be anything, a
			// token or a secret too, of any length.
			return nil, p.errorf("unexpected %s, ':' was expected after key %q", p.what(), clip(MaskCredentials(key), 100))
		}
		p.i++
		p.space()
		v, err := p.value(depth)
		if err != nil {
			return nil, err
		}
		obj = append(obj, KV{key, v})
		p.space()
		if p.i >= len(p.s) {
			return nil, p.errorf("unexpected end of text, '}' was expected")
		}
		switch p.s[p.i] {
		case ',':
			p.i++
		case '}':
			p.i++
			return obj, nil
		default:
			return nil, p.errorf("unexpected %s, ',' or '}' was expected", p.what())
		}
	}
}

func (p *jsonParser) key() (string, error) {
	if p.i >= len(p.s) {
		return "", p.errorf("unexpected end of text, a key was expected")
	}
	if c := p.s[p.i]; c == '"' || c == '\'' {
		return p.str()
	}
	start := p.i
	for p.i < len(p.s) && identByte(p.s[p.i]) {
		p.i++
	}
	if p.i == start {
		return "", p.errorf("unexpected %s, a key was expected", p.what())
	}
	return p.s[start:p.i], nil
}

func identByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '$'
}

func (p *jsonParser) array(depth int) (any, error) {
	if depth > MaxJSONDepth {
		return nil, p.errorf("nested deeper than %d levels", MaxJSONDepth)
	}
	p.i++ // [
	arr := []any{}
	for {
		p.space()
		if p.i < len(p.s) && p.s[p.i] == ']' {
			p.i++
			return arr, nil
		}
		v, err := p.value(depth)
		if err != nil {
			return nil, err
		}
		arr = append(arr, v)
		p.space()
		if p.i >= len(p.s) {
			return nil, p.errorf("unexpected end of text, ']' was expected")
		}
		switch p.s[p.i] {
		case ',':
			p.i++
		case ']':
			p.i++
			return arr, nil
		default:
			return nil, p.errorf("unexpected %s, ',' or ']' was expected", p.what())
		}
	}
}

func (p *jsonParser) str() (string, error) {
	quote := p.s[p.i]
	p.i++
	var b strings.Builder
	start := p.i
	for p.i < len(p.s) {
		c := p.s[p.i]
		switch {
		case c == quote:
			if b.Len() == 0 {
				s := p.s[start:p.i]
				p.i++
				return s, nil
			}
			b.WriteString(p.s[start:p.i])
			p.i++
			return b.String(), nil
		case c < ' ':
			return "", p.errorf("control character in a string")
		case c == '\\':
			b.WriteString(p.s[start:p.i])
			if err := p.escape(&b); err != nil {
				return "", err
			}
			start = p.i
		default:
			p.i++
		}
	}
	return "", p.errorf("unterminated string")
}

func (p *jsonParser) escape(b *strings.Builder) error {
	p.i++ // backslash
	if p.i >= len(p.s) {
		return p.errorf("unterminated escape")
	}
	c := p.s[p.i]
	p.i++
	switch c {
	case '"', '\\', '/', '\'':
		b.WriteByte(c)
	case 'b':
		b.WriteByte('\b')
	case 'f':
		b.WriteByte('\f')
	case 'n':
		b.WriteByte('\n')
	case 'r':
		b.WriteByte('\r')
	case 't':
		b.WriteByte('\t')
	case 'u':
		r, ok := p.hex4()
		if !ok {
			return p.errorf("bad \\u escape")
		}
		if utf16.IsSurrogate(r) {
			// A pair \uD83C\uDF89 is one character; a lone half becomes U+FFFD.
			if strings.HasPrefix(p.s[p.i:], "\\u") {
				save := p.i
				p.i += 2
				if r2, ok := p.hex4(); ok {
					if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
						b.WriteRune(dec)
						return nil
					}
				}
				p.i = save
			}
			r = utf8.RuneError
		}
		b.WriteRune(r)
	default:
		return p.errorf("unknown escape \\%c", c)
	}
	return nil
}

func (p *jsonParser) hex4() (rune, bool) {
	if p.i+4 > len(p.s) {
		return 0, false
	}
	n, err := strconv.ParseUint(p.s[p.i:p.i+4], 16, 32)
	if err != nil {
		return 0, false
	}
	p.i += 4
	return rune(n), true
}

func (p *jsonParser) number() (any, error) {
	start := p.i
	if p.s[p.i] == '-' {
		p.i++
	}
	digits := func() int {
		n := 0
		for p.i < len(p.s) && '0' <= p.s[p.i] && p.s[p.i] <= '9' {
			p.i++
			n++
		}
		return n
	}
	if digits() == 0 {
		return nil, p.errorf("bad number")
	}
	if p.i < len(p.s) && p.s[p.i] == '.' {
		p.i++
		if digits() == 0 {
			return nil, p.errorf("bad number")
		}
	}
	if p.i < len(p.s) && (p.s[p.i] == 'e' || p.s[p.i] == 'E') {
		p.i++
		if p.i < len(p.s) && (p.s[p.i] == '+' || p.s[p.i] == '-') {
			p.i++
		}
		if digits() == 0 {
			return nil, p.errorf("bad number")
		}
	}
	return Number(p.s[start:p.i]), nil
}
