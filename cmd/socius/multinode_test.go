package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/socius/socius"
	"github.com/socius/socius/internal/pgtest"
)

// The socius binary, built once per test run by binary and removed by TestMain.
var (
	binaryOnce sync.Once
	binaryDir  string
	binaryPath string
	binaryErr  error
)

// binary builds the socius command into a temp folder, once.
func binary(t *testing.T) string {
	t.Helper()
	binaryOnce.Do(func() {
		if binaryDir, binaryErr = os.MkdirTemp("", "socius-bin-"); binaryErr != nil {
			return
		}
		binaryPath = filepath.Join(binaryDir, "socius")
		out, err := exec.Command(goTool(), "build", "-o", binaryPath, ".").CombinedOutput()
		if err != nil {
			binaryErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binaryErr != nil {
		t.Fatal(binaryErr)
	}
	return binaryPath
}

func removeBinary() {
	if binaryDir != "" {
		os.RemoveAll(binaryDir)
	}
}

// A node is a `socius serve` process.
type node struct {
	name     string
	cmd      *exec.Cmd
	httpURL  string
	httpsURL string
	certFile string
	stderr   bytes.Buffer
	exited   chan struct{}
}

var (
	servingHTTP  = regexp.MustCompile(`serving HTTP on (http://\S+)`)
	servingHTTPS = regexp.MustCompile(`serving HTTPS on (https://\S+) \(certificate (.+)\)`)
)

// startNode runs `socius serve` with the arguments and waits until it listens. It may
// run on any goroutine: it reports failures as errors. The test's cleanup stops the
// node.
func startNode(t *testing.T, bin, name string, args ...string) (*node, error) {
	n := &node{name: name, exited: make(chan struct{})}
	n.cmd = exec.Command(bin, append([]string{"serve"}, args...)...)
	n.cmd.Env = append(os.Environ(), "SOCIUS_STORE=") // the flags alone choose
	n.cmd.Stderr = &n.stderr
	dieWithParent(n.cmd)
	stdout, err := n.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := n.cmd.Start(); err != nil {
		return nil, err
	}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			if m := servingHTTPS.FindStringSubmatch(line); m != nil {
				n.httpsURL, n.certFile = m[1], m[2]
			}
			if m := servingHTTP.FindStringSubmatch(line); m != nil {
				n.httpURL = m[1]
				close(ready)
			}
		}
		io.Copy(io.Discard, stdout)
	}()
	go func() {
		n.cmd.Wait()
		close(n.exited)
	}()
	t.Cleanup(func() { n.stop(t) })
	select {
	case <-ready:
		return n, nil
	case <-n.exited:
		return nil, fmt.Errorf("node %s exited at start: %s", name, n.stderr.String())
	case <-time.After(60 * time.Second):
		return nil, fmt.Errorf("node %s did not start listening within 60 s: %s", name, n.stderr.String())
	}
}

// stop ends the node as an operator does (SIGTERM: calls in flight finish).
func (n *node) stop(t *testing.T) {
	select {
	case <-n.exited:
		return
	default:
	}
	n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.exited:
	case <-time.After(15 * time.Second):
		n.cmd.Process.Kill()
		<-n.exited
		t.Errorf("node %s did not stop within 15 s of SIGTERM", n.name)
	}
}

// postTo posts the form to baseURL/method and decodes the answer.
func postTo(t *testing.T, client *http.Client, baseURL, method string, params url.Values) answer {
	t.Helper()
	resp, err := client.Post(baseURL+"/"+method, "application/x-www-form-urlencoded", strings.NewReader(params.Encode()))
	if err != nil {
		t.Fatalf("%s: %v", method, err)
	}
	defer resp.Body.Close()
	var a answer
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		t.Fatalf("%s: answer is not JSON: %v", method, err)
	}
	return a
}

// sendRaw writes the bytes of one HTTP request to addr and reads the answer.
func sendRaw(t *testing.T, baseURL string, request []byte) answer {
	t.Helper()
	u, err := url.Parse(baseURL)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.DialTimeout("tcp", u.Host, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := conn.Write(request); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var a answer
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		t.Fatalf("answer is not JSON: %v", err)
	}
	return a
}

