package postgres

import (
	"cmp"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The connection string: read as pgx reads it, checked for the shapes where a
// password ends cannot be told, and said (in logs and errors) without its password.

// CheckURL reports what in connString Open could not read, without connecting (a
// malformed URL, a parameter pgx or pgxpool refuses, a nonce_commit other than sync or
// async); nil when Open would try to connect with it. The error never holds the
// password.
func CheckURL(connString string) error {
	_, _, err := parseConfig(connString)
	return err
}

// parseConfig reads connString as Open does, without connecting: pgx's and pgxpool's
// parameters, and Socius's own nonce_commit, which it takes out of the parameters sent
// to the server and reports as asyncNonces; with Socius's defaults for what it leaves
// out (connect_timeout, application_name).
func parseConfig(connString string) (cfg *pgxpool.Config, asyncNonces bool, err error) {
	if atAfterUserInfo(connString) {
		// Said without the URL: where its password ends is what cannot be told.
		return nil, false, errors.New("the URL has an '@' after its user information (user:password@): " +
			"write an '@' of the user, the password or the database's name as %40, and a '/' or '?' of the " +
			"password as %2F or %3F; as written, part of the password would be taken for the host or the " +
			"database's name")
	}
	if emptyPort(connString) {
		return nil, false, errors.New("the URL has a host with a ':' and no port after it: a password with a '/' " +
			"before its '@' leaves no user information, its user and the start of the password the host and its " +
			"port; write a '/' of the password as %2F, a '?' as %3F; as written, part of the password would be " +
			"taken for the database's name or a parameter")
	}
	cfg, err = pgxpool.ParseConfig(connString)
	if err != nil {
		return nil, false, parseRefusal(connString, err)
	}
	if !hostNames(cfg) {
		// Said without the URL: such a "host" is text from elsewhere in it, a
		// password's perhaps, which a connect error would name.
		return nil, false, errors.New("the URL has a host that is no host name, address or socket folder (a character " +
			"other than letters, digits, '.', '-', '_', ':' and a zone's '%'): a parameter written after a ',' instead of a " +
			"'?', or a password's ',' or '&' not percent-encoded, is read as another host; as written, part of it would " +
			"be said in a connect error")
	}
	// pgx would send nonce_commit to the server as a run-time parameter, which
	// PostgreSQL refuses: it is taken out here.
	if v, ok := cfg.ConnConfig.RuntimeParams["nonce_commit"]; ok {
		delete(cfg.ConnConfig.RuntimeParams, "nonce_commit")
		switch v {
		case "sync":
		case "async":
			asyncNonces = true
		default:
			return nil, false, fmt.Errorf("nonce_commit=%q: want sync or async", v)
		}
	}
	// No connect_timeout, or 0 (which libpq reads as no limit): Socius's. A store
	// never waits on a connection without a limit.
	if cfg.ConnConfig.ConnectTimeout <= 0 {
		cfg.ConnConfig.ConnectTimeout = DefaultConnectTimeout
	}
	// The connections are Socius's in pg_stat_activity, unless the URL (or PGAPPNAME,
	// which pgx reads as libpq does) names them otherwise.
	if _, ok := cfg.ConnConfig.RuntimeParams["application_name"]; !ok {
		cfg.ConnConfig.RuntimeParams["application_name"] = DefaultApplicationName
	}
	return cfg, asyncNonces, nil
}

// DefaultApplicationName is the application_name of the store's connections when
// neither the URL nor PGAPPNAME gives one.
const DefaultApplicationName = "socius"

// hostNames reports whether every host cfg names (its first and its fallbacks') is a
// host name, an IP address (with a zone) or a Unix socket's folder (an absolute path).
func hostNames(cfg *pgxpool.Config) bool {
	hosts := []string{cfg.ConnConfig.Host}
	for _, fb := range cfg.ConnConfig.Fallbacks {
		hosts = append(hosts, fb.Host)
	}
	for _, h := range hosts {
		if strings.HasPrefix(h, "/") {
			continue
		}
		if h == "" || strings.Trim(h, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_:%") != "" {
			return false
		}
	}
	return true
}

// parseRefusal says why pgx could not read connString, without any of its password.
// pgx's own message repeats the string, masked where pgx's reading found a password,
// and quotes parts of it (a port, a query parameter): for a malformed URL, where the
// password ends is what cannot be told, and pgx said the rest of a password written
// without its host ("postgres://user:password", read as a port), or holding a space,
// a '?' or a '#'. A URL Redact can say, with no fragment and a query of name=value
// pairs, is said masked, and its passwords are masked wherever pgx repeats them; of
// any other, nothing is said, and of pgx's reason only what quotes nothing of it.
func parseRefusal(connString string, err error) error {
	reason, cause := "it is not a connection string pgx reads", ""
	var pe *pgconn.ParseConfigError
	if errors.As(err, &pe) {
		// pgx says "cannot parse `STRING`: REASON (CAUSE)".
		text := pe.Error()
		if c := pe.Unwrap(); c != nil {
			cause = c.Error()
			text = strings.TrimSuffix(text, " ("+cause+")")
		}
		if i := strings.LastIndex(text, "`: "); i >= 0 {
			reason = text[i+len("`: "):]
		}
	}
	if secrets, ok := sayablePasswords(connString); ok {
		if cause != "" {
			reason += " (" + cause + ")"
		}
		for _, s := range secrets {
			reason = strings.ReplaceAll(reason, s, "xxxxx")
		}
		return fmt.Errorf("cannot parse `%s`: %s", Redact(connString), reason)
	}
	// pgx's reasons say a value after ": " or in quotes (not always escaped).
	if i := strings.IndexAny(reason, `":`); i >= 0 {
		reason = strings.TrimSpace(reason[:i])
	}
	if cause != "" && !strings.ContainsAny(cause, `":`) {
		reason += " (" + cause + ")"
	}
	return fmt.Errorf("cannot parse the URL (not repeated: where its password ends cannot be told; "+
		"percent-encode the password's special characters): %s", reason)
}

// sayablePasswords reports whether connString is a URL that Redact says with its
// password masked and nothing of it elsewhere (no fragment, a query of name=value
// pairs), and its passwords as written and as decoded, longest first: the user
// information's and the query's password and sslpassword.
func sayablePasswords(connString string) ([]string, bool) {
	if Redact(connString) == redactedNoURL || strings.Contains(connString, "#") {
		return nil, false
	}
	u, err := url.Parse(connString)
	if err != nil {
		return nil, false
	}
	var secrets []string
	if pw, ok := u.User.Password(); ok {
		secrets = append(secrets, pw)
		authority, _, _ := strings.Cut(connString[len(u.Scheme)+len("://"):], "/")
		if i := strings.LastIndexByte(authority, '@'); i >= 0 {
			if _, raw, ok := strings.Cut(authority[:i], ":"); ok {
				secrets = append(secrets, raw)
			}
		}
	}
	if u.RawQuery != "" {
		for pair := range strings.SplitSeq(u.RawQuery, "&") {
			name, raw, ok := strings.Cut(pair, "=")
			if !ok {
				return nil, false
			}
			if strings.Contains(strings.ToLower(name), "password") {
				secrets = append(secrets, raw)
				if v, err := url.QueryUnescape(raw); err == nil {
					secrets = append(secrets, v)
				}
			}
		}
	}
	secrets = slices.DeleteFunc(secrets, func(s string) bool { return s == "" })
	slices.SortFunc(secrets, func(a, b string) int { return cmp.Compare(len(b), len(a)) })
	return secrets, true
}

// afterUserInfo returns what follows the user information of a postgres:// or
// postgresql:// URL as libpq and pgx read it: they end the user information at the
// first '@', unless a '/' comes before it (then there is none). ok is false for a
// connection string of another form.
func afterUserInfo(connString string) (rest string, ok bool) {
	rest, ok = strings.CutPrefix(connString, "postgresql://")
	if !ok {
		rest, ok = strings.CutPrefix(connString, "postgres://")
	}
	if !ok {
		return "", false
	}
	if end := strings.IndexAny(rest, "@/"); end >= 0 && rest[end] == '@' {
		rest = rest[end+1:]
	}
	return rest, true
}

// atAfterUserInfo reports whether a postgres:// URL holds an '@' after the one that
// ends its user information, before its query, or an '@' followed by a '/' in its
// query: a password with an '@', a '/' or a '?' not percent-encoded. libpq and pgx end
// the user information at the first '@' (afterUserInfo; net/url at the last '@'), so
// that the rest of such a password
// is read as the host or the database's name, and said in the errors that name them
// ("lookup ...: no such host", "failed to connect to `user=... database=...`") and in
// pgx's parse errors.
func atAfterUserInfo(connString string) bool {
	p, ok := afterUserInfo(connString)
	if !ok {
		return false
	}
	if i := strings.IndexByte(p, '?'); i >= 0 {
		// A query that holds an '@' followed by a '/' is the rest of a password with
		// a '?' ("pw/word?x=y@host/db"), whose start pgx took for the database's name.
		if at := strings.IndexByte(p[i:], '@'); at >= 0 && strings.Contains(p[i+at:], "/") {
			return true
		}
		p = p[:i]
	}
	return strings.Contains(p, "@")
}

// redactedNoURL is what Redact says of a connection string it cannot say masked.
const redactedNoURL = "(a connection string that is no URL)"

// emptyPort reports whether a postgres:// URL, read as pgx reads it, names a host
// with a ':' and no port after it ("postgres://user:/pass?x=y@host", where a '/'
// before the '@' leaves no user information: the host "user:", the database "pass").
func emptyPort(connString string) bool {
	p, ok := afterUserInfo(connString)
	if !ok {
		return false
	}
	if end := strings.IndexAny(p, "/?"); end >= 0 {
		p = p[:end]
	}
	for h := range strings.SplitSeq(p, ",") {
		if strings.HasPrefix(h, "[") {
			if end := strings.IndexByte(h, ']'); end >= 0 {
				h = h[end+1:]
			}
		}
		if strings.HasSuffix(h, ":") {
			return true
		}
	}
	return false
}

// Redact returns a connection string without its password, for logs and error
// messages.
func Redact(connString string) string {
	u, err := url.Parse(connString)
	if err != nil || u.Scheme == "" || u.Opaque != "" || u.User == nil && strings.Contains(connString, "@") || atAfterUserInfo(connString) {
		// The key=value form, or something unparsable, or a URL with an '@' that the
		// parser did not take for user information (a password holding '/', '?' or '#'
		// cuts the URL where the parser cannot tell), or more than one before its
		// query (a password holding '@'): none of it is said.
		return redactedNoURL
	}
	if !plainHosts(u.Host) || !plainPasswordParams(u.RawQuery) {
		// A host that is no host[:port] (net/url took "user:password:" for one, with an
		// empty port), or a password parameter that url.Query cannot read, and so
		// would not mask: none of it is said either.
		return redactedNoURL
	}
	if u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
	}
	if u.RawQuery != "" {
		q := u.Query()
		for name := range q {
			if strings.Contains(strings.ToLower(name), "password") { // password, sslpassword
				q.Set(name, "xxxxx")
			}
		}
		u.RawQuery = q.Encode()
	}
	if u.Fragment != "" {
		u.Fragment = "xxxxx" // a password with '#' goes on there
	}
	return u.String()
}

