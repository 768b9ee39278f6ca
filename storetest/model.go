package storetest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/socius/socius"
	"github.com/socius/socius/internal/seedrange"
)

// The model tests: a long random sequence of the store's writes over a few sites,
// keys, users and tokens, each made on the store and on a plain in-memory model of
// what the interfaces' comments promise. Each one the store must answer as the model
// does (the same result, or one of the refusals that apply when more than one does:
// the contract does not order them); every few operations, and at the end, it must
// hold what the model holds: every user of every site, every token, every key; and a
// view opened along the way must still read what the model held when it opened. The
// sequences mix what the other tests take one at a time (a rename onto the UID of a
// deleted user whose revoked tokens are still stored, a revocation of a token that
// minted others, a key deleted under its tokens and made again on the other site, a
// secret swapped while another is stored, housekeeping between them), so that the
// stores meet orders no one wrote a test for.
//
// The seeds are fixed, so that a failure comes back: SOCIUS_MODEL_SEEDS=N runs seeds
// 1 to N instead of the default three, SOCIUS_MODEL_SEEDS=A-B seeds A to B.

// modelOps is how many operations each seed makes, and compareEvery after how many
// the store's whole content is compared with the model's (each operation's own result
// is checked as it comes): every one would take a PostgreSQL store, whose suite runs
// in seven modes, a minute more.
const (
	modelOps     = 400
	compareEvery = 4
)

// modelTests returns one test per seed.
func modelTests() []test {
	seeds, err := seedrange.Seeds("SOCIUS_MODEL_SEEDS", 3)
	if err != nil {
		panic("storetest: " + err.Error())
	}
	var tests []test
	for _, seed := range seeds {
		tests = append(tests, test{"Seed" + strconv.FormatUint(seed, 10), func(t *testing.T, s socius.Store) {
			newModelRun(t, s, seed).run(modelOps)
		}})
	}
	return tests
}

// The universe of the sequences: two sites and one that does not exist; three
// userKeys, of either site or of none as the sequence makes them; secrets to give
// sites and keys; UIDs whose byte order is not their order in any other collation;
// ten token hashes, so that hashes collide and chains form.
var (
	modelSites    = []string{"3_a", "3_b"}
	modelNoSite   = "3_none"
	modelAPIKeys  = append([]string{modelNoSite}, modelSites...) // the sites and the one that does not exist
	modelUserKeys = []string{"k_a", "k_b", "k_c"}
	modelSecrets  = []string{"c2VjcmV0LW9mLSIgKyBhcGlLZXk=", "cm90YXRlZC1zaXRlLXNlY3JldA==", "a2V5LXNlY3JldC0wMTIzNDU2Nzg5"}
	modelMethods  = [][]string{nil, {"socialize.getUserInfo"}, {"socialize.setUserInfo", "socialize.getUserInfo"}}
	modelUIDs     = []string{"u1", "u2", "u10", "U1", "a b", "a", "z~", "0"}
	modelHashes   = func() []string {
		hs := make([]string, 10)
		for i := range hs {
			hs[i] = hashOf("model token " + strconv.Itoa(i))
		}
		return hs
	}()
)

// modelValues are the values a patch may give each field: valid, normalized ones
// (the store takes them so), "" to clear.
var modelValues = [socius.NumFields][]string{
	socius.Nickname:     {"", "ada", "Ω ω", "bob"},
	socius.PhotoURL:     {"", "https://example.com/a.png", "https://example.com/b.png"},
	socius.ThumbnailURL: {"", "https://example.com/a-t.png"},
	socius.FirstName:    {"", "Ada", "Émile", "Bob"},
	socius.LastName:     {"", "Lovelace", "King"},
	socius.Gender:       {"", "m", "f", "u"},
	socius.Age:          {"", "0", "36", "150"},
	socius.Email:        {"", "ada@example.com", "b@example.org"},
}

// A modelRun is one sequence: the store, the model, the random source and what was
// done so far (for the failure's message).
type modelRun struct {
	t    *testing.T
	s    socius.Store
	seed uint64
	rnd  *rand.Rand
	now  time.Time
	log  []string

	sites  map[string]socius.Site            // by apiKey
	keys   map[string]socius.Key             // the live keys, by userKey
	users  map[string]map[string]socius.User // by site and UID
	tokens map[string]socius.Token           // the stored tokens, by hash

	// view is a view of the store opened during the sequence (nil when none is
	// open), and viewSites, viewKeys and viewUsers the model's at its moment.
	view      socius.View
	viewSites []*socius.Site
	viewKeys  []*socius.Key
	viewUsers map[string][]*socius.User
}

