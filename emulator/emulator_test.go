package emulator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/socius/socius"
	"github.com/socius/socius/gigya"
	"github.com/socius/socius/internal/linecount"
	"github.com/socius/socius/server"
	"github.com/socius/socius/sqlite"
	"github.com/socius/socius/storetest"
)

const (
	siteKey    = "3_EmuSite"
	siteSecret = "c2VjcmV0LWZvci10aGUtZ2lneWEtbGFiLTEyMzQ1Ng=="
	keySecret  = "dXNlci1zZWNyZXQtZm9yLWxhYg=="
)

const seedFile = `{"kind":"site","apiKey":"3_EmuSite","secret":"c2VjcmV0LWZvci10aGUtZ2lneWEtbGFiLTEyMzQ1Ng==","name":"shop","createdAt":"2026-01-02T03:04:05.000Z"}
{"kind":"key","userKey":"AEmuKey","apiKey":"3_EmuSite","secret":"dXNlci1zZWNyZXQtZm9yLWxhYg==","methods":["socialize.getUserInfo"],"createdAt":"2026-01-02T03:04:05.000Z"}
{"kind":"user","apiKey":"3_EmuSite","UID":"alice","profile":{"age":30,"email":"alice@example.com","firstName":"Alice","lastName":"Liddell","nickname":"ally","thumbnailURL":"https://example.com/a.jpg"},"createdAt":"2026-01-02T03:04:05.000Z","updatedAt":"2026-01-02T03:04:05.000Z","loginAt":"2026-01-02T03:04:05.000Z","loggedIn":true}
{"kind":"user","apiKey":"3_EmuSite","UID":"bob","profile":{"firstName":"Bob","lastName":"Builder"},"createdAt":"2026-01-02T03:04:05.000Z"}
`

func openStore(t testing.TB) socius.Store {
	t.Helper()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "socius.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func TestSeedAndExport(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	n, err := Seed(ctx, st, strings.NewReader(seedFile), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if n != (SeedStats{Sites: 1, Keys: 1, Users: 2}) {
		t.Errorf("seeded %+v", n)
	}
	var out bytes.Buffer
	if n, err = Export(ctx, st, &out); err != nil || n != (SeedStats{Sites: 1, Keys: 1, Users: 2}) {
		t.Fatalf("export %+v %v", n, err)
	}
	// The export reads back as the same records (field order aside).
	norm := func(text string) []map[string]any {
		var out []map[string]any
		for _, l := range strings.Split(strings.TrimSpace(text), "\n") {
			var m map[string]any
			if err := json.Unmarshal([]byte(l), &m); err != nil {
				t.Fatal(err)
			}
			out = append(out, m)
		}
		return out
	}
	got, want := norm(out.String()), norm(seedFile)
	gotJSON, _ := json.Marshal(got)
	wantJSON, _ := json.Marshal(want)
	if !bytes.Equal(gotJSON, wantJSON) {
		t.Errorf("export\n%s\nwant\n%s", gotJSON, wantJSON)
	}

	// Seeding again replaces: the key (its methods) and the users.
	again := strings.Replace(seedFile, `"methods":["socialize.getUserInfo"]`, `"methods":["socialize.setUserInfo"]`, 1)
	again = strings.Replace(again, `"firstName":"Bob"`, `"firstName":"Robert"`, 1)
	if _, err := Seed(ctx, st, strings.NewReader(again), time.Now()); err != nil {
		t.Fatal(err)
	}
	k, err := st.Key(ctx, "AEmuKey")
	if err != nil || len(k.Methods) != 1 || k.Methods[0] != "socialize.setUserInfo" {
		t.Errorf("key after re-seed: %+v %v", k, err)
	}
	u, err := st.User(ctx, siteKey, "bob")
	if err != nil || u.Profile.Get(socius.FirstName) != "Robert" {
		t.Errorf("bob after re-seed: %+v %v", u, err)
	}

	// Records without times get now.
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	if _, err := Seed(ctx, st, strings.NewReader(`{"apiKey":"3_EmuSite","UID":"carol"}`), now); err != nil {
		t.Fatal(err)
	}
	if u, _ := st.User(ctx, siteKey, "carol"); u == nil || !u.CreatedAt.Equal(now) {
		t.Errorf("carol: %+v", u)
	}

	for _, tt := range []struct{ name, text, want string }{
		{"user before its site", `{"kind":"user","apiKey":"3_Nope","UID":"x"}`, "line 1: user: no site has apiKey 3_Nope"},
		{"key before its site", "\n" + `{"kind":"key","userKey":"AK","apiKey":"3_Nope","secret":"` + keySecret + `"}`, "line 2: key: no site has apiKey 3_Nope"},
		{"bad line", `{"kind":"site","apiKey":"3_x","secret":"short"}`, "line 1: site 3_x"},
		{"not JSON", `{`, "line 1: not a valid record"},
	} {
		_, err := Seed(ctx, st, strings.NewReader(tt.text), now)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want %q", tt.name, err, tt.want)
		}
	}
}

// TestSeedFailsCleanly: a line that fails changes nothing of what exists and is not
// counted as loaded; key methods are spelt as the server serves them, or refused.
func TestSeedFailsCleanly(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	if _, err := Seed(ctx, st, strings.NewReader(seedFile), time.Now()); err != nil {
		t.Fatal(err)
	}
	tok := &socius.Token{Hash: strings.Repeat("cd", 32), Kind: socius.AccessToken, APIKey: siteKey, UID: "alice", UserKey: "AEmuKey", CreatedAt: time.Now()}
	if err := st.CreateToken(ctx, tok); err != nil {
		t.Fatal(err)
	}
	// The key moved to a site that does not exist: refused, and the key and its token
	// stay where they were.
	n, err := Seed(ctx, st, strings.NewReader(`{"kind":"key","userKey":"AEmuKey","apiKey":"3_Missing","secret":"`+keySecret+`"}`), time.Now())
	if err == nil || !strings.Contains(err.Error(), "no site has apiKey 3_Missing") || n != (SeedStats{}) {
		t.Errorf("a key moved to a missing site: %+v %v", n, err)
	}
	if k, err := st.Key(ctx, "AEmuKey"); err != nil || k.APIKey != siteKey {
		t.Errorf("the key after the refused move: %+v %v", k, err)
	}
	if _, err := st.Token(ctx, tok.Hash); err != nil {
		t.Errorf("the key's token after the refused move: %v", err)
	}
	// What loaded before the bad line is counted, the bad line not.
	n, err = Seed(ctx, st, strings.NewReader(`{"kind":"site","apiKey":"3_Other","secret":"`+keySecret+`"}`+"\n"+`{"kind":"user","apiKey":"3_Nope","UID":"x"}`), time.Now())
	if err == nil || n != (SeedStats{Sites: 1}) {
		t.Errorf("a site, then a user of no site: loaded %+v, %v", n, err)
	}
	// Methods: "getUserInfo" is socialize.getUserInfo; a method not served is refused.
	if _, err := Seed(ctx, st, strings.NewReader(`{"kind":"key","userKey":"AShort","apiKey":"3_EmuSite","secret":"`+keySecret+`","methods":["getUserInfo","Socialize.SetUserInfo"]}`), time.Now()); err != nil {
		t.Fatal(err)
	}
	if k, err := st.Key(ctx, "AShort"); err != nil || strings.Join(k.Methods, ",") != "socialize.getUserInfo,socialize.setUserInfo" {
		t.Errorf("a key with short method names: %+v %v", k, err)
	}
	_, err = Seed(ctx, st, strings.NewReader(`{"kind":"key","userKey":"ABogus","apiKey":"3_EmuSite","secret":"`+keySecret+`","methods":["bogus.method"]}`), time.Now())
	if err == nil || !strings.Contains(err.Error(), `"bogus.method" is not a method Socius serves`) {
		t.Errorf("a key with a method not served: %v", err)
	}
	if _, err := st.Key(ctx, "ABogus"); !errors.Is(err, socius.ErrNotFound) {
		t.Errorf("the refused key was stored: %v", err)
	}
}

func TestRequestLog(t *testing.T) {
	l := NewRequestLog(3)
	for i := 1; i <= 5; i++ {
		l.Observe(&server.Call{ID: strings.Repeat(string(rune('a'+i)), 4), Method: "socialize.getUserInfo", Time: time.Now()})
	}
	entries, last := l.Entries(0, 0)
	if last != 5 || len(entries) != 3 || entries[0].Seq != 3 || entries[2].Seq != 5 || entries[2].CallID != "ffff" {
		t.Fatalf("ring: last %d %+v", last, entries)
	}
	if e, _ := l.Entries(4, 0); len(e) != 1 || e[0].Seq != 5 {
		t.Errorf("after 4: %+v", e)
	}
	if e, _ := l.Entries(0, 2); len(e) != 2 || e[0].Seq != 4 {
		t.Errorf("limit 2: %+v", e)
	}

	// Masking: the values of credential parameters go, whatever the call holds (the
	// server hides them elsewhere before any observer sees a call:
	// server.TestCredentialValuesHiddenEverywhere).
	const sent = "c3VwZXItc2VjcmV0LXZhbHVlLTEyMzQ="
	l.Observe(&server.Call{ID: "masked", Code: 403003,
		Params: []gigya.Param{{Name: "UID", Value: "u1"}, {Name: "secret", Value: sent}, {Name: "SIG", Value: "AAAA"}, {Name: "oauth_token", Value: "tok-123456"},
			{Name: "client_secret", Value: "cs-123456"}, {Name: "cookieValue", Value: "cv-123456"}, {Name: "sessionSecret", Value: "ss-123456"}}})
	e, _ := l.Entries(5, 0)
	if len(e) != 1 {
		t.Fatal(e)
	}
	js, _ := json.Marshal(e[0])
	for _, leak := range []string{sent, "AAAA", "tok-123456", "cs-123456", "cv-123456", "ss-123456"} {
		if bytes.Contains(js, []byte(leak)) {
			t.Errorf("the log keeps %q: %s", leak, js)
		}
	}
	if v, _ := e[0].Param("uid"); v != "u1" {
		t.Errorf("UID = %q", v)
	}

	// Wait returns at once when there is something newer, at the timeout otherwise, and
	// as soon as a call arrives.
	if e, _ := l.Wait(context.Background(), 0, 0, time.Hour); len(e) != 3 {
		t.Errorf("wait with entries: %d", len(e))
	}
	start := time.Now()
	if e, last := l.Wait(context.Background(), 6, 0, 50*time.Millisecond); len(e) != 0 || last != 6 || time.Since(start) < 50*time.Millisecond {
		t.Errorf("wait timed out with %v %d after %v", e, last, time.Since(start))
	}
	go func() {
		time.Sleep(30 * time.Millisecond)
		l.Observe(&server.Call{ID: "late"})
	}()
	if e, _ := l.Wait(context.Background(), 6, 0, 10*time.Second); len(e) != 1 || e[0].CallID != "late" {
		t.Errorf("wait for a new call: %+v", e)
	}
	l.Clear()
	if e, last := l.Entries(0, 0); len(e) != 0 || last != 7 {
		t.Errorf("after Clear: %v %d", e, last)
	}
}

