package storetest

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/socius/socius"
)

var siteTests = []test{
	{"CreateAndGet", func(t *testing.T, s socius.Store) {
		want := createSite(t, s, "3_site", base)
		got, err := s.Site(t.Context(), "3_site")
		if err != nil {
			t.Fatalf("Site: %v", err)
		}
		checkSite(t, got, want)
	}},

	{"CreateTaken", func(t *testing.T, s socius.Store) {
		want := createSite(t, s, "3_site", base)
		err := s.CreateSite(t.Context(), &socius.Site{APIKey: "3_site", Secret: "b3RoZXItc2VjcmV0LTAxMjM0NTY=", Name: "Other", CreatedAt: at(time.Hour)})
		wantErr(t, "CreateSite of a taken apiKey", err, socius.ErrExists)
		got, err := s.Site(t.Context(), "3_site")
		if err != nil {
			t.Fatalf("Site: %v", err)
		}
		checkSite(t, got, want)
	}},

	{"NotFound", func(t *testing.T, s socius.Store) {
		createSite(t, s, "3_site", base)
		for _, apiKey := range []string{"3_other", "3_SITE", "3_sit", ""} {
			_, err := s.Site(t.Context(), apiKey)
			wantErr(t, "Site("+apiKey+")", err, socius.ErrNotFound)
		}
	}},

	{"ListInCreationOrder", func(t *testing.T, s socius.Store) {
		sites, err := s.Sites(t.Context())
		if err != nil {
			t.Fatalf("Sites: %v", err)
		}
		checkSites(t, sites)

		// By creation time; equal times in the order of creation, not of apiKey.
		c := createSite(t, s, "3_c", at(0))
		a := createSite(t, s, "3_a", at(time.Second))
		b := createSite(t, s, "3_b", at(time.Second))
		first := createSite(t, s, "3_z", at(-time.Hour))
		sites, err = s.Sites(t.Context())
		if err != nil {
			t.Fatalf("Sites: %v", err)
		}
		checkSites(t, sites, first, c, a, b)
	}},

	{"PutCreates", func(t *testing.T, s socius.Store) {
		want := &socius.Site{APIKey: "3_put", Secret: "cHV0LXNlY3JldC0wMTIzNDU2Nzg=", Name: "Put", CreatedAt: base}
		if err := s.PutSite(t.Context(), want); err != nil {
			t.Fatalf("PutSite: %v", err)
		}
		got, err := s.Site(t.Context(), "3_put")
		if err != nil {
			t.Fatalf("Site: %v", err)
		}
		checkSite(t, got, want)
		sites, err := s.Sites(t.Context())
		if err != nil {
			t.Fatalf("Sites: %v", err)
		}
		checkSites(t, sites, want)
	}},

	{"PutReplaces", func(t *testing.T, s socius.Store) {
		other := createSite(t, s, "3_other", at(-time.Hour))
		createSite(t, s, "3_site", base)
		k := createKey(t, s, "3_site", "Akey", base, "socialize.getUserInfo")
		login(t, s, "3_site", "u1", patch(map[socius.Field]string{socius.FirstName: "Ada"}), base)

		// The secret and name change; the creation time, the keys and the users stay.
		put := &socius.Site{APIKey: "3_site", Secret: "bmV3LXNlY3JldC0wMTIzNDU2Nzg=", Name: "Renamed", CreatedAt: at(time.Hour)}
		if err := s.PutSite(t.Context(), put); err != nil {
			t.Fatalf("PutSite: %v", err)
		}
		want := &socius.Site{APIKey: "3_site", Secret: put.Secret, Name: "Renamed", CreatedAt: base}
		got, err := s.Site(t.Context(), "3_site")
		if err != nil {
			t.Fatalf("Site: %v", err)
		}
		checkSite(t, got, want)
		sites, err := s.Sites(t.Context())
		if err != nil {
			t.Fatalf("Sites: %v", err)
		}
		checkSites(t, sites, other, want)

		gotKey, err := s.Key(t.Context(), "Akey")
		if err != nil {
			t.Fatalf("Key after PutSite: %v", err)
		}
		checkKey(t, gotKey, k)
		u := getUser(t, s, "3_site", "u1")
		if u.Profile[socius.FirstName] != "Ada" {
			t.Errorf("user after PutSite: firstName %q, want %q", u.Profile[socius.FirstName], "Ada")
		}
	}},
}

