// Package dump reads and writes Socius data as JSON lines, one object per line: the
// format of `socius user export` and `socius user import`, and of the emulator's seed
// and export files.
//
// Each line has a "kind": "site", "key" or "user" (a line without a kind is a user, so
// a user export is just users). Times are RFC 3339 in UTC with milliseconds; a zero
// time is left out. A user's profile holds only fields with data, age as a number:
//
//	{"kind":"site","apiKey":"3_abc","secret":"c2Vj...","name":"shop","createdAt":"2026-11-28T10:00:00.000Z"}
//	{"kind":"key","userKey":"AKey1","apiKey":"3_abc","secret":"dXNl...","methods":["socialize.getUserInfo"],"createdAt":"..."}
//	{"kind":"user","apiKey":"3_abc","UID":"u1","profile":{"firstName":"David","age":30},"createdAt":"...","updatedAt":"...","loginAt":"...","loggedIn":true}
//
// Secrets are written in clear: a dump is as sensitive as the store itself.
package dump

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/socius/socius"
	"github.com/socius/socius/internal/errtext"
)

// Kinds of record.
const (
	KindSite = "site"
	KindKey  = "key"
	KindUser = "user"
)

// MaxLine is the longest line a Reader accepts.
const MaxLine = 1 << 20

// timeLayout is how times are written.
const timeLayout = "2006-01-02T15:04:05.000Z07:00"

// line is the JSON shape of every record; fields of other kinds stay empty.
type line struct {
	Kind      string         `json:"kind"`
	APIKey    string         `json:"apiKey,omitempty"`
	UserKey   string         `json:"userKey,omitempty"`
	UID       string         `json:"UID,omitempty"`
	Secret    string         `json:"secret,omitempty"`
	Name      string         `json:"name,omitempty"`
	Methods   []string       `json:"methods,omitempty"`
	PublicKey string         `json:"publicKey,omitempty"`
	Profile   map[string]any `json:"profile,omitempty"`
	CreatedAt string         `json:"createdAt,omitempty"`
	UpdatedAt string         `json:"updatedAt,omitempty"`
	LoginAt   string         `json:"loginAt,omitempty"`
	LoggedIn  bool           `json:"loggedIn,omitempty"`
}

// A Writer writes records, one line each.
type Writer struct {
	w   *bufio.Writer
	buf bytes.Buffer
	enc *json.Encoder
}

// NewWriter returns a Writer; call Flush when done.
func NewWriter(w io.Writer) *Writer {
	d := &Writer{w: bufio.NewWriter(w)}
	d.enc = json.NewEncoder(&d.buf)
	d.enc.SetEscapeHTML(false)
	return d
}

func (d *Writer) write(l *line) error {
	d.buf.Reset()
	if err := d.enc.Encode(l); err != nil {
		return err
	}
	_, err := d.w.Write(d.buf.Bytes())
	return err
}

// Flush writes out what is buffered.
func (d *Writer) Flush() error { return d.w.Flush() }

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(timeLayout)
}

// WriteSite writes a site record.
func (d *Writer) WriteSite(s *socius.Site) error {
	return d.write(&line{Kind: KindSite, APIKey: s.APIKey, Secret: s.Secret, Name: s.Name, CreatedAt: formatTime(s.CreatedAt)})
}

// WriteKey writes a key record.
func (d *Writer) WriteKey(k *socius.Key) error {
	return d.write(&line{Kind: KindKey, UserKey: k.UserKey, APIKey: k.APIKey, Secret: k.Secret, Methods: k.Methods,
		PublicKey: k.PublicKey, CreatedAt: formatTime(k.CreatedAt)})
}

