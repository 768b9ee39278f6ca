package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/socius/socius"
	"github.com/socius/socius/internal/pgtest"
	"github.com/socius/socius/server"
)

// hostPort returns the host:port of a listener URL.
func hostPort(u string) string { return u[strings.Index(u, "://")+3:] }

// waitInFlight waits until n calls are in progress. A handler runs its observers (log
// line, metrics) after the client has the answer; once it has returned, they are done.
// It waits up to 10 s: the time only bounds a failure, and a loaded machine can stall
// this process for seconds (3 s was tight for that).
func (ts *testServer) waitInFlight(t *testing.T, n int) {
	t.Helper()
	ts.waitInFlightWithin(t, n, 10*time.Second)
}

func (ts *testServer) waitInFlightWithin(t *testing.T, n int, limit time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(limit); ts.Server.InFlight() != n; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d calls in flight, want %d", ts.Server.InFlight(), n)
		}
	}
}

// closedWithin waits for the server to close conn (a read returns an error, never
// data) and reports how long that took from start; it fails if conn is still open after
// limit.
func closedWithin(t *testing.T, conn net.Conn, start time.Time, limit time.Duration) time.Duration {
	t.Helper()
	conn.SetReadDeadline(start.Add(limit))
	buf := make([]byte, 4096)
	for {
		n, err := conn.Read(buf)
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatalf("the server still holds the connection after %v", limit)
			}
			return time.Since(start)
		}
		if n > 0 {
			t.Logf("server sent %q", buf[:n])
		}
	}
}

// TestSlowHeadersAreCutOff is a slow-loris client: it sends its request headers one
// byte at a time and would take seconds to finish. ReadHeaderTimeout must end it.
func TestSlowHeadersAreCutOff(t *testing.T) {
	ts := startServer(t, "--read-header-timeout", "300ms")
	// Before the dial: the server times the head from its accept, which a client
	// descheduled after its dial can see well before its own clock starts.
	start := time.Now()
	conn, err := net.Dial("tcp", hostPort(ts.HTTPURL))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	req := "GET /socialize.getUserInfo HTTP/1.1\r\nHost: socius\r\nX-Padding: " + strings.Repeat("a", 100) + "\r\n\r\n"
	sent := make(chan int, 1)
	go func() {
		n := 0
		for ; n < len(req); n++ {
			if _, err := conn.Write([]byte{req[n]}); err != nil {
				break
			}
			time.Sleep(50 * time.Millisecond) // the whole header would take 7 s
		}
		sent <- n
	}()
	took := closedWithin(t, conn, start, 5*time.Second) // a loaded machine is late
	if took < 250*time.Millisecond {
		t.Errorf("closed after %v, before the 300ms header timeout", took)
	}
	conn.Close()
	if n := <-sent; n >= len(req) {
		t.Errorf("the client managed to send all %d bytes of its headers", n)
	}
}

// TestSlowBodyIsCutOff sends its headers at once and then its body one byte at a
// time. ReadTimeout (header and body together) must end the call well before the body
// is complete; the client gets 400001 or a closed connection, never a hung socket.
func TestSlowBodyIsCutOff(t *testing.T) {
	ts := startServer(t, "--read-timeout", "700ms")
	start := time.Now() // before the dial: the read timeout runs from the server's accept
	conn, err := net.Dial("tcp", hostPort(ts.HTTPURL))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := "apiKey=" + testAPIKey + "&UID=" + strings.Repeat("u", 100)
	fmt.Fprintf(conn, "POST /socialize.getUserInfo HTTP/1.1\r\nHost: socius\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n", len(body))
	go func() {
		for i := 0; i < len(body); i++ {
			if _, err := conn.Write([]byte{body[i]}); err != nil {
				return
			}
			time.Sleep(60 * time.Millisecond) // the whole body would take 6.4 s
		}
	}()
	conn.SetReadDeadline(start.Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	took := time.Since(start)
	if err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(b), `"errorCode":400001`) || !strings.Contains(string(b), "could not be read") {
			t.Errorf("answer to a slow body: %s", b)
		}
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("no answer and no close %v after the headers", took)
	}
	if took > 5*time.Second || took < 600*time.Millisecond {
		t.Errorf("the slow body was cut off after %v; the read timeout is 700ms", took)
	}
}

