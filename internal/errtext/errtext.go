// Package errtext writes errors, and the text of a server that they quote, for a
// person to read: the server's text on one line, with what could drive a terminal or
// forge a log line escaped; an answer's body clipped, saying how much was left out;
// and net/http's errors without the URL that the message around them names already.
// The Go client and the socius command both write them so, through these functions.
package errtext

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Printable returns s with what is not printable escaped as Go escapes it in a quoted
// string (\n, \x1b, \u009b, \u202e, and \xff for a byte that is not UTF-8), and the
// rest as it is: for a server's text in an error, which is logged and printed.
func Printable(s string) string {
	clean := true
	for _, r := range s {
		if r == utf8.RuneError || !strconv.IsPrint(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case strconv.IsPrint(r):
			b.WriteString(s[i : i+n])
		default:
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		}
		i += n
	}
	return b.String()
}

// Clip returns body, the start of an answer of size bytes, as Printable text of at
// most limit of its bytes (cut where a character starts, so that none shows as bytes
// that are not UTF-8), followed by what was left out when anything was: " ... (the
// first 2048 bytes of 5000)". A negative size is a length not known: " ... (the first
// 2048 bytes)".
func Clip(body []byte, size, limit int) string {
	shown := body
	if len(shown) > limit {
		shown = shown[:max(limit, 0)]
		for i := len(shown) - 1; i >= 0 && i >= len(shown)-utf8.UTFMax; i-- {
			if utf8.RuneStart(shown[i]) {
				if !utf8.FullRune(shown[i:]) {
					shown = shown[:i]
				}
				break
			}
		}
	}
	s := Printable(string(shown))
	switch {
	case size < 0:
		s += fmt.Sprintf(" ... (the first %d bytes)", len(shown))
	case len(shown) < size:
		s += fmt.Sprintf(" ... (the first %d bytes of %d)", len(shown), size)
	}
	return s
}

// Quote returns s quoted as %q quotes it, clipped to limit bytes (cut where a
// character starts) and followed by its length when it is longer: `"3_xxxx"... (900003
// bytes)`, for a refused value that an error names, whatever its size.
func Quote(s string, limit int) string {
	if len(s) <= limit {
		return strconv.Quote(s)
	}
	cut := max(limit, 0)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%s... (%d bytes)", strconv.Quote(s[:cut]), len(s))
}

// WithoutURL returns err's message without net/http's `Post "URL": ` (or `Get`...)
// before its cause, for a message that names the URL already: said twice, it hid the
// cause at the end of a long line. Only the first *url.Error in err's chain is
// shortened, and only its prefix: text that wraps it (another error beside it, an
// operation before it) stays.
func WithoutURL(err error) string {
	msg := err.Error()
	var ue *url.Error
	if errors.As(err, &ue) {
		msg = strings.Replace(msg, ue.Op+" "+strconv.Quote(ue.URL)+": ", "", 1)
	}
	return msg
}
