package main

import (
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/socius/socius/internal/syncbuf"
)

// servedOnce serves the data folder dir (with flags) for one signed getUserInfo with
// params, of a user nobody made (403005: its signature good, its nonce kept), and
// stops the server cleanly. It returns the address it served on, for the next server,
// and the call's parameters, to send it again.
func servedOnce(t *testing.T, dir string, params url.Values, flags ...string) (string, url.Values) {
	t.Helper()
	a := startServer(t, append([]string{"--data", dir}, flags...)...)
	first := a.signed(t, a.HTTPURL, "socialize.getUserInfo", params, "", "")
	if got := a.post(t, a.HTTPURL, "socialize.getUserInfo", first); got.code() != 403005 {
		t.Fatalf("first: %v", got)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	return strings.TrimPrefix(a.HTTPURL, "http://"), first
}

// TestNoncesOutliveARestart: the embedded store's nonces are memory, and a restart
// forgot them, so a request of the last two minutes could be replayed to the new
// process. A clean stop saves them and the next start loads them (the replay is
// 403004); a start that finds none in a folder served before (a crash, a kill) refuses
// the requests timed before it (403002), and takes those signed after.
func TestNoncesOutliveARestart(t *testing.T) {
	dir := t.TempDir()
	addr, first := servedOnce(t, dir, url.Values{"UID": {"nobody"}, "nonce": {"before-the-restart"}})
	if _, err := os.Stat(filepath.Join(dir, noncesFile)); err != nil {
		t.Fatalf("no nonces saved by a clean stop: %v", err)
	}

	// A clean restart: the request is a replay.
	b := startServer(t, "--data", dir, "--http", addr)
	if got := b.post(t, b.HTTPURL, "socialize.getUserInfo", first); got.code() != 403004 {
		t.Errorf("replayed after a clean restart: %v, want 403004", got)
	}
	if _, err := os.Stat(filepath.Join(dir, noncesFile)); !os.IsNotExist(err) {
		t.Errorf("the saved nonces are still there once loaded: %v", err)
	}
	second := b.signed(t, b.HTTPURL, "socialize.getUserInfo", url.Values{"UID": {"nobody"}, "nonce": {"before-the-crash"}}, "", "")
	if got := b.post(t, b.HTTPURL, "socialize.getUserInfo", second); got.code() != 403005 {
		t.Fatalf("second: %v", got)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	// As after a crash: no saved nonces.
	if err := os.Remove(filepath.Join(dir, noncesFile)); err != nil {
		t.Fatal(err)
	}
	c := startServer(t, "--data", dir, "--http", addr)
	for _, p := range []url.Values{first, second} {
		got := c.post(t, c.HTTPURL, "socialize.getUserInfo", p)
		if got.code() != 403002 || !strings.Contains(got.str("errorDetails"), "before this server's start") {
			t.Errorf("replayed after an unclean stop: %v, want 403002", got)
		}
	}
	c.Clock.Advance(time.Second) // past the second of the start, which may hold the last requests before it
	fresh := c.signed(t, c.HTTPURL, "socialize.getUserInfo", url.Values{"UID": {"nobody"}}, "", "")
	if got := c.post(t, c.HTTPURL, "socialize.getUserInfo", fresh); got.code() != 403005 {
		t.Errorf("a request signed after the start: %v", got)
	}

	// A clean stop within that window saves nothing: a save would tell the next start
	// that nothing was lost (a crash, then a short clean run, let the crash's requests
	// be replayed; so did a start that failed after the crash, whose Close saved).
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, noncesFile)); !os.IsNotExist(err) {
		t.Fatalf("nonces saved by a process that lost some still replayable: %v", err)
	}
	d := startServer(t, "--data", dir, "--http", addr)
	if got := d.post(t, d.HTTPURL, "socialize.getUserInfo", second); got.code() != 403002 {
		t.Errorf("replayed after a crash and a short clean run: %v, want 403002", got)
	}
}

// TestNoncesWiderWindow: nonces saved by a server with a narrow --clock-skew and loaded
// by one with a wider window are kept as much longer: the new server takes their
// requests for as much longer (they expired as saved, and a replay 12 s later passed).
func TestNoncesWiderWindow(t *testing.T) {
	dir := t.TempDir()
	addr, first := servedOnce(t, dir, url.Values{"UID": {"nobody"}}, "--clock-skew", "10s")
	b := startServer(t, "--data", dir, "--http", addr, "--clock-skew", "5m")
	b.Clock.Advance(20 * time.Second) // past the 10 s window, within 5 min
	if got := b.post(t, b.HTTPURL, "socialize.getUserInfo", first); got.code() != 403004 {
		t.Errorf("replayed 20 s later to a server of a 5 min window: %v, want 403004", got)
	}
}

