package client

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/socius/socius/internal/errtext"
)

// UserInfo holds the eight profile fields of socialize.setUserInfo. In a request, an
// empty string (or a nil Age) leaves the field as it is; in an answer, it means the
// user has no data there.
type UserInfo struct {
	Nickname     string `json:"nickname,omitempty"`
	PhotoURL     string `json:"photoURL,omitempty"`
	ThumbnailURL string `json:"thumbnailURL,omitempty"`
	FirstName    string `json:"firstName,omitempty"`
	LastName     string `json:"lastName,omitempty"`
	Gender       string `json:"gender,omitempty"` // m, f or u
	Age          *int   `json:"age,omitempty"`
	Email        string `json:"email,omitempty"`
}

// Age returns a pointer to n, for UserInfo.Age.
func Age(n int) *int { return &n }

// fieldNames are the profile fields' names on the wire, in UserInfo's order.
var fieldNames = [...]string{"nickname", "photoURL", "thumbnailURL", "firstName", "lastName", "gender", "age", "email"}

// fields returns the set fields of u as name/value pairs, in order.
func (u *UserInfo) fields() []kv {
	var out []kv
	for i, v := range []string{u.Nickname, u.PhotoURL, u.ThumbnailURL, u.FirstName, u.LastName, u.Gender, "", u.Email} {
		switch {
		case fieldNames[i] == "age" && u.Age != nil:
			out = append(out, kv{"age", *u.Age})
		case v != "":
			out = append(out, kv{fieldNames[i], v})
		}
	}
	return out
}

type kv struct {
	name  string
	value any // nil clears
}

// userInfoJSON is the userInfo parameter: the set fields of u, then the cleared ones
// as null (Gigya clears a field sent as null).
func userInfoJSON(u *UserInfo, clear []string) (json.RawMessage, error) {
	var fs []kv
	if u != nil {
		fs = u.fields()
	}
	for _, name := range clear {
		canon := ""
		for _, f := range fieldNames {
			if strings.EqualFold(f, name) {
				canon = f
			}
		}
		if canon == "" {
			return nil, fmt.Errorf("cannot clear %q: not a profile field (%s)", name, strings.Join(fieldNames[:], ", "))
		}
		for _, f := range fs {
			if f.name == canon {
				return nil, fmt.Errorf("%s is both set and cleared", canon)
			}
		}
		fs = append(fs, kv{canon, nil})
	}
	b := []byte{'{'}
	for i, f := range fs {
		if i > 0 {
			b = append(b, ',')
		}
		name, _ := jsonMarshal(f.name)
		val, err := jsonMarshal(f.value)
		if err != nil {
			return nil, err
		}
		b = append(append(append(b, name...), ':'), val...)
	}
	return append(b, '}'), nil
}

// merge adds the helper's own parameters to the caller's extra ones; a name given
// twice is an error.
func merge(method string, own, extra Params) (Params, error) {
	p := make(Params, len(own)+len(extra))
	for k, v := range extra {
		p[k] = v
	}
	for k, v := range own {
		for e := range extra {
			if strings.EqualFold(k, e) {
				return nil, fmt.Errorf("client: %s: parameter %s is set by the request's fields; do not give it in Params", method, e)
			}
		}
		p[k] = v
	}
	return p, nil
}

// SetUserInfo calls socialize.setUserInfo: the fields set in info change, the fields
// named in clear ("lastName", ...) are cleared, the others stay. uid may be empty with
// a token bound to a user.
func (c *Client) SetUserInfo(ctx context.Context, uid string, info UserInfo, clear ...string) error {
	ui, err := userInfoJSON(&info, clear)
	if err != nil {
		return fmt.Errorf("client: socialize.setUserInfo: %w", err)
	}
	p := Params{"userInfo": ui}
	if uid != "" {
		p["UID"] = uid
	}
	_, err = c.Call(ctx, "socialize.setUserInfo", p)
	return err
}

// A User is the User object of a getUserInfo answer. Fields not modelled here are in
// Response.Body.
type User struct {
	UID                string
	UIDSignature       string
	SignatureTimestamp string
	IsSiteUID          bool
	IsSiteUser         bool
	IsTempUser         bool
	IsConnected        bool
	IsLoggedIn         bool
	LoginProvider      string
	LoginProviderUID   string
	Providers          []string
	Capabilities       string
	UserInfo
	Identities        []Identity
	OldestDataUpdated time.Time // zero when not given
	// Response is the whole answer.
	Response *Response
}

// An Identity is one entry of a User's identities (Socius has one, "site").
type Identity struct {
	Provider        string
	ProviderUID     string
	IsLoginIdentity bool
	AllowsLogin     bool
	UserInfo
	LastUpdated time.Time // zero when not given
}

