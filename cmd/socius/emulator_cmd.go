package main

import (
	"bytes"
	"context"
	"encoding/json"

	"flag"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/socius/socius/emulator"
	"github.com/socius/socius/gigya"
	"github.com/socius/socius/internal/errtext"
)

const emulatorUsage = `usage: socius emulator <command> [--url URL] [flags]

Talks to a running "socius serve --emulator" through its admin API.

commands:
  status                              counts, clock, request log size
  reset [--all]                       delete every user (sites and keys stay); --all also
                                      clears fault rules and the request log and resets the clock
  clock                               show the server's clock
  clock set TIME                      RFC 3339 (2030-01-01T00:00:00Z) or Unix seconds
  clock advance DURATION              Go duration: 90s, 2h, 720h, -15m
  clock reset                         back to the system time
  faults                              list the fault rules
  faults add --code N [--method M] [--site APIKEY] [--count N] [--fraction F] [--delay D]
  faults delete ID
  faults clear
  log [--follow] [--limit N] [--failed] [--method M] [--json]
  log clear                           empty the request log (call numbers go on)
  export [--out FILE]                 every site, key and user, as JSON lines
  seed FILE                           load sites, keys and users (JSON lines)

--url defaults to http://127.0.0.1:8080 (or SOCIUS_URL). For an https:// URL whose
certificate a private CA issued (or Socius generated), --ca-file FILE (or
SOCIUS_CA_FILE) trusts the PEM certificates in FILE besides the system's.
`

// emulatorArgsUsage is the usage line of each emulator command that takes arguments,
// as emulatorUsage lists them.
var emulatorArgsUsage = map[string]string{
	"clock":  "usage: socius emulator clock [show | set TIME | advance DURATION | reset] [flags]",
	"faults": "usage: socius emulator faults [list | add --code N ... | delete ID | clear] [flags]",
	"log":    "usage: socius emulator log [clear] [flags]",
	"seed":   "usage: socius emulator seed FILE [flags]",
}

// emulatorClient calls the admin API of a running emulator.
type emulatorClient struct {
	base   string
	caFile string // --ca-file, for what an untrusted certificate's error says
	http   *http.Client
}

// apiError is an error answer of the admin API.
type apiError struct {
	Status  int
	Message string
}

func (e *apiError) Error() string { return fmt.Sprintf("emulator: %s (HTTP %d)", e.Message, e.Status) }

// noCallsLogged is what socius emulator log says when it prints no call: of held
// calls in the log, none the filters (--failed, --method) wanted.
func noCallsLogged(held int, failed bool, method string) string {
	if held == 0 {
		return "no calls logged (the log is empty)"
	}
	var which []string
	if failed {
		which = append(which, "failed")
	}
	if name := emulator.MethodName(method); name != "" {
		which = append(which, "of method "+name)
	}
	return fmt.Sprintf("no calls logged that are %s (of %d the log holds)", strings.Join(which, " and "), held)
}

// causeOf is an error of net/http's client said without its `Get "URL": `: the
// message it goes into names the emulator's URL already. errors.Is and errors.As see
// the whole error.
type causeOf struct{ err error }

func (c causeOf) Error() string { return errtext.WithoutURL(c.err) }

func (c causeOf) Unwrap() error { return c.err }

