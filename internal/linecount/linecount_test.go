package linecount

import "testing"

func TestDiff(t *testing.T) {
	for _, c := range []struct{ got, want, say string }{
		{"a\nb\n", "b\na\n", "the same lines in another order"},
		{"a\na\nb\n", "a\nb\n", "2 times, want 1: a\n"},
		{"b\n", "a\nb\n", "0 times, want 1: a\n"},
		{"c\nb\n", "a\nb\n", "0 times, want 1: a\n1 times, want 0: c\n"},
	} {
		if say := Diff(c.got, c.want); say != c.say {
			t.Errorf("Diff(%q, %q) = %q, want %q", c.got, c.want, say, c.say)
		}
	}
}
