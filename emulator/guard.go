package emulator

import (
	"errors"
	"fmt"
	"mime"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// localHost reports whether a Host header names this machine in a way a DNS-rebinding
// page cannot: a loopback IP address, localhost, or a name under .localhost.
func localHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if ip := net.ParseIP(host); ip != nil {
		return ip.IsLoopback()
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	return host == "localhost" || strings.HasSuffix(host, ".localhost")
}

// sameOrigin refuses a state-changing request that a browser sent on behalf of another
// site (CSRF): Sec-Fetch-Site must say same-origin (or none: typed by the user), and
// Origin, else Referer, when present, must name the host the request was sent to.
// Clients that are not browsers (the CLI, curl, test code) send none of these and pass.
func sameOrigin(r *http.Request) error {
	if s := r.Header.Get("Sec-Fetch-Site"); s != "" && s != "same-origin" && s != "none" {
		return errors.New("cross-origin request refused (Sec-Fetch-Site: " + clip(s, 20) + ")")
	}
	check := func(header, v string) error {
		u, err := url.Parse(v)
		if v == "null" || err != nil || !strings.EqualFold(u.Host, r.Host) {
			return errors.New("cross-origin request refused (" + header + ": " + clip(v, 100) + ")")
		}
		return nil
	}
	if o := r.Header.Get("Origin"); o != "" {
		return check("Origin", o)
	}
	if ref := r.Header.Get("Referer"); ref != "" {
		return check("Referer", ref)
	}
	return nil
}

// crossSiteRead refuses a GET or HEAD that a browser sent for a page of another site,
// other than a link followed (a top-level navigation): an <img>, <script>, <link> or
// <iframe> of the emulator, or a no-cors fetch. Such a page cannot read the answer,
// but it can time it: a long poll of the log (wait=) ends when the next API call
// comes, and at once when calls after its after= are logged, so the page learns when
// the API is called and, halving after=, how often. A browser without ORB (Chromium
// has it) also lets the page tell a 200 from a 404, whether a user is there. And the
// page can start as many user searches and exports as it likes. Sec-Fetch-Site tells
// such a request (current browsers send it to a loopback address); a typed URL, a
// bookmark and the console's own requests pass, and so do clients that are not
// browsers, which send no Sec-Fetch-Site.
func crossSiteRead(r *http.Request) error {
	site := r.Header.Get("Sec-Fetch-Site")
	if site == "" || site == "same-origin" || site == "none" {
		return nil
	}
	mode, dest := r.Header.Get("Sec-Fetch-Mode"), r.Header.Get("Sec-Fetch-Dest")
	if mode == "navigate" && (dest == "document" || dest == "") {
		return nil
	}
	return errors.New("cross-origin request refused (Sec-Fetch-Site: " + clip(site, 20) + ", Sec-Fetch-Mode: " + clip(mode, 20) +
		", Sec-Fetch-Dest: " + clip(dest, 20) + "): a page of another site may link to the emulator, not load it")
}

// The Content-Types a page of another site may send in a POST without the browser
// asking the emulator first (a CORS "simple" request, no preflight): a form's three
// encodings, and no Content-Type at all (fetch of a Blob or an ArrayBuffer). A string
// body, fetch's and XMLHttpRequest's, is text/plain. Every other type needs a
// preflight (OPTIONS), which the emulator never grants: a browser does not send the
// request.
var simpleTypes = []string{"", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data"}

// mediaType returns the media type of r's Content-Type, lower case, without its
// parameters; "" when there is none, and the header as sent when it does not parse.
func mediaType(r *http.Request) string {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return ""
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil && mt == "" {
		return ct
	}
	return mt
}

// bodyType refuses a request of the admin API that changes something whose
// Content-Type is not one of want ("" for none), with hint, what to send, at the end
// of the error. A second guard besides sameOrigin, which passes a request that names
// no origin (a program's), for the browsers that send no Origin and no Sec-Fetch-Site
// with a form (Firefox before version 70, whose page can also withhold the Referer):
// such a form sends text/plain or a form's type, which no endpoint takes. A fetch
// without a Content-Type sends Origin in current browsers, not in those (a no-cors
// POST): the reset, which takes none as curl -X POST sends it, is the one request
// they can still send (docs/emulator.md, Security).
func bodyType(r *http.Request, hint string, want ...string) error {
	got := mediaType(r)
	if slices.Contains(want, got) {
		return nil
	}
	sent := "no Content-Type"
	if got != "" {
		sent = "Content-Type " + clip(got, 100)
	}
	why := ""
	if slices.Contains(simpleTypes, got) {
		why = " (a page of another site can send it to the emulator without asking: a form, or fetch with a string body)"
	}
	return fmt.Errorf("%s is refused%s: %s", sent, why, hint)
}

// consoleForm refuses a POST to the console that names no origin: no Origin, no
// Referer and no Sec-Fetch-Site. The console's forms take a form's Content-Type, so
// bodyType cannot guard them; every browser sends at least one of those headers with
// the console's own forms (the console's Referrer-Policy is same-origin), and a form of
// another site's page, in a browser that sends neither Origin nor Sec-Fetch-Site with
// it, can withhold only the Referer. Programs use the admin API.
func consoleForm(r *http.Request) error {
	for _, h := range []string{"Origin", "Referer", "Sec-Fetch-Site"} {
		if r.Header.Get(h) != "" {
			return nil
		}
	}
	return errors.New("a console form sent without Origin, Referer or Sec-Fetch-Site is refused: the forms are for a browser; a program changes the emulator through the admin API (/_emulator/api/, socius emulator ...)")
}
