// Package server answers the Gigya socialize REST API over HTTP: the route table, the
// authentication of every call, one handler per method and one envelope writer.
//
// A call goes through the same steps, and the first failure answers:
// read and decode the parameters (413001, 400001, 400006; 403048 when the bodies being
// received hold the server's whole budget), read the answer format, take a slot among
// the calls in progress (403048 when all are taken), find the method (400001), check
// the parameters' lengths (400006), check the client address's budget of failed
// authentications (403048), take a token from the apiKey's rate limit (403048),
// authenticate (400093,
// 400002, 400008, 403002, 403003, 403004, 403005, 403006, 403025), refuse a token on a
// server-only method (403007), check the key's permissions (403007), apply the
// emulator's fault rules when Config.Fault is set (any code, or a delay), check the
// parameters the method does not know (ignoredParams, or 403007 with
// checkParams=true), then run the method.
//
// Credentials: a partner or userKey secret, sent in plain over TLS or signing the call;
// a JWT signed with a userKey's RSA key (Authorization: Bearer); an access token from
// socialize.getToken (oauth_token, bearer, TLS only); a mobile session token from
// notifyLogin with targetEnv=mobile (oauth_token, TLS only, the call signed with the
// session secret). Tokens are stored as hashes and never appear in an answer, a log
// line or Config.Observe.
//
// # Limits
//
// Every input is bounded before it costs anything: the body (MaxBodyBytes, 413001),
// the number of parameters and the length of their names (package gigya), the length
// of each value (MaxParamBytes, 400006; userInfo and x_userInfo only by the body limit
// where the method takes them), the calls in progress (MaxConcurrent), the request
// bodies held at once (MaxConcurrent times MaxBodyBytes) and, when configured, the
// calls a second of each apiKey (RateLimit) and the failed authentications a second of
// each client address (AuthFailureLimit). A body's buffer grows as its bytes
// arrive, and a call takes its slot only once its request is read: a client that
// sends slowly, or not at all, holds no slot, and about no more memory than it sent.
// Header size and read/write/idle timeouts belong to the http.Server that runs the
// handler (see cmd/socius).
package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"mime"
	"net/http"
	"net/netip"
	"path"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/socius/socius"
	"github.com/socius/socius/gigya"
	"github.com/socius/socius/ratelimit"
)

// Config is what a Server needs. Store and Nonces are required.
type Config struct {
	Store  socius.Store
	Nonces socius.NonceStore
	// Nonced, when set, is the store that keeps Nonces with the users (the same
	// database: PostgreSQL's). setUserInfo and getUserInfo signed with the site's or a
	// key's secret then record their nonce with their own store work, one round trip
	// and one commit instead of two: the nonce is checked after the method's
	// parameters, and a call that fails or panics before its store work, or whose
	// store work fails, records it through Nonces, so that a replay is refused and
	// changes nothing, and a nonce seen before is answered 403004 before the call's
	// own error. Not with Fault (emulator mode).
	Nonced socius.NoncedUserStore
	// Clock tells the time for every rule; the system clock when nil.
	Clock socius.Clock
	// Skew is how far a signed request's timestamp may be from now (default 120 s).
	Skew time.Duration
	// NonceWindow, when set, returns how long past a request's time its nonce must be
	// remembered when that is longer than Skew: the longest timestamp window of the
	// nodes sharing the nonce store, so that none of them accepts a replay.
	NonceWindow func() time.Duration
	// NotBefore, when set, is the start of a node that lost the nonces of the requests
	// signed before it (its memory store, after an unclean shutdown left no snapshot;
	// or a PostgreSQL node started with the data folder of an embedded server that
	// stopped less than a window before, whose saved nonces are not in the database):
	// a signed request or bearer JWT timed before it is refused with 403002, as one
	// outside the window, so that none of those requests can be replayed.
	NotBefore time.Time
	// TrustForwardedProto honours X-Forwarded-Proto: https from a TLS-terminating
	// proxy: the call then counts as secure. With TrustedProxies, only from a
	// connection of one of them.
	TrustForwardedProto bool
	// TrustedProxies lists the proxies whose X-Forwarded-For tells the client's
	// address (Call.ClientAddr): the address the limit on failed authentications
	// counts and the call log says. Empty: the connection's peer is the client.
	TrustedProxies TrustedProxies
	// MaxBodyBytes limits a request body (default 1 MiB).
	MaxBodyBytes int64
	// MaxParamBytes limits the value of each parameter other than userInfo and
	// x_userInfo, which only the body limit bounds for the methods that take them
	// (default 64 KiB).
	MaxParamBytes int
	// MaxConcurrent caps the calls in progress, counted from when a call's request has
	// been read; a call beyond it is answered at once with 403048 instead of waiting
	// (0: no cap). The bodies held at once, being received or in calls in progress,
	// are capped at MaxConcurrent times MaxBodyBytes bytes (403048 beyond).
	MaxConcurrent int
	// WriteTimeout is the http.Server's: an answer ready after it, counted from the
	// call's start, cannot be written (the connection is closed), and is recorded as
	// 504002 rather than as what it would have said (0: none).
	WriteTimeout time.Duration
	// RateLimit is the number of calls a second each apiKey may make to this server
	// (0: no limit); RateBurst how many it may make at once (default: RateLimit
	// rounded up, at least 1). A call over the limit is answered 403048.
	RateLimit float64
	RateBurst int
	// AuthFailureLimit is the number of failed authentications a second each client
	// address may make to this server (0: no limit); AuthFailureBurst how many it may
	// make at once (default: AuthFailureLimit rounded up, at least 1). The address is
	// the client's (Call.ClientAddr, TrustedProxies): its IP, an IPv6 one's /64. Once an address has
	// spent its budget, every call from it is answered 403048 before authentication,
	// until the budget has a token again. See authFailureCounts for the failures that
	// count.
	AuthFailureLimit float64
	AuthFailureBurst int
	// Logger receives unexpected failures at error level; slog.Default() when nil.
	// The line per call is an Observe function (see LogCalls).
	Logger *slog.Logger
	// Observe, when set, is called after every call with what happened (for request
	// logs and metrics). It must not keep the *Call. Credentials never reach it: the
	// values of oauth_token, secret, client_secret, sig and code in Call.Params are
	// masked as "***".
	Observe func(*Call)

	// ExplainSignatures makes a 403003 for a wrong signature say what the server
	// signed: the base string and the normalized URL it used, and the other candidate
	// URLs it tried (never the expected signature or the secret). For the emulator; a
	// production server keeps the terse details.
	ExplainSignatures bool
	// Fault, when set, is asked before each authenticated call runs its method
	// (after authentication and the key's permissions, so credential errors still
	// come first). ok=true means a rule applies: the call waits delay, then answers
	// the Gigya error code, or runs normally when code is 0. The emulator's fault
	// injection.
	Fault func(method, apiKey string) (code int, delay time.Duration, ok bool)
}

// DefaultMaxBodyBytes is the default request body limit.
const DefaultMaxBodyBytes = 1 << 20

// DefaultSkew is the default timestamp window.
const DefaultSkew = 120 * time.Second

// DefaultMaxParamBytes is the default limit on one parameter's value.
const DefaultMaxParamBytes = 64 << 10

