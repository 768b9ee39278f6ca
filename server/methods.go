package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/socius/socius"
	"github.com/socius/socius/gigya"
	"github.com/socius/socius/internal/errtext"
)

// method is one API method: its canonical name, the parameters it knows beyond the
// common ones, and its handler.
type method struct {
	name   string
	params []string
	handle func(*Server, *call) (gigya.Object, error)
	// clientAuth: the call authenticates as an OAuth 2.0 client (socialize.getToken).
	clientAuth bool
	// serverOnly: a token may not call it (SPEC 6: deleteAccount).
	serverOnly bool
	// nonced: its store work can record the call's nonce (Config.Nonced).
	nonced bool
}

// MethodNames returns the canonical names of the methods Socius serves (what a key's
// method list may name).
func MethodNames() []string {
	var names []string
	for _, m := range (*Server)(nil).routes() {
		names = append(names, m.name)
	}
	return names
}

// CanonicalMethod returns the canonical spelling of a method Socius serves, named in
// any letter case, with or without its namespace ("getUserInfo" is
// socialize.getUserInfo), and whether there is one.
func CanonicalMethod(name string) (string, bool) {
	name = strings.TrimSpace(name)
	if !strings.Contains(name, ".") {
		name = "socialize." + name
	}
	for _, m := range MethodNames() {
		if strings.EqualFold(m, name) {
			return m, true
		}
	}
	return "", false
}

// maxQuotedMethod is the most of a refused method name that CanonicalMethods quotes.
const maxQuotedMethod = 64

// CanonicalMethods spells a key's method list as Socius serves the methods
// (CanonicalMethod), refusing a name it does not serve, an empty one included: a key
// limited to a misspelt method could call nothing, and one limited to "" nothing either
// (an empty list, not a list of one empty name, is a key without limits).
func CanonicalMethods(names []string) ([]string, error) {
	out := make([]string, 0, len(names))
	for _, n := range names {
		name, ok := CanonicalMethod(n)
		if !ok {
			// Quoted clipped: a name of a megabyte (an import's, a seed's line) was
			// quoted whole, on standard error or in the emulator's answer.
			return nil, fmt.Errorf("%s is not a method Socius serves (%s)", errtext.Quote(n, maxQuotedMethod), strings.Join(MethodNames(), ", "))
		}
		out = append(out, name)
	}
	return out, nil
}

// routes is the whole route table.
func (s *Server) routes() []*method {
	return []*method{
		{name: "socialize.notifyLogin", params: []string{"siteUID", "newUser", "userInfo", "sessionExpiration", "providerSessions", "skipValidation", "phoneNumber", "actionAttributes"}, handle: (*Server).notifyLogin},
		{name: "socialize.setUserInfo", params: []string{"UID", "userInfo"}, handle: (*Server).setUserInfo, nonced: true},
		{name: "socialize.getUserInfo", params: []string{"UID", "includeAllIdentities", "extraFields", "enabledProviders", "disabledProviders", "signIDs"}, handle: (*Server).getUserInfo, nonced: true},
		{name: "socialize.deleteAccount", params: []string{"UID"}, handle: (*Server).deleteAccount, serverOnly: true},
		{name: "socialize.logout", params: []string{"UID", "samlContext"}, handle: (*Server).logout},
		{name: "socialize.setUID", params: []string{"UID", "siteUID", "UIDSig", "UIDTimestamp"}, handle: (*Server).setUID},
		{name: "socialize.notifyRegistration", params: []string{"UID", "siteUID", "phoneNumber", "UIDSig", "UIDTimestamp"}, handle: (*Server).notifyRegistration},
		{name: "socialize.getToken", params: []string{"grant_type", "client_id", "client_secret", "x_siteUID", "x_userInfo", "x_sessionExpiration", "redirect_uri", "code", "regSource"},
			handle: (*Server).getToken, clientAuth: true},
	}
}

