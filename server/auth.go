package server

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/socius/socius"
	"github.com/socius/socius/gigya"
)

// Credential kinds, as reported in Call.Credential.
const (
	credPartnerSignature    = "partner-signature"
	credPartnerSecret       = "partner-secret"
	credPartnerClientSecret = "partner-client-secret" // getToken: HTTP Basic or client_secret
	credKeySignature        = "key-signature"
	credKeySecret           = "key-secret"
	credKeyClientSecret     = "key-client-secret"
	credKeyBearer           = "key-bearer" // Authorization: Bearer <JWT>
	credAccessToken         = "access-token"
	credSessionToken        = "session-token"
)

// authenticate establishes who is calling: the site, the key when a userKey is used,
// the token in token mode. The order of the checks is SPEC section 3's.
func (s *Server) authenticate(c *call) error {
	if len(c.r.Header["Authorization"]) > 1 {
		// Only the first would be read: a second credential is not dropped unchecked.
		return badHeader("more than one Authorization header; send one credential")
	}
	if c.m.clientAuth {
		return s.authenticateClient(c)
	}
	if tokenSent(c) {
		return s.authenticateToken(c)
	}
	apiKey, ok := c.params.Lookup("apiKey")
	return s.authenticateServer(c, apiKey, ok)
}

// authenticateServer checks the credentials of a server call: the apiKey, then a
// signature, a plain secret or a bearer JWT.
func (s *Server) authenticateServer(c *call, apiKey string, sent bool) error {
	if !sent || apiKey == "" {
		c.noGuess = true
		return socius.Errorf(socius.CodeInvalidAPIKey, "Missing required parameter: apiKey")
	}
	if !socius.ValidAPIKey(apiKey) {
		c.noGuess = true
		return socius.Errorf(socius.CodeInvalidAPIKey, "Invalid ApiKey parameter: not a valid apiKey")
	}
	site, err := s.cfg.Store.Site(c.ctx, apiKey)
	if errors.Is(err, socius.ErrNotFound) {
		if !c.m.clientAuth && !c.params.Has("userKey") {
			isKey, kerr := s.keyWithSecretSent(c, apiKey)
			if kerr != nil {
				return kerr
			}
			if isKey {
				// A userKey sent as the apiKey, with its own secret: the client knows
				// the key, and mixed up the parameters; it guessed nothing.
				c.noGuess = true
				return socius.Errorf(socius.CodeInvalidAPIKey, "Invalid ApiKey parameter: apiKey %s is a userKey; send the site's apiKey as apiKey and this key as userKey beside its secret", apiKey)
			}
		}
		return socius.Errorf(socius.CodeInvalidAPIKey, "Invalid ApiKey parameter: no site has apiKey %s", unknownID(apiKey))
	}
	if err != nil {
		return err
	}
	c.site = site
	if !c.secure && c.params.Has("secret") {
		// A secret that travelled in the clear is refused before anything else is
		// looked at, a userKey too: that is what the client must hear first. Beside a
		// good signature too: the secret was sent all the same.
		c.Credential = credPartnerSecret
		if c.params.Has("userKey") {
			c.Credential = credKeySecret
		}
		return secretOverHTTP()
	}
	if userKey, ok := c.params.Lookup("userKey"); ok {
		key, err := s.siteKey(c, userKey)
		if err != nil {
			return err
		}
		c.key = key
	}
	// A credential sent empty is one not sent (as every required parameter sent empty).
	switch {
	case c.params.Get("sig") != "":
		return s.verifySignature(c)
	case c.params.Get("secret") != "":
		return s.checkSecret(c)
	case hasAuthScheme(c, "Bearer"):
		return s.authenticateBearer(c)
	case hasAuthScheme(c, "Basic"):
		// Client credentials, which only getToken takes; a secret all the same, and
		// one that may have crossed the network in the clear.
		if !c.secure {
			return secretOverHTTP()
		}
		return socius.Errorf(socius.CodeMissingParameter, "Missing required parameter: sig, secret or oauth_token (HTTP Basic credentials are taken by socialize.getToken only)")
	}
	if c.m.clientAuth {
		// getToken takes client credentials, and refuses a token (403007): the list
		// that every other method's answer gives would send the client to one.
		return socius.Errorf(socius.CodeMissingParameter, "Missing required parameter: sig, secret or oauth_token (socialize.getToken takes client credentials, not an oauth_token: HTTP Basic apiKey:secret, client_id and client_secret, or the apiKey with a secret, a signature or a bearer JWT)")
	}
	return socius.Errorf(socius.CodeMissingParameter, "Missing required parameter: sig, secret or oauth_token")
}

// siteKey returns the key of c.site with the userKey; 403005 when there is none.
func (s *Server) siteKey(c *call, userKey string) (*socius.Key, error) {
	if userKey == "" {
		c.noGuess = true
		return nil, socius.Errorf(socius.CodeUnauthorizedUser, "Unauthorized user: userKey is empty; leave it out to use the site's partner secret")
	}
	if !socius.ValidUserKey(userKey) {
		// No key has such a name, and the database need not be asked: PostgreSQL
		// refuses a NUL byte (which a JWT's kid can hold) as an error of its own.
		c.noGuess = true
		return nil, socius.Errorf(socius.CodeUnauthorizedUser, "Unauthorized user: %s is not a valid userKey", unknownID(userKey))
	}
	key, err := s.cfg.Store.Key(c.ctx, userKey)
	if errors.Is(err, socius.ErrNotFound) || err == nil && key.APIKey != c.site.APIKey {
		// One answer for both, and the name shortened in both (it may be a secret sent
		// as userKey), so that it does not tell which userKeys exist elsewhere.
		return nil, socius.Errorf(socius.CodeUnauthorizedUser, "Unauthorized user: userKey %s is not a key of this site", unknownID(userKey))
	}
	return key, err
}

// secret returns the secret that authenticates the call: the key's, else the site's.
// secret returns the secret of the call's credential, without the whitespace a stored
// secret may hold (one stored before 2026-11-30 as an operator typed it, with its
// newline): the text a plain secret is compared with. Signing ignores it either way.
func (c *call) secret() string {
	if c.key != nil {
		return socius.CompactSecret(c.key.Secret)
	}
	return socius.CompactSecret(c.site.Secret)
}

