package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/socius/socius"
	"github.com/socius/socius/emulator"
	"github.com/socius/socius/gigya"
	"github.com/socius/socius/internal/pgtest"
	"github.com/socius/socius/internal/syncbuf"
)

// The seed of the emulator tests: the lab site, a read-only key and two users.
const (
	seedKey       = "AEmuReadOnly"
	seedKeySecret = "dXNlci1zZWNyZXQtZm9yLWxhYg=="
)

var seedText = `{"kind":"site","apiKey":"` + testAPIKey + `","secret":"` + testSecret + `","name":"lab"}
{"kind":"key","userKey":"` + seedKey + `","apiKey":"` + testAPIKey + `","secret":"` + seedKeySecret + `","methods":["socialize.getUserInfo"]}
{"kind":"user","apiKey":"` + testAPIKey + `","UID":"alice","profile":{"firstName":"Alice","lastName":"Liddell","nickname":"ally","email":"alice@example.com","photoURL":"https://example.com/alice.jpg","age":30},"loggedIn":true}
{"kind":"user","apiKey":"` + testAPIKey + `","UID":"bob","profile":{"firstName":"Bob"}}
`

func writeSeed(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "seed.jsonl")
	if err := os.WriteFile(path, []byte(seedText), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// startEmulator runs `socius serve --emulator --seed <seed>` in-process.
func startEmulator(t *testing.T, flags ...string) *testServer {
	t.Helper()
	return startServer(t, append([]string{"--emulator", "--seed", writeSeed(t)}, flags...)...)
}

// emu runs `socius emulator ARGS --url <the server>` and returns stdout; it fails the
// test on a non-zero exit.
func (ts *testServer) emu(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errOut := runCLI(t, noEnv, append(append([]string{"emulator"}, args...), "--url", ts.HTTPURL)...)
	if code != 0 {
		t.Fatalf("socius emulator %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// logEntries reads the request log through `socius emulator log --json`.
func (ts *testServer) logEntries(t *testing.T) []emulator.Entry {
	t.Helper()
	var out []emulator.Entry
	sc := bufio.NewScanner(strings.NewReader(ts.emu(t, "log", "--json", "--limit", "0")))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var e emulator.Entry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

func TestEmulatorFlags(t *testing.T) {
	ok := [][]string{
		{"--emulator"},
		{"--emulator", "--http", "localhost:0", "--https", "[::1]:0"},
		{"--emulator", "--http", "127.0.0.2:0", "--https", ""},
		{"--emulator", "--http", "0.0.0.0:8080", "--emulator-allow-remote"},
		{"--emulator", "--seed", "x.jsonl", "--export-on-exit", "y.jsonl", "--request-log-size", "10"},
		{"--emulator", "--request-log-size", "100000"},
	}
	for _, args := range ok {
		if err := NewMain().ParseFlags(args, noEnv, io.Discard); err != nil {
			t.Errorf("ParseFlags(%q): %v", args, err)
		}
	}
	bad := []struct {
		args []string
		want string
	}{
		{[]string{"--seed", "x.jsonl"}, "--seed needs --emulator"},
		{[]string{"--export-on-exit", "x.jsonl"}, "--export-on-exit needs --emulator"},
		{[]string{"--emulator-allow-remote"}, "needs --emulator"},
		{[]string{"--emulator", "--http", "0.0.0.0:8080"}, "--http 0.0.0.0:8080 is not a loopback address"},
		{[]string{"--emulator", "--http", ":8080"}, "is not a loopback address"},
		{[]string{"--emulator", "--https", "192.168.1.10:8443"}, "--https 192.168.1.10:8443 is not a loopback address"},
		{[]string{"--emulator", "--http", "socius.example:8080"}, "is not a loopback address"},
		{[]string{"--emulator", "--request-log-size", "0"}, "--request-log-size must be positive"},
		{[]string{"--emulator", "--request-log-size", "1000000000000"}, "--request-log-size must be positive, at most 100000"},
		{[]string{"--emulator", "--write-timeout", "1s"}, "the emulator needs at least 2s"},
		{[]string{"--emulator", "--export-on-exit", filepath.Join(t.TempDir(), "no", "such", "out.jsonl")}, "--export-on-exit: cannot create "},
	}
	for _, tt := range bad {
		err := NewMain().ParseFlags(tt.args, noEnv, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseFlags(%q) = %v, want %q", tt.args, err, tt.want)
		}
	}
	// The binary refuses to start, and says why (a usage error: exit 2).
	if code, _, errOut := runCLI(t, noEnv, "serve", "--emulator", "--http", "0.0.0.0:0"); code != 2 || !strings.Contains(errOut, "--emulator-allow-remote") {
		t.Errorf("serve --emulator on 0.0.0.0: exit %d %s", code, errOut)
	}

	// Every flag has its SOCIUS_ variable.
	env := map[string]string{"SOCIUS_EMULATOR": "true", "SOCIUS_SEED": "s.jsonl", "SOCIUS_EXPORT_ON_EXIT": "e.jsonl",
		"SOCIUS_REQUEST_LOG_SIZE": "7", "SOCIUS_EMULATOR_ALLOW_REMOTE": "1", "SOCIUS_HTTP": "0.0.0.0:0"}
	m := NewMain()
	if err := m.ParseFlags(nil, func(k string) (string, bool) { v, ok := env[k]; return v, ok }, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !m.Emulator || m.Seed != "s.jsonl" || m.ExportOnExit != "e.jsonl" || m.RequestLogSize != 7 || !m.EmulatorAllowRemote {
		t.Errorf("from the environment: %+v", m.EmulatorOptions)
	}

	// A variable set empty (SOCIUS_EMULATOR=${EMULATOR} with EMULATOR unset) is no
	// value for a flag that is not a string: unset. A string flag's empty value stays
	// a value (no HTTPS listener).
	env = map[string]string{"SOCIUS_EMULATOR": "", "SOCIUS_REQUEST_LOG_SIZE": "", "SOCIUS_WRITE_TIMEOUT": "", "SOCIUS_HTTPS": ""}
	m = NewMain()
	if err := m.ParseFlags(nil, func(k string) (string, bool) { v, ok := env[k]; return v, ok }, io.Discard); err != nil {
		t.Fatalf("empty variables: %v", err)
	}
	if d := NewMain(); m.Emulator || m.RequestLogSize != emulator.DefaultLogSize || m.WriteTimeout != d.WriteTimeout || m.HTTPSAddr != "" {
		t.Errorf("empty variables: emulator %v, request log size %d, write timeout %v, https %q", m.Emulator, m.RequestLogSize, m.WriteTimeout, m.HTTPSAddr)
	}
	env["SOCIUS_EMULATOR"] = "1"
	if m = NewMain(); m.ParseFlags(nil, func(k string) (string, bool) { v, ok := env[k]; return v, ok }, io.Discard) != nil || !m.Emulator || m.RequestLogSize != emulator.DefaultLogSize {
		t.Errorf("SOCIUS_EMULATOR=1 with an empty SOCIUS_REQUEST_LOG_SIZE: emulator %v, request log size %d", m.Emulator, m.RequestLogSize)
	}
}

// Without --emulator, the emulator's paths are unknown methods, whose errorDetails say
// that they need emulator mode (they named the path as any unknown method's, cut short
// where it looked like a token: "Unknown method: _emu... is not a method Socius serves").
func TestEmulatorPathsNeedEmulatorMode(t *testing.T) {
	ts := startServer(t)
	for _, path := range []string{"_emulator/api/status", "_emulator/", "_emulator/api/reset", "_emulator"} {
		body, resp := ts.postRaw(t, ts.HTTPURL, path, "")
		if resp.StatusCode != 200 || !strings.Contains(string(body), `"errorCode":400001`) || !strings.Contains(string(body), "Unknown method") ||
			!strings.Contains(string(body), "only in emulator mode (socius serve --emulator)") {
			t.Errorf("/%s without --emulator: HTTP %d %s", path, resp.StatusCode, body)
		}
	}
	code, _, errOut := runCLI(t, noEnv, "emulator", "status", "--url", ts.HTTPURL)
	if code != 1 || !strings.Contains(errOut, "did not answer as the emulator does") {
		t.Errorf("emulator status against a normal server: %d %s", code, errOut)
	}
	// The HTTPS listener given as http://: said so (it was "not in emulator mode").
	code, _, errOut = runCLI(t, noEnv, "emulator", "status", "--url", "http://"+strings.TrimPrefix(ts.HTTPSURL, "https://"))
	if code != 1 || !strings.Contains(errOut, "is an HTTPS listener") {
		t.Errorf("emulator status against the HTTPS listener over http: %d %s", code, errOut)
	}
}

// TestEmulatorURLOfTheConsole: a --url that names the console (http://host:port/_emulator,
// as serve prints it) is said to want the address alone; the console's 404 page was
// printed whole, some fifty lines of HTML (found following docs/emulator.md in the
// thirty-fourth session).
func TestEmulatorURLOfTheConsole(t *testing.T) {
	ts := startEmulator(t)
	for _, u := range []string{ts.HTTPURL + "/_emulator", ts.HTTPURL + "/_emulator/"} {
		code, _, errOut := runCLI(t, noEnv, "emulator", "status", "--url", u)
		if code != 1 || !strings.Contains(errOut, "with a page, not the admin API: give --url as the emulator's address alone, http://host:port, without /_emulator") ||
			strings.Contains(errOut, "<html") {
			t.Errorf("emulator status --url %s: %d %s", u, code, errOut)
		}
	}
}

func TestEmulatorSeedResetAndExportOnClose(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out.jsonl")
	ts := startEmulator(t, "--export-on-exit", out)

	// The seeded users exist, signed calls work with the seeded secrets, the seeded
	// key keeps its permissions.
	a := ts.call(t, "socialize.getUserInfo", url.Values{"UID": {"alice"}})
	if a.code() != 0 || a.str("nickname") != "ally" || a.str("email") != "alice@example.com" || a["age"] != 30.0 {
		t.Fatalf("seeded alice: %v", a)
	}
	p := ts.signed(t, ts.HTTPURL, "socialize.setUserInfo", url.Values{"UID": {"bob"}, "userInfo": {`{"nickname":"x"}`}}, seedKey, seedKeySecret)
	if a := ts.post(t, ts.HTTPURL, "socialize.setUserInfo", p); a.code() != 403007 {
		t.Errorf("the seeded read-only key may set: %v", a)
	}
	if a := ts.call(t, "socialize.setUserInfo", url.Values{"UID": {"bob"}, "userInfo": {`{"lastName":"Builder"}`}}); a.code() != 0 {
		t.Fatal(a)
	}
	ts.login(t, "carol")
	if out := ts.emu(t, "status"); !strings.Contains(out, "users:  3") || !strings.Contains(out, "keys:   1") {
		t.Errorf("status:\n%s", out)
	}

	// Export at any time, through the CLI.
	exported := filepath.Join(t.TempDir(), "now.jsonl")
	if err := os.WriteFile(exported, []byte("old"), 0o644); err != nil { // there before, readable by all
		t.Fatal(err)
	}
	ts.emu(t, "export", "--out", exported)
	if b, _ := os.ReadFile(exported); !strings.Contains(string(b), `"UID":"carol"`) || !strings.Contains(string(b), `"lastName":"Builder"`) {
		t.Errorf("export:\n%s", b)
	}
	if fi, err := os.Stat(exported); err != nil || fi.Mode().Perm() != 0o600 { // secrets in clear
		t.Errorf("the export's mode: %v %v", fi.Mode(), err)
	}

	// Reset: users go, sites and keys stay.
	if out := ts.emu(t, "reset"); !strings.Contains(out, "deleted 3 users") {
		t.Errorf("reset: %s", out)
	}
	if a := ts.call(t, "socialize.getUserInfo", url.Values{"UID": {"alice"}}); a.code() != 403005 {
		t.Errorf("alice after reset: %v", a)
	}
	p = ts.signed(t, ts.HTTPURL, "socialize.getUserInfo", url.Values{"UID": {"alice"}}, seedKey, seedKeySecret)
	if a := ts.post(t, ts.HTTPURL, "socialize.getUserInfo", p); a.code() != 403005 {
		t.Errorf("the key after reset: %v", a) // authenticated (the key is still there), user gone
	}

	// Seed again at run time, then stop: the export holds the state at shutdown.
	ts.emu(t, "seed", writeSeed(t))
	ts.login(t, "dave")
	if err := ts.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	for _, want := range []string{`{"kind":"site","apiKey":"` + testAPIKey + `","secret":"` + testSecret + `"`, `"userKey":"` + seedKey + `"`,
		`"UID":"alice"`, `"UID":"bob"`, `"UID":"dave"`} {
		if !strings.Contains(text, want) {
			t.Errorf("export on exit lacks %s:\n%s", want, text)
		}
	}
	if strings.Contains(text, `"UID":"carol"`) {
		t.Errorf("export on exit has carol, deleted by the reset:\n%s", text)
	}
	// The export is a valid seed.
	os.Remove(out)
	if err := ts.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("a second Close exported again: %v", err)
	}
	ts2 := startServer(t, "--emulator", "--seed", writeExport(t, text))
	if a := ts2.call(t, "socialize.getUserInfo", url.Values{"UID": {"dave"}}); a.code() != 0 {
		t.Errorf("dave from the export: %v", a)
	}
}

// TestServedStoreHasViews: the store serve serves, through every wrapper it puts
// around the store (the metrics' timed store, then the sealed one), is a
// socius.Snapshotter whose views work, of their moment, their secrets opened: what the
// emulator's export (its admin API and --export-on-exit) reads as of one moment. The
// timed store hid the view (the sealed store said errors.ErrUnsupported), and the
// emulator's export read the store page by page.
func TestServedStoreHasViews(t *testing.T) {
	ts := startEmulator(t)
	ctx := t.Context()
	sn, ok := ts.Store.(socius.Snapshotter)
	if !ok {
		t.Fatalf("the served store %T is no socius.Snapshotter", ts.Store)
	}
	v, err := sn.Snapshot(ctx)
	if err != nil {
		t.Fatalf("Snapshot of the served store: %v", err)
	}
	defer v.Close()
	ts.login(t, "zed") // after the view's moment
	if site, err := v.Site(ctx, testAPIKey); err != nil || site.Secret != testSecret {
		t.Errorf("the view's site: %+v, %v; want its secret opened", site, err)
	}
	if keys, err := v.Keys(ctx, testAPIKey); err != nil || len(keys) != 1 || keys[0].UserKey != seedKey || keys[0].Secret != seedKeySecret {
		t.Errorf("the view's keys: %+v, %v; want the seeded key, its secret opened", keys, err)
	}
	users, err := v.Users(ctx, testAPIKey, "", 100)
	var uids []string
	for _, u := range users {
		uids = append(uids, u.UID)
	}
	if err != nil || strings.Join(uids, " ") != "alice bob" {
		t.Errorf("the view's users: %v, %v; want the seeded alice and bob (zed logged in after the view opened)", uids, err)
	}
	if err := v.Close(); err != nil {
		t.Errorf("the view's Close: %v", err)
	}
}

func writeExport(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "export.jsonl")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestEmulatorBadSeedRefusesToStart(t *testing.T) {
	const seed = `{"kind":"user","apiKey":"3_NoSuchSite","UID":"x"}`
	path := writeExport(t, seed)
	m := NewMain()
	// The seed is also the export file, as a CI job that carries its state from run to
	// run has it: a failed start must not overwrite it with what little it loaded.
	if err := m.ParseFlags([]string{"--emulator", "--seed", path, "--export-on-exit", path, "--http", "127.0.0.1:0", "--https", "", "--log-level", "error"}, noEnv, io.Discard); err != nil {
		t.Fatal(err)
	}
	m.Stdout = io.Discard
	err := m.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "line 1: user: no site has apiKey 3_NoSuchSite") {
		t.Errorf("Run with a bad seed: %v", err)
	}
	m.Close()
	if b, err := os.ReadFile(path); err != nil || string(b) != seed {
		t.Errorf("the seed after a failed start: %q %v; want it unchanged", b, err)
	}
}

// TestEmulatorExportOnExitFails: an export on exit that cannot be put in place (the
// path is a folder) makes Close fail, and leaves neither its temporary file nor
// anything at the path.
func TestEmulatorExportOnExitFails(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out.jsonl")
	ts := startEmulator(t, "--export-on-exit", out)
	if err := os.Mkdir(out, 0o700); err != nil { // after the start, which checks the path
		t.Fatal(err)
	}
	if err := ts.Close(); err == nil || !strings.Contains(err.Error(), "--export-on-exit") {
		t.Errorf("Close with an export that cannot be written: %v", err)
	}
	if entries, err := os.ReadDir(dir); err != nil || len(entries) != 1 {
		t.Errorf("the export's folder after the failed export: %v %v; want only the folder in the way", entries, err)
	}
}

// TestEmulatorExportOnExitNotAStoreFile: an --export-on-exit in the data folder the
// emulator serves from (--data given), or onto the master key file, is refused at the
// start, as a usage error: at shutdown the export would have been renamed onto
// socius.db or master.key, replacing the store it was read from.
func TestEmulatorExportOnExitNotAStoreFile(t *testing.T) {
	data := t.TempDir()
	keyFile := filepath.Join(t.TempDir(), "master.key")
	if err := os.WriteFile(keyFile, []byte("not read: the flags are refused first\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(t.TempDir(), "export.jsonl")
	if err := os.Symlink(filepath.Join(data, "socius.db"), link); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--data", data, "--export-on-exit", filepath.Join(data, "socius.db")}, "--export-on-exit " + filepath.Join(data, "socius.db") + ": in the data folder " + data},
		{[]string{"--data", data, "--export-on-exit", filepath.Join(data, "master.key")}, "in the data folder " + data},
		{[]string{"--data", data, "--export-on-exit", link}, "--export-on-exit " + link + ": in the data folder " + data},
		{[]string{"--master-key-file", keyFile, "--export-on-exit", keyFile}, "--export-on-exit " + keyFile + ": is the master key file (--master-key-file " + keyFile + ")"},
	} {
		// ParseFlags, not the command: without the check the command would serve.
		args := append([]string{"--emulator", "--http", "127.0.0.1:0", "--https", ""}, c.args...)
		err := NewMain().ParseFlags(args, noEnv, io.Discard)
		if fe := (flagError{}); !errors.As(err, &fe) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v; want a usage error (exit 2) saying %q", args, err, c.want)
		}
	}
	if entries, err := os.ReadDir(data); err != nil || len(entries) != 0 {
		t.Errorf("the data folder after the refused starts: %v %v; want it untouched", entries, err)
	}
	// Without --data the store is in a temporary folder: an export into ./socius-data
	// (the default folder, not used) is no store's file.
	if err := NewMain().ParseFlags([]string{"--emulator", "--export-on-exit", filepath.Join("socius-data", "socius.db")}, noEnv, io.Discard); err != nil &&
		strings.Contains(err.Error(), "data folder") {
		t.Errorf("without --data: %v", err)
	}
}

// TestEmulatorSeedFromPipe: a --seed that reads once (a named pipe, a shell's <(...))
// is checked before the store is opened and then loaded, from the copy the check
// made in a temporary file, which is gone once the seed is loaded.
func TestEmulatorSeedFromPipe(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp) // where the copy goes
	pipe := filepath.Join(t.TempDir(), "seed")
	makeFifo(t, pipe, 0o600)
	go func() {
		f, err := os.OpenFile(pipe, os.O_WRONLY, 0) // as the start opens the other end
		if err != nil {
			return
		}
		io.WriteString(f, seedText)
		f.Close()
	}()
	ts := startServer(t, "--emulator", "--seed", pipe)
	if out := ts.emu(t, "export"); !strings.Contains(out, `"UID":"alice"`) || !strings.Contains(out, `"userKey":"`+seedKey+`"`) {
		t.Errorf("the store after a seed from a pipe:\n%s", out)
	}
	if left, _ := os.ReadDir(tmp); len(left) > 0 {
		t.Errorf("the seed's copy left behind: %v", left[0].Name())
	}
}

// TestSeedSites: a seed's keys and users may name --site-api-key's site, which is put
// before the seed loads, on a new data folder too; on an existing store, SQLite's or
// PostgreSQL's, a seed line naming a site the store does not have fails the start with
// nothing loaded, not even the lines before it; one naming a site the store has loads.
func TestSeedSites(t *testing.T) {
	dir := t.TempDir()
	flagSite := filepath.Join(dir, "flag-site.jsonl")
	if err := os.WriteFile(flagSite, []byte(`{"kind":"key","userKey":"AFlagKey","apiKey":"`+testAPIKey+`","secret":"`+seedKeySecret+`"}`+"\n"+
		`{"kind":"user","apiKey":"`+testAPIKey+`","UID":"dora"}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, "--emulator", "--seed", flagSite) // --site-api-key testAPIKey, a new --data
	if out := ts.emu(t, "export"); !strings.Contains(out, `"UID":"dora"`) || !strings.Contains(out, `"userKey":"AFlagKey"`) || !strings.Contains(out, testSecret) {
		t.Errorf("the store after a seed naming --site-api-key's site:\n%s", out)
	}

	t.Run("sqlite", func(t *testing.T) { seedSitesOfAStore(t, "--data", filepath.Join(t.TempDir(), "data")) })
	t.Run("postgres", func(t *testing.T) {
		seedSitesOfAStore(t, "--store", pgtest.URL(t), "--data", t.TempDir(), "--master-key-file", testMasterKeyFile(t))
	})
}

// seedSitesOfAStore is TestSeedSites on an existing store, which store (flags) chooses.
func seedSitesOfAStore(t *testing.T, store ...string) {
	dir := t.TempDir()
	write := func(name, text string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	// with returns the arguments followed by the flags that choose the store.
	with := func(args ...string) []string { return append(args, store...) }
	if code, _, errOut := runCLI(t, noEnv, with("site", "create", "--api-key", "3_Kept", "--secret", testSecret)...); code != 0 {
		t.Fatalf("site create: exit %d %s", code, errOut)
	}
	serve := func(seed string) []string {
		return with("serve", "--emulator", "--seed", seed, "--http", "127.0.0.1:0", "--https", "", "--admin", "", "--log-level", "error")
	}
	missing := write("missing.jsonl", `{"kind":"site","apiKey":"3_New","secret":"`+testSecret+`"}`+"\n"+
		`{"kind":"user","apiKey":"3_Kept","UID":"erin"}`+"\n"+`{"kind":"user","apiKey":"3_Gone","UID":"fred"}`+"\n")
	code, _, errOut := runCLI(t, noEnv, serve(missing)...)
	if want := "socius: --seed " + missing + ": line 3: user: no site has apiKey 3_Gone (a site line must come before its keys and users); nothing was loaded\n"; code != 1 || errOut != want {
		t.Errorf("a seed naming a site the store lacks: exit %d %q; want 1 and %q", code, errOut, want)
	}
	if code, out, errOut := runCLI(t, noEnv, with("site", "list")...); code != 0 || strings.Contains(out, "3_New") || !strings.Contains(out, "3_Kept") {
		t.Errorf("the sites after the seed refused: exit %d %s%s; want 3_Kept alone", code, out, errOut)
	}
	if code, out, errOut := runCLI(t, noEnv, with("user", "export", "--site", "3_Kept")...); code != 0 || strings.Contains(out, "erin") {
		t.Errorf("the users after the seed refused: exit %d %s%s; want none", code, out, errOut)
	}

	// The store's own site is named without a site line.
	kept := write("kept.jsonl", `{"kind":"user","apiKey":"3_Kept","UID":"gina"}`+"\n")
	m := NewMain()
	if err := m.ParseFlags(serve(kept)[1:], noEnv, io.Discard); err != nil {
		t.Fatal(err)
	}
	m.Stdout = io.Discard
	if err := m.Run(context.Background()); err != nil {
		t.Fatalf("a seed naming the store's site: %v", err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := runCLI(t, noEnv, with("user", "export", "--site", "3_Kept")...); code != 0 || !strings.Contains(out, "gina") {
		t.Errorf("the users after a seed naming the store's site: exit %d %s%s", code, out, errOut)
	}
}

// TestEmulatorExportOnExitThroughLinkAndPipe: an export on exit to a symbolic link
// writes the file it names and leaves the link a link; one to a named pipe writes into
// the pipe and leaves it a pipe (renaming a file onto it would have replaced it).
func TestEmulatorExportOnExitThroughLinkAndPipe(t *testing.T) {
	dir := t.TempDir()
	target, link, pipe := filepath.Join(dir, "target.jsonl"), filepath.Join(dir, "link.jsonl"), filepath.Join(dir, "pipe")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	makeFifo(t, pipe, 0o600)
	ts := startEmulator(t, "--export-on-exit", link)
	if err := ts.Close(); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the link after the export: %v %v; want still a link", fi.Mode(), err)
	}
	if b, err := os.ReadFile(target); err != nil || !strings.Contains(string(b), `"UID":"alice"`) {
		t.Errorf("the file the link names: %v\n%s", err, b)
	}

	read := make(chan []byte, 1)
	go func() {
		b, _ := os.ReadFile(pipe) // opens as the export opens the other end
		read <- b
	}()
	ts = startEmulator(t, "--export-on-exit", pipe)
	if err := ts.Close(); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(pipe); err != nil || fi.Mode()&os.ModeNamedPipe == 0 {
		t.Fatalf("the pipe after the export: %v %v; want still a pipe", fi.Mode(), err)
	}
	select {
	case b := <-read:
		if !strings.Contains(string(b), `"UID":"alice"`) {
			t.Errorf("read from the pipe:\n%s", b)
		}
	case <-time.After(10 * time.Second):
		t.Error("nothing was written into the pipe")
	}
}

// TestEmulatorCLIFlow runs `socius serve --emulator` through the command line, in a
// temporary data folder (no --data), and stops it as a signal does (by cancelling the
// context main's signal handler cancels): the state is exported and the folder goes.
func TestEmulatorCLIFlow(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out.jsonl")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stdout := &syncbuf.Buffer{}
	var errOut bytes.Buffer
	done := make(chan int)
	go func() {
		done <- run(ctx, []string{"serve", "--emulator", "--seed", writeSeed(t), "--export-on-exit", out,
			"--http", "127.0.0.1:0", "--https", "127.0.0.1:0", "--log-level", "error"}, noEnv, stdout, &errOut)
	}()
	base := ""
	for deadline := time.Now().Add(20 * time.Second); base == "" && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if m := regexp.MustCompile(`console (http://\S+)/_emulator/`).FindStringSubmatch(stdout.String()); m != nil {
			base = m[1]
		}
	}
	if base == "" {
		cancel()
		t.Fatalf("serve did not start:\n%s%s", stdout.String(), errOut.String())
	}
	dataDir := regexp.MustCompile(`emulator: data in (\S+) `).FindStringSubmatch(stdout.String())
	if dataDir == nil {
		t.Fatalf("no temporary data folder announced:\n%s", stdout.String())
	}
	if _, err := os.Stat(dataDir[1]); err != nil {
		t.Fatal(err)
	}
	ts := &testServer{Main: &Main{HTTPURL: base}, client: httpClient()}
	p := signedFor(t, base, "socialize.notifyLogin", url.Values{"siteUID": {"erin"}}, "", "")
	if a := ts.post(t, base, "socialize.notifyLogin", p); a.code() != 0 {
		t.Fatalf("notifyLogin: %v", a)
	}
	if o := ts.emu(t, "status"); !strings.Contains(o, "users:  3") {
		t.Errorf("status: %s", o)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("serve exited %d: %s", code, errOut.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not stop")
	}
	b, err := os.ReadFile(out)
	if err != nil || !strings.Contains(string(b), `"UID":"erin"`) || !strings.Contains(string(b), `"UID":"alice"`) {
		t.Errorf("export: %v\n%s", err, b)
	}
	if !strings.Contains(stdout.String(), "exported 1 site, 1 key, 3 users to "+out) {
		t.Errorf("stdout:\n%s", stdout.String())
	}
	if _, err := os.Stat(dataDir[1]); !os.IsNotExist(err) {
		t.Errorf("the temporary data folder is still there: %v", err)
	}
}

// TestEmulatorBinarySIGTERM builds the binary and stops it with SIGTERM, as a CI job
// does: the state is exported.
func TestEmulatorBinarySIGTERM(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no SIGTERM")
	}
	bin := buildBinary(t)
	out := filepath.Join(t.TempDir(), "out.jsonl")
	cmd := exec.Command(bin, "serve", "--emulator", "--seed", writeSeed(t), "--export-on-exit", out, "--http", "127.0.0.1:0", "--https", "", "--log-level", "error")
	stdout := &syncbuf.Buffer{}
	cmd.Stdout, cmd.Stderr = stdout, stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	base := ""
	for deadline := time.Now().Add(20 * time.Second); base == "" && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if m := regexp.MustCompile(`console (http://\S+)/_emulator/`).FindStringSubmatch(stdout.String()); m != nil {
			base = m[1]
		}
	}
	if base == "" {
		t.Fatalf("the binary did not start:\n%s", stdout.String())
	}
	ts := &testServer{Main: &Main{HTTPURL: base}, client: httpClient()}
	if a := ts.post(t, base, "socialize.notifyLogin", signedFor(t, base, "socialize.notifyLogin", url.Values{"siteUID": {"frank"}}, "", "")); a.code() != 0 {
		t.Fatal(a)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	errc := make(chan error, 1)
	go func() { errc <- cmd.Wait() }()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("exit: %v\n%s", err, stdout.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no exit after SIGTERM")
	}
	if b, err := os.ReadFile(out); err != nil || !strings.Contains(string(b), `"UID":"frank"`) {
		t.Errorf("export after SIGTERM: %v\n%s\n%s", err, b, stdout.String())
	}
}

// TestEmulatorClock moves the server's clock through the CLI and checks every time
// rule follows: the timestamp window, the Date header, the time field and
// signatureTimestamp.
func TestEmulatorClock(t *testing.T) {
	ts := startEmulator(t)
	out := ts.emu(t, "clock", "advance", "2h")
	if !strings.Contains(out, "offset: 2h0m0s") {
		t.Errorf("advance: %s", out)
	}
	get := url.Values{"UID": {"alice"}}
	// A client on the real time is now 2 h behind: 403002, and the details name the
	// server's (moved) time.
	p := signedFor(t, ts.HTTPURL, "socialize.getUserInfo", get, "", "")
	early := time.Now().Add(2 * time.Hour)
	a := ts.post(t, ts.HTTPURL, "socialize.getUserInfo", p)
	moved := time.Now().Add(2 * time.Hour)
	// The server's time is one of the call's: the hour it names is early's or moved's.
	details := a.str("errorDetails")
	if a.code() != 403002 || !strings.Contains(details, "behind the server time "+early.UTC().Format("2006-01-02T15")) &&
		!strings.Contains(details, "behind the server time "+moved.UTC().Format("2006-01-02T15")) {
		t.Errorf("real-time timestamp on a moved clock: %v", a)
	}
	// A client on the server's time passes; the answer's times are the moved ones.
	p = signedFor(t, ts.HTTPURL, "socialize.getUserInfo", url.Values{"UID": {"alice"}, "timestamp": {strconv.FormatInt(moved.Unix(), 10)}}, "", "")
	body, resp := ts.postRaw(t, ts.HTTPURL, "socialize.getUserInfo", p.Encode())
	json.Unmarshal(body, &a)
	if a.code() != 0 {
		t.Fatalf("moved timestamp: %s", body)
	}
	date, _ := http.ParseTime(resp.Header.Get("Date"))
	sigTS, _ := strconv.ParseInt(a.str("signatureTimestamp"), 10, 64)
	apiTime, _ := time.Parse(time.RFC3339, a.str("time"))
	for name, got := range map[string]time.Time{"Date": date, "signatureTimestamp": time.Unix(sigTS, 0), "time": apiTime} {
		if d := got.Sub(moved); d < -5*time.Second || d > 5*time.Second {
			t.Errorf("%s = %v, want about %v", name, got, moved)
		}
	}
	raw, _ := socius.DecodeSecret(testSecret)
	if !gigya.ValidateUIDSignature(raw, "alice", a.str("signatureTimestamp"), a.str("UIDSignature"), 180*time.Second, moved) {
		t.Error("UIDSignature does not verify at the moved time")
	}

	// Set and reset.
	if out := ts.emu(t, "clock", "set", "2030-01-01T00:00:00Z"); !strings.Contains(out, "now:    2030-01-01T00:00:0") {
		t.Errorf("set: %s", out)
	}
	if out := ts.emu(t, "clock", "advance", "-24h"); !strings.Contains(out, "now:    2029-12-31T00:00:0") {
		t.Errorf("advance -24h: %s", out)
	}
	// The usual "--" before a negative argument works too.
	if out := ts.emu(t, "clock", "advance", "--", "-24h"); !strings.Contains(out, "now:    2029-12-30T00:00:0") {
		t.Errorf("advance -- -24h: %s", out)
	}
	if out := ts.emu(t, "clock", "reset"); !strings.Contains(out, "offset: 0s") {
		t.Errorf("reset: %s", out)
	}
	if out := ts.emu(t, "clock"); !strings.Contains(out, "offset: 0s") {
		t.Errorf("show: %s", out)
	}
	if a := ts.call(t, "socialize.getUserInfo", get); a.code() != 0 {
		t.Errorf("after reset: %v", a)
	}
	for _, bad := range [][]string{{"clock", "advance", "soon"}, {"clock", "set", "tomorrow"}} {
		if code, _, errOut := runCLI(t, noEnv, append(append([]string{"emulator"}, bad...), "--url", ts.HTTPURL)...); code != 2 || !strings.Contains(errOut, "not a") {
			t.Errorf("%v: %d %s", bad, code, errOut)
		}
	}
	if code, _, _ := runCLI(t, noEnv, "emulator", "clock", "jump", "--url", ts.HTTPURL); code != 2 {
		t.Errorf("clock jump: exit %d", code)
	}
}

func TestEmulatorFaults(t *testing.T) {
	ts := startEmulator(t)
	get := url.Values{"UID": {"alice"}}
	out := ts.emu(t, "faults", "add", "--method", "getUserInfo", "--site", testAPIKey, "--code", "403048", "--count", "2")
	if !strings.Contains(out, "added fault rule 1") || !strings.Contains(out, "403048 API Rate Limit Exceeded") || !strings.Contains(out, "next 2 of 2") {
		t.Errorf("faults add: %s", out)
	}
	// Authentication still comes first.
	p := ts.signed(t, ts.HTTPURL, "socialize.getUserInfo", get, "", "")
	p.Set("sig", "AAAAAAAAAAAAAAAAAAAAAAAAAAA=")
	if a := ts.post(t, ts.HTTPURL, "socialize.getUserInfo", p); a.code() != 403003 {
		t.Errorf("bad signature under a rule: %v", a)
	}
	// Other methods are untouched.
	if a := ts.call(t, "socialize.setUserInfo", url.Values{"UID": {"alice"}, "userInfo": {`{"nickname":"al"}`}}); a.code() != 0 {
		t.Errorf("setUserInfo: %v", a)
	}
	for i := 0; i < 2; i++ {
		a := ts.call(t, "socialize.getUserInfo", get)
		if a.code() != 403048 || a.str("errorMessage") != "API Rate Limit Exceeded" || a["statusCode"] != 403.0 {
			t.Errorf("call %d: %v", i+1, a)
		}
	}
	if a := ts.call(t, "socialize.getUserInfo", get); a.code() != 0 {
		t.Errorf("the third call: %v", a)
	}
	if out := ts.emu(t, "faults"); !strings.Contains(out, "no fault rules") {
		t.Errorf("a spent rule is listed: %s", out)
	}

	// Latency, for every method, until deleted; the first matching rule applies.
	ts.emu(t, "faults", "add", "--delay", "200ms")
	ts.emu(t, "faults", "add", "--code", "504002", "--method", "socialize.setUserInfo")
	start := time.Now()
	if a := ts.call(t, "socialize.getUserInfo", get); a.code() != 0 || time.Since(start) < 200*time.Millisecond {
		t.Errorf("delayed call: %v after %v", a, time.Since(start))
	}
	if a := ts.call(t, "socialize.setUserInfo", url.Values{"UID": {"alice"}, "userInfo": {`{}`}}); a.code() != 0 { // the delay rule comes first
		t.Errorf("setUserInfo behind the delay rule: %v", a)
	}
	out = ts.emu(t, "faults", "list")
	if !strings.Contains(out, "200ms") || !strings.Contains(out, "504002 Request Timeout") {
		t.Errorf("faults list: %s", out)
	}
	if out := ts.emu(t, "faults", "delete", "2"); !strings.Contains(out, "deleted fault rule 2") {
		t.Errorf("delete: %s", out)
	}
	if a := ts.call(t, "socialize.setUserInfo", url.Values{"UID": {"alice"}, "userInfo": {`{}`}}); a.code() != 504002 || a.str("errorMessage") != "Request Timeout" {
		t.Errorf("setUserInfo: %v", a)
	}
	if code, _, errOut := runCLI(t, noEnv, "emulator", "faults", "delete", "99", "--url", ts.HTTPURL); code != 1 || !strings.Contains(errOut, "no fault rule") {
		t.Errorf("delete 99: %d %s", code, errOut)
	}
	// A value the emulator refuses is a usage error (exit 2), as the README says of
	// every command; a rule that is not there is a failure (exit 1).
	if code, _, errOut := runCLI(t, noEnv, "emulator", "faults", "add", "--url", ts.HTTPURL); code != 2 || !strings.Contains(errOut, "needs an errorCode, a delay, or both") {
		t.Errorf("faults add without a code or a delay: %d %s", code, errOut)
	}
	if code, _, errOut := runCLI(t, noEnv, "emulator", "faults", "add", "--code", "123", "--url", ts.HTTPURL); code != 2 || !strings.Contains(errOut, "not in Gigya's error table") {
		t.Errorf("add a bad code: %d %s", code, errOut)
	}
	if out := ts.emu(t, "faults", "clear"); !strings.Contains(out, "deleted 1 fault rule\n") {
		t.Errorf("clear: %s", out)
	}

	// --fraction 0 is refused (it would read as every call).
	if code, _, errOut := runCLI(t, noEnv, "emulator", "faults", "add", "--code", "500001", "--fraction", "0", "--url", ts.HTTPURL); code != 2 || !strings.Contains(errOut, "--fraction 0") {
		t.Errorf("faults add --fraction 0: exit %d %s", code, errOut)
	}
	// So is a fraction that is no share (NaN, which JSON cannot carry, or above 1).
	for _, f := range []string{"NaN", "1.5", "-0.5"} {
		if code, _, errOut := runCLI(t, noEnv, "emulator", "faults", "add", "--code", "500001", "--fraction", f, "--url", ts.HTTPURL); code != 2 || !strings.Contains(errOut, "--fraction "+f) {
			t.Errorf("faults add --fraction %s: exit %d %s", f, code, errOut)
		}
	}
	// A fraction: with 1 every call, and the request log marks injected calls.
	ts.emu(t, "faults", "add", "--code", "500001", "--fraction", "1")
	if a := ts.call(t, "socialize.getUserInfo", get); a.code() != 500001 {
		t.Errorf("fraction 1: %v", a)
	}
	ts.emu(t, "faults", "clear")
	entries := ts.logEntries(t)
	last := entries[len(entries)-1]
	if !last.Injected || last.ErrorCode != 500001 || !strings.Contains(ts.emu(t, "log", "--limit", "1"), "[injected]") {
		t.Errorf("the log of an injected call: %+v", last)
	}
}

// TestEmulatorLogClear: `socius emulator log clear` empties the request log, as
// DELETE /_emulator/api/log does; docs/emulator.md gave every endpoint but sites,
// users and user a command, and this one had none (found following it in the
// thirty-fourth session).
func TestEmulatorLogClear(t *testing.T) {
	ts := startEmulator(t)
	ts.call(t, "socialize.getUserInfo", url.Values{"UID": {"alice"}})
	if n := len(ts.logEntries(t)); n == 0 {
		t.Fatal("the call was not logged")
	}
	if out := ts.emu(t, "log", "clear"); out != "cleared the request log\n" {
		t.Errorf("log clear: %q", out)
	}
	if code, out, errOut := runCLI(t, noEnv, "emulator", "log", "--url", ts.HTTPURL); code != 0 || out != "" || !strings.Contains(errOut, "no calls logged (the log is empty)") {
		t.Errorf("log after clear: exit %d %q %q", code, out, errOut)
	}
	if code, _, errOut := runCLI(t, noEnv, "emulator", "log", "empty", "--url", ts.HTTPURL); code != 2 || !strings.Contains(errOut, "log clear") {
		t.Errorf("log empty: exit %d %s", code, errOut)
	}
}

// TestEmulatorLogClearTakesNoFilter: `socius emulator log clear --failed` (or
// --method M, --limit N) is a usage error that clears nothing: the endpoint empties the
// whole log, and the flags, which choose the calls log prints, were ignored, so that
// a developer who asked to clear the failed calls lost every call, exit 0.
func TestEmulatorLogClearTakesNoFilter(t *testing.T) {
	ts := startEmulator(t)
	ts.call(t, "socialize.getUserInfo", url.Values{"UID": {"alice"}})
	held := len(ts.logEntries(t))
	if held == 0 {
		t.Fatal("the call was not logged")
	}
	for _, flags := range [][]string{{"--failed"}, {"--method", "getUserInfo"}, {"--limit", "1"}} {
		args := append([]string{"emulator", "log", "clear", "--url", ts.HTTPURL}, flags...)
		code, out, errOut := runCLI(t, noEnv, args...)
		if code != 2 || out != "" || !strings.Contains(errOut, "log clear empties the whole log") {
			t.Errorf("log clear %v: exit %d %q %q; want a usage error", flags, code, out, errOut)
		}
		if n := len(ts.logEntries(t)); n != held {
			t.Errorf("log clear %v: the log holds %d calls, want the %d it held", flags, n, held)
		}
	}
	// The flags that say how to print change nothing it does.
	if code, out, errOut := runCLI(t, noEnv, "emulator", "log", "clear", "--json", "--url", ts.HTTPURL); code != 0 || out != "cleared the request log\n" {
		t.Errorf("log clear --json: exit %d %q %q", code, out, errOut)
	}
}

// TestEmulatorLogEscapes: what a client of the emulator sent, quoted by the log (the
// method of its path, an apiKey, the answer's details), reaches the terminal of the
// developer running socius emulator log escaped: no control sequence of a client's
// colours its lines, and no line of its own is added.
func TestEmulatorLogEscapes(t *testing.T) {
	ts := startEmulator(t)
	ts.post(t, ts.HTTPURL, "socialize.getUserInfo", url.Values{"apiKey": {"3_\x1b[31mRED\nforged"}, "UID": {"a"}})
	ts.post(t, ts.HTTPURL, "socialize.get%1b%5b31mX%0aforged", url.Values{"apiKey": {testAPIKey}, "UID": {"a"}})
	code, out, errOut := runCLI(t, noEnv, "emulator", "log", "--url", ts.HTTPURL)
	if code != 0 {
		t.Fatalf("emulator log: exit %d %s", code, errOut)
	}
	if strings.ContainsAny(out, "\x1b\u009b") {
		t.Errorf("a client's control sequence reached the terminal:\n%q", out)
	}
	for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if strings.HasPrefix(l, "forged") {
			t.Errorf("a client's line reached the terminal:\n%q", out)
		}
	}
	if !strings.Contains(out, `socialize.get\x1b[31mX\nforged is not a method`) {
		t.Errorf("the unknown method is not shown escaped:\n%s", out)
	}
	// --json is JSON, which escapes them itself.
	_, js, _ := runCLI(t, noEnv, "emulator", "log", "--json", "--url", ts.HTTPURL)
	if strings.ContainsAny(js, "\x1b") || !strings.Contains(js, `\u001b[31mX`) {
		t.Errorf("--json: %q", js)
	}
}

// TestEmulatorLogJSONEscapes: socius emulator log --json, which a developer reads on
// a terminal too, writes what is not printable in a client's text (U+009B, a
// terminal's CSI in one character; U+202E, which turns the text after it around; DEL)
// as JSON escapes, the same JSON to jq or a program. encoding/json escapes only the
// control characters below U+0020: the others reached the terminal as they came.
func TestEmulatorLogJSONEscapes(t *testing.T) {
	ts := startEmulator(t)
	const sent = `socialize.get\u009b31mX\u202egnp.exe\x7f`
	ts.post(t, ts.HTTPURL, "socialize.get%C2%9B31mX%E2%80%AEgnp.exe%7F", url.Values{"apiKey": {testAPIKey}, "UID": {"a"}})
	code, out, errOut := runCLI(t, noEnv, "emulator", "log", "--json", "--url", ts.HTTPURL)
	if code != 0 {
		t.Fatalf("emulator log --json: exit %d %s", code, errOut)
	}
	for _, r := range out {
		if r != '\n' && (r == utf8.RuneError || !strconv.IsPrint(r)) {
			t.Errorf("--json wrote %q as it came: %q", r, out)
			break
		}
	}
	var e emulator.Entry
	if err := json.Unmarshal([]byte(out), &e); err != nil {
		t.Fatalf("--json: %v: %q", err, out)
	}
	if want := "socialize.get\u009b31mX\u202egnp.exe\x7f"; e.Method != want {
		t.Errorf("--json says the method %q, want %q as sent", e.Method, want)
	}
	// The line printed without --json quotes it as Go does, the same way.
	if _, plain, _ := runCLI(t, noEnv, "emulator", "log", "--url", ts.HTTPURL); !strings.Contains(plain, sent) {
		t.Errorf("emulator log: %q, want %s", plain, sent)
	}
}

// TestEmulatorSignatureDebugging signs a deliberately wrong base string (the client
// signed another path and forgot a parameter) and reads what the server signed, in
// errorDetails, in the request log and in `socius emulator log`.
func TestEmulatorSignatureDebugging(t *testing.T) {
	ts := startEmulator(t)
	p := url.Values{"apiKey": {testAPIKey}, "UID": {"alice"}, "timestamp": {strconv.FormatInt(time.Now().Unix(), 10)}, "nonce": {"n-debug-1"}}
	// The client's wrong base string: another path, and "format" left out of the
	// parameters it signs but sent all the same.
	clientBase := gigya.BaseString("POST", "http://"+strings.TrimPrefix(ts.HTTPURL, "http://")+"/socialize.getuserinfo", paramList(p))
	raw, _ := socius.DecodeSecret(testSecret)
	p.Set("sig", gigya.SignBase(raw, clientBase))
	p.Set("format", "json")
	a := ts.post(t, ts.HTTPURL, "socialize.getUserInfo", p)
	d := a.str("errorDetails")
	if a.code() != 403003 {
		t.Fatalf("%v", a)
	}
	host := strings.TrimPrefix(ts.HTTPURL, "http://")
	serverURL := "http://" + host + "/socialize.getUserInfo"
	sig := p.Get("sig")
	check := url.Values{}
	for k, v := range p {
		if k != "sig" {
			check[k] = v
		}
	}
	serverBase := gigya.BaseString("POST", serverURL, paramList(check))
	if serverBase == clientBase {
		t.Fatal("the test's base strings do not differ")
	}
	want := "the server signed " + serverBase + " for " + serverURL + " (also tried: http://127.0.0.1/socialize.getUserInfo, https://" + host + "/socialize.getUserInfo, https://127.0.0.1/socialize.getUserInfo)"
	if !strings.Contains(d, want) {
		t.Errorf("errorDetails\n%s\nwant it to contain\n%s", d, want)
	}
	if strings.Contains(d, testSecret) || strings.Contains(d, gigya.SignBase(raw, serverBase)) {
		t.Errorf("errorDetails leaks the secret or the expected signature: %s", d)
	}

	// The request log keeps it, with every candidate's base string, and the sig masked.
	entries := ts.logEntries(t)
	e := entries[len(entries)-1]
	if e.CallID != a.str("callId") || e.ErrorCode != 403003 || len(e.BaseStrings) != 4 || e.BaseStrings[0] != serverBase || e.SignedURLs[0] != serverURL {
		t.Errorf("log entry %+v", e)
	}
	if v, _ := e.Param("sig"); v != emulator.Masked {
		t.Errorf("sig in the log: %q", v)
	}
	out := ts.emu(t, "log", "--failed")
	if !strings.Contains(out, a.str("callId")) || !strings.Contains(out, "the server signed, for "+serverURL+":\n      "+serverBase) || strings.Contains(out, sig) {
		t.Errorf("socius emulator log:\n%s", out)
	}
}

func paramList(v url.Values) []gigya.Param {
	var list []gigya.Param
	for k, vs := range v {
		for _, s := range vs {
			list = append(list, gigya.Param{Name: k, Value: s})
		}
	}
	return list
}

func TestEmulatorRequestLog(t *testing.T) {
	ts := startEmulator(t, "--request-log-size", "3")
	for _, uid := range []string{"alice", "bob", "nobody", "alice"} {
		ts.call(t, "socialize.getUserInfo", url.Values{"UID": {uid}})
	}
	// The secret-mode call over HTTPS, to see the secret masked.
	ts.post(t, ts.HTTPSURL, "socialize.getUserInfo", url.Values{"apiKey": {testAPIKey}, "secret": {testSecret}, "UID": {"bob"}})
	entries := ts.logEntries(t)
	if len(entries) != 3 {
		t.Fatalf("the log keeps %d calls, want 3", len(entries))
	}
	if uid, _ := entries[0].Param("UID"); uid != "nobody" || entries[0].ErrorCode != 403005 || entries[0].Credential != "partner-signature" {
		t.Errorf("oldest kept: %+v", entries[0])
	}
	e := entries[2]
	if s, _ := e.Param("secret"); s != emulator.Masked || e.Credential != "partner-secret" || e.Method != "socialize.getUserInfo" || e.LatencyMS <= 0 || e.Time.IsZero() || len(e.CallID) != 32 {
		t.Errorf("newest: %+v", e)
	}
	out := ts.emu(t, "log", "--json", "--limit", "0")
	if strings.Contains(out, testSecret) {
		t.Errorf("the log shows the secret:\n%s", out)
	}
	// Each line's time is UTC to the millisecond, as the text lines show it.
	if lines := regexp.MustCompile(`(?m)^\{"seq":\d+,"time":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z",`).FindAllString(out, -1); len(lines) != 3 {
		t.Errorf("log --json: %d of 3 lines begin with seq and a time to the millisecond:\n%s", len(lines), out)
	}
	if out := ts.emu(t, "log", "--limit", "1"); strings.Count(out, "socialize.getUserInfo") != 1 || !strings.Contains(out, " OK ") {
		t.Errorf("log --limit 1:\n%s", out)
	}
	if out := ts.emu(t, "log", "--failed"); !strings.Contains(out, "403005 Unauthorized user") || strings.Contains(out, " OK ") {
		t.Errorf("log --failed:\n%s", out)
	}

	// --follow prints calls as they arrive, until interrupted.
	ctx, cancel := context.WithCancel(context.Background())
	stdout := &syncbuf.Buffer{}
	done := make(chan int)
	go func() {
		done <- run(ctx, []string{"emulator", "log", "--follow", "--limit", "0", "--url", ts.HTTPURL}, noEnv, stdout, io.Discard)
	}()
	// Until the follower has printed the log and waits for what comes next (a fixed
	// 200 ms was a guess: a call before its first page is printed with the 3 calls
	// kept, not followed, and the output has 3 lines, not 4).
	for deadline := time.Now().Add(10 * time.Second); !goroutineIn("emulator.(*RequestLog).Wait"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("log --follow was not waiting for calls after 10 s; it printed:\n%s", stdout.String())
		}
	}
	ts.call(t, "socialize.notifyLogin", url.Values{"siteUID": {"followed"}})
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(stdout.String(), "socialize.notifyLogin") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("log --follow exited %d", code)
	}
	if got := stdout.String(); !strings.Contains(got, "socialize.notifyLogin") || strings.Count(got, "  socialize.") != 4 {
		t.Errorf("log --follow printed:\n%s", got)
	}
}

// TestEmulatorCountsInTheSingular: the commands say "1 user", not "1 users".
func TestEmulatorCountsInTheSingular(t *testing.T) {
	ts := startEmulator(t)
	if a := ts.call(t, "socialize.getUserInfo", url.Values{"UID": {"alice"}}); a.code() != 0 {
		t.Fatal(a)
	}
	if out := ts.emu(t, "status"); !strings.Contains(out, "logged: 1 call (") {
		t.Errorf("status:\n%s", out)
	}
	if out := ts.emu(t, "reset"); out != "deleted 2 users\n" {
		t.Errorf("reset: %q", out)
	}
	seed := filepath.Join(t.TempDir(), "one.jsonl")
	if err := os.WriteFile(seed, []byte(`{"kind":"user","apiKey":"`+testAPIKey+`","UID":"dora"}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out := ts.emu(t, "seed", seed); out != "seeded 0 sites, 0 keys, 1 user\n" {
		t.Errorf("seed: %q", out)
	}
	if out := ts.emu(t, "reset"); out != "deleted 1 user\n" {
		t.Errorf("reset: %q", out)
	}
}

func TestEmulatorCommandUsage(t *testing.T) {
	if code, _, errOut := runCLI(t, noEnv, "emulator"); code != 2 || !strings.Contains(errOut, "socius emulator <command>") {
		t.Errorf("no command: %d %s", code, errOut)
	}
	if code, _, errOut := runCLI(t, noEnv, "emulator", "frobnicate"); code != 2 || !strings.Contains(errOut, "unknown command") {
		t.Errorf("unknown: %d %s", code, errOut)
	}
	if code, _, errOut := runCLI(t, noEnv, "emulator", "status", "--url", "http://127.0.0.1:1"); code != 1 || !strings.Contains(errOut, "cannot reach the emulator") {
		t.Errorf("no server: %d %s", code, errOut)
	} else if want := `cannot reach the emulator at http://127.0.0.1:1 (is "socius serve --emulator" running?): dial tcp 127.0.0.1:1: `; !strings.Contains(errOut, want) || strings.Contains(errOut, `Get "`) {
		// net/http's `Get "URL": ` repeated the URL (the thirty-third session).
		t.Errorf("no server: %q; want %q, the URL once", errOut, want)
	}
	// Refused before anything is sent.
	if code, _, errOut := runCLI(t, noEnv, "emulator", "faults", "delete", "first", "--url", "http://127.0.0.1:1"); code != 2 || !strings.Contains(errOut, "ID is a rule number") {
		t.Errorf("faults delete first: %d %s", code, errOut)
	}
	env := func(k string) (string, bool) {
		if k == "SOCIUS_URL" {
			return "http://127.0.0.1:1", true
		}
		return "", false
	}
	if code, _, errOut := runCLI(t, env, "emulator", "status"); code != 1 || !strings.Contains(errOut, "http://127.0.0.1:1") {
		t.Errorf("SOCIUS_URL: %d %s", code, errOut)
	}
}

// TestEmulatorClockExpiresTokens: a token's expiry follows the clock moved through
// `socius emulator clock`, and the request log never shows the token.
func TestEmulatorClockExpiresTokens(t *testing.T) {
	ts := startEmulator(t)
	a := ts.getToken(t, url.Values{"grant_type": {"none"}, "x_siteUID": {"alice"}, "x_sessionExpiration": {"3600"}})
	if a.code() != 0 || a["expires_in"] != 3600.0 {
		t.Fatalf("getToken: %v", a)
	}
	token := a.str("access_token")
	want(t, "a fresh token", ts.tlsPost(t, "socialize.getUserInfo", withToken(token, nil)), 0, "")
	ts.emu(t, "clock", "advance", "59m")
	want(t, "the token at 59 min", ts.tlsPost(t, "socialize.getUserInfo", withToken(token, nil)), 0, "")
	ts.emu(t, "clock", "advance", "1m")
	want(t, "the token at 60 min", ts.tlsPost(t, "socialize.getUserInfo", withToken(token, nil)), 403025, "expired at")
	ts.emu(t, "clock", "reset")
	want(t, "the token with the clock back", ts.tlsPost(t, "socialize.getUserInfo", withToken(token, nil)), 0, "")

	out := ts.emu(t, "log", "--json", "--limit", "0")
	if strings.Contains(out, token) || !strings.Contains(out, `"credential":"access-token"`) {
		t.Errorf("the request log:\n%s", out)
	}
	// A reset ends the user's tokens with the user.
	ts.emu(t, "reset")
	want(t, "the token after a reset", ts.tlsPost(t, "socialize.getUserInfo", withToken(token, nil)), 403025, "")
}

// TestShutdownEndsLongPolls: a long poll of the emulator's log (the console's "show new
// calls", `socius emulator log --follow`) is answered at shutdown, which then finishes
// in time instead of waiting out the poll and cutting it off.
func TestShutdownEndsLongPolls(t *testing.T) {
	ts := startServer(t, "--emulator", "--shutdown-timeout", "3s")
	answered := make(chan error, 1)
	go func() {
		resp, err := http.Get(ts.HTTPURL + "/_emulator/api/log?after=1000000&wait=20s")
		if err == nil {
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
			if err == nil && resp.StatusCode != 200 {
				err = errors.New("HTTP " + resp.Status)
			}
		}
		answered <- err
	}()
	// Until the poll waits in its handler (a fixed 300 ms was a guess: a shutdown that
	// comes before the server has read the request closes its connection, and the poll
	// fails).
	for deadline := time.Now().Add(10 * time.Second); !goroutineIn("emulator.(*RequestLog).Wait"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the long poll never reached the server")
		}
	}
	if err := ts.Close(); err != nil {
		t.Errorf("Close with a long poll waiting: %v", err)
	}
	if err := <-answered; err != nil {
		t.Errorf("the long poll: %v", err)
	}
}

// TestEmulatorLogSaysNothingLogged: socius emulator log that prints no call says why on
// standard error (it printed nothing at all): an empty log, or filters that matched
// none of the calls it holds; standard output stays empty, and --json says nothing.
func TestEmulatorLogSaysNothingLogged(t *testing.T) {
	ts := startServer(t, "--emulator")
	logged := func(args ...string) (string, string) {
		t.Helper()
		code, out, errOut := runCLI(t, noEnv, append(append([]string{"emulator", "log"}, args...), "--url", ts.HTTPURL)...)
		if code != 0 {
			t.Fatalf("socius emulator log %v: exit %d\n%s", args, code, errOut)
		}
		return out, errOut
	}
	if out, errOut := logged(); out != "" || errOut != "no calls logged (the log is empty)\n" {
		t.Errorf("an empty log: %q, %q", out, errOut)
	}
	if out, errOut := logged("--json"); out != "" || errOut != "" {
		t.Errorf("an empty log, --json: %q, %q", out, errOut)
	}
	ts.login(t, "u1")
	if out, errOut := logged("--failed", "--method", "getUserInfo"); out != "" || errOut != "no calls logged that are failed and of method socialize.getUserInfo (of 1 the log holds)\n" {
		t.Errorf("filters matching nothing: %q, %q", out, errOut)
	}
	if out, errOut := logged(); !strings.Contains(out, "socialize.notifyLogin") || errOut != "" {
		t.Errorf("a call logged: %q, %q", out, errOut)
	}
}

// stalledUsers holds every read of a page of users until its context ends: an export
// over the admin API that is still being sent.
type stalledUsers struct{ socius.Store }

func (s stalledUsers) Users(ctx context.Context, apiKey, after string, limit int) ([]*socius.User, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

// TestShutdownCutsEmulatorExport: an admin API export still being sent at
// --shutdown-timeout is cut off, and the log says so (it said "requests still arriving
// ... no call had started", as of a client that stopped half way through its request):
// a read, so serve still stops cleanly.
func TestShutdownCutsEmulatorExport(t *testing.T) {
	var logs syncbuf.Buffer
	ts := startMain(t, func(m *Main) {
		m.LogOutput = &logs
		m.wrapStore = func(st socius.Store) socius.Store { return stalledUsers{st} }
	}, "--emulator", "--shutdown-timeout", "1s", "--log-level", "warn")
	go func() {
		if resp, err := http.Get(ts.HTTPURL + "/_emulator/api/export"); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}()
	for deadline := time.Now().Add(10 * time.Second); !goroutineIn("cmd/socius.stalledUsers.Users"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the export never reached the store")
		}
	}
	if err := ts.Close(); err != nil {
		t.Errorf("Close with an export being sent: %v", err)
	}
	if want := "shutdown: an emulator export still being sent after 1s was cut off (its client gets an incomplete file); no call had started"; !strings.Contains(logs.String(), want) {
		t.Errorf("the log says:\n%s\nwant %q", logs.String(), want)
	}
}

// TestShutdownCutsEmulatorSeed: a seed over the admin API still loading at
// --shutdown-timeout (its body stalled after a first line) is cut off, and serve fails
// saying that the lines before the cut are stored: not "no call had started".
func TestShutdownCutsEmulatorSeed(t *testing.T) {
	ts := startMain(t, nil, "--emulator", "--shutdown-timeout", "1s")
	body, more := io.Pipe()
	defer more.Close()
	go func() {
		req, _ := http.NewRequest("POST", ts.HTTPURL+"/_emulator/api/seed", body)
		req.Header.Set("Content-Type", "application/json")
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	io.WriteString(more, `{"kind":"user","apiKey":"`+testAPIKey+`","UID":"seeded-before-the-cut"}`+"\n")
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, seeds := ts.Emu.Busy(); seeds == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the seed never reached the server")
		}
	}
	err := ts.Close()
	if want := "shutdown: an emulator seed still loading after 1s was cut off: its lines before the cut are stored, the rest not"; err == nil || err.Error() != want {
		t.Errorf("Close with a seed loading: %v; want %q", err, want)
	}
}