// wireProfile reads the profile fields; age comes as a number at the top level and as
// a string inside identities.
type wireProfile struct {
	Nickname     string          `json:"nickname"`
	PhotoURL     string          `json:"photoURL"`
	ThumbnailURL string          `json:"thumbnailURL"`
	FirstName    string          `json:"firstName"`
	LastName     string          `json:"lastName"`
	Gender       string          `json:"gender"`
	Age          json.RawMessage `json:"age"`
	Email        string          `json:"email"`
}

func (w *wireProfile) userInfo() (UserInfo, error) {
	u := UserInfo{Nickname: w.Nickname, PhotoURL: w.PhotoURL, ThumbnailURL: w.ThumbnailURL, FirstName: w.FirstName,
		LastName: w.LastName, Gender: w.Gender, Email: w.Email}
	if s := jsonText(w.Age); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			return u, fmt.Errorf("age %s is not a whole number", answerValue(w.Age))
		}
		u.Age = &n
	}
	return u, nil
}

// answerValue returns a value of an answer, its JSON text as the server sent it, for
// an error that quotes it: escaped as the client escapes the server's other text
// (errtext.Printable: a JSON string may hold U+009B or U+202E raw), and clipped to its
// first 40 bytes, saying how long it was (a broken server's value may be megabytes).
func answerValue(raw json.RawMessage) string { return errtext.Clip(raw, len(raw), 40) }

// jsonText returns a JSON scalar as text: a string's content, a number's digits, ""
// for null or nothing.
func jsonText(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		return n.String()
	}
	return ""
}

type wireUser struct {
	UID                        string          `json:"UID"`
	UIDSignature               string          `json:"UIDSignature"`
	SignatureTimestamp         json.RawMessage `json:"signatureTimestamp"`
	IsSiteUID                  bool            `json:"isSiteUID"`
	IsSiteUser                 bool            `json:"isSiteUser"`
	IsTempUser                 bool            `json:"isTempUser"`
	IsConnected                bool            `json:"isConnected"`
	IsLoggedIn                 bool            `json:"isLoggedIn"`
	LoginProvider              string          `json:"loginProvider"`
	LoginProviderUID           string          `json:"loginProviderUID"`
	Providers                  json.RawMessage `json:"providers"`
	Capabilities               json.RawMessage `json:"capabilities"`
	OldestDataUpdatedTimestamp int64           `json:"oldestDataUpdatedTimestamp"`
	Identities                 []struct {
		Provider             string `json:"provider"`
		ProviderUID          string `json:"providerUID"`
		IsLoginIdentity      bool   `json:"isLoginIdentity"`
		AllowsLogin          bool   `json:"allowsLogin"`
		LastUpdatedTimestamp int64  `json:"lastUpdatedTimestamp"`
		wireProfile
	} `json:"identities"`
	wireProfile
}

// GetUserInfo calls socialize.getUserInfo and returns the User object. When the client
// knows the site's partner secret (PartnerSecret credentials, WithPartnerSecret, or
// the client it was derived from with WithCredentials knew it) and the answer carries
// a UIDSignature, the signature is validated; a bad one fails the call with
// ErrInvalidSignature or ErrSignatureExpired. uid may be empty with a token bound to
// a user.
func (c *Client) GetUserInfo(ctx context.Context, uid string) (*User, error) {
	p := Params{}
	if uid != "" {
		p["UID"] = uid
	}
	resp, err := c.Call(ctx, "socialize.getUserInfo", p)
	if err != nil {
		return nil, err
	}
	var w wireUser
	if err := resp.Decode(&w); err != nil {
		return nil, err
	}
	u := &User{UID: w.UID, UIDSignature: w.UIDSignature, SignatureTimestamp: jsonText(w.SignatureTimestamp),
		IsSiteUID: w.IsSiteUID, IsSiteUser: w.IsSiteUser, IsTempUser: w.IsTempUser, IsConnected: w.IsConnected,
		IsLoggedIn: w.IsLoggedIn, LoginProvider: w.LoginProvider, LoginProviderUID: w.LoginProviderUID,
		Providers: stringList(w.Providers), Capabilities: strings.Join(stringList(w.Capabilities), ","), Response: resp}
	if u.UserInfo, err = w.userInfo(); err != nil {
		return nil, fmt.Errorf("client: socialize.getUserInfo: %w", err)
	}
	if w.OldestDataUpdatedTimestamp > 0 {
		u.OldestDataUpdated = time.UnixMilli(w.OldestDataUpdatedTimestamp).UTC()
	}
	for _, wi := range w.Identities {
		id := Identity{Provider: wi.Provider, ProviderUID: wi.ProviderUID, IsLoginIdentity: wi.IsLoginIdentity, AllowsLogin: wi.AllowsLogin}
		if id.UserInfo, err = wi.userInfo(); err != nil {
			return nil, fmt.Errorf("client: socialize.getUserInfo: identity %s: %w", errtext.Printable(wi.Provider), err)
		}
		if wi.LastUpdatedTimestamp > 0 {
			id.LastUpdated = time.UnixMilli(wi.LastUpdatedTimestamp).UTC()
		}
		u.Identities = append(u.Identities, id)
	}
	if c.secretKeys().uidKey != nil && u.UIDSignature != "" {
		if err := c.ValidateUIDSignature(u.UID, u.SignatureTimestamp, u.UIDSignature); err != nil {
			return nil, fmt.Errorf("client: socialize.getUserInfo: UIDSignature of %s: %w", errtext.Printable(u.UID), err)
		}
	}
	return u, nil
}