// TestLogTimeMilliseconds: the admin API's log gives each call's time in UTC to the
// millisecond, always three digits (2026-11-28T10:05:21.123Z), as docs/emulator.md
// shows it, the console and the text log print it and Gigya's answers give theirs; and
// it reads back as that time. It gave time.Time's encoding: nine digits
// (.123456789Z), or as few as were not zero (.12Z, none at all on a whole second).
func TestLogTimeMilliseconds(t *testing.T) {
	te := newTestEmulator(t)
	at := time.Date(2026, 11, 28, 10, 5, 21, 123456789, time.FixedZone("CET", 3600))
	te.Log.Observe(&server.Call{ID: "nanos", Method: "socialize.getUserInfo", Time: at})
	te.Log.Observe(&server.Call{ID: "whole", Method: "socialize.getUserInfo", Time: at.Truncate(time.Second)})
	te.Log.Observe(&server.Call{ID: "tenths", Method: "socialize.getUserInfo", Time: at.Truncate(100 * time.Millisecond)})

	status, body := te.do(t, "GET", "/_emulator/api/log", "", "")
	if status != 200 {
		t.Fatalf("GET log: %d %s", status, body)
	}
	times := regexp.MustCompile(`"time": "([^"]*)"`).FindAllStringSubmatch(body, -1)
	want := []string{"2026-11-28T09:05:21.123Z", "2026-11-28T09:05:21.000Z", "2026-11-28T09:05:21.100Z"}
	if len(times) != len(want) {
		t.Fatalf("%d times in %s; want %d", len(times), body, len(want))
	}
	for i, m := range times {
		if m[1] != want[i] {
			t.Errorf("entry %d: time %q, want %q", i+1, m[1], want[i])
		}
	}
	// The fields keep their order: seq, then time, then the rest.
	if !regexp.MustCompile(`\{\s*"seq": 1,\s*"time": "[^"]*",\s*"callId": "nanos"`).MatchString(body) {
		t.Errorf("the entry's first fields are not seq, time, callId:\n%s", body)
	}
	var got struct{ Entries []Entry }
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Entries) != 3 || !got.Entries[0].Time.Equal(at.Truncate(time.Millisecond)) || got.Entries[0].CallID != "nanos" || got.Entries[0].Method != "socialize.getUserInfo" {
		t.Errorf("read back: %+v", got.Entries)
	}
}

// TestAdminTimesMilliseconds: every time the admin API gives (a site's and a key's
// createdAt, a user's createdAt, updatedAt and loginAt, the clock's now and system,
// in the status too, a fault rule's created) and every datetime of the console is UTC
// to the millisecond, always three digits, as the request log's; they gave
// time.Time's encoding, nine digits or as few as were not zero (none on the seed's
// whole seconds). The clock keeps what finer a `clock set` gave: the answer cuts it
// for display only. What the API writes, and what older versions wrote, reads back.
func TestAdminTimesMilliseconds(t *testing.T) {
	te := newTestEmulator(t)
	const js = "application/json"
	set := time.Date(2030, 1, 1, 0, 0, 0, 123456789, time.UTC)
	te.clock.Set(set)
	if status, body := te.do(t, "POST", "/_emulator/api/faults", js, `{"errorCode":500001,"method":"logout"}`); status != 201 {
		t.Fatalf("POST faults: %d %s", status, body)
	}
	pinned := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)
	timeField := regexp.MustCompile(`"(createdAt|updatedAt|loginAt|now|system|created)": "([^"]*)"`)
	for _, c := range []struct {
		method, path, body string
		want               []string // the time fields the answer has, in order
	}{
		{"GET", "/_emulator/api/status", "", []string{"now", "system"}},
		{"GET", "/_emulator/api/sites", "", []string{"createdAt", "createdAt"}},
		{"GET", "/_emulator/api/users", "", []string{"createdAt", "updatedAt", "loginAt", "createdAt"}},
		{"GET", "/_emulator/api/user?apiKey=" + siteKey + "&UID=alice", "", []string{"createdAt", "updatedAt", "loginAt"}},
		{"GET", "/_emulator/api/clock", "", []string{"now", "system"}},
		{"POST", "/_emulator/api/clock", `{"set":"2030-01-01T00:00:00.1234567Z"}`, []string{"now", "system"}},
		{"GET", "/_emulator/api/faults", "", []string{"created"}},
		{"POST", "/_emulator/api/faults", `{"errorCode":500001,"method":"logout"}`, []string{"created"}},
	} {
		ctype := ""
		if c.body != "" {
			ctype = js
		}
		status, body := te.do(t, c.method, c.path, ctype, c.body)
		if status/100 != 2 {
			t.Errorf("%s %s: %d %s", c.method, c.path, status, body)
			continue
		}
		var names []string
		for _, m := range timeField.FindAllStringSubmatch(body, -1) {
			names = append(names, m[1])
			if !pinned.MatchString(m[2]) {
				t.Errorf("%s %s: %s %q is not UTC to the millisecond (2026-11-28T10:05:21.123Z)", c.method, c.path, m[1], m[2])
			}
		}
		if strings.Join(names, ",") != strings.Join(c.want, ",") {
			t.Errorf("%s %s: time fields %v, want %v:\n%s", c.method, c.path, names, c.want, body)
		}
	}
	// Only the answer is cut: the clock moves by what it is given, to the nanosecond,
	// and its offset says so in full.
	te.clock.Reset()
	status, body := te.do(t, "POST", "/_emulator/api/clock", js, `{"advance":"1.234567ms"}`)
	if status != 200 || te.clock.Offset() != 1234567*time.Nanosecond || !strings.Contains(body, `"offset": "1.234567ms"`) || !strings.Contains(body, `"offsetSeconds": 0.001234567`) {
		t.Errorf("advance 1.234567ms: offset %v; %d %s", te.clock.Offset(), status, body)
	}

	// The console's <time datetime> attributes: the header's and the clock page's.
	datetime := regexp.MustCompile(`<time datetime="([^"]*)"`)
	for path, want := range map[string]int{"/_emulator/": 1, "/_emulator/clock": 3} {
		status, body := te.do(t, "GET", path, "", "")
		found := datetime.FindAllStringSubmatch(body, -1)
		if status != 200 || len(found) != want {
			t.Errorf("GET %s: %d, %d time elements, want %d", path, status, len(found), want)
		}
		for _, m := range found {
			if !pinned.MatchString(m[1]) {
				t.Errorf("GET %s: datetime %q is not UTC to the millisecond", path, m[1])
			}
		}
	}

	// What it writes reads back as itself; what older versions wrote (up to nine
	// digits, or none) reads as before.
	_, body = te.do(t, "GET", "/_emulator/api/clock", "", "")
	var ci ClockInfo
	if err := json.Unmarshal([]byte(body), &ci); err != nil {
		t.Fatalf("the clock's answer does not read back: %v\n%s", err, body)
	}
	if got := timeField.FindAllStringSubmatch(body, -1); len(got) != 2 || gigya.FormatTime(ci.Now.Time) != got[0][2] || gigya.FormatTime(ci.System.Time) != got[1][2] {
		t.Errorf("read back as %v and %v from %s", ci.Now, ci.System, body)
	}
	old := `{"now": "2030-01-01T00:00:00.5Z", "system": "2026-11-28T10:05:21.123456789Z", "offset": "1h", "offsetSeconds": 3600}`
	if err := json.Unmarshal([]byte(old), &ci); err != nil || !ci.Now.Equal(time.Date(2030, 1, 1, 0, 0, 0, 5e8, time.UTC)) ||
		!ci.System.Equal(time.Date(2026, 11, 28, 10, 5, 21, 123456789, time.UTC)) {
		t.Errorf("an older clock answer reads as %+v, %v", ci, err)
	}
	var rule Rule
	if err := json.Unmarshal([]byte(`{"id": 1, "errorCode": 500001, "hits": 0, "created": "2026-11-28T10:05:21Z"}`), &rule); err != nil ||
		!rule.Created.Equal(time.Date(2026, 11, 28, 10, 5, 21, 0, time.UTC)) {
		t.Errorf("an older rule reads as %+v, %v", rule, err)
	}
	// A rule read back, its created zero, may be sent again, in the form the API now
	// writes as in the one it wrote.
	for _, zero := range []string{"0001-01-01T00:00:00.000Z", "0001-01-01T00:00:00Z"} {
		if status, body := te.do(t, "POST", "/_emulator/api/faults", js, `{"id":0,"errorCode":500001,"hits":0,"created":"`+zero+`"}`); status != 201 {
			t.Errorf("POST faults with created %s: %d %s", zero, status, body)
		}
	}
}