// TestEmulatorUnderAShortWriteTimeout: with --write-timeout 3s a long poll of the log
// is answered a second before it (the connection would be cut), a fault delay that
// would outlast it is refused, and the status says the version.
func TestEmulatorUnderAShortWriteTimeout(t *testing.T) {
	ts := startEmulator(t, "--write-timeout", "3s")
	// An answer written past the write timeout never comes whole (net/http cuts the
	// connection), and the server's timeout starts after the head it read: a whole
	// answer is one before the timeout, whenever this side, paused on a loaded
	// machine, measures it. The time taken only tells a wait cut short from the 8 s
	// asked. The server runs in this process: one unscheduled for most of the second
	// left after the wait would write past the timeout, so such a try is made again.
	err := unlessStalled(t, 500*time.Millisecond, func() error {
		start := time.Now()
		resp, err := http.Get(ts.HTTPURL + "/_emulator/api/log?after=1000000&wait=8s")
		if err != nil {
			return fmt.Errorf("long poll: %v (the answer came past the write timeout?)", err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || !strings.Contains(string(b), `"entries"`) {
			return fmt.Errorf("long poll: HTTP %d %s %v", resp.StatusCode, b, err)
		}
		if d := time.Since(start); d >= 8*time.Second {
			return fmt.Errorf("the long poll took %v: its wait was not held under the write timeout", d)
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
	// The two calls below are short, but answered under the same 3 s write timeout: a
	// try this process spent unscheduled past it is made again, as the long poll's.
	err = unlessStalled(t, 500*time.Millisecond, func() error {
		code, _, errOut := runCLI(t, noEnv, "emulator", "faults", "add", "--delay", "5s", "--url", ts.HTTPURL)
		if code != 2 || !strings.Contains(errOut, "delay must be at most 2s") {
			return fmt.Errorf("a 5 s delay under a 3 s write timeout: exit %d %s", code, errOut)
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
	err = unlessStalled(t, 500*time.Millisecond, func() error {
		code, out, errOut := runCLI(t, noEnv, "emulator", "status", "--url", ts.HTTPURL)
		if code != 0 || !strings.Contains(out, "version") {
			return fmt.Errorf("status without the version: exit %d %s%s", code, out, errOut)
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
}

// stallWatch measures how long this test process goes unscheduled: a goroutine that
// means to wake every 10 ms keeps the longest time it overslept.
type stallWatch struct {
	stop, done chan struct{}
	longest    time.Duration
}

func watchStalls() *stallWatch {
	w := &stallWatch{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		const tick = 10 * time.Millisecond
		last := time.Now()
		for {
			select {
			case <-w.stop:
				return
			case <-time.After(tick):
			}
			now := time.Now()
			w.longest = max(w.longest, now.Sub(last)-tick)
			last = now
		}
	}()
	return w
}

// end stops the watch and returns the longest stall it saw.
func (w *stallWatch) end() time.Duration {
	close(w.stop)
	<-w.done
	return w.longest
}

// unlessStalled runs call, and again while it fails and this process went unscheduled
// for least or more during it (three tries in all): such a failure may be the loaded
// machine's, a server of this process held past its own timeout, not the code's. It
// returns the error of a try that saw no such stall; when every try failed and saw
// one, the test is skipped, having checked nothing.
func unlessStalled(t *testing.T, least time.Duration, call func() error) error {
	t.Helper()
	for try := 1; ; try++ {
		w := watchStalls()
		err := call()
		stall := w.end()
		if err == nil || stall < least {
			return err
		}
		if try == 3 {
			t.Skipf("not checked: each of %d tries failed with this process unscheduled for %v or more (a paused machine); the last: %v", try, least, err)
		}
		t.Logf("%v, with this process unscheduled for %v: again", err, stall.Round(time.Millisecond))
	}
}

// TestShutdownEndsFaultDelays: a call held by a fault rule's delay is answered at once
// when the emulator shuts down, and the shutdown ends cleanly: waiting it out, the
// shutdown was cut off at --shutdown-timeout and serve exited 1, which made the
// README's CI script fail.
func TestShutdownEndsFaultDelays(t *testing.T) {
	ts := startEmulator(t)
	ts.emu(t, "faults", "add", "--method", "getUserInfo", "--delay", "20s")
	body := ts.signed(t, ts.HTTPURL, "socialize.getUserInfo", url.Values{"UID": {"alice"}}, "", "").Encode()
	type result struct {
		body []byte
		err  error
	}
	answered := make(chan result, 1)
	go func() {
		resp, err := ts.client.Post(ts.HTTPURL+"/socialize.getUserInfo", "application/x-www-form-urlencoded", strings.NewReader(body))
		if err != nil {
			answered <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		answered <- result{b, err}
	}()
	ts.waitInFlight(t, 1)
	if err := ts.Main.Close(); err != nil {
		t.Errorf("Close with a delayed call in flight: %v", err)
	}
	if r := <-answered; r.err != nil || !strings.Contains(string(r.body), `"UID":"alice"`) {
		t.Errorf("the delayed call: %s %v", r.body, r.err)
	}
}

// TestEmulatorExportCutShort: an export whose body the emulator cuts off (its store
// failed half way) is an error, exit 1, and --out writes no file.
func TestEmulatorExportCutShort(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(emulator.Header, "1")
		io.WriteString(w, `{"kind":"site","apiKey":"3_x"}`+"\n")
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	}))
	defer srv.Close()
	out := filepath.Join(t.TempDir(), "export.jsonl")
	code, _, errOut := runCLI(t, noEnv, "emulator", "export", "--url", srv.URL, "--out", out)
	if code != 1 || !strings.Contains(errOut, "cut short") {
		t.Errorf("exit %d, %q; want 1 and the answer cut short", code, errOut)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("--out was written: %v", err)
	}
}

// goroutineIn reports whether a goroutine of this process is in the function named.
func goroutineIn(fn string) bool {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return strings.Contains(string(buf[:n]), fn)
		}
		buf = make([]byte, 2*len(buf))
	}
}

// TestSeedLongerThanTimeouts: a seed that takes longer to send and load than the
// listener's read and write timeouts (which are for API calls) loads whole.
func TestSeedLongerThanTimeouts(t *testing.T) {
	ts := startEmulator(t, "--read-timeout", "2s", "--write-timeout", "2s")
	pr, pw := io.Pipe()
	go func() {
		io.WriteString(pw, `{"kind":"site","apiKey":"3_Slow","secret":"`+testSecret+`"}`+"\n")
		for i := 0; i < 6; i++ {
			time.Sleep(500 * time.Millisecond) // 3 s in all
			fmt.Fprintf(pw, `{"apiKey":"3_Slow","UID":"slow%d"}`+"\n", i)
		}
		pw.Close()
	}()
	resp, err := http.Post(ts.HTTPURL+"/_emulator/api/seed", "application/x-ndjson", pr)
	if err != nil {
		t.Fatalf("a slow seed: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var n emulator.SeedStats
	if resp.StatusCode != 200 || json.Unmarshal(b, &n) != nil || n.Users != 6 {
		t.Errorf("a slow seed: HTTP %d %s", resp.StatusCode, b)
	}
}

// TestEmulatorExportOnExitToStdout: `--export-on-exit /dev/stdout` writes the export
// into the process's own standard output, after what the server printed, whether that
// is a pipe (which /proc/self/fd/1 names as "pipe:[N]", no path) or a log file it was
// redirected to (which a temporary file renamed onto it would have replaced, log and
// all).
func TestEmulatorExportOnExitToStdout(t *testing.T) {
	bin := binary(t)
	for _, into := range []string{"pipe", "file"} {
		t.Run(into, func(t *testing.T) {
			cmd := exec.Command(bin, "serve", "--emulator", "--http", "127.0.0.1:0", "--https", "", "--admin", "", "--export-on-exit", "/dev/stdout")
			for _, kv := range os.Environ() {
				if !strings.HasPrefix(kv, "SOCIUS_") {
					cmd.Env = append(cmd.Env, kv)
				}
			}
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			var read func() string
			drained := func() {} // the output read to its end, before Wait closes a pipe
			switch into {
			case "pipe":
				r, err := cmd.StdoutPipe()
				if err != nil {
					t.Fatal(err)
				}
				var mu sync.Mutex
				var got bytes.Buffer
				done := make(chan struct{})
				go func() {
					defer close(done)
					buf := make([]byte, 4096)
					for {
						n, err := r.Read(buf)
						mu.Lock()
						got.Write(buf[:n])
						mu.Unlock()
						if err != nil {
							return
						}
					}
				}()
				read = func() string { mu.Lock(); defer mu.Unlock(); return got.String() }
				drained = func() { <-done }
				defer func() { <-done }()
			case "file":
				log := filepath.Join(t.TempDir(), "server.log")
				f, err := os.Create(log)
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				cmd.Stdout = f
				read = func() string { b, _ := os.ReadFile(log); return string(b) }
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(20 * time.Second)
			for !strings.Contains(read(), "socius: serving HTTP on ") {
				if time.Now().After(deadline) {
					cmd.Process.Kill()
					cmd.Wait()
					t.Fatalf("the emulator did not start:\n%s\n%s", read(), stderr.String())
				}
				time.Sleep(20 * time.Millisecond)
			}
			if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			// Wait closes the pipe: read it to the end (the exit closes its write end)
			// first, or the export's last lines may be lost.
			drained()
			if err := cmd.Wait(); err != nil {
				t.Fatalf("the emulator's exit: %v\n%s", err, stderr.String())
			}
			out := read()
			serving := strings.Index(out, "socius: serving HTTP on ")
			export := strings.Index(out, `{"kind":"site"`)
			exported := strings.Index(out, "socius: emulator: exported 1 site, ")
			if serving < 0 || export < serving || exported < export {
				t.Errorf("standard output, the server's lines then the export then its summary:\n%s\nstderr:\n%s", out, stderr.String())
			}
		})
	}
}

// TestExportOnExitFailingKeepsNonces: an export that fails at shutdown (its folder gone)
// is the exit's error, and the nonces are saved all the same: they were dropped, with a
// warning that calls had been cut off.
func TestExportOnExitFailingKeepsNonces(t *testing.T) {
	dir, outDir := t.TempDir(), t.TempDir()
	ts := startEmulator(t, "--data", dir, "--export-on-exit", filepath.Join(outDir, "out.jsonl"))
	if err := os.RemoveAll(outDir); err != nil {
		t.Fatal(err)
	}
	if err := ts.Close(); err == nil || !strings.Contains(err.Error(), "--export-on-exit") {
		t.Errorf("Close = %v, want the export's failure", err)
	}
	if _, err := os.Stat(filepath.Join(dir, noncesFile)); err != nil {
		t.Errorf("nonces not saved beside a failed export: %v", err)
	}
}

// TestEmulatorTempDataSaidOnceBound: without --data, the emulator's line naming its
// temporary data folder comes once the listeners are bound, before the first line that
// names a file in it. It came first of all, so a start whose address was taken said
// the folder and failed, the folder removed: the user looked for it. A start that
// fails after the line says the folder was removed; one that succeeds says nothing
// more about it.
func TestEmulatorTempDataSaidOnceBound(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	// start runs serve --emulator without --data, and returns what it printed, the
	// data folder it had and Run's error; Main is closed.
	start := func(setup func(*Main), flags ...string) (string, string, error) {
		t.Helper()
		m := NewMain()
		args := append([]string{"--emulator", "--https", "", "--log-level", "error"}, flags...)
		if err := m.ParseFlags(args, noEnv, io.Discard); err != nil {
			t.Fatal(err)
		}
		var out syncbuf.Buffer
		m.Stdout = &out
		if setup != nil {
			setup(m)
		}
		err := m.Run(context.Background())
		dir := m.DataDir
		m.Close()
		if _, serr := os.Stat(dir); !errors.Is(serr, os.ErrNotExist) {
			t.Errorf("the data folder %s after Close: %v; want it removed", dir, serr)
		}
		return out.String(), dir, err
	}

	out, dir, err := start(nil, "--http", taken.Addr().String())
	if err == nil || !strings.Contains(err.Error(), "another process listens on") {
		t.Fatalf("a taken address: %v", err)
	}
	if strings.Contains(out, dir) {
		t.Errorf("a start that failed on a taken address printed\n%s\nwant nothing naming %s, which does not exist", out, dir)
	}

	// A seed refused for a site the new store has not: the error named the store in
	// the temporary folder, which the failed start removed.
	seed := writeExport(t, `{"kind":"user","apiKey":"3_NoSuchSite","UID":"x"}`)
	out, dir, err = start(nil, "--http", "127.0.0.1:0", "--seed", seed)
	if err == nil || !strings.Contains(err.Error(), "the store is new (a temporary one, without --data)") || strings.Contains(err.Error(), dir) || strings.Contains(out, dir) {
		t.Errorf("a seed naming no site: %v, printed %q; want neither to name %s, which does not exist", err, out, dir)
	}

	out, dir, err = start(func(m *Main) {
		m.wrapStore = func(st socius.Store) socius.Store { return storeFault{Store: st, fail: "PutSite"} }
	}, "--http", "127.0.0.1:0", "--site-api-key", testAPIKey, "--site-secret", testSecret)
	if !errors.Is(err, errStoreGone) {
		t.Fatalf("a store failing its first write: %v", err)
	}
	if said, removed := "socius: emulator: data in "+dir+" (removed on exit", "socius: emulator: removed "+dir+" (the start failed)\n"; !strings.Contains(out, said) || !strings.HasSuffix(out, removed) {
		t.Errorf("a start that failed once bound printed\n%s\nwant the line %q, and last %q", out, said, removed)
	}

	out, dir, err = start(nil, "--http", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	said := strings.Index(out, "socius: emulator: data in "+dir+" (removed on exit; give --data to keep it)\n")
	if said < 0 || strings.Index(out, dir) != said+len("socius: emulator: data in ") || strings.Contains(out, "(the start failed)") {
		t.Errorf("a start that succeeded printed\n%s\nwant the data folder's line before any other naming %s, and no removal", out, dir)
	}
	// The master key generated there goes with it: it said to back it up.
	if want := "socius: generated the master key that encrypts secrets at rest: " + filepath.Join(dir, "master.key") + " (removed on exit with the data)\n"; !strings.Contains(out, want) || strings.Contains(out, "back it up") {
		t.Errorf("a start that succeeded printed\n%s\nwant the line %q", out, want)
	}
}

// TestMasterKeyLineSaysBackItUp: the master key generated in a data folder that stays
// is one to back up, and the line says so (unlike the emulator's temporary folder's).
func TestMasterKeyLineSaysBackItUp(t *testing.T) {
	data := t.TempDir()
	var out syncbuf.Buffer
	ts := startMain(t, func(m *Main) { m.Stdout = &out }, "--data", data, "--emulator")
	ts.Close()
	if want := "socius: generated the master key that encrypts secrets at rest: " + filepath.Join(data, "master.key") + " (back it up apart from the database)\n"; !strings.Contains(out.String(), want) {
		t.Errorf("serve --emulator --data printed\n%s\nwant the line %q", out.String(), want)
	}
}

// TestEmulatorTempFolderWithPostgres: with PostgreSQL and no --data, the emulator's
// temporary folder holds only the generated TLS certificate, and its line says so; the
// data is the database's, which keeps it. It said "data in" the folder. Without a
// certificate to generate, no folder is said.
func TestEmulatorTempFolderWithPostgres(t *testing.T) {
	url, key := pgtest.URL(t), testMasterKeyFile(t)
	for _, tt := range []struct {
		name  string
		flags []string
		want  string // the folder's line, "" for none
	}{
		{"a certificate generated", []string{"--https", "127.0.0.1:0"}, "socius: emulator: TLS certificate in "},
		{"no HTTPS", []string{"--https", ""}, ""},
	} {
		m := NewMain()
		args := append([]string{"--emulator", "--store", url, "--master-key-file", key, "--http", "127.0.0.1:0", "--log-level", "error"}, tt.flags...)
		if err := m.ParseFlags(args, noEnv, io.Discard); err != nil {
			t.Fatal(err)
		}
		var out syncbuf.Buffer
		m.Stdout = &out
		if err := m.Run(context.Background()); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		dir := m.DataDir
		m.Close()
		got := out.String()
		if strings.Contains(got, "data in") || tt.want == "" && strings.Contains(got, dir) ||
			tt.want != "" && !strings.Contains(got, tt.want+dir+" (removed on exit; give --data to keep it)\n") {
			t.Errorf("%s: serve printed\n%s\nwant the folder %s said as %q", tt.name, got, dir, tt.want)
		}
	}
}

// TestEmulatorExportOutlastsCallTimeout: socius emulator export reads an export that
// takes longer than the command's other requests may (a long poll and a little more:
// shortened here to a second) whole, to standard output and to --out. The client's
// timeout cut off every export longer than 35 s.
func TestEmulatorExportOutlastsCallTimeout(t *testing.T) {
	defer func(d time.Duration) { emulatorCallTimeout = d }(emulatorCallTimeout)
	emulatorCallTimeout = time.Second
	const first, second = `{"kind":"site","apiKey":"3_x"}` + "\n", `{"kind":"user","apiKey":"3_x","UID":"u1"}` + "\n"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(emulator.Header, "1")
		io.WriteString(w, first)
		w.(http.Flusher).Flush()
		time.Sleep(1500 * time.Millisecond) // a large store's pages, past the timeout
		io.WriteString(w, second)
	}))
	defer srv.Close()
	if code, out, errOut := runCLI(t, noEnv, "emulator", "export", "--url", srv.URL); code != 0 || out != first+second {
		t.Errorf("to standard output: exit %d, %q, %q; want 0 and the whole export", code, out, errOut)
	}
	file := filepath.Join(t.TempDir(), "export.jsonl")
	if code, _, errOut := runCLI(t, noEnv, "emulator", "export", "--url", srv.URL, "--out", file); code != 0 {
		t.Errorf("--out: exit %d, %q; want 0", code, errOut)
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != first+second {
		t.Errorf("--out: %q, %v; want the whole export", b, err)
	}
}

// TestEmulatorAnswerBounded: socius emulator reads at most a bound of an answer it
// decodes (lowered here), and says so past it, exit 1: a server that answered
// without end (not quite the emulator, or one gone wrong) was read into memory until
// the call's timeout. The request log has a bound of its own, larger.
func TestEmulatorAnswerBounded(t *testing.T) {
	defer func(a, l int64, d time.Duration) {
		maxEmulatorAnswer, maxEmulatorLogAnswer, emulatorCallTimeout = a, l, d
	}(maxEmulatorAnswer, maxEmulatorLogAnswer, emulatorCallTimeout)
	maxEmulatorAnswer, maxEmulatorLogAnswer, emulatorCallTimeout = 1<<10, 4<<10, 5*time.Second
	// padded is a JSON object of more than n bytes, which each command's answer takes.
	padded := func(n int) string { return `{"pad":"` + strings.Repeat("a", n) + `"}` }
	// serve answers the log with a log of logBytes.
	serve := func(logBytes int) *httptest.Server {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set(emulator.Header, "1")
			switch r.URL.Path {
			case "/_emulator/api/status":
				io.WriteString(w, padded(2<<10))
			case "/_emulator/api/clock":
				// Without end, until the client stops reading.
				io.WriteString(w, `{"pad":"`)
				chunk := strings.Repeat("a", 4<<10)
				for {
					if _, err := io.WriteString(w, chunk); err != nil {
						return
					}
				}
			case "/_emulator/api/log":
				io.WriteString(w, padded(logBytes))
			}
		}))
		t.Cleanup(srv.Close)
		return srv
	}
	srv := serve(2 << 10)
	for _, cmd := range []string{"status", "clock"} {
		code, _, errOut := runCLI(t, noEnv, "emulator", cmd, "--url", srv.URL)
		want := "socius: the emulator's answer to GET /_emulator/api/" + cmd + " is longer than 1.0 KiB (1024 bytes), the most socius emulator reads\n"
		if code != 1 || errOut != want {
			t.Errorf("emulator %s: exit %d, %q; want 1 and %q", cmd, code, errOut, want)
		}
	}
	// A log's answer past the others' bound is read; one past its own is refused.
	if code, _, errOut := runCLI(t, noEnv, "emulator", "log", "--url", srv.URL); code != 0 {
		t.Errorf("emulator log of 2 KiB: exit %d, %q; want 0", code, errOut)
	}
	code, _, errOut := runCLI(t, noEnv, "emulator", "log", "--url", serve(8<<10).URL)
	want := "socius: the emulator's answer to GET /_emulator/api/log is longer than 4.0 KiB (4096 bytes), the most socius emulator reads (socius emulator log clear empties the log)\n"
	if code != 1 || errOut != want {
		t.Errorf("emulator log of 8 KiB: exit %d, %q; want 1 and %q", code, errOut, want)
	}
}

// TestEmulatorExportEmptyOut: socius emulator export --out "" ("--out $FILE" with the
// variable unset) is a usage error, exit 2, with nothing asked of the emulator: the
// export, its secrets in clear, went to standard output (a terminal, a CI job's log),
// as without --out.
func TestEmulatorExportEmptyOut(t *testing.T) {
	var asked atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Store(true)
		w.Header().Set(emulator.Header, "1")
		io.WriteString(w, `{"kind":"site","apiKey":"3_x","secret":"c2VjcmV0"}`+"\n")
	}))
	defer srv.Close()
	code, out, errOut := runCLI(t, noEnv, "emulator", "export", "--url", srv.URL, "--out", "")
	want := "socius: --out is empty: give the file to write, or leave --out out for standard output\n"
	if code != 2 || out != "" || errOut != want {
		t.Errorf("--out \"\": exit %d, %q, %q; want 2 saying %q", code, out, errOut, want)
	}
	if asked.Load() {
		t.Error("--out \"\": the emulator was asked for its export")
	}
}

// TestEmulatorEmptyArguments: an argument or filter flag given empty (as "$VAR" with
// the variable unset gives) is a usage error, exit 2, before the emulator is asked:
// faults add --site "" made a rule that failed the calls of every site, and seed ""
// said "seed : no such file or directory".
func TestEmulatorEmptyArguments(t *testing.T) {
	var asked atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Store(true)
		w.Header().Set(emulator.Header, "1")
		io.WriteString(w, `{"ID":1,"Code":500001}`)
	}))
	defer srv.Close()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"faults", "add", "--code", "500001", "--site", ""}, "socius: --site is empty (an unset variable?): give the site's apiKey, or leave --site out for a rule on every site\n"},
		{[]string{"faults", "add", "--site=", "--code", "500001"}, "socius: --site is empty (an unset variable?): give the site's apiKey, or leave --site out for a rule on every site\n"},
		{[]string{"faults", "add", "--code", "500001", "--method", ""}, "socius: --method is empty (an unset variable?): give the method, or leave --method out for a rule on every method\n"},
		// log --method "" printed every method's calls, as if the flag were left out.
		{[]string{"log", "--method", ""}, "socius: --method is empty (an unset variable?): give the method, or leave --method out for the calls of every method\n"},
		{[]string{"log", "--json", "--method="}, "socius: --method is empty (an unset variable?): give the method, or leave --method out for the calls of every method\n"},
		// It said "seed : no such file or directory".
		{[]string{"seed", ""}, "socius: FILE is empty (an unset variable?): give the seed file to load (JSON lines, the export format) as the argument\n"},
	} {
		asked.Store(false)
		code, out, errOut := runCLI(t, noEnv, append([]string{"emulator"}, append(c.args, "--url", srv.URL)...)...)
		if code != 2 || out != "" || errOut != c.want {
			t.Errorf("%q: exit %d, %q, %q; want 2 saying %q", c.args, code, out, errOut, c.want)
		}
		if asked.Load() {
			t.Errorf("%q: the emulator was asked", c.args)
		}
	}
	// SOCIUS_SITE and SOCIUS_METHOD set empty mean what an empty variable means (the
	// README): the flag's default, every site and every method; not refused.
	emptyVars := func(name string) (string, bool) { return "", name == "SOCIUS_SITE" || name == "SOCIUS_METHOD" }
	for _, args := range [][]string{{"faults", "add", "--code", "500001"}, {"log", "--json"}} {
		asked.Store(false)
		code, _, errOut := runCLI(t, emptyVars, append([]string{"emulator"}, append(args, "--url", srv.URL)...)...)
		if code == 2 || strings.Contains(errOut, "is empty") || !asked.Load() {
			t.Errorf("%q with SOCIUS_SITE= and SOCIUS_METHOD=: exit %d, %q, emulator asked %v; want it asked", args, code, errOut, asked.Load())
		}
	}
}