// TestNoncesBadFile: a saved file that is not a whole save (cut short by a crash of the
// disk, changed) is not taken for one: the start refuses the requests timed before it,
// as with none, and removes the file.
func TestNoncesBadFile(t *testing.T) {
	dir := t.TempDir()
	addr, first := servedOnce(t, dir, url.Values{"UID": {"nobody"}})
	path := filepath.Join(dir, noncesFile)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data[:len(data)-3], 0o600); err != nil {
		t.Fatal(err)
	}
	b := startServer(t, "--data", dir, "--http", addr)
	if got := b.post(t, b.HTTPURL, "socialize.getUserInfo", first); got.code() != 403002 {
		t.Errorf("replayed after a start with a bad file: %v, want 403002", got)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("the bad file is still there: %v", err)
	}
}

// TestNoncesAfterAFailedFirstStart: a start that fails on a folder no serve ran on (one
// the admin commands made) served nothing, so it leaves the folder new: it left
// serve.lock, and the next start took the folder for one served before a crash, warned
// "none saved by the last shutdown" and refused the signed requests timed before it.
func TestNoncesAfterAFailedFirstStart(t *testing.T) {
	otherKey := testMasterKeyFile(t)
	for _, tt := range []struct {
		name string
		args func(dir string) []string // the failing start's flags, dir for its own files
	}{
		// The store does not open.
		{"store", func(string) []string { return []string{"--master-key-file", otherKey} }},
		// The store opens, the seed is refused (the stop saved the empty nonces).
		{"seed", func(dir string) []string {
			seed := filepath.Join(dir, "seed.jsonl")
			if err := os.WriteFile(seed, []byte(`{"kind":"user","apiKey":"3_Gone","UID":"fred"}`+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			return []string{"--emulator", "--seed", seed}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			data := filepath.Join(dir, "data")
			if code, _, errOut := runCLI(t, noEnv, "site", "create", "--api-key", testAPIKey, "--secret", testSecret, "--data", data); code != 0 {
				t.Fatalf("site create: exit %d %s", code, errOut)
			}
			args := append([]string{"serve", "--data", data, "--http", "127.0.0.1:0", "--https", "", "--admin", "", "--log-level", "error"}, tt.args(dir)...)
			if code, _, errOut := runCLI(t, noEnv, args...); code != 1 {
				t.Fatalf("the failing start: exit %d %s; want 1", code, errOut)
			}
			for _, made := range []string{dataLockFile, noncesFile} {
				if _, err := os.Stat(filepath.Join(data, made)); !os.IsNotExist(err) {
					t.Errorf("%s after a start that failed on a folder never served: %v", made, err)
				}
			}
			var logs syncbuf.Buffer
			ts := startMain(t, func(m *Main) { m.LogOutput = &logs }, "--data", data, "--log-level", "warn")
			before := ts.signed(t, ts.HTTPURL, "socialize.getUserInfo", url.Values{"UID": {"nobody"},
				"timestamp": {strconv.FormatInt(ts.Clock.Now().Add(-10*time.Second).Unix(), 10)}}, "", "")
			if got := ts.post(t, ts.HTTPURL, "socialize.getUserInfo", before); got.code() != 403005 { // signature good, no such user
				t.Errorf("a request signed before the next start: %v, want 403005", got)
			}
			if strings.Contains(logs.String(), "nonces:") {
				t.Errorf("the next start's log: %s", logs.String())
			}
		})
	}
}

// TestNoncesFileTooLong: a nonces file longer than any save (a file of gigabytes in its
// place, left there by mistake) is refused after as many bytes as a save of the most
// nonces a server holds, not read whole into memory, and the start says so.
func TestNoncesFileTooLong(t *testing.T) {
	dir := t.TempDir()
	addr, first := servedOnce(t, dir, url.Values{"UID": {"nobody"}})
	path := filepath.Join(dir, noncesFile)
	// Sparse: no disk is spent on it. 1 GiB would take as much memory read whole.
	if err := os.Truncate(path, 1<<30); err != nil {
		t.Fatal(err)
	}
	var logs syncbuf.Buffer
	b := startMain(t, func(m *Main) {
		m.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}, "--data", dir, "--http", addr)
	if got, want := logs.String(), "nonce: not a whole snapshot of a nonce cache: longer than 48000080 bytes, a snapshot of 4000000 nonces"; !strings.Contains(got, want) {
		t.Errorf("start with a 1 GiB nonces file logged:\n%s\nwant a warning with %q", got, want)
	}
	if got := b.post(t, b.HTTPURL, "socialize.getUserInfo", first); got.code() != 403002 {
		t.Errorf("replayed after a start with a file too long: %v, want 403002", got)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("the file too long is still there: %v", err)
	}
}