// TestIdleConnectionsAreClosed keeps a connection open after one call; IdleTimeout
// closes it.
func TestIdleConnectionsAreClosed(t *testing.T) {
	ts := startServer(t, "--idle-timeout", "300ms")
	conn, err := net.Dial("tcp", hostPort(ts.HTTPURL))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Before the request: the idle wait starts once the server has answered, which a
	// client descheduled after reading the answer can see well before its own clock.
	start := time.Now()
	io.WriteString(conn, "GET /socialize.getUserInfo HTTP/1.1\r\nHost: socius\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(resp.Body)
	resp.Body.Close()
	if br.Buffered() > 0 {
		t.Fatal("unexpected bytes after the answer")
	}
	if took := closedWithin(t, conn, start, 10*time.Second); took < 250*time.Millisecond {
		t.Errorf("an idle connection was closed after %v, before the 300ms idle timeout", took)
	}
}

func TestHeaderSizeLimit(t *testing.T) {
	ts := startServer(t, "--max-header-bytes", "16384")
	for _, tt := range []struct {
		size   int
		status int
	}{{8 << 10, 200}, {64 << 10, 431}} {
		req, _ := http.NewRequest("GET", ts.HTTPURL+"/socialize.getUserInfo", nil)
		req.Header.Set("X-Padding", strings.Repeat("a", tt.size))
		resp, err := ts.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.status {
			t.Errorf("%d bytes of headers: HTTP %d, want %d", tt.size, resp.StatusCode, tt.status)
		}
	}
}

// TestParameterValueLimit: one value may not exceed 64 KiB, except the JSON documents
// userInfo and x_userInfo, which only the body limit bounds. A context over the limit
// is refused, and not echoed.
func TestParameterValueLimit(t *testing.T) {
	ts := startServer(t)
	ts.login(t, "u1")
	big := strings.Repeat("x", 64<<10+1)
	a := ts.call(t, "socialize.getUserInfo", url.Values{"UID": {"u1"}, "sdk": {big}})
	if a.code() != 400006 || a.str("errorDetails") != "Invalid parameter value: sdk is longer than 65536 bytes" {
		t.Errorf("a 64 KiB + 1 value: %d %q", a.code(), a.str("errorDetails"))
	}
	if a := ts.call(t, "socialize.getUserInfo", url.Values{"UID": {"u1"}, "sdk": {big[1:]}}); a.code() != 0 {
		t.Errorf("a 64 KiB value: %v", a.code())
	}
	userInfo := `{"nickname":"big","padding":"` + strings.Repeat("p", 200<<10) + `"}`
	a = ts.call(t, "socialize.setUserInfo", url.Values{"UID": {"u1"}, "userInfo": {userInfo}, "context": {big[1:]}})
	if a.code() != 0 || len(a.str("context")) != 64<<10 {
		t.Errorf("a 200 KiB userInfo with a 64 KiB context: %d %q", a.code(), a.str("errorDetails"))
	}
	a = ts.call(t, "socialize.getUserInfo", url.Values{"UID": {"u1"}, "context": {big}})
	if _, echoed := a["context"]; a.code() != 400006 || a.str("errorDetails") != "Invalid parameter value: context is longer than 65536 bytes" || echoed {
		t.Errorf("a 64 KiB + 1 context: %d %q, echoed %v", a.code(), a.str("errorDetails"), echoed)
	}
}

// TestConcurrencyCap holds two calls in progress (an emulator fault rule delays them)
// on a server that takes two at once: a third is answered 403048 at once; clients
// still sending their requests hold no slot; once the two end, calls pass again.
func TestConcurrencyCap(t *testing.T) {
	ts := startEmulator(t, "--max-concurrent", "2")
	ts.login(t, "u1")
	// A handler may still be finishing when its client has the answer; wait for it,
	// or it would take a held call's slot.
	waitInFlight := func(n int) { t.Helper(); ts.waitInFlight(t, n) }
	waitInFlight(0)
	// Three clients that send their headers and part of a body, then nothing.
	var slow []net.Conn
	for i := 0; i < 3; i++ {
		conn, err := net.Dial("tcp", hostPort(ts.HTTPURL))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "POST /socialize.getUserInfo HTTP/1.1\r\nHost: socius\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 6\r\n\r\nUID=")
		slow = append(slow, conn)
	}
	if a := ts.call(t, "socialize.getUserInfo", url.Values{"UID": {"u1"}}); a.code() != 0 {
		t.Fatalf("a call beside three unfinished requests: %v", a)
	}
	// Held long enough for the two refusals below on a loaded machine, and well past
	// the bound on the first (a refusal that waited for a slot would take about 6 s),
	// within the client's timeout (10 s).
	ts.emu(t, "faults", "add", "--delay", "6s", "--method", "socialize.getUserInfo")
	held := make(chan int, 2)
	for i := 0; i < 2; i++ {
		go func() { held <- ts.call(t, "socialize.getUserInfo", url.Values{"UID": {"u1"}}).code() }()
	}
	waitInFlight(2)
	start := time.Now()
	a := ts.call(t, "socialize.setUserInfo", url.Values{"UID": {"u1"}, "userInfo": {`{"nickname":"x"}`}})
	if a.code() != 403048 || !strings.Contains(a.str("errorDetails"), "busy with 2 calls") || a.str("errorMessage") != "API Rate Limit Exceeded" {
		t.Errorf("a third call: %v", a)
	}
	// 3 s, not 1: a loaded machine can stall a call of a few milliseconds for a second
	// or two.
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("the refusal took %v; it must not wait", d)
	}
	// The refusal honours what the request asks for.
	resp, err := ts.client.Get(ts.HTTPURL + "/socialize.getUserInfo?format=jsonp&callback=cb&httpStatusCodes=true")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 403 || !strings.HasPrefix(string(b), "cb({") || !strings.Contains(string(b), `"errorCode":403048`) {
		t.Errorf("a JSONP call refused: HTTP %d %s", resp.StatusCode, b)
	}
	for range 2 {
		if code := <-held; code != 0 {
			t.Errorf("a held call ended with %d", code)
		}
	}
	ts.emu(t, "faults", "clear")
	waitInFlight(0)
	if a := ts.call(t, "socialize.getUserInfo", url.Values{"UID": {"u1"}}); a.code() != 0 {
		t.Errorf("after the held calls ended: %v", a)
	}
	for _, conn := range slow {
		io.WriteString(conn, "u1")
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(b), `"errorCode":400093`) { // they had no apiKey, but were served
			t.Errorf("a slow call ended with %s", b)
		}
	}
}