// commonParams are the parameters every method accepts (control and credential
// parameters that SDKs add to every call).
var commonParams = []string{
	"apiKey", "userKey", "secret", "sig", "timestamp", "nonce", "oauth_token",
	"format", "callback", "context", "httpStatusCodes", "checkParams", "sdk", "sdkBuild",
	"targetEnv", "cid", "dontHandleScreenSet", "gmid", "ucid", "regSource", "lang",
}

// checkUnknownParams lists the parameters the method does not know in ignoredParams,
// or fails the call with 403007 when checkParams=true.
func (s *Server) checkUnknownParams(c *call) error {
	var unknown []string
	for _, p := range c.params.All() {
		if !known(p.Name, commonParams) && !known(p.Name, c.m.params) {
			unknown = append(unknown, p.Name)
		}
	}
	// A boolean every method takes (and Socius has no screen-sets to skip): still a
	// boolean, as every other.
	if _, err := c.params.Bool("dontHandleScreenSet", false); err != nil {
		return err
	}
	return c.ignore(unknown, "This parameter is not used by "+c.m.name+" and was ignored")
}

// ignore records names as ignored parameters, or refuses them under checkParams=true.
func (c *call) ignore(names []string, message string) error {
	if len(names) == 0 {
		return nil
	}
	if c.checkParam {
		return socius.Errorf(socius.CodePermissionDenied, "Permission denied: unrecognized parameters with checkParams=true: %s", nameList(names))
	}
	for _, n := range names {
		// Parameter names are at most gigya.MaxParamNameLen bytes; a userInfo key has no
		// bound of its own, and is echoed clipped as checkParams names it.
		c.ignored = append(c.ignored, gigya.IgnoredParam{Name: clip(n, maxIgnoredName), WarningCode: socius.CodePermissionDenied, Message: message})
	}
	return nil
}

// maxListedNames and maxListedName bound what nameList says of a request's names
// (userInfo keys have no length limit of their own).
const (
	maxListedNames = 20
	maxListedName  = 100
)

// maxIgnoredName is the longest name an ignoredParams entry echoes whole: a parameter
// name, or "x_userInfo." and a key of that length.
const maxIgnoredName = len("x_userInfo.") + gigya.MaxParamNameLen

