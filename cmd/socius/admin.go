package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/socius/socius"
	"github.com/socius/socius/postgres"
	"github.com/socius/socius/sealed"
	"github.com/socius/socius/server"
)

// storeFlags are the flags that choose the store of an admin command, and its master
// key: the same as serve's, so that both read the same secrets.
type storeFlags struct {
	data            string
	store           string
	masterKeyFile   string
	previousKeyFile string // --previous-master-key-file
	mayCreate       bool   // the command may make a new embedded store (site create, user import)
	lookupEnv       func(string) (string, bool)
	stderr          io.Writer
	fs              *flag.FlagSet // the command's flags, for envNamed
	// dataGiven: --data was on the command line (SOCIUS_DATA was not looked up);
	// storeFromEnv: --store was not, and SOCIUS_STORE gave it.
	dataGiven, storeFromEnv bool
}

// register adds the store's flags to fs. It returns the environment that the admin
// command's flags are to be read from: only these flags' variables. The others stay
// the command line's own: SOCIUS_SECRET or SOCIUS_API_KEY, set for `socius call`,
// must not become a new site's secret, or the "new" secret of rotate-secret.
func (f *storeFlags) register(fs *flag.FlagSet, lookupEnv func(string) (string, bool), stderr io.Writer) func(string) (string, bool) {
	fs.StringVar(&f.data, "data", "socius-data", "data folder of the embedded store")
	fs.StringVar(&f.store, "store", "", storeHelp)
	fs.StringVar(&f.masterKeyFile, "master-key-file", "", "file holding the master key that encrypts secrets at rest (default: SOCIUS_MASTER_KEY, else <data>/master.key)")
	fs.StringVar(&f.previousKeyFile, "previous-master-key-file", "", previousKeyHelp)
	f.lookupEnv = lookupEnv
	f.stderr = stderr
	f.fs = fs
	env := onlyEnv(lookupEnv, "data", "store", "master-key-file", "previous-master-key-file")
	// The environment is read for the flags the command line did not set: what it is
	// asked for tells where --data and --store came from (open).
	f.dataGiven = true
	return func(name string) (string, bool) {
		v, ok := env(name)
		switch name {
		case envName("data"):
			f.dataGiven = false
		case envName("store"):
			f.storeFromEnv = ok && v != ""
		}
		return v, ok
	}
}

// notAStoreFile refuses, as a usage error, an --out that the command's file would be
// renamed onto and that is one of the store's own files (outNotAStoreFile).
func (f *storeFlags) notAStoreFile(out string) error {
	return outNotAStoreFile("--out", out, f.store, f.data, f.masterKeyFile, f.previousKeyFile)
}

// outNotAStoreFile refuses, as a usage error, a file named by flag that a command's
// output would be renamed onto and that is one of the store's own files: a file in
// the embedded store's data folder (socius.db, its WAL, master.key; as backup
// refuses), or the master key file given with --master-key-file or
// --previous-master-key-file. A pipe or a device, written as it is, replaces nothing.
// An empty data names no folder (the emulator's temporary one, made later).
func outNotAStoreFile(flag, out, store, data, masterKeyFile, previousKeyFile string) error {
	if out == "" {
		return nil
	}
	if fi, err := os.Stat(out); err == nil && !fi.Mode().IsRegular() {
		return nil
	}
	target := followLinks(out)
	if fi, err := os.Stat(target); err == nil {
		for _, k := range []struct{ flag, path string }{{"--master-key-file", masterKeyFile}, {"--previous-master-key-file", previousKeyFile}} {
			if k.path == "" {
				continue
			}
			if ki, err := os.Stat(k.path); err == nil && os.SameFile(fi, ki) {
				return badFlag("%s %s: is the master key file (%s %s): the export would replace it", flag, out, k.flag, k.path)
			}
		}
	}
	if isPostgres(store) || data == "" {
		return nil
	}
	outDir, err1 := os.Stat(filepath.Dir(target))
	dataDir, err2 := os.Stat(data)
	if err1 == nil && err2 == nil && os.SameFile(outDir, dataDir) {
		return badFlag("%s %s: in the data folder %s: put the file in another folder, where it cannot replace one of the store's files (socius.db, master.key) and is not lost with them", flag, out, data)
	}
	return nil
}

