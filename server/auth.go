package server

import (
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/socius/socius"
	"github.com/socius/socius/gigya"
)

// Credential kinds, as reported in Call.Credential.
const (
	credPartnerSignature = "partner-signature"
	credPartnerSecret    = "partner-secret"
	credKeySignature     = "key-signature"
	credKeySecret        = "key-secret"
)

// authenticate establishes who is calling: the site, and the key when a userKey is
// used. The order of the checks is SPEC section 3's.
func (s *Server) authenticate(c *call) error {
	if c.params.Has("oauth_token") || hasAuthScheme(c, "OAuth") {
		return s.authenticateToken(c)
	}
	apiKey, ok := c.params.Lookup("apiKey")
	if !ok || apiKey == "" {
		return socius.Errorf(socius.CodeInvalidAPIKey, "Missing required parameter: apiKey")
	}
	if !socius.ValidAPIKey(apiKey) {
		return socius.Errorf(socius.CodeInvalidAPIKey, "Invalid ApiKey parameter: not a valid apiKey")
	}
	site, err := s.cfg.Store.Site(c.ctx, apiKey)
	if errors.Is(err, socius.ErrNotFound) {
		return socius.Errorf(socius.CodeInvalidAPIKey, "Invalid ApiKey parameter: no site has apiKey %s", apiKey)
	}
	if err != nil {
		return err
	}
	c.site = site
	if userKey, ok := c.params.Lookup("userKey"); ok {
		key, err := s.cfg.Store.Key(c.ctx, userKey)
		if errors.Is(err, socius.ErrNotFound) || err == nil && key.APIKey != site.APIKey {
			return socius.Errorf(socius.CodeUnauthorizedUser, "Unauthorized user: userKey %q is not a key of this site", clip(userKey, 64))
		}
		if err != nil {
			return err
		}
		c.key = key
	}
	switch {
	case c.params.Has("sig"):
		return s.verifySignature(c)
	case c.params.Has("secret"):
		return s.checkSecret(c)
	case hasAuthScheme(c, "Bearer"):
		return s.authenticateBearer(c)
	}
	return socius.Errorf(socius.CodeMissingParameter, "Missing required parameter: sig, secret or oauth_token")
}

// secret returns the secret that authenticates the call: the key's, else the site's.
func (c *call) secret() string {
	if c.key != nil {
		return c.key.Secret
	}
	return c.site.Secret
}

func (c *call) credentialName() string {
	if c.key != nil {
		return "userKey " + c.key.UserKey
	}
	return "apiKey " + c.site.APIKey
}

// verifySignature checks a signed request: timestamp, then signature, then nonce. The
// timestamp comes first because the Java SDK answers a 403002 by re-sending the very
// same request, which must get 403002 again rather than 403004.
func (s *Server) verifySignature(c *call) error {
	c.Credential = credPartnerSignature
	if c.key != nil {
		c.Credential = credKeySignature
	}
	tsText, ok := c.params.Lookup("timestamp")
	if !ok {
		return socius.Errorf(socius.CodeMissingParameter, "Missing required parameter: timestamp")
	}
	nonce, ok := c.params.Lookup("nonce")
	if !ok || nonce == "" {
		return socius.Errorf(socius.CodeMissingParameter, "Missing required parameter: nonce")
	}
	if len(nonce) > 256 {
		return socius.Errorf(socius.CodeInvalidValue, "Invalid parameter value: nonce is longer than 256 characters")
	}
	ts, ok := gigya.ParseTimestamp(tsText)
	if !ok {
		return socius.Errorf(socius.CodeInvalidValue, "Invalid parameter value: timestamp must be Unix time in seconds (or milliseconds)")
	}
	if d := c.now.Sub(ts); d > s.cfg.Skew || d < -s.cfg.Skew {
		return socius.Errorf(socius.CodeRequestExpired, "Request has expired: timestamp %s is %s the server time %s by more than %d s",
			tsText, aheadBehind(d), gigya.FormatTime(c.now), int(s.cfg.Skew.Seconds()))
	}
	key, err := socius.DecodeSecret(c.secret())
	if err != nil {
		return fmt.Errorf("stored secret of %s does not decode: %w", c.credentialName(), err)
	}
	urls := gigya.CandidateURLs(c.scheme, c.r.Host, c.r.URL.Path)
	if gigya.Verify(key, c.params.Get("sig"), c.r.Method, urls, c.params.All()) < 0 {
		c.SignedURLs = urls
		c.BaseStrings = gigya.BaseStrings(c.r.Method, urls, c.params.All())
		if s.cfg.ExplainSignatures {
			return socius.Errorf(socius.CodeInvalidSignature, "%s", explainSignature(c))
		}
		return socius.Errorf(socius.CodeInvalidSignature, "Invalid request signature: it does not match the secret of %s for %s %s",
			c.credentialName(), c.r.Method, urls[0])
	}
	fresh, err := s.cfg.Nonces.UseNonce(c.ctx, c.credentialName(), nonce, ts.Add(s.cfg.Skew), c.now)
	if err != nil {
		return err
	}
	if !fresh {
		return socius.Errorf(socius.CodeDuplicateNonce, "Duplicate nonce")
	}
	return nil
}

