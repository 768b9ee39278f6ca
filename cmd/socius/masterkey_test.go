package main

import (
	"bytes"
	"context"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/socius/socius/internal/pgtest"
)

// TestChangeMasterKey changes the master key of each store as docs/operations.md says:
// the new key as the master key and the old one as --previous-master-key-file for one
// start (here an admin command), after which the new key alone opens every secret and
// the old one none.
func TestChangeMasterKey(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { testChangeMasterKey(t, "--data", t.TempDir()) })
	t.Run("postgres", func(t *testing.T) { testChangeMasterKey(t, "--store", pgtest.URL(t), "--data", t.TempDir()) })
}

// TestChangeMasterKeyOneSecret: the count of secrets moved to the new key is said in
// the singular for one (it said "moved 1 secrets").
func TestChangeMasterKeyOneSecret(t *testing.T) {
	oldKey, newKey, dir := testMasterKeyFile(t), testMasterKeyFile(t), t.TempDir()
	if code, _, errOut := runCLI(t, noEnv, "site", "create", "--data", dir, "--master-key-file", oldKey); code != 0 {
		t.Fatalf("site create: %d %s", code, errOut)
	}
	code, _, errOut := runCLI(t, noEnv, "site", "list", "--data", dir, "--master-key-file", newKey, "--previous-master-key-file", oldKey)
	if code != 0 || !strings.Contains(errOut, "socius: moved 1 secret from the previous master key") {
		t.Errorf("site list: exit %d, %q", code, errOut)
	}
}

func testChangeMasterKey(t *testing.T, store ...string) {
	oldKey, newKey := testMasterKeyFile(t), testMasterKeyFile(t)
	with := func(key string, args ...string) []string {
		return append(append(args, store...), "--master-key-file", key)
	}
	code, out, errOut := runCLI(t, noEnv, with(oldKey, "site", "create", "--name", "shop")...)
	if code != 0 {
		t.Fatalf("site create: %d %s", code, errOut)
	}
	apiKey := regexp.MustCompile(`apiKey: (\S+)`).FindStringSubmatch(out)[1]
	secret := regexp.MustCompile(`secret: (\S+)`).FindStringSubmatch(out)[1]
	if code, _, errOut := runCLI(t, noEnv, with(oldKey, "key", "create", "--site", apiKey)...); code != 0 {
		t.Fatalf("key create: %d %s", code, errOut)
	}

	if code, _, errOut := runCLI(t, noEnv, with(newKey, "site", "show", apiKey)...); code != 1 || !strings.Contains(errOut, "does not decrypt") {
		t.Errorf("the new key alone, before: exit %d, %q", code, errOut)
	}
	code, out, errOut = runCLI(t, noEnv, append(with(newKey, "site", "show", apiKey), "--previous-master-key-file", oldKey)...)
	if code != 0 || !strings.Contains(out, secret) || !strings.Contains(errOut, "socius: moved 2 secrets from the previous master key") {
		t.Fatalf("the new key with the old as previous: exit %d, %q, %q", code, out, errOut)
	}
	if code, out, errOut := runCLI(t, noEnv, with(newKey, "site", "show", apiKey)...); code != 0 || !strings.Contains(out, secret) {
		t.Errorf("the new key alone, after: exit %d, %q, %q", code, out, errOut)
	}
	if code, _, errOut := runCLI(t, noEnv, with(oldKey, "site", "show", apiKey)...); code != 1 || !strings.Contains(errOut, "does not decrypt") {
		t.Errorf("the old key, after: exit %d, %q", code, errOut)
	}
	// Once more with the previous key: nothing left to do.
	code, _, errOut = runCLI(t, noEnv, append(with(newKey, "site", "list"), "--previous-master-key-file", oldKey)...)
	if code != 0 || !strings.Contains(errOut, "socius: moved 0 secrets from the previous master key") {
		t.Errorf("again: exit %d, %q", code, errOut)
	}
	if code, _, errOut := runCLI(t, noEnv, append(with(newKey, "site", "list"), "--previous-master-key-file", "/nonexistent/old.key")...); code != 2 || !strings.Contains(errOut, "--previous-master-key-file /nonexistent/old.key") {
		t.Errorf("a missing previous key file: exit %d, %q", code, errOut)
	}

	// serve takes the flag too, and serves the site with its secret.
	m := NewMain()
	var stdout bytes.Buffer
	flags := append(with(newKey, "--http", "127.0.0.1:0", "--https", "", "--admin", "", "--log-level", "error"), "--previous-master-key-file", oldKey)
	if err := m.ParseFlags(flags, noEnv, io.Discard); err != nil {
		t.Fatal(err)
	}
	m.Stdout = &stdout
	if err := m.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if !strings.Contains(stdout.String(), "moved 0 secrets from the previous master key") {
		t.Errorf("serve's output: %q", stdout.String())
	}
	ts := &testServer{Main: m, client: httpClient()}
	p := signedFor(t, m.HTTPURL, "socialize.notifyLogin", url.Values{"siteUID": {"u1"}, "apiKey": {apiKey}}, "", secret)
	if a := ts.post(t, m.HTTPURL, "socialize.notifyLogin", p); a.code() != 0 {
		t.Errorf("a call signed with the site's secret after the change: %v", a)
	}
}

// TestReadKeyFileWarns: a key file that other users may read is read, with a warning.
func TestReadKeyFileWarns(t *testing.T) {
	if filepath.Separator != '/' {
		t.Skip("file modes are Unix's")
	}
	path := testMasterKeyFile(t)
	var out bytes.Buffer
	if _, err := readKeyFile(&out, path); err != nil || out.Len() != 0 {
		t.Fatalf("a 0600 key file: %v, %q", err, out.String())
	}
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		out.Reset()
		if _, err := readKeyFile(&out, path); err != nil || !strings.Contains(out.String(), "others may read it") {
			t.Errorf("a %v key file: %v, %q", mode, err, out.String())
		}
	}

	// A folder where the key file should be is the error it is, with no warning that
	// "the master key file has mode -rwxr-xr-x" (the folder's, as a file's).
	dir := filepath.Join(t.TempDir(), "master.key")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if _, err := readKeyFile(&out, dir); err == nil || out.Len() != 0 {
		t.Errorf("a folder for the key file: %v, %q; want an error and no warning", err, out.String())
	}
}
