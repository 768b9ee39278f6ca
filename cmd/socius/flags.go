package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/socius/socius/gigya"
	"github.com/socius/socius/internal/errtext"
)

// newFlagSet returns a flag set that reports errors instead of exiting. Its usage
// (for -h, and after a flag it refuses) begins "usage: NAME [flags]", as the usage of
// every command does: the flag package's own head, "Usage of socius serve:", is
// unlike the others. A command that takes arguments says them with argsUsage.
//
// What the flag set says goes to stderr, except the help that -h or --help asks for,
// which parseFlags sends to stdout: a help request is not an error.
func newFlagSet(name string, stdout, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(flagOutput{help: stdout, errors: stderr, fromEnv: map[string]string{}})
	argsUsage(fs, "usage: "+name+" [flags]")
	return fs
}

// A flagOutput is the output of a flag set: errors, where it writes, and help, where
// parseFlags puts the usage that -h asks for. It holds as well what the flag package
// has no place for: fromEnv, the flags whose value their variable gave (applyEnv), and
// that value, for envNamed.
type flagOutput struct {
	help, errors io.Writer
	fromEnv      map[string]string
}

func (o flagOutput) Write(p []byte) (int, error) { return o.errors.Write(p) }

// A flagError is a flag value (or its environment variable), or a command's argument
// (the FILE of emulator seed), that a command refuses: a usage error, which run says
// once and answers with exit status 2.
type flagError struct{ err error }

func (e flagError) Error() string { return e.err.Error() }
func (e flagError) Unwrap() error { return e.err }

// badFlag returns a flagError.
func badFlag(format string, a ...any) error { return flagError{fmt.Errorf(format, a...)} }

// applyEnv gives every flag that was not set on the command line the value of its
// environment variable SOCIUS_<NAME> (dashes as underscores, upper case), if set: a
// string flag even to the empty string (which disables a listener), another flag only
// to a value that is not empty. SOCIUS_EMULATOR= is what a compose file or a CI job
// writes for a variable of its own left empty: unset, not a value to refuse.
func applyEnv(fs *flag.FlagSet, lookupEnv func(string) (string, bool)) error {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || err != nil {
			return
		}
		name := envName(f.Name)
		v, ok := lookupEnv(name)
		if !ok || v == "" && flagKind(f) != "" {
			return
		}
		if e := fs.Set(f.Name, v); e != nil {
			if kind := flagKind(f); kind != "" {
				// The flag package says only "parse error" or "value out of range".
				err = badFlag("%s: must be %s (--%s)", envSaid(f.Name, v), kind, f.Name)
				return
			}
			err = badFlag("%s: %v", envSaid(f.Name, v), e)
			return
		}
		if o, ok := fs.Output().(flagOutput); ok && o.fromEnv != nil {
			o.fromEnv[f.Name] = v
		}
	})
	return err
}

// leadingFlag is the flag that a refusal of a value begins with: "--max-header-bytes
// must be positive", `--log-level "INFO+2": debug, info, warn or error`.
var leadingFlag = regexp.MustCompile(`^--([a-z0-9][a-z0-9-]*)\b`)

// envNamed returns err, a command's refusal of a flag's value once parsed, beginning
// with the variable that gave the value when the command line did not
// (SOCIUS_MAX_HEADER_BYTES="0": --max-header-bytes must be positive): the flag alone
// sent the user to a command line that does not hold it. An error that does not begin
// with a flag of fs, or whose flag the command line gave, is returned as it is; so is
// what err is (a usage error or not).
func envNamed(fs *flag.FlagSet, err error) error {
	if err == nil || fs == nil {
		return err
	}
	o, ok := fs.Output().(flagOutput)
	if !ok {
		return err
	}
	m := leadingFlag.FindStringSubmatch(err.Error())
	if m == nil {
		return err
	}
	v, ok := o.fromEnv[m[1]]
	if !ok {
		return err
	}
	said := envSaid(m[1], v)
	if v != "" && strings.Contains(err.Error(), fmt.Sprintf("%q", v)) {
		said = envName(m[1]) // the refusal quotes the value already
	}
	return fmt.Errorf("%s: %w", said, err)
}

