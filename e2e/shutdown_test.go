package e2e

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/socius/socius/internal/syncbuf"
)

// slowCall is a setUserInfo call whose body is sent in two halves: between them the
// call is in flight on the server (its handler is reading the body).
type slowCall struct {
	t    *testing.T
	conn net.Conn
	rest string
	sent int // the bytes of the body sent so far
}

// startSlowCall sends the request line, the headers and half the body of a signed
// setUserInfo for uid over a new connection (TLS when secure).
func (p *proc) startSlowCall(uid, userInfo string, secure bool) *slowCall {
	p.t.Helper()
	base := p.HTTPURL
	if secure {
		base = p.HTTPSURL
	}
	body := authorize(lab, base, "socialize.setUserInfo", url.Values{"UID": {uid}, "userInfo": {userInfo}}).Encode()
	var conn net.Conn
	var err error
	if secure {
		conn, err = tls.Dial("tcp", strings.TrimPrefix(base, "https://"), p.client.Transport.(*http.Transport).TLSClientConfig)
	} else {
		conn, err = net.Dial("tcp", p.HTTPAddr)
	}
	if err != nil {
		p.t.Fatal(err)
	}
	p.t.Cleanup(func() { conn.Close() })
	head := fmt.Sprintf("POST /socialize.setUserInfo HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n",
		strings.TrimPrefix(strings.TrimPrefix(base, "https://"), "http://"), len(body))
	half := len(body) / 2
	if _, err := io.WriteString(conn, head+body[:half]); err != nil {
		p.t.Fatal(err)
	}
	return &slowCall{t: p.t, conn: conn, rest: body[half:], sent: half}
}

// receiving waits until the server holds n bytes of request bodies (the
// socius_request_body_bytes gauge): half-sent calls whose bytes those are have had
// their heads read and are in flight. A call whose head the server has not read yet
// when a shutdown begins is dropped (on the fast path the connection is still idle), so
// the tests wait for this before they signal, rather than sleep and hope: a loaded
// machine can leave the head unread for longer.
func (p *proc) receiving(n int) {
	p.t.Helper()
	var held float64
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		resp, err := http.Get(p.AdminURL + "/metrics")
		if err != nil {
			p.t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			p.t.Fatal(err)
		}
		for _, line := range strings.Split(string(body), "\n") {
			if v, ok := strings.CutPrefix(line, "socius_request_body_bytes "); ok {
				held, _ = strconv.ParseFloat(v, 64)
			}
		}
		if held >= float64(n) {
			return
		}
	}
	p.t.Fatalf("the server holds %v bytes of request bodies after 10 s, want %d", held, n)
}

// finish sends the rest of the body and returns the answer.
func (c *slowCall) finish() (answer, *http.Response, error) {
	if _, err := io.WriteString(c.conn, c.rest); err != nil {
		return nil, nil, err
	}
	return c.read()
}

func (c *slowCall) read() (answer, *http.Response, error) {
	c.conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c.conn), nil)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	var a answer
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		return nil, resp, err
	}
	return a, resp, nil
}

