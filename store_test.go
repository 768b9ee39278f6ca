package socius_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/socius/socius"
)

// pagedUsers is a UserStore holding users u0, u1, ... that records each page asked for.
type pagedUsers struct {
	socius.UserStore
	uids  []string
	pages []string // the after of each Users call
	err   error
}

func (p *pagedUsers) Users(_ context.Context, _, after string, limit int) ([]*socius.User, error) {
	p.pages = append(p.pages, after)
	if p.err != nil {
		return nil, p.err
	}
	var out []*socius.User
	for _, uid := range p.uids {
		if uid > after && len(out) < limit {
			out = append(out, &socius.User{UID: uid})
		}
	}
	return out, nil
}

func TestAllUsers(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct {
		uids  []string
		pages []string
	}{
		{nil, []string{""}},
		{[]string{"a", "b"}, []string{"", "b"}}, // a full page: one more read to see the end
		{[]string{"a", "b", "c"}, []string{"", "b"}},
	} {
		st := &pagedUsers{uids: tt.uids}
		var got []string
		for u, err := range socius.AllUsers(ctx, st, "3_k", 2) {
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, u.UID)
		}
		if !slices.Equal(got, tt.uids) || !slices.Equal(st.pages, tt.pages) {
			t.Errorf("%v: got %v reading pages after %q, want pages after %q", tt.uids, got, st.pages, tt.pages)
		}
	}

	// Stopping early reads no further page.
	st := &pagedUsers{uids: []string{"a", "b", "c"}}
	for range socius.AllUsers(ctx, st, "3_k", 2) {
		break
	}
	if len(st.pages) != 1 {
		t.Errorf("read pages after %q after a break", st.pages)
	}

	// A failed read ends the sequence with the error.
	boom := errors.New("boom")
	n := 0
	for u, err := range socius.AllUsers(ctx, &pagedUsers{err: boom}, "3_k", 2) {
		if n++; u != nil || !errors.Is(err, boom) {
			t.Errorf("got %v, %v; want nil, boom", u, err)
		}
	}
	if n != 1 {
		t.Errorf("%d values after a failed read, want 1", n)
	}
}

// snapshotStub is a store whose Snapshot answers err, and nothing else of it is used.
type snapshotStub struct {
	socius.Store
	err error
}

func (s snapshotStub) Snapshot(context.Context) (socius.View, error) { return nil, s.err }

// TestOpenView: a store without a view, or whose Snapshot says errors.ErrUnsupported
// (a wrapper over a store without one), is read as it is, through a View whose Close
// leaves it open; any other failure to open the view is the caller's to see.
func TestOpenView(t *testing.T) {
	gone := errors.New("connection refused")
	for _, c := range []struct {
		name string
		st   socius.Store
		want error
	}{
		{"no Snapshot", struct{ socius.Store }{}, nil},
		{"Snapshot unsupported", snapshotStub{err: fmt.Errorf("sealed: %w", errors.ErrUnsupported)}, nil},
		{"Snapshot failing", snapshotStub{err: gone}, gone},
	} {
		v, err := socius.OpenView(t.Context(), c.st)
		if !errors.Is(err, c.want) || (err == nil) != (c.want == nil) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
			continue
		}
		if err == nil {
			// The store under it is nil: a Close passed on to it would panic.
			if err := v.Close(); err != nil {
				t.Errorf("%s: the view's Close: %v", c.name, err)
			}
		}
	}
}