func (f *storeFlags) open(ctx context.Context) (socius.Store, error) {
	cfg, err := f.prepare()
	if err != nil {
		return nil, err
	}
	return f.openPrepared(ctx, cfg)
}

// prepare makes the checks of open that make nothing: of the flags, of the store's
// name, and of the key files, which it reads. A command that opens the store only once
// it has something to store (user import into a folder with none) so says what open
// would refuse before it reads its input; openPrepared then opens it.
func (f *storeFlags) prepare() (*storeConfig, error) {
	cfg, err := f.config()
	if err != nil {
		return nil, err
	}
	if err := cfg.check(); err != nil {
		return nil, envNamed(f.fs, err)
	}
	return &cfg, nil
}

// openPrepared is open's end: it opens the store of cfg, which prepare gave.
func (f *storeFlags) openPrepared(ctx context.Context, cfg *storeConfig) (socius.Store, error) {
	st, err := cfg.open(ctx)
	if err != nil {
		// A refusal of SOCIUS_DATA's or SOCIUS_MASTER_KEY_FILE's value names it.
		return nil, envNamed(f.fs, err)
	}
	return st.store, nil
}

// missing reports whether the store is the embedded one and its data folder holds
// none yet: open (mayCreate) would make it.
func (f *storeFlags) missing() bool {
	return !isPostgres(f.store) && f.data != "" && noStore(f.data)
}

// config is the storeConfig of the flags, once they are checked.
func (f *storeFlags) config() (storeConfig, error) {
	if givenEmpty(f.fs, "store") {
		return storeConfig{}, flagError{errEmptyStore}
	}
	if err := emptyKeyFiles(f.fs); err != nil {
		return storeConfig{}, err
	}
	if f.dataGiven && f.storeFromEnv && isPostgres(f.store) {
		// An operator moving from the embedded store, with SOCIUS_STORE set for the
		// new one, would export from (or import into) PostgreSQL instead of the folder
		// the command line names: an export of no site, and nothing said.
		return storeConfig{}, badFlag("--data %s names an embedded store, but SOCIUS_STORE names PostgreSQL (%s), which the command would use instead: "+
			"give --store sqlite (or unset SOCIUS_STORE) to use the embedded store in %s, or leave --data out to use PostgreSQL", f.data, postgres.Redact(f.store), f.data)
	}
	cfg := storeConfig{spec: f.store, data: f.data, masterKeyFile: f.masterKeyFile, previousKeyFile: f.previousKeyFile, mustExist: !f.mayCreate, out: f.stderr}
	if f.lookupEnv != nil {
		cfg.masterKey, _ = f.lookupEnv("SOCIUS_MASTER_KEY")
	}
	if f.stderr != nil {
		// What a PostgreSQL store's start waits for (a lock another session holds),
		// which would otherwise leave the command silent until its deadline.
		cfg.logger, _ = newLogger(f.stderr, "text", "warn")
	}
	return cfg, nil
}

