package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/socius/socius"
	"github.com/socius/socius/gigya"
)

// Version is this client's version; requests carry sdk=go_<Version>.
const Version = "0.1.0"

// Defaults.
const (
	// DefaultDataCenter is the data center used when neither WithDataCenter nor
	// WithBaseURL is given (the SDKs' default too).
	DefaultDataCenter = "us1.gigya.com"
	// DefaultTimeout bounds a whole call (every attempt) with the default HTTP client.
	DefaultTimeout = 30 * time.Second
	// DefaultRetries is how many times a call is tried again after a connection
	// error (or, for getUserInfo, a proxy's 502, 503 or 504 page), where that is safe
	// (see the package documentation).
	DefaultRetries = 2
	// DefaultUIDSignatureMaxAge is how old a UIDSignature may be (PHP SDK's 180 s).
	DefaultUIDSignatureMaxAge = 180 * time.Second
	// MaxResponseBytes is the largest answer read; a longer one is an error.
	MaxResponseBytes = 32 << 20
)

// A Clock tells the time. socius.OffsetClock and similar test clocks satisfy it.
type Clock interface {
	Now() time.Time
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

type credKind int

const (
	credPartner credKind = iota + 1
	credUserKey
	credToken
	credRSA
	credSession
)

// Credentials say who calls. Build them with PartnerSecret, UserKey, UserKeyRSA,
// Token or Session.
type Credentials struct {
	kind    credKind
	apiKey  string
	userKey string
	// sec is behind a function, which fmt prints as its address whatever the verb and
	// however deep: inside another value (an unexported field, where fmt cannot call
	// Format) a pointer would still be followed for a wrong verb such as %t.
	sec func() *credSecrets
}

// hide returns a function that returns v (see Credentials.sec).
func hide[T any](v *T) func() *T { return func() *T { return v } }

// credSecrets is what Credentials never print.
type credSecrets struct {
	secret string
	token  string
	rsaKey *rsa.PrivateKey
}

// PartnerSecret is the site's apiKey and partner secret (standard base64). Requests
// are signed with it, or carry it in plain over HTTPS with WithPlainSecret. The
// partner secret also validates the UIDSignature of getUserInfo answers.
func PartnerSecret(apiKey, secret string) Credentials {
	return Credentials{kind: credPartner, apiKey: apiKey, sec: hide(&credSecrets{secret: secret})}
}

// UserKey is an application/user key of the site and its own secret: requests carry
// apiKey and userKey and are signed with the key's secret (or carry it in plain over
// HTTPS with WithPlainSecret).
func UserKey(apiKey, userKey, secret string) Credentials {
	return Credentials{kind: credUserKey, apiKey: apiKey, userKey: userKey, sec: hide(&credSecrets{secret: secret})}
}

// Token is an OAuth 2.0 access token from socialize.getToken: requests carry only
// oauth_token (no apiKey, no signature) and must go over HTTPS. A token bound to a
// user implies the UID, so the helpers accept an empty uid.
func Token(accessToken string) Credentials {
	return Credentials{kind: credToken, sec: hide(&credSecrets{token: accessToken})}
}

// Session is a mobile session from notifyLogin with targetEnv=mobile (its
// sessionToken and sessionSecret): requests carry oauth_token and are signed with the
// session secret (timestamp, nonce, sig), as the mobile SDKs send them; HTTPS only.
// Like a token bound to a user, it implies the UID.
func Session(sessionToken, sessionSecret string) Credentials {
	return Credentials{kind: credSession, sec: hide(&credSecrets{token: sessionToken, secret: sessionSecret})}
}

// UserKeyRSA is a userKey with an RSA private key: requests carry apiKey and
// timestamp, and "Authorization: Bearer <JWT>" signed RS256 with kid=userKey, iat and
// a fresh jti, as the SDKs build it (gigya.BearerJWT). Like a token, it goes only over
// HTTPS: a JWT signs nothing of the request.
func UserKeyRSA(apiKey, userKey string, key *rsa.PrivateKey) Credentials {
	return Credentials{kind: credRSA, apiKey: apiKey, userKey: userKey, sec: hide(&credSecrets{rsaKey: key})}
}

// signs reports whether the credential puts a timestamp on requests (and so can fail
// with 403002 when the clocks disagree).
func (c *Credentials) signs(plain bool) bool {
	switch c.kind {
	case credPartner, credUserKey:
		return !plain
	case credRSA, credSession:
		return true
	}
	return false
}

// String describes the credential without its secret.
func (c Credentials) String() string {
	switch c.kind {
	case credPartner:
		return "partner secret of apiKey " + c.apiKey
	case credUserKey:
		return "userKey " + c.userKey + " of apiKey " + c.apiKey
	case credToken:
		return "access token"
	case credRSA:
		return "userKey " + c.userKey + " (RSA) of apiKey " + c.apiKey
	case credSession:
		return "mobile session"
	}
	return "no credentials"
}

// GoString is String: %#v shows no secret either.
func (c Credentials) GoString() string { return c.String() }

// Format prints String whatever the verb (%d and %x too), so that no verb shows a
// secret.
func (c Credentials) Format(f fmt.State, verb rune) { formatString(f, verb, c.String()) }

// formatString writes s for any verb, quoted for %q.
func formatString(f fmt.State, verb rune, s string) {
	if verb == 'q' {
		s = strconv.Quote(s)
	}
	io.WriteString(f, s)
}

// An Option configures a Client.
type Option func(*config) error

type config struct {
	dataCenter    string
	baseURL       string
	httpClient    *http.Client
	clock         Clock
	plain         bool
	partnerSecret func() *string // behind a function, as Credentials' secrets are
	uidMaxAge     time.Duration
	retries       int
	trace         func(*Trace)
	callTimeout   time.Duration // with the default HTTP client: DefaultTimeout
}

// WithDataCenter calls Gigya's data center, e.g. "us1.gigya.com", "eu1.gigya.com" or
// "cn1.gigya-api.cn": a call to socialize.setUserInfo goes to
// https://socialize.us1.gigya.com/socialize.setUserInfo.
func WithDataCenter(dc string) Option {
	return func(c *config) error {
		dc = strings.TrimSpace(dc)
		if dc == "" || strings.ContainsAny(dc, "/:@?# ") {
			return fmt.Errorf("client: data center %q: want a domain such as us1.gigya.com", dc)
		}
		c.dataCenter, c.baseURL = strings.ToLower(dc), ""
		return nil
	}
}

// WithBaseURL calls one server for every method, e.g. "http://127.0.0.1:8080" (Socius)
// or "https://socius.example.com": socialize.setUserInfo goes to
// <base>/socialize.setUserInfo.
func WithBaseURL(base string) Option {
	return func(c *config) error {
		u, err := url.Parse(base)
		if err != nil {
			// Not the URL itself: it may hold a password.
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err
			}
			return fmt.Errorf("client: base URL: not a URL: %v", err)
		}
		if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			// Shown without its query and fragment, which may hold a secret or a token.
			shown := *u
			shown.RawQuery, shown.ForceQuery, shown.Fragment, shown.RawFragment = "", false, "", ""
			cut := ""
			if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
				cut = " (its query or fragment not shown)"
			}
			return fmt.Errorf("client: base URL %q%s: want http(s)://host[:port][/path]", shown.Redacted(), cut)
		}
		for i := 0; i < len(u.Host); i++ {
			if u.Host[i] >= 0x80 {
				// Go sends the host in punycode: the signature would not be over it.
				return fmt.Errorf("client: base URL %q: write the host in ASCII (punycode, xn--...)", u.Redacted())
			}
		}
		if strings.HasSuffix(u.Host, ":") {
			// An empty port is the default one, which Go sends without the colon; so
			// is it signed.
			u.Host = strings.TrimSuffix(u.Host, ":")
			base = u.String()
		}
		c.baseURL, c.dataCenter = base, ""
		return nil
	}
}