// refusing waits until deadline for addr to refuse new TCP connections (at once, on an
// idle machine). A dial that times out tells nothing: a closed port is refused at once,
// and a listener takes a connection into its queue at once, so only this process,
// left unscheduled for the whole of the dial's timeout (or a full accept queue), times
// it out; it is tried again.
func refusing(addr string, deadline time.Time) error {
	accepted, timedOut := 0, 0
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		var ne net.Error
		switch {
		case errors.Is(err, syscall.ECONNREFUSED):
			return nil
		case errors.Is(err, syscall.ECONNRESET):
			// Queued on the listener as it closed: reset, never accepted. Try again.
		case errors.As(err, &ne) && ne.Timeout():
			timedOut++
		case err != nil:
			return fmt.Errorf("dial %s: %v, want connection refused", addr, err)
		default:
			accepted++
			conn.Close()
		}
		if time.Now().After(deadline) {
			if accepted == 0 && timedOut > 0 {
				return fmt.Errorf("%s neither refused nor accepted a connection by 5 s after the signal: %d dials timed out", addr, timedOut)
			}
			return fmt.Errorf("%s still accepts connections 5 s after the signal (%d accepted, %d dials timed out)", addr, accepted, timedOut)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestGracefulShutdown sends SIGTERM (and SIGINT, and SIGHUP) while concurrent writes
// run and two calls, one over HTTP and one over HTTPS, are half sent. Both listeners
// must refuse new connections at once; the two calls must still complete with errorCode
// 0; the process must close its store and exit 0 well within its shutdown bound; and
// after a restart every acknowledged write is there.
func TestGracefulShutdown(t *testing.T) {
	for _, sig := range []os.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP} {
		for _, b := range backends {
			t.Run(fmt.Sprintf("%v/%s", sig, b.name), func(t *testing.T) {
				if sig == syscall.SIGHUP && signal.Ignored(syscall.SIGHUP) {
					// A child inherits ignored hangups, and Socius then keeps them
					// ignored (TestHangupIgnored).
					t.Skip("the tests run with SIGHUP ignored (nohup)")
				}
				dir := t.TempDir()
				flags := append(append([]string{}, labFlags...), b.flags(t, dir)...)
				p := serve(t, dir, flags...)
				slots := newSlots(2)
				for u := 0; u < 2; u++ {
					p.login(lab, fmt.Sprintf("crash-user-%d", u), "")
				}
				p.login(lab, "slow-http", "")
				p.login(lab, "slow-https", "")

				slowHTTP := p.startSlowCall("slow-http", `{"nickname":"finished over HTTP"}`, false)
				slowHTTPS := p.startSlowCall("slow-https", `{"nickname":"finished over HTTPS"}`, true)
				p.receiving(slowHTTP.sent + slowHTTPS.sent) // before the load, whose bodies count too

				var acks atomic.Int64
				stop := make(chan struct{})
				done := make(chan struct{})
				go func() {
					writeLoad(t, p, eachAlone(slots), stop, &acks)
					close(done)
				}()
				for deadline := time.Now().Add(10 * time.Second); acks.Load() < 30; time.Sleep(5 * time.Millisecond) {
					if time.Now().After(deadline) {
						t.Fatalf("only %d writes acknowledged in 10 s", acks.Load())
					}
				}
				start := time.Now()
				p.signal(sig)

				// Both API listeners refuse new connections while the two calls are
				// still in flight; the admin listener still answers, not ready. Both
				// within 5 s of the signal, which leaves the calls half of the
				// shutdown's 10 s to finish in.
				refused := start.Add(5 * time.Second)
				if err := refusing(p.HTTPAddr, refused); err != nil {
					t.Error(err)
				}
				if err := refusing(strings.TrimPrefix(p.HTTPSURL, "https://"), refused); err != nil {
					t.Error(err)
				}
				if resp, err := http.Get(p.AdminURL + "/readyz"); err != nil || resp.StatusCode != 503 {
					t.Errorf("/readyz while draining: %v %v", resp, err)
				} else {
					resp.Body.Close()
				}
				for _, c := range []*slowCall{slowHTTP, slowHTTPS} {
					a, resp, err := c.finish()
					if err != nil || a.code() != 0 {
						t.Fatalf("a call in flight at the signal: %v %v", a, err)
					}
					if !resp.Close {
						t.Error("the answer of a call in flight at shutdown does not close its connection")
					}
				}
				<-done
				close(stop)
				if code := p.wait(10 * time.Second); code != 0 {
					t.Fatalf("exit code %d after %v\nstdout:\n%s\nstderr:\n%s", code, sig, p.stdout.String(), p.stderr.String())
				}
				t.Logf("%v: exited 0 after %v, %d writes acknowledged", sig, time.Since(start).Round(time.Millisecond), acks.Load())
				if !strings.Contains(p.stdout.String(), "socius: shutting down") {
					t.Errorf("stdout does not say it is shutting down:\n%s", p.stdout.String())
				}
				// A store closed cleanly has checkpointed and removed its write-ahead log.
				if fi, err := os.Stat(filepath.Join(dir, "socius.db-wal")); b.file && err == nil && fi.Size() > 0 {
					t.Errorf("socius.db-wal is left behind (%d bytes): the store was not closed", fi.Size())
				}

				p = serve(t, dir, flags...)
				checkSlots(t, p, slots)
				for uid, want := range map[string]string{"slow-http": "finished over HTTP", "slow-https": "finished over HTTPS"} {
					if a := p.mustCall(lab, "socialize.getUserInfo", url.Values{"UID": {uid}}); a.str("nickname") != want {
						t.Errorf("%s: nickname %q, want %q: an acknowledged write is lost", uid, a.str("nickname"), want)
					}
				}
				p.stop()
			})
		}
	}
}

// TestShutdownBound: a request that never completes (its body never arrives) does not
// hold the process beyond --shutdown-timeout. The process cuts it off, still closes its
// store, says so, and exits 0 (it had started no call: nothing was applied or lost;
// a call cut off makes it exit 1, cmd/socius TestShutdownCutsCallInFlight); what was
// acknowledged before is kept.
func TestShutdownBound(t *testing.T) {
	dir := t.TempDir()
	flags := append(append([]string{}, labFlags...), "--shutdown-timeout", "1s")
	p := serve(t, dir, flags...)
	p.login(lab, "u1", `{"nickname":"kept"}`)
	stuck := p.startSlowCall("u1", `{"nickname":"never finished"}`, false)
	p.receiving(stuck.sent)
	start := time.Now()
	p.signal(syscall.SIGTERM)
	code := p.wait(10 * time.Second)
	took := time.Since(start)
	if code != 0 || took < time.Second || took > 8*time.Second {
		t.Errorf("exit code %d after %v, want 0 after about 1 s", code, took)
	}
	if !strings.Contains(p.stderr.String(), "requests still arriving after 1s were cut off") {
		t.Errorf("stderr does not explain the cut-off:\n%s", p.stderr.String())
	}
	if a, _, err := stuck.read(); err == nil {
		t.Errorf("the stuck call got an answer: %v", a)
	}
	if fi, err := os.Stat(filepath.Join(dir, "socius.db-wal")); err == nil && fi.Size() > 0 {
		t.Errorf("socius.db-wal is left behind (%d bytes): the store was not closed", fi.Size())
	}
	p = serve(t, dir, flags...)
	if a := p.mustCall(lab, "socialize.getUserInfo", url.Values{"UID": {"u1"}}); a.str("nickname") != "kept" {
		t.Errorf("after the restart nickname = %q, want kept", a.str("nickname"))
	}
	p.stop()
}

// TestSecondSignal: while a shutdown waits for a stuck call, a second signal stops the
// process at once (the operator's Ctrl-C twice).
func TestSecondSignal(t *testing.T) {
	dir := t.TempDir()
	p := serve(t, dir, append(append([]string{}, labFlags...), "--shutdown-timeout", "60s")...)
	p.login(lab, "u1", "")
	stuck := p.startSlowCall("u1", `{"nickname":"never finished"}`, false)
	p.receiving(stuck.sent)
	// Back to back, as a loaded machine can deliver them: the second comes before the
	// process has taken the first in, and must not be lost (it was, with a handler
	// that stopped listening only once it had begun the shutdown).
	start := time.Now()
	p.signal(syscall.SIGTERM)
	p.signal(syscall.SIGINT)
	p.wait(5 * time.Second)
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("the second signal took %v to stop the process", took)
	}
	// Killed by the signal taken second, as without a handler: what a shell expects
	// of Ctrl-C. (Two signals pending at once are delivered lowest number first:
	// SIGINT may be the first.)
	var ee *exec.ExitError
	if !errors.As(p.waitErr, &ee) {
		t.Fatalf("the process ended with %v; want killed by a signal", p.waitErr)
	}
	if ws, ok := ee.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGINT && ws.Signal() != syscall.SIGTERM {
		t.Errorf("the process ended with %v; want killed by SIGINT or SIGTERM", ee)
	}
}

