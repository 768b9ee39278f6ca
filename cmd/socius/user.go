package main

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/socius/socius"
	"github.com/socius/socius/dump"
	"github.com/socius/socius/server"
)

// exportPage is how many users an export reads from the store at a time: an export
// never holds more than one page in memory. Tests shorten it.
var exportPage = 1000

// importWorkers is how many users an import writes at once: the store commits
// concurrent writes together, so a few in flight make a large import fast.
const importWorkers = 16

// heldKeysMax bounds the key lines an import holds until their site's line (or the
// end of the file); tests lower it.
var heldKeysMax = 100_000

// progressEvery is how often a long import reports its progress; tests shorten it.
var progressEvery = time.Second

func runUser(ctx context.Context, args []string, lookupEnv func(string) (string, bool), stdout, stderr io.Writer) error {
	if err, done := noSubcommand(args, "user", "usage: socius user export|import [flags]", stdout, stderr); done {
		return err
	}
	var sf storeFlags
	fs := newFlagSet("socius user "+args[0], stdout, stderr)
	lookupEnv = sf.register(fs, lookupEnv, stderr)
	switch args[0] {
	case "export":
		site := fs.String("site", "", "apiKey of the site whose users to export (this or --all-sites is required)")
		allSites := fs.Bool("all-sites", false, "export every site of the store, each followed by its users, instead of --site's one: with --with-site, the whole store but its tokens, sessions and nonces")
		out := fs.String("out", "-", "file to write (- for standard output)")
		withSite := fs.Bool("with-site", false, "write the site and its keys (secrets in clear) before the users, so that an import recreates them")
		if err := parseNoArgs(fs, args[1:], lookupEnv); err != nil {
			return err
		}
		switch {
		case givenEmpty(fs, "site"):
			// "--site $APIKEY" with the variable unset: beside --all-sites, every
			// site would be exported in place of the one meant.
			return badFlag("--site is empty (an unset variable?): give the site's apiKey, or --all-sites (without --site) to export every site")
		case *site != "" && *allSites:
			return badFlag("--site and --all-sites: give one of them")
		case *site == "" && !*allSites:
			return badFlag("--site APIKEY (or --all-sites) is required")
		}
		if *out == "" {
			// "--out $FILE" with the variable unset: writeOut would rename its
			// temporary file onto "" (Go's bare "rename ... : no such file").
			return badFlag("--out is empty: give the file to write, or - (or no --out) for standard output")
		}
		if *out != "-" {
			// Before the store is opened and the export runs: a folder that cannot
			// take the file is a usage error, as for the bench's --json.
			if err := checkOutFolder(*out); err != nil {
				return flagError{fmt.Errorf("--out: %w", err)}
			}
			if err := sf.notAStoreFile(*out); err != nil {
				return err
			}
		}
		return withStore(ctx, sf, func(st socius.Store) error {
			return exportUsers(ctx, st, *site, *allSites, *withSite, *out, stdout, stderr)
		})
	case "import":
		sf.mayCreate = true // an export --with-site brings its site along
		in := fs.String("in", "-", "file to read (- for standard input)")
		if err := parseNoArgs(fs, args[1:], lookupEnv); err != nil {
			return err
		}
		r, err := openInput(ctx, "--in", *in)
		if err != nil {
			return err
		}
		defer r.Close()
		imp := &importer{stderr: stderr, sites: map[string]bool{}, refused: map[string]int{}, siteLines: map[string]bool{}}
		if sf.missing() {
			// No store in the data folder: it is made for the first site line, so
			// that a file with none (all bad lines, users of sites it lacks) leaves
			// the folder as it was, with no empty store and master key to take for
			// an import's. What would refuse the store is said now.
			var cfg *storeConfig
			if cfg, err = sf.prepare(); err == nil {
				imp.open = func(ctx context.Context) (socius.Store, error) { return sf.openPrepared(ctx, cfg) }
			}
		} else {
			imp.st, err = sf.open(ctx)
		}
		if err == nil {
			err = imp.run(ctx, r, stdout)
		}
		if imp.st != nil {
			if cerr := imp.st.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil && ctx.Err() != nil {
			// Whatever failed then (a read, the store) failed for the signal.
			return errImportInterrupted
		}
		return err
	}
	fmt.Fprintf(stderr, "socius user: unknown subcommand %q (export, import)%s\n", args[0], flagsGoAfter(args[0], "subcommand", "socius user export --site APIKEY"))
	return errUsage
}

// storeNotMade is the failure to make the store of an import into a data folder
// without one (at its first site line).
type storeNotMade struct{ err error }

func (e storeNotMade) Error() string { return e.err.Error() }
func (e storeNotMade) Unwrap() error { return e.err }

// errImportInterrupted is the end of an import a signal stopped.
var errImportInterrupted = errors.New("import stopped by a signal: the records counted above, if any, are imported, the rest not; importing the whole file again is safe (a record imported twice is stored once)")

// createPrivate creates (or truncates) a file that only its owner may read: a file
// there before would keep its mode otherwise. A device or a pipe (/dev/null) is left
// as it is.
func createPrivate(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
		if err := f.Chmod(0o600); err != nil {
			f.Close()
			return nil, err
		}
	}
	return f, nil
}

