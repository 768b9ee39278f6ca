package loadgen

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/socius/socius"
	"github.com/socius/socius/gigya"
)

const (
	testAPIKey = "3_LabApiKey_AbC-123"
	testSecret = "c2VjcmV0LWZvci10aGUtZ2lneWEtbGFiLTEyMzQ1Ng=="
)

func TestPercentiles(t *testing.T) {
	var l latencies
	for i := 1000; i >= 1; i-- { // 1..1000 ms, unsorted
		l.add(time.Duration(i) * time.Millisecond)
	}
	s := l.summarize()
	if s.P50 != 500 || s.P99 != 990 || s.P999 != 999 || s.Max != 1000 || s.Mean != 500.5 {
		t.Errorf("summary = %+v", s)
	}
	if (latencies{}).summarize() != (summary{}) {
		t.Error("no latencies must summarize to zeros")
	}
}

func TestErrorCode(t *testing.T) {
	for body, want := range map[string]int{
		`{"callId":"x","errorCode":0,"apiVersion":2}`:                        0,
		`{"callId":"x","errorCode":403004,"errorDetails":"Duplicate nonce"}`: 403004,
		`not json`:       -1,
		`{"errorCode":}`: -1,
	} {
		if got := errorCode([]byte(body)); got != want {
			t.Errorf("errorCode(%s) = %d, want %d", body, got, want)
		}
	}
	// Decoded from JSON, an escaped quote inside; cut short, the raw rest.
	for body, want := range map[string]string{
		`{"errorCode":403004,"errorDetails":"Duplicate nonce"}`:                          "Duplicate nonce",
		`{"errorCode":403003,"errorDetails":"signed POST\u0026http%3A \"x\" end","x":1}`: `signed POST&http%3A "x" end`,
		`{"errorCode":403003,"errorDetails":"cut`:                                        "cut",
	} {
		if got := errorDetails([]byte(body)); got != want {
			t.Errorf("errorDetails(%s) = %q, want %q", body, got, want)
		}
	}
}