// WithHTTPClient sends requests with hc (its transport, proxy, TLS roots, timeout)
// instead of the default client (DefaultTimeout for a whole call). Make its transport
// from http.DefaultTransport.(*http.Transport).Clone() to keep the proxy of the
// environment (HTTPS_PROXY, NO_PROXY), HTTP/2 and the dial and handshake timeouts,
// which a bare &http.Transport{} lacks (see the GetToken example). hc.Timeout bounds
// each attempt; when it is zero, as in a bare &http.Client{}, only the context bounds
// a call, and a server that answers slowly or never holds it. Redirects are not
// followed with either: a redirected call would send its secret or token again,
// perhaps over plain HTTP or to another host; the redirect is answered as an error.
// Nor is hc's cookie Jar used: as with Gigya's SDKs, every call is its own request,
// and a cookie that a server or a proxy in front of it sets is neither kept nor sent
// with a later call (nor one of the Jar's sent to the API), so that no state but the
// credentials and the parameters goes with a call.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *config) error {
		if hc == nil {
			return errors.New("client: nil *http.Client")
		}
		cp := *hc // the caller's client stays as it was
		cp.CheckRedirect = noRedirects
		cp.Jar = nil
		c.httpClient = &cp
		return nil
	}
}

// noRedirects is the CheckRedirect of every client: Gigya answers 200, and a redirect
// is a misconfiguration.
func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// WithClock sets the clock that timestamps are taken from (tests).
func WithClock(clock Clock) Option {
	return func(c *config) error {
		if clock == nil {
			return errors.New("client: nil Clock")
		}
		c.clock = clock
		return nil
	}
}

// WithPlainSecret sends the secret itself (secret=...) instead of a signature, as the
// documentation allows over HTTPS. The base URL must be https; the secret is never
// sent over plain HTTP.
func WithPlainSecret() Option {
	return func(c *config) error {
		c.plain = true
		return nil
	}
}

// WithPartnerSecret gives the site's partner secret to a client that calls with other
// credentials (a userKey, a token, an RSA key), only to validate the UIDSignature of
// getUserInfo answers: Gigya signs them with the partner secret, never a key's.
func WithPartnerSecret(secret string) Option {
	return func(c *config) error {
		if _, err := decodeSecret(secret); err != nil {
			return fmt.Errorf("client: partner secret: %v", err)
		}
		c.partnerSecret = hide(&secret)
		return nil
	}
}

// WithUIDSignatureMaxAge sets how far a UIDSignature's signatureTimestamp may be from
// now (default DefaultUIDSignatureMaxAge); zero or a negative d checks the signature
// only.
func WithUIDSignatureMaxAge(d time.Duration) Option {
	return func(c *config) error {
		c.uidMaxAge = d
		return nil
	}
}

// WithRetries sets how many times a call is tried again after a connection error
// (or, for getUserInfo, a proxy's 502, 503 or 504 page) where that is safe (default
// DefaultRetries; 0 never). The pauses between grow up to 5 s each.
func WithRetries(n int) Option {
	return func(c *config) error {
		if n < 0 {
			return errors.New("client: negative retries")
		}
		c.retries = n
		return nil
	}
}

