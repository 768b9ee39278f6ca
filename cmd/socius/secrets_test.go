package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/socius/socius"
	"github.com/socius/socius/sealed"
	"github.com/socius/socius/sqlite"
	_ "modernc.org/sqlite" // database/sql driver "sqlite", to read the file as an attacker would
)

// storedSecrets reads every secret column of the SQLite file directly.
func storedSecrets(t *testing.T, dir string) map[string]string {
	t.Helper()
	db, err := sql.Open("sqlite", filepath.Join(dir, "socius.db")+"?_pragma=query_only(1)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT 'site ' || api_key, secret FROM sites UNION ALL SELECT 'key ' || user_key, secret FROM keys`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var id, secret string
		if err := rows.Scan(&id, &secret); err != nil {
			t.Fatal(err)
		}
		out[id] = secret
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// checkNoPlainSecrets fails if any secret, in its base64 text or decoded, is in any
// file of the database (the main file, its WAL and shared memory).
func checkNoPlainSecrets(t *testing.T, dir string, secrets ...string) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "socius.db*"))
	if len(files) == 0 {
		t.Fatal("no database files")
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range secrets {
			dec, _ := socius.DecodeSecret(s)
			if bytes.Contains(b, []byte(s)) || bytes.Contains(b, dec) {
				t.Errorf("%s holds the secret %s in clear", filepath.Base(f), s)
			}
		}
	}
}

