package e2e

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/socius/socius/internal/pgtest"
	"github.com/socius/socius/internal/syncbuf"
)

// binary is the socius binary that TestMain builds once for every test of the package.
var binary string

func TestMain(m *testing.M) {
	// A test binary started with SIGHUP or SIGINT ignored (under nohup; a background job
	// of a script ignores SIGINT) passes that on to every socius it starts: one that
	// ignores SIGHUP never takes TestHangupTwice's hangups, and one that started with
	// SIGINT ignored exits 1 instead of dying of a second SIGINT (TestSecondSignal).
	// Caught here (and dropped, as ignoring did), they start at their default.
	for _, sig := range []os.Signal{syscall.SIGHUP, os.Interrupt} {
		if signal.Ignored(sig) {
			signal.Notify(make(chan os.Signal, 1), sig)
		}
	}
	dir, err := os.MkdirTemp("", "socius-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "socius")
	// go test puts its own go first on PATH.
	build := exec.Command("go", "build", "-o", binary, "github.com/socius/socius/cmd/socius")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: building cmd/socius: %v\n", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := pgtest.Run(m) // stops the PostgreSQL server if a test started one
	os.RemoveAll(dir)
	os.Exit(code)
}

// admin runs one command of the binary to completion (site and key administration)
// and returns its stdout.
func admin(t *testing.T, args ...string) string {
	t.Helper()
	out, err := runAdmin(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// runAdmin is admin for a caller that reports its own failure (one off the test's
// goroutine): the command's output, or an error naming it with what it printed.
func runAdmin(args ...string) (string, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(binary, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Env = cleanEnv()
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("socius %s: %v\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String(), nil
}

// cleanEnv is the environment without SOCIUS_* variables, so that a developer's own
// settings cannot change what the tests run.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SOCIUS_") {
			env = append(env, kv)
		}
	}
	return env
}

// proc is one running `socius serve`.
type proc struct {
	t        *testing.T
	cmd      *exec.Cmd
	dir      string
	HTTPURL  string // http://127.0.0.1:port
	HTTPSURL string
	HTTPAddr string // 127.0.0.1:port
	AdminURL string // http://127.0.0.1:port of /metrics, /healthz, /readyz
	storeURL string // --store, when not the SQLite file in dir
	// storeFlags are the flags of serve that name its store and master key (--store,
	// --master-key-file), for an admin command on the same store.
	storeFlags []string
	client     *http.Client

	stdout, stderr syncbuf.Buffer
	exited         chan struct{} // closed when the process has exited
	waitErr        error         // cmd.Wait's result, once exited is closed
}

// serve starts `socius serve` on the data folder dir, with HTTP and HTTPS on free
// loopback ports, and returns once it listens. Extra flags are appended. The process
// is killed when the test ends, if it still runs.
func serve(t *testing.T, dir string, flags ...string) *proc {
	t.Helper()
	return serveVia(t, dir, nil, flags...)
}

// serveAfterKill is serve on a data folder whose last server was killed: its nonces
// were lost, so the new one refuses the signed requests timed before its start or in
// its first second (403002, docs/operations.md); the calls that follow are signed
// after it, as a client's next calls would be.
func serveAfterKill(t *testing.T, dir string, flags ...string) *proc {
	t.Helper()
	p := serve(t, dir, flags...)
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second + 10*time.Millisecond)))
	return p
}

// serveVia is serve with the command run by another: wrapper, then the binary and its
// arguments (a shell that sets up the process, for instance).
func serveVia(t *testing.T, dir string, wrapper []string, flags ...string) *proc {
	t.Helper()
	args := append([]string{"serve", "--data", dir, "--http", "127.0.0.1:0", "--https", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--log-level", "warn"}, flags...)
	p := &proc{t: t, dir: dir, exited: make(chan struct{})}
	for _, name := range []string{"--store", "--master-key-file"} {
		if i := slices.Index(flags, name); i >= 0 && i+1 < len(flags) {
			p.storeFlags = append(p.storeFlags, name, flags[i+1])
			if name == "--store" {
				p.storeURL = flags[i+1]
			}
		}
	}
	argv := append(append(slices.Clone(wrapper), binary), args...)
	p.cmd = exec.Command(argv[0], argv[1:]...)
	p.cmd.Env = cleanEnv()
	p.cmd.Stderr = &p.stderr
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	go func() {
		// Copy stdout line by line, noting the addresses as they are printed: HTTPS,
		// HTTP, then the admin listener, which means Socius is serving.
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := sc.Text()
			p.stdout.Write([]byte(line + "\n"))
			if rest, ok := strings.CutPrefix(line, "socius: serving HTTPS on "); ok {
				p.HTTPSURL, _, _ = strings.Cut(rest, " ")
			}
			if rest, ok := strings.CutPrefix(line, "socius: serving HTTP on "); ok {
				p.HTTPURL, _, _ = strings.Cut(rest, " ")
			}
			if rest, ok := strings.CutPrefix(line, "socius: serving /metrics, /healthz and /readyz on "); ok {
				p.AdminURL, _, _ = strings.Cut(rest, " ")
				close(ready)
			}
		}
		io.Copy(io.Discard, out)
		p.waitErr = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.exited
	})
	select {
	case <-ready:
	case <-p.exited:
		t.Fatalf("socius serve exited before serving: %v\nstdout:\n%s\nstderr:\n%s", p.waitErr, p.stdout.String(), p.stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("socius serve did not start within 30 s\nstdout:\n%s\nstderr:\n%s", p.stdout.String(), p.stderr.String())
	}
	p.HTTPAddr = strings.TrimPrefix(p.HTTPURL, "http://")
	p.client = p.newClient()
	return p
}

// newClient returns a client that trusts the server's generated certificate.
func (p *proc) newClient() *http.Client {
	p.t.Helper()
	pem, err := os.ReadFile(filepath.Join(p.dir, "tls-cert.pem"))
	if err != nil {
		p.t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		p.t.Fatal("cannot read the generated certificate")
	}
	return &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, MaxIdleConnsPerHost: 64},
	}
}

// signal sends sig to the process.
func (p *proc) signal(sig os.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("signal %v: %v", sig, err)
	}
}

// kill ends the process with SIGKILL and waits for it.
func (p *proc) kill() {
	p.t.Helper()
	p.signal(syscall.SIGKILL)
	p.wait(10 * time.Second)
}

// wait waits up to d for the process to exit and returns its exit code (-1 when a
// signal ended it).
func (p *proc) wait(d time.Duration) int {
	p.t.Helper()
	select {
	case <-p.exited:
	case <-time.After(d):
		p.t.Fatalf("socius did not exit within %v\nstdout:\n%s\nstderr:\n%s", d, p.stdout.String(), p.stderr.String())
	}
	var ee *exec.ExitError
	if errors.As(p.waitErr, &ee) {
		return ee.ExitCode()
	}
	if p.waitErr != nil {
		p.t.Fatal(p.waitErr)
	}
	return 0
}

// stop ends the process with SIGTERM and requires a clean exit.
func (p *proc) stop() {
	p.t.Helper()
	p.signal(syscall.SIGTERM)
	if code := p.wait(15 * time.Second); code != 0 {
		p.t.Fatalf("socius exited with %d after SIGTERM\nstdout:\n%s\nstderr:\n%s", code, p.stdout.String(), p.stderr.String())
	}
}
