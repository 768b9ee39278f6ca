package server

import (
	"errors"
	"time"

	"github.com/socius/socius"
	"github.com/socius/socius/gigya"
)

// Session lifetimes, as notifyLogin's sessionExpiration and getToken's
// x_sessionExpiration give them (Gigya's values, and what Socius makes of them):
//
//	absent, "" no expiry
//	-2         no expiry ("forever")
//	0          no expiry: a "browser session" ends when the client forgets it, which a
//	           server cannot see; logout ends it
//	-1         60 s (Gigya: a 60 s window renewed by a site cookie; Socius does not renew)
//	N > 0      N seconds, at most maxSessionSeconds
//
// Every token can be ended early by logout or deleteAccount of its user, and any one
// token by `socius token revoke`.
const (
	sessionForever    = -2
	sessionBrowser    = 0
	sessionShort      = -1
	shortSessionTime  = 60 * time.Second
	maxSessionSeconds = 1<<31 - 1 // about 68 years
)

// sessionLifetime reads a sessionExpiration-style parameter; 0 means no expiry.
func (c *call) sessionLifetime(name string) (time.Duration, error) {
	v, ok := c.params.Lookup(name)
	if !ok || v == "" {
		return 0, nil
	}
	n, ok := gigya.ParseInteger(v, true)
	switch {
	case !ok || n < sessionForever || n > maxSessionSeconds:
		return 0, socius.Errorf(socius.CodeInvalidValue, "Invalid parameter value: %s must be a whole number of seconds from 1 to %d, or 0 (browser session), -1 (60 s) or -2 (forever), in decimal digits with no + or space", name, maxSessionSeconds)
	case n == sessionShort:
		return shortSessionTime, nil
	case n == sessionForever || n == sessionBrowser:
		return 0, nil
	}
	return time.Duration(n) * time.Second, nil
}

// newToken makes a token of the kind for the call's site (and key), bound to uid unless
// it is "", living for lifetime (0: no expiry), and returns its text and the token to
// store, which holds only the hash.
func newToken(c *call, kind socius.TokenKind, uid string, lifetime time.Duration) (string, *socius.Token) {
	text := socius.NewTokenText(kind)
	t := &socius.Token{Hash: socius.HashToken(text), Kind: kind, APIKey: c.site.APIKey, UID: uid, CreatedAt: c.now}
	if c.key != nil {
		t.UserKey = c.key.UserKey
	}
	if lifetime > 0 {
		t.ExpiresAt = c.now.Add(lifetime)
	}
	if c.token != nil {
		// A session minted with a token (notifyLogin) ends when that token does at the
		// latest: a leaked token of a minute must not yield sessions for ever; and
		// revoking the token at the top of its chain revokes it too (revoking a token
		// in the middle of a chain ends that token, and no more is made from it: the
		// store checks both at the write).
		t.Root = c.token.Root
		if t.Root == "" {
			t.Root = c.token.Hash
		} else {
			t.MintedWith = c.token.Hash
		}
		if !c.token.ExpiresAt.IsZero() && (t.ExpiresAt.IsZero() || t.ExpiresAt.After(c.token.ExpiresAt)) {
			t.ExpiresAt = c.token.ExpiresAt
		}
	}
	return text, t
}

// issueToken stores a token of the kind for the call's site, bound to no user, and
// returns its text.
func (s *Server) issueToken(c *call, kind socius.TokenKind, lifetime time.Duration) (string, error) {
	text, t := newToken(c, kind, "", lifetime)
	if err := s.cfg.Store.CreateToken(c.ctx, t); err != nil {
		return "", tokenRefused(c, t, err)
	}
	return text, nil
}

// loginWithToken logs uid in (created when new, the patch applied) and stores a token
// of the kind for it, in one store operation: a call that fails stored neither, and a
// logout, deleteAccount or setUID of the user, or a deletion of the call's userKey,
// comes before both or after both (after, it ends the token as it ends every other).
func (s *Server) loginWithToken(c *call, kind socius.TokenKind, uid string, patch *socius.Patch, lifetime time.Duration) (string, error) {
	text, t := newToken(c, kind, uid, lifetime)
	if _, err := s.cfg.Store.LoginWithToken(c.ctx, c.site.APIKey, uid, patch, c.now, t); err != nil {
		return "", tokenRefused(c, t, err)
	}
	return text, nil
}

