package main

import (
	"fmt"
	"math"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// family is one metric family of a scrape: its TYPE, HELP and label names (without le).
type family struct {
	typ, help string
	labels    []string
	samples   int
}

var (
	metricName = `[a-zA-Z_:][a-zA-Z0-9_:]*`
	helpLine   = regexp.MustCompile(`^# HELP (` + metricName + `) (.*)$`)
	typeLine   = regexp.MustCompile(`^# TYPE (` + metricName + `) (counter|gauge|histogram|summary|untyped)$`)
	sampleLine = regexp.MustCompile(`^(` + metricName + `)(?:\{(.*)\})? (\S+)$`)
	labelPair  = regexp.MustCompile(`^([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)`)
)

// parseExposition reads a scrape as strictly as the Prometheus text format (0.0.4)
// allows: HELP then TYPE before a family's samples, each family once, sample names of
// their family, label values escaped, no series twice, values that parse, histograms
// with cumulative buckets ending in +Inf that equals their _count.
func parseExposition(t *testing.T, text string) map[string]*family {
	t.Helper()
	if !strings.HasSuffix(text, "\n") {
		t.Fatal("the scrape does not end with a newline")
	}
	families := map[string]*family{}
	var cur string
	seen := map[string]bool{}
	type hist struct {
		last     float64
		lastLe   float64
		inf      float64
		count    float64
		hasInf   bool
		hasCount bool
	}
	hists := map[string]*hist{}
	for i, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		bad := func(why string) { t.Errorf("line %d %q: %s", i+1, line, why) }
		if m := helpLine.FindStringSubmatch(line); m != nil {
			if families[m[1]] != nil {
				bad("a second HELP for the family")
			}
			families[m[1]], cur = &family{help: m[2]}, m[1]
			continue
		}
		if m := typeLine.FindStringSubmatch(line); m != nil {
			if m[1] != cur || families[cur].typ != "" {
				bad("TYPE not right after its HELP")
				continue
			}
			families[cur].typ = m[2]
			continue
		}
		if strings.HasPrefix(line, "#") || line == "" {
			bad("neither HELP, TYPE nor a sample")
			continue
		}
		m := sampleLine.FindStringSubmatch(line)
		if m == nil || cur == "" || families[cur].typ == "" {
			bad("not a sample of a declared family")
			continue
		}
		f := families[cur]
		name, suffix := m[1], ""
		if f.typ == "histogram" {
			suffix, _ = strings.CutPrefix(name, cur)
			if !slices.Contains([]string{"_bucket", "_sum", "_count"}, suffix) {
				bad("not a sample of histogram " + cur)
				continue
			}
		} else if name != cur {
			bad("not a sample of " + cur)
			continue
		}
		var names, values []string
		le := ""
		for rest := m[2]; rest != ""; {
			p := labelPair.FindStringSubmatch(rest)
			if p == nil {
				bad("malformed labels")
				break
			}
			if p[1] == "le" && suffix == "_bucket" {
				le = p[2]
			} else {
				names, values = append(names, p[1]), append(values, p[2])
			}
			rest = rest[len(p[0]):]
		}
		if f.samples > 0 && !slices.Equal(names, f.labels) {
			bad("label names differ from the family's other samples")
		}
		f.labels = names
		f.samples++
		v, err := strconv.ParseFloat(m[3], 64)
		if err != nil {
			bad("value does not parse")
		}
		if seen[line[:len(line)-len(m[3])]] {
			bad("the series appears twice")
		}
		seen[line[:len(line)-len(m[3])]] = true
		if f.typ == "counter" && (v < 0 || math.IsNaN(v)) {
			bad("a counter below zero")
		}
		if f.typ != "histogram" {
			continue
		}
		series := cur + "{" + strings.Join(values, "\xff") + "}"
		h := hists[series]
		if h == nil {
			h = &hist{lastLe: math.Inf(-1)}
			hists[series] = h
		}
		switch suffix {
		case "_bucket":
			bound, err := strconv.ParseFloat(le, 64)
			if err != nil || bound <= h.lastLe || v < h.last || h.hasInf {
				bad("buckets not cumulative, in ascending le, ending in +Inf")
			}
			h.last, h.lastLe = v, bound
			if math.IsInf(bound, 1) {
				h.inf, h.hasInf = v, true
			}
		case "_count":
			h.count, h.hasCount = v, true
		}
	}
	for s, h := range hists {
		if !h.hasInf || !h.hasCount || h.inf != h.count {
			t.Errorf("histogram %s: +Inf bucket %v, _count %v", s, h.inf, h.count)
		}
	}
	return families
}

