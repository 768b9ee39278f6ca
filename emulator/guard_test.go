package emulator

import (
	"context"
	"net/http"
	"strings"
	"testing"
)

// TestCrossSiteWrites: a page of another site cannot change the emulator with the
// requests a browser sends for it without asking first (CORS "simple" requests: a
// form, or fetch with a string body, which is text/plain). A current browser names
// its origin (Origin, Sec-Fetch-Site) and is refused for it (403); a browser that names
// none with a form (Firefox before version 70, the page withholding the Referer) sends
// text/plain or a form's type, which no endpoint of the admin API takes (415), and a
// console form without any of those headers is refused (403). Until the thirty-fourth
// session the seed took any Content-Type, text/plain included, and a console form
// needed no header: the origin check stood alone. Nothing refused changes anything;
// programs (the CLI, curl with the documented Content-Type) pass.
func TestCrossSiteWrites(t *testing.T) {
	te := newTestEmulator(t)
	// What a form of another site's page sends as text/plain: name=value, the page
	// choosing name and value so that the line is a user record.
	const planted = `{"kind":"user","apiKey":"3_EmuSite","UID":"mallory","profile":{"nickname":"x"},"pad":"=y"}` + "\r\n"
	const plantedLine = `{"kind":"user","apiKey":"3_EmuSite","UID":"mallory"}`
	chromium := []string{"Origin", "http://evil.example", "Sec-Fetch-Site", "cross-site", "Sec-Fetch-Mode", "no-cors", "Sec-Fetch-Dest", "empty"}
	for _, tt := range []struct {
		name, method, path, ctype, body string
		headers                         []string
		status                          int
		want                            string
	}{
		// Current browsers: their origin is refused, whatever the body.
		{"fetch of a string, Chromium", "POST", "/_emulator/api/seed", "text/plain;charset=UTF-8", plantedLine, chromium, 403,
			`"error": "socius emulator: cross-origin request refused (Sec-Fetch-Site: cross-site)"`},
		{"fetch of a Blob, no Sec-Fetch-Site", "POST", "/_emulator/api/seed", "", plantedLine, []string{"Origin", "http://evil.example"}, 403,
			"cross-origin request refused (Origin: http://evil.example)"},
		{"form, opaque origin", "POST", "/_emulator/api/reset", "application/x-www-form-urlencoded", "a=b", []string{"Origin", "null"}, 403,
			"cross-origin request refused (Origin: null)"},
		// A browser that names no origin: the Content-Type is refused.
		{"text/plain form to the seed", "POST", "/_emulator/api/seed", "text/plain", planted, nil, 415,
			`"error": "seed: Content-Type text/plain is refused (a page of another site can send it to the emulator without asking: a form, or fetch with a string body): send the seed (JSON lines) as Content-Type: application/x-ndjson`},
		{"urlencoded form to the seed", "POST", "/_emulator/api/seed", "application/x-www-form-urlencoded", "x=" + plantedLine, nil, 415,
			"Content-Type application/x-www-form-urlencoded is refused (a page of another site"},
		{"multipart form to the seed", "POST", "/_emulator/api/seed", "multipart/form-data; boundary=x",
			"--x\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n" + plantedLine + "\r\n--x--\r\n", nil, 415, "Content-Type multipart/form-data is refused"},
		{"a seed without a Content-Type", "POST", "/_emulator/api/seed", "", plantedLine, nil, 415,
			"seed: no Content-Type is refused (a page of another site"},
		{"a seed of another type", "POST", "/_emulator/api/seed", "application/octet-stream", plantedLine, nil, 415,
			"seed: Content-Type application/octet-stream is refused: send the seed"},
		{"text/plain form to the reset", "POST", "/_emulator/api/reset?all=true", "text/plain", "a=b\r\n", nil, 415,
			"Content-Type text/plain is refused (a page of another site can send it to the emulator without asking: a form, or fetch with a string body): the reset takes no body: send it without a Content-Type"},
		{"urlencoded form to the reset", "POST", "/_emulator/api/reset", "application/x-www-form-urlencoded", "", nil, 415,
			"Content-Type application/x-www-form-urlencoded is refused"},
		{"text/plain form to the faults", "POST", "/_emulator/api/faults", "text/plain", `{"errorCode":500001,"x":"=y"}`, nil, 415,
			"Content-Type text/plain is refused (a page of another site can send it to the emulator without asking: a form, or fetch with a string body): the body must be JSON (Content-Type: application/json)"},
		{"text/plain form to the clock", "POST", "/_emulator/api/clock", "text/plain", `{"advance":"1h","x":"=y"}`, nil, 415,
			"Content-Type text/plain is refused"},
		// The console's forms take a form's type: a form naming no origin at all is
		// refused; one naming another is, as before.
		{"console reset, no origin", "POST", "/_emulator/reset", "application/x-www-form-urlencoded", "all=on", nil, 403,
			"socius emulator: a console form sent without Origin, Referer or Sec-Fetch-Site is refused"},
		{"console clock, no origin", "POST", "/_emulator/clock", "application/x-www-form-urlencoded", "action=advance&advance=1h", nil, 403,
			"the forms are for a browser"},
		{"console fault, no origin", "POST", "/_emulator/faults", "application/x-www-form-urlencoded", "errorCode=500001", nil, 403,
			"a console form sent without Origin"},
		{"console fault, text/plain, Chromium", "POST", "/_emulator/faults", "text/plain", "errorCode=500001", chromium, 403,
			"cross-origin request refused"},
		// A preflight for a seed from another site is never granted.
		{"preflight", "OPTIONS", "/_emulator/api/seed", "", "", []string{"Origin", "http://evil.example", "Access-Control-Request-Method", "POST",
			"Access-Control-Request-Headers", "content-type", "Sec-Fetch-Site", "cross-site", "Sec-Fetch-Mode", "cors"}, 403, "cross-origin request refused"},
	} {
		status, body := te.do(t, tt.method, tt.path, tt.ctype, tt.body, tt.headers...)
		if status != tt.status || !strings.Contains(body, tt.want) {
			t.Errorf("%s: HTTP %d %.400s\nwant %d with %q", tt.name, status, body, tt.status, tt.want)
		}
	}
	ctx := context.Background()
	if _, err := te.store.User(ctx, siteKey, "mallory"); err == nil {
		t.Error("a refused seed stored its user")
	}
	if n, _ := te.store.CountUsers(ctx, ""); n != 2 {
		t.Errorf("%d users after refused requests, want the seed's 2", n)
	}
	if len(te.Faults.Rules()) != 0 || te.clock.Offset() != 0 {
		t.Errorf("refused requests changed the rules %v or the clock (%v)", te.Faults.Rules(), te.clock.Offset())
	}

	// Programs, and the console's own forms, pass.
	for _, tt := range []struct {
		name, method, path, ctype, body string
		headers                         []string
		status                          int
	}{
		{"seed as the CLI sends it", "POST", "/_emulator/api/seed", "application/x-ndjson", `{"apiKey":"3_EmuSite","UID":"carol"}`, nil, 200},
		{"seed with a charset", "POST", "/_emulator/api/seed", "Application/X-NDJSON; charset=utf-8", `{"apiKey":"3_EmuSite","UID":"dave"}`, nil, 200},
		{"seed as application/jsonl", "POST", "/_emulator/api/seed", "application/jsonl", `{"apiKey":"3_EmuSite","UID":"erin"}`, nil, 200},
		{"seed as application/json", "POST", "/_emulator/api/seed", "application/json", `{"apiKey":"3_EmuSite","UID":"frank"}`, nil, 200},
		{"seed from the console's origin", "POST", "/_emulator/api/seed", "application/x-ndjson", `{"apiKey":"3_EmuSite","UID":"grace"}`,
			[]string{"Origin", te.URL, "Sec-Fetch-Site", "same-origin"}, 200},
		{"console clock form", "POST", "/_emulator/clock", "application/x-www-form-urlencoded", "action=reset", []string{"Origin", te.URL, "Sec-Fetch-Site", "same-origin"}, 303},
		{"console form with a Referer alone", "POST", "/_emulator/faults/clear", "application/x-www-form-urlencoded", "", []string{"Referer", te.URL + "/_emulator/faults"}, 303},
		{"reset as JSON", "POST", "/_emulator/api/reset", "application/json", "", nil, 200},
		{"reset as the CLI sends it", "POST", "/_emulator/api/reset?all=true", "", "", nil, 200},
	} {
		if status, body := te.do(t, tt.method, tt.path, tt.ctype, tt.body, tt.headers...); status != tt.status {
			t.Errorf("%s: HTTP %d %s, want %d", tt.name, status, body, tt.status)
		}
	}
	if n, _ := te.store.CountUsers(ctx, ""); n != 0 {
		t.Errorf("%d users after the reset", n)
	}
}

// TestPreflightNotGranted: the emulator answers no CORS preflight with
// Access-Control-Allow-*, whatever the origin, so that a browser never sends another
// site's request of a Content-Type the admin API takes.
func TestPreflightNotGranted(t *testing.T) {
	te := newTestEmulator(t)
	for _, origin := range []string{"http://evil.example", "http://localhost:3000"} {
		req, _ := http.NewRequest("OPTIONS", te.URL+"/_emulator/api/seed", nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "content-type")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		for k := range resp.Header {
			if strings.HasPrefix(k, "Access-Control-") {
				t.Errorf("preflight from %s: HTTP %d with %s: %q", origin, resp.StatusCode, k, resp.Header.Get(k))
			}
		}
		if resp.StatusCode/100 == 2 {
			t.Errorf("preflight from %s: HTTP %d", origin, resp.StatusCode)
		}
	}
}
