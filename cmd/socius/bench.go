package main

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/socius/socius"
	"github.com/socius/socius/loadgen"
	"github.com/socius/socius/postgres"
	"github.com/socius/socius/sqlite"
)

// Bench is one `socius bench`: it measures a Socius server (one it starts itself, as a
// separate `socius serve` process on a store of its own, or a running one) and, in the
// same run, the baseline handler, and reports both side by side.
type Bench struct {
	URL    string // a running Socius to drive; empty: start one per user count
	APIKey string // the site to sign for (a running Socius); a bench site otherwise
	Secret string
	PID    int // the running Socius's process id, for its memory; 0: unknown

	Scenarios   []loadgen.Scenario
	Users       []int // one store (and one server) per count
	Connections int
	Duration    time.Duration
	Warmup      time.Duration
	Rounds      int // each round measures the baseline and every scenario again

	JSONFile   string
	LatencyLog string // write every counted request's answer time and latency here, as CSV
	StoreDir   string // where the stores live (kept); empty: a temp folder, removed
	Label      string // the store's name in the report
	Preload    string // auto, store or http
	CreateConn int    // connections used to create users over HTTP
	ProfileDir string // write a CPU profile of the server per scenario here
	ServeArgs  []string
	ServerExe  string // the socius binary that serves; empty: this one

	Stdout, Stderr io.Writer
	// Command returns the command that runs socius with args: this very binary, unless
	// a test says otherwise.
	Command func(args ...string) *exec.Cmd

	failed  int64
	empty   int64       // runs in which no request was answered within the window
	latency *csv.Writer // LatencyLog, open during Run
}

// NewBench returns a Bench with the defaults of `socius bench`.
func NewBench() *Bench {
	return &Bench{
		Scenarios:   slices.Clone(loadgen.Scenarios),
		Users:       []int{10_000},
		Connections: 64,
		Duration:    10 * time.Second,
		Warmup:      2 * time.Second,
		Rounds:      1,
		Preload:     "auto",
		CreateConn:  64,
		Stdout:      os.Stdout,
		Stderr:      os.Stderr,
		Command:     selfCommand,
	}
}

// benchEnv is the environment of the servers the bench starts: the bench's without the
// SOCIUS_* variables, which serve would read as flags (a rate limit, another store, the
// emulator) that the report does not show; serve flags go after "--".
func benchEnv(env []string) []string {
	return slices.DeleteFunc(slices.Clone(env), func(kv string) bool { return strings.HasPrefix(kv, "SOCIUS_") })
}

func selfCommand(args ...string) *exec.Cmd {
	exe, err := os.Executable()
	if err != nil {
		exe = os.Args[0]
	}
	return exec.Command(exe, args...)
}

const benchUsage = `usage: socius bench [flags] [-- serve flags]

Measures Socius under load: signed setUserInfo, getUserInfo and an 80/20 mix,
against a baseline (a minimal net/http handler) in the same run. Without --url it
starts "socius serve" itself, as a separate process on a store of its own, for
each --users count; flags after "--" are passed on to that serve.

`

