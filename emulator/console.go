package emulator

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/socius/socius"
	"github.com/socius/socius/gigya"
)

// The console: server-rendered pages (html/template), one stylesheet and one small
// script, all embedded in the binary.

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// staticFiles serves the embedded files under static/ (the request's path with the
// prefix stripped) and answers notFound for a folder: a file server lists a folder's
// files, which are the console's to name, not a page of it.
func staticFiles(notFound http.HandlerFunc) http.Handler {
	sub, _ := fs.Sub(staticFS, ".")
	fsrv := http.FileServerFS(sub)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.Trim(r.URL.Path, "/")
		if fi, err := fs.Stat(sub, name); strings.HasSuffix(r.URL.Path, "/") || err == nil && fi.IsDir() {
			r.URL.Path = Prefix + r.URL.Path // as asked, for the page
			notFound(w, r)
			return
		}
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		fsrv.ServeHTTP(w, r)
	})
}

// FaultCodes are the error codes the console offers for fault rules: the failures a
// client of Gigya should survive.
var FaultCodes = []int{403048, 500001, 500026, 500028, 504001, 504002, 409030, 403002}

// Methods are the methods the console suggests for fault rules and log filters.
var Methods = []string{
	"socialize.notifyLogin", "socialize.setUserInfo", "socialize.getUserInfo", "socialize.deleteAccount",
	"socialize.logout", "socialize.setUID", "socialize.notifyRegistration", "socialize.getToken",
}

var funcs = template.FuncMap{
	"message": gigya.Message,
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return t.UTC().Format("2006-01-02 15:04:05.000 UTC")
	},
	"iso":         gigya.FormatTime, // as the admin API gives a time (see Time)
	"ms":          func(f float64) string { return strconv.FormatFloat(f, 'f', 1, 64) + " ms" },
	"displayName": DisplayName,
	"avatar":      Avatar,
	"fieldNames": func() []string {
		var out []string
		for _, f := range socius.Fields() {
			out = append(out, f.Name())
		}
		return out
	},
	"profile": func(u *socius.User, name string) string {
		f, _ := socius.ParseField(name)
		return u.Profile.Get(f)
	},
	"email":    func(u *socius.User) string { return u.Profile.Get(socius.Email) },
	"pct":      func(f float64) string { return strconv.FormatFloat(f*100, 'f', -1, 64) + " %" },
	"add":      func(a, b int) int { return a + b },
	"selected": selected,
}

var pages = parsePages()

