package emulator

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/socius/socius"
	"github.com/socius/socius/dump"
	"github.com/socius/socius/gigya"
	"github.com/socius/socius/internal/iocount"
)

// routes is the emulator's whole route table: the admin API, then the console.
func (e *Emulator) routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /_emulator/api/status", e.apiStatus)
	mux.HandleFunc("GET /_emulator/api/sites", e.apiSites)
	mux.HandleFunc("GET /_emulator/api/users", e.apiUsers)
	mux.HandleFunc("GET /_emulator/api/user", e.apiUser)
	mux.HandleFunc("POST /_emulator/api/reset", e.apiReset)
	mux.HandleFunc("GET /_emulator/api/clock", e.apiClock)
	mux.HandleFunc("POST /_emulator/api/clock", e.apiSetClock)
	mux.HandleFunc("GET /_emulator/api/faults", e.apiFaults)
	mux.HandleFunc("POST /_emulator/api/faults", e.apiAddFault)
	mux.HandleFunc("DELETE /_emulator/api/faults", e.apiClearFaults)
	mux.HandleFunc("DELETE /_emulator/api/faults/{id}", e.apiDeleteFault)
	mux.HandleFunc("GET /_emulator/api/log", e.apiLog)
	mux.HandleFunc("DELETE /_emulator/api/log", e.apiClearLog)
	mux.HandleFunc("GET /_emulator/api/export", e.apiExport)
	mux.HandleFunc("POST /_emulator/api/seed", e.apiSeed)
	mux.HandleFunc("/_emulator/api/", func(w http.ResponseWriter, r *http.Request) {
		if allow := e.allowed(r); allow != nil {
			w.Header().Set("Allow", strings.Join(allow, ", "))
			apiError(w, http.StatusMethodNotAllowed, "%s %s: the endpoint takes %s (see docs/emulator.md)", clip(r.Method, 20), r.URL.Path, strings.Join(allow, " or "))
			return
		}
		apiError(w, http.StatusNotFound, "no such emulator endpoint: %s %s (see docs/emulator.md)", r.Method, r.URL.Path)
	})

	mux.HandleFunc("GET /_emulator/{$}", e.pageOverview)
	mux.HandleFunc("GET /_emulator/users", e.pageUsers)
	mux.HandleFunc("GET /_emulator/user", e.pageUser)
	mux.HandleFunc("GET /_emulator/log", e.pageLog)
	mux.HandleFunc("GET /_emulator/clock", e.pageClock)
	mux.HandleFunc("POST /_emulator/clock", e.form(e.formClock))
	mux.HandleFunc("GET /_emulator/faults", e.pageFaults)
	mux.HandleFunc("POST /_emulator/faults", e.form(e.formAddFault))
	mux.HandleFunc("POST /_emulator/faults/clear", e.form(e.formClearFaults))
	mux.HandleFunc("POST /_emulator/faults/{id}/delete", e.form(e.formDeleteFault))
	mux.HandleFunc("POST /_emulator/reset", e.form(e.formReset))
	mux.Handle("GET /_emulator/static/", http.StripPrefix("/_emulator/", staticFiles(e.pageNotFound)))
	mux.HandleFunc("/_emulator", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, Prefix, http.StatusFound)
	})
	mux.HandleFunc("/_emulator/", e.pageNotFound)
}

// allowed returns the methods the route table serves r's path with, HEAD wherever GET
// (as the mux serves it), when r's method is not among them; nil when it is, or when
// the path is served with none. The catch-alls below would otherwise answer a wrong
// method on an existing path as a path that is not there, where a 405 with Allow says
// what to send.
func (e *Emulator) allowed(r *http.Request) []string {
	var out []string
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		probe := &http.Request{Method: m, URL: r.URL, Host: r.Host, Header: http.Header{}}
		// The catch-alls' patterns have no method; every route's has.
		if _, pattern := e.mux.Handler(probe); strings.Contains(pattern, " ") {
			if m == r.Method {
				return nil // served, and not there: a 404
			}
			out = append(out, m)
		}
	}
	return out
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	// Encoded whole before the status goes out, so that a value that cannot be encoded
	// is a 500 with a reason, not a 200 with an empty body.
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		b.Reset()
		status = http.StatusInternalServerError
		json.NewEncoder(&b).Encode(map[string]string{"error": "the answer could not be encoded: " + err.Error()})
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(b.Bytes())
}