func TestFaults(t *testing.T) {
	f := NewFaults(socius.SystemClock{})
	for _, bad := range []Rule{
		{Code: 123456}, // not in the table
		{},             // neither code nor delay
		{Code: 500001, Delay: Duration(time.Hour)}, // too long
		{Code: 500001, Fraction: 1.5},
		{Code: 500001, Fraction: math.NaN()}, // would fire every time
		{Code: 500001, Fraction: math.Inf(1)},
		{Code: 500001, Count: -1},
		{Method: "accounts.setAccountInfo", Code: 500001}, // a method Socius does not serve
		{Method: "getUserInf", Code: 500001},
	} {
		if _, err := f.Add(bad); err == nil {
			t.Errorf("Add(%+v) accepted", bad)
		}
	}
	for _, bad := range []Rule{{Code: 500001, Fraction: 1.5}, {Code: 500001, Fraction: -0.5}} {
		if _, err := f.Add(bad); err == nil || err.Error() != "fraction must be above 0 and at most 1 (leave it out for every call)" {
			t.Errorf("Add(%+v): %v, want the fraction's range", bad, err)
		}
	}
	// At most 1,000 rules at once (MaxRules); one more is refused until one is gone.
	many := NewFaults(socius.SystemClock{})
	for i := range 1000 { // MaxRules
		if _, err := many.Add(Rule{Code: 500001, Count: i + 1}); err != nil {
			t.Fatalf("rule %d: %v", i+1, err)
		}
	}
	if _, err := many.Add(Rule{Code: 500001}); err == nil || !strings.Contains(err.Error(), "there are 1000 rules already") {
		t.Errorf("rule 1001: %v, want it refused", err)
	}
	many.Delete(1)
	if _, err := many.Add(Rule{Code: 500001}); err != nil {
		t.Errorf("a rule after one was deleted: %v", err)
	}
	// A retired code of the table may be injected too (a client may still handle it).
	if _, err := NewFaults(socius.SystemClock{}).Add(Rule{Code: 400092}); err != nil {
		t.Errorf("a retired code: %v", err)
	}
	if _, err := f.Add(Rule{Method: "socialize.getAccountInfo", Code: 500001}); err == nil || !strings.Contains(err.Error(), "socialize.setUserInfo") {
		t.Errorf("a rule for an unserved method: %v, want an error naming the served methods", err)
	}
	r1, err := f.Add(Rule{Method: "GetUserInfo", APIKey: "3_a", Code: 403048, Count: 2})
	if err != nil || r1.ID != 1 || r1.Method != "socialize.getUserInfo" || r1.Remaining != 2 {
		t.Fatalf("%+v %v", r1, err)
	}
	if _, err := f.Add(Rule{Method: "*", Code: 0, Delay: Duration(time.Millisecond)}); err != nil {
		t.Fatal(err)
	}
	check := func(method, apiKey string, code int, delay time.Duration, ok bool) {
		t.Helper()
		c, d, o := f.Fault(method, apiKey)
		if c != code || d != delay || o != ok {
			t.Errorf("Fault(%s, %s) = %d %v %v, want %d %v %v", method, apiKey, c, d, o, code, delay, ok)
		}
	}
	check("socialize.getUserInfo", "3_b", 0, time.Millisecond, true) // other site: the catch-all rule
	check("socialize.setUserInfo", "3_a", 0, time.Millisecond, true) // other method: the catch-all rule
	check("socialize.GETUSERINFO", "3_a", 403048, 0, true)
	if r := f.Rules(); r[0].Hits != 1 || r[0].Remaining != 1 {
		t.Errorf("after one hit: %+v", r[0])
	}
	check("socialize.getUserInfo", "3_a", 403048, 0, true)
	if r := f.Rules(); len(r) != 1 || r[0].ID != 2 {
		t.Errorf("a spent rule stays: %+v", r)
	}
	check("socialize.getUserInfo", "3_a", 0, time.Millisecond, true)
	if !f.Delete(2) || f.Delete(2) {
		t.Error("Delete")
	}
	check("socialize.getUserInfo", "3_a", 0, 0, false)

	// A fraction fires when the random number is below it; otherwise the next rule
	// has its turn.
	rolls := []float64{0.9, 0.1}
	f.rand = func() float64 { r := rolls[0]; rolls = rolls[1:]; return r }
	f.Add(Rule{Code: 504002, Fraction: 0.5})
	f.Add(Rule{Code: 500001})
	check("socialize.setUserInfo", "3_a", 500001, 0, true)
	check("socialize.setUserInfo", "3_a", 504002, 0, true)
	// Hits counts the calls a rule answered or delayed, not those its fraction let by.
	if r := f.Rules(); r[0].Hits != 1 || r[1].Hits != 1 {
		t.Errorf("hits after a fraction rule let one call by and fired on the next: %+v", r)
	}
	if n := f.Clear(); n != 2 || len(f.Rules()) != 0 {
		t.Errorf("Clear: %d %v", n, f.Rules())
	}
	// With a count, a fraction rule injects at most count faults, then is removed.
	rolls = []float64{0.9, 0.1, 0.1}
	f.Add(Rule{Code: 504002, Fraction: 0.5, Count: 1})
	check("socialize.setUserInfo", "3_a", 0, 0, false)
	if r := f.Rules(); len(r) != 1 || r[0].Remaining != 1 {
		t.Errorf("a call the fraction let by spent the rule: %+v", r)
	}
	check("socialize.setUserInfo", "3_a", 504002, 0, true)
	check("socialize.setUserInfo", "3_a", 0, 0, false)
	if r := f.Rules(); len(r) != 0 {
		t.Errorf("a fraction rule with count 1 stays after its fault: %+v", r)
	}
}

func TestGuards(t *testing.T) {
	for host, want := range map[string]bool{
		"127.0.0.1:8080": true, "127.1.2.3": true, "[::1]:8080": true, "localhost:8080": true, "LOCALHOST": true,
		"console.localhost:1": true, "localhost.": true,
		"evil.example:8080": false, "10.0.0.1:8080": false, "0.0.0.0:8080": false, "": false, "localhost.evil.example": false,
	} {
		if got := localHost(host); got != want {
			t.Errorf("localHost(%q) = %v", host, got)
		}
	}
	for _, tt := range []struct {
		headers map[string]string
		ok      bool
	}{
		{nil, true}, // not a browser
		{map[string]string{"Origin": "http://127.0.0.1:8080"}, true},
		{map[string]string{"Origin": "http://127.0.0.1:8080", "Sec-Fetch-Site": "same-origin"}, true},
		{map[string]string{"Referer": "http://127.0.0.1:8080/_emulator/clock"}, true},
		{map[string]string{"Sec-Fetch-Site": "none"}, true},
		{map[string]string{"Origin": "http://evil.example"}, false},
		{map[string]string{"Origin": "http://127.0.0.1:3000"}, false},
		{map[string]string{"Origin": "null"}, false},
		{map[string]string{"Referer": "http://evil.example/x"}, false},
		{map[string]string{"Sec-Fetch-Site": "cross-site"}, false},
		{map[string]string{"Sec-Fetch-Site": "same-site", "Origin": "http://127.0.0.1:8080"}, false},
	} {
		r := httptest.NewRequest("POST", "http://127.0.0.1:8080/_emulator/reset", nil)
		for k, v := range tt.headers {
			r.Header.Set(k, v)
		}
		if err := sameOrigin(r); (err == nil) != tt.ok {
			t.Errorf("sameOrigin(%v) = %v", tt.headers, err)
		}
	}
}

// TestCrossSiteRead: a page of another site may link to the console or the admin API
// (a top-level navigation) but not load them as an image, a script, a frame or a
// no-cors fetch, from which it would learn when the next API call comes (the log's
// long poll ends) and, in a browser without ORB, whether a user is there (200 or
// 404). The console's own requests, typed URLs and clients that are not browsers
// pass.
func TestCrossSiteRead(t *testing.T) {
	te := newTestEmulator(t)
	load := func(site, mode, dest string) []string {
		return []string{"Sec-Fetch-Site", site, "Sec-Fetch-Mode", mode, "Sec-Fetch-Dest", dest}
	}
	for _, tt := range []struct {
		path    string
		headers []string
		status  int
		body    string
	}{
		// A <script src> probing for a user: refused whether the user is there or not.
		{"/_emulator/api/user?apiKey=3_EmuSite&UID=alice", load("cross-site", "no-cors", "script"), 403,
			`"error": "socius emulator: cross-origin request refused (Sec-Fetch-Site: cross-site, Sec-Fetch-Mode: no-cors, Sec-Fetch-Dest: script)`},
		{"/_emulator/api/user?apiKey=3_EmuSite&UID=nobody", load("cross-site", "no-cors", "script"), 403, "cross-origin request refused"},
		{"/_emulator/api/log?wait=10s", load("cross-site", "no-cors", "empty"), 403, "cross-origin request refused"},
		{"/_emulator/api/status", load("same-site", "cors", "empty"), 403, "cross-origin request refused"},
		{"/_emulator/users?q=ali", load("cross-site", "no-cors", "image"), 403, "socius emulator: cross-origin request refused"},
		{"/_emulator/user?apiKey=3_EmuSite&UID=alice", load("cross-site", "navigate", "iframe"), 403, "cross-origin request refused"},
		{"/_emulator/static/console.css", load("cross-site", "no-cors", "style"), 403, "cross-origin request refused"},
		// A link followed from another site (or from another port of localhost).
		{"/_emulator/user?apiKey=3_EmuSite&UID=alice", load("cross-site", "navigate", "document"), 200, "alice"},
		{"/_emulator/api/status", load("same-site", "navigate", "document"), 200, `"sites": 1`},
		// The console's own requests, a typed URL, and clients that are not browsers
		// (Node's fetch sends Sec-Fetch-Mode alone).
		{"/_emulator/api/log?limit=1", load("same-origin", "cors", "empty"), 200, `"entries"`},
		{"/_emulator/static/console.css", load("same-origin", "no-cors", "style"), 200, "{"},
		{"/_emulator/users", load("none", "navigate", "document"), 200, "alice"},
		{"/_emulator/api/status", []string{"Sec-Fetch-Mode", "cors"}, 200, `"sites": 1`},
		{"/_emulator/api/status", nil, 200, `"sites": 1`},
	} {
		status, body := te.do(t, "GET", tt.path, "", "", tt.headers...)
		if status != tt.status || !strings.Contains(body, tt.body) {
			t.Errorf("GET %s %v: HTTP %d %.200s; want %d with %q", tt.path, tt.headers, status, body, tt.status, tt.body)
		}
	}
}

// testEmulator is an Emulator over a seeded store, served with a stub API that
// answers "api".
type testEmulator struct {
	*Emulator
	URL   string
	store socius.Store
	clock *socius.OffsetClock
}

func newTestEmulator(t *testing.T) *testEmulator {
	t.Helper()
	st := openStore(t)
	if _, err := Seed(context.Background(), st, strings.NewReader(seedFile), time.Now()); err != nil {
		t.Fatal(err)
	}
	clock := &socius.OffsetClock{}
	e := New(Config{Store: st, Clock: clock, LogSize: 10})
	srv := httptest.NewServer(e.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "api") })))
	t.Cleanup(srv.Close)
	return &testEmulator{Emulator: e, URL: srv.URL, store: st, clock: clock}
}