// WithTrace calls f after every attempt with what was sent and what came back: to
// debug signatures (`socius call --verbose` uses it). Secrets are masked in it. f runs
// on the goroutine of the call, before the call returns: calls made at once call it at
// once, so it must be safe for concurrent use itself. The clients derived with
// WithCredentials call it too.
func WithTrace(f func(*Trace)) Option {
	return func(c *config) error {
		c.trace = f
		return nil
	}
}

// A Client calls the Gigya REST API (or Socius) with one set of credentials. It is
// safe for concurrent use: its calls may run from many goroutines at once, each with
// a nonce of its own, and they share the clock offset learned from the server. Make
// one with New (or WithCredentials); a zero Client has no credentials and no server,
// and its calls fail with an error that says so.
type Client struct {
	cfg  config
	cred Credentials
	keys func() *clientKeys // behind a function, as Credentials' secrets are
	base *url.URL
	http *http.Client
	// offset is added to the clock: learned from the server's Date header (see
	// learnOffset), shared by the clients derived with WithCredentials.
	offset   *atomic.Int64
	newNonce func() string
	sdk      string // the sdk parameter; tests clear it to replay the SDK vectors
}

// String describes the client without its secrets (its credentials, where it sends):
// printing a Client, or a *Client, in any verb, shows no secret.
func (c Client) String() string {
	base := "https://<namespace>." + c.cfg.dataCenter
	if c.base != nil {
		base = c.base.Redacted()
	}
	return "socius client: " + c.cred.String() + " at " + base
}

// GoString is String, for %#v.
func (c Client) GoString() string { return c.String() }

// Format prints String whatever the verb.
func (c Client) Format(f fmt.State, verb rune) { formatString(f, verb, c.String()) }

// secretKeys are the client's decoded secrets; none for a Client that New did not make.
func (c *Client) secretKeys() *clientKeys {
	if c.keys == nil {
		return &clientKeys{}
	}
	return c.keys()
}

// clientKeys are a Client's decoded secrets.
type clientKeys struct {
	key    []byte // the decoded secret, for signatures and plain mode
	uidKey []byte // the decoded partner secret, for UIDSignatures; nil if unknown
}

// ErrInsecure is returned when a secret, a token or a bearer JWT would travel over plain
// HTTP.
var ErrInsecure = errors.New("client: a secret or token is sent only over HTTPS")

// New returns a Client for the credentials.
func New(cred Credentials, opts ...Option) (*Client, error) {
	cfg := config{uidMaxAge: DefaultUIDSignatureMaxAge, retries: DefaultRetries, clock: systemClock{}}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	if cfg.dataCenter == "" && cfg.baseURL == "" {
		cfg.dataCenter = DefaultDataCenter
	}
	if cfg.httpClient == nil {
		// No Timeout here: it would bound each attempt, and do bounds the whole call.
		cfg.httpClient = &http.Client{CheckRedirect: noRedirects}
		cfg.callTimeout = DefaultTimeout
	}
	c := &Client{cfg: cfg, http: cfg.httpClient, offset: new(atomic.Int64), newNonce: newNonce, sdk: "go_" + Version}
	if err := c.setCredentials(cred); err != nil {
		return nil, err // no Client: one with credentials it refused would use them
	}
	return c, nil
}

// WithCredentials returns a Client like c (same server, HTTP client, options and
// learned clock offset) that calls with other credentials: e.g. with the access
// token that c obtained from GetToken. The new client validates UIDSignatures with
// the partner secret that c validates them with (the one given to New with
// WithPartnerSecret, or c's PartnerSecret credentials), so that a partner secret
// given once checks the answers of every client derived from c. The one exception is
// credentials that name another site (a UserKey or UserKeyRSA of another apiKey),
// which c's PartnerSecret credentials do not sign for; PartnerSecret credentials
// validate with their own secret, unless WithPartnerSecret was given. A token or a
// mobile session names no site: it is taken to be of c's site, as one that c
// obtained (GetToken, NotifyLogin) is; make a client with New for another site's. It
// returns an error for credentials that New would refuse, and for a zero c.
func (c *Client) WithCredentials(cred Credentials) (*Client, error) {
	if err := c.made(); err != nil {
		return nil, err
	}
	d := &Client{cfg: c.cfg, http: c.http, offset: c.offset, newNonce: c.newNonce, sdk: c.sdk}
	if d.cfg.partnerSecret == nil && c.cred.kind == credPartner && cred.kind != credPartner &&
		(cred.apiKey == "" || cred.apiKey == c.cred.apiKey) {
		// c's partner secret, as setCredentials stored it (compacted), for the
		// UIDSignatures of the new client's answers.
		secret := c.cred.sec().secret
		d.cfg.partnerSecret = hide(&secret)
	}
	if err := d.setCredentials(cred); err != nil {
		return nil, err
	}
	return d, nil
}

// errZeroClient is the error of a Client that New did not make.
var errZeroClient = errors.New("client: a zero Client has no credentials or server; make one with client.New")

// made returns errZeroClient for a Client that New did not make (a zero Client, or a
// copy of one), whose calls would have no HTTP client, clock or credentials.
func (c *Client) made() error {
	if c.offset == nil || c.http == nil || c.cfg.clock == nil || c.keys == nil {
		return errZeroClient
	}
	return nil
}

// shownIDBytes is as much of a refused apiKey or userKey as its error quotes: enough to
// tell which value it was (a Gigya apiKey is 3_ and some 60 characters).
const shownIDBytes = 16