func newModelRun(t *testing.T, s socius.Store, seed uint64) *modelRun {
	m := &modelRun{
		t: t, s: s, seed: seed,
		rnd:    rand.New(rand.NewPCG(seed, 0x50c105)),
		now:    base.Truncate(time.Millisecond), // whole milliseconds: what every store keeps
		sites:  map[string]socius.Site{},
		keys:   map[string]socius.Key{},
		users:  map[string]map[string]socius.User{},
		tokens: map[string]socius.Token{},
	}
	for _, site := range modelSites {
		m.sites[site] = *createSite(t, s, site, m.now)
		m.users[site] = map[string]socius.User{}
	}
	for i, k := range modelUserKeys[:2] {
		m.keys[k] = *createKey(t, s, modelSites[i], k, m.now)
	}
	return m
}

func (m *modelRun) run(n int) {
	ops := []struct {
		weight int
		op     func()
	}{
		{8, m.login}, {4, m.loginWhile}, {5, m.loginWithToken}, {10, m.updateProfile},
		{3, m.logout}, {4, m.deleteUser}, {4, m.renameUser}, {2, m.putUser},
		{1, m.deleteUsers}, {6, m.createToken}, {3, m.revokeToken}, {1, m.deleteExpired},
		{1, m.deleteKey}, {1, m.createKey}, {1, m.putKey}, {1, m.putSite}, {1, m.swapSecret},
		{2, m.snapshot},
	}
	total := 0
	for _, o := range ops {
		total += o.weight
	}
	for i := range n {
		// Time moves on by whole milliseconds, sometimes not at all, and now and then
		// back (the emulator's clock set back, a command on a machine whose clock is
		// behind the server's).
		step := time.Duration(m.rnd.IntN(3000)) * time.Millisecond
		if m.rnd.IntN(8) == 0 {
			step = -4 * step
		}
		m.now = m.now.Add(step)
		r := m.rnd.IntN(total)
		for _, o := range ops {
			if r -= o.weight; r < 0 {
				o.op()
				break
			}
		}
		if i%compareEvery == compareEvery-1 {
			m.compare()
		}
	}
	m.compare()
	m.comparePages()
	if m.view != nil {
		m.snapshot() // compares and closes it
	}
}

// fail ends the sequence, saying how to make it again and what led to it.
func (m *modelRun) fail(format string, args ...any) {
	m.t.Helper()
	last := m.log[max(0, len(m.log)-25):]
	m.t.Fatalf("seed %d (SOCIUS_MODEL_SEEDS=%d-%d makes it again), operation %d: %s\nthe operations before it, the last %d:\n  %s",
		m.seed, m.seed, m.seed, len(m.log), fmt.Sprintf(format, args...), len(last), strings.Join(last, "\n  "))
}

// did notes an operation in the log, with the time it is made at.
func (m *modelRun) did(format string, args ...any) {
	m.log = append(m.log, fmt.Sprintf("%s %s", m.now.Format("15:04:05.000"), fmt.Sprintf(format, args...)))
}

// answered notes in the log the refusal the last operation met.
func (m *modelRun) answered(err error) {
	if err != nil && len(m.log) > 0 {
		m.log[len(m.log)-1] += ": " + err.Error()
	}
}

// refused checks err against the refusals that apply: none (err must be nil, and
// refused is false) or some (err must be one of them, and refused is true: the store
// and the model then change nothing).
func (m *modelRun) refused(what string, err error, apply ...error) bool {
	m.t.Helper()
	m.answered(err)
	if len(apply) == 0 {
		if err != nil {
			m.fail("%s: %v, want no error", what, err)
		}
		return false
	}
	if err == nil {
		m.fail("%s: no error, want one of %v", what, apply)
	}
	if socius.ErrorCode(err) == socius.CodeDatabaseError {
		m.fail("%s: %v, a database failure, want one of %v", what, err, apply)
	}
	for _, e := range apply {
		if errors.Is(err, e) {
			return true
		}
	}
	m.fail("%s: %v, want one of %v", what, err, apply)
	return true
}

// pick returns one of xs.
func pick[T any](m *modelRun, xs []T) T { return xs[m.rnd.IntN(len(xs))] }

// site is a site of the store, now and then one that does not exist.
func (m *modelRun) site() string {
	if m.rnd.IntN(12) == 0 {
		return modelNoSite
	}
	return pick(m, modelSites)
}

func (m *modelRun) patch() *socius.Patch {
	var p socius.Patch
	for f := socius.Field(0); f < socius.NumFields; f++ {
		if m.rnd.IntN(3) == 0 {
			p.Set(f, pick(m, modelValues[f][:]))
		}
	}
	return &p
}

