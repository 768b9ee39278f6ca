package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/socius/socius"
	"github.com/socius/socius/emulator"
	"github.com/socius/socius/server"
)

// EmulatorOptions are the flags of `socius serve --emulator` and the state of emulator
// mode while it runs. Main embeds them.
type EmulatorOptions struct {
	Emulator            bool
	Seed                string
	ExportOnExit        string
	RequestLogSize      int
	EmulatorAllowRemote bool

	// Emu is the running emulator; nil outside emulator mode.
	Emu *emulator.Emulator

	seed       io.ReadCloser      // --seed, read and checked before the store opened
	seedSites  []emulator.SiteRef // the sites the seed needs from the store
	dataGiven  bool               // --data (or SOCIUS_DATA) was given
	tempData   string             // the temporary data folder to remove on exit
	tempSaid   bool               // its line was printed (sayTempData)
	started    bool               // Run succeeded (emulatorStarted)
	exportable bool               // Run succeeded: export on Close
}

func (m *Main) registerEmulatorFlags(fs *flag.FlagSet) {
	fs.BoolVar(&m.Emulator, "emulator", m.Emulator, "emulator mode for development and CI: request log, fault injection, clock control, admin API and console under /_emulator/ (loopback only)")
	fs.StringVar(&m.Seed, "seed", m.Seed, "emulator: load sites, keys and users from this file (JSON lines, the export format) at start (none when left out)")
	fs.StringVar(&m.ExportOnExit, "export-on-exit", m.ExportOnExit, "emulator: write every site, key and user to this file on shutdown (no export when left out)")
	fs.IntVar(&m.RequestLogSize, "request-log-size", emulator.DefaultLogSize, "emulator: how many calls the request log keeps (at most 100000)")
	fs.BoolVar(&m.EmulatorAllowRemote, "emulator-allow-remote", m.EmulatorAllowRemote, "emulator: allow listeners on non-loopback addresses (in a container), and any Host on /_emulator/ (the emulator has no authentication)")
}

// checkEmulatorFlags runs after parsing: the emulator flags need --emulator, and
// emulator mode needs loopback listeners.
func (m *Main) checkEmulatorFlags(fs *flag.FlagSet) error {
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "data" {
			m.dataGiven = true
		}
	})
	// "--seed $FILE" or "--export-on-exit $FILE" with the variable unset: taken for
	// the flag left out, the emulator started with no seed, or exited with no export,
	// a CI job's data lost at the end of its run; SOCIUS_SEED= set empty is no seed.
	if givenEmpty(fs, "seed") {
		return errors.New("--seed is empty (an unset variable?): give the seed file to load (JSON lines, the export format), or leave --seed out to start without one")
	}
	if givenEmpty(fs, "export-on-exit") {
		return errors.New("--export-on-exit is empty (an unset variable?): give the file to write on shutdown, or leave --export-on-exit out for no export")
	}
	if !m.Emulator {
		for _, f := range []struct {
			name string
			set  bool
		}{{"seed", m.Seed != ""}, {"export-on-exit", m.ExportOnExit != ""}, {"emulator-allow-remote", m.EmulatorAllowRemote}} {
			if f.set {
				return fmt.Errorf("--%s needs --emulator", f.name)
			}
		}
		return nil
	}
	if err := checkOutFolder(m.ExportOnExit); err != nil {
		// At the start, not at the end of a CI job's tests.
		return fmt.Errorf("--export-on-exit: %w", err)
	}
	data := ""
	if m.dataGiven {
		// Without --data the store is in a temporary folder, made later.
		data = m.DataDir
	}
	if err := outNotAStoreFile("--export-on-exit", m.ExportOnExit, m.StoreURL, data, m.MasterKeyFile, m.PreviousMasterKeyFile); err != nil {
		// The export, renamed onto socius.db or master.key at shutdown, would
		// replace the store it was read from.
		return err
	}
	if m.RequestLogSize <= 0 || m.RequestLogSize > emulator.MaxLogSize {
		return fmt.Errorf("--request-log-size must be positive, at most %d", emulator.MaxLogSize)
	}
	if m.WriteTimeout < 2*time.Second {
		// Long polls of the request log and fault delays end a second before it.
		return fmt.Errorf("--write-timeout %v: the emulator needs at least 2s (its long polls and fault delays end a second before it)", m.WriteTimeout)
	}
	if m.EmulatorAllowRemote {
		return nil
	}
	for _, l := range []struct{ flag, addr string }{{"http", m.HTTPAddr}, {"https", m.HTTPSAddr}} {
		if l.addr != "" && !loopbackAddr(l.addr) {
			return fmt.Errorf("--emulator: --%s %s is not a loopback address; the emulator's admin API and console have no authentication, "+
				"so they listen on 127.0.0.1, ::1 or localhost only (give --emulator-allow-remote to listen there anyway, e.g. inside a container)", l.flag, l.addr)
		}
	}
	return nil
}