// shownID quotes an apiKey or userKey that New refused, clipped to shownIDBytes with
// its length: it may be a megabyte long, or a secret given in its place (with the
// newline that made it refused), which an error, often logged, must not hold whole.
// Past the clip, the first byte that is not a printable character is named, so that
// what made a short value refused is still said. Only a value that starts as an apiKey
// does (digits, then "_", which standard base64 does not use: no secret starts so) is
// shown by shownIDBytes; any other by its first 4 bytes at most, as the server's logs
// show an unknown apiKey: 16 bytes were half a secret of 32 characters.
func shownID(s string) string {
	if len(s) <= shownIDBytes {
		return strconv.Quote(s)
	}
	n := shownIDBytes
	if !apiKeyStart(s) {
		n = min(4, len(s)/4)
	}
	shown := strconv.Quote(s[:n]) + fmt.Sprintf("... (%d bytes", len(s))
	if len(s) <= 128 {
		for i := n; i < len(s); i++ {
			if s[i] <= ' ' || s[i] > '~' {
				shown += fmt.Sprintf(", %s at byte %d", strconv.Quote(s[i:i+1]), i+1)
				break
			}
		}
	}
	return shown + ")"
}

// apiKeyStart reports whether s starts as a Gigya apiKey does: digits, then "_".
func apiKeyStart(s string) bool {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return i > 0 && i < len(s) && s[i] == '_'
}

func (c *Client) setCredentials(cred Credentials) error {
	keys := &clientKeys{}
	if cred.kind != 0 && cred.sec == nil {
		return errors.New("client: credentials without their secret (use PartnerSecret, UserKey, Token, Session or UserKeyRSA)")
	}
	switch cred.kind {
	case credPartner, credUserKey:
		if !socius.ValidAPIKey(cred.apiKey) {
			return fmt.Errorf("client: apiKey %s: 1 to 128 printable characters", shownID(cred.apiKey))
		}
		if cred.kind == credUserKey && !socius.ValidUserKey(cred.userKey) {
			return fmt.Errorf("client: userKey %s: 1 to 128 printable characters", shownID(cred.userKey))
		}
		key, err := decodeSecret(cred.sec().secret)
		if err != nil {
			return fmt.Errorf("client: secret: %v", err)
		}
		keys.key = key
		// A plain-secret call sends the text: without the whitespace that decoding
		// skipped (a secret read from a file, with its newline), as it signs.
		cred.sec = hide(&credSecrets{secret: socius.CompactSecret(cred.sec().secret)})
	case credToken:
		if cred.sec().token == "" {
			return errors.New("client: empty access token")
		}
	case credSession:
		if cred.sec().token == "" {
			return errors.New("client: empty session token")
		}
		key, err := decodeSecret(cred.sec().secret)
		if err != nil {
			return fmt.Errorf("client: session secret: %v", err)
		}
		keys.key = key
	case credRSA:
		if !socius.ValidAPIKey(cred.apiKey) || !socius.ValidUserKey(cred.userKey) {
			return fmt.Errorf("client: apiKey %s and userKey %s: 1 to 128 printable characters each", shownID(cred.apiKey), shownID(cred.userKey))
		}
		if cred.sec().rsaKey == nil {
			return errors.New("client: nil RSA private key")
		}
	default:
		return errors.New("client: no credentials (use PartnerSecret, UserKey, Token, Session or UserKeyRSA)")
	}
	c.cred = cred
	c.keys = hide(keys)
	switch {
	case c.cfg.partnerSecret != nil:
		keys.uidKey, _ = decodeSecret(*c.cfg.partnerSecret())
	case cred.kind == credPartner:
		keys.uidKey = keys.key
	}
	if c.cfg.baseURL != "" {
		c.base, _ = url.Parse(c.cfg.baseURL)
		c.base.Path = strings.TrimRight(c.base.Path, "/")
		c.base.RawPath = ""
	}
	secure := c.base == nil || c.base.Scheme == "https"
	if !secure && (cred.kind == credToken || cred.kind == credSession || cred.kind == credRSA || c.cfg.plain && (cred.kind == credPartner || cred.kind == credUserKey)) {
		return fmt.Errorf("%w: %s needs an https base URL, not %s", ErrInsecure, cred, c.cfg.baseURL)
	}
	return nil
}

// plainHTTP refuses, over a plain-HTTP base URL, a call that would carry a secret or a
// token the caller put in its parameters (client_secret, password, a token...: what
// gigya.IsCredential names, but for signatures, made to travel in the clear), and
// socialize.getToken, whose answer is a token. New checks the client's own
// credentials.
// Its errors start with the method; ErrInsecure's text says "client:" (once).
func (c *Client) plainHTTP(method string, user []gigya.Param) error {
	if c.base == nil || c.base.Scheme == "https" {
		return nil
	}
	if strings.EqualFold(method, "socialize.getToken") {
		return fmt.Errorf("%s: %w: its answer is a token; it needs an https base URL, not %s", method, ErrInsecure, c.base.Scheme)
	}
	if strings.EqualFold(method, "socialize.notifyLogin") {
		for _, p := range user {
			if strings.EqualFold(p.Name, "targetEnv") && strings.EqualFold(p.Value, "mobile") {
				return fmt.Errorf("%s: %w: with targetEnv=mobile its answer is a session token and its secret; it needs an https base URL, not %s", method, ErrInsecure, c.base.Scheme)
			}
		}
	}
	for _, p := range user {
		if gigya.IsCredential(p.Name) && !strings.EqualFold(p.Name, "sig") && !strings.EqualFold(p.Name, "UIDSig") {
			return fmt.Errorf("%s: %w: the parameter %s holds a credential; it needs an https base URL, not %s", method, ErrInsecure, p.Name, c.base.Scheme)
		}
	}
	return nil
}

