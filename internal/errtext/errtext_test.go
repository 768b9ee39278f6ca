package errtext

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"testing"
	"unicode/utf8"
)

func TestPrintable(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", ""},
		{"José's café, 東京 ✓ U+FFFD \ufffd", "José's café, 東京 ✓ U+FFFD \ufffd"},
		{"line\r\nforged", `line\r\nforged`},
		{"\x1b[2J\x07", `\x1b[2J\a`},
		{"\u009b31m \u202egnp.exe \u200b\ufeff\u00a0\x7f", `\u009b31m \u202egnp.exe \u200b\ufeff\u00a0\x7f`},
		{"bad \xff\xe2\x80 bytes", `bad \xff\xe2\x80 bytes`},
	} {
		if got := Printable(c.in); got != c.want {
			t.Errorf("Printable(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestClip(t *testing.T) {
	for _, c := range []struct {
		body        string
		size, limit int
		want        string
	}{
		{"<html>", 6, 100, "<html>"},
		{"<html>", 5000, 100, "<html> ... (the first 6 bytes of 5000)"},
		{"<html>\n<body>", 13, 6, "<html> ... (the first 6 bytes of 13)"},
		{"<html>", -1, 3, "<ht ... (the first 3 bytes)"},
		// A character cut in two is left out whole, not shown as bytes.
		{"ab\u202ecd", 7, 4, "ab ... (the first 2 bytes of 7)"},
		{"ab東", 5, 4, "ab ... (the first 2 bytes of 5)"},
		{"ab東", 5, 5, "ab東"},
		// Bytes that were never UTF-8 are shown escaped, cut or not.
		{"a\xff\xfe\x1b", 4, 3, `a\xff\xfe ... (the first 3 bytes of 4)`},
		{"\x1b[31mred", 8, 100, `\x1b[31mred`},
		{"abc", 3, 0, " ... (the first 0 bytes of 3)"},
	} {
		got := Clip([]byte(c.body), c.size, c.limit)
		if got != c.want {
			t.Errorf("Clip(%q, %d, %d) = %q, want %q", c.body, c.size, c.limit, got, c.want)
		}
		for _, r := range got {
			if r == utf8.RuneError || !strconv.IsPrint(r) {
				t.Errorf("Clip(%q, %d, %d) = %q: not printable %q", c.body, c.size, c.limit, got, r)
			}
		}
	}
}

// TestWithoutURL: net/http's `Post "URL": ` is left out wherever the *url.Error stands
// in the chain, and nothing else of the message.
func TestWithoutURL(t *testing.T) {
	const u = "http://127.0.0.1:1/socialize.getUserInfo"
	refused := errors.New("dial tcp 127.0.0.1:1: connect: connection refused")
	ue := &url.Error{Op: "Post", URL: u, Err: refused}
	for _, c := range []struct {
		err  error
		want string
	}{
		{ue, "dial tcp 127.0.0.1:1: connect: connection refused"},
		{&url.Error{Op: "Get", URL: "http://h/a b\"c", Err: refused}, refused.Error()},
		{&url.Error{Op: "Post", Err: refused}, refused.Error()},
		{fmt.Errorf("emulator at http://h: %w", ue), "emulator at http://h: " + refused.Error()},
		{fmt.Errorf("%w; the last attempt: %w", context.DeadlineExceeded, ue), "context deadline exceeded; the last attempt: " + refused.Error()},
		{refused, refused.Error()},
		// The URL said by the cause itself stays: only the prefix goes.
		{&url.Error{Op: "Post", URL: u, Err: fmt.Errorf("Post %q: %w", u, refused)}, fmt.Sprintf("Post %q: %v", u, refused)},
	} {
		if got := WithoutURL(c.err); got != c.want {
			t.Errorf("WithoutURL(%q) = %q, want %q", c.err, got, c.want)
		}
	}
}

func TestQuote(t *testing.T) {
	for _, c := range []struct {
		s     string
		limit int
		want  string
	}{
		{"3_abc", 5, `"3_abc"`},
		{"3_abcd", 5, `"3_abc"... (6 bytes)`},
		// A character cut in two is left out whole.
		{"ab東x", 4, `"ab"... (6 bytes)`},
		{"a\x00\xff", 64, `"a\x00\xff"`},
	} {
		if got := Quote(c.s, c.limit); got != c.want {
			t.Errorf("Quote(%q, %d) = %s, want %s", c.s, c.limit, got, c.want)
		}
	}
}