// WriteUser writes a user record.
func (d *Writer) WriteUser(u *socius.User) error {
	l := &line{Kind: KindUser, APIKey: u.APIKey, UID: u.UID, CreatedAt: formatTime(u.CreatedAt),
		UpdatedAt: formatTime(u.UpdatedAt), LoginAt: formatTime(u.LoginAt), LoggedIn: u.LoggedIn}
	for _, f := range socius.Fields() {
		v := u.Profile[f]
		if v == "" {
			continue
		}
		if l.Profile == nil {
			l.Profile = make(map[string]any)
		}
		if f == socius.Age {
			n, err := strconv.Atoi(v)
			if err != nil {
				return fmt.Errorf("dump: user %s has a bad age %q", u.UID, v)
			}
			l.Profile[f.Name()] = n
		} else {
			l.Profile[f.Name()] = v
		}
	}
	return d.write(l)
}

// A Record is one decoded line: exactly one of Site, Key and User is set.
type Record struct {
	Line int // 1-based line number
	Site *socius.Site
	Key  *socius.Key
	User *socius.User
}

// Kind returns the record's kind.
func (r *Record) Kind() string {
	switch {
	case r.Site != nil:
		return KindSite
	case r.Key != nil:
		return KindKey
	}
	return KindUser
}

// A Reader reads records. A bad line is reported as a *LineError and reading can go on.
type Reader struct {
	br   *bufio.Reader
	buf  []byte // the line being read
	line int
}

// NewReader returns a Reader.
func NewReader(r io.Reader) *Reader {
	return &Reader{br: bufio.NewReaderSize(r, 64<<10)}
}

// LineError is a bad line; reading may continue after it.
type LineError struct {
	Line int
	Err  error
}

func (e *LineError) Error() string { return fmt.Sprintf("line %d: %v", e.Line, e.Err) }
func (e *LineError) Unwrap() error { return e.Err }

// Next returns the next record, io.EOF at the end, a *LineError for a bad line (one
// longer than MaxLine too; call Next again to go on), or another error when the input
// itself fails (a read error) and reading cannot go on.
func (d *Reader) Next() (*Record, error) {
	for {
		text, tooLong, err := d.readLine()
		if err != nil {
			return nil, err
		}
		d.line++
		if tooLong {
			return nil, &LineError{Line: d.line, Err: fmt.Errorf("longer than %d bytes", MaxLine)}
		}
		if d.line == 1 {
			// A byte order mark, which some editors put before UTF-8.
			text = bytes.TrimPrefix(text, []byte("\xef\xbb\xbf"))
		}
		text = bytes.TrimSpace(text)
		if len(text) == 0 {
			continue
		}
		rec, err := decode(text)
		if err != nil {
			return nil, &LineError{Line: d.line, Err: err}
		}
		rec.Line = d.line
		return rec, nil
	}
}

// readLine reads the next line, without its newline, and whether it was longer than
// MaxLine (then its text is skipped, never held whole); io.EOF when there is none.
func (d *Reader) readLine() (text []byte, tooLong bool, err error) {
	d.buf = d.buf[:0]
	read := false
	for {
		chunk, err := d.br.ReadSlice('\n')
		read = read || len(chunk) > 0
		if !tooLong {
			if len(d.buf)+len(chunk) > MaxLine+2 { // +2: the line's end, \r\n
				tooLong, d.buf = true, d.buf[:0]
			} else {
				d.buf = append(d.buf, chunk...)
			}
		}
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case err == io.EOF && !read:
			return nil, false, io.EOF
		case err != nil && err != io.EOF:
			return nil, false, err
		}
		text = bytes.TrimSuffix(bytes.TrimSuffix(d.buf, []byte("\n")), []byte("\r"))
		return text, tooLong || len(text) > MaxLine, nil
	}
}