// exportUsers writes every user of a site (of every site, allSites) as JSON lines
// (package dump), page by page, each site's after its own site and key records when
// withSite: to standard output, or to out whole or not at all (writeOut: an export cut
// short leaves the file there before as it was). Everything it writes is read from
// one view of the store (socius.OpenView): the sites, keys and users of one moment, whatever
// a server writes meanwhile.
func exportUsers(ctx context.Context, store socius.Store, apiKey string, allSites, withSite bool, out string, stdout, stderr io.Writer) error {
	st, err := socius.OpenView(ctx, store)
	if err != nil {
		return err
	}
	// A read-only view: closing it cannot lose anything the export wrote.
	defer st.Close()
	var sites []*socius.Site
	if allSites {
		var err error
		if sites, err = st.Sites(ctx); err != nil {
			return err
		}
	} else {
		site, err := st.Site(ctx, apiKey)
		if errors.Is(err, socius.ErrNotFound) {
			return fmt.Errorf("no site has apiKey %s", apiKey)
		}
		if err != nil {
			return err
		}
		sites = []*socius.Site{site}
	}
	counts := make([]int, len(sites))
	export := func(w io.Writer) error {
		dw := dump.NewWriter(w)
		for i, site := range sites {
			if withSite {
				if err := dw.WriteSite(site); err != nil {
					return err
				}
				keys, err := st.Keys(ctx, site.APIKey)
				if err != nil {
					return err
				}
				for _, k := range keys {
					if err := dw.WriteKey(k); err != nil {
						return err
					}
				}
			}
			for u, err := range socius.AllUsers(ctx, st, site.APIKey, exportPage) {
				if err != nil {
					return err
				}
				if err := dw.WriteUser(u); err != nil {
					return err
				}
				counts[i]++
			}
		}
		return dw.Flush()
	}
	if out == "-" {
		err = export(stdout)
	} else {
		err = writeOut(out, export)
	}
	if err != nil && ctx.Err() != nil && !errors.As(err, new(*folderNotSyncedError)) {
		if out == "-" {
			return errors.New("export stopped by a signal: what was written is cut short")
		}
		return fmt.Errorf("export stopped by a signal: %s is left as it was", out)
	}
	if err != nil {
		return err
	}
	for i, site := range sites {
		fmt.Fprintf(stderr, "exported %d user%s of site %s\n", counts[i], plural(counts[i]), site.APIKey)
	}
	if allSites {
		fmt.Fprintf(stderr, "exported %d site%s\n", len(sites), plural(len(sites)))
	}
	if withSite && len(sites) > 0 {
		// What a move to another store leaves behind, said where the move starts: of
		// the sites exported, when there were any.
		fmt.Fprintln(stderr, notExported(len(sites)))
	}
	return nil
}

// notExported says what an export with its sites (n of them) leaves out.
func notExported(n int) string {
	whose := "the site's"
	if n > 1 {
		whose = "the sites'"
	}
	return "not exported: " + whose + " tokens and mobile sessions (the store keeps only their hashes): in a store this file is imported into, " +
		"those issued before are refused (403025 Invalid token) and clients get new ones; users keep their loggedIn as exported"
}

