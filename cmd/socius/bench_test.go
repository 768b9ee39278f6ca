package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/socius/socius/internal/syncbuf"
	"github.com/socius/socius/loadgen"
)

// testBench is a bench whose children are the socius binary, built for the tests.
func testBench(t *testing.T, args ...string) (*Bench, *syncbuf.Buffer) {
	t.Helper()
	out := &syncbuf.Buffer{}
	b := NewBench()
	b.Stdout, b.Stderr = out, out
	bin := binary(t)
	b.Command = func(args ...string) *exec.Cmd { return exec.Command(bin, args...) }
	if _, err := b.ParseFlags(args, noEnv, out); err != nil {
		t.Fatal(err)
	}
	return b, out
}

// TestBenchSmoke runs the whole bench for about five seconds with a few users: it must
// measure the baseline and every scenario without a failed request, print them, write
// them as JSON and write every counted request to the latency log. It says nothing
// about speed (the suite is no benchmark), but a run must have requests answered within
// its window, or the bench fails: runs of 1 s, as a loaded machine stalls a few hundred
// ms (runs of 300 ms had none, under load).
func TestBenchSmoke(t *testing.T) {
	jsonFile := filepath.Join(t.TempDir(), "bench.json")
	latencyFile := filepath.Join(t.TempDir(), "latency.csv")
	b, out := testBench(t, "--users", "50", "--connections", "4", "--duration", "1s", "--warmup", "100ms",
		"--json", jsonFile, "--latency-log", latencyFile)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if _, err := b.Run(ctx); err != nil {
		t.Fatalf("bench: %v\n%s", err, out)
	}
	data, err := os.ReadFile(jsonFile)
	if err != nil {
		t.Fatal(err)
	}
	var rep BenchReport
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Fatalf("the JSON does not read back: %v", err)
	}
	want := []loadgen.Scenario{loadgen.Baseline, loadgen.SetUserInfo, loadgen.GetUserInfo, loadgen.Mix}
	// The settings, so that a report says what it measured.
	if !slices.Equal(rep.Users, []int{50}) || !slices.Equal(rep.Scenarios, want[1:]) || rep.Label != "sqlite" || rep.Preload == "" || rep.Connections != 4 {
		t.Errorf("settings in the JSON: users %v, scenarios %v, label %q, preload %q, connections %d", rep.Users, rep.Scenarios, rep.Label, rep.Preload, rep.Connections)
	}
	if len(rep.Results) != len(want) || len(rep.Summary) != len(want) {
		t.Fatalf("%d results and %d summary lines, want %d each:\n%s", len(rep.Results), len(rep.Summary), len(want), data)
	}
	for i, r := range rep.Results {
		if r.Scenario != want[i] {
			t.Errorf("result %d is %s, want %s", i, r.Scenario, want[i])
		}
		if r.Requests <= 0 || r.RPS <= 0 || r.Errors != 0 || r.P99Ms <= 0 {
			t.Errorf("%s: %d requests (%.0f/s), %d errors, p99 %.2f ms", r.Scenario, r.Requests, r.RPS, r.Errors, r.P99Ms)
		}
		if r.Scenario != loadgen.Baseline && (r.Ratio <= 0 || r.Store != "sqlite" || r.Users != 50) {
			t.Errorf("%s: ratio %.2f, store %q, users %d", r.Scenario, r.Ratio, r.Store, r.Users)
		}
		if r.ServerPeakRSS <= 0 {
			t.Errorf("%s: no peak memory of the server", r.Scenario)
		}
	}
	for _, s := range want {
		if !strings.Contains(out.String(), string(s)) {
			t.Errorf("the table has no %s line:\n%s", s, out)
		}
	}

	// The latency log: its header, then as many lines for each run as it counted.
	log, err := os.ReadFile(latencyFile)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(log), "\n"), "\n")
	if lines[0] != strings.Join(latencyColumns, ",") {
		t.Fatalf("latency log header %q", lines[0])
	}
	rows := map[string]int64{}
	for _, line := range lines[1:] {
		f := strings.Split(line, ",")
		if len(f) != 6 {
			t.Fatalf("latency log line %q", line)
		}
		end, err1 := strconv.ParseInt(f[4], 10, 64)
		lat, err2 := strconv.ParseInt(f[5], 10, 64)
		if err1 != nil || err2 != nil || lat <= 0 || time.Since(time.Unix(0, end)) > time.Minute {
			t.Fatalf("latency log line %q", line)
		}
		rows[strings.Join(f[:4], ",")]++
	}
	for _, r := range rep.Results {
		store := r.Store
		if r.Scenario == loadgen.Baseline {
			store = "-"
		}
		run := fmt.Sprintf("%s,50,1,%s", store, r.Scenario)
		if rows[run] != r.Requests+r.Late {
			t.Errorf("latency log: %d lines for %s, which counted %d requests and %d late answers", rows[run], run, r.Requests, r.Late)
		}
	}
	if len(rows) != len(rep.Results) {
		t.Errorf("latency log runs %v, want the %d of the report", rows, len(rep.Results))
	}
}