// ParseFlags reads `socius bench` flags; arguments after "--" go to serve.
func (b *Bench) ParseFlags(args []string, lookupEnv func(string) (string, bool), errOut io.Writer) (baselineAddr string, err error) {
	if i := slices.Index(args, "--"); i >= 0 {
		b.ServeArgs = slices.Clone(args[i+1:])
		args = args[:i]
	}
	fs := newFlagSet("socius bench", b.Stdout, errOut)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), benchUsage)
		fs.PrintDefaults()
	}
	scenarios := joinScenarios(b.Scenarios)
	users := joinInts(b.Users)
	fs.StringVar(&b.URL, "url", b.URL, "drive the Socius running at this http:// URL instead of starting one (needs --api-key, --secret)")
	fs.StringVar(&b.APIKey, "api-key", b.APIKey, "with --url: the apiKey of the site to sign for")
	fs.StringVar(&b.Secret, "secret", b.Secret, "with --url: that site's partner secret")
	fs.IntVar(&b.PID, "pid", b.PID, "with --url: the server's process id, to report its peak memory and CPU")
	fs.StringVar(&scenarios, "scenarios", scenarios, "scenarios to run, comma-separated: setUserInfo, getUserInfo, mix")
	fs.StringVar(&users, "users", users, "user counts, comma-separated; each gets its own store and server")
	fs.IntVar(&b.Connections, "connections", b.Connections, "concurrent keep-alive connections")
	fs.DurationVar(&b.Duration, "duration", b.Duration, "measured time per scenario (and for the baseline)")
	fs.DurationVar(&b.Warmup, "warmup", b.Warmup, "unmeasured time before each measurement")
	fs.IntVar(&b.Rounds, "rounds", b.Rounds, "measure the baseline and every scenario this many times, interleaved, and report the medians (a shared machine is noisy)")
	fs.StringVar(&b.JSONFile, "json", b.JSONFile, "also write the results as JSON to this file")
	fs.StringVar(&b.LatencyLog, "latency-log", b.LatencyLog, "write every request of every run whose latency is counted (late answers too) to this file, as CSV: when it was answered and its latency")
	fs.StringVar(&b.StoreDir, "store-dir", b.StoreDir, "keep the stores in this folder (users-N/ each) and reuse them; default: a temp folder, removed")
	fs.StringVar(&b.Label, "label", b.Label, `the store's name in the report (default "sqlite"; "postgresql" with a --store postgres://... serve flag; "external" with --url)`)
	fs.StringVar(&b.Preload, "preload", b.Preload, "how users are created: store (written to the SQLite store before serve starts; not with --store in the serve flags), http (signed notifyLogin calls) or auto (store unless serve flags are passed)")
	fs.IntVar(&b.CreateConn, "create-connections", b.CreateConn, "connections used to create users over HTTP")
	fs.StringVar(&b.ProfileDir, "profile", b.ProfileDir, "write a CPU profile of the server for each scenario into this folder (serve runs with --pprof)")
	fs.StringVar(&b.ServerExe, "server-exe", b.ServerExe, "run serve from this socius binary (e.g. an older build, to compare) instead of this one")
	fs.StringVar(&baselineAddr, "serve-baseline", "", "internal: only serve the baseline handler on this address (the bench runs it as a child)")
	// The bench reads no SOCIUS_* variable: those a shell exports for socius call or
	// serve (SOCIUS_URL, SOCIUS_SECRET, SOCIUS_RATE_LIMIT...) would change what it
	// measures without a word in its report. (Its servers get none either: benchEnv.)
	if err := parse(fs, args, func(string) (string, bool) { return "", false }); err != nil {
		return "", err
	}
	if baselineAddr != "" {
		return baselineAddr, nil
	}
	// What follows checks the values given: a refusal is a usage error too (exit 2).
	defer func() {
		if fe := (flagError{}); err != nil && !errors.As(err, &fe) {
			err = flagError{err}
		}
	}()
	for _, f := range []struct{ name, give, leftOut string }{
		{"server-exe", "the socius binary to run serve from", "to run this one"},
		{"json", "the file to write the results to", "for none"},
		{"latency-log", "the file to write the latencies to", "for none"},
		{"profile", "the folder to write the CPU profiles into", "for none"},
		{"store-dir", "the folder to keep the stores in", "for a temporary one"},
	} {
		if givenEmpty(fs, f.name) {
			// "--server-exe $OLD" or "--json $OUT" with the variable unset: the bench
			// ran this binary against itself, or wrote no results, at the end of a
			// run that may take an hour.
			return "", fmt.Errorf("--%s is empty (an unset variable?): give %s, or leave --%s out %s", f.name, f.give, f.name, f.leftOut)
		}
	}
	b.Scenarios = nil
	for _, s := range strings.Split(scenarios, ",") {
		sc, ok := loadgen.ParseScenario(strings.TrimSpace(s))
		if !ok {
			return "", fmt.Errorf("--scenarios: unknown scenario %q (setUserInfo, getUserInfo, mix)", s)
		}
		if slices.Contains(b.Scenarios, sc) {
			// Its runs would be merged into one median: give --rounds instead.
			return "", fmt.Errorf("--scenarios: %s given twice (use --rounds to measure it again)", sc)
		}
		b.Scenarios = append(b.Scenarios, sc)
	}
	b.Users = nil
	for _, s := range strings.Split(users, ",") {
		n, err := strconv.Atoi(strings.ReplaceAll(strings.TrimSpace(s), "_", ""))
		if err != nil || n <= 0 {
			return "", fmt.Errorf("--users: %q is not a positive count", s)
		}
		if slices.Contains(b.Users, n) {
			return "", fmt.Errorf("--users: %d given twice (each count has a store and a server of its own)", n)
		}
		b.Users = append(b.Users, n)
	}
	switch {
	case b.Connections <= 0 || b.CreateConn <= 0:
		return "", errors.New("--connections and --create-connections must be positive")
	case b.Rounds <= 0:
		return "", errors.New("--rounds must be positive")
	case b.Duration <= 0 || b.Warmup < 0:
		return "", errors.New("--duration must be positive and --warmup not negative")
	case b.Preload != "auto" && b.Preload != "store" && b.Preload != "http":
		return "", fmt.Errorf("--preload %q: want auto, store or http", b.Preload)
	case b.Preload == "store" && choosesStore(b.ServeArgs):
		// The users would go into a SQLite store that serve does not use, and then be
		// created again over HTTP.
		return "", errors.New("--preload store writes the embedded SQLite store; with --store in the serve flags, users are created over HTTP (--preload http, or auto)")
	}
	if b.URL != "" {
		if b.APIKey == "" || b.Secret == "" {
			return "", errors.New("--url needs --api-key and --secret")
		}
		// Requests go to /socialize.<method> on the host: a trailing slash would be
		// signed but not sent, and a path is not served.
		b.URL = strings.TrimRight(b.URL, "/")
		if u, err := url.Parse(b.URL); err != nil || u.Scheme != "http" || u.Host == "" || u.Path != "" || u.RawQuery != "" {
			return "", fmt.Errorf("--url %q: want http://host:port, Socius's plain HTTP listener", b.URL)
		}
		if len(b.ServeArgs) > 0 || b.Preload == "store" || b.ProfileDir != "" || b.ServerExe != "" || b.StoreDir != "" {
			return "", errors.New("--url drives a running server: serve flags, --preload store, --store-dir, --profile and --server-exe need a server the bench starts")
		}
		if len(b.Users) > 1 {
			return "", errors.New("--url drives one store: give one --users count")
		}
		if err := socius.ValidateSecret(b.Secret); err != nil {
			return "", fmt.Errorf("--secret: %v", err)
		}
		if b.PID != 0 && !processExists(b.PID) {
			return "", fmt.Errorf("--pid %d: no such process (the server's process id, to read its memory and CPU)", b.PID)
		}
	} else if b.APIKey != "" || b.Secret != "" || b.PID != 0 {
		return "", errors.New("--api-key, --secret and --pid go with --url")
	}
	if b.Label == "" {
		b.Label = "sqlite"
		if store, ok := serveFlag(b.ServeArgs, "store"); ok && (strings.HasPrefix(store, "postgres://") || strings.HasPrefix(store, "postgresql://")) {
			b.Label = "postgresql"
		}
		if b.URL != "" {
			b.Label = "external"
		}
	}
	// Before the run, which may take an hour: not a typo found at its end.
	// --json is written as --out is (writeOut: a file renamed into place), the
	// latency log into the file itself.
	if err := checkOutFolder(b.JSONFile); err != nil {
		return "", fmt.Errorf("--json: %w", err)
	}
	if err := checkWritable(b.LatencyLog); err != nil {
		return "", fmt.Errorf("--latency-log: %w", err)
	}
	if b.ServerExe != "" {
		// Before any store is made or server started: a path mistyped failed only
		// when the baseline started ("fork/exec ...").
		if err := checkServerExe(b.ServerExe); err != nil {
			return "", err
		}
	}
	return "", nil
}