func (c *call) credentialName() string {
	if c.key != nil {
		return "userKey " + c.key.UserKey
	}
	return "apiKey " + c.site.APIKey
}

// verifySignature checks a request signed with the partner or the key secret.
func (s *Server) verifySignature(c *call) error {
	c.Credential = credPartnerSignature
	if c.key != nil {
		c.Credential = credKeySignature
	}
	var key []byte
	var err error
	if c.key != nil {
		key, err = socius.DecodeSecret(c.key.Secret)
	} else {
		key, err = c.partnerKey()
	}
	name := c.credentialName()
	if err != nil {
		return fmt.Errorf("stored secret of %s does not decode: %w", name, err)
	}
	return s.checkSigned(c, key, name, "the secret of "+name)
}

// partnerKey returns the site's partner secret, decoded (once per call).
func (c *call) partnerKey() ([]byte, error) {
	if c.siteKey == nil {
		k, err := socius.DecodeSecret(c.site.Secret)
		if err != nil {
			return nil, err
		}
		c.siteKey = k
	}
	return c.siteKey, nil
}

// checkSigned checks a signed request: timestamp, then signature, then nonce. The
// timestamp comes first because the Java SDK answers a 403002 by re-sending the very
// same request, which must get 403002 again rather than 403004. key is the decoded
// secret, credential scopes the nonce, whose names the secret in errorDetails.
func (s *Server) checkSigned(c *call, key []byte, credential, whose string) error {
	tsText, ok := c.params.Lookup("timestamp")
	if !ok || tsText == "" {
		return socius.Errorf(socius.CodeMissingParameter, "Missing required parameter: timestamp")
	}
	nonce, ok := c.params.Lookup("nonce")
	if !ok || nonce == "" {
		return socius.Errorf(socius.CodeMissingParameter, "Missing required parameter: nonce")
	}
	if len(nonce) > maxNonceBytes {
		return socius.Errorf(socius.CodeInvalidValue, "Invalid parameter value: nonce is longer than %d bytes", maxNonceBytes)
	}
	ts, ok := gigya.ParseTimestamp(tsText)
	if !ok {
		return socius.Errorf(socius.CodeInvalidValue, "Invalid parameter value: timestamp must be Unix time in seconds (or milliseconds), in decimal digits alone")
	}
	if err := s.outsideSkew(c, "timestamp", tsText, ts); err != nil {
		return err
	}
	if err := s.beforeStart(c, "timestamp", tsText, ts); err != nil {
		return err
	}
	if !c.signatureMatches(key) {
		// What the server signed, for debugging through Config.Observe; credential
		// values (a session call signs its oauth_token) are masked.
		// Each base string is cut at maxBaseString bytes: a wrong signature costs
		// nothing but the apiKey, and a whole one is up to five times the body.
		urls := gigya.CandidateURLs(c.scheme, c.r.Host, c.r.URL.EscapedPath())
		urls = urls[:min(len(urls), verifyTries(c.params.All()))] // those tried
		c.SignedURLs = urls
		shown, _ := maskParams(c.params.All(), c.storedSecrets()...)
		c.BaseStrings = gigya.BaseStrings(c.r.Method, urls, shown, maxBaseString)
		if s.cfg.ExplainSignatures {
			return socius.Errorf(socius.CodeInvalidSignature, "%s", explainSignature(c, key, whose))
		}
		return socius.Errorf(socius.CodeInvalidSignature, "Invalid request signature: it does not match %s for %s %s",
			whose, c.r.Method, urls[0])
	}
	if s.limiter != nil && c.site != nil && c.site.APIKey != c.params.Get("apiKey") {
		// A call that named no apiKey (a session token's), whose site's budget is
		// spent: refused before its nonce is recorded, as a call that names its apiKey
		// is refused before authentication, so that the client may send it again as it
		// is once the budget allows (the mobile SDKs retry a 403048 so). Found ready,
		// it is charged once authenticated whatever calls in between took.
		if !s.limiter.Ready(c.site.APIKey, c.now) {
			return s.rateLimited(c, c.site.APIKey)
		}
		c.readyBeforeNonce = true
	}
	c.nonce = socius.NonceUse{Credential: credential, Nonce: nonce, Expires: s.nonceExpiry(c, ts), Now: c.now}
	c.noncePending = true
	// Recorded with the method's store work (Config.Nonced), or at the call's end
	// (serve, recoverCall). Not in emulator mode: a replay must not reach its fault
	// rules, which count and delay the calls they match.
	if s.cfg.Nonced != nil && s.cfg.Fault == nil && c.m.nonced && c.token == nil {
		return nil
	}
	return s.useNonce(c, c.ctx)
}

// useNonce records the call's pending nonce on ctx; 403004 when it was seen before.
// Once the call went past its authentication, ctx is the call's without its
// cancellation (the store's own deadline bounds it): a request whose signature was
// checked leaves its nonce, whatever became of its call.
func (s *Server) useNonce(c *call, ctx context.Context) error {
	c.noncePending = false
	fresh, err := s.cfg.Nonces.UseNonce(ctx, c.nonce.Credential, c.nonce.Nonce, c.nonce.Expires, c.nonce.Now)
	if err != nil {
		return err
	}
	if !fresh && !(s.cfg.Fault != nil && s.forgiven.take(c.nonce.Credential, c.nonce.Nonce, c.nonce.Now)) {
		return duplicateNonce()
	}
	c.nonceRecorded = true
	return nil
}