// Time is a time as the admin API gives it: UTC to the millisecond, always three digits
// (2026-11-28T10:05:21.123Z), through gigya.FormatTime as the request log, the console
// and Gigya's answers give theirs, where time.Time's own encoding gives up to nine
// digits, as many as are not zero. Finer than a millisecond is cut in the answer only:
// what the time holds (the clock's nanoseconds) stays as it is. It reads any RFC 3339
// time, as time.Time does, so that what older versions wrote reads as before.
type Time struct{ time.Time }

// MarshalJSON writes the time as a JSON string to the millisecond.
func (t Time) MarshalJSON() ([]byte, error) {
	return json.Marshal(gigya.FormatTime(t.Time))
}

// UnmarshalJSON reads an RFC 3339 time of any precision, as time.Time reads one.
func (t *Time) UnmarshalJSON(b []byte) error { return t.Time.UnmarshalJSON(b) }

// apiError answers {"error": "..."} with the HTTP status.
func apiError(w http.ResponseWriter, status int, format string, args ...any) {
	writeJSON(w, status, map[string]string{"error": fmt.Sprintf(format, args...)})
}

// MaxJSONBody bounds the JSON body of an admin API request (a clock change, a fault
// rule), and MaxSeedBody a seed's, which loads as it is read.
const (
	MaxJSONBody = 1 << 20
	MaxSeedBody = 256 << 20
)

// tooLarge reports whether err is http.MaxBytesReader's, a body over its bound: said
// so with a 413, not as Go's "http: request body too large".
func tooLarge(err error) bool {
	var mb *http.MaxBytesError
	return errors.As(err, &mb)
}

// readJSON decodes a JSON request body into v; it insists on application/json, which a
// page of another site cannot send without a preflight the emulator never grants.
func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	if err := bodyType(r, "the body must be JSON (Content-Type: application/json)", "application/json"); err != nil {
		apiError(w, http.StatusUnsupportedMediaType, "%v", err)
		return false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxJSONBody))
	if tooLarge(err) {
		apiError(w, http.StatusRequestEntityTooLarge, "the body is larger than %d bytes, the most the admin API takes of JSON (a clock change or a fault rule is a few dozen)", MaxJSONBody)
		return false
	}
	if err != nil {
		apiError(w, http.StatusBadRequest, "the body could not be read: %v", err)
		return false
	}
	// As strictly as a call's JSON: one object, each key once (encoding/json would
	// keep the last), nothing after it.
	if k := dump.DuplicateKey(body, ""); k != "" {
		apiError(w, http.StatusBadRequest, "the body gives %q twice", k)
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		apiError(w, http.StatusBadRequest, "%s", jsonProblem(err))
		return false
	}
	if _, err := dec.Token(); err != io.EOF {
		apiError(w, http.StatusBadRequest, "the body has more after its JSON value")
		return false
	}
	return true
}

// Status is the answer of GET /_emulator/api/status.
type Status struct {
	Version string    `json:"version,omitempty"`
	Clock   ClockInfo `json:"clock"`
	Sites   int       `json:"sites"`
	Keys    int       `json:"keys"`
	Users   int       `json:"users"`
	Faults  int       `json:"faults"`
	LogSize int       `json:"logSize"`
	Logged  int64     `json:"logged"` // calls logged since start
}

