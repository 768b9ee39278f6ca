// Package metrics keeps the measurements of a Socius process and exposes them in the
// Prometheus text format (version 0.0.4), which every Prometheus-compatible scraper
// reads: counters, gauges and histograms with fixed buckets, each optionally split by
// labels.
//
// It is deliberately small: the whole exposition format Socius needs fits in a few
// hundred lines of standard library, where the official client would bring a dozen
// modules. Recording is lock-free on the hot path once a label combination exists
// (atomics only); the registry's lock is taken when a new combination first appears
// and when a scrape writes everything out.
//
// The instruments Socius keeps (calls, latencies, store timings) are in socius.go.
package metrics

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/socius/socius/internal/iocount"
)

// Registry holds metric families and writes them out in registration order.
type Registry struct {
	mu       sync.Mutex
	families []family
	names    map[string]bool
}

// family is one metric name with its HELP and TYPE lines and its samples.
type family interface {
	header() (name, help, typ string)
	writeSamples(w *bufio.Writer)
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{names: map[string]bool{}} }

func (r *Registry) register(f family) {
	name, _, _ := f.header()
	if !validName(name) {
		panic("metrics: invalid metric name " + strconv.Quote(name))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.names[name] {
		panic("metrics: metric " + name + " registered twice")
	}
	r.names[name] = true
	r.families = append(r.families, f)
}

// WriteTo writes every metric in the Prometheus text format.
func (r *Registry) WriteTo(w io.Writer) (int64, error) {
	r.mu.Lock()
	families := slices.Clone(r.families)
	r.mu.Unlock()
	cw := &iocount.Writer{W: w}
	bw := bufio.NewWriter(cw)
	for _, f := range families {
		name, help, typ := f.header()
		fmt.Fprintf(bw, "# HELP %s %s\n# TYPE %s %s\n", name, escapeHelp(help), name, typ)
		f.writeSamples(bw)
	}
	err := bw.Flush()
	return cw.N, err
}

// ServeHTTP answers a scrape.
func (r *Registry) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	r.WriteTo(w)
}

// vec keeps the children of a family by their label values.
type vec[T any] struct {
	name, help string
	labels     []string
	newChild   func() *T
	mu         sync.RWMutex
	children   map[string]*child[T]
}

type child[T any] struct {
	values []string
	metric *T
}

func newVec[T any](name, help string, labels []string, newChild func() *T) *vec[T] {
	for _, l := range labels {
		if !validName(l) || strings.Contains(l, ":") || strings.HasPrefix(l, "__") || l == "le" {
			panic("metrics: invalid label name " + strconv.Quote(l))
		}
	}
	return &vec[T]{name: name, help: help, labels: labels, newChild: newChild, children: map[string]*child[T]{}}
}

// with returns the child for the label values, creating it on first use.
func (v *vec[T]) with(values []string) *T {
	if len(values) != len(v.labels) {
		panic(fmt.Sprintf("metrics: %s has %d labels, got %d values", v.name, len(v.labels), len(values)))
	}
	key := strings.Join(values, "\xff")
	v.mu.RLock()
	c, ok := v.children[key]
	v.mu.RUnlock()
	if ok {
		return c.metric
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if c, ok := v.children[key]; ok {
		return c.metric
	}
	c = &child[T]{values: slices.Clone(values), metric: v.newChild()}
	v.children[key] = c
	return c.metric
}

// sorted returns the children ordered by their label values, so that scrapes are
// stable.
func (v *vec[T]) sorted() []*child[T] {
	v.mu.RLock()
	out := make([]*child[T], 0, len(v.children))
	for _, c := range v.children {
		out = append(out, c)
	}
	v.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return slices.Compare(out[i].values, out[j].values) < 0 })
	return out
}

// labelText renders {a="x",b="y"} with extra pairs (name, value) appended; "" when
// there are no labels at all.
func labelText(names, values []string, extra ...string) string {
	if len(names) == 0 && len(extra) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteByte('{')
	sep := ""
	for i, n := range names {
		b.WriteString(sep + n + `="` + escapeLabel(values[i]) + `"`)
		sep = ","
	}
	for i := 0; i+1 < len(extra); i += 2 {
		b.WriteString(sep + extra[i] + `="` + escapeLabel(extra[i+1]) + `"`)
		sep = ","
	}
	b.WriteByte('}')
	return b.String()
}

// A Counter only goes up.
type Counter struct{ n atomic.Uint64 }

// Inc adds one.
func (c *Counter) Inc() { c.n.Add(1) }

// Add adds n.
func (c *Counter) Add(n uint64) { c.n.Add(n) }

// Value returns the count.
func (c *Counter) Value() uint64 { return c.n.Load() }

// CounterVec is a counter family split by labels.
type CounterVec struct{ v *vec[Counter] }

// NewCounter registers a counter family with the given label names (none for a
// single counter; use With() without values).
func (r *Registry) NewCounter(name, help string, labels ...string) *CounterVec {
	c := &CounterVec{newVec(name, help, labels, func() *Counter { return new(Counter) })}
	r.register(c)
	return c
}

// With returns the counter for the label values, in the order of the label names.
func (c *CounterVec) With(values ...string) *Counter { return c.v.with(values) }