// importer reads dump records into a store. Users are written by importWorkers
// goroutines, each user always by the same one (so a UID repeated in the file ends
// with its last record); site and key records wait for the users before them.
type importer struct {
	st     socius.Store // nil until open makes it
	open   func(context.Context) (socius.Store, error)
	stderr io.Writer

	mu      sync.Mutex // guards stderr, bad and failed
	bad     int
	failed  error
	users   atomic.Int64
	sites   map[string]bool // apiKeys known to exist
	refused map[string]int  // apiKeys whose site line was refused, to its line
	// siteLines are the apiKeys whose site line was read; held, the key lines read
	// before their site's line, in order, put once it is read (or at the end).
	siteLines map[string]bool
	held      []*dump.Record
	created   []string // what site and key records created
	merged    []string // sites that existed, which the file's users went into
	pending   sync.WaitGroup
	workers   []chan userLine
	lastShow  time.Time
}

type userLine struct {
	line int
	user *socius.User
}

// badLine reports a line that was skipped.
func (imp *importer) badLine(line int, format string, args ...any) {
	imp.mu.Lock()
	defer imp.mu.Unlock()
	imp.bad++
	fmt.Fprintf(imp.stderr, "line %d: %s\n", line, fmt.Sprintf(format, args...))
}

// fail stops the import: the store failed, not the line.
func (imp *importer) fail(err error) {
	imp.mu.Lock()
	defer imp.mu.Unlock()
	if imp.failed == nil {
		imp.failed = err
	}
}

func (imp *importer) err() error {
	imp.mu.Lock()
	defer imp.mu.Unlock()
	return imp.failed
}

func (imp *importer) run(ctx context.Context, r io.Reader, stdout io.Writer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var done sync.WaitGroup
	for i := 0; i < importWorkers; i++ {
		ch := make(chan userLine, 64)
		imp.workers = append(imp.workers, ch)
		done.Add(1)
		go func() {
			defer done.Done()
			for ul := range ch {
				imp.putUser(ctx, ul)
				imp.pending.Done()
			}
		}()
	}
	readErr := imp.read(ctx, dump.NewReader(r))
	for _, ch := range imp.workers {
		close(ch)
	}
	done.Wait()
	if readErr == nil {
		readErr = imp.err()
	}
	for _, what := range imp.created {
		fmt.Fprintln(stdout, "created "+what)
	}
	for _, what := range imp.merged {
		fmt.Fprintln(stdout, what)
	}
	users := int(imp.users.Load())
	fmt.Fprintf(stdout, "imported %d user record%s, %d bad line%s\n", users, plural(users), imp.bad, plural(imp.bad))
	var notMade storeNotMade
	switch {
	case errors.As(readErr, &notMade):
		return notMade.err // said as when the store is opened first
	case readErr != nil:
		return fmt.Errorf("import stopped: %w", readErr)
	case imp.bad > 0:
		return fmt.Errorf("import: %d bad line%s skipped (see above)", imp.bad, plural(imp.bad))
	}
	return nil
}

