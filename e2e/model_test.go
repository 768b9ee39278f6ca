package e2e

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/url"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/socius/socius"
	"github.com/socius/socius/client"
	"github.com/socius/socius/gigya"
	"github.com/socius/socius/internal/seedrange"
	"modernc.org/sqlite"
)

// The API model test drives a running `socius serve` with random sequences of API
// calls, each made with one of the kinds of credential (a site's partner secret or one
// of its keys, signed or sent in clear, a key limited to some methods, a bearer JWT,
// access and mobile session tokens the sequence obtained, alive or ended), some with
// checkParams=true, a third through the Go client (package client, which also validates
// getUserInfo's UIDSignature), and checks each answer against an in-memory model of
// what SPEC.md and docs/compatibility.md promise: the error code (one of several when
// the order of two refusals is the server's to choose), and for getUserInfo the profile
// and login state. Every few calls the model's whole state is read back through the
// API: every user of both sites, and every token (alive, ended, bound to the user the
// model says). A refused call must change nothing, which those reads check.
//
// Where the store conformance suite's model tests (storetest/model.go) check a store
// behind its Go interface, this one checks the server in front of it: authentication,
// the order of the handlers' checks, which user a token acts on, what a logout, a
// deletion or a rename does to tokens, what deleting a key or replacing its secret
// does to its calls and tokens (each sequence has a key of its own on each site, which
// it deletes, creates again and gives new secrets with `socius key`, beside the running
// server).
//
// Fixed seeds run by default; SOCIUS_API_MODEL_SEEDS=N (seeds 1 to N) or A-B runs
// others. A failure names the seed and the calls that led to it.

// apiModelOps is the number of calls in one sequence; apiCompareEvery is how often the
// whole state is read back.
const (
	apiModelOps     = 400
	apiCompareEvery = 10
)

// apiModelSeeds are the seeds to run: SOCIUS_API_MODEL_SEEDS, or 1 to 5 (of which
// seed 5 is the one to replay a call after its key was given a new secret; seeds 1,
// 2 and 5 do after its deletion).
func apiModelSeeds(t *testing.T) []uint64 {
	seeds, err := seedrange.Seeds("SOCIUS_API_MODEL_SEEDS", 5)
	if err != nil {
		t.Fatal(err)
	}
	return seeds
}

// The profile fields, as the API names them.
var modelFields = []string{"nickname", "photoURL", "thumbnailURL", "firstName", "lastName", "gender", "age", "email"}

// apiSite is one site of the model: its credentials and its users.
type apiSite struct {
	partner, key, jwt credential
	limited           credential // a key that may call limitedMethods only
	users             map[string]*apiUser
}

type apiUser struct {
	profile  map[string]string // field name → value; a cleared field is absent
	loggedIn bool
}

// apiToken is a token the sequence obtained.
type apiToken struct {
	cred credential // Token, and SessionSecret for a mobile session
	site int
	uid  string // the user it is bound to; "" for a token of the site
	dead bool   // revoked (by a logout or deletion of its user)
	// deadSeen: a comparison read it ended.
	deadSeen bool
	// limited: obtained by a key that may call limitedMethods only, whose permissions
	// the token has.
	limited bool
	// ownKey: obtained by the sequence's own key (which takes the token with it when it
	// is deleted); gone: it was, and the token is no longer stored.
	ownKey, gone bool
}

// apiModel is the state the server must hold: two sites' users, and the tokens.
type apiModel struct {
	sites  [2]*apiSite
	tokens []*apiToken
}

func (m *apiModel) user(site int, uid string) *apiUser { return m.sites[site].users[uid] }

// endTokens revokes every token of the site bound to uid (a logout or deletion).
func (m *apiModel) endTokens(site int, uid string) {
	for _, tk := range m.tokens {
		if tk.site == site && tk.uid == uid {
			tk.dead = true
		}
	}
}

// apiCall is one call of a sequence, as made, and what the model expects of it.
type apiCall struct {
	desc    string
	cred    credential
	method  string
	params  url.Values
	site    int     // the site it acts for
	replay  *replay // for method "replay": the call sent again
	httpURL bool    // a signed call to getToken sent over HTTP (refused)
	// viaClient: made with the Go client (package client) rather than the test's own
	// requests.
	viaClient bool
	strict    bool // sent with checkParams=true: a parameter (or userInfo key) it does not know is 403007
	want      []int
	// apply, set where the model wants 0, changes the model as the call did and checks
	// what the answer a carries.
	apply func(a answer) error
}

// apiRun is one sequence against one server.
type apiRun struct {
	t     *testing.T
	p     *proc
	rng   *rand.Rand
	seed  uint64
	uids  []string // the UIDs the sequence uses; those made per seed, so seeds share a server
	m     *apiModel
	trail []string
	// lastSigned is the last signed call that succeeded, to replay.
	lastSigned *replay
	// own is the sequence's own key of each site (a key with every right), and ownLive
	// whether it exists: the sequence deletes it and creates it again, and replaces
	// its secret (ownOld: with the secret it had before; none before the first).
	own, ownOld [2]credential
	ownLive     [2]bool
	rotations   int
}

