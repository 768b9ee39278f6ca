package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// version is the release, set when building one:
//
//	go build -ldflags "-X main.version=v1.2.3" ./cmd/socius
//
// Without it, the version comes from the build information Go records: the module
// version when installed with `go install ...@v1.2.3`, else the VCS revision.
var version string

// buildVersion returns the version of this binary.
func buildVersion() string {
	if version != "" {
		return version
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev, modified string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	if rev == "" {
		return "devel"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if modified == "true" {
		rev += "-dirty"
	}
	return "devel-" + rev
}

func runVersion(args []string, stdout, stderr io.Writer) error {
	if len(args) == 1 && isHelp(args[0]) {
		fmt.Fprintln(stdout, "usage: socius version (prints the version of Socius and of Go; no flags)")
		return nil
	}
	if len(args) > 0 {
		fmt.Fprintf(stderr, "socius version: unexpected argument %q\nusage: socius version\n", args[0])
		return errUsage
	}
	fmt.Fprintf(stdout, "socius %s\n%s %s/%s\n", buildVersion(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return nil
}