// do sends a request and returns the status and body.
func (te *testEmulator) do(t *testing.T, method, path, ctype, body string, headers ...string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, te.URL+path, strings.NewReader(body))
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i] == "Host" {
			req.Host = headers[i+1]
		} else {
			req.Header.Set(headers[i], headers[i+1])
		}
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestAdminAPI(t *testing.T) {
	te := newTestEmulator(t)
	const js = "application/json"
	tests := []struct {
		name, method, path, ctype, body string
		status                          int
		contains                        []string
	}{
		{"other paths go to the API", "GET", "/socialize.getUserInfo", "", "", 200, []string{"api"}},
		{"status", "GET", "/_emulator/api/status", "", "", 200, []string{`"sites": 1`, `"keys": 1`, `"users": 2`, `"logSize": 10`}},
		{"sites mask secrets", "GET", "/_emulator/api/sites", "", "", 200, []string{`"apiKey": "3_EmuSite"`, `"secret": "c2Vj… (44 characters)"`, `"userKey": "AEmuKey"`, `"users": 2`}},
		{"search by e-mail", "GET", "/_emulator/api/users?q=ALICE@", "", "", 200, []string{`"UID": "alice"`, `"nickname": "ally"`, `"more": false`}},
		{"search by full name", "GET", "/_emulator/api/users?q=bob+builder", "", "", 200, []string{`"UID": "bob"`}},
		// A query that does not decode is refused, not read as no query (every user).
		{"search a query that does not decode", "GET", "/_emulator/api/users?q=%zz", "", "", 400, []string{`"error": "the query is not valid URL encoding: invalid URL escape \"%zz\""`}},
		{"log a query that does not decode", "GET", "/_emulator/api/log?after=1&x=%", "", "", 400, []string{"not valid URL encoding"}},
		{"search limit", "GET", "/_emulator/api/users?limit=1", "", "", 200, []string{`"more": true`}},
		{"one user", "GET", "/_emulator/api/user?apiKey=3_EmuSite&UID=alice", "", "", 200, []string{`"firstName": "Alice"`, `"loggedIn": true`}},
		{"no such user", "GET", "/_emulator/api/user?apiKey=3_EmuSite&UID=zed", "", "", 404, []string{`"error": "no user \"zed\"`}},
		{"user without parameters", "GET", "/_emulator/api/user", "", "", 400, []string{`"error": "apiKey is missing: give the user's apiKey and UID`}},
		{"user without UID", "GET", "/_emulator/api/user?apiKey=3_EmuSite", "", "", 400, []string{`"error": "UID is missing`}},
		{"user with an empty apiKey", "GET", "/_emulator/api/user?apiKey=&UID=alice", "", "", 400, []string{`"error": "apiKey is missing`}},
		{"clock", "GET", "/_emulator/api/clock", "", "", 200, []string{`"offset": "0s"`}},
		{"clock needs JSON", "POST", "/_emulator/api/clock", "text/plain", `{"advance":"1h"}`, 415, []string{"Content-Type: application/json"}},
		{"clock needs one change", "POST", "/_emulator/api/clock", js, `{"advance":"1h","reset":true}`, 400, []string{"exactly one"}},
		{"clock bad duration", "POST", "/_emulator/api/clock", js, `{"advance":"soon"}`, 400, []string{"not a duration"}},
		{"clock unknown field", "POST", "/_emulator/api/clock", js, `{"travel":"1h"}`, 400, []string{"unknown field"}},
		{"clock set too far", "POST", "/_emulator/api/clock", js, `{"set":"9999-01-01T00:00:00Z"}`, 400, []string{"more than 100 years"}},
		{"clock advance too far", "POST", "/_emulator/api/clock", js, `{"advance":"2562047h"}`, 400, []string{"more than 100 years"}},
		{"clock back in steps", "POST", "/_emulator/api/clock", js, `{"advance":"-438000h"}`, 200, []string{`"offset": "-438000h0m0s"`}},
		{"clock back to now", "POST", "/_emulator/api/clock", js, `{"reset":true}`, 200, []string{`"offset": "0s"`}},
		// The nonce memory counts 32-bit Unix seconds: the clock stays within 1971 to
		// 2106.
		{"clock set after 2106", "POST", "/_emulator/api/clock", js, `{"set":"2107-01-01T00:00:00Z"}`, 400, []string{"the times the emulator's clock may read"}},
		{"clock advance past 2106", "POST", "/_emulator/api/clock", js, `{"advance":"710000h"}`, 400, []string{"the times it may read"}},
		{"clock set before 1971", "POST", "/_emulator/api/clock", js, `{"set":"1969-07-20T20:17:00Z"}`, 400, []string{"the times the emulator's clock may read"}},
		{"clock advance before 1971", "POST", "/_emulator/api/clock", js, `{"advance":"-500000h"}`, 400, []string{"the times it may read"}},
		{"clock back", "POST", "/_emulator/api/clock", js, `{"reset":true}`, 200, []string{`"offset": "0s"`}},
		{"clock advance", "POST", "/_emulator/api/clock", js, `{"advance":"90m"}`, 200, []string{`"offset": "1h30m0s"`}},
		// Exactly one change: none is refused, and the clock stays where it is.
		{"clock no change", "POST", "/_emulator/api/clock", js, `{}`, 400, []string{"exactly one"}},
		{"clock reset false", "POST", "/_emulator/api/clock", js, `{"reset":false}`, 400, []string{"exactly one"}},
		{"fault bad code", "POST", "/_emulator/api/faults", js, `{"errorCode":1}`, 400, []string{"not in Gigya's error table"}},
		{"fault bad apiKey", "POST", "/_emulator/api/faults", js, `{"errorCode":500001,"apiKey":"3 x"}`, 400, []string{"apiKey must be 1 to 128 printable"}},
		{"fault fraction 0", "POST", "/_emulator/api/faults", js, `{"errorCode":500001,"fraction":0}`, 400, []string{"fraction must be above 0"}},
		{"fault unknown field", "POST", "/_emulator/api/faults", js, `{"errorCode":500001,"share":0.5}`, 400, []string{"unknown field"}},
		{"fault read-only field", "POST", "/_emulator/api/faults", js, `{"errorCode":500001,"hits":5}`, 400, []string{"the emulator's to set"}},
		{"fault key twice", "POST", "/_emulator/api/faults", js, `{"errorCode":500001,"errorCode":504002}`, 400, []string{`gives \"errorCode\" twice`}},
		{"clock key twice, folded", "POST", "/_emulator/api/clock", js, `{"set":"2030-01-01T00:00:00Z","ſet":"2031-01-01T00:00:00Z"}`, 400, []string{`twice`}},
		{"clock set at the int64 bound", "POST", "/_emulator/api/clock", js, `{"set":"-9223372036854775808"}`, 400, []string{`set: \"-9223372036854775808\" is more than 100 years`}},
		{"clock trailing text", "POST", "/_emulator/api/clock", js, `{"advance":"1h"} and more`, 400, []string{"more after its JSON value"}},
		{"fault add", "POST", "/_emulator/api/faults", js, `{"method":"setUserInfo","errorCode":504002,"count":3,"delay":"10ms"}`, 201, []string{`"id": 1`, `"method": "socialize.setUserInfo"`, `"delay": "10ms"`, `"remaining": 3`}},
		{"fault list", "GET", "/_emulator/api/faults", "", "", 200, []string{`"errorCode": 504002`}},
		{"fault delete unknown", "DELETE", "/_emulator/api/faults/9", "", "", 404, []string{"no fault rule"}},
		{"fault delete", "DELETE", "/_emulator/api/faults/1", "", "", 200, []string{`"deleted": 1`}},
		{"fault clear", "DELETE", "/_emulator/api/faults", "", "", 200, []string{`"cleared": 0`}},
		{"log", "GET", "/_emulator/api/log", "", "", 200, []string{`"entries": []`, `"size": 10`}},
		{"log bad wait", "GET", "/_emulator/api/log?wait=forever", "", "", 400, []string{"wait must be"}},
		{"export", "GET", "/_emulator/api/export", "", "", 200, []string{`{"kind":"site","apiKey":"3_EmuSite","secret":"` + siteSecret}},
		{"seed", "POST", "/_emulator/api/seed", "application/x-ndjson", `{"apiKey":"3_EmuSite","UID":"dave"}`, 200, []string{`"users": 1`}},
		{"seed error", "POST", "/_emulator/api/seed", "application/x-ndjson", `{"apiKey":"3_Nope","UID":"x"}`, 400, []string{"line 1"}},
		{"reset", "POST", "/_emulator/api/reset", "", "", 200, []string{`"deletedUsers": 3`}},
		{"unknown endpoint", "GET", "/_emulator/api/nope", "", "", 404, []string{`"error": "no such emulator endpoint`}},
		{"wrong HTTP method", "PUT", "/_emulator/api/reset", "", "", 405, []string{`"error": "PUT /_emulator/api/reset: the endpoint takes POST`}},
		{"the console root", "GET", "/_emulator", "", "", 302, nil},
	}
	for _, tt := range tests {
		status, body := te.do(t, tt.method, tt.path, tt.ctype, tt.body)
		if status != tt.status {
			t.Errorf("%s: HTTP %d, want %d\n%s", tt.name, status, tt.status, body)
		}
		for _, c := range tt.contains {
			if !strings.Contains(body, c) {
				t.Errorf("%s: no %q in\n%s", tt.name, c, body)
			}
		}
	}
	if n, _ := te.store.CountUsers(context.Background(), ""); n != 0 {
		t.Errorf("%d users after reset", n)
	}
	if s, _ := te.store.Sites(context.Background()); len(s) != 1 {
		t.Errorf("reset removed sites: %v", s)
	}
	if off := te.clock.Offset(); off != 90*time.Minute {
		t.Errorf("clock offset %v", off)
	}

	// all= is read strictly: a word it does not know is not a plain reset.
	// Said in the API's words, not as a Go slice (got [\"yes\"]).
	for q, want := range map[string]string{"all=yes": `got \"yes\"`, "all=on": `got \"on\"`, "all": `got \"\"`,
		"all=true&all=false": "it is given 2 times"} {
		if status, body := te.do(t, "POST", "/_emulator/api/reset?"+q, "", ""); status != 400 || !strings.Contains(body, "all must be true or false (1 or 0), once; "+want) {
			t.Errorf("reset?%s: %d %s", q, status, body)
		}
	}
	// A plain reset keeps the rules, the log and the clock (checked above); reset?all=true
	// also clears the rules and the log and resets the clock.
	te.Faults.Add(Rule{Code: 500001})
	te.Log.Observe(&server.Call{ID: "x"})
	if status, body := te.do(t, "POST", "/_emulator/api/reset?all=false", "", ""); status != 200 || !strings.Contains(body, `"all": false`) {
		t.Errorf("reset all=false: %d %s", status, body)
	}
	if e, _ := te.Log.Entries(0, 0); len(te.Faults.Rules()) != 1 || len(e) != 1 || te.clock.Offset() != 90*time.Minute {
		t.Errorf("after a plain reset: rules %v, log %v, offset %v; want them kept", te.Faults.Rules(), e, te.clock.Offset())
	}
	if status, body := te.do(t, "POST", "/_emulator/api/reset?all=true", "", ""); status != 200 || !strings.Contains(body, `"all": true`) {
		t.Errorf("reset all: %d %s", status, body)
	}
	if e, _ := te.Log.Entries(0, 0); len(te.Faults.Rules()) != 0 || len(e) != 0 || te.clock.Offset() != 0 {
		t.Errorf("after reset all: rules %v, log %v, offset %v", te.Faults.Rules(), e, te.clock.Offset())
	}

	// Set takes RFC 3339 or Unix seconds.
	for _, set := range []string{"2030-01-01T00:00:00Z", "1893456000"} {
		if status, body := te.do(t, "POST", "/_emulator/api/clock", js, `{"set":"`+set+`"}`); status != 200 {
			t.Errorf("set %s: %d %s", set, status, body)
		}
		if d := te.clock.Now().Sub(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)); d < 0 || d > 5*time.Second {
			t.Errorf("set %s: now %v", set, te.clock.Now())
		}
	}

	// A page on another site cannot change anything, nor can a DNS-rebinding host read.
	if status, _ := te.do(t, "POST", "/_emulator/api/reset", "", "", "Origin", "http://evil.example"); status != 403 {
		t.Errorf("cross-origin reset: HTTP %d", status)
	}
	if status, _ := te.do(t, "POST", "/_emulator/api/reset", "", "", "Sec-Fetch-Site", "cross-site"); status != 403 {
		t.Errorf("cross-site reset: HTTP %d", status)
	}
	if status, body := te.do(t, "GET", "/_emulator/api/export", "", "", "Host", "rebind.evil.example"); status != 403 || !strings.Contains(body, `"error": "socius emulator: Host rebind.evil.example`) {
		t.Errorf("export to a foreign Host: HTTP %d %s (want a JSON error)", status, body)
	}
	if status, body := te.do(t, "POST", "/_emulator/api/reset", "", "", "Origin", "http://evil.example"); status != 403 || !strings.Contains(body, `"error": `) {
		t.Errorf("cross-origin reset: HTTP %d %s (want a JSON error)", status, body)
	}
	if status, body := te.do(t, "GET", "/_emulator/api/status", "", "", "Host", "localhost:1234"); status != 200 {
		t.Errorf("Host localhost: HTTP %d %s", status, body)
	}
}