type replay struct {
	base, method string
	form         url.Values
	// ownKey: the userKey of the sequence's own key it was signed with, if it was (a
	// replay after the key's deletion is 403005, after a new secret 403003).
	ownKey string
	// want, when not 0, is the code of its replay, made next and last: its key was
	// deleted or given a new secret (see keyCommand).
	want int
}

// apiModelAtOnce is how many sequences run side by side on one server: their calls
// meet in the server's handlers and in the store's group commits, while each keeps to
// users and tokens of its own, so that its model stays exact.
const apiModelAtOnce = 4

// TestAPIModel runs the sequences on every store, and on the SQLite file in emulator
// mode (`serve --emulator`, the stand-in for Gigya in a CI, which must answer the
// same). When they are done, the store holds as many users and tokens of each site as
// their models together (and what it held before): none was made by a refused call, or
// under a UID no sequence reads.
func TestAPIModel(t *testing.T) {
	seeds := apiModelSeeds(t)
	emulator := backend{"sqlite-emulator", func(*testing.T, string) []string { return []string{"--emulator"} }, true}
	for _, b := range append(slices.Clone(backends), emulator) {
		t.Run(b.name, func(t *testing.T) {
			p := serveTwoSites(t, b)
			if b.name == emulator.name {
				checkEmulating(t, p)
			}
			db := openDB(t, p)
			users, tokens := storeCounts(t, db)
			var wg sync.WaitGroup
			var mu sync.Mutex
			slots := make(chan struct{}, apiModelAtOnce)
			for _, seed := range seeds {
				slots <- struct{}{}
				wg.Go(func() {
					defer func() { <-slots }()
					m := runAPIModel(t, p, seed)
					mu.Lock()
					defer mu.Unlock()
					for site, s := range m.sites {
						users[site] += len(s.users)
					}
					for _, tk := range m.tokens {
						if !tk.gone {
							tokens[tk.site]++
						}
					}
				})
			}
			wg.Wait()
			if t.Failed() {
				return
			}
			gotUsers, gotTokens := storeCounts(t, db)
			if gotUsers != users || gotTokens != tokens {
				t.Errorf("the store holds %v users and %v tokens of sites A and B; the models and what it held before, %v and %v", gotUsers, gotTokens, users, tokens)
			}
			p.stop()
		})
	}
}

// checkEmulating checks that p is in emulator mode: its admin API answers (else the
// path is an unknown method, 400001).
func checkEmulating(t *testing.T, p *proc) {
	resp, err := p.client.Get(p.HTTPURL + "/_emulator/api/status")
	if err != nil {
		t.Fatal(err)
	}
	var status map[string]any
	err = json.NewDecoder(resp.Body).Decode(&status)
	resp.Body.Close()
	if _, ok := status["clock"]; err != nil || !ok {
		t.Fatalf("GET /_emulator/api/status: %v, %v: is the server in emulator mode?", status, err)
	}
}

// storeCounts reads how many users and tokens sites A and B have in the store, behind
// the server's back.
func storeCounts(t *testing.T, db *sql.DB) (users, tokens [2]int) {
	t.Helper()
	fromUsers := "users"
	if _, ok := db.Driver().(*sqlite.Driver); ok {
		fromUsers = "users JOIN sites ON sites.id = users.site" // keyed by the site's number
	}
	for i, s := range []credential{siteA, siteB} {
		where := " WHERE api_key = '" + s.APIKey + "'"
		for _, c := range []struct {
			n    *int
			from string
		}{{&users[i], fromUsers}, {&tokens[i], "tokens"}} {
			if err := db.QueryRow("SELECT count(*) FROM " + c.from + where).Scan(c.n); err != nil {
				t.Fatalf("counting %s: %v", c.from, err)
			}
		}
	}
	return users, tokens
}

// runAPIModel runs the sequence of seed and returns its model as it ended.
func runAPIModel(t *testing.T, p *proc, seed uint64) *apiModel {
	jwt := func(c credential) credential {
		c.JWT = jwtKey(t)
		return c
	}
	r := &apiRun{t: t, p: p, seed: seed, rng: rand.New(rand.NewPCG(seed, 0x50c105)), m: &apiModel{}}
	r.m.sites[0] = &apiSite{partner: siteA, key: keyA, jwt: jwt(jwtA), limited: limitedA, users: map[string]*apiUser{}}
	r.m.sites[1] = &apiSite{partner: siteB, key: keyB, jwt: jwt(jwtB), limited: limitedB, users: map[string]*apiUser{}}
	// Each seed has UIDs of its own; "site_" starts one (a token may not rename its user
	// to such a name).
	for _, name := range []string{"ann", "bob", "cat", "dan", "site_eve"} {
		r.uids = append(r.uids, fmt.Sprintf("%s-m%d", name, seed))
	}
	for site, s := range r.m.sites {
		r.own[site] = credential{APIKey: s.partner.APIKey, UserKey: fmt.Sprintf("AModelKey%c%d", 'A'+site, seed),
			Secret: base64.StdEncoding.EncodeToString(fmt.Appendf(nil, "model key %c of seed %d", 'A'+site, seed))}
		r.keyCommand(site, "create")
	}
	for i := 1; i <= apiModelOps; i++ {
		r.step(i)
		if i%apiCompareEvery == 0 || i == apiModelOps {
			r.compare(i, i == apiModelOps)
		}
		if t.Failed() {
			break
		}
	}
	return r.m
}