func runSite(ctx context.Context, args []string, lookupEnv func(string) (string, bool), stdout, stderr io.Writer) error {
	if err, done := noSubcommand(args, "site", "usage: socius site create|list|show|rotate-secret [flags]", stdout, stderr); done {
		return err
	}
	var sf storeFlags
	fs := newFlagSet("socius site "+args[0], stdout, stderr)
	lookupEnv = sf.register(fs, lookupEnv, stderr)
	switch args[0] {
	case "create":
		sf.mayCreate = true
		name := fs.String("name", "", "a name for the site")
		apiKey := fs.String("api-key", "", "the apiKey (generated when left out)")
		secret := secretFlags(fs, "the partner secret, standard base64 of at least 16 bytes (generated when left out)")
		if err := parseNoArgs(fs, args[1:], lookupEnv); err != nil {
			return err
		}
		if err := socius.ValidateSiteName(*name); err != nil {
			return badFlag("--name: %v", err)
		}
		if givenEmpty(fs, "api-key") {
			// "--api-key $APIKEY" with the variable unset: a site with a generated
			// apiKey, not the one a reproducible setup meant.
			return badFlag("--api-key is empty (an unset variable?): give the apiKey, or leave --api-key out to generate one")
		}
		site := &socius.Site{APIKey: *apiKey, Name: *name, CreatedAt: time.Now()}
		if site.APIKey == "" {
			site.APIKey = socius.NewAPIKey()
		} else if !socius.ValidAPIKey(site.APIKey) {
			return badFlag("--api-key %q: 1 to 128 printable characters without spaces", site.APIKey)
		}
		var err error
		if site.Secret, err = secret(ctx); err != nil {
			return err
		}
		return withStore(ctx, sf, func(st socius.Store) error {
			if err := st.CreateSite(ctx, site); err != nil {
				if errors.Is(err, socius.ErrExists) {
					return fmt.Errorf("a site with apiKey %s already exists", site.APIKey)
				}
				return err
			}
			fmt.Fprintf(stdout, "apiKey: %s\nsecret: %s\nname:   %s\n", site.APIKey, site.Secret, site.Name)
			return nil
		})
	case "list":
		if err := parseNoArgs(fs, args[1:], lookupEnv); err != nil {
			return err
		}
		return withStore(ctx, sf, func(st socius.Store) error {
			sites, err := st.Sites(ctx)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(stdout, 2, 8, 2, ' ', 0)
			fmt.Fprintln(tw, "API KEY\tNAME\tCREATED")
			for _, s := range sites {
				fmt.Fprintf(tw, "%s\t%s\t%s\n", s.APIKey, s.Name, s.CreatedAt.UTC().Format(time.RFC3339))
			}
			return tw.Flush()
		})
	case "show":
		usage := argsUsage(fs, "usage: socius site show APIKEY [--data DIR | --store URL]")
		pos, err := parseArgs(fs, args[1:], lookupEnv)
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			fmt.Fprintln(stderr, usage)
			return errUsage
		}
		if pos[0] == "" {
			return emptyArg("APIKEY")
		}
		return withStore(ctx, sf, func(st socius.Store) error {
			s, err := st.Site(ctx, pos[0])
			if errors.Is(err, socius.ErrNotFound) {
				return fmt.Errorf("no site has apiKey %s", pos[0])
			}
			if err != nil {
				return err
			}
			keys, err := st.Keys(ctx, s.APIKey)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "apiKey:  %s\nsecret:  %s\nname:    %s\ncreated: %s\nkeys:    %d\n",
				s.APIKey, s.Secret, s.Name, s.CreatedAt.UTC().Format(time.RFC3339), len(keys))
			return nil
		})
	case "rotate-secret":
		apiKey, newSecret, err := rotateArgs(ctx, fs, args[1:], lookupEnv, stderr, "site", "APIKEY")
		if err != nil {
			return err
		}
		return withStore(ctx, sf, func(st socius.Store) error {
			err := st.(*sealed.Store).RotateSiteSecret(ctx, apiKey, newSecret)
			if errors.Is(err, socius.ErrNotFound) {
				return fmt.Errorf("no site has apiKey %s", apiKey)
			}
			if err != nil {
				return fmt.Errorf("site %s: %w", apiKey, err)
			}
			fmt.Fprintf(stdout, "apiKey: %s\nsecret: %s\n", apiKey, newSecret)
			return nil
		})
	}
	fmt.Fprintf(stderr, "socius site: unknown subcommand %q (create, list, show, rotate-secret)%s\n", args[0], flagsGoAfter(args[0], "subcommand", "socius site list --data DIR"))
	return errUsage
}

