package storetest

import (
	"testing"
	"time"

	"github.com/socius/socius"
)

var userTests = []test{
	{"LoginCreates", func(t *testing.T, s socius.Store) {
		createSite(t, s, "3_site", base)
		// A nil and an empty patch both change nothing.
		for _, c := range []struct {
			uid   string
			patch *socius.Patch
		}{{"u1", nil}, {"u2", &socius.Patch{}}} {
			if created := login(t, s, "3_site", c.uid, c.patch, base); !created {
				t.Errorf("first Login of %s: created = false, want true", c.uid)
			}
			if created := login(t, s, "3_site", c.uid, c.patch, at(time.Second)); created {
				t.Errorf("second Login of %s: created = true, want false", c.uid)
			}
		}
	}},

	{"LoginSetsEverything", func(t *testing.T, s socius.Store) {
		createSite(t, s, "3_site", base)
		login(t, s, "3_site", "u1", nil, base)
		// A new user: the profile is empty, it was created, changed and logged in now.
		checkUser(t, getUser(t, s, "3_site", "u1"), &socius.User{
			APIKey: "3_site", UID: "u1",
			CreatedAt: base, UpdatedAt: base, LoginAt: base, LoggedIn: true,
		})
	}},

	{"LoginAppliesPatch", func(t *testing.T, s socius.Store) {
		createSite(t, s, "3_site", base)
		first := patch(map[socius.Field]string{
			socius.Nickname: "ada", socius.FirstName: "Ada", socius.LastName: "Byron",
			socius.Age: "36", socius.Email: "ada@example.com", socius.Gender: "",
		})
		if created := login(t, s, "3_site", "u1", first, base); !created {
			t.Fatalf("first Login: created = false, want true")
		}
		want := &socius.User{
			APIKey: "3_site", UID: "u1",
			Profile:   socius.Profile{socius.Nickname: "ada", socius.FirstName: "Ada", socius.LastName: "Byron", socius.Age: "36", socius.Email: "ada@example.com"},
			CreatedAt: base, UpdatedAt: base, LoginAt: base, LoggedIn: true,
		}
		checkUser(t, getUser(t, s, "3_site", "u1"), want)

		// An existing user: the patch merges, the profile changed now.
		second := patch(map[socius.Field]string{socius.LastName: "Lovelace", socius.Nickname: "", socius.Gender: "f"})
		if created := login(t, s, "3_site", "u1", second, at(time.Minute)); created {
			t.Fatalf("second Login: created = true, want false")
		}
		want.Profile = socius.Profile{socius.FirstName: "Ada", socius.LastName: "Lovelace", socius.Gender: "f", socius.Age: "36", socius.Email: "ada@example.com"}
		want.UpdatedAt, want.LoginAt = at(time.Minute), at(time.Minute)
		checkUser(t, getUser(t, s, "3_site", "u1"), want)

		// An empty patch logs in without changing the profile.
		login(t, s, "3_site", "u1", nil, at(time.Hour))
		want.LoginAt = at(time.Hour)
		checkUser(t, getUser(t, s, "3_site", "u1"), want)
	}},

	{"LoginUnknownSite", func(t *testing.T, s socius.Store) {
		createSite(t, s, "3_site", base)
		_, err := s.Login(t.Context(), "3_none", "u1", patch(map[socius.Field]string{socius.FirstName: "Ada"}), base)
		wantErr(t, "Login on an unknown site", err, socius.ErrNotFound)
		_, err = s.User(t.Context(), "3_none", "u1")
		wantErr(t, "User after a failed Login", err, socius.ErrNotFound)
	}},

	{"UserNotFound", func(t *testing.T, s socius.Store) {
		createSite(t, s, "3_site", base)
		createSite(t, s, "3_other", base)
		login(t, s, "3_site", "u1", nil, base)
		for _, c := range []struct{ apiKey, uid string }{
			{"3_site", "u2"}, {"3_site", "U1"}, {"3_site", "u1 "}, {"3_site", ""},
			{"3_other", "u1"}, {"3_none", "u1"},
		} {
			_, err := s.User(t.Context(), c.apiKey, c.uid)
			wantErr(t, "User("+c.apiKey+", "+c.uid+")", err, socius.ErrNotFound)
		}
	}},

	{"TimesAreInstants", func(t *testing.T, s socius.Store) {
		createSite(t, s, "3_site", base)
		// The same instants, given in another location, come back equal.
		paris := time.FixedZone("CET", 3600)
		login(t, s, "3_site", "u1", nil, base.In(paris))
		updateProfile(t, s, "3_site", "u1", patch(map[socius.Field]string{socius.Email: "a@b.c"}), at(1500*time.Millisecond).In(paris))
		checkUser(t, getUser(t, s, "3_site", "u1"), &socius.User{
			APIKey: "3_site", UID: "u1", Profile: socius.Profile{socius.Email: "a@b.c"},
			CreatedAt: base, UpdatedAt: at(1500 * time.Millisecond), LoginAt: base, LoggedIn: true,
		})
	}},

	{"UpdateProfileMerges", func(t *testing.T, s socius.Store) {
		createSite(t, s, "3_site", base)
		login(t, s, "3_site", "u1", nil, base)
		steps := []struct {
			name  string
			patch map[socius.Field]string
			want  socius.Profile
		}{
			{"set two", map[socius.Field]string{socius.FirstName: "Ada", socius.Email: "ada@example.com"},
				socius.Profile{socius.FirstName: "Ada", socius.Email: "ada@example.com"}},
			{"set one, others stay", map[socius.Field]string{socius.LastName: "Lovelace"},
				socius.Profile{socius.FirstName: "Ada", socius.LastName: "Lovelace", socius.Email: "ada@example.com"}},
			{"change one", map[socius.Field]string{socius.FirstName: "Augusta"},
				socius.Profile{socius.FirstName: "Augusta", socius.LastName: "Lovelace", socius.Email: "ada@example.com"}},
			{"empty clears", map[socius.Field]string{socius.Email: ""},
				socius.Profile{socius.FirstName: "Augusta", socius.LastName: "Lovelace"}},
			{"clear an empty field", map[socius.Field]string{socius.Nickname: ""},
				socius.Profile{socius.FirstName: "Augusta", socius.LastName: "Lovelace"}},
			{"every field", map[socius.Field]string{
				socius.Nickname: "ada", socius.PhotoURL: "https://example.com/a.png", socius.ThumbnailURL: "https://example.com/a-t.png",
				socius.FirstName: "Ada", socius.LastName: "King", socius.Gender: "f", socius.Age: "36", socius.Email: "ada@example.org"},
				socius.Profile{"ada", "https://example.com/a.png", "https://example.com/a-t.png", "Ada", "King", "f", "36", "ada@example.org"}},
			{"set and clear at once", map[socius.Field]string{socius.Age: "0", socius.PhotoURL: "", socius.ThumbnailURL: ""},
				socius.Profile{socius.Nickname: "ada", socius.FirstName: "Ada", socius.LastName: "King", socius.Gender: "f", socius.Age: "0", socius.Email: "ada@example.org"}},
			{"clear every field", map[socius.Field]string{
				socius.Nickname: "", socius.PhotoURL: "", socius.ThumbnailURL: "", socius.FirstName: "",
				socius.LastName: "", socius.Gender: "", socius.Age: "", socius.Email: ""},
				socius.Profile{}},
		}
		for i, step := range steps {
			now := at(time.Duration(i+1) * time.Minute)
			updateProfile(t, s, "3_site", "u1", patch(step.patch), now)
			checkUser(t, getUser(t, s, "3_site", "u1"), &socius.User{
				APIKey: "3_site", UID: "u1", Profile: step.want,
				CreatedAt: base, UpdatedAt: now, LoginAt: base, LoggedIn: true,
			})
			if t.Failed() {
				t.Fatalf("after step %q", step.name)
			}
		}
	}},

	{"UpdateProfileEmptyPatch", func(t *testing.T, s socius.Store) {
		createSite(t, s, "3_site", base)
		login(t, s, "3_site", "u1", patch(map[socius.Field]string{socius.FirstName: "Ada"}), base)
		// Nothing changes, not even the time of the last change; an unknown user is
		// still unknown.
		for _, p := range []*socius.Patch{nil, {}} {
			updateProfile(t, s, "3_site", "u1", p, at(time.Hour))
			wantErr(t, "UpdateProfile of an unknown user", s.UpdateProfile(t.Context(), "3_site", "u2", p, at(time.Hour)), socius.ErrNotFound)
		}
		checkUser(t, getUser(t, s, "3_site", "u1"), &socius.User{
			APIKey: "3_site", UID: "u1", Profile: socius.Profile{socius.FirstName: "Ada"},
			CreatedAt: base, UpdatedAt: base, LoginAt: base, LoggedIn: true,
		})
	}},

	{"UpdateProfileUnknownUser", func(t *testing.T, s socius.Store) {
		createSite(t, s, "3_site", base)
		p := patch(map[socius.Field]string{socius.FirstName: "Ada"})
		wantErr(t, "UpdateProfile of an unknown user", s.UpdateProfile(t.Context(), "3_site", "u1", p, base), socius.ErrNotFound)
		wantErr(t, "UpdateProfile on an unknown site", s.UpdateProfile(t.Context(), "3_none", "u1", p, base), socius.ErrNotFound)
		// Nothing was created: the first Login still creates the user, with an empty profile.
		_, err := s.User(t.Context(), "3_site", "u1")
		wantErr(t, "User after a failed UpdateProfile", err, socius.ErrNotFound)
		if created := login(t, s, "3_site", "u1", nil, at(time.Second)); !created {
			t.Errorf("Login after a failed UpdateProfile: created = false, want true")
		}
		if u := getUser(t, s, "3_site", "u1"); !u.Profile.Empty() {
			t.Errorf("profile after a failed UpdateProfile: %q, want empty", u.Profile)
		}
	}},

	{"Logout", func(t *testing.T, s socius.Store) {
		createSite(t, s, "3_site", base)
		login(t, s, "3_site", "u1", patch(map[socius.Field]string{socius.FirstName: "Ada"}), base)
		want := &socius.User{
			APIKey: "3_site", UID: "u1", Profile: socius.Profile{socius.FirstName: "Ada"},
			CreatedAt: base, UpdatedAt: base, LoginAt: base, LoggedIn: false,
		}
		// Logging out keeps the time of the last login; logging out twice is no error.
		for range 2 {
			if err := s.Logout(t.Context(), "3_site", "u1", at(time.Minute)); err != nil {
				t.Fatalf("Logout: %v", err)
			}
			checkUser(t, getUser(t, s, "3_site", "u1"), want)
		}
		wantErr(t, "Logout of an unknown user", s.Logout(t.Context(), "3_site", "u2", at(time.Minute)), socius.ErrNotFound)
		_, err := s.User(t.Context(), "3_site", "u2")
		wantErr(t, "User after a failed Logout", err, socius.ErrNotFound)

		login(t, s, "3_site", "u1", nil, at(time.Hour))
		want.LoginAt, want.LoggedIn = at(time.Hour), true
		checkUser(t, getUser(t, s, "3_site", "u1"), want)
	}},

	{"DeleteUser", func(t *testing.T, s socius.Store) {
		createSite(t, s, "3_site", base)
		login(t, s, "3_site", "u1", patch(map[socius.Field]string{socius.FirstName: "Ada", socius.Email: "ada@example.com"}), base)
		login(t, s, "3_site", "u2", patch(map[socius.Field]string{socius.FirstName: "Bob"}), base)

		if err := s.DeleteUser(t.Context(), "3_site", "u1", at(time.Minute)); err != nil {
			t.Fatalf("DeleteUser: %v", err)
		}
		_, err := s.User(t.Context(), "3_site", "u1")
		wantErr(t, "User after DeleteUser", err, socius.ErrNotFound)
		wantErr(t, "DeleteUser again", s.DeleteUser(t.Context(), "3_site", "u1", at(time.Minute)), socius.ErrNotFound)
		wantErr(t, "DeleteUser of an unknown user", s.DeleteUser(t.Context(), "3_site", "u3", at(time.Minute)), socius.ErrNotFound)
		wantErr(t, "UpdateProfile after DeleteUser", s.UpdateProfile(t.Context(), "3_site", "u1", patch(map[socius.Field]string{socius.Age: "1"}), at(time.Second)), socius.ErrNotFound)
		wantErr(t, "Logout after DeleteUser", s.Logout(t.Context(), "3_site", "u1", at(time.Minute)), socius.ErrNotFound)
		if u := getUser(t, s, "3_site", "u2"); u.Profile[socius.FirstName] != "Bob" {
			t.Errorf("the other user after DeleteUser: firstName %q, want %q", u.Profile[socius.FirstName], "Bob")
		}

		// Nothing of the deleted user remains: logging in again starts afresh.
		if created := login(t, s, "3_site", "u1", nil, at(time.Hour)); !created {
			t.Errorf("Login after DeleteUser: created = false, want true")
		}
		checkUser(t, getUser(t, s, "3_site", "u1"), &socius.User{
			APIKey: "3_site", UID: "u1",
			CreatedAt: at(time.Hour), UpdatedAt: at(time.Hour), LoginAt: at(time.Hour), LoggedIn: true,
		})
	}},

	{"RenameUser", func(t *testing.T, s socius.Store) {
		createSite(t, s, "3_site", base)
		login(t, s, "3_site", "old", patch(map[socius.Field]string{socius.FirstName: "Ada", socius.Age: "36"}), base)
		updateProfile(t, s, "3_site", "old", patch(map[socius.Field]string{socius.Email: "ada@example.com"}), at(time.Minute))
		if err := s.Logout(t.Context(), "3_site", "old", at(time.Minute)); err != nil {
			t.Fatalf("Logout: %v", err)
		}

		if err := s.RenameUser(t.Context(), "3_site", "old", "new"); err != nil {
			t.Fatalf("RenameUser: %v", err)
		}
		_, err := s.User(t.Context(), "3_site", "old")
		wantErr(t, "User of the old UID", err, socius.ErrNotFound)
		// Everything follows the user: profile, times, login state.
		checkUser(t, getUser(t, s, "3_site", "new"), &socius.User{
			APIKey: "3_site", UID: "new", Profile: socius.Profile{socius.FirstName: "Ada", socius.Age: "36", socius.Email: "ada@example.com"},
			CreatedAt: base, UpdatedAt: at(time.Minute), LoginAt: base, LoggedIn: false,
		})
		wantErr(t, "RenameUser of a missing user", s.RenameUser(t.Context(), "3_site", "old", "other"), socius.ErrNotFound)
		_, err = s.User(t.Context(), "3_site", "other")
		wantErr(t, "User after a failed RenameUser", err, socius.ErrNotFound)
		if created := login(t, s, "3_site", "old", nil, at(time.Hour)); !created {
			t.Errorf("Login of the old UID: created = false, want true")
		}
	}},

	{"RenameUserTaken", func(t *testing.T, s socius.Store) {
		createSite(t, s, "3_site", base)
		login(t, s, "3_site", "u1", patch(map[socius.Field]string{socius.FirstName: "Ada"}), base)
		login(t, s, "3_site", "u2", patch(map[socius.Field]string{socius.FirstName: "Bob"}), at(time.Second))

		wantErr(t, "RenameUser to a taken UID", s.RenameUser(t.Context(), "3_site", "u1", "u2"), socius.ErrExists)
		// Nothing changed.
		checkUser(t, getUser(t, s, "3_site", "u1"), &socius.User{
			APIKey: "3_site", UID: "u1", Profile: socius.Profile{socius.FirstName: "Ada"},
			CreatedAt: base, UpdatedAt: base, LoginAt: base, LoggedIn: true,
		})
		checkUser(t, getUser(t, s, "3_site", "u2"), &socius.User{
			APIKey: "3_site", UID: "u2", Profile: socius.Profile{socius.FirstName: "Bob"},
			CreatedAt: at(time.Second), UpdatedAt: at(time.Second), LoginAt: at(time.Second), LoggedIn: true,
		})
	}},
}