// fail reports a difference from the model with the seed and the last calls.
func (r *apiRun) fail(format string, args ...any) {
	r.t.Helper()
	trail := r.trail
	if len(trail) > 25 {
		trail = trail[len(trail)-25:]
	}
	r.t.Errorf("seed %d: %s\nthe last calls (SOCIUS_API_MODEL_SEEDS=%d-%d runs this sequence alone):\n  %s",
		r.seed, fmt.Sprintf(format, args...), r.seed, r.seed, strings.Join(trail, "\n  "))
	runtime.Goexit() // the sequence ends here; it runs beside others, not as a test of its own
}

// pick returns one of the choices at random.
func pick[T any](r *apiRun, choices ...T) T { return choices[r.rng.IntN(len(choices))] }

// step makes one random call and checks its answer.
func (r *apiRun) step(i int) {
	c := r.next()
	var a answer
	var err error
	var form url.Values
	var base string
	if c.method == "key" {
		r.trail = append(r.trail, fmt.Sprintf("%d. %s", i, c.desc))
		c.apply(nil)
		return
	}
	switch {
	case c.method == "replay":
		a, err = r.p.post(c.replay.base, c.replay.method, c.replay.form, nil)
	case c.viaClient:
		a, err = r.clientCall(c)
	case signs(c.cred):
		// Signed here rather than in p.call, to keep the form for a replay. getToken is
		// served over HTTPS only (a call over HTTP is one the model expects refused).
		base = r.p.HTTPURL
		if c.method == "socialize.getToken" && !c.httpURL {
			base = r.p.HTTPSURL
		}
		form = authorize(c.cred, base, c.method, c.params)
		a, err = r.p.post(base, c.method, form, nil)
	default:
		a, err = r.p.call(c.cred, c.method, c.params)
	}
	code := a.code()
	r.trail = append(r.trail, fmt.Sprintf("%d. %s %s %s → %d %s", i, c.desc, c.method, paramText(c.params), code, a.str("errorDetails")))
	if err != nil {
		r.fail("call %d: %v", i, err)
	}
	if !slices.Contains(c.want, code) {
		r.fail("call %d: errorCode %d, the model wants one of %v: %v", i, code, c.want, a)
	}
	if c.apply != nil {
		if err := c.apply(a); err != nil {
			r.fail("call %d: %v", i, err)
		}
	}
	if form != nil && code == 0 {
		r.lastSigned = &replay{base: base, method: c.method, form: form}
		if c.cred.UserKey == r.own[c.site].UserKey {
			r.lastSigned.ownKey = c.cred.UserKey
		}
	}
}

// clientCall makes the call with the Go client over HTTPS, as an application would:
// the client signs and sends it and reads the answer, which it returns. The
// UIDSignature of a getUserInfo answer is validated with the site's partner secret.
func (r *apiRun) clientCall(c *apiCall) (answer, error) {
	k := c.cred
	opts := []client.Option{client.WithBaseURL(r.p.HTTPSURL), client.WithHTTPClient(r.p.client), client.WithRetries(0)}
	var cred client.Credentials
	switch {
	case k.SessionSecret != "":
		cred = client.Session(k.Token, k.SessionSecret)
	case k.Token != "":
		cred = client.Token(k.Token)
	case k.JWT != nil:
		cred = client.UserKeyRSA(k.APIKey, k.UserKey, k.JWT)
	case k.UserKey != "":
		cred = client.UserKey(k.APIKey, k.UserKey, k.Secret)
	default:
		cred = client.PartnerSecret(k.APIKey, k.Secret)
	}
	if k.Plain {
		opts = append(opts, client.WithPlainSecret())
	}
	if k.UserKey != "" || k.Token != "" {
		opts = append(opts, client.WithPartnerSecret(r.m.sites[c.site].partner.Secret))
	}
	cl, err := client.New(cred, opts...)
	if err != nil {
		return nil, err
	}
	params := client.Params{}
	for name := range c.params {
		params[name] = c.params.Get(name)
	}
	var a answer
	var refusal *client.Error
	resp, err := cl.Call(context.Background(), c.method, params)
	switch {
	case err == nil:
		err = resp.Decode(&a)
	case errors.As(err, &refusal):
		err = refusal.Decode(&a)
	}
	if err != nil {
		return nil, err
	}
	if c.method == "socialize.getUserInfo" && a.code() == 0 {
		if err := cl.ValidateUIDSignature(a.str("UID"), a.str("signatureTimestamp"), a.str("UIDSignature")); err != nil {
			return a, err
		}
	}
	return a, nil
}

// signs reports whether calls with cred are signed with its secret (not sent in clear,
// not a token, not a bearer JWT).
func signs(cred credential) bool { return cred.Token == "" && cred.JWT == nil && !cred.Plain }

// paramText renders a call's parameters for the trail, in the order of their names.
func paramText(p url.Values) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(p)) {
		parts = append(parts, k+"="+p.Get(k))
	}
	return strings.Join(parts, " ")
}

