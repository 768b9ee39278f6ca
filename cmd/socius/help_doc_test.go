package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// helpFlags runs `socius <args> -h` and returns the flags it lists, each with the
// default the help prints ("" when it prints none).
func helpFlags(t *testing.T, args ...string) map[string]string {
	t.Helper()
	_, out, errOut := runCLI(t, noEnv, append(args, "-h")...)
	help := out + errOut
	defaults := map[string]string{}
	var name string
	flagLine := regexp.MustCompile(`^  -([a-z-]+)`)
	defaultOf := regexp.MustCompile(`\(default "?([^")]*)"?\)$`)
	for _, line := range strings.Split(help, "\n") {
		if m := flagLine.FindStringSubmatch(line); m != nil {
			name = m[1]
			defaults[name] = ""
			continue
		}
		if m := defaultOf.FindStringSubmatch(line); m != nil && name != "" {
			defaults[name] = m[1]
		}
	}
	if len(defaults) == 0 {
		t.Fatalf("read no flags from socius %s -h:\n%s", strings.Join(args, " "), help)
	}
	return defaults
}

// readDoc returns the text of a file of the repository, named from its top.
func readDoc(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile("../../" + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// A flagRow is a row of a table of flags: the flags its first cell names (`--users
// LIST`; `--url URL`, `--api-key K`) and its default cell.
type flagRow struct {
	flags []string
	def   string
}

// flagRows reads the rows of the tables in text whose first cell names flags.
func flagRows(text string) []flagRow {
	row := regexp.MustCompile("^\\| (`--[^|]*) \\|([^|]*)\\|")
	var rows []flagRow
	for _, line := range strings.Split(text, "\n") {
		m := row.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		r := flagRow{def: strings.TrimSpace(m[2])}
		for _, f := range regexp.MustCompile("`--([a-z][a-z-]*)").FindAllStringSubmatch(m[1], -1) {
			r.flags = append(r.flags, f[1])
		}
		rows = append(rows, r)
	}
	return rows
}

// section returns the part of text from the heading line to the next heading of the
// same or a higher level.
func section(t *testing.T, text, heading string) string {
	t.Helper()
	text = "\n" + text
	start := strings.Index(text, "\n"+heading+"\n")
	if start < 0 {
		t.Fatalf("no heading %q", heading)
	}
	rest := text[start+len(heading)+2:]
	level := heading[:strings.Index(heading, " ")+1]
	for _, l := range []string{"# ", "## ", "### ", "#### "} {
		if i := strings.Index(rest, "\n"+l); i >= 0 && len(l) <= len(level) {
			rest = rest[:i]
		}
	}
	return rest
}

// checkDefault reports a row's default that is a value (`30s`, `1024`, off) and is not
// the help's (durations compared as durations: `120s` is 2m0s). A default cell that
// describes (generated, <data>/master.key, temp, removed) is not compared.
func checkDefault(t *testing.T, doc, flag, cell, helpDefault string) {
	t.Helper()
	switch {
	case cell == "off" || cell == "`0` (off)":
		cell = strings.TrimSuffix(strings.TrimPrefix(cell, "`"), "` (off)")
		if cell == "off" && helpDefault == "" {
			return
		}
	case strings.HasPrefix(cell, "`") && strings.Count(cell, "`") == 2 && strings.HasSuffix(cell, "`") && !strings.Contains(cell, "<"):
		cell = strings.Trim(cell, "`")
	default:
		return
	}
	if helpDefault == "" && cell == "0" {
		return
	}
	same := cell == helpDefault || strings.TrimSuffix(cell, "/") == helpDefault
	if d1, err1 := time.ParseDuration(cell); err1 == nil {
		d2, err2 := time.ParseDuration(helpDefault)
		same = err2 == nil && d1 == d2
	}
	if !same {
		t.Errorf("--%s: %s gives the default %q, the help %q", flag, doc, cell, helpDefault)
	}
}

// checkTable: the flags of the rows are the command's flags, every one of them (when
// all is set) has a row, and a row's default that is a value is the help's.
func checkTable(t *testing.T, doc string, rows []flagRow, defaults map[string]string, all bool) {
	t.Helper()
	inTable := map[string]bool{}
	for _, r := range rows {
		for _, flag := range r.flags {
			inTable[flag] = true
			helpDefault, ok := defaults[flag]
			if !ok {
				t.Errorf("%s has a row for --%s, which the command does not have", doc, flag)
				continue
			}
			checkDefault(t, doc, flag, r.def, helpDefault)
		}
	}
	if !all {
		return
	}
	for flag := range defaults {
		if !inTable[flag] {
			t.Errorf("the help has --%s, which %s's table does not describe", flag, doc)
		}
	}
}

// TestServeFlagsInREADME: every flag of `socius serve -h` has a row in README.md's
// tables of serve's flags, and every row names a flag serve has; where the row gives
// its default as a value (`30s`, `1024`, off) and the help prints one, they are the
// same value. docs/operations.md's table of the listeners and the data folder names
// flags of serve with the same defaults.
func TestServeFlagsInREADME(t *testing.T) {
	defaults := helpFlags(t, "serve")
	if len(defaults) < 30 {
		t.Fatalf("read %d flags from serve -h", len(defaults))
	}
	checkTable(t, "README.md", flagRows(readDoc(t, "README.md")), defaults, true)
	rows := flagRows(section(t, readDoc(t, "docs/operations.md"), "# Running Socius in production"))
	if len(rows) < 4 {
		t.Fatalf("read %d rows from docs/operations.md's table of listeners", len(rows))
	}
	checkTable(t, "docs/operations.md", rows, defaults, false)
}

// TestBenchFlagsInPerformance: docs/performance.md's table of bench's flags and
// `socius bench -h` name the same flags, with the same defaults where the table gives
// a value.
func TestBenchFlagsInPerformance(t *testing.T) {
	rows := flagRows(section(t, readDoc(t, "docs/performance.md"), "### Flags"))
	if len(rows) < 15 {
		t.Fatalf("read %d rows from docs/performance.md's table of bench's flags", len(rows))
	}
	checkTable(t, "docs/performance.md", rows, helpFlags(t, "bench"), true)
}

// The commands whose flags are described in prose rather than in a table, with their
// subcommands, and the documents that describe them.
var proseCommands = []struct {
	args []string
	docs []string
}{
	{[]string{"site", "create"}, []string{"README.md", "docs/operations.md"}},
	{[]string{"site", "list"}, []string{"README.md", "docs/operations.md"}},
	{[]string{"site", "show"}, []string{"README.md", "docs/operations.md"}},
	{[]string{"site", "rotate-secret"}, []string{"README.md", "docs/operations.md"}},
	{[]string{"key", "create"}, []string{"README.md", "docs/operations.md"}},
	{[]string{"key", "list"}, []string{"README.md", "docs/operations.md"}},
	{[]string{"key", "delete"}, []string{"README.md", "docs/operations.md"}},
	{[]string{"key", "rotate-secret"}, []string{"README.md", "docs/operations.md"}},
	{[]string{"user", "export"}, []string{"README.md", "docs/operations.md"}},
	{[]string{"user", "import"}, []string{"README.md", "docs/operations.md"}},
	{[]string{"token", "revoke"}, []string{"README.md", "docs/operations.md"}},
	{[]string{"backup"}, []string{"README.md", "docs/operations.md"}},
	{[]string{"call"}, []string{"README.md"}},
	{[]string{"emulator", "status"}, []string{"README.md", "docs/emulator.md"}},
	{[]string{"emulator", "reset"}, []string{"README.md", "docs/emulator.md"}},
	{[]string{"emulator", "clock"}, []string{"README.md", "docs/emulator.md"}},
	{[]string{"emulator", "faults"}, []string{"README.md", "docs/emulator.md"}},
	{[]string{"emulator", "log"}, []string{"README.md", "docs/emulator.md"}},
	{[]string{"emulator", "export"}, []string{"README.md", "docs/emulator.md"}},
	{[]string{"emulator", "seed"}, []string{"README.md", "docs/emulator.md"}},
}

// TestCommandFlagsInDocs, for the commands without a table of flags: every flag of a
// command's -h is named (`--name`) in its documents, and every flag the documents give
// a command in a command line (`socius emulator log --follow`, `go run ./cmd/socius key
// create --site 3_...`, the lines a backslash continues included; after bench's `--`,
// serve's flags) is one that command has. A flag renamed in the help or in the
// documents alone fails one or the other.
func TestCommandFlagsInDocs(t *testing.T) {
	flagsOf := map[string]map[string]string{} // "emulator log": its flags
	for _, c := range proseCommands {
		defaults := helpFlags(t, c.args...)
		flagsOf[strings.Join(c.args, " ")] = defaults
		var docs strings.Builder
		for _, d := range c.docs {
			docs.WriteString(readDoc(t, d))
		}
		for flag := range defaults {
			if !regexp.MustCompile("--" + flag + `\b`).MatchString(docs.String()) {
				t.Errorf("socius %s has --%s, which %s do not name", strings.Join(c.args, " "), flag, strings.Join(c.docs, " and "))
			}
		}
	}
	flagsOf["serve"] = helpFlags(t, "serve")
	flagsOf["bench"] = helpFlags(t, "bench")
	// A command line: up to the end of its line or of its `code`, and before a "--"
	// that passes flags on (bench's to serve).
	commandLine := regexp.MustCompile("socius (serve|site|key|user|token|backup|call|emulator|bench)((?: [a-z][a-z-]*)?)([^`\n]*)")
	checked := 0
	for _, doc := range []string{"README.md", "docs/operations.md", "docs/emulator.md", "docs/performance.md", "docs/postgresql.md"} {
		text := readDoc(t, doc)
		// A `code` span that a line break splits is one command line.
		text = regexp.MustCompile("`[^`\n]*\n[^`\n]*`").ReplaceAllStringFunc(text, func(s string) string {
			return strings.ReplaceAll(s, "\n", " ")
		})
		// A command line that a backslash continues is one command line too: the
		// flags of its later lines are checked as well.
		text = regexp.MustCompile(`[ \t]*\\\n[ \t]*`).ReplaceAllString(text, " ")
		for _, m := range commandLine.FindAllStringSubmatch(text, -1) {
			command, rest := m[1], m[3]
			if sub := strings.TrimSpace(m[2]); sub != "" {
				if _, ok := flagsOf[command+" "+sub]; ok {
					command += " " + sub
				} else {
					rest = m[2] + rest
				}
			}
			if _, ok := flagsOf[command]; !ok {
				continue // "socius site" in prose, or a subcommand with no flags of its own
			}
			// What follows a "--" goes to the serve that bench starts: those flags
			// are serve's.
			own, passed := rest, ""
			if i := strings.Index(rest, " -- "); i >= 0 {
				own = rest[:i]
				if command == "bench" {
					passed = rest[i+len(" -- "):]
				}
			}
			line := strings.TrimSpace(m[0])
			checked += checkFlagsOf(t, doc, line, command, own, flagsOf[command])
			checked += checkFlagsOf(t, doc, line, "serve", passed, flagsOf["serve"])
		}
	}
	if checked < 50 {
		t.Errorf("checked only %d flags of command lines in the documents", checked)
	}
}

// checkFlagsOf reports each flag named in args (the text after a command's name on a
// command line of doc) that the command does not have, and returns how many it
// checked.
func checkFlagsOf(t *testing.T, doc, line, command, args string, flags map[string]string) int {
	t.Helper()
	checked := 0
	for _, f := range regexp.MustCompile(`(?:^|[\s\[(|])--([a-z][a-z-]*)`).FindAllStringSubmatch(args, -1) {
		checked++
		if _, ok := flags[f[1]]; !ok && f[1] != "help" {
			t.Errorf("%s: %q gives socius %s --%s, which it does not have", doc, line, command, f[1])
		}
	}
	return checked
}

// TestLayoutNamesEveryPackage: README.md's Layout table names every package of the
// module (a folder with Go files that are not tests), so that a reader finds each one
// there. It left out internal/proctest and internal/testdirs.
func TestLayoutNamesEveryPackage(t *testing.T) {
	layout := section(t, readDoc(t, "README.md"), "## Layout")
	var missing []string
	err := filepath.WalkDir("../..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() && path != "../.." && (strings.HasPrefix(name, ".") || name == "testdata" || name == "node_modules") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			return nil
		}
		dir := filepath.ToSlash(filepath.Dir(strings.TrimPrefix(path, "../../")))
		if dir != "." && !strings.Contains(layout, "`"+dir+"/`") && !slices.Contains(missing, dir) {
			missing = append(missing, dir)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(missing) > 0 {
		t.Errorf("README.md's Layout table does not name %v", missing)
	}
}

// TestTestsNamedInDocsExist: every test, benchmark and fuzz function that README.md or
// a document under docs/ names (TestStoreOverTLS, `go test ./http1 -bench
// BenchmarkServe`, FuzzBearerJWT) is a function of a test file of the module, so that
// a reader who runs it finds it; a test renamed or removed leaves no name behind.
func TestTestsNamedInDocsExist(t *testing.T) {
	declared := map[string]bool{}
	funcLine := regexp.MustCompile(`(?m)^func ((?:Test|Benchmark|Fuzz)[A-Z]\w*)\(`)
	err := filepath.WalkDir("../..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != "../.." && (strings.HasPrefix(d.Name(), ".") || d.Name() == "node_modules") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(d.Name(), "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range funcLine.FindAllStringSubmatch(string(b), -1) {
			declared[m[1]] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(declared) < 100 {
		t.Fatalf("found only %d test functions", len(declared))
	}
	docs, err := filepath.Glob("../../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	named := regexp.MustCompile(`\b(?:Test|Benchmark|Fuzz)[A-Z]\w*`)
	checked := 0
	for _, doc := range append([]string{"README.md"}, docs...) {
		doc = strings.TrimPrefix(doc, "../../")
		for i, line := range strings.Split(readDoc(t, doc), "\n") {
			for _, name := range named.FindAllString(line, -1) {
				checked++
				if !declared[name] {
					t.Errorf("%s:%d names %s, which no test file declares", doc, i+1, name)
				}
			}
		}
	}
	if checked < 100 {
		t.Errorf("checked only %d names of tests in the documents", checked)
	}
}
