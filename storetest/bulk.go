package storetest

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/socius/socius"
)

// userBulkTests cover the methods of exports, imports and resets: Users, PutUser,
// CountUsers and DeleteUsers.
var userBulkTests = []test{
	{"UsersPages", func(t *testing.T, s socius.Store) {
		createSite(t, s, "3_a", base)
		createSite(t, s, "3_b", base)
		// Byte order, not a collation's: upper case before lower case, punctuation
		// where its code puts it, digits as text, a prefix before its extensions.
		uids := []string{"a", "B", "a ", "a_c", "abc", "a%", "10", "9", "~", " ", "Zz", "z", "ab", strings.Repeat("U", socius.MaxUIDLen)}
		want := make(map[string]*socius.User)
		for i, uid := range uids {
			now := at(time.Duration(i) * time.Second)
			if i%2 == 0 {
				login(t, s, "3_a", uid, patch(map[socius.Field]string{socius.Nickname: fmt.Sprint(i)}), now)
				want[uid] = &socius.User{APIKey: "3_a", UID: uid, Profile: socius.Profile{socius.Nickname: fmt.Sprint(i)},
					CreatedAt: now, UpdatedAt: now, LoginAt: now, LoggedIn: true}
			} else {
				u := &socius.User{APIKey: "3_a", UID: uid, Profile: fullProfile(fmt.Sprint(i)),
					CreatedAt: now, UpdatedAt: now.Add(time.Minute)}
				putUser(t, s, u)
				want[uid] = u
			}
		}
		// Another site's users, their UIDs among the first site's.
		for _, uid := range []string{"0", "a", "aa", "b", "~~"} {
			login(t, s, "3_b", uid, nil, base)
		}
		order := slices.Sorted(slices.Values(uids))

		for _, limit := range []int{1, 3, 5, len(uids) - 1, len(uids), len(uids) + 10} {
			var got []string
			after, pages := "", 0
			for {
				page := users(t, s, "3_a", after, limit)
				if len(page) > limit {
					t.Fatalf("limit %d, after %q: got %d users", limit, after, len(page))
				}
				if len(page) == 0 {
					break
				}
				for _, u := range page {
					checkUser(t, u, want[u.UID])
					got = append(got, u.UID)
				}
				after = page[len(page)-1].UID
				if pages++; pages > len(uids) {
					t.Fatalf("limit %d: more pages than users", limit)
				}
			}
			if !slices.Equal(got, order) {
				t.Errorf("limit %d: got UIDs\n%q\nwant\n%q", limit, got, order)
			}
			// Full pages until the last.
			if wantPages := (len(uids) + limit - 1) / limit; pages != wantPages {
				t.Errorf("limit %d: %d pages, want %d", limit, pages, wantPages)
			}
		}

		for _, c := range []struct {
			apiKey, after string
			limit         int
			want          []string
		}{
			{"3_a", "", 4, order[:4]},
			{"3_a", "a!", 3, []string{"a%", "a_c", "ab"}}, // after a UID that does not exist
			{"3_a", "a", 2, []string{"a ", "a%"}},
			{"3_a", "~", 10, nil},
			{"3_a", "~~", 10, nil}, // past the end
			{"3_a", "", 0, nil},
			{"3_b", "", 10, []string{"0", "a", "aa", "b", "~~"}},
			{"3_b", "a", 2, []string{"aa", "b"}},
			{"3_none", "", 10, nil},
		} {
			var got []string
			for _, u := range users(t, s, c.apiKey, c.after, c.limit) {
				if u.APIKey != c.apiKey {
					t.Errorf("Users(%q, %q, %d): a user of %q", c.apiKey, c.after, c.limit, u.APIKey)
				}
				got = append(got, u.UID)
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("Users(%q, %q, %d): got %q, want %q", c.apiKey, c.after, c.limit, got, c.want)
			}
		}
	}},

	{"PutUserCreates", func(t *testing.T, s socius.Store) {
		createSite(t, s, "3_site", base)
		paris := time.FixedZone("CET", 3600)
		users := []*socius.User{
			// Every field, times in another location.
			{APIKey: "3_site", UID: "u1", Profile: fullProfile("1"),
				CreatedAt: at(-48 * time.Hour).In(paris), UpdatedAt: at(-24 * time.Hour).In(paris), LoginAt: at(-time.Hour).In(paris), LoggedIn: true},
			// Never logged in: LoginAt stays zero.
			{APIKey: "3_site", UID: "u2", Profile: socius.Profile{socius.Email: "u2@example.com"},
				CreatedAt: at(-48 * time.Hour), UpdatedAt: at(-48 * time.Hour)},
			// Logged out, with an empty profile.
			{APIKey: "3_site", UID: "u3", CreatedAt: base, UpdatedAt: base, LoginAt: base},
		}
		// Twice: an import that is run again changes nothing.
		for range 2 {
			for _, u := range users {
				putUser(t, s, u)
			}
			for _, u := range users {
				checkUser(t, getUser(t, s, "3_site", u.UID), u)
			}
			countUsers(t, s, "3_site", len(users))
		}
		// The users are there for every method.
		if created := login(t, s, "3_site", "u2", nil, base); created {
			t.Errorf("Login of a put user: created = true, want false")
		}
	}},

	{"PutUserReplaces", func(t *testing.T, s socius.Store) {
		createSite(t, s, "3_site", base)
		login(t, s, "3_site", "u1", socius.PatchOf(&socius.Profile{"ada", "https://example.com/a.png", "", "Ada", "Lovelace", "f", "36", "ada@example.com"}), base)
		updateProfile(t, s, "3_site", "u1", patch(map[socius.Field]string{socius.Nickname: "countess"}), at(time.Minute))
		login(t, s, "3_site", "u2", patch(map[socius.Field]string{socius.FirstName: "Bob"}), base)
		tok := createToken(t, s, newToken("u1", "3_site", "u1"))
		other := getUser(t, s, "3_site", "u2")

		// Whole: fields it leaves empty are cleared, every time is replaced (even to an
		// earlier or a zero one), and the login state too.
		steps := []*socius.User{
			{APIKey: "3_site", UID: "u1", Profile: socius.Profile{socius.FirstName: "Augusta", socius.ThumbnailURL: "https://example.com/t.png"},
				CreatedAt: at(-time.Hour), UpdatedAt: at(2 * time.Hour), LoggedIn: false},
			{APIKey: "3_site", UID: "u1", Profile: fullProfile("x"),
				CreatedAt: at(time.Hour), UpdatedAt: at(time.Hour), LoginAt: at(3 * time.Hour), LoggedIn: true},
			{APIKey: "3_site", UID: "u1", CreatedAt: base, UpdatedAt: base},
		}
		for i, u := range steps {
			for range 2 {
				putUser(t, s, u)
				checkUser(t, getUser(t, s, "3_site", "u1"), u)
				countUsers(t, s, "3_site", 2)
			}
			if t.Failed() {
				t.Fatalf("after step %d", i)
			}
		}
		// The other user and the user's tokens are left alone.
		checkUser(t, getUser(t, s, "3_site", "u2"), other)
		checkTokens(t, s, tok)
	}},

	{"PutUserUnknownSite", func(t *testing.T, s socius.Store) {
		createSite(t, s, "3_site", base)
		err := s.PutUser(t.Context(), &socius.User{APIKey: "3_none", UID: "u1", Profile: fullProfile("1"), CreatedAt: base, UpdatedAt: base})
		wantErr(t, "PutUser on an unknown site", err, socius.ErrNotFound)
		_, err = s.User(t.Context(), "3_none", "u1")
		wantErr(t, "User after a failed PutUser", err, socius.ErrNotFound)
		countUsers(t, s, "", 0)
	}},

	{"CountUsers", func(t *testing.T, s socius.Store) {
		countUsers(t, s, "", 0)
		createSite(t, s, "3_a", base)
		createSite(t, s, "3_b", base)
		createSite(t, s, "3_empty", base)
		for _, uid := range []string{"u1", "u2", "u3"} {
			login(t, s, "3_a", uid, nil, base)
		}
		putUser(t, s, &socius.User{APIKey: "3_b", UID: "u1", CreatedAt: base, UpdatedAt: base})
		login(t, s, "3_b", "u2", nil, base)
		for apiKey, want := range map[string]int{"3_a": 3, "3_b": 2, "3_empty": 0, "3_none": 0, "": 5} {
			countUsers(t, s, apiKey, want)
		}
		if err := s.DeleteUser(t.Context(), "3_a", "u1", base); err != nil {
			t.Fatalf("DeleteUser: %v", err)
		}
		if err := s.RenameUser(t.Context(), "3_b", "u1", "u9"); err != nil {
			t.Fatalf("RenameUser: %v", err)
		}
		for apiKey, want := range map[string]int{"3_a": 2, "3_b": 2, "": 4} {
			countUsers(t, s, apiKey, want)
		}
	}},

	{"DeleteUsersOfSite", func(t *testing.T, s socius.Store) {
		createSite(t, s, "3_a", base)
		createSite(t, s, "3_b", base)
		key := createKey(t, s, "3_a", "Akey", base)
		for _, uid := range []string{"u1", "u2", "u3"} {
			login(t, s, "3_a", uid, patch(map[socius.Field]string{socius.FirstName: uid}), base)
		}
		login(t, s, "3_b", "u1", patch(map[socius.Field]string{socius.FirstName: "b1"}), base)
		login(t, s, "3_b", "u2", nil, base)
		gone := []*socius.Token{
			createToken(t, s, newToken("a-u1", "3_a", "u1")),
			createToken(t, s, &socius.Token{Hash: hashOf("a-u3"), Kind: socius.SessionToken, APIKey: "3_a", UID: "u3", CreatedAt: base}),
			createToken(t, s, newToken("a-u2-revoked", "3_a", "u2")),
		}
		if _, err := s.RevokeToken(t.Context(), gone[2].Hash, base); err != nil {
			t.Fatalf("RevokeToken: %v", err)
		}
		// Tokens bound to no user are not the users'.
		kept := []*socius.Token{
			createToken(t, s, newToken("a-none", "3_a", "")),
			createToken(t, s, newToken("b-u1", "3_b", "u1")),
		}
		otherUsers := []*socius.User{getUser(t, s, "3_b", "u1"), getUser(t, s, "3_b", "u2")}

		n, err := s.DeleteUsers(t.Context(), "3_a")
		if err != nil || n != 3 {
			t.Fatalf("DeleteUsers: %d, %v; want 3, nil", n, err)
		}
		for _, uid := range []string{"u1", "u2", "u3"} {
			_, err := s.User(t.Context(), "3_a", uid)
			wantErr(t, "User after DeleteUsers", err, socius.ErrNotFound)
		}
		countUsers(t, s, "3_a", 0)
		if page := users(t, s, "3_a", "", 10); len(page) != 0 {
			t.Errorf("Users after DeleteUsers: %d users, want none", len(page))
		}
		for _, tok := range gone {
			_, err := s.Token(t.Context(), tok.Hash)
			wantErr(t, "Token of a deleted user", err, socius.ErrNotFound)
		}
		checkTokens(t, s, kept...)
		// The other site keeps its users; the site keeps its keys.
		for _, u := range otherUsers {
			checkUser(t, getUser(t, s, "3_b", u.UID), u)
		}
		countUsers(t, s, "", 2)
		if _, err := s.Site(t.Context(), "3_a"); err != nil {
			t.Errorf("Site after DeleteUsers: %v", err)
		}
		got, err := s.Key(t.Context(), "Akey")
		if err != nil {
			t.Fatalf("Key after DeleteUsers: %v", err)
		}
		checkKey(t, got, key)

		for _, apiKey := range []string{"3_a", "3_none"} {
			if n, err := s.DeleteUsers(t.Context(), apiKey); err != nil || n != 0 {
				t.Errorf("DeleteUsers(%q) of no users: %d, %v; want 0, nil", apiKey, n, err)
			}
		}
		if created := login(t, s, "3_a", "u1", nil, at(time.Hour)); !created {
			t.Errorf("Login after DeleteUsers: created = false, want true")
		}
	}},

	{"DeleteUsersAll", func(t *testing.T, s socius.Store) {
		sites := []*socius.Site{createSite(t, s, "3_a", base), createSite(t, s, "3_b", at(time.Second))}
		key := createKey(t, s, "3_b", "Akey", base)
		var gone []*socius.Token
		for _, apiKey := range []string{"3_a", "3_b"} {
			for _, uid := range []string{"u1", "u2"} {
				login(t, s, apiKey, uid, nil, base)
				gone = append(gone, createToken(t, s, newToken(apiKey+"-"+uid, apiKey, uid)))
			}
		}
		putUser(t, s, &socius.User{APIKey: "3_b", UID: "u3", CreatedAt: base, UpdatedAt: base})
		kept := createToken(t, s, newToken("b-none", "3_b", ""))

		n, err := s.DeleteUsers(t.Context(), "")
		if err != nil || n != 5 {
			t.Fatalf("DeleteUsers of every site: %d, %v; want 5, nil", n, err)
		}
		countUsers(t, s, "", 0)
		for _, tok := range gone {
			_, err := s.Token(t.Context(), tok.Hash)
			wantErr(t, "Token of a deleted user", err, socius.ErrNotFound)
		}
		checkTokens(t, s, kept)
		got, err := s.Sites(t.Context())
		if err != nil {
			t.Fatalf("Sites: %v", err)
		}
		checkSites(t, got, sites...)
		keys, err := s.Keys(t.Context(), "")
		if err != nil {
			t.Fatalf("Keys: %v", err)
		}
		checkKeys(t, keys, key)
		if n, err := s.DeleteUsers(t.Context(), ""); err != nil || n != 0 {
			t.Errorf("DeleteUsers of no users: %d, %v; want 0, nil", n, err)
		}
	}},
}