// caller is a credential a call is made with, and what the model knows of it.
type caller struct {
	desc  string
	cred  credential
	site  int       // the site it acts for (a token's, whatever apiKey it is sent with)
	tok   *apiToken // nil: server credentials
	fault int       // the code the call is refused with before its method runs; 0: none
	// limited: a key (or a token it obtained) that may call limitedMethods only.
	limited bool
	ownKey  bool // the sequence's own key
}

// caller picks a credential for a call to site.
func (r *apiRun) caller(site int, method string) caller {
	s := r.m.sites[site]
	if len(r.m.tokens) > 0 && r.rng.IntN(5) < 2 {
		// Mostly a token alive: ended ones pile up as the sequence goes on.
		tk := pick(r, r.m.tokens...)
		if alive := slices.DeleteFunc(slices.Clone(r.m.tokens), func(tk *apiToken) bool { return tk.dead }); len(alive) > 0 && r.rng.IntN(4) > 0 {
			tk = pick(r, alive...)
		}
		c := caller{desc: "token", cred: tk.cred, site: tk.site, tok: tk, limited: tk.limited, ownKey: tk.ownKey}
		if tk.cred.SessionSecret != "" {
			c.desc = "session token"
		}
		if tk.uid != "" {
			c.desc += " of " + tk.uid
		}
		if tk.limited {
			c.desc += " (limited)"
		}
		if tk.ownKey {
			c.desc += " (by the own key)"
		}
		c.desc += fmt.Sprintf(" of site %c", 'A'+tk.site)
		switch n := r.rng.IntN(8); {
		case n == 0: // sent with the other site's apiKey
			c.cred.APIKey = r.m.sites[1-tk.site].partner.APIKey
			c.desc += " sent as the other site"
			c.fault = socius.CodeInvalidToken
		case n < 3: // sent with its own apiKey
			c.cred.APIKey = r.m.sites[tk.site].partner.APIKey
		}
		if tk.dead {
			c.desc += " (ended)"
			c.fault = socius.CodeInvalidToken
		}
		if method == "socialize.getToken" {
			// getToken takes client credentials: a token is refused before anything
			// about it is looked at.
			c.fault = socius.CodePermissionDenied
		}
		return c
	}
	c := caller{desc: "partner signature", cred: s.partner, site: site}
	switch r.rng.IntN(8) {
	case 0:
		c.desc, c.cred = "partner secret in clear", plain(s.partner)
	case 1:
		c.desc, c.cred = "key, signed", s.key
	case 2:
		c.desc, c.cred = "key's secret in clear", plain(s.key)
	case 3:
		c.desc, c.cred = "bearer JWT", s.jwt
	case 4:
		c.desc, c.cred, c.limited = "limited key, signed", s.limited, true
	case 5, 6:
		c.desc, c.cred, c.ownKey = "own key, signed", r.own[site], true
		if r.rng.IntN(3) == 0 {
			c.desc, c.cred = "own key's secret in clear", plain(r.own[site])
		}
		if r.ownOld[site].Secret != "" && r.rng.IntN(3) == 0 {
			// The secret it had: refused, as any wrong secret is, once the key is found.
			c.cred.Secret = r.ownOld[site].Secret
			c.desc += " with its old secret"
			c.fault = socius.CodeInvalidSignature
		}
		if !r.ownLive[site] {
			c.desc += " (deleted)"
			c.fault = socius.CodeUnauthorizedUser
		}
	}
	c.desc += fmt.Sprintf(" of site %c", 'A'+site)
	return c
}

// namedUser sets the parameter naming the user a call acts on (UID; notifyLogin's
// siteUID) to one uidArg picks, and returns the user the server acts on, or the code it
// refuses the call with first: a bound token naming another user (403007), no user
// named (400002).
func (r *apiRun) namedUser(c caller, call *apiCall, param string) (uid string, refusal int) {
	uid = r.uidArg(c)
	if uid != "" {
		call.params.Set(param, uid)
	}
	if c.tok != nil && c.tok.uid != "" {
		switch uid {
		case "", c.tok.uid:
			return c.tok.uid, 0
		}
		return "", socius.CodePermissionDenied
	}
	if uid == "" {
		return "", socius.CodeMissingParameter
	}
	return uid, 0
}

// uidArg picks the UID a call names: one of the sequence's, or none (a token bound to
// a user implies its own); for a bound token mostly its own.
func (r *apiRun) uidArg(c caller) string {
	switch n := r.rng.IntN(10); {
	case n == 0:
		return ""
	case n < 6 && c.tok != nil && c.tok.uid != "":
		if n < 4 {
			return ""
		}
		return c.tok.uid
	}
	return pick(r, r.uids...)
}

