// Package loadgen drives a Socius server with real, signed socialize calls and
// measures what it sustains: requests per second and the latency of every request.
//
// A run opens a fixed number of keep-alive connections, one worker each, and every
// worker sends its next request as soon as the previous one is answered (a closed
// loop), for a warm-up period and then for the measured duration. Every request is
// unique and signed as a Gigya SDK signs it (package gigya computes the signature):
// its own nonce, the current timestamp, the signature of its own parameters. Scenarios:
//
//   - setUserInfo: a profile update of a random user (a durable write);
//   - getUserInfo: a read of a random user;
//   - mix: 80 % getUserInfo, 20 % setUserInfo.
//
// The same generator measures a baseline: [BaselineHandler], a minimal net/http
// handler that parses the form and answers a fixed envelope, with no signature check
// and no store. Socius's figures are read as a ratio to it: on a given machine the
// baseline is about as fast as any HTTP server written in Go can answer that
// generator, so the ratio says how much of the machine Socius's own work takes.
//
// The generator runs on the same machine as the server it measures, so it is kept
// lean: a small HTTP/1.1 client that writes a request in one system call, and
// latencies kept in per-worker slices, summarized once at the end.
package loadgen

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"slices"
	"sort"
	"sync"
	"time"
)

// Target is the server a run drives and the site it signs for.
type Target struct {
	URL    string // http://host:port
	APIKey string
	Secret string // the site's partner secret (standard base64)
}

// Scenario names a request stream.
type Scenario string

// The scenarios, and the baseline's name in results.
const (
	SetUserInfo Scenario = "setUserInfo"
	GetUserInfo Scenario = "getUserInfo"
	Mix         Scenario = "mix"
	Baseline    Scenario = "baseline"
)

// Scenarios lists the Socius scenarios in the order a bench runs them.
var Scenarios = []Scenario{SetUserInfo, GetUserInfo, Mix}

// ParseScenario reads a scenario name.
func ParseScenario(s string) (Scenario, bool) {
	for _, sc := range Scenarios {
		if string(sc) == s {
			return sc, true
		}
	}
	return "", false
}

// Options shape a run.
type Options struct {
	Connections int           // concurrent keep-alive connections (one worker each)
	Duration    time.Duration // measured time
	Warmup      time.Duration // time before the measurement starts
	Users       int           // requests pick a user among UID(0) .. UID(Users-1)
	// Stream is the request stream: a scenario. A baseline run sends the stream of
	// one of the scenarios (Mix by default) to the baseline handler.
	Stream Scenario
	// ServerPID is the server's process id (0: unknown). With it a run reports the
	// server's peak memory and CPU use.
	ServerPID int
	// Samples: the result also lists every request whose latency it counts (the late
	// answers too), with the time it was answered (Result.Samples), to see when the
	// slow ones came.
	Samples bool
}

// A Sample is one request a run counted: when its answer was read, and its latency.
type Sample struct {
	End     time.Time
	Latency time.Duration
}

// Result is the outcome of one run. Latencies are in milliseconds.
type Result struct {
	Round       int      `json:"round,omitempty"` // set by the caller
	Scenario    Scenario `json:"scenario"`
	Stream      Scenario `json:"requestStream,omitempty"`
	Store       string   `json:"store,omitempty"`
	Users       int      `json:"users"`
	Connections int      `json:"connections"`
	Seconds     float64  `json:"seconds"`
	Requests    int64    `json:"requests"`
	// Late are requests sent in the window and answered (successfully) after it: not
	// in Requests or RPS, but in the latencies (without them a stall at the window's
	// end would drop the run's slowest requests).
	Late       int64         `json:"lateAnswers,omitempty"`
	Errors     int64         `json:"errors"`
	ErrorKinds []ErrorSample `json:"errorSamples,omitempty"`
	RPS        float64       `json:"requestsPerSecond"`
	MeanMs     float64       `json:"meanMs"`
	P50Ms      float64       `json:"p50Ms"`
	P99Ms      float64       `json:"p99Ms"`
	P999Ms     float64       `json:"p999Ms"`
	MaxMs      float64       `json:"maxMs"`
	// Ratio is RPS divided by the baseline's RPS of the same bench; 0 for the
	// baseline itself.
	Ratio float64 `json:"ratioToBaseline,omitempty"`
	// ServerPeakRSS is the server process's peak resident memory during the run, in
	// bytes; 0 when unknown.
	ServerPeakRSS int64 `json:"serverPeakRSSBytes,omitempty"`

	// CPU use during the measured window, when /proc tells it: the server's and
	// the load generator's, in cores (1 = one CPU busy all the time); the server's
	// per answered request, in microseconds; and the share of the machine's CPU
	// time that other processes took (noise) or the hypervisor withheld (steal).
	ServerCores       float64 `json:"serverCores,omitempty"`
	ServerCPUPerReqUs float64 `json:"serverCpuPerRequestUs,omitempty"`
	LoadgenCores      float64 `json:"loadgenCores,omitempty"`
	OtherCPUPercent   float64 `json:"otherCpuPercent"`
	StealPercent      float64 `json:"stealPercent"`

	// Samples are the requests whose latencies are counted (the late answers too), in
	// the order they were answered, with
	// Options.Samples; nil otherwise.
	Samples []Sample `json:"-"`
}

