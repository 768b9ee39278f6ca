package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// errLocked is what lockFile reports when another process holds the lock.
var errLocked = errors.New("locked by another process")

// A dataLock is serve's claim on a data folder with the embedded store: one process
// serves from it at a time. The store itself would take a second server's writes (SQLite
// locks per transaction), but the nonces of signed requests live in the serving
// process's memory, so two servers would each accept a request the other had seen.
// The admin commands do not take it: they may run beside the server.
type dataLock struct {
	f    *os.File
	made bool // the file was not there before this lock: no serve had run on the folder
}

// dataLockFile is the lock file of a served data folder. It stays when serve exits:
// its presence says that a serve ran there (restoreNonces). A start that fails removes
// it again when it made it (unmake): that start served nothing.
const dataLockFile = "serve.lock"

// makeDataDir makes the data folder dir, and the folders above it, when missing. One
// that cannot be made is said as the data folder, with the flag that names it: Go's
// error alone ("mkdir DIR: permission denied") does not say what the folder is for.
func makeDataDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("the data folder %s (--data) cannot be made: %w; make it, writable by the user Socius runs as (uid %d), or give another --data", dir, err, os.Geteuid())
	}
	return nil
}

// lockDataDir takes the lock file serve.lock in dir, writing this process's id into
// it; a folder already served by a running process is an error naming that process.
// The operating system drops the lock when the process ends, however it ends.
func lockDataDir(dir string) (*dataLock, error) {
	if err := makeDataDir(dir); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, dataLockFile)
	// Made here, or opened as it is: whether it was there is told by the same call
	// that makes it, so that two starts at once cannot both take the folder for new.
	made := true
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		made = false
		f, err = os.OpenFile(path, os.O_RDWR, 0o600)
	}
	if errors.Is(err, fs.ErrPermission) {
		// The first file serve writes in the folder: its error alone ("open
		// DIR/serve.lock: permission denied") does not say that the whole folder must
		// be writable, nor by whom.
		return nil, fmt.Errorf("%w: the data folder %s and its files must be writable by the user Socius runs as (uid %d), who keeps serve.lock, socius.db and its WAL there", err, dir, os.Geteuid())
	}
	if errors.Is(err, syscall.EROFS) {
		// Said "open DIR/serve.lock: read-only file system" alone, which names a file
		// the operator never made and no way out.
		return nil, fmt.Errorf("%w: the data folder %s is on a file system mounted read-only, and socius serve keeps serve.lock, socius.db and its WAL there: remount it read-write, or give a --data on a file system that can be written (socius backup can still copy the store from there)", err, dir)
	}
	if err != nil {
		return nil, err
	}
	if err := lockFile(f); err != nil {
		holder := ""
		if b, rerr := os.ReadFile(path); rerr == nil {
			if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); perr == nil {
				holder = fmt.Sprintf(" (process %d)", pid)
			}
		}
		f.Close()
		if errors.Is(err, errLocked) {
			return nil, fmt.Errorf("another socius serve is serving the data folder %s%s: the embedded store is served by one process at a time (each would keep its own nonces, so a request replayed to the other would be accepted); stop it, or give this one another --data", dir, holder)
		}
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &dataLock{f: f, made: made}, nil
}

// unmake removes the lock file this lock made, and gives the folder up, for a start
// that failed before serving: the folder stays one where no serve ran, whose next start
// has no nonces to miss (a file left said the opposite, and that start refused the
// signed requests timed before it for a window, on a store that had never served a
// call). It removes the file while still holding it where the system lets it (a start
// beside it fails on the lock until then), and after closing it where it does not
// (Windows).
func (l *dataLock) unmake() {
	path := l.f.Name()
	if err := os.Remove(path); err != nil {
		l.release()
		os.Remove(path)
	}
	l.release()
}

// release gives the folder up (closing the file drops the lock).
func (l *dataLock) release() {
	if l != nil && l.f != nil {
		l.f.Close()
		l.f = nil
	}
}

// storeGone refuses a data folder that a serve ran on (its serve.lock was there) whose
// socius.db is missing or empty: deleted or moved away (an rm, a restore that went
// wrong), or, as SQLite makes one at the path when it opens it again, replaced by an
// empty file while the server ran. serve would otherwise make a new, empty store there
// and serve it with no word said: every user gone, a new demo site, or the site of
// --site-api-key made again with none of its users.
func storeGone(dir string) error {
	path := filepath.Join(dir, "socius.db")
	lock := filepath.Join(dir, dataLockFile)
	fi, err := os.Stat(path)
	what := ""
	switch {
	case errors.Is(err, fs.ErrNotExist):
		what = "is not there"
	case err == nil && fi.Mode().IsRegular() && fi.Size() == 0:
		what = "is empty"
	default:
		return nil // the store's open says what is wrong with anything else
	}
	return fmt.Errorf("the data folder %s was served before (%s is there), but %s %s: the store was deleted, moved away or emptied, and serve would start a new, empty one in its place; "+
		"put socius.db back, with its socius.db-wal if it has one (or restore a backup: see Backups in docs/operations.md), or, to start again with no users, remove %s", dir, lock, path, what, lock)
}