func decodeSecret(s string) ([]byte, error) {
	if s == "" {
		return nil, errors.New("empty")
	}
	b, err := socius.DecodeSecret(s)
	if err != nil {
		// Said so that a person can mend it, not as Go's "illegal base64 data at input
		// byte 16".
		return nil, fmt.Errorf("not standard base64: %s", socius.SecretProblem(s, err))
	}
	return b, nil
}

// ClockOffset is what the client adds to its clock: learned from the server's Date
// header, after a 403002 (Request has expired) and from any answer whose Date is more
// than a second off. It is zero for a zero Client.
func (c *Client) ClockOffset() time.Duration {
	if c.offset == nil {
		return 0
	}
	return time.Duration(c.offset.Load())
}

// learnOffset sets the clock offset from an answer's Date header, and returns it.
// Date has whole seconds, the server's clock read between Date and Date+1s when it
// answered, so the offset is only changed when it is more than a second off (or when
// always: after a 403002).
func (c *Client) learnOffset(date time.Time, always bool) time.Duration {
	offset := date.Add(500 * time.Millisecond).Sub(c.cfg.clock.Now())
	if d := offset - c.ClockOffset(); always || d > time.Second || d < -time.Second {
		c.offset.Store(int64(offset))
		return offset
	}
	return c.ClockOffset()
}

// serverDate reads an answer's Date header for the clock offset: an HTTP date from
// 1970 on (no Unix timestamp is earlier: a signed request would carry a negative one)
// whose distance from now a time.Duration holds (about 292 years; Sub clips a longer
// one, and the offset would be wrong). Any other is no server time to learn, as a Date
// that does not parse: a broken or hostile server's.
func serverDate(h string, now time.Time) (time.Time, error) {
	date, err := http.ParseTime(h)
	if err != nil {
		return date, err
	}
	if date.Before(time.Unix(0, 0)) {
		return date, errors.New("a Date before 1970")
	}
	if d := date.Sub(now); d == math.MaxInt64 || d == math.MinInt64 {
		return date, errors.New("a Date too far from the client's clock")
	}
	return date, nil
}

// now is the clock corrected by the learned offset.
func (c *Client) now() time.Time { return c.cfg.clock.Now().Add(c.ClockOffset()) }

// newNonce returns 128 crypto-random bits in hex.
func newNonce() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return hex.EncodeToString(b[:])
}

// endpoint returns the URL a method is sent to.
func (c *Client) endpoint(method string) string {
	if c.base != nil {
		return c.base.Scheme + "://" + c.base.Host + c.base.EscapedPath() + "/" + method
	}
	ns := method[:strings.IndexByte(method, '.')]
	return "https://" + ns + "." + c.cfg.dataCenter + "/" + method
}

// canonicalMethod accepts "socialize.setUserInfo", "/socialize.setUserInfo" and, as
// the SDKs do, a bare "setUserInfo" (namespace socialize).
func canonicalMethod(m string) (string, error) {
	m = strings.TrimPrefix(m, "/")
	if m == "" {
		return "", errors.New("client: empty method name")
	}
	for i := 0; i < len(m); i++ {
		c := m[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_') {
			return "", fmt.Errorf("client: method %q: only letters, digits, '.' and '_'", m)
		}
	}
	if !strings.Contains(m, ".") {
		m = "socialize." + m
	}
	if m[0] == '.' || m[len(m)-1] == '.' {
		return "", fmt.Errorf("client: method %q is not namespace.method", m)
	}
	return m, nil
}

// safeToRepeat lists the methods that change nothing: sent twice, they answer the
// same. A connection error lets them be tried again even after the request may have
// reached the server.
var safeToRepeat = map[string]bool{
	"socialize.getuserinfo": true,
}

// A Response is a successful answer (errorCode 0).
type Response struct {
	Method       string // the method called
	CallID       string // callId: the server's name for the call
	StatusCode   int    // the answer's statusCode field (200)
	StatusReason string // the answer's statusReason ("OK")
	// Time is the answer's time field: when the server answered. Zero when the answer
	// has none, or one that is not RFC 3339 within the years 0000-9999 in UTC. The
	// client's clock offset never comes from it: only from the Date header.
	Time time.Time
	// Ignored lists the parameters the server did not use (ignoredParams).
	Ignored []gigya.IgnoredParam
	// Body is the whole answer, one JSON object: the method's data is at its top level.
	Body []byte
	// Header is the HTTP header of the answer.
	Header http.Header
}

// Decode unmarshals the answer into v (a struct with json tags, or a map).
func (r *Response) Decode(v any) error {
	if err := jsonUnmarshal(r.Body, v); err != nil {
		return fmt.Errorf("client: %s: decode answer: %w", r.Method, err)
	}
	return nil
}

// Call calls any method, e.g. "socialize.setUID" or "accounts.getAccountInfo", with
// params, adding the credentials and the control parameters (format=json,
// httpStatusCodes=false, sdk). A bare name ("setUID") is in namespace socialize.
//
// Its errors: a Gigya error answer (errorCode != 0) is an *Error; an answer that is
// not a Gigya answer a *ResponseError; no answer a *TransportError. ErrInsecure (with
// errors.Is) when a parameter holds a credential, or the method's answer does, over
// plain HTTP; a method name or a parameter the client cannot send (a reserved name,
// a NaN) is a plain error naming it, and nothing is sent. ErrorCode maps any of them
// to a Gigya code. The helpers (SetUserInfo, GetUserInfo, ...) return Call's errors,
// and their own for a request or an answer they cannot build or read.
func (c *Client) Call(ctx context.Context, method string, params Params) (*Response, error) {
	m, err := canonicalMethod(method)
	if err != nil {
		return nil, err
	}
	ps, err := params.encode()
	if err != nil {
		return nil, fmt.Errorf("client: %s: %w", m, err)
	}
	return c.do(ctx, m, ps)
}