func (c *CounterVec) header() (string, string, string) { return c.v.name, c.v.help, "counter" }

func (c *CounterVec) writeSamples(w *bufio.Writer) {
	for _, ch := range c.v.sorted() {
		fmt.Fprintf(w, "%s%s %d\n", c.v.name, labelText(c.v.labels, ch.values), ch.metric.Value())
	}
}

// A Gauge goes up and down.
type Gauge struct{ bits atomic.Uint64 }

// Set sets the value.
func (g *Gauge) Set(v float64) { g.bits.Store(math.Float64bits(v)) }

// Add adds d (which may be negative).
func (g *Gauge) Add(d float64) {
	for {
		old := g.bits.Load()
		if g.bits.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+d)) {
			return
		}
	}
}

// Value returns the value.
func (g *Gauge) Value() float64 { return math.Float64frombits(g.bits.Load()) }

// GaugeVec is a gauge family split by labels.
type GaugeVec struct{ v *vec[Gauge] }

// NewGauge registers a gauge family.
func (r *Registry) NewGauge(name, help string, labels ...string) *GaugeVec {
	g := &GaugeVec{newVec(name, help, labels, func() *Gauge { return new(Gauge) })}
	r.register(g)
	return g
}

// With returns the gauge for the label values.
func (g *GaugeVec) With(values ...string) *Gauge { return g.v.with(values) }

func (g *GaugeVec) header() (string, string, string) { return g.v.name, g.v.help, "gauge" }

func (g *GaugeVec) writeSamples(w *bufio.Writer) {
	for _, ch := range g.v.sorted() {
		fmt.Fprintf(w, "%s%s %s\n", g.v.name, labelText(g.v.labels, ch.values), formatFloat(ch.metric.Value()))
	}
}

// gaugeFunc is a gauge read at scrape time.
type gaugeFunc struct {
	name, help string
	f          func() float64
}

// NewGaugeFunc registers a gauge whose value f returns when scraped. f must be safe
// to call from any goroutine and should be cheap.
func (r *Registry) NewGaugeFunc(name, help string, f func() float64) {
	r.register(&gaugeFunc{name, help, f})
}

func (g *gaugeFunc) header() (string, string, string) { return g.name, g.help, "gauge" }

func (g *gaugeFunc) writeSamples(w *bufio.Writer) {
	fmt.Fprintf(w, "%s %s\n", g.name, formatFloat(g.f()))
}

// A Histogram counts observations into fixed buckets and keeps their sum.
type Histogram struct {
	upper  []float64       // upper bounds, ascending; +Inf is implicit
	counts []atomic.Uint64 // per bucket (not cumulative); the last one is +Inf
	count  atomic.Uint64
	sum    Gauge
}

// Observe records one value.
func (h *Histogram) Observe(v float64) {
	i := sort.SearchFloat64s(h.upper, v) // the first bound >= v
	h.counts[i].Add(1)
	h.sum.Add(v)
	h.count.Add(1)
}

// Count returns the number of observations.
func (h *Histogram) Count() uint64 { return h.count.Load() }

// HistogramVec is a histogram family split by labels.
type HistogramVec struct {
	v     *vec[Histogram]
	upper []float64
}

// NewHistogram registers a histogram family with the given bucket upper bounds (in
// ascending order; +Inf is added).
func (r *Registry) NewHistogram(name, help string, buckets []float64, labels ...string) *HistogramVec {
	if !slices.IsSorted(buckets) || len(buckets) == 0 {
		panic("metrics: histogram " + name + " needs ascending buckets")
	}
	upper := slices.Clone(buckets)
	h := &HistogramVec{upper: upper}
	h.v = newVec(name, help, labels, func() *Histogram {
		return &Histogram{upper: upper, counts: make([]atomic.Uint64, len(upper)+1)}
	})
	r.register(h)
	return h
}

// With returns the histogram for the label values.
func (h *HistogramVec) With(values ...string) *Histogram { return h.v.with(values) }

func (h *HistogramVec) header() (string, string, string) { return h.v.name, h.v.help, "histogram" }

func (h *HistogramVec) writeSamples(w *bufio.Writer) {
	for _, ch := range h.v.sorted() {
		m := ch.metric
		// Read the buckets first and derive the count from them, so that a scrape
		// racing an Observe still shows a consistent histogram.
		var cum uint64
		for i := range m.counts {
			cum += m.counts[i].Load()
			le := "+Inf"
			if i < len(h.upper) {
				le = formatFloat(h.upper[i])
			}
			fmt.Fprintf(w, "%s_bucket%s %d\n", h.v.name, labelText(h.v.labels, ch.values, "le", le), cum)
		}
		labels := labelText(h.v.labels, ch.values)
		fmt.Fprintf(w, "%s_sum%s %s\n", h.v.name, labels, formatFloat(m.sum.Value()))
		fmt.Fprintf(w, "%s_count%s %d\n", h.v.name, labels, cum)
	}
}

func formatFloat(v float64) string {
	switch {
	case math.IsInf(v, +1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

func validName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c == ':' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || i > 0 && '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

var (
	labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
)

func escapeLabel(s string) string { return labelEscaper.Replace(s) }
func escapeHelp(s string) string  { return helpEscaper.Replace(s) }