func runKey(ctx context.Context, args []string, lookupEnv func(string) (string, bool), stdout, stderr io.Writer) error {
	if err, done := noSubcommand(args, "key", "usage: socius key create|list|delete|rotate-secret [flags]", stdout, stderr); done {
		return err
	}
	var sf storeFlags
	fs := newFlagSet("socius key "+args[0], stdout, stderr)
	lookupEnv = sf.register(fs, lookupEnv, stderr)
	switch args[0] {
	case "create":
		site := fs.String("site", "", "apiKey of the site the key belongs to (required)")
		methods := fs.String("methods", "", "comma-separated methods the key may call, e.g. socialize.getUserInfo (every method when the flag is left out)")
		userKey := fs.String("user-key", "", "the userKey (generated when left out)")
		secret := secretFlags(fs, "the key's secret, standard base64 of at least 16 bytes (generated when left out)")
		publicKey := fs.String("public-key", "", "PEM file with the key's RSA public key (PKIX or PKCS #1, at least 2048 bits): enables Authorization: Bearer JWT calls (none when left out)")
		if err := parseNoArgs(fs, args[1:], lookupEnv); err != nil {
			return err
		}
		if *site == "" {
			return badFlag("--site APIKEY is required")
		}
		if givenEmpty(fs, "user-key") {
			// As --api-key of site create: a generated userKey, not the one meant.
			return badFlag("--user-key is empty (an unset variable?): give the userKey, or leave --user-key out to generate one")
		}
		k := &socius.Key{UserKey: *userKey, APIKey: *site, CreatedAt: time.Now()}
		if k.UserKey == "" {
			k.UserKey = socius.NewUserKey()
		} else if !socius.ValidUserKey(k.UserKey) {
			return badFlag("--user-key %q: 1 to 128 printable characters without spaces", k.UserKey)
		}
		var err error
		if k.Secret, err = secret(ctx); err != nil {
			return err
		}
		var names []string
		for _, m := range strings.Split(*methods, ",") {
			if m = strings.TrimSpace(m); m != "" {
				names = append(names, m)
			}
		}
		if flagGiven(fs, "methods") && len(names) == 0 {
			// Empty, or only separators or spaces (--methods "$METHODS" with the
			// variable unset): not "every method", which only leaving the flag out
			// says, so that a script's slip never makes a key for every method.
			return badFlag("--methods %q names no method: give at least one, or leave the flag out for a key that may call every method", *methods)
		}
		if k.Methods, err = server.CanonicalMethods(names); err != nil {
			return badFlag("--methods: %v", err)
		}
		if len(k.Methods) == 0 {
			k.Methods = nil
		}
		if givenEmpty(fs, "public-key") {
			// "--public-key $PEM" with the variable unset: a key made without the
			// public key meant, which no bearer JWT of it would authenticate.
			return badFlag("--public-key is empty (an unset variable?): give the PEM file of the key's RSA public key, or leave --public-key out for a key that signs with its secret only")
		}
		if *publicKey != "" {
			if k.PublicKey, err = readPublicKey(*publicKey); err != nil {
				return flagError{fileError("--public-key", *publicKey, err)}
			}
		}
		return withStore(ctx, sf, func(st socius.Store) error {
			err := st.CreateKey(ctx, k)
			switch {
			case errors.Is(err, socius.ErrNotFound):
				return fmt.Errorf("no site has apiKey %s", k.APIKey)
			case errors.Is(err, socius.ErrExists):
				return fmt.Errorf("userKey %s already exists", k.UserKey)
			case err != nil:
				return err
			}
			fmt.Fprintf(stdout, "userKey: %s\nsecret:  %s\nsite:    %s\nmethods: %s\nbearer:  %s\n", k.UserKey, k.Secret, k.APIKey, methodList(k.Methods), bearer(k))
			return nil
		})
	case "list":
		site := fs.String("site", "", "list only the keys of this site (every site's when left out)")
		if err := parseNoArgs(fs, args[1:], lookupEnv); err != nil {
			return err
		}
		if givenEmpty(fs, "site") {
			// "--site $APIKEY" with the variable unset: every site's keys would be
			// listed, read as the keys of the site meant.
			return badFlag("--site is empty (an unset variable?): give the site's apiKey, or leave --site out to list the keys of every site")
		}
		return withStore(ctx, sf, func(st socius.Store) error {
			if *site != "" {
				// As key create says it: an empty table would read as "no keys yet".
				if _, err := st.Site(ctx, *site); errors.Is(err, socius.ErrNotFound) {
					return fmt.Errorf("no site has apiKey %s", *site)
				} else if err != nil {
					return err
				}
			}
			keys, err := st.Keys(ctx, *site)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(stdout, 2, 8, 2, ' ', 0)
			fmt.Fprintln(tw, "USER KEY\tSITE\tMETHODS\tBEARER\tCREATED")
			for _, k := range keys {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", k.UserKey, k.APIKey, methodList(k.Methods), bearer(k), k.CreatedAt.UTC().Format(time.RFC3339))
			}
			return tw.Flush()
		})
	case "delete":
		usage := argsUsage(fs, "usage: socius key delete USERKEY [--data DIR | --store URL]")
		pos, err := parseArgs(fs, args[1:], lookupEnv)
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			fmt.Fprintln(stderr, usage)
			return errUsage
		}
		if pos[0] == "" {
			return emptyArg("USERKEY")
		}
		return withStore(ctx, sf, func(st socius.Store) error {
			err := st.DeleteKey(ctx, pos[0])
			if errors.Is(err, socius.ErrNotFound) {
				return fmt.Errorf("no key has userKey %s", pos[0])
			}
			if err == nil {
				fmt.Fprintf(stdout, "deleted userKey %s\n", pos[0])
			}
			return err
		})
	case "rotate-secret":
		userKey, newSecret, err := rotateArgs(ctx, fs, args[1:], lookupEnv, stderr, "key", "USERKEY")
		if err != nil {
			return err
		}
		return withStore(ctx, sf, func(st socius.Store) error {
			err := st.(*sealed.Store).RotateKeySecret(ctx, userKey, newSecret)
			if errors.Is(err, socius.ErrNotFound) {
				return fmt.Errorf("no key has userKey %s (deleted meanwhile, or never made)", userKey)
			}
			if err != nil {
				return fmt.Errorf("key %s: %w", userKey, err)
			}
			fmt.Fprintf(stdout, "userKey: %s\nsecret:  %s\n", userKey, newSecret)
			return nil
		})
	}
	fmt.Fprintf(stderr, "socius key: unknown subcommand %q (create, list, delete, rotate-secret)%s\n", args[0], flagsGoAfter(args[0], "subcommand", "socius key list --site APIKEY"))
	return errUsage
}

