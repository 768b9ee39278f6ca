package metrics

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/socius/socius"
	"github.com/socius/socius/server"
)

// Latency buckets, in seconds. Calls are answered after an fsync, so they span from
// sub-millisecond reads to the seconds of an overloaded disk.
var (
	CallBuckets  = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
	StoreBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}
)

// Instruments are the metrics of the calls Socius answers and of its store.
type Instruments struct {
	calls         *CounterVec
	injected      *CounterVec
	callDuration  *HistogramVec
	storeDuration *HistogramVec
	// authFailureLimited counts the calls refused by the limit on failed
	// authentications (server.Call.AuthFailureLimited).
	authFailureLimited *Counter
}

// NewInstruments registers socius_calls_total, socius_call_duration_seconds,
// socius_store_duration_seconds and socius_auth_failure_refusals_total in r.
func NewInstruments(r *Registry) *Instruments {
	return &Instruments{
		calls: r.NewCounter("socius_calls_total",
			"API calls answered, by method and errorCode (0 is success). Unknown methods count as method \"unknown\".",
			"method", "code"),
		injected: r.NewCounter("socius_emulator_faults_total",
			"Calls that an emulator fault rule answered or delayed, by method and errorCode; they are not in socius_calls_total or socius_call_duration_seconds (emulator mode only).",
			"method", "code"),
		callDuration: r.NewHistogram("socius_call_duration_seconds",
			"Time from a call's request headers read to its answer ready to be written (the write itself is not in it), by method.",
			CallBuckets, "method"),
		storeDuration: r.NewHistogram("socius_store_duration_seconds",
			"Time spent in each store operation (a write includes its group commit and fsync).",
			StoreBuckets, "op"),
		authFailureLimited: r.NewCounter("socius_auth_failure_refusals_total",
			"Calls refused with 403048 before authentication, their client address having spent its budget of failed authentications (--auth-failure-limit); they are in socius_calls_total too.").With(),
	}
}

// ObserveCall records one call; it is a server.Config.Observe function.
func (in *Instruments) ObserveCall(c *server.Call) {
	method := c.Method
	if !c.Known {
		// The path is the client's: as a label it would let anyone grow the
		// metrics without bound.
		method = "unknown"
	}
	if c.Injected {
		// An answer the emulator was told to give: no fault of the server's, and no
		// alert on socius_calls_total's 500001 should fire for it.
		in.injected.With(method, strconv.Itoa(c.Code)).Inc()
		return
	}
	in.calls.With(method, strconv.Itoa(c.Code)).Inc()
	if c.AuthFailureLimited {
		in.authFailureLimited.Inc()
	}
	in.callDuration.With(method).Observe(c.Duration.Seconds())
}

// Calls returns the number of calls counted for method and code.
func (in *Instruments) Calls(method string, code int) uint64 {
	return in.calls.With(method, strconv.Itoa(code)).Value()
}

// Store returns st timed: every operation of the store contract is observed in
// socius_store_duration_seconds under its name. Methods the contract gains later pass
// through untimed until they are added here; so does a view of the store (Snapshot).
func (in *Instruments) Store(st socius.Store) socius.Store {
	t := &timedStore{Store: st, ops: map[string]*Histogram{}}
	for _, op := range storeOps {
		t.ops[op] = in.storeDuration.With(op) // every op shows from the first scrape
	}
	return t
}

// Nonces returns ns timed: UseNonce is observed in socius_store_duration_seconds as
// op use_nonce (for a store that keeps nonces in the database: PostgreSQL's, a write
// for every signed call).
func (in *Instruments) Nonces(ns socius.NonceStore) socius.NonceStore {
	return &timedNonces{ns: ns, h: in.storeDuration.With("use_nonce")}
}