// do sends a request to /_emulator/api/<path> and decodes a JSON answer into out.
func (c *emulatorClient) do(ctx context.Context, method, path string, body any, out any) error {
	var rd io.Reader
	ct := ""
	switch b := body.(type) {
	case nil:
	case io.Reader:
		rd, ct = b, "application/x-ndjson"
	default:
		buf, err := json.Marshal(b)
		if err != nil {
			return err
		}
		rd, ct = bytes.NewReader(buf), "application/json"
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+"/_emulator/api/"+path, rd)
	if err != nil {
		return err
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	resp, err := c.http.Do(req)
	if hint, ok := untrustedCertificate(err, c.caFile); ok {
		return fmt.Errorf("emulator at %s: %s: %w", c.base, hint, causeOf{err})
	}
	if err != nil {
		return fmt.Errorf("cannot reach the emulator at %s (is \"socius serve --emulator\" running?): %w", c.base, causeOf{err})
	}
	defer resp.Body.Close()
	if resp.Header.Get(emulator.Header) == "" {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		if strings.Contains(string(b), "HTTP request to an HTTPS server") {
			return &apiError{Status: resp.StatusCode, Message: c.base + " is an HTTPS listener: give --url as https:// (with --ca-file when its certificate is not one the system trusts), or the emulator's plain HTTP address (socius serve prints it: serving HTTP on ...)"}
		}
		return &apiError{Status: resp.StatusCode, Message: "the server at " + c.base + " did not answer as the emulator does: a socius serve without --emulator, another server, or a --url with a path (give the address alone, http://host:port)"}
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); resp.StatusCode/100 != 2 && mt == "text/html" {
		// The console answered, not the admin API: a --url that ends in /_emulator
		// (the console's address) puts the API's paths under the console's, whose 404
		// is a page, which was printed whole.
		return &apiError{Status: resp.StatusCode, Message: "the emulator's console answered " + c.base + "/_emulator/api/" + strings.SplitN(path, "?", 2)[0] +
			" with a page, not the admin API: give --url as the emulator's address alone, http://host:port, without /_emulator"}
	}
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		var e struct {
			Error string `json:"error"`
			// What a seed stopped part way (a bad line, the body's bound, the store
			// failing) had stored before: a seed is not one transaction.
			Loaded *emulator.SeedStats `json:"loaded"`
		}
		if json.Unmarshal(b, &e) != nil || e.Error == "" {
			e.Error, e.Loaded = strings.TrimSpace(string(b)), nil
		}
		// The emulator's errors quote what was sent (a flag's value, a seed's line),
		// and a server that is not quite the emulator may say anything.
		e.Error = errtext.Printable(e.Error)
		switch {
		case e.Loaded == nil:
		case *e.Loaded == emulator.SeedStats{}:
			e.Error += "; nothing was stored"
		default:
			e.Error += "; stored before it stopped: " + seedCounts(*e.Loaded)
		}
		if resp.StatusCode == http.StatusBadRequest {
			// The emulator refused a value the command passed on (a time, a
			// duration, a rule): a usage error, exit 2, as for a flag refused here.
			return flagError{&apiError{Status: resp.StatusCode, Message: e.Error}}
		}
		return &apiError{Status: resp.StatusCode, Message: e.Error}
	}
	if w, ok := out.(io.Writer); ok {
		if _, err = io.Copy(w, resp.Body); err != nil {
			// The emulator cuts the body off when it fails half way (an export the
			// store stopped answering): what came is not the whole.
			return fmt.Errorf("the emulator's answer was cut short: %w", err)
		}
		return nil
	}
	if out == nil {
		return nil
	}
	// Read up to a bound: a server that is not quite the emulator (or one gone wrong)
	// could send without end, and the whole answer is held to be decoded.
	name, _, _ := strings.Cut(path, "?")
	limit, hint := maxEmulatorAnswer, ""
	if name == "log" {
		limit, hint = maxEmulatorLogAnswer, " (socius emulator log clear empties the log)"
	}
	answer := &io.LimitedReader{R: resp.Body, N: limit + 1}
	err = json.NewDecoder(answer).Decode(out)
	if err != nil && answer.N == 0 {
		return fmt.Errorf("the emulator's answer to %s /_emulator/api/%s is longer than %s, the most socius emulator reads%s", method, name, sizeText(limit), hint)
	}
	return err
}

// The most socius emulator reads of an answer of the admin API that it decodes (an
// export, copied as it comes, has no bound): a request log of 100,000 calls (the
// largest, --request-log-size) holds a few KiB a call; the other answers (status,
// clock, fault rules, seed counts) some KiB at most. Tests lower them.
var (
	maxEmulatorAnswer    int64 = 16 << 20
	maxEmulatorLogAnswer int64 = 1 << 30
)

// emulatorCallTimeout is how long a request of socius emulator may take, the answer
// read, but for a seed's and an export's: a long poll of the log and a little more.
// Tests shorten it.
var emulatorCallTimeout = emulator.MaxWait + 15*time.Second