// next makes up the next call.
func (r *apiRun) next() *apiCall {
	if last := r.lastSigned; last != nil && (last.want != 0 || r.rng.IntN(40) == 0) {
		want := socius.CodeDuplicateNonce
		if last.want != 0 {
			want, r.lastSigned = last.want, nil
		}
		return &apiCall{desc: "the last signed call again", method: "replay", params: url.Values{"method": {last.method}}, replay: last, want: []int{want}}
	}
	site := r.rng.IntN(2)
	if r.rng.IntN(40) == 0 {
		op := pick(r, "delete", "rotate-secret")
		if !r.ownLive[site] {
			op = "create"
		}
		return &apiCall{desc: fmt.Sprintf("socius key %s %s (site %c)", op, r.own[site].UserKey, 'A'+site), method: "key",
			apply: func(answer) error { r.keyCommand(site, op); return nil }}
	}
	method := pick(r,
		"socialize.notifyLogin", "socialize.notifyLogin", "socialize.setUserInfo", "socialize.setUserInfo", "socialize.setUserInfo",
		"socialize.getUserInfo", "socialize.getUserInfo", "socialize.logout", "socialize.deleteAccount",
		"socialize.setUID", "socialize.notifyRegistration", "socialize.getToken", "socialize.getToken")
	c := r.caller(site, method)
	call := &apiCall{desc: c.desc, cred: c.cred, site: c.site, method: method, params: url.Values{}}
	// The Go client sends a token without an apiKey: one sent with a token is the
	// test's own request.
	if call.viaClient = (c.tok == nil || c.cred.APIKey == "") && r.rng.IntN(3) == 0; call.viaClient {
		call.desc += " via the Go client"
	}
	if c.fault != 0 {
		// The call is refused whatever it asks: make it ask something.
		call.params.Set("UID", pick(r, r.uids...))
		if method == "socialize.setUserInfo" {
			call.params.Set("userInfo", `{"nickname":"never stored"}`)
		}
		call.want = []int{c.fault}
		return call
	}
	if c.tok != nil && method == "socialize.deleteAccount" {
		call.params.Set("UID", r.uidArg(c))
		call.want = []int{socius.CodePermissionDenied} // server credentials only
		return call
	}
	call.strict = r.rng.IntN(8) == 0
	if call.strict {
		call.params.Set("checkParams", "true")
	}
	switch method {
	case "socialize.notifyLogin":
		r.notifyLogin(c, call)
	case "socialize.setUserInfo":
		r.setUserInfo(c, call)
	case "socialize.getUserInfo":
		r.getUserInfo(c, call)
	case "socialize.logout", "socialize.deleteAccount":
		r.logout(c, call)
	case "socialize.setUID", "socialize.notifyRegistration":
		r.rename(c, call)
	case "socialize.getToken":
		r.getToken(c, call)
	}
	if r.rng.IntN(10) == 0 {
		// A parameter no method knows: ignored, or under checkParams=true refused
		// before the method looks at anything else.
		call.params.Set("favoriteColor", "blue")
		if call.strict && !call.httpURL {
			call.want, call.apply = []int{socius.CodePermissionDenied}, nil
		}
	}
	if c.limited && !slices.Contains(limitedMethods, method) && !call.httpURL {
		call.want, call.apply = []int{socius.CodePermissionDenied}, nil // before the method runs
	}
	return call
}

// A userInfoArg is a userInfo object a call sends.
type userInfoArg struct {
	text  string
	patch map[string]*string // the change it makes: a nil value clears the field
	// invalid: the server refuses it with 400006, and nothing changes; unknownKey: it
	// has a key that is no field, ignored unless the call has checkParams=true.
	invalid, unknownKey bool
}

// refusal is the code the server refuses the object with (0: none), in a call with
// checkParams=true when strict.
func (u userInfoArg) refusal(strict bool) int {
	switch {
	case u.invalid:
		return socius.CodeInvalidValue
	case u.unknownKey && strict:
		return socius.CodePermissionDenied
	}
	return 0
}

// userInfo makes up a userInfo object.
func (r *apiRun) userInfo() userInfoArg {
	patch := map[string]*string{}
	var parts []string
	set := func(f, js string, v *string) {
		parts = append(parts, jsonString(f)+":"+js)
		patch[f] = v
	}
	str := func(s string) *string { return &s }
	for range 1 + r.rng.IntN(3) {
		f := pick(r, modelFields...)
		if _, dup := patch[f]; dup {
			continue
		}
		switch n := r.rng.IntN(12); {
		case n == 0:
			set(f, "null", nil)
		case n == 1:
			set(f, `""`, nil)
		case f == "age":
			age := r.rng.IntN(151)
			switch r.rng.IntN(3) {
			case 0:
				set(f, strconv.Itoa(age), str(strconv.Itoa(age)))
			case 1:
				set(f, jsonString(strconv.Itoa(age)), str(strconv.Itoa(age)))
			default:
				set(f, strconv.Itoa(age)+".0", str(strconv.Itoa(age))) // a whole number written as Python writes a float
			}
		case f == "gender":
			g := pick(r, "m", "f", "u")
			set(f, jsonString(g), str(g))
		case n == 2 && f != "photoURL" && f != "thumbnailURL":
			set(f, "7", str("7")) // a number where a string is wanted: its text
		default:
			v := pick(r, "Zoë", "李小龍", "o'brien", `say "hi"`, "x") + strconv.Itoa(r.rng.IntN(100))
			if f == "photoURL" || f == "thumbnailURL" {
				v = "https://img.example/" + v
			}
			set(f, jsonString(v), str(v))
		}
	}
	u := userInfoArg{patch: patch}
	switch r.rng.IntN(12) {
	case 0: // a value of the wrong kind (after a key that is no field, sometimes)
		if u.unknownKey = r.rng.IntN(2) == 0; u.unknownKey {
			parts = append(parts, `"hobby":"chess"`)
		}
		parts = append(parts, pick(r, `"gender":"x"`, `"age":151`, `"age":"old"`, `"age":true`, `"nickname":{}`, `"email":[]`, `"age":30.5`))
		u.invalid = true
	case 1: // a field set twice
		parts = append(parts, `"firstName":"one"`, `"firstName":"two"`)
		u.invalid = true
	case 2: // not JSON
		return userInfoArg{text: `{"nickname":`, invalid: true}
	case 3, 4: // a key that is no field
		parts = append(parts, `"hobby":"chess"`)
		u.unknownKey = true
	}
	u.text = "{" + strings.Join(parts, ",") + "}"
	return u
}

