package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/socius/socius"
	"github.com/socius/socius/nonce"
	"github.com/socius/socius/postgres"
	"github.com/socius/socius/sealed"
	"github.com/socius/socius/sqlite"
)

// storeHelp is the help text of --store, shared by every command that opens a store.
const storeHelp = `the store: left out (or "sqlite") for the embedded SQLite file in --data, or a PostgreSQL URL (postgres://user:password@host:port/db?sslmode=...) that several server nodes share`

// isPostgres reports whether spec names a PostgreSQL database.
func isPostgres(spec string) bool {
	return strings.HasPrefix(spec, "postgres://") || strings.HasPrefix(spec, "postgresql://")
}

// checkStore checks the --store value without opening anything: a PostgreSQL URL
// that cannot be read (a malformed port, a parameter refused) is a usage error, as a
// store that is none is.
func checkStore(spec string) error {
	if isPostgres(spec) {
		if err := postgres.CheckURL(spec); err != nil {
			return fmt.Errorf("--store: %w", err)
		}
		return nil
	}
	if spec == "" || spec == "sqlite" {
		return nil
	}
	return fmt.Errorf("--store %q: want sqlite (the embedded SQLite in --data, as with --store left out) or a postgres:// URL", postgres.Redact(spec))
}

// errEmptyStore refuses a --store given empty on the command line, as "--store $URL"
// with the variable unset gives: taken as the embedded store, it served (or changed)
// a SQLite store in --data instead of the database meant. SOCIUS_STORE set empty is
// not refused: an empty variable is a value of a text flag (README.md), "" here, the
// embedded store, as before.
var errEmptyStore = errors.New(`--store is empty (an unset variable?): give the store's URL, or leave --store out (or give --store sqlite) for the embedded store in --data`)

// describeStore says which store spec names, without secrets.
func describeStore(spec, dataDir string) string {
	if isPostgres(spec) {
		return "PostgreSQL " + postgres.Redact(spec)
	}
	return "SQLite " + filepath.Join(dataDir, "socius.db")
}

// previousKeyHelp is the help of --previous-master-key-file, a flag of serve and of the
// admin commands.
const previousKeyHelp = "file holding a previous master key: secrets still sealed with it are sealed again with the current key at start (see docs/operations.md, changing the master key)"

// storeConfig says which store to open and how its secrets are sealed. serve and the
// admin commands share it, so they always agree on the master key.
type storeConfig struct {
	spec          string // --store: "" for the embedded SQLite, or a postgres:// URL
	data          string // the data folder: socius.db, and master.key by default
	masterKeyFile string // --master-key-file
	masterKey     string // SOCIUS_MASTER_KEY
	// previousKeyFile (--previous-master-key-file) holds a master key that secrets may
	// still be sealed with: open seals them again with the current key.
	previousKeyFile string
	// mustExist refuses to create the embedded store: an admin command that only reads
	// or changes what is there, given a mistyped --data, must not make a new empty
	// store (and master key) and report on that.
	mustExist bool
	// wrap, when set, decorates the raw store under the sealing (timing).
	wrap func(socius.Store) socius.Store
	// busyTimeout, when set, is how long the embedded store waits for a lock another
	// program holds (sqlite.Options): serve's, from --write-timeout (sqliteBusyTimeout).
	busyTimeout time.Duration
	out         io.Writer // told about a generated key and migrated secrets
	// logger is told what a PostgreSQL store's start waits for (a lock another session
	// holds) and of its failed nonce sweeps; nil: nothing is.
	logger *slog.Logger
	// temporary: data is the emulator's temporary folder, removed on exit with the
	// master key generated there, which is then no key to back up.
	temporary bool

	// The keys given (readKeys): read before anything is made, so that a missing or
	// bad one fails with no data folder, store or master key file created.
	keysRead    bool
	given       []byte // from masterKeyFile or masterKey; nil: the data folder's
	givenSource string
	previous    [][]byte
}

// readKeys reads the master keys given (the file, SOCIUS_MASTER_KEY, the previous
// key's file), once. A malformed SOCIUS_MASTER_KEY is a usage error (exit 2), as any
// value refused from the environment.
func (cfg *storeConfig) readKeys() error {
	if cfg.keysRead {
		return nil
	}
	switch {
	case cfg.masterKeyFile != "" && cfg.masterKey != "":
		return flagError{errTwoMasterKeys}
	case cfg.masterKeyFile != "":
		key, err := readGivenKeyFile(cfg.out, "--master-key-file", cfg.masterKeyFile)
		if err != nil {
			return err
		}
		cfg.given, cfg.givenSource = key, cfg.masterKeyFile
	case cfg.masterKey != "":
		key, err := sealed.ParseKey(cfg.masterKey)
		if err != nil {
			return flagError{fmt.Errorf("SOCIUS_MASTER_KEY: %w", err)}
		}
		cfg.given, cfg.givenSource = key, "SOCIUS_MASTER_KEY"
	}
	if cfg.previousKeyFile != "" {
		prev, err := readGivenKeyFile(cfg.out, "--previous-master-key-file", cfg.previousKeyFile)
		if err != nil {
			return err
		}
		cfg.previous = append(cfg.previous, prev)
	}
	cfg.keysRead = true
	return nil
}