func runEmulator(ctx context.Context, args []string, lookupEnv func(string) (string, bool), stdout, stderr io.Writer) (err error) {
	if len(args) == 0 {
		fmt.Fprint(stderr, emulatorUsage)
		return errUsage
	}
	if isHelp(args[0]) {
		fmt.Fprint(stdout, emulatorUsage)
		return flag.ErrHelp
	}
	cmd, args := args[0], args[1:]
	fs := newFlagSet("socius emulator "+cmd, stdout, stderr)
	defer func() { err = envNamed(fs, err) }() // a refusal of SOCIUS_LIMIT's value names it
	if line, ok := emulatorArgsUsage[cmd]; ok {
		argsUsage(fs, line)
	}
	baseURL := fs.String("url", "http://127.0.0.1:8080", "the emulator's address: http://host:port, or https://")
	caFile := fs.String("ca-file", "", caFileUsage)
	c := &emulatorClient{http: &http.Client{Timeout: emulatorCallTimeout}}
	parse := func(args []string) ([]string, error) {
		if cmd == "clock" { // only "clock advance -15m" has a negative argument of its own
			args = negativeDurationsLast(args)
		}
		pos, err := parseArgs(fs, args, lookupEnv)
		if err != nil {
			return nil, err
		}
		c.base = strings.TrimRight(*baseURL, "/")
		c.caFile = *caFile
		if c.http.Transport, err = trustingTransport(*caFile); err != nil {
			return nil, flagError{err}
		}
		return pos, nil
	}
	usage := func(msg string) error {
		fmt.Fprintf(stderr, "socius emulator %s: %s\n\n%s", cmd, msg, emulatorUsage)
		return errUsage
	}
	// noArgs parses a command that takes flags only.
	noArgs := func(args []string) error {
		pos, err := parse(args)
		switch {
		case err == nil && len(pos) > 0 && isHelp(pos[0]):
			err = printHelp(fs)
		case err == nil && len(pos) > 0:
			err = usage(fmt.Sprintf("unexpected argument %q", pos[0]))
		}
		return err
	}

	switch cmd {
	case "status":
		if err := noArgs(args); err != nil {
			return err
		}
		var st emulator.Status
		if err := c.do(ctx, "GET", "status", nil, &st); err != nil {
			return err
		}
		if st.Version != "" {
			fmt.Fprintf(stdout, "version: %s\n", st.Version)
		}
		fmt.Fprintf(stdout, "sites:  %d\nkeys:   %d\nusers:  %d\nfaults: %d\nlogged: %s (the log keeps %d)\n", st.Sites, st.Keys, st.Users, st.Faults, counted(int(st.Logged), "call"), st.LogSize)
		printClock(stdout, st.Clock)
		return nil

	case "reset":
		all := fs.Bool("all", false, "also clear the fault rules and the request log, and reset the clock")
		if err := noArgs(args); err != nil {
			return err
		}
		var out struct {
			DeletedUsers int `json:"deletedUsers"`
		}
		path := "reset"
		if *all {
			path += "?all=true"
		}
		if err := c.do(ctx, "POST", path, nil, &out); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "deleted %s\n", counted(out.DeletedUsers, "user"))
		if *all {
			fmt.Fprintln(stdout, "cleared the fault rules and the request log, reset the clock")
		}
		return nil

	case "clock":
		pos, err := parse(args)
		if err != nil {
			return err
		}
		var change emulator.ClockChange
		switch {
		case len(pos) == 1 && isHelp(pos[0]), // in a subcommand's place
			len(pos) == 2 && (pos[0] == "show" || pos[0] == "reset") && isHelp(pos[1]): // after one that takes no argument
			return printHelp(fs)
		case len(pos) == 0 || len(pos) == 1 && pos[0] == "show":
			var ci emulator.ClockInfo
			if err := c.do(ctx, "GET", "clock", nil, &ci); err != nil {
				return err
			}
			printClock(stdout, ci)
			return nil
		case len(pos) == 2 && pos[0] == "set":
			change.Set = pos[1]
		case len(pos) == 2 && pos[0] == "advance":
			change.Advance = pos[1]
		case len(pos) == 1 && pos[0] == "reset":
			change.Reset = true
		default:
			return usage("clock [show] | clock set TIME | clock advance DURATION | clock reset")
		}
		var ci emulator.ClockInfo
		if err := c.do(ctx, "POST", "clock", change, &ci); err != nil {
			return err
		}
		printClock(stdout, ci)
		return nil

	case "faults":
		var rule emulator.Rule
		fs.StringVar(&rule.Method, "method", "", "faults add: the method (socialize.getUserInfo or getUserInfo; every method when left out)")
		fs.StringVar(&rule.APIKey, "site", "", "faults add: the apiKey of the site (every site when left out)")
		fs.IntVar(&rule.Code, "code", 0, "faults add: the Gigya errorCode to answer (e.g. 403048, 500001, 504002); 0 with --delay: delay only")
		fs.IntVar(&rule.Count, "count", 0, "faults add: only the next N matching calls")
		fs.Float64Var(&rule.Fraction, "fraction", 0, "faults add: only this share of matching calls (above 0, at most 1; every call when not given)")
		delay := fs.Duration("delay", 0, "faults add: added latency, e.g. 2s")
		pos, err := parse(args)
		if err != nil {
			return err
		}
		switch {
		case len(pos) == 1 && isHelp(pos[0]), // in a subcommand's place
			len(pos) == 2 && (pos[0] == "list" || pos[0] == "add" || pos[0] == "clear") && isHelp(pos[1]): // after one that takes no argument
			return printHelp(fs)
		case len(pos) == 0 || len(pos) == 1 && pos[0] == "list":
			var out struct{ Rules []emulator.Rule }
			if err := c.do(ctx, "GET", "faults", nil, &out); err != nil {
				return err
			}
			printRules(stdout, out.Rules)
			return nil
		case len(pos) == 1 && pos[0] == "add":
			if givenEmpty(fs, "site") {
				// "--site $APIKEY" with the variable unset: the rule would fail the
				// calls of every site, not of the one meant.
				return badFlag("--site is empty (an unset variable?): give the site's apiKey, or leave --site out for a rule on every site")
			}
			if givenEmpty(fs, "method") {
				// "--method $METHOD" with the variable unset: the rule would fail
				// every method's calls, not the one meant.
				return badFlag("--method is empty (an unset variable?): give the method, or leave --method out for a rule on every method")
			}
			if flagGiven(fs, "fraction") && rule.Fraction == 0 {
				return badFlag("--fraction 0 would be every call: give a share above 0 and at most 1, or leave it out")
			}
			if !(rule.Fraction >= 0 && rule.Fraction <= 1) { // NaN too
				return badFlag("--fraction %g: give a share above 0 and at most 1, or leave it out", rule.Fraction)
			}
			rule.Delay = emulator.Duration(*delay)
			var added emulator.Rule
			if err := c.do(ctx, "POST", "faults", rule, &added); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "added fault rule %d\n", added.ID)
			printRules(stdout, []emulator.Rule{added})
			return nil
		case len(pos) == 2 && pos[0] == "delete":
			if _, err := strconv.Atoi(pos[1]); err != nil {
				return usage("faults delete ID: ID is a rule number")
			}
			if err := c.do(ctx, "DELETE", "faults/"+pos[1], nil, nil); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "deleted fault rule %s\n", pos[1])
			return nil
		case len(pos) == 1 && pos[0] == "clear":
			var out struct{ Cleared int }
			if err := c.do(ctx, "DELETE", "faults", nil, &out); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "deleted %s\n", counted(out.Cleared, "fault rule"))
			return nil
		}
		return usage("faults [list] | faults add --code N ... | faults delete ID | faults clear")

	case "log":
		follow := fs.Bool("follow", false, "keep printing calls as they arrive (until interrupted)")
		limit := fs.Int("limit", 50, "print at most the last N calls (0: every call the log holds)")
		failed := fs.Bool("failed", false, "only failed calls")
		method := fs.String("method", "", "only calls of this method (every method's when left out)")
		asJSON := fs.Bool("json", false, "print each call as one JSON object per line")
		pos, err := parse(args)
		switch {
		case err != nil:
			return err
		case len(pos) > 0 && isHelp(pos[0]), len(pos) == 2 && pos[0] == "clear" && isHelp(pos[1]):
			return printHelp(fs)
		case len(pos) == 1 && pos[0] == "clear":
			// The endpoint empties the whole log: a filter ignored here would clear
			// every call of a developer who asked to clear the failed ones.
			for _, name := range []string{"failed", "method", "limit"} {
				if flagGiven(fs, name) {
					return badFlag("--%s: log clear empties the whole log; --failed, --method and --limit choose the calls log prints, not the calls it clears", name)
				}
			}
			if err := c.do(ctx, "DELETE", "log", nil, nil); err != nil {
				return err
			}
			fmt.Fprintln(stdout, "cleared the request log")
			return nil
		case len(pos) > 0:
			return usage("log [--follow] [--limit N] [--failed] [--method M] [--json] | log clear")
		}
		if givenEmpty(fs, "method") {
			// "--method $METHOD" with the variable unset: every method's calls would
			// be printed, read as the calls of the method meant.
			return badFlag("--method is empty (an unset variable?): give the method, or leave --method out for the calls of every method")
		}
		if *limit < 0 {
			// It printed every call, as 0 does: a typo for 0, or for a number, that
			// would flood the terminal.
			return badFlag("--limit %d: want a number of calls, 0 for every call the log holds", *limit)
		}
		wanted := func(e *emulator.Entry) bool {
			return (!*failed || e.ErrorCode != 0) && (*method == "" || strings.EqualFold(e.Method, emulator.MethodName(*method)))
		}
		print := func(entries []emulator.Entry) {
			for i := range entries {
				if wanted(&entries[i]) {
					printEntry(stdout, &entries[i], *asJSON)
				}
			}
		}
		var page emulator.LogPage
		if err := c.do(ctx, "GET", "log", nil, &page); err != nil {
			return err
		}
		var shown []emulator.Entry
		for i := range page.Entries {
			if wanted(&page.Entries[i]) {
				shown = append(shown, page.Entries[i])
			}
		}
		if *limit > 0 && len(shown) > *limit {
			shown = shown[len(shown)-*limit:]
		}
		print(shown)
		if len(shown) == 0 && !*follow && !*asJSON {
			// Said where a person reads it (standard output stays empty for a script):
			// an empty output alone did not tell an empty log from a filter that
			// matched nothing, or from a command that did nothing.
			fmt.Fprintln(stderr, noCallsLogged(len(page.Entries), *failed, *method))
		}
		last := page.Last
		for *follow {
			var next emulator.LogPage
			err := c.do(ctx, "GET", "log?wait="+emulator.MaxWait.String()+"&after="+strconv.FormatInt(last, 10), nil, &next)
			if ctx.Err() != nil {
				return nil
			}
			if err != nil {
				return err
			}
			print(next.Entries)
			last = max(last, next.Last)
		}
		return nil

	case "export":
		out := fs.String("out", "", "write to this file instead of standard output")
		if err := noArgs(args); err != nil {
			return err
		}
		// An export of a large store reads for longer than any other request takes:
		// no timeout (Ctrl-C ends it), as the emulator gives it none either (it cuts
		// off a client that stops reading instead).
		c.http.Timeout = 0
		if *out == "" && flagGiven(fs, "out") {
			// "--out $FILE" with the variable unset: the export, its secrets in clear,
			// would go to standard output (a terminal, a CI job's log).
			return badFlag("--out is empty: give the file to write, or leave --out out for standard output")
		}
		if *out == "" {
			return c.do(ctx, "GET", "export", nil, stdout)
		}
		// Before the emulator is asked: a folder that cannot take the file is a usage
		// error, as for serve's --export-on-exit.
		if err := checkOutFolder(*out); err != nil {
			return flagError{fmt.Errorf("--out: %w", err)}
		}
		// Secrets in clear: only the owner may read it; whole or not at all, in
		// constant memory (a refused or cut-short export leaves the file as it was).
		return writeOut(*out, func(w io.Writer) error { return c.do(ctx, "GET", "export", nil, w) })

	case "seed":
		pos, err := parse(args)
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return usage("seed FILE")
		}
		if pos[0] == "" {
			// "seed $FILE" with the variable unset: os.Open said "seed : no such file
			// or directory".
			return badFlag("FILE is empty (an unset variable?): give the seed file to load (JSON lines, the export format) as the argument")
		}
		f, err := os.Open(pos[0])
		if err != nil {
			return flagError{fileError("seed", pos[0], err)}
		}
		defer f.Close()
		// A large seed loads for longer than any other request takes: no timeout
		// (Ctrl-C ends it), as the emulator gives the request none either.
		c.http.Timeout = 0
		var n emulator.SeedStats
		if err := c.do(ctx, "POST", "seed", f, &n); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "seeded %s\n", seedCounts(n))
		return nil
	}
	fmt.Fprintf(stderr, "socius emulator: unknown command %q%s\n\n%s", cmd, flagsGoAfter(cmd, "command", "socius emulator status --url URL"), emulatorUsage)
	return errUsage
}