var isolationTests = []test{
	{"SameUIDOnTwoSites", func(t *testing.T, s socius.Store) {
		createSite(t, s, "3_a", base)
		createSite(t, s, "3_b", base)
		if created := login(t, s, "3_a", "u1", patch(map[socius.Field]string{socius.FirstName: "Ada"}), base); !created {
			t.Errorf("Login on site a: created = false, want true")
		}
		if created := login(t, s, "3_b", "u1", patch(map[socius.Field]string{socius.FirstName: "Bob"}), at(time.Second)); !created {
			t.Errorf("Login of the same UID on site b: created = false, want true")
		}
		wantB := &socius.User{
			APIKey: "3_b", UID: "u1", Profile: socius.Profile{socius.FirstName: "Bob"},
			CreatedAt: at(time.Second), UpdatedAt: at(time.Second), LoginAt: at(time.Second), LoggedIn: true,
		}
		checkUser(t, getUser(t, s, "3_a", "u1"), &socius.User{
			APIKey: "3_a", UID: "u1", Profile: socius.Profile{socius.FirstName: "Ada"},
			CreatedAt: base, UpdatedAt: base, LoginAt: base, LoggedIn: true,
		})
		checkUser(t, getUser(t, s, "3_b", "u1"), wantB)

		// Whatever happens to the user on site a leaves the one on site b alone.
		updateProfile(t, s, "3_a", "u1", patch(map[socius.Field]string{socius.FirstName: "", socius.Email: "a@example.com"}), at(time.Minute))
		login(t, s, "3_a", "u1", patch(map[socius.Field]string{socius.Age: "30"}), at(2*time.Minute))
		if err := s.Logout(t.Context(), "3_a", "u1", at(time.Minute)); err != nil {
			t.Fatalf("Logout: %v", err)
		}
		checkUser(t, getUser(t, s, "3_b", "u1"), wantB)
		if err := s.RenameUser(t.Context(), "3_a", "u1", "u2"); err != nil {
			t.Fatalf("RenameUser: %v", err)
		}
		checkUser(t, getUser(t, s, "3_b", "u1"), wantB)
		_, err := s.User(t.Context(), "3_b", "u2")
		wantErr(t, "User on site b of a UID renamed on site a", err, socius.ErrNotFound)
		if err := s.DeleteUser(t.Context(), "3_a", "u2", at(time.Minute)); err != nil {
			t.Fatalf("DeleteUser: %v", err)
		}
		checkUser(t, getUser(t, s, "3_b", "u1"), wantB)
	}},

	{"OtherSiteUnknown", func(t *testing.T, s socius.Store) {
		createSite(t, s, "3_a", base)
		createSite(t, s, "3_b", base)
		login(t, s, "3_a", "u1", nil, base)
		p := patch(map[socius.Field]string{socius.FirstName: "Eve"})
		wantErr(t, "UpdateProfile on another site", s.UpdateProfile(t.Context(), "3_b", "u1", p, base), socius.ErrNotFound)
		wantErr(t, "Logout on another site", s.Logout(t.Context(), "3_b", "u1", at(time.Minute)), socius.ErrNotFound)
		wantErr(t, "RenameUser on another site", s.RenameUser(t.Context(), "3_b", "u1", "u2"), socius.ErrNotFound)
		wantErr(t, "DeleteUser on another site", s.DeleteUser(t.Context(), "3_b", "u1", at(time.Minute)), socius.ErrNotFound)
		_, err := s.User(t.Context(), "3_b", "u1")
		wantErr(t, "User on another site", err, socius.ErrNotFound)
		checkUser(t, getUser(t, s, "3_a", "u1"), &socius.User{
			APIKey: "3_a", UID: "u1", CreatedAt: base, UpdatedAt: base, LoginAt: base, LoggedIn: true,
		})
	}},

	{"RenameToUIDOfOtherSite", func(t *testing.T, s socius.Store) {
		createSite(t, s, "3_a", base)
		createSite(t, s, "3_b", base)
		login(t, s, "3_a", "u1", patch(map[socius.Field]string{socius.FirstName: "Ada"}), base)
		login(t, s, "3_b", "u2", patch(map[socius.Field]string{socius.FirstName: "Bob"}), base)
		// UIDs are unique per site only.
		if err := s.RenameUser(t.Context(), "3_a", "u1", "u2"); err != nil {
			t.Fatalf("RenameUser to a UID taken on another site: %v", err)
		}
		if u := getUser(t, s, "3_a", "u2"); u.Profile[socius.FirstName] != "Ada" {
			t.Errorf("renamed user: firstName %q, want %q", u.Profile[socius.FirstName], "Ada")
		}
		if u := getUser(t, s, "3_b", "u2"); u.Profile[socius.FirstName] != "Bob" {
			t.Errorf("other site's user: firstName %q, want %q", u.Profile[socius.FirstName], "Bob")
		}
	}},
}