func fmtPatch(p *socius.Patch) string {
	var parts []string
	for _, f := range p.Fields() {
		v, _ := p.Get(f)
		parts = append(parts, fmt.Sprintf("%s=%q", f.Name(), v))
	}
	return "{" + strings.Join(parts, " ") + "}"
}

// siteExists reports whether the model holds the site.
func (m *modelRun) siteExists(apiKey string) bool {
	_, ok := m.sites[apiKey]
	return ok
}

// user returns the model's user and whether there is one.
func (m *modelRun) user(site, uid string) (socius.User, bool) {
	u, ok := m.users[site][uid]
	return u, ok
}

func (m *modelRun) login() {
	site, uid, p := m.site(), pick(m, modelUIDs), m.patch()
	m.did("Login(%s, %q, %s)", site, uid, fmtPatch(p))
	created, err := m.s.Login(m.t.Context(), site, uid, p, m.now)
	var apply []error
	if !m.siteExists(site) {
		apply = append(apply, socius.ErrNotFound)
	}
	if m.refused("Login", err, apply...) {
		return
	}
	m.checkCreated(created, m.applyLogin(site, uid, p))
}

// applyLogin is a login in the model; it reports whether it created the user.
func (m *modelRun) applyLogin(site, uid string, p *socius.Patch) bool {
	u, ok := m.user(site, uid)
	if !ok {
		u = socius.User{APIKey: site, UID: uid, CreatedAt: m.now, UpdatedAt: m.now}
	} else if !p.Empty() {
		u.UpdatedAt = m.now
	}
	u.Profile.Apply(p)
	u.LoginAt, u.LoggedIn = m.now, true
	m.users[site][uid] = u
	return !ok
}

func (m *modelRun) checkCreated(got, want bool) {
	m.t.Helper()
	if got != want {
		m.fail("created = %v, want %v", got, want)
	}
}

// livesFor is what a login of uid made while the token with the hash lives must be
// refused with: nothing, ErrRootGone (not stored, or revoked) or ErrTokenMoved (bound
// to another user), or both.
func (m *modelRun) livesFor(uid, hash string) []error {
	if hash == "" {
		return nil
	}
	var apply []error
	tok, ok := m.tokens[hash]
	if !ok || !tok.RevokedAt.IsZero() {
		apply = append(apply, socius.ErrRootGone)
	}
	if ok && uid != "" && tok.UID != "" && tok.UID != uid {
		apply = append(apply, socius.ErrTokenMoved)
	}
	return apply
}

func (m *modelRun) loginWhile() {
	site, uid, p := m.site(), pick(m, modelUIDs), m.patch()
	hashes := make([]string, m.rnd.IntN(3))
	var apply []error
	for i := range hashes {
		hashes[i] = pick(m, modelHashes)
		apply = append(apply, m.livesFor(uid, hashes[i])...)
	}
	m.did("LoginWhile(%s, %q, %s, %.8s)", site, uid, fmtPatch(p), hashes)
	created, err := m.s.LoginWhile(m.t.Context(), site, uid, p, m.now, hashes...)
	if !m.siteExists(site) {
		apply = append(apply, socius.ErrNotFound)
	}
	if m.refused("LoginWhile", err, apply...) {
		return
	}
	m.checkCreated(created, m.applyLogin(site, uid, p))
}

// token returns a new token of the site for uid ("" for none), made now, perhaps with
// a key, a root and the token it was minted with.
func (m *modelRun) token(site, uid string) *socius.Token {
	tok := &socius.Token{
		Hash: pick(m, modelHashes), Kind: pick(m, []socius.TokenKind{socius.AccessToken, socius.SessionToken}),
		APIKey: site, UID: uid, CreatedAt: m.now,
	}
	if m.rnd.IntN(2) == 0 {
		// Whole seconds, as housekeeping's bounds below: some fall on one.
		tok.ExpiresAt = m.now.Truncate(time.Second).Add(time.Duration(m.rnd.IntN(65)-5) * time.Second)
	}
	if m.rnd.IntN(3) == 0 {
		tok.UserKey = pick(m, modelUserKeys)
	}
	other := func() string {
		for {
			if h := pick(m, modelHashes); h != tok.Hash {
				return h
			}
		}
	}
	if m.rnd.IntN(2) == 0 {
		tok.Root = other()
		if m.rnd.IntN(2) == 0 {
			tok.MintedWith = other()
		}
	}
	return tok
}

// tokenRefusals are the refusals of storing tok (with a login of uid, when not ""),
// but for the site's.
func (m *modelRun) tokenRefusals(tok *socius.Token, uid string) []error {
	var apply []error
	if _, taken := m.tokens[tok.Hash]; taken {
		apply = append(apply, socius.ErrExists)
	}
	if tok.UserKey != "" {
		if k, ok := m.keys[tok.UserKey]; !ok || k.APIKey != tok.APIKey {
			apply = append(apply, socius.ErrKeyGone)
		}
	}
	apply = append(apply, m.livesFor(uid, tok.Root)...)
	apply = append(apply, m.livesFor(uid, tok.MintedWith)...)
	return apply
}

