package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	"github.com/socius/socius/nonce"
	"github.com/socius/socius/server"
)

// The embedded store's nonces are this node's memory (nonce.Cache), so a restart would
// forget those of the timestamp window and a request of the last two minutes could be
// replayed. serve saves them when it stops, once its calls are done, into the data
// folder's noncesFile, and loads them when it starts, removing the file first. A start
// that finds none in a store that existed before (the node was killed, crashed, lost
// power, or ran a build that did not save them) refuses the signed requests timed
// before it (server.Config.NotBefore): their nonces are lost. A folder where no serve
// ever ran (no serve.lock: a new one, one the admin commands made, or one where serve
// only failed to start, which removes the serve.lock it made) has none to lose.
const noncesFile = "nonces"

// restoreNonces loads the nonces of the last shutdown into a new cache for m.Nonces, or
// sets m.notBefore when they are lost. fresh: no serve ran on the data folder before.
func (m *Main) restoreNonces(fresh bool) {
	if _, ok := m.Nonces.(*nonce.Cache); !ok || m.tempData != "" {
		return
	}
	now := m.Clock.Now()
	path := filepath.Join(m.DataDir, noncesFile)
	cache, n, unsynced, err := loadNonces(path, now, m.ClockSkew)
	switch {
	case err == nil:
		m.Nonces = cache
		m.Logger.Info(fmt.Sprintf("nonces: %d of the last shutdown remembered", n))
		var se syncError
		if errors.As(unsynced, &se) {
			cost := fmt.Sprintf("the file was emptied before it was removed, so a start after such a loss that finds it again refuses the signed requests timed before it for %v, as after a stop that was not clean", m.ClockSkew)
			if !se.emptied {
				cost = "the file could not be emptied before it was removed (its user may not write it), so a start after such a loss may find it again, whole, and take it for the nonces of the stop before that start: the signed requests of the last window before the loss could then be replayed"
			}
			m.Logger.Warn(fmt.Sprintf("nonces: %s removed, but the folder could not be synced (%v), so the removal may not outlive a power loss; %s. "+
				"The data folder %s must stay readable and writable by the user Socius runs as (uid %d)", path, se.err, cost, m.DataDir, os.Geteuid()))
		}
		return
	case errors.Is(err, fs.ErrNotExist) && fresh:
		return
	case errors.Is(err, fs.ErrNotExist):
		m.Logger.Warn(fmt.Sprintf("nonces: none saved by the last shutdown (not a clean one): signed requests timed before now are refused for the next %v, as their nonces are lost", m.ClockSkew))
	default:
		m.Logger.Warn(fmt.Sprintf("nonces: %v: signed requests timed before now are refused for the next %v", err, m.ClockSkew))
	}
	m.notBefore = now
}

// loadNonces reads the cache saved at path and removes the file, for good, before it
// returns the cache: a later start that found it again, after a crash, would take it
// for the nonces of that crash. The file is emptied and synced before it is removed,
// and its folder synced after: a removal that a power loss undoes leaves an empty file,
// which the next start cannot take for anyone's nonces. unsynced is the error of that
// last sync alone (a folder its user may write but not read, a failing disk): the
// cache is good, and the emptied file guards the next start.
func loadNonces(path string, now time.Time, window time.Duration) (cache *nonce.Cache, n int, unsynced, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, nil, err
	}
	fi, err := f.Stat()
	if err == nil && fi.Size() == 0 {
		f.Close()
		if rerr := removeEmptied(path); rerr != nil && !isSyncError(rerr) {
			return nil, 0, nil, fmt.Errorf("remove %s: %w", path, rerr)
		}
		return nil, 0, nil, fmt.Errorf("%s is empty: most likely a start emptied it as it loaded it, and the machine lost power before the file's removal reached the disk, so the nonces of the stop after that start are lost", path)
	}
	if err == nil {
		cache, n, err = nonce.Load(f, 0, now, window)
	}
	f.Close()
	var se syncError
	if rerr := removeEmptied(path); errors.As(rerr, &se) {
		unsynced = se
	} else if rerr != nil {
		return nil, 0, nil, fmt.Errorf("remove %s: %w", path, rerr)
	}
	if err != nil {
		return nil, 0, nil, fmt.Errorf("%s: %w", path, err)
	}
	// The file's bytes, read whole to check its checksum, are garbage now (12 bytes a
	// nonce, and as much again of the buffers reading grew through): a server that has
	// just started collects late, and would hold them until then.
	debug.FreeOSMemory()
	return cache, n, unsynced, nil
}

// A syncError is the error of a folder's sync after a file in it was removed: the
// removal is done, but may not outlive a power loss.
type syncError struct {
	err     error
	emptied bool // the file was emptied, and synced, before it was removed
}

func (e syncError) Error() string { return "sync the folder: " + e.err.Error() }
func (e syncError) Unwrap() error { return e.err }

// isSyncError tells whether err is a syncError: the removal before it worked.
func isSyncError(err error) bool {
	var se syncError
	return errors.As(err, &se)
}

// removeEmptied empties the file at path and syncs it, then removes it and syncs its
// folder (a failure of that last sync alone is a syncError). A file that cannot be
// opened for writing (one its user may only read) is removed as it is.
func removeEmptied(path string) error {
	emptied := false
	if f, err := os.OpenFile(path, os.O_WRONLY, 0); err == nil {
		emptied = f.Truncate(0) == nil && f.Sync() == nil
		f.Close()
	}
	if err := os.Remove(path); err != nil {
		return err
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return syncError{err, emptied}
	}
	return nil
}

