package storetest

import (
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/socius/socius"
)

var concurrencyTests = []test{
	{"UpdateProfileLosesNothing", func(t *testing.T, s socius.Store) {
		// 64 writers update one user at once, writer w owning field w%8 with the others
		// of its group. Each writes its own final value last, so whoever of a group wrote
		// last, its field ends with the final value of one of its writers. A
		// read-modify-write would put back stale values of other fields: the 15
		// intermediate values, never final.
		createSite(t, s, "3_site", base)
		login(t, s, "3_site", "u1", nil, base)
		const writers, rounds = 64, 16
		// Values are decimal, so that they fit even an age column: a writer's final
		// value is its number (0..63), an intermediate value 64 + round.
		value := func(w, r int) string {
			if r == rounds-1 {
				return strconv.Itoa(w)
			}
			return strconv.Itoa(writers + r)
		}
		var wg sync.WaitGroup
		for w := range writers {
			wg.Go(func() {
				f := socius.Field(w % int(socius.NumFields))
				for r := range rounds {
					var p socius.Patch
					p.Set(f, value(w, r))
					if err := s.UpdateProfile(t.Context(), "3_site", "u1", &p, at(time.Duration(r)*time.Millisecond)); err != nil {
						t.Errorf("writer %d, round %d: UpdateProfile: %v", w, r, err)
						return
					}
				}
			})
		}
		wg.Wait()

		u := getUser(t, s, "3_site", "u1")
		for f := range socius.NumFields {
			var finals []string
			for w := int(f); w < writers; w += int(socius.NumFields) {
				finals = append(finals, value(w, rounds-1))
			}
			if !slices.Contains(finals, u.Profile[f]) {
				t.Errorf("%s = %q, want the final value of one of its writers %q: an update was lost", f.Name(), u.Profile[f], finals)
			}
		}
		if !u.LoggedIn || !sameTime(u.CreatedAt, base) {
			t.Errorf("user after the updates: LoggedIn %v, CreatedAt %s; want true, %s", u.LoggedIn, u.CreatedAt, base)
		}
	}},

	{"LoginCreatesOnce", func(t *testing.T, s socius.Store) {
		// Many first logins of one UID at once: one creates the user, every patch applies.
		createSite(t, s, "3_site", base)
		const n = 32
		var created atomic.Int32
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				var p socius.Patch
				p.Set(socius.Field(i%int(socius.NumFields)), strconv.Itoa(i%int(socius.NumFields)))
				c, err := s.Login(t.Context(), "3_site", "u1", &p, base)
				if err != nil {
					t.Errorf("Login %d: %v", i, err)
				}
				if c {
					created.Add(1)
				}
			})
		}
		wg.Wait()
		if got := created.Load(); got != 1 {
			t.Errorf("%d of %d concurrent first logins reported created, want 1", got, n)
		}
		checkUser(t, getUser(t, s, "3_site", "u1"), &socius.User{
			APIKey: "3_site", UID: "u1", Profile: socius.Profile{"0", "1", "2", "3", "4", "5", "6", "7"},
			CreatedAt: base, UpdatedAt: base, LoginAt: base, LoggedIn: true,
		})
	}},

	{"LoginBesideDeletes", func(t *testing.T, s socius.Store) {
		// First logins of one UID while others delete it over and over: every Login
		// succeeds (it creates the user or updates it, however often the user comes
		// and goes meanwhile), and whatever is left at the end is a whole user.
		createSite(t, s, "3_site", base)
		const loginers, deleters, rounds = 16, 16, 60
		var created atomic.Int32
		var wg sync.WaitGroup
		for i := range loginers {
			wg.Go(func() {
				for r := range rounds {
					p := patch(map[socius.Field]string{socius.Nickname: fmt.Sprintf("n%d-%d", i, r)})
					c, err := s.Login(t.Context(), "3_site", "u1", p, base)
					if err != nil {
						t.Errorf("Login %d round %d: %v", i, r, err)
						return
					}
					if c {
						created.Add(1)
					}
				}
			})
		}
		for range deleters {
			wg.Go(func() {
				for range rounds {
					err := s.DeleteUser(t.Context(), "3_site", "u1", base)
					if err != nil && !errors.Is(err, socius.ErrNotFound) {
						t.Errorf("DeleteUser: %v", err)
						return
					}
				}
			})
		}
		wg.Wait()
		if created.Load() == 0 {
			t.Error("no Login reported the user created")
		}
		u, err := s.User(t.Context(), "3_site", "u1")
		if errors.Is(err, socius.ErrNotFound) {
			return
		}
		if err != nil {
			t.Fatalf("User: %v", err)
		}
		if !u.LoggedIn || u.Profile[socius.Nickname] == "" || !sameTime(u.CreatedAt, base) {
			t.Errorf("user at the end: LoggedIn %v, nickname %q, CreatedAt %s", u.LoggedIn, u.Profile[socius.Nickname], u.CreatedAt)
		}
	}},

	{"LoginWithTokenBesideLogouts", func(t *testing.T, s socius.Store) {
		// Logins with a token of one UID while others log it out or delete it over and
		// over. A logout or deletion revokes the user's tokens; with the login and its
		// token one operation, each comes before both or after both. So a user found
		// logged out (or gone) after a login was logged out after it, which revoked
		// that login's token: a loginer that finds the user logged out must find its
		// token revoked. (Were the two separate writes, a logout between them would
		// leave the token live.) And a user left logged out at the end holds no live
		// token.
		createSite(t, s, "3_site", base)
		const loginers, enders, rounds = 8, 8, 30
		var mu sync.Mutex
		var hashes []string
		var wg sync.WaitGroup
		for i := range loginers {
			wg.Go(func() {
				for r := range rounds {
					tok := withUID(newToken(fmt.Sprintf("lt-%d-%d", i, r), "3_site", ""), "u1")
					if _, err := s.LoginWithToken(t.Context(), "3_site", "u1", nil, base, tok); err != nil {
						t.Errorf("LoginWithToken %d round %d: %v", i, r, err)
						return
					}
					u, err := s.User(t.Context(), "3_site", "u1")
					if err != nil && !errors.Is(err, socius.ErrNotFound) {
						t.Errorf("User: %v", err)
						return
					}
					if err != nil || !u.LoggedIn {
						got, err := s.Token(t.Context(), tok.Hash)
						if err != nil || got.RevokedAt.IsZero() {
							t.Errorf("the user is logged out or gone after LoginWithToken %d round %d, and its token: %v, %v; want it revoked", i, r, got, err)
						}
					}
					mu.Lock()
					hashes = append(hashes, tok.Hash)
					mu.Unlock()
				}
			})
		}
		for i := range enders {
			wg.Go(func() {
				for r := range rounds {
					var err error
					if (i+r)%2 == 0 {
						err = s.Logout(t.Context(), "3_site", "u1", at(time.Second))
					} else {
						err = s.DeleteUser(t.Context(), "3_site", "u1", at(time.Second))
					}
					if err != nil && !errors.Is(err, socius.ErrNotFound) {
						t.Errorf("ender %d round %d: %v", i, r, err)
						return
					}
				}
			})
		}
		wg.Wait()
		u, err := s.User(t.Context(), "3_site", "u1")
		if err != nil && !errors.Is(err, socius.ErrNotFound) {
			t.Fatalf("User: %v", err)
		}
		if err == nil && u.LoggedIn {
			// Logged in by the last login: its token at least is live; nothing to check
			// that this run can tell apart.
			return
		}
		for _, h := range hashes {
			if tok := getToken(t, s, h); tok.RevokedAt.IsZero() {
				t.Errorf("a live token of a user logged out or deleted at the end: %s", fmtToken(tok))
			}
		}
	}},

	{"LoginWhileBesideLogouts", func(t *testing.T, s socius.Store) {
		// Logins made only while the user's own token lives, while others log the user
		// out or delete it (which revokes its tokens). Each login comes before the
		// ending that revoked its token or is refused: so a user logged out or deleted
		// last stays so, whatever the logins did. (Were the token's check and the
		// login two steps, a login checked before an ending and written after it would
		// log the user in again, or create it again, after its token's end.)
		createSite(t, s, "3_site", base)
		const rounds = 40
		for r := range rounds {
			tok := createToken(t, s, withUID(newToken(fmt.Sprintf("lw-%d", r), "3_site", ""), "u1"))
			login(t, s, "3_site", "u1", nil, base)
			var loginErrs [4]error
			var wg sync.WaitGroup
			for i := range loginErrs {
				wg.Go(func() {
					_, loginErrs[i] = s.LoginWhile(t.Context(), "3_site", "u1", nil, at(time.Second), tok.Hash)
				})
			}
			var endErr error
			wg.Go(func() {
				runtime.Gosched()
				if r%2 == 0 {
					endErr = s.Logout(t.Context(), "3_site", "u1", at(2*time.Second))
				} else {
					endErr = s.DeleteUser(t.Context(), "3_site", "u1", at(2*time.Second))
				}
			})
			wg.Wait()
			for i, err := range loginErrs {
				if err != nil && !errors.Is(err, socius.ErrRootGone) {
					t.Fatalf("round %d: LoginWhile %d: %v", r, i, err)
				}
			}
			if endErr != nil {
				t.Fatalf("round %d: ending: %v", r, endErr)
			}
			u, err := s.User(t.Context(), "3_site", "u1")
			switch {
			case r%2 == 0 && (err != nil || u.LoggedIn):
				t.Fatalf("round %d: after a logout beside LoginWhile the user is %+v, %v; want it logged out", r, u, err)
			case r%2 == 1 && !errors.Is(err, socius.ErrNotFound):
				t.Fatalf("round %d: after a deletion beside LoginWhile the user is %+v, %v; want it gone", r, u, err)
			}
		}
	}},

	{"LoginWhileBesideRenames", func(t *testing.T, s socius.Store) {
		// Logins made only while the user's own token lives and is bound to it, while
		// the user is renamed (which moves its tokens): each login comes before the
		// rename (and is renamed with the user) or is refused, so the old UID is gone at
		// the end. (Checked only for life, a login after the rename made the old UID
		// again, a new user.)
		createSite(t, s, "3_site", base)
		const rounds = 40
		for r := range rounds {
			from, to := fmt.Sprintf("old-%d", r), fmt.Sprintf("new-%d", r)
			login(t, s, "3_site", from, nil, base)
			tok := createToken(t, s, withUID(newToken(fmt.Sprintf("lr-%d", r), "3_site", ""), from))
			var loginErrs [4]error
			var wg sync.WaitGroup
			for i := range loginErrs {
				wg.Go(func() {
					_, loginErrs[i] = s.LoginWhile(t.Context(), "3_site", from, nil, at(time.Second), tok.Hash)
				})
			}
			var renameErr error
			wg.Go(func() {
				runtime.Gosched()
				renameErr = s.RenameUser(t.Context(), "3_site", from, to)
			})
			wg.Wait()
			for i, err := range loginErrs {
				if err != nil && !errors.Is(err, socius.ErrTokenMoved) {
					t.Fatalf("round %d: LoginWhile %d: %v", r, i, err)
				}
			}
			if renameErr != nil {
				t.Fatalf("round %d: rename: %v", r, renameErr)
			}
			if u, err := s.User(t.Context(), "3_site", from); !errors.Is(err, socius.ErrNotFound) {
				t.Fatalf("round %d: after a rename beside LoginWhile the old UID is %+v, %v; want it gone", r, u, err)
			}
		}
	}},

	{"TokensBesideKeyDeletions", func(t *testing.T, s socius.Store) {
		// Tokens issued with keys while the keys are deleted (issuesBesideEnds, a key
		// a round). A token is stored only while its key exists, and a deletion takes
		// every token stored before it; so at the end no token of any key is left,
		// whichever way each issue went. (Stored without the check, the tokens of
		// issues that came after their key's deletion would be left.) An issue refused
		// for its key (ErrKeyGone) stored nothing: its token is unknown, its user not
		// created.
		createSite(t, s, "3_site", base)
		for r := range issueRounds {
			createKey(t, s, "3_site", fmt.Sprintf("Ak-%d", r), base)
		}
		stored, refused := issuesBesideEnds(t, s, socius.ErrKeyGone,
			func(i, r int) *socius.Token {
				tok := newToken(fmt.Sprintf("kt-%d-%d", i, r), "3_site", "")
				tok.UserKey = fmt.Sprintf("Ak-%d", r)
				return tok
			},
			func(r int) error { return s.DeleteKey(t.Context(), fmt.Sprintf("Ak-%d", r)) })
		for _, tok := range stored {
			if got, err := s.Token(t.Context(), tok.Hash); !errors.Is(err, socius.ErrNotFound) {
				t.Errorf("a token of a deleted key: %v, %v; want none", got, err)
			}
		}
		checkRefused(t, s, refused)
	}},

	{"TokensBesideRevocations", func(t *testing.T, s socius.Store) {
		// Tokens minted from tokens while those are revoked (issuesBesideEnds, a root
		// token a round). A token is stored only while its root is live, and a
		// revocation takes every token minted from it before; so at the end every
		// stored token is revoked, and an issue refused (ErrRootGone) stored nothing,
		// its user not created.
		createSite(t, s, "3_site", base)
		var roots [issueRounds]string
		for r := range issueRounds {
			roots[r] = createToken(t, s, newToken(fmt.Sprintf("root-%d", r), "3_site", "")).Hash
		}
		stored, refused := issuesBesideEnds(t, s, socius.ErrRootGone,
			func(i, r int) *socius.Token {
				tok := newToken(fmt.Sprintf("pt-%d-%d", i, r), "3_site", "")
				tok.Kind, tok.Root = socius.SessionToken, roots[r]
				return tok
			},
			func(r int) error { _, err := s.RevokeToken(t.Context(), roots[r], at(time.Minute)); return err })
		for _, tok := range stored {
			if got := getToken(t, s, tok.Hash); !sameTime(got.RevokedAt, at(time.Minute)) {
				t.Errorf("a token minted from a revoked token lives on: %s", fmtToken(got))
			}
		}
		checkRefused(t, s, refused)
	}},

	{"FailuresStayApart", func(t *testing.T, s socius.Store) {
		// Writes that fail, at the same time as writes that succeed, fail alone: each
		// caller gets its own outcome, and only the successes are stored.
		createSite(t, s, "3_site", base)
		const n = 48
		for i := range n {
			login(t, s, "3_site", fmt.Sprintf("u%d", i), nil, base)
		}
		var wg sync.WaitGroup
		for i := range n {
			uid := fmt.Sprintf("u%d", i)
			wg.Go(func() {
				var err, want error
				switch i % 4 {
				case 0: // succeeds
					err = s.UpdateProfile(t.Context(), "3_site", uid, patch(map[socius.Field]string{socius.FirstName: uid}), at(time.Second))
				case 1: // an unknown user
					err = s.UpdateProfile(t.Context(), "3_site", "missing-"+uid, patch(map[socius.Field]string{socius.FirstName: uid}), at(time.Second))
					want = socius.ErrNotFound
				case 2: // a taken UID
					err = s.RenameUser(t.Context(), "3_site", uid, "u0")
					want = socius.ErrExists
				case 3: // a renamed user
					err = s.RenameUser(t.Context(), "3_site", uid, "renamed-"+uid)
				}
				if (want == nil && err != nil) || (want != nil && !errors.Is(err, want)) {
					t.Errorf("writer %d: got error %v, want %v", i, err, want)
				}
			})
		}
		wg.Wait()

		for i := range n {
			uid := fmt.Sprintf("u%d", i)
			switch i % 4 {
			case 0:
				if u := getUser(t, s, "3_site", uid); u.Profile[socius.FirstName] != uid {
					t.Errorf("%s: firstName %q, want %q", uid, u.Profile[socius.FirstName], uid)
				}
			case 1:
				_, err := s.User(t.Context(), "3_site", "missing-"+uid)
				wantErr(t, "User after a failed UpdateProfile", err, socius.ErrNotFound)
			case 2:
				if u := getUser(t, s, "3_site", uid); !u.Profile.Empty() {
					t.Errorf("%s after a failed RenameUser: profile %q, want empty", uid, u.Profile)
				}
			case 3:
				getUser(t, s, "3_site", "renamed-"+uid)
				_, err := s.User(t.Context(), "3_site", uid)
				wantErr(t, "User of a renamed UID", err, socius.ErrNotFound)
			}
		}
	}},
}