// jsonString is s as a JSON string.
func jsonString(s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err) // a string always marshals
	}
	return string(b)
}

// applyPatch applies a userInfo change to u.
func applyPatch(u *apiUser, patch map[string]*string) {
	for f, v := range patch {
		if v == nil {
			delete(u.profile, f)
		} else {
			u.profile[f] = *v
		}
	}
}

// login is a notifyLogin's (or a bound getToken's) effect: the user made if new, the
// change applied, logged in.
func (m *apiModel) login(site int, uid string, patch map[string]*string) {
	u := m.user(site, uid)
	if u == nil {
		u = &apiUser{profile: map[string]string{}}
		m.sites[site].users[uid] = u
	}
	applyPatch(u, patch)
	u.loggedIn = true
}

func (r *apiRun) notifyLogin(c caller, call *apiCall) {
	uid, refusal := r.namedUser(c, call, "siteUID")
	mobile := r.rng.IntN(3) == 0
	if mobile {
		call.params.Set("targetEnv", "mobile")
	}
	var ui userInfoArg
	if r.rng.IntN(3) > 0 {
		ui = r.userInfo()
		call.params.Set("userInfo", ui.text)
	}
	switch {
	case refusal != 0:
		call.want = []int{refusal}
	case ui.refusal(call.strict) != 0:
		call.want = []int{ui.refusal(call.strict)}
	default:
		call.want = []int{0}
		call.apply = func(a answer) error {
			r.m.login(c.site, uid, ui.patch)
			if got := a.str("UID"); got != uid {
				return fmt.Errorf("notifyLogin answered UID %q, the model logged in %q", got, uid)
			}
			if !mobile {
				return nil
			}
			tok, secret := a.str("sessionToken"), a.str("sessionSecret")
			if tok == "" || secret == "" {
				return fmt.Errorf("a mobile notifyLogin answered no session: %v", a)
			}
			r.m.tokens = append(r.m.tokens, &apiToken{cred: credential{Token: tok, SessionSecret: secret}, site: c.site, uid: uid, limited: c.limited, ownKey: c.ownKey})
			return nil
		}
	}
}

func (r *apiRun) setUserInfo(c caller, call *apiCall) {
	uid, refusal := r.namedUser(c, call, "UID")
	ui := r.userInfo()
	if r.rng.IntN(15) == 0 {
		ui = userInfoArg{} // sent empty: not sent
	}
	call.params.Set("userInfo", ui.text)
	switch {
	case refusal != 0:
		call.want = []int{refusal}
	case ui.text == "":
		call.want = []int{socius.CodeMissingParameter}
	case ui.refusal(call.strict) != 0:
		call.want = []int{ui.refusal(call.strict)}
	case r.m.user(c.site, uid) == nil:
		call.want = []int{socius.CodeUnauthorizedUser}
	default:
		call.want = []int{0}
		call.apply = func(answer) error {
			applyPatch(r.m.user(c.site, uid), ui.patch)
			return nil
		}
	}
}

// existingUser is namedUser for a call that acts on a user who must exist (else
// 403005): it sets the code the model wants, and returns the user when that is 0.
func (r *apiRun) existingUser(c caller, call *apiCall) (uid string, ok bool) {
	uid, refusal := r.namedUser(c, call, "UID")
	switch {
	case refusal != 0:
		call.want = []int{refusal}
	case r.m.user(c.site, uid) == nil:
		call.want = []int{socius.CodeUnauthorizedUser}
	default:
		call.want = []int{0}
		return uid, true
	}
	return "", false
}

func (r *apiRun) getUserInfo(c caller, call *apiCall) {
	if uid, ok := r.existingUser(c, call); ok {
		call.apply = func(a answer) error { return r.sameUser(a, c.site, uid) }
	}
}

// sameUser compares a getUserInfo answer with the model's user.
func (r *apiRun) sameUser(a answer, site int, uid string) error {
	u := r.m.user(site, uid)
	if got := a.str("UID"); got != uid {
		return fmt.Errorf("getUserInfo answered UID %q, want %q", got, uid)
	}
	if got, _ := a["isLoggedIn"].(bool); got != u.loggedIn {
		return fmt.Errorf("site %c user %s: isLoggedIn %v, the model %v", 'A'+site, uid, got, u.loggedIn)
	}
	for _, f := range modelFields {
		want, has := u.profile[f]
		got, present := a[f]
		switch {
		case !has && present:
			return fmt.Errorf("site %c user %s: %s is %v, the model has none", 'A'+site, uid, f, got)
		case has && !present:
			return fmt.Errorf("site %c user %s: %s is missing, the model has %q", 'A'+site, uid, f, want)
		case !has:
			continue
		}
		text := fmt.Sprint(got)
		if f == "age" {
			n, ok := got.(float64)
			if !ok {
				return fmt.Errorf("site %c user %s: age is %T %v, not a number", 'A'+site, uid, got, got)
			}
			text = strconv.FormatFloat(n, 'f', -1, 64)
		}
		if text != want {
			return fmt.Errorf("site %c user %s: %s is %q, the model has %q", 'A'+site, uid, f, text, want)
		}
	}
	return nil
}

