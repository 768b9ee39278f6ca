package emulator

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/socius/socius/gigya"
	"github.com/socius/socius/server"
)

// DefaultLogSize is how many calls the request log keeps by default.
const DefaultLogSize = 1000

// MaxLogSize is the largest request log: its ring is allocated whole at the start
// (about 250 bytes an entry), and a full one holds each call's parameters, each cut,
// up to a few KiB a call.
const MaxLogSize = 100_000

// An Entry is one call in the request log, with its secrets masked.
type Entry struct {
	// Seq numbers the calls from 1, in the order they ended; readers page with it.
	Seq int64 `json:"seq"`
	// Time is the server's (possibly moved) clock when the call started.
	Time       time.Time `json:"time"`
	CallID     string    `json:"callId"`
	Method     string    `json:"method"`
	APIKey     string    `json:"apiKey,omitempty"`
	UserKey    string    `json:"userKey,omitempty"`
	Credential string    `json:"credential,omitempty"`
	Params     []Param   `json:"params"`
	ErrorCode  int       `json:"errorCode"`
	Details    string    `json:"errorDetails,omitempty"`
	// LatencyMS is how long the call took, in milliseconds (injected delays included).
	LatencyMS float64 `json:"latencyMs"`
	// Injected is true when a fault rule answered or delayed the call.
	Injected bool `json:"injected,omitempty"`
	// SignedURLs and BaseStrings are what the server signed for a 403003: the
	// candidate URLs, the most likely first, and the base string of each.
	SignedURLs  []string `json:"signedURLs,omitempty"`
	BaseStrings []string `json:"baseStrings,omitempty"`
}

// MarshalJSON writes the entry with its time in UTC to the millisecond
// (2026-11-28T10:05:21.123Z), as Gigya's answers give their time and as the console and
// `socius emulator log` show it: a fixed width that every RFC 3339 reader (JavaScript's
// Date, Java's Instant, a jq sort) takes, where time.Time's own encoding gives up to
// nine digits, as many as are not zero.
func (e Entry) MarshalJSON() ([]byte, error) {
	type plain Entry // the fields without this method
	return json.Marshal(struct {
		// Seq and Time, nearer than plain's, take the place of its two, in the same order.
		Seq  int64  `json:"seq"`
		Time string `json:"time"`
		plain
	}{e.Seq, gigya.FormatTime(e.Time), plain(e)})
}

// A Param is a request parameter as logged.
type Param struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Param returns the value of the named parameter (case-insensitive) and whether the
// call had it.
func (e *Entry) Param(name string) (string, bool) {
	for _, p := range e.Params {
		if strings.EqualFold(p.Name, name) {
			return p.Value, true
		}
	}
	return "", false
}

// A Candidate is a URL the server tried for a signature, and its base string.
type Candidate struct {
	URL        string
	BaseString string
}

// AlsoTried returns the candidate URLs after the first, with their base strings.
func (e Entry) AlsoTried() []Candidate {
	var out []Candidate
	for i := 1; i < len(e.SignedURLs) && i < len(e.BaseStrings); i++ {
		out = append(out, Candidate{e.SignedURLs[i], e.BaseStrings[i]})
	}
	return out
}

// Masked is what a masked value is replaced with.
const Masked = "***"

// isMasked reports the parameters whose values never reach the log: credentials,
// signatures, tokens and session values, the server's list (it masks them before the
// log sees them; the log hides their values wherever else they appear).
func isMasked(name string) bool { return server.IsCredential(name) }

// RequestLog keeps the last calls in a ring buffer. Its Observe method is meant for
// server.Config.Observe.
type RequestLog struct {
	mu      sync.Mutex
	ring    []Entry
	next    int   // where the next entry goes
	n       int   // entries held
	seq     int64 // Seq of the newest entry
	changed chan struct{}
	stop    chan struct{} // closed by StopWaiting
	once    sync.Once
}

// NewRequestLog returns a log that keeps the last size calls (DefaultLogSize when
// size <= 0).
func NewRequestLog(size int) *RequestLog {
	if size <= 0 {
		size = DefaultLogSize
	}
	return &RequestLog{ring: make([]Entry, size), changed: make(chan struct{}), stop: make(chan struct{})}
}

// Size returns how many calls the log keeps.
func (l *RequestLog) Size() int { return len(l.ring) }