func TestValidateSiteName(t *testing.T) {
	for _, ok := range []string{"", "demo", "Ünïcødé site 名前", strings.Repeat("x", socius.MaxSiteName)} {
		if err := socius.ValidateSiteName(ok); err != nil {
			t.Errorf("ValidateSiteName(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"a\x00b", "a\tb", "a\u0085b", "\xff", strings.Repeat("x", socius.MaxSiteName+1)} {
		if err := socius.ValidateSiteName(bad); err == nil {
			t.Errorf("ValidateSiteName(%q) accepted", bad)
		}
	}
}

func TestValidateSecret(t *testing.T) {
	for _, ok := range []string{
		"AAAAAAAAAAAAAAAAAAAAAA==", // 16 bytes, the least
		"c2VjcmV0LWZvci10aGUtZ2lneWEtbGFiLTEyMzQ1Ng==",
		"c2VjcmV0LWZvci10aGUt\nZ2lneWEtbGFiLTEyMzQ1Ng==\n", // whitespace skipped, as the SDKs skip it
	} {
		if err := socius.ValidateSecret(ok); err != nil {
			t.Errorf("ValidateSecret(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", "AAAAAAAAAAAAAAAAAAAA", "c2VjcmV0LWZvci10aGUtZ2lneWEtbGFiLTEyMzQ1Ng", "c2VjcmV0LWZvci10aGUtZ2lneWEtbGFi_TEyMzQ1Ng=="} {
		if err := socius.ValidateSecret(bad); err == nil {
			t.Errorf("ValidateSecret(%q) accepted", bad)
		}
	}
}

// TestValidateSecretSaysWhatIsWrong: a secret that is not standard base64 is refused
// saying what to mend, not with Go's "illegal base64 data at input byte 0", which for
// "abc" named a character that is fine (the thirty-third session's walk of the
// README, serve --site-secret abc).
func TestValidateSecretSaysWhatIsWrong(t *testing.T) {
	for _, tt := range []struct{ secret, says string }{
		{"abc", "its 3 characters are not a multiple of 4 (standard base64 pads its end with =: is one cut off?)"},
		{"c2VjcmV0LWZvci10aGUtZ2lneWEtbGFiLTEyMzQ1Ng", "its 42 characters are not a multiple of 4"},
		{"c2VjcmV0LWZvci10aGUtZ2lneWEtbGFi_TEyMzQ1Ng==", `character 33 is not in the standard base64 alphabet (A-Z a-z 0-9 + /, then = to pad the end; URL-safe base64's - and _ are not in it: write them as + and /)`},
		{"abc!", `character 4 is not in the standard base64 alphabet`},
		{"hé11abcd", `character 2 is not in the standard base64 alphabet`},
		{"YW==YWJjYWJjYWJjYWJjYWJj", "it goes on after the = at character 3, which may only end it"},
		{"abcdefgh=", "the = at character 9 comes too early: = only pads the end to a multiple of 4 characters"},
		{"ab=d", "the = at character 3 comes too early"},
		{"c2Vj cmV0\n!", `character 9 is not in`}, // counted without the spaces and line ends skipped
	} {
		err := socius.ValidateSecret(tt.secret)
		if err == nil || !strings.HasPrefix(err.Error(), "secret is not standard base64: "+tt.says) || strings.Contains(err.Error(), "illegal base64") {
			t.Errorf("ValidateSecret(%q) = %v; want %q", tt.secret, err, tt.says)
		}
	}
}

// TestSecretProblemQuotesNoCharacter: a secret refused for a character standard base64
// does not use is refused saying where, not what, the character is: the message
// reaches logs and standard error (a seed's or an import's bad line, a usage error),
// and the character is one of the secret's. It was quoted ("character 5 is '-'"), and
// a - or _ named as URL-safe base64's; the message is now the same whichever it is.
func TestSecretProblemQuotesNoCharacter(t *testing.T) {
	want := "secret is not standard base64: character 5 is not in the standard base64 alphabet (A-Z a-z 0-9 + /, then = to pad the end; URL-safe base64's - and _ are not in it: write them as + and /)"
	for _, char := range []string{"-", "_", "!", "é", "\x00", "."} {
		secret := "abcd" + char + "fghijklmnopqrstuvw"
		if err := socius.ValidateSecret(secret); err == nil || err.Error() != want {
			t.Errorf("ValidateSecret(%q) = %v; want %q, which says nothing of the character", secret, err, want)
		}
	}
}

func TestValidAPIKey(t *testing.T) {
	for _, ok := range []string{"3_x", "A", "~!#", strings.Repeat("k", 128)} {
		if !socius.ValidAPIKey(ok) || !socius.ValidUserKey(ok) {
			t.Errorf("ValidAPIKey(%q) or ValidUserKey refuses it", ok)
		}
	}
	for _, bad := range []string{"", "3_a b", " 3_x", "3_x\t", "3_\x7f", "3_é", strings.Repeat("k", 129)} {
		if socius.ValidAPIKey(bad) || socius.ValidUserKey(bad) {
			t.Errorf("ValidAPIKey(%q) or ValidUserKey accepts it", bad)
		}
	}
}

// TestKeyAllows: a key's methods match the full name in any ASCII letter case; a name
// without a namespace, as builds before 2026-11-29 stored `--methods getUserInfo`,
// stands for socialize's method; no Unicode folding (the Kelvin sign is not k).
func TestKeyAllows(t *testing.T) {
	for _, c := range []struct {
		methods []string
		method  string
		want    bool
	}{
		{nil, "socialize.deleteAccount", true},
		{[]string{"socialize.getUserInfo"}, "socialize.getUserInfo", true},
		{[]string{"Socialize.GETUSERINFO"}, "socialize.getUserInfo", true},
		{[]string{"getUserInfo"}, "socialize.getUserInfo", true},
		{[]string{"getuserinfo"}, "socialize.getUserInfo", true},
		{[]string{"getUserInfo"}, "socialize.setUserInfo", false},
		{[]string{"socialize.getUserInfo"}, "socialize.setUserInfo", false},
		{[]string{"accounts.getUserInfo"}, "socialize.getUserInfo", false},
		{[]string{"socialize.getTo\u212aen"}, "socialize.getToken", false},
		{[]string{"getTo\u212aen"}, "socialize.getToken", false},
		{[]string{"socialize."}, "socialize.getToken", false},
		{[]string{""}, "socialize.getToken", false},
	} {
		k := &socius.Key{Methods: c.methods}
		if got := k.Allows(c.method); got != c.want {
			t.Errorf("Key{Methods: %q}.Allows(%q) = %v, want %v", c.methods, c.method, got, c.want)
		}
	}
}