// stuckShutdown starts a server with the shutdown timeout given and a call whose
// body never finishes, sends it sig and waits until the shutdown has begun (a second
// signal sent before that could be one with the first: two pending at once are one).
// It returns the server and when sig was sent.
func stuckShutdown(t *testing.T, shutdownTimeout string, sig syscall.Signal) (*proc, time.Time) {
	t.Helper()
	p := serve(t, t.TempDir(), append(append([]string{}, labFlags...), "--shutdown-timeout", shutdownTimeout)...)
	p.login(lab, "u1", "")
	stuck := p.startSlowCall("u1", `{"nickname":"never finished"}`, false)
	p.receiving(stuck.sent)
	start := time.Now()
	p.signal(sig)
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(p.stdout.String(), "socius: shutting down"); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no shutdown 10 s after %v\nstdout:\n%s", sig, p.stdout.String())
		}
	}
	return p, start
}

// TestHangupTwice: a closed terminal sends its foreground process two hangups (the
// shell's and the kernel's) at once; the second does not stop it at once as a second
// SIGTERM or SIGINT would: the shutdown runs its course (here, cut off by its timeout
// with a request's body stuck: exit status 0), and a SIGTERM after them still stops it
// at once (with a shutdown timeout of a minute, so that only the SIGTERM can have
// ended it within the wait below).
func TestHangupTwice(t *testing.T) {
	for _, then := range []syscall.Signal{0, syscall.SIGTERM} {
		shutdownTimeout := "3s"
		if then != 0 {
			shutdownTimeout = "60s"
		}
		p, start := stuckShutdown(t, shutdownTimeout, syscall.SIGHUP)
		p.signal(syscall.SIGHUP)
		last := time.Now() // the signal that should stop it at once, if any
		if then != 0 {
			p.signal(then)
		}
		p.wait(10 * time.Second)
		took, sinceLast := time.Since(start), time.Since(last)
		if then == 0 {
			if p.waitErr != nil || took < 3*time.Second {
				t.Errorf("two hangups: %v after %v; want exit status 0 at the 3 s shutdown timeout", p.waitErr, took)
			}
			continue
		}
		var ee *exec.ExitError
		if !errors.As(p.waitErr, &ee) {
			t.Fatalf("then %v: the process ended with %v", then, p.waitErr)
		}
		// Timed from that signal, not from the first hangup: the wait for the
		// shutdown's line above may take a while on a loaded machine. The bound only
		// tells a signal taken from one ignored (the shutdown would go on for a
		// minute): 2.5 s, below the 3 s timeout this case once had, was a guess at
		// how fast a loaded machine kills and reaps a process.
		if ws, _ := ee.Sys().(syscall.WaitStatus); !ws.Signaled() || ws.Signal() != then || sinceLast > 8*time.Second {
			t.Errorf("two hangups then %v: %v %v after it; want killed by it at once", then, ee, sinceLast)
		}
	}
}