func TestSecretsEncryptedAtRest(t *testing.T) {
	dir := t.TempDir()
	ts := startMain(t, nil, "--data", dir)
	code, out, errOut := runCLI(t, noEnv, "key", "create", "--data", dir, "--site", testAPIKey)
	if code != 0 {
		t.Fatalf("key create: %s", errOut)
	}
	userKey := regexp.MustCompile(`userKey: (\S+)`).FindStringSubmatch(out)[1]
	keySecret := regexp.MustCompile(`secret:\s+(\S+)`).FindStringSubmatch(out)[1]
	// The running server reads what the admin command sealed, with the same key.
	ts.login(t, "u1")
	p := ts.signed(t, ts.HTTPURL, "socialize.getUserInfo", url.Values{"UID": {"u1"}}, userKey, keySecret)
	if a := ts.post(t, ts.HTTPURL, "socialize.getUserInfo", p); a.code() != 0 {
		t.Fatalf("a call with the key made by the admin command: %v", a)
	}
	checkNoPlainSecrets(t, dir, testSecret, keySecret) // with the WAL still there
	ts.Close()
	checkNoPlainSecrets(t, dir, testSecret, keySecret)

	stored := storedSecrets(t, dir)
	if len(stored) != 2 {
		t.Fatalf("stored secrets: %v", stored)
	}
	for id, s := range stored {
		if !strings.HasPrefix(s, sealed.Prefix) || strings.Contains(s, testSecret) || strings.Contains(s, keySecret) {
			t.Errorf("%s: stored secret %q is not encrypted", id, s)
		}
	}
	fi, err := os.Stat(filepath.Join(dir, "master.key"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("master.key: %v %v", fi, err)
	}
	// The admin commands show the secret in clear: they hold the key.
	if code, out, _ := runCLI(t, noEnv, "site", "show", testAPIKey, "--data", dir); code != 0 || !strings.Contains(out, testSecret) {
		t.Errorf("site show: %d %s", code, out)
	}
}

// runMain starts a Main on dir with the given flags and environment and returns the
// error of Run; it closes the Main.
func runMain(t *testing.T, env map[string]string, flags ...string) error {
	t.Helper()
	m := NewMain()
	args := append([]string{"--http", "127.0.0.1:0", "--https", "", "--admin", "", "--log-level", "error"}, flags...)
	if err := m.ParseFlags(args, func(k string) (string, bool) { v, ok := env[k]; return v, ok }, io.Discard); err != nil {
		return err
	}
	m.Stdout = io.Discard
	err := m.Run(context.Background())
	m.Close()
	return err
}

func writeKeyFile(t *testing.T, key []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "master.key")
	if err := os.WriteFile(path, []byte(sealed.EncodeKey(key)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestWrongMasterKey(t *testing.T) {
	dir := t.TempDir()
	if err := runMain(t, nil, "--data", dir, "--site-api-key", testAPIKey, "--site-secret", testSecret); err != nil {
		t.Fatal(err)
	}
	wrong := writeKeyFile(t, sealed.NewKey())
	err := runMain(t, nil, "--data", dir, "--master-key-file", wrong)
	if err == nil || !strings.Contains(err.Error(), "master key from "+wrong) || !strings.Contains(err.Error(), "does not decrypt") {
		t.Errorf("start with another key file: %v", err)
	}
	other := sealed.EncodeKey(sealed.NewKey())
	err = runMain(t, map[string]string{"SOCIUS_MASTER_KEY": other}, "--data", dir)
	if err == nil || !strings.Contains(err.Error(), "master key from SOCIUS_MASTER_KEY") || strings.Contains(err.Error(), other) {
		t.Errorf("start with another key in the environment: %v", err)
	}
	if err := runMain(t, map[string]string{"SOCIUS_MASTER_KEY": "not-a-key"}, "--data", dir); err == nil || !strings.Contains(err.Error(), "base64 of 32 bytes") {
		t.Errorf("start with a malformed key: %v", err)
	}
	if err := runMain(t, map[string]string{"SOCIUS_MASTER_KEY": other}, "--data", dir, "--master-key-file", wrong); err == nil || !strings.Contains(err.Error(), "not both") {
		t.Errorf("two master keys: %v", err)
	}
	code, _, errOut := runCLI(t, func(k string) (string, bool) { return other, k == "SOCIUS_MASTER_KEY" }, "site", "list", "--data", dir)
	if code != 1 || !strings.Contains(errOut, "does not decrypt") {
		t.Errorf("admin command with another key: %d %s", code, errOut)
	}

	// A lost key file is an error, never replaced by a new key.
	keyFile := filepath.Join(dir, "master.key")
	if err := os.Rename(keyFile, keyFile+".bak"); err != nil {
		t.Fatal(err)
	}
	if err := runMain(t, nil, "--data", dir); err == nil || !strings.Contains(err.Error(), "master.key does not exist") {
		t.Errorf("start without the key file: %v", err)
	}
	if _, err := os.Stat(keyFile); err == nil {
		t.Error("a new master key was generated over encrypted secrets")
	}
	os.Rename(keyFile+".bak", keyFile)
	if err := runMain(t, nil, "--data", dir); err != nil {
		t.Errorf("with the key file restored: %v", err)
	}
}

func TestMasterKeyFromEnvironment(t *testing.T) {
	dir := t.TempDir()
	key := sealed.EncodeKey(sealed.NewKey())
	env := map[string]string{"SOCIUS_MASTER_KEY": key}
	if err := runMain(t, env, "--data", dir, "--site-api-key", testAPIKey, "--site-secret", testSecret); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "master.key")); err == nil {
		t.Error("master.key generated although SOCIUS_MASTER_KEY was given")
	}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	if code, out, errOut := runCLI(t, lookup, "site", "show", testAPIKey, "--data", dir); code != 0 || !strings.Contains(out, testSecret) {
		t.Errorf("site show with SOCIUS_MASTER_KEY: %d %s %s", code, out, errOut)
	}
	if code, _, errOut := runCLI(t, noEnv, "site", "show", testAPIKey, "--data", dir); code != 1 || !strings.Contains(errOut, "SOCIUS_MASTER_KEY") {
		t.Errorf("site show without the key: %d %s", code, errOut)
	}
	// The same key from a file, given by the flag or by its variable.
	if code, _, errOut := runCLI(t, noEnv, "site", "show", testAPIKey, "--data", dir, "--master-key-file", writeKeyFile(t, mustParseKey(t, key))); code != 0 {
		t.Errorf("site show with --master-key-file: %s", errOut)
	}
	if code, out, errOut := runCLI(t, envOf("SOCIUS_MASTER_KEY_FILE="+writeKeyFile(t, mustParseKey(t, key))), "site", "show", testAPIKey, "--data", dir); code != 0 || !strings.Contains(out, testSecret) {
		t.Errorf("site show with SOCIUS_MASTER_KEY_FILE: %d %s %s", code, out, errOut)
	}
	// Both at once is a usage error, even when they hold the same key.
	if code, _, errOut := runCLI(t, lookup, "site", "show", testAPIKey, "--data", dir, "--master-key-file", writeKeyFile(t, mustParseKey(t, key))); code != 2 || !strings.Contains(errOut, "give the master key once") {
		t.Errorf("site show with --master-key-file and SOCIUS_MASTER_KEY: %d %s, want exit 2", code, errOut)
	}
	// Refused before anything is made: no data folder, no store.
	fresh := filepath.Join(t.TempDir(), "fresh")
	for _, args := range [][]string{
		{"site", "create", "--data", fresh},
		{"serve", "--data", fresh, "--http", "127.0.0.1:0", "--https", "", "--admin", ""},
	} {
		args = append(args, "--master-key-file", writeKeyFile(t, mustParseKey(t, key)))
		if code, _, errOut := runCLI(t, lookup, args...); code != 2 || !strings.Contains(errOut, "give the master key once") {
			t.Errorf("%s with --master-key-file and SOCIUS_MASTER_KEY: %d %s, want exit 2", args[0], code, errOut)
		}
		if _, err := os.Stat(fresh); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s refused for two master keys made the data folder: %v", args[0], err)
		}
	}
}