// nonced runs op, a store operation of Config.Nonced that records the call's pending
// nonce with the call's own work, and returns its error, or 403004 when the nonce was
// seen before. op runs on the call's context without its cancellation, as useNonce.
// The nonce stays pending until op returns, so that a panic in it leaves recoverCall
// to record it (nonceInOp: the answer stays the panic's, as op may have recorded it).
func (s *Server) nonced(c *call, op func(ctx context.Context) (fresh bool, err error)) error {
	ctx := context.WithoutCancel(c.ctx)
	c.nonceInOp = true
	fresh, err := op(ctx)
	c.nonceInOp = false
	switch {
	case err == nil && !fresh:
		c.noncePending = false
		return duplicateNonce()
	case err != nil && !fresh:
		// The operation failed in the store without recording the nonce (or with a
		// nonce seen before): the nonce is recorded on its own, as it was before the
		// call's work, so that the request cannot be replayed. The answer is the
		// failure's, whatever that finds: the operation may have committed before it
		// failed to say so.
		//
		// The recording has a store deadline of its own (PostgreSQL's 10 s), not what
		// the work left of one: a caller may wait twice the store's bound, but work
		// that timed out leaves nothing, and that is when the nonce matters most. A
		// write that timed out behind a lock runs when the lock goes should its cancel
		// not reach the database (one statement, committed by itself), and must then
		// find its nonce taken (cmd/socius TestServeUsersTableLocked). A database that
		// answers records it at once, in another table (TestServeUserRowLocked); the
		// second wait is spent only on one that answers nothing. It ends by the call's
		// answerBy, though: after a site lookup and work that both took their store's
		// 10 s, a third 10 s would pass the write timeout (30 s), and the caller would
		// get no envelope at all (TestSignedWriteWithinWriteTimeout). With the
		// defaults that leaves the nonce about 9.5 s. docs/postgresql.md says so. When
		// answerBy has passed already (a body that came slowly), no answer makes it in
		// time whatever the nonce does: it keeps its store deadline, as a request that
		// may have been applied must not be replayable
		// (TestNonceRecordedWhenTheAnswerIsLate).
		if by := s.answerBy(c); !by.IsZero() && time.Now().Before(by) {
			var cancel context.CancelFunc
			ctx, cancel = context.WithDeadline(ctx, by)
			defer cancel()
		}
		_ = s.useNonce(c, ctx)
	}
	c.noncePending = false
	return err
}

// answerBy is when a call's store work must have ended for its answer to be written
// before the write timeout (zero without one): a margin before it, for giving up on a
// store call at its deadline and writing the answer (a tenth of the timeout when that
// is less than 500 ms). Only the recording of a nonce after the call's work failed
// needs it: each store call has its store's own deadline (PostgreSQL's 10 s, SQLite's
// busy timeout of 5 s), and only three in turn can pass the default write timeout.
func (s *Server) answerBy(c *call) time.Time {
	wt := s.cfg.WriteTimeout
	if wt <= 0 {
		return time.Time{}
	}
	return c.start.Add(wt - min(wt/10, 500*time.Millisecond))
}

func duplicateNonce() error { return socius.Errorf(socius.CodeDuplicateNonce, "Duplicate nonce") }

// explainSignature says what the server signed for a signature that did not match:
// the base string of the first candidate URL, that URL, and the other candidates. It
// never says what the signature should have been, nor anything of the secret; the
// values of credential parameters in the base string are masked (a session call
// signs its oauth_token). When the signature is the one Gigya's Swift (iOS) SDK makes
// for values holding a byte it leaves unescaped, or the one the gigya npm package makes
// for values 0 and false (signed as empty), it says so: Gigya refuses those requests
// too.
func explainSignature(c *call, key []byte, whose string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Invalid request signature: it does not match %s; the server signed %s for %s",
		whose, c.BaseStrings[0], c.SignedURLs[0])
	if len(c.SignedURLs) > 1 {
		fmt.Fprintf(&b, " (also tried: %s)", strings.Join(c.SignedURLs[1:], ", "))
	}
	var raw [20]byte
	// The SDKs' other base strings below hash every candidate again, twice for the
	// Swift SDK's: not for a request this large.
	small := gigya.EscapedLen(c.params.All()) <= verifyBudget/8
	if !gigya.DecodeSignature(c.params.Get("sig"), &raw) {
		b.WriteString("; the sig sent is not the base64 of a 20-byte HMAC-SHA1")
	} else if !small {
		b.WriteString("; (the request is too large for the server to try the SDKs' other base strings)")
	} else if kept := gigya.SwiftKept(c.params.All()); kept != "" && gigya.VerifySwift(key, c.params.Get("sig"), c.SignedURLs, c.params.All()) {
		fmt.Fprintf(&b, "; the sig is right for the base string of Gigya's Swift (iOS) SDK, which leaves %q unescaped in parameter values where Gigya escapes them: "+
			"Gigya refuses such requests too (SAP/gigya-swift-sdk issue 48); add those characters to GigyaDefinitions.charactersAllowedInSig in the app, or keep them out of the values", kept)
	} else if gigya.VerifyNodeFalsy(key, c.params.Get("sig"), c.SignedURLs, c.params.All()) {
		fmt.Fprintf(&b, "; the sig is right for the base string of the gigya npm package (Node), which signs the number 0, NaN and false as empty but sends them as \"0\", \"NaN\" and \"false\" (%s): "+
			"Gigya refuses such requests too; pass those values as strings ('0', 'false') or leave them out", strings.Join(gigya.NodeFalsy(c.params.All()), ", "))
	} else if c.signedWith([]byte(base64.StdEncoding.EncodeToString(key)), c.r.Method) {
		// The two mistakes of a hand-written signer: each is right for another key or
		// method only, and says nothing of the secret to one who did not use it.
		b.WriteString("; the sig is right with the secret's text as the HMAC key: the key is the secret base64-decoded, as the SDKs decode it")
	} else if other := otherMethod(c.r.Method); other != "" && c.signedWith(key, other) {
		fmt.Fprintf(&b, "; the sig is right for %s, and the request came as %s: the HTTP method is the base string's first part", other, c.r.Method)
	}
	return b.String()
}

// signedWith reports whether the call's sig signs it with key for the HTTP method
// method, for one of the URLs the server tried.
func (c *call) signedWith(key []byte, method string) bool {
	i, _ := gigya.VerifyRequestN(key, c.params.Get("sig"), method, c.scheme, c.r.Host, c.r.URL.EscapedPath(), c.params.All(), 0, len(c.SignedURLs))
	return i >= 0
}

// otherMethod is the method a client may have signed for when it sent method: GET for
// POST, POST for GET.
func otherMethod(method string) string {
	switch method {
	case http.MethodPost:
		return http.MethodGet
	case http.MethodGet:
		return http.MethodPost
	}
	return ""
}