// TestBenchInterleavesUserCounts runs two user counts for two rounds: each count has
// its own store and server, and the rounds take the counts by turns, so that both are
// measured through the same minutes of a shared machine.
func TestBenchInterleavesUserCounts(t *testing.T) {
	dir := t.TempDir()
	b, out := testBench(t, "--users", "20,30", "--rounds", "2", "--connections", "2", "--duration", "1s",
		"--warmup", "0s", "--scenarios", "getUserInfo", "--store-dir", dir)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	rep, err := b.Run(ctx)
	if err != nil {
		t.Fatalf("bench: %v\n%s", err, out)
	}
	var got []string
	for _, r := range rep.Results {
		got = append(got, fmt.Sprintf("%d/%d/%s", r.Round, r.Users, r.Scenario))
		if r.Requests == 0 || r.Errors != 0 {
			t.Errorf("round %d, %d users, %s: %d requests, %d errors", r.Round, r.Users, r.Scenario, r.Requests, r.Errors)
		}
	}
	want := []string{
		"1/20/baseline", "1/20/getUserInfo", "1/30/baseline", "1/30/getUserInfo",
		"2/20/baseline", "2/20/getUserInfo", "2/30/baseline", "2/30/getUserInfo",
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("runs in the order\n%s\nwant\n%s", strings.Join(got, " "), strings.Join(want, " "))
	}
	for _, n := range []string{"users-20", "users-30"} {
		if _, err := os.Stat(filepath.Join(dir, n, "socius.db")); err != nil {
			t.Errorf("no store of its own: %v", err)
		}
	}
	if len(rep.Summary) != 4 {
		t.Errorf("%d summary lines, want 4 (a baseline and getUserInfo for each count)", len(rep.Summary))
	}
	// A summary line sums its rounds' requests, errors and late answers.
	for _, m := range rep.Summary {
		var requests, late int64
		for _, r := range rep.Results {
			if r.Users == m.Users && r.Scenario == m.Scenario {
				requests, late = requests+r.Requests, late+r.Late
			}
		}
		if m.Requests != requests || m.Late != late {
			t.Errorf("summary of %d users, %s: %d requests and %d late, want the rounds' %d and %d", m.Users, m.Scenario, m.Requests, m.Late, requests, late)
		}
	}

	// 30 users against 20: getUserInfo's ratio in each round over the same round's.
	if len(rep.Comparisons) != 1 {
		t.Fatalf("comparisons %+v, want one: 30 users against 20, getUserInfo", rep.Comparisons)
	}
	c := rep.Comparisons[0]
	r := rep.Results
	want1, want2 := r[3].Ratio/r[1].Ratio, r[7].Ratio/r[5].Ratio
	if c.Users != 30 || c.Against != 20 || c.Scenario != loadgen.GetUserInfo || c.Rounds != 2 ||
		math.Abs(c.Ratio-(want1+want2)/2) > 1e-9 {
		t.Errorf("comparison %+v, want 30 against 20, getUserInfo, 2 rounds, ratio %.4f", c, (want1+want2)/2)
	}
	if !strings.Contains(out.String(), "sqlite, 30 users against 20") {
		t.Errorf("no comparison printed:\n%s", out)
	}
}

