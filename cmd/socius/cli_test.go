package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/socius/socius"
	"github.com/socius/socius/internal/pgtest"
	"github.com/socius/socius/internal/syncbuf"
)

func noEnv(string) (string, bool) { return "", false }

// runCLI runs the socius command line and returns its exit code and output.
func runCLI(t *testing.T, env func(string) (string, bool), args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, env, &out, &errOut)
	return code, out.String(), errOut.String()
}

// TestSiteAndKeyCommands runs the admin commands on each store, then a server on that
// store, which knows what they made.
func TestSiteAndKeyCommands(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { testSiteAndKeyCommands(t, "--data", t.TempDir()) })
	t.Run("postgres", func(t *testing.T) {
		testSiteAndKeyCommands(t, "--store", pgtest.URL(t), "--data", t.TempDir(), "--master-key-file", testMasterKeyFile(t))
	})
}

func testSiteAndKeyCommands(t *testing.T, store ...string) {
	// with returns the arguments followed by the flags that choose the store.
	with := func(args ...string) []string { return append(args, store...) }
	code, out, errOut := runCLI(t, noEnv, with("site", "create", "--name", "shop")...)
	if code != 0 {
		t.Fatalf("site create: %d %s", code, errOut)
	}
	apiKey := regexp.MustCompile(`apiKey: (\S+)`).FindStringSubmatch(out)[1]
	secret := regexp.MustCompile(`secret: (\S+)`).FindStringSubmatch(out)[1]
	if !strings.HasPrefix(apiKey, "3_") || len(secret) < 24 {
		t.Fatalf("site create printed %q", out)
	}
	if code, out, _ := runCLI(t, noEnv, with("site", "list")...); code != 0 || !strings.Contains(out, apiKey) || !strings.Contains(out, "shop") {
		t.Errorf("site list: %d %s", code, out)
	}
	// The positional argument may come before the flags.
	if code, out, _ := runCLI(t, noEnv, with("site", "show", apiKey)...); code != 0 || !strings.Contains(out, secret) {
		t.Errorf("site show: %d %s", code, out)
	}
	if code, _, errOut := runCLI(t, noEnv, with("site", "create", "--api-key", apiKey)...); code != 1 || !strings.Contains(errOut, "a site with apiKey "+apiKey+" already exists") {
		t.Errorf("duplicate site: %d %s", code, errOut)
	}
	if code, _, errOut := runCLI(t, noEnv, with("site", "create", "--secret", "c2hvcnQ=")...); code != 2 || !strings.Contains(errOut, "at least 16") {
		t.Errorf("short secret: %d %s", code, errOut)
	}

	code, out, errOut = runCLI(t, noEnv, with("key", "create", "--site", apiKey, "--methods", "Socialize.GetUserInfo")...)
	if code != 0 {
		t.Fatalf("key create: %d %s", code, errOut)
	}
	userKey := regexp.MustCompile(`userKey: (\S+)`).FindStringSubmatch(out)[1]
	keySecret := regexp.MustCompile(`secret:\s+(\S+)`).FindStringSubmatch(out)[1]
	if code, out, _ := runCLI(t, noEnv, with("key", "list", "--site", apiKey)...); code != 0 || !strings.Contains(out, userKey) || !strings.Contains(out, "socialize.getUserInfo") {
		t.Errorf("key list: %d %s", code, out)
	}
	if code, _, errOut := runCLI(t, noEnv, with("key", "create", "--site", "3_nope")...); code != 1 || !strings.Contains(errOut, "no site has apiKey") {
		t.Errorf("key for unknown site: %d %s", code, errOut)
	}
	if code, out, errOut := runCLI(t, noEnv, with("key", "list", "--site", "3_nope")...); code != 1 || out != "" || !strings.Contains(errOut, "no site has apiKey 3_nope") {
		t.Errorf("key list of an unknown site: %d %q %s", code, out, errOut)
	}
	if code, _, _ := runCLI(t, noEnv, with("key", "create")...); code != 2 {
		t.Errorf("key create without --site: exit %d, want 2", code)
	}
	// Another site's key, for every method and without a public key: listed with every
	// site's keys, not with this site's.
	code, out, errOut = runCLI(t, noEnv, with("site", "create", "--name", "other")...)
	if code != 0 {
		t.Fatalf("site create: %d %s", code, errOut)
	}
	other := regexp.MustCompile(`apiKey: (\S+)`).FindStringSubmatch(out)[1]
	if code, out, errOut := runCLI(t, noEnv, with("key", "create", "--site", other, "--user-key", "AOtherKey")...); code != 0 ||
		!strings.Contains(out, "methods: all\n") || !strings.Contains(out, "bearer:  no\n") {
		t.Errorf("key create without --methods or --public-key: %d %q %s", code, out, errOut)
	}
	if code, _, errOut := runCLI(t, noEnv, with("key", "create", "--site", apiKey, "--user-key", "AOtherKey")...); code != 1 || !strings.Contains(errOut, "userKey AOtherKey already exists") {
		t.Errorf("key create with a userKey taken: %d %s", code, errOut)
	}
	if code, out, _ := runCLI(t, noEnv, with("key", "list", "--site", apiKey)...); code != 0 || strings.Contains(out, "AOtherKey") {
		t.Errorf("key list --site: %d %s; want this site's keys only", code, out)
	}
	if code, out, _ := runCLI(t, noEnv, with("key", "list")...); code != 0 || !strings.Contains(out, userKey) || !strings.Contains(out, "AOtherKey") {
		t.Errorf("key list: %d %s; want every site's keys", code, out)
	}

	// The server started on that store knows the site and the key, with its methods.
	m := NewMain()
	if err := m.ParseFlags(with("--http", "127.0.0.1:0", "--https", "", "--admin", "", "--log-level", "error"), noEnv, io.Discard); err != nil {
		t.Fatal(err)
	}
	m.Stdout = io.Discard
	if err := m.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	ts := &testServer{Main: m, client: httpClient()}
	p := signedFor(t, m.HTTPURL, "socialize.notifyLogin", url.Values{"siteUID": {"u1"}, "apiKey": {apiKey}}, "", secret)
	if a := ts.post(t, m.HTTPURL, "socialize.notifyLogin", p); a.code() != 0 {
		t.Fatalf("notifyLogin with the created site: %v", a)
	}
	p = signedFor(t, m.HTTPURL, "socialize.getUserInfo", url.Values{"UID": {"u1"}, "apiKey": {apiKey}}, userKey, keySecret)
	if a := ts.post(t, m.HTTPURL, "socialize.getUserInfo", p); a.code() != 0 {
		t.Errorf("getUserInfo with the key: %v", a)
	}
	p = signedFor(t, m.HTTPURL, "socialize.setUserInfo", url.Values{"UID": {"u1"}, "apiKey": {apiKey}, "userInfo": {"{}"}}, userKey, keySecret)
	if a := ts.post(t, m.HTTPURL, "socialize.setUserInfo", p); a.code() != 403007 {
		t.Errorf("setUserInfo with a getUserInfo-only key: %v", a)
	}
	m.Close()

	if code, out, _ := runCLI(t, noEnv, with("key", "delete", userKey)...); code != 0 || !strings.Contains(out, "deleted") {
		t.Errorf("key delete: %d %s", code, out)
	}
	if code, _, errOut := runCLI(t, noEnv, with("key", "delete", userKey)...); code != 1 || !strings.Contains(errOut, "no key has userKey") {
		t.Errorf("second key delete: %d %s", code, errOut)
	}

	// token revoke, on a token stored for the site (the store's own flags open it).
	var sf storeFlags
	fs := newFlagSet("test", io.Discard, io.Discard)
	if err := parse(fs, store, sf.register(fs, noEnv, io.Discard)); err != nil {
		t.Fatal(err)
	}
	text := socius.NewTokenText(socius.AccessToken)
	tok := &socius.Token{Hash: socius.HashToken(text), Kind: socius.AccessToken, APIKey: apiKey, CreatedAt: time.Now()}
	if err := withStore(t.Context(), sf, func(st socius.Store) error { return st.CreateToken(t.Context(), tok) }); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := runCLI(t, noEnv, with("token", "revoke", text)...); code != 0 || !strings.Contains(out, "revoked: access token of apiKey "+apiKey) {
		t.Errorf("token revoke: %d %q %q", code, out, errOut)
	}
	err := withStore(t.Context(), sf, func(st socius.Store) error {
		got, err := st.Token(t.Context(), tok.Hash)
		if err == nil && got.RevokedAt.IsZero() {
			t.Errorf("the token is not revoked in the store: %+v", got)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestServeFlagsFromEnvironment(t *testing.T) {
	env := map[string]string{
		"SOCIUS_HTTP":                  "127.0.0.1:0",
		"SOCIUS_HTTPS":                 "", // set but empty: disabled
		"SOCIUS_CLOCK_SKEW":            "30s",
		"SOCIUS_TRUST_FORWARDED_PROTO": "true",
		"SOCIUS_SITE_API_KEY":          "3_FromEnv",
		"SOCIUS_SITE_SECRET":           testSecret,
		"SOCIUS_STORE":                 "postgres://socius@db.internal/socius",
		"SOCIUS_MASTER_KEY":            "bWFzdGVyLWtleS1tYXN0ZXIta2V5LW1hc3Rlci1rZXk=",
	}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	m := NewMain()
	if err := m.ParseFlags([]string{"--http", "127.0.0.1:9"}, lookup, io.Discard); err != nil {
		t.Fatal(err)
	}
	if m.HTTPAddr != "127.0.0.1:9" {
		t.Errorf("a flag must win over the environment: HTTPAddr = %q", m.HTTPAddr)
	}
	if m.HTTPSAddr != "" || m.ClockSkew.Seconds() != 30 || !m.TrustForwardedProto || m.SiteAPIKey != "3_FromEnv" || m.SiteSecret != testSecret ||
		m.StoreURL != "postgres://socius@db.internal/socius" {
		t.Errorf("from the environment: %+v", m)
	}
	for _, bad := range [][]string{
		{"--site-api-key", "3_x"},
		{"--site-api-key", "3_x", "--site-secret", "bm90IGVub3VnaA=="},
		{"--clock-skew", "0s"},
		{"--http", "", "--https", ""},
		{"stray"},
		{"--store", "mysql://socius@db/socius"},
		{"--store", "socius.db"},
		{"--rate-burst", "10"},
		{"--tls-cert", "c.pem", "--tls-key", "k.pem", "--https", ""},
		{"--tls-cert", "c.pem"},
	} {
		if err := NewMain().ParseFlags(bad, noEnv, io.Discard); err == nil {
			t.Errorf("ParseFlags(%q) accepted", bad)
		}
	}
}

func TestDemoSiteOnFirstStart(t *testing.T) {
	dir := t.TempDir()
	start := func() string {
		m := NewMain()
		if err := m.ParseFlags([]string{"--data", dir, "--http", "127.0.0.1:0", "--https", "127.0.0.1:0", "--admin", "", "--log-level", "error"}, noEnv, io.Discard); err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		m.Stdout = &out
		if err := m.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		m.Close()
		return out.String()
	}
	first := start()
	if !regexp.MustCompile(`apiKey: 3_\S+\n  secret: \S+`).MatchString(first) || !strings.Contains(first, "generated a self-signed TLS certificate") {
		t.Errorf("first start printed:\n%s", first)
	}
	second := start()
	if strings.Contains(second, "demo site") || strings.Contains(second, "generated") {
		t.Errorf("second start created again:\n%s", second)
	}
}

func TestUsage(t *testing.T) {
	if code, _, errOut := runCLI(t, noEnv); code != 2 || !strings.Contains(errOut, "usage") {
		t.Errorf("no command: %d %s", code, errOut)
	}
	if code, _, errOut := runCLI(t, noEnv, "frobnicate"); code != 2 || !strings.Contains(errOut, "unknown command") {
		t.Errorf("unknown command: %d %s", code, errOut)
	}
	// Help asked for is no usage error: exit 0, the commands on standard output. Go's
	// flag package takes -help as well as -h and --help, and so does every dispatcher.
	for _, h := range []string{"-h", "-help", "--help", "help"} {
		if code, out, errOut := runCLI(t, noEnv, h); code != 0 || !strings.Contains(out, "usage: socius <command>") || errOut != "" {
			t.Errorf("socius %s: exit %d, %q, %q", h, code, out, errOut)
		}
	}
	// It says which variables the commands read, the bench's none among them (as the
	// README says; it said "A flag may also be set as ..." with no word of the bench's
	// exception until the thirty-third session).
	if _, out, _ := runCLI(t, noEnv, "help"); !strings.Contains(out, "; bench none\n(what it measures is what its command line says).") {
		t.Errorf("socius help does not say that bench reads no variable:\n%s", out)
	}
	// A command's (or subcommand's) -h lists its flags on standard output and exits 0,
	// as flag.ErrHelp: help asked for is no error (it went to standard error).
	for _, args := range [][]string{
		{"serve", "-h"}, {"site", "create", "-h"}, {"key", "list", "--help"}, {"user", "export", "-h"},
		{"token", "revoke", "-h"}, {"call", "-h"}, {"emulator", "-h"}, {"emulator", "-help"}, {"emulator", "help"}, {"emulator", "status", "-h"},
		{"emulator", "log", "--help"}, {"bench", "-h"}, {"site", "show", "-h"}, {"call", "--help", "socialize.getUserInfo"},
		{"backup", "-h"},
	} {
		if code, out, errOut := runCLI(t, noEnv, args...); code != 0 || errOut != "" || !strings.HasPrefix(out, "usage: socius ") || !strings.Contains(out, "-url") && !strings.Contains(out, "-data") {
			t.Errorf("%v: exit %d, %q, %q; want 0 and the flags on standard output", args, code, out, errOut)
		}
	}
	// Every command takes -h, -help and --help as its flags' help, and one that takes no
	// argument takes help too, as a command with subcommands does in their place:
	// there it can mean nothing else. version answered help with exit 2.
	for _, c := range []struct {
		args []string // the command
		help bool     // it takes no argument: help is help
	}{
		{[]string{"serve"}, true}, {[]string{"version"}, true}, {[]string{"bench"}, true}, {[]string{"backup"}, true},
		{[]string{"site", "create"}, true}, {[]string{"site", "list"}, true}, {[]string{"site", "show"}, false}, {[]string{"site", "rotate-secret"}, false},
		{[]string{"key", "create"}, true}, {[]string{"key", "list"}, true}, {[]string{"key", "delete"}, false}, {[]string{"key", "rotate-secret"}, false},
		{[]string{"user", "export"}, true}, {[]string{"user", "import"}, true}, {[]string{"token", "revoke"}, false}, {[]string{"call"}, false},
		{[]string{"emulator", "status"}, true}, {[]string{"emulator", "reset"}, true}, {[]string{"emulator", "log"}, true}, {[]string{"emulator", "export"}, true},
		{[]string{"emulator", "clock"}, true}, {[]string{"emulator", "faults"}, true}, {[]string{"emulator", "seed"}, false},
	} {
		forms := []string{"-h", "-help", "--help"}
		if c.help {
			forms = append(forms, "help")
		}
		for _, h := range forms {
			args := append(append([]string(nil), c.args...), h)
			want := "usage: socius " + strings.Join(c.args, " ")
			if code, out, errOut := runCLI(t, noEnv, args...); code != 0 || errOut != "" || !strings.HasPrefix(out, want) {
				t.Errorf("%v: exit %d, %q, %q; want 0 and %q on standard output", args, code, out, errOut, want)
			}
		}
	}
	// The emulator's clock and faults take their subcommands as arguments: help after
	// one that takes no argument of its own (clock reset, faults clear) is help too, as
	// for every other command that takes none. It was a usage error, exit 2.
	for _, c := range []struct {
		args []string // the command and its subcommand
		help bool     // the subcommand takes no argument: help is help
	}{
		{[]string{"clock", "show"}, true}, {[]string{"clock", "reset"}, true},
		{[]string{"clock", "set"}, false}, {[]string{"clock", "advance"}, false},
		{[]string{"faults", "list"}, true}, {[]string{"faults", "add"}, true}, {[]string{"faults", "clear"}, true},
		{[]string{"faults", "delete"}, false},
	} {
		forms := []string{"-h", "-help", "--help"}
		if c.help {
			forms = append(forms, "help")
		}
		for _, h := range forms {
			args := append([]string{"emulator"}, append(c.args, h)...)
			want := "usage: socius emulator " + c.args[0]
			if code, out, errOut := runCLI(t, noEnv, args...); code != 0 || errOut != "" || !strings.HasPrefix(out, want) {
				t.Errorf("%v: exit %d, %q, %q; want 0 and %q on standard output", args, code, out, errOut, want)
			}
		}
	}
	// A flag refused is a usage error: the usage on standard error, exit 2.
	for _, args := range [][]string{
		{"serve", "--no-such-flag"}, {"site", "create", "--no-such-flag"}, {"call", "--no-such-flag", "socialize.getUserInfo"},
		{"emulator", "log", "--no-such-flag"}, {"bench", "--no-such-flag"}, {"token", "revoke", "--no-such-flag"},
		{"backup", "--no-such-flag"},
	} {
		if code, out, errOut := runCLI(t, noEnv, args...); code != 2 || out != "" || !strings.Contains(errOut, "flag provided but not defined: -no-such-flag\n") || !strings.Contains(errOut, "usage: socius ") {
			t.Errorf("%v: exit %d, %q, %q; want 2 and the usage on standard error", args, code, out, errOut)
		}
	}
	// A command with subcommands: -h lists them (exit 0), none is a usage error.
	for cmd, sub := range map[string]string{"site": "create|list", "key": "create|list|delete", "user": "export|import", "token": "revoke"} {
		for _, h := range []string{"-h", "-help", "--help", "help"} {
			if code, out, errOut := runCLI(t, noEnv, cmd, h); code != 0 || !strings.Contains(out, sub) || errOut != "" {
				t.Errorf("socius %s %s: exit %d, %q, %q", cmd, h, code, out, errOut)
			}
		}
		if code, out, errOut := runCLI(t, noEnv, cmd); code != 2 || !strings.Contains(errOut, sub) || out != "" {
			t.Errorf("socius %s: exit %d, %q, %q", cmd, code, out, errOut)
		}
	}
	// A --store that is no store, a PostgreSQL URL that cannot be read, or PostgreSQL
	// without the master key, is a usage error for the admin commands as for serve,
	// said before anything connects (the URLs that cannot be read, given the master
	// key, exited 1, after serve had bound its listeners), and without the password.
	withKey := func(k string) (string, bool) {
		return "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", k == "SOCIUS_MASTER_KEY"
	}
	for _, c := range []struct {
		env  func(string) (string, bool)
		args []string
		want string
	}{
		{noEnv, []string{"site", "list", "--store", "mysql://x"}, "--store"},
		{noEnv, []string{"site", "list", "--store", "postgres://socius@127.0.0.1:1/socius"}, "--store"},
		{noEnv, []string{"serve", "--store", "mysql://x"}, "--store"},
		{withKey, []string{"site", "list", "--store", "postgres://socius:pw@127.0.0.1:notaport/socius"}, "--store: cannot parse the URL (not repeated: where its password ends cannot be told; percent-encode the password's special characters): invalid port"},
		{withKey, []string{"key", "list", "--store", "postgres://socius@127.0.0.1:1/socius?pool_max_conns=many"}, "--store: cannot parse"},
		{withKey, []string{"serve", "--store", "postgres://socius@127.0.0.1:1/socius?nonce_commit=later", "--http", "127.0.0.1:0", "--https", "", "--admin", ""}, "--store: nonce_commit=\"later\": want sync or async"},
		// A password with an '@' not written %40: pgx, as libpq, took what follows its
		// first '@' for the host, and said it ("lookup pw@127.0.0.1: no such host",
		// exit 1; pgx's parse errors print it as the host too).
		{withKey, []string{"site", "list", "--store", "postgres://socius:s3c@pw@127.0.0.1:1/socius"}, "--store: the URL has an '@' after its user information"},
		{withKey, []string{"serve", "--store", "postgres://socius:s3c@pw@127.0.0.1:1/socius?sslmode=bogus", "--http", "127.0.0.1:0", "--https", "", "--admin", ""}, "write an '@' of the user, the password or the database's name as %40"},
		{withKey, []string{"key", "list", "--store", "postgres://socius:12/pw@127.0.0.1:1/socius"}, "and a '/' or '?' of the password as %2F or %3F"},
	} {
		if code, _, errOut := runCLI(t, c.env, c.args...); code != 2 || !strings.Contains(errOut, c.want) || strings.Contains(errOut, ":pw@") || strings.Contains(errOut, "pw@127") {
			t.Errorf("%v: exit %d, %q; want 2 and %q", c.args, code, errOut, c.want)
		}
	}
	if code, _, errOut := runCLI(t, func(k string) (string, bool) { return "mysql://x", k == "SOCIUS_STORE" }, "key", "list"); code != 2 || !strings.Contains(errOut, "--store") {
		t.Errorf("SOCIUS_STORE=mysql://x socius key list: exit %d, %q", code, errOut)
	}
}

// TestDataFolderCannotBeMade: a --data folder that cannot be made (here under a file;
// as another user, under a folder it may not write) is said as the data folder, with
// the flag, by serve and by the admin commands that make a store; they said only Go's
// "mkdir DIR: not a directory". Exit 1: the value is a folder, the system refused it.
func TestDataFolderCannotBeMade(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(file, "data")
	seed := filepath.Join(t.TempDir(), "users.jsonl")
	if err := os.WriteFile(seed, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	want := "the data folder " + data + " (--data) cannot be made: mkdir " + file + ": not a directory; make it, writable by the user Socius runs as"
	for _, args := range [][]string{
		{"site", "create", "--data", data},
		{"user", "import", "--data", data, "--in", seed},
		{"serve", "--data", data, "--http", "127.0.0.1:0", "--https", "", "--admin", ""},
	} {
		if code, _, errOut := runCLI(t, noEnv, args...); code != 1 || !strings.Contains(errOut, want) {
			t.Errorf("%v: exit %d, %q; want 1 and %q", args, code, errOut, want)
		}
	}
}

// TestAdminCommandsIgnoreCallEnvironment: SOCIUS_SECRET, SOCIUS_API_KEY and
// SOCIUS_USER_KEY, set for `socius call`, are not the admin commands' flags: rotating a
// secret with them set makes a new secret, and a new site or key gets its own. The
// store's variables still apply.
func TestAdminCommandsIgnoreCallEnvironment(t *testing.T) {
	dir := t.TempDir()
	const old = "c2VjcmV0LWZvci10aGUtZ2lneWEtbGFiLTEyMzQ1Ng=="
	if code, _, errOut := runCLI(t, noEnv, "site", "create", "--api-key", "3_Rot", "--secret", old, "--data", dir); code != 0 {
		t.Fatalf("site create: %s", errOut)
	}
	env := envOf("SOCIUS_DATA="+dir, "SOCIUS_API_KEY=3_Rot", "SOCIUS_SECRET="+old, "SOCIUS_USER_KEY=ACallKey", "SOCIUS_NAME=from-env")
	secretOf := func(out string) string {
		m := regexp.MustCompile(`secret:\s+(\S+)`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("no secret in %q", out)
		}
		return m[1]
	}
	code, out, errOut := runCLI(t, env, "site", "rotate-secret", "3_Rot")
	if code != 0 || secretOf(out) == old {
		t.Errorf("site rotate-secret with SOCIUS_SECRET set: %d %s %s (the old secret kept)", code, out, errOut)
	}
	code, out, errOut = runCLI(t, env, "site", "create")
	if code != 0 || strings.Contains(out, "3_Rot") || secretOf(out) == old || strings.Contains(out, "from-env") {
		t.Errorf("site create with the call's variables set: %d %s %s", code, out, errOut)
	}
	code, out, errOut = runCLI(t, env, "key", "create", "--site", "3_Rot")
	if code != 0 || strings.Contains(out, "ACallKey") || secretOf(out) == old {
		t.Errorf("key create with the call's variables set: %d %s %s", code, out, errOut)
	}
}

// TestUsageErrors: a flag the command does not have, or an argument it does not take,
// is a usage error: exit status 2, said once.
func TestUsageErrors(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{"serve", "--bogus"},
		{"site", "list", "--bogus", "--data", dir},
		{"site", "list", "--data", dir, "extra"},
		{"key", "list", "--data", dir, "extra"},
		{"user", "import", "--data", dir, "extra"},
		{"emulator", "status", "extra"},
		{"bench", "--bogus"},
		{"version", "--bogus"},
	} {
		code, out, errOut := runCLI(t, noEnv, args...)
		if code != 2 || out != "" {
			t.Errorf("%v: exit %d, stdout %q; want 2 and nothing", args, code, out)
		}
		if n := strings.Count(errOut, "bogus") + strings.Count(errOut, `"extra"`); n != 1 {
			t.Errorf("%v: the error said %d times:\n%s", args, n, errOut)
		}
	}
	// A flag value refused once parsed, or one from the environment, is a usage error
	// too: exit 2, said once, nothing started.
	for _, tt := range []struct {
		args []string
		env  map[string]string
		says string
	}{
		{[]string{"serve", "--log-format", "xml"}, nil, `--log-format "xml"`},
		{[]string{"serve", "--log-level", "trace"}, nil, `--log-level "trace"`},
		// slog's offsets name no level of the documented four (--http's refusal,
		// checked after the level, keeps a serve that took one from starting).
		{[]string{"serve", "--log-level", "INFO+2", "--http", "nonsense"}, nil, `--log-level "INFO+2": debug, info, warn or error`},
		{[]string{"serve", "--http", "nonsense"}, map[string]string{"SOCIUS_LOG_LEVEL": "debug-4"}, `--log-level "debug-4": debug, info, warn or error`},
		{[]string{"serve", "--tls-cert", "c.pem"}, nil, "--tls-cert and --tls-key go together"},
		{[]string{"serve", "--site-api-key", "3_x"}, nil, "--site-api-key and --site-secret go together"},
		{[]string{"serve", "--clock-skew", "0s"}, nil, "--clock-skew must be positive"},
		{[]string{"serve", "--store", "postgres://socius@127.0.0.1:1/socius"}, nil, "give the master key that every node shares"},
		// The flag package says "parse error": the variable's refusal says what it takes.
		{[]string{"serve"}, map[string]string{"SOCIUS_CLOCK_SKEW": "abc"}, `SOCIUS_CLOCK_SKEW="abc": must be a duration such as 30s or 2m (--clock-skew)`},
		{[]string{"serve"}, map[string]string{"SOCIUS_LOG_CALLS": "maybe"}, `SOCIUS_LOG_CALLS="maybe": must be true or false (1 or 0) (--log-calls)`},
		{[]string{"serve"}, map[string]string{"SOCIUS_EMULATOR": "yes"}, `SOCIUS_EMULATOR="yes": must be true or false`},
		{[]string{"serve"}, map[string]string{"SOCIUS_REQUEST_LOG_SIZE": "ten"}, `SOCIUS_REQUEST_LOG_SIZE="ten": must be a whole number (--request-log-size)`},
		{[]string{"key", "create", "--site", "3_x", "--methods", "socialize.getUserInfo,socialize.bogus"}, nil, `"socialize.bogus" is not a method Socius serves`},
		{[]string{"key", "create", "--site", "3_x", "--methods", ","}, nil, `--methods "," names no method`},
		{[]string{"site", "create", "--name", "a\tb"}, nil, "--name: a site name may not hold the control character U+0009"},
		{[]string{"key", "create", "--site", "3_x", "--methods", " "}, nil, `--methods " " names no method`},
		{[]string{"key", "create", "--site", "3_x", "--methods", ""}, nil, `--methods "" names no method`},
		{[]string{"serve", "--rate-limit", "NaN"}, nil, "--rate-limit must be a number"},
		{[]string{"serve", "--auth-failure-limit", "NaN"}, nil, "--auth-failure-limit must be a number"},
		{[]string{"serve"}, map[string]string{"SOCIUS_AUTH_FAILURE_LIMIT": "-Inf"}, "--auth-failure-limit must be a number"},
		{[]string{"serve", "--auth-failure-limit", "-1"}, nil, "--auth-failure-limit must be 0 (off, default) or positive"},
		{[]string{"serve", "--auth-failure-limit", "1", "--auth-failure-burst", "-3"}, nil, "--auth-failure-burst must be 0"},
		{[]string{"serve"}, map[string]string{"SOCIUS_AUTH_FAILURE_BURST": "5"}, "--auth-failure-burst needs --auth-failure-limit"},
		{[]string{"serve", "--auth-failure-limit", "ten"}, nil, "--auth-failure-limit"},
		{[]string{"serve"}, map[string]string{"SOCIUS_RATE_LIMIT": "+Inf"}, "--rate-limit must be a number"},
		{[]string{"serve", "--trusted-proxies", "127.0.0.1,localhost"}, nil, `--trusted-proxies: "localhost": not an IP address nor a CIDR prefix`},
		{[]string{"serve"}, map[string]string{"SOCIUS_TRUSTED_PROXIES": "10.0.0.0/8,"}, `--trusted-proxies: "": an empty entry`},
		{[]string{"serve", "--trusted-proxies", "10.0.0.0/99"}, nil, `--trusted-proxies: "10.0.0.0/99": not a CIDR prefix`},
		{[]string{"serve", "--max-body-bytes", "9223372036854775807"}, nil, "--max-body-bytes must be positive and at most"},
		{[]string{"serve", "--max-concurrent", "2000000"}, nil, "--max-concurrent must be 0 (no cap) or positive, at most"},
		{[]string{"serve", "--shutdown-timeout", "0s"}, nil, "--shutdown-timeout must be positive"},
		{[]string{"serve", "--site-api-key", "3_a b", "--site-secret", testSecret}, nil, `--site-api-key "3_a b": 1 to 128 printable characters`},
		{[]string{"key", "create", "--site", "3_x", "--user-key", "A b"}, nil, `--user-key "A b": 1 to 128 printable characters`},
		{[]string{"serve", "--http", "nonsense"}, nil, `--http "nonsense": want host:port`},
		{[]string{"serve", "--https", "127.0.0.1:99999"}, nil, `--https "127.0.0.1:99999": the port "99999" is not a number from 0 to 65535`},
		{[]string{"serve", "--admin", "localhost"}, nil, `--admin "localhost": want host:port`},
		{[]string{"site", "list"}, map[string]string{"SOCIUS_MASTER_KEY": "short"}, "SOCIUS_MASTER_KEY: "},
		{[]string{"serve"}, map[string]string{"SOCIUS_MASTER_KEY": "short"}, "SOCIUS_MASTER_KEY: "},
		// A positional argument missing, or one too many: the command's usage line.
		{[]string{"site", "show"}, nil, "usage: socius site show APIKEY"},
		{[]string{"key", "delete", "AKey1", "AKey2"}, nil, "usage: socius key delete USERKEY"},
		// A --store that is no store is said without its password.
		{[]string{"site", "list", "--store", "mysql://socius:hunter2@db.internal/socius"}, nil, `--store "mysql://socius:xxxxx@db.internal/socius": want sqlite`},
		// A --store given empty ("--store $URL", the variable unset) is not the
		// embedded store: leaving it out is.
		{[]string{"serve", "--store", "", "--http", "", "--https", ""}, nil, "--store is empty (an unset variable?)"},
		{[]string{"site", "create", "--store", ""}, nil, "--store is empty (an unset variable?)"},
		{[]string{"user", "export", "--all-sites", "--store="}, nil, "--store is empty (an unset variable?)"},
		{[]string{"backup", "--out", filepath.Join(dir, "b.db"), "--store", ""}, nil, "--store is empty (an unset variable?)"},
		// A master key file given empty is not the default master key (SOCIUS_MASTER_KEY,
		// else <data>/master.key, generated for a new store): secrets would be sealed
		// with a key nobody meant.
		{[]string{"serve", "--master-key-file", "", "--http", "nonsense"}, nil, "--master-key-file is empty (an unset variable?)"},
		{[]string{"serve", "--previous-master-key-file=", "--http", "nonsense"}, nil, "--previous-master-key-file is empty (an unset variable?)"},
		{[]string{"site", "create", "--master-key-file", ""}, nil, "--master-key-file is empty (an unset variable?)"},
		{[]string{"site", "create", "--previous-master-key-file", ""}, nil, "--previous-master-key-file is empty (an unset variable?)"},
		// A TLS certificate and key given empty: a generated self-signed certificate
		// was served in place of the one meant.
		{[]string{"serve", "--tls-cert", "", "--tls-key", "", "--http", "nonsense"}, nil, "--tls-cert is empty (an unset variable?)"},
		{[]string{"serve", "--tls-key=", "--http", "nonsense"}, nil, "--tls-key is empty (an unset variable?)"},
		// --site-api-key and --site-secret given empty: serve started without the
		// site meant.
		{[]string{"serve", "--site-api-key", "", "--site-secret", "", "--http", "nonsense"}, nil, "--site-api-key is empty (an unset variable?)"},
		{[]string{"serve", "--site-api-key", "3_x", "--site-secret=", "--http", "nonsense"}, nil, "--site-secret is empty (an unset variable?)"},
		// An emulator's seed or export file given empty: it started with no seed, or
		// exited without writing the export.
		{[]string{"serve", "--emulator", "--seed", "", "--http", "nonsense"}, nil, "--seed is empty (an unset variable?)"},
		{[]string{"serve", "--emulator", "--export-on-exit=", "--http", "nonsense"}, nil, "--export-on-exit is empty (an unset variable?)"},
	} {
		env := func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok }
		code, out, errOut := runCLI(t, env, append(tt.args, "--data", filepath.Join(dir, "never"))...)
		if code != 2 || out != "" || strings.Count(errOut, tt.says) != 1 {
			t.Errorf("%v %v: exit %d, stdout %q, stderr %q; want 2 and %q once", tt.args, tt.env, code, out, errOut, tt.says)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "never")); !os.IsNotExist(err) {
		t.Errorf("a refused command made its data folder: %v", err)
	}
	// A negative value of a flag stays with its flag (only clock advance moves its
	// negative argument): log's --limit -1 is refused as a limit (it printed every call,
	// as 0 does), before the emulator is asked.
	code, out, errOut := runCLI(t, noEnv, "emulator", "log", "--limit", "-1", "--url", "http://127.0.0.1:1")
	if code != 2 || out != "" || errOut != "socius: --limit -1: want a number of calls, 0 for every call the log holds\n" {
		t.Errorf("emulator log --limit -1: exit %d %q %q", code, out, errOut)
	}
	if code, _, errOut := runCLI(t, func(k string) (string, bool) { return "-5", k == "SOCIUS_LIMIT" }, "emulator", "log", "--url", "http://127.0.0.1:1"); code != 2 || !strings.Contains(errOut, "--limit -5: want a number of calls") {
		t.Errorf("SOCIUS_LIMIT=-5: exit %d %q", code, errOut)
	}
	// SOCIUS_STORE set empty is not refused: an empty variable is a text flag's value
	// (README.md), "" here, the embedded store, as before.
	emptyStore := func(k string) (string, bool) { return "", k == "SOCIUS_STORE" }
	if code, _, errOut := runCLI(t, emptyStore, "site", "create", "--data", filepath.Join(dir, "embedded")); code != 0 {
		t.Errorf("SOCIUS_STORE= site create: exit %d %q; want the embedded store", code, errOut)
	}
	// So is SOCIUS_MASTER_KEY_FILE (or SOCIUS_PREVIOUS_MASTER_KEY_FILE) set empty: the
	// default master key.
	emptyKeyFile := func(k string) (string, bool) {
		return "", k == "SOCIUS_MASTER_KEY_FILE" || k == "SOCIUS_PREVIOUS_MASTER_KEY_FILE"
	}
	if code, _, errOut := runCLI(t, emptyKeyFile, "site", "create", "--data", filepath.Join(dir, "embedded")); code != 0 {
		t.Errorf("SOCIUS_MASTER_KEY_FILE= site create: exit %d %q; want the default master key", code, errOut)
	}
	if err := NewMain().ParseFlags(nil, emptyKeyFile, io.Discard); err != nil {
		t.Errorf("SOCIUS_MASTER_KEY_FILE= serve: %v; want the default master key", err)
	}
	emptyTLS := func(k string) (string, bool) {
		switch k {
		case "SOCIUS_TLS_CERT", "SOCIUS_TLS_KEY", "SOCIUS_SITE_API_KEY", "SOCIUS_SITE_SECRET":
			return "", true
		}
		return "", false
	}
	if err := NewMain().ParseFlags(nil, emptyTLS, io.Discard); err != nil {
		t.Errorf("SOCIUS_TLS_CERT= SOCIUS_TLS_KEY= SOCIUS_SITE_API_KEY= SOCIUS_SITE_SECRET= serve: %v; want the generated certificate and no site", err)
	}
	emptySeed := func(k string) (string, bool) {
		switch k {
		case "SOCIUS_EMULATOR":
			return "true", true
		case "SOCIUS_SEED", "SOCIUS_EXPORT_ON_EXIT":
			return "", true
		}
		return "", false
	}
	if err := NewMain().ParseFlags(nil, emptySeed, io.Discard); err != nil {
		t.Errorf("SOCIUS_SEED= SOCIUS_EXPORT_ON_EXIT= serve: %v; want no seed and no export", err)
	}
}

// TestEnvRefusalsNameTheVariable: a value that a SOCIUS_* variable gave, refused once
// parsed, is said under the variable's name, where the user is to look (the flag's
// alone sent them to a command line that does not hold it); a variable that can carry a
// secret is named without its value, a long value is clipped, and a value the command
// line gave is said under the flag alone.
func TestEnvRefusalsNameTheVariable(t *testing.T) {
	dir := t.TempDir()
	never := filepath.Join(dir, "never")
	long := strings.Repeat("x", 200)
	for _, tt := range []struct {
		args []string
		env  map[string]string
		says string // all of standard error
	}{
		{[]string{"serve"}, map[string]string{"SOCIUS_MAX_HEADER_BYTES": "0"}, `SOCIUS_MAX_HEADER_BYTES="0": --max-header-bytes must be positive`},
		{[]string{"serve"}, map[string]string{"SOCIUS_CLOCK_SKEW": "-1s"}, `SOCIUS_CLOCK_SKEW="-1s": --clock-skew must be positive`},
		{[]string{"serve"}, map[string]string{"SOCIUS_LOG_FORMAT": "xml"}, `SOCIUS_LOG_FORMAT: --log-format "xml": text or json`},
		{[]string{"serve", "--max-header-bytes", "0"}, map[string]string{"SOCIUS_MAX_HEADER_BYTES": "5"}, `--max-header-bytes must be positive`},
		{[]string{"serve"}, map[string]string{"SOCIUS_SITE_API_KEY": "3_x", "SOCIUS_SITE_SECRET": "hunter2!hunter2!hunter2!"},
			`SOCIUS_SITE_SECRET: --site-secret: secret is not standard base64: character 8 is not in the standard base64 alphabet (A-Z a-z 0-9 + /, then = to pad the end; URL-safe base64's - and _ are not in it: write them as + and /)`},
		{[]string{"serve"}, map[string]string{"SOCIUS_STORE": "mysql://socius:hunter2@db/socius"}, `SOCIUS_STORE: --store "mysql://socius:xxxxx@db/socius": want sqlite (the embedded SQLite in --data, as with --store left out) or a postgres:// URL`},
		{[]string{"serve"}, map[string]string{"SOCIUS_CLOCK_SKEW": long}, `SOCIUS_CLOCK_SKEW="` + long[:64] + `"... (200 bytes): must be a duration such as 30s or 2m (--clock-skew)`},
		{[]string{"call", "socialize.getUserInfo"}, map[string]string{"SOCIUS_TIMEOUT": "-1s"}, `SOCIUS_TIMEOUT="-1s": --timeout -1s: want a positive duration`},
		// A refusal that is about one flag of a pair begins with that flag: the other,
		// given by its variable, is not named as the cause.
		{[]string{"serve", "--rate-burst", "-5"}, map[string]string{"SOCIUS_RATE_LIMIT": "100"}, `--rate-burst must be 0 (off, default) or positive`},
		{[]string{"serve"}, map[string]string{"SOCIUS_RATE_LIMIT": "100", "SOCIUS_RATE_BURST": "-5"}, `SOCIUS_RATE_BURST="-5": --rate-burst must be 0 (off, default) or positive`},
		{[]string{"serve", "--auth-failure-burst", "-3"}, map[string]string{"SOCIUS_AUTH_FAILURE_LIMIT": "1"}, `--auth-failure-burst must be 0 (off, default) or positive`},
		{[]string{"serve", "--auth-failure-limit", "-1"}, map[string]string{"SOCIUS_AUTH_FAILURE_BURST": "3"}, `--auth-failure-limit must be 0 (off, default) or positive`},
		{[]string{"emulator", "log", "--url", "http://127.0.0.1:1"}, map[string]string{"SOCIUS_LIMIT": "-5"}, `SOCIUS_LIMIT="-5": --limit -5: want a number of calls, 0 for every call the log holds`},
		{[]string{"site", "list"}, map[string]string{"SOCIUS_DATA": ""}, `SOCIUS_DATA="": --data is empty: give the data folder ("." for the current one)`},
		{[]string{"backup", "--out", filepath.Join(dir, "b.db")}, map[string]string{"SOCIUS_DATA": never, "SOCIUS_STORE": "postgres://socius:hunter2@db/socius"},
			`SOCIUS_STORE: --store: socius backup copies the embedded SQLite store; back up a PostgreSQL store with pg_dump (see docs/postgresql.md)`},
	} {
		env := func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok }
		code, out, errOut := runCLI(t, env, tt.args...)
		if code != 2 || out != "" || errOut != "socius: "+tt.says+"\n" {
			t.Errorf("%v %v: exit %d, stdout %q, stderr %q; want 2 and %q", tt.args, tt.env, code, out, errOut, tt.says)
		}
	}
	if _, err := os.Stat(never); !os.IsNotExist(err) {
		t.Errorf("a refused command made its data folder: %v", err)
	}
}

// TestAdminCommandsNeedAStore: given a folder without a store (a mistyped --data), a
// command that reads or changes what is there says so and creates nothing; site create
// and user import make the store.
func TestAdminCommandsNeedAStore(t *testing.T) {
	typo := filepath.Join(t.TempDir(), "typo")
	for _, args := range [][]string{
		{"site", "list"},
		{"site", "show", "3_x"},
		{"site", "rotate-secret", "3_x"},
		{"key", "list"},
		{"key", "create", "--site", "3_x"},
		{"user", "export", "--site", "3_x"},
	} {
		code, _, errOut := runCLI(t, noEnv, append(args, "--data", typo)...)
		if code != 1 || !strings.Contains(errOut, "no store at "+filepath.Join(typo, "socius.db")) {
			t.Errorf("%v: exit %d %s", args, code, errOut)
		}
		if _, err := os.Stat(typo); !os.IsNotExist(err) {
			t.Fatalf("%v created %s: %v", args, typo, err)
		}
	}
	// site create makes the folder, for its owner only, and says where the new master
	// key is.
	if code, _, errOut := runCLI(t, noEnv, "site", "create", "--data", typo); code != 0 ||
		!strings.Contains(errOut, "socius: generated the master key that encrypts secrets at rest: "+filepath.Join(typo, "master.key")) {
		t.Fatalf("site create: %d %s", code, errOut)
	}
	if fi, err := os.Stat(typo); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("the data folder site create made: %v %v, want mode 0700", fi.Mode(), err)
	}
	if code, out, errOut := runCLI(t, noEnv, "site", "list", "--data", typo); code != 0 || !strings.Contains(out, "3_") {
		t.Errorf("site list after create: %d %s %s", code, out, errOut)
	}
	// Without --data: socius-data in the working directory, as for serve.
	t.Chdir(t.TempDir())
	if code, _, errOut := runCLI(t, noEnv, "site", "list"); code != 1 || !strings.Contains(errOut, "no store at "+filepath.Join("socius-data", "socius.db")) {
		t.Errorf("site list without --data: exit %d %s", code, errOut)
	}
}

// TestServeSiteFlagsKeepTheName: --site-api-key and --site-secret set the site's secret
// at every start; a site that exists keeps its name.
func TestServeSiteFlagsKeepTheName(t *testing.T) {
	dir := t.TempDir()
	if code, _, errOut := runCLI(t, noEnv, "site", "create", "--api-key", testAPIKey, "--name", "shop", "--data", dir); code != 0 {
		t.Fatal(errOut)
	}
	ts := startServer(t, "--data", dir)
	site, err := ts.Store.Site(context.Background(), testAPIKey)
	if err != nil || site.Name != "shop" || site.Secret != testSecret {
		t.Errorf("the site after serve: %+v %v; want the name shop and the flag's secret", site, err)
	}
}

// TestPprofHasNoCommandLine: --pprof serves the profiles, but not the command line,
// which may hold --site-secret.
func TestPprofHasNoCommandLine(t *testing.T) {
	ts := startServer(t, "--pprof", "127.0.0.1:0")
	for path, want := range map[string]int{"": 200, "heap?debug=1": 200, "cmdline": 404} {
		resp, err := http.Get(ts.PprofURL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%s%s: HTTP %d, want %d", ts.PprofURL, path, resp.StatusCode, want)
		}
	}
}

// TestSecretsStoredCompact: a secret given with whitespace (read from a file, with its
// newline) is stored without it, as a client sends it in plain: by site create, key
// create, both rotate-secrets and serve's --site-secret.
func TestSecretsStoredCompact(t *testing.T) {
	dir := t.TempDir()
	spaced := " " + testSecret[:20] + "\n" + testSecret[20:] + "\r\n"
	for _, args := range [][]string{
		{"site", "create", "--api-key", "3_Spaced", "--secret", spaced},
		{"key", "create", "--site", "3_Spaced", "--user-key", "ASpacedKey", "--secret", spaced},
		{"site", "create", "--api-key", "3_Rotated"},
		{"site", "rotate-secret", "3_Rotated", "--secret", spaced},
		{"key", "create", "--site", "3_Rotated", "--user-key", "ARotatedKey"},
		{"key", "rotate-secret", "ARotatedKey", "--secret", spaced},
	} {
		code, out, errOut := runCLI(t, noEnv, append(args, "--data", dir)...)
		if code != 0 || slices.Contains(args, "--secret") && !strings.Contains(out, " "+testSecret+"\n") {
			t.Fatalf("%v: %d %q %s", args, code, out, errOut)
		}
	}
	ts := startServer(t, "--data", dir, "--site-secret", spaced)
	ctx := context.Background()
	for _, apiKey := range []string{"3_Spaced", "3_Rotated", testAPIKey} {
		if s, err := ts.Store.Site(ctx, apiKey); err != nil || s.Secret != testSecret {
			t.Errorf("site %s: %+v %v; want the secret %s", apiKey, s, err, testSecret)
		}
	}
	for _, userKey := range []string{"ASpacedKey", "ARotatedKey"} {
		if k, err := ts.Store.Key(ctx, userKey); err != nil || k.Secret != testSecret {
			t.Errorf("key %s: %+v %v; want the secret %s", userKey, k, err, testSecret)
		}
	}
}

// TestFailedStartMakesNothing: a listener's address taken, or a master key file that
// cannot be read, fails serve (and the admin commands) with nothing made: no data
// folder, store, lock or generated master key. A key file that cannot be read is a
// usage error (exit 2), as every file a flag names, and so is one that holds no master
// key, or TLS files that hold no certificate, or no key of it: the flag named, and
// what its file must hold.
func TestFailedStartMakesNothing(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	dir := t.TempDir()
	missing := filepath.Join(dir, "no-such.key")
	badKey := filepath.Join(dir, "bad.key")
	if err := os.WriteFile(badKey, []byte("not a key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A certificate and its key, and the key of another certificate.
	certFile, keyFile, otherKey := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), filepath.Join(dir, "other-key.pem")
	certPEM, keyPEM, err := selfSignedCert(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	_, otherKeyPEM, err := selfSignedCert(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for f, b := range map[string][]byte{certFile: certPEM, keyFile: keyPEM, otherKey: otherKeyPEM} {
		if err := os.WriteFile(f, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	tlsServe := func(cert, key string) []string {
		return []string{"serve", "--http", "", "--https", "127.0.0.1:0", "--admin", "", "--tls-cert", cert, "--tls-key", key}
	}
	// Seeds that a start refuses: before the store is opened.
	notJSON, badMethod := filepath.Join(dir, "not-json.jsonl"), filepath.Join(dir, "bad-method.jsonl")
	// On a new data folder, a seed's keys and users name the seed's sites, defined
	// before them, or --site-api-key's.
	noSite, siteAfter := filepath.Join(dir, "no-site.jsonl"), filepath.Join(dir, "site-after.jsonl")
	for f, text := range map[string]string{
		noSite:    `{"kind":"site","apiKey":"3_Seed","secret":"` + testSecret + `"}` + "\n" + `{"kind":"user","apiKey":"3_Seed","UID":"a"}` + "\n" + `{"kind":"user","apiKey":"3_Nope","UID":"b"}` + "\n",
		siteAfter: `{"kind":"key","userKey":"ASeedKey","apiKey":"3_Seed","secret":"` + testSecret + `"}` + "\n" + `{"kind":"site","apiKey":"3_Seed","secret":"` + testSecret + `"}` + "\n",
		notJSON:   `{"kind":"site","apiKey":"3_Seed","secret":"` + testSecret + `"}` + "\nnot json\n",
		badMethod: `{"kind":"site","apiKey":"3_Seed","secret":"` + testSecret + `"}` + "\n" + `{"kind":"key","userKey":"ASeedKey","apiKey":"3_Seed","secret":"` + testSecret + `","methods":["socialize.frobnicate"]}` + "\n",
	} {
		if err := os.WriteFile(f, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	emulatorServe := func(seed string) []string {
		return []string{"serve", "--emulator", "--seed", seed, "--http", "127.0.0.1:0", "--https", "", "--admin", "", "--log-level", "error"}
	}
	const mustHoldKey = ": a master key is base64 of 32 bytes; this is not base64 (make one with: head -c 32 /dev/urandom | base64)"
	for _, tt := range []struct {
		args []string
		code int
		says string
	}{
		{[]string{"serve", "--http", taken.Addr().String(), "--https", "", "--admin", ""}, 1, "--http: listen tcp " + taken.Addr().String()},
		{[]string{"serve", "--http", "127.0.0.1:0", "--https", "", "--admin", taken.Addr().String()}, 1, "--admin: listen tcp"},
		{[]string{"serve", "--http", "127.0.0.1:0", "--https", "", "--admin", "", "--master-key-file", missing}, 2, "--master-key-file " + missing},
		{[]string{"serve", "--http", "127.0.0.1:0", "--https", "", "--admin", "", "--previous-master-key-file", missing}, 2, "--previous-master-key-file " + missing},
		{[]string{"site", "create", "--master-key-file", missing}, 2, "--master-key-file " + missing},
		{[]string{"site", "create", "--previous-master-key-file", missing}, 2, "--previous-master-key-file " + missing},
		{[]string{"serve", "--http", "127.0.0.1:0", "--https", "", "--admin", "", "--master-key-file", badKey}, 2, "socius: --master-key-file " + badKey + mustHoldKey + "\n"},
		{[]string{"serve", "--http", "127.0.0.1:0", "--https", "", "--admin", "", "--previous-master-key-file", badKey}, 2, "socius: --previous-master-key-file " + badKey + mustHoldKey + "\n"},
		{[]string{"site", "create", "--master-key-file", badKey}, 2, "socius: --master-key-file " + badKey + mustHoldKey + "\n"},
		{tlsServe(badKey, keyFile), 2, "socius: --tls-cert " + badKey + ": tls: failed to find any PEM data in certificate input; it must hold the server's certificate in PEM (-----BEGIN CERTIFICATE-----)"},
		{tlsServe(keyFile, certFile), 2, "socius: --tls-cert " + keyFile + ": tls: failed to find certificate PEM data in certificate input, but did find a private key"},
		{tlsServe(certFile, badKey), 2, "socius: --tls-key " + badKey + ": tls: failed to find any PEM data in key input; it must hold the private key of the --tls-cert certificate in PEM"},
		{emulatorServe(missing), 2, "socius: --seed " + missing + ": no such file or directory\n"},
		{emulatorServe(dir), 2, "socius: --seed " + dir + ": is a directory\n"},
		{emulatorServe(notJSON), 2, "socius: --seed " + notJSON + ": line 2: not a valid record: not JSON"},
		{emulatorServe(badMethod), 2, "socius: --seed " + badMethod + `: line 2: key ASeedKey: "socialize.frobnicate" is not a method Socius serves`},
		{emulatorServe(noSite), 2, "socius: --seed " + noSite + ": line 3: user: no site has apiKey 3_Nope (a site line must come before its keys and users); the store is new"},
		{emulatorServe(siteAfter), 2, "socius: --seed " + siteAfter + ": line 1: key: no site has apiKey 3_Seed"},
		{append(emulatorServe(noSite), "--site-api-key", "3_Other", "--site-secret", testSecret), 2, ": line 3: user: no site has apiKey 3_Nope"},
		{tlsServe(certFile, otherKey), 2, "socius: --tls-key " + otherKey + ": tls: private key does not match public key; it must hold the private key of the --tls-cert certificate"},
	} {
		data := filepath.Join(dir, "data")
		code, _, errOut := runCLI(t, noEnv, append(tt.args, "--data", data)...)
		if code != tt.code || !strings.Contains(errOut, tt.says) {
			t.Errorf("%v: exit %d %s; want %d and %q", tt.args, code, errOut, tt.code, tt.says)
		}
		if _, err := os.Stat(data); !os.IsNotExist(err) {
			entries, _ := os.ReadDir(data)
			t.Errorf("%v made %s: %v", tt.args, data, entries)
			os.RemoveAll(data)
		}
	}
}

// TestVersionHelp: version -h, -help, --help and help are help (exit 0), as every
// command's are; another argument is a usage error.
func TestVersionHelp(t *testing.T) {
	for _, h := range []string{"-h", "-help", "--help", "help"} {
		if code, out, errOut := runCLI(t, noEnv, "version", h); code != 0 || !strings.Contains(out, "usage: socius version") || errOut != "" {
			t.Errorf("version %s: exit %d %q %q", h, code, out, errOut)
		}
	}
	if code, _, _ := runCLI(t, noEnv, "version", "extra"); code != 2 {
		t.Errorf("version extra: exit %d, want 2", code)
	}
}

// TestSecretFile: --secret-file gives a secret without the command line, which others
// on the host can see: site create, key create and the rotate-secrets read it (its
// newline dropped); with --secret too, or empty, it is a usage error (nothing made).
func TestSecretFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "secret")
	if err := os.WriteFile(file, []byte(testSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	for _, args := range [][]string{
		{"site", "create", "--api-key", "3_File", "--secret-file", file},
		{"key", "create", "--site", "3_File", "--user-key", "AFileKey", "--secret-file", file},
		{"site", "rotate-secret", "3_File", "--secret-file", file},
		{"key", "rotate-secret", "AFileKey", "--secret-file", file},
	} {
		if code, out, errOut := runCLI(t, noEnv, append(args, "--data", data)...); code != 0 || !strings.Contains(out, " "+testSecret+"\n") {
			t.Errorf("%v: exit %d %q %s", args, code, out, errOut)
		}
	}
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte("\n"), 0o600)
	for _, tt := range []struct {
		args []string
		code int
		says string
	}{
		{[]string{"site", "create", "--secret", testSecret, "--secret-file", file}, 2, "give the secret once"},
		{[]string{"site", "create", "--secret-file", empty}, 2, "empty"},
		{[]string{"site", "create", "--secret-file", filepath.Join(dir, "missing")}, 2, "no such file"},
	} {
		never := filepath.Join(dir, "never")
		if code, _, errOut := runCLI(t, noEnv, append(tt.args, "--data", never)...); code != tt.code || !strings.Contains(errOut, tt.says) {
			t.Errorf("%v: exit %d %s; want %d and %q", tt.args, code, errOut, tt.code, tt.says)
		}
		if _, err := os.Stat(never); !os.IsNotExist(err) {
			t.Errorf("%v made its data folder", tt.args)
		}
	}
}

// TestWarnWALLeft: a WAL that stays after the store closed (its last checkpoint failed,
// on a full disk) is said at shutdown; none, or an empty one, is not.
func TestWarnWALLeft(t *testing.T) {
	dir := t.TempDir()
	var logs bytes.Buffer
	m := NewMain()
	m.DataDir, m.Logger = dir, slog.New(slog.NewTextHandler(&logs, nil))
	m.warnWALLeft()
	os.WriteFile(filepath.Join(dir, "socius.db-wal"), nil, 0o600)
	m.warnWALLeft()
	if logs.Len() != 0 {
		t.Errorf("a warning without a WAL left: %s", logs.String())
	}
	os.WriteFile(filepath.Join(dir, "socius.db-wal"), make([]byte, 4096), 0o600)
	m.warnWALLeft()
	if !strings.Contains(logs.String(), "its write-ahead log stays") || !strings.Contains(logs.String(), "walBytes=4096") {
		t.Errorf("no warning for the WAL left: %s", logs.String())
	}
}

// TestServeSiteFlagsWriteOnlyAChange: --site-api-key and --site-secret write the site
// only when it is not stored so already: a start on a full disk (where every write
// fails) with the flags of the last start works; a changed secret is written.
func TestServeSiteFlagsWriteOnlyAChange(t *testing.T) {
	st := labSiteStore(t)
	ctx := context.Background()
	m := &Main{Store: storeFault{Store: st, fail: "PutSite"}, Clock: socius.SystemClock{}, Stdout: io.Discard}
	m.SiteAPIKey, m.SiteSecret = testAPIKey, testSecret
	if err := m.prepareSite(ctx); err != nil {
		t.Errorf("the site stored as the flags say, writes failing: %v", err)
	}
	m.SiteSecret = "bm90LXRoZS1wYXJ0bmVyLXNlY3JldC0wMDA="
	if err := m.prepareSite(ctx); !errors.Is(err, errStoreGone) {
		t.Errorf("another secret, writes failing: %v; want the write tried", err)
	}
}

// TestServeSiteFlagsReplacingASecretIsSaid: flags that replace a stored site secret
// say so (a node restarted with the flags of before a rotation puts the old secret
// back for every node of a shared store, silently until then); flags that match, or
// create the site, say nothing.
func TestServeSiteFlagsReplacingASecretIsSaid(t *testing.T) {
	st := labSiteStore(t)
	var logs bytes.Buffer
	m := &Main{Store: st, Clock: socius.SystemClock{}, Stdout: io.Discard, Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	m.SiteAPIKey, m.SiteSecret = testAPIKey, testSecret
	if err := m.prepareSite(t.Context()); err != nil || logs.String() != "" {
		t.Errorf("the stored secret: %v, logged %q", err, logs.String())
	}
	m.SiteSecret = "bm90LXRoZS1wYXJ0bmVyLXNlY3JldC0wMDA="
	if err := m.prepareSite(t.Context()); err != nil || !strings.Contains(logs.String(), "--site-secret replaced the stored secret of site "+testAPIKey) {
		t.Errorf("another secret: %v, logged %q", err, logs.String())
	}
	if strings.Contains(logs.String(), m.SiteSecret) || strings.Contains(logs.String(), testSecret) {
		t.Errorf("a secret in the log: %s", logs.String())
	}
	logs.Reset()
	m.SiteAPIKey = "3_NewSite"
	if err := m.prepareSite(t.Context()); err != nil || logs.String() != "" {
		t.Errorf("a new site: %v, logged %q", err, logs.String())
	}
	// After a seed that gave the site another secret: the secret replaced is the
	// seed's, not one the store's clients were given.
	m.Seed, m.SiteSecret = "seed.jsonl", testSecret
	if did, err := m.configureSite(t.Context(), true); err != nil || did != siteReplaced ||
		!strings.Contains(logs.String(), "--seed seed.jsonl gave site 3_NewSite another secret than --site-secret's") || strings.Contains(logs.String(), "rotated") {
		t.Errorf("after a seed: %v, %v, logged %q", did, err, logs.String())
	}
}

// TestSiteLine: the line serve prints for --site-api-key's site says what it did.
func TestSiteLine(t *testing.T) {
	for _, tt := range []struct {
		did  siteDone
		want string
	}{
		{siteCreated, "socius: created site K (--site-api-key)\n"},
		{siteUsed, "socius: using site K (--site-api-key)\n"},
		{siteReplaced, "socius: using site K (--site-api-key), its secret replaced by --site-secret's\n"},
	} {
		if got := siteLine("K", tt.did); got != tt.want {
			t.Errorf("siteLine(%v) = %q, want %q", tt.did, got, tt.want)
		}
	}
}

// TestServeSiteFlagsSaid: serve with --site-api-key and --site-secret prints a line
// saying what it did with that site, with its apiKey and never the secret (the user
// gave it): created on a new store, in use on the next start, its secret replaced when
// the flag's differs. With a seed too (the site is made before the load and given the
// flag's secret again after it), the lines come in the order things happen: the site's
// before the seed's (it came after, as if the seed's keys and users had come before
// their site), then, when the flag's secret replaced the seed's, a line saying so.
// It printed nothing, while the demo site's creation prints its credentials.
func TestServeSiteFlagsSaid(t *testing.T) {
	data := t.TempDir()
	const other = "bm90LXRoZS1wYXJ0bmVyLXNlY3JldC0wMDA="
	const seeded = "socius: emulator: seeded 1 site, 1 key, 2 users from "
	for _, tt := range []struct {
		name  string
		flags []string
		want  []string // the lines naming the site or the seed, in order
	}{
		{"new store", nil, []string{"socius: created site " + testAPIKey + " (--site-api-key)\n"}},
		{"next start", nil, []string{"socius: using site " + testAPIKey + " (--site-api-key)\n"}},
		{"another secret", []string{"--site-secret", other}, []string{"socius: using site " + testAPIKey + " (--site-api-key), its secret replaced by --site-secret's\n"}},
		{"seed on a new store", []string{"--data", t.TempDir(), "--emulator", "--seed", writeSeed(t)},
			[]string{"socius: created site " + testAPIKey + " (--site-api-key)\n", seeded}},
		{"a seed with another secret", []string{"--data", t.TempDir(), "--emulator", "--seed", writeSeed(t), "--site-secret", other},
			[]string{"socius: created site " + testAPIKey + " (--site-api-key)\n", seeded,
				"socius: site " + testAPIKey + " (--site-api-key): the seed's secret for it replaced by --site-secret's\n"}},
	} {
		var out syncbuf.Buffer
		ts := startMain(t, func(m *Main) { m.Stdout = &out }, append([]string{"--data", data}, tt.flags...)...)
		ts.Close()
		got := out.String()
		var lines []string
		for _, l := range strings.SplitAfter(got, "\n") {
			if strings.Contains(l, "site "+testAPIKey) || strings.HasPrefix(l, seeded) {
				lines = append(lines, l)
			}
		}
		ok := len(lines) == len(tt.want)
		for i := 0; ok && i < len(lines); i++ {
			ok = strings.HasPrefix(lines[i], tt.want[i])
		}
		if !ok {
			t.Errorf("%s: serve printed\n%s\nwant the lines, in this order, %q", tt.name, got, tt.want)
		}
		if strings.Contains(got, testSecret) || strings.Contains(got, other) || strings.Contains(got, "demo site") {
			t.Errorf("%s: serve printed a secret, or a demo site:\n%s", tt.name, got)
		}
	}
}

// TestCLIMessage: a store's failure reads as what it is on a command's standard
// error, not as an API answer's "gigya error N".
func TestCLIMessage(t *testing.T) {
	err := fmt.Errorf("--site-api-key: %w", socius.DiskFullError("sqlite: commit", errors.New("database or disk is full")))
	got := cliMessage(err)
	if strings.Contains(got, "gigya error") || !strings.Contains(got, "the store's disk is full") || !strings.HasPrefix(got, "--site-api-key: ") {
		t.Errorf("cliMessage = %q", got)
	}
}

// TestFileErrorsNameTheFlag: a file a command cannot open is said with the flag (or
// argument) that named it, as "--in FILE: no such file or directory": os.Open's own
// "open FILE: ..." does not say what the file was for. Every such file is a usage
// error, exit 2 (--secret-file, --in, --token-file, the master key files, --tls-cert,
// --seed and emulator seed's FILE exited 1, the others 2), and so is a folder named
// as the file.
func TestFileErrorsNameTheFlag(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing")
	data := filepath.Join(dir, "data")
	if code, _, errOut := runCLI(t, noEnv, "site", "create", "--api-key", "3_Files", "--data", data); code != 0 {
		t.Fatalf("site create: %d %s", code, errOut)
	}
	for _, tt := range []struct {
		args []string
		code int
		says string
	}{
		{[]string{"site", "create", "--secret-file", missing, "--data", data}, 2, "socius: --secret-file " + missing + ": no such file or directory\n"},
		{[]string{"site", "rotate-secret", "3_Files", "--secret-file", dir, "--data", data}, 2, "socius: --secret-file " + dir + ": is a directory\n"},
		{[]string{"key", "create", "--site", "3_Files", "--public-key", missing, "--data", data}, 2, "socius: --public-key " + missing + ": no such file or directory\n"},
		{[]string{"user", "import", "--in", missing, "--data", data}, 2, "socius: --in " + missing + ": no such file or directory\n"},
		{[]string{"user", "import", "--in", dir, "--data", data}, 2, "socius: --in " + dir + ": is a directory\n"},
		{[]string{"token", "revoke", "--token-file", missing, "--data", data}, 2, "socius: --token-file " + missing + ": no such file or directory\n"},
		{[]string{"token", "revoke", "--token-file", dir, "--data", data}, 2, "socius: --token-file " + dir + ": is a directory\n"},
		{[]string{"site", "list", "--master-key-file", missing, "--data", data}, 2, "socius: --master-key-file " + missing + ": no such file or directory\n"},
		{[]string{"site", "list", "--previous-master-key-file", missing, "--data", data}, 2, "socius: --previous-master-key-file " + missing + ": no such file or directory\n"},
		{[]string{"serve", "--tls-cert", missing, "--tls-key", missing, "--http", "", "--https", "127.0.0.1:0", "--admin", "", "--data", data}, 2, "socius: --tls-cert " + missing + ": no such file or directory\n"},
		{[]string{"serve", "--emulator", "--seed", missing, "--http", "127.0.0.1:0", "--https", "", "--admin", "", "--log-level", "error"}, 2, "socius: --seed " + missing + ": no such file or directory\n"},
		{[]string{"call", "--api-key", "3_Files", "--user-key", "AKey", "--private-key", missing, "--url", "https://127.0.0.1:1", "socialize.getUserInfo"}, 2, "socius: --private-key " + missing + ": no such file or directory\n"},
		{[]string{"call", "--token", "st2.at.x", "--ca-file", missing, "--url", "https://127.0.0.1:1", "socialize.getUserInfo"}, 2, "socius: --ca-file " + missing + ": no such file or directory\n"},
		{[]string{"emulator", "seed", missing, "--url", "http://127.0.0.1:1"}, 2, "socius: seed " + missing + ": no such file or directory\n"},
	} {
		if code, _, errOut := runCLI(t, noEnv, tt.args...); code != tt.code || errOut != tt.says {
			t.Errorf("%v: exit %d %q; want %d and %q", tt.args, code, errOut, tt.code, tt.says)
		}
	}
}

// TestFileFlagsReadABoundedAmount: a file a flag names that is far longer than what it
// should hold (a database given by mistake, /dev/zero) is refused after its limit,
// saying so, as a usage error naming the flag, not read whole into memory. The files
// here are one byte over each limit.
func TestFileFlagsReadABoundedAmount(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	if code, _, errOut := runCLI(t, noEnv, "site", "create", "--api-key", "3_Files", "--data", data); code != 0 {
		t.Fatalf("site create: %d %s", code, errOut)
	}
	long := func(name string, n int) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, bytes.Repeat([]byte("A"), n), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	masterKey := long("master.key", 4<<10+1)
	privateKey := long("private.pem", 64<<10+1)
	publicKey := long("public.pem", 16<<10+1)
	cert := long("cert.pem", 1<<20+1)
	ca := long("ca.pem", 16<<20+1)
	for _, tt := range []struct {
		args []string
		says string
	}{
		{[]string{"site", "list", "--master-key-file", masterKey, "--data", data}, "--master-key-file " + masterKey + ": longer than 4096 bytes; a master key is base64 of 32 bytes"},
		{[]string{"site", "list", "--previous-master-key-file", masterKey, "--data", data}, "--previous-master-key-file " + masterKey + ": longer than 4096 bytes"},
		{[]string{"key", "create", "--site", "3_Files", "--public-key", publicKey, "--data", data}, "--public-key " + publicKey + ": longer than 16384 bytes; it must hold an RSA public key in PEM"},
		{[]string{"call", "--api-key", "3_Files", "--user-key", "AKey", "--private-key", privateKey, "--url", "https://127.0.0.1:1", "socialize.getUserInfo"}, "--private-key " + privateKey + ": longer than 65536 bytes; it must hold an RSA private key in PEM"},
		{[]string{"call", "--token", "st2.at.x", "--ca-file", ca, "--url", "https://127.0.0.1:1", "socialize.getUserInfo"}, "--ca-file " + ca + ": longer than 16777216 bytes; it must hold PEM certificates"},
		{[]string{"serve", "--tls-cert", cert, "--tls-key", privateKey, "--http", "", "--https", "127.0.0.1:0", "--admin", "", "--data", data}, "--tls-cert " + cert + ": longer than 1048576 bytes"},
	} {
		if code, _, errOut := runCLI(t, noEnv, tt.args...); code != 2 || !strings.Contains(errOut, tt.says) {
			t.Errorf("%v: exit %d %q; want 2 and %q", tt.args[:2], code, errOut, tt.says)
		}
	}
	// The data folder's own master.key, read when no flag gives one.
	if err := os.WriteFile(filepath.Join(data, "master.key"), bytes.Repeat([]byte("A"), 4<<10+1), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := runCLI(t, noEnv, "site", "list", "--data", data); code == 0 || !strings.Contains(errOut, "master.key: longer than 4096 bytes") {
		t.Errorf("site list with a long data/master.key: exit %d %q", code, errOut)
	}
}

// TestFlagValueSaysWhatItTakes: a value that a flag of a number, a duration or true or
// false does not read is refused on the command line as in the environment, saying
// what the flag takes; the flag package alone says "parse error". Exit 2, the usage
// after it as before.
func TestFlagValueSaysWhatItTakes(t *testing.T) {
	for _, tt := range []struct {
		args []string
		says string
	}{
		{[]string{"call", "--timeout", "5", "socialize.getUserInfo"}, `invalid value "5" for flag -timeout: must be a duration such as 30s or 2m` + "\n"},
		{[]string{"serve", "--emulator=yes"}, `invalid boolean value "yes" for -emulator: must be true or false (1 or 0)` + "\n"},
		{[]string{"serve", "--max-concurrent", "many"}, `invalid value "many" for flag -max-concurrent: must be a whole number` + "\n"},
		{[]string{"emulator", "faults", "add", "--fraction", "half"}, `invalid value "half" for flag -fraction: must be a number` + "\n"},
		{[]string{"user", "export", "--with-site=no"}, `invalid boolean value "no" for -with-site: must be true or false (1 or 0)` + "\n"},
	} {
		code, out, errOut := runCLI(t, noEnv, tt.args...)
		if code != 2 || out != "" || !strings.HasPrefix(errOut, tt.says) || strings.Contains(errOut, "parse error") {
			t.Errorf("%v: exit %d %q %q; want 2 and %q", tt.args, code, out, errOut, tt.says)
		}
		if !strings.Contains(errOut, "\n  -") {
			t.Errorf("%v: no usage after the refusal: %q", tt.args, errOut)
		}
	}
	// A number beyond the flag's type is said so, as before.
	if _, _, errOut := runCLI(t, noEnv, "serve", "--max-body-bytes", "99999999999999999999"); !strings.HasPrefix(errOut, `invalid value "99999999999999999999" for flag -max-body-bytes: value out of range`+"\n") {
		t.Errorf("out of range: %q", errOut)
	}
}

// TestHelpNamesTheArguments: -h of a command that takes an argument begins with the
// usage line that names it, as the command says it when the argument is missing; the
// flag package's "Usage of socius key delete:" did not say that it takes a USERKEY.
func TestHelpNamesTheArguments(t *testing.T) {
	for _, tt := range []struct {
		args []string
		head string
	}{
		{[]string{"site", "show"}, "usage: socius site show APIKEY "},
		{[]string{"site", "rotate-secret"}, "usage: socius site rotate-secret APIKEY "},
		{[]string{"key", "delete"}, "usage: socius key delete USERKEY "},
		{[]string{"key", "rotate-secret"}, "usage: socius key rotate-secret USERKEY "},
		{[]string{"token", "revoke"}, "usage: socius token revoke [TOKEN] "},
	} {
		code, out, _ := runCLI(t, noEnv, append(tt.args, "-h")...)
		if code != 0 || !strings.HasPrefix(out, tt.head) || !strings.Contains(out, "\n  -data string\n") {
			t.Errorf("%v -h: exit %d %q; want 0 and %q, then the flags", tt.args, code, out, tt.head)
		}
	}
}

// TestHelpBeginsWithAUsageLine: -h of every command begins "usage: socius ...", as
// the commands with arguments do (TestHelpNamesTheArguments); serve, site create and
// the others printed the flag package's "Usage of socius serve:".
func TestHelpBeginsWithAUsageLine(t *testing.T) {
	for _, tt := range []struct {
		args []string
		head string
	}{
		{[]string{"serve"}, "usage: socius serve [flags]\n"},
		{[]string{"site", "create"}, "usage: socius site create [flags]\n"},
		{[]string{"key", "list"}, "usage: socius key list [flags]\n"},
		{[]string{"user", "import"}, "usage: socius user import [flags]\n"},
		{[]string{"emulator", "log"}, "usage: socius emulator log [clear] [flags]\n"},
		{[]string{"emulator", "seed"}, "usage: socius emulator seed FILE [flags]\n"},
		{[]string{"backup"}, "usage: socius backup --out FILE [flags]\n"},
	} {
		code, out, _ := runCLI(t, noEnv, append(tt.args, "-h")...)
		if code != 0 || !strings.HasPrefix(out, tt.head) || !strings.Contains(out, "\n  -") {
			t.Errorf("%v -h: exit %d %q; want 0 and %q, then the flags", tt.args, code, out, tt.head)
		}
	}
}

// TestFlagBeforeTheCommand: a flag given before the command or subcommand that reads
// it (socius site --data DIR list, socius emulator --url URL status) is refused as an
// unknown command, as before, and the refusal now says that flags go after it; it said
// only `unknown subcommand "--data"` (the thirty-third session's walk of the README).
// A word that is no flag gets no such hint.
func TestFlagBeforeTheCommand(t *testing.T) {
	t.Chdir(t.TempDir())
	for _, tt := range []struct {
		args []string
		says string
	}{
		{[]string{"--data", "d", "site", "list"}, `socius: unknown command "--data"; flags go after the command (and its subcommand), as in socius serve --data DIR, socius site list --data DIR` + "\n"},
		{[]string{"site", "--data", "d", "list"}, `socius site: unknown subcommand "--data" (create, list, show, rotate-secret); flags go after the subcommand, as in socius site list --data DIR` + "\n"},
		{[]string{"key", "--site", "3_x", "list"}, `socius key: unknown subcommand "--site" (create, list, delete, rotate-secret); flags go after the subcommand, as in socius key list --site APIKEY` + "\n"},
		{[]string{"user", "--data", "d", "export"}, `socius user: unknown subcommand "--data" (export, import); flags go after the subcommand, as in socius user export --site APIKEY` + "\n"},
		{[]string{"token", "--data", "d", "revoke"}, `socius token: unknown subcommand "--data" (revoke); flags go after the subcommand, as in socius token revoke --data DIR` + "\n"},
		{[]string{"emulator", "--url", "http://127.0.0.1:1", "status"}, `socius emulator: unknown command "--url"; flags go after the command, as in socius emulator status --url URL` + "\n"},
		{[]string{"site", "frob"}, `socius site: unknown subcommand "frob" (create, list, show, rotate-secret)` + "\n"},
		{[]string{"emulator", "frob"}, `socius emulator: unknown command "frob"` + "\n"},
		{[]string{"frob"}, `socius: unknown command "frob"` + "\n"},
	} {
		code, out, errOut := runCLI(t, noEnv, tt.args...)
		if code != 2 || out != "" || !strings.HasPrefix(errOut, tt.says) {
			t.Errorf("%v: exit %d %q %q; want 2 and %q", tt.args, code, out, errOut, tt.says)
		}
	}
	if _, err := os.Stat("d"); !os.IsNotExist(err) {
		t.Errorf("a refused command made its --data folder: %v", err)
	}
}

// TestEmptyDataIsAUsageError: an empty --data (SOCIUS_DATA=, as a CI file writes for a
// variable of its own left empty) is no folder: a usage error that says so, with
// nothing made. site create and serve failed with Go's "mkdir : no such file or
// directory" (exit 1), and site list looked for a socius.db in the current folder.
func TestEmptyDataIsAUsageError(t *testing.T) {
	t.Chdir(t.TempDir())
	emptyData := func(name string) (string, bool) { return "", name == "SOCIUS_DATA" }
	for _, args := range [][]string{
		{"site", "create", "--name", "shop"},
		{"site", "list"},
		{"user", "import", "--in", os.DevNull},
		{"backup", "--out", "copy.db"},
		{"serve", "--http", "127.0.0.1:0", "--https", "", "--admin", ""},
	} {
		code, _, errOut := runCLI(t, emptyData, args...)
		if code != 2 || !strings.Contains(errOut, `--data is empty: give the data folder ("." for the current one)`) {
			t.Errorf("%v with SOCIUS_DATA=: exit %d %q; want 2", args, code, errOut)
		}
	}
	if code, _, errOut := runCLI(t, noEnv, "site", "show", "3_x", "--data", ""); code != 2 || !strings.Contains(errOut, "--data is empty") {
		t.Errorf("--data \"\": exit %d %q; want 2", code, errOut)
	}
	if names, _ := os.ReadDir("."); len(names) != 0 {
		t.Errorf("made %v", names)
	}
}

// TestPprofNotLoopbackWarns: the profiler on an address other hosts may reach (it has
// no authentication) is served, as asked, with a warning; on loopback, without one.
func TestPprofNotLoopbackWarns(t *testing.T) {
	for _, c := range []struct {
		addr string
		warn bool
	}{{"127.0.0.1:0", false}, {":0", true}} {
		var logs syncbuf.Buffer
		ts := startMain(t, func(m *Main) {
			m.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
		}, "--pprof", c.addr)
		const want = "is not a loopback address: whoever reaches it may profile this server"
		if got := strings.Contains(logs.String(), want); got != c.warn {
			t.Errorf("--pprof %s: warned %v, want %v; the log:\n%s", c.addr, got, c.warn, logs.String())
		}
		resp, err := http.Get(ts.PprofURL)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("--pprof %s: HTTP %d", c.addr, resp.StatusCode)
		}
		if err := ts.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestFailuresSayOnePrefix runs failing commands of several kinds and checks that each
// says its failure in one form, after "socius: ", naming the flag or the step and not
// the command: call said its refused flags after "socius call: " and its failed calls
// after "socius: call: ", serve its refused flags after "socius: serve: ", key create,
// user export and token revoke their missing flag or extra token after "socius key
// create: " and the like.
func TestFailuresSayOnePrefix(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String() // nothing listens there once closed
	ln.Close()
	data := t.TempDir()
	for _, tt := range []struct {
		args []string
		code int
		want string // the start of the first line
	}{
		{[]string{"call", "--timeout", "-1s", "socialize.getUserInfo"}, 2, "socius: --timeout -1s: want a positive duration"},
		{[]string{"call", "socialize.getUserInfo"}, 2, "socius: no credentials: "},
		{[]string{"call", "--url", closed, "--api-key", testAPIKey, "--secret", testSecret, "--timeout", "5s", "socialize.getUserInfo", "UID=u"}, 1,
			"socius: socialize.getUserInfo: POST " + closed + "/socialize.getUserInfo: "},
		{[]string{"serve", "--data", data, "--http", "127.0.0.1:0", "--https", "", "--admin", "", "--log-level", "loud"}, 2, `socius: --log-level "loud": `},
		{[]string{"key", "create", "--data", data}, 2, "socius: --site APIKEY is required"},
		{[]string{"user", "export", "--data", data}, 2, "socius: --site APIKEY (or --all-sites) is required"},
		{[]string{"token", "revoke", "--data", data, "st2.at.a", "st2.at.b"}, 2, "socius: one token at a time"},
		{[]string{"site", "show", "3_None", "--data", filepath.Join(data, "none")}, 1, "socius: no store at "},
	} {
		code, _, errOut := runCLI(t, noEnv, tt.args...)
		first, _, _ := strings.Cut(errOut, "\n")
		if code != tt.code || !strings.HasPrefix(first, tt.want) {
			t.Errorf("socius %q: exit %d, %q; want exit %d and a line starting %q", tt.args, code, errOut, tt.code, tt.want)
		}
	}
}

// TestServeAddressTaken: a start whose listener's address another process holds says
// so, with how to give another address (the flag and its environment variable) and
// that port 0 picks a free one; the store is left unmade.
func TestServeAddressTaken(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	data := filepath.Join(t.TempDir(), "data")
	code, _, errOut := runCLI(t, noEnv, "serve", "--data", data, "--http", "", "--https", ln.Addr().String(), "--admin", "")
	for _, want := range []string{"socius: --https: listen tcp " + ln.Addr().String(), "another process listens on " + ln.Addr().String(),
		"give another address with --https HOST:PORT (or SOCIUS_HTTPS); port 0 picks a free one"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("serve on a taken address: exit %d, %q; want it to say %q", code, errOut, want)
		}
	}
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	if _, err := os.Stat(filepath.Join(data, "socius.db")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the store was made (%v) by a start that failed on its address", err)
	}
}

// TestServingLinesSayTheAskedAddress: serve says each listener's address as it was
// asked for, with the port it got, and says "all interfaces" for a wildcard one. Go
// reports a wildcard listener as [::]:PORT whatever was asked, so --pprof 0.0.0.0:P
// was said as http://[::]:P/debug/pprof/.
func TestServingLinesSayTheAskedAddress(t *testing.T) {
	var out syncbuf.Buffer
	ts := startMain(t, func(m *Main) { m.Stdout = &out },
		"--http", "0.0.0.0:27700", "--https", ":27701", "--admin", "[::]:27702", "--pprof", "0.0.0.0:0")
	said := out.String()
	for _, want := range []string{
		"socius: serving HTTP on http://0.0.0.0:27700 (all interfaces)\n",
		"socius: serving HTTPS on https://0.0.0.0:27701 (all interfaces) (certificate " + ts.CertFile + ")\n",
		"socius: serving /metrics, /healthz and /readyz on http://[::]:27702 (all interfaces)\n",
	} {
		if !strings.Contains(said, want) {
			t.Errorf("serve said:\n%s\nwant the line %q", said, want)
		}
	}
	pprofLine := regexp.MustCompile(`(?m)^socius: serving pprof on (http://0\.0\.0\.0:[1-9][0-9]*/debug/pprof/) \(all interfaces\)$`).FindStringSubmatch(said)
	if pprofLine == nil || pprofLine[1] != ts.PprofURL {
		t.Errorf("serve said:\n%s\nwant the pprof line with %s, its port the one it got", said, ts.PprofURL)
	}
	// The URLs said reach the listeners.
	for _, u := range []string{ts.HTTPURL + "/socialize.getUserInfo", ts.AdminURL + "/healthz", ts.PprofURL} {
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
}

// TestServeRefusesALostStore: a data folder that a serve ran on (serve.lock is there)
// whose socius.db is gone, or empty (as SQLite makes one at the path when the file is
// deleted under a running server), is refused at start, exit 1, saying what happened
// and what to do, with no store made; serve made a new, empty store there and served
// it without a word (every user gone, a new demo site).
func TestServeRefusesALostStore(t *testing.T) {
	for _, empty := range []bool{false, true} {
		data := t.TempDir()
		if err := os.WriteFile(filepath.Join(data, "serve.lock"), nil, 0o600); err != nil {
			t.Fatal(err)
		}
		db := filepath.Join(data, "socius.db")
		what := "is not there"
		if empty {
			if err := os.WriteFile(db, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			what = "is empty"
		}
		code, stdout, stderr := runCLI(t, noEnv, "serve", "--data", data, "--http", "127.0.0.1:0", "--https", "", "--admin", "")
		want := "the data folder " + data + " was served before (" + filepath.Join(data, "serve.lock") + " is there), but " + db + " " + what
		if code != 1 || !strings.Contains(stderr, want) || !strings.Contains(stderr, "put socius.db back") {
			t.Errorf("serve with socius.db lost (empty %v): exit %d\n%s%s\nwant 1 and %q", empty, code, stdout, stderr, want)
		}
		if fi, err := os.Stat(db); empty && (err != nil || fi.Size() != 0) || !empty && err == nil {
			t.Errorf("socius.db after the refused start (empty %v): %v, %v; want it as it was", empty, fi, err)
		}
	}
}

// TestEmptyArguments: an APIKEY or USERKEY argument given empty ("$KEY" with the
// variable unset) is a usage error that says so; it was exit 1, "no key has userKey ".
func TestEmptyArguments(t *testing.T) {
	dir := t.TempDir()
	openDataStore(t, dir).Close()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"site", "show", ""}, "APIKEY is empty"},
		{[]string{"site", "rotate-secret", ""}, "APIKEY is empty"},
		{[]string{"key", "delete", ""}, "USERKEY is empty"},
		{[]string{"key", "rotate-secret", ""}, "USERKEY is empty"},
		// --secret given empty ("--secret $SECRET", the variable unset) is not left
		// out: no secret is generated in place of the one meant.
		{[]string{"site", "rotate-secret", testAPIKey, "--secret", ""}, "--secret is empty"},
		{[]string{"key", "rotate-secret", "AKey", "--secret="}, "--secret is empty"},
		{[]string{"site", "create", "--secret", ""}, "--secret is empty"},
		{[]string{"key", "create", "--site", testAPIKey, "--secret", ""}, "--secret is empty"},
		// --secret-file likewise: "--secret-file $FILE" with the variable unset
		// generated a new secret, as if the flag were left out.
		{[]string{"site", "rotate-secret", testAPIKey, "--secret-file", ""}, "--secret-file is empty"},
		{[]string{"key", "rotate-secret", "AKey", "--secret-file="}, "--secret-file is empty"},
		{[]string{"site", "create", "--secret-file", ""}, "--secret-file is empty"},
		{[]string{"key", "create", "--site", testAPIKey, "--secret-file", ""}, "--secret-file is empty"},
		// --site given empty is not left out: key list listed every site's keys, and
		// user export with --all-sites exported every site.
		{[]string{"key", "list", "--site", ""}, "--site is empty"},
		{[]string{"user", "export", "--site=", "--all-sites"}, "--site is empty"},
		{[]string{"user", "export", "--site", ""}, "--site is empty"},
		// --api-key and --user-key given empty made a site or key with a generated
		// one, not the one a reproducible setup meant.
		{[]string{"site", "create", "--api-key", ""}, "--api-key is empty (an unset variable?)"},
		{[]string{"key", "create", "--site", testAPIKey, "--user-key="}, "--user-key is empty (an unset variable?)"},
		// --public-key given empty made a key without it, which no bearer JWT of the
		// key meant would authenticate.
		{[]string{"key", "create", "--site", testAPIKey, "--public-key", ""}, "--public-key is empty (an unset variable?)"},
		{[]string{"key", "create", "--public-key=", "--site", testAPIKey}, "--public-key is empty (an unset variable?)"},
	} {
		code, stdout, errOut := runCLI(t, noEnv, append(c.args, "--data", dir)...)
		if code != 2 || stdout != "" || !strings.Contains(errOut, c.want) {
			t.Errorf("%q: %d %q %q; want exit 2 saying %q", c.args, code, stdout, errOut, c.want)
		}
	}
}
