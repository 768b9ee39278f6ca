package emulator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/socius/socius"
)

// FuzzSeed loads arbitrary text as a seed. Into a store that works, a seed fails
// only for one of its lines, named, and never as the store's failure; what it loaded
// exports, and the export seeds another store with the same, which exports the same
// again. A store per input would cost a tenth of a second: two stores serve every
// input, emptied of keys and users before it (sites cannot be deleted: they stay, the
// same in both, as every export carries them to the other).
func FuzzSeed(f *testing.F) {
	f.Add(seedFile)
	f.Add(seedFile + `{"kind":"key","userKey":"AEmuKey","apiKey":"3_Other","secret":"` + keySecret + `"}`)
	f.Add(`{"kind":"site","apiKey":"3_EmuSite","secret":"` + siteSecret + `"}` + "\n" +
		`{"kind":"key","userKey":"AK2","apiKey":"3_EmuSite","secret":"` + keySecret + `","methods":["GETUSERINFO","socialize.getToken"]}` + "\n" +
		`{"apiKey":"3_EmuSite","UID":"u","profile":{"age":"41","email":null}}` + "\n" +
		`{"apiKey":"3_EmuSite","UID":"u","loggedIn":true,"loginAt":"2026-01-02T03:04:05.999999Z"}`)
	f.Add(`{"kind":"key","userKey":"AK","apiKey":"3_EmuSite","secret":"` + keySecret + `","methods":["nope"]}`)
	lineError := regexp.MustCompile(`^line [1-9][0-9]*: `)
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	ctx := context.Background()
	st, other := openStore(f), openStore(f)
	empty := func(t *testing.T, st socius.Store) {
		t.Helper()
		if _, err := st.DeleteUsers(ctx, ""); err != nil {
			t.Fatal(err)
		}
		sites, err := st.Sites(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range sites {
			keys, err := st.Keys(ctx, s.APIKey)
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range keys {
				if err := st.DeleteKey(ctx, k.UserKey); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	f.Fuzz(func(t *testing.T, text string) {
		empty(t, st)
		n, err := Seed(ctx, st, strings.NewReader(text), now)
		if err != nil {
			var se *socius.Error
			if errors.As(err, &se) && se.Code == socius.CodeDatabaseError {
				t.Fatalf("a seed line failed as the store's failure (a 500): %v", err)
			}
			if !lineError.MatchString(err.Error()) {
				t.Fatalf("a seed failed without naming its line: %v", err)
			}
			return
		}
		var first bytes.Buffer
		m, err := Export(ctx, st, &first)
		if err != nil || m.Keys > n.Keys || m.Users > n.Users {
			t.Fatalf("export of the seed: %+v, %v; seeded %+v", m, err, n)
		}
		empty(t, other)
		if m2, err := Seed(ctx, other, bytes.NewReader(first.Bytes()), now.Add(time.Hour)); err != nil || m2 != m {
			t.Fatalf("the export does not seed back (%+v, %v; exported %+v):\n%s", m2, err, m, first.String())
		}
		var second bytes.Buffer
		if _, err := Export(ctx, other, &second); err != nil || second.String() != first.String() {
			t.Fatalf("seeded from an export, exported again (%v):\n%s\nwas\n%s", err, second.String(), first.String())
		}
	})
}

// FuzzAdminAPI posts arbitrary JSON bodies to the admin API's endpoints that read
// one (the clock, the fault rules, a seed). The answer is JSON; a refusal is a 4xx with
// an "error" in the API's words, not Go's; nothing is a 500.
func FuzzAdminAPI(f *testing.F) {
	for _, seed := range []struct {
		endpoint uint8
		body     string
	}{
		{0, `{"advance":"90m"}`}, {0, `{"set":"2030-01-01T00:00:00Z"}`}, {0, `{"set":"1800000000"}`},
		{0, `{"reset":true}`}, {0, `{"advance":"1h","reset":true}`}, {0, `{"set":"9999-01-01"}`},
		{1, `{"method":"getUserInfo","errorCode":500001,"count":2}`}, {1, `{"delay":"250ms","fraction":0.5}`},
		{1, `{"fraction":0}`}, {1, `{"id":3}`}, {1, `{"delay":5}`}, {1, `[]`},
		{2, seedFile}, {2, `{"kind":"key"}`}, {3, ``},
		{4, "action=advance&advance=90m"}, {4, "action=set&set=2030-01-01"}, {5, "method=getUserInfo&errorCode=500001&fraction=50%25"},
		{5, "delay=soon&count=x"}, {5, "method=%zz"}, {6, "all=on"},
	} {
		f.Add(seed.endpoint, seed.body)
	}
	st := openStore(f)
	clock := &socius.OffsetClock{}
	e := New(Config{Store: st, Clock: clock, LogSize: 10})
	h := e.Wrap(http.NotFoundHandler())
	endpoints := []string{"/_emulator/api/clock", "/_emulator/api/faults", "/_emulator/api/seed", "/_emulator/api/reset",
		// The console's forms, which change the same state.
		"/_emulator/clock", "/_emulator/faults", "/_emulator/reset"}
	goWords := regexp.MustCompile(`Go value|Go struct|emulator\.|time\.Duration|reflect|socius\.|main\.|\bfloat64\b|\bint\b`)
	goForm := regexp.MustCompile(`invalid URL escape|invalid semicolon separator`)
	f.Fuzz(func(t *testing.T, endpoint uint8, body string) {
		defer e.Faults.Clear()
		defer clock.Reset()
		path := endpoints[int(endpoint)%len(endpoints)]
		req := httptest.NewRequest("POST", "http://localhost"+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		form := !strings.HasPrefix(path, "/_emulator/api/")
		if form {
			// As the console's own form: a browser says where it comes from.
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Origin", "http://localhost")
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("POST %s %q: %d %s", path, body, rec.Code, rec.Body)
		}
		if form {
			// A page: refused (400) or done (303), never in net/url's words.
			if rec.Code != http.StatusSeeOther && rec.Code != http.StatusBadRequest || goForm.MatchString(rec.Body.String()) {
				t.Fatalf("POST %s %q: %d %s", path, body, rec.Code, rec.Body)
			}
			return
		}
		var answer map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &answer); err != nil {
			t.Fatalf("POST %s %q: the answer is not a JSON object: %s", path, body, rec.Body)
		}
		if rec.Code >= 400 {
			msg, _ := answer["error"].(string)
			if msg == "" || goWords.MatchString(msg) {
				t.Fatalf("POST %s %q: %d, error %q", path, body, rec.Code, msg)
			}
		}
	})
}