// do sends a call, trying again as the package documentation says: once after a
// 403002 with the clock corrected from the answer's Date header, and up to
// cfg.retries times after a connection error (or, for a read, a gateway's 502, 503 or
// 504 page) where repeating is safe. Every attempt is built afresh: new timestamp, new
// nonce, new signature.
func (c *Client) do(ctx context.Context, method string, user []gigya.Param) (*Response, error) {
	if err := c.made(); err != nil {
		return nil, err
	}
	if ctx == nil {
		// context.WithTimeout panics on it, and net/http refuses it: one error, whatever
		// the HTTP client.
		return nil, fmt.Errorf("client: %s: nil Context (use context.Background() or context.TODO())", method)
	}
	if c.cfg.callTimeout > 0 {
		// Its end says whose deadline it was: a bare "context deadline exceeded"
		// sent callers looking for a deadline of their own.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, c.cfg.callTimeout,
			fmt.Errorf("%w: the call took longer than client.DefaultTimeout (%v)", context.DeadlineExceeded, c.cfg.callTimeout))
		defer cancel()
	}
	endpoint := c.endpoint(method)
	norm, err := gigya.NormalizeURL(endpoint)
	if err != nil {
		return nil, fmt.Errorf("client: %s: %w", method, err)
	}
	if err := c.plainHTTP(method, user); err != nil {
		return nil, err
	}
	safe := safeToRepeat[strings.ToLower(method)]
	skewRetried := false
	failures := 0
	// reached is whether an attempt may have reached the server and done something:
	// one whose transport error does not prove it was never sent. (The one answer
	// that leads to another attempt, 403002, says the server did nothing.)
	reached := false
	for attempt := 1; ; attempt++ {
		if ctx.Err() != nil {
			err := context.Cause(ctx)
			// Ended before this attempt went out (given an ended context, or ended
			// after a 403002): nothing of it was sent. net/http would fail it before
			// looking for a connection, which no trace hook tells from a request
			// lost on the way.
			return nil, &TransportError{Method: method, URL: endpoint, Attempts: attempt - 1, Err: err, NeverSent: !reached}
		}
		conn := new(connTrace)
		req, tr, err := c.newRequest(httptrace.WithClientTrace(ctx, conn.clientTrace()), method, endpoint, norm, user, attempt)
		if err != nil {
			return nil, err
		}
		start := time.Now()
		resp, body, err := c.send(req)
		tr.Duration = time.Since(start)
		if errors.Is(err, errAnswerTooLong) {
			// An answer, only not one a client reads: no retry (the server did
			// answer; a write may have happened), and no second download.
			tr.Err, tr.HTTPStatus = err, resp.StatusCode
			c.traceDone(tr)
			return nil, &ResponseError{Method: method, HTTPStatus: resp.StatusCode, ContentType: resp.Header.Get("Content-Type"),
				Body: clipBody(body), Size: MaxResponseBytes + 1, Err: fmt.Errorf("%w: %v", gigya.ErrNotAnswer, err)}
		}
		if err != nil {
			tr.Err = err
			failures++
			unsent := notSent(err) || conn.neverConnected()
			reached = reached || !unsent
			retry := ctx.Err() == nil && failures <= c.cfg.retries && (safe || unsent) && !permanent(err)
			if retry {
				tr.Retry = "connection error; trying again with a fresh nonce"
			}
			c.traceDone(tr)
			if !retry {
				return nil, &TransportError{Method: method, URL: endpoint, Attempts: attempt, Err: err, NeverSent: !reached}
			}
			if serr := sleep(ctx, backoff(failures)); serr != nil {
				// Ended while waiting to try again: both causes, so that a caller can
				// still tell an answer lost from a request never sent (the last one).
				return nil, &TransportError{Method: method, URL: endpoint, Attempts: attempt, Err: fmt.Errorf("%w; the last attempt: %w", serr, err),
					NeverSent: !reached}
			}
			continue
		}
		tr.HTTPStatus = resp.StatusCode
		tr.Date = resp.Header.Get("Date")
		ans, err := gigya.DecodeAnswer(body)
		if resp.StatusCode/100 == 3 {
			// Gigya never redirects; whatever the body says, the call did not reach
			// it (and the redirect is not followed).
			err = fmt.Errorf("%w: a redirect (HTTP %d) to %.200q", gigya.ErrNotAnswer, resp.StatusCode, resp.Header.Get("Location"))
		}
		if err != nil {
			tr.Err = err
			rerr := &ResponseError{Method: method, HTTPStatus: resp.StatusCode, ContentType: resp.Header.Get("Content-Type"), Body: clipBody(body), Size: len(body), Err: err}
			// A gateway's failure (a proxy's 502, 503 or 504 page: its server
			// restarting, down, or slow) is, for a method that changes nothing, what a
			// lost connection is: tried again. A write stays sent once.
			reached = true
			if !safe || !gatewayFailure(resp.StatusCode) || ctx.Err() != nil || failures >= c.cfg.retries {
				c.traceDone(tr)
				return nil, rerr
			}
			failures++
			tr.Retry = fmt.Sprintf("HTTP %d from a gateway, not an answer; trying again with a fresh nonce", resp.StatusCode)
			c.traceDone(tr)
			if serr := sleep(ctx, backoff(failures)); serr != nil {
				return nil, &TransportError{Method: method, URL: endpoint, Attempts: attempt, Err: fmt.Errorf("%w; the last attempt: %w", serr, rerr)}
			}
			continue
		}
		tr.ErrorCode = ans.Code
		date, dateErr := serverDate(tr.Date, c.cfg.clock.Now())
		if ans.Code == socius.CodeRequestExpired && !skewRetried && c.cred.signs(c.cfg.plain) && dateErr == nil {
			offset := c.learnOffset(date, true)
			skewRetried = true
			tr.Retry = fmt.Sprintf("request expired: clock offset set to %v from the Date header; trying again with a fresh timestamp and nonce", offset.Round(time.Second))
			c.traceDone(tr)
			continue
		}
		if dateErr == nil {
			// As the Java and .NET SDKs do: the clock follows the server's from every
			// answer, so that calls without a timestamp (plain secret, tokens) check
			// UIDSignatures against the server's time too.
			c.learnOffset(date, false)
		}
		c.traceDone(tr)
		if ans.Code != 0 {
			return nil, &Error{Method: method, Code: ans.Code, Message: ans.Message, Details: ans.Details, CallID: ans.CallID,
				StatusCode: ans.StatusCode, Response: body}
		}
		return &Response{Method: method, CallID: ans.CallID, StatusCode: ans.StatusCode, StatusReason: ans.StatusReason,
			Time: ans.Time, Ignored: ans.Ignored, Body: body, Header: resp.Header}, nil
	}
}