// TestSignedRequestsVerify checks that what the generator sends is what Socius checks:
// every request verifies with package gigya against the URL it is sent to, and no two
// requests share a nonce.
func TestSignedRequestsVerify(t *testing.T) {
	key, err := socius.DecodeSecret(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	s, err := newSigner(Target{URL: "http://127.0.0.1:8080", APIKey: testAPIKey, Secret: testSecret}, 3, "run")
	if err != nil {
		t.Fatal(err)
	}
	nonces := map[string]bool{}
	for i := range 100 {
		var path string
		var form []byte
		if i%2 == 0 {
			path, form = s.sign(methodSetUserInfo, "UID", UID(i), "userInfo", s.userInfo(uint64(i)))
		} else {
			path, form = s.sign(methodGetUserInfo, "UID", UID(i))
		}
		var p gigya.Params
		if err := p.Decode(string(form)); err != nil {
			t.Fatal(err)
		}
		if gigya.VerifyRequest(key, p.Get("sig"), "POST", "http", "127.0.0.1:8080", path, p.All()) != 0 {
			t.Fatalf("request %d does not verify: %s %s", i, path, form)
		}
		if n := p.Get("nonce"); nonces[n] {
			t.Fatalf("nonce %s sent twice", n)
		} else {
			nonces[n] = true
		}
		if p.Get("UID") != UID(i) || p.Get("apiKey") != testAPIKey {
			t.Fatalf("request %d: %s", i, form)
		}
	}
}

// TestNoncesDifferAcrossWorkers: the workers of one run sign with nonces of their own:
// one shared by two workers would be refused (403004) as a replay and counted as a
// failure of the server.
func TestNoncesDifferAcrossWorkers(t *testing.T) {
	target := Target{URL: "http://127.0.0.1:8080", APIKey: testAPIKey, Secret: testSecret}
	seen := map[string]int{}
	for worker := range 3 {
		s, err := newSigner(target, worker, "run")
		if err != nil {
			t.Fatal(err)
		}
		for i := range 5 {
			_, form := s.sign(methodGetUserInfo, "UID", UID(i))
			var p gigya.Params
			if err := p.Decode(string(form)); err != nil {
				t.Fatal(err)
			}
			n := p.Get("nonce")
			if w, dup := seen[n]; dup {
				t.Fatalf("nonce %s sent by workers %d and %d", n, w, worker)
			}
			seen[n] = worker
		}
	}
}

func TestProfileJSON(t *testing.T) {
	v, err := gigya.ParseJSON(profileJSON(7))
	if err != nil {
		t.Fatal(err)
	}
	o := v.(gigya.Object)
	want := Profile(7)
	for f := socius.Field(0); f < socius.NumFields; f++ {
		got, _ := o.Get(f.Name())
		if fmt.Sprint(got) != want[f] {
			t.Errorf("%s = %v, want %s", f.Name(), got, want[f])
		}
	}
}

// TestConnReadsBothBodyKinds checks the client against a net/http server answering
// with a Content-Length and with a chunked body, over one kept-alive connection.
func TestConnReadsBothBodyKinds(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		if r.URL.Path == "/chunked" {
			w.Write([]byte(strings.Repeat("x", 5000))) // more than the server buffers: chunked
			return
		}
		fmt.Fprintf(w, `{"errorCode":0,"a":%q}`, r.Form.Get("a"))
	}))
	defer ts.Close()
	u, _ := url.Parse(ts.URL)
	c := newConn(u.Host)
	defer c.close()
	for i := range 3 {
		status, body, err := c.post("/len", []byte("a=v"+fmt.Sprint(i)))
		if err != nil || status != 200 || string(body) != fmt.Sprintf(`{"errorCode":0,"a":"v%d"}`, i) {
			t.Fatalf("post %d: %d %q %v", i, status, body, err)
		}
		status, body, err = c.post("/chunked", nil)
		if err != nil || status != 200 || len(body) != 5000 {
			t.Fatalf("chunked %d: %d, %d bytes, %v", i, status, len(body), err)
		}
	}
}

// TestConnFollowsConnectionClose: after an answer that says Connection: close, the next
// request goes on a new connection, not on the one the server closed.
func TestConnFollowsConnectionClose(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		io.WriteString(w, `{"errorCode":0}`)
	}))
	defer ts.Close()
	u, _ := url.Parse(ts.URL)
	c := newConn(u.Host)
	defer c.close()
	for i := range 3 {
		if status, _, err := c.post("/a", []byte("a=1")); err != nil || status != 200 {
			t.Fatalf("post %d after an answer with Connection: close: %d %v", i, status, err)
		}
	}
}