// rotateArgs reads the arguments of `site|key rotate-secret ID [--secret S]`: the ID,
// and the new secret, validated when given, else generated.
func rotateArgs(ctx context.Context, fs *flag.FlagSet, args []string, lookupEnv func(string) (string, bool), stderr io.Writer, noun, id string) (string, string, error) {
	given := secretFlags(fs, "the new secret, standard base64 of at least 16 bytes (generated when left out)")
	usage := argsUsage(fs, fmt.Sprintf("usage: socius %s rotate-secret %s [--secret S | --secret-file FILE] [--data DIR | --store URL]", noun, id))
	pos, err := parseArgs(fs, args, lookupEnv)
	if err != nil {
		return "", "", err
	}
	if len(pos) != 1 {
		fmt.Fprintln(stderr, usage)
		return "", "", errUsage
	}
	if pos[0] == "" {
		return "", "", emptyArg(id)
	}
	secret, err := given(ctx)
	if err != nil {
		return "", "", err
	}
	return pos[0], secret, nil
}

// emptyArg refuses a command's argument given empty (what in its usage), as "$KEY"
// with the variable unset gives: "no key has userKey " said nothing of it.
func emptyArg(what string) error {
	return badFlag("%s is empty (an unset variable?): give it as the argument", what)
}

// secretFlags registers --secret and --secret-file on fs, and returns what reads the
// secret they give once fs is parsed (secretOrNew): a command line is visible to every
// user of the host (ps, /proc), and lands in the shell's history; a file is not.
func secretFlags(fs *flag.FlagSet, help string) func(context.Context) (string, error) {
	value := fs.String("secret", "", help)
	file := fs.String("secret-file", "", "read the secret from this file (- for standard input) rather than the command line, which others on the host can see")
	return func(ctx context.Context) (string, error) {
		if givenEmpty(fs, "secret") {
			// "--secret $SECRET" with the variable unset: a new secret would be
			// generated, not the one meant (the environment is not read for it).
			return "", badFlag("--secret is empty (an unset variable?): give the secret, or leave --secret out to generate one")
		}
		if givenEmpty(fs, "secret-file") {
			// "--secret-file $FILE" with the variable unset: as for --secret, a new
			// secret would be generated in place of the one the file holds.
			return "", badFlag("--secret-file is empty (an unset variable?): give the file that holds the secret (- for standard input), or leave --secret-file out to generate one")
		}
		if *file == "" {
			return secretOrNew(*value)
		}
		if *value != "" {
			return "", badFlag("--secret and --secret-file: give the secret once")
		}
		r, err := openInput(ctx, "--secret-file", *file)
		if err != nil {
			return "", err
		}
		defer r.Close()
		b, err := io.ReadAll(io.LimitReader(r, maxSecretFile+1))
		if err != nil && ctx.Err() != nil {
			return "", fmt.Errorf("stopped by a signal while reading --secret-file %s: nothing was changed", *file)
		}
		if err != nil {
			return "", flagError{fileError("--secret-file", *file, err)}
		}
		if len(b) > maxSecretFile {
			return "", badFlag("--secret-file %s: longer than %d bytes; a secret is base64 of some tens of bytes", *file, maxSecretFile)
		}
		if strings.TrimSpace(string(b)) == "" {
			return "", badFlag("--secret-file %s: empty", *file)
		}
		return secretOrNew(string(b))
	}
}

