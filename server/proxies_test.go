package server

import (
	"bytes"
	"encoding/base64"
	"log/slog"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
)

func TestParseTrustedProxies(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", ""},
		{"  ", ""},
		{"127.0.0.1", "127.0.0.1"},
		{" 127.0.0.1 , 10.0.0.0/8,::1", "127.0.0.1,10.0.0.0/8,::1"},
		{"10.1.2.3/8", "10.0.0.0/8"},          // host bits dropped
		{"::ffff:10.0.0.1", "10.0.0.1"},       // mapped: compared unmapped
		{"::ffff:10.0.0.0/104", "10.0.0.0/8"}, // a mapped prefix too
		{"::ffff:0:0/96", "0.0.0.0/0"},        // every IPv4 address
		{"::/0", "::/0"},                      // every IPv6 one (not a mapped prefix)
		{"fd00::/8,2001:db8::/32", "fd00::/8,2001:db8::/32"},
	} {
		got, err := ParseTrustedProxies(c.in)
		if err != nil || got.String() != c.want {
			t.Errorf("ParseTrustedProxies(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	for _, c := range []struct{ in, want string }{
		{"127.0.0.1,", `"": an empty entry`},
		{"127.0.0.1,,::1", `"": an empty entry`},
		{"localhost", `"localhost": not an IP address`},
		{"127.0.0.1:80", `"127.0.0.1:80": not an IP address`},
		{"[::1]", `"[::1]": an address in brackets: give an IPv6 address without them`},
		{"[::1]:80", `"[::1]:80": an address in brackets`},
		{"::ffff:10.0.0.0/95", `"::ffff:10.0.0.0/95": an IPv4-mapped prefix shorter than /96`},
		{"::ffff:0:0/80", `"::ffff:0:0/80": an IPv4-mapped prefix shorter than /96`},
		{"fe80::1%eth0", `"fe80::1%eth0": an address with a zone`},
		{"10.0.0.0/33", `"10.0.0.0/33": not a CIDR prefix`},
		{"10.0.0.0/", `"10.0.0.0/": not a CIDR prefix`},
	} {
		_, err := ParseTrustedProxies(c.in)
		if err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("ParseTrustedProxies(%q): %v; want %q...", c.in, err, c.want)
		}
	}
}

