package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/socius/socius/postgres"
	"github.com/socius/socius/sqlite"
)

// checkBackup checks a backup before it is renamed into place; tests replace it, to
// make a copy fail its check.
var checkBackup = sqlite.CheckCopy

const backupUsage = "usage: socius backup --out FILE [flags]"

// runBackup copies the embedded store, which a server may be serving and writing to,
// into a file (see sqlite.Backup): whole and checked, or not at all.
func runBackup(ctx context.Context, args []string, lookupEnv func(string) (string, bool), stdout, stderr io.Writer) (err error) {
	fs := newFlagSet("socius backup", stdout, stderr)
	defer func() { err = envNamed(fs, err) }() // a refusal of SOCIUS_STORE's value names it
	argsUsage(fs, backupUsage)
	data := fs.String("data", "socius-data", "data folder of the embedded store")
	store := fs.String("store", "", "the store: left out (or \"sqlite\") for the embedded SQLite file in --data; a PostgreSQL URL is refused (a usage error): back that store up with pg_dump")
	out := fs.String("out", "", "the file to write the copy to (required): a file there before is replaced only by a finished, checked copy")
	// Only the store's variables, as for the admin commands: SOCIUS_OUT is no one's.
	// The environment is asked only for the flags the command line did not set, so
	// what it gave tells where --data and --store came from.
	env := onlyEnv(lookupEnv, "data", "store")
	fromEnv := map[string]bool{}
	if err := parseNoArgs(fs, args, func(name string) (string, bool) {
		v, ok := env(name)
		fromEnv[name] = ok && v != ""
		return v, ok
	}); err != nil {
		return err
	}
	if givenEmpty(fs, "store") {
		return flagError{errEmptyStore}
	}
	if err := checkStore(*store); err != nil {
		return flagError{err}
	}
	if isPostgres(*store) && fromEnv[envName("store")] && flagGiven(fs, "data") && !fromEnv[envName("data")] {
		// An operator moving from the embedded store, with SOCIUS_STORE set for the
		// new one, backs up the folder the command line names: it is that store.
		return badFlag("--data %s names an embedded store, but SOCIUS_STORE names PostgreSQL (%s): give --store sqlite (or unset SOCIUS_STORE) to back up the embedded store in %s; back up a PostgreSQL store with pg_dump (see docs/postgresql.md)",
			*data, postgres.Redact(*store), *data)
	}
	if isPostgres(*store) {
		return badFlag("--store: socius backup copies the embedded SQLite store; back up a PostgreSQL store with pg_dump (see docs/postgresql.md)")
	}
	switch *out {
	case "":
		fmt.Fprintf(stderr, "socius backup: --out FILE is required\n%s\n", backupUsage)
		return errUsage
	case "-":
		return badFlag("--out -: a backup is a SQLite database, which SQLite writes to a file, not to standard output: give a file")
	}
	if *data == "" {
		return flagError{errEmptyData}
	}
	src := filepath.Join(*data, "socius.db")
	switch fi, err := os.Stat(src); {
	case errors.Is(err, os.ErrNotExist):
		return badFlag("no store at %s: check --data (or SOCIUS_DATA)", src)
	case errors.Is(err, syscall.ENOTDIR):
		return badFlag("no store at %s: --data %s is not a folder: check --data (or SOCIUS_DATA)", src, *data)
	case err != nil:
		// A folder on the way that this user may not search: os.Stat's error alone
		// ("stat DIR/socius.db: permission denied") names neither the flag nor the user.
		return fmt.Errorf("%w: check --data (or SOCIUS_DATA), and run the backup as the user the server runs as", fileError("the store", src, err))
	case !fi.Mode().IsRegular():
		return badFlag("no store at %s: it is not a file: check --data (or SOCIUS_DATA)", src)
	}
	target, err := backupTarget(*out, *data)
	if err != nil {
		return err
	}

	start := time.Now()
	info, renamed, err := backup(ctx, src, target)
	switch {
	case renamed && err != nil:
		return fmt.Errorf("%s is the backup, but its folder could not be synced: a power loss may still undo the rename: %w", *out, err)
	case err != nil && ctx.Err() != nil:
		return fmt.Errorf("backup stopped by a signal: %s is left as it was", *out)
	case err != nil:
		return fmt.Errorf("backup failed, %s is left as it was: %w", *out, err)
	}
	took := time.Since(start)
	var size int64
	if fi, err := os.Stat(target); err == nil {
		size = fi.Size()
	}
	fmt.Fprintf(stdout, "backup: %s\nfrom:   %s\nsize:   %s\nschema: version %d\nsites:  %d\nusers:  %d\ntook:   %s\n",
		*out, src, sizeText(size), info.Schema, info.Sites, info.Users, took.Round(time.Millisecond))
	key := filepath.Join(*data, "master.key")
	if _, err := os.Stat(key); err == nil {
		key += ", unless the server is given --master-key-file or SOCIUS_MASTER_KEY"
	} else {
		key = "the one the server is given with --master-key-file or SOCIUS_MASTER_KEY"
	}
	fmt.Fprintf(stdout, "The secrets in the copy are encrypted with the store's master key (%s), which the copy does not hold: a restore needs the same key. Back it up apart from the copy.\n", key)
	return nil
}