// explainSignature says what the server signed for a signature that did not match:
// the base string of the first candidate URL, that URL, and the other candidates. It
// never says what the signature should have been, nor anything of the secret.
func explainSignature(c *call) string {
	base := c.BaseStrings[0]
	if secret := c.params.Get("secret"); secret != "" {
		// A secret sent beside a sig is in the base string; it is not repeated.
		base = strings.ReplaceAll(base, gigya.Escape(gigya.Escape(secret)), "***")
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Invalid request signature: it does not match the secret of %s; the server signed %s for %s",
		c.credentialName(), base, c.SignedURLs[0])
	if len(c.SignedURLs) > 1 {
		fmt.Fprintf(&b, " (also tried: %s)", strings.Join(c.SignedURLs[1:], ", "))
	}
	var raw [20]byte
	if !gigya.DecodeSignature(c.params.Get("sig"), &raw) {
		b.WriteString("; the sig sent is not the base64 of a 20-byte HMAC-SHA1")
	}
	return b.String()
}

func aheadBehind(d time.Duration) string {
	if d.Seconds() > 0 {
		return "behind"
	}
	return "ahead of"
}

// checkSecret checks a secret sent in plain: only over TLS (or a trusted proxy's TLS),
// compared in constant time.
func (s *Server) checkSecret(c *call) error {
	c.Credential = credPartnerSecret
	if c.key != nil {
		c.Credential = credKeySecret
	}
	if !c.secure {
		return socius.Errorf(socius.CodeSecretOverHTTP, "Secret Sent Over Http: a secret may only be sent over HTTPS; sign the request instead")
	}
	if !secretsEqual(c.params.Get("secret"), c.secret()) {
		return socius.Errorf(socius.CodeInvalidSignature, "Invalid request signature: the secret does not match the secret of %s", c.credentialName())
	}
	return nil
}

// secretsEqual compares two secrets in constant time, whatever their lengths.
func secretsEqual(a, b string) bool {
	ha := sha256.Sum256([]byte(a))
	hb := sha256.Sum256([]byte(b))
	return hmac.Equal(ha[:], hb[:])
}

// hasAuthScheme reports whether the Authorization header uses the scheme.
func hasAuthScheme(c *call, scheme string) bool {
	h := c.r.Header.Get("Authorization")
	return len(h) > len(scheme) && strings.EqualFold(h[:len(scheme)], scheme) && h[len(scheme)] == ' '
}

// authenticateToken handles oauth_token calls. Socius issues no tokens yet, so every
// token is unknown; over plain HTTP a token is refused before it is looked at.
func (s *Server) authenticateToken(c *call) error {
	c.Credential = "token"
	if !c.secure {
		return socius.Errorf(socius.CodeInvalidToken, "Invalid token: an oauth_token may only be sent over HTTPS")
	}
	return socius.Errorf(socius.CodeInvalidToken, "Invalid token: unknown token")
}

// authenticateBearer handles Authorization: Bearer <JWT> (userKey + RSA key).
func (s *Server) authenticateBearer(c *call) error {
	c.Credential = "bearer"
	return socius.Errorf(socius.CodeInvalidAuthHeader, "Invalid authentication header: bearer tokens need a public key registered for the userKey (socius key create --public-key)")
}