// TestRateLimit drives the per-apiKey token bucket with the server's injected clock:
// calls that authenticate spend the budget, and once it is spent the apiKey's calls
// are refused before authentication.
func TestRateLimit(t *testing.T) {
	ts := startServer(t, "--rate-limit", "2", "--rate-burst", "3")
	ts.login(t, "u1") // takes the first token
	if err := ts.Store.CreateSite(t.Context(), &socius.Site{APIKey: "3_Other", Secret: testSecret, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	get := func(apiKey string) url.Values {
		return ts.signed(t, ts.HTTPURL, "socialize.getUserInfo", url.Values{"UID": {"u1"}, "apiKey": {apiKey}}, "", "")
	}
	codes := func(apiKey string, n int) []int {
		var out []int
		for i := 0; i < n; i++ {
			out = append(out, ts.post(t, ts.HTTPURL, "socialize.getUserInfo", get(apiKey)).code())
		}
		return out
	}
	if got := fmt.Sprint(codes(testAPIKey, 3)); got != "[0 0 403048]" {
		t.Fatalf("a burst of 3 after one call: %s", got)
	}
	p := get(testAPIKey)
	a := ts.post(t, ts.HTTPURL, "socialize.getUserInfo", p)
	if a.code() != 403048 || a.str("errorMessage") != "API Rate Limit Exceeded" || a["statusCode"] != 403.0 ||
		a.str("errorDetails") != "API Rate Limit Exceeded: apiKey "+testAPIKey+" made more than 2 calls a second (bursts of 3) to this server; retry later" {
		t.Errorf("over the limit: %v", a)
	}
	// Another site has its own budget (apiKey 3_Other has no user u1: 403005).
	if got := fmt.Sprint(codes("3_Other", 4)); got != "[403005 403005 403005 403048]" {
		t.Errorf("another site: %s", got)
	}
	// Half a second earns one call. The refused request had not been authenticated,
	// so its nonce was not used: the very same request now passes.
	ts.Clock.Advance(500 * time.Millisecond)
	if a := ts.post(t, ts.HTTPURL, "socialize.getUserInfo", p); a.code() != 0 {
		t.Errorf("the refused request, retried: %v", a)
	}
	if got := fmt.Sprint(codes(testAPIKey, 1)); got != "[403048]" {
		t.Errorf("the earned call is spent: %s", got)
	}
	// httpStatusCodes=true makes it HTTP 403 (not 429, as Gigya). The limit comes
	// before the signature check, so the signature that this change breaks is not
	// looked at.
	q := get(testAPIKey)
	q.Set("httpStatusCodes", "true")
	if _, resp := ts.postRaw(t, ts.HTTPURL, "socialize.getUserInfo", q.Encode()); resp.StatusCode != 403 {
		t.Errorf("httpStatusCodes=true: HTTP %d", resp.StatusCode)
	}
	// A long pause refills the burst. Calls that fail authentication spend none of
	// it, however many: bad signatures on the site's apiKey, the site's secret sent
	// as apiKey (which names no site), an apiKey of no site.
	ts.Clock.Advance(10 * time.Second)
	for i := 0; i < 5; i++ {
		bad := get(testAPIKey)
		bad.Set("sig", "AAAAAAAAAAAAAAAAAAAAAAAAAAA=")
		for _, p := range []url.Values{bad, get(testSecret), get("3_NoSuchSite")} {
			if a := ts.post(t, ts.HTTPURL, "socialize.getUserInfo", p); a.code() == 0 || a.code() == 403048 {
				t.Fatalf("a call with bad credentials: %v; want refused by authentication", a)
			}
		}
	}
	if got := fmt.Sprint(codes(testAPIKey, 4)); got != "[0 0 0 403048]" {
		t.Errorf("after 10 s and calls with bad credentials: %s", got)
	}
}

// TestRateLimitReplays: a replayed signed request spends none of the site's budget,
// on either store (with PostgreSQL the nonce of getUserInfo is checked in the call's
// own store work, after the call was charged: the token is given back).
func TestRateLimitReplays(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { testRateLimitReplays(t) })
	t.Run("postgres", func(t *testing.T) {
		testRateLimitReplays(t, "--store", pgtest.URL(t), "--master-key-file", testMasterKeyFile(t))
	})
}

func testRateLimitReplays(t *testing.T, flags ...string) {
	ts := startServer(t, append([]string{"--rate-limit", "1", "--rate-burst", "3"}, flags...)...)
	ts.login(t, "u1") // the first of 3
	get := func() url.Values {
		return ts.signed(t, ts.HTTPURL, "socialize.getUserInfo", url.Values{"UID": {"u1"}}, "", "")
	}
	p := get()
	if a := ts.post(t, ts.HTTPURL, "socialize.getUserInfo", p); a.code() != 0 { // the second
		t.Fatalf("the call: %v", a)
	}
	for i := range 5 {
		if a := ts.post(t, ts.HTTPURL, "socialize.getUserInfo", p); a.code() != 403004 {
			t.Fatalf("replay %d: %v; want 403004, the budget untouched", i, a)
		}
	}
	if a := ts.post(t, ts.HTTPURL, "socialize.getUserInfo", get()); a.code() != 0 { // the third
		t.Errorf("a fresh call after the replays: %v", a)
	}
	if a := ts.post(t, ts.HTTPURL, "socialize.getUserInfo", get()); a.code() != 403048 {
		t.Errorf("a fourth call: %v; want 403048", a)
	}
}

// Without --rate-limit there is no limit.
func TestNoRateLimitByDefault(t *testing.T) {
	ts := startServer(t)
	ts.login(t, "u1")
	for i := 0; i < 50; i++ {
		if a := ts.call(t, "socialize.getUserInfo", url.Values{"UID": {"u1"}}); a.code() != 0 {
			t.Fatalf("call %d: %v", i, a)
		}
	}
}

// TestSlowReaderIsCutOff pipelines requests whose answers add up to tens of MiB (each
// echoes a context of 64 KiB, the most a parameter holds, of characters JSON escapes;
// the refusal of a UID that does not exist echoes it too) and reads none of them: once
// the socket buffers are full the server's write blocks, and WriteTimeout must free
// the handler and close the connection rather than leave it waiting on the client. (An
// answer is bounded, to a few hundred KiB, which the buffers of a machine with large
// ones may hold whole: hence a hundred.)
//
// The client learns of the cut from its own write, not by watching the calls in
// flight: the server stops reading once its write blocks, so the client's write of the
// pipeline blocks too, and only the server's closing of the connection ends it. (The
// test watched for a call in flight, then for none: a process descheduled for about
// the write timeout, as on a loaded CI machine, could miss the call altogether.) No
// call comes first: under the short write timeout, one that writes to the store (a
// notifyLogin) answered late by a loaded disk had its connection closed unanswered.
func TestSlowReaderIsCutOff(t *testing.T) {
	ts := startServer(t, "--write-timeout", "1s")
	conn, err := net.Dial("tcp", hostPort(ts.HTTPURL))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const requests = 100
	ctx := strings.Repeat("\x01", 64<<10)
	var raw bytes.Buffer
	for range requests {
		body := ts.signed(t, ts.HTTPURL, "socialize.getUserInfo", url.Values{"UID": {"u1"}, "context": {ctx}}, "", "").Encode()
		fmt.Fprintf(&raw, "POST /socialize.getUserInfo HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n%s", hostPort(ts.HTTPURL), len(body), body)
	}
	// The pipeline is sent again (replays, refused if ever read) should the buffers
	// take it whole, so that the write cannot end before the server stops reading.
	writeErr := make(chan error, 1)
	go func() {
		for range 10 {
			if _, err := conn.Write(raw.Bytes()); err != nil {
				writeErr <- err
				return
			}
		}
		writeErr <- nil
	}()
	start := time.Now()
	// The server answers until its write blocks, which then times out: the call ends
	// and the connection is closed. Without the write timeout the handler would wait
	// for the client for ever, and so would the client's write.
	select {
	case err := <-writeErr:
		if err == nil {
			t.Fatalf("the server read %d MiB of requests from a client that read none of its answers", 10*raw.Len()>>20)
		}
		t.Logf("the server closed the connection after %v: the client's write failed: %v", time.Since(start), err)
	case <-time.After(30 * time.Second):
		t.Fatalf("the server still holds the connection after 30 s, %d calls in flight", ts.Server.InFlight())
	}
	// The handler gave its slot back before the connection was closed.
	if n := ts.Server.InFlight(); n != 0 {
		t.Errorf("%d calls in flight once the connection is closed, want 0", n)
	}
	// What the client can still read is cut short: not every answer, the last cut.
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(conn)
	answers := 0
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			break
		}
		n, err := io.Copy(io.Discard, resp.Body)
		if err != nil {
			t.Logf("answer %d cut after %d bytes: %v", answers+1, n, err)
			break
		}
		answers++
	}
	t.Logf("%d whole answers of %d", answers, requests)
	if answers >= requests {
		t.Error("every answer arrived, to a client that read none until the write timeout")
	}
}