func (m *modelRun) loginWithToken() {
	site, uid, p := m.site(), pick(m, modelUIDs), m.patch()
	tok := m.token(site, uid)
	m.did("LoginWithToken(%s, %q, %s, %s%s)", site, uid, fmtPatch(p), fmtToken(tok), mintedWith(tok))
	created, err := m.s.LoginWithToken(m.t.Context(), site, uid, p, m.now, tok)
	apply := m.tokenRefusals(tok, uid)
	if !m.siteExists(site) {
		apply = append(apply, socius.ErrNotFound)
	}
	if m.refused("LoginWithToken", err, apply...) {
		return
	}
	m.checkCreated(created, m.applyLogin(site, uid, p))
	m.storeToken(tok)
}

// mintedWith says, for the log, which token tok was minted with, if any.
func mintedWith(tok *socius.Token) string {
	if tok.MintedWith == "" {
		return ""
	}
	return fmt.Sprintf(" minted with %.12s", tok.MintedWith)
}

// storeToken puts tok in the model as the store keeps it: without MintedWith.
func (m *modelRun) storeToken(tok *socius.Token) {
	c := *tok
	c.MintedWith = ""
	m.tokens[c.Hash] = c
}

func (m *modelRun) createToken() {
	uid := ""
	if m.rnd.IntN(3) > 0 {
		uid = pick(m, modelUIDs) // a user that need not exist: a token may come first
	}
	tok := m.token(m.site(), uid)
	m.did("CreateToken(%s%s)", fmtToken(tok), mintedWith(tok))
	err := m.s.CreateToken(m.t.Context(), tok)
	apply := m.tokenRefusals(tok, "")
	if !m.siteExists(tok.APIKey) {
		apply = append(apply, socius.ErrNotFound)
	}
	if m.refused("CreateToken", err, apply...) {
		return
	}
	m.storeToken(tok)
}

func (m *modelRun) revokeToken() {
	hash := pick(m, modelHashes)
	if roots := m.liveRoots(); len(roots) > 0 && m.rnd.IntN(2) == 0 {
		hash = pick(m, roots) // one that minted a token still live, more often
	}
	m.did("RevokeToken(%.12s)", hash)
	n, err := m.s.RevokeToken(m.t.Context(), hash, m.now)
	var minted []string
	for h, tok := range m.tokens {
		if tok.Root == hash && tok.RevokedAt.IsZero() {
			minted = append(minted, h)
		}
	}
	tok, stored := m.tokens[hash]
	var apply []error
	if !stored && len(minted) == 0 {
		apply = append(apply, socius.ErrNotFound)
	}
	if m.refused("RevokeToken", err, apply...) {
		return
	}
	if n != len(minted) {
		m.fail("RevokeToken revoked %d minted tokens, want %d", n, len(minted))
	}
	if stored && tok.RevokedAt.IsZero() {
		tok.RevokedAt = m.now
		m.tokens[hash] = tok
	}
	for _, h := range minted {
		c := m.tokens[h]
		c.RevokedAt = latest(m.now, c.CreatedAt) // never revoked before it was made
		m.tokens[h] = c
	}
}

// liveRoots are the hashes that are the Root of a live token, sorted.
func (m *modelRun) liveRoots() []string {
	var roots []string
	for _, tok := range m.tokens {
		if tok.Root != "" && tok.RevokedAt.IsZero() && !slices.Contains(roots, tok.Root) {
			roots = append(roots, tok.Root)
		}
	}
	slices.Sort(roots) // the map's order is random: the sequence must not be
	return roots
}

// tokenTime is the expiry or revocation time of a stored token, or def when none has one.
func (m *modelRun) tokenTime(def time.Time) time.Time {
	var times []time.Time
	for _, h := range modelHashes { // in a fixed order, for the sequence's sake
		if tok, ok := m.tokens[h]; ok {
			for _, tm := range []time.Time{tok.ExpiresAt, tok.RevokedAt} {
				if !tm.IsZero() {
					times = append(times, tm)
				}
			}
		}
	}
	if len(times) == 0 {
		return def
	}
	return pick(m, times)
}