func (e *Emulator) status(ctx context.Context) (*Status, error) {
	st := &Status{Version: e.cfg.Version, Clock: e.clockInfo(), Faults: len(e.Faults.Rules()), LogSize: e.Log.Size()}
	sites, err := e.cfg.Store.Sites(ctx)
	if err != nil {
		return nil, err
	}
	keys, err := e.cfg.Store.Keys(ctx, "")
	if err != nil {
		return nil, err
	}
	if st.Users, err = e.cfg.Store.CountUsers(ctx, ""); err != nil {
		return nil, err
	}
	st.Sites, st.Keys = len(sites), len(keys)
	_, st.Logged = e.Log.Entries(0, 1)
	return st, nil
}

func (e *Emulator) apiStatus(w http.ResponseWriter, r *http.Request) {
	st, err := e.status(r.Context())
	if err != nil {
		e.internal(w, "status", err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (e *Emulator) internal(w http.ResponseWriter, op string, err error) {
	e.cfg.Logger.Error("emulator: "+op, "err", err)
	apiError(w, http.StatusInternalServerError, "%s failed: %v", op, err)
}

// SiteInfo is a site as the admin API and the console show it: secrets masked.
type SiteInfo struct {
	APIKey    string    `json:"apiKey"`
	Name      string    `json:"name,omitempty"`
	Secret    string    `json:"secret"` // masked
	CreatedAt Time      `json:"createdAt"`
	Users     int       `json:"users"`
	Keys      []KeyInfo `json:"keys"`
}

// KeyInfo is a key of a site, its secret masked.
type KeyInfo struct {
	UserKey   string   `json:"userKey"`
	Secret    string   `json:"secret"` // masked
	Methods   []string `json:"methods,omitempty"`
	CreatedAt Time     `json:"createdAt"`
}

// MaskSecret shows the first 4 characters of a secret and how long it is, enough to
// tell secrets apart and never enough to use one.
func MaskSecret(s string) string {
	if len(s) <= 8 {
		return Masked
	}
	return s[:4] + "…" + " (" + strconv.Itoa(len(s)) + " characters)"
}

func (e *Emulator) sites(ctx context.Context) ([]SiteInfo, error) {
	sites, err := e.cfg.Store.Sites(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]SiteInfo, 0, len(sites))
	for _, s := range sites {
		si := SiteInfo{APIKey: s.APIKey, Name: s.Name, Secret: MaskSecret(s.Secret), CreatedAt: Time{s.CreatedAt.UTC()}, Keys: []KeyInfo{}}
		if si.Users, err = e.cfg.Store.CountUsers(ctx, s.APIKey); err != nil {
			return nil, err
		}
		keys, err := e.cfg.Store.Keys(ctx, s.APIKey)
		if err != nil {
			return nil, err
		}
		for _, k := range keys {
			si.Keys = append(si.Keys, KeyInfo{UserKey: k.UserKey, Secret: MaskSecret(k.Secret), Methods: k.Methods, CreatedAt: Time{k.CreatedAt.UTC()}})
		}
		out = append(out, si)
	}
	return out, nil
}

func (e *Emulator) apiSites(w http.ResponseWriter, r *http.Request) {
	sites, err := e.sites(r.Context())
	if err != nil {
		e.internal(w, "list sites", err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"sites": sites})
}

// UserInfo is a user as the admin API shows it.
type UserInfo struct {
	APIKey    string            `json:"apiKey"`
	UID       string            `json:"UID"`
	Profile   map[string]string `json:"profile"`
	CreatedAt Time              `json:"createdAt"`
	UpdatedAt Time              `json:"updatedAt,omitzero"`
	LoginAt   Time              `json:"loginAt,omitzero"`
	LoggedIn  bool              `json:"loggedIn"`
}

func userInfo(u *socius.User) UserInfo {
	ui := UserInfo{APIKey: u.APIKey, UID: u.UID, Profile: map[string]string{}, CreatedAt: Time{u.CreatedAt.UTC()},
		UpdatedAt: Time{u.UpdatedAt.UTC()}, LoginAt: Time{u.LoginAt.UTC()}, LoggedIn: u.LoggedIn}
	for _, f := range socius.Fields() {
		if v := u.Profile.Get(f); v != "" {
			ui.Profile[f.Name()] = v
		}
	}
	return ui
}

// DefaultSearchLimit and MaxSearchLimit bound a user search.
const (
	DefaultSearchLimit = 100
	MaxSearchLimit     = 1000
)

// SearchUsers returns up to limit users of the site (of every site when apiKey is "")
// whose UID, e-mail, nickname, first or last name (or "first last") contains q, case
// aside (every user when q is ""), and whether there were more. It reads the users
// page by page: the emulator's stores are small.
func (e *Emulator) SearchUsers(ctx context.Context, apiKey, q string, limit int) ([]*socius.User, bool, error) {
	if limit <= 0 {
		limit = DefaultSearchLimit
	}
	var apiKeys []string
	if apiKey != "" {
		apiKeys = []string{apiKey}
	} else {
		sites, err := e.cfg.Store.Sites(ctx)
		if err != nil {
			return nil, false, err
		}
		for _, s := range sites {
			apiKeys = append(apiKeys, s.APIKey)
		}
	}
	q = strings.ToLower(strings.TrimSpace(q))
	var out []*socius.User
	for _, k := range apiKeys {
		for u, err := range socius.AllUsers(ctx, e.cfg.Store, k, 500) {
			if err != nil {
				return nil, false, err
			}
			if !userMatches(u, q) {
				continue
			}
			if len(out) == limit {
				return out, true, nil
			}
			out = append(out, u)
		}
	}
	return out, false, nil
}

func userMatches(u *socius.User, q string) bool {
	if q == "" {
		return true
	}
	p := &u.Profile
	for _, s := range []string{u.UID, p.Get(socius.Email), p.Get(socius.Nickname), p.Get(socius.FirstName),
		p.Get(socius.LastName), p.Get(socius.FirstName) + " " + p.Get(socius.LastName)} {
		if strings.Contains(strings.ToLower(s), q) {
			return true
		}
	}
	return false
}

func intParam(r *http.Request, name string, def, max int) (int, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%s must be a non-negative integer", name)
	}
	if max > 0 && n > max {
		n = max
	}
	return n, nil
}

func (e *Emulator) apiUsers(w http.ResponseWriter, r *http.Request) {
	limit, err := intParam(r, "limit", DefaultSearchLimit, MaxSearchLimit)
	if err != nil {
		apiError(w, http.StatusBadRequest, "%v", err)
		return
	}
	q := r.URL.Query()
	users, more, err := e.SearchUsers(r.Context(), q.Get("apiKey"), q.Get("q"), limit)
	if err != nil {
		e.internal(w, "search users", err)
		return
	}
	list := make([]UserInfo, len(users))
	for i, u := range users {
		list[i] = userInfo(u)
	}
	writeJSON(w, http.StatusOK, map[string]any{"users": list, "more": more})
}

func (e *Emulator) apiUser(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	// Both name the user: without one, the answer is the caller's mistake (400), not
	// a user that is not there (404).
	for _, name := range []string{"apiKey", "UID"} {
		if q.Get(name) == "" {
			apiError(w, http.StatusBadRequest, "%s is missing: give the user's apiKey and UID (/_emulator/api/user?apiKey=...&UID=...)", name)
			return
		}
	}
	u, err := e.cfg.Store.User(r.Context(), q.Get("apiKey"), q.Get("UID"))
	if errors.Is(err, socius.ErrNotFound) {
		apiError(w, http.StatusNotFound, "no user %q in site %q", q.Get("UID"), q.Get("apiKey"))
		return
	}
	if err != nil {
		e.internal(w, "read user", err)
		return
	}
	writeJSON(w, http.StatusOK, userInfo(u))
}

// resetTypes are the Content-Types a reset is taken with: none (it has no body), or
// JSON, as a client that sends every request of the API as JSON may (an empty body, or
// one it does not read); not a form's type or text/plain (bodyType).
var resetTypes = []string{"", "application/json"}

func (e *Emulator) apiReset(w http.ResponseWriter, r *http.Request) {
	if err := bodyType(r, "the reset takes no body: send it without a Content-Type (curl -X POST URL; socius emulator reset)", resetTypes...); err != nil {
		apiError(w, http.StatusUnsupportedMediaType, "%v", err)
		return
	}
	all := false
	if v, ok := r.URL.Query()["all"]; ok {
		var err error
		if all, err = strconv.ParseBool(v[0]); err != nil || len(v) > 1 {
			// A plain reset for a word it does not read would keep the fault rules,
			// the log and the clock that the caller asked to clear.
			if len(v) > 1 {
				apiError(w, http.StatusBadRequest, "all must be true or false (1 or 0), once; it is given %d times", len(v))
			} else {
				apiError(w, http.StatusBadRequest, "all must be true or false (1 or 0), once; got %q", v[0])
			}
			return
		}
	}
	reset := e.Reset
	if all {
		reset = e.ResetAll
	}
	n, err := reset(r.Context())
	if err != nil {
		e.internal(w, "reset", err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"deletedUsers": n, "all": all})
}

// ClockInfo is the emulator's clock as the admin API shows it. Now and System are given
// to the millisecond (see Time); the clock keeps nanoseconds, which Offset and
// OffsetSeconds give in full.
type ClockInfo struct {
	Now           Time    `json:"now"`
	System        Time    `json:"system"`
	Offset        string  `json:"offset"`
	OffsetSeconds float64 `json:"offsetSeconds"`
}

func (e *Emulator) clockInfo() ClockInfo {
	off := e.cfg.Clock.Offset()
	now := time.Now()
	return ClockInfo{Now: Time{now.Add(off).UTC()}, System: Time{now.UTC()}, Offset: off.String(), OffsetSeconds: off.Seconds()}
}

func (e *Emulator) apiClock(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, e.clockInfo())
}