// TestRateLimitCountsTokenCalls: a token call names no apiKey; it is counted against
// the site its token was issued for, in the same bucket as the site's other calls.
func TestRateLimitCountsTokenCalls(t *testing.T) {
	ts := startServer(t, "--rate-limit", "1", "--rate-burst", "3")
	token := ts.accessToken(t, "u1") // the first token of the bucket
	want(t, "token call 1", ts.tlsPost(t, "socialize.getUserInfo", withToken(token, nil)), 0, "")
	want(t, "token call 2", ts.tlsPost(t, "socialize.getUserInfo", withToken(token, nil)), 0, "")
	want(t, "token call 3", ts.tlsPost(t, "socialize.getUserInfo", withToken(token, nil)), 403048, "apiKey "+testAPIKey+" made more than 1 call a second")
	want(t, "partner call", ts.call(t, "socialize.getUserInfo", url.Values{"UID": {"u1"}}), 403048, "bursts of 3")
	ts.Clock.Advance(time.Second)
	want(t, "token call a second later", ts.tlsPost(t, "socialize.getUserInfo", withToken(token, nil)), 0, "")
}

// TestTooLargeBodyIsAnswered: a client that sends its whole body before it reads the
// answer, as Python's urllib does, gets 413001 for a body over the limit (up to eight
// times it), not a reset connection; with Content-Length and chunked.
func TestTooLargeBodyIsAnswered(t *testing.T) {
	ts := startServer(t)
	body := "UID=" + strings.Repeat("x", 7<<20) // seven times the default 1 MiB: more than the sockets buffer
	for _, chunked := range []bool{false, true} {
		conn, err := net.Dial("tcp", hostPort(ts.HTTPURL))
		if err != nil {
			t.Fatal(err)
		}
		var req bytes.Buffer
		req.WriteString("POST /socialize.getUserInfo HTTP/1.1\r\nHost: socius\r\nContent-Type: application/x-www-form-urlencoded\r\n")
		if chunked {
			req.WriteString("Transfer-Encoding: chunked\r\n\r\n")
			for rest := body; rest != ""; {
				n := min(len(rest), 64<<10)
				fmt.Fprintf(&req, "%x\r\n%s\r\n", n, rest[:n])
				rest = rest[n:]
			}
			req.WriteString("0\r\n\r\n")
		} else {
			fmt.Fprintf(&req, "Content-Length: %d\r\n\r\n%s", len(body), body)
		}
		conn.SetDeadline(time.Now().Add(20 * time.Second))
		if _, err := conn.Write(req.Bytes()); err != nil { // the whole request first
			t.Errorf("chunked %v: sending the body: %v", chunked, err)
			conn.Close()
			continue
		}
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Errorf("chunked %v: reading the answer: %v", chunked, err)
			conn.Close()
			continue
		}
		answer, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		conn.Close()
		if !strings.Contains(string(answer), `"errorCode":413001`) {
			t.Errorf("chunked %v: %s", chunked, answer)
		}
	}
}

