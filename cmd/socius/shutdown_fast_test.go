package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/socius/socius"
	"github.com/socius/socius/internal/syncbuf"
)

// TestShutdownPartialHead: a kept-alive connection that has sent part of its next head
// when the shutdown begins does not hold it, on either HTTP path (the fast path had
// waited for the head's deadline: with --read-header-timeout at least
// --shutdown-timeout, serve exited 1, "calls still in flight").
func TestShutdownPartialHead(t *testing.T) {
	for _, fast := range []string{"--fast-path=true", "--fast-path=false"} {
		t.Run(fast, func(t *testing.T) {
			ts := startServer(t, fast, "--read-header-timeout", "10s", "--shutdown-timeout", "8s")
			c := keptConn(t, ts)
			defer c.Close()
			io.WriteString(c, "POST /socialize.getUserInfo HTTP/1.1\r\nHo") // part of the next head
			time.Sleep(100 * time.Millisecond)
			start := time.Now()
			err := ts.Close()
			// Held by the head, Close would end at the 8 s shutdown timeout, with an
			// error; the margin below it is for a loaded machine (a Close that is
			// not held takes well under a second).
			if took := time.Since(start); err != nil || took > 6*time.Second {
				t.Errorf("%s: Close took %v: %v", fast, took.Round(time.Millisecond), err)
			}
		})
	}
}

// TestShutdownIdleKeepAlive: an idle kept-alive connection does not hold the shutdown.
func TestShutdownIdleKeepAlive(t *testing.T) {
	ts := startServer(t)
	c := keptConn(t, ts)
	defer c.Close()
	start := time.Now()
	// Held, Close would wait for the 10 s shutdown timeout.
	if err := ts.Close(); err != nil || time.Since(start) > 5*time.Second {
		t.Errorf("Close took %v: %v", time.Since(start), err)
	}
}

func keptConn(t *testing.T, ts *testServer) net.Conn {
	c, err := net.Dial("tcp", hostPort(ts.HTTPURL))
	if err != nil {
		t.Fatal(err)
	}
	body := url.Values{"apiKey": {testAPIKey}, "UID": {"u1"}}.Encode()
	fmt.Fprintf(c, "POST /socialize.getUserInfo HTTP/1.1\r\nHost: socius\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	return c
}

// TestShutdownStalledBody: a request whose body stopped half way when the shutdown
// begins holds it until --shutdown-timeout, on either HTTP path (its body may yet
// come, as TestGracefulShutdown's does); then it is cut off, but no call had started:
// serve says so and exits 0, not 1 with "calls still in flight".
func TestShutdownStalledBody(t *testing.T) {
	for _, fast := range []string{"--fast-path=true", "--fast-path=false"} {
		t.Run(fast, func(t *testing.T) {
			var logs syncbuf.Buffer
			headRead := make(chan struct{}, 1)
			ts := startMain(t, func(m *Main) {
				m.LogOutput = &logs
				m.connStateSeen = func(_ net.Conn, state http.ConnState) {
					if state == http.StateActive {
						select {
						case headRead <- struct{}{}:
						default:
						}
					}
				}
			}, fast, "--shutdown-timeout", "1s", "--log-level", "warn")
			c, err := net.Dial("tcp", hostPort(ts.HTTPURL))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			io.WriteString(c, "POST /socialize.getUserInfo HTTP/1.1\r\nHost: socius\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nUID=a")
			// The shutdown must begin once the server has read the head, not before: a
			// connection still reading its head is closed by the shutdown at once (the
			// fast path's), and one not yet accepted is dropped with its listener. A
			// fixed pause (200 ms) guessed how fast a loaded machine gets there.
			select {
			case <-headRead:
			case <-time.After(10 * time.Second):
				t.Fatal("the server had not read the request's head after 10 s")
			}
			if err := ts.Close(); err != nil {
				t.Errorf("Close with a stalled body: %v", err)
			}
			if !strings.Contains(logs.String(), "requests still arriving after 1s were cut off; no call had started") {
				t.Errorf("the log says:\n%s", logs.String())
			}
		})
	}
}

// blockedUpdates holds every profile update until release is closed: a call in
// flight that does not end.
type blockedUpdates struct {
	socius.Store
	release chan struct{}
}

func (b blockedUpdates) UpdateProfile(ctx context.Context, apiKey, uid string, p *socius.Patch, now time.Time) error {
	<-b.release
	return b.Store.UpdateProfile(ctx, apiKey, uid, p, now)
}

// TestShutdownCutsCallInFlight: a call still running at --shutdown-timeout is cut off,
// and Close fails with "calls still in flight" (serve exits 1): its answer is lost,
// whether or not its work was done.
func TestShutdownCutsCallInFlight(t *testing.T) {
	release := make(chan struct{})
	ts := startMain(t, func(m *Main) {
		m.wrapStore = func(st socius.Store) socius.Store { return blockedUpdates{st, release} }
	}, "--shutdown-timeout", "1s")
	t.Cleanup(func() { close(release) }) // before startMain's own cleanup
	ts.login(t, "u1")
	body := ts.signed(t, ts.HTTPURL, "socialize.setUserInfo", url.Values{"UID": {"u1"}, "userInfo": {`{"nickname":"stuck"}`}}, "", "").Encode()
	go func() {
		if resp, err := ts.client.Post(ts.HTTPURL+"/socialize.setUserInfo", "application/x-www-form-urlencoded", strings.NewReader(body)); err == nil {
			resp.Body.Close()
		}
	}()
	ts.waitInFlight(t, 1)
	if err := ts.Close(); err == nil || !strings.Contains(err.Error(), "calls still in flight after 1s were cut off") {
		t.Errorf("Close with a call in flight: %v", err)
	}
}
