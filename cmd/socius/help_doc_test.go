package main

import (
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestServeFlagsInREADME: every flag of `socius serve -h` has a row in README.md's
// tables of serve's flags, and every row names a flag serve has; where the row gives
// its default as a value (`30s`, `1024`, off) and the help prints one, they are the
// same value (durations compared as durations: `120s` is 2m0s).
func TestServeFlagsInREADME(t *testing.T) {
	_, out, errOut := runCLI(t, noEnv, "serve", "-h")
	help := out + errOut
	defaults := map[string]string{} // flag name: the help's default, "" when it prints none
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
	if len(defaults) < 30 {
		t.Fatalf("read %d flags from serve -h:\n%s", len(defaults), help)
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("^\\| (`--[^|]*) \\|([^|]*)\\|")
	inREADME := map[string]bool{}
	for _, line := range strings.Split(string(readme), "\n") {
		m := row.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		for _, f := range regexp.MustCompile("`--([a-z-]+)").FindAllStringSubmatch(m[1], -1) {
			flag := f[1]
			inREADME[flag] = true
			helpDefault, ok := defaults[flag]
			if !ok {
				t.Errorf("README.md has a row for --%s, which serve does not have", flag)
				continue
			}
			doc := strings.TrimSpace(m[2])
			switch {
			case doc == "off" || doc == "`0` (off)":
				doc = strings.TrimSuffix(strings.TrimPrefix(doc, "`"), "` (off)")
				if doc == "off" && helpDefault == "" {
					continue
				}
			case strings.HasPrefix(doc, "`") && strings.Count(doc, "`") == 2 && strings.HasSuffix(doc, "`") && !strings.Contains(doc, "<"):
				doc = strings.Trim(doc, "`")
			default:
				continue // a description (generated, <data>/master.key) or none
			}
			if helpDefault == "" && doc == "0" {
				continue
			}
			same := doc == helpDefault || strings.TrimSuffix(doc, "/") == helpDefault
			if d1, err1 := time.ParseDuration(doc); err1 == nil {
				d2, err2 := time.ParseDuration(helpDefault)
				same = err2 == nil && d1 == d2
			}
			if !same {
				t.Errorf("--%s: README.md gives the default %q, serve -h %q", flag, doc, helpDefault)
			}
		}
	}
	for flag := range defaults {
		if !inREADME[flag] {
			t.Errorf("serve -h has --%s, which README.md's tables do not describe", flag)
		}
	}
}