// TestCompareCounts checks the quotients on made-up results: a round is compared with
// the same round of the first count, baseline runs are not compared, and a round the
// first count lacks is left out.
func TestCompareCounts(t *testing.T) {
	res := func(users, round int, sc loadgen.Scenario, ratio, rps float64) *loadgen.Result {
		return &loadgen.Result{Store: "sqlite", Users: users, Round: round, Scenario: sc, Ratio: ratio, RPS: rps}
	}
	results := []*loadgen.Result{
		res(10, 1, loadgen.Baseline, 0, 1000), res(10, 1, loadgen.SetUserInfo, 0.50, 500),
		res(99, 1, loadgen.Baseline, 0, 900), res(99, 1, loadgen.SetUserInfo, 0.40, 360),
		res(10, 2, loadgen.Baseline, 0, 1000), res(10, 2, loadgen.SetUserInfo, 0.40, 400),
		res(99, 2, loadgen.Baseline, 0, 1200), res(99, 2, loadgen.SetUserInfo, 0.36, 432),
		res(10, 3, loadgen.Baseline, 0, 1000), res(10, 3, loadgen.SetUserInfo, 0.50, 500),
		res(99, 3, loadgen.Baseline, 0, 1000), res(99, 3, loadgen.SetUserInfo, 0.50, 500),
		res(99, 4, loadgen.SetUserInfo, 0.10, 100), // round 4 of 10 users is missing
	}
	got := compareCounts(results, []int{10, 99})
	if len(got) != 1 {
		t.Fatalf("comparisons %+v, want one", got)
	}
	c := got[0]
	// Ratios: 0.8, 0.9, 1.0, median 0.9; requests a second: 0.72, 1.08, 1.0, median 1.0.
	if c.Users != 99 || c.Against != 10 || c.Scenario != loadgen.SetUserInfo || c.Rounds != 3 ||
		math.Abs(c.Ratio-0.9) > 1e-9 || math.Abs(c.RPS-1.0) > 1e-9 {
		t.Errorf("comparison %+v, want 99 against 10, setUserInfo, 3 rounds, ratio 0.9, rps 1.0", c)
	}
	if got := compareCounts(results, []int{10}); got != nil {
		t.Errorf("one count compared: %+v", got)
	}
}

