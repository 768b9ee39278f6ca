package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/socius/socius"
)

// A NoncedStore is a store that keeps its server's nonces with its users
// (socius.NoncedUserStore).
type NoncedStore interface {
	socius.Store
	socius.NonceStore
	socius.NoncedUserStore
}

// RunNonced runs the tests of socius.NoncedUserStore, for the stores that offer it:
// a call's nonce and its store work as one operation. newStore returns a new, empty
// store.
func RunNonced(t *testing.T, newStore func(t *testing.T) NoncedStore) {
	for _, tt := range noncedTests {
		t.Run(tt.name, func(t *testing.T) {
			tt.run(t, newStore(t))
		})
	}
}

// nonceOf is a NonceUse of the lab credential, seen at sec(at) and kept 120 s.
func nonceOf(nonce string, at int) socius.NonceUse {
	return socius.NonceUse{Credential: "apiKey 3_site", Nonce: nonce, Expires: sec(at + 120), Now: sec(at)}
}

var noncedTests = []struct {
	name string
	run  func(t *testing.T, s NoncedStore)
}{
	{"UpdateProfile", func(t *testing.T, s NoncedStore) {
		createSite(t, s, "3_site", base)
		login(t, s, "3_site", "u1", patch(map[socius.Field]string{socius.Nickname: "before", socius.Email: "a@example.com"}), base)
		// Fresh: the profile is merged, the nonce recorded.
		fresh, err := s.UpdateProfileNonced(t.Context(), nonceOf("n1", 0), "3_site", "u1", patch(map[socius.Field]string{socius.Nickname: "after"}), at(time.Minute))
		if !fresh || err != nil {
			t.Fatalf("UpdateProfileNonced: %v, %v; want true, nil", fresh, err)
		}
		if u := getUser(t, s, "3_site", "u1"); u.Profile[socius.Nickname] != "after" || u.Profile[socius.Email] != "a@example.com" || !sameTime(u.UpdatedAt, at(time.Minute)) {
			t.Errorf("user after UpdateProfileNonced: %+v", u)
		}
		useNonce(t, s, "apiKey 3_site", "n1", sec(130), sec(10), false)
		// Seen before: nothing written.
		fresh, err = s.UpdateProfileNonced(t.Context(), nonceOf("n1", 5), "3_site", "u1", patch(map[socius.Field]string{socius.Nickname: "replayed"}), at(2*time.Minute))
		if fresh || err != nil {
			t.Fatalf("UpdateProfileNonced of a nonce seen: %v, %v; want false, nil", fresh, err)
		}
		if u := getUser(t, s, "3_site", "u1"); u.Profile[socius.Nickname] != "after" || !sameTime(u.UpdatedAt, at(time.Minute)) {
			t.Errorf("user after a replayed UpdateProfileNonced: %+v; want it unchanged", u)
		}
		// A nonce UseNonce recorded is seen before too, and one of another credential is not.
		useNonce(t, s, "apiKey 3_site", "n2", sec(130), sec(10), true)
		if fresh, err := s.UpdateProfileNonced(t.Context(), nonceOf("n2", 11), "3_site", "u1", patch(map[socius.Field]string{socius.Nickname: "x"}), at(time.Hour)); fresh || err != nil {
			t.Errorf("UpdateProfileNonced of a nonce UseNonce recorded: %v, %v; want false, nil", fresh, err)
		}
		other := nonceOf("n2", 12)
		other.Credential = "userKey Akey"
		if fresh, err := s.UpdateProfileNonced(t.Context(), other, "3_site", "u1", patch(map[socius.Field]string{socius.Nickname: "other"}), at(time.Hour)); !fresh || err != nil {
			t.Errorf("UpdateProfileNonced of another credential's nonce: %v, %v; want true, nil", fresh, err)
		}
		// An expired nonce is fresh again.
		if fresh, err := s.UpdateProfileNonced(t.Context(), nonceOf("n1", 200), "3_site", "u1", patch(map[socius.Field]string{socius.Nickname: "later"}), at(2*time.Hour)); !fresh || err != nil {
			t.Errorf("UpdateProfileNonced of an expired nonce: %v, %v; want true, nil", fresh, err)
		}
		if u := getUser(t, s, "3_site", "u1"); u.Profile[socius.Nickname] != "later" {
			t.Errorf("user after the last UpdateProfileNonced: %+v", u)
		}
	}},

	{"UpdateProfileOfNoUser", func(t *testing.T, s NoncedStore) {
		// An unknown user (or site) is ErrNotFound with the nonce recorded all the same,
		// as UseNonce before UpdateProfile would have; an empty patch too.
		createSite(t, s, "3_site", base)
		login(t, s, "3_site", "u1", nil, base)
		for i, c := range []struct {
			apiKey, uid string
			p           *socius.Patch
		}{
			{"3_site", "ghost", patch(map[socius.Field]string{socius.Nickname: "x"})},
			{"3_none", "u1", patch(map[socius.Field]string{socius.Nickname: "x"})},
			{"3_site", "ghost", &socius.Patch{}},
		} {
			n := nonceOf(fmt.Sprintf("missing-%d", i), 0)
			fresh, err := s.UpdateProfileNonced(t.Context(), n, c.apiKey, c.uid, c.p, at(time.Minute))
			if !fresh || !errors.Is(err, socius.ErrNotFound) {
				t.Errorf("UpdateProfileNonced of %s/%s: %v, %v; want true, ErrNotFound", c.apiKey, c.uid, fresh, err)
			}
			useNonce(t, s, n.Credential, n.Nonce, sec(130), sec(10), false)
			if _, err := s.User(t.Context(), c.apiKey, c.uid); !errors.Is(err, socius.ErrNotFound) {
				t.Errorf("User %s/%s after UpdateProfileNonced: %v, want ErrNotFound", c.apiKey, c.uid, err)
			}
		}
		// An empty patch of a user that exists writes nothing.
		fresh, err := s.UpdateProfileNonced(t.Context(), nonceOf("empty", 0), "3_site", "u1", &socius.Patch{}, at(time.Minute))
		if !fresh || err != nil {
			t.Errorf("UpdateProfileNonced with an empty patch: %v, %v; want true, nil", fresh, err)
		}
		if u := getUser(t, s, "3_site", "u1"); !sameTime(u.UpdatedAt, base) {
			t.Errorf("user after an empty UpdateProfileNonced: %+v; want it unchanged", u)
		}
		if fresh, err := s.UpdateProfileNonced(t.Context(), nonceOf("empty", 1), "3_site", "u1", &socius.Patch{}, at(time.Minute)); fresh || err != nil {
			t.Errorf("an empty UpdateProfileNonced replayed: %v, %v; want false, nil", fresh, err)
		}
	}},

	{"User", func(t *testing.T, s NoncedStore) {
		createSite(t, s, "3_site", base)
		login(t, s, "3_site", "u1", patch(map[socius.Field]string{socius.Nickname: "ada"}), base)
		fresh, u, err := s.UserNonced(t.Context(), nonceOf("r1", 0), "3_site", "u1")
		if !fresh || err != nil || u == nil || u.UID != "u1" || u.APIKey != "3_site" || u.Profile[socius.Nickname] != "ada" || !u.LoggedIn {
			t.Fatalf("UserNonced: %v, %+v, %v", fresh, u, err)
		}
		if want := getUser(t, s, "3_site", "u1"); *u != *want {
			t.Errorf("UserNonced: %+v; User: %+v", u, want)
		}
		fresh, u, err = s.UserNonced(t.Context(), nonceOf("r1", 1), "3_site", "u1")
		if fresh || u != nil || err != nil {
			t.Errorf("UserNonced of a nonce seen: %v, %+v, %v; want false, nil, nil", fresh, u, err)
		}
		fresh, u, err = s.UserNonced(t.Context(), nonceOf("r2", 0), "3_site", "ghost")
		if !fresh || u != nil || !errors.Is(err, socius.ErrNotFound) {
			t.Errorf("UserNonced of an unknown user: %v, %+v, %v; want true, nil, ErrNotFound", fresh, u, err)
		}
		useNonce(t, s, "apiKey 3_site", "r2", sec(130), sec(10), false)
	}},

	{"OneWinsANonce", func(t *testing.T, s NoncedStore) {
		// Concurrent calls with one nonce, each writing its own value: exactly one is
		// fresh, and its value is the one stored.
		createSite(t, s, "3_site", base)
		login(t, s, "3_site", "u1", nil, base)
		const n = 16
		var wg sync.WaitGroup
		fresh := make([]bool, n)
		for i := range n {
			wg.Go(func() {
				var err error
				if i%4 == 3 {
					fresh[i], _, err = s.UserNonced(t.Context(), nonceOf("race", 0), "3_site", "u1")
				} else {
					fresh[i], err = s.UpdateProfileNonced(t.Context(), nonceOf("race", 0), "3_site", "u1",
						patch(map[socius.Field]string{socius.Nickname: fmt.Sprint("writer-", i)}), at(time.Minute))
				}
				if err != nil {
					t.Errorf("call %d: %v", i, err)
				}
			})
		}
		wg.Wait()
		winner := -1
		for i, f := range fresh {
			if f {
				if winner >= 0 {
					t.Errorf("calls %d and %d both fresh with one nonce", winner, i)
				}
				winner = i
			}
		}
		if winner < 0 {
			t.Fatal("no call fresh")
		}
		want := ""
		if winner%4 != 3 {
			want = fmt.Sprint("writer-", winner)
		}
		if u := getUser(t, s, "3_site", "u1"); u.Profile[socius.Nickname] != want {
			t.Errorf("nickname %q after the race, want %q (call %d was fresh)", u.Profile[socius.Nickname], want, winner)
		}
	}},
}