// MaxClockOffset is how far from the system time the emulator's clock may be moved:
// far beyond any token's lifetime, and well inside what a time.Duration holds.
const MaxClockOffset = 100 * 365 * 24 * time.Hour

// EarliestTime and LatestTime bound the time the clock may read: the nonce memory
// keeps expiry times in 32-bit Unix seconds, from 1970 to 2106-02-07, outside which no
// nonce would be forgotten.
var (
	EarliestTime = time.Date(1971, 1, 1, 0, 0, 0, 0, time.UTC)
	LatestTime   = time.Date(2106, 1, 1, 0, 0, 0, 0, time.UTC)
)

// ClockChange is the body of POST /_emulator/api/clock: exactly one of its fields.
type ClockChange struct {
	// Set is the time the clock should read now: RFC 3339, or Unix seconds.
	Set string `json:"set,omitempty"`
	// Advance moves the clock by a Go duration ("90m", "-1h", "720h").
	Advance string `json:"advance,omitempty"`
	// Reset puts the clock back to the system time.
	Reset bool `json:"reset,omitempty"`
}

// Apply changes the clock.
func (c ClockChange) Apply(clock *socius.OffsetClock) error {
	n := 0
	for _, given := range []bool{c.Set != "", c.Advance != "", c.Reset} {
		if given {
			n++
		}
	}
	if n != 1 {
		return errors.New("give exactly one of set, advance and reset")
	}
	within := func(d time.Duration) bool { return d >= -MaxClockOffset && d <= MaxClockOffset }
	switch {
	case c.Set != "":
		t, err := ParseTime(c.Set)
		if err != nil {
			return err
		}
		if !within(time.Until(t)) { // saturates past ±292 years: refused too
			// As given: a time this far out (Unix seconds near the int64 bounds) has no
			// year that formats sensibly.
			return fmt.Errorf("set: %q is more than 100 years from the system time", c.Set)
		}
		if t.After(LatestTime) || t.Before(EarliestTime) {
			return fmt.Errorf("set: %q is outside %s to %s, the times the emulator's clock may read", c.Set, EarliestTime.Format(time.RFC3339), LatestTime.Format(time.RFC3339))
		}
		clock.Set(t)
	case c.Advance != "":
		d, err := time.ParseDuration(strings.TrimSpace(c.Advance))
		if err != nil {
			return fmt.Errorf("advance: not a duration (e.g. 90s, 2h, -30m): %q", c.Advance)
		}
		if !within(d) || !within(clock.Offset()+d) {
			return fmt.Errorf("advance: %v would put the clock more than 100 years from the system time", d)
		}
		if to := clock.Now().Add(d); to.After(LatestTime) || to.Before(EarliestTime) {
			return fmt.Errorf("advance: %v would put the clock outside %s to %s, the times it may read", d, EarliestTime.Format(time.RFC3339), LatestTime.Format(time.RFC3339))
		}
		clock.Advance(d)
	default:
		clock.Reset()
	}
	return nil
}

