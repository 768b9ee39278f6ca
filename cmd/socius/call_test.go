package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/socius/socius"
	"github.com/socius/socius/internal/vectors"
)

// writeRSAKeyPair writes a new RSA key pair as PEM files: the public key (PKIX) and the
// private key (PKCS #8).
func writeRSAKeyPair(t *testing.T) (pubFile, privFile string) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	privDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	pubFile, privFile = filepath.Join(dir, "key.pub.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(pubFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(privFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return pubFile, privFile
}

// envOf returns a lookupEnv for the variables given as NAME=VALUE.
func envOf(vars ...string) func(string) (string, bool) {
	m := map[string]string{}
	for _, v := range vars {
		name, value, _ := strings.Cut(v, "=")
		m[name] = value
	}
	return func(name string) (string, bool) {
		v, ok := m[name]
		return v, ok
	}
}

func decodeAnswer(t *testing.T, out string) answer {
	t.Helper()
	var a answer
	if err := json.Unmarshal([]byte(out), &a); err != nil {
		t.Fatalf("output is not one JSON answer: %v\n%s", err, out)
	}
	return a
}

func TestCallCommand(t *testing.T) {
	ts := startServer(t)
	ts.createKey(t, vectors.LabUserKey, vectors.LabUserSecret)
	creds := []string{"--url", ts.HTTPURL, "--api-key", testAPIKey, "--secret", testSecret}
	call := func(args ...string) (int, answer, string) {
		t.Helper()
		code, out, errOut := runCLI(t, noEnv, append(append([]string{"call"}, creds...), args...)...)
		if code == 2 {
			t.Fatalf("usage error: %s", errOut)
		}
		return code, decodeAnswer(t, out), errOut
	}

	code, a, _ := call("socialize.notifyLogin", "siteUID=u1")
	if code != 0 || a.code() != 0 || a.str("UID") != "u1" {
		t.Fatalf("notifyLogin: exit %d, %v", code, a)
	}
	// The command of the README; a value may hold '='.
	code, a, _ = call("socialize.setUserInfo", "UID=u1", `userInfo={"firstName":"David","nickname":"a=b"}`)
	if code != 0 || a.code() != 0 {
		t.Fatalf("setUserInfo: exit %d, %v", code, a)
	}
	code, a, _ = call("getUserInfo", "UID=u1") // namespace socialize by default
	if code != 0 || a.str("firstName") != "David" || a.str("nickname") != "a=b" {
		t.Fatalf("getUserInfo: exit %d, %v", code, a)
	}
	// A Gigya error: the answer is printed, the exit status is 1.
	code, a, errOut := call("socialize.getUserInfo", "UID=nobody")
	if code != 1 || a.code() != 403005 || a.str("errorDetails") != "UID not found" || !strings.Contains(errOut, "403005") {
		t.Errorf("unknown UID: exit %d, %v, stderr %q", code, a, errOut)
	}

	// --verbose shows the request, the base string and the signature, secrets masked.
	code, out, errOut := runCLI(t, noEnv, append(append([]string{"call", "--verbose"}, creds...), "socialize.getUserInfo", "UID=u1")...)
	if code != 0 {
		t.Fatalf("verbose: exit %d %s", code, errOut)
	}
	for _, want := range []string{"> POST " + ts.HTTPURL + "/socialize.getUserInfo", ">   UID=u1", ">   sig=***", ">   apiKey=" + testAPIKey,
		"> base string: POST&http%3A%2F%2F127.0.0.1", "> signature: ", "< HTTP 200, errorCode 0"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("verbose output lacks %q:\n%s", want, errOut)
		}
	}
	decodeAnswer(t, out)
	if strings.Contains(errOut, testSecret) {
		t.Error("verbose output shows the secret")
	}

	// Credentials from SOCIUS_* variables; a userKey.
	env := envOf("SOCIUS_URL="+ts.HTTPURL, "SOCIUS_API_KEY="+testAPIKey, "SOCIUS_SECRET="+vectors.LabUserSecret, "SOCIUS_USER_KEY="+vectors.LabUserKey)
	code, out, errOut = runCLI(t, env, "call", "socialize.getUserInfo", "UID=u1")
	if a := decodeAnswer(t, out); code != 0 || a.str("firstName") != "David" {
		t.Errorf("userKey from the environment: exit %d, %v %s", code, a, errOut)
	}

	// Plain secret over HTTPS, trusting the generated certificate.
	code, out, errOut = runCLI(t, noEnv, "call", "--url", ts.HTTPSURL, "--ca-file", ts.CertFile, "--api-key", testAPIKey, "--secret", testSecret,
		"--https-secret", "--verbose", "socialize.getUserInfo", "UID=u1")
	if a := decodeAnswer(t, out); code != 0 || a.str("firstName") != "David" || !strings.Contains(errOut, ">   secret=***") || strings.Contains(errOut, testSecret) {
		t.Errorf("--https-secret: exit %d, %v\n%s", code, a, errOut)
	}
	// Without --ca-file the self-signed certificate is not trusted: no answer, exit 1.
	if code, _, errOut := runCLI(t, noEnv, "call", "--url", ts.HTTPSURL, "--api-key", testAPIKey, "--secret", testSecret,
		"socialize.getUserInfo", "UID=u1"); code != 1 || !strings.Contains(errOut, "certificate") {
		t.Errorf("untrusted certificate: exit %d %s", code, errOut)
	}
	// A token goes over HTTPS only, as oauth_token, masked in --verbose.
	code, out, errOut = runCLI(t, noEnv, "call", "--url", ts.HTTPSURL, "--ca-file", ts.CertFile, "--token", "st2.at.not-a-real-token", "--verbose",
		"socialize.getUserInfo")
	if a := decodeAnswer(t, out); code != 1 || a.code() != 403025 || !strings.Contains(errOut, ">   oauth_token=***") || strings.Contains(errOut, "not-a-real-token") {
		t.Errorf("unknown token: exit %d, %v\n%s", code, a, errOut)
	}

	// Token mode: getToken (signed, over HTTPS), then the token alone.
	code, out, errOut = runCLI(t, noEnv, "call", "--url", ts.HTTPSURL, "--ca-file", ts.CertFile, "--api-key", testAPIKey, "--secret", testSecret,
		"socialize.getToken", "grant_type=none", "x_siteUID=u1")
	tok := decodeAnswer(t, out).str("access_token")
	if code != 0 || tok == "" {
		t.Fatalf("getToken: exit %d %s %s", code, out, errOut)
	}
	code, out, errOut = runCLI(t, envOf("SOCIUS_TOKEN="+tok, "SOCIUS_URL="+ts.HTTPSURL, "SOCIUS_CA_FILE="+ts.CertFile), "call", "--verbose", "socialize.getUserInfo")
	if a := decodeAnswer(t, out); code != 0 || a.str("UID") != "u1" || a.str("firstName") != "David" || strings.Contains(errOut, tok) {
		t.Errorf("--token: exit %d, %v\n%s", code, a, errOut)
	}

	// userKey + RSA private key: a bearer JWT, masked in --verbose.
	pubFile, privFile := writeRSAKeyPair(t)
	pub, err := os.ReadFile(pubFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := ts.Store.CreateKey(context.Background(), &socius.Key{UserKey: "ARsaCli", APIKey: testAPIKey, Secret: socius.NewSecret(),
		PublicKey: string(pub), CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = runCLI(t, noEnv, "call", "--url", ts.HTTPSURL, "--ca-file", ts.CertFile, "--api-key", testAPIKey, "--user-key", "ARsaCli", "--private-key", privFile,
		"--verbose", "socialize.getUserInfo", "UID=u1")
	if a := decodeAnswer(t, out); code != 0 || a.str("UID") != "u1" || !strings.Contains(errOut, "> Authorization: Bearer ***") {
		t.Errorf("--private-key: exit %d, %v\n%s", code, a, errOut)
	}

	// Usage errors: exit 2, nothing sent.
	key := filepath.Join(t.TempDir(), "key.pem")
	os.WriteFile(key, []byte("not a key"), 0o600)
	for _, args := range [][]string{
		{"call"},
		{"call", "--url", ts.HTTPURL, "--api-key", testAPIKey, "--secret", testSecret, "socialize.getUserInfo", "UID"},
		{"call", "--url", ts.HTTPURL, "--api-key", testAPIKey, "--secret", testSecret, "socialize.getUserInfo", "=u1"},
		{"call", "--url", ts.HTTPURL, "--api-key", testAPIKey, "--secret", testSecret, "socialize.getUserInfo", "UID=u1", "UID=u2"},
		{"call", "--url", ts.HTTPSURL, "--ca-file", ts.CertFile, "--token", "t", "--user-key", "AK", "socialize.getUserInfo"},
		{"call", "--url", ts.HTTPURL, "--api-key", testAPIKey, "--secret", testSecret, "--session-secret", testSecret, "socialize.getUserInfo"},
		{"call", "--url", ts.HTTPSURL, "--ca-file", ts.CertFile, "--api-key", testAPIKey, "--user-key", "ARsaCli", "--private-key", privFile, "--secret", testSecret, "socialize.getUserInfo"},
		{"call", "--url", ts.HTTPURL, "socialize.getUserInfo", "UID=u1"},
		{"call", "--url", ts.HTTPURL, "--secret", testSecret, "socialize.getUserInfo"},
		{"call", "--url", ts.HTTPURL, "--token", "t", "--secret", testSecret, "socialize.getUserInfo"},
		{"call", "--url", ts.HTTPURL, "--api-key", testAPIKey, "--secret", testSecret, "--https-secret", "socialize.getUserInfo"},
		{"call", "--url", ts.HTTPURL, "--token", "t", "socialize.getUserInfo"},
		{"call", "--url", ts.HTTPURL, "--api-key", testAPIKey, "--user-key", "AK", "--private-key", key, "socialize.getUserInfo"},
		{"call", "--url", "ftp://x", "--api-key", testAPIKey, "--secret", testSecret, "socialize.getUserInfo"},
		{"call", "--bogus-flag"},
		{"call", "--url", ts.HTTPURL, "--api-key", testAPIKey, "--secret", testSecret, "--timeout", "-1s", "socialize.getUserInfo"},
		{"call", "--url", ts.HTTPURL, "--api-key", testAPIKey, "--secret", testSecret, "--timeout", "0s", "socialize.getUserInfo"},
		// What the client refuses to send: a parameter it sets itself, a method name
		// that is no method.
		{"call", "--url", ts.HTTPURL, "--api-key", testAPIKey, "--secret", testSecret, "socialize.getUserInfo", "format=xml"},
		{"call", "--url", ts.HTTPURL, "--api-key", testAPIKey, "--secret", testSecret, "socialize.get/UserInfo"},
	} {
		if code, out, errOut := runCLI(t, noEnv, args...); code != 2 || out != "" || errOut == "" {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want 2 with a message", args, code, out, errOut)
		}
	}
	// A bad SOCIUS_ variable is said once, exit 2.
	badEnv := func(k string) (string, bool) {
		if k == "SOCIUS_TIMEOUT" {
			return "abc", true
		}
		return "", false
	}
	if code, out, errOut := runCLI(t, badEnv, "call", "--url", ts.HTTPURL, "--api-key", testAPIKey, "--secret", testSecret, "socialize.getUserInfo", "UID=u1"); code != 2 || out != "" || strings.Count(errOut, `SOCIUS_TIMEOUT="abc"`) != 1 {
		t.Errorf("SOCIUS_TIMEOUT=abc: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// TestUntrustedCertificateSaysCAFile: an https:// server whose certificate no CA the
// command trusts signed (Socius's generated one, a private CA's) fails the call, and
// emulator's commands, with what to do: --ca-file. The TLS error alone ("certificate
// signed by unknown authority") did not say it, and the emulator's said it could not
// reach a server it had reached.
func TestUntrustedCertificateSaysCAFile(t *testing.T) {
	srv := httptest.NewTLSServer(http.NotFoundHandler())
	defer srv.Close()
	for _, args := range [][]string{
		{"call", "--token", "st2.at.x", "--url", srv.URL, "socialize.getUserInfo"},
		{"emulator", "status", "--url", srv.URL},
	} {
		code, _, errOut := runCLI(t, noEnv, args...)
		if code != 1 || !strings.Contains(errOut, "signed by no CA this system trusts: give --ca-file FILE") || strings.Contains(errOut, "cannot reach") {
			t.Errorf("%v: exit %d %q; want 1 and --ca-file named", args, code, errOut)
		}
		// net/http's `Post "URL": ` (`Get "URL": `) is not said: the message names
		// the server already (the thirty-third session's walk of the README).
		if strings.Contains(errOut, `Post "`) || strings.Contains(errOut, `Get "`) || !strings.Contains(errOut, ": tls: failed to verify certificate: ") {
			t.Errorf("%v: %q; want the TLS error without net/http's Op \"URL\"", args, errOut)
		}
	}
}

// TestCallSaysWhetherItWasSent: a call that got no answer says whether it reached the
// server (client.ErrNotSent): nothing listening, against a server that reads the
// request and closes the connection, where a write may have happened.
func TestCallSaysWhetherItWasSent(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String()
	ln.Close()
	code, _, errOut := runCLI(t, noEnv, "call", "--url", closed, "--api-key", testAPIKey, "--secret", testSecret, "--timeout", "5s", "socialize.setUserInfo", "UID=u1", "nickname=n")
	if code != 1 || !strings.Contains(errOut, "never sent: nothing reached the server") {
		t.Errorf("nothing listening: exit %d %q", code, errOut)
	}

	ln, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			http.ReadRequest(bufio.NewReader(conn)) // the whole head, then no answer
			conn.Close()
		}
	}()
	code, _, errOut = runCLI(t, noEnv, "call", "--url", "http://"+ln.Addr().String(), "--api-key", testAPIKey, "--secret", testSecret, "--timeout", "5s", "socialize.setUserInfo", "UID=u1", "nickname=n")
	if code != 1 || !strings.Contains(errOut, "sent, no answer: it may have taken effect") {
		t.Errorf("answer lost: exit %d %q", code, errOut)
	}
}
