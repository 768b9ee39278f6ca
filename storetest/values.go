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