// ParseTime reads a time as RFC 3339 (or without a zone: UTC), or Unix seconds.
func ParseTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Unix(n, 0), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("set: not a time (RFC 3339 such as 2030-01-01T00:00:00Z, or Unix seconds): %q", s)
}

func (e *Emulator) apiSetClock(w http.ResponseWriter, r *http.Request) {
	var c ClockChange
	if !readJSON(w, r, &c) {
		return
	}
	if err := c.Apply(e.cfg.Clock); err != nil {
		apiError(w, http.StatusBadRequest, "%v", err)
		return
	}
	writeJSON(w, http.StatusOK, e.clockInfo())
}

func (e *Emulator) apiFaults(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"rules": e.Faults.Rules()})
}

func (e *Emulator) apiAddFault(w http.ResponseWriter, r *http.Request) {
	var raw json.RawMessage
	if !readJSON(w, r, &raw) {
		return
	}
	var rule Rule
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rule); err != nil {
		apiError(w, http.StatusBadRequest, "%s", jsonProblem(err))
		return
	}
	// A fraction of 0 reads as no fraction (every call): said 0, it means never.
	var given struct {
		Fraction *float64 `json:"fraction"`
	}
	if json.Unmarshal(raw, &given) == nil && given.Fraction != nil && *given.Fraction == 0 {
		apiError(w, http.StatusBadRequest, "%v", errZeroFraction)
		return
	}
	// What the emulator sets is not the caller's to give (as zero values it may be:
	// a rule read back and sent again).
	if rule.ID != 0 || rule.Remaining != 0 || rule.Hits != 0 || !rule.Created.IsZero() {
		apiError(w, http.StatusBadRequest, "id, remaining, hits and created are the emulator's to set, not a rule's to give")
		return
	}
	added, err := e.Faults.Add(rule)
	if err != nil {
		apiError(w, http.StatusBadRequest, "%v", err)
		return
	}
	writeJSON(w, http.StatusCreated, added)
}