// TestTermTwice: GNU timeout (`timeout 60 socius serve --emulator --export-on-exit
// ...`, as a CI job may start the emulator) sends its SIGTERM to the process and then
// to its process group, the process in it: a second SIGTERM right after the first does
// not stop the process at once as it would skip the shutdown's export and clean-up;
// the shutdown runs its course (cut off by its timeout with a request's body stuck:
// exit status 0). A SIGTERM sent again more than a second later still stops it at
// once.
func TestTermTwice(t *testing.T) {
	// Two at once (3 s shutdown timeout). The second is sent once the shutdown's line
	// is read: should that take so long (a loaded machine) that the two are more than
	// 800 ms apart, near the server's one-second window, the case asked about did not
	// happen: again, up to three times, then left unchecked (logged).
	for attempt := 1; ; attempt++ {
		p, start := stuckShutdown(t, "3s", syscall.SIGTERM)
		p.signal(syscall.SIGTERM)
		apart := time.Since(start)
		p.wait(10 * time.Second)
		took := time.Since(start)
		if apart > 800*time.Millisecond {
			if attempt == 3 {
				t.Logf("two SIGTERMs at once not checked: the second came %v after the first in three tries (a loaded machine)", apart)
				break
			}
			t.Logf("the second SIGTERM came %v after the first: again", apart)
			continue
		}
		if p.waitErr != nil || took < 3*time.Second {
			t.Errorf("two SIGTERMs at once: %v after %v; want exit status 0 at the 3 s shutdown timeout", p.waitErr, took)
		}
		break
	}

	// One 1.5 s after the first (60 s shutdown timeout: only the signal can end it
	// within the wait).
	p, _ := stuckShutdown(t, "60s", syscall.SIGTERM)
	time.Sleep(1500 * time.Millisecond)
	p.signal(syscall.SIGTERM)
	last := time.Now()
	p.wait(10 * time.Second)
	sinceLast := time.Since(last)
	var ee *exec.ExitError
	if !errors.As(p.waitErr, &ee) {
		t.Fatalf("a SIGTERM 1.5 s after the first: the process ended with %v; want killed by it", p.waitErr)
	}
	if ws, _ := ee.Sys().(syscall.WaitStatus); !ws.Signaled() || ws.Signal() != syscall.SIGTERM || sinceLast > 8*time.Second {
		t.Errorf("a SIGTERM 1.5 s after the first: %v %v after it; want killed by it at once", ee, sinceLast)
	}
}