var negativeDuration = regexp.MustCompile(`^-[0-9]`)

// negativeDurationsLast lets "clock advance -15m" through the flag parser, which would
// take -15m for a flag: such arguments move behind a "--".
func negativeDurationsLast(args []string) []string {
	var rest, neg []string
	for _, a := range args {
		if a == "--" {
			continue // given by the user already: one is put before the durations
		}
		if negativeDuration.MatchString(a) {
			neg = append(neg, a)
		} else {
			rest = append(rest, a)
		}
	}
	if len(neg) == 0 {
		return args
	}
	return append(append(rest, "--"), neg...)
}

// counted is n and the noun, in the plural unless n is 1: "1 user", "2 users".
func counted(n int, noun string) string { return strconv.Itoa(n) + " " + noun + plural(n) }

// seedCounts says what a seed loaded or an export wrote: "1 site, 1 key, 3 users".
func seedCounts(n emulator.SeedStats) string {
	return counted(n.Sites, "site") + ", " + counted(n.Keys, "key") + ", " + counted(n.Users, "user")
}

func printClock(w io.Writer, c emulator.ClockInfo) {
	fmt.Fprintf(w, "now:    %s\nsystem: %s\noffset: %s\n", gigya.FormatTime(c.Now.Time), gigya.FormatTime(c.System.Time), c.Offset)
}