// TestWrongMethod: a path the emulator serves, asked with a method it does not take, is
// a 405 whose Allow names the methods it takes (the admin API's as JSON), not a 404
// that says the path is not there.
func TestWrongMethod(t *testing.T) {
	te := newTestEmulator(t)
	for _, tt := range []struct {
		method, path, allow, body string
	}{
		{"POST", "/_emulator/api/user", "GET, HEAD", `"error": "POST /_emulator/api/user: the endpoint takes GET or HEAD`},
		{"DELETE", "/_emulator/api/status", "GET, HEAD", `"error": "DELETE /_emulator/api/status: the endpoint takes GET or HEAD`},
		{"GET", "/_emulator/api/reset", "POST", `"error": "GET /_emulator/api/reset: the endpoint takes POST`},
		{"PUT", "/_emulator/api/faults", "GET, HEAD, POST, DELETE", `the endpoint takes GET or HEAD or POST or DELETE`},
		{"GET", "/_emulator/api/faults/3", "DELETE", `the endpoint takes DELETE`},
		{"PATCH", "/_emulator/api/log", "GET, HEAD, DELETE", `the endpoint takes GET or HEAD or DELETE`},
		{"GET", "/_emulator/reset", "POST", "The console page at /_emulator/reset takes POST, not GET."},
		{"DELETE", "/_emulator/clock", "GET, HEAD, POST", "takes GET or HEAD or POST, not DELETE"},
	} {
		req, _ := http.NewRequest(tt.method, te.URL+tt.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 405 || resp.Header.Get("Allow") != tt.allow || !strings.Contains(string(b), tt.body) {
			t.Errorf("%s %s: HTTP %d, Allow %q, want 405 and %q, and %q in\n%s", tt.method, tt.path, resp.StatusCode, resp.Header.Get("Allow"), tt.allow, tt.body, b)
		}
	}
	// A path that is not there stays a 404, whatever the method.
	for _, m := range []string{"GET", "POST"} {
		if status, body := te.do(t, m, "/_emulator/api/nope", "", ""); status != 404 || !strings.Contains(body, "no such emulator endpoint") {
			t.Errorf("%s /_emulator/api/nope: HTTP %d %s", m, status, body)
		}
	}
}

func TestAdminAPIAllowRemote(t *testing.T) {
	st := openStore(t)
	e := New(Config{Store: st, Clock: &socius.OffsetClock{}, AllowRemote: true})
	srv := httptest.NewServer(e)
	defer srv.Close()
	req, _ := http.NewRequest("GET", srv.URL+"/_emulator/api/status", nil)
	req.Host = "socius:8080"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("HTTP %d with AllowRemote", resp.StatusCode)
	}
}

func TestLogLongPoll(t *testing.T) {
	te := newTestEmulator(t)
	go func() {
		time.Sleep(50 * time.Millisecond)
		te.Log.Observe(&server.Call{ID: "polled", Method: "socialize.logout"})
	}()
	start := time.Now()
	status, body := te.do(t, "GET", "/_emulator/api/log?after=0&wait=10s", "", "")
	var page LogPage
	if err := json.Unmarshal([]byte(body), &page); status != 200 || err != nil || len(page.Entries) != 1 || page.Entries[0].CallID != "polled" || page.Last != 1 {
		t.Fatalf("%d %s", status, body)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the long poll took %v", d)
	}
}

func TestConsole(t *testing.T) {
	te := newTestEmulator(t)
	// Logged in by the seed, which gave no login time.
	if _, err := Seed(context.Background(), te.store, strings.NewReader(`{"apiKey":"3_EmuSite","UID":"carol","loggedIn":true}`), time.Now()); err != nil {
		t.Fatal(err)
	}
	base := gigya.BaseStrings("POST", []string{"http://127.0.0.1:8080/socialize.getUserInfo", "https://127.0.0.1:8080/socialize.getUserInfo"},
		[]gigya.Param{{Name: "UID", Value: "alice"}, {Name: "apiKey", Value: siteKey}}, 1<<20)
	te.Log.Observe(&server.Call{ID: "0123456789abcdef0123456789abcdef", Method: "socialize.getUserInfo", APIKey: siteKey, Credential: "partner-signature",
		Code: 403003, Details: "Invalid request signature: <script>alert(1)</script>", Time: time.Now(),
		SignedURLs: []string{"http://127.0.0.1:8080/socialize.getUserInfo", "https://127.0.0.1:8080/socialize.getUserInfo"}, BaseStrings: base,
		Params: []gigya.Param{{Name: "UID", Value: "alice"}, {Name: "sig", Value: "c2lnbmF0dXJl"}}})
	te.Log.Observe(&server.Call{ID: "fedcba9876543210fedcba9876543210", Method: "socialize.setUserInfo", APIKey: siteKey, Time: time.Now(),
		Params: []gigya.Param{{Name: "UID", Value: "bob"}}})

	pages := []struct {
		path     string
		status   int
		contains []string
		absent   []string
	}{
		{"/_emulator/", 200, []string{"<h1>Overview</h1>", "3_EmuSite", "c2Vj… (44 characters)", "AEmuKey", "dXNl… (28 characters)", `<th scope="col">`}, []string{siteSecret, keySecret}},
		{"/_emulator/users", 200, []string{"3 users", "alice", "bob", "Bob Builder", "ally"}, nil},
		{"/_emulator/users?q=liddell", 200, []string{"1 user matching", "alice"}, []string{">bob<"}},
		{"/_emulator/users?q=nobody", 200, []string{"No users match"}, nil},
		{"/_emulator/users?q=%zz", 400, []string{"The query is not valid URL encoding: invalid URL escape &#34;%zz&#34;."}, []string{"alice"}},
		{"/_emulator/user?apiKey=3_EmuSite&UID=alice", 200, []string{`<img class="avatar" src="https://example.com/a.jpg" alt="Photo of ally"`, `class="comment-name">ally<`,
			"alice@example.com", "Recent calls for this user", "0123456789abcdef0123456789abcdef",
			`Last login</th><td>2026-01-02 03:04:05.000 UTC</td>`}, []string{"fedcba98"}},
		{"/_emulator/user?apiKey=3_EmuSite&UID=bob", 200, []string{`src="/_emulator/static/avatar.svg" alt="Photo of Bob Builder"`, "no data",
			`Logged in</th><td>no</td>`, `Last login</th><td>never</td>`}, nil},
		{"/_emulator/user?apiKey=3_EmuSite&UID=carol", 200, []string{`Logged in</th><td>yes</td>`,
			`Last login</th><td>unknown: logged in by a seed or an import that gave no <code>loginAt</code></td>`,
			`Profile updated</th><td>unknown: made by a seed or an import that gave no <code>updatedAt</code></td>`},
			[]string{`Last login</th><td>never`, `Profile updated</th><td>never`}},
		// The seed gave carol no updatedAt either: not "never", which is not known.
		{"/_emulator/users?q=carol", 200, []string{"1 user matching", `<td>yes</td><td>unknown</td></tr>`}, []string{`<td>never</td>`}},
		{"/_emulator/user?apiKey=3_EmuSite&UID=zed", 404, []string{"There is no user"}, nil},
		{"/_emulator/user", 400, []string{"The link gives no apiKey: a user page needs the user&#39;s apiKey and UID."}, nil},
		{"/_emulator/user?apiKey=3_EmuSite", 400, []string{"The link gives no UID"}, nil},
		{"/_emulator/log", 200, []string{"Signature debugging", html(base[0]), html(base[1]), "&lt;script&gt;", "403003", "<strong>403003</strong> Invalid request signature", "***"},
			[]string{"<script>alert", "c2lnbmF0dXJl"}},
		{"/_emulator/log?failed=1", 200, []string{"0123456789abcdef"}, []string{"fedcba98"}},
		{"/_emulator/log?method=socialize.setUserInfo", 200, []string{"fedcba98"}, []string{"0123456789abcdef"}},
		{"/_emulator/log?method=setUserInfo", 200, []string{"fedcba98"}, []string{"0123456789abcdef"}}, // as the CLI and fault rules take it
		{"/_emulator/clock", 200, []string{"<h1>Clock</h1>", `<label for="advance">`}, nil},
		{"/_emulator/faults", 200, []string{"No fault rules", "403048 API Rate Limit Exceeded", `<label for="f-code">`}, nil},
		{"/_emulator/nope", 404, []string{"no console page"}, nil},
		{"/_emulator/static/console.css", 200, []string{"font"}, nil},
		{"/_emulator/static/console.js", 200, []string{"use strict"}, nil},
		// Files, not listings: a folder is no page.
		{"/_emulator/static/", 404, []string{"There is no console page at /_emulator/static/."}, []string{`href="avatar.svg"`, `<pre>`}},
		{"/_emulator/static/nope.css", 404, nil, nil},
	}
	for _, p := range pages {
		status, body := te.do(t, "GET", p.path, "", "")
		if status != p.status {
			t.Errorf("%s: HTTP %d, want %d", p.path, status, p.status)
		}
		for _, c := range p.contains {
			if !strings.Contains(body, c) {
				t.Errorf("%s: no %q", p.path, c)
			}
		}
		for _, a := range p.absent {
			if strings.Contains(body, a) {
				t.Errorf("%s: shows %q", p.path, a)
			}
		}
		if strings.HasSuffix(p.path, ".css") || strings.HasSuffix(p.path, ".js") {
			continue
		}
		// Every page: a language, one h1, a main landmark, labelled inputs.
		for _, c := range []string{`<html lang="en">`, `<main id="main"`, "<h1>"} {
			if !strings.Contains(body, c) {
				t.Errorf("%s: no %q", p.path, c)
			}
		}
		if strings.Count(body, "<h1>") != 1 {
			t.Errorf("%s: %d h1", p.path, strings.Count(body, "<h1>"))
		}
		checkLabels(t, p.path, body)
	}
}