// checkServerExe fails unless name is a program that withServerExe can start, found
// as exec.Command finds it: a path (with a slash) to an executable file, or a name in
// $PATH.
func checkServerExe(name string) error {
	_, err := exec.LookPath(name)
	var ee *exec.Error
	if errors.As(err, &ee) {
		err = ee.Err
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, exec.ErrNotFound):
		return fmt.Errorf("--server-exe %s: not found in $PATH (give a path, ./%s for a file in this folder)", name, name)
	case errors.Is(err, os.ErrPermission):
		return fmt.Errorf("--server-exe %s: not executable; it must be a socius binary, or a script that runs one (chmod +x)", name)
	}
	return fileError("--server-exe", name, err)
}

// serveFlag returns the value of the serve flag name (--name value, --name=value, one
// dash or two) in args, the last one given.
func serveFlag(args []string, name string) (value string, found bool) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" || !strings.HasPrefix(a, "-") {
			continue
		}
		n, v, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if n != name {
			continue
		}
		if !hasValue && i+1 < len(args) {
			i++
			v = args[i]
		}
		value, found = v, true
	}
	return value, found
}

// redactServeArgs returns args for the report: a connection string without its
// password, and no secret.
func redactServeArgs(args []string) []string {
	out := slices.Clone(args)
	for i := 0; i < len(out); i++ {
		a := out[i]
		if !strings.HasPrefix(a, "-") {
			continue
		}
		n, v, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		var redact func(string) string
		switch n {
		case "store":
			redact = postgres.Redact
		case "site-secret":
			redact = func(string) string { return "xxxxx" }
		default:
			continue
		}
		if hasValue {
			out[i] = a[:len(a)-len(v)] + redact(v)
		} else if i+1 < len(out) {
			i++
			out[i] = redact(out[i])
		}
	}
	return out
}

func runBench(ctx context.Context, args []string, lookupEnv func(string) (string, bool), stdout, stderr io.Writer) error {
	b := NewBench()
	b.Stdout, b.Stderr = stdout, stderr
	baselineAddr, err := b.ParseFlags(args, lookupEnv, stderr)
	if err != nil {
		// Help, or a usage error said as every command says one: "socius: --users:
		// ...", naming the flag, not the command.
		return err
	}
	if baselineAddr != "" {
		return serveBaseline(ctx, baselineAddr, stdout)
	}
	_, err = b.Run(ctx)
	return err
}

// serveBaseline runs the baseline handler until ctx ends, configured as serve
// configures its listeners, and announces its address as serve does.
func serveBaseline(ctx context.Context, addr string, stdout io.Writer) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	m := NewMain() // serve's defaults: the baseline's listener is configured as Socius's are
	m.Logger = slog.New(slog.DiscardHandler)
	srv := m.httpServer(loadgen.BaselineHandler())
	fmt.Fprintf(stdout, "socius: serving HTTP on http://%s\n", ln.Addr())
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// BenchReport is everything one bench measured; it is what --json writes.
type BenchReport struct {
	Date        time.Time `json:"date"`
	Machine     Machine   `json:"machine"`
	Connections int       `json:"connections"`
	Duration    float64   `json:"durationSeconds"`
	Warmup      float64   `json:"warmupSeconds"`
	Server      string    `json:"server"`
	ServeArgs   []string  `json:"serveArgs,omitempty"`
	// ServerExe is the socius binary that served (--server-exe); empty: the bench's.
	ServerExe string             `json:"serverExe,omitempty"`
	Label     string             `json:"label"`
	Users     []int              `json:"users"`
	Scenarios []loadgen.Scenario `json:"scenarios"`
	Preload   string             `json:"preload"`
	Rounds    int                `json:"rounds"`
	// Results has every run; Summary one line per store, user count and scenario:
	// the median of its rounds.
	Results []*loadgen.Result `json:"results"`
	Summary []*loadgen.Result `json:"summary"`
	// Comparisons has, with several --users counts, each later count against the first.
	Comparisons []Comparison `json:"comparisons,omitempty"`
}

// Machine describes where a bench ran.
type Machine struct {
	CPUs     int    `json:"cpus"`
	CPUModel string `json:"cpuModel,omitempty"`
	MemoryMB int64  `json:"memoryMB,omitempty"`
	OS       string `json:"os"`
	Kernel   string `json:"kernel,omitempty"`
	Go       string `json:"go"`
}