// Nonced returns ns timed: its operations are observed in socius_store_duration_seconds
// as ops update_profile_with_nonce and user_with_nonce (a signed setUserInfo's or
// getUserInfo's nonce and store work in one operation: PostgreSQL's).
func (in *Instruments) Nonced(ns socius.NoncedUserStore) socius.NoncedUserStore {
	return &timedNonced{ns: ns, update: in.storeDuration.With("update_profile_with_nonce"), user: in.storeDuration.With("user_with_nonce")}
}

type timedNonced struct {
	ns           socius.NoncedUserStore
	update, user *Histogram
}

func (t *timedNonced) UpdateProfileNonced(ctx context.Context, n socius.NonceUse, apiKey, uid string, p *socius.Patch, now time.Time) (bool, error) {
	start := time.Now()
	fresh, err := t.ns.UpdateProfileNonced(ctx, n, apiKey, uid, p, now)
	t.update.Observe(time.Since(start).Seconds())
	return fresh, err
}

func (t *timedNonced) UserNonced(ctx context.Context, n socius.NonceUse, apiKey, uid string) (bool, *socius.User, error) {
	start := time.Now()
	fresh, u, err := t.ns.UserNonced(ctx, n, apiKey, uid)
	t.user.Observe(time.Since(start).Seconds())
	return fresh, u, err
}

type timedNonces struct {
	ns socius.NonceStore
	h  *Histogram
}

func (t *timedNonces) UseNonce(ctx context.Context, credential, nonce string, expires, now time.Time) (bool, error) {
	start := time.Now()
	ok, err := t.ns.UseNonce(ctx, credential, nonce, expires, now)
	t.h.Observe(time.Since(start).Seconds())
	return ok, err
}

var storeOps = []string{"create_site", "put_site", "site", "sites", "create_key", "put_key", "key", "keys", "delete_key",
	"login", "login_with_token", "user", "update_profile", "logout", "delete_user", "rename_user",
	"users", "put_user", "count_users", "delete_users",
	"create_token", "token", "revoke_token", "delete_expired_tokens"}

type timedStore struct {
	socius.Store
	ops map[string]*Histogram // read-only after Store returns
}

// Snapshot opens a view of the store under it (socius.Snapshotter), untimed: an
// export's reads, which would blur the serving reads' latencies. Over a store that has
// no view it answers errors.ErrUnsupported, as the sealed store over this one then
// does, and the export reads the store itself.
func (t *timedStore) Snapshot(ctx context.Context) (socius.View, error) {
	sn, ok := t.Store.(socius.Snapshotter)
	if !ok {
		return nil, fmt.Errorf("metrics: the store cannot be read as of one moment: %w", errors.ErrUnsupported)
	}
	return sn.Snapshot(ctx)
}

func (t *timedStore) observe(op string, start time.Time) {
	t.ops[op].Observe(time.Since(start).Seconds())
}

func (t *timedStore) CreateSite(ctx context.Context, s *socius.Site) error {
	defer t.observe("create_site", time.Now())
	return t.Store.CreateSite(ctx, s)
}

func (t *timedStore) PutSite(ctx context.Context, s *socius.Site) error {
	defer t.observe("put_site", time.Now())
	return t.Store.PutSite(ctx, s)
}

func (t *timedStore) Site(ctx context.Context, apiKey string) (*socius.Site, error) {
	defer t.observe("site", time.Now())
	return t.Store.Site(ctx, apiKey)
}

func (t *timedStore) Sites(ctx context.Context) ([]*socius.Site, error) {
	defer t.observe("sites", time.Now())
	return t.Store.Sites(ctx)
}

func (t *timedStore) CreateKey(ctx context.Context, k *socius.Key) error {
	defer t.observe("create_key", time.Now())
	return t.Store.CreateKey(ctx, k)
}

func (t *timedStore) PutKey(ctx context.Context, k *socius.Key) error {
	defer t.observe("put_key", time.Now())
	return t.Store.PutKey(ctx, k)
}

func (t *timedStore) Key(ctx context.Context, userKey string) (*socius.Key, error) {
	defer t.observe("key", time.Now())
	return t.Store.Key(ctx, userKey)
}