// gatewayFailure reports the HTTP statuses with which a proxy or load balancer says
// that the server behind it failed: Bad Gateway, Service Unavailable, Gateway Timeout.
func gatewayFailure(status int) bool {
	return status == http.StatusBadGateway || status == http.StatusServiceUnavailable || status == http.StatusGatewayTimeout
}

// errAnswerTooLong is send's error for an answer over MaxResponseBytes.
var errAnswerTooLong = fmt.Errorf("answer longer than %d bytes", MaxResponseBytes)

// send does one HTTP exchange and reads the whole answer (its start and
// errAnswerTooLong when it is longer than MaxResponseBytes). An answer whose body
// fails part way (the connection cut, the context ended) is a transport error that
// says so, with the HTTP status and how much came: the server did answer, so a call
// that changes something got there.
func (c *Client) send(req *http.Request) (*http.Response, []byte, error) {
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBytes+1))
	if err != nil {
		return nil, nil, fmt.Errorf("the answer (HTTP %d) broke off after %d bytes: %w", resp.StatusCode, len(body), err)
	}
	if len(body) > MaxResponseBytes {
		return resp, body[:MaxResponseBytes], errAnswerTooLong
	}
	return resp, body, nil
}

// notSent reports whether a transport error proves that the request never reached
// the server: the connection was never made (refused, unreachable, DNS, proxy). Only
// then, or when connTrace saw that net/http's Transport got no connection for the
// attempt, may a call that changes something be sent again.
func notSent(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && (op.Op == "dial" || op.Op == "proxyconnect") {
		return true
	}
	var dns *net.DNSError
	return errors.As(err, &dns)
}

// permanent reports transport errors that trying again cannot mend: the host name
// does not exist (a data center misspelt), the server's certificate is not trusted,
// or it does not speak TLS.
func permanent(err error) bool {
	if dns := (*net.DNSError)(nil); errors.As(err, &dns) && dns.IsNotFound {
		return true
	}
	var (
		verify   *tls.CertificateVerificationError
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
		record   tls.RecordHeaderError
	)
	return errors.As(err, &verify) || errors.As(err, &unknown) || errors.As(err, &hostname) ||
		errors.As(err, &invalid) || errors.As(err, &record) ||
		// net/http's transport turns the record error into text of its own.
		strings.Contains(err.Error(), "server gave HTTP response to HTTPS client")
}

// connTrace records, through net/http's client trace, whether the Transport looked
// for a connection for an attempt (GetConn) and whether it got one (GotConn). The
// Transport writes a request only on a connection it got, after its TLS handshake:
// an attempt that asked and got none (the dial refused or timed out, the name did not
// resolve, the proxy or the TLS handshake failed, the context ended first) sent
// nothing. A RoundTripper that is not net/http's calls neither hook, and then only
// notSent's error types tell. The hooks may run on the Transport's dialing goroutine.
type connTrace struct {
	asked, got atomic.Bool
}

func (t *connTrace) clientTrace() *httptrace.ClientTrace {
	return &httptrace.ClientTrace{
		GetConn: func(string) { t.asked.Store(true) },
		GotConn: func(httptrace.GotConnInfo) { t.got.Store(true) },
	}
}

// neverConnected reports whether the Transport looked for a connection and got none.
func (t *connTrace) neverConnected() bool { return t.asked.Load() && !t.got.Load() }

// maxBackoff is the longest pause before a retry.
const maxBackoff = 5 * time.Second

// backoff is the pause after the failures-th failure: 0.1 s, 0.4 s, 0.9 s... growing
// as its square, up to maxBackoff, so that a client given many retries (WithRetries)
// still tries every few seconds, and a count that large does not overflow.
func backoff(failures int) time.Duration {
	if failures <= 0 {
		return 0
	}
	if failures > 7 { // 7² × 0.1 s is 4.9 s
		return maxBackoff
	}
	return min(time.Duration(failures*failures)*100*time.Millisecond, maxBackoff)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-t.C:
		return nil
	}
}