func TestBaselineHandler(t *testing.T) {
	ts := httptest.NewServer(BaselineHandler())
	defer ts.Close()
	resp, err := http.Post(ts.URL+"/socialize.getUserInfo", "application/x-www-form-urlencoded", strings.NewReader("UID=u1&apiKey=k"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || errorCode(body) != 0 || resp.Header.Get("Content-Type") != gigya.ContentTypeJSON {
		t.Errorf("%d %s %q", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
}

// TestRunAgainstBaseline runs the generator briefly against the baseline handler.
func TestRunAgainstBaseline(t *testing.T) {
	ts := httptest.NewServer(BaselineHandler())
	defer ts.Close()
	r, err := Run(context.Background(), Target{URL: ts.URL, APIKey: testAPIKey, Secret: testSecret},
		Options{Connections: 2, Duration: time.Second, Warmup: 50 * time.Millisecond, Users: 10, Stream: Mix})
	if err != nil {
		t.Fatal(err)
	}
	if r.Requests == 0 || r.Errors != 0 || r.RPS <= 0 || r.P50Ms <= 0 || r.P999Ms < r.P50Ms {
		t.Errorf("result: %+v", r)
	}
}

// TestRunSamples asks a run for its samples: every counted request is there once, in
// the order answered, within the measured window, and they agree with the summary.
func TestRunSamples(t *testing.T) {
	ts := httptest.NewServer(BaselineHandler())
	defer ts.Close()
	target := Target{URL: ts.URL, APIKey: testAPIKey, Secret: testSecret}
	o := Options{Connections: 3, Duration: time.Second, Warmup: 50 * time.Millisecond, Users: 10,
		Stream: SetUserInfo, Samples: true}
	start := time.Now()
	r, err := Run(context.Background(), target, o)
	if err != nil {
		t.Fatal(err)
	}
	end := time.Now()
	if r.Requests == 0 || int64(len(r.Samples)) != r.Requests+r.Late {
		t.Fatalf("%d samples for %d requests and %d late answers", len(r.Samples), r.Requests, r.Late)
	}
	var longest time.Duration
	for i, s := range r.Samples {
		if i > 0 && s.End.Before(r.Samples[i-1].End) {
			t.Fatalf("sample %d answered at %v, before sample %d at %v", i, s.End, i-1, r.Samples[i-1].End)
		}
		if s.End.Before(start.Add(o.Warmup)) || s.End.After(end) || s.Latency <= 0 {
			t.Fatalf("sample %d: answered %v after the start (warm-up %v), latency %v", i, s.End.Sub(start), o.Warmup, s.Latency)
		}
		longest = max(longest, s.Latency)
	}
	// The samples are the latencies the percentiles count, the requests answered after
	// the window (Late) too, one of which may be the slowest.
	if got := float64(longest) / 1e6; got != r.MaxMs {
		t.Errorf("longest sample %.6f ms, the result's max %.6f ms (%d answered late)", got, r.MaxMs, r.Late)
	}
	// Without asking, none are kept.
	o.Samples = false
	if r, err := Run(context.Background(), target, o); err != nil || r.Requests == 0 || r.Samples != nil {
		t.Errorf("without Samples: %d requests, %d samples, %v", r.Requests, len(r.Samples), err)
	}
}

// TestRunCountsFailures runs against a server that refuses every call.
func TestRunCountsFailures(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"callId":"x","errorCode":403003,"errorDetails":"Invalid request signature"}`)
	}))
	defer ts.Close()
	r, err := Run(context.Background(), Target{URL: ts.URL, APIKey: testAPIKey, Secret: testSecret},
		Options{Connections: 1, Duration: time.Second, Users: 1, Stream: GetUserInfo})
	if err != nil {
		t.Fatal(err)
	}
	if r.Errors == 0 || r.Requests != 0 || len(r.ErrorKinds) != 1 || r.ErrorKinds[0].Kind != "errorCode 403003" ||
		r.ErrorKinds[0].Example != "Invalid request signature" {
		t.Errorf("result: %+v", r)
	}
	// A server that is gone is a transport failure, not a hang. The address is the
	// local end of a connection kept open: no one listens on it, and no other program
	// can (a listener's port, once closed, may be handed to another test's server).
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	held, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	addr := held.LocalAddr().String()
	r, err = Run(context.Background(), Target{URL: "http://" + addr, APIKey: testAPIKey, Secret: testSecret},
		Options{Connections: 1, Duration: 100 * time.Millisecond, Users: 1, Stream: GetUserInfo})
	if err != nil || r.Errors == 0 || r.ErrorKinds[0].Kind != "transport" {
		t.Errorf("against a closed port: %+v, %v", r, err)
	}
}

// TestCountCPULines: the machine's CPUs are counted from /proc/stat's per-CPU lines,
// whatever CPUs this process may run on.
func TestCountCPULines(t *testing.T) {
	stat := "cpu  1 2 3 4 5 6 7 8 0 0\ncpu0 1 1 1 1 1 1 1 1 0 0\ncpu1 1 1 1 1 1 1 1 1 0 0\ncpu2 1 1 1 1 1 1 1 1 0 0\nintr 1\ncpufreq 3\n"
	if n := countCPULines([]byte(stat)); n != 3 {
		t.Errorf("counted %d CPUs, want 3", n)
	}
	// The window of the counters is the wall time between the readings (dividing by the
	// CPUs this process may use would double it under taskset on two CPUs). Each reading
	// is timed from before and after it: the wall time between them is at least the
	// time from the end of the first to the start of the second, and at most the time
	// from the start of the first to the end of the second, however long this process
	// went unscheduled in between (a clock read outside that, 300 ms after a reading,
	// failed the test).
	before := time.Now()
	m, ok := readMachineCPU()
	after := time.Now()
	if !ok || m.cpus < 1 {
		t.Fatalf("readMachineCPU: %+v %v", m, ok)
	}
	time.Sleep(500 * time.Millisecond)
	before2 := time.Now()
	m2, _ := readMachineCPU()
	after2 := time.Now()
	least, most := before2.Sub(after).Seconds(), after2.Sub(before).Seconds()
	if w := cpuWindow(m, m2); w < 0.6*least || w > 1.4*most {
		t.Errorf("a window of %.2f s for %.2f to %.2f s of wall time", w, least, most)
	}
}

// TestMachineCPUs: the machine's CPUs are /proc/stat's, at least those this process
// may use.
func TestMachineCPUs(t *testing.T) {
	stat, err := os.ReadFile("/proc/stat")
	if err != nil {
		t.Skipf("no /proc/stat: %v", err)
	}
	if n := MachineCPUs(); n != countCPULines(stat) || n < runtime.NumCPU() {
		t.Errorf("MachineCPUs = %d; /proc/stat lists %d, this process may use %d", n, countCPULines(stat), runtime.NumCPU())
	}
}

// TestRunOfAStalledServer: answers that come after the window are not counted as
// requests, but their latencies are (a stall at the end no longer drops the run's
// slowest requests); a server that never answers fails its requests once the window
// and LateGrace are over, rather than hold the run.
func TestRunOfAStalledServer(t *testing.T) {
	defer func(d time.Duration) { LateGrace = d }(LateGrace)
	// The answers at 4 s, after the 3 s window, come well within LateGrace (the
	// default's 10 s: a run ends with its last answer, so a long grace costs nothing).
	// A window of 3 s: both connections must send their first request inside it, which
	// a loaded machine may hold off (a connection that started 1.1 s late sent nothing
	// in a window of 1 s); and the answers a second after its end, however late in it
	// they were asked for.
	LateGrace = 10 * time.Second
	const window, delay = 3 * time.Second, 4 * time.Second
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		time.Sleep(delay)
		BaselineHandler().ServeHTTP(w, r)
	}))
	defer slow.Close()
	target := Target{URL: slow.URL, APIKey: testAPIKey, Secret: testSecret}
	r, err := Run(context.Background(), target, Options{Connections: 2, Duration: window, Users: 10, Stream: Mix})
	if err != nil {
		t.Fatal(err)
	}
	if r.Requests != 0 || r.Late != 2 || r.Errors != 0 || r.P50Ms < float64(delay.Milliseconds()) {
		t.Errorf("answers after the window: %d requests, %d late, %d errors, p50 %.0f ms; want 0, 2, 0 and the %v", r.Requests, r.Late, r.Errors, r.P50Ms, delay)
	}

	LateGrace = 2 * time.Second // the run lasts as long
	stuck := make(chan struct{})
	silent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-stuck }))
	defer silent.Close()
	defer close(stuck)
	done := make(chan *Result, 1)
	go func() {
		r, _ := Run(context.Background(), Target{URL: silent.URL, APIKey: testAPIKey, Secret: testSecret},
			Options{Connections: 2, Duration: window, Users: 10, Stream: Mix}) // as above
		done <- r
	}()
	select {
	case r := <-done:
		if r.Requests != 0 || r.Errors != 2 {
			t.Errorf("a server that never answers: %d requests, %d errors; want 0 and 2", r.Requests, r.Errors)
		}
	case <-time.After(LateGrace + 20*time.Second):
		t.Fatal("a run against a server that never answers did not end")
	}
}
