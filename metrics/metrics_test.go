package metrics

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/socius/socius"
	"github.com/socius/socius/nonce"
	"github.com/socius/socius/server"
	"github.com/socius/socius/sqlite"
	"github.com/socius/socius/storetest"
)

func scrape(t *testing.T, r *Registry) string {
	t.Helper()
	var b bytes.Buffer
	if _, err := r.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestExposition(t *testing.T) {
	r := NewRegistry()
	c := r.NewCounter("test_calls_total", "Calls.\nSecond line with a \\.", "method", "code")
	c.With("socialize.getUserInfo", "0").Add(3)
	c.With("socialize.getUserInfo", "403003").Inc()
	c.With(`we"ird`+"\n"+`\`, "0").Inc()
	g := r.NewGauge("test_temperature", "A gauge.")
	g.With().Set(-1.5)
	r.NewGaugeFunc("test_size", "A gauge read when scraped.", func() float64 { return 42 })
	h := r.NewHistogram("test_seconds", "A histogram.", []float64{0.1, 1}, "op")
	for _, v := range []float64{0.05, 0.1, 0.5, 3} {
		h.With("read").Observe(v)
	}
	want := `# HELP test_calls_total Calls.\nSecond line with a \\.
# TYPE test_calls_total counter
test_calls_total{method="socialize.getUserInfo",code="0"} 3
test_calls_total{method="socialize.getUserInfo",code="403003"} 1
test_calls_total{method="we\"ird\n\\",code="0"} 1
# HELP test_temperature A gauge.
# TYPE test_temperature gauge
test_temperature -1.5
# HELP test_size A gauge read when scraped.
# TYPE test_size gauge
test_size 42
# HELP test_seconds A histogram.
# TYPE test_seconds histogram
test_seconds_bucket{op="read",le="0.1"} 2
test_seconds_bucket{op="read",le="1"} 3
test_seconds_bucket{op="read",le="+Inf"} 4
test_seconds_sum{op="read"} 3.65
test_seconds_count{op="read"} 4
`
	if got := scrape(t, r); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}

	rec := httptest.NewRecorder()
	r.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if ct := rec.Header().Get("Content-Type"); ct != "text/plain; version=0.0.4; charset=utf-8" || rec.Body.String() != want {
		t.Errorf("ServeHTTP: %s\n%s", ct, rec.Body)
	}
	if cc := rec.Header().Get("Cache-Control"); cc != "no-store" {
		t.Errorf("ServeHTTP: Cache-Control %q, want no-store (a scrape is never a cached one)", cc)
	}
}

func TestRegistrationMistakesPanic(t *testing.T) {
	for name, f := range map[string]func(r *Registry){
		"twice":          func(r *Registry) { r.NewCounter("a_total", ""); r.NewCounter("a_total", "") },
		"bad name":       func(r *Registry) { r.NewCounter("a-b", "") },
		"bad label":      func(r *Registry) { r.NewCounter("a", "", "le") },
		"digit first":    func(r *Registry) { r.NewCounter("1a_total", "") },
		"reserved label": func(r *Registry) { r.NewCounter("a", "", "__name__") },
		"bad buckets":    func(r *Registry) { r.NewHistogram("h", "", []float64{2, 1}) },
		"label values":   func(r *Registry) { r.NewCounter("c", "", "x").With("1", "2") },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			f(NewRegistry())
		})
	}
}

// Recording from many goroutines while scraping loses nothing (run with -race).
func TestConcurrentRecording(t *testing.T) {
	r := NewRegistry()
	c := r.NewCounter("c_total", "", "k")
	h := r.NewHistogram("h_seconds", "", []float64{1}, "k")
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 1000; i++ {
				k := []string{"a", "b"}[i%2]
				c.With(k).Inc()
				h.With(k).Observe(0.5)
			}
		}()
	}
	go func() {
		for i := 0; i < 20; i++ {
			r.WriteTo(io.Discard)
		}
	}()
	wg.Wait()
	if a, b := c.With("a").Value(), c.With("b").Value(); a+b != 8000 || h.With("a").Count() != 4000 {
		t.Errorf("counted %d+%d, histogram %d", a, b, h.With("a").Count())
	}
	if !strings.Contains(scrape(t, r), `h_seconds_sum{k="a"} 2000`) {
		t.Errorf("sum lost observations:\n%s", scrape(t, r))
	}
}

func TestProcessMetrics(t *testing.T) {
	r := NewRegistry()
	RegisterProcess(r)
	out := scrape(t, r)
	for _, name := range []string{"go_goroutines ", "go_memstats_heap_alloc_bytes ", "process_start_time_seconds "} {
		if !strings.Contains(out, "\n"+name) {
			t.Errorf("no %s:\n%s", name, out)
		}
	}
	if strings.Contains(out, "go_memstats_heap_alloc_bytes 0\n") {
		t.Error("heap reads 0")
	}
}

func TestObserveCall(t *testing.T) {
	r := NewRegistry()
	in := NewInstruments(r)
	in.ObserveCall(&server.Call{Method: "socialize.getUserInfo", Known: true, Code: 0, Duration: 2 * time.Millisecond})
	in.ObserveCall(&server.Call{Method: "socialize.getUserInfo", Known: true, Code: 403003, Duration: time.Millisecond})
	in.ObserveCall(&server.Call{Method: "../../etc/passwd", Code: 400001})
	// An emulator fault rule's answer is counted apart: no server error to alert on.
	in.ObserveCall(&server.Call{Method: "socialize.getUserInfo", Known: true, Code: 500001, Injected: true, Duration: time.Millisecond})
	out := scrape(t, r)
	if strings.Contains(out, `socius_calls_total{method="socialize.getUserInfo",code="500001"}`) {
		t.Error("an injected fault counted as a server error in socius_calls_total")
	}
	for _, line := range []string{
		`socius_emulator_faults_total{method="socialize.getUserInfo",code="500001"} 1`,
		`socius_call_duration_seconds_count{method="socialize.getUserInfo"} 2`,
		`socius_calls_total{method="socialize.getUserInfo",code="0"} 1`,
		`socius_calls_total{method="socialize.getUserInfo",code="403003"} 1`,
		`socius_calls_total{method="unknown",code="400001"} 1`,
		`socius_call_duration_seconds_bucket{method="socialize.getUserInfo",le="0.001"} 1`,
		`socius_call_duration_seconds_bucket{method="socialize.getUserInfo",le="0.0025"} 2`,
	} {
		if !strings.Contains(out, line+"\n") {
			t.Errorf("missing %s in\n%s", line, out)
		}
	}
	if strings.Contains(out, "passwd") {
		t.Error("an unknown method's path became a label")
	}
}

// The timed store keeps the store contract, and times what it passes on.
func TestTimedStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) socius.Store {
		st, err := sqlite.Open(filepath.Join(t.TempDir(), "socius.db"))
		if err != nil {
			t.Fatal(err)
		}
		return NewInstruments(NewRegistry()).Store(st)
	})

	r := NewRegistry()
	in := NewInstruments(r)
	raw, err := sqlite.Open(filepath.Join(t.TempDir(), "socius.db"))
	if err != nil {
		t.Fatal(err)
	}
	st := in.Store(raw)
	defer st.Close()
	ctx := context.Background()
	st.CreateSite(ctx, &socius.Site{APIKey: "3_a", Secret: "c2l0ZS1zZWNyZXQtMDEyMzQ1Njc4OWFi", CreatedAt: time.Now()})
	st.Site(ctx, "3_a")
	st.Site(ctx, "3_nope")
	out := scrape(t, r)
	for _, line := range []string{
		`socius_store_duration_seconds_count{op="create_site"} 1`,
		`socius_store_duration_seconds_count{op="site"} 2`,
		`socius_store_duration_seconds_count{op="rename_user"} 0`,
	} {
		if !strings.Contains(out, line+"\n") {
			t.Errorf("missing %s", line)
		}
	}
}

// TestTimedStoreSnapshot: the timed store is a view's way through to the store under
// it (the storetest Snapshot group above reads its views), and says
// errors.ErrUnsupported over a store that has none.
func TestTimedStoreSnapshot(t *testing.T) {
	raw, err := sqlite.Open(filepath.Join(t.TempDir(), "socius.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	sn, ok := NewInstruments(NewRegistry()).Store(raw).(socius.Snapshotter)
	if !ok {
		t.Fatal("the timed store is no socius.Snapshotter: a view of the store under it is out of reach")
	}
	v, err := sn.Snapshot(t.Context())
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	if _, err := v.Sites(t.Context()); err != nil {
		t.Errorf("the view's Sites: %v", err)
	}
	if err := v.Close(); err != nil {
		t.Errorf("the view's Close: %v", err)
	}
	hidden := NewInstruments(NewRegistry()).Store(struct{ socius.Store }{raw}).(socius.Snapshotter)
	if _, err := hidden.Snapshot(t.Context()); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("Snapshot over a store that has none: %v, want errors.ErrUnsupported", err)
	}
}

// A scrape over real HTTP.
func TestScrapeOverHTTP(t *testing.T) {
	r := NewRegistry()
	r.NewCounter("x_total", "").With().Add(7)
	srv := httptest.NewServer(r)
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), "\nx_total 7\n") {
		t.Errorf("scraped %s", b)
	}
}

// TestTimedNonces: the timed nonce store keeps the nonce contract and times each use.
func TestTimedNonces(t *testing.T) {
	storetest.RunNonces(t, func(t *testing.T) socius.NonceStore {
		return NewInstruments(NewRegistry()).Nonces(nonce.New(0))
	})
	r := NewRegistry()
	ns := NewInstruments(r).Nonces(nonce.New(0))
	now := time.Now()
	for _, n := range []string{"a", "b", "a"} {
		ns.UseNonce(context.Background(), "3_a", n, now.Add(time.Minute), now)
	}
	if out := scrape(t, r); !strings.Contains(out, `socius_store_duration_seconds_count{op="use_nonce"} 3`+"\n") {
		t.Errorf("three uses of a nonce, timed:\n%s", out)
	}
}