// Run runs the whole bench, printing a table row by row, and returns the report. It
// fails when any request failed (the figures would not mean what they say).
func (b *Bench) Run(ctx context.Context) (_ *BenchReport, runErr error) {
	rep := &BenchReport{
		Date:        time.Now().UTC().Truncate(time.Second),
		Machine:     thisMachine(),
		Connections: b.Connections,
		Duration:    b.Duration.Seconds(),
		Warmup:      b.Warmup.Seconds(),
		Rounds:      b.Rounds,
		Server:      b.URL,
		ServeArgs:   redactServeArgs(b.ServeArgs),
		ServerExe:   b.ServerExe,
		Label:       b.Label,
		Users:       b.Users,
		Scenarios:   b.Scenarios,
		Preload:     b.Preload,
	}
	if b.URL == "" {
		rep.Server = "socius serve, started by the bench"
	}
	m := rep.Machine
	fmt.Fprintf(b.Stdout, "socius bench: %d CPUs (%s), %s, %s, %s; %d connections, %s warm-up + %s per run, %d round(s)\n\n",
		m.CPUs, m.CPUModel, m.OS, m.Kernel, m.Go, b.Connections, b.Warmup, b.Duration, b.Rounds)

	if b.LatencyLog != "" {
		f, err := os.Create(b.LatencyLog)
		if err != nil {
			return nil, fmt.Errorf("--latency-log: %w", err)
		}
		b.latency = csv.NewWriter(f)
		b.latency.Write(latencyColumns)
		defer func() {
			b.latency.Flush()
			err := errors.Join(b.latency.Error(), f.Close())
			b.latency = nil
			if err != nil && runErr == nil {
				runErr = fmt.Errorf("--latency-log: %w", err)
			}
		}()
	}

	// The baseline runs from --server-exe too, when given: a script that places the
	// server (taskset, say) places the baseline alike, so that the ratio compares
	// like with like.
	base, err := b.withServerExe(func() (*child, error) {
		return b.start(ctx, "baseline", nil, "bench", "--serve-baseline", "127.0.0.1:0")
	})
	if err != nil {
		return nil, fmt.Errorf("start the baseline: %w", err)
	}
	defer base.stop()

	if b.StoreDir == "" && b.URL == "" {
		dir, err := os.MkdirTemp("", "socius-bench-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		b.StoreDir = dir
		defer func() { b.StoreDir = "" }()
	}
	printHeader(b.Stdout)
	if err := b.measureAll(ctx, rep, base); err != nil {
		return rep, err
	}
	rep.Summary = summarize(rep.Results)
	if b.Rounds > 1 {
		fmt.Fprintf(b.Stdout, "\nmedian of %d rounds (requests and errors: all rounds):\n", b.Rounds)
		printHeader(b.Stdout)
		for _, r := range rep.Summary {
			printRow(b.Stdout, r)
		}
	}
	rep.Comparisons = compareCounts(rep.Results, b.Users)
	printComparisons(b.Stdout, rep.Comparisons)
	if b.JSONFile != "" {
		out, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return rep, err
		}
		err = writeOut(b.JSONFile, func(w io.Writer) error {
			_, err := w.Write(append(out, '\n'))
			return err
		})
		if err != nil {
			return rep, fmt.Errorf("--json: %w", err)
		}
	}
	return rep, unsound(b.failed, b.empty)
}

// unsound is the error of a bench whose figures do not stand: requests failed, or
// runs had no request answered within their window; nil when neither.
func unsound(failed, empty int64) error {
	switch {
	case failed > 0:
		return fmt.Errorf("%s failed; the figures above do not stand", counted(int(failed), "request"))
	case empty > 0:
		return fmt.Errorf("no request answered within the window of %s; the figures above do not stand", counted(int(empty), "run"))
	}
	return nil
}

// A benchTarget is one user count's server, ready to be measured.
type benchTarget struct {
	users    int
	target   loadgen.Target
	pid      int    // the server's process, for its memory and CPU
	pprofURL string // its profiling address, with --profile
	srv      *child // the server the bench started; nil with --url
	storeDir string // its SQLite store's folder, when the bench started it on one
}

func (t *benchTarget) stop() {
	if t.srv != nil {
		t.srv.stop()
	}
}

// measureAll measures every user count for every round. Each count has its own server,
// all running from the start, and the rounds take the counts by turns (round 1 of
// each, then round 2 of each): a shared machine's load moves by the minute, so each
// round of one count runs a minute or so from the same round of the other, not on
// another stretch of the run. (--url drives a single count.)
func (b *Bench) measureAll(ctx context.Context, rep *BenchReport, base *child) error {
	var targets []*benchTarget
	defer func() {
		for _, t := range targets {
			t.stop()
		}
	}()
	for _, users := range b.Users {
		t, err := b.prepare(ctx, users)
		if err != nil {
			return err
		}
		targets = append(targets, t)
	}
	for round := 1; round <= b.Rounds; round++ {
		for _, t := range targets {
			if err := b.measure(ctx, rep, base, t, round); err != nil {
				return err
			}
		}
	}
	return nil
}