// outsideSkew is the 403002 for a time a request carries (what, as sent: text) that is
// further than the clock skew from the server's time; nil within it.
func (s *Server) outsideSkew(c *call, what, text string, t time.Time) error {
	now := c.now
	if t.Nanosecond() == 0 {
		// A time in whole seconds is the client's clock cut to its second: compared
		// with the server's cut alike, the window is as long behind as ahead (with the
		// server's fraction, a client 119.6 s behind was refused and one 120.9 s ahead
		// taken). nonceExpiry keeps the nonce for that last second.
		now = now.Truncate(time.Second)
	}
	if d := now.Sub(t); d > s.cfg.Skew || d < -s.cfg.Skew {
		return socius.Errorf(socius.CodeRequestExpired, "Request has expired: %s %s is %s the server time %s by more than %s s%s",
			what, text, aheadBehind(d), gigya.FormatTime(c.now), seconds(s.cfg.Skew), s.movedClockHint(d))
	}
	return nil
}

// movedClock is a clock that can say how far it is moved from the system time: the
// emulator's (socius.OffsetClock).
type movedClock interface{ Offset() time.Duration }

// movedClockHint says, for a time d from the server's clock that is outside the skew,
// when the system time would have taken it: the server's clock was moved (by a test,
// through the emulator) and the client's was not, which the server time alone leaves
// to be guessed. Empty otherwise.
func (s *Server) movedClockHint(d time.Duration) string {
	clock, ok := s.cfg.Clock.(movedClock)
	if !ok {
		return ""
	}
	offset := clock.Offset()
	if offset == 0 {
		return ""
	}
	if fromSystem := d - offset; fromSystem > s.cfg.Skew || fromSystem < -s.cfg.Skew {
		return ""
	}
	direction := "ahead of"
	if offset < 0 {
		direction, offset = "behind", -offset
	}
	return fmt.Sprintf("; it is within %s s of the system time: the server's clock is moved %s %s it (the emulator's clock: socius emulator clock reset, or POST /_emulator/api/clock {\"reset\": true}, puts it back)",
		seconds(s.cfg.Skew), offset, direction)
}

// beforeStart refuses a request timed before Config.NotBefore: this node lost the
// nonces of the requests signed before it started, so one of them could be replayed.
// (A time in whole seconds counts from the start of its second, which may hold the
// last requests of the node before.) Only for a window from the start, as long as such
// a request could still be taken, and not while the clock reads before the start (the
// emulator's, moved back: a request timed by it then is no request of before).
func (s *Server) beforeStart(c *call, what, text string, t time.Time) error {
	nb := s.cfg.NotBefore
	if nb.IsZero() || c.now.Before(nb) || !c.now.Before(nb.Add(TakenFor(s.cfg.Skew))) ||
		!t.Before(nb) && (t.Nanosecond() != 0 || t.After(nb.Truncate(time.Second))) {
		return nil
	}
	return socius.Errorf(socius.CodeRequestExpired, "Request has expired: %s %s is before this server's start at %s, and the nonces of the requests signed before it were lost (an unclean shutdown, or a move from the embedded store): sign the request again with the current time",
		what, text, gigya.FormatTime(nb))
}

// seconds is d in seconds, its fraction kept (--clock-skew 1500ms: 1.5), as the
// 403002 refusals state the window.
func seconds(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) }

func aheadBehind(d time.Duration) string {
	if d.Seconds() > 0 {
		return "behind"
	}
	return "ahead of"
}

// signatureMatches reports whether the call's sig signs it with key, for a candidate
// URL of the path as received (SPEC 4: its percent-escapes as sent) or, when the
// client escaped characters that need none (`%55` for `U`), of the path decoded,
// which a client that escapes only on the wire signs. The SDKs send neither.
//
// Each candidate URL hashes the whole escaped parameter string, up to five times the
// request, and anyone who knows a site's public apiKey can send a bad signature: the
// candidates tried are bounded by verifyBudget bytes hashed (at least one is tried).
// A request of ordinary size tries them all.
func (c *call) signatureMatches(key []byte) bool {
	sig, params := c.params.Get("sig"), c.params.All()
	path := c.r.URL.EscapedPath()
	// The most likely URL first, whatever the size: a good signature (nearly every
	// one) costs no more than before.
	if i, _ := gigya.VerifyRequestN(key, sig, c.r.Method, c.scheme, c.r.Host, path, params, 0, 1); i >= 0 {
		return true
	}
	tries := verifyTries(params)
	i, tried := gigya.VerifyRequestN(key, sig, c.r.Method, c.scheme, c.r.Host, path, params, 1, tries)
	if i >= 0 {
		return true
	}
	if path == c.r.URL.Path || tried >= tries {
		return false
	}
	i, _ = gigya.VerifyRequestN(key, sig, c.r.Method, c.scheme, c.r.Host, c.r.URL.Path, params, 0, tries-tried)
	return i >= 0
}

// verifyTries is how many candidate URLs a request's signature check may try.
func verifyTries(params []gigya.Param) int {
	return max(1, verifyBudget/max(1, gigya.EscapedLen(params)))
}

// verifyBudget is the most a signed request's check may hash: 4 MiB, every candidate
// of a request whose escaped parameters are up to 512 KiB (a body of 100 KiB to 512
// KiB), one of the largest.
const verifyBudget = 4 << 20

// checkSecret checks a secret sent in plain: only over TLS (or a trusted proxy's TLS),
// compared in constant time.
func (s *Server) checkSecret(c *call) error {
	c.Credential = credPartnerSecret
	if c.key != nil {
		c.Credential = credKeySecret
	}
	if !c.secure {
		return secretOverHTTP()
	}
	if !socius.SecretsEqual(c.params.Get("secret"), c.secret()) {
		return socius.Errorf(socius.CodeInvalidSignature, "Invalid request signature: the secret does not match the secret of %s", c.credentialName())
	}
	return nil
}

// maxBaseString is the most of each base string a 403003 keeps to explain itself (the
// log, the emulator, ExplainSignatures): a whole request's is far shorter.
const maxBaseString = 8 << 10

// nonceExpiry is how long a nonce is remembered: a whole window from when it was seen
// (SPEC 4: a pair seen within the window is a duplicate, whatever the timestamp of the
// second request), and as long as its own timestamp keeps the request valid, when that
// is later (a timestamp ahead of the server's clock).
func (s *Server) nonceExpiry(c *call, ts time.Time) time.Time {
	if ts.Before(c.now) {
		ts = c.now
	}
	window := s.cfg.Skew
	if s.cfg.NonceWindow != nil {
		window = max(window, s.cfg.NonceWindow())
	}
	return ts.Add(TakenFor(window))
}