// newRequest builds one attempt: the caller's parameters, the control parameters and
// the credentials, sorted by name (the order they are signed in) and form-encoded.
func (c *Client) newRequest(ctx context.Context, method, endpoint, norm string, user []gigya.Param, attempt int) (*http.Request, *Trace, error) {
	ps := make([]gigya.Param, 0, len(user)+9)
	ps = append(ps, user...)
	ps = append(ps, gigya.Param{Name: "format", Value: "json"}, gigya.Param{Name: "httpStatusCodes", Value: "false"})
	if c.sdk != "" {
		ps = append(ps, gigya.Param{Name: "sdk", Value: c.sdk})
	}
	tr := &Trace{Attempt: attempt, Method: method, HTTPMethod: http.MethodPost, URL: endpoint, Credentials: c.cred.String()}
	header := make(http.Header)
	now := c.now()
	switch c.cred.kind {
	case credToken:
		ps = append(ps, gigya.Param{Name: "oauth_token", Value: c.cred.sec().token})
	case credPartner, credUserKey, credSession:
		switch c.cred.kind {
		case credSession:
			ps = append(ps, gigya.Param{Name: "oauth_token", Value: c.cred.sec().token})
		case credUserKey:
			ps = append(ps, gigya.Param{Name: "apiKey", Value: c.cred.apiKey}, gigya.Param{Name: "userKey", Value: c.cred.userKey})
		default:
			ps = append(ps, gigya.Param{Name: "apiKey", Value: c.cred.apiKey})
		}
		if c.cfg.plain && c.cred.kind != credSession {
			ps = append(ps, gigya.Param{Name: "secret", Value: c.cred.sec().secret})
			break
		}
		ps = append(ps, gigya.Param{Name: "timestamp", Value: strconv.FormatInt(now.Unix(), 10)},
			gigya.Param{Name: "nonce", Value: c.newNonce()})
		tr.NormalizedURL = norm
		base := gigya.BaseString(http.MethodPost, norm, ps)
		tr.Signature = gigya.SignBase(c.secretKeys().key, base)
		if c.cfg.trace != nil {
			// What the trace shows of the base string has the secrets masked too (a
			// client_secret of getToken is signed like any parameter).
			tr.BaseString = gigya.BaseString(http.MethodPost, norm, maskParams(ps))
		}
		ps = append(ps, gigya.Param{Name: "sig", Value: tr.Signature})
	case credRSA:
		ps = append(ps, gigya.Param{Name: "apiKey", Value: c.cred.apiKey},
			gigya.Param{Name: "timestamp", Value: strconv.FormatInt(now.Unix(), 10)})
		jwt, err := gigya.BearerJWT(c.cred.sec().rsaKey, c.cred.userKey, c.newNonce(), now)
		if err != nil {
			return nil, nil, fmt.Errorf("client: %s: bearer token: %w", method, err)
		}
		header.Set("Authorization", "Bearer "+jwt)
	}
	gigya.SortParams(ps)
	body := gigya.AppendForm(make([]byte, 0, 256), ps)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		return nil, nil, fmt.Errorf("client: %s: %w", method, err)
	}
	header.Set("Content-Type", "application/x-www-form-urlencoded")
	header.Set("User-Agent", "socius-go-client/"+Version)
	req.Header = header
	if c.cfg.trace != nil {
		tr.Params = maskParams(ps)
		tr.Header = header.Clone()
		if h := tr.Header.Get("Authorization"); h != "" {
			tr.Header.Set("Authorization", h[:strings.IndexByte(h, ' ')+1]+"***")
		}
	}
	return req, tr, nil
}

func (c *Client) traceDone(tr *Trace) {
	if c.cfg.trace != nil {
		c.cfg.trace(tr)
	}
}

// A Trace is one attempt of a call, reported to the WithTrace function after it ended.
type Trace struct {
	Attempt     int // 1 for the first
	Method      string
	HTTPMethod  string
	URL         string
	Credentials string // which credential, without its secret
	// Params are the parameters sent, sorted by name, with the credentials
	// (gigya.IsCredential: secret, sig, oauth_token, client_secret, ...) masked as "***".
	Params []gigya.Param
	// Header is the request header, the Authorization value masked.
	Header http.Header
	// NormalizedURL, BaseString and Signature are set for signed requests: what the
	// signature covers and the signature itself.
	NormalizedURL string
	BaseString    string
	Signature     string

	Duration   time.Duration
	HTTPStatus int    // the answer's HTTP status; 0 when none came, or its body could not be read
	Date       string // the answer's Date header
	ErrorCode  int    // the answer's errorCode
	Err        error  // the transport or decoding error, if any
	Retry      string // why another attempt follows; empty when none does
}

func maskParams(ps []gigya.Param) []gigya.Param {
	out := make([]gigya.Param, len(ps))
	for i, p := range ps {
		if gigya.IsCredential(p.Name) { // what a trace never shows
			p.Value = "***"
		}
		out[i] = p
	}
	return out
}

// clipBody returns the start of an answer for a ResponseError, in a slice of its own:
// a slice of b would keep all of b (up to MaxResponseBytes) alive for as long as the
// caller keeps the error.
func clipBody(b []byte) []byte {
	const n = 2048
	if len(b) > n {
		return bytes.Clone(b[:n])
	}
	return b
}
