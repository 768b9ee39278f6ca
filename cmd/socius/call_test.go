package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

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
	// A flag given empty ("--token $TOKEN", the variable unset) is said, not left out:
	// with SOCIUS_API_KEY and SOCIUS_SECRET set, --token "" sent the call signed as
	// the partner.
	partnerEnv := envOf("SOCIUS_API_KEY="+testAPIKey, "SOCIUS_SECRET="+testSecret)
	for _, c := range []struct {
		flag string
		args []string
	}{
		{"token", []string{"--token", ""}},
		{"session-secret", []string{"--session-secret="}},
		{"secret", []string{"--secret", ""}},
		{"user-key", []string{"--user-key="}},
		{"private-key", []string{"--private-key", ""}},
		{"api-key", []string{"--api-key", ""}},
		{"ca-file", []string{"--ca-file="}},
		{"url", []string{"--url="}},
	} {
		args := append([]string{"call", "--url", ts.HTTPURL}, c.args...)
		args = append(args, "socialize.getUserInfo", "UID=u1")
		want := "--" + c.flag + " is empty (an unset variable?)"
		if code, out, errOut := runCLI(t, partnerEnv, args...); code != 2 || out != "" || !strings.Contains(errOut, want) {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want 2 saying %q", args, code, out, errOut, want)
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

// TestCallPrintsTheServersTextSafely: what a server (or a proxy before it) answers is
// printed so that it cannot drive the terminal: with --verbose, a page that is not a
// Gigya answer is shown escaped and clipped, saying how long it was, and so are its
// Date header and the client's words quoting it; an answer's JSON on standard output
// has what is not printable in its strings written as JSON escapes, the same JSON to
// a JSON reader. Both were written as they came: a terminal escape, U+009B (a CSI),
// U+202E and bytes that are not UTF-8 reached the user's terminal.
func TestCallPrintsTheServersTextSafely(t *testing.T) {
	hostile := "\x1b]0;pwned\x07\x1b[2J\u009b31m\u202egnp.exe\xff\x7f"
	page := "<html>" + hostile + strings.Repeat("x", 3000)
	// Valid JSON: the control characters escaped, the rest raw, and white space after.
	answerJSON := "{\"errorCode\":0,\"statusCode\":200,\"callId\":\"c\u202e1\",\"data\":{\"n\":\"\\u001b[2J\u009b31m\u202egnp.exe\xff\x7f\U000e0041 José 東京\"}}\t\r\n"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Date"] = []string{"Tue, 01 Dec 2026 17:00:00 GMT\u009b2J\u202e"}
		switch r.URL.Path {
		case "/socialize.setUserInfo":
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, answerJSON)
		default:
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusBadGateway)
			io.WriteString(w, page)
		}
	}))
	defer srv.Close()
	printable := func(what, s string) {
		t.Helper()
		for _, r := range s {
			if r != '\n' && (r == utf8.RuneError || !strconv.IsPrint(r)) {
				t.Errorf("%s has %q: %q", what, r, s)
				return
			}
		}
	}
	creds := []string{"--url", srv.URL, "--api-key", testAPIKey, "--secret", testSecret, "--verbose"}

	code, out, errOut := runCLI(t, noEnv, append(append([]string{"call"}, creds...), "socialize.logout")...)
	if code != 1 || out != "" {
		t.Errorf("a proxy's page: exit %d, stdout %q; want 1 and nothing", code, out)
	}
	printable("a proxy's page, on standard error,", errOut)
	want := `< <html>\x1b]0;pwned\a\x1b[2J\u009b31m\u202egnp.exe\xff\x7f` + strings.Repeat("x", 1024-len("<html>"+hostile)) +
		fmt.Sprintf(" ... (the first 1024 bytes of %d)\n", len(page))
	if !strings.Contains(errOut, want) {
		t.Errorf("a proxy's page: %s\nwant the line %q", errOut, want)
	}
	if !strings.Contains(errOut, `(Date: Tue, 01 Dec 2026 17:00:00 GMT\u009b2J\u202e)`) {
		t.Errorf("a proxy's page: %s\nwant its Date header escaped", errOut)
	}

	code, out, errOut = runCLI(t, noEnv, append(append([]string{"call"}, creds...), "socialize.setUserInfo", "UID=u1")...)
	if code != 0 {
		t.Fatalf("an answer: exit %d: %s", code, errOut)
	}
	printable("an answer, on standard output,", out)
	printable("an answer's trace, on standard error,", errOut)
	for _, w := range []string{`"callId": "c\u202e1"`, `"n": "\u001b[2J\u009b31m\u202egnp.exe\ufffd\u007f\udb40\udc41 José 東京"`} {
		if !strings.Contains(out, w) {
			t.Errorf("an answer: %s\nwant %s", out, w)
		}
	}
	if !strings.HasSuffix(out, "}\n") || strings.HasSuffix(out, "\n\n") {
		t.Errorf("an answer: %q; want it to end with one line break", out)
	}
	var got, sent any
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("an answer: %v: %s", err, out)
	}
	if err := json.Unmarshal([]byte(answerJSON), &sent); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, sent) {
		t.Errorf("an answer reads as %v, want %v as sent", got, sent)
	}
}

// TestPrintAnswer: printAnswer's JSON is the answer's, indented, with what is not
// printable as JSON escapes; a body that is not JSON (which the client does not pass
// as an answer) is printed escaped as the errors are, never raw.
func TestPrintAnswer(t *testing.T) {
	for _, c := range []struct{ body, want string }{
		{`{"a":"b"}`, "{\n  \"a\": \"b\"\n}\n"},
		{"{\"a\":\"\u2028\u00a0\U0001F600\"} \r\n", "{\n  \"a\": \"\\u2028\\u00a0\U0001F600\"\n}\n"},
		{"<html>\x1b[2J\xff\n", `<html>\x1b[2J\xff\n` + "\n"},
	} {
		var b strings.Builder
		printAnswer(&b, []byte(c.body))
		if b.String() != c.want {
			t.Errorf("printAnswer(%q) = %q, want %q", c.body, b.String(), c.want)
		}
	}
}