// Server is an http.Handler for the socialize API.
type Server struct {
	cfg      Config
	methods  map[string]*method // by lower-case full name
	exact    map[string]*method // by canonical full name
	inFlight atomic.Int64
	bodies   atomic.Int64       // bytes of the request bodies held
	limiter  *ratelimit.Limiter // nil without a rate limit
	// authFailures limits the failed authentications of each client address; nil
	// without AuthFailureLimit.
	authFailures *authFailures
	// stopDelays is closed by StopDelays: injected delays end at once.
	stopDelays chan struct{}
	stopOnce   sync.Once
	forgiven   forgivenNonces // nonces that fault rules took back (emulator mode)
}

// StopDelays ends the delays of fault rules in progress, and makes later ones none: a
// server shutting down answers its delayed calls now rather than wait them out (or be
// cut off by its shutdown timeout).
func (s *Server) StopDelays() { s.stopOnce.Do(func() { close(s.stopDelays) }) }

// New returns a Server.
func New(cfg Config) *Server {
	if cfg.Clock == nil {
		cfg.Clock = socius.SystemClock{}
	}
	if cfg.Skew <= 0 {
		cfg.Skew = DefaultSkew
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.MaxParamBytes <= 0 {
		cfg.MaxParamBytes = DefaultMaxParamBytes
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Server{cfg: cfg, methods: make(map[string]*method), exact: make(map[string]*method), stopDelays: make(chan struct{})}
	if cfg.RateLimit > 0 {
		burst := cfg.RateBurst
		if burst <= 0 {
			burst = max(1, int(math.Ceil(cfg.RateLimit)))
		}
		s.limiter = ratelimit.New(cfg.RateLimit, burst, 0)
	}
	if cfg.AuthFailureLimit > 0 {
		s.authFailures = newAuthFailures(cfg.AuthFailureLimit, cfg.AuthFailureBurst)
	}
	for _, m := range s.routes() {
		s.methods[strings.ToLower(m.name)] = m
		s.exact[m.name] = m
	}
	return s
}

// InFlight returns the number of calls in progress (their requests read).
func (s *Server) InFlight() int { return int(s.inFlight.Load()) }

// BodyBytes returns the bytes of request bodies the server holds: being received, or
// of calls in progress.
func (s *Server) BodyBytes() int64 { return s.bodies.Load() }

// Call is what one API call was and how it ended; given to Config.Observe. Its
// credentials are masked (see observed): the values of credential parameters in
// Params, and those values wherever else it holds them.
type Call struct {
	ID     string
	Time   time.Time
	Method string // the method as named in the path
	// Known is true when Method is a method Socius serves (then in its canonical
	// spelling); the path of an unknown one is whatever the client sent.
	Known bool
	// RemoteAddr is the address of the connection's peer (host:port): the client's,
	// unless a proxy is in between (see ClientAddr).
	RemoteAddr string
	APIKey     string
	UserKey    string
	Credential string // "partner-signature", "partner-secret", "key-signature", "key-secret", ...
	Params     []gigya.Param
	Code       int
	Details    string
	Cause      error // the internal cause of a failure; never sent
	Duration   time.Duration
	// SignedURLs and BaseStrings say what the server signed when a signature did not
	// match (for signature debugging); empty otherwise.
	SignedURLs  []string
	BaseStrings []string
	// Injected is true when Config.Fault answered or delayed the call.
	Injected bool
	// AuthFailureLimited is true when the call was refused (403048) before its
	// authentication because its client address had spent its budget of failed
	// authentications (Config.AuthFailureLimit).
	AuthFailureLimited bool

	// What ClientAddr needs with Config.TrustedProxies: the list, the request's
	// X-Forwarded-For fields, and the client found in them once asked for (client
	// invalid when it is the peer).
	proxies      TrustedProxies
	forwardedFor []string
	client       netip.Addr
	clientKnown  bool
}

// ClientAddr returns the address of the call's client: with Config.TrustedProxies and
// a connection from one of them, the address X-Forwarded-For names (an IP, no port;
// see TrustedProxies.client), when that is not the peer's; otherwise RemoteAddr, as it
// is.
func (c *Call) ClientAddr() string {
	if a, ok := c.forwardedClient(); ok {
		return a.String()
	}
	return c.RemoteAddr
}

// forwardedClient returns the call's client found through trusted proxies, false when
// it is the connection's peer (or no proxy is trusted). X-Forwarded-For is read the
// first time only, and only if asked: most calls never need their client's address.
func (c *Call) forwardedClient() (netip.Addr, bool) {
	if c.proxies == nil {
		return netip.Addr{}, false
	}
	if !c.clientKnown {
		c.clientKnown = true
		if peer, ok := peerAddr(c.RemoteAddr); ok {
			if a := c.proxies.client(peer, c.forwardedFor); a != peer {
				c.client = a
			}
		}
	}
	return c.client, c.client.IsValid()
}

// call is the state of one request as it goes through the steps.
type call struct {
	Call
	ctx        context.Context
	start      time.Time
	r          *http.Request
	now        time.Time
	m          *method
	params     gigya.Params
	format     gigya.Format
	callback   string
	httpStatus bool
	checkParam bool
	secure     bool
	scheme     string
	site       *socius.Site
	key        *socius.Key
	token      *socius.Token // the token of a token call
	ignored    []gigya.IgnoredParam
	body       []byte // the request body, read into reused storage
	held       int64  // bytes of body counted in Server.bodies
	slot       bool   // the call holds one of the MaxConcurrent slots
	out        []byte // the encoded answer
	siteKey    []byte // the site's decoded partner secret, once needed
	// tokenUnknown: the call's token, of a kind Socius issues, names nothing (none
	// issued has its text), the one 403025 that the limit on failed authentications
	// counts (authFailureCounts).
	tokenUnknown bool
	// noGuess: the call's 400093 or 403005 guesses nothing (its apiKey or client_id is
	// missing or not of an id's shape, or is a userKey sent with its own secret the
	// wrong way; its userKey is empty or not of a key's shape), so the limit on failed
	// authentications does not count it (authFailureCounts).
	noGuess bool
	// readyBeforeNonce: a call that named no apiKey was found within its site's budget
	// before its nonce was recorded (checkSigned), and is charged as a call found ready
	// before authentication is.
	readyBeforeNonce bool
	// nonce is the call's nonce while noncePending: checked signature, not yet
	// recorded (Config.Nonced).
	nonce         socius.NonceUse
	noncePending  bool
	nonceRecorded bool   // the call recorded its nonce (useNonce found it fresh)
	nonceInOp     bool   // a Config.Nonced operation is under way (Server.nonced)
	charged       string // the apiKey whose rate-limit budget the call spent, if any
	answered      bool   // the answer's header is written
	uidImplied    bool   // the call's user is its token's, no UID given (call.userParam)
	// bodyTimedOut: the request's body could not be read, most often because it stopped
	// arriving until the read deadline (ReadTimeout) passed; the answer gets
	// lateAnswerGrace to go out (see respond), and the connection closes after it.
	bodyTimedOut bool
	panicked     bool // a panic cut the call short: its state is not recycled
}

// calls recycles the state of finished calls: its parameter list, body buffer and
// answer buffer keep their storage, so that a call in the steady state allocates
// little beyond what it keeps.
var calls = sync.Pool{New: func() any { return new(call) }}

// release clears the call, keeping the storage worth reusing, and recycles it. Calls
// with unusually large buffers are dropped instead, so that one big request does not
// pin memory.
func (c *call) release() {
	if c.panicked {
		return
	}
	params, body, out := c.params, c.body[:0], c.out[:0]
	params.Reset()
	*c = call{params: params, body: body, out: out}
	if cap(body) > 64<<10 || cap(out) > 64<<10 {
		return
	}
	calls.Put(c)
}

// ServeHTTP answers one call.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if headerFields(r.Header) > MaxHeaderFields {
		// Refused before anything else, the body unread: net/http has built a map of
		// these fields (some 150 bytes each, twenty times their size on the wire), and
		// a client that then stalls its body would hold it until the read deadline on
		// every connection it opens.
		h := w.Header()
		h.Set("Connection", "close")
		h.Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusRequestHeaderFieldsTooLarge)
		fmt.Fprintf(w, "431 Request Header Fields Too Large: more than %d header fields\n", MaxHeaderFields)
		// Closed now, not after the rest of the body: net/http reads up to 256 KiB of
		// it once the handler returns, so its read deadline is now (the answer goes
		// out first); the fast path reads nothing more of a body whose answer closes
		// the connection.
		http.NewResponseController(w).SetReadDeadline(time.Now())
		return
	}
	c := calls.Get().(*call)
	defer c.release()
	defer s.recoverCall(w, c)
	c.ctx, c.r, c.start = r.Context(), r, time.Now()
	c.now = s.cfg.Clock.Now()
	c.ID = gigya.NewCallID()
	c.Time = c.now
	c.RemoteAddr = r.RemoteAddr
	if s.cfg.TrustedProxies != nil {
		c.proxies, c.forwardedFor = s.cfg.TrustedProxies, r.Header["X-Forwarded-For"]
	}
	c.secure = r.TLS != nil || s.cfg.TrustForwardedProto && forwardedHTTPS(r.Header["X-Forwarded-Proto"]) && s.fromTrustedProxy(c)
	c.scheme = "http"
	if c.secure {
		c.scheme = "https"
	}
	defer s.leave(c)
	data, err := s.serve(w, c)
	s.respond(w, c, data, err)
}