// loopbackAddr reports whether a listen address is on the loopback interface only:
// 127.0.0.0/8, ::1 or localhost. An empty host (":8080") is every interface.
func loopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// prepareEmulator runs first in Run: emulator mode moves the clock, so it needs an
// OffsetClock, and without --data it keeps its store in a temporary folder, so that
// every run starts from the seed alone (with PostgreSQL, the folder holds only the
// generated TLS certificate: the database keeps its data).
func (m *Main) prepareEmulator() error {
	if !m.Emulator {
		return nil
	}
	switch c := m.Clock.(type) {
	case nil:
		m.Clock = &socius.OffsetClock{}
	case *socius.OffsetClock:
	default:
		return fmt.Errorf("emulator mode needs a *socius.OffsetClock, not %T", c)
	}
	if !m.dataGiven {
		dir, err := os.MkdirTemp("", "socius-emulator-")
		if err != nil {
			return err
		}
		m.DataDir, m.tempData = dir, dir
	}
	return nil
}

// sayTempData prints where the temporary data folder is, once the listeners are
// bound, before the first line that names a file in it: a start that fails before
// (an address taken, a bad seed, the commonest failures) removes the folder, and a
// line naming it sent the user looking for a folder that was gone.
//
// With PostgreSQL the data is the database's, which keeps it: the folder holds the
// generated TLS certificate alone, and is said only when it will hold it.
func (m *Main) sayTempData() {
	if m.tempData == "" {
		return
	}
	what := "data"
	if isPostgres(m.StoreURL) {
		if m.HTTPSAddr == "" || m.TLSCert != "" {
			return
		}
		what = "TLS certificate"
	}
	fmt.Fprintf(m.Stdout, "socius: emulator: %s in %s (removed on exit; give --data to keep it)\n", what, m.tempData)
	m.tempSaid = true
}

// readSeed runs before anything is made (no data folder, master key or store): it
// opens --seed and reads it whole through emulator.CheckSeed, so that a seed that
// cannot be read or holds a line it refuses is a usage error naming the flag (exit 2),
// with nothing left behind. The file stays open for seedEmulator, from its start
// again; a pipe, which reads once, is copied to a temporary file first.
func (m *Main) readSeed() error {
	if !m.Emulator || m.Seed == "" {
		return nil
	}
	f, err := os.Open(m.Seed)
	if err != nil {
		return flagError{fileError("--seed", m.Seed, err)}
	}
	fi, err := f.Stat()
	if err == nil && fi.IsDir() {
		f.Close()
		return badFlag("--seed %s: is a directory", m.Seed)
	}
	var seed io.ReadSeekCloser = f
	if err != nil || !fi.Mode().IsRegular() {
		// A seed that reads once (a pipe, a shell's <(...)) is copied to a file of
		// its own as it is read, and checked and loaded from that copy: a seed of any
		// size, as from a regular file, without holding it in memory.
		t, terr := copySeed(f)
		f.Close()
		if terr != nil {
			return flagError{fileError("--seed", m.Seed, terr)}
		}
		seed = t
	}
	m.seedSites, err = emulator.CheckSeed(seed)
	if err == nil {
		err = m.newStoreHasSeedSites()
	}
	if err == nil {
		_, err = seed.Seek(0, io.SeekStart)
	}
	if err != nil {
		seed.Close()
		var pe *os.PathError
		if errors.As(err, &pe) {
			return flagError{fileError("--seed", m.Seed, err)}
		}
		return flagError{fmt.Errorf("--seed %s: %w", m.Seed, err)}
	}
	m.seed = seed
	return nil
}

// newStoreHasSeedSites runs before the store is made: on a new store (the embedded
// one, with no socius.db in the data folder yet), the only site that a seed's key or
// user may name without a site line before it is --site-api-key's, which serve puts
// before the seed loads. Any other is refused now, not while loading with the data
// folder made.
func (m *Main) newStoreHasSeedSites() error {
	if isPostgres(m.StoreURL) {
		return nil // checked against the store, before the load
	}
	if _, err := os.Stat(filepath.Join(m.DataDir, "socius.db")); !errors.Is(err, os.ErrNotExist) {
		return nil
	}
	// The temporary folder is removed as the start fails: it is not named.
	isNew := "no " + filepath.Join(m.DataDir, "socius.db") + " yet"
	if m.tempData != "" {
		isNew = "a temporary one, without --data"
	}
	for _, ref := range m.seedSites {
		if ref.APIKey != m.SiteAPIKey {
			return fmt.Errorf("%w; the store is new (%s), so its sites are the seed's and --site-api-key's", ref.Missing(), isNew)
		}
	}
	return nil
}

