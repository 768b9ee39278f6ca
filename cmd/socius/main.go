// Command socius is a self-hosted server for the Gigya (SAP Customer Data Cloud)
// socialize REST API, and the tools around it.
//
//	socius serve                                run the server (embedded SQLite store in ./socius-data,
//	                                            or PostgreSQL with --store postgres://...)
//	socius site create|list|show|rotate-secret  manage sites (tenants) in the store
//	socius key create|list|delete|rotate-secret manage application/user keys of a site
//	socius user export|import                   move a site's users out of and into the store (JSON lines)
//	socius backup --out FILE                    copy the embedded store, while it serves, into a checked file
//	socius call METHOD NAME=VALUE               call an API method with the Go client, print the answer
//	socius emulator ...                         drive a running `socius serve --emulator`
//	socius bench                                measure throughput and latency against a baseline
//	socius version                              print the version of Socius and Go
//
// Every flag can also be given as an environment variable SOCIUS_<FLAG>, e.g.
// SOCIUS_HTTP=:8080 or SOCIUS_SITE_API_KEY=...
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/socius/socius"
)

func main() {
	ctx, cancel := context.WithCancel(context.Background())
	// Room for two: signal.Notify drops what a full channel cannot take, and the first
	// two must wait there should they come before this goroutine is ready for them.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, stopSignals()...)
	// The first signal starts a graceful shutdown; a second one stops the process at
	// once, however soon after the first it comes (it waits in the channel: none is
	// lost while this goroutine waits for a CPU). But not a hangup: a closed terminal
	// sends it twice (the shell passes its own on to its jobs, and the kernel sends one
	// to the foreground as the shell exits), which must not skip the graceful shutdown.
	// Nor a SIGTERM within a second of the first: GNU timeout (`timeout 60 socius
	// serve`) sends its SIGTERM to the process and then to its process group, which
	// holds the process too; a SIGTERM sent again later, or a SIGINT, still stops it.
	go func() {
		first := <-sigs
		firstAt := time.Now()
		cancel()
		for sig := range sigs {
			if !sameStop(first, firstAt, sig, time.Now()) {
				dieOf(sig)
			}
		}
	}()
	os.Exit(run(ctx, os.Args[1:], os.LookupEnv, os.Stdout, os.Stderr))
}

// sameStopWithin is how soon after a first SIGTERM another counts as the same one
// delivered twice (sameStop).
const sameStopWithin = time.Second

// sameStop reports whether a signal sig taken at now, after the first, first taken at
// firstAt, asks for the shutdown already running rather than to stop at once: a
// hangup (a closed terminal sends two), or a SIGTERM within sameStopWithin of a first
// SIGTERM (GNU timeout sends two).
func sameStop(first os.Signal, firstAt time.Time, sig os.Signal, now time.Time) bool {
	return sig == syscall.SIGHUP || sig == syscall.SIGTERM && first == syscall.SIGTERM && now.Sub(firstAt) < sameStopWithin
}

// dieOf ends the process as sig would have without a handler: its default effect,
// sent again once the handler is gone, so that the parent sees the process killed by
// the signal (a shell's 130 for SIGINT). Where a process cannot signal itself so
// (Windows), or should the signal not end it, it exits with status 1.
func dieOf(sig os.Signal) {
	signal.Reset(sig)
	if p, err := os.FindProcess(os.Getpid()); err == nil && p.Signal(sig) == nil {
		time.Sleep(time.Second)
	}
	os.Exit(1)
}

// stopSignals are the signals that start a graceful shutdown: SIGINT, SIGTERM, and
// SIGHUP (the terminal closed) unless the process was started with hangups ignored, as
// nohup starts it: Notify would undo that.
func stopSignals() []os.Signal {
	sigs := []os.Signal{os.Interrupt, syscall.SIGTERM}
	if !signal.Ignored(syscall.SIGHUP) {
		sigs = append(sigs, syscall.SIGHUP)
	}
	return sigs
}

const usage = `usage: socius <command> [flags]

commands:
  serve                                 run Socius (HTTP, HTTPS; embedded SQLite store,
                                        or PostgreSQL with --store postgres://...)
  site create|list|show|rotate-secret   manage sites
  key create|list|delete|rotate-secret  manage application/user keys
  user export|import                    write a site's users as JSON lines, read them back
  backup --out FILE                     copy the embedded store (--data) into FILE while it
                                        serves: whole and checked, or not at all
  token revoke [TOKEN]                  end an access or session token (read from standard
                                        input when not given)
  call METHOD [NAME=VALUE ...]          call an API method (signed by the Go client), print the answer
  emulator reset|clock|faults|log|export|seed|status
                                        drive a running "socius serve --emulator"
  bench                                 measure throughput and latency (signed calls) against a baseline
  version                               print the version of Socius and Go

Run "socius <command> -h" for a command's flags or subcommands, and "socius <command>
<subcommand> -h" for a subcommand's flags. A flag may also be set as an environment
variable SOCIUS_<FLAG> (e.g. SOCIUS_DATA, SOCIUS_STORE); the site, key, user and token
commands read only the store's: SOCIUS_DATA, SOCIUS_STORE, SOCIUS_MASTER_KEY(_FILE),
SOCIUS_PREVIOUS_MASTER_KEY_FILE; backup only SOCIUS_DATA and SOCIUS_STORE; bench none
(what it measures is what its command line says).
`

// flagsGoAfter is what an unknown command or subcommand that is a flag gets added
// to its refusal: each command reads its flags after its name (socius site list
// --data DIR), none before it, as the usage lines show; "unknown subcommand
// "--data"" alone did not say where the flag goes. Empty for a word that is no flag.
func flagsGoAfter(word, what, example string) string {
	if len(word) < 2 || word[0] != '-' {
		return ""
	}
	return "; flags go after the " + what + ", as in " + example
}

