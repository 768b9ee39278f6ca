package server

import (
	"github.com/socius/socius"
	"github.com/socius/socius/gigya"
	"slices"
)

// maxUserInfoKeys bounds the keys of one userInfo object. Each unknown key becomes an
// ignoredParams entry of about 100 bytes, so without a bound a 1 MiB body of short
// unknown keys would make an answer of tens of megabytes.
const maxUserInfoKeys = gigya.MaxParams

// userInfo reads a userInfo-shaped parameter into a patch. Fields present change; null
// or "" clears a field; keys that are not profile fields are ignored and listed in
// ignoredParams as <param>.<key>. Any invalid value fails the whole call with 400006,
// so nothing is stored.
func (c *call) userInfo(param, raw string) (*socius.Patch, error) {
	v, err := parseUserInfo(param, raw)
	if err != nil {
		return nil, err
	}
	return c.userInfoOf(param, v)
}

// parseUserInfo parses a userInfo-shaped parameter's text, or says that it is not JSON.
func parseUserInfo(param, raw string) (any, error) {
	v, err := gigya.ParseJSON(raw)
	if err != nil {
		return nil, socius.Errorf(socius.CodeInvalidValue, "Invalid parameter value: %s is not valid JSON: %v", param, err)
	}
	return v, nil
}

// userInfoOf is userInfo for the parsed value.
func (c *call) userInfoOf(param string, v any) (*socius.Patch, error) {
	obj, ok := v.(gigya.Object)
	if !ok {
		return nil, socius.Errorf(socius.CodeInvalidValue, "Invalid parameter value: %s must be a JSON object", param)
	}
	if len(obj) > maxUserInfoKeys {
		return nil, socius.Errorf(socius.CodeInvalidValue, "Invalid parameter value: %s has more than %d keys", param, maxUserInfoKeys)
	}
	var patch socius.Patch
	var unknown []string
	for _, kv := range obj {
		f, ok := socius.ParseField(kv.Key)
		if !ok {
			// Listed once, though given twice (a known field given twice is refused).
			if name := param + "." + kv.Key; !slices.Contains(unknown, name) {
				unknown = append(unknown, name)
			}
			continue
		}
		if _, dup := patch.Get(f); dup {
			return nil, socius.Errorf(socius.CodeInvalidValue, "Invalid parameter value: %s sets %s twice", param, f.Name())
		}
		val, err := fieldValue(f, kv.Value)
		if err != nil {
			return nil, socius.Errorf(socius.CodeInvalidValue, "Invalid parameter value: %s.%s: %v", param, f.Name(), err)
		}
		patch.Set(f, val)
	}
	article := "a "
	if param == "x_userInfo" {
		article = "an "
	}
	if err := c.ignore(unknown, "Not "+article+param+" field; ignored"); err != nil {
		return nil, err
	}
	return &patch, nil
}

// optionalUserInfo reads a userInfo-shaped parameter that a method may go without
// (notifyLogin's userInfo, getToken's x_userInfo): absent, empty or a JSON null (the
// gigya npm package sends a null as the text "null") is none, given false; anything
// else is read by userInfo. The null is what ParseJSON reads as one, white space or a
// byte order mark before it included, as notifyLogin's providerSessions takes it.
func (c *call) optionalUserInfo(param string) (patch *socius.Patch, given bool, err error) {
	raw := c.params.Get(param)
	if raw == "" {
		return &socius.Patch{}, false, nil
	}
	v, err := parseUserInfo(param, raw)
	switch {
	case err != nil:
		return nil, true, err
	case v == nil:
		return &socius.Patch{}, false, nil
	}
	patch, err = c.userInfoOf(param, v)
	return patch, true, err
}

// mustBe says what a field's JSON value must be.
func mustBe(f socius.Field) string {
	if f == socius.Age {
		return "must be a whole number from 0 to 150, or such a number as a string"
	}
	return "must be a string"
}

type fieldError string

func (e fieldError) Error() string { return string(e) }

// fieldValue converts one JSON value into the field's stored text ("" clears).
func fieldValue(f socius.Field, v any) (string, error) {
	var s string
	switch v := v.(type) {
	case nil:
		return "", nil
	case string:
		s = v
	case gigya.Number:
		s = string(v)
	case bool:
		return "", fieldError(mustBe(f) + ", not true or false")
	default:
		return "", fieldError(mustBe(f) + ", not an object or array")
	}
	if s == "" {
		return "", nil
	}
	out, err := f.Validate(s)
	if err != nil {
		return "", err
	}
	return out, nil
}