// TestBenchCreatesUsersOverHTTP has the bench create its users with signed
// notifyLogin calls, as it does when serve flags are passed through (the store may
// then be another one), and pass a serve flag through.
func TestBenchCreatesUsersOverHTTP(t *testing.T) {
	b, out := testBench(t, "--users", "30", "--connections", "2", "--duration", "1s", "--warmup", "0s",
		"--scenarios", "getUserInfo", "--", "--max-body-bytes", "65536")
	if b.Preload != "auto" || len(b.ServeArgs) != 2 {
		t.Fatalf("preload %q, serve args %q", b.Preload, b.ServeArgs)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	rep, err := b.Run(ctx)
	if err != nil {
		t.Fatalf("bench: %v\n%s", err, out)
	}
	if !strings.Contains(out.String(), "creating users: 30 / 30") {
		t.Errorf("no progress line of the HTTP user creation:\n%s", out)
	}
	if n := len(rep.Results); n != 2 || rep.Results[1].Requests == 0 || rep.Results[1].Errors != 0 {
		t.Errorf("results: %+v", rep.Results)
	}
}

func TestBenchFlags(t *testing.T) {
	// --server-exe names a program to start: one that is missing, not executable or a
	// folder is refused before anything runs.
	exeDir := t.TempDir()
	missingExe := filepath.Join(exeDir, "socius-old")
	notExe := filepath.Join(exeDir, "serve.sh")
	if err := os.WriteFile(notExe, []byte("#!/bin/sh\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--scenarios", "nope"}, "unknown scenario"},
		{[]string{"--scenarios", "getUserInfo,mix,getUserInfo"}, "getUserInfo given twice"},
		{[]string{"--users", "0"}, "not a positive count"},
		{[]string{"--users", "100,1_000,100"}, "100 given twice"},
		{[]string{"--url", "http://127.0.0.1:1"}, "needs --api-key and --secret"},
		{[]string{"--url", "http://127.0.0.1:1", "--api-key", "k", "--secret", "s", "--", "--data", "x"}, "serve flags"},
		{[]string{"--url", "http://127.0.0.1:1", "--api-key", "k", "--secret", "s", "--users", "10,20"}, "give one --users count"},
		{[]string{"--pid", "1"}, "go with --url"},
		{[]string{"--rounds", "0"}, "--rounds"},
		{[]string{"--preload", "fast"}, "--preload"},
		{[]string{"--preload", "store", "--", "--store", "postgres://x/y"}, "with --store in the serve flags"},
		{[]string{"--preload", "store", "--", "-store=postgres://x/y"}, "with --store in the serve flags"},
		{[]string{"--url", "http://127.0.0.1:1/prefix", "--api-key", "k", "--secret", "s"}, "want http://host:port"},
		{[]string{"--url", "https://127.0.0.1:1", "--api-key", "k", "--secret", "s"}, "want http://host:port"},
		{[]string{"--url", "http://127.0.0.1:1", "--api-key", "k", "--secret", "s"}, "--secret: secret is not standard base64"},
		{[]string{"--url", "http://127.0.0.1:1", "--api-key", "k", "--secret", testSecret, "--pid", "-3"}, "--pid -3: no such process"},
		{[]string{"--json", filepath.Join(t.TempDir(), "no", "such", "dir.json")}, "--json: cannot create "},
		{[]string{"--latency-log", filepath.Join(t.TempDir(), "no", "such", "dir.csv")}, "--latency-log: cannot create "},
		{[]string{"--url", "http://127.0.0.1:1", "--api-key", "k", "--secret", testSecret, "--store-dir", t.TempDir()}, "--store-dir"},
		{[]string{"--server-exe", missingExe}, "--server-exe " + missingExe + ": no such file or directory"},
		{[]string{"--server-exe", notExe}, "--server-exe " + notExe + ": not executable"},
		{[]string{"--server-exe", exeDir}, "--server-exe " + exeDir + ": is a directory"},
		{[]string{"--server-exe", "socius-no-such-build"}, "--server-exe socius-no-such-build: not found in $PATH"},
		// Given empty ("--json $OUT" with the variable unset): the bench ran this
		// binary in place of the one to compare, or wrote no results. (--rounds 0,
		// refused later, keeps a bench from running were they not refused.)
		{[]string{"--server-exe", "", "--rounds", "0"}, "--server-exe is empty (an unset variable?)"},
		{[]string{"--json=", "--rounds", "0"}, "--json is empty (an unset variable?)"},
		{[]string{"--latency-log", "", "--rounds", "0"}, "--latency-log is empty (an unset variable?)"},
		{[]string{"--profile", "", "--rounds", "0"}, "--profile is empty (an unset variable?)"},
		{[]string{"--store-dir", "", "--rounds", "0"}, "--store-dir is empty (an unset variable?)"},
	} {
		// A usage error (exit 2), said once as every command says one ("socius: --flag
		// ..."), before the bench prints its head or starts a server.
		code, out, errOut := runCLI(t, noEnv, append([]string{"bench"}, tt.args...)...)
		if code != 2 || out != "" || !strings.HasPrefix(errOut, "socius: --") || !strings.Contains(errOut, tt.want) || strings.Count(errOut, "\n") != 1 {
			t.Errorf("bench %q: exit %d %q %q; want 2 and one line socius: --... with %q", tt.args, code, out, errOut, tt.want)
		}
	}
	if code, out, errOut := runCLI(t, noEnv, "bench", "--server-exe", missingExe); code != 2 || out != "" || errOut != "socius: --server-exe "+missingExe+": no such file or directory\n" {
		t.Errorf("bench --server-exe %s: exit %d %q %q; want 2 and the file said", missingExe, code, out, errOut)
	}
	// A flag it does not have, or an argument, is said as the flag package and every
	// command say it, with the usage.
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--no-such-flag"}, "flag provided but not defined: -no-such-flag\nusage: socius bench"},
		{[]string{"--users"}, "flag needs an argument: -users\nusage: socius bench"},
		{[]string{"--connections", "many"}, `invalid value "many" for flag -connections`},
		{[]string{"extra"}, `socius bench: unexpected argument "extra"`},
	} {
		code, out, errOut := runCLI(t, noEnv, append([]string{"bench"}, tt.args...)...)
		if code != 2 || out != "" || !strings.Contains(errOut, tt.want) || strings.Contains(errOut, "socius: ") {
			t.Errorf("bench %q: exit %d %q %q; want 2 and %q", tt.args, code, out, errOut, tt.want)
		}
	}
	// --preload store with serve flags that leave the store alone writes the store serve
	// uses.
	if _, err := NewBench().ParseFlags([]string{"--preload", "store", "--", "--max-body-bytes", "65536", "--log-level", "info"}, noEnv, &bytes.Buffer{}); err != nil {
		t.Errorf("--preload store with other serve flags: %v", err)
	}
	// A trailing slash was signed but not sent (every request 403003).
	b := NewBench()
	if _, err := b.ParseFlags([]string{"--url", "http://127.0.0.1:1/", "--api-key", "k", "--secret", testSecret}, noEnv, &bytes.Buffer{}); err != nil || b.URL != "http://127.0.0.1:1" {
		t.Errorf("--url with a trailing slash: %q, %v", b.URL, err)
	}
	// The bench reads no SOCIUS_* variable (SOCIUS_URL exported for socius call), and
	// its servers get none (SOCIUS_RATE_LIMIT would throttle them unreported).
	env := func(k string) (string, bool) {
		return map[string]string{"SOCIUS_URL": "http://127.0.0.1:1", "SOCIUS_USERS": "0"}[k], strings.HasPrefix(k, "SOCIUS_URL") || k == "SOCIUS_USERS"
	}
	if b := NewBench(); func() error { _, err := b.ParseFlags(nil, env, &bytes.Buffer{}); return err }() != nil || b.URL != "" {
		t.Errorf("the bench read SOCIUS_URL: %q", b.URL)
	}
	if got := benchEnv([]string{"PATH=/bin", "SOCIUS_RATE_LIMIT=5", "HOME=/root", "SOCIUS_STORE=postgres://x"}); !slices.Equal(got, []string{"PATH=/bin", "HOME=/root"}) {
		t.Errorf("the servers' environment: %v", got)
	}
	// The paths of --json and --latency-log are checked without leaving a file, or
	// changing one.
	dir := t.TempDir()
	old := filepath.Join(dir, "old.json")
	os.WriteFile(old, []byte(`{"old":1}`), 0o644)
	if _, err := NewBench().ParseFlags([]string{"--json", old, "--latency-log", filepath.Join(dir, "new.csv")}, noEnv, &bytes.Buffer{}); err != nil {
		t.Errorf("writable paths: %v", err)
	}
	if got, _ := os.ReadFile(old); string(got) != `{"old":1}` {
		t.Errorf("the check changed an existing file: %q", got)
	}
	if _, err := os.Stat(filepath.Join(dir, "new.csv")); !os.IsNotExist(err) {
		t.Errorf("the check left a file: %v", err)
	}
	// A PostgreSQL store is reported as one.
	pg := NewBench()
	if _, err := pg.ParseFlags([]string{"--", "--store=postgres://u@h/db"}, noEnv, &bytes.Buffer{}); err != nil || pg.Label != "postgresql" {
		t.Errorf("label with a PostgreSQL store: %q, %v", pg.Label, err)
	}
	if code, out, _ := runCLI(t, noEnv, "help"); code != 0 || !strings.Contains(out, "bench") {
		t.Errorf("usage does not list bench: %s", out)
	}
}

