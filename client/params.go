package client

import (
	"bytes"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/socius/socius/gigya"
)

// Params are a call's parameters. Values are sent as text: a string as it is, a bool
// as true or false, numbers in decimal (so too named types of these kinds, such as
// type ID string), a []byte (what json.Marshal returns), a json.RawMessage or
// json.Number as its text, an encoding.TextMarshaler as its text; a pointer as what it
// points to; nil (or a nil pointer) leaves the parameter out; anything else (maps,
// slices, structs such as UserInfo) as its JSON encoding, which is what JSON-typed
// parameters (userInfo, context) expect. A time.Duration is refused: its number is
// nanoseconds, and Gigya counts durations (sessionExpiration) in seconds; give
// int64(d / time.Second).
//
// Names are matched case-insensitively by Gigya, so two names that differ only in
// letter case are refused. The client sets the credential and control parameters
// itself (apiKey, userKey, secret, sig, timestamp, nonce, oauth_token, format,
// httpStatusCodes, sdk); giving one is an error.
type Params map[string]any

var reserved = []string{"apiKey", "userKey", "secret", "sig", "timestamp", "nonce", "oauth_token", "format", "httpStatusCodes", "sdk"}

func (p Params) encode() ([]gigya.Param, error) {
	out := make([]gigya.Param, 0, len(p))
	for name, v := range p {
		if name == "" {
			return nil, errors.New("empty parameter name")
		}
		for _, r := range reserved {
			if strings.EqualFold(name, r) {
				return nil, fmt.Errorf("parameter %s is set by the client from its credentials and options", name)
			}
		}
		s, ok, err := paramText(v)
		if err != nil {
			return nil, fmt.Errorf("parameter %s: %w", name, err)
		}
		if ok {
			out = append(out, gigya.Param{Name: name, Value: s})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	seen := make(map[string]string, len(out))
	for _, q := range out {
		low := strings.ToLower(q.Name)
		if other, dup := seen[low]; dup {
			return nil, fmt.Errorf("parameters %s and %s are one name to Gigya (letter case is ignored)", other, q.Name)
		}
		seen[low] = q.Name
	}
	return out, nil
}

func paramText(v any) (string, bool, error) {
	switch v := v.(type) {
	case nil:
		return "", false, nil
	case string:
		return v, true, nil
	case bool:
		return strconv.FormatBool(v), true, nil
	case int:
		return strconv.Itoa(v), true, nil
	case int64:
		return strconv.FormatInt(v, 10), true, nil
	case int32:
		return strconv.FormatInt(int64(v), 10), true, nil
	case uint:
		return strconv.FormatUint(uint64(v), 10), true, nil
	case uint64:
		return strconv.FormatUint(v, 10), true, nil
	case float64:
		return floatText(v, 64)
	case time.Duration:
		// A Duration is a number of nanoseconds, which Gigya would read as seconds
		// (sessionExpiration, x_sessionExpiration: an hour would be 114,000 years).
		return "", false, fmt.Errorf("a time.Duration (%v): give whole seconds, e.g. int64(d / time.Second), as Gigya counts durations in seconds", v)
	case json.Number:
		return string(v), true, nil
	case json.RawMessage:
		if v == nil { // no value, as a nil []byte (an unset field of this type)
			return "", false, nil
		}
		return string(v), true, nil
	case []byte:
		// As its text, not as JSON (a quoted base64 string): a []byte is what
		// json.Marshal returns, and userInfo given so was sent as "eyJ...".
		if v == nil {
			return "", false, nil
		}
		return string(v), true, nil
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Map, reflect.Slice, reflect.Interface:
		if rv.IsNil() { // a nil map or slice is no value, as nil is (not "null")
			return "", false, nil
		}
	}
	if rv.Kind() == reflect.Pointer {
		if rv.IsNil() { // before the marshaler: a nil *time.Time would panic in it
			return "", false, nil
		}
		if _, ok := v.(encoding.TextMarshaler); !ok {
			return paramText(rv.Elem().Interface())
		}
	}
	if m, ok := v.(encoding.TextMarshaler); ok {
		b, err := m.MarshalText()
		return string(b), true, err
	}
	// Named types of those kinds (type ID string): as their values, not as JSON (which
	// would quote a string).
	switch rv.Kind() {
	case reflect.String:
		return rv.String(), true, nil
	case reflect.Bool:
		return strconv.FormatBool(rv.Bool()), true, nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.FormatInt(rv.Int(), 10), true, nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return strconv.FormatUint(rv.Uint(), 10), true, nil
	case reflect.Float32:
		return floatText(rv.Float(), 32)
	case reflect.Float64:
		return floatText(rv.Float(), 64)
	case reflect.Slice:
		if rv.Type().Elem().Kind() == reflect.Uint8 { // a named []byte type
			return string(rv.Bytes()), true, nil
		}
	}
	b, err := jsonMarshal(v)
	if err != nil {
		return "", false, err
	}
	return string(b), true, nil
}

// floatText is a number's text; NaN and the infinities are no number Gigya reads.
func floatText(f float64, bits int) (string, bool, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return "", false, fmt.Errorf("%v is not a number a request can carry", f)
	}
	return strconv.FormatFloat(f, 'f', -1, bits), true, nil
}

// jsonMarshal encodes compactly, without escaping <, > and & (Gigya does not need it,
// and URLs stay readable).
func jsonMarshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