// stringList reads a list that Gigya sends either as a comma-separated string or as
// an array of strings.
func stringList(raw json.RawMessage) []string {
	var list []string
	if json.Unmarshal(raw, &list) == nil {
		return list
	}
	var s string
	if json.Unmarshal(raw, &s) != nil || s == "" {
		return nil
	}
	for _, e := range strings.Split(s, ",") {
		if e = strings.TrimSpace(e); e != "" {
			list = append(list, e)
		}
	}
	return list
}

// NotifyLoginRequest is a socialize.notifyLogin call.
type NotifyLoginRequest struct {
	SiteUID  string // required: the site's UID for the user (created when new)
	NewUser  bool
	UserInfo *UserInfo
	// TargetEnv "mobile" asks for a session token and secret instead of a cookie.
	TargetEnv string
	// Params are other parameters to send as they are (e.g. sessionExpiration).
	Params Params
}

// Login is the answer of socialize.notifyLogin.
type Login struct {
	UID                string `json:"UID"`
	UIDSignature       string `json:"UIDSignature"`
	SignatureTimestamp string `json:"signatureTimestamp"`
	CookieName         string `json:"cookieName"`
	CookieValue        string `json:"cookieValue"`
	CookieDomain       string `json:"cookieDomain"`
	CookiePath         string `json:"cookiePath"`
	SessionToken       string `json:"sessionToken"`
	SessionSecret      string `json:"sessionSecret"`
	// Response is the whole answer.
	Response *Response `json:"-"`
}

// String describes the login without its credentials: the session token and secret
// and the cookie's value (which is the session) show only whether they are set.
func (l Login) String() string {
	return fmt.Sprintf("login of UID %q (UIDSignature %q at %q; cookie %q %s; session token %s, secret %s)",
		l.UID, l.UIDSignature, l.SignatureTimestamp, l.CookieName, given(l.CookieValue),
		given(l.SessionToken), given(l.SessionSecret))
}

// GoString is String: %#v shows no credential either.
func (l Login) GoString() string { return l.String() }

// Format prints String whatever the verb, so that printing a Login while debugging
// (%v, %+v, %#v) shows no credential.
func (l Login) Format(f fmt.State, verb rune) { formatString(f, verb, l.String()) }

// given says whether a credential is set, without it.
func given(v string) string {
	if v == "" {
		return "none"
	}
	return "set"
}

// NotifyLogin calls socialize.notifyLogin: it tells Gigya that the site logged a user
// in, creating the user when new.
func (c *Client) NotifyLogin(ctx context.Context, req NotifyLoginRequest) (*Login, error) {
	own := Params{"siteUID": req.SiteUID}
	if req.NewUser {
		own["newUser"] = true
	}
	if req.UserInfo != nil {
		ui, err := userInfoJSON(req.UserInfo, nil)
		if err != nil {
			return nil, fmt.Errorf("client: socialize.notifyLogin: %w", err)
		}
		own["userInfo"] = ui
	}
	if req.TargetEnv != "" {
		own["targetEnv"] = req.TargetEnv
	}
	p, err := merge("socialize.notifyLogin", own, req.Params)
	if err != nil {
		return nil, err
	}
	resp, err := c.Call(ctx, "socialize.notifyLogin", p)
	if err != nil {
		return nil, err
	}
	// signatureTimestamp is text in Gigya's answers; a number is read as its digits,
	// as getUserInfo reads it, rather than failing a login that happened.
	var w struct {
		Login
		SignatureTimestamp json.RawMessage `json:"signatureTimestamp"`
	}
	if err := resp.Decode(&w); err != nil {
		return nil, err
	}
	l := &w.Login
	l.SignatureTimestamp = jsonText(w.SignatureTimestamp)
	l.Response = resp
	return l, nil
}