// documentedMetrics reads the table of docs/operations.md's Metrics section: each
// metric's type and labels.
func documentedMetrics(t *testing.T) map[string]*family {
	t.Helper()
	b, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, _ := strings.Cut(string(b), "\n## Metrics\n")
	section, _, _ = strings.Cut(section, "\n#")
	doc := map[string]*family{}
	code := regexp.MustCompile("`([^`]+)`")
	for _, row := range strings.Split(section, "\n") {
		cells := strings.Split(row, "|")
		if len(cells) < 5 || !strings.HasPrefix(strings.TrimSpace(cells[1]), "`") {
			continue
		}
		var labels []string
		for _, m := range code.FindAllStringSubmatch(cells[3], -1) {
			labels = append(labels, m[1])
		}
		for _, m := range code.FindAllStringSubmatch(cells[1], -1) {
			doc[m[1]] = &family{typ: strings.TrimSpace(cells[2]), labels: labels}
		}
	}
	if len(doc) < 10 {
		t.Fatalf("read %d metrics from the table of docs/operations.md", len(doc))
	}
	return doc
}

// TestMetricsExpositionAndDocs: a real server's scrape, after calls of several kinds,
// is valid Prometheus text, and its metrics are those docs/operations.md lists, with
// the type and labels it gives them.
func TestMetricsExpositionAndDocs(t *testing.T) {
	ts := startServer(t)
	ts.login(t, "u1")
	ts.call(t, "socialize.getUserInfo", url.Values{"UID": {"u1"}})
	ts.post(t, ts.HTTPURL, "socialize.nope", url.Values{})
	ts.post(t, ts.HTTPURL, "odd%22path%5Cwith%0Abreaks", url.Values{}) // not a label: "unknown"
	ts.waitInFlight(t, 0)
	_, text := get(t, ts.AdminURL+"/metrics")
	got := parseExposition(t, text)
	doc := documentedMetrics(t)
	for name, f := range got {
		d := doc[name]
		switch {
		case d == nil:
			t.Errorf("%s (%s) is not in the table of docs/operations.md", name, f.typ)
		case d.typ != f.typ:
			t.Errorf("%s is a %s, documented as a %s", name, f.typ, d.typ)
		case f.samples > 0 && !slices.Equal(d.labels, f.labels):
			t.Errorf("%s has labels %v, documented as %v", name, f.labels, d.labels)
		case f.help == "":
			t.Errorf("%s has no HELP text", name)
		}
	}
	for name := range doc {
		if got[name] == nil {
			t.Errorf("%s is documented but not exposed", name)
		}
	}
}

// seriesOf returns the series of a scrape (each sample line without its value).
func seriesOf(text string) map[string]bool {
	series := map[string]bool{}
	for _, line := range strings.Split(text, "\n") {
		if line != "" && !strings.HasPrefix(line, "#") {
			series[line[:strings.LastIndexByte(line, ' ')]] = true
		}
	}
	return series
}

// TestMetricsBoundedByClients: nothing a client chooses (the path, the HTTP method,
// the apiKey, the format, the headers) makes a new series: after a round of requests
// of each kind, a few hundred more with values never seen add none, so that no client
// can grow the metrics (and the process's memory) without bound.
func TestMetricsBoundedByClients(t *testing.T) {
	ts := startServer(t)
	ts.login(t, "u1")
	round := func(n int) {
		for i := range n {
			base := ts.HTTPURL
			if i%2 == 1 {
				base = ts.HTTPSURL
			}
			path := []string{"/bogus.m%d", "/socialize.getUserInfo", "/a/b/%d", "/socialize.getUserInfo/%d", "/SOCIALIZE.GETUSERINFO"}[i%5]
			if strings.Contains(path, "%d") {
				path = fmt.Sprintf(path, i)
			}
			q := url.Values{"apiKey": {fmt.Sprintf("3_k%d", i)}, "format": {fmt.Sprintf("f%d", i)}, "UID": {"u1"}, "secret": {fmt.Sprintf("s%d", i)}}
			if i%3 == 0 {
				q.Set("format", "json")
			}
			req, err := http.NewRequest([]string{"GET", "POST", "PUT", "OPTIONS"}[i%4], base+path+"?"+q.Encode(), strings.NewReader(fmt.Sprintf("x%d=%d", i, i)))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", fmt.Sprintf("application/x-%d", i))
			req.Header.Set("X-Forwarded-Proto", fmt.Sprintf("h%d", i))
			req.Header.Set("Authorization", fmt.Sprintf("Bearer x%d", i))
			resp, err := ts.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
		}
		ts.waitInFlight(t, 0)
	}
	round(120)
	_, before := get(t, ts.AdminURL+"/metrics")
	round(600)
	_, after := get(t, ts.AdminURL+"/metrics")
	was := seriesOf(before)
	for s := range seriesOf(after) {
		if !was[s] {
			t.Errorf("a new series after requests of kinds already seen: %s", s)
		}
	}
}