// prepare readies the server of one user count: the one of --url, or a socius serve
// started on that count's store (created, or completed, first); either way the users
// exist when it returns.
func (b *Bench) prepare(ctx context.Context, users int) (*benchTarget, error) {
	t := &benchTarget{users: users, target: loadgen.Target{URL: b.URL, APIKey: b.APIKey, Secret: b.Secret}, pid: b.PID}
	if b.URL == "" {
		t.target.APIKey, t.target.Secret = "3_SociusBench", socius.NewSecret()
		dir := filepath.Join(b.StoreDir, fmt.Sprintf("users-%d", users))
		preload := b.Preload
		if preload == "auto" {
			preload = "store"
			if len(b.ServeArgs) > 0 {
				preload = "http" // the flags may choose another store
			}
		}
		if preload == "store" {
			if err := b.preloadStore(ctx, dir, t.target, users); err != nil {
				return nil, err
			}
		}
		args := []string{"serve", "--data", dir, "--http", "127.0.0.1:0", "--https", "", "--admin", "",
			"--site-api-key", t.target.APIKey, "--site-secret", t.target.Secret, "--log-level", "warn"}
		if b.ProfileDir != "" {
			args = append(args, "--pprof", "127.0.0.1:0")
		}
		srv, err := b.startServe(ctx, args)
		if err != nil {
			return nil, fmt.Errorf("start socius serve: %w", err)
		}
		t.srv, t.target.URL, t.pid, t.pprofURL = srv, srv.url, srv.cmd.Process.Pid, srv.pprofURL
		if len(b.ServeArgs) == 0 {
			t.storeDir = dir
		}
		// A store whose last server did not stop cleanly (a killed bench, a build
		// before 2026-11-30) lost its nonces, and the new server refuses the signed
		// requests timed before its start or in its first second (403002): the first
		// request is signed after that second.
		time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second)))
	}
	if err := b.ensureUsers(ctx, t.target, users); err != nil {
		t.stop()
		return nil, err
	}
	return t, nil
}

// measure runs one round on one server: the baseline, then every scenario, each
// scenario's ratio taken to the baseline run just before.
func (b *Bench) measure(ctx context.Context, rep *BenchReport, base *child, t *benchTarget, round int) error {
	// A server that exits (killed, out of memory) ends the run at once, saying so: not
	// a window of refused connections for every run left.
	ctx, stop := watchChildren(ctx, base, t.srv)
	defer stop()
	if b.Rounds > 1 {
		fmt.Fprintf(b.Stdout, "round %d of %d, %s users\n", round, b.Rounds, loadgen.Thousands(float64(t.users)))
	}
	if t.storeDir != "" {
		if err := warmStore(t.storeDir); err != nil {
			return fmt.Errorf("read the store's files: %w", err)
		}
	}
	o := loadgen.Options{Connections: b.Connections, Duration: b.Duration, Warmup: b.Warmup, Users: t.users,
		Stream: loadgen.Mix, ServerPID: base.cmd.Process.Pid, Samples: b.latency != nil}
	br, err := loadgen.Run(ctx, loadgen.Target{URL: base.url, APIKey: t.target.APIKey, Secret: t.target.Secret}, o)
	if err != nil {
		return fmt.Errorf("measure the baseline: %w", context.Cause(ctx))
	}
	br.Round, br.Scenario, br.Stream = round, loadgen.Baseline, loadgen.Mix
	b.record(rep, br)

	o.ServerPID = t.pid
	for _, sc := range b.Scenarios {
		o.Stream = sc
		var prof sync.WaitGroup
		if t.pprofURL != "" {
			file := filepath.Join(b.ProfileDir, fmt.Sprintf("%s-%d-%s-%d.pprof", b.Label, t.users, sc, round))
			prof.Go(func() { b.profile(ctx, t.pprofURL, file) })
		}
		r, err := loadgen.Run(ctx, t.target, o)
		if err != nil {
			return fmt.Errorf("measure %s: %w", sc, context.Cause(ctx))
		}
		prof.Wait()
		r.Round, r.Store = round, b.Label
		if br.RPS > 0 {
			r.Ratio = r.RPS / br.RPS
		}
		b.record(rep, r)
	}
	return nil
}

// storeFiles are the files of a SQLite store that a server reads its data from.
var storeFiles = []string{"socius.db", "socius.db-wal"}

// warmStore reads the store's files through once, before a round measures its server,
// so that the OS holds them in its page cache, as it does for a server that is never
// idle. The bench leaves each store idle while it measures the other counts, and a host
// that pages out what has not been read for a while (this development machine does:
// the kernel's DAMON reclaim, files untouched for a minute) would otherwise have the
// first requests of a round read a million users' pages back from the disk one at a
// time: a round of the twenty-sixth session measured 5,772 writes a second after an
// hour's pause, against 10,899 and 11,595 in the rounds after it. A file that is not
// there (no WAL) is skipped.
func warmStore(dir string) error {
	buf := make([]byte, 1<<20)
	for _, name := range storeFiles {
		f, err := os.Open(filepath.Join(dir, name))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		for err == nil {
			_, err = f.Read(buf)
		}
		f.Close()
		if err != io.EOF {
			return err
		}
	}
	return nil
}

// watchChildren returns a context that ends, with the exit as its cause, when any of
// the children (nil for none) exits; stop ends the watch.
func watchChildren(ctx context.Context, children ...*child) (_ context.Context, stop func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	done := make(chan struct{})
	for _, c := range children {
		if c == nil {
			continue
		}
		go func() {
			select {
			case <-c.exited:
				cancel(fmt.Errorf("%s exited (%v): the run stops", c.name, c.err))
			case <-done:
			}
		}()
	}
	return ctx, func() { close(done); cancel(nil) }
}

// latencyColumns are the columns of --latency-log: the run (store, user count, round
// and scenario, as in the table), the time the answer was read (Unix nanoseconds) and
// the request's latency (nanoseconds).
var latencyColumns = []string{"store", "users", "round", "scenario", "end_unix_ns", "latency_ns"}