// GetTokenRequest is a socialize.getToken call (OAuth 2.0). It must go over HTTPS.
type GetTokenRequest struct {
	// GrantType is "none" (the default) or "client_credentials".
	GrantType string
	// SiteUID binds the token to that user (x_siteUID) and acts like notifyLogin:
	// the user is created when new. Calls with the token then imply the UID.
	SiteUID string
	// UserInfo (x_userInfo) sets profile fields, with SiteUID.
	UserInfo *UserInfo
	// SessionExpiration (x_sessionExpiration, whole seconds, a part of one rounded
	// up) makes the token expire; zero sends nothing: the token does not expire. -1s
	// and -2s are Gigya's special values (60 s; no expiry); another negative value that
	// is not whole seconds is refused.
	SessionExpiration time.Duration
	// Params are other parameters to send as they are.
	Params Params
}

// TokenGrant is the answer of socialize.getToken.
type TokenGrant struct {
	AccessToken string
	// ExpiresIn is the token's lifetime; zero when it does not expire.
	ExpiresIn time.Duration
	// Response is the whole answer.
	Response *Response
}

// String describes the grant without its token.
func (g TokenGrant) String() string {
	if g.ExpiresIn == 0 {
		return "access token " + given(g.AccessToken) + ", no expiry"
	}
	return "access token " + given(g.AccessToken) + ", expires in " + g.ExpiresIn.String()
}

// GoString is String: %#v shows no token either.
func (g TokenGrant) GoString() string { return g.String() }

// Format prints String whatever the verb, so that printing a TokenGrant shows no
// token.
func (g TokenGrant) Format(f fmt.State, verb rune) { formatString(f, verb, g.String()) }

// GetToken calls socialize.getToken with the client's credentials and returns the
// access token. Use it with c.WithCredentials(client.Token(grant.AccessToken)).
func (c *Client) GetToken(ctx context.Context, req GetTokenRequest) (*TokenGrant, error) {
	grant := req.GrantType
	if grant == "" {
		grant = "none"
	}
	own := Params{"grant_type": grant}
	if req.SiteUID != "" {
		own["x_siteUID"] = req.SiteUID
	}
	if req.UserInfo != nil {
		ui, err := userInfoJSON(req.UserInfo, nil)
		if err != nil {
			return nil, fmt.Errorf("client: socialize.getToken: %w", err)
		}
		own["x_userInfo"] = ui
	}
	if d := req.SessionExpiration; d != 0 {
		if d < 0 && d%time.Second != 0 {
			// Negative values are Gigya's special ones, whole seconds: -1s (60 s), -2s
			// (no expiry); -500ms would round to 0, no expiry at all.
			return nil, fmt.Errorf("client: socialize.getToken: SessionExpiration %v: a negative value is -1s or -2s", d)
		}
		secs := int64(d / time.Second)
		if d > 0 && d%time.Second != 0 {
			secs++ // rounded up: 0 would mean no expiry at all
		}
		own["x_sessionExpiration"] = secs
	}
	p, err := merge("socialize.getToken", own, req.Params)
	if err != nil {
		return nil, err
	}
	resp, err := c.Call(ctx, "socialize.getToken", p)
	if err != nil {
		return nil, err
	}
	var w struct {
		AccessToken string          `json:"access_token"`
		ExpiresIn   json.RawMessage `json:"expires_in"`
	}
	if err := resp.Decode(&w); err != nil {
		return nil, err
	}
	if w.AccessToken == "" {
		return nil, fmt.Errorf("client: socialize.getToken: the answer has no access_token")
	}
	g := &TokenGrant{AccessToken: w.AccessToken, Response: resp}
	if s := jsonText(w.ExpiresIn); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 || n > int64(math.MaxInt64/time.Second) {
			// Beyond what a Duration holds, n seconds wrapped around to a lifetime
			// that is negative or wrong.
			return nil, fmt.Errorf("client: socialize.getToken: expires_in %s is not a number of seconds up to %d", answerValue(w.ExpiresIn), int64(math.MaxInt64/time.Second))
		}
		g.ExpiresIn = time.Duration(n) * time.Second
	}
	return g, nil
}

// DeleteAccount calls socialize.deleteAccount: the user, the profile and every token
// of the user go. It needs server credentials (not a token).
func (c *Client) DeleteAccount(ctx context.Context, uid string) error {
	_, err := c.Call(ctx, "socialize.deleteAccount", Params{"UID": uid})
	return err
}

// Logout calls socialize.logout: the user's sessions and tokens end. uid may be empty
// with a token bound to a user.
func (c *Client) Logout(ctx context.Context, uid string) error {
	p := Params{}
	if uid != "" {
		p["UID"] = uid
	}
	_, err := c.Call(ctx, "socialize.logout", p)
	return err
}