// nameList joins names with ", ", at most maxListedNames of them, each clipped, and
// says how many more there were.
func nameList(names []string) string {
	var b strings.Builder
	for i, n := range names {
		if i == maxListedNames {
			fmt.Fprintf(&b, " and %d more", len(names)-i)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(clip(gigya.MaskCredentials(n), maxListedName))
	}
	return b.String()
}

func known(name string, list []string) bool {
	for _, k := range list {
		if socius.EqualFoldASCII(k, name) { // as parameter names match: ASCII letters only
			return true
		}
	}
	return false
}

// uid returns the UID the call acts on: the UID parameter, implied by a token bound to
// a user.
func (c *call) uid() (string, error) {
	uid, _, err := c.userParam("UID")
	if err != nil {
		return "", err
	}
	if uid == "" {
		return "", socius.Errorf(socius.CodeMissingParameter, "Missing required parameter: UID")
	}
	if err := socius.ValidateUID(uid); err != nil {
		return "", socius.Errorf(socius.CodeInvalidValue, "Invalid parameter value: %v", err)
	}
	return uid, nil
}

// userParam reads a parameter that names the user a call acts on (UID; notifyLogin's
// siteUID). A token bound to a user supplies it when it is absent, and may act on its
// own user only: another UID is 403007. implied reports that the token supplied it.
func (c *call) userParam(name string) (uid string, implied bool, err error) {
	uid, _ = c.params.Lookup(name)
	if c.token == nil || c.token.UID == "" {
		return uid, false, nil
	}
	switch uid {
	case "":
		c.uidImplied = true
		return c.token.UID, true, nil
	case c.token.UID:
		return uid, false, nil
	}
	return "", false, socius.Errorf(socius.CodePermissionDenied, "Permission denied: the token is bound to another user; it may only act on its own UID")
}

// userNotFound is the answer for a UID the site does not have.
func userNotFound(err error) error {
	if errors.Is(err, socius.ErrNotFound) {
		return socius.Errorf(socius.CodeUnauthorizedUser, "UID not found")
	}
	return err
}

func (s *Server) setUserInfo(c *call) (gigya.Object, error) {
	uid, err := c.uid()
	if err != nil {
		return nil, err
	}
	raw := c.params.Get("userInfo")
	if raw == "" { // sent empty is not sent, as for every required parameter
		return nil, socius.Errorf(socius.CodeMissingParameter, "Missing required parameter: userInfo")
	}
	patch, err := c.userInfo("userInfo", raw)
	if err != nil {
		return nil, err
	}
	switch {
	case c.noncePending:
		err = s.nonced(c, func(ctx context.Context) (bool, error) {
			return s.cfg.Nonced.UpdateProfileNonced(ctx, c.nonce, c.site.APIKey, uid, patch, c.now)
		})
	case patch.Empty():
		_, err = s.cfg.Store.User(c.ctx, c.site.APIKey, uid)
	default:
		err = s.cfg.Store.UpdateProfile(c.ctx, c.site.APIKey, uid, patch, c.now)
	}
	return nil, userNotFound(err)
}

func (s *Server) getUserInfo(c *call) (gigya.Object, error) {
	uid, err := c.uid()
	if err != nil {
		return nil, err
	}
	signIDs, err := c.params.Bool("signIDs", false)
	if err != nil {
		return nil, err
	}
	// Socius keeps one identity a user (the site's), so every identity is the answer
	// either way; the value is still a boolean, refused as signIDs's is otherwise.
	if _, err := c.params.Bool("includeAllIdentities", false); err != nil {
		return nil, err
	}
	var u *socius.User
	if c.noncePending {
		err = s.nonced(c, func(ctx context.Context) (fresh bool, err error) {
			fresh, u, err = s.cfg.Nonced.UserNonced(ctx, c.nonce, c.site.APIKey, uid)
			return fresh, err
		})
	} else {
		u, err = s.cfg.Store.User(c.ctx, c.site.APIKey, uid)
	}
	if err != nil {
		return nil, userNotFound(err)
	}
	return s.userObject(c, u, signIDs)
}

// userObject is the User object of SPEC section 6: only fields with data. Each value
// that appears more than once is boxed once: an interface holding a string costs an
// allocation each time it is made. With signIDs each identity carries providerUIDSig,
// the partner secret's signature of "<signatureTimestamp>_<provider>_<providerUID>", as
// Gigya's identity object documents it.
func (s *Server) userObject(c *call, u *socius.User, signIDs bool) (gigya.Object, error) {
	sig, err := s.signUID(c, u.UID)
	if err != nil {
		return nil, err
	}
	updated := u.UpdatedAt
	if updated.IsZero() {
		updated = u.CreatedAt
	}
	uid := any(u.UID)
	updatedISO, updatedMs := any(gigya.FormatTime(updated)), any(updated.UnixMilli())
	identity := make(gigya.Object, 0, 8+int(socius.NumFields))
	identity = append(identity,
		gigya.KV{Key: "provider", Value: "site"},
		gigya.KV{Key: "providerUID", Value: uid},
		gigya.KV{Key: "isLoginIdentity", Value: true},
		gigya.KV{Key: "allowsLogin", Value: true},
	)
	if signIDs {
		key, err := c.partnerKey()
		if err != nil {
			return nil, err
		}
		identity = append(identity, gigya.KV{Key: "providerUIDSig", Value: gigya.ProviderUIDSignature(key, sig[1], "site", u.UID)})
	}
	o := make(gigya.Object, 0, 14+int(socius.NumFields))
	o = append(o,
		gigya.KV{Key: "UID", Value: uid},
		gigya.KV{Key: "UIDSignature", Value: sig[0]},
		gigya.KV{Key: "signatureTimestamp", Value: sig[1]},
		gigya.KV{Key: "isSiteUID", Value: true},
		gigya.KV{Key: "isSiteUser", Value: true},
		gigya.KV{Key: "isTempUser", Value: false},
		gigya.KV{Key: "isConnected", Value: true},
		gigya.KV{Key: "isLoggedIn", Value: u.LoggedIn},
		gigya.KV{Key: "loginProvider", Value: "site"},
		gigya.KV{Key: "loginProviderUID", Value: uid},
		gigya.KV{Key: "providers", Value: "site"},
		gigya.KV{Key: "capabilities", Value: "None"},
	)
	for f := socius.Field(0); f < socius.NumFields; f++ {
		v := u.Profile[f]
		if v == "" {
			continue
		}
		// Inside identities Gigya sends numbers as strings; at the top level age is
		// a number.
		boxed := any(v)
		identity = append(identity, gigya.KV{Key: f.Name(), Value: boxed})
		if f == socius.Age {
			n, _ := strconv.Atoi(v)
			o = append(o, gigya.KV{Key: f.Name(), Value: n})
		} else {
			o = append(o, gigya.KV{Key: f.Name(), Value: boxed})
		}
	}
	identity = append(identity,
		gigya.KV{Key: "lastUpdated", Value: updatedISO},
		gigya.KV{Key: "lastUpdatedTimestamp", Value: updatedMs},
		gigya.KV{Key: "oldestDataUpdated", Value: updatedISO},
		gigya.KV{Key: "oldestDataUpdatedTimestamp", Value: updatedMs},
	)
	o = append(o,
		gigya.KV{Key: "identities", Value: []gigya.Object{identity}},
		gigya.KV{Key: "oldestDataUpdatedTimestamp", Value: updatedMs},
	)
	return o, nil
}

// signUID returns UIDSignature and signatureTimestamp for uid, signed now with the
// site's partner secret (never a key's: SDKs validate with the partner secret).
func (s *Server) signUID(c *call, uid string) ([2]string, error) {
	key, err := c.partnerKey()
	if err != nil {
		return [2]string{}, err
	}
	ts := strconv.FormatInt(c.now.Unix(), 10)
	return [2]string{gigya.UIDSignature(key, ts, uid), ts}, nil
}

// unusedObject checks a parameter Socius takes but does not use, one Gigya documents
// as a JSON object: absent, empty or null (the gigya npm package sends a null as the
// text "null") is none; anything else must be an object, parsed as leniently as
// userInfo, else 400006 naming the parameter.
func (c *call) unusedObject(name string) error {
	raw := c.params.Get(name)
	if raw == "" {
		return nil
	}
	v, err := gigya.ParseJSON(raw)
	if err != nil {
		return socius.Errorf(socius.CodeInvalidValue, "Invalid parameter value: %s is not valid JSON: %v", name, err)
	}
	if _, ok := v.(gigya.Object); !ok && v != nil {
		return socius.Errorf(socius.CodeInvalidValue, "Invalid parameter value: %s must be a JSON object", name)
	}
	return nil
}

func (s *Server) notifyLogin(c *call) (gigya.Object, error) {
	siteUID, _, err := c.userParam("siteUID")
	if err != nil {
		return nil, err
	}
	if siteUID == "" {
		return nil, socius.Errorf(socius.CodeMissingParameter, "Missing required parameter: siteUID")
	}
	if err := socius.ValidateUID(siteUID); err != nil {
		return nil, socius.Errorf(socius.CodeInvalidValue, "Invalid parameter value: siteUID: %v", err)
	}
	if _, err := c.params.Bool("skipValidation", false); err != nil { // nothing to skip: no validation rules
		return nil, err
	}
	if _, err := c.params.Bool("newUser", false); err != nil {
		return nil, err
	}
	// Social login is out of scope, so provider sessions and action attributes are not
	// used; each is still the JSON object Gigya documents, as the booleans above are
	// still booleans.
	for _, name := range []string{"providerSessions", "actionAttributes"} {
		if err := c.unusedObject(name); err != nil {
			return nil, err
		}
	}
	lifetime, err := c.sessionLifetime("sessionExpiration")
	if err != nil {
		return nil, err
	}
	mobile := strings.EqualFold(c.params.Get("targetEnv"), "mobile")
	patch, _, err := c.optionalUserInfo("userInfo")
	if err != nil {
		return nil, err
	}
	// What the answer needs from the site's secret is taken before the write, so that a
	// secret that cannot be used fails the call with nothing stored.
	sig, err := s.signUID(c, siteUID)
	if err != nil {
		return nil, err
	}
	var partnerKey []byte
	if mobile {
		if partnerKey, err = c.partnerKey(); err != nil {
			return nil, err
		}
	}
	// A mobile login is a session: the login and its token are one store operation.
	// A browser login made with a token is made only while that token (and the one at
	// the top of its chain) lives: a logout or deleteAccount that revoked it since the
	// call authenticated does not see its user logged in again after it.
	var token string
	switch {
	case mobile:
		token, err = s.loginWithToken(c, socius.SessionToken, siteUID, patch, lifetime)
	case c.token != nil:
		if _, err = s.cfg.Store.LoginWhile(c.ctx, c.site.APIKey, siteUID, patch, c.now, c.token.Hash, c.token.Root); err != nil {
			err = tokenRefused(c, nil, err)
		}
	default:
		_, err = s.cfg.Store.Login(c.ctx, c.site.APIKey, siteUID, patch, c.now)
	}
	if err != nil {
		return nil, err
	}
	o := gigya.Object{{Key: "UID", Value: siteUID}, {Key: "UIDSignature", Value: sig[0]}, {Key: "signatureTimestamp", Value: sig[1]}}
	if mobile {
		return append(o,
			gigya.KV{Key: "sessionToken", Value: token},
			gigya.KV{Key: "sessionSecret", Value: socius.SessionSecret(partnerKey, token)},
		), nil
	}
	o = append(o,
		gigya.KV{Key: "cookieName", Value: "glt_" + c.site.APIKey},
		gigya.KV{Key: "cookieValue", Value: gigya.NewCallID() + gigya.NewCallID()},
	)
	// A request without a Host (HTTP/1.0) names no domain: the field is left out, as
	// every field without data is (SPEC 4), rather than sent empty.
	if d := cookieDomain(c.r.Host); d != "" {
		o = append(o, gigya.KV{Key: "cookieDomain", Value: d})
	}
	return append(o, gigya.KV{Key: "cookiePath", Value: "/"}), nil
}

// cookieDomain is the host the call reached, without a port, and an IPv6 address
// without its brackets.
func cookieDomain(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		return h
	}
	if len(host) > 1 && host[0] == '[' && host[len(host)-1] == ']' {
		return host[1 : len(host)-1]
	}
	return host
}

