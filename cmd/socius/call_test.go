package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/socius/socius/internal/vectors"
)

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

	// Usage errors: exit 2, nothing sent.
	key := filepath.Join(t.TempDir(), "key.pem")
	os.WriteFile(key, []byte("not a key"), 0o600)
	for _, args := range [][]string{
		{"call"},
		{"call", "--url", ts.HTTPURL, "--api-key", testAPIKey, "--secret", testSecret, "socialize.getUserInfo", "UID"},
		{"call", "--url", ts.HTTPURL, "socialize.getUserInfo", "UID=u1"},
		{"call", "--url", ts.HTTPURL, "--secret", testSecret, "socialize.getUserInfo"},
		{"call", "--url", ts.HTTPURL, "--token", "t", "--secret", testSecret, "socialize.getUserInfo"},
		{"call", "--url", ts.HTTPURL, "--api-key", testAPIKey, "--secret", testSecret, "--https-secret", "socialize.getUserInfo"},
		{"call", "--url", ts.HTTPURL, "--token", "t", "socialize.getUserInfo"},
		{"call", "--url", ts.HTTPURL, "--api-key", testAPIKey, "--user-key", "AK", "--private-key", key, "socialize.getUserInfo"},
		{"call", "--url", "ftp://x", "--api-key", testAPIKey, "--secret", testSecret, "socialize.getUserInfo"},
		{"call", "--bogus-flag"},
	} {
		if code, out, errOut := runCLI(t, noEnv, args...); code != 2 || out != "" || errOut == "" {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want 2 with a message", args, code, out, errOut)
		}
	}
}