// logout makes a logout or a deleteAccount: either ends the user's tokens.
func (r *apiRun) logout(c caller, call *apiCall) {
	uid, ok := r.existingUser(c, call)
	if !ok {
		return
	}
	call.apply = func(answer) error {
		if call.method == "socialize.deleteAccount" {
			delete(r.m.sites[c.site].users, uid)
		} else {
			r.m.user(c.site, uid).loggedIn = false
		}
		r.m.endTokens(c.site, uid)
		return nil
	}
}

// rename makes a setUID or notifyRegistration. A token bound to a user sends the
// site's UIDSig for the new siteUID (or one of another siteUID).
func (r *apiRun) rename(c caller, call *apiCall) {
	uid, refusal := r.namedUser(c, call, "UID")
	to := pick(r, r.uids...)
	if r.rng.IntN(10) == 0 {
		to = ""
	}
	if to != "" {
		call.params.Set("siteUID", to)
	}
	bound := c.tok != nil && c.tok.uid != ""
	badSig := false
	if bound && r.rng.IntN(8) > 0 {
		ts := strconv.FormatInt(time.Now().Unix(), 10)
		signed := to
		if badSig = r.rng.IntN(6) == 0; badSig {
			signed += "x"
		}
		key, err := socius.DecodeSecret(r.m.sites[c.site].partner.Secret)
		if err != nil {
			r.fail("site %c's secret: %v", 'A'+c.site, err)
		}
		call.params.Set("UIDSig", gigya.UIDSignature(key, ts, signed))
		call.params.Set("UIDTimestamp", ts)
	}
	switch {
	case refusal != 0:
		call.want = []int{refusal}
	case to == "" && call.method == "socialize.setUID":
		call.want = []int{socius.CodeMissingParameter}
	case to == "": // notifyRegistration without siteUID: the user must exist
		call.want = []int{socius.CodeUnauthorizedUser}
		if r.m.user(c.site, uid) != nil {
			call.want = []int{0}
		}
	case to == uid:
		call.want = []int{socius.CodeInvalidValue}
	case bound && call.params.Get("UIDSig") == "":
		call.want = []int{socius.CodeMissingParameter}
	case bound && strings.HasPrefix(to, "site_"):
		call.want = []int{socius.CodePermissionDenied}
	case bound && badSig:
		call.want = []int{socius.CodeInvalidSignature}
	default:
		from, exists := r.m.user(c.site, uid), r.m.user(c.site, to) != nil
		switch {
		case from == nil && exists:
			// Both refusals apply; the contract does not order them.
			call.want = []int{socius.CodeUnauthorizedUser, socius.CodeUniqueIdentifierSet}
		case from == nil:
			call.want = []int{socius.CodeUnauthorizedUser}
		case exists:
			call.want = []int{socius.CodeUniqueIdentifierSet}
		default:
			call.want = []int{0}
			call.apply = func(answer) error {
				users := r.m.sites[c.site].users
				users[to] = users[uid]
				delete(users, uid)
				for _, tk := range r.m.tokens {
					if tk.site == c.site && tk.uid == uid {
						tk.uid = to // a token moves with its user
					}
				}
				return nil
			}
		}
	}
}

func (r *apiRun) getToken(c caller, call *apiCall) {
	call.params.Set("grant_type", pick(r, "none", "client_credentials"))
	var uid string
	if r.rng.IntN(3) > 0 {
		uid = pick(r, r.uids...)
		call.params.Set("x_siteUID", uid)
	}
	var ui userInfoArg
	if r.rng.IntN(3) == 0 {
		ui = r.userInfo()
		call.params.Set("x_userInfo", ui.text)
	}
	// A lifetime, and the expires_in it answers (none: no expiry). None of these ends
	// within a sequence.
	lifetime := pick(r, [2]string{}, [2]string{"0", ""}, [2]string{"-2", ""}, [2]string{"-1", "60"}, [2]string{"3600", "3600"})
	if lifetime[0] != "" {
		call.params.Set("x_sessionExpiration", lifetime[0])
	}
	switch {
	case signs(c.cred) && !call.viaClient && r.rng.IntN(10) == 0:
		call.httpURL = true
		call.desc += " over HTTP"
		call.want = []int{socius.CodeSecretOverHTTP}
	case ui.text != "" && uid == "":
		// x_userInfo without x_siteUID (400002), also when x_userInfo is not valid: the
		// handler checks which user it is for first.
		call.want = []int{socius.CodeMissingParameter}
	case ui.refusal(call.strict) != 0:
		call.want = []int{ui.refusal(call.strict)}
	case c.limited && uid != "":
		call.want = []int{socius.CodePermissionDenied} // a token for a user is a login: notifyLogin's right
	default:
		call.want = []int{0}
		call.apply = func(a answer) error {
			tok := a.str("access_token")
			if tok == "" {
				return fmt.Errorf("getToken answered no access_token: %v", a)
			}
			expiresIn := ""
			if v, ok := a["expires_in"]; ok {
				expiresIn = fmt.Sprint(v)
			}
			if expiresIn != lifetime[1] {
				return fmt.Errorf("getToken with x_sessionExpiration=%q answered expires_in %q, want %q", lifetime[0], expiresIn, lifetime[1])
			}
			if uid != "" {
				r.m.login(c.site, uid, ui.patch)
			}
			r.m.tokens = append(r.m.tokens, &apiToken{cred: credential{Token: tok}, site: c.site, uid: uid, limited: c.limited, ownKey: c.ownKey})
			return nil
		}
	}
}