// checkLabels fails for an input or select (other than hidden inputs and checkboxes
// followed by their label) whose id no <label for> names.
func checkLabels(t *testing.T, path, body string) {
	t.Helper()
	for _, tag := range []string{"<input ", "<select "} {
		for rest := body; ; {
			i := strings.Index(rest, tag)
			if i < 0 {
				break
			}
			el := rest[i : i+strings.Index(rest[i:], ">")]
			rest = rest[i+len(tag):]
			if strings.Contains(el, `type="hidden"`) {
				continue
			}
			j := strings.Index(el, `id="`)
			if j < 0 {
				t.Errorf("%s: %s> has no id for a label", path, el)
				continue
			}
			id := el[j+4:]
			id = id[:strings.IndexByte(id, '"')]
			if !strings.Contains(body, `<label for="`+id+`">`) {
				t.Errorf("%s: no label for #%s", path, id)
			}
		}
	}
}

func html(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&#34;", "'", "&#39;", "+", "&#43;").Replace(s)
}

// TestConsoleFormMalformed: a fault form whose body is not URL-encoded is refused in
// the console's words, not net/url's (invalid URL escape "%zz"). Found writing FuzzAdminAPI.
func TestConsoleFormMalformed(t *testing.T) {
	te := newTestEmulator(t)
	for _, body := range []string{"method=%zz", "method=getUserInfo;count=1"} {
		status, page := te.do(t, "POST", "/_emulator/faults", "application/x-www-form-urlencoded", body, "Origin", te.URL)
		if status != http.StatusBadRequest || !strings.Contains(page, "The rule was not added: the form&#39;s data is not URL-encoded") ||
			strings.Contains(page, "invalid") {
			t.Errorf("%s: %d %s", body, status, page)
		}
	}
	if rules := te.Faults.Rules(); len(rules) != 0 {
		t.Errorf("rules added: %+v", rules)
	}
	// A reset or a clock change whose body does not decode changes nothing: its
	// fields were dropped, and the rest taken (a plain reset for all=%zz).
	for _, tt := range []struct{ path, body, want string }{
		{"/_emulator/reset", "all=%zz", "Nothing was reset: the form&#39;s data is not URL-encoded"},
		{"/_emulator/reset", "all=on;x=1", "Nothing was reset: the form&#39;s data is not URL-encoded"},
		{"/_emulator/clock", "action=advance&advance=1h&x=%zz", "The clock was not changed: the form&#39;s data is not URL-encoded"},
	} {
		status, page := te.do(t, "POST", tt.path, "application/x-www-form-urlencoded", tt.body, "Origin", te.URL)
		if status != http.StatusBadRequest || !strings.Contains(page, tt.want) {
			t.Errorf("%s %s: %d %s", tt.path, tt.body, status, page)
		}
	}
	if n, _ := te.store.CountUsers(context.Background(), ""); n != 2 || te.clock.Offset() != 0 {
		t.Errorf("%d users, the clock moved by %v", n, te.clock.Offset())
	}
}

// TestConsoleFormTooLarge: a console form whose body is over MaxFormBody is refused
// saying that the form is too large, and the limit; it said that the form's data was
// not URL-encoded (net/http's own 10 MB bound too). Nothing is changed.
func TestConsoleFormTooLarge(t *testing.T) {
	te := newTestEmulator(t)
	pad := "&x=" + strings.Repeat("a", 1<<20) // MaxFormBody
	const large = "the form is too large: more than 1048576 bytes (1 MiB), the most a console form takes"
	for _, tt := range []struct{ path, body, want string }{
		{"/_emulator/faults", "errorCode=500001" + pad, "The rule was not added: " + large},
		{"/_emulator/reset", "all=on" + pad, "Nothing was reset: " + large},
		{"/_emulator/clock", "action=advance&advance=1h" + pad, "The clock was not changed: " + large},
		// Past net/http's own bound, which said "not URL-encoded" before.
		{"/_emulator/faults", "errorCode=500001&x=" + strings.Repeat("a", 10<<20), "The rule was not added: " + large},
	} {
		status, page := te.do(t, "POST", tt.path, "application/x-www-form-urlencoded", tt.body, "Origin", te.URL)
		if status != http.StatusBadRequest || !strings.Contains(page, tt.want) || strings.Contains(page, "URL-encoded") {
			t.Errorf("%s: %d %.300s; want 400 saying %q", tt.path, status, page, tt.want)
		}
	}
	if rules := te.Faults.Rules(); len(rules) != 0 {
		t.Errorf("rules added: %+v", rules)
	}
	if n, _ := te.store.CountUsers(context.Background(), ""); n != 2 || te.clock.Offset() != 0 {
		t.Errorf("%d users, the clock moved by %v", n, te.clock.Offset())
	}
}

