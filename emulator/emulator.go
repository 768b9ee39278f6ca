// Package emulator turns a Socius server into a Gigya emulator for development and CI:
// a request log of the last calls (with what the server signed when a signature was
// refused), fault rules that make chosen calls fail or slow down, control of the
// server's clock, seeding from and exporting to the dump format, a reset of every
// user, and a JSON admin API and a web console for all of it.
//
// Everything is served under one reserved path prefix, /_emulator/, on the same
// listeners as the API (no API method can have a name starting with "_"):
//
//	/_emulator/api/...   the admin API (JSON), used by `socius emulator ...`
//	/_emulator/          the web console (HTML)
//
// The emulator has no authentication: it is meant for a loopback listener. Two guards
// keep a web page the developer visits from using it: requests whose Host is a DNS
// name other than localhost are refused (DNS rebinding) unless AllowRemote is set, and
// every state-changing request must be same-origin (its Origin or Referer, when a
// browser sends one, names the emulator itself, and Sec-Fetch-Site is same-origin);
// another site's page may link to the emulator but not load it (Sec-Fetch-Site again).
// For the browsers that name no origin with a form, the admin API takes no
// Content-Type that such a form (or a fetch without a preflight) can send, and a
// console form must name its origin or referrer (guard.go).
// docs/emulator.md is the reference of the admin API.
package emulator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/socius/socius"
	"github.com/socius/socius/dump"
	"github.com/socius/socius/gigya"
	"github.com/socius/socius/server"
)

// Prefix is the path prefix of everything the emulator serves.
const Prefix = "/_emulator/"

// Config is what an Emulator needs. Store and Clock are required.
type Config struct {
	Store socius.Store
	// Clock is the server's clock, which the emulator moves.
	Clock *socius.OffsetClock
	// LogSize is how many calls the request log keeps (DefaultLogSize when 0).
	LogSize int
	// AllowRemote accepts any Host header (the emulator listens on a non-loopback
	// address on purpose, e.g. in a container).
	AllowRemote bool
	// Version is shown by the console and the status endpoint.
	Version string
	// WriteTimeout is the write timeout of the server's listeners (0: 30 s, the
	// default of socius serve): a long poll of the request log ends, and a fault
	// rule's delay must end, a second before it, or the connection would be cut.
	WriteTimeout time.Duration
	Logger       *slog.Logger
}

// Emulator is the state of emulator mode: request log, fault rules, clock.
type Emulator struct {
	cfg    Config
	Log    *RequestLog
	Faults *Faults
	mux    *http.ServeMux

	// The admin API's long requests in flight, for a shutdown's account (Busy).
	exports, seeds atomic.Int32
}

// Busy returns how many exports the admin API is sending and how many seeds it is
// loading: a shutdown that has to cut them off says so (an export's client gets an
// incomplete file; a seed is stored up to its line at the cut).
func (e *Emulator) Busy() (exports, seeds int) {
	return int(e.exports.Load()), int(e.seeds.Load())
}

// New returns an Emulator.
func New(cfg Config) *Emulator {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	e := &Emulator{cfg: cfg, Log: NewRequestLog(cfg.LogSize), Faults: NewFaults(cfg.Clock)}
	e.Faults.maxDelay = e.beforeWriteTimeout(MaxDelay)
	e.mux = http.NewServeMux()
	e.routes(e.mux)
	return e
}

// beforeWriteTimeout returns limit, or less: a second before the write timeout.
func (e *Emulator) beforeWriteTimeout(limit time.Duration) time.Duration {
	if wt := e.cfg.WriteTimeout; wt > 0 {
		limit = min(limit, wt-time.Second)
	}
	return max(limit, 0)
}

// Clock returns the clock the emulator moves.
func (e *Emulator) Clock() *socius.OffsetClock { return e.cfg.Clock }

// Wrap returns a handler that serves the emulator under Prefix and everything else
// with api.
func (e *Emulator) Wrap(api http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/_emulator" || strings.HasPrefix(r.URL.Path, Prefix) {
			e.ServeHTTP(w, r)
			return
		}
		api.ServeHTTP(w, r)
	})
}

// Header is set on every answer of the emulator, so that clients can tell it from
// the API's answer to an unknown method (what /_emulator/ is without --emulator).
const Header = "X-Socius-Emulator"