// keyCommand creates or deletes the sequence's own key of site, or gives it a new
// secret, with the admin command, on the store the server runs on, as an operator
// would while it serves. The key's deletion takes the tokens it obtained, and a call
// it signed can no longer be replayed (its key is looked up first: 403005); created
// again, it has none of them. A new secret leaves its tokens as they were; a call
// signed with the old one is 403003, its replay too (the signature is checked before
// the nonce).
func (r *apiRun) keyCommand(site int, op string) {
	k := r.own[site]
	args := []string{"key", op, k.UserKey}
	switch op {
	case "create":
		args = []string{"key", op, "--site", k.APIKey, "--user-key", k.UserKey, "--secret", k.Secret}
	case "rotate-secret":
		r.rotations++
		r.ownOld[site] = k
		r.own[site].Secret = base64.StdEncoding.EncodeToString(fmt.Appendf(nil, "model key %c of seed %d, secret %d", 'A'+site, r.seed, r.rotations))
		args = append(args, "--secret", r.own[site].Secret)
	}
	args = append(append(args, "--data", r.p.dir), r.p.storeFlags...)
	if _, err := runAdmin(args...); err != nil {
		r.fail("%v", err)
	}
	r.ownLive[site] = op != "delete"
	if op == "create" {
		return
	}
	if op == "delete" {
		for _, tk := range r.m.tokens {
			if tk.site == site && tk.ownKey {
				tk.dead, tk.gone = true, true
			}
		}
	}
	if r.lastSigned != nil && r.lastSigned.ownKey == k.UserKey {
		// Its replay is refused before its nonce is looked at; made next (replays are
		// rare, and the last signed call soon another).
		r.lastSigned.want = map[string]int{"delete": socius.CodeUnauthorizedUser, "rotate-secret": socius.CodeInvalidSignature}[op]
	}
}

// compare reads the whole state back: every user of the sequence on both sites, with
// the site's partner secret, and every token the sequence obtained; a token that ended
// is read at the first comparison after, and at the last (final).
func (r *apiRun) compare(i int, final bool) {
	for site, s := range r.m.sites {
		for _, uid := range r.uids {
			a, err := r.p.call(s.partner, "socialize.getUserInfo", url.Values{"UID": {uid}})
			if err != nil {
				r.fail("after call %d: reading site %c user %s: %v", i, 'A'+site, uid, err)
			}
			if r.m.user(site, uid) == nil {
				if a.code() != socius.CodeUnauthorizedUser {
					r.fail("after call %d: site %c user %s: the model has none, the server answers %v", i, 'A'+site, uid, a)
				}
				continue
			}
			if a.code() != 0 {
				r.fail("after call %d: site %c user %s: %v", i, 'A'+site, uid, a)
			}
			if err := r.sameUser(a, site, uid); err != nil {
				r.fail("after call %d: %v", i, err)
			}
		}
	}
	for n, tk := range r.m.tokens {
		if tk.dead && tk.deadSeen && !final {
			continue
		}
		tk.deadSeen = tk.dead
		params := url.Values{}
		if tk.uid == "" {
			params.Set("UID", r.uids[n%len(r.uids)])
		}
		a, err := r.p.call(tk.cred, "socialize.getUserInfo", params)
		if err != nil {
			r.fail("after call %d: token %d: %v", i, n, err)
		}
		switch {
		case tk.dead:
			if a.code() != socius.CodeInvalidToken {
				r.fail("after call %d: token %d of site %c (bound to %q) was ended, the server answers %v", i, n, 'A'+tk.site, tk.uid, a)
			}
		case tk.uid == "":
			want := 0
			if r.m.user(tk.site, params.Get("UID")) == nil {
				want = socius.CodeUnauthorizedUser
			}
			if a.code() != want {
				r.fail("after call %d: token %d of site %c, reading %s: errorCode %d, want %d: %v", i, n, 'A'+tk.site, params.Get("UID"), a.code(), want, a)
			}
		default:
			// A bound token reads its own user, who exists: the token ended with its
			// user's deletion.
			if a.code() != 0 {
				r.fail("after call %d: token %d of site %c bound to %s: %v", i, n, 'A'+tk.site, tk.uid, a)
			}
			if err := r.sameUser(a, tk.site, tk.uid); err != nil {
				r.fail("after call %d: token %d: %v", i, n, err)
			}
		}
	}
}