// summarize returns, for each store, user count and scenario, the median of its
// rounds (each figure on its own; the peak memory is the highest).
func summarize(results []*loadgen.Result) []*loadgen.Result {
	type group struct {
		store    string
		users    int
		scenario loadgen.Scenario
	}
	var order []group
	runs := map[group][]*loadgen.Result{}
	for _, r := range results {
		g := group{r.Store, r.Users, r.Scenario}
		if runs[g] == nil {
			order = append(order, g)
		}
		runs[g] = append(runs[g], r)
	}
	var out []*loadgen.Result
	for _, g := range order {
		rs := runs[g]
		m := *rs[0]
		m.Round = 0
		med := func(f func(*loadgen.Result) float64) float64 {
			v := make([]float64, len(rs))
			for i, r := range rs {
				v[i] = f(r)
			}
			return median(v)
		}
		m.RPS = med(func(r *loadgen.Result) float64 { return r.RPS })
		m.Ratio = med(func(r *loadgen.Result) float64 { return r.Ratio })
		m.MeanMs = med(func(r *loadgen.Result) float64 { return r.MeanMs })
		m.P50Ms = med(func(r *loadgen.Result) float64 { return r.P50Ms })
		m.P99Ms = med(func(r *loadgen.Result) float64 { return r.P99Ms })
		m.P999Ms = med(func(r *loadgen.Result) float64 { return r.P999Ms })
		m.ServerCores = med(func(r *loadgen.Result) float64 { return r.ServerCores })
		m.ServerCPUPerReqUs = med(func(r *loadgen.Result) float64 { return r.ServerCPUPerReqUs })
		m.LoadgenCores = med(func(r *loadgen.Result) float64 { return r.LoadgenCores })
		m.OtherCPUPercent = med(func(r *loadgen.Result) float64 { return r.OtherCPUPercent })
		m.StealPercent = med(func(r *loadgen.Result) float64 { return r.StealPercent })
		m.Requests, m.Errors, m.Late, m.MaxMs, m.Seconds, m.ErrorKinds = 0, 0, 0, 0, 0, nil
		for _, r := range rs {
			m.Requests += r.Requests
			m.Errors += r.Errors
			m.Late += r.Late
			m.Seconds += r.Seconds
			m.MaxMs = max(m.MaxMs, r.MaxMs)
			m.ServerPeakRSS = max(m.ServerPeakRSS, r.ServerPeakRSS)
		}
		out = append(out, &m)
	}
	return out
}

// median returns the middle of v (the mean of the two middle values for an even
// count); it sorts v.
func median(v []float64) float64 {
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// A Comparison is one scenario with one user count against the same scenario with the
// first count of the run (--users 10000,1000000: a million against 10,000).
type Comparison struct {
	Store    string           `json:"store"`
	Users    int              `json:"users"`
	Against  int              `json:"against"`
	Scenario loadgen.Scenario `json:"scenario"`
	// Ratio is the median over the rounds of the count's ratio to the baseline divided
	// by the first count's ratio in the same round; RPS the same for the requests a
	// second. Rounds take the counts by turns, so each quotient compares runs minutes
	// apart at most.
	Ratio float64 `json:"ratio"`
	RPS   float64 `json:"requestsPerSecond"`
	// Rounds is the number of rounds that measured both counts.
	Rounds int `json:"rounds"`
}

// compareCounts compares every user count after the first with the first, scenario by
// scenario, round by round (the baseline runs are not compared).
func compareCounts(results []*loadgen.Result, counts []int) []Comparison {
	if len(counts) < 2 {
		return nil
	}
	type group struct {
		store    string
		scenario loadgen.Scenario
	}
	type run struct {
		group
		round int
	}
	firsts := map[run]*loadgen.Result{} // the first count's runs
	var groups []group
	seen := map[group]bool{}
	for _, r := range results {
		if r.Scenario == loadgen.Baseline {
			continue
		}
		if r.Users == counts[0] {
			firsts[run{group{r.Store, r.Scenario}, r.Round}] = r
		}
		if g := (group{r.Store, r.Scenario}); !seen[g] {
			seen[g] = true
			groups = append(groups, g)
		}
	}
	var out []Comparison
	for _, users := range counts[1:] {
		for _, g := range groups {
			var ratios, rps []float64
			for _, r := range results {
				if r.Store != g.store || r.Scenario != g.scenario || r.Users != users {
					continue
				}
				first := firsts[run{g, r.Round}]
				if first == nil || first.Ratio <= 0 || first.RPS <= 0 {
					continue
				}
				ratios = append(ratios, r.Ratio/first.Ratio)
				rps = append(rps, r.RPS/first.RPS)
			}
			if len(ratios) == 0 {
				continue
			}
			out = append(out, Comparison{Store: g.store, Users: users, Against: counts[0], Scenario: g.scenario,
				Ratio: median(ratios), RPS: median(rps), Rounds: len(ratios)})
		}
	}
	return out
}

// printComparisons prints compareCounts' lines, under a heading for each count and store.
func printComparisons(w io.Writer, cs []Comparison) {
	for i, c := range cs {
		if i == 0 || c.Users != cs[i-1].Users || c.Store != cs[i-1].Store {
			fmt.Fprintf(w, "\n%s, %s users against %s (each round against the same round; median):\n",
				c.Store, loadgen.Thousands(float64(c.Users)), loadgen.Thousands(float64(c.Against)))
		}
		fmt.Fprintf(w, "  %-12s %3.0f %% of the ratio, %3.0f %% of the requests a second\n", c.Scenario, 100*c.Ratio, 100*c.RPS)
	}
}

func (b *Bench) record(rep *BenchReport, r *loadgen.Result) {
	if b.latency != nil {
		row := []string{storeName(r), strconv.Itoa(r.Users), strconv.Itoa(r.Round), string(r.Scenario), "", ""}
		for _, s := range r.Samples {
			row[4], row[5] = strconv.FormatInt(s.End.UnixNano(), 10), strconv.FormatInt(s.Latency.Nanoseconds(), 10)
			b.latency.Write(row) // an error sticks; Run reports it
		}
		r.Samples = nil // written; the report does not keep them
	}
	rep.Results = append(rep.Results, r)
	printRow(b.Stdout, r)
	atomic.AddInt64(&b.failed, r.Errors)
	if r.Requests == 0 {
		// Nothing answered within the window (a stalled server, a window too short):
		// no figure of this run stands either.
		atomic.AddInt64(&b.empty, 1)
	}
}

// profile fetches a CPU profile of the server covering the measured part of a run.
func (b *Bench) profile(ctx context.Context, pprofURL, file string) {
	select {
	case <-time.After(b.Warmup):
	case <-ctx.Done():
		return
	}
	secs := max(1, int(b.Duration.Seconds()))
	err := func() error {
		if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
			return err
		}
		req, err := http.NewRequestWithContext(ctx, "GET", pprofURL+"profile?seconds="+strconv.Itoa(secs), nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			msg, _ := io.ReadAll(io.LimitReader(resp.Body, 500))
			return fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(msg)))
		}
		data, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		return os.WriteFile(file, data, 0o644)
	}()
	if err != nil {
		// The run's figures stand without it: a warning, in the form of the others.
		fmt.Fprintf(b.Stderr, "socius: warning: CPU profile %s not written: %v\n", file, err)
	}
}