// TestTrustedProxiesClient walks X-Forwarded-For as a server behind proxies must: from
// the right, past the trusted proxies, to the first address that is not one; what is
// left of it, which anyone can write, is never believed.
func TestTrustedProxiesClient(t *testing.T) {
	trusted, err := ParseTrustedProxies("127.0.0.1,10.0.0.0/8,::1,fd00::/8")
	if err != nil {
		t.Fatal(err)
	}
	many := strings.Repeat("10.0.0.9,", maxForwardedEntries) + "10.0.0.9"
	for _, c := range []struct {
		name   string
		peer   string
		fields []string
		want   string
	}{
		{"untrusted peer: header ignored", "203.0.113.9", []string{"198.51.100.1"}, "203.0.113.9"},
		{"trusted peer without header", "127.0.0.1", nil, "127.0.0.1"},
		{"one proxy", "127.0.0.1", []string{"198.51.100.1"}, "198.51.100.1"},
		{"spoofed leftmost entries ignored", "127.0.0.1", []string{"1.1.1.1, 2.2.2.2, 198.51.100.1"}, "198.51.100.1"},
		{"chain of trusted proxies", "127.0.0.1", []string{"6.6.6.6, 198.51.100.1, 10.0.0.2, 10.1.0.3"}, "198.51.100.1"},
		{"several fields in order", "127.0.0.1", []string{"6.6.6.6, 198.51.100.1", "10.0.0.2", "10.1.0.3"}, "198.51.100.1"},
		{"a spoofed field first", "127.0.0.1", []string{"6.6.6.6", "198.51.100.1"}, "198.51.100.1"},
		{"every entry trusted: the leftmost", "127.0.0.1", []string{"10.0.0.1, 10.0.0.2"}, "10.0.0.1"},
		{"IPv6 client", "::1", []string{"2001:db8::7"}, "2001:db8::7"},
		{"IPv6 client behind an IPv6 proxy", "127.0.0.1", []string{"2001:db8::7, fd00::1"}, "2001:db8::7"},
		{"IPv6 in brackets", "127.0.0.1", []string{"[2001:db8::7]"}, "2001:db8::7"},
		{"IPv6 in brackets with a port", "127.0.0.1", []string{"[2001:db8::7]:443"}, "2001:db8::7"},
		{"IPv4 with a port", "127.0.0.1", []string{"198.51.100.1:5555"}, "198.51.100.1"},
		{"IPv4-mapped", "::ffff:127.0.0.1", []string{"::ffff:198.51.100.1"}, "198.51.100.1"},
		{"mapped proxy entry is trusted", "127.0.0.1", []string{"198.51.100.1, ::ffff:10.0.0.2"}, "198.51.100.1"},
		{"tabs and spaces", "127.0.0.1", []string{" \t198.51.100.1 \t"}, "198.51.100.1"},
		{"malformed: stops at the proxy nearest it", "127.0.0.1", []string{"198.51.100.1, bogus, 10.0.0.2"}, "10.0.0.2"},
		{"malformed rightmost: the peer", "127.0.0.1", []string{"198.51.100.1, unknown"}, "127.0.0.1"},
		{"empty entry", "127.0.0.1", []string{"198.51.100.1,,10.0.0.2"}, "10.0.0.2"},
		{"empty field", "127.0.0.1", []string{"198.51.100.1", ""}, "127.0.0.1"},
		{"a zone is malformed", "127.0.0.1", []string{"fe80::1%eth0"}, "127.0.0.1"},
		{"IPv6 with a port, no brackets", "127.0.0.1", []string{"2001:db8::7:80, 10.0.0.2"}, "2001:db8::7:80"},
		{"IPv4 in brackets", "127.0.0.1", []string{"[198.51.100.1], 10.0.0.2"}, "10.0.0.2"},
		{"a host name", "127.0.0.1", []string{"client.example, 10.0.0.2"}, "10.0.0.2"},
		{"too many entries", "127.0.0.1", []string{"198.51.100.1," + many}, "10.0.0.9"},
		{"an entry beyond the bytes looked at", "127.0.0.1", []string{strings.Repeat("1", 9000)}, "127.0.0.1"},
		{"a last field of exactly the bytes looked at", "127.0.0.1", []string{"198.51.100.1", strings.Repeat(" ", maxForwardedBytes-8) + "10.0.0.2"}, "10.0.0.2"},
		{"bytes looked at over several fields", "127.0.0.1", []string{"198.51.100.1", strings.Repeat(" ", 8000) + "10.0.0.2", strings.Repeat(" ", 500) + "10.0.0.3"}, "10.0.0.3"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := trusted.client(netip.MustParseAddr(c.peer).Unmap(), c.fields)
			if got.String() != c.want {
				t.Errorf("client(%s, %q) = %s, want %s", c.peer, c.fields, got, c.want)
			}
		})
	}
	if got := TrustedProxies(nil).client(netip.MustParseAddr("127.0.0.1"), []string{"198.51.100.1"}); got.String() != "127.0.0.1" {
		t.Errorf("no trusted proxy: %s", got)
	}
}