// plainHosts reports whether hosts, a URL's comma-separated list, holds only
// host names and addresses, each with a port of digits or none.
func plainHosts(hosts string) bool {
	for h := range strings.SplitSeq(hosts, ",") {
		if strings.HasPrefix(h, "[") {
			end := strings.IndexByte(h, ']')
			if end < 0 {
				return false
			}
			h = "x" + h[end+1:]
		}
		name, port, hasPort := strings.Cut(h, ":")
		if name == "" && hasPort || hasPort && (port == "" || strings.Trim(port, "0123456789") != "") {
			return false
		}
	}
	return true
}

// plainPasswordParams reports whether each parameter of a URL's raw query has an '='
// (pgx refuses one without; url.Query said the text of the rest of a password with an
// '&' as a name), and each that says "password" (password, sslpassword, or one
// written wrong, as after a second '?') is a name holding "password", '=', and a value
// that url.Query reads as written.
func plainPasswordParams(rawQuery string) bool {
	if rawQuery == "" {
		return true
	}
	for pair := range strings.SplitSeq(rawQuery, "&") {
		if !strings.Contains(pair, "=") {
			return false
		}
		text := pair
		if v, err := url.QueryUnescape(pair); err == nil {
			text = v
		}
		if !strings.Contains(strings.ToLower(text), "password") && !strings.Contains(strings.ToLower(pair), "password") {
			continue
		}
		name, value, ok := strings.Cut(pair, "=")
		name, err := url.QueryUnescape(name)
		if !ok || err != nil || !strings.Contains(strings.ToLower(name), "password") || strings.ContainsAny(pair, ";?") {
			return false
		}
		if _, err := url.QueryUnescape(value); err != nil {
			return false
		}
	}
	return true
}