// envSaid is a flag's variable and its value v, as a refusal says them
// (SOCIUS_CLOCK_SKEW="abc"): the variable alone for a flag whose value can be a secret
// (a credential's name, as gigya.IsCredential tells it: --site-secret, --secret,
// --token; or --store, a URL that may hold a password), and at most the first 64
// bytes of a longer value.
func envSaid(flagName, v string) string {
	name := envName(flagName)
	if flagName == "store" || gigya.IsCredential(flagName) {
		return name
	}
	return name + "=" + errtext.Quote(v, maxEnvSaid)
}

// maxEnvSaid is how much of a variable's value envSaid quotes.
const maxEnvSaid = 64

// flagKind says what a flag that is not a string takes, as an error tells it; "" for
// a string flag.
func flagKind(f *flag.Flag) string {
	g, ok := f.Value.(flag.Getter)
	if !ok {
		return ""
	}
	switch g.Get().(type) {
	case bool:
		return "true or false (1 or 0)"
	case int, int64:
		return "a whole number"
	case uint, uint64:
		return "a whole number, not negative"
	case float64:
		return "a number"
	case time.Duration:
		return "a duration such as 30s or 2m"
	}
	return ""
}

// kindSayer is the output of a flag set while it parses the command line: the flag
// package refuses a value that a flag which is not a string does not read with
// "invalid value "abc" for flag -timeout: parse error", and kindSayer says instead
// what the flag takes, as applyEnv says it of a variable ("... -timeout: must be a
// duration such as 30s or 2m"). The usage after it, and every other line, pass as
// they are.
type kindSayer struct {
	fs *flag.FlagSet
	w  io.Writer
}

// parseErrorLine is the flag package's refusal (one write), naming the flag.
var parseErrorLine = regexp.MustCompile(`^invalid (?:boolean )?value ".*" for (?:flag )?-([^:\s]+): parse error\n$`)

func (k kindSayer) Write(p []byte) (int, error) {
	if m := parseErrorLine.FindSubmatch(p); m != nil {
		if f := k.fs.Lookup(string(m[1])); f != nil && flagKind(f) != "" {
			_, err := fmt.Fprintf(k.w, "%s: must be %s\n", bytes.TrimSuffix(p, []byte(": parse error\n")), flagKind(f))
			return len(p), err
		}
	}
	return k.w.Write(p)
}

// onlyEnv returns a lookup that sees only the variables of the named flags.
func onlyEnv(lookupEnv func(string) (string, bool), flags ...string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		for _, f := range flags {
			if envName(f) == name {
				return lookupEnv(name)
			}
		}
		return "", false
	}
}

func envName(flagName string) string {
	return "SOCIUS_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// parse parses args, which must all be flags, and then the environment.
func parse(fs *flag.FlagSet, args []string, lookupEnv func(string) (string, bool)) error {
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return unexpected(fs, fs.Arg(0))
	}
	return applyEnv(fs, lookupEnv)
}

// parseFlags is fs.Parse, with its errors (which it has printed, with the usage) made
// errUsage: exit status 2, and no second message. -h stays flag.ErrHelp, its usage
// printed to the flag set's help output (standard output, see newFlagSet): what the
// flag package says is held until Parse returns, as only then is it known whether it
// is help or an error.
func parseFlags(fs *flag.FlagSet, args []string) error {
	out := fs.Output()
	var said bytes.Buffer
	fs.SetOutput(kindSayer{fs, &said})
	err := fs.Parse(args)
	fs.SetOutput(out)
	to := out
	if o, ok := out.(flagOutput); ok && o.help != nil && errors.Is(err, flag.ErrHelp) {
		to = o.help
	}
	if said.Len() > 0 {
		to.Write(said.Bytes())
	}
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	return err
}

// unexpected reports a positional argument that the command does not take, but for
// help, which asks for the usage (as in a command's or subcommand's place, isHelp):
// where a command takes no argument, it can mean nothing else.
func unexpected(fs *flag.FlagSet, arg string) error {
	if isHelp(arg) {
		return printHelp(fs)
	}
	fmt.Fprintf(fs.Output(), "%s: unexpected argument %q\n", fs.Name(), arg)
	return errUsage
}