// TakenFor is how long past its timestamp a signed request is taken with a timestamp
// window of skew: the window, and a second more, since a timestamp in whole seconds is
// compared with the server's clock cut to its second (outsideSkew). A nonce is kept
// as long (nonceExpiry), and so is a lost one's refusal (Config.NotBefore).
func TakenFor(skew time.Duration) time.Duration { return skew + time.Second }

func secretOverHTTP() error {
	return socius.Errorf(socius.CodeSecretOverHTTP, "Secret Sent Over Http: a secret may only be sent over HTTPS; sign the request instead")
}

// authParam returns the credentials of the Authorization header when it uses the
// scheme (compared case-insensitively), spaces trimmed; "" when the header names the
// scheme alone (its trailing spaces are gone before Socius sees it).
func authParam(c *call, scheme string) (string, bool) {
	h := c.r.Header.Get("Authorization")
	if len(h) < len(scheme) || !strings.EqualFold(h[:len(scheme)], scheme) || len(h) > len(scheme) && h[len(scheme)] != ' ' {
		return "", false
	}
	return strings.TrimSpace(h[len(scheme):]), true
}

// hasAuthScheme reports whether the Authorization header uses the scheme.
func hasAuthScheme(c *call, scheme string) bool {
	_, ok := authParam(c, scheme)
	return ok
}

// tokenSent reports whether the call carries a token: an oauth_token parameter (what
// every SDK sends), an Authorization: OAuth header, or an Authorization: Bearer header
// holding a Socius token rather than a JWT (what generic OAuth 2.0 clients send).
func tokenSent(c *call) bool {
	if c.params.Has("oauth_token") || hasAuthScheme(c, "OAuth") {
		return true
	}
	b, ok := authParam(c, "Bearer")
	if !ok {
		return false
	}
	_, ok = socius.TokenKindOf(b)
	return ok
}

// tokenText returns the token a call carries; the parameter and a header must agree
// when both are sent.
func tokenText(c *call) (string, error) {
	param, hasParam := c.params.Lookup("oauth_token")
	header, hasHeader := authParam(c, "OAuth")
	if !hasHeader {
		if b, ok := authParam(c, "Bearer"); ok {
			if _, ours := socius.TokenKindOf(b); ours {
				header, hasHeader = b, true
			}
		}
	}
	switch {
	case hasParam && hasHeader && param != header:
		return "", socius.Errorf(socius.CodeInvalidAuthHeader, "Invalid authentication header: the Authorization header and the oauth_token parameter carry different tokens")
	case hasParam:
		return param, nil
	}
	return header, nil
}

func invalidToken(format string, args ...any) error {
	return socius.Errorf(socius.CodeInvalidToken, "Invalid token: "+format, args...)
}

// authenticateToken handles token calls: access tokens from socialize.getToken, which
// are bearer credentials, and mobile session tokens from notifyLogin, whose calls must
// also be signed with the session secret. Over plain HTTP a token is refused before
// anything else about it is looked at. The token text never appears in an answer, a
// log or Config.Observe: errors name it by what is wrong with it.
func (s *Server) authenticateToken(c *call) error {
	c.Credential = credAccessToken
	if !c.secure {
		return invalidToken("an oauth_token may only be sent over HTTPS")
	}
	text, err := tokenText(c)
	if err != nil {
		return err
	}
	if text == "" {
		return invalidToken("the token is empty")
	}
	if _, ok := socius.TokenKindOf(text); !ok {
		return invalidToken("unknown token")
	}
	t, err := s.cfg.Store.Token(c.ctx, socius.HashToken(text))
	if errors.Is(err, socius.ErrNotFound) {
		c.tokenUnknown = true
		return invalidToken("unknown token: never issued here, removed a week after it expired or was revoked, or deleted with its userKey or by an emulator's reset")
	}
	if err != nil {
		return err
	}
	if t.Kind == socius.SessionToken {
		c.Credential = credSessionToken
	}
	if err := tokenAlive(t, c.now); err != nil {
		return err
	}
	site, err := s.cfg.Store.Site(c.ctx, t.APIKey)
	if errors.Is(err, socius.ErrNotFound) {
		return invalidToken("the site the token was issued for no longer exists")
	}
	if err != nil {
		return err
	}
	if apiKey, ok := c.params.Lookup("apiKey"); ok && apiKey != "" && apiKey != site.APIKey {
		return invalidToken("the token was not issued for apiKey %s", unknownID(apiKey))
	}
	c.site, c.token = site, t
	if t.UserKey != "" {
		// The token has the permissions of the key that obtained it, while the key lives.
		key, err := s.cfg.Store.Key(c.ctx, t.UserKey)
		if errors.Is(err, socius.ErrNotFound) || err == nil && key.APIKey != site.APIKey {
			return invalidToken("the userKey that obtained the token no longer exists")
		}
		if err != nil {
			return err
		}
		c.key = key
	}
	if t.Kind != socius.SessionToken {
		return nil
	}
	if c.params.Get("sig") == "" {
		return socius.Errorf(socius.CodeMissingParameter, "Missing required parameter: sig (a call with a session token is signed with its sessionSecret)")
	}
	partnerKey, err := socius.DecodeSecret(site.Secret)
	if err != nil {
		return fmt.Errorf("stored secret of apiKey %s does not decode: %w", site.APIKey, err)
	}
	key, err := base64.StdEncoding.DecodeString(socius.SessionSecret(partnerKey, text))
	if err != nil {
		return err
	}
	return s.checkSigned(c, key, "session "+t.Hash, "the sessionSecret of the session token")
}

// tokenAlive refuses a revoked or expired token, saying which happened first.
func tokenAlive(t *socius.Token, now time.Time) error {
	expired := !t.ExpiresAt.IsZero() && !now.Before(t.ExpiresAt)
	revoked := !t.RevokedAt.IsZero()
	switch {
	case revoked && (!expired || t.RevokedAt.Before(t.ExpiresAt)):
		return invalidToken("the token was revoked at %s (logout or deleteAccount of its user, or socius token revoke)", gigya.FormatTime(t.RevokedAt))
	case expired:
		return invalidToken("the token expired at %s", gigya.FormatTime(t.ExpiresAt))
	}
	return nil
}