func parsePages() map[string]*template.Template {
	layout := template.Must(template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html"))
	out := map[string]*template.Template{}
	names, _ := fs.Glob(templateFS, "templates/*.html")
	for _, name := range names {
		base := strings.TrimSuffix(strings.TrimPrefix(name, "templates/"), ".html")
		if base == "layout" {
			continue
		}
		out[base] = template.Must(template.Must(layout.Clone()).ParseFS(templateFS, name))
	}
	return out
}

// page is what every console page renders: the layout's fields and the page's data.
type page struct {
	Title string
	Page  string // which page, for the navigation
	Clock ClockInfo
	Flash string
	Error string
	Data  any
}

// render writes a page. Pages are rendered into a buffer first so that a template
// error never leaves half a page.
func (e *Emulator) render(w http.ResponseWriter, status int, name string, p *page) {
	p.Page = name
	p.Clock = e.clockInfo()
	var buf bytes.Buffer
	if err := pages[name].ExecuteTemplate(&buf, "layout", p); err != nil {
		e.cfg.Logger.Error("emulator: console page "+name, "err", err)
		http.Error(w, "console page failed: "+err.Error(), http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	// Profile photos come from wherever the users' URLs point, as in the real
	// Comments plugin; nothing else leaves the emulator.
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' http: https:; "+
		"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

func (e *Emulator) pageError(w http.ResponseWriter, op string, err error) {
	e.cfg.Logger.Error("emulator: "+op, "err", err)
	e.render(w, http.StatusInternalServerError, "notfound", &page{Title: "Error", Error: op + " failed: " + err.Error()})
}

func (e *Emulator) pageNotFound(w http.ResponseWriter, r *http.Request) {
	if allow := e.allowed(r); allow != nil {
		w.Header().Set("Allow", strings.Join(allow, ", "))
		e.render(w, http.StatusMethodNotAllowed, "notfound", &page{Title: "Method not allowed",
			Error: "The console page at " + r.URL.Path + " takes " + strings.Join(allow, " or ") + ", not " + clip(r.Method, 20) + "."})
		return
	}
	e.render(w, http.StatusNotFound, "notfound", &page{Title: "Not found", Error: "There is no console page at " + r.URL.Path + "."})
}

// flash turns the outcome a form handler put in the redirect's query into a message:
// from a fixed set, so that a link cannot make the console say anything else.
func flash(q url.Values) string {
	n := q.Get("n")
	num, err := strconv.Atoi(n)
	if err != nil {
		n = "?"
	}
	// "1 user", "2 users", "? users"
	counted := func(noun string) string {
		if err == nil && num == 1 {
			return n + " " + noun
		}
		return n + " " + noun + "s"
	}
	switch q.Get("done") {
	case "reset":
		return "Deleted " + counted("user") + ". Sites and keys are kept."
	case "reset-all":
		return "Deleted " + counted("user") + ", cleared the fault rules and the request log, and reset the clock."
	case "clock":
		return "The clock was changed."
	case "fault-added":
		return "Added fault rule " + n + "."
	case "fault-deleted":
		return "Deleted fault rule " + n + "."
	case "faults-cleared":
		return "Cleared " + counted("fault rule") + "."
	}
	return ""
}

// seeOther redirects after a successful form (post/redirect/get).
func seeOther(w http.ResponseWriter, r *http.Request, path, done string, n int) {
	http.Redirect(w, r, path+"?done="+done+"&n="+strconv.Itoa(n), http.StatusSeeOther)
}

type overviewData struct {
	Status *Status
	Sites  []SiteInfo
}

func (e *Emulator) pageOverview(w http.ResponseWriter, r *http.Request) {
	st, err := e.status(r.Context())
	if err != nil {
		e.pageError(w, "status", err)
		return
	}
	sites, err := e.sites(r.Context())
	if err != nil {
		e.pageError(w, "list sites", err)
		return
	}
	e.render(w, http.StatusOK, "overview", &page{Title: "Overview", Flash: flash(r.URL.Query()), Data: overviewData{Status: st, Sites: sites}})
}

// form serves a console form's POST with h once consoleForm lets it through, and
// answers 403 (text, as every refusal of the console) otherwise.
func (e *Emulator) form(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := consoleForm(r); err != nil {
			e.refuse(w, r, err.Error())
			return
		}
		// The console's own bound, which ParseForm reports as a *http.MaxBytesError
		// (formError), where its own 10 MB one is an error of no type.
		r.Body = http.MaxBytesReader(w, r.Body, MaxFormBody)
		h(w, r)
	}
}

func (e *Emulator) formReset(w http.ResponseWriter, r *http.Request) {
	// The form's checkbox sends "on"; a value it does not read is refused, as the
	// API refuses it, rather than taken for either reset: a body that does not decode
	// too, whose "all" r.PostFormValue drops (a plain reset for all=%zz).
	if err := r.ParseForm(); err != nil {
		e.render(w, http.StatusBadRequest, "notfound", &page{Title: "Reset", Error: "Nothing was reset: " + formError(err).Error() + "."})
		return
	}
	var all bool
	switch v := r.PostFormValue("all"); strings.ToLower(v) {
	case "", "0", "false", "off":
	case "on", "1", "true":
		all = true
	default:
		e.render(w, http.StatusBadRequest, "notfound", &page{Title: "Reset", Error: "Nothing was reset: all must be on, or left out; got " + strconv.Quote(v) + "."})
		return
	}
	reset, done := e.Reset, "reset"
	if all {
		reset, done = e.ResetAll, "reset-all"
	}
	n, err := reset(r.Context())
	if err != nil {
		e.pageError(w, "reset", err)
		return
	}
	seeOther(w, r, "/_emulator/", done, n)
}

type usersData struct {
	Query  string
	APIKey string
	Sites  []*socius.Site
	Users  []*socius.User
	More   bool
}

func (e *Emulator) pageUsers(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	d := usersData{Query: q.Get("q"), APIKey: q.Get("apiKey")}
	var err error
	if d.Sites, err = e.cfg.Store.Sites(r.Context()); err != nil {
		e.pageError(w, "list sites", err)
		return
	}
	if d.Users, d.More, err = e.SearchUsers(r.Context(), d.APIKey, d.Query, DefaultSearchLimit); err != nil {
		e.pageError(w, "search users", err)
		return
	}
	e.render(w, http.StatusOK, "users", &page{Title: "Users", Data: d})
}

type userData struct {
	User  *socius.User
	Site  *socius.Site
	Calls []Entry
}

func (e *Emulator) pageUser(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	// As the admin API answers it: a link without both is a bad link, not a user that
	// is not there.
	for _, name := range []string{"apiKey", "UID"} {
		if q.Get(name) == "" {
			e.render(w, http.StatusBadRequest, "notfound", &page{Title: "Which user?",
				Error: "The link gives no " + name + ": a user page needs the user's apiKey and UID. Find the user on the Users page."})
			return
		}
	}
	u, err := e.cfg.Store.User(r.Context(), q.Get("apiKey"), q.Get("UID"))
	if errors.Is(err, socius.ErrNotFound) {
		e.render(w, http.StatusNotFound, "notfound", &page{Title: "No such user",
			Error: "There is no user " + strconv.Quote(q.Get("UID")) + " in site " + strconv.Quote(q.Get("apiKey")) + "."})
		return
	}
	if err != nil {
		e.pageError(w, "read user", err)
		return
	}
	site, err := e.cfg.Store.Site(r.Context(), u.APIKey)
	if err != nil {
		e.pageError(w, "read site", err)
		return
	}
	d := userData{User: u, Site: site}
	entries, _ := e.Log.Entries(0, 0)
	for i := len(entries) - 1; i >= 0 && len(d.Calls) < 20; i-- {
		c := &entries[i]
		if c.APIKey != u.APIKey {
			continue
		}
		uid, _ := c.Param("UID")
		siteUID, _ := c.Param("siteUID")
		if uid == u.UID || siteUID == u.UID {
			d.Calls = append(d.Calls, *c)
		}
	}
	e.render(w, http.StatusOK, "user", &page{Title: "User " + u.UID, Data: d})
}

// DisplayName is the name the Gigya Comments plugin shows for a user: the nickname,
// else first and last name; Socius falls back to the UID.
func DisplayName(u *socius.User) string {
	if n := strings.TrimSpace(u.Profile.Get(socius.Nickname)); n != "" {
		return n
	}
	if n := strings.TrimSpace(u.Profile.Get(socius.FirstName) + " " + u.Profile.Get(socius.LastName)); n != "" {
		return n
	}
	return u.UID
}

// Avatar is the picture the Comments plugin shows: the thumbnail, else the photo, else
// a neutral silhouette.
func Avatar(u *socius.User) string {
	for _, f := range []socius.Field{socius.ThumbnailURL, socius.PhotoURL} {
		if v := u.Profile.Get(f); strings.HasPrefix(v, "https://") || strings.HasPrefix(v, "http://") {
			return v
		}
	}
	return "/_emulator/static/avatar.svg"
}

type logData struct {
	Entries []Entry
	Last    int64
	Size    int
	Method  string
	Failed  bool
	Methods []string
}

func (e *Emulator) pageLog(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	d := logData{Method: MethodName(q.Get("method")), Failed: q.Get("failed") != "", Size: e.Log.Size(), Methods: Methods}
	all, last := e.Log.Entries(0, 0)
	d.Last = last
	for i := len(all) - 1; i >= 0 && len(d.Entries) < 200; i-- { // newest first
		c := all[i]
		if d.Method != "" && !strings.EqualFold(c.Method, d.Method) || d.Failed && c.ErrorCode == 0 {
			continue
		}
		d.Entries = append(d.Entries, c)
	}
	e.render(w, http.StatusOK, "log", &page{Title: "Request log", Data: d})
}

func (e *Emulator) pageClock(w http.ResponseWriter, r *http.Request) {
	e.render(w, http.StatusOK, "clock", &page{Title: "Clock", Flash: flash(r.URL.Query())})
}

func (e *Emulator) formClock(w http.ResponseWriter, r *http.Request) {
	var c ClockChange
	if err := r.ParseForm(); err != nil {
		// r.PostFormValue drops what does not decode, and keeps the rest.
		e.render(w, http.StatusBadRequest, "clock", &page{Title: "Clock", Error: "The clock was not changed: " + formError(err).Error() + "."})
		return
	}
	switch r.PostFormValue("action") {
	case "set":
		c.Set = r.PostFormValue("set")
		if c.Set == "" {
			c.Set = " " // an empty time is an error, not "no change"
		}
	case "advance":
		c.Advance = r.PostFormValue("advance")
		if c.Advance == "" {
			c.Advance = " "
		}
	case "reset":
		c.Reset = true
	}
	if err := c.Apply(e.cfg.Clock); err != nil {
		e.render(w, http.StatusBadRequest, "clock", &page{Title: "Clock", Error: err.Error()})
		return
	}
	seeOther(w, r, "/_emulator/clock", "clock", 0)
}

type faultsData struct {
	Rules   []Rule
	Sites   []*socius.Site
	Codes   []gigya.CodeInfo
	Methods []string
	Form    url.Values
}

func (e *Emulator) faultsData(ctx context.Context, form url.Values) (faultsData, error) {
	d := faultsData{Rules: e.Faults.Rules(), Methods: Methods, Form: form}
	for _, c := range FaultCodes {
		info, _ := gigya.LookupCode(c)
		d.Codes = append(d.Codes, info)
	}
	var err error
	d.Sites, err = e.cfg.Store.Sites(ctx)
	return d, err
}

func (e *Emulator) pageFaults(w http.ResponseWriter, r *http.Request) {
	d, err := e.faultsData(r.Context(), nil)
	if err != nil {
		e.pageError(w, "list sites", err)
		return
	}
	e.render(w, http.StatusOK, "faults", &page{Title: "Fault injection", Flash: flash(r.URL.Query()), Data: d})
}

func (e *Emulator) formAddFault(w http.ResponseWriter, r *http.Request) {
	rule, err := ruleFromForm(r)
	if err == nil {
		rule, err = e.Faults.Add(rule)
	}
	if err != nil {
		d, derr := e.faultsData(r.Context(), r.PostForm)
		if derr != nil {
			e.pageError(w, "list sites", derr)
			return
		}
		e.render(w, http.StatusBadRequest, "faults", &page{Title: "Fault injection", Error: "The rule was not added: " + err.Error(), Data: d})
		return
	}
	seeOther(w, r, "/_emulator/faults", "fault-added", rule.ID)
}

// errFormEncoding says that a console form's body does not decode, where net/url's
// words (invalid URL escape "%zz") name no field of the form.
var errFormEncoding = errors.New("the form's data is not URL-encoded (a % not followed by two hex digits, or a ';' between fields)")

// MaxFormBody bounds the body of a console form (form), whose fields are a few dozen
// bytes.
const MaxFormBody = 1 << 20

// formError says why r.ParseForm refused a console form: a body over MaxFormBody, or
// one that does not decode (errFormEncoding). The first was said as the second.
func formError(err error) error {
	if tooLarge(err) {
		return fmt.Errorf("the form is too large: more than %d bytes (1 MiB), the most a console form takes", MaxFormBody)
	}
	return errFormEncoding
}

// ruleFromForm reads the console's add-a-rule form.
func ruleFromForm(r *http.Request) (Rule, error) {
	var rule Rule
	if err := r.ParseForm(); err != nil {
		return rule, formError(err)
	}
	f := r.PostForm
	rule.Method = f.Get("method")
	rule.APIKey = f.Get("apiKey")
	code := strings.TrimSpace(f.Get("otherCode"))
	if code == "" {
		code = f.Get("errorCode")
	}
	var err error
	if code != "" {
		if rule.Code, err = strconv.Atoi(code); err != nil {
			return rule, errors.New("the error code must be a number such as 403048")
		}
	}
	if v := strings.TrimSpace(f.Get("delay")); v != "" {
		if err := rule.Delay.UnmarshalText([]byte(v)); err != nil {
			return rule, err
		}
	}
	if v := strings.TrimSpace(f.Get("count")); v != "" {
		if rule.Count, err = strconv.Atoi(v); err != nil {
			return rule, errors.New("count must be a whole number")
		}
	}
	if v := strings.TrimSpace(f.Get("fraction")); v != "" {
		pct, err := strconv.ParseFloat(strings.TrimSuffix(v, "%"), 64)
		if err != nil || !(pct > 0 && pct <= 100) { // NaN too
			return rule, errors.New("the share of calls must be a percentage above 0 and at most 100 (leave it empty for every call)")
		}
		rule.Fraction = pct / 100
	}
	return rule, nil
}

func (e *Emulator) formClearFaults(w http.ResponseWriter, r *http.Request) {
	seeOther(w, r, "/_emulator/faults", "faults-cleared", e.Faults.Clear())
}

func (e *Emulator) formDeleteFault(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.Atoi(r.PathValue("id"))
	if err != nil || !e.Faults.Delete(id) {
		e.render(w, http.StatusNotFound, "notfound", &page{Title: "No such rule", Error: "There is no fault rule " + strconv.Quote(r.PathValue("id")) + "."})
		return
	}
	seeOther(w, r, "/_emulator/faults", "fault-deleted", id)
}

// selected reports whether v is among the form's values of name (for re-rendering a
// refused form).
func selected(form url.Values, name, v string) bool { return slices.Contains(form[name], v) }