func (e *Emulator) apiClearFaults(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]int{"cleared": e.Faults.Clear()})
}

func (e *Emulator) apiDeleteFault(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.Atoi(r.PathValue("id"))
	if err != nil || !e.Faults.Delete(id) {
		apiError(w, http.StatusNotFound, "no fault rule %q", r.PathValue("id"))
		return
	}
	writeJSON(w, http.StatusOK, map[string]int{"deleted": id})
}

// LogPage is the answer of GET /_emulator/api/log.
type LogPage struct {
	Entries []Entry `json:"entries"`
	// Last is the Seq of the newest call logged: pass it as after to get only newer
	// calls.
	Last int64 `json:"last"`
	Size int   `json:"size"`
}

// MaxWait bounds the long poll of GET /_emulator/api/log?wait=, below the server's
// write timeout.
const MaxWait = 20 * time.Second

func (e *Emulator) apiLog(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	after, err := strconv.ParseInt(q.Get("after"), 10, 64)
	if q.Get("after") == "" {
		after, err = 0, nil
	}
	if err != nil {
		apiError(w, http.StatusBadRequest, "after must be an integer (a seq)")
		return
	}
	limit, err := intParam(r, "limit", 0, 0)
	if err != nil {
		apiError(w, http.StatusBadRequest, "%v", err)
		return
	}
	var wait time.Duration
	if v := q.Get("wait"); v != "" {
		if wait, err = time.ParseDuration(v); err != nil || wait < 0 {
			apiError(w, http.StatusBadRequest, "wait must be a duration such as 10s")
			return
		}
		wait = min(wait, e.beforeWriteTimeout(MaxWait))
	}
	entries, last := e.Log.Wait(r.Context(), after, limit, wait)
	if entries == nil {
		entries = []Entry{}
	}
	writeJSON(w, http.StatusOK, LogPage{Entries: entries, Last: last, Size: e.Log.Size()})
}