// TestBenchReportHidesSecrets: the serve flags in the report hold no password of a
// connection string and no site secret, in either spelling of a flag.
func TestBenchReportHidesSecrets(t *testing.T) {
	args := []string{"--store", "postgres://socius:hunter2@127.0.0.1:5432/socius?sslmode=disable", "-store=postgresql://u:hunter2@h/db",
		"--site-secret", "hunter2", "--site-secret=hunter2", "--log-level", "warn"}
	got := redactServeArgs(args)
	if strings.Contains(strings.Join(got, " "), "hunter2") || len(got) != len(args) {
		t.Errorf("redacted: %q", got)
	}
	if got[1] != "postgres://socius:xxxxx@127.0.0.1:5432/socius?sslmode=disable" || got[7] != "warn" || args[1] == got[1] {
		t.Errorf("redacted: %q (from %q)", got, args)
	}
}

// TestBenchStopsWhenTheServerDies: a server that exits during a run stops the bench at
// once with its exit; it measured a dead server for every run left.
func TestBenchStopsWhenTheServerDies(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "serve.sh")
	body := "#!/bin/sh\nif [ \"$1\" = serve ]; then\n\t" + binary(t) + " \"$@\" &\n\tpid=$!\n\t(sleep 3; kill -9 $pid) &\n\twait $pid\n\texit $?\nfi\nexec " + binary(t) + " \"$@\"\n"
	if err := os.WriteFile(script, []byte(body), 0o700); err != nil {
		t.Fatal(err)
	}
	b, out := testBench(t, "--users", "20", "--connections", "2", "--duration", "6s", "--warmup", "0s",
		"--scenarios", "getUserInfo,setUserInfo", "--server-exe", script)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	rep, err := b.Run(ctx)
	if err == nil || !strings.Contains(err.Error(), "socius serve exited") || !strings.Contains(err.Error(), "the run stops") {
		t.Fatalf("Run = %v, want the server's exit\n%s", err, out)
	}
	if rep != nil && len(rep.Results) > 2 {
		t.Errorf("%d runs measured after the server died", len(rep.Results))
	}
}