// TestTwoNodesOneDatabase runs two `socius serve` processes on one PostgreSQL
// database, as two nodes behind a load balancer, and checks through real HTTP that
// they behave as one server.
func TestTwoNodesOneDatabase(t *testing.T) {
	dbURL := pgtest.URL(t)
	keyFile := testMasterKeyFile(t) // every node, and the admin commands, share it
	bin := binary(t)
	// Both start at once on the new database: both run its migrations.
	nodes := make([]*node, 2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i, name := range []string{"A", "B"} {
		dir := t.TempDir()
		wg.Go(func() {
			nodes[i], errs[i] = startNode(t, bin, name, "--store", dbURL, "--master-key-file", keyFile, "--data", dir,
				"--http", "127.0.0.1:0", "--https", "127.0.0.1:0", "--admin", "",
				"--site-api-key", testAPIKey, "--site-secret", testSecret, "--log-level", "error")
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	a, b := nodes[0], nodes[1]
	// One client for both: it trusts each node's generated certificate.
	pool := x509.NewCertPool()
	for _, n := range []*node{a, b} {
		pem, err := os.ReadFile(n.certFile)
		if err != nil || !pool.AppendCertsFromPEM(pem) {
			t.Fatalf("certificate of node %s: %v", n.name, err)
		}
	}
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	call := func(n *node, method string, params url.Values) answer {
		t.Helper()
		return postTo(t, client, n.httpURL, method, signedFor(t, n.httpURL, method, params, "", ""))
	}
	if a := call(a, "socialize.notifyLogin", url.Values{"siteUID": {"u1"}}); a.code() != 0 {
		t.Fatalf("notifyLogin on A: %v", a)
	}

	t.Run("ReplayToTheOtherNode", func(t *testing.T) {
		// Signed for a host without a port, so that the very same bytes verify on
		// both nodes, wherever they listen.
		params := signedFor(t, "http://socialize.localtest", "socialize.getUserInfo", url.Values{"UID": {"u1"}}, "", "")
		body := params.Encode()
		request := []byte("POST /socialize.getUserInfo HTTP/1.1\r\nHost: socialize.localtest\r\n" +
			"Content-Type: application/x-www-form-urlencoded\r\n" +
			fmt.Sprintf("Content-Length: %d\r\nConnection: close\r\n\r\n", len(body)) + body)
		if got := sendRaw(t, a.httpURL, request); got.code() != 0 || got.str("UID") != "u1" {
			t.Fatalf("signed request to A: %v", got)
		}
		if got := sendRaw(t, b.httpURL, request); got.code() != socius.CodeDuplicateNonce {
			t.Errorf("the same request replayed to B: %v, want 403004", got)
		}
		if got := sendRaw(t, a.httpURL, request); got.code() != socius.CodeDuplicateNonce {
			t.Errorf("the same request replayed to A: %v, want 403004", got)
		}
	})

	t.Run("AdminCommandsSeenByBoth", func(t *testing.T) {
		admin := func(args ...string) string {
			t.Helper()
			cmd := exec.Command(binary(t), append(args, "--store", dbURL, "--master-key-file", keyFile)...)
			cmd.Env = append(os.Environ(), "SOCIUS_STORE=")
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("socius %s: %v\n%s", strings.Join(args, " "), err, out)
			}
			return string(out)
		}
		out := admin("site", "create", "--name", "shop")
		apiKey := regexp.MustCompile(`apiKey: (\S+)`).FindStringSubmatch(out)[1]
		secret := regexp.MustCompile(`secret: (\S+)`).FindStringSubmatch(out)[1]
		out = admin("key", "create", "--site", apiKey, "--methods", "socialize.getUserInfo")
		userKey := regexp.MustCompile(`userKey: (\S+)`).FindStringSubmatch(out)[1]
		keySecret := regexp.MustCompile(`secret:\s+(\S+)`).FindStringSubmatch(out)[1]

		// At once, with no restart: the site on A, its key on B.
		p := signedFor(t, a.httpURL, "socialize.notifyLogin", url.Values{"siteUID": {"shopper"}, "apiKey": {apiKey}}, "", secret)
		if got := postTo(t, client, a.httpURL, "socialize.notifyLogin", p); got.code() != 0 {
			t.Fatalf("notifyLogin on A with the new site: %v", got)
		}
		p = signedFor(t, b.httpURL, "socialize.getUserInfo", url.Values{"UID": {"shopper"}, "apiKey": {apiKey}}, userKey, keySecret)
		if got := postTo(t, client, b.httpURL, "socialize.getUserInfo", p); got.code() != 0 || got.str("UID") != "shopper" {
			t.Errorf("getUserInfo on B with the new key: %v", got)
		}
		p = signedFor(t, a.httpURL, "socialize.setUserInfo", url.Values{"UID": {"shopper"}, "apiKey": {apiKey}, "userInfo": {"{}"}}, userKey, keySecret)
		if got := postTo(t, client, a.httpURL, "socialize.setUserInfo", p); got.code() != socius.CodePermissionDenied {
			t.Errorf("setUserInfo on A with a getUserInfo-only key: %v, want 403007", got)
		}
		if out := admin("key", "delete", userKey); !strings.Contains(out, "deleted") {
			t.Fatalf("key delete: %s", out)
		}
		p = signedFor(t, b.httpURL, "socialize.getUserInfo", url.Values{"UID": {"shopper"}, "apiKey": {apiKey}}, userKey, keySecret)
		if got := postTo(t, client, b.httpURL, "socialize.getUserInfo", p); got.code() != socius.CodeUnauthorizedUser {
			t.Errorf("getUserInfo on B with the deleted key: %v, want 403005", got)
		}
	})

	t.Run("ConcurrentWritersOnBothNodes", func(t *testing.T) {
		if got := call(b, "socialize.notifyLogin", url.Values{"siteUID": {"shared"}}); got.code() != 0 {
			t.Fatalf("notifyLogin: %v", got)
		}
		fields := []string{"nickname", "firstName", "lastName", "email", "photoURL", "thumbnailURL"}
		const writers, rounds = 4, 8
		var wg sync.WaitGroup
		for i, f := range fields {
			for w := range writers {
				wg.Go(func() {
					for r := range rounds {
						n := []*node{a, b}[(i+w+r)%2]
						v := fmt.Sprintf("%s-%d-%d", f, w, r)
						if got := call(n, "socialize.setUserInfo", url.Values{"UID": {"shared"}, "userInfo": {fmt.Sprintf(`{"%s":"%s"}`, f, v)}}); got.code() != 0 {
							t.Errorf("setUserInfo %s on %s: %v", v, n.name, got)
						}
					}
				})
			}
		}
		wg.Wait()
		for _, n := range []*node{a, b} {
			got := call(n, "socialize.getUserInfo", url.Values{"UID": {"shared"}})
			for _, f := range fields {
				if v := got.str(f); !strings.HasPrefix(v, f+"-") || !strings.HasSuffix(v, fmt.Sprintf("-%d", rounds-1)) {
					t.Errorf("%s on %s = %q: a write was lost", f, n.name, v)
				}
			}
		}
	})

	t.Run("TokenOfOneNodeOnTheOther", func(t *testing.T) {
		got := postTo(t, client, a.httpsURL, "socialize.getToken", url.Values{
			"grant_type": {"client_credentials"}, "client_id": {testAPIKey}, "client_secret": {testSecret},
			"x_siteUID": {"tokenUser"},
		})
		token := got.str("access_token")
		if got.code() != 0 || token == "" {
			t.Fatalf("getToken on A: %v", got)
		}
		withToken := func(n *node, method string, params url.Values) answer {
			t.Helper()
			params.Set("oauth_token", token)
			return postTo(t, client, n.httpsURL, method, params)
		}
		if got := withToken(b, "socialize.getUserInfo", url.Values{}); got.code() != 0 || got.str("UID") != "tokenUser" {
			t.Fatalf("getUserInfo on B with A's token: %v", got)
		}
		if got := withToken(a, "socialize.getUserInfo", url.Values{}); got.code() != 0 {
			t.Fatalf("getUserInfo on A with its token: %v", got)
		}
		if got := withToken(b, "socialize.logout", url.Values{}); got.code() != 0 {
			t.Fatalf("logout on B with the token: %v", got)
		}
		if got := withToken(a, "socialize.getUserInfo", url.Values{}); got.code() != socius.CodeInvalidToken {
			t.Errorf("getUserInfo on A after the logout on B: %v, want 403025", got)
		}
	})

	t.Run("MobileSessionOfOneNodeOnTheOther", func(t *testing.T) {
		got := call(a, "socialize.notifyLogin", url.Values{"siteUID": {"mobileUser"}, "targetEnv": {"mobile"}})
		token, secret := got.str("sessionToken"), got.str("sessionSecret")
		if got.code() != 0 || token == "" || secret == "" {
			t.Fatalf("notifyLogin mobile on A: %v", got)
		}
		ts := &testServer{Clock: &socius.OffsetClock{}}
		// Signed for B with the session secret: accepted by B once. A logout on A
		// then ends the session on B.
		p := ts.sessionSigned(t, b.httpsURL, "socialize.getUserInfo", nil, token, secret)
		if got := postTo(t, client, b.httpsURL, "socialize.getUserInfo", p); got.code() != 0 || got.str("UID") != "mobileUser" {
			t.Fatalf("getUserInfo on B with A's session: %v", got)
		}
		if got := postTo(t, client, b.httpsURL, "socialize.getUserInfo", p); got.code() != socius.CodeDuplicateNonce {
			t.Errorf("the same session call again on B: %v, want 403004", got)
		}
		if got := call(a, "socialize.logout", url.Values{"UID": {"mobileUser"}}); got.code() != 0 {
			t.Fatalf("logout on A: %v", got)
		}
		p = ts.sessionSigned(t, b.httpsURL, "socialize.getUserInfo", nil, token, secret)
		if got := postTo(t, client, b.httpsURL, "socialize.getUserInfo", p); got.code() != socius.CodeInvalidToken {
			t.Errorf("getUserInfo on B after the logout on A: %v, want 403025", got)
		}
	})
}