func TestConsoleForms(t *testing.T) {
	te := newTestEmulator(t)
	form := "application/x-www-form-urlencoded"
	origin := []string{"Origin", te.URL}
	post := func(path string, v url.Values, headers ...string) (int, string) {
		t.Helper()
		return te.do(t, "POST", path, form, v.Encode(), headers...)
	}

	// Clock.
	if status, body := post("/_emulator/clock", url.Values{"action": {"advance"}, "advance": {"24h"}}, origin...); status != 303 || !strings.Contains(body, "") {
		t.Errorf("advance: %d %s", status, body)
	}
	if te.clock.Offset() != 24*time.Hour {
		t.Errorf("offset %v", te.clock.Offset())
	}
	if status, body := post("/_emulator/clock", url.Values{"action": {"advance"}, "advance": {"tomorrow"}}, origin...); status != 400 || !strings.Contains(body, `role="alert"`) {
		t.Errorf("bad advance: %d", status)
	}
	if status, _ := te.do(t, "GET", "/_emulator/clock?done=clock", "", ""); status != 200 {
		t.Errorf("after the redirect: %d", status)
	}
	if _, body := te.do(t, "GET", "/_emulator/", "", ""); !strings.Contains(body, "moved by 24h0m0s") {
		t.Error("the header does not say the clock is moved")
	}
	post("/_emulator/clock", url.Values{"action": {"reset"}}, origin...)
	if te.clock.Offset() != 0 {
		t.Errorf("offset after reset %v", te.clock.Offset())
	}

	// Faults.
	if status, _ := post("/_emulator/faults", url.Values{"method": {"getUserInfo"}, "apiKey": {siteKey}, "errorCode": {"403048"}, "count": {"2"}, "fraction": {"50"}, "delay": {"5ms"}}, origin...); status != 303 {
		t.Errorf("add rule: %d", status)
	}
	rules := te.Faults.Rules()
	if len(rules) != 1 || rules[0].Method != "socialize.getUserInfo" || rules[0].APIKey != siteKey || rules[0].Code != 403048 || rules[0].Count != 2 ||
		rules[0].Fraction != 0.5 || rules[0].Delay != Duration(5*time.Millisecond) {
		t.Errorf("rules %+v", rules)
	}
	if status, body := post("/_emulator/faults", url.Values{"errorCode": {"0"}, "otherCode": {"999999"}}, origin...); status != 400 || !strings.Contains(body, "The rule was not added") {
		t.Errorf("bad rule: %d", status)
	}
	// 0 % of calls is refused, not taken for every call.
	if status, body := post("/_emulator/faults", url.Values{"errorCode": {"500001"}, "fraction": {"0"}}, origin...); status != 400 || !strings.Contains(body, "above 0") || len(te.Faults.Rules()) != 1 {
		t.Errorf("a rule of 0 %%: %d %v", status, te.Faults.Rules())
	}
	if _, body := te.do(t, "GET", "/_emulator/faults?done=fault-added&n=1", "", ""); !strings.Contains(body, "Added fault rule 1.") || !strings.Contains(body, "the next 2 of 2, 50 % of calls") {
		t.Errorf("faults page after adding:\n%s", body)
	}
	if status, _ := post("/_emulator/faults/1/delete", nil, origin...); status != 303 || len(te.Faults.Rules()) != 0 {
		t.Errorf("delete rule: %d %v", status, te.Faults.Rules())
	}
	te.Faults.Add(Rule{Code: 500001})
	if status, _ := post("/_emulator/faults/clear", nil, origin...); status != 303 || len(te.Faults.Rules()) != 0 {
		t.Errorf("clear rules: %d", status)
	}

	// Reset, and its CSRF guard.
	if status, _ := post("/_emulator/reset", nil, "Origin", "http://evil.example"); status != 403 {
		t.Errorf("cross-origin reset form: %d", status)
	}
	if status, _ := post("/_emulator/reset", nil, "Referer", "http://evil.example/page"); status != 403 {
		t.Errorf("cross-origin reset form (Referer): %d", status)
	}
	if n, _ := te.store.CountUsers(context.Background(), ""); n != 2 {
		t.Fatalf("a refused reset deleted users: %d left", n)
	}
	// all= as the form's checkbox sends it, or left out; another word resets nothing.
	if status, _ := post("/_emulator/reset", url.Values{"all": {"maybe"}}, origin...); status != 400 {
		t.Errorf("reset form with all=maybe: %d, want 400", status)
	}
	if n, _ := te.store.CountUsers(context.Background(), ""); n != 2 {
		t.Fatalf("a refused reset deleted users: %d left", n)
	}
	if status, _ := post("/_emulator/reset", nil, origin...); status != 303 {
		t.Errorf("reset form: %d", status)
	}
	if n, _ := te.store.CountUsers(context.Background(), ""); n != 0 {
		t.Errorf("%d users after the reset form", n)
	}
	// Counts of one are in the singular; a count the console cannot read is not.
	for _, tt := range []struct{ query, want string }{
		{"/_emulator/?done=reset&n=2", "Deleted 2 users."},
		{"/_emulator/?done=reset&n=1", "Deleted 1 user."},
		{"/_emulator/?done=reset-all&n=1", "Deleted 1 user, cleared"},
		{"/_emulator/faults?done=faults-cleared&n=1", "Cleared 1 fault rule."},
		{"/_emulator/faults?done=faults-cleared&n=0", "Cleared 0 fault rules."},
		{"/_emulator/?done=reset&n=x", "Deleted ? users."},
	} {
		if _, body := te.do(t, "GET", tt.query, "", ""); !strings.Contains(body, tt.want) {
			t.Errorf("%s: no %q", tt.query, tt.want)
		}
	}
	if _, body := te.do(t, "GET", "/_emulator/?done=reset&n=<b>", "", ""); strings.Contains(body, "<b>") {
		t.Error("the message reflects the query")
	}
}

// TestWriteJSONUnencodable: an answer that cannot be encoded is a 500 that says so,
// not a 200 with an empty body.
func TestWriteJSONUnencodable(t *testing.T) {
	w := httptest.NewRecorder()
	writeJSON(w, http.StatusOK, map[string]float64{"fraction": math.NaN()})
	if w.Code != http.StatusInternalServerError || !strings.Contains(w.Body.String(), `"error":"the answer could not be encoded`) {
		t.Errorf("HTTP %d %s", w.Code, w.Body)
	}
}

