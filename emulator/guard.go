package emulator

import (
	"errors"
	"net"
	"net/http"
	"net/url"
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