// jsonProblem says what encoding/json found wrong with a line, in the words of the
// format rather than of Go's types.
func jsonProblem(err error) string {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te) && te.Field == "":
		return fmt.Sprintf("a line is one JSON object, not %s", jsonKind(te.Value))
	case errors.As(err, &te):
		want := map[string]string{"profile": "an object", "methods": "a list of strings", "loggedIn": "true or false"}[te.Field]
		if want == "" {
			want = "a string"
		}
		return fmt.Sprintf("%s must be %s, not %s", te.Field, want, jsonKind(te.Value))
	case errors.As(err, &se) && strings.HasSuffix(se.Error(), "exceeded max depth"):
		// JSON all the same: encoding/json stops at its scanner's depth.
		return fmt.Sprintf("a value is nested more than %d deep (at byte %d)", maxDepth, se.Offset)
	case errors.As(err, &se):
		return fmt.Sprintf("not JSON (at byte %d)", se.Offset)
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
		return "the JSON object is cut short"
	}
	// What is left: an unknown field ("json: unknown field \"x\""), its name clipped.
	msg := strings.TrimPrefix(err.Error(), "json: ")
	if rest, ok := strings.CutPrefix(msg, "unknown field "); ok {
		if name, err := strconv.Unquote(rest); err == nil {
			return "unknown field " + quote(name)
		}
	}
	return msg
}

// maxQuoted is the most of a refused value that a bad line's error quotes: a line of
// a megabyte whose apiKey (or a field's name, a time) is the megabyte said it whole.
const maxQuoted = 64

// quote quotes s as %q does, clipped to maxQuoted bytes (errtext.Quote).
func quote(s string) string { return errtext.Quote(s, maxQuoted) }

// jsonKind names a JSON value's kind as encoding/json reports it (UnmarshalTypeError.Value).
func jsonKind(v string) string {
	switch {
	case v == "array":
		return "a list"
	case v == "object":
		return "an object"
	case v == "string":
		return "a string"
	case v == "bool":
		return "true or false"
	case strings.HasPrefix(v, "number"):
		return "a number"
	}
	return v
}

func parseTime(name, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s: not an RFC 3339 time: %s", name, quote(s))
	}
	// A time is written in UTC, with milliseconds, as the stores keep it: what reads
	// must write back as itself. An offset can take a time past the years RFC 3339
	// has (0000-01-01T00:00:00+01:00 is the year -1 in UTC), which would be written
	// as a time no reader takes; finer than a millisecond is cut, as the store cuts it.
	t = t.UTC()
	if t.Year() < 0 || t.Year() > 9999 {
		return time.Time{}, fmt.Errorf("%s: %s is outside the years 0000 to 9999 in UTC", name, quote(s))
	}
	return t.Truncate(time.Millisecond), nil
}

