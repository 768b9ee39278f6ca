package sealed

import (
	"bytes"
	"errors"
	"regexp"
	"testing"
)

// FuzzOpen opens arbitrary stored text as a site's secret, under a current and a
// previous master key. A value without the prefix is the secret itself; a sealed one
// opens or fails with ErrWrongKey, never another error; and the text sealed, under
// either key, opens to itself for its own row only.
func FuzzOpen(f *testing.F) {
	current, previous := bytes.Repeat([]byte{1}, KeySize), bytes.Repeat([]byte{2}, KeySize)
	s, err := New(nil, current, previous)
	if err != nil {
		f.Fatal(err)
	}
	old, _ := New(nil, previous)
	f.Add(s.seal("c2VjcmV0LWZvci10aGUtZ2lneWEtbGFiLTEyMzQ1Ng==", siteAD("3_abc")))
	f.Add(old.seal("c2VjcmV0", siteAD("3_abc")))
	f.Add(s.seal("", siteAD("3_abc")))
	f.Add(Prefix)
	f.Add(Prefix + "AAAA")
	f.Add(Prefix + "not base64!")
	f.Add("plain-secret")

	f.Fuzz(func(t *testing.T, stored string) {
		plain, cur, err := s.openReporting(stored, siteAD("3_abc"))
		switch {
		case err != nil && err != ErrWrongKey:
			t.Fatalf("open %q: %v, want ErrWrongKey", stored, err)
		case err == nil && !IsSealed(stored) && (plain != stored || cur):
			t.Fatalf("open %q, not sealed: %q (current %v)", stored, plain, cur)
		case err != nil && !IsSealed(stored):
			t.Fatalf("open %q, not sealed: %v", stored, err)
		}
		for _, by := range []*Store{s, old} {
			sealed := by.seal(stored, siteAD("3_abc"))
			if !IsSealed(sealed) {
				t.Fatalf("seal %q: %q has no prefix", stored, sealed)
			}
			got, cur, err := s.openReporting(sealed, siteAD("3_abc"))
			if err != nil || got != stored || cur != (by == s) {
				t.Fatalf("seal and open %q: %q (current %v), %v", stored, got, cur, err)
			}
			if _, err := s.open(sealed, siteAD("3_abd")); !errors.Is(err, ErrWrongKey) {
				t.Fatalf("%q sealed for one site opened for another: %v", stored, err)
			}
			if _, err := s.open(sealed, keyAD("3_abc")); !errors.Is(err, ErrWrongKey) {
				t.Fatalf("%q sealed for a site opened for a key: %v", stored, err)
			}
		}
	})
}

// FuzzParseKey reads arbitrary text as a master key: a key of KeySize bytes whose
// text form parses back to it, or one of ParseKey's two messages, which never repeat
// the text.
func FuzzParseKey(f *testing.F) {
	f.Add(EncodeKey(bytes.Repeat([]byte{0xfb}, KeySize)) + "\n")
	f.Add("  " + "-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-" + "\t")
	f.Add("AAAA")
	f.Add("not a key")
	f.Add("")
	message := regexp.MustCompile(`^a master key is base64 of 32 bytes; this (is not base64|decodes to (1 byte|[0-9]+ bytes)) \(make one with: head -c 32 /dev/urandom \| base64\)$`)
	f.Fuzz(func(t *testing.T, text string) {
		k, err := ParseKey(text)
		if err != nil {
			if !message.MatchString(err.Error()) {
				t.Fatalf("ParseKey(%q): %q, not one of its messages", text, err)
			}
			return
		}
		if len(k) != KeySize {
			t.Fatalf("ParseKey(%q): %d bytes", text, len(k))
		}
		if again, err := ParseKey(EncodeKey(k)); err != nil || !bytes.Equal(again, k) {
			t.Fatalf("ParseKey(EncodeKey(%x)): %x, %v", k, again, err)
		}
	})
}