// run is the whole program, minus os.Exit, so tests can drive it.
func run(ctx context.Context, args []string, lookupEnv func(string) (string, bool), stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		err = runServe(ctx, args[1:], lookupEnv, stdout, stderr)
	case "site":
		err = runSite(ctx, args[1:], lookupEnv, stdout, stderr)
	case "key":
		err = runKey(ctx, args[1:], lookupEnv, stdout, stderr)
	case "user":
		err = runUser(ctx, args[1:], lookupEnv, stdout, stderr)
	case "backup":
		err = runBackup(ctx, args[1:], lookupEnv, stdout, stderr)
	case "token":
		err = runToken(ctx, args[1:], lookupEnv, stdout, stderr)
	case "call":
		err = runCall(ctx, args[1:], lookupEnv, stdout, stderr)
	case "emulator":
		err = runEmulator(ctx, args[1:], lookupEnv, stdout, stderr)
	case "bench":
		err = runBench(ctx, args[1:], lookupEnv, stdout, stderr)
	case "version", "--version":
		err = runVersion(args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "socius: unknown command %q%s\n\n%s", args[0], flagsGoAfter(args[0], "command (and its subcommand)", "socius serve --data DIR, socius site list --data DIR"), usage)
		return 2
	}
	var fe flagError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	case errors.As(err, &fe):
		fmt.Fprintf(stderr, "socius: %v\n", err)
		return 2
	}
	fmt.Fprintf(stderr, "socius: %s\n", cliMessage(err))
	return 1
}

// cliMessage is err as a command says it: a store's failure reads as what it is
// ("Database error: the store's disk is full; ..."), not as an API answer ("gigya
// error 500028: ...").
func cliMessage(err error) string {
	msg := err.Error()
	var ge *socius.Error
	if errors.As(err, &ge) {
		msg = strings.Replace(msg, fmt.Sprintf("gigya error %d: ", ge.Code), "", 1)
	}
	return msg
}

// atLeastTwoProcs raises GOMAXPROCS to 2 when the process may use a single CPU (a
// one-CPU machine, or a CPU set of one: taskset, cpuset) and the GOMAXPROCS variable
// does not choose. It reports the value it raised from.
//
// With one P, durable writes can collapse. A goroutine in a system call keeps its P
// until the runtime's monitor (sysmon) sees it there twice; when the process has been
// busy without long system calls, sysmon backs off to polling every 10 ms, and the
// writer's fsync (about 1 ms) then always ends before it is noticed: for every fsync the
// only P, and so the whole server, waits on the disk. On one CPU (strace showed sysmon
// sleeping 10 ms at a time) setUserInfo fell to 1,300-2,900 requests a second with a p99
// of 200-700 ms and the mix to 3,600-4,400, against 5,000-10,000 (p99 14-26 ms) and
// 5,100-10,700 with two Ps on the same CPU; reads alone lose some to the second P
// (getUserInfo 6,400-14,400 against 12,900-17,800). See docs/performance.md. Go itself
// never sets fewer than 2 from a cgroup's CPU limit.
func atLeastTwoProcs(lookupEnv func(string) (string, bool)) (from int, raised bool) {
	if _, set := lookupEnv("GOMAXPROCS"); set {
		return 0, false
	}
	if from = runtime.GOMAXPROCS(0); from >= 2 {
		return from, false
	}
	runtime.GOMAXPROCS(2)
	return from, true
}

// serveGCPercent is the garbage collector's target (GOGC) of socius serve when the GOGC
// variable does not choose. A busy server keeps about a megabyte of live heap (the
// nonce tables and SQLite's memory are outside it), so at Go's default of 100 the heap
// goal is the runtime's floor of 4 MB and the collector runs tens of times a second:
// about 5 % of getUserInfo's CPU, plus its assists. At 400 it runs about a quarter as
// often, for 10 to 20 MB more memory (a million users at a full nonce window: 104 MB
// against 86-88; docs/performance.md, item 15).
const serveGCPercent = 400

// setGCPercent sets the collector's target to serveGCPercent unless the GOGC variable
// chooses; it reports whether it did.
func setGCPercent(lookupEnv func(string) (string, bool)) bool {
	if _, set := lookupEnv("GOGC"); set {
		return false
	}
	debug.SetGCPercent(serveGCPercent)
	return true
}

// errUsage is returned after a usage message was printed.
var errUsage = errors.New("usage")

func runServe(ctx context.Context, args []string, lookupEnv func(string) (string, bool), stdout, stderr io.Writer) error {
	m := NewMain()
	m.Stdout = stdout
	if err := m.ParseFlags(args, lookupEnv, stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return err
	}
	if from, raised := atLeastTwoProcs(lookupEnv); raised {
		fmt.Fprintf(stdout, "socius: %d CPU available: running with GOMAXPROCS=2 (set GOMAXPROCS to choose)\n", from)
	}
	setGCPercent(lookupEnv)
	// A server whose output nobody reads any more (`socius serve | tee log` stopped by
	// Ctrl-C, which ends tee as well; a log collector restarted) writes on into a
	// broken pipe: Go kills a program at its first such write to standard output or
	// error (SIGPIPE) unless the signal is ignored, which here would cut the graceful
	// shutdown short at its first line, "socius: shutting down" (calls in flight
	// dropped, nonces not saved). Ignored, the write fails and the server goes on.
	signal.Ignore(syscall.SIGPIPE)
	if err := m.Run(ctx); err != nil {
		return err
	}
	err := m.Wait(ctx)
	fmt.Fprintln(stdout, "socius: shutting down")
	if cerr := m.Close(); err == nil {
		err = cerr
	}
	return err
}