func decode(text []byte) (*Record, error) {
	// What encoding/json lets by: invalid UTF-8 (made U+FFFD) and a key given twice
	// (the last wins). setUserInfo refuses both; so does a line.
	if !utf8.Valid(text) {
		return nil, errors.New("not a valid record: not UTF-8")
	}
	if k := DuplicateKey(text, "profile"); k != "" {
		return nil, fmt.Errorf("not a valid record: %s is given twice (the line's or its profile's)", quote(k))
	}
	var l line
	dec := json.NewDecoder(bytes.NewReader(text))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	if err := dec.Decode(&l); err != nil {
		return nil, fmt.Errorf("not a valid record: %s", jsonProblem(err))
	}
	// Not dec.More(), which says no more at a stray ']' or '}'.
	if rest := bytes.TrimSpace(text[dec.InputOffset():]); len(rest) != 0 {
		return nil, errors.New("not a valid record: more on the line after its JSON object")
	}
	if err := foreignFields(&l); err != nil {
		return nil, err
	}
	created, err := parseTime("createdAt", l.CreatedAt)
	if err != nil {
		return nil, err
	}
	switch l.Kind {
	case KindSite:
		if !socius.ValidAPIKey(l.APIKey) {
			return nil, fmt.Errorf("site: bad or missing apiKey %s", quote(l.APIKey))
		}
		if err := socius.ValidateSecret(l.Secret); err != nil {
			return nil, fmt.Errorf("site %s: %v", l.APIKey, err)
		}
		if err := socius.ValidateSiteName(l.Name); err != nil {
			return nil, fmt.Errorf("site %s: %v", l.APIKey, err)
		}
		return &Record{Site: &socius.Site{APIKey: l.APIKey, Secret: socius.CompactSecret(l.Secret), Name: l.Name, CreatedAt: created}}, nil
	case KindKey:
		if !socius.ValidUserKey(l.UserKey) {
			return nil, fmt.Errorf("key: bad or missing userKey %s", quote(l.UserKey))
		}
		if !socius.ValidAPIKey(l.APIKey) {
			return nil, fmt.Errorf("key %s: bad or missing apiKey %s", l.UserKey, quote(l.APIKey))
		}
		if err := socius.ValidateSecret(l.Secret); err != nil {
			return nil, fmt.Errorf("key %s: %v", l.UserKey, err)
		}
		if l.Methods != nil && len(l.Methods) == 0 {
			// Not "every method", which only leaving methods out says (as key create's
			// --methods).
			return nil, fmt.Errorf("key %s: methods is empty: leave it out for a key that may call every method", l.UserKey)
		}
		publicKey := l.PublicKey
		if publicKey != "" {
			// As `socius key create --public-key` checks it (a key that cannot verify
			// would fail every bearer call of that userKey), and in the form it stores
			// it: PKIX PEM, so that an import compares a key there by key, not by text
			// (PKCS #1 given for a key created with it), and an export of a key that
			// key create made imports byte for byte as it was.
			var err error
			if publicKey, err = socius.CanonicalRSAPublicKey(publicKey); err != nil {
				return nil, fmt.Errorf("key %s: publicKey: %v", l.UserKey, err)
			}
		}
		return &Record{Key: &socius.Key{UserKey: l.UserKey, APIKey: l.APIKey, Secret: socius.CompactSecret(l.Secret), Methods: l.Methods,
			PublicKey: publicKey, CreatedAt: created}}, nil
	case KindUser, "":
		return decodeUser(&l, created)
	}
	return nil, fmt.Errorf("unknown kind %s (site, key or user)", quote(l.Kind))
}

// kindFields are the fields of each kind of record but kind, apiKey and createdAt,
// which every kind has.
var kindFields = map[string][]string{
	KindSite: {"secret", "name"},
	KindKey:  {"userKey", "secret", "methods", "publicKey"},
	KindUser: {"UID", "profile", "updatedAt", "loginAt", "loggedIn"},
}

// foreignFields refuses a record that gives a field of another kind (a user line with
// a key's methods, a site line without its "kind", read as a user's): such a field
// would be dropped without a word, as an unknown one is not.
func foreignFields(l *line) error {
	kind := l.Kind
	if kind == "" {
		kind = KindUser
	}
	own, known := kindFields[kind]
	if !known {
		return nil // the unknown kind is said after
	}
	var foreign []string
	for _, f := range []struct {
		name string
		set  bool
	}{{"userKey", l.UserKey != ""}, {"UID", l.UID != ""}, {"secret", l.Secret != ""}, {"name", l.Name != ""},
		{"methods", l.Methods != nil}, {"publicKey", l.PublicKey != ""}, {"profile", l.Profile != nil},
		{"updatedAt", l.UpdatedAt != ""}, {"loginAt", l.LoginAt != ""}, {"loggedIn", l.LoggedIn}} {
		if f.set && !slices.Contains(own, f.name) {
			foreign = append(foreign, f.name)
		}
	}
	if len(foreign) == 0 {
		return nil
	}
	hint := ""
	if l.Kind == "" {
		hint = ` (a line without "kind" is a user's: give "kind": "site" or "key")`
	}
	what := "is not a field"
	if len(foreign) > 1 {
		what = "are not fields"
	}
	return fmt.Errorf("%s: %s %s of a %s record%s", kind, strings.Join(foreign, ", "), what, kind, hint)
}