func mustParseKey(t *testing.T, s string) []byte {
	k, err := sealed.ParseKey(s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestPlainSecretsAreEncryptedAtStart: a store written before encryption existed.
func TestPlainSecretsAreEncryptedAtStart(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	raw, err := sqlite.Open(filepath.Join(dir, "socius.db"))
	if err != nil {
		t.Fatal(err)
	}
	keySecret := socius.NewSecret()
	if err := raw.CreateSite(ctx, &socius.Site{APIKey: "3_Plain", Secret: testSecret, Name: "old", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := raw.CreateKey(ctx, &socius.Key{UserKey: "APlainKey", APIKey: "3_Plain", Secret: keySecret, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	raw.Close()

	var out strings.Builder
	ts := startMain(t, func(m *Main) { m.Stdout = &out }, "--data", dir)
	if !strings.Contains(out.String(), "encrypted 2 secrets that were stored in plain text") {
		t.Errorf("start said:\n%s", out.String())
	}
	p := signedFor(t, ts.HTTPURL, "socialize.notifyLogin", url.Values{"apiKey": {"3_Plain"}, "siteUID": {"u1"}}, "APlainKey", keySecret)
	if a := ts.post(t, ts.HTTPURL, "socialize.notifyLogin", p); a.code() != 0 {
		t.Errorf("a call with the migrated key: %v", a)
	}
	for id, s := range storedSecrets(t, dir) {
		if !sealed.IsSealed(s) {
			t.Errorf("%s still in clear", id)
		}
	}

	// The admin commands seal what they find in clear too, and say so only then.
	ts.Close()
	if raw, err = sqlite.Open(filepath.Join(dir, "socius.db")); err != nil {
		t.Fatal(err)
	}
	if err := raw.CreateSite(ctx, &socius.Site{APIKey: "3_Plain2", Secret: testSecret, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	raw.Close()
	if code, _, errOut := runCLI(t, noEnv, "site", "list", "--data", dir); code != 0 || errOut != "socius: encrypted 1 secret that was stored in plain text\n" {
		t.Errorf("site list on a secret in clear: %d %q", code, errOut)
	}
	if code, _, errOut := runCLI(t, noEnv, "site", "list", "--data", dir); code != 0 || errOut != "" {
		t.Errorf("site list once every secret is sealed: %d %q; want nothing on standard error", code, errOut)
	}
}

func TestRotateSecret(t *testing.T) {
	ts := startServer(t)
	ts.login(t, "u1")
	get := url.Values{"UID": {"u1"}}
	call := func(userKey, secret string) int {
		p := ts.signed(t, ts.HTTPURL, "socialize.getUserInfo", get, userKey, secret)
		return ts.post(t, ts.HTTPURL, "socialize.getUserInfo", p).code()
	}
	code, out, errOut := runCLI(t, noEnv, "site", "rotate-secret", testAPIKey, "--data", ts.DataDir)
	if code != 0 {
		t.Fatalf("site rotate-secret: %s", errOut)
	}
	newSecret := regexp.MustCompile(`secret: (\S+)`).FindStringSubmatch(out)[1]
	if newSecret == testSecret || socius.ValidateSecret(newSecret) != nil {
		t.Fatalf("new secret %q", newSecret)
	}
	// The running server sees the new secret at once: old signatures fail.
	if c := call("", testSecret); c != 403003 {
		t.Errorf("signed with the old secret: %d", c)
	}
	if c := call("", newSecret); c != 0 {
		t.Errorf("signed with the new secret: %d", c)
	}
	plain := url.Values{"apiKey": {testAPIKey}, "secret": {testSecret}, "UID": {"u1"}}
	if a := ts.post(t, ts.HTTPSURL, "socialize.getUserInfo", plain); a.code() != 403003 {
		t.Errorf("the old secret in plain: %v", a.code())
	}
	// A given secret; the name and creation time stay.
	before, _ := ts.Store.Site(context.Background(), testAPIKey)
	if code, out, _ := runCLI(t, noEnv, "site", "rotate-secret", "--secret", testSecret, testAPIKey, "--data", ts.DataDir); code != 0 || !strings.Contains(out, "secret: "+testSecret) {
		t.Errorf("rotate-secret --secret: %d %s", code, out)
	}
	after, _ := ts.Store.Site(context.Background(), testAPIKey)
	if c := call("", testSecret); c != 0 || after.Name != before.Name || !after.CreatedAt.Equal(before.CreatedAt) {
		t.Errorf("after rotating back: call %d, site %+v (was %+v)", c, after, before)
	}
	for _, bad := range []struct {
		args []string
		says string
	}{
		{[]string{"site", "rotate-secret", "3_nope", "--data", ts.DataDir}, "no site has apiKey 3_nope"},
		{[]string{"key", "rotate-secret", "ANoSuchKey", "--data", ts.DataDir}, "no key has userKey ANoSuchKey"},
	} {
		if code, _, errOut := runCLI(t, noEnv, bad.args...); code != 1 || !strings.Contains(errOut, bad.says) {
			t.Errorf("%q: exit %d, %q; want 1 and %q", bad.args, code, errOut, bad.says)
		}
	}
	// A malformed secret is a usage error.
	if code, _, _ := runCLI(t, noEnv, "site", "rotate-secret", testAPIKey, "--secret", "c2hvcnQ=", "--data", ts.DataDir); code != 2 {
		t.Errorf("rotate-secret with a short --secret: exit %d, want 2", code)
	}
	if code, _, _ := runCLI(t, noEnv, "site", "rotate-secret", "--data", ts.DataDir); code != 2 {
		t.Errorf("rotate-secret without an apiKey: exit %d, want 2", code)
	}

	// A key: its secret changes, its site and methods stay.
	keySecret := socius.NewSecret()
	if err := ts.Store.CreateKey(context.Background(), &socius.Key{UserKey: "AReader", APIKey: testAPIKey, Secret: keySecret,
		Methods: []string{"socialize.getUserInfo"}, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = runCLI(t, noEnv, "key", "rotate-secret", "AReader", "--data", ts.DataDir)
	if code != 0 {
		t.Fatalf("key rotate-secret: %s", errOut)
	}
	newKeySecret := regexp.MustCompile(`secret:\s+(\S+)`).FindStringSubmatch(out)[1]
	if c := call("AReader", keySecret); c != 403003 {
		t.Errorf("signed with the key's old secret: %d", c)
	}
	if c := call("AReader", newKeySecret); c != 0 {
		t.Errorf("signed with the key's new secret: %d", c)
	}
	p := ts.signed(t, ts.HTTPURL, "socialize.setUserInfo", url.Values{"UID": {"u1"}, "userInfo": {"{}"}}, "AReader", newKeySecret)
	if a := ts.post(t, ts.HTTPURL, "socialize.setUserInfo", p); a.code() != 403007 {
		t.Errorf("the rotated key lost its method list: %v", a)
	}
}

// TestTokensStoredHashed: access and session tokens are stored hashed, never in clear
// (SPEC 5), and a session's secret is sealed like any secret: none of them, as text or
// as the bytes it encodes, is in any file of the database once they have been used.
func TestTokensStoredHashed(t *testing.T) {
	dir := t.TempDir()
	ts := startMain(t, nil, "--data", dir)
	access := ts.accessToken(t, "u1")
	session := ts.call(t, "socialize.notifyLogin", url.Values{"siteUID": {"u2"}, "targetEnv": {"mobile"}})
	if session.code() != 0 {
		t.Fatal(session)
	}
	if a := ts.tlsPost(t, "socialize.getUserInfo", withToken(access, nil)); a.code() != 0 {
		t.Fatalf("the access token: %v", a)
	}
	check := func() {
		t.Helper()
		files, _ := filepath.Glob(filepath.Join(dir, "socius.db*"))
		if len(files) == 0 {
			t.Fatal("no database files")
		}
		var clear [][]byte
		for _, tok := range []string{access, session.str("sessionToken")} {
			random := tok[strings.LastIndexByte(tok, '.')+1:]
			raw, err := base64.RawURLEncoding.DecodeString(random)
			if err != nil || len(raw) < 16 {
				t.Fatalf("token %q is not of the shape this test knows", tok)
			}
			clear = append(clear, []byte(random), raw)
		}
		secret := session.str("sessionSecret")
		raw, err := base64.StdEncoding.DecodeString(secret)
		if err != nil {
			t.Fatal(err)
		}
		clear = append(clear, []byte(secret), raw)
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for i, c := range clear {
				if bytes.Contains(b, c) {
					t.Errorf("%s holds a token or session secret in clear (#%d)", filepath.Base(f), i)
				}
			}
		}
	}
	check() // with the WAL still there
	ts.Close()
	check()
}