// authenticateBearer handles Authorization: Bearer <JWT>: a JWT signed with RS256 by
// the private key of a userKey (kid) whose public key is registered. Its checks mirror
// signature mode: iat within the window (403002), then the signature (403003), then jti
// as the nonce (403004).
func (s *Server) authenticateBearer(c *call) error {
	c.Credential = credKeyBearer
	if !c.secure {
		// Unlike a signature, a JWT signs nothing of the request: on plain HTTP whoever
		// is on the path could spend it (its jti is new until the first use) on another
		// method or UID. Every SDK sends it over HTTPS.
		return socius.Errorf(socius.CodeSecretOverHTTP, "Secret Sent Over Http: a bearer JWT may only be sent over HTTPS (it signs no part of the request)")
	}
	jwt, _ := authParam(c, "Bearer")
	// Four at most: a header of dots is not made one string a dot.
	parts := strings.SplitN(jwt, ".", 4)
	if len(parts) != 3 || len(jwt) > 16<<10 {
		return badHeader("the bearer token is not a JWT (header.payload.signature)")
	}
	var enc jwtBase64
	if !enc.add(parts[0]) || !enc.add(parts[1]) {
		return badHeader("the JWT header and payload mix base64url and standard base64, or padded and unpadded parts: one encoder writes every part (RFC 7515: base64url without padding)")
	}
	var hdr struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
	}
	if err := enc.decodeJSON(parts[0], &hdr); err != nil {
		return badHeader("the JWT header is not base64-encoded JSON")
	}
	if hdr.Alg != "RS256" {
		return badHeader("JWT alg %q is not accepted: only RS256", clip(hdr.Alg, 16))
	}
	if hdr.Kid == "" {
		return badHeader("the JWT header has no kid (the userKey)")
	}
	var claims struct {
		Iat *json.Number `json:"iat"`
		Exp *json.Number `json:"exp"`
		Nbf *json.Number `json:"nbf"`
		Jti any          `json:"jti"`
	}
	if err := enc.decodeJSON(parts[1], &claims); err != nil {
		return badHeader("the JWT payload is not base64-encoded JSON")
	}
	if c.key != nil && c.key.UserKey != hdr.Kid {
		return badHeader("the userKey parameter and the JWT kid differ")
	}
	key, err := s.siteKey(c, hdr.Kid)
	if err != nil {
		return err
	}
	c.key = key
	if key.PublicKey == "" {
		return badHeader("userKey %s has no public key registered (socius key create --public-key FILE)", key.UserKey)
	}
	pub, err := socius.ParseRSAPublicKey(key.PublicKey)
	if err != nil {
		return fmt.Errorf("stored public key of userKey %s: %w", key.UserKey, err)
	}
	if claims.Iat == nil {
		return badHeader("the JWT has no iat claim")
	}
	iat, ok := jwtTime(*claims.Iat)
	if !ok {
		return badHeader("the JWT iat claim is not a Unix time in seconds")
	}
	jti, ok := jwtID(claims.Jti)
	if !ok {
		return badHeader("the JWT has no jti claim (a nonce, at most %d bytes)", maxNonceBytes)
	}
	if len(jti) > maxNonceBytes {
		return badHeader("the JWT jti claim is longer than %d bytes", maxNonceBytes)
	}
	// Quoted clipped, as exp and nbf are: a JSON number has no length limit.
	iatText := clip(claims.Iat.String(), 24)
	if err := s.outsideSkew(c, "JWT iat", iatText, iat); err != nil {
		return err
	}
	if err := s.beforeStart(c, "JWT iat", iatText, iat); err != nil {
		return err
	}
	if claims.Exp != nil {
		exp, ok := jwtTime(*claims.Exp)
		if !ok {
			return badHeader("the JWT exp claim is not a Unix time in seconds")
		}
		if !c.now.Before(exp) {
			return socius.Errorf(socius.CodeRequestExpired, "Request has expired: the JWT exp claim %s has passed", clip(claims.Exp.String(), 24))
		}
	}
	if claims.Nbf != nil {
		// RFC 7519: not to be accepted before nbf. Ahead by the clock skew at most, as
		// an iat may be: a signer whose clock is ahead sets nbf to its iat.
		nbf, ok := jwtTime(*claims.Nbf)
		if !ok {
			return badHeader("the JWT nbf claim is not a Unix time in seconds")
		}
		now := c.now
		if nbf.Nanosecond() == 0 {
			now = now.Truncate(time.Second) // as outsideSkew compares a time in whole seconds
		}
		if d := now.Sub(nbf); d < -s.cfg.Skew {
			return socius.Errorf(socius.CodeRequestExpired, "Request has expired: the JWT is not valid yet: its nbf claim %s is ahead of the server time %s by more than %s s%s",
				clip(claims.Nbf.String(), 24), gigya.FormatTime(c.now), seconds(s.cfg.Skew), s.movedClockHint(d))
		}
	}
	if !enc.add(parts[2]) {
		return socius.Errorf(socius.CodeInvalidSignature, "Invalid request signature: the JWT signature is not in the base64 of its header and payload (one alphabet, and padding or none, for the three parts)")
	}
	sig, err := enc.encoding().DecodeString(parts[2])
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err != nil || rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig) != nil {
		return socius.Errorf(socius.CodeInvalidSignature, "Invalid request signature: the JWT signature does not verify with the public key of userKey %s", key.UserKey)
	}
	fresh, err := s.cfg.Nonces.UseNonce(c.ctx, "bearer userKey "+key.UserKey, jti, s.nonceExpiry(c, iat), c.now)
	if err != nil {
		return err
	}
	if !fresh {
		return socius.Errorf(socius.CodeDuplicateNonce, "Duplicate nonce")
	}
	return nil
}

func badHeader(format string, args ...any) error {
	return socius.Errorf(socius.CodeInvalidAuthHeader, "Invalid authentication header: "+format, args...)
}