// read goes through the records in order, checking and dispatching them.
func (imp *importer) read(ctx context.Context, r *dump.Reader) error {
	imp.lastShow = time.Now()
	for {
		if err := imp.err(); err != nil {
			return nil // reported by run
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rec, err := r.Next()
		if err == io.EOF {
			// The key lines of sites without a line in the file: of sites there.
			imp.pending.Wait()
			return imp.putHeld(ctx, "", true)
		}
		var le *dump.LineError
		if errors.As(err, &le) {
			imp.badLine(le.Line, "%v", le.Err)
			continue
		}
		if err != nil {
			return err // the input itself failed: a read error
		}
		if time.Since(imp.lastShow) >= progressEvery {
			imp.lastShow = time.Now()
			imp.mu.Lock()
			fmt.Fprintf(imp.stderr, "importing: line %d, %d user records imported, %d bad lines\n", rec.Line, imp.users.Load(), imp.bad)
			imp.mu.Unlock()
		}
		switch {
		case rec.Site != nil:
			imp.pending.Wait()
			if err := imp.putSite(ctx, rec); err != nil {
				return err
			}
			imp.siteLines[rec.Site.APIKey] = true
			if err := imp.putHeld(ctx, rec.Site.APIKey, false); err != nil {
				return err
			}
		case rec.Key != nil:
			if !imp.siteLines[rec.Key.APIKey] {
				// Its site's line may come later in the file, and be refused (the
				// site there with another secret): the key waits for it, so that
				// it is refused with it, not added to that site first.
				if len(imp.held) >= heldKeysMax {
					return fmt.Errorf("line %d: more than %d key lines before their site's line: put each site's line before its keys, as socius user export --with-site writes them", rec.Line, heldKeysMax)
				}
				imp.held = append(imp.held, rec)
				continue
			}
			imp.pending.Wait()
			if err := imp.putKey(ctx, rec); err != nil {
				return err
			}
		default:
			ok, err := imp.siteExists(ctx, rec.User.APIKey)
			if err != nil {
				return err
			}
			if !ok {
				imp.badLine(rec.Line, "user %s: no site has apiKey %s (import its site record first, or create it with socius site create)", rec.User.UID, rec.User.APIKey)
				continue
			}
			h := fnv.New32a()
			h.Write([]byte(rec.User.APIKey + "\x00" + rec.User.UID))
			imp.pending.Add(1)
			select {
			case imp.workers[h.Sum32()%importWorkers] <- userLine{rec.Line, rec.User}:
			case <-ctx.Done():
				imp.pending.Done()
				return ctx.Err()
			}
		}
	}
}

// putHeld puts the held key lines of site apiKey, or all of them, in the file's order.
func (imp *importer) putHeld(ctx context.Context, apiKey string, all bool) error {
	kept := imp.held[:0]
	for _, rec := range imp.held {
		if !all && rec.Key.APIKey != apiKey {
			kept = append(kept, rec)
			continue
		}
		if err := imp.putKey(ctx, rec); err != nil {
			return err // the import stops
		}
	}
	clear(imp.held[len(kept):])
	imp.held = kept
	return nil
}

func (imp *importer) siteExists(ctx context.Context, apiKey string) (bool, error) {
	if imp.sites[apiKey] {
		return true, nil
	}
	if imp.st == nil {
		return false, nil // no store yet: no site
	}
	_, err := imp.st.Site(ctx, apiKey)
	if errors.Is(err, socius.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	imp.sites[apiKey] = true
	return true, nil
}

func (imp *importer) putUser(ctx context.Context, ul userLine) {
	// A line without times (written by hand) is a user created now, as the emulator's
	// seed takes it: else its answers would carry the year 1.
	if ul.user.CreatedAt.IsZero() {
		ul.user.CreatedAt = time.Now()
	}
	err := imp.st.PutUser(ctx, ul.user)
	switch {
	case err == nil:
		imp.users.Add(1)
	case errors.Is(err, socius.ErrNotFound):
		imp.badLine(ul.line, "user %s: no site has apiKey %s", ul.user.UID, ul.user.APIKey)
	case ctx.Err() == nil:
		imp.fail(fmt.Errorf("line %d: user %s: %w", ul.line, ul.user.UID, err))
	}
}

// putSite creates a site that does not exist. An existing site is left as it is: an
// import never changes credentials, so one with another secret is a bad line (and the
// file's users of that apiKey go into the site there, but its keys are refused: see
// putKey); one with the same secret is reported with the number of users it had,
// which the file's users join.
func (imp *importer) putSite(ctx context.Context, rec *dump.Record) error {
	s := rec.Site
	if imp.st == nil {
		st, err := imp.open(ctx)
		if err != nil {
			return storeNotMade{err}
		}
		imp.st = st
	}
	old, err := imp.st.Site(ctx, s.APIKey)
	switch {
	case err == nil:
		if !socius.SecretsEqual(old.Secret, s.Secret) {
			// Its users are still imported (an apiKey names one site): said here, as
			// "skipped" in the summary could be read as the whole site's. Its keys are
			// not: a file of another installation's site adds no credentials to this one.
			imp.badLine(rec.Line, "site %s exists with another secret: not changed (an import never replaces credentials); the file's users of site %s are imported into it as it is, its keys are not", s.APIKey, s.APIKey)
			imp.sites[s.APIKey] = true
			imp.refused[s.APIKey] = rec.Line
			return nil
		}
		delete(imp.refused, s.APIKey) // a later line of it that is right
		// The same site: its users there stay, beside the file's. Said, as a file
		// meant for an empty store could otherwise mix with one that was not.
		n, err := imp.st.CountUsers(ctx, s.APIKey)
		if err != nil {
			return err
		}
		if n == 0 {
			// Nothing there to merge with, nor to replace.
			imp.merged = append(imp.merged, fmt.Sprintf("site %s existed with the same secret and no users: the file's users of it were imported into it", s.APIKey))
		} else {
			imp.merged = append(imp.merged, fmt.Sprintf("site %s existed with the same secret and %d user%s: the file's users of it were merged in (each with a UID it had replaced that user)", s.APIKey, n, plural(n)))
		}
		imp.sites[s.APIKey] = true
		return nil
	case !errors.Is(err, socius.ErrNotFound):
		return err
	}
	if s.CreatedAt.IsZero() {
		s.CreatedAt = time.Now()
	}
	if err := imp.st.CreateSite(ctx, s); err != nil {
		return err
	}
	imp.sites[s.APIKey] = true
	imp.created = append(imp.created, "site "+s.APIKey)
	return nil
}

// putKey creates a key that does not exist; an existing key must match the record. A
// key of a site whose line was refused (it exists with another secret) is refused too,
// existing or not: the file is another site's, whose keys' secrets it holds.
func (imp *importer) putKey(ctx context.Context, rec *dump.Record) error {
	k := rec.Key
	if line, ok := imp.refused[k.APIKey]; ok {
		imp.badLine(rec.Line, "key %s: not imported: the line of its site %s (line %d) was refused, as that site exists with another secret (an import adds no key to it)", k.UserKey, k.APIKey, line)
		return nil
	}
	methods, err := server.CanonicalMethods(k.Methods)
	if err != nil {
		imp.badLine(rec.Line, "key %s: %v", k.UserKey, err)
		return nil
	}
	if len(methods) > 0 {
		k.Methods = methods
	}
	if imp.st == nil { // no store yet: no site
		imp.badLine(rec.Line, "key %s: no site has apiKey %s", k.UserKey, k.APIKey)
		return nil
	}
	old, err := imp.st.Key(ctx, k.UserKey)
	switch {
	case err == nil:
		if old.APIKey != k.APIKey || !socius.SecretsEqual(old.Secret, k.Secret) || !samePublicKey(old.PublicKey, k.PublicKey) || !slices.Equal(old.Methods, k.Methods) {
			imp.badLine(rec.Line, "key %s exists with other settings: not changed (an import never replaces credentials)", k.UserKey)
		}
		return nil
	case !errors.Is(err, socius.ErrNotFound):
		return err
	}
	if k.CreatedAt.IsZero() {
		k.CreatedAt = time.Now()
	}
	err = imp.st.CreateKey(ctx, k)
	switch {
	case errors.Is(err, socius.ErrNotFound):
		imp.badLine(rec.Line, "key %s: no site has apiKey %s", k.UserKey, k.APIKey)
		return nil
	case err != nil:
		return err
	}
	imp.created = append(imp.created, "key "+k.UserKey)
	return nil
}

// samePublicKey says whether a key's stored public key is the one a key line gives,
// which the dump package gives in the form key create stores (PKIX PEM): compared by
// key, so that a key an import stored as its line gave it (PKCS #1, or with text
// around the block, until 2026-12-02) is the same key as the line's.
func samePublicKey(stored, given string) bool {
	if stored == given {
		return true
	}
	if stored == "" || given == "" {
		return false
	}
	canonical, err := socius.CanonicalRSAPublicKey(stored)
	return err == nil && canonical == given
}