// fullProfile returns a profile with every field set, tagged with tag.
func fullProfile(tag string) socius.Profile {
	return socius.Profile{
		socius.Nickname: "nick" + tag, socius.PhotoURL: "https://example.com/" + tag + ".png",
		socius.ThumbnailURL: "https://example.com/" + tag + "-t.png", socius.FirstName: "First" + tag,
		socius.LastName: "Last" + tag, socius.Gender: "u", socius.Age: "42", socius.Email: tag + "@example.com",
	}
}

func putUser(t *testing.T, s socius.Store, u *socius.User) {
	t.Helper()
	if err := s.PutUser(t.Context(), u); err != nil {
		t.Fatalf("PutUser(%q, %q): %v", u.APIKey, u.UID, err)
	}
}

func users(t *testing.T, s socius.Store, apiKey, after string, limit int) []*socius.User {
	t.Helper()
	us, err := s.Users(t.Context(), apiKey, after, limit)
	if err != nil {
		t.Fatalf("Users(%q, %q, %d): %v", apiKey, after, limit, err)
	}
	return us
}

func countUsers(t *testing.T, s socius.Store, apiKey string, want int) {
	t.Helper()
	n, err := s.CountUsers(t.Context(), apiKey)
	if err != nil {
		t.Fatalf("CountUsers(%q): %v", apiKey, err)
	}
	if n != want {
		t.Errorf("CountUsers(%q) = %d, want %d", apiKey, n, want)
	}
}