// TestStalledBodyIsAnswered: a body that stops arriving gets 400001 once --read-timeout
// has passed, also when --write-timeout is as long (the defaults are both 30 s): the
// read deadline runs from the request's start and the write deadline from the end of
// its head, so both have passed when the refusal is ready, and it gets a moment of its
// own. On the fast path and on net/http.
func TestStalledBodyIsAnswered(t *testing.T) {
	framings := map[string]string{
		"length":  "Content-Length: 100\r\n\r\nUID=u",
		"chunked": "Transfer-Encoding: chunked\r\n\r\n64\r\nUID=u",
		// The last chunk, then a trailer that stops: net/http reports that deadline as
		// "suspiciously long trailer", which was not taken for one (no answer came).
		"trailer": "Transfer-Encoding: chunked\r\n\r\n5\r\nUID=u\r\n0\r\nT: v\r\n",
	}
	for _, fast := range []string{"true", "false"} {
		for _, write := range []string{"700ms", "30s"} {
			for framing, rest := range framings {
				t.Run("fast-path="+fast+",write-timeout="+write+","+framing, func(t *testing.T) {
					ts := startServer(t, "--read-timeout", "700ms", "--write-timeout", write, "--fast-path="+fast)
					// The head and 5 bytes of a 100-byte body, then nothing.
					resp, b := stalledAnswer(t, ts, rest)
					if resp.StatusCode != 400 || !strings.Contains(b, `"errorCode":400001`) || !strings.Contains(b, "could not be read") || !resp.Close {
						t.Errorf("answer to a stalled body: %d close=%v %s", resp.StatusCode, resp.Close, b)
					}
				})
			}
		}
	}
}