// TestShutdownThroughTunnel: a call in flight at the signal inside a CONNECT tunnel
// (how the gigya npm package and the Python SDK reach the HTTPS listener) is answered
// through the tunnel before the process exits. (The HTTP server does not wait for the
// hijacked tunnel connection; Main.Close does. Without that the answer raced the exit,
// which it mostly won: a few rounds make a loss likelier to show.)
func TestShutdownThroughTunnel(t *testing.T) {
	for i := 0; i < 3; i++ {
		dir := t.TempDir()
		p := serve(t, dir, labFlags...)
		p.login(lab, "u1", "")
		conn, err := net.Dial("tcp", p.HTTPAddr)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "CONNECT socialize.localtest.gigya.com:443 HTTP/1.1\r\nHost: socialize.localtest.gigya.com:443\r\n\r\n")
		br := bufio.NewReader(conn)
		if resp, err := http.ReadResponse(br, &http.Request{Method: "CONNECT"}); err != nil || resp.StatusCode != 200 {
			t.Fatalf("CONNECT: %v %v", resp, err)
		}
		cfg := p.client.Transport.(*http.Transport).TLSClientConfig.Clone()
		cfg.ServerName = "127.0.0.1"
		tc := tls.Client(&bufferedConn{Conn: conn, r: br}, cfg)
		base := "https://socialize.localtest.gigya.com"
		body := authorize(lab, base, "socialize.setUserInfo", url.Values{"UID": {"u1"}, "userInfo": {`{"nickname":"through the tunnel"}`}}).Encode()
		fmt.Fprintf(tc, "POST /socialize.setUserInfo HTTP/1.1\r\nHost: socialize.localtest.gigya.com\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n%s", len(body), body[:len(body)/2])
		p.receiving(len(body) / 2)
		p.signal(syscall.SIGTERM)
		time.Sleep(100 * time.Millisecond)
		io.WriteString(tc, body[len(body)/2:])
		c := &slowCall{t: t, conn: tc}
		a, _, err := c.read()
		if err != nil || a.code() != 0 {
			t.Fatalf("round %d: the call in the tunnel: %v %v", i, a, err)
		}
		if code := p.wait(10 * time.Second); code != 0 {
			t.Fatalf("exit code %d", code)
		}
	}
}

// bufferedConn reads what a bufio.Reader already holds before the connection.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(b []byte) (int, error) { return c.r.Read(b) }

// TestHangupIgnored: Socius started with SIGHUP ignored (as nohup starts a program;
// here a shell ignores it with trap, then execs Socius) keeps ignoring it, and still
// stops on SIGTERM.
func TestHangupIgnored(t *testing.T) {
	dir := t.TempDir()
	p := serveVia(t, dir, []string{"sh", "-c", `trap '' HUP; exec "$@"`, "sh"}, labFlags...)
	p.login(lab, "before-hangup", "")
	p.signal(syscall.SIGHUP)
	select {
	case <-p.exited:
		t.Fatalf("exited on SIGHUP, which it was started with ignored: %v\n%s", p.waitErr, p.stderr.String())
	case <-time.After(300 * time.Millisecond):
	}
	p.login(lab, "after-hangup", "")
	p.signal(syscall.SIGTERM)
	if code := p.wait(15 * time.Second); code != 0 {
		t.Errorf("exit code %d after SIGTERM\n%s", code, p.stderr.String())
	}
}

// TestShutdownWithItsOutputGone: a server whose standard output is a pipe that nobody
// reads any more (`socius serve | tee log` stopped by Ctrl-C, which ends tee as well;
// a log collector restarted) still shuts down gracefully on SIGTERM: exit 0, its
// nonces saved and its store closed. Go kills a program at its first write to such a
// pipe (SIGPIPE) unless the signal is ignored, and serve's first line after the
// signal, "socius: shutting down", was that write: the process died of SIGPIPE with
// nothing saved.
func TestShutdownWithItsOutputGone(t *testing.T) {
	dir := t.TempDir()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary, "serve", "--data", dir, "--http", "127.0.0.1:0", "--https", "", "--admin", "", "--log-level", "warn")
	cmd.Env = cleanEnv()
	cmd.Stdout = w
	var stderr syncbuf.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	var waitErr error
	exited := make(chan struct{}) // closed once the process has exited
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	sc := bufio.NewScanner(r)
	for sc.Scan() && !strings.HasPrefix(sc.Text(), "socius: serving HTTP on ") {
	}
	r.Close() // from now on nobody reads what the server prints
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
		if waitErr != nil {
			t.Fatalf("socius serve, its output gone, after SIGTERM: %v; want exit 0\n%s", waitErr, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("socius serve did not exit within 15 s of SIGTERM\n%s", stderr.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "nonces")); err != nil {
		t.Errorf("nonces not saved at the shutdown: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "socius.db-wal")); err == nil {
		t.Error("socius.db-wal left: the store was not closed")
	}
}