// MaxHeaderFields is the most header fields a request may have (values of a repeated
// field each count): the SDKs send about ten, a browser and the proxies before Socius a
// few tens.
const MaxHeaderFields = 256

func headerFields(h http.Header) int {
	n := 0
	for _, v := range h {
		n += len(v)
	}
	return n
}

// enter takes a slot among the calls in progress, once the call's request is read: a
// client still sending its request holds none, so slow clients cannot take them all.
func (s *Server) enter(c *call) error {
	n := s.inFlight.Add(1)
	if limit := s.cfg.MaxConcurrent; limit > 0 && n > int64(limit) {
		// Given back at once: a call being refused is not one in progress, and a
		// flood of refusals must not make the next call look like one too many.
		s.inFlight.Add(-1)
		calls := "calls"
		if limit == 1 {
			calls = "call"
		}
		return socius.Errorf(socius.CodeRateLimited,
			"API Rate Limit Exceeded: the server is busy with %d %s, the most it takes at once; retry later", limit, calls)
	}
	c.slot = true
	return nil
}

// leave gives back what the call held: its slot and its body's share of the budget.
func (s *Server) leave(c *call) {
	if c.slot {
		s.inFlight.Add(-1)
		c.slot = false
	}
	if c.held > 0 {
		s.bodies.Add(-c.held)
		c.held = 0
	}
}

// bodyBudget is the most bytes of request bodies the server holds at once, being
// received or in calls in progress; 0 for no bound.
func (s *Server) bodyBudget() int64 {
	if s.cfg.MaxConcurrent <= 0 {
		return 0
	}
	return int64(s.cfg.MaxConcurrent) * s.cfg.MaxBodyBytes
}