func (s *Server) deleteAccount(c *call) (gigya.Object, error) {
	uid, err := c.uid()
	if err != nil {
		return nil, err
	}
	return nil, userNotFound(s.cfg.Store.DeleteUser(c.ctx, c.site.APIKey, uid, c.now))
}

func (s *Server) logout(c *call) (gigya.Object, error) {
	uid, err := c.uid()
	if err != nil {
		return nil, err
	}
	return nil, userNotFound(s.cfg.Store.Logout(c.ctx, c.site.APIKey, uid, c.now))
}

func (s *Server) setUID(c *call) (gigya.Object, error) {
	return s.rename(c, true)
}

func (s *Server) notifyRegistration(c *call) (gigya.Object, error) {
	return s.rename(c, false)
}

// checkUIDSig checks the site's consent to a rename asked for with a token bound to a
// user: a client's credential (a mobile session's secret lives on the device). Without
// it, a client could move its user to any siteUID not yet taken, and be that user when
// the site later logs in its own user of that UID. As Gigya asks of client-side
// notifyRegistration (and notifyLogin), the call carries UIDSig, the site's signature
// of "<UIDTimestamp>_<siteUID>" with its partner secret, and UIDTimestamp, within the
// clock skew of the server's time.
func (s *Server) checkUIDSig(c *call, siteUID string) error {
	sig, _ := c.params.Lookup("UIDSig")
	tsText, _ := c.params.Lookup("UIDTimestamp")
	for _, p := range [...][2]string{{"UIDSig", sig}, {"UIDTimestamp", tsText}} {
		if p[1] == "" {
			return socius.Errorf(socius.CodeMissingParameter, "Missing required parameter: %s (a token bound to a user renames it only with the site's UIDSig and UIDTimestamp for the new siteUID)", p[0])
		}
	}
	ts, ok := gigya.ParseTimestamp(tsText)
	if !ok {
		return socius.Errorf(socius.CodeInvalidValue, "Invalid parameter value: UIDTimestamp must be Unix time in seconds, in decimal digits alone")
	}
	if err := s.outsideSkew(c, "UIDTimestamp", clip(tsText, 40), ts); err != nil {
		return err
	}
	if c.token != nil && strings.HasPrefix(siteUID, "site_") {
		// The site's UIDSig for "site_<X>" signs "<ts>_site_<X>", which is what the
		// identity's providerUIDSig signs ("<ts>_<provider>_<providerUID>"), and
		// getUserInfo with signIDs gives that to the holder of any token of user X (of
		// another user of the same client, or of this one before a rename): the
		// consent could be forged.
		return socius.Errorf(socius.CodePermissionDenied, "Permission denied: a token bound to a user may not rename it to a siteUID starting with site_ (a UIDSig for such a name cannot be told from a providerUIDSig that users can read); rename it with the site's credentials")
	}
	key, err := c.partnerKey()
	if err != nil {
		return err
	}
	if !gigya.ValidateUIDSignature(key, siteUID, tsText, sig, 0, c.now) {
		return socius.Errorf(socius.CodeInvalidSignature, "Invalid request signature: UIDSig is not the site's signature of UIDTimestamp_siteUID (%s_%s, HMAC-SHA1 with the partner secret)", clip(tsText, 40), siteUID)
	}
	return nil
}