// TestLogKeepsNoBodies: the log keeps copies of a call's texts, a long value cut, so
// that it does not keep the request bodies they were sliced from.
func TestLogKeepsNoBodies(t *testing.T) {
	l := NewRequestLog(100)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := 0; i < 64; i++ {
		body := strings.Repeat("x", 1<<20) + strconv.Itoa(i)
		l.Observe(&server.Call{ID: strconv.Itoa(i), APIKey: body[:12], Method: body[12:20], Details: "Permission denied: " + body,
			Params: []gigya.Param{{Name: "apiKey", Value: body[:12]}, {Name: "userInfo", Value: body}}})
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if grew := int64(after.HeapAlloc) - int64(before.HeapAlloc); grew > 8<<20 {
		t.Errorf("64 calls of 1 MiB bodies keep %d MiB alive in the log", grew>>20)
	}
	e, _ := l.Entries(0, 1)
	if v, _ := e[0].Param("userInfo"); len(v) > MaxLoggedValue+32 || !strings.HasSuffix(v, "... (1048578 bytes)") {
		t.Errorf("a 1 MiB value is logged as %d bytes ending %q", len(v), v[max(0, len(v)-30):])
	}
	if d := e[0].Details; len(d) > MaxLoggedDetails+32 || !strings.HasPrefix(d, "Permission denied: xxx") {
		t.Errorf("1 MiB of errorDetails are logged as %d bytes", len(d))
	}
}

// lengthNote is the note that ends a value cut in the log.
var lengthNote = regexp.MustCompile(`\.\.\. \([0-9]+ bytes\)$`)

// TestLogEntryBudget: a call of many long values keeps at most MaxLoggedParams of them
// (a 1 MB body of 250 values of 4 KB kept half a megabyte an entry); its errorDetails
// keep MaxLoggedDetails, so that the signature diagnosis at their end survives a
// request of some size; a cut never splits a character.
func TestLogEntryBudget(t *testing.T) {
	l := NewRequestLog(10)
	var params []gigya.Param
	for i := range 250 {
		params = append(params, gigya.Param{Name: fmt.Sprintf("p%03d", i), Value: strings.Repeat("v", 4000)})
	}
	params = append(params, gigya.Param{Name: "context", Value: "a" + strings.Repeat("é", 1500)}, gigya.Param{Name: "sig", Value: "c2ln"})
	details := "Invalid request signature: " + strings.Repeat("d", 3000) + " Swift (iOS) SDK hint"
	l.Observe(&server.Call{ID: "1", Params: params, Details: details})
	e, _ := l.Entries(0, 1)
	kept := 0
	for _, p := range e[0].Params {
		kept += len(lengthNote.ReplaceAllString(p.Value, ""))
	}
	if kept > MaxLoggedParams+len(Masked) {
		t.Errorf("250 values of 4 KB kept %d bytes (the notes aside); want at most %d", kept, MaxLoggedParams)
	}
	// A masked value stays masked, not a note of its length, once the budget is spent.
	if sig, _ := e[0].Param("sig"); sig != Masked {
		t.Errorf("sig after the budget: %q, want %q", sig, Masked)
	}
	if !strings.HasSuffix(e[0].Details, "Swift (iOS) SDK hint") {
		t.Errorf("3 KB of errorDetails lost their end: ...%s", e[0].Details[max(0, len(e[0].Details)-40):])
	}
	// A cut never splits a character (the value is long enough to be cut on its own).
	l.Observe(&server.Call{ID: "2", Params: []gigya.Param{{Name: "context", Value: "a" + strings.Repeat("é", 1500)}}})
	e, _ = l.Entries(1, 1)
	if c, _ := e[0].Param("context"); !strings.HasSuffix(c, "... (3001 bytes)") || !utf8.ValidString(c) {
		t.Errorf("context of 3001 bytes logged as ...%q", c[max(0, len(c)-30):])
	}
}

// TestReseedKeepsKeyTokens: seeding a key that exists replaces its secret and methods
// and keeps the tokens it obtained, as a rotation does.
func TestReseedKeepsKeyTokens(t *testing.T) {
	st := openStore(t)
	ctx := context.Background()
	if _, err := Seed(ctx, st, strings.NewReader(seedFile), time.Now()); err != nil {
		t.Fatal(err)
	}
	tok := &socius.Token{Hash: strings.Repeat("ab", 32), Kind: socius.AccessToken, APIKey: "3_EmuSite", UID: "alice", UserKey: "AEmuKey", CreatedAt: time.Now()}
	if err := st.CreateToken(ctx, tok); err != nil {
		t.Fatal(err)
	}
	again := strings.Replace(seedFile, `"methods":["socialize.getUserInfo"]`, `"methods":["socialize.getUserInfo","socialize.setUserInfo"]`, 1)
	if _, err := Seed(ctx, st, strings.NewReader(again), time.Now()); err != nil {
		t.Fatal(err)
	}
	if k, err := st.Key(ctx, "AEmuKey"); err != nil || len(k.Methods) != 2 {
		t.Errorf("the key after the second seed: %+v %v", k, err)
	}
	if _, err := st.Token(ctx, tok.Hash); err != nil {
		t.Errorf("the key's token after the second seed: %v", err)
	}
}

// failingUsers is a store whose user writes fail as a broken database does: fault
// injection for TestSeedStoreFailure.
type failingUsers struct{ socius.Store }

func (failingUsers) PutUser(context.Context, *socius.User) error {
	return socius.DatabaseError("test", errors.New("disk I/O error"))
}

// TestSeedStoreFailure: a seed that the store fails is the server's failure (500),
// not a bad line of the caller's (400), so that `socius emulator seed` exits 1, not 2.
func TestSeedStoreFailure(t *testing.T) {
	te := newTestEmulator(t)
	e := New(Config{Store: failingUsers{te.store}, Clock: te.clock, LogSize: 10})
	srv := httptest.NewServer(e.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})))
	defer srv.Close()
	resp, err := http.Post(srv.URL+"/_emulator/api/seed", "application/x-ndjson", strings.NewReader(`{"apiKey":"3_EmuSite","UID":"dave"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusInternalServerError {
		t.Errorf("a seed the store failed: HTTP %d, want 500", resp.StatusCode)
	}
}

// TestConsoleHeaders: every console page forbids framing and sniffing and allows
// scripts and styles from the emulator only, images also from http: and https: (for
// profile photos), and nothing else: no data: URLs, which nothing uses.
func TestConsoleHeaders(t *testing.T) {
	te := newTestEmulator(t)
	resp, err := http.Get(te.URL + "/_emulator/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	want := map[string]string{
		"Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' http: https:;",
		"X-Frame-Options":         "DENY",
		"Referrer-Policy":         "same-origin",
	}
	for h, v := range want {
		if got := resp.Header.Get(h); !strings.HasPrefix(got, v) {
			t.Errorf("%s: %q, want it to start %q", h, got, v)
		}
	}
}

// TestNoSniff: every answer under /_emulator/ says X-Content-Type-Options: nosniff,
// the admin API's JSON (whose strings are the users' and the callers': a UID of
// "<script>...") and its export included, its errors and refusals too, so that no
// browser reads one as a page or a script.
func TestNoSniff(t *testing.T) {
	te := newTestEmulator(t)
	for _, tt := range []struct{ method, path string }{
		{"GET", "/_emulator/api/status"},
		{"GET", "/_emulator/api/user?apiKey=3_EmuSite&UID=%3Cscript%3Ealert(1)%3C/script%3E"}, // a 404
		{"GET", "/_emulator/api/export"},
		{"GET", "/_emulator/api/nothing"},
		{"POST", "/_emulator/api/status"}, // a 405
		{"GET", "/_emulator/"},
		{"GET", "/_emulator"}, // a redirect
	} {
		req, _ := http.NewRequest(tt.method, te.URL+tt.path, nil)
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("%s %s: HTTP %d, X-Content-Type-Options %q, want nosniff", tt.method, tt.path, resp.StatusCode, got)
		}
	}
	// The refusal of a foreign Host, in JSON.
	req, _ := http.NewRequest("GET", te.URL+"/_emulator/api/status", nil)
	req.Host = "rebind.evil.example"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("foreign Host: HTTP %d, X-Content-Type-Options %q, want 403 and nosniff", resp.StatusCode, resp.Header.Get("X-Content-Type-Options"))
	}
}

// usersFailAfter is a store whose user listing fails after its first page, as a
// database gone away in the middle of an export.
type usersFailAfter struct {
	socius.Store
	pages *atomic.Int32
}

func (s usersFailAfter) Users(ctx context.Context, apiKey, after string, limit int) ([]*socius.User, error) {
	if s.pages.Add(1) > 1 {
		return nil, socius.DatabaseError("test", errors.New("connection refused"))
	}
	return s.Store.Users(ctx, apiKey, after, limit)
}

// TestExportCutShort: an export the store fails half way is cut off, so that the
// client reads an error, not a clean end of a partial file; one that fails before its
// first byte is a 500.
func TestExportCutShort(t *testing.T) {
	te := newTestEmulator(t)
	ctx := context.Background()
	for i := range 1200 { // more than a page of users, and more than a buffer of lines
		if _, err := te.store.Login(ctx, "3_EmuSite", fmt.Sprintf("user%04d", i), nil, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		name   string
		failAt int32
	}{{"half way", 0}, {"at once", 1}} {
		pages := &atomic.Int32{}
		pages.Store(c.failAt)
		var logged bytes.Buffer // read after srv.Close, which waits for the handler
		e := New(Config{Store: usersFailAfter{te.store, pages}, Clock: te.clock, LogSize: 10, Logger: slog.New(slog.NewTextHandler(&logged, nil))})
		srv := httptest.NewServer(e.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})))
		resp, err := http.Get(srv.URL + "/_emulator/api/export")
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		srv.Close()
		switch c.name {
		case "half way":
			if resp.StatusCode != 200 || err == nil || len(body) == 0 {
				t.Errorf("%s: HTTP %d, %d bytes, %v; want 200 and the body cut off", c.name, resp.StatusCode, len(body), err)
			}
		default:
			if resp.StatusCode != http.StatusInternalServerError || err != nil {
				t.Errorf("%s: HTTP %d, %v; want 500", c.name, resp.StatusCode, err)
			}
		}
		// The failure is logged once, either way.
		if n := strings.Count(logged.String(), `msg="emulator: export"`); n != 1 {
			t.Errorf("%s: the failure logged %d times, want once:\n%s", c.name, n, logged.String())
		}
	}
}

// TestJSONProblem: a body of the admin API that does not decode is said in the words of
// its JSON, not of Go's types ("Go struct field Rule.errorCode of type int").
func TestJSONProblem(t *testing.T) {
	for body, want := range map[string]string{
		`{"errorCode":"403048"}`: `errorCode must be a whole number, not a string`,
		`{"errorCode":1e3}`:      `errorCode must be a whole number, not the number 1e3`,
		`{"delay":0}`:            `delay must be a duration such as "250ms" or "2s", not a number`,
		`[1]`:                    `the body must be a JSON object, not an array`,
		``:                       `the body is empty: a JSON object was expected`,
		`{x`:                     `the body is not JSON: invalid character 'x' looking for beginning of object key string (at byte 2)`,
		`{"nope":1}`:             `the body is not the JSON expected: unknown field "nope"`,
	} {
		dec := json.NewDecoder(strings.NewReader(body))
		dec.DisallowUnknownFields()
		var rule Rule
		got := jsonProblem(dec.Decode(&rule))
		if got != want || strings.Contains(got, "Go ") {
			t.Errorf("%s: %q, want %q", body, got, want)
		}
	}
}

// TestExportIsOneMoment: an export taken while the store is written, by the admin API
// or by --export-on-exit (both Export), is the export of the moment it began, byte
// for byte, and the view it read is closed when it ends. Between every two pages of
// users it reads, another writer renames a user already exported to a UID past the
// pages (read again, it would be in the export twice) and one not yet exported to a
// UID before them (it would be missing), and changes the site exported after: a key
// added, a user deleted, another created. Read page by page from the store, the
// emulator's export wrote renamed users twice and lost others.
func TestExportIsOneMoment(t *testing.T) {
	defer func(n int) { exportPage = n }(exportPage)
	exportPage = 5
	ctx := t.Context()
	st := openStore(t)
	if _, err := Seed(ctx, st, strings.NewReader(seedFile), time.Now()); err != nil {
		t.Fatal(err)
	}
	const other = "3_EmuOther"
	if err := st.CreateSite(ctx, &socius.Site{APIKey: other, Secret: siteSecret, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	const n = 40
	// The writes go on counting pages across exports: each export's renames are of
	// users its moment has (a user renamed already is not found, and left).
	written := storetest.NewPagedWrites(t, st, siteKey, other, n, keySecret)
	written.Seed(ctx)
	export := func(st socius.Store) string {
		t.Helper()
		var out bytes.Buffer
		if _, err := Export(ctx, st, &out); err != nil {
			t.Fatalf("export: %v", err)
		}
		return out.String()
	}
	before := export(st)
	if during := export(written); during != before {
		t.Errorf("the export taken while the store was written differs from the export of its moment:\n%s", linecount.Diff(during, before))
	}
	if written.Pages() < n/exportPage {
		t.Fatalf("the export read %d pages of users, want at least %d", written.Pages(), n/exportPage)
	}
	if written.Views() != 1 || written.OpenViews() != 0 {
		t.Errorf("the export opened %d views, %d left open; want one, closed", written.Views(), written.OpenViews())
	}

	// The admin API's export, the same way, from the moment after those writes.
	moment := export(st)
	if moment == before || !strings.Contains(moment, "AKeyOfLater") || !strings.Contains(moment, `"z-001"`) {
		t.Fatalf("the export after the writes does not have them:\n%s", moment)
	}
	e := New(Config{Store: written, Clock: &socius.OffsetClock{}, LogSize: 10})
	srv := httptest.NewServer(e.Wrap(http.NotFoundHandler()))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/_emulator/api/export")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET export: HTTP %d, %v", resp.StatusCode, err)
	}
	if string(body) != moment {
		t.Errorf("the admin API's export taken while the store was written differs from the export of its moment:\n%s", linecount.Diff(string(body), moment))
	}
	if written.Views() != 2 || written.OpenViews() != 0 {
		t.Errorf("the exports opened %d views, %d left open; want two, closed", written.Views(), written.OpenViews())
	}
}

// blankLines reads as n bytes of lines of spaces, made as they are read.
type blankLines struct{ n, i int }

func (b *blankLines) Read(p []byte) (int, error) {
	if b.i == b.n {
		return 0, io.EOF
	}
	p = p[:min(len(p), b.n-b.i)]
	for k := range p {
		p[k] = ' '
		if (b.i+k)%4096 == 4095 {
			p[k] = '\n'
		}
	}
	b.i += len(p)
	return len(p), nil
}

// A body over its bound is a 413 that says the bound, not a 400 with Go's "http:
// request body too large"; a seed's says what it loaded before the cut.
func TestBodyTooLarge(t *testing.T) {
	te := newTestEmulator(t)
	for _, path := range []string{"/_emulator/api/clock", "/_emulator/api/faults"} {
		body := `{"advance":"1h"` + strings.Repeat(" ", MaxJSONBody) + "}"
		status, got := te.do(t, "POST", path, "application/json", body)
		if want := fmt.Sprintf(`"error": "the body is larger than %d bytes, the most the admin API takes of JSON`, MaxJSONBody); status != 413 || !strings.Contains(got, want) {
			t.Errorf("%s: HTTP %d %s, want 413 %s", path, status, got, want)
		}
	}
	if te.clock.Offset() != 0 {
		t.Errorf("the clock moved: %v", te.clock.Offset())
	}

	// The handler is called directly: the body, made as it is read, never goes
	// through a connection.
	site := `{"kind":"site","apiKey":"3_Big","secret":"` + siteSecret + `"}` + "\n"
	req := httptest.NewRequest("POST", "http://127.0.0.1/_emulator/api/seed", io.MultiReader(strings.NewReader(site), &blankLines{n: MaxSeedBody}))
	req.Header.Set("Content-Type", "application/x-ndjson")
	rec := httptest.NewRecorder()
	te.ServeHTTP(rec, req)
	var got struct {
		Error  string
		Loaded SeedStats
	}
	json.Unmarshal(rec.Body.Bytes(), &got)
	if want := fmt.Sprintf("seed: the body is larger than %d bytes (256 MiB), the most one request takes: the lines before the cut are loaded", MaxSeedBody); rec.Code != 413 ||
		!strings.HasPrefix(got.Error, want) || got.Loaded != (SeedStats{Sites: 1}) {
		t.Errorf("seed: HTTP %d %s, want 413 %s, 1 site loaded", rec.Code, rec.Body, want)
	}
}