// recoverCall turns a panic of the call (a bug) into a logged error and, if nothing
// was answered yet, a 500001 answer: net/http would drop the connection and log the
// panic where nobody looks. A handler that aborts on purpose (http.ErrAbortHandler)
// is left to net/http.
func (s *Server) recoverCall(w http.ResponseWriter, c *call) {
	v := recover()
	if v == nil {
		return
	}
	c.panicked = true
	err := fmt.Errorf("panic: %v", v)
	if c.noncePending {
		// Checked, not yet recorded (Config.Nonced): recorded now, so that the request
		// cannot be replayed; a nonce seen before is the answer, unless the panic came
		// in the store operation that records it, which may have done so.
		if nerr := s.useNonce(c, context.WithoutCancel(c.ctx)); nerr != nil && (!c.nonceInOp || socius.ErrorCode(nerr) != socius.CodeDuplicateNonce) {
			err = nerr
		}
	}
	if v == http.ErrAbortHandler {
		panic(v)
	}
	s.cfg.Logger.Error("call panicked", "callId", c.ID, "method", c.Method, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
	if !c.answered {
		s.respond(w, c, nil, err)
	}
}

func (s *Server) serve(w http.ResponseWriter, c *call) (gigya.Object, error) {
	path := strings.TrimPrefix(c.r.URL.Path, "/")
	c.Method = path
	// The method first, so that every answer, a refusal of the request's form too, has
	// the method's XML root.
	known := s.findMethod(c)
	if err := s.readParams(w, c); err != nil {
		// The answer still takes the format and status the request asked for, read
		// leniently from what was read of the request (the query string at least;
		// readParams adds them from the rest of a form it refused).
		s.readFormat(c)
		return nil, err
	}
	if err := s.readFormat(c); err != nil {
		return nil, err
	}
	if err := s.enter(c); err != nil {
		return nil, err
	}
	// An unknown method is refused as such whatever its parameters (SPEC 1): a caller
	// who mistyped the method's name hears that first, not of a parameter's size.
	if !known {
		return nil, s.unknownMethod(path)
	}
	if err := s.checkParamSizes(c); err != nil {
		return nil, err
	}
	// An apiKey whose budget is spent is refused before authentication, so that a
	// flood past the limit costs no store lookup or signature check; but only a call
	// that authenticates is charged (authenticated), so that calls with bad
	// credentials, which anyone who knows the public apiKey can send, cannot spend a
	// site's budget. Token calls name no apiKey: they are counted once the token has
	// told the site.
	//
	// An address that has spent its budget of failed authentications is refused
	// before authentication too, whatever its credentials: the point is that its calls
	// cost no store read and no signature check.
	if s.authFailures != nil {
		if wait := s.authFailures.readyIn(c); wait > 0 {
			return nil, s.authFailureLimited(c, wait)
		}
	}
	apiKey := c.params.Get("apiKey")
	if socius.ValidAPIKey(apiKey) && s.limiter != nil && !s.limiter.Ready(apiKey, c.now) {
		return nil, s.rateLimited(c, apiKey)
	}
	obj, err := s.authenticated(c, apiKey)
	if c.noncePending {
		// The call ended before a store operation took its nonce: it is recorded now,
		// and a nonce seen before is the answer, as it would have been at once.
		if nerr := s.useNonce(c, context.WithoutCancel(c.ctx)); nerr != nil {
			obj, err = nil, nerr
		}
	}
	if socius.ErrorCode(err) == socius.CodeDuplicateNonce {
		// A replay's answer is the 403004 alone, as when its nonce is recorded in the
		// authentication: the parameters its call had ignored (found before a nonce
		// recorded with the store work, or at the call's end, was seen) are not said.
		c.ignored = nil
	}
	if c.charged != "" && socius.ErrorCode(err) == socius.CodeDuplicateNonce {
		// A replay, refused for its nonce once its signature was found good: the site
		// did not make this call (anyone who saw the request can send it again), so it
		// gets its token back.
		s.limiter.Give(c.charged, c.now)
	}
	return obj, err
}

// authenticated authenticates the call and runs its method.
func (s *Server) authenticated(c *call, apiKey string) (gigya.Object, error) {
	if err := s.authenticate(c); err != nil {
		if s.authFailures != nil && authFailureCounts(c, err) {
			s.authFailures.failed(c)
		}
		return nil, err
	}
	if s.limiter != nil && c.site != nil {
		switch {
		case c.site.APIKey == apiKey || c.readyBeforeNonce:
			// Found ready before authentication (or, naming no apiKey, before its nonce
			// was recorded): charged now, if need be beyond the budget (calls of the
			// same apiKey in between took the token); the debt holds back the calls
			// after it. Refused now, it could not be sent again as it is.
			s.limiter.Take(c.site.APIKey, c.now)
		case !s.limiter.Allow(c.site.APIKey, c.now):
			return nil, s.rateLimited(c, c.site.APIKey)
		}
		c.charged = c.site.APIKey
	}
	if c.token != nil && c.m.serverOnly {
		return nil, socius.Errorf(socius.CodePermissionDenied, "Permission denied: %s needs server credentials (a secret, a signature or a bearer JWT), not a token", c.m.name)
	}
	if c.key != nil && !c.key.Allows(c.m.name) {
		return nil, socius.Errorf(socius.CodePermissionDenied, "Permission denied: userKey %s may not call %s", c.key.UserKey, c.m.name)
	}
	if data, err := s.injectFault(c); err != nil {
		return data, err
	}
	if err := s.checkUnknownParams(c); err != nil {
		return nil, err
	}
	ignored := len(c.ignored)
	data, err := c.m.handle(s, c)
	if err != nil && c.uidImplied && socius.ErrorCode(err) == socius.CodeUnauthorizedUser && s.tokenMoved(c) {
		// The token's user was renamed (setUID, notifyRegistration) between the
		// token's check and the call's work: the call acts on the user under its new
		// UID, as it would have a moment earlier or later. Nothing was done the first
		// time (no such user).
		c.ignored = c.ignored[:ignored]
		data, err = c.m.handle(s, c)
	}
	return data, err
}

// tokenMoved reads the call's token again and reports whether it now names another
// user, still alive: its user was renamed meanwhile. c.token is then the token as it
// is now.
func (s *Server) tokenMoved(c *call) bool {
	t, err := s.cfg.Store.Token(c.ctx, c.token.Hash)
	if err != nil || t.UID == "" || t.UID == c.token.UID || tokenAlive(t, c.now) != nil {
		return false
	}
	c.token = t
	return true
}

// method returns the method Socius serves under name, in any letter case; nil if none.
func (s *Server) method(name string) *method {
	if m := s.exact[name]; m != nil { // how SDKs spell it: no lower-cased copy
		return m
	}
	return s.methods[lowerASCII(name)]
}

// lowerASCII is s with its ASCII letters in lower case, and nothing else changed:
// strings.ToLower would take the Kelvin sign for a k, and a path with one for a
// method's name.
func lowerASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// findMethod looks the path's method up and reports whether Socius serves it.
func (s *Server) findMethod(c *call) bool {
	c.m = s.method(c.Method)
	if c.m == nil {
		c.Method, _ = shownMethod(c.Method)
		return false
	}
	c.Method = c.m.name
	c.Known = true
	return true
}

// rateLimited is the refusal of a call whose apiKey has spent its budget. Only calls
// that authenticated spend one, so apiKey is a site's (not, say, a secret sent as
// apiKey): it is named in full.
func (s *Server) rateLimited(c *call, apiKey string) error {
	c.APIKey = apiKey
	calls := "calls"
	if s.limiter.Rate() == 1 {
		calls = "call"
	}
	return socius.Errorf(socius.CodeRateLimited, "API Rate Limit Exceeded: apiKey %s made more than %s %s a second (bursts of %d) to this server; retry later",
		c.APIKey, strconv.FormatFloat(s.limiter.Rate(), 'f', -1, 64), calls, s.limiter.Burst())
}

// bulkyParams are the parameters whose values only the body limit bounds: they carry
// JSON documents. Only for a method that takes them: to any other they are unknown
// parameters, ignored and bounded as any. (A method Socius does not serve is refused
// before the sizes are checked.)
var bulkyParams = []string{"userInfo", "x_userInfo"}

// checkParamSizes refuses a parameter value longer than MaxParamBytes. It runs once the
// method is known (c.m).
func (s *Server) checkParamSizes(c *call) error {
	for _, p := range c.params.All() {
		if len(p.Value) <= s.cfg.MaxParamBytes {
			continue
		}
		if !known(p.Name, bulkyParams) {
			return socius.Errorf(socius.CodeInvalidValue, "Invalid parameter value: %s is longer than %d bytes", clip(gigya.MaskCredentials(p.Name), 40), s.cfg.MaxParamBytes)
		}
		if !known(p.Name, c.m.params) {
			return socius.Errorf(socius.CodeInvalidValue, "Invalid parameter value: %s is longer than %d bytes (only a method that takes %s reads a longer one, and %s does not)",
				p.Name, s.cfg.MaxParamBytes, p.Name, c.Method)
		}
	}
	return nil
}

// injectFault applies Config.Fault: it waits the rule's delay (or until the client
// gives up) and answers the rule's error code, if any.
func (s *Server) injectFault(c *call) (gigya.Object, error) {
	if s.cfg.Fault == nil {
		return nil, nil
	}
	apiKey := ""
	if c.site != nil {
		apiKey = c.site.APIKey
	}
	code, delay, ok := s.cfg.Fault(c.m.name, apiKey)
	if !ok {
		return nil, nil
	}
	c.Injected = true
	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-c.ctx.Done():
			t.Stop()
		case <-s.stopDelays:
			t.Stop()
		}
	}
	if code == 0 {
		return nil, nil
	}
	if (code == socius.CodeRequestExpired || code == socius.CodeInvalidSignature) && c.nonceRecorded {
		// Gigya answers these before it records a nonce: the request may come again.
		s.forgiven.add(c.nonce.Credential, c.nonce.Nonce, c.nonce.Expires, c.now)
	}
	err := socius.Errorf(code, "%s: injected by a Socius emulator fault rule for %s", gigya.Message(code), c.m.name)
	if code == codeInvalidDataCenter {
		// Gigya's answer names the data center to call instead: here the one called,
		// so that a client that follows it comes back to the emulator.
		scheme := "http"
		if c.secure {
			scheme = "https"
		}
		host := c.r.Host
		domain := host
		if len(domain) > len("socialize.") && socius.EqualFoldASCII(domain[:len("socialize.")], "socialize.") {
			domain = domain[len("socialize."):]
		}
		return gigya.Object{{Key: "apiDomain", Value: domain}, {Key: "location", Value: scheme + "://" + host + "/" + c.m.name}}, err
	}
	return nil, err
}

// codeInvalidDataCenter is Gigya's 301001: the apiKey lives in another data center,
// named by the answer's apiDomain and location.
const codeInvalidDataCenter = 301001