// sampleUsers lists the user indexes checked to tell whether a store holds the users
// 0..n-1: the first, the last and some in between (users are created in order).
func sampleUsers(n int) []int {
	s := []int{0, n - 1}
	for i := 1; i < 16; i++ {
		s = append(s, i*n/16)
	}
	slices.Sort(s)
	return slices.Compact(s)
}

// ensureUsers creates, over HTTP, the users the server does not have yet.
func (b *Bench) ensureUsers(ctx context.Context, t loadgen.Target, users int) error {
	sample := sampleUsers(users)
	found, err := loadgen.CountUsers(ctx, t, sample)
	if err != nil {
		return fmt.Errorf("check the server's users: %w", err)
	}
	if found == len(sample) {
		return nil
	}
	if err := loadgen.CreateUsers(ctx, t, 0, users, b.CreateConn, b.Stderr); err != nil {
		return fmt.Errorf("create users over HTTP: %w", err)
	}
	return nil
}

// choosesStore reports whether serve flags choose the store (--store), which may then
// not be the SQLite store of the data folder.
func choosesStore(args []string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if strings.HasPrefix(a, "-") && name == "store" {
			return true
		}
	}
	return false
}

// preloadStore writes the site and the users straight into the SQLite store of dir,
// before serve opens it: many concurrent Login calls, which the store's group commit
// turns into large transactions. It is much faster than notifyLogin over HTTP, and
// needs only the store contract.
func (b *Bench) preloadStore(ctx context.Context, dir string, t loadgen.Target, users int) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	st, err := sqlite.Open(filepath.Join(dir, "socius.db"))
	if err != nil {
		return fmt.Errorf("preload the store: %w", err)
	}
	defer st.Close()
	now := time.Now()
	if err := st.PutSite(ctx, &socius.Site{APIKey: t.APIKey, Secret: t.Secret, Name: "bench", CreatedAt: now}); err != nil {
		return fmt.Errorf("preload the store: %w", err)
	}
	missing := false
	for _, n := range sampleUsers(users) {
		_, err := st.User(ctx, t.APIKey, loadgen.UID(n))
		if errors.Is(err, socius.ErrNotFound) {
			missing = true
			break
		}
		if err != nil {
			return fmt.Errorf("preload the store: %w", err)
		}
	}
	if !missing {
		return nil
	}
	p := loadgen.NewProgress(b.Stderr, "creating users in the store", users)
	defer p.Done()
	var next atomic.Int64
	parent := ctx
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	for range 512 {
		wg.Go(func() {
			for ctx.Err() == nil {
				n := int(next.Add(1) - 1)
				if n >= users {
					return
				}
				prof := loadgen.Profile(n)
				if _, err := st.Login(ctx, t.APIKey, loadgen.UID(n), socius.PatchOf(&prof), now); err != nil {
					cancel(fmt.Errorf("preload the store: create user %s: %w", loadgen.UID(n), err))
					return
				}
				p.Add(1)
			}
		})
	}
	wg.Wait()
	if parent.Err() != nil {
		return fmt.Errorf("creating users in the store: %w", context.Cause(parent))
	}
	return context.Cause(ctx) // a user's creation failed, or nil
}

// child is a process the bench started: socius serve, or the baseline.
type child struct {
	name     string
	cmd      *exec.Cmd
	url      string // http://host:port
	pprofURL string
	exited   chan struct{}
	err      error
}