func (e *Emulator) apiClearLog(w http.ResponseWriter, r *http.Request) {
	e.Log.Clear()
	writeJSON(w, http.StatusOK, map[string]bool{"cleared": true})
}

// DefaultExportIdle is how long an export over the admin API waits for its client to
// take a write when the listeners have no write timeout (Config.WriteTimeout 0).
const DefaultExportIdle = 30 * time.Second

// exportIdle is how long an export over the admin API waits for its client to take a
// write before it gives up: the listeners' write timeout, per write rather than for
// the whole answer.
func (e *Emulator) exportIdle() time.Duration {
	return cmp.Or(e.cfg.WriteTimeout, DefaultExportIdle)
}

// idleWriter gives each write to w, an http.ResponseWriter, its own write deadline,
// idle from its start: a client that takes the export however slowly, a little at a
// time, gets all of it, and one that takes nothing for idle is cut off.
type idleWriter struct {
	w    io.Writer
	rc   *http.ResponseController
	idle time.Duration
}

func (iw idleWriter) Write(p []byte) (int, error) {
	iw.rc.SetWriteDeadline(time.Now().Add(iw.idle))
	return iw.w.Write(p)
}

// apiExport writes the export. The listeners' deadlines are for API calls: the read
// deadline, once passed, cancels the request's context (net/http's background read of
// the connection fails), and the write deadline ends the answer, so an export longer
// than them (a large store, a slow client) was cut off half way. Here the read
// deadline goes (a client that hangs up still cancels the context) and the write
// deadline is per write (idleWriter): a stalled client holds the export's view (a read
// transaction) at most exportIdle after its last write.
func (e *Emulator) apiExport(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Disposition", `attachment; filename="socius-export.jsonl"`)
	e.exports.Add(1)
	defer e.exports.Add(-1)
	rc := http.NewResponseController(w)
	rc.SetReadDeadline(time.Time{})
	idle := e.exportIdle()
	rc.SetWriteDeadline(time.Now().Add(idle))
	cw := &iocount.Writer{W: idleWriter{w, rc, idle}}
	if _, err := Export(r.Context(), e.cfg.Store, cw); err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			// The client stopped reading: cut off, so that its view is let go.
			e.cfg.Logger.Warn(fmt.Sprintf("emulator: export cut off: its client took nothing for %v", idle), "bytes", cw.N)
			panic(http.ErrAbortHandler)
		}
		if r.Context().Err() != nil {
			// The client went away (it read what it wanted): no fault of the store.
			e.cfg.Logger.Debug("emulator: export abandoned by the client", "err", err)
			panic(http.ErrAbortHandler)
		}
		if cw.N == 0 {
			e.internal(w, "export", err) // logs it
			return
		}
		e.cfg.Logger.Error("emulator: export", "err", err)
		// The 200 is out: the client must still see that the export is cut short,
		// which a connection closed without the end of the chunked body tells it
		// (an unexpected EOF), never a clean end.
		panic(http.ErrAbortHandler)
	}
}