// TestBenchSaysWhereTheVariablesWent: a server that cannot start without a SOCIUS_*
// variable the bench kept from it says so.
func TestBenchSaysWhereTheVariablesWent(t *testing.T) {
	t.Setenv("SOCIUS_MASTER_KEY", "x")
	b, out := testBench(t, "--users", "5", "--duration", "100ms", "--", "--store", "postgres://socius@127.0.0.1:1/socius")
	_, err := b.Run(t.Context())
	if err == nil || !strings.Contains(err.Error(), "no SOCIUS_* variable") {
		t.Errorf("Run = %v\n%s", err, out)
	}
}

// TestBenchPreloadInterrupted: an interrupted creation of users says what it was
// doing. It is interrupted at its first progress report, half a second into the
// creation: a fixed 300 ms ran out, on a loaded disk, while the store was still being
// opened, before any user was created.
func TestBenchPreloadInterrupted(t *testing.T) {
	b := NewBench()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	b.Stderr = cancelOnWrite(cancel)
	err := b.preloadStore(ctx, t.TempDir(), loadgen.Target{APIKey: "3_SociusBench", Secret: testSecret}, 2_000_000)
	if err == nil || !strings.HasPrefix(err.Error(), "creating users in the store: ") {
		t.Errorf("preloadStore = %v", err)
	}
}

// cancelOnWrite is a writer that cancels a context at each write.
type cancelOnWrite context.CancelFunc

func (c cancelOnWrite) Write(p []byte) (int, error) {
	c()
	return len(p), nil
}

// TestBenchRunError: a failure while the bench runs is said as every other command's
// run-time failure is, after "socius: ", naming the step that failed, exit 1; it said
// "socius: bench: start the baseline: ...".
func TestBenchRunError(t *testing.T) {
	script := filepath.Join(t.TempDir(), "serve.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nexit 3\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := runCLI(t, noEnv, "bench", "--users", "5", "--duration", "100ms", "--server-exe", script)
	if want := "socius: start the baseline: baseline exited before serving: exit status 3\n"; code != 1 || errOut != want {
		t.Errorf("bench with a server that exits at once: exit %d %q; want 1 and %q", code, errOut, want)
	}
}

// TestBenchServerExeRunsBaseline: with --server-exe both the server and the baseline
// start from it, so that a script that places the server (taskset) places the
// baseline alike.
func TestBenchServerExeRunsBaseline(t *testing.T) {
	dir := t.TempDir()
	calls := filepath.Join(dir, "calls")
	script := filepath.Join(dir, "serve.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho \"$1 $2\" >> "+calls+"\nexec "+binary(t)+" \"$@\"\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	b, out := testBench(t, "--users", "20", "--connections", "2", "--duration", "1s", "--warmup", "50ms",
		"--scenarios", "getUserInfo", "--server-exe", script)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if _, err := b.Run(ctx); err != nil {
		t.Fatalf("bench: %v\n%s", err, out)
	}
	got, err := os.ReadFile(calls)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(got), "bench --serve-baseline") || !strings.Contains(string(got), "serve ") {
		t.Errorf("the script started %q; want the baseline and the server", got)
	}
}

// TestBenchEmptyRunFails: a run in which no request was answered within its window (a
// stalled server) makes the bench fail, as failed requests do; it printed 0 req/s and
// exited 0.
func TestBenchEmptyRunFails(t *testing.T) {
	b := NewBench()
	b.Stdout = io.Discard
	rep := &BenchReport{}
	b.record(rep, &loadgen.Result{Scenario: loadgen.GetUserInfo, Users: 10, Requests: 0, Late: 64})
	b.record(rep, &loadgen.Result{Scenario: loadgen.SetUserInfo, Users: 10, Requests: 5})
	if b.empty != 1 || b.failed != 0 {
		t.Errorf("after an empty run and a good one: %d empty, %d failed; want 1 and 0", b.empty, b.failed)
	}
}

