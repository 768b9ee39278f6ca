package main

import (
	"bytes"
	"context"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// chromiumPath is where Debian's chromium package puts the browser; test.sh installs it.
const chromiumPath = "/usr/bin/chromium"

// TestConsoleInChromium opens the emulator's web console in a real headless Chromium,
// driven by compat/browser/console.js (playwright-core, pinned): the console loads,
// lists and finds a seeded user, shows a call with a deliberately wrong signature with
// the base string the server signed, follows new calls, its forms work, and a page of
// another origin (another port of 127.0.0.1) may link to it but is refused (403) when
// it loads the admin API or a console page as a script, an image or a fetch. The
// screenshots are saved under test-artifacts/ at the top of the repository.
//
// It needs /usr/bin/chromium, node and npm; without them it fails, unless
// SOCIUS_SKIP_BROWSER=1.
func TestConsoleInChromium(t *testing.T) {
	if os.Getenv("SOCIUS_SKIP_BROWSER") == "1" {
		t.Skip("SOCIUS_SKIP_BROWSER=1: not running the console in Chromium")
	}
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("Chromium is not installed at %s: run ./test.sh, which installs Debian's chromium package (apt-get install chromium), "+
			"or set SOCIUS_SKIP_BROWSER=1 to skip the console's browser test", chromiumPath)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node is not installed (or not on PATH): the console's browser test runs compat/browser/console.js with Node.js; set SOCIUS_SKIP_BROWSER=1 to skip it")
	}
	dir, err := filepath.Abs(filepath.Join("..", "..", "compat", "browser"))
	if err != nil {
		t.Fatal(err)
	}
	ensureNPMPackage(t, dir, "playwright-core", "SOCIUS_SKIP_BROWSER")
	artifacts, err := filepath.Abs(filepath.Join("..", "..", "test-artifacts"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(artifacts, 0o755); err != nil {
		t.Fatal(err)
	}
	screenshot := filepath.Join(artifacts, "console.png")
	os.Remove(screenshot)

	ts := startEmulator(t)
	// A call whose signature covers a wrong base string: the client signed another
	// host.
	p := signedFor(t, "http://socialize.wrong.example", "socialize.getUserInfo", url.Values{"UID": {"alice"}}, "", "")
	a := ts.post(t, ts.HTTPURL, "socialize.getUserInfo", p)
	if a.code() != 403003 {
		t.Fatalf("the wrongly signed call: %v", a)
	}
	entries := ts.logEntries(t)
	failed := entries[len(entries)-1]
	if failed.CallID != a.str("callId") || len(failed.BaseStrings) == 0 {
		t.Fatalf("the log lacks the failed call: %+v", failed)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "console.js")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"CHROMIUM="+chromiumPath,
		"CONSOLE_URL="+ts.HTTPURL+"/_emulator/",
		"EXPECT_UID=alice",
		"EXPECT_EMAIL=alice@example.com",
		"EXPECT_NAME=ally",
		"EXPECT_CALL_ID="+failed.CallID,
		"EXPECT_BASE_STRING="+failed.BaseStrings[0],
		"SCREENSHOT="+screenshot,
	)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	t.Logf("console.js:\n%s", out.String())
	if err != nil {
		t.Fatalf("console.js: %v (timeout: %v)", err, ctx.Err())
	}
	png, err := os.ReadFile(screenshot)
	if err != nil || !bytes.HasPrefix(png, []byte("\x89PNG")) || len(png) < 10_000 {
		t.Fatalf("no screenshot at %s: %v (%d bytes)", screenshot, err, len(png))
	}
	t.Logf("screenshot of the console's request log: %s", screenshot)
}

// ensureNPMPackage runs `npm ci` in dir when pkg is not installed there yet.
func ensureNPMPackage(t *testing.T, dir, pkg, skipVar string) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(dir, "node_modules", pkg, "package.json")); err == nil {
		return
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		t.Fatalf("npm is not installed (or not on PATH): it installs %s in %s; set %s=1 to skip this test", pkg, dir, skipVar)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm ci in %s: %v (timeout: %v)\n%s", dir, err, ctx.Err(), strings.TrimSpace(string(out)))
	}
}