// DuplicateKey returns a key that the JSON object in text gives twice, as
// encoding/json matches names (in any letter case, by Unicode's simple folding: "ſ"
// is "s"), where encoding/json would keep the last one without a word; and the same
// for the object that is the value of its member named nested (none when ""). It reads
// the text once, as tokens, whatever its size; text that is not JSON is left to the
// decoder that follows ("" and no complaint).
func DuplicateKey(text []byte, nested string) string {
	type frame struct {
		object, wantKey bool
		seen            map[string]bool // the keys so far, folded; nil: not looked at
	}
	var stack []*frame
	valueDone := func() {
		if n := len(stack); n > 0 && stack[n-1].object {
			stack[n-1].wantKey = true
		}
	}
	nestedNext := false // the value about to start is the top object's member nested
	dec := json.NewDecoder(bytes.NewReader(text))
	for {
		tok, err := dec.Token()
		if err != nil {
			return "" // the end, or not JSON
		}
		if n := len(stack); n > 0 && stack[n-1].object && stack[n-1].wantKey {
			top := stack[n-1]
			if tok == json.Delim('}') {
				stack = stack[:n-1]
				valueDone()
				continue
			}
			key, _ := tok.(string)
			if top.seen != nil {
				f := foldName(key)
				if top.seen[f] {
					return key
				}
				top.seen[f] = true
			}
			nestedNext = n == 1 && nested != "" && foldName(key) == foldName(nested)
			top.wantKey = false
			continue
		}
		if (tok == json.Delim('{') || tok == json.Delim('[')) && len(stack) >= maxDepth {
			// Deeper than encoding/json decodes (it refuses the value): no need to
			// look further, and a line of a million '[' would cost a frame each.
			return ""
		}
		switch tok {
		case json.Delim('{'):
			f := &frame{object: true, wantKey: true}
			if len(stack) == 0 || nestedNext {
				f.seen = map[string]bool{}
			}
			stack = append(stack, f)
		case json.Delim('['):
			stack = append(stack, &frame{})
		case json.Delim(']'), json.Delim('}'):
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
			valueDone()
		default:
			valueDone()
		}
		nestedNext = false
	}
}

// maxDepth is the nesting encoding/json decodes at most (its scanner's limit); a value
// nested deeper is refused whole.
const maxDepth = 10000

// foldName folds every character of s to the smallest of those that simple case
// folding makes equal to it, so that two names encoding/json takes for one fold alike.
func foldName(s string) string {
	var b strings.Builder
	for _, r := range s {
		least := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			least = min(least, f)
		}
		b.WriteRune(least)
	}
	return b.String()
}

func decodeUser(l *line, created time.Time) (*Record, error) {
	if !socius.ValidAPIKey(l.APIKey) {
		return nil, fmt.Errorf("user: bad or missing apiKey %s", quote(l.APIKey))
	}
	if err := socius.ValidateUID(l.UID); err != nil {
		return nil, fmt.Errorf("user: %v", err)
	}
	u := &socius.User{APIKey: l.APIKey, UID: l.UID, CreatedAt: created, LoggedIn: l.LoggedIn}
	var err error
	if u.UpdatedAt, err = parseTime("updatedAt", l.UpdatedAt); err != nil {
		return nil, err
	}
	if u.LoginAt, err = parseTime("loginAt", l.LoginAt); err != nil {
		return nil, err
	}
	var seen [socius.NumFields]bool
	for name, v := range l.Profile {
		f, ok := socius.ParseField(name)
		if !ok {
			return nil, fmt.Errorf("user %s: %s is not a profile field", l.UID, quote(name))
		}
		if seen[f] { // firstName and FIRSTNAME: which would win is chance
			return nil, fmt.Errorf("user %s: profile sets %s twice", l.UID, f.Name())
		}
		seen[f] = true
		var s string
		switch v := v.(type) {
		case string:
			s = v
		case json.Number:
			s = v.String()
		case nil:
			continue
		default:
			return nil, fmt.Errorf("user %s: %s must be a string or a number", l.UID, f.Name())
		}
		if s == "" { // as the server clears a field: only "" (a " " is a value)
			continue
		}
		if s, err = f.Validate(s); err != nil {
			return nil, fmt.Errorf("user %s: %v", l.UID, err)
		}
		u.Profile[f] = s
	}
	return &Record{User: u}, nil
}
