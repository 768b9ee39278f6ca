package storetest

import (
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/socius/socius"
)

// oddValues are profile values that a store must keep byte for byte: no normalization,
// no trimming, no escaping, no truncation. None is longer than a URL may be (2,048
// characters); those longer than 1,000 characters go to the URL fields only.
var oddValues = []struct{ name, value string }{
	{"accents", "Zoë Ångström-Øre, façade"},
	{"decomposed", "Zoe\u0308 e\u0301"}, // must not become NFC
	{"cjk", "日本語のテキスト 中文 한국어"},
	{"rtl", "שלום عربى"},
	{"emoji", "👩🏽‍💻 🎉 🇫🇷 ❤️"},
	{"single quotes", "O'Brien ''"},
	{"double quotes", `say "hi" ""`},
	{"backslashes", `C:\path\to\file \' \"`},
	{"sql", `'); DROP TABLE users; -- `},
	{"like wildcards", "100% _under_ %"},
	{"whitespace", "  leading, trailing  \t\n\r\n"},
	{"invisible", "zero\u200bwidth\ufeffbom\u2028line"},
	{"replacement char", "\ufffd"},
	{"html", `<script>alert("x")</script>&amp;`},
	{"json", `{"a": [1, "b"], "c": null}`},
	{"comma", "a,b,,c"},
	{"1000 ascii", strings.Repeat("a", 1000)},
	{"1000 two-byte", strings.Repeat("é", 1000)},
	{"1000 emoji", strings.Repeat("😀", 1000)},
	{"2048 url", "https://example.com/" + strings.Repeat("ä/", (2048-20)/2)},
}

// textFields are the fields that take any text, unlike gender and age.
var textFields = []socius.Field{socius.Nickname, socius.PhotoURL, socius.ThumbnailURL, socius.FirstName, socius.LastName, socius.Email}

