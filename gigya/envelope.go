package gigya

import (
	"crypto/rand"
	"encoding/hex"
	"math"
	"strconv"
	"time"
	"unicode/utf8"
)

// A KV is one field of an Object.
type KV struct {
	Key   string
	Value any
}

// Object is a JSON object whose keys keep their order. Values may be string, bool, int,
// int64, float64, Number, RawJSON, Object, []Object, []any or nil.
type Object []KV

// Get returns the value of key and whether it is present.
func (o Object) Get(key string) (any, bool) {
	for _, kv := range o {
		if kv.Key == key {
			return kv.Value, true
		}
	}
	return nil, false
}

// MarshalJSON encodes the object compactly, keys in order.
func (o Object) MarshalJSON() ([]byte, error) { return AppendJSON(nil, o), nil }

// RawJSON is JSON text that is copied into the output as it is; it must be valid.
type RawJSON []byte

// AppendJSON appends the JSON encoding of v. Strings are escaped so that the output is
// also safe inside JSONP and HTML (<, >, &, U+2028 and U+2029 as \u escapes); invalid
// UTF-8 becomes U+FFFD (always written \ufffd).
func AppendJSON(dst []byte, v any) []byte {
	switch v := v.(type) {
	case nil:
		return append(dst, "null"...)
	case string:
		return appendJSONString(dst, v)
	case bool:
		return strconv.AppendBool(dst, v)
	case int:
		return strconv.AppendInt(dst, int64(v), 10)
	case int64:
		return strconv.AppendInt(dst, v, 10)
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return append(dst, "null"...)
		}
		return strconv.AppendFloat(dst, v, 'g', -1, 64)
	case Number:
		return append(dst, v...)
	case RawJSON:
		return append(dst, v...)
	case Object:
		dst = append(dst, '{')
		for i, kv := range v {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendJSONString(dst, kv.Key)
			dst = append(dst, ':')
			dst = AppendJSON(dst, kv.Value)
		}
		return append(dst, '}')
	case []Object:
		dst = append(dst, '[')
		for i, o := range v {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = AppendJSON(dst, o)
		}
		return append(dst, ']')
	case []any:
		dst = append(dst, '[')
		for i, e := range v {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = AppendJSON(dst, e)
		}
		return append(dst, ']')
	case []string:
		dst = append(dst, '[')
		for i, e := range v {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendJSONString(dst, e)
		}
		return append(dst, ']')
	}
	panic("gigya: cannot encode a value of this type in JSON")
}

func appendJSONString(dst []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= ' ' && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&15])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError {
			// An invalid byte (size 1) and a real U+FFFD are both written \ufffd, so
			// that encoding what was parsed from an encoding gives the same text.
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&15])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// Format is the answer's format, chosen by the format parameter.
type Format int

// The three formats Gigya answers in.
const (
	JSON Format = iota
	JSONP
	XML
)

// ParseFormat reads the format parameter ("" means json).
func ParseFormat(s string) (Format, bool) {
	switch {
	case s == "" || equalFoldASCII(s, "json"):
		return JSON, true
	case equalFoldASCII(s, "jsonp"):
		return JSONP, true
	case equalFoldASCII(s, "xml"):
		return XML, true
	}
	return JSON, false
}

// ValidCallback reports whether a JSONP callback name is safe to echo: 1 to 128
// characters from A-Z a-z 0-9 _ . $.
func ValidCallback(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !identByte(c) && c != '.' {
			return false
		}
	}
	return true
}

// Content types of the three formats.
const (
	ContentTypeJSON  = "application/json; charset=utf-8"
	ContentTypeJSONP = "text/javascript; charset=utf-8"
	ContentTypeXML   = "text/xml; charset=utf-8"
)

// Encode renders an answer object in a format. method names the XML root element
// (<method>Response); callback wraps JSONP. It returns the body and its content type.
func Encode(f Format, method, callback string, o Object) ([]byte, string) {
	return AppendEncode(make([]byte, 0, 512), f, method, callback, o)
}

// AppendEncode is Encode appending to dst (a server reuses its buffer).
func AppendEncode(dst []byte, f Format, method, callback string, o Object) ([]byte, string) {
	switch f {
	case JSONP:
		b := append(dst, callback...)
		b = append(b, '(')
		b = AppendJSON(b, o)
		return append(b, ");"...), ContentTypeJSONP
	case XML:
		return AppendXML(dst, method+"Response", o), ContentTypeXML
	}
	return AppendJSON(dst, o), ContentTypeJSON
}

// XMLNamespace is the namespace of Gigya's XML answers.
const XMLNamespace = "urn:com:gigya:api"