// jwtBase64 is the base64 of a bearer JWT, learnt from its parts as they are read.
// RFC 7515 writes each part in base64url without padding; the .NET SDK before its
// .NET 9 port wrote standard base64 with padding (Convert.ToBase64String), and both
// alphabets are read padded or not. But one encoder writes a JWT: what one part shows
// (a digit of one alphabet, '-' '_' or '+' '/'; padding, or a length that padding
// would round up) every part must fit. Read in either alphabet digit by digit, one
// signature had many texts, each of them a JWT that verified.
type jwtBase64 struct {
	url, std    bool // a part had a digit of base64url ('-', '_'), of standard base64 ('+', '/')
	padded, raw bool // a part ended in '=', had a length padding would round up
}

// add records what part shows, and reports whether it fits the parts added before.
func (e *jwtBase64) add(part string) bool {
	e.url = e.url || strings.ContainsAny(part, "-_")
	e.std = e.std || strings.ContainsAny(part, "+/")
	padded := strings.HasSuffix(part, "=")
	e.padded = e.padded || padded
	e.raw = e.raw || !padded && len(part)%4 != 0
	return !(e.url && e.std) && !(e.padded && e.raw)
}

// encoding is the encoding of the parts added, strict: the spare bits of a part's last
// digit must be zero, as every encoder writes them (else, again, one signature had
// several texts).
func (e *jwtBase64) encoding() *base64.Encoding {
	switch {
	case e.std && e.padded:
		return stdBase64
	case e.std:
		return rawStdBase64
	case e.padded:
		return urlBase64
	}
	return rawURLBase64
}

var (
	stdBase64    = base64.StdEncoding.Strict()
	rawStdBase64 = base64.RawStdEncoding.Strict()
	urlBase64    = base64.URLEncoding.Strict()
	rawURLBase64 = base64.RawURLEncoding.Strict()
)