func printRules(w io.Writer, rules []emulator.Rule) {
	if len(rules) == 0 {
		fmt.Fprintln(w, "no fault rules")
		return
	}
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tMETHOD\tSITE\tERROR\tDELAY\tAPPLIES TO\tHITS")
	for _, r := range rules {
		method, site, code, delay := cmp(r.Method, "*"), cmp(r.APIKey, "*"), "-", "-"
		if r.Code != 0 {
			code = strconv.Itoa(r.Code) + " " + gigya.Message(r.Code)
		}
		if r.Delay != 0 {
			delay = r.Delay.String()
		}
		applies := "every call"
		switch {
		case r.Count > 0 && r.Fraction > 0:
			applies = fmt.Sprintf("next %d of %d, %g of calls", r.Remaining, r.Count, r.Fraction)
		case r.Count > 0:
			applies = fmt.Sprintf("next %d of %d", r.Remaining, r.Count)
		case r.Fraction > 0:
			applies = fmt.Sprintf("%g of calls", r.Fraction)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%d\n", r.ID, method, site, code, delay, applies, r.Hits)
	}
	tw.Flush()
}

func cmp(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// printEntry prints one logged call: a line, then its details and, for a refused
// signature, what the server signed.
func printEntry(w io.Writer, e *emulator.Entry, asJSON bool) {
	if asJSON {
		// JSON escapes only the control characters below U+0020 itself: U+009B (a
		// CSI) or U+202E from a client would reach the terminal as they came.
		b, _ := json.Marshal(e)
		w.Write(append(printableJSON(b), '\n'))
		return
	}
	// What a client sent (the method of its path, its apiKey, the text an answer
	// quotes from it) is printed escaped: any client of the emulator could otherwise
	// put a terminal's control sequences, or lines of its own, on the screen of the
	// developer reading the log.
	p := errtext.Printable
	result := "OK"
	if e.ErrorCode != 0 {
		result = strconv.Itoa(e.ErrorCode) + " " + gigya.Message(e.ErrorCode)
	}
	if e.Injected {
		result += " [injected]"
	}
	cred := cmp(e.Credential, "-")
	fmt.Fprintf(w, "%s  %s  %s  %s  %s  %s  %.1fms\n", gigya.FormatTime(e.Time), p(e.CallID), p(e.Method), p(cmp(e.APIKey, "-")), p(cred), result, e.LatencyMS)
	if e.ErrorCode != 0 && e.Details != "" && len(e.BaseStrings) == 0 {
		fmt.Fprintf(w, "    %s\n", p(e.Details))
	}
	if len(e.BaseStrings) > 0 && len(e.SignedURLs) > 0 {
		fmt.Fprintf(w, "    the server signed, for %s:\n      %s\n", p(e.SignedURLs[0]), p(e.BaseStrings[0]))
		for i := 1; i < len(e.SignedURLs) && i < len(e.BaseStrings); i++ {
			fmt.Fprintf(w, "    also tried %s:\n      %s\n", p(e.SignedURLs[i]), p(e.BaseStrings[i]))
		}
	}
}