// AppendXML renders o as Gigya's legacy XML: a root element in the Gigya namespace with
// one child element per field; nested objects become nested elements and each array
// item an <item> element. Names that are not valid XML names have their bad characters
// replaced by '_'.
func AppendXML(dst []byte, root string, o Object) []byte {
	dst = append(dst, `<?xml version="1.0" encoding="UTF-8"?>`+"\n"...)
	root = xmlName(root)
	dst = append(dst, '<')
	dst = append(dst, root...)
	dst = append(dst, ` xmlns="`+XMLNamespace+`">`...)
	dst = appendXMLFields(dst, o)
	dst = append(dst, "</"...)
	dst = append(dst, root...)
	return append(dst, '>')
}

func appendXMLFields(dst []byte, o Object) []byte {
	for _, kv := range o {
		dst = appendXMLElement(dst, xmlName(kv.Key), kv.Value)
	}
	return dst
}

func appendXMLElement(dst []byte, name string, v any) []byte {
	dst = append(dst, '<')
	dst = append(dst, name...)
	dst = append(dst, '>')
	switch v := v.(type) {
	case nil:
	case string:
		dst = appendXMLText(dst, v)
	case Object:
		dst = appendXMLFields(dst, v)
	case []Object:
		for _, e := range v {
			dst = appendXMLElement(dst, "item", e)
		}
	case []any:
		for _, e := range v {
			dst = appendXMLElement(dst, "item", e)
		}
	case []string:
		for _, e := range v {
			dst = appendXMLElement(dst, "item", e)
		}
	case RawJSON:
		dst = appendXMLText(dst, string(v))
	default:
		dst = AppendJSON(dst, v) // numbers and booleans read the same in both
	}
	dst = append(dst, "</"...)
	dst = append(dst, name...)
	return append(dst, '>')
}

// appendXMLText escapes markup characters; characters XML 1.0 cannot carry at all
// (most control characters, invalid UTF-8) become U+FFFD.
func appendXMLText(dst []byte, s string) []byte {
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		switch {
		case r == '<':
			dst = append(dst, "&lt;"...)
		case r == '>':
			dst = append(dst, "&gt;"...)
		case r == '&':
			dst = append(dst, "&amp;"...)
		case r == '"':
			dst = append(dst, "&quot;"...)
		case r == '\'':
			dst = append(dst, "&apos;"...)
		case r == '\t' || r == '\n':
			dst = utf8.AppendRune(dst, r)
		case r == '\r':
			dst = append(dst, "&#13;"...)
		case r < ' ' || r == utf8.RuneError || r == 0xFFFE || r == 0xFFFF:
			dst = append(dst, "\uFFFD"...)
		default:
			dst = utf8.AppendRune(dst, r)
		}
	}
	return dst
}

func xmlName(s string) string {
	if s == "" {
		return "_"
	}
	b := []byte(s)
	for i, c := range b {
		ok := identByte(c) && c != '$' || c == '.' || c == '-'
		if i == 0 && ('0' <= c && c <= '9' || c == '.' || c == '-') {
			ok = false
		}
		if !ok {
			b[i] = '_'
		}
	}
	return string(b)
}

// IgnoredParam is one entry of ignoredParams: a parameter the method does not know.
type IgnoredParam struct {
	Name        string
	WarningCode int
	Message     string
}

// APIVersion is the apiVersion of every answer.
const APIVersion = 2

// Envelope is what every answer carries around the method's data.
type Envelope struct {
	CallID  string
	Code    int
	Details string
	Time    time.Time
	Context any // the echoed context: string or RawJSON; nil when none was sent
	Ignored []IgnoredParam
	Data    Object
}

// Object lays the envelope out in the order Gigya uses, followed by the data. Error
// fields appear only on errors; data may accompany an error (Gigya does that too).
func (e *Envelope) Object() Object {
	status := StatusCode(e.Code)
	o := make(Object, 0, 9+len(e.Data))
	o = append(o, KV{"callId", e.CallID}, KV{"errorCode", e.Code})
	if e.Code != 0 {
		o = append(o, KV{"errorDetails", e.Details}, KV{"errorMessage", Message(e.Code)})
	}
	o = append(o, KV{"apiVersion", APIVersion}, KV{"statusCode", status}, KV{"statusReason", StatusReason(status)},
		KV{"time", FormatTime(e.Time)})
	if e.Context != nil {
		o = append(o, KV{"context", e.Context})
	}
	if len(e.Ignored) > 0 {
		list := make([]Object, len(e.Ignored))
		for i, p := range e.Ignored {
			list[i] = Object{{"paramName", p.Name}, {"warningCode", p.WarningCode}, {"message", p.Message}}
		}
		o = append(o, KV{"ignoredParams", list})
	}
	return append(o, e.Data...)
}

// FormatTime renders t as Gigya does: UTC, ISO 8601 with milliseconds.
func FormatTime(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}

// NewCallID returns 32 random lower-case hex characters.
func NewCallID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	var h [32]byte
	hex.Encode(h[:], b[:])
	return string(h[:])
}