// TestClientAddrOfCalls: the server takes a call's client from a trusted proxy's
// X-Forwarded-For, for the limit on failed authentications and the call log (remote,
// with the proxy as peer), and the connection's peer otherwise; X-Forwarded-Proto is
// honoured from a trusted proxy only.
func TestClientAddrOfCalls(t *testing.T) {
	var logs bytes.Buffer
	s := newTestServer(t, t.TempDir(), nil)
	s.cfg.TrustForwardedProto = true
	s.cfg.TrustedProxies = TrustedProxies{netip.MustParsePrefix("192.0.2.0/24")}
	s.cfg.Observe = LogCalls(slog.New(slog.NewTextHandler(&logs, nil)))
	s.authFailures = newAuthFailures(0.001, 1)
	call := func(peer, forwardedFor, secret string, headers ...string) (answer, line string) {
		t.Helper()
		logs.Reset()
		r := httptest.NewRequest("POST", "http://socialize.localtest/socialize.getUserInfo",
			strings.NewReader("apiKey="+labAPIKey+"&secret="+url.QueryEscape(secret)+"&UID=u1"))
		r.Header.Set("Content-Type", formType)
		r.Header.Set("X-Forwarded-Proto", "https")
		if forwardedFor != "" {
			r.Header.Set("X-Forwarded-For", forwardedFor)
		}
		for i := 0; i+1 < len(headers); i += 2 {
			r.Header.Add(headers[i], headers[i+1])
		}
		r.RemoteAddr = peer
		return serve(s, r).Body.String(), logs.String()
	}
	wrong := base64.StdEncoding.EncodeToString([]byte("not the secret of the lab site"))

	// A client through the proxy fails once, and is then refused, by its own address.
	a, line := call("192.0.2.1:5000", "6.6.6.6, 198.51.100.1", wrong)
	if !strings.Contains(a, `"errorCode":403003`) || !strings.Contains(line, "remote=198.51.100.1 peer=192.0.2.1:5000") {
		t.Fatalf("a bad secret through the proxy: %s\n%s", a, line)
	}
	a, line = call("192.0.2.7:5001", "198.51.100.1", labSecret)
	if !strings.Contains(a, `"errorCode":403048`) || !strings.Contains(a, "address 198.51.100.1 made more") || !strings.Contains(line, "remote=198.51.100.1 peer=192.0.2.7:5001") {
		t.Fatalf("the same client through another proxy: %s\n%s", a, line)
	}
	// A forged leftmost entry does not get it out.
	if a, _ = call("192.0.2.1:5000", "198.51.100.2, 198.51.100.1", labSecret); !strings.Contains(a, `"errorCode":403048`) {
		t.Fatalf("the client forging another address before its own: %s", a)
	}
	// Another client through the same proxy is not touched, nor the proxy itself.
	if a, _ = call("192.0.2.1:5000", "198.51.100.2", labSecret); !strings.Contains(a, `"errorCode":0`) {
		t.Fatalf("another client through the proxy: %s", a)
	}
	if a, line = call("192.0.2.1:5000", "", labSecret); !strings.Contains(a, `"errorCode":0`) || !strings.Contains(line, "remote=192.0.2.1:5000") || strings.Contains(line, "peer=") {
		t.Fatalf("the proxy itself: %s\n%s", a, line)
	}
	// Forwarded (RFC 7239) and X-Real-IP are not read, from a trusted proxy either: a
	// proxy that writes X-Forwarded-For alone passes the client's own on unchanged.
	// Without X-Forwarded-For the client is the proxy; beside one, that one counts.
	a, line = call("192.0.2.1:5000", "", labSecret, "Forwarded", "for=198.51.100.1;proto=https", "X-Real-IP", "198.51.100.1")
	if !strings.Contains(a, `"errorCode":0`) || !strings.Contains(line, "remote=192.0.2.1:5000") || strings.Contains(line, "198.51.100.1") {
		t.Fatalf("Forwarded and X-Real-IP alone, naming the refused client: %s\n%s", a, line)
	}
	a, line = call("192.0.2.1:5000", "198.51.100.1", labSecret, "Forwarded", `for="[2001:db8::1]"`, "X-Real-IP", "198.51.100.2")
	if !strings.Contains(a, `"errorCode":403048`) || !strings.Contains(line, "remote=198.51.100.1 peer=192.0.2.1:5000") {
		t.Fatalf("X-Forwarded-For beside Forwarded and X-Real-IP: %s\n%s", a, line)
	}
	// A peer that is no trusted proxy is the client whatever it writes, and its
	// X-Forwarded-Proto is not believed: a plain secret over HTTP is refused.
	a, line = call("203.0.113.5:6000", "198.51.100.2", labSecret)
	if !strings.Contains(a, `"errorCode":403006`) || !strings.Contains(line, "remote=203.0.113.5:6000") || strings.Contains(line, "peer=") {
		t.Fatalf("an untrusted peer: %s\n%s", a, line)
	}
}

// FuzzTrustedProxiesClient walks arbitrary X-Forwarded-For fields from a trusted
// proxy: never a panic, always an address; and within the walk's bounds, the address a
// plain reading (every entry split out, then walked from the right) finds.
func FuzzTrustedProxiesClient(f *testing.F) {
	trusted, err := ParseTrustedProxies("127.0.0.1,10.0.0.0/8,fd00::/8")
	if err != nil {
		f.Fatal(err)
	}
	f.Add("1.1.1.1, 198.51.100.1, 10.0.0.2", "10.1.0.3")
	f.Add("[2001:db8::1]:80,fd00::2", "")
	f.Add("198.51.100.1:1,,", "10.0.0.1")
	f.Add(strings.Repeat(" ", maxForwardedBytes-8)+"10.0.0.2", "10.0.0.3")
	f.Fuzz(func(t *testing.T, first, second string) {
		fields := []string{first, second}
		peer := netip.MustParseAddr("127.0.0.1")
		got := trusted.client(peer, fields)
		if !got.IsValid() {
			t.Fatalf("client(%q) is no address", fields)
		}
		var entries []string
		for _, f := range fields {
			entries = append(entries, strings.Split(f, ",")...)
		}
		if len(entries) > maxForwardedEntries || len(first)+len(second)+2 > maxForwardedBytes {
			return
		}
		want := peer
		for i := len(entries) - 1; i >= 0; i-- {
			a, ok := parseForwarded(entries[i])
			if !ok {
				break
			}
			want = a
			if !trusted.trusts(a) {
				break
			}
		}
		if got != want {
			t.Fatalf("client(%q) = %s, want %s", fields, got, want)
		}
	})
}