// TestStalledLargeBodyIsAnswered: a body over --max-body-bytes that stops arriving
// while it is read to be thrown away (server.drain) gets its 413001 once --read-timeout
// has passed, with Connection: close, as a stalled body within the limit gets its
// 400001: it was answered nothing, the answer ready only after the write deadline too.
// Announced over the limit, or found over it as a chunked body arrives; on the fast path
// and on net/http.
func TestStalledLargeBodyIsAnswered(t *testing.T) {
	framings := map[string]string{
		"length":  "Content-Length: 2000\r\n\r\nUID=u",
		"chunked": "Transfer-Encoding: chunked\r\n\r\n7d0\r\n" + strings.Repeat("x", 1500),
	}
	for _, fast := range []string{"true", "false"} {
		for framing, rest := range framings {
			t.Run("fast-path="+fast+","+framing, func(t *testing.T) {
				ts := startServer(t, "--max-body-bytes", "1024", "--read-timeout", "700ms", "--write-timeout", "700ms", "--fast-path="+fast)
				resp, b := stalledAnswer(t, ts, rest)
				if resp.StatusCode != 413 || !strings.Contains(b, `"errorCode":413001`) || !resp.Close {
					t.Errorf("answer to a stalled body over the limit: %d close=%v %s", resp.StatusCode, resp.Close, b)
				}
			})
		}
	}
}