// decodeJSON decodes a JWT header or payload into v.
func (e *jwtBase64) decodeJSON(part string, v any) error {
	b, err := e.encoding().DecodeString(part)
	if err != nil {
		return err
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	return d.Decode(v)
}

// jwtTime reads a NumericDate (seconds, possibly fractional).
func jwtTime(n json.Number) (time.Time, bool) {
	f, err := n.Float64()
	if err != nil || f < 0 || f > 1e11 {
		return time.Time{}, false
	}
	// Whole seconds and the fraction apart: f*1e9 nanoseconds overflows an int64
	// after the year 2262.
	sec := math.Floor(f)
	return time.Unix(int64(sec), int64((f-sec)*1e9)), true
}

// jwtID reads jti: a string, or a number as some signers send it.
func jwtID(v any) (string, bool) {
	var s string
	switch v := v.(type) {
	case string:
		s = v
	case json.Number:
		s = v.String()
	}
	return s, s != ""
}

// maxNonceBytes bounds a nonce and a JWT's jti, in bytes (the SDKs send ASCII): each
// is remembered for a window.
const maxNonceBytes = 256

// authenticateClient authenticates a socialize.getToken call: over TLS and POST only,
// by one of the client credentials of SPEC section 5: HTTP Basic client_id:secret,
// client_id + client_secret, or the credentials of any server call (apiKey, or
// client_id standing for it, with userKey + secret, a partner secret, a signature or
// a bearer JWT). client_id names a site (its partner secret) or a userKey (its secret).
func (s *Server) authenticateClient(c *call) error {
	if !c.secure {
		return socius.Errorf(socius.CodeSecretOverHTTP, "Secret Sent Over Http: socialize.getToken is served over HTTPS only, since its answer is a credential")
	}
	if c.r.Method != http.MethodPost {
		return socius.Errorf(socius.CodeInvalidRequest, "Invalid request format: socialize.getToken must be a POST")
	}
	if tokenSent(c) {
		return socius.Errorf(socius.CodePermissionDenied, "Permission denied: socialize.getToken needs client credentials, not a token")
	}
	clientID, hasID := c.params.Lookup("client_id")
	if _, bearer := authParam(c, "Bearer"); bearer && c.params.Has("client_secret") {
		return badHeader("a bearer JWT beside client_id and client_secret; send one credential")
	}
	if id, secret, sent, ok := basicCredentials(c); sent {
		if !ok {
			return badHeader("HTTP Basic credentials must be base64(client_id:client_secret)")
		}
		if hasID && clientID != id {
			return badHeader("the client_id parameter and the HTTP Basic credentials differ")
		}
		if c.params.Has("client_secret") {
			return badHeader("send the client_secret either in the HTTP Basic header or as a parameter, not both")
		}
		return s.besideClientSecret(c, s.checkClientSecret(c, id, secret))
	}
	if secret, ok := c.params.Lookup("client_secret"); ok {
		if !hasID || clientID == "" {
			return socius.Errorf(socius.CodeMissingParameter, "Missing required parameter: client_id")
		}
		return s.besideClientSecret(c, s.checkClientSecret(c, clientID, secret))
	}
	apiKey, hasAPIKey := c.params.Lookup("apiKey")
	switch {
	case !hasAPIKey && hasID:
		err := s.authenticateServer(c, clientID, true)
		if socius.ErrorCode(err) == socius.CodeInvalidAPIKey && c.site == nil && socius.ValidAPIKey(clientID) {
			// The client_id stood for the apiKey: say so if it is a userKey instead, to
			// a caller who sent that key's secret. Without it, the answer is an unknown
			// apiKey's, which does not tell which userKeys exist.
			isKey, kerr := s.keyWithSecretSent(c, clientID)
			if kerr != nil {
				return kerr
			}
			if isKey {
				c.noGuess = true
				return socius.Errorf(socius.CodeInvalidAPIKey, "Invalid ApiKey parameter: client_id %s is a userKey; with it send its secret as client_secret, or send the site's apiKey and userKey beside the secret", clientID)
			}
		}
		return err
	case hasAPIKey && hasID && clientID != apiKey && clientID != c.params.Get("userKey"):
		return socius.Errorf(socius.CodeInvalidValue, "Invalid parameter value: client_id must be the apiKey or the userKey of the call")
	}
	return s.authenticateServer(c, apiKey, hasAPIKey)
}

// keyWithSecretSent reports whether id, which names no site, is a userKey whose
// secret is the call's secret parameter: a client that sent its userKey where the
// apiKey goes. Without that secret the answer does not tell which userKeys exist.
// The store failing is its error (500028), as for every other lookup of a call's
// credentials: it was taken for no such key, and the call answered 400093.
func (s *Server) keyWithSecretSent(c *call, id string) (bool, error) {
	secret := c.params.Get("secret")
	if secret == "" {
		return false, nil
	}
	key, err := s.cfg.Store.Key(c.ctx, id)
	if errors.Is(err, socius.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return socius.SecretsEqual(secret, socius.CompactSecret(key.Secret)), nil
}

// besideClientSecret checks a server call's credential (a signature or a secret) sent
// beside client credentials that passed (err is nil): an SDK configured with a secret
// adds its own to a getToken whose parameters carry the client's. It must pass too:
// a credential that is never checked must not look accepted.
func (s *Server) besideClientSecret(c *call, err error) error {
	if err != nil {
		return err
	}
	// Checked as its own: the key it names (checkClientSecret allowed only the
	// client_id's), or, without a userKey, the site's partner secret, whatever key the
	// client_id named.
	client, key := c.Credential, c.key
	if !c.params.Has("userKey") {
		c.key = nil
	}
	switch {
	case c.params.Get("sig") != "":
		err = s.verifySignature(c)
	case c.params.Get("secret") != "":
		err = s.checkSecret(c)
	}
	c.Credential, c.key = client, key
	return err
}

// checkClientSecret checks client_id and client_secret: the apiKey and partner secret
// of a site, or a userKey and its secret.
func (s *Server) checkClientSecret(c *call, id, secret string) error {
	if id == "" {
		return socius.Errorf(socius.CodeMissingParameter, "Missing required parameter: client_id")
	}
	if secret == "" {
		// Sent empty, as not sent (every credential sent empty is a missing one): no
		// secret is empty, so nothing was guessed, and the client hears what it left
		// out rather than that it does not match.
		if hasAuthScheme(c, "Basic") {
			return socius.Errorf(socius.CodeMissingParameter, "Missing required parameter: client_secret (the HTTP Basic credentials hold none after the colon)")
		}
		return socius.Errorf(socius.CodeMissingParameter, "Missing required parameter: client_secret")
	}
	if !socius.ValidAPIKey(id) {
		c.noGuess = true
		return socius.Errorf(socius.CodeInvalidAPIKey, "Invalid ApiKey parameter: client_id is not a valid apiKey or userKey")
	}
	apiKey, hasAPIKey := c.params.Lookup("apiKey")
	site, err := s.cfg.Store.Site(c.ctx, id)
	switch {
	case err == nil:
		if hasAPIKey && apiKey != id {
			return socius.Errorf(socius.CodeInvalidValue, "Invalid parameter value: client_id and apiKey name different sites")
		}
		c.site = site
		c.Credential = credPartnerClientSecret
	case errors.Is(err, socius.ErrNotFound):
		// A client_id that is no site's apiKey is answered, when it is no userKey
		// either, as a userKey whose secret is not the client_secret is: the answer
		// must not tell which userKeys exist (an apiKey is public, and every method
		// answers an unknown one 400093, as Gigya does; a userKey is not).
		key, err := s.cfg.Store.Key(c.ctx, id)
		if err != nil && !errors.Is(err, socius.ErrNotFound) {
			return err
		}
		if hasAPIKey && (key == nil || apiKey != key.APIKey) {
			return socius.Errorf(socius.CodeUnauthorizedUser, "Unauthorized user: userKey %s is not a key of this site", unknownID(id))
		}
		if key == nil || !clientSecretMatches(secret, socius.CompactSecret(key.Secret)) {
			return noSuchClient(id)
		}
		if c.site, err = s.cfg.Store.Site(c.ctx, key.APIKey); err != nil {
			return err
		}
		c.key = key
		c.Credential = credKeyClientSecret
	default:
		return err
	}
	// A userKey beside them is not a second credential, silently dropped: it must be
	// the client_id's own.
	if userKey, ok := c.params.Lookup("userKey"); ok && (c.key == nil || userKey != c.key.UserKey) {
		if c.key == nil {
			return socius.Errorf(socius.CodeInvalidValue, "Invalid parameter value: userKey beside the site's client_id and client_secret; send the userKey as client_id and its secret as client_secret, or leave userKey out")
		}
		return socius.Errorf(socius.CodeInvalidValue, "Invalid parameter value: userKey and client_id name different keys")
	}
	if c.key == nil && !clientSecretMatches(secret, c.secret()) {
		return socius.Errorf(socius.CodeInvalidSignature, "Invalid request signature: the client secret does not match the secret of %s", c.credentialName())
	}
	return nil
}

// basicCredentials reads the call's HTTP Basic credentials: sent reports an
// Authorization: Basic header, ok that it holds base64(id:secret).
func basicCredentials(c *call) (id, secret string, sent, ok bool) {
	basic, sent := authParam(c, "Basic")
	if !sent {
		return "", "", false, false
	}
	raw, err := base64.StdEncoding.DecodeString(basic)
	id, secret, found := strings.Cut(string(raw), ":")
	if err != nil || !found {
		return "", "", true, false
	}
	return id, secret, true, true
}

// clientSecretMatches reports whether the client_secret sent is the secret want. RFC
// 6749 form-encodes the pair before base64; a secret sent either way is accepted.
func clientSecretMatches(sent, want string) bool {
	if socius.SecretsEqual(sent, want) {
		return true
	}
	if strings.Contains(sent, "%") {
		if u, err := url.QueryUnescape(sent); err == nil {
			return socius.SecretsEqual(u, want)
		}
	}
	return false
}

// noSuchClient is the answer to client credentials whose client_id names no site, and
// no userKey whose secret is the client_secret: the same whether the userKey exists or
// not. An id with the shape of Gigya's apiKeys (3_...) is answered as an unknown
// apiKey is, 400093, as such a client_id is most likely one; any other, as a wrong
// secret is, 403003.
func noSuchClient(id string) error {
	const says = "client_id %s is neither a site's apiKey nor a userKey whose secret is the client_secret"
	if apiKeyShaped(id) > 0 {
		return socius.Errorf(socius.CodeInvalidAPIKey, "Invalid ApiKey parameter: "+says, unknownID(id))
	}
	return socius.Errorf(socius.CodeInvalidSignature, "Invalid request signature: "+says, unknownID(id))
}