var valueTests = []test{
	{"UnstorableKeysFindNothing", func(t *testing.T, s socius.Store) {
		// Keys that no row can hold (a NUL byte, invalid UTF-8, which PostgreSQL
		// refuses as text) find nothing and list nothing, in every store: never a
		// database error. The server checks its own inputs first; the emulator's
		// console and the admin commands pass theirs on.
		ctx := t.Context()
		createSite(t, s, "3_site", base)
		login(t, s, "3_site", "u1", nil, base)
		for _, bad := range []string{"3_\x00", "3_\xff", "u\x00", "u\xff\xfe"} {
			_, err := s.Site(ctx, bad)
			wantErr(t, fmt.Sprintf("Site(%q)", bad), err, socius.ErrNotFound)
			_, err = s.Key(ctx, bad)
			wantErr(t, fmt.Sprintf("Key(%q)", bad), err, socius.ErrNotFound)
			_, err = s.User(ctx, bad, "u1")
			wantErr(t, fmt.Sprintf("User(%q, u1)", bad), err, socius.ErrNotFound)
			_, err = s.User(ctx, "3_site", bad)
			wantErr(t, fmt.Sprintf("User(3_site, %q)", bad), err, socius.ErrNotFound)
			_, err = s.Token(ctx, bad)
			wantErr(t, fmt.Sprintf("Token(%q)", bad), err, socius.ErrNotFound)
			for name, err := range map[string]error{
				"UpdateProfile": s.UpdateProfile(ctx, "3_site", bad, patch(map[socius.Field]string{socius.Nickname: "x"}), base),
				"Logout":        s.Logout(ctx, "3_site", bad, base),
				"DeleteUser":    s.DeleteUser(ctx, "3_site", bad, base),
				"RenameUser":    s.RenameUser(ctx, "3_site", bad, "u9"),
				"DeleteKey":     s.DeleteKey(ctx, bad),
			} {
				wantErr(t, fmt.Sprintf("%s(%q)", name, bad), err, socius.ErrNotFound)
			}
			if keys, err := s.Keys(ctx, bad); err != nil || len(keys) != 0 {
				t.Errorf("Keys(%q) = %d keys, %v; want none", bad, len(keys), err)
			}
			if users, err := s.Users(ctx, bad, "", 10); err != nil || len(users) != 0 {
				t.Errorf("Users(%q) = %d users, %v; want none", bad, len(users), err)
			}
			if users, err := s.Users(ctx, "3_site", bad, 10); err != nil {
				t.Errorf("Users(3_site, after %q): %v", bad, err)
			} else if bad[0] == 'u' && (len(users) != 0) != (bad < "u1") {
				t.Errorf("Users(3_site, after %q) = %d users", bad, len(users))
			}
			if n, err := s.CountUsers(ctx, bad); err != nil || n != 0 {
				t.Errorf("CountUsers(%q) = %d, %v; want 0", bad, n, err)
			}
			if n, err := s.DeleteUsers(ctx, bad); err != nil || n != 0 {
				t.Errorf("DeleteUsers(%q) = %d, %v; want 0", bad, n, err)
			}
		}
		getUser(t, s, "3_site", "u1")
	}},
	{"ProfileRoundTrip", func(t *testing.T, s socius.Store) {
		createSite(t, s, "3_site", base)
		for i, v := range oddValues {
			// Through the patch of a first login, and through an update.
			p := &socius.Patch{}
			var want socius.Profile
			for _, f := range textFields {
				if f.IsURL() || utf8.RuneCountInString(v.value) <= socius.MaxTextLen {
					p.Set(f, v.value)
					want[f] = v.value
				}
			}
			uid := fmt.Sprintf("login-%d", i)
			login(t, s, "3_site", uid, p, base)
			if got := getUser(t, s, "3_site", uid).Profile; got != want {
				t.Errorf("%s, set by Login: got %q, want %q", v.name, got, want)
			}
			uid = fmt.Sprintf("update-%d", i)
			login(t, s, "3_site", uid, nil, base)
			updateProfile(t, s, "3_site", uid, p, at(time.Second))
			if got := getUser(t, s, "3_site", uid).Profile; got != want {
				t.Errorf("%s, set by UpdateProfile: got %q, want %q", v.name, got, want)
			}
		}
	}},

	{"GenderAndAge", func(t *testing.T, s socius.Store) {
		createSite(t, s, "3_site", base)
		login(t, s, "3_site", "u1", nil, base)
		for _, c := range []struct{ gender, age string }{{"m", "0"}, {"f", "150"}, {"u", "42"}, {"", ""}, {"f", "7"}} {
			updateProfile(t, s, "3_site", "u1", patch(map[socius.Field]string{socius.Gender: c.gender, socius.Age: c.age}), at(time.Second))
			u := getUser(t, s, "3_site", "u1")
			if u.Profile[socius.Gender] != c.gender || u.Profile[socius.Age] != c.age {
				t.Errorf("gender, age: got %q, %q; want %q, %q", u.Profile[socius.Gender], u.Profile[socius.Age], c.gender, c.age)
			}
		}
	}},

	{"IdentifiersRoundTrip", func(t *testing.T, s socius.Store) {
		// apiKeys, userKeys and UIDs are printable ASCII, of any punctuation; they match
		// exactly, wildcards and case included.
		site := &socius.Site{
			APIKey:    `3_a'b"c%_\;--` + strings.Repeat("x", 100),
			Secret:    "c2VjcmV0LXdpdGgtKy9hbmQtPS0wMTIzNDU2Nzg5Kw==",
			Name:      `Café "Zoë" 🎉 O'Brien`,
			CreatedAt: base,
		}
		if err := s.CreateSite(t.Context(), site); err != nil {
			t.Fatalf("CreateSite: %v", err)
		}
		got, err := s.Site(t.Context(), site.APIKey)
		if err != nil {
			t.Fatalf("Site: %v", err)
		}
		checkSite(t, got, site)
		_, err = s.Site(t.Context(), `3_a'b"c%_\;--%`)
		wantErr(t, "Site of a wildcard pattern", err, socius.ErrNotFound)

		k := createKey(t, s, site.APIKey, `A'"%_\ key`, base, "socialize.getUserInfo", "Socialize.SetUserInfo")
		gotKey, err := s.Key(t.Context(), k.UserKey)
		if err != nil {
			t.Fatalf("Key: %v", err)
		}
		checkKey(t, gotKey, k)

		uids := []string{"a_c", "abc", "a%", "ab", `'"\`, "with space", " ", "~!@#$^&*()+={}[]|:;<>,.?/`", strings.Repeat("U", socius.MaxUIDLen)}
		for i, uid := range uids {
			login(t, s, site.APIKey, uid, patch(map[socius.Field]string{socius.Nickname: fmt.Sprint(i)}), base)
		}
		for i, uid := range uids {
			if u := getUser(t, s, site.APIKey, uid); u.UID != uid || u.Profile[socius.Nickname] != fmt.Sprint(i) {
				t.Errorf("User(%q): UID %q, nickname %q; want %q, %q", uid, u.UID, u.Profile[socius.Nickname], uid, fmt.Sprint(i))
			}
		}
		if err := s.RenameUser(t.Context(), site.APIKey, "a_c", `new'"%`); err != nil {
			t.Fatalf("RenameUser: %v", err)
		}
		if u := getUser(t, s, site.APIKey, `new'"%`); u.Profile[socius.Nickname] != "0" {
			t.Errorf("renamed user: nickname %q, want %q", u.Profile[socius.Nickname], "0")
		}
		if u := getUser(t, s, site.APIKey, "abc"); u.Profile[socius.Nickname] != "1" {
			t.Errorf("user abc after renaming a_c: nickname %q, want %q", u.Profile[socius.Nickname], "1")
		}
	}},
}