func (t *timedStore) Keys(ctx context.Context, apiKey string) ([]*socius.Key, error) {
	defer t.observe("keys", time.Now())
	return t.Store.Keys(ctx, apiKey)
}

func (t *timedStore) DeleteKey(ctx context.Context, userKey string) error {
	defer t.observe("delete_key", time.Now())
	return t.Store.DeleteKey(ctx, userKey)
}

func (t *timedStore) Login(ctx context.Context, apiKey, uid string, patch *socius.Patch, now time.Time) (bool, error) {
	defer t.observe("login", time.Now())
	return t.Store.Login(ctx, apiKey, uid, patch, now)
}

func (t *timedStore) User(ctx context.Context, apiKey, uid string) (*socius.User, error) {
	defer t.observe("user", time.Now())
	return t.Store.User(ctx, apiKey, uid)
}

func (t *timedStore) UpdateProfile(ctx context.Context, apiKey, uid string, patch *socius.Patch, now time.Time) error {
	defer t.observe("update_profile", time.Now())
	return t.Store.UpdateProfile(ctx, apiKey, uid, patch, now)
}

func (t *timedStore) Logout(ctx context.Context, apiKey, uid string, now time.Time) error {
	defer t.observe("logout", time.Now())
	return t.Store.Logout(ctx, apiKey, uid, now)
}

func (t *timedStore) DeleteUser(ctx context.Context, apiKey, uid string, now time.Time) error {
	defer t.observe("delete_user", time.Now())
	return t.Store.DeleteUser(ctx, apiKey, uid, now)
}

func (t *timedStore) RenameUser(ctx context.Context, apiKey, from, to string) error {
	defer t.observe("rename_user", time.Now())
	return t.Store.RenameUser(ctx, apiKey, from, to)
}

func (t *timedStore) Users(ctx context.Context, apiKey, after string, limit int) ([]*socius.User, error) {
	defer t.observe("users", time.Now())
	return t.Store.Users(ctx, apiKey, after, limit)
}

func (t *timedStore) PutUser(ctx context.Context, u *socius.User) error {
	defer t.observe("put_user", time.Now())
	return t.Store.PutUser(ctx, u)
}

func (t *timedStore) CountUsers(ctx context.Context, apiKey string) (int, error) {
	defer t.observe("count_users", time.Now())
	return t.Store.CountUsers(ctx, apiKey)
}

func (t *timedStore) DeleteUsers(ctx context.Context, apiKey string) (int, error) {
	defer t.observe("delete_users", time.Now())
	return t.Store.DeleteUsers(ctx, apiKey)
}

func (t *timedStore) LoginWithToken(ctx context.Context, apiKey, uid string, p *socius.Patch, now time.Time, tok *socius.Token) (bool, error) {
	defer t.observe("login_with_token", time.Now())
	return t.Store.LoginWithToken(ctx, apiKey, uid, p, now, tok)
}

func (t *timedStore) LoginWhile(ctx context.Context, apiKey, uid string, p *socius.Patch, now time.Time, tokens ...string) (bool, error) {
	defer t.observe("login", time.Now())
	return t.Store.LoginWhile(ctx, apiKey, uid, p, now, tokens...)
}

func (t *timedStore) CreateToken(ctx context.Context, tok *socius.Token) error {
	defer t.observe("create_token", time.Now())
	return t.Store.CreateToken(ctx, tok)
}

func (t *timedStore) Token(ctx context.Context, hash string) (*socius.Token, error) {
	defer t.observe("token", time.Now())
	return t.Store.Token(ctx, hash)
}

func (t *timedStore) RevokeToken(ctx context.Context, hash string, now time.Time) (int, error) {
	defer t.observe("revoke_token", time.Now())
	return t.Store.RevokeToken(ctx, hash, now)
}

func (t *timedStore) DeleteExpiredTokens(ctx context.Context, before time.Time) (int, error) {
	defer t.observe("delete_expired_tokens", time.Now())
	return t.Store.DeleteExpiredTokens(ctx, before)
}