// storeHasSeedSites runs once the store is open, before the seed loads: every site the
// seed needs from the store is there, so that the load does not stop at a line naming
// one that is not, with the lines before it loaded.
func (m *Main) storeHasSeedSites(ctx context.Context) error {
	for _, ref := range m.seedSites {
		_, err := m.Store.Site(ctx, ref.APIKey)
		if errors.Is(err, socius.ErrNotFound) {
			return fmt.Errorf("--seed %s: %w; nothing was loaded", m.Seed, ref.Missing())
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// A seedCopy is a seed copied to a temporary file, removed when it is closed.
type seedCopy struct{ *os.File }

func (c seedCopy) Close() error {
	err := c.File.Close()
	os.Remove(c.Name())
	return err
}

// copySeed copies what r holds to a temporary file, and returns it open at its start.
func copySeed(r io.Reader) (seedCopy, error) {
	t, err := os.CreateTemp("", "socius-seed-*")
	if err != nil {
		return seedCopy{}, err
	}
	c := seedCopy{t}
	if _, err := io.Copy(t, r); err != nil {
		c.Close()
		return seedCopy{}, err
	}
	if _, err := t.Seek(0, io.SeekStart); err != nil {
		c.Close()
		return seedCopy{}, err
	}
	return c, nil
}

// closeSeed closes --seed, if readSeed left it open (a start that failed before
// seedEmulator).
func (m *Main) closeSeed() {
	if m.seed != nil {
		m.seed.Close()
		m.seed = nil
	}
}

// seedEmulator runs once the store is open: it loads --seed (which readSeed opened and
// checked) and starts the emulator.
func (m *Main) seedEmulator(ctx context.Context) error {
	if !m.Emulator {
		return nil
	}
	if m.seed != nil {
		if err := m.storeHasSeedSites(ctx); err != nil {
			return err
		}
		n, err := emulator.Seed(ctx, m.Store, m.seed, m.Clock.Now())
		m.closeSeed()
		if err != nil {
			return fmt.Errorf("--seed %s: %w", m.Seed, err)
		}
		fmt.Fprintf(m.Stdout, "socius: emulator: seeded %s from %s\n", seedCounts(n), m.Seed)
	}
	m.Emu = emulator.New(emulator.Config{
		Store:        m.Store,
		Clock:        m.Clock.(*socius.OffsetClock),
		LogSize:      m.RequestLogSize,
		AllowRemote:  m.EmulatorAllowRemote,
		Version:      buildVersion(),
		WriteTimeout: m.WriteTimeout,
		Logger:       m.Logger,
	})
	return nil
}

// configureEmulator adds the emulator's hooks to the server's configuration: the
// request log (after any other observer), fault rules and explained signatures.
func (m *Main) configureEmulator(cfg *server.Config) {
	if m.Emu == nil {
		return
	}
	if prev := cfg.Observe; prev != nil {
		cfg.Observe = func(c *server.Call) {
			prev(c)
			m.Emu.Log.Observe(c)
		}
	} else {
		cfg.Observe = m.Emu.Log.Observe
	}
	cfg.Fault = m.Emu.Faults.Fault
	cfg.ExplainSignatures = true
}

// apiHandler is what the listeners serve: the API, and in emulator mode the emulator
// under /_emulator/.
func (m *Main) apiHandler() http.Handler {
	if m.Emu == nil {
		return m.Server
	}
	return m.Emu.Wrap(m.Server)
}

// emulatorStarted runs when Run has succeeded: from now on the state is exported on
// exit (never after a failed start, which could overwrite a good export with less),
// and the console's address is printed.
func (m *Main) emulatorStarted() {
	if m.Emu == nil {
		return
	}
	m.exportable, m.started = true, true
	base := m.HTTPURL
	if base == "" {
		base = m.HTTPSURL
	}
	fmt.Fprintf(m.Stdout, "socius: emulator: console %s/_emulator/, admin API %s/_emulator/api/\n", base, base)
}

// exportOnExit writes the state to --export-on-exit, whole or not at all (writeOut:
// the seed file may be the export file; a symbolic link is followed and stays; a pipe
// or /dev/stdout is written as it is).
func (m *Main) exportOnExit() error {
	if !m.exportable || m.ExportOnExit == "" || m.Store == nil {
		return nil
	}
	m.exportable = false
	var n emulator.SeedStats
	err := writeOut(m.ExportOnExit, func(w io.Writer) (err error) {
		n, err = emulator.Export(context.Background(), m.Store, w)
		return err
	})
	if err != nil {
		return fmt.Errorf("--export-on-exit: %w", err)
	}
	fmt.Fprintf(m.Stdout, "socius: emulator: exported %s to %s\n", seedCounts(n), m.ExportOnExit)
	return nil
}

// removeTempData removes the temporary data folder, once the store is closed. After a
// start that failed once its folder was said (and the lines naming files in it), it
// says the folder is gone: that line said "removed on exit", but no exit was expected
// yet.
func (m *Main) removeTempData() {
	if m.tempData == "" {
		return
	}
	os.RemoveAll(m.tempData)
	if m.tempSaid && !m.started {
		fmt.Fprintf(m.Stdout, "socius: emulator: removed %s (the start failed)\n", m.tempData)
	}
	m.tempData, m.tempSaid = "", false
}