// printHelp prints fs's usage where -h has it printed (standard output, see
// newFlagSet), and returns flag.ErrHelp, as fs.Parse does for -h.
func printHelp(fs *flag.FlagSet) error {
	out := fs.Output()
	if o, ok := out.(flagOutput); ok && o.help != nil {
		fs.SetOutput(o.help)
		defer fs.SetOutput(out)
	}
	fs.Usage()
	return flag.ErrHelp
}

// parseNoArgs is parseArgs for a command that takes flags only.
func parseNoArgs(fs *flag.FlagSet, args []string, lookupEnv func(string) (string, bool)) error {
	pos, err := parseArgs(fs, args, lookupEnv)
	if err == nil && len(pos) > 0 {
		err = unexpected(fs, pos[0])
	}
	return err
}

// parseArgs parses flags that may come before, between or after the positional
// arguments, then the environment; it returns the positional arguments.
func parseArgs(fs *flag.FlagSet, args []string, lookupEnv func(string) (string, bool)) ([]string, error) {
	var pos []string
	for {
		if err := parseFlags(fs, args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	return pos, applyEnv(fs, lookupEnv)
}

// flagGiven reports whether a flag was set, on the command line or by its environment
// variable.
func flagGiven(fs *flag.FlagSet, name string) bool {
	given := false
	fs.Visit(func(f *flag.Flag) {
		if f.Name == name {
			given = true
		}
	})
	return given
}

// givenEmpty reports whether the command line gave the flag name the empty value
// ("--flag $VAR" with the variable unset), as it does not when the flag is left out,
// or when its SOCIUS_* variable is set empty: an empty variable means what the README
// says, the flag's default (applyEnv), while an empty value on the command line is
// most often a variable the shell had no value for. A nil fs (a storeFlags made by a
// test, not by register) gave nothing.
func givenEmpty(fs *flag.FlagSet, name string) bool {
	if fs == nil {
		return false
	}
	f := fs.Lookup(name)
	if f == nil || f.Value.String() != "" || !flagGiven(fs, name) {
		return false
	}
	if o, ok := fs.Output().(flagOutput); ok {
		if _, fromEnv := o.fromEnv[name]; fromEnv {
			return false
		}
	}
	return true
}

// openInput opens the file a flag names, or standard input for "-" (which closing
// leaves open). Its error names the flag: os.Open's alone ("open x: no such file or
// directory") does not say which of the command's files x is, nor what it was for.
// A file that cannot be opened, or a folder, is a usage error (exit 2), as for every
// flag that names a file: the flag's value is wrong, not the store or the service.
// Its reads end with ctx's error once ctx is done (untilDone), and so does a wait in
// its open (a named pipe's open waits for a writer): the reader returned then has
// only ctx's error to read, and the caller says it as it says any read a signal ended.
func openInput(ctx context.Context, flagName, name string) (io.ReadCloser, error) {
	switch name {
	case "-":
		return untilDone(ctx, io.NopCloser(os.Stdin)), nil
	case "":
		// "--in $FILE" with the variable unset: os.Open says "open : no such file".
		return nil, badFlag("%s is empty: give a file, or - for standard input", flagName)
	}
	f, err := openUntilDone(ctx, name)
	if err != nil && ctx.Err() != nil {
		return stoppedReader{ctx.Err()}, nil
	}
	if err != nil {
		return nil, flagError{fileError(flagName, name, err)}
	}
	if fi, err := f.Stat(); err == nil && fi.IsDir() {
		f.Close()
		return nil, badFlag("%s %s: is a directory", flagName, name)
	}
	return untilDone(ctx, f), nil
}

// openUntilDone opens the file name for reading, or ends with ctx's error once ctx is
// done before the open does: an open of a named pipe waits in the kernel until a
// writer opens it, and cannot be cut short otherwise. The open left waiting then has
// its file closed should it ever end, or ends with the process.
func openUntilDone(ctx context.Context, name string) (*os.File, error) {
	type opened struct {
		f   *os.File
		err error
	}
	done := make(chan opened, 1)
	go func() {
		f, err := os.Open(name)
		done <- opened{f, err}
	}()
	select {
	case o := <-done:
		return o.f, o.err
	case <-ctx.Done():
		go func() {
			if o := <-done; o.f != nil {
				o.f.Close()
			}
		}()
		return nil, ctx.Err()
	}
}

// stoppedReader is an input whose open a signal ended: its reads return err.
type stoppedReader struct{ err error }

func (r stoppedReader) Read([]byte) (int, error) { return 0, r.err }
func (r stoppedReader) Close() error             { return nil }

// untilDone returns r, read by a goroutine of its own, so that a read ends with ctx's
// error once ctx is done (a signal) however long r's own read waits: standard input
// from a terminal or a pipe that sends nothing, a FIFO, or a line that never ends
// (/dev/zero). A read of such a file cannot be cut short otherwise, and the first
// Ctrl-C did nothing. Closing it closes r; a read still waiting then ends with the
// process.
func untilDone(ctx context.Context, r io.ReadCloser) io.ReadCloser {
	pr, pw := io.Pipe()
	go func() {
		_, err := io.Copy(pw, r)
		pw.CloseWithError(err) // io.EOF when err is nil
	}()
	stop := context.AfterFunc(ctx, func() { pr.CloseWithError(ctx.Err()) })
	return doneReader{pr, func() error {
		stop()
		pr.Close()
		return r.Close()
	}}
}

type doneReader struct {
	*io.PipeReader
	close func() error
}

func (d doneReader) Close() error { return d.close() }

// readFileAtMost returns the contents of the file at path, a file a flag names, or an
// error when it holds more than limit bytes, read no further: a key or certificate
// file given by mistake (a database, /dev/zero) must not be read whole into memory.
// Its errors are *os.PathError naming path, for fileError to say with the flag;
// what says what the file should hold, after the size.
func readFileAtMost(path string, limit int64, what string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, &os.PathError{Op: "read", Path: path, Err: fmt.Errorf("longer than %d bytes; %s", limit, what)}
	}
	return b, nil
}

// The most readFileAtMost reads of each kind of file a flag names, far above what a
// real one holds: a PEM key (an RSA key of 16,384 bits is some 13 KB), a certificate
// chain, a CA bundle (the system's is some 200 KB).
const (
	maxKeyPEM   = 64 << 10
	maxCertPEM  = 1 << 20
	maxCABundle = 16 << 20
)

// fileError is err, a failed operation on the file name that what (a flag, an
// argument) gave, said as "what name: cause": the operation and the path of an
// *os.PathError only repeat what the message says already.
func fileError(what, name string, err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) && pe.Path == name {
		err = pe.Err
	}
	return fmt.Errorf("%s %s: %w", what, name, err)
}