// Observe records a call. The server masks its secrets before any observer sees it (the
// values of credential parameters, and those values wherever else the call holds them:
// see server.Call); the log masks credential parameters again, whatever their value.
func (l *RequestLog) Observe(c *server.Call) {
	// Every text is copied (and a long value cut): the call's strings are often slices
	// of its request body, which a log of many calls must not keep whole.
	e := Entry{
		Time: c.Time.UTC(), CallID: c.ID, Method: strings.Clone(c.Method), APIKey: strings.Clone(c.APIKey), UserKey: strings.Clone(c.UserKey),
		Credential: c.Credential, ErrorCode: c.Code, Details: c.Details, Injected: c.Injected,
		LatencyMS:  float64(c.Duration.Microseconds()) / 1000,
		SignedURLs: append([]string(nil), c.SignedURLs...),
	}
	e.Params = make([]Param, len(c.Params))
	budget := MaxLoggedParams
	for i, p := range c.Params {
		v := p.Value
		if isMasked(p.Name) {
			// Masked, whatever the budget: a note of its length would say more.
			e.Params[i] = Param{Name: cut(p.Name), Value: Masked}
			continue
		}
		// Each value at most MaxLoggedValue, and all of them MaxLoggedParams (the
		// notes of the lengths of those cut aside): a body of 256 values of 4 KB each
		// would keep half a megabyte an entry.
		keep := min(MaxLoggedValue, budget)
		budget -= min(len(v), keep)
		e.Params[i] = Param{Name: cut(p.Name), Value: cutAt(v, keep)}
	}
	// The details end with the signature diagnosis (the base strings' difference, the
	// Swift SDK's escaping): kept as far as the base strings are.
	e.Details = cutAt(e.Details, MaxLoggedDetails)
	for _, b := range c.BaseStrings {
		e.BaseStrings = append(e.BaseStrings, strings.Clone(b))
	}
	l.add(e)
}

// What the log keeps of a call: each parameter's value (or name) at most
// MaxLoggedValue bytes, all of its values together MaxLoggedParams, its errorDetails
// MaxLoggedDetails (the base strings are cut at as much by the server).
const (
	MaxLoggedValue   = 2048
	MaxLoggedParams  = 16 << 10
	MaxLoggedDetails = 8 << 10
)

// cut returns a copy of s, cut at MaxLoggedValue bytes with a note of its length.
func cut(s string) string { return cutAt(s, MaxLoggedValue) }

// cutAt returns a copy of s, cut at n bytes (at the start of a character, so that what
// is kept stays UTF-8) with a note of its length.
func cutAt(s string, n int) string {
	if len(s) <= n {
		return strings.Clone(s)
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "... (" + strconv.Itoa(len(s)) + " bytes)"
}

func (l *RequestLog) add(e Entry) {
	l.mu.Lock()
	l.seq++
	e.Seq = l.seq
	l.ring[l.next] = e
	l.next = (l.next + 1) % len(l.ring)
	if l.n < len(l.ring) {
		l.n++
	}
	close(l.changed)
	l.changed = make(chan struct{})
	l.mu.Unlock()
}

// Entries returns up to limit entries with Seq > after, oldest first (the newest
// limit of them when there are more; every one when limit <= 0), and the Seq of the
// newest entry logged so far.
func (l *RequestLog) Entries(after int64, limit int) ([]Entry, int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.entries(after, limit), l.seq
}

func (l *RequestLog) entries(after int64, limit int) []Entry {
	var out []Entry
	start := (l.next - l.n + len(l.ring)) % len(l.ring)
	for i := 0; i < l.n; i++ {
		e := l.ring[(start+i)%len(l.ring)]
		if e.Seq > after {
			out = append(out, e)
		}
	}
	if limit > 0 && len(out) > limit {
		out = out[len(out)-limit:]
	}
	return out
}

// Wait returns the entries after `after` as Entries does, waiting up to wait for one
// to arrive when there is none yet (long polling, for `socius emulator log --follow`
// and the console's refresh).
func (l *RequestLog) Wait(ctx context.Context, after int64, limit int, wait time.Duration) ([]Entry, int64) {
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		l.mu.Lock()
		out, seq, changed := l.entries(after, limit), l.seq, l.changed
		l.mu.Unlock()
		if len(out) > 0 || wait <= 0 {
			return out, seq
		}
		select {
		case <-changed:
		case <-t.C:
			return nil, seq
		case <-ctx.Done():
			return nil, seq
		case <-l.stop:
			return nil, seq
		}
	}
}

// StopWaiting ends every Wait in progress and makes later ones return at once: a
// server shutting down must not wait out its long polls (net/http's Shutdown waits
// for them and does not cancel their contexts).
func (l *RequestLog) StopWaiting() { l.once.Do(func() { close(l.stop) }) }

// Clear forgets every entry; sequence numbers go on from where they were.
func (l *RequestLog) Clear() {
	l.mu.Lock()
	defer l.mu.Unlock()
	clear(l.ring)
	l.next, l.n = 0, 0
}