// TestHeaderFieldsBounded: a request with more than server.MaxHeaderFields header
// fields is refused (431) and its connection closed before its body is read, on both
// HTTP paths: 9,000 tiny fields within --max-header-bytes held 1.4 MB a connection
// while the client stalled its body. One with as many as allowed is served.
func TestHeaderFieldsBounded(t *testing.T) {
	for _, fast := range []string{"true", "false"} {
		t.Run("fast-path="+fast, func(t *testing.T) {
			ts := startServer(t, "--fast-path="+fast)
			// The first with its whole body; the others with it stalled: answered at
			// once all the same, and closed (the fast path takes a head of up to 4 KiB,
			// net/http the larger).
			for _, tt := range []struct {
				fields, status int
			}{{server.MaxHeaderFields - 2, 200}, {server.MaxHeaderFields + 1, 431}, {5000, 431}} {
				conn, err := net.Dial("tcp", hostPort(ts.HTTPURL))
				if err != nil {
					t.Fatal(err)
				}
				var head strings.Builder
				head.WriteString("POST /socialize.getUserInfo HTTP/1.1\r\nHost: socius\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 6\r\n")
				for i := range tt.fields - 2 { // and Content-Type, Content-Length
					fmt.Fprintf(&head, "%d:a\r\n", i)
				}
				head.WriteString("\r\nUID=u") // a byte short of the body: it stalls
				conn.Write([]byte(head.String()))
				if tt.status == 200 {
					conn.Write([]byte("1"))
				}
				conn.SetReadDeadline(time.Now().Add(10 * time.Second))
				br := bufio.NewReader(conn)
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Fatalf("%d fields: no answer: %v", tt.fields, err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != tt.status || tt.status == 431 && !resp.Close {
					t.Errorf("%d fields: %d close=%v %s", tt.fields, resp.StatusCode, resp.Close, b)
				}
				if tt.status == 431 {
					// Closed by the server at once, its body still stalled (it held the
					// connection until the read deadline, 30 s).
					conn.SetReadDeadline(time.Now().Add(5 * time.Second))
					if _, err := br.ReadByte(); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
						t.Errorf("%d fields: the connection is still open after the 431: %v", tt.fields, err)
					}
				}
				conn.Close()
			}
		})
	}
}

// TestConnectionsBounded: the API listeners hold at most --max-connections open
// together; one more is closed as it arrives (and counted), the admin listener is not
// counted, and a place given back is taken again. Without a cap, 20,000 idle
// keep-alive connections took every file descriptor: no new client, and no health
// check, could connect.
func TestConnectionsBounded(t *testing.T) {
	for _, fast := range []string{"true", "false"} {
		t.Run("fast-path="+fast, func(t *testing.T) {
			ts := startServer(t, "--max-connections", "3", "--fast-path="+fast)
			ask := func(conn net.Conn) error {
				fmt.Fprintf(conn, "GET /socialize.getUserInfo?apiKey=%s HTTP/1.1\r\nHost: socius\r\n\r\n", testAPIKey)
				conn.SetReadDeadline(time.Now().Add(5 * time.Second))
				resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
				if err != nil {
					return err
				}
				io.ReadAll(resp.Body)
				return resp.Body.Close()
			}
			var held []net.Conn
			for i, addr := range []string{hostPort(ts.HTTPURL), hostPort(ts.HTTPURL), hostPort(ts.HTTPSURL)} {
				conn, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close()
				if i < 2 {
					if err := ask(conn); err != nil {
						t.Fatalf("connection %d: %v", i, err)
					}
				}
				held = append(held, conn)
			}
			// The HTTPS one counts from its accept, before any handshake.
			deadline := time.Now().Add(5 * time.Second)
			for ts.conns.open.Load() < 3 && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			extra, err := net.Dial("tcp", hostPort(ts.HTTPURL))
			if err != nil {
				t.Fatal(err)
			}
			defer extra.Close()
			if err := ask(extra); err == nil {
				t.Error("a fourth connection was served with --max-connections 3")
			}
			if status, _ := get(t, ts.AdminURL+"/healthz"); status != 200 {
				t.Errorf("the admin listener at the cap: %d", status)
			}
			if _, m := get(t, ts.AdminURL+"/metrics"); !strings.Contains(m, "socius_connections_refused_total 1\n") || !strings.Contains(m, "socius_connections_open 3\n") {
				t.Errorf("metrics at the cap:\n%s", m)
			}
			held[0].Close()
			deadline = time.Now().Add(5 * time.Second)
			for ts.conns.open.Load() > 2 && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			again, err := net.Dial("tcp", hostPort(ts.HTTPURL))
			if err != nil {
				t.Fatal(err)
			}
			defer again.Close()
			if err := ask(again); err != nil {
				t.Errorf("a connection once a place was given back: %v", err)
			}
		})
	}
}