// latest is the later of a and b.
func latest(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// revokeUserTokens revokes the live tokens of a user in the model.
func (m *modelRun) revokeUserTokens(site, uid string) {
	for h, tok := range m.tokens {
		if tok.APIKey == site && tok.UID == uid && tok.RevokedAt.IsZero() {
			tok.RevokedAt = m.now
			m.tokens[h] = tok
		}
	}
}

func (m *modelRun) updateProfile() {
	site, uid, p := m.site(), pick(m, modelUIDs), m.patch()
	m.did("UpdateProfile(%s, %q, %s)", site, uid, fmtPatch(p))
	err := m.s.UpdateProfile(m.t.Context(), site, uid, p, m.now)
	u, ok := m.user(site, uid)
	var apply []error
	if !ok {
		apply = append(apply, socius.ErrNotFound)
	}
	if m.refused("UpdateProfile", err, apply...) || p.Empty() {
		return
	}
	u.Profile.Apply(p)
	u.UpdatedAt = m.now
	m.users[site][uid] = u
}

func (m *modelRun) logout() {
	site, uid := m.site(), pick(m, modelUIDs)
	m.did("Logout(%s, %q)", site, uid)
	err := m.s.Logout(m.t.Context(), site, uid, m.now)
	u, ok := m.user(site, uid)
	var apply []error
	if !ok {
		apply = append(apply, socius.ErrNotFound)
	}
	if m.refused("Logout", err, apply...) {
		return
	}
	u.LoggedIn = false
	m.users[site][uid] = u
	m.revokeUserTokens(site, uid)
}

func (m *modelRun) deleteUser() {
	site, uid := m.site(), pick(m, modelUIDs)
	m.did("DeleteUser(%s, %q)", site, uid)
	err := m.s.DeleteUser(m.t.Context(), site, uid, m.now)
	var apply []error
	if _, ok := m.user(site, uid); !ok {
		apply = append(apply, socius.ErrNotFound)
	}
	if m.refused("DeleteUser", err, apply...) {
		return
	}
	delete(m.users[site], uid)
	m.revokeUserTokens(site, uid)
}

func (m *modelRun) renameUser() {
	site, from, to := m.site(), pick(m, modelUIDs), pick(m, modelUIDs)
	if from == to {
		return // refused before the store by the server (setUID: the UIDs must differ)
	}
	m.did("RenameUser(%s, %q, %q)", site, from, to)
	err := m.s.RenameUser(m.t.Context(), site, from, to)
	u, ok := m.user(site, from)
	var apply []error
	if !ok {
		apply = append(apply, socius.ErrNotFound)
	}
	if _, taken := m.user(site, to); taken {
		apply = append(apply, socius.ErrExists)
	}
	if m.refused("RenameUser", err, apply...) {
		return
	}
	delete(m.users[site], from)
	u.UID = to
	m.users[site][to] = u
	for h, tok := range m.tokens {
		if tok.APIKey == site && tok.UID == from {
			tok.UID = to // revoked ones too: they follow the user
			m.tokens[h] = tok
		}
	}
}

func (m *modelRun) putUser() {
	u := socius.User{APIKey: m.site(), UID: pick(m, modelUIDs), LoggedIn: m.rnd.IntN(2) == 0}
	for f := socius.Field(0); f < socius.NumFields; f++ {
		u.Profile[f] = pick(m, modelValues[f][:])
	}
	ago := func() time.Time { return m.now.Add(-time.Duration(m.rnd.IntN(100_000)) * time.Millisecond) }
	u.CreatedAt, u.UpdatedAt = ago(), ago()
	if m.rnd.IntN(3) > 0 {
		u.LoginAt = ago()
	}
	m.did("PutUser(%s, %q, %q, logged in %v)", u.APIKey, u.UID, u.Profile, u.LoggedIn)
	err := m.s.PutUser(m.t.Context(), &u)
	var apply []error
	if !m.siteExists(u.APIKey) {
		apply = append(apply, socius.ErrNotFound)
	}
	if m.refused("PutUser", err, apply...) {
		return
	}
	m.users[u.APIKey][u.UID] = u
}

func (m *modelRun) deleteUsers() {
	site := m.site()
	if m.rnd.IntN(3) == 0 {
		site = "" // every site
	}
	m.did("DeleteUsers(%q)", site)
	n, err := m.s.DeleteUsers(m.t.Context(), site)
	if m.refused("DeleteUsers", err) {
		return
	}
	want := 0
	for s, us := range m.users {
		if site == "" || s == site {
			want += len(us)
			m.users[s] = map[string]socius.User{}
		}
	}
	if n != want {
		m.fail("DeleteUsers(%q) = %d, want %d", site, n, want)
	}
	for h, tok := range m.tokens {
		if tok.UID != "" && (site == "" || tok.APIKey == site) {
			delete(m.tokens, h) // the revoked tokens of users deleted before too
		}
	}
}

func (m *modelRun) deleteExpired() {
	before := m.now.Truncate(time.Second).Add(-time.Duration(m.rnd.IntN(20)) * time.Second)
	if m.rnd.IntN(2) == 0 {
		before = m.tokenTime(before) // a bound that falls on a token's time, more often
	}
	m.did("DeleteExpiredTokens(%s)", before.Format("15:04:05.000"))
	n, err := m.s.DeleteExpiredTokens(m.t.Context(), before)
	if m.refused("DeleteExpiredTokens", err) {
		return
	}
	want := 0
	for h, tok := range m.tokens {
		expired := !tok.ExpiresAt.IsZero() && tok.ExpiresAt.Before(before)
		revoked := !tok.RevokedAt.IsZero() && tok.RevokedAt.Before(before)
		if expired || revoked {
			delete(m.tokens, h)
			want++
		}
	}
	if n != want {
		m.fail("DeleteExpiredTokens = %d, want %d", n, want)
	}
}

func (m *modelRun) deleteKey() {
	k := pick(m, modelUserKeys)
	m.did("DeleteKey(%s)", k)
	err := m.s.DeleteKey(m.t.Context(), k)
	var apply []error
	if _, ok := m.keys[k]; !ok {
		apply = append(apply, socius.ErrNotFound)
	}
	if m.refused("DeleteKey", err, apply...) {
		return
	}
	delete(m.keys, k)
	for h, tok := range m.tokens {
		if tok.UserKey == k {
			delete(m.tokens, h)
		}
	}
}

// key returns a new key of a site (now and then of none) with a secret and methods.
func (m *modelRun) key() *socius.Key {
	return &socius.Key{UserKey: pick(m, modelUserKeys), APIKey: m.site(), Secret: pick(m, modelSecrets),
		Methods: pick(m, modelMethods), CreatedAt: m.now}
}

func (m *modelRun) createKey() {
	key := m.key()
	m.did("CreateKey(%s)", fmtKey(key))
	err := m.s.CreateKey(m.t.Context(), key)
	var apply []error
	if _, ok := m.keys[key.UserKey]; ok {
		apply = append(apply, socius.ErrExists)
	}
	if !m.siteExists(key.APIKey) {
		apply = append(apply, socius.ErrNotFound)
	}
	if m.refused("CreateKey", err, apply...) {
		return
	}
	m.keys[key.UserKey] = *key
}

// putKey rotates a key (a new secret, methods), or makes it when it does not exist.
func (m *modelRun) putKey() {
	key := m.key()
	m.did("PutKey(%s)", fmtKey(key))
	err := m.s.PutKey(m.t.Context(), key)
	old, ok := m.keys[key.UserKey]
	var apply []error
	if ok && old.APIKey != key.APIKey {
		apply = append(apply, socius.ErrExists)
	}
	if !m.siteExists(key.APIKey) {
		apply = append(apply, socius.ErrNotFound)
	}
	if m.refused("PutKey", err, apply...) {
		return
	}
	if ok {
		key.CreatedAt = old.CreatedAt // the key keeps its site and creation time
	}
	m.keys[key.UserKey] = *key
}

// putSite gives a site a new secret and name (its creation time stays), or finds it
// taken when made anew.
func (m *modelRun) putSite() {
	site := m.sites[pick(m, modelSites)]
	site.Secret, site.Name, site.CreatedAt = pick(m, modelSecrets), "Site "+strconv.Itoa(m.rnd.IntN(100)), m.now
	if m.rnd.IntN(4) == 0 {
		m.did("CreateSite(%s)", fmtSite(&site))
		m.refused("CreateSite", m.s.CreateSite(m.t.Context(), &site), socius.ErrExists)
		return
	}
	m.did("PutSite(%s)", fmtSite(&site))
	if m.refused("PutSite", m.s.PutSite(m.t.Context(), &site)) {
		return
	}
	site.CreatedAt = m.sites[site.APIKey].CreatedAt
	m.sites[site.APIKey] = site
}

// swapSecret replaces a site's or a key's secret while it holds the one given (the
// one stored, or another), when the store is a socius.SecretSwapper.
func (m *modelRun) swapSecret() {
	sw, ok := m.s.(socius.SecretSwapper)
	if !ok {
		return
	}
	if m.rnd.IntN(2) == 0 {
		swapIn(m, "SwapSiteSecret", m.sites, pick(m, modelAPIKeys), sw.SwapSiteSecret,
			func(s *socius.Site) *string { return &s.Secret })
	} else {
		swapIn(m, "SwapKeySecret", m.keys, pick(m, modelUserKeys), sw.SwapKeySecret,
			func(k *socius.Key) *string { return &k.Secret })
	}
}

// swapIn swaps the secret of the site or key named in the store and, when the store
// says it did, in the model's things; the store must have swapped exactly when the
// model holds the thing with the secret given as the old one.
func swapIn[T any](m *modelRun, what string, things map[string]T, name string,
	swap func(ctx context.Context, name, old, new string) (bool, error), secret func(*T) *string) {
	old, new := pick(m, modelSecrets), pick(m, modelSecrets)
	m.did("%s(%s, %.8s, %.8s)", what, name, old, new)
	swapped, err := swap(m.t.Context(), name, old, new)
	if m.refused(what, err) {
		return
	}
	thing, ok := things[name]
	if want := ok && *secret(&thing) == old; swapped != want {
		m.fail("%s = %v, want %v", what, swapped, want)
	}
	if swapped {
		*secret(&thing) = new
		things[name] = thing
	}
}

// snapshot opens a view of the store, which the model then remembers as it is now;
// or, with one open already, checks that the view still reads what the model held
// when it opened, whatever was written since, and closes it. A store that cannot be
// read as of one moment is left alone.
func (m *modelRun) snapshot() {
	sn, ok := m.s.(socius.Snapshotter)
	if !ok {
		return
	}
	if m.view == nil {
		m.did("Snapshot")
		v, err := sn.Snapshot(m.t.Context())
		if errors.Is(err, errors.ErrUnsupported) {
			return
		}
		if err != nil {
			m.fail("Snapshot: %v", err)
		}
		m.view, m.viewSites, m.viewKeys, m.viewUsers = v, m.siteList(), m.keyList(), map[string][]*socius.User{}
		m.t.Cleanup(func() { v.Close() }) // before the store's Close, should the sequence fail
		for _, site := range modelSites {
			m.viewUsers[site] = m.sortedUsers(site)
		}
		return
	}
	m.did("the view's reads, then its Close")
	for _, site := range modelSites {
		var got []*socius.User
		for u, err := range socius.AllUsers(m.t.Context(), m.view, site, 2) {
			if err != nil {
				m.fail("the view's users of %s: %v", site, err)
			}
			got = append(got, u)
		}
		m.compareUsers("the view's", site, got, m.viewUsers[site])
	}
	m.compareSitesKeys("the view's", m.view, m.viewSites, m.viewKeys)
	if err := m.view.Close(); err != nil {
		m.fail("the view's Close: %v", err)
	}
	m.view = nil
}

// siteList is the model's sites, in apiKey order.
func (m *modelRun) siteList() []*socius.Site {
	var sites []*socius.Site
	for _, site := range m.sites {
		c := site
		sites = append(sites, &c)
	}
	slices.SortFunc(sites, func(a, b *socius.Site) int { return strings.Compare(a.APIKey, b.APIKey) })
	return sites
}

// keyList is the model's keys, in userKey order.
func (m *modelRun) keyList() []*socius.Key {
	var keys []*socius.Key
	for _, k := range m.keys {
		c := k
		keys = append(keys, &c)
	}
	sortKeys(keys)
	return keys
}

func sortKeys(keys []*socius.Key) {
	slices.SortFunc(keys, func(a, b *socius.Key) int { return strings.Compare(a.UserKey, b.UserKey) })
}

// A siteKeyReader lists sites and keys: a store or a view.
type siteKeyReader interface {
	Sites(ctx context.Context) ([]*socius.Site, error)
	Keys(ctx context.Context, apiKey string) ([]*socius.Key, error)
}

// compareSitesKeys checks that r lists the sites and keys given, and each site's
// keys among them. Their order of creation is not compared: the sequence makes
// some at one instant.
func (m *modelRun) compareSitesKeys(what string, r siteKeyReader, sites []*socius.Site, keys []*socius.Key) {
	m.t.Helper()
	got, err := r.Sites(m.t.Context())
	if err != nil {
		m.fail("%s Sites: %v", what, err)
	}
	slices.SortFunc(got, func(a, b *socius.Site) int { return strings.Compare(a.APIKey, b.APIKey) })
	if len(got) != len(sites) {
		m.fail("%s Sites: %q, want %q", what, siteKeys(got), siteKeys(sites))
	}
	for i := range got {
		if !sameSite(got[i], sites[i]) {
			m.fail("%s Sites:\n got %s\nwant %s", what, fmtSite(got[i]), fmtSite(sites[i]))
		}
	}
	for _, apiKey := range append([]string{""}, modelAPIKeys...) {
		var want []*socius.Key
		for _, k := range keys {
			if apiKey == "" || k.APIKey == apiKey {
				want = append(want, k)
			}
		}
		got, err := r.Keys(m.t.Context(), apiKey)
		if err != nil {
			m.fail("%s Keys(%q): %v", what, apiKey, err)
		}
		sortKeys(got)
		if len(got) != len(want) {
			m.fail("%s Keys(%q): %q, want %q", what, apiKey, userKeys(got), userKeys(want))
		}
		for i := range got {
			if !sameKey(got[i], want[i]) {
				m.fail("%s Keys(%q):\n got %s\nwant %s", what, apiKey, fmtKey(got[i]), fmtKey(want[i]))
			}
		}
	}
}

// compare checks that the store holds what the model holds: every user of every
// site (and of none that does not exist), the count of all, every token of the
// universe, every site and key.
func (m *modelRun) compare() {
	m.t.Helper()
	ctx := m.t.Context()
	total := 0
	for _, site := range modelAPIKeys {
		got, err := m.s.Users(ctx, site, "", 100)
		if err != nil {
			m.fail("Users(%s): %v", site, err)
		}
		want := m.sortedUsers(site)
		total += len(want)
		m.compareUsers("the store's", site, got, want)
	}
	if n, err := m.s.CountUsers(ctx, ""); err != nil || n != total {
		m.fail("CountUsers(\"\") = %d, %v; want %d", n, err, total)
	}
	compareOne(m, "Token", modelHashes, m.s.Token, m.tokens, sameToken, fmtToken)
	m.compareSitesKeys("the store's", m.s, m.siteList(), m.keyList())
	// One at a time too, as a call finds them (through the stores' caches).
	compareOne(m, "Site", modelAPIKeys, m.s.Site, m.sites, sameSite, fmtSite)
	compareOne(m, "Key", modelUserKeys, m.s.Key, m.keys, sameKey, fmtKey)
}

// compareUsers checks that got, what a store or a view read of a site's users, are
// the users want, in that order.
func (m *modelRun) compareUsers(what, site string, got, want []*socius.User) {
	m.t.Helper()
	if len(got) != len(want) {
		m.fail("%s users of %s: %q, want %q", what, site, uidsOf(got), uidsOf(want))
	}
	for i := range got {
		if d := userDiff(got[i], want[i]); d != "" {
			m.fail("%s user %s/%q: %s", what, site, want[i].UID, d)
		}
	}
}

// compareOne checks what get finds under each name against the model's things: the
// same thing, or socius.ErrNotFound for a name the model does not hold.
func compareOne[T any](m *modelRun, what string, names []string, get func(context.Context, string) (*T, error),
	things map[string]T, same func(got, want *T) bool, show func(*T) string) {
	m.t.Helper()
	for _, name := range names {
		got, err := get(m.t.Context(), name)
		want, ok := things[name]
		switch {
		case !ok && !errors.Is(err, socius.ErrNotFound):
			found := "nothing"
			if got != nil {
				found = show(got)
			}
			m.fail("%s(%.12s): %s, %v; want none", what, name, found, err)
		case ok && err != nil:
			m.fail("%s(%.12s): %v; want %s", what, name, err, show(&want))
		case ok && !same(got, &want):
			m.fail("%s(%.12s):\n got %s\nwant %s", what, name, show(got), show(&want))
		}
	}
}

// comparePages reads every site's users in pages of each size from 1 to 4, after
// UIDs the store holds and after ones it does not, and in total.
func (m *modelRun) comparePages() {
	m.t.Helper()
	for _, site := range modelSites {
		want := m.sortedUsers(site)
		for limit := 1; limit <= 4; limit++ {
			var got []*socius.User
			for u, err := range socius.AllUsers(m.t.Context(), m.s, site, limit) {
				if err != nil {
					m.fail("AllUsers(%s, %d): %v", site, limit, err)
				}
				got = append(got, u)
			}
			if !slices.Equal(uidsOf(got), uidsOf(want)) {
				m.fail("AllUsers(%s) in pages of %d: %q, want %q", site, limit, uidsOf(got), uidsOf(want))
			}
		}
		for _, after := range append(slices.Clone(modelUIDs), "", "U", "u", "~") {
			got, err := m.s.Users(m.t.Context(), site, after, 2)
			if err != nil {
				m.fail("Users(%s, %q, 2): %v", site, after, err)
			}
			var rest []*socius.User
			for _, u := range want {
				if u.UID > after && len(rest) < 2 {
					rest = append(rest, u)
				}
			}
			if !slices.Equal(uidsOf(got), uidsOf(rest)) {
				m.fail("Users(%s, %q, 2): %q, want %q", site, after, uidsOf(got), uidsOf(rest))
			}
		}
	}
}

// sortedUsers are the model's users of a site in byte order of their UIDs.
func (m *modelRun) sortedUsers(site string) []*socius.User {
	var us []*socius.User
	for _, u := range m.users[site] {
		c := u
		us = append(us, &c)
	}
	slices.SortFunc(us, func(a, b *socius.User) int { return strings.Compare(a.UID, b.UID) })
	return us
}