// issueRounds is the number of rounds of issuesBesideEnds.
const issueRounds = 30

// issuesBesideEnds runs eight issuers that each issue a token a round, by CreateToken
// and LoginWithToken in turn (a login for a user of its own), while end(r) ends what
// round r's tokens need (their key, their root token) once half of the issuers have
// issued in the round, the others in flight or to come: two issuers wait for each end
// to return, so that some issues surely come after it, and must be refused. Every
// issue either stores its token or is refused with refusal. It returns the tokens
// stored and those refused.
func issuesBesideEnds(t *testing.T, s socius.Store, refusal error, token func(i, r int) *socius.Token, end func(r int) error) (stored, refused []*socius.Token) {
	t.Helper()
	const issuers = 8
	var issued [issueRounds]atomic.Int32
	var ended [issueRounds]chan struct{} // closed once the round's end returned
	for r := range issueRounds {
		ended[r] = make(chan struct{})
	}
	enderDone := make(chan struct{})
	var running atomic.Int32 // issuers that do not wait for the ends, still issuing
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range issuers {
		late := i%4 == 3
		if !late {
			running.Add(1)
		}
		wg.Go(func() {
			if !late {
				defer running.Add(-1)
			}
			for r := range issueRounds {
				if late {
					select {
					case <-ended[r]:
					case <-enderDone:
						return
					}
				}
				tok := token(i, r)
				issued[r].Add(1)
				var err error
				if (i+r)%2 == 0 {
					err = s.CreateToken(t.Context(), tok)
				} else {
					tok.UID = fmt.Sprintf("iu-%d-%d", i, r)
					_, err = s.LoginWithToken(t.Context(), tok.APIKey, tok.UID, nil, base, tok)
				}
				if err != nil && !errors.Is(err, refusal) {
					t.Errorf("issuer %d round %d: %v", i, r, err)
					return
				}
				if late && err == nil {
					t.Errorf("issuer %d round %d: a token stored after its round's end returned", i, r)
				}
				mu.Lock()
				if err == nil {
					stored = append(stored, tok)
				} else {
					refused = append(refused, tok)
				}
				mu.Unlock()
			}
		})
	}
	wg.Go(func() {
		defer close(enderDone)
		for r := range issueRounds {
			for issued[r].Load() < issuers/2 && running.Load() > 0 {
				runtime.Gosched()
			}
			if err := end(r); err != nil {
				t.Errorf("the end of round %d: %v", r, err)
				return
			}
			close(ended[r])
		}
	})
	wg.Wait()
	if len(stored) == 0 || len(refused) == 0 {
		t.Logf("%d tokens stored, %d refused: the race was not met both ways this run", len(stored), len(refused))
	}
	return stored, refused
}

// checkRefused checks that refused issues stored nothing: no token, no user.
func checkRefused(t *testing.T, s socius.Store, refused []*socius.Token) {
	t.Helper()
	for _, tok := range refused {
		if got, err := s.Token(t.Context(), tok.Hash); !errors.Is(err, socius.ErrNotFound) {
			t.Errorf("a refused token: %v, %v; want none", got, err)
		}
		if tok.UID == "" {
			continue
		}
		if _, err := s.User(t.Context(), tok.APIKey, tok.UID); !errors.Is(err, socius.ErrNotFound) {
			t.Errorf("the user of a refused LoginWithToken %s: %v; want ErrNotFound", tok.UID, err)
		}
	}
}