// argsUsage makes line, a usage line that names the command's arguments, the head of
// fs's usage (for -h, and after a flag it refuses), and returns it for the command to
// say when an argument is missing: the flag package's own head, "Usage of socius key
// delete:", does not say that the command takes a USERKEY.
func argsUsage(fs *flag.FlagSet, line string) string {
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), line)
		fs.PrintDefaults()
	}
	return line
}

// isHelp reports whether arg, in a command's or subcommand's place, asks for help:
// -h, -help and --help (which Go's flag package takes for every flag set) or help.
func isHelp(arg string) bool {
	switch arg {
	case "-h", "-help", "--help", "help":
		return true
	}
	return false
}

// noSubcommand handles a command with subcommands run without one, or with -h, -help,
// --help or help in its place: its usage line, on standard error as a usage error (exit 2)
// when the subcommand is missing, on standard output (exit 0) when asked for. It
// reports whether it handled args.
func noSubcommand(args []string, cmd, usage string, stdout, stderr io.Writer) (err error, done bool) {
	switch {
	case len(args) == 0:
		fmt.Fprintln(stderr, usage)
		return errUsage, true
	case isHelp(args[0]):
		fmt.Fprintf(stdout, "%s\nRun \"socius %s <subcommand> -h\" for the flags of each.\n", usage, cmd)
		return nil, true
	}
	return nil, false
}