// ServeHTTP serves the admin API and the console.
func (e *Emulator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set(Header, "1")
	// Every answer: the admin API's JSON and export, whose strings are the users' and
	// the callers', are never to be read as a page or a script.
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if refusal, other := gigya.OtherScheme(r.URL.Scheme); other {
		e.badScheme(w, r, refusal)
		return
	}
	if !e.cfg.AllowRemote && !localHost(r.Host) {
		e.refuse(w, r, "Host "+clip(r.Host, 100)+" is not a loopback address or localhost (start with --emulator-allow-remote to allow it)")
		return
	}
	check := sameOrigin
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		check = crossSiteRead
	}
	if err := check(r); err != nil {
		e.refuse(w, r, err.Error())
		return
	}
	// r.URL.Query drops what does not decode: users?q=%zz would search for nothing,
	// and list every user.
	if _, err := url.ParseQuery(r.URL.RawQuery); err != nil {
		e.badQuery(w, r, err)
		return
	}
	e.mux.ServeHTTP(w, r)
}

// badQuery answers 400 for a query string that is not valid URL encoding: JSON under
// the admin API, a page elsewhere.
func (e *Emulator) badQuery(w http.ResponseWriter, r *http.Request, err error) {
	msg := "query is not valid URL encoding: " + clip(err.Error(), 100)
	if strings.HasPrefix(r.URL.Path, "/_emulator/api/") {
		apiError(w, http.StatusBadRequest, "the %s", msg)
		return
	}
	e.render(w, http.StatusBadRequest, "notfound", &page{Title: "Bad request", Error: "The " + msg + "."})
}

// badScheme answers 400 for an absolute-form request target of a scheme other than
// http or https (gigya.OtherScheme), as the API answers 400001: JSON under the admin
// API, text elsewhere.
func (e *Emulator) badScheme(w http.ResponseWriter, r *http.Request, refusal string) {
	msg := "socius emulator: " + refusal
	if strings.HasPrefix(r.URL.Path, "/_emulator/api/") {
		apiError(w, http.StatusBadRequest, "%s", msg)
		return
	}
	http.Error(w, msg, http.StatusBadRequest)
}

// refuse answers 403: {"error": ...} under the admin API, as its every error, and
// text elsewhere (the console's pages).
func (e *Emulator) refuse(w http.ResponseWriter, r *http.Request, why string) {
	if strings.HasPrefix(r.URL.Path, "/_emulator/api/") {
		apiError(w, http.StatusForbidden, "socius emulator: %s", why)
		return
	}
	http.Error(w, "socius emulator: "+why, http.StatusForbidden)
}

// Reset removes every user of every site (and their tokens); sites and keys stay.
func (e *Emulator) Reset(ctx context.Context) (int, error) {
	return e.cfg.Store.DeleteUsers(ctx, "")
}

// ResetAll resets the users, and also clears the fault rules and the request log and
// puts the clock back to the system time.
func (e *Emulator) ResetAll(ctx context.Context) (int, error) {
	n, err := e.Reset(ctx)
	if err != nil {
		return n, err
	}
	e.Faults.Clear()
	e.Log.Clear()
	e.cfg.Clock.Reset()
	return n, nil
}

// SeedStats counts what a seed loaded.
type SeedStats struct {
	Sites int `json:"sites"`
	Keys  int `json:"keys"`
	Users int `json:"users"`
}

// Seed loads sites, keys and users in the dump format into the store: a site is
// created or updated, a key created or replaced, a user created or replaced. Records
// apply in file order, so a site must come before its keys and users. A record
// without a createdAt is created at now. The first bad line stops the seed, and the
// error names it.
func Seed(ctx context.Context, st socius.Store, r io.Reader, now time.Time) (SeedStats, error) {
	var n SeedStats
	rd := dump.NewReader(r)
	for {
		rec, err := rd.Next()
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		var count *int
		switch {
		case rec.Site != nil:
			if rec.Site.CreatedAt.IsZero() {
				rec.Site.CreatedAt = now
			}
			err = st.PutSite(ctx, rec.Site)
			count = &n.Sites
		case rec.Key != nil:
			if rec.Key.CreatedAt.IsZero() {
				rec.Key.CreatedAt = now
			}
			if err = canonicalMethods(rec.Key); err == nil {
				err = putKey(ctx, st, rec.Key)
			}
			count = &n.Keys
		case rec.User != nil:
			if rec.User.CreatedAt.IsZero() {
				rec.User.CreatedAt = now
			}
			err = st.PutUser(ctx, rec.User)
			count = &n.Users
		}
		if errors.Is(err, socius.ErrNotFound) {
			err = missingSite(rec.Kind(), recAPIKey(rec))
		}
		if err != nil {
			return n, fmt.Errorf("line %d: %w", rec.Line, err)
		}
		if count != nil {
			*count++ // loaded: what failed is not counted
		}
	}
}