// TestEmulatorSeedSaysWhatLoaded: a seed that the emulator stops at a bad line has
// stored the lines before it, and socius emulator seed says so, with the counts the
// emulator answered; it said only what was wrong with the line, as a usage error, so
// that the lines before it seemed not loaded.
func TestEmulatorSeedSaysWhatLoaded(t *testing.T) {
	ts := startEmulator(t)
	seed := filepath.Join(t.TempDir(), "partial.jsonl")
	text := `{"kind":"user","apiKey":"` + testAPIKey + `","UID":"carol"}` + "\n" +
		`{"kind":"user","apiKey":"` + testAPIKey + `","UID":"dave","profile":{"gender":"x"}}` + "\n" +
		`{"kind":"user","apiKey":"` + testAPIKey + `","UID":"erin"}` + "\n"
	if err := os.WriteFile(seed, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCLI(t, noEnv, "emulator", "seed", seed, "--url", ts.HTTPURL)
	want := "socius: emulator: seed: line 2: user dave: gender must be one of m, f, u; stored before it stopped: 0 sites, 0 keys, 1 user (HTTP 400)\n"
	if code != 2 || out != "" || errOut != want {
		t.Errorf("exit %d, stdout %q, stderr %q; want exit 2 and %q", code, out, errOut, want)
	}
	if a := ts.call(t, "socialize.getUserInfo", url.Values{"UID": {"carol"}}); a.code() != 0 {
		t.Errorf("carol, loaded before the bad line: %v", a)
	}
	// A bad first line: nothing loaded, and said so.
	if err := os.WriteFile(seed, []byte(`{"kind":"user","apiKey":"`+testAPIKey+`","UID":"frank","profile":{"age":"old"}}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errOut = runCLI(t, noEnv, "emulator", "seed", seed, "--url", ts.HTTPURL)
	if want := "socius: emulator: seed: line 1: user frank: age must be an integer from 0 to 150; nothing was stored (HTTP 400)\n"; code != 2 || errOut != want {
		t.Errorf("exit %d, stderr %q; want exit 2 and %q", code, errOut, want)
	}
}