// TestRowWithoutServerCPU: without the server's process (--url without --pid), its CPU
// columns say "-", and so does other: the server's CPU would read as other processes'.
func TestRowWithoutServerCPU(t *testing.T) {
	var out bytes.Buffer
	printRow(&out, &loadgen.Result{Scenario: loadgen.GetUserInfo, Users: 10, Requests: 100, RPS: 100, Ratio: 0.5})
	fields := strings.Fields(out.String())
	if got := strings.Join(fields[len(fields)-3:], " "); got != "- - -" {
		t.Errorf("the CPU columns without a server pid: %q, want \"- - -\"", got)
	}
}

// TestBenchProfileWarning: a CPU profile that cannot be fetched (the server's pprof
// answers 500) is a warning in the form of the others, "socius: warning: ...", naming
// the file; it began "socius bench: ".
func TestBenchProfileWarning(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "profiling is off", http.StatusInternalServerError)
	}))
	defer srv.Close()
	var out bytes.Buffer
	b := &Bench{Stderr: &out, Duration: time.Second}
	file := filepath.Join(t.TempDir(), "sqlite-10-getUserInfo-1.pprof")
	b.profile(t.Context(), srv.URL+"/debug/pprof/", file)
	want := "socius: warning: CPU profile " + file + " not written: 500 Internal Server Error: profiling is off\n"
	if out.String() != want {
		t.Errorf("a profile the server refuses:\n%q\nwant\n%q", out.String(), want)
	}
	if _, err := os.Stat(file); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s after the refused profile: %v, want none", file, err)
	}
}

// TestBenchAfterAnUncleanStop: a kept store whose last server did not stop cleanly (no
// saved nonces: a killed bench, a build before 2026-11-30) is benched all the same: its
// new server refuses the requests timed in its first second, and the bench's first
// request came in it (403002, the bench failed).
func TestBenchAfterAnUncleanStop(t *testing.T) {
	dir := t.TempDir()
	args := []string{"--users", "20", "--connections", "2", "--duration", "1s", "--warmup", "0s", "--scenarios", "getUserInfo", "--store-dir", dir}
	for run := range 2 {
		b, out := testBench(t, args...)
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		_, err := b.Run(ctx)
		cancel()
		if err != nil {
			t.Fatalf("run %d: %v\n%s", run, err, out)
		}
		if run == 0 {
			// As if that server had been killed: its nonces not saved.
			if err := os.Remove(filepath.Join(dir, "users-20", noncesFile)); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestWarmStore: before a round, the bench reads a store's files to their ends (here
// the database is a pipe, whose writer finishes only if every byte is read), skips a
// WAL that is not there, and says when a file cannot be read.
func TestWarmStore(t *testing.T) {
	dir := t.TempDir()
	pipe := filepath.Join(dir, "socius.db")
	makeFifo(t, pipe, 0o600)
	const size = 3<<20 + 123
	wrote := make(chan error, 1)
	go func() {
		f, err := os.OpenFile(pipe, os.O_WRONLY, 0)
		if err == nil {
			_, err = f.Write(make([]byte, size))
			f.Close()
		}
		wrote <- err
	}()
	if err := warmStore(dir); err != nil {
		t.Fatalf("warmStore: %v", err)
	}
	select {
	case err := <-wrote:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the store's file was not read to its end")
	}

	unreadable := t.TempDir()
	if err := os.Mkdir(filepath.Join(unreadable, "socius.db-wal"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := warmStore(unreadable); err == nil {
		t.Error("a WAL that is a folder was read without an error")
	}
}

// TestUnsoundBenchSaid: a bench whose requests failed, or whose runs had no request
// answered in time, ends with an error that counts them in words that fit the count
// ("1 request failed", not "1 requests failed"); one with neither ends without one.
func TestUnsoundBenchSaid(t *testing.T) {
	for _, c := range []struct {
		failed, empty int64
		want          string
	}{
		{0, 0, ""},
		{1, 0, "1 request failed; the figures above do not stand"},
		{3, 2, "3 requests failed; the figures above do not stand"},
		{0, 1, "no request answered within the window of 1 run; the figures above do not stand"},
		{0, 2, "no request answered within the window of 2 runs; the figures above do not stand"},
	} {
		err := unsound(c.failed, c.empty)
		if got := fmt.Sprint(err); c.want == "" && err != nil || c.want != "" && got != c.want {
			t.Errorf("%d failed, %d empty: %v, want %q", c.failed, c.empty, err, c.want)
		}
	}
}