// tokenRefused turns the store's refusals of a token (which stored nothing) into the
// call's answer: ErrKeyGone, a userKey deleted between the call's authentication and
// its token's write, into 403005; ErrRootGone, the call's own token (or the one at
// the top of its chain) revoked meanwhile, into 403025, what the call would have got
// a moment later. So is ErrKeyGone for a call made with a token: the key was the
// token's, and its deletion deleted the token. ErrTokenMoved, the user of the call's
// token renamed meanwhile (the token with it), is the permission error the call would
// have got a moment later.
func tokenRefused(c *call, t *socius.Token, err error) error {
	switch {
	case errors.Is(err, socius.ErrKeyGone) && c.token != nil:
		return socius.Errorf(socius.CodeInvalidToken, "Invalid token: the userKey that obtained the token of this call was deleted while the call ran, and the token with it")
	case errors.Is(err, socius.ErrKeyGone):
		return socius.Errorf(socius.CodeUnauthorizedUser, "Unauthorized user: userKey %s was deleted while its token was issued", t.UserKey)
	case errors.Is(err, socius.ErrRootGone):
		return socius.Errorf(socius.CodeInvalidToken, "Invalid token: the token of this call, or the one it was made from, was revoked while the call ran")
	case errors.Is(err, socius.ErrTokenMoved):
		// What userParam answers a moment later, the token bound to the new UID.
		return socius.Errorf(socius.CodePermissionDenied, "Permission denied: the token is bound to another user: its user was given another UID (setUID) while the call ran; it may only act on its own UID")
	}
	return err
}

// getToken issues an OAuth 2.0 access token (SPEC 5). The client authenticated in
// authenticateClient. grant_type none and client_credentials are the same here: with
// x_siteUID the token is bound to that user, who is logged in as by notifyLogin
// (created when new, x_userInfo applied); without, it acts for the site, as its
// credentials would (a UID parameter is then needed on every call).
func (s *Server) getToken(c *call) (gigya.Object, error) {
	grant, ok := c.params.Lookup("grant_type")
	if !ok || grant == "" {
		return nil, socius.Errorf(socius.CodeMissingParameter, "Missing required parameter: grant_type")
	}
	if grant != "none" && grant != "client_credentials" {
		return nil, socius.Errorf(socius.CodeUnsupportedGrant, "Unsupported grant type: %q; Socius issues tokens for grant_type none and client_credentials", clip(gigya.MaskCredentials(grant), 40))
	}
	siteUID, bound := c.params.Lookup("x_siteUID")
	if bound && siteUID == "" {
		// Fail closed: a client whose user id came out empty would otherwise get a
		// token of the whole site, which acts on any user.
		return nil, socius.Errorf(socius.CodeInvalidValue, "Invalid parameter value: x_siteUID is empty; leave it out for a token of the site, which acts on any of its users")
	}
	if siteUID != "" {
		if err := socius.ValidateUID(siteUID); err != nil {
			return nil, socius.Errorf(socius.CodeInvalidValue, "Invalid parameter value: x_siteUID: %v", err)
		}
	}
	patch, given, err := c.optionalUserInfo("x_userInfo")
	if given && siteUID == "" {
		return nil, socius.Errorf(socius.CodeMissingParameter, "Missing required parameter: x_siteUID (x_userInfo applies to the user it names)")
	}
	if err != nil {
		return nil, err
	}
	lifetime, err := c.sessionLifetime("x_sessionExpiration")
	if err != nil {
		return nil, err
	}
	if siteUID != "" {
		// A token for a user is a login of that user, as notifyLogin's: a key needs
		// the right to both.
		if c.key != nil && !c.key.Allows("socialize.notifyLogin") {
			return nil, socius.Errorf(socius.CodePermissionDenied, "Permission denied: userKey %s may not call socialize.notifyLogin, which getToken with x_siteUID does", c.key.UserKey)
		}
	}
	var token string
	if siteUID != "" {
		token, err = s.loginWithToken(c, socius.AccessToken, siteUID, patch, lifetime)
	} else {
		token, err = s.issueToken(c, socius.AccessToken, lifetime)
	}
	if err != nil {
		return nil, err
	}
	o := gigya.Object{{Key: "access_token", Value: token}}
	if lifetime > 0 {
		o = append(o, gigya.KV{Key: "expires_in", Value: int64(lifetime / time.Second)})
	}
	return o, nil
}