// maxSecretFile bounds what --secret-file reads.
const maxSecretFile = 4 << 10

// secretOrNew returns the secret given with --secret, once validated and without the
// whitespace decoding skips (socius.CompactSecret: what a client sends as a plain
// secret), or a new one when none was given.
func secretOrNew(given string) (string, error) {
	if given == "" {
		return socius.NewSecret(), nil
	}
	if err := socius.ValidateSecret(given); err != nil {
		return "", badFlag("--secret: %v", err)
	}
	return socius.CompactSecret(given), nil
}

// readPublicKey reads a PEM RSA public key file and returns the key as stored: PKIX PEM.
// It reads no more than socius.ParseRSAPublicKey takes.
func readPublicKey(path string) (string, error) {
	b, err := readFileAtMost(path, socius.MaxRSAPublicKeyPEM, "it must hold an RSA public key in PEM")
	if err != nil {
		return "", err
	}
	return socius.CanonicalRSAPublicKey(string(b))
}

// bearer says whether a key can call with a bearer JWT.
func bearer(k *socius.Key) string {
	if k.PublicKey == "" {
		return "no"
	}
	return "RS256"
}

func methodList(m []string) string {
	if len(m) == 0 {
		return "all"
	}
	return strings.Join(m, ",")
}

// withStore opens the store, runs f and closes the store.
func withStore(ctx context.Context, sf storeFlags, f func(socius.Store) error) error {
	st, err := sf.open(ctx)
	if err != nil {
		return err
	}
	err = f(st)
	if cerr := st.Close(); err == nil {
		err = cerr
	}
	return err
}