// CheckSeed reads a seed as Seed does, writing nothing, and fails with what Seed would
// say of the first line it refuses whatever the store holds: a line that is not a
// record of the dump format, or a key whose methods the server does not serve. A key
// or user whose site no site line before it defines needs the site in the store: for
// each such site, CheckSeed returns the first line that names it, in line order, for
// the caller to check against the store (or against the sites it will have) before
// Seed writes anything.
func CheckSeed(r io.Reader) ([]SiteRef, error) {
	var refs []SiteRef
	named := map[string]bool{} // sites defined by a site line, or already in refs
	rd := dump.NewReader(r)
	for {
		rec, err := rd.Next()
		if errors.Is(err, io.EOF) {
			return refs, nil
		}
		if err != nil {
			return nil, err
		}
		if rec.Site != nil {
			named[rec.Site.APIKey] = true
			continue
		}
		if rec.Key != nil {
			if err := canonicalMethods(rec.Key); err != nil {
				return nil, fmt.Errorf("line %d: %w", rec.Line, err)
			}
		}
		if apiKey := recAPIKey(rec); !named[apiKey] {
			named[apiKey] = true
			refs = append(refs, SiteRef{Line: rec.Line, Kind: rec.Kind(), APIKey: apiKey})
		}
	}
}

// A SiteRef is the first line of a seed that names a site no site line before it
// defines: the line loads only if the store has that site by then.
type SiteRef struct {
	Line   int
	Kind   string // "key" or "user"
	APIKey string
}

// Missing is the error Seed fails with at the line when the store has no such site.
func (r SiteRef) Missing() error {
	return fmt.Errorf("line %d: %w", r.Line, missingSite(r.Kind, r.APIKey))
}

func missingSite(kind, apiKey string) error {
	return fmt.Errorf("%s: no site has apiKey %s (a site line must come before its keys and users)", kind, apiKey)
}

func recAPIKey(rec *dump.Record) string {
	switch {
	case rec.Key != nil:
		return rec.Key.APIKey
	case rec.User != nil:
		return rec.User.APIKey
	}
	return rec.Site.APIKey
}

// canonicalMethods spells a key's methods as the server serves them ("getUserInfo" is
// socialize.getUserInfo, in any letter case), and refuses a method it does not serve:
// a key limited to a misspelt method could call nothing.
func canonicalMethods(k *socius.Key) error {
	methods, err := server.CanonicalMethods(k.Methods)
	if err != nil {
		return fmt.Errorf("key %s: %w", k.UserKey, err)
	}
	k.Methods = methods
	return nil
}

// putKey creates the key, or replaces its secret, methods and public key when the
// userKey exists (its tokens stay, as after a rotation); a userKey of another site is
// deleted, its tokens with it, and created again for this one.
func putKey(ctx context.Context, st socius.Store, k *socius.Key) error {
	err := st.PutKey(ctx, k)
	if errors.Is(err, socius.ErrExists) {
		// The userKey is another site's: it moves, but only to a site that exists
		// (else the line fails and the key stays where it was, tokens and all).
		if _, err := st.Site(ctx, k.APIKey); err != nil {
			return err
		}
		if err := st.DeleteKey(ctx, k.UserKey); err != nil {
			return err
		}
		err = st.CreateKey(ctx, k)
	}
	return err
}

// exportPage is how many users Export reads from the store at a time; tests shorten
// it.
var exportPage = 500

// Export writes every site, key and user of the store in the dump format: each site
// followed by its keys and its users, in UID order. Everything it writes is read from
// one view of the store (socius.OpenView): the sites, keys and users of one moment,
// whatever the server writes meanwhile, however slowly w takes them. The view is
// closed when Export returns.
func Export(ctx context.Context, st socius.Store, w io.Writer) (SeedStats, error) {
	var n SeedStats
	v, err := socius.OpenView(ctx, st)
	if err != nil {
		return n, err
	}
	// A read-only view: closing it cannot lose anything written.
	defer v.Close()
	dw := dump.NewWriter(w)
	sites, err := v.Sites(ctx)
	if err != nil {
		return n, err
	}
	for _, s := range sites {
		if err := dw.WriteSite(s); err != nil {
			return n, err
		}
		n.Sites++
		keys, err := v.Keys(ctx, s.APIKey)
		if err != nil {
			return n, err
		}
		for _, k := range keys {
			if err := dw.WriteKey(k); err != nil {
				return n, err
			}
			n.Keys++
		}
		for u, err := range socius.AllUsers(ctx, v, s.APIKey, exportPage) {
			if err != nil {
				return n, err
			}
			if err := dw.WriteUser(u); err != nil {
				return n, err
			}
			n.Users++
		}
	}
	return n, dw.Flush()
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
