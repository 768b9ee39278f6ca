package gigya

import (
	"slices"
	"strings"
)

// SortParams sorts parameters by name in byte order, as the base string orders them
// (the sort is stable, so equal names keep their order). A client that sends its body
// in this order sends exactly what it signed, in the same order.
func SortParams(params []Param) {
	slices.SortStableFunc(params, func(a, b Param) int { return strings.Compare(a.Name, b.Name) })
}

// AppendForm appends params as an application/x-www-form-urlencoded body, in the order
// given: name=value pairs joined by '&', names and values percent-encoded as the
// signature encodes them ([AppendEscape]: a space is %20, never '+'), so that the bytes
// sent and the bytes signed agree on every character. [Params.Decode] reads it back.
func AppendForm(dst []byte, params []Param) []byte {
	for i, p := range params {
		if i > 0 {
			dst = append(dst, '&')
		}
		dst = AppendEscape(dst, p.Name)
		dst = append(dst, '=')
		dst = AppendEscape(dst, p.Value)
	}
	return dst
}

// EncodeForm returns params as a form body (see [AppendForm]).
func EncodeForm(params []Param) string { return string(AppendForm(nil, params)) }