// unknownMethod refuses the path of a method Socius does not serve.
func (s *Server) unknownMethod(path string) error {
	if path == "" {
		return socius.Errorf(socius.CodeInvalidRequest, "Invalid request format: no method in the path; call /socialize.<method>")
	}
	if path == "_emulator" || strings.HasPrefix(path, "_emulator/") {
		// The emulator's admin API and console, asked of a server not in emulator mode
		// (what docs/emulator.md shows, tried against a plain serve): say what they
		// need. The rest of the path is not shown: no method of Socius's is there.
		return socius.Errorf(socius.CodeInvalidRequest, "Unknown method: the /_emulator/ paths are served only in emulator mode (socius serve --emulator)")
	}
	shown, cut := shownMethod(path)
	if cut > 0 && s.method(path[:cut]) != nil {
		return socius.Errorf(socius.CodeInvalidRequest, "Unknown method: %s is not a method Socius serves: the path goes on after %s with \"%c\"; send the parameters after \"?\" or in the body",
			shown, path[:cut], path[cut])
	}
	if m := s.methodBySlashes(path); m != nil {
		if strings.EqualFold(strings.NewReplacer("/", "", ".", "").Replace(path), strings.ReplaceAll(m.name, ".", "")) {
			shown = path // nothing but the method's name, "/" and "."
		}
		return socius.Errorf(socius.CodeInvalidRequest, "Unknown method: %s is not a method Socius serves: call /%s", shown, m.name)
	}
	return socius.Errorf(socius.CodeInvalidRequest, "Unknown method: %s is not a method Socius serves", shown)
}

// methodBySlashes returns the method a path names once its "/" are read as a sloppy
// client may have meant them: a "/" doubled, before or after the method's name
// ("//socialize.getUserInfo", "socialize.getUserInfo/"), "." and ".." segments, or
// a "/" for the "." between namespace and method ("socialize/getUserInfo", as in
// the paths of other REST APIs); nil if it names none so either.
func (s *Server) methodBySlashes(p string) *method {
	name := strings.TrimPrefix(path.Clean("/"+p), "/")
	if m := s.method(name); m != nil {
		return m
	}
	return s.method(strings.Replace(name, "/", ".", 1))
}

// unservedGigyaMethods are methods Gigya documents (../shared/spec/gigya-api-notes.md)
// that Socius does not serve and whose names gigya.MaskCredentials would cut short as
// if they were secrets (a run of 20 letters holding "UID"): shownMethod names them in
// full, so that a caller learns which method is missing, not "socialize.exch...".
var unservedGigyaMethods = []string{"socialize.exchangeUIDSignature", "accounts.exchangeUIDSignature"}

// shownMethod returns how answers and logs name the path of a method Socius does not
// serve: cut after the first "?", "&", ";" or "=" (where a client that left out the
// "?" has its parameters, credentials among them), with what could be a token or a
// secret masked (gigya.MaskCredentials), at most 100 bytes. cut is where it was cut:
// 0 when it was not, or was cut at its first byte.
func shownMethod(path string) (shown string, cut int) {
	for _, m := range unservedGigyaMethods {
		if strings.EqualFold(path, m) {
			return path, 0
		}
	}
	shown = path
	if i := strings.IndexAny(path, "?&;="); i >= 0 && i+1 < len(path) {
		shown, cut = path[:i+1]+"...", i
	}
	return clip(gigya.MaskCredentials(shown), 100), cut
}

// readParams reads the query string and, for POST, the form body (within the size
// limit), and decodes both into c.params.
func (s *Server) readParams(w http.ResponseWriter, c *call) error {
	r := c.r
	// The query first: a refusal of the HTTP method is answered in the format and
	// with the httpStatusCodes the query asks for, as every refusal of the request.
	if err := c.params.Decode(r.URL.RawQuery); err != nil {
		c.params.DecodeAnswerParams(r.URL.RawQuery)
		return err
	}
	if r.Method == http.MethodConnect {
		// An HTTPS proxy's tunnel, asked of a listener that is none (respond answers it
		// with a status that is no 2xx): say which one is.
		return socius.Errorf(socius.CodeInvalidRequest, "Invalid request format: HTTP method CONNECT is not supported here, use GET or POST; "+
			"Socius's plain HTTP listener (--http) tunnels CONNECT to its HTTPS listener, as an SDK's HTTPS proxy: give the proxy as http://, the --http address")
	}
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		use := "GET or POST"
		if c.m != nil && c.m.clientAuth {
			use = "POST" // getToken refuses a GET too (authenticateClient)
		}
		return socius.Errorf(socius.CodeInvalidRequest, "Invalid request format: HTTP method %s is not supported, use %s", clip(gigya.MaskCredentials(r.Method), 16), use)
	}
	if refusal, other := gigya.OtherScheme(r.URL.Scheme); other {
		return socius.Errorf(socius.CodeInvalidRequest, "Invalid request format: %s", refusal)
	}
	if r.Body == nil || r.Body == http.NoBody {
		return nil
	}
	if r.ContentLength > s.cfg.MaxBodyBytes {
		if r.ContentLength <= drainFactor*s.cfg.MaxBodyBytes {
			s.drain(c)
		}
		return tooLarge(s.cfg.MaxBodyBytes)
	}
	if err := s.readBody(c, http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes), r.ContentLength); err != nil {
		var mbe *http.MaxBytesError
		var se *socius.Error
		switch {
		case errors.As(err, &mbe):
			s.drain(c)
			return tooLarge(s.cfg.MaxBodyBytes)
		case errors.As(err, &se):
			return err
		}
		// A deadline, or an error that may hide one (net/http reports a deadline met in
		// a chunked body's trailer as "suspiciously long trailer"): the refusal gets a
		// moment of its own either way, and the connection closes after it.
		c.bodyTimedOut = true
		return &socius.Error{Code: socius.CodeInvalidRequest, Details: "Invalid request format: the request body could not be read", Err: err}
	}
	if len(c.body) == 0 {
		return nil
	}
	if cts := r.Header["Content-Type"]; len(cts) > 1 {
		// Socius reads the first, as net/http does; a proxy or filter before it may read
		// the last, and let pass as text a form that Socius then acts on. The same one
		// repeated says one thing.
		if i := slices.IndexFunc(cts, func(ct string) bool { return ct != cts[0] }); i > 0 {
			return socius.Errorf(socius.CodeInvalidRequest, "Invalid request format: %d Content-Type headers that differ (%q, %q); send one",
				len(cts), shownContentType(cts[0]), shownContentType(cts[i]))
		}
	}
	if ct := r.Header.Get("Content-Type"); ct != "" && ct != formType {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != formType {
			return socius.Errorf(socius.CodeInvalidRequest, "Invalid request format: the body must be application/x-www-form-urlencoded, not %q", shownContentType(ct))
		}
	}
	for _, ce := range r.Header.Values("Content-Encoding") {
		if ce != "" && !strings.EqualFold(ce, "identity") {
			// No SDK compresses its calls; said plainly rather than as the compressed
			// bytes' first "parameter name".
			return socius.Errorf(socius.CodeInvalidRequest, "Invalid request format: Content-Encoding %q is not supported: send the form uncompressed", clip(gigya.MaskCredentials(ce), 40))
		}
	}
	if err := c.params.Decode(string(c.body)); err != nil {
		// Read whole, the body also says how its refusal is answered where it names
		// the format, httpStatusCodes or context after the pair refused (SPEC 2).
		c.params.DecodeAnswerParams(string(c.body))
		return err
	}
	return nil
}

const formType = "application/x-www-form-urlencoded"

// shownContentType returns how errorDetails quote a Content-Type: masked
// (gigya.MaskCredentials) but for the form type it may start with, which is no secret
// but has the shape of one, at most 60 bytes.
func shownContentType(ct string) string {
	if len(ct) >= len(formType) && strings.EqualFold(ct[:len(formType)], formType) {
		return clip(ct[:len(formType)]+gigya.MaskCredentials(ct[len(formType):]), 60)
	}
	return clip(gigya.MaskCredentials(ct), 60)
}