// ErrorSample is one kind of failure seen during a run: an errorCode (or -1 for a
// transport error, or the HTTP status for a non-200 answer), how often, and one
// example.
type ErrorSample struct {
	Kind    string `json:"kind"`
	Count   int64  `json:"count"`
	Example string `json:"example"`
}

// LateGrace is how long after the measured window a request may still be answered:
// past it, its connection's deadline fails it (a stalled server fails the run rather
// than hold it).
var LateGrace = 10 * time.Second

// Run drives t with the stream of o.Stream for o.Warmup then o.Duration, and reports
// what the measured part sustained. Only requests answered within the measured
// window count. Run fails only when it cannot start; failed requests are counted in
// the result.
func Run(ctx context.Context, t Target, o Options) (*Result, error) {
	if o.Connections <= 0 || o.Duration <= 0 || o.Users <= 0 {
		return nil, errors.New("loadgen: connections, duration and users must be positive")
	}
	addr, err := hostPort(t.URL)
	if err != nil {
		return nil, err
	}
	stream := o.Stream
	if stream == "" {
		stream = Mix
	}
	runID := newRunID()
	workers := make([]*worker, o.Connections)
	for i := range workers {
		s, err := newSigner(t, i, runID)
		if err != nil {
			return nil, fmt.Errorf("loadgen: %v", err)
		}
		workers[i] = &worker{
			conn:    newConn(addr),
			signer:  s,
			rng:     rand.New(rand.NewPCG(uint64(i), uint64(time.Now().UnixNano()))),
			users:   o.Users,
			stream:  stream,
			errs:    map[string]*ErrorSample{},
			samples: o.Samples,
		}
	}
	if o.ServerPID > 0 {
		ResetPeakRSS(o.ServerPID) // where not allowed, the peak covers the server's life
	}
	start := time.Now()
	from := start.Add(o.Warmup)
	until := from.Add(o.Duration)
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Go(func() { w.loop(ctx, from, until) })
	}
	var cpu [2]cpuSample
	wg.Go(func() {
		for i, at := range []time.Time{from, until} {
			select {
			case <-time.After(time.Until(at)):
			case <-ctx.Done():
				return
			}
			cpu[i] = sampleCPU(o.ServerPID)
		}
	})
	wg.Wait()
	elapsed := time.Since(from)
	if elapsed > o.Duration {
		elapsed = o.Duration // answers after the window are not counted
	}

	r := &Result{Scenario: stream, Users: o.Users, Connections: o.Connections, Seconds: elapsed.Seconds()}
	var all latencies
	errs := map[string]*ErrorSample{}
	for _, w := range workers {
		w.conn.close()
		all = append(all, w.lat...)
		r.Samples = append(r.Samples, w.ends...)
		r.Errors += w.failed
		r.Late += w.late
		for k, e := range w.errs {
			if m, ok := errs[k]; ok {
				m.Count += e.Count
			} else {
				errs[k] = e
			}
		}
	}
	for _, e := range errs {
		r.ErrorKinds = append(r.ErrorKinds, *e)
	}
	sort.Slice(r.ErrorKinds, func(i, j int) bool { return r.ErrorKinds[i].Count > r.ErrorKinds[j].Count })
	slices.SortFunc(r.Samples, func(a, b Sample) int { return a.End.Compare(b.End) })
	r.Requests = int64(len(all)) - r.Late // the late ones are in the latencies only
	if elapsed > 0 {
		r.RPS = float64(r.Requests) / elapsed.Seconds()
	}
	s := all.summarize()
	r.MeanMs, r.P50Ms, r.P99Ms, r.P999Ms, r.MaxMs = s.Mean, s.P50, s.P99, s.P999, s.Max
	if o.ServerPID > 0 {
		r.ServerPeakRSS, _ = PeakRSS(o.ServerPID)
	}
	if a, b := cpu[0], cpu[1]; a.ok && b.ok {
		secs := b.machine.total - a.machine.total
		window := cpuWindow(a.machine, b.machine)
		if secs > 0 && window > 0 {
			server, self := b.server-a.server, b.self-a.self
			r.LoadgenCores = float64(self) / userHZ / window
			if o.ServerPID > 0 {
				r.ServerCores = float64(server) / userHZ / window
				if r.Requests > 0 {
					r.ServerCPUPerReqUs = float64(server) / userHZ / float64(r.Requests) * 1e6
				}
			}
			if o.ServerPID > 0 { // else the server's own CPU would read as others'
				other := b.machine.busy - a.machine.busy - server - self
				r.OtherCPUPercent = 100 * float64(max(0, other)) / float64(secs)
			}
			r.StealPercent = 100 * float64(b.machine.steal-a.machine.steal) / float64(secs)
		}
	}
	if err := ctx.Err(); err != nil {
		return r, err
	}
	return r, nil
}