// openedStore is a store ready for use.
type openedStore struct {
	store     *sealed.Store     // what callers use
	raw       socius.Store      // without decorators (readiness probes)
	nonces    socius.NonceStore // the database's with PostgreSQL (shared by every node), else in memory
	keySource string            // where the master key came from (never the key)
}

// errEmptyData refuses an empty --data (SOCIUS_DATA=) for the embedded store: it is
// no folder, and making it failed with Go's bare "mkdir : no such file or directory".
var errEmptyData = errors.New(`--data is empty: give the data folder ("." for the current one)`)

// noStore reports whether the data folder holds no embedded store (its socius.db).
func noStore(data string) bool {
	_, err := os.Stat(filepath.Join(data, "socius.db"))
	return errors.Is(err, fs.ErrNotExist)
}

// check makes open's checks that make nothing, as open makes them first: the store's
// name, the data folder's, and the master keys given, which it reads (once: open reads
// them no more).
func (cfg *storeConfig) check() error {
	if err := checkStore(cfg.spec); err != nil {
		return flagError{err} // a usage error (exit 2), as for serve
	}
	if cfg.data == "" && !isPostgres(cfg.spec) {
		return flagError{errEmptyData}
	}
	return cfg.readKeys()
}

// open opens the store that cfg.spec names, finds the master key, checks that it opens
// every sealed secret (a wrong key stops here, with a clear error) and seals the secrets
// written before encryption was enabled.
func (cfg storeConfig) open(ctx context.Context) (_ *openedStore, err error) {
	if err := cfg.check(); err != nil { // before anything is made
		return nil, err
	}
	var raw socius.Store
	var nonces socius.NonceStore
	if isPostgres(cfg.spec) {
		// Every node must seal with the same key: one generated into a node's data
		// folder would be useless to the others.
		if cfg.masterKeyFile == "" && cfg.masterKey == "" {
			return nil, flagError{errNoMasterKey}
		}
		pg, err := postgres.OpenWith(ctx, cfg.spec, postgres.Options{Logger: cfg.logger})
		if err != nil {
			return nil, err
		}
		raw, nonces = pg, pg
	} else {
		path := filepath.Join(cfg.data, "socius.db")
		if cfg.mustExist && noStore(cfg.data) {
			return nil, fmt.Errorf("no store at %s: check --data (or SOCIUS_DATA); `socius site create`, `socius user import` or `socius serve` makes a new one", path)
		}
		if err := makeDataDir(cfg.data); err != nil {
			return nil, err
		}
		lite, err := sqlite.OpenWith(path, sqlite.Options{BusyTimeout: cfg.busyTimeout})
		if err != nil {
			return nil, err
		}
		raw, nonces = lite, nonce.New(0)
	}
	defer func() {
		if err != nil {
			raw.Close()
		}
	}()
	key, source, err := masterKey(ctx, cfg, raw)
	if err != nil {
		return nil, err
	}
	inner := socius.Store(raw)
	if cfg.wrap != nil {
		inner = cfg.wrap(raw)
	}
	st, err := sealed.New(inner, key, cfg.previous...)
	if err != nil {
		return nil, err
	}
	if err := st.Verify(ctx); err != nil {
		if errors.Is(err, sealed.ErrWrongKey) {
			return nil, fmt.Errorf("master key from %s: %w", source, err)
		}
		return nil, err
	}
	// The migration runs on the store itself, not through its decorators (metrics):
	// the store can replace a secret only while it holds the value read.
	migrator := st
	if inner != raw {
		if migrator, err = sealed.New(raw, key, cfg.previous...); err != nil {
			return nil, err
		}
	}
	plain, resealed, err := migrator.Migrate(ctx)
	if err != nil {
		return nil, err
	}
	if plain > 0 && cfg.out != nil {
		were := "were"
		if plain == 1 {
			were = "was"
		}
		fmt.Fprintf(cfg.out, "socius: encrypted %d secret%s that %s stored in plain text\n", plain, plural(plain), were)
	}
	if cfg.previousKeyFile != "" && cfg.out != nil {
		fmt.Fprintf(cfg.out, "socius: moved %d secret%s from the previous master key (%s) to the current one (%s)\n", resealed, plural(resealed), cfg.previousKeyFile, source)
	}
	return &openedStore{store: st, raw: raw, nonces: nonces, keySource: source}, nil
}