// SeedTypes are the Content-Types a seed is taken in: JSON lines, under the names in
// use for them (application/x-ndjson, as the export is sent, first), or JSON (a seed
// of one line is a JSON object). Not text/plain, a form's type or none, which a page of
// another site could send to the emulator without asking (bodyType): a seed writes
// users and keys into the developer's emulator.
var SeedTypes = []string{"application/x-ndjson", "application/jsonl", "application/x-jsonlines", "application/json"}

func (e *Emulator) apiSeed(w http.ResponseWriter, r *http.Request) {
	if err := bodyType(r, "send the seed (JSON lines) as Content-Type: application/x-ndjson (or application/jsonl, application/json): "+
		"curl -H 'Content-Type: application/x-ndjson' --data-binary @seed.jsonl URL, or socius emulator seed FILE", SeedTypes...); err != nil {
		apiError(w, http.StatusUnsupportedMediaType, "seed: %v", err)
		return
	}
	// A large seed (a hundred thousand users and more) takes longer to load than the
	// listener's read and write timeouts, which are for API calls: this request has
	// none (the emulator's listeners are local; the client may hang up).
	e.seeds.Add(1)
	defer e.seeds.Add(-1)
	rc := http.NewResponseController(w)
	rc.SetReadDeadline(time.Time{})
	rc.SetWriteDeadline(time.Time{})
	n, err := Seed(r.Context(), e.cfg.Store, http.MaxBytesReader(w, r.Body, MaxSeedBody), e.cfg.Clock.Now())
	if tooLarge(err) {
		writeJSON(w, http.StatusRequestEntityTooLarge, map[string]any{"error": fmt.Sprintf("seed: the body is larger than %d bytes (%d MiB), "+
			"the most one request takes: the lines before the cut are loaded (see loaded); send the rest, from the first line not loaded, "+
			"as another seed (split the file at a line's end), or load the file at the start: socius serve --emulator --seed FILE", MaxSeedBody, MaxSeedBody>>20), "loaded": n})
		return
	}
	if err != nil {
		// A bad line is the caller's (400); the store failing is not (500).
		status := http.StatusBadRequest
		var ge *socius.Error
		if errors.As(err, &ge) && ge.Code == socius.CodeDatabaseError {
			status = http.StatusInternalServerError
		}
		writeJSON(w, status, map[string]any{"error": "seed: " + err.Error(), "loaded": n})
		return
	}
	writeJSON(w, http.StatusOK, n)
}

// jsonProblem says what is wrong with a request body that did not decode, in the
// words of the API's JSON, not of Go's types (encoding/json names the struct field and
// its Go type).
func jsonProblem(err error) string {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.Is(err, io.EOF):
		return "the body is empty: a JSON object was expected"
	case errors.As(err, &se):
		return fmt.Sprintf("the body is not JSON: %s (at byte %d)", strings.TrimPrefix(se.Error(), "json: "), se.Offset)
	case errors.As(err, &te) && te.Field == "":
		return fmt.Sprintf("the body must be a JSON object, not %s", jsonKind(te.Value))
	case errors.As(err, &te):
		want := "another kind of value"
		switch te.Type.Kind() {
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			want = "a whole number"
		case reflect.Float32, reflect.Float64:
			want = "a number"
		case reflect.String:
			want = "a string"
		case reflect.Bool:
			want = "true or false"
		case reflect.Slice, reflect.Array:
			want = "an array"
		case reflect.Struct, reflect.Map:
			want = "an object"
		}
		if te.Type == reflect.TypeFor[Duration]() {
			want = "a duration such as \"250ms\" or \"2s\""
		}
		return fmt.Sprintf("%s must be %s, not %s", te.Field, want, jsonKind(te.Value))
	}
	msg := strings.TrimPrefix(err.Error(), "json: ")
	return "the body is not the JSON expected: " + msg
}

// jsonKind names the JSON value encoding/json describes as value ("string", "number",
// "number 1e3", "array", ...).
func jsonKind(value string) string {
	switch value {
	case "array", "object":
		return "an " + value
	case "string", "number":
		return "a " + value
	case "bool":
		return "true or false"
	}
	return "the " + value
}