// start runs socius with args (then extra) and waits until it announces its HTTP
// address (and its profiler's, when asked for) on stdout.
func (b *Bench) start(ctx context.Context, name string, extra []string, args ...string) (*child, error) {
	c := &child{name: name, cmd: b.Command(append(args, extra...)...), exited: make(chan struct{})}
	c.cmd.Env = benchEnv(os.Environ())
	c.cmd.Stderr = b.Stderr
	dieWithParent(c.cmd)
	out, err := c.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := c.cmd.Start(); err != nil {
		return nil, err
	}
	wantPprof := slices.Contains(args, "--pprof")
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		signalled := false
		for sc.Scan() {
			line := sc.Text()
			// The URL, without the " (all interfaces)" said after a wildcard's.
			if u, ok := strings.CutPrefix(line, "socius: serving HTTP on "); ok {
				c.url, _, _ = strings.Cut(strings.TrimSpace(u), " ")
			}
			if u, ok := strings.CutPrefix(line, "socius: serving pprof on "); ok {
				c.pprofURL, _, _ = strings.Cut(strings.TrimSpace(u), " ")
			}
			if !signalled && c.url != "" && (!wantPprof || c.pprofURL != "") {
				signalled = true
				close(ready)
			}
		}
		c.err = c.cmd.Wait()
		close(c.exited)
	}()
	select {
	case <-ready:
		return c, nil
	case <-c.exited:
		err := fmt.Errorf("%s exited before serving: %v", name, c.err)
		if len(c.cmd.Env) < len(os.Environ()) {
			// Its message may point to a variable the bench did not pass.
			err = fmt.Errorf("%w (the bench passes no SOCIUS_* variable to the servers it starts: give serve's flags after --)", err)
		}
		return nil, err
	case <-time.After(time.Minute):
		c.stop()
		return nil, fmt.Errorf("%s did not announce its address within a minute", name)
	case <-ctx.Done():
		c.stop()
		return nil, ctx.Err()
	}
}

// startServe starts socius serve with args, then the pass-through flags.
func (b *Bench) startServe(ctx context.Context, args []string) (*child, error) {
	return b.withServerExe(func() (*child, error) { return b.start(ctx, "socius serve", b.ServeArgs, args...) })
}

// withServerExe runs start with the children made from --server-exe, when given.
func (b *Bench) withServerExe(start func() (*child, error)) (*child, error) {
	if b.ServerExe == "" {
		return start()
	}
	saved := b.Command
	defer func() { b.Command = saved }()
	b.Command = func(args ...string) *exec.Cmd { return exec.Command(b.ServerExe, args...) }
	return start()
}

// stop interrupts the process, as Ctrl-C would, and waits for it (killing it after
// 15 s).
func (c *child) stop() {
	select {
	case <-c.exited:
		return
	default:
	}
	c.cmd.Process.Signal(os.Interrupt)
	select {
	case <-c.exited:
	case <-time.After(15 * time.Second):
		c.cmd.Process.Kill()
		<-c.exited
	}
}

const rowFormat = "%-8s %9s  %-11s %8s %6s %7s %7s %7s %6s %8s %7s %7s %6s\n"

func printHeader(w io.Writer) {
	fmt.Fprintf(w, rowFormat, "store", "users", "scenario", "req/s", "ratio", "p50 ms", "p99 ms", "p999 ms", "errors",
		"peak RSS", "srv CPU", "µs/req", "other")
}

// storeName is a run's store as the table and the latency log name it: "-" for the
// baseline, which has none.
func storeName(r *loadgen.Result) string {
	if r.Scenario == loadgen.Baseline {
		return "-"
	}
	return r.Store
}

func printRow(w io.Writer, r *loadgen.Result) {
	store, users, ratio := storeName(r), loadgen.Thousands(float64(r.Users)), fmt.Sprintf("%.0f %%", 100*r.Ratio)
	if r.Scenario == loadgen.Baseline {
		ratio = "-"
	}
	rss := "-"
	if r.ServerPeakRSS > 0 {
		rss = fmt.Sprintf("%.0f MiB", float64(r.ServerPeakRSS)/(1<<20))
	}
	// Without the server's process (--url without --pid) its CPU is not known, and
	// neither is the others'.
	cores, perReq, other := "-", "-", "-"
	if r.ServerCores > 0 {
		cores, perReq = fmt.Sprintf("%.2f", r.ServerCores), fmt.Sprintf("%.0f", r.ServerCPUPerReqUs)
		other = fmt.Sprintf("%.0f %%", r.OtherCPUPercent)
	}
	fmt.Fprintf(w, rowFormat, store, users, r.Scenario, loadgen.Thousands(r.RPS), ratio,
		ms(r.P50Ms), ms(r.P99Ms), ms(r.P999Ms), strconv.FormatInt(r.Errors, 10), rss, cores, perReq, other)
	for _, e := range r.ErrorKinds {
		fmt.Fprintf(w, "    %d x %s: %s\n", e.Count, e.Kind, e.Example)
	}
}

func ms(v float64) string {
	if v < 10 {
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
	return strconv.FormatFloat(v, 'f', 1, 64)
}

func joinScenarios(s []loadgen.Scenario) string {
	var parts []string
	for _, sc := range s {
		parts = append(parts, string(sc))
	}
	return strings.Join(parts, ",")
}

func joinInts(ns []int) string {
	var parts []string
	for _, n := range ns {
		parts = append(parts, strconv.Itoa(n))
	}
	return strings.Join(parts, ",")
}

// thisMachine describes the machine the bench runs on.
func thisMachine() Machine {
	m := Machine{CPUs: loadgen.MachineCPUs(), OS: runtime.GOOS + "/" + runtime.GOARCH, Go: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				m.MemoryMB = kb >> 10
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = "Linux " + strings.TrimSpace(string(b))
	}
	return m
}