// publicKey is a PEM block as bearer-JWT keys carry: several lines, '+', '/' and '='.
const publicKey = `-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAu1SU1LfVLPHCozMxH2Mo
4lgOEePzNm0tRgeLezV6ffAt0gunVTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u
+qKhbwKfBstIs+bMY2Zkp18gnTxKLxoS2tFczGkPLPgizskuemMghRniWaoLcyeh
kd3qqGElvW/VDL5AaWTg0nLVkjRo9z+40RQzuVaE8AkAFmxZzow3x+VJYKdjykkJ
0iT9wCS0DRTXu269V264Vf/3jvredZiKRkgwlL9xNAwxXFg0x/XFw005UWVRIkdg
cKWTjpBP2dPwVZ4WWC+9aGVd+Gyn1o0CLelf4rEjGoXbAAEgAqeGUxrcIlbjXfbc
mwIDAQAB
-----END PUBLIC KEY-----
`

var keyTests = []test{
	{"SwapSecrets", func(t *testing.T, s socius.Store) {
		sw, ok := s.(socius.SecretSwapper)
		if !ok {
			t.Skip("the store is no socius.SecretSwapper")
		}
		ctx := t.Context()
		site := createSite(t, s, "3_site", base)
		k := createKey(t, s, "3_site", "Akey", base, "socialize.getUserInfo")
		const a, b = "c3dhcHBlZC1zZWNyZXQtMDEyMzQ1Njc=", "YW5vdGhlci1zZWNyZXQtMDEyMzQ1Njc="
		// While the value is the one read: replaced, and nothing else changes.
		if ok, err := sw.SwapSiteSecret(ctx, "3_site", site.Secret, a); !ok || err != nil {
			t.Fatalf("SwapSiteSecret from the stored value: %v, %v", ok, err)
		}
		if ok, err := sw.SwapKeySecret(ctx, "Akey", k.Secret, a); !ok || err != nil {
			t.Fatalf("SwapKeySecret from the stored value: %v, %v", ok, err)
		}
		if got, err := s.Site(ctx, "3_site"); err != nil || got.Secret != a || got.Name != site.Name {
			t.Errorf("site after the swap: %+v %v", got, err)
		}
		if got, err := s.Key(ctx, "Akey"); err != nil || got.Secret != a || len(got.Methods) != 1 || got.APIKey != "3_site" {
			t.Errorf("key after the swap: %+v %v", got, err)
		}
		// From a value no longer stored (changed meanwhile): nothing happens.
		if ok, err := sw.SwapSiteSecret(ctx, "3_site", site.Secret, b); ok || err != nil {
			t.Errorf("SwapSiteSecret from a stale value: %v, %v", ok, err)
		}
		if ok, err := sw.SwapKeySecret(ctx, "Akey", k.Secret, b); ok || err != nil {
			t.Errorf("SwapKeySecret from a stale value: %v, %v", ok, err)
		}
		if got, _ := s.Key(ctx, "Akey"); got == nil || got.Secret != a {
			t.Errorf("key after a stale swap: %+v", got)
		}
		// A key or site that is not there (deleted meanwhile) is not made.
		if err := s.DeleteKey(ctx, "Akey"); err != nil {
			t.Fatal(err)
		}
		if ok, err := sw.SwapKeySecret(ctx, "Akey", a, b); ok || err != nil {
			t.Errorf("SwapKeySecret of a deleted key: %v, %v", ok, err)
		}
		if _, err := s.Key(ctx, "Akey"); !errors.Is(err, socius.ErrNotFound) {
			t.Errorf("the deleted key after a swap: %v", err)
		}
		if ok, err := sw.SwapSiteSecret(ctx, "3_nosite", a, b); ok || err != nil {
			t.Errorf("SwapSiteSecret of no site: %v, %v", ok, err)
		}
		if _, err := s.Site(ctx, "3_nosite"); !errors.Is(err, socius.ErrNotFound) {
			t.Errorf("no site after a swap: %v", err)
		}
	}},
	{"CreateAndGet", func(t *testing.T, s socius.Store) {
		createSite(t, s, "3_site", base)
		keys := []*socius.Key{
			{UserKey: "Aall", APIKey: "3_site", Secret: "YWxsLXNlY3JldC0wMTIzNDU2Nzg=", CreatedAt: base},
			{UserKey: "Asome", APIKey: "3_site", Secret: "c29tZS1zZWNyZXQtMDEyMzQ1Njc=", CreatedAt: at(time.Second),
				Methods: []string{"socialize.setUserInfo", "socialize.getUserInfo", "accounts.search"}},
			{UserKey: "Ajwt", APIKey: "3_site", Secret: "and0LXNlY3JldC0wMTIzNDU2Nzg=", CreatedAt: at(2 * time.Second),
				Methods: []string{"socialize.getToken"}, PublicKey: publicKey},
		}
		for _, k := range keys {
			if err := s.CreateKey(t.Context(), k); err != nil {
				t.Fatalf("CreateKey(%q): %v", k.UserKey, err)
			}
		}
		for _, want := range keys {
			got, err := s.Key(t.Context(), want.UserKey)
			if err != nil {
				t.Fatalf("Key(%q): %v", want.UserKey, err)
			}
			checkKey(t, got, want)
		}
	}},

	{"PutCreatesAndReplaces", func(t *testing.T, s socius.Store) {
		createSite(t, s, "3_site", base)
		createSite(t, s, "3_other", base)
		k := &socius.Key{UserKey: "Aput", APIKey: "3_site", Secret: "cHV0LXNlY3JldC0wMTIzNDU2Nzg=", CreatedAt: base,
			Methods: []string{"socialize.getUserInfo"}}
		if err := s.PutKey(t.Context(), k); err != nil {
			t.Fatalf("PutKey (create): %v", err)
		}
		got, err := s.Key(t.Context(), "Aput")
		if err != nil {
			t.Fatalf("Key: %v", err)
		}
		checkKey(t, got, k)
		// Replacing changes the secret, methods and public key; the creation time stays.
		k2 := &socius.Key{UserKey: "Aput", APIKey: "3_site", Secret: "bmV3LXNlY3JldC0wMTIzNDU2Nzg=", CreatedAt: at(time.Hour),
			Methods: []string{"socialize.setUserInfo", "socialize.logout"}, PublicKey: publicKey}
		if err := s.PutKey(t.Context(), k2); err != nil {
			t.Fatalf("PutKey (replace): %v", err)
		}
		got, err = s.Key(t.Context(), "Aput")
		if err != nil {
			t.Fatalf("Key: %v", err)
		}
		want := *k2
		want.CreatedAt = base
		checkKey(t, got, &want)
		keys, err := s.Keys(t.Context(), "3_site")
		if err != nil {
			t.Fatalf("Keys: %v", err)
		}
		checkKeys(t, keys, &want)
		// The userKey of another site is taken; a missing site is not found.
		err = s.PutKey(t.Context(), &socius.Key{UserKey: "Aput", APIKey: "3_other", Secret: k.Secret, CreatedAt: base})
		wantErr(t, "PutKey of another site's userKey", err, socius.ErrExists)
		err = s.PutKey(t.Context(), &socius.Key{UserKey: "Anew", APIKey: "3_none", Secret: k.Secret, CreatedAt: base})
		wantErr(t, "PutKey on an unknown site", err, socius.ErrNotFound)
		if got, err := s.Key(t.Context(), "Aput"); err != nil || got.APIKey != "3_site" || got.Secret != k2.Secret {
			t.Errorf("after refused PutKeys: %+v, %v", got, err)
		}
	}},

	{"PutKeepsTokens", func(t *testing.T, s socius.Store) {
		// A key rotated (PutKey), created again (refused) or whose site is put keeps
		// the tokens it obtained: PutKey and PutSite replace in place, never through a
		// delete that would take the tokens with it.
		createSite(t, s, "3_site", base)
		createKey(t, s, "3_site", "Akey", base, "socialize.getToken")
		tok := newToken("t-akey", "3_site", "u1")
		tok.UserKey = "Akey"
		createToken(t, s, tok)
		if err := s.PutKey(t.Context(), &socius.Key{UserKey: "Akey", APIKey: "3_site", Secret: "cm90YXRlZC1rZXktc2VjcmV0", CreatedAt: at(time.Hour)}); err != nil {
			t.Fatalf("PutKey: %v", err)
		}
		checkTokens(t, s, tok)
		err := s.CreateKey(t.Context(), &socius.Key{UserKey: "Akey", APIKey: "3_site", Secret: "b3RoZXItc2VjcmV0LTAxMjM0NTY=", CreatedAt: at(time.Hour)})
		wantErr(t, "CreateKey of the existing key", err, socius.ErrExists)
		checkTokens(t, s, tok)
		if err := s.PutSite(t.Context(), &socius.Site{APIKey: "3_site", Secret: "bmV3LXNlY3JldC0wMTIzNDU2Nzg=", Name: "Renamed", CreatedAt: base}); err != nil {
			t.Fatalf("PutSite: %v", err)
		}
		checkTokens(t, s, tok)
		// The key still obtains tokens, and its deletion still takes them.
		tok2 := newToken("t-akey-2", "3_site", "u2")
		tok2.UserKey = "Akey"
		createToken(t, s, tok2)
		if err := s.DeleteKey(t.Context(), "Akey"); err != nil {
			t.Fatalf("DeleteKey: %v", err)
		}
		for _, tk := range []*socius.Token{tok, tok2} {
			_, err := s.Token(t.Context(), tk.Hash)
			wantErr(t, "a token of the deleted key", err, socius.ErrNotFound)
		}
	}},

	{"DeleteManyTokens", func(t *testing.T, s socius.Store) {
		// A key with more tokens than one batch deletes: every one of them goes, and
		// none comes back with a key created again under its name.
		createSite(t, s, "3_site", base)
		createKey(t, s, "3_site", "Amany", base)
		createKey(t, s, "3_site", "Aother", base)
		n := 2*socius.MintedBatch + socius.MintedBatch/2
		many := make([]*socius.Token, n)
		for i := range many {
			tok := newToken(fmt.Sprintf("m%d", i), "3_site", fmt.Sprintf("u%d", i%7))
			tok.UserKey = "Amany"
			many[i] = createToken(t, s, tok)
		}
		other := newToken("other", "3_site", "u1")
		other.UserKey = "Aother"
		kept := []*socius.Token{createToken(t, s, other), createToken(t, s, newToken("site", "3_site", "u1"))}
		if err := s.DeleteKey(t.Context(), "Amany"); err != nil {
			t.Fatalf("DeleteKey: %v", err)
		}
		_, err := s.Key(t.Context(), "Amany")
		wantErr(t, "Key after DeleteKey", err, socius.ErrNotFound)
		// Gone once DeleteKey returned (only one cut short leaves some, for a key
		// created again to remove), and not back with the key created again.
		for i, when := range []string{"after DeleteKey", "after the key was created again"} {
			if i == 1 {
				createKey(t, s, "3_site", "Amany", at(time.Hour))
			}
			left := 0
			for _, tok := range many {
				if _, err := s.Token(t.Context(), tok.Hash); err == nil {
					left++
				} else {
					wantErr(t, "a token of the deleted key", err, socius.ErrNotFound)
				}
			}
			if left != 0 {
				t.Errorf("%s: %d of the deleted key's %d tokens left", when, left, n)
			}
			checkTokens(t, s, kept...)
			if t.Failed() {
				return
			}
		}
	}},

	{"UnknownSite", func(t *testing.T, s socius.Store) {
		createSite(t, s, "3_site", base)
		err := s.CreateKey(t.Context(), &socius.Key{UserKey: "Akey", APIKey: "3_none", Secret: "a2V5LXNlY3JldC0wMTIzNDU2Nzg5", CreatedAt: base})
		wantErr(t, "CreateKey on an unknown site", err, socius.ErrNotFound)
		_, err = s.Key(t.Context(), "Akey")
		wantErr(t, "Key after a failed CreateKey", err, socius.ErrNotFound)
		keys, err := s.Keys(t.Context(), "")
		if err != nil {
			t.Fatalf("Keys: %v", err)
		}
		checkKeys(t, keys)
	}},

	{"Taken", func(t *testing.T, s socius.Store) {
		createSite(t, s, "3_a", base)
		createSite(t, s, "3_b", base)
		want := createKey(t, s, "3_a", "Akey", base, "socialize.getUserInfo")
		// A userKey is unique across sites.
		for _, apiKey := range []string{"3_a", "3_b"} {
			err := s.CreateKey(t.Context(), &socius.Key{UserKey: "Akey", APIKey: apiKey, Secret: "b3RoZXItc2VjcmV0LTAxMjM0NTY=", CreatedAt: at(time.Hour)})
			wantErr(t, "CreateKey of a taken userKey on "+apiKey, err, socius.ErrExists)
		}
		got, err := s.Key(t.Context(), "Akey")
		if err != nil {
			t.Fatalf("Key: %v", err)
		}
		checkKey(t, got, want)
	}},

	{"NotFound", func(t *testing.T, s socius.Store) {
		createSite(t, s, "3_site", base)
		createKey(t, s, "3_site", "Akey", base)
		for _, userKey := range []string{"Anone", "AKEY", "3_site", ""} {
			_, err := s.Key(t.Context(), userKey)
			wantErr(t, "Key("+userKey+")", err, socius.ErrNotFound)
		}
	}},

	{"List", func(t *testing.T, s socius.Store) {
		createSite(t, s, "3_a", base)
		createSite(t, s, "3_b", base)
		createSite(t, s, "3_empty", base)
		// By creation time; equal times in the order of creation, not of userKey.
		a1 := createKey(t, s, "3_a", "Az", at(0))
		b1 := createKey(t, s, "3_b", "Ay", at(time.Second), "socialize.getUserInfo")
		a2 := createKey(t, s, "3_a", "Ax", at(2*time.Second))
		a3 := createKey(t, s, "3_a", "Aw", at(2*time.Second), "socialize.setUserInfo", "socialize.logout")
		b0 := createKey(t, s, "3_b", "Av", at(-time.Hour))

		for _, c := range []struct {
			apiKey string
			want   []*socius.Key
		}{
			{"3_a", []*socius.Key{a1, a2, a3}},
			{"3_b", []*socius.Key{b0, b1}},
			{"3_empty", nil},
			{"", []*socius.Key{b0, a1, b1, a2, a3}},
		} {
			keys, err := s.Keys(t.Context(), c.apiKey)
			if err != nil {
				t.Fatalf("Keys(%q): %v", c.apiKey, err)
			}
			checkKeys(t, keys, c.want...)
		}
	}},

	{"Delete", func(t *testing.T, s socius.Store) {
		createSite(t, s, "3_site", base)
		k1 := createKey(t, s, "3_site", "Ak1", base)
		createKey(t, s, "3_site", "Ak2", at(time.Second))
		k3 := createKey(t, s, "3_site", "Ak3", at(2*time.Second))
		// The key's tokens go with it (a key created again under its name must not
		// bring them back); another key's tokens and the site's stay.
		ofKey := func(text, userKey string) *socius.Token {
			tok := newToken(text, "3_site", "u1")
			tok.UserKey = userKey
			return createToken(t, s, tok)
		}
		gone1, gone2 := ofKey("t-ak2-a", "Ak2"), ofKey("t-ak2-b", "Ak2")
		kept := []*socius.Token{ofKey("t-ak1", "Ak1"), ofKey("t-site", "")}

		if err := s.DeleteKey(t.Context(), "Ak2"); err != nil {
			t.Fatalf("DeleteKey: %v", err)
		}
		_, err := s.Key(t.Context(), "Ak2")
		wantErr(t, "Key after DeleteKey", err, socius.ErrNotFound)
		for _, tok := range []*socius.Token{gone1, gone2} {
			_, err := s.Token(t.Context(), tok.Hash)
			wantErr(t, "a token of the deleted key", err, socius.ErrNotFound)
		}
		for _, tok := range kept {
			checkToken(t, getToken(t, s, tok.Hash), tok)
		}
		createKey(t, s, "3_site", "Ak2", at(3*time.Second))
		_, err = s.Token(t.Context(), gone1.Hash)
		wantErr(t, "a token of the deleted key, the key created again", err, socius.ErrNotFound)
		wantErr(t, "DeleteKey of the key created again", s.DeleteKey(t.Context(), "Ak2"), nil)
		for _, apiKey := range []string{"3_site", ""} {
			keys, err := s.Keys(t.Context(), apiKey)
			if err != nil {
				t.Fatalf("Keys(%q): %v", apiKey, err)
			}
			checkKeys(t, keys, k1, k3)
		}

		wantErr(t, "DeleteKey again", s.DeleteKey(t.Context(), "Ak2"), socius.ErrNotFound)
		wantErr(t, "DeleteKey of an unknown key", s.DeleteKey(t.Context(), "Anone"), socius.ErrNotFound)
		if _, err := s.Site(t.Context(), "3_site"); err != nil {
			t.Errorf("Site after DeleteKey: %v", err)
		}
	}},
}