// TestConnectionCapLeavesDescriptors: --max-connections is lowered to leave 1024 of the
// process's file descriptors to the store and the admin listener; 0 stays no cap.
func TestConnectionCapLeavesDescriptors(t *testing.T) {
	limit, ok := fdLimit()
	if !ok {
		t.Skip("the file descriptor limit is not known here")
	}
	var c connCap
	if n, seen := c.setMax(int(limit)); seen != limit || n != max(limit-fdReserve, 64) {
		t.Errorf("a cap of the whole limit (%d): %d, lowered for %d", limit, n, seen)
	}
	if n, seen := c.setMax(10); seen != 0 || n != 10 {
		t.Errorf("a cap of 10: %d, lowered for %d", n, seen)
	}
	if n, seen := c.setMax(0); seen != 0 || n != 0 {
		t.Errorf("no cap: %d, lowered for %d", n, seen)
	}
}

// stalledAnswer sends the server a getUserInfo POST (httpStatusCodes=true) whose head
// ends with rest, its framing and what of its body is sent, then nothing more, and
// returns the answer and its body; it fails the test when none comes within 10 s.
func stalledAnswer(t *testing.T, ts *testServer, rest string) (*http.Response, string) {
	t.Helper()
	conn, err := net.Dial("tcp", hostPort(ts.HTTPURL))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /socialize.getUserInfo?httpStatusCodes=true HTTP/1.1\r\nHost: socius\r\nContent-Type: application/x-www-form-urlencoded\r\n%s", rest)
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer to a stalled body: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

// TestRateLimitSessionKeepsNonce: a call signed with a session token and sent without
// an apiKey (its site known only from the token) that the site's spent budget refuses
// (403048) leaves its nonce unrecorded, as a call that names its apiKey does: sent
// again as it is once the budget allows, it is served, not refused as a replay
// (403004). Its nonce was recorded first.
func TestRateLimitSessionKeepsNonce(t *testing.T) {
	ts := startServer(t, "--rate-limit", "1", "--rate-burst", "2")
	a := ts.call(t, "socialize.notifyLogin", url.Values{"siteUID": {"m1"}, "targetEnv": {"mobile"}}) // the first of 2
	token, secret := a.str("sessionToken"), a.str("sessionSecret")
	if a.code() != 0 || token == "" {
		t.Fatalf("notifyLogin mobile: %v", a)
	}
	session := func() url.Values {
		return ts.sessionSigned(t, ts.HTTPSURL, "socialize.getUserInfo", nil, token, secret)
	}
	want(t, "the second call", ts.tlsPost(t, "socialize.getUserInfo", session()), 0, "")
	p := session()
	want(t, "a third call", ts.tlsPost(t, "socialize.getUserInfo", p), 403048, "API Rate Limit Exceeded")
	ts.Clock.Advance(time.Second)
	want(t, "the third call again, a second later", ts.tlsPost(t, "socialize.getUserInfo", p), 0, "")
	// Its nonce now recorded: sent again once the budget allows, it is a replay.
	ts.Clock.Advance(time.Second)
	want(t, "and once more, a second later", ts.tlsPost(t, "socialize.getUserInfo", p), 403004, "")
}