// worker is one connection's closed loop.
type worker struct {
	conn   *conn
	signer *signer
	rng    *rand.Rand
	users  int
	stream Scenario
	lat    latencies
	late   int64 // answered after the window (their latencies are in lat)
	failed int64
	errs   map[string]*ErrorSample

	samples bool     // keep ends
	ends    []Sample // with samples: the requests whose latencies are counted
}

func (w *worker) loop(ctx context.Context, from, until time.Time) {
	w.lat = make(latencies, 0, 1<<14)
	// No request outlives the window by more than LateGrace: a server that stops
	// answering fails its requests rather than hold the run for ever.
	w.conn.deadline = until.Add(LateGrace)
	for ctx.Err() == nil {
		if !time.Now().Before(until) {
			return
		}
		path, form := w.next() // signed before the clock starts: the latency is the server's
		t0 := time.Now()
		status, body, err := w.conn.post(path, form)
		t1 := time.Now()
		if t1.Before(from) {
			if err != nil {
				time.Sleep(10 * time.Millisecond) // a server that is gone or restarting
			}
			continue
		}
		if t1.After(until) {
			// Sent in the window, answered after it: not in the requests a second,
			// but its latency is the slowest of the run's, which the percentiles
			// must not lose; a failure is a failure.
			if err == nil && status == 200 && errorCode(body) == 0 {
				w.late++
				w.lat.add(t1.Sub(t0))
				if w.samples { // the latency log holds every latency the percentiles do
					w.ends = append(w.ends, Sample{End: t1, Latency: t1.Sub(t0)})
				}
				continue
			}
		}
		switch {
		case err != nil:
			w.fail("transport", err.Error())
			time.Sleep(10 * time.Millisecond)
		case status != 200:
			w.fail(fmt.Sprintf("HTTP %d", status), errorDetails(body))
		default:
			if code := errorCode(body); code != 0 {
				w.fail(fmt.Sprintf("errorCode %d", code), errorDetails(body))
			} else {
				w.lat.add(t1.Sub(t0))
				if w.samples {
					w.ends = append(w.ends, Sample{End: t1, Latency: t1.Sub(t0)})
				}
			}
		}
	}
}

func (w *worker) fail(kind, example string) {
	w.failed++
	if e, ok := w.errs[kind]; ok {
		e.Count++
		return
	}
	w.errs[kind] = &ErrorSample{Kind: kind, Count: 1, Example: example}
}

// next builds the worker's next request.
func (w *worker) next() (string, []byte) {
	uid := UID(w.rng.IntN(w.users))
	write := false
	switch w.stream {
	case SetUserInfo:
		write = true
	case Mix:
		write = w.rng.IntN(5) == 0
	}
	if write {
		return w.signer.sign(methodSetUserInfo, "UID", uid, "userInfo", w.signer.userInfo(w.signer.seq))
	}
	return w.signer.sign(methodGetUserInfo, "UID", uid)
}

func hostPort(rawURL string) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", fmt.Errorf("loadgen: target URL: %v", err)
	}
	if u.Scheme != "http" || u.Host == "" {
		return "", fmt.Errorf("loadgen: target URL %q: want http://host:port", rawURL)
	}
	if u.Port() == "" {
		return u.Host + ":80", nil
	}
	return u.Host, nil
}

// newRunID returns a random prefix for the nonces of one run, so that two runs against
// the same server within the timestamp window never send the same nonce.
func newRunID() string {
	var b [6]byte
	crand.Read(b[:])
	return hex.EncodeToString(b[:])
}