// backupTarget checks --out before anything is copied, and returns the file the copy
// is to be renamed onto: out, its symbolic links followed. A folder that cannot take a
// new file, a name that is no regular file (a folder, a pipe, a device: the rename
// would replace it), and a file in the data folder itself are usage errors.
func backupTarget(out, data string) (string, error) {
	if err := checkOutFolder(out); err != nil {
		return "", flagError{fmt.Errorf("--out: %w", err)}
	}
	target := followLinks(out)
	if fi, err := os.Stat(target); err == nil && !fi.Mode().IsRegular() {
		return "", badFlag("--out %s: not a regular file: the backup replaces the file it names", out)
	}
	// Beside the store, the copy could take the name of one of the files the server
	// uses (socius.db, its WAL, master.key), and would be lost with them.
	outDir, err1 := os.Stat(filepath.Dir(target))
	dataDir, err2 := os.Stat(data)
	if err1 == nil && err2 == nil && os.SameFile(outDir, dataDir) {
		return "", badFlag("--out %s: in the data folder %s: put the backup in another folder, where it cannot replace one of the store's files and is not lost with them", out, data)
	}
	return target, nil
}

// backup copies the database src into target, whole or not at all: into a temporary
// file in target's folder, synced, checked (checkBackup), renamed onto target, and the
// folder synced. On a failure before the rename nothing of the copy is left, and target
// is as it was; renamed says that the copy is in place, the folder's sync alone failed.
func backup(ctx context.Context, src, target string) (info sqlite.CopyInfo, renamed bool, err error) {
	dir := filepath.Dir(target)
	f, err := os.CreateTemp(dir, ".socius-backup-*") // empty, as VACUUM INTO wants it; mode 0600
	if err != nil {
		return info, false, cannotCreate(target, err)
	}
	tmp := f.Name()
	defer func() {
		if !renamed {
			// The files SQLite may have made beside the copy as well.
			for _, p := range []string{tmp, tmp + "-journal", tmp + "-wal", tmp + "-shm"} {
				os.Remove(p)
			}
		}
	}()
	if err := f.Close(); err != nil {
		return info, false, err
	}
	schema, err := sqlite.Backup(ctx, src, tmp)
	if err != nil {
		return info, false, err
	}
	if err := syncFile(tmp); err != nil {
		return info, false, fmt.Errorf("cannot write %s: %w", target, err)
	}
	info, err = checkBackup(ctx, tmp)
	if err == nil && info.Schema != schema {
		err = fmt.Errorf("the copy's schema version is %d, the store's %d", info.Schema, schema)
	}
	if err != nil {
		return info, false, fmt.Errorf("the copy failed its check: %w", err)
	}
	if err := os.Rename(tmp, target); err != nil {
		var le *os.LinkError
		if errors.As(err, &le) {
			err = le.Err
		}
		return info, false, fmt.Errorf("cannot replace %s: %w", target, err)
	}
	return info, true, syncDir(dir)
}

// syncFile flushes the file at path to the disk.
func syncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// sizeText is a size in bytes, and in the largest unit under which it is at least 1.
func sizeText(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d bytes", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 3; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB (%d bytes)", float64(n)/float64(div), "KMGT"[exp], n)
}