// firstBodyRead is the most a body's buffer is sized for before its bytes arrive.
const firstBodyRead = 16 << 10

// readBody reads all of r into c.body. The buffer grows as bytes arrive: at first to
// the announced length (and one byte more, to see the end without another growth), at
// most firstBodyRead, then doubling, never past the announced length. So a client that
// announces a large body and sends it slowly, or never, holds about no more memory
// than it sent (at most firstBodyRead, or twice what it sent). The bytes read count
// against the server's budget of bodies until the call ends; beyond it, 403048.
func (s *Server) readBody(c *call, r io.Reader, length int64) error {
	buf := c.body[:0]
	if length > 0 {
		buf = slices.Grow(buf, int(min(length+1, firstBodyRead)))
	}
	budget := s.bodyBudget()
	defer func() { c.body = buf }()
	for {
		if len(buf) == cap(buf) {
			more := max(len(buf), 512)
			if length > 0 && int64(len(buf)) <= length {
				more = int(min(int64(more), length+1-int64(len(buf))))
			}
			buf = slices.Grow(buf, more)
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if n > 0 {
			c.held += int64(n)
			if held := s.bodies.Add(int64(n)); budget > 0 && held > budget {
				return socius.Errorf(socius.CodeRateLimited,
					"API Rate Limit Exceeded: the server holds %d KiB of request bodies, the most it takes at once; retry later", budget>>10)
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// drainFactor bounds what drain reads: up to this many times the body limit.
const drainFactor = 8

// drain reads and throws away the rest of a body over the limit, up to drainFactor
// times the limit, before the 413001 answer. Most clients (Python's urllib, hence its
// SDK) send the whole body before they read the answer: with the body unread, net/http
// would close the connection under them and the kernel reset it, and they would see a
// broken connection instead of 413001. A body longer still is cut off that way. A
// client that sent "Expect: 100-continue" has sent nothing yet and waits for the
// answer: reading would ask it for the body, so its body is left unread. A body that
// stops arriving before its end is read until the read deadline: the 413001 is then
// answered as the refusal of any body that stopped (call.bodyTimedOut), or it would come
// after the write deadline too and never go out.
func (s *Server) drain(c *call) {
	r := c.r
	if strings.EqualFold(r.Header.Get("Expect"), "100-continue") {
		return
	}
	if _, err := io.Copy(io.Discard, io.LimitReader(r.Body, drainFactor*s.cfg.MaxBodyBytes)); err != nil {
		c.bodyTimedOut = true
	}
}

func tooLarge(limit int64) error {
	return socius.Errorf(socius.CodeEntityTooLarge, "Request entity too large: the body exceeds %d bytes", limit)
}

// readFormat reads format, callback, httpStatusCodes and checkParams: how to answer.
func (s *Server) readFormat(c *call) error {
	// httpStatusCodes and the format apply to the answer even if they are the
	// reason for failing, so they are read leniently first.
	c.httpStatus, _ = gigya.ParseBool(c.params.Get("httpStatusCodes"))
	f, ok := gigya.ParseFormat(c.params.Get("format"))
	if !ok {
		return socius.Errorf(socius.CodeInvalidValue, "Invalid parameter value: format must be json, jsonp or xml")
	}
	if f == gigya.JSONP {
		cb, ok := c.params.Lookup("callback")
		if !ok || cb == "" {
			return socius.Errorf(socius.CodeMissingParameter, "Missing required parameter: callback (needed with format=jsonp)")
		}
		if !gigya.ValidCallback(cb) {
			return socius.Errorf(socius.CodeInvalidValue, "Invalid parameter value: callback may hold only A-Z a-z 0-9 _ . $ (at most 128)")
		}
		c.callback = cb
	}
	c.format = f
	if _, err := c.params.Bool("httpStatusCodes", false); err != nil {
		return err
	}
	var err error
	c.checkParam, err = c.params.Bool("checkParams", false)
	return err
}

// respond writes the envelope in the call's format.
func (s *Server) respond(w http.ResponseWriter, c *call, data gigya.Object, err error) {
	// A call whose client went away (its context is cancelled: the connection closed,
	// or the server cut it off at shutdown) has failed for no fault of Socius: it is
	// 504002, not 500001, and no error to log. Nobody reads the answer.
	gone := err != nil && c.ctx.Err() != nil && errors.Is(err, c.ctx.Err())
	if gone {
		err = &socius.Error{Code: socius.CodeRequestTimeout, Details: "Request Timeout: the call was cancelled before it completed (the connection closed)", Err: err}
	}
	// The answer's time and Date header are read again: the Java and .NET SDKs set
	// their clocks from the Date header, and a slow request's start is stale by then.
	now := s.cfg.Clock.Now()
	env := gigya.Envelope{CallID: c.ID, Time: now, Ignored: c.ignored, Data: data}
	if err != nil {
		env.Code = socius.ErrorCode(err)
		var e *socius.Error
		if errors.As(err, &e) {
			env.Details = e.Details
			c.Cause = e.Err
		} else {
			env.Details = "General Server error: an unexpected failure, logged with this callId"
			c.Cause = err
		}
		switch {
		case c.ctx.Err() != nil:
			// The client went away (or the server is shutting down): whatever failed
			// then is no fault to alert on.
			s.cfg.Logger.Debug("call abandoned", "callId", c.ID, "method", c.Method, "errorCode", env.Code, "cause", c.Cause)
		case env.Code >= 500000 && !c.Injected:
			s.cfg.Logger.Error("call failed", "callId", c.ID, "method", c.Method, "errorCode", env.Code, "cause", c.Cause)
		case c.Cause != nil:
			// A client's failure with an internal cause (a body that stopped
			// arriving): worth a look when debugging, not an alert.
			s.cfg.Logger.Debug("call failed", "callId", c.ID, "method", c.Method, "errorCode", env.Code, "cause", c.Cause)
		}
	}
	// A context over the parameter limit (refused, 400006) is not echoed: echoing is
	// the one place where a request's value is copied into its answer, several times
	// over when it has to be escaped.
	if ctx, ok := c.params.Lookup("context"); ok && ctx != "" && len(ctx) <= s.cfg.MaxParamBytes {
		env.Context = echoContext(ctx)
	}
	method := c.Method // as the path names it when Socius does not serve it
	if c.m != nil {
		method = c.m.name
	}
	if method == "" {
		method = "socialize"
	}
	method = clip(method, 128)
	var ct string
	c.out, ct = gigya.AppendEncode(c.out[:0], c.format, method, c.callback, env.Object())
	// The values are shared, read-only slices (the keys are already canonical):
	// Header.Set would allocate both for every answer.
	h := w.Header()
	h["Content-Type"] = contentType(ct)
	h["Date"] = dateHeader(now)
	h["Cache-Control"] = noStore
	h["X-Content-Type-Options"] = noSniff
	status := http.StatusOK
	// A 2xx answer to a CONNECT opens a tunnel (RFC 9110, 9.3.6): the client would take
	// the envelope for the tunnel's first bytes. Such a call is answered with its
	// error's status, whatever httpStatusCodes says.
	if c.httpStatus || c.r.Method == http.MethodConnect {
		status = gigya.StatusCode(env.Code)
		if status < 200 || status > 599 {
			status = http.StatusOK
		}
	}
	c.answered = true
	c.Duration = time.Since(c.start)
	late := s.cfg.WriteTimeout > 0 && c.Duration >= s.cfg.WriteTimeout
	if c.bodyTimedOut {
		// The read deadline runs from the request's start, the write deadline from the
		// end of its head: when ReadTimeout is no shorter than WriteTimeout (the
		// defaults are equal), the write deadline has passed too by now. The refusal,
		// a few hundred bytes, gets a moment of its own, and the connection closes
		// after it (its body was not read to the end).
		if http.NewResponseController(w).SetWriteDeadline(time.Now().Add(lateAnswerGrace)) == nil {
			late = false
		}
		h["Connection"] = connectionClose
	}
	if late {
		// The write deadline has passed: the answer would not reach the client.
		// Recorded as what the client gets, and the connection is cut below: a
		// handler that returned without writing would leave net/http (and the fast
		// path) to send an empty 200 when the deadline had not yet closed the
		// connection.
		s.cfg.Logger.Warn("answer too late", "callId", c.ID, "method", c.Method, "errorCode", env.Code,
			"latencyMs", c.Duration.Milliseconds(), "writeTimeout", s.cfg.WriteTimeout.String())
		env.Code = socius.CodeRequestTimeout
		env.Details = "Request Timeout: the answer was ready after the server's write timeout; the connection was closed"
	} else {
		w.WriteHeader(status)
		w.Write(c.out)
	}

	c.Code, c.Details = env.Code, env.Details
	if c.site != nil {
		c.APIKey = c.site.APIKey
	} else if k, ok := c.params.Lookup("apiKey"); ok && c.APIKey == "" && k != "" {
		// Refused before its site was looked up (or for naming no site, or for a
		// malformed apiKey): the apiKey the call named, so that the log says whose call
		// it was (not in full when it may be a secret).
		c.APIKey = unknownID(k)
	} else if id := clientIDSent(c); c.APIKey == "" && id != "" {
		// A getToken refused before its site was looked up, with client credentials
		// and no apiKey: the client_id stands for the apiKey (or a userKey), so the
		// log names the client, not nobody.
		c.APIKey = unknownID(id)
	}
	if c.key != nil {
		c.UserKey = c.key.UserKey
	}
	if s.cfg.Observe != nil {
		c.observed()
		s.cfg.Observe(&c.Call)
	}
	if late {
		panic(http.ErrAbortHandler) // closes the connection, answering nothing
	}
}

// fromTrustedProxy reports whether the call's connection may carry a proxy's
// X-Forwarded-Proto: always without Config.TrustedProxies, else only from one of them.
func (s *Server) fromTrustedProxy(c *call) bool {
	if s.cfg.TrustedProxies == nil {
		return true
	}
	peer, ok := peerAddr(c.RemoteAddr)
	return ok && s.cfg.TrustedProxies.trusts(peer)
}

// forwardedHTTPS reports whether the X-Forwarded-Proto values of a request say that
// it came over TLS: there is one at least, and every one, of every field and of a
// comma-separated list, is "https". A proxy that appends its value to the client's
// (another field, or after a comma) puts the client's first: a client over plain HTTP
// that sent "https" itself is then not taken for a secure one by its first value.
func forwardedHTTPS(fields []string) bool {
	if len(fields) == 0 {
		return false
	}
	for _, f := range fields {
		for v := range strings.SplitSeq(f, ",") {
			if !strings.EqualFold(strings.TrimSpace(v), "https") {
				return false
			}
		}
	}
	return true
}

// lateAnswerGrace is how long the refusal of a request whose body stopped arriving
// has to go out (call.bodyTimedOut).
const lateAnswerGrace = 5 * time.Second

var connectionClose = []string{"close"}

var (
	jsonType  = []string{gigya.ContentTypeJSON}
	jsonpType = []string{gigya.ContentTypeJSONP}
	xmlType   = []string{gigya.ContentTypeXML}
	noStore   = []string{"no-store"}
	noSniff   = []string{"nosniff"}
)

func contentType(ct string) []string {
	switch ct {
	case gigya.ContentTypeJSON:
		return jsonType
	case gigya.ContentTypeJSONP:
		return jsonpType
	case gigya.ContentTypeXML:
		return xmlType
	}
	return []string{ct}
}

// dateHeader returns the Date header for t, formatted once per second.
func dateHeader(t time.Time) []string {
	sec := t.Unix()
	if d := lastDate.Load(); d != nil && d.sec == sec {
		return d.value
	}
	d := &date{sec: sec, value: []string{t.UTC().Format(http.TimeFormat)}}
	lastDate.Store(d)
	return d.value
}

type date struct {
	sec   int64
	value []string
}

var lastDate atomic.Pointer[date]

// IsCredential reports whether a parameter's value is one that Observe sees masked:
// gigya.IsCredential's list, masked in the parameters and in the base strings of a
// 403003 (before those are built, so that cutting a long base string never leaves part
// of one in it), so that no hook (request logs, the emulator, metrics) can leak one.
func IsCredential(name string) bool { return gigya.IsCredential(name) }

// masked replaces the value of a credential parameter.
const masked = "***"

// observed makes the Call what Config.Observe sees: its parameters masked (maskParams),
// those values hidden in its details and base strings too (a 403003's base strings
// were built from masked parameters, its errorDetails in the emulator may not be), and
// an apiKey, userKey or client_id that named nothing this call found shown as
// unknownID names it: a client that sends its secret as apiKey must not find it in a
// request log.
func (c *call) observed() {
	var hidden []string
	sent := c.params.All()
	c.Params, hidden = maskParams(sent, c.storedSecrets()...)
	for i, p := range sent {
		if p.Value != "" && (p.Name == "apiKey" || p.Name == "userKey" || p.Name == "client_id") && !c.names(p.Value) &&
			c.Params[i].Value != masked { // a credential sent again as the apiKey: masked whole
			c.Params[i].Value = unknownID(p.Value)
		}
	}
	if len(hidden) > 0 {
		c.Details = hideValues(c.Details, hidden)
		for i, b := range c.BaseStrings {
			c.BaseStrings[i] = hideValues(b, hidden)
		}
	}
}

// maskParams returns a copy of params with the values of credentials masked, those
// values and the secrets in also hidden wherever another value holds them (a secret
// sent as the context too), and any name that could be a token or a secret cut short
// (curl -d "$TOKEN"); and the values it hid. A sig is masked but not hidden elsewhere:
// it is no secret, and an explanation of a 403003 names it.
func maskParams(params []gigya.Param, also ...string) ([]gigya.Param, []string) {
	var hidden []string
	for _, v := range also {
		if len(v) >= minHidden && mayHold(params, v) {
			hidden = append(hidden, v)
			if c := socius.CompactSecret(v); c != v {
				// Stored with the whitespace it was typed with (before 2026-11-30):
				// a client sends it without.
				hidden = append(hidden, c)
			}
		}
	}
	var sessions []string
	for _, p := range params {
		if gigya.IsCredential(p.Name) && len(p.Value) >= minHidden && !strings.EqualFold(p.Name, "sig") {
			hidden = append(hidden, p.Value)
		}
		if isSessions(p.Name) {
			sessions = appendSessionValues(sessions, p.Value)
		}
	}
	hidden = append(hidden, sessions...)
	out := make([]gigya.Param, len(params))
	for i, p := range params {
		if p.Value != "" && gigya.IsCredential(p.Name) {
			p.Value = masked
		} else if isSessions(p.Name) {
			p.Value = maskSessions(p.Value)
		} else {
			p.Value = hideValues(p.Value, hidden)
		}
		p.Name = gigya.MaskCredentials(p.Name)
		out[i] = p
	}
	return out, hidden
}

// isSessions reports notifyLogin's providerSessions, whose values are the providers'
// tokens and secrets ({"facebook": {"authToken": "...", "tokenSecret": "..."}}) under
// a name that says neither.
func isSessions(name string) bool { return strings.EqualFold(name, "providerSessions") }

// maxSessionValues bounds the providerSessions values hidden elsewhere in a call: a
// provider's session is a token, a secret and an expiry, and a call names a few
// providers. Each value hidden is looked for in every parameter, the details and each
// base string, so that the thousands of strings a providerSessions may hold (8,000 in
// 64 KiB, MaxParamBytes) cost about a second of CPU a call, for any caller, before
// any authentication.
const maxSessionValues = 64

// appendSessionValues adds to sessions the string values of a providerSessions value
// (at any depth: a provider's session holds little else), so that they are hidden
// wherever else the call holds them (maskSessions masks every one in the value): the
// distinct ones, the longest maxSessionValues when there are more (a token is longer
// than the names of a session's permissions, say).
func appendSessionValues(sessions []string, value string) []string {
	v, err := gigya.ParseJSON(value)
	if err != nil {
		return sessions
	}
	shortest := shortestOf(sessions)
	walkStrings(v, func(s string) string {
		full := len(sessions) == maxSessionValues
		if len(s) < minHidden || full && len(s) <= len(sessions[shortest]) || slices.Contains(sessions, s) {
			return s
		}
		if full {
			sessions[shortest] = s
		} else {
			sessions = append(sessions, s)
		}
		shortest = shortestOf(sessions)
		return s
	})
	return sessions
}

// shortestOf returns the index of the shortest of values (0 for none).
func shortestOf(values []string) int {
	i := 0
	for j, v := range values {
		if len(v) < len(values[i]) {
			i = j
		}
	}
	return i
}

// maskSessions returns a providerSessions value with its string values masked, its
// structure kept for the reader (written anew: a value escaped as sent, \/ say, would
// not be found in the text); masked whole when it is not JSON the server reads, as it
// may hold a token anywhere.
func maskSessions(value string) string {
	if value == "" {
		return value
	}
	v, err := gigya.ParseJSON(value)
	if err != nil {
		return masked
	}
	if v == nil {
		return value // null: nothing to hide, and said as sent
	}
	return string(gigya.AppendJSON(nil, walkStrings(v, func(s string) string {
		if s == "" {
			return s
		}
		return masked
	})))
}

// walkStrings replaces each string of a value ParseJSON made, at any depth, by what f
// returns of it; objects and arrays are changed in place.
func walkStrings(v any, f func(string) string) any {
	switch v := v.(type) {
	case string:
		return f(v)
	case gigya.Object:
		for i := range v {
			v[i].Value = walkStrings(v[i].Value, f)
		}
	case []any:
		for i := range v {
			v[i] = walkStrings(v[i], f)
		}
	}
	return v
}

// mayHold reports whether a value of params may hold v, as sent or escaped: one holds
// v's longest run of letters and digits, which escaping leaves as it is. It looks
// without escaping v, so that every call can look for its site's secret (maskParams'
// also) at the cost of a search: a secret hidden in no value costs no allocation.
func mayHold(params []gigya.Param, v string) bool {
	core, run := "", 0
	for i := 0; i <= len(v); i++ {
		if i < len(v) && (v[i] >= 'a' && v[i] <= 'z' || v[i] >= 'A' && v[i] <= 'Z' || v[i] >= '0' && v[i] <= '9') {
			run++
			continue
		}
		if run > len(core) {
			core = v[i-run : i]
		}
		run = 0
	}
	for _, p := range params {
		if strings.Contains(p.Value, core) {
			return true
		}
	}
	return false
}

// storedSecrets are the secrets of the call's site and key, as stored: hidden from
// observers wherever a parameter holds one (a partner secret pasted into the context
// of a signed call), since only the site's own secret signs a call and Observe hooks
// write request logs.
func (c *call) storedSecrets() []string {
	var out []string
	if c.site != nil {
		out = append(out, c.site.Secret)
	}
	if c.key != nil {
		out = append(out, c.key.Secret)
	}
	return out
}

// names reports whether id is the apiKey of the call's site or the userKey of its key.
func (c *call) names(id string) bool {
	return c.site != nil && id == c.site.APIKey || c.key != nil && id == c.key.UserKey
}

// minHidden is the shortest credential value hidden elsewhere in a call: a shorter
// one would mask every place its few characters happen to appear.
const minHidden = 4

// hideValues replaces in s each of the values, as sent and as escaped once or twice (a
// base string escapes a value twice), by masked.
func hideValues(s string, values []string) string {
	for _, v := range values {
		once := gigya.Escape(v)
		for _, form := range []string{gigya.Escape(once), once, v} {
			s = strings.ReplaceAll(s, form, masked)
		}
	}
	return s
}

// echoContext returns the context to echo: a JSON object or array as JSON, anything
// else as the string that was sent.
func echoContext(s string) any {
	if t := strings.TrimSpace(s); strings.HasPrefix(t, "{") || strings.HasPrefix(t, "[") {
		if v, err := gigya.ParseJSON(t); err == nil {
			return gigya.RawJSON(gigya.AppendJSON(nil, v))
		}
	}
	return s
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// unknownID names an apiKey or userKey that names nothing, for an answer's errorDetails
// and the call's log line. A client that sends its credentials the wrong way round (the
// secret as apiKey, client_id or userKey) must not find its secret in the log: a value
// shaped like Gigya's apiKeys (a data center's digits, "_", then letters, digits, "-"
// and "_"), which a secret never is (secrets are standard base64, without "_"), is named
// in full; one that starts so but goes on with another byte, by that start and its
// length: what follows may be the parameters a client that separates them with ";"
// sent as the apiKey's value, its secret among them; any other by its first characters
// and its length.
func unknownID(s string) string {
	n := apiKeyShaped(s)
	switch {
	case n > 0 && n == len(s):
		return clip(s, 128)
	case n > 0:
		return fmt.Sprintf("%q... (length %d)", clip(s[:n], 128), len(s))
	}
	return fmt.Sprintf("%q... (length %d)", s[:min(4, len(s)/4)], len(s))
}

// clientIDSent returns the client_id of a call that takes client credentials
// (socialize.getToken): the parameter, else the id of HTTP Basic credentials; "" for
// any other call, or when neither was sent (or the header is not base64 of id:secret).
func clientIDSent(c *call) string {
	if c.m == nil || !c.m.clientAuth {
		return ""
	}
	if id := c.params.Get("client_id"); id != "" {
		return id
	}
	id, _, _, _ := basicCredentials(c) // "" unless the header holds base64(id:secret)
	return id
}

// apiKeyShaped returns how many bytes at the start of s are shaped like Gigya's
// apiKeys: digits, "_", then letters, digits, "-" and "_"; 0 when s does not start so.
func apiKeyShaped(s string) int {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == 0 || i == len(s) || s[i] != '_' {
		return 0
	}
	for i++; i < len(s) && apiKeyByte(s[i]); i++ {
	}
	return i
}

// apiKeyByte reports whether b may follow the "_" of an apiKey.
func apiKeyByte(b byte) bool {
	return b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '-' || b == '_'
}