// masterKey finds the master key: --master-key-file, else SOCIUS_MASTER_KEY, else
// <data>/master.key, which is generated on first start, but only while the store holds
// no sealed secret (a lost key file must be an error, never silently replaced).
func masterKey(ctx context.Context, cfg storeConfig, raw socius.Store) (key []byte, source string, err error) {
	if cfg.given != nil { // read by readKeys
		return cfg.given, cfg.givenSource, nil
	}
	path := filepath.Join(cfg.data, "master.key")
	if _, err := os.Stat(path); err == nil {
		key, err := readKeyFile(cfg.out, path)
		return key, path, err
	}
	holds, err := sealed.HoldsSealed(ctx, raw)
	if err != nil {
		return nil, "", err
	}
	if holds {
		return nil, "", fmt.Errorf("the store holds encrypted secrets but %s does not exist: restore that file, or give the key with --master-key-file or SOCIUS_MASTER_KEY", path)
	}
	key, err = sealed.CreateKeyFile(path)
	if errors.Is(err, fs.ErrExist) { // another process created it first
		key, err = sealed.ReadKeyFile(path)
	} else if err == nil && cfg.out != nil {
		keep := "back it up apart from the database"
		if cfg.temporary {
			keep = "removed on exit with the data"
		}
		fmt.Fprintf(cfg.out, "socius: generated the master key that encrypts secrets at rest: %s (%s)\n", path, keep)
	}
	if err != nil {
		return nil, "", fmt.Errorf("master key: %w", err)
	}
	return key, path, nil
}

// readKeyFile reads a master key file, warning first when other users may read it.
func readKeyFile(out io.Writer, path string) ([]byte, error) {
	warnKeyFileMode(out, path)
	return sealed.ReadKeyFile(path)
}

// warnKeyFileMode warns when other users may read the master key file path. Not of a
// folder or a device in its place, whose mode says nothing of a key: reading it fails,
// and says why.
func warnKeyFileMode(out io.Writer, path string) {
	if fi, err := os.Stat(path); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o077 != 0 && filepath.Separator == '/' && out != nil {
		fmt.Fprintf(out, "socius: warning: the master key file %s has mode %v; others may read it (chmod 600)\n", path, fi.Mode().Perm())
	}
}

// readGivenKeyFile is readKeyFile for the file a flag names: one that cannot be read,
// or that holds no master key, is a usage error (exit 2) that names the flag and says
// what the file must hold, as for every flag that names a file and as for a malformed
// SOCIUS_MASTER_KEY.
func readGivenKeyFile(out io.Writer, flagName, path string) ([]byte, error) {
	warnKeyFileMode(out, path)
	text, err := sealed.ReadKeyText(path)
	if err != nil {
		return nil, flagError{fileError(flagName, path, err)}
	}
	key, err := sealed.ParseKey(string(text))
	if err != nil {
		return nil, flagError{fmt.Errorf("%s %s: %w", flagName, path, err)}
	}
	return key, nil
}

// emptyKeyFiles refuses --master-key-file or --previous-master-key-file given empty on
// the command line ("--master-key-file $KEYFILE" with the variable unset), a usage
// error: taken for the flag left out, the master key was SOCIUS_MASTER_KEY, else
// <data>/master.key, generated for a store with no sealed secret yet, so that secrets
// were sealed with a key nobody meant, which the file meant does not open. An empty
// SOCIUS_MASTER_KEY_FILE is the flag's default, as the README says.
func emptyKeyFiles(flags *flag.FlagSet) error {
	if givenEmpty(flags, "master-key-file") {
		return badFlag("--master-key-file is empty (an unset variable?): give the file that holds the master key, or leave --master-key-file out for SOCIUS_MASTER_KEY, else <data>/master.key")
	}
	if givenEmpty(flags, "previous-master-key-file") {
		return badFlag("--previous-master-key-file is empty (an unset variable?): give the file that holds the previous master key, or leave --previous-master-key-file out")
	}
	return nil
}

// errTwoMasterKeys refuses a master key given both ways (they could differ).
var errTwoMasterKeys = errors.New("give the master key once: --master-key-file or SOCIUS_MASTER_KEY, not both")

// errNoMasterKey refuses a PostgreSQL store without a master key given: one generated
// into a node's data folder would be useless to the other nodes.
var errNoMasterKey = errors.New("with --store postgres://, give the master key that every node shares: --master-key-file FILE or SOCIUS_MASTER_KEY (create one with: head -c 32 /dev/urandom | base64)")

// sqliteBusyTimeout is how long serve's embedded store waits for a write lock that
// another program holds (an admin command, a backup, sqlite3 on the file): SQLite's
// 5 s, but for a write timeout under 5.5 s, the write timeout less a quarter of it, at
// most 500 ms, and at least 100 ms. The wait must end, and the write fail (500028), in
// time for the answer to go out before the write timeout, past which the connection
// closes unanswered; the quarter leaves room for the call's work before the wait and
// for a wait behind another write's. No write timeout (0): SQLite's 5 s.
func sqliteBusyTimeout(writeTimeout time.Duration) time.Duration {
	const sqliteDefault = 5 * time.Second
	if writeTimeout <= 0 {
		return sqliteDefault
	}
	return min(sqliteDefault, max(100*time.Millisecond, writeTimeout-min(writeTimeout/4, 500*time.Millisecond)))
}
