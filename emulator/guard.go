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