// rename gives the user of UID the siteUID (setUID; notifyRegistration when siteUID
// is sent).
func (s *Server) rename(c *call, required bool) (gigya.Object, error) {
	uid, err := c.uid()
	if err != nil {
		return nil, err
	}
	siteUID, ok := c.params.Lookup("siteUID")
	if !ok || siteUID == "" {
		if required {
			return nil, socius.Errorf(socius.CodeMissingParameter, "Missing required parameter: siteUID")
		}
		_, err := s.cfg.Store.User(c.ctx, c.site.APIKey, uid)
		return nil, userNotFound(err)
	}
	if err := socius.ValidateUID(siteUID); err != nil {
		return nil, socius.Errorf(socius.CodeInvalidValue, "Invalid parameter value: siteUID: %v", err)
	}
	if siteUID == uid {
		return nil, socius.Errorf(socius.CodeInvalidValue, "Invalid parameter value: siteUID must differ from the current UID")
	}
	if c.token != nil && c.token.UID != "" {
		if err := s.checkUIDSig(c, siteUID); err != nil {
			return nil, err
		}
	}
	err = s.cfg.Store.RenameUser(c.ctx, c.site.APIKey, uid, siteUID)
	if errors.Is(err, socius.ErrExists) {
		return nil, socius.Errorf(socius.CodeUniqueIdentifierSet, "Unique identifier exists: another user already has UID %s", siteUID)
	}
	return nil, userNotFound(err)
}