// saveNonces writes this node's nonces into the data folder for the next start, when
// every call has ended (clean: the servers drained). After calls cut off, it writes
// none: a call still running could record a nonce after the save, and the next start
// then refuses the requests timed before it instead. A save that fails (the data
// folder made read-only while serving, a full disk) is said in one warning and fails
// nothing else: the next start refuses those requests, as after a stop that was not
// clean, and nothing stored is lost, so a stop after hours of serving is no failure
// for it. A start that failed on a folder no serve ran on saves none either: it gave up
// the folder's lock (m.dataLock nil) to leave the folder as it found it (Run).
func (m *Main) saveNonces(clean bool) {
	cache, ok := m.Nonces.(*nonce.Cache)
	if !ok || m.tempData != "" || m.DataDir == "" || m.dataLock == nil {
		return
	}
	if !clean {
		m.Logger.Warn("nonces: not saved, as calls were cut off: the next start refuses the signed requests timed before it for a window")
		return
	}
	now := m.Clock.Now()
	if lostUntil := m.notBefore.Add(server.TakenFor(m.ClockSkew)); !m.notBefore.IsZero() && now.Before(lostUntil) {
		// This process started without the nonces of the requests before it, and a
		// request of those could still be taken: a save would tell the next start that
		// nothing was lost. Without one, the next start refuses the requests timed
		// before it, these among them.
		m.Logger.Warn(fmt.Sprintf("nonces: not saved, as those of the requests before this server's start are lost and some could still be replayed until %s: the next start refuses the signed requests timed before it for a window", lostUntil.UTC().Format(time.RFC3339)))
		return
	}
	var n int
	path := filepath.Join(m.DataDir, noncesFile)
	err := writeOut(path, func(w io.Writer) error {
		var err error
		n, err = cache.Save(w, now, m.ClockSkew)
		return err
	})
	// In place, and whole, but its folder not synced (one its user may write but not
	// read, a failing disk): writeOut synced the file's bytes before it renamed it
	// there, so the next start may load it; only the rename is not durable: after a
	// power loss the next start may find no file, and then refuses those requests,
	// never a part of one.
	var unsynced *folderNotSyncedError
	if errors.As(err, &unsynced) {
		m.Logger.Warn(fmt.Sprintf("nonces: %d saved for the next start in %s, but the folder could not be synced (%v): the next start loads them, unless the machine loses power before the system writes the folder out; "+
			"then that start finds none and refuses the signed requests timed before it for %v, as after a stop that was not clean", n, path, unsynced.err, m.ClockSkew))
		return
	}
	if err != nil {
		m.Logger.Warn(fmt.Sprintf("nonces: not saved: %v: the next start refuses the signed requests timed before it for %v, as after a stop that was not clean; nothing stored is lost. "+
			"The data folder %s must stay writable by the user Socius runs as (uid %d)", err, m.ClockSkew, m.DataDir, os.Geteuid()))
		return
	}
	m.Logger.Info(fmt.Sprintf("nonces: %d saved for the next start", n))
}

// syncDir flushes a folder's entries (a file created, renamed or removed in it).
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// checkEmbeddedLeft, on PostgreSQL, looks in the data folder for what the embedded
// store left there: a server moved to PostgreSQL with the --data it had (to keep its
// TLS certificate) serves none of socius.db's sites, keys and users, which move by
// export and import (docs/postgresql.md, "Moving from the embedded store"), so it says
// so; and the nonces the embedded server saved at its stop are in no PostgreSQL table,
// so a signed request it took in its last window could be taken once more here. When
// that stop was less than a window ago, or is not known (it saved no nonces), this
// start refuses the signed requests timed before it, as a start that lost its nonces
// does (m.notBefore).
func (m *Main) checkEmbeddedLeft() {
	if m.DataDir == "" || m.tempData != "" {
		return
	}
	db := filepath.Join(m.DataDir, "socius.db")
	if _, err := os.Stat(db); err != nil {
		return
	}
	m.Logger.Warn(fmt.Sprintf("the data folder %s holds an embedded store (%s), which this server does not serve: it serves PostgreSQL (--store). "+
		"Move that store's sites, keys and users with socius user export --with-site and socius user import (docs/postgresql.md, Moving from the embedded store), then move %s out of the folder", m.DataDir, db, db))
	now := m.Clock.Now()
	fi, err := os.Stat(filepath.Join(m.DataDir, noncesFile))
	switch {
	case err == nil:
		if stopped := fi.ModTime(); now.Sub(stopped) < server.TakenFor(m.ClockSkew) {
			m.notBefore = now
			m.Logger.Warn(fmt.Sprintf("nonces: the embedded server of %s stopped at %s, less than a window ago, and the nonces of its last signed requests are not in PostgreSQL: signed requests timed before now are refused for the next %v, so that none of those can be replayed here",
				m.DataDir, stopped.UTC().Format(time.RFC3339), server.TakenFor(m.ClockSkew)))
		}
	case errors.Is(err, fs.ErrNotExist):
		if _, err := os.Stat(filepath.Join(m.DataDir, dataLockFile)); err != nil {
			return // no embedded server ran there: it took no request
		}
		// An embedded server ran there and saved no nonces (killed, crashed, or calls
		// cut off): when it stopped is not known, so this start refuses as the
		// embedded store's next start would.
		m.notBefore = now
		m.Logger.Warn(fmt.Sprintf("nonces: the embedded server of %s saved none at its last stop (not a clean one), and the nonces of its last signed requests are not in PostgreSQL: signed requests timed before now are refused for the next %v, so that none of those can be replayed here; "+
			"this is said at every start until %s is moved out of the folder", m.DataDir, server.TakenFor(m.ClockSkew), filepath.Join(m.DataDir, "socius.db")))
	}
}
