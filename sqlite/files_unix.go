//go:build unix

package sqlite

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// writeAccess is the system's answer to whether this process may write the file at
// path: 0, or the error number it would refuse a write with (EROFS, EPERM for an
// immutable file, EACCES).
func writeAccess(path string) syscall.Errno {
	var errno syscall.Errno
	errors.As(unix.Access(path, unix.W_OK), &errno)
	return errno
}

// unwritableAtOpen says, once Open could open the database file for writing but SQLite
// still could not write the database, which of the other files the store needs cannot
// be written, and what to do; nil when they all can. SQLite itself says only "attempt
// to write a readonly database", from the first statement that writes (which made a
// store whose WAL was left behind read-only, by a command run as root say, look like a
// failed migration). Besides socius.db, SQLite writes the WAL (socius.db-wal) and the
// WAL-index (socius.db-shm), and creates either that is missing beside socius.db, in
// its folder. Open asks before SQLite opens anything, and says so only if SQLite then
// cannot write: SQLite may replace an empty WAL or WAL-index that it could not write
// (deleting it needs only the folder's permission), after which the cause is gone.
func unwritableAtOpen(path string) error {
	base := filepath.Base(path)
	missing := false
	for _, side := range []string{path + "-wal", path + "-shm"} {
		fi, err := os.Stat(side)
		if errors.Is(err, fs.ErrNotExist) {
			missing = true
			continue
		}
		if err != nil {
			continue
		}
		errno := writeAccess(side)
		if errno == 0 {
			continue
		}
		err = fmt.Errorf("%s cannot be written: %w (%s; Socius runs as %s): %s",
			side, errno, ownedBy(fi), runningAs(), letWrite(side, fi, errno))
		if side == path+"-wal" {
			err = fmt.Errorf("%w; do not delete it: it may hold writes not yet copied into %s", err, base)
		}
		return err
	}
	if !missing {
		return nil
	}
	dir := filepath.Dir(path)
	fi, err := os.Stat(dir)
	if err != nil {
		return nil
	}
	if errno := writeAccess(dir); errno != 0 {
		return fmt.Errorf("the folder %s cannot be written: %w (%s; Socius runs as %s, and must create %s-wal and %s-shm beside %s): %s",
			dir, errno, ownedBy(fi), runningAs(), base, base, base, letWrite(dir, fi, errno))
	}
	return nil
}

// unwritableDatabase says, when the database file at path could not be opened for
// reading and writing (err), which file or folder this process may not write, who owns
// it and what to do, as unwritableAtOpen says it of the WAL and the WAL-index: the file,
// or its folder when the file is not there to open (it is created there). Any other
// failure is err as it is.
func unwritableDatabase(path string, err error) error {
	var errno syscall.Errno
	if !errors.As(err, &errno) || errno != syscall.EACCES && errno != syscall.EPERM && errno != syscall.EROFS {
		return err
	}
	fi, statErr := os.Stat(path)
	if errors.Is(statErr, fs.ErrNotExist) {
		dir := filepath.Dir(path)
		if fi, statErr = os.Stat(dir); statErr != nil {
			return err
		}
		base := filepath.Base(path)
		return fmt.Errorf("the folder %s cannot be written: %w (%s; Socius runs as %s, and must create %s, %s-wal and %s-shm there): %s",
			dir, errno, ownedBy(fi), runningAs(), base, base, base, letWrite(dir, fi, errno))
	}
	if statErr != nil {
		return err
	}
	return fmt.Errorf("%s cannot be written: %w (%s; Socius runs as %s): %s",
		path, errno, ownedBy(fi), runningAs(), letWrite(path, fi, errno))
}

// ownedBy says who owns the file fi describes, and its mode.
func ownedBy(fi os.FileInfo) string {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return "mode " + fi.Mode().String()
	}
	return fmt.Sprintf("owned by %s, mode %s", userName(int(st.Uid)), fi.Mode().String())
}

// runningAs names the user this process runs as.
func runningAs() string {
	return userName(os.Geteuid())
}

// userName is the name of the user uid, or "uid N" when the system has none.
func userName(uid int) string {
	if name := lookupUser(uid); name != "" {
		return name
	}
	return "uid " + strconv.Itoa(uid)
}

// chownUser is this process's user as chown takes it: its name, else its number.
func chownUser() string {
	if name := lookupUser(os.Geteuid()); name != "" {
		return name
	}
	return strconv.Itoa(os.Geteuid())
}

// lookupUser is the name of the user uid, or "".
func lookupUser(uid int) string {
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		return u.Username
	}
	return ""
}

// letWrite is the command that would let this process write path, refused with errno:
// the immutable flag taken off, the file given to this process's user, or the owner's
// write permission added.
func letWrite(path string, fi os.FileInfo, errno syscall.Errno) string {
	if errno == syscall.EPERM {
		return "it may be immutable (lsattr); as root: chattr -i " + path
	}
	if errno == syscall.EROFS {
		return "its file system is mounted read-only"
	}
	chmod := ""
	if fi.Mode().Perm()&0o200 == 0 {
		chmod = "chmod u+w " + path
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		cmd := "give it to that user: chown " + chownUser() + " " + path
		if chmod != "" {
			cmd += " && " + chmod
		}
		return cmd
	}
	if chmod == "" { // the owner may write it; something else refuses (an ACL, a mount)
		return "let that user write it"
	}
	return "let that user write it: " + chmod
}

// readOnlyCopy says, before a backup opens the database at path, whether SQLite could
// read it without writing anything beside it; nil when it can. A process that may not
// write socius.db (a backup operator's account, which may read the data folder) gets
// it opened read-only, and SQLite reads a WAL database read-only only through its WAL
// and WAL-index, socius.db-wal and socius.db-shm, which must then be there and
// readable: a server serving the store keeps them, and removes them when it stops.
// Without them SQLite would have to create them, which it cannot in a folder that
// process may not write, and should not in one it may (they would be that process's,
// and the next serve could not write them).
//
// The exception is a store on a file system mounted read-only (a snapshot mounted to
// be backed up, a volume the kernel remounted read-only after an error) with no WAL
// beside it: no server can serve it there, nothing can change it, and socius.db holds
// the whole store. SQLite would refuse to open it (it can make no WAL-index); it is read
// as immutable instead, and immutable is then true. With a WAL there (the server
// stopped without removing it), SQLite reads the WAL through the WAL-index as for a
// reader beside a server, both of which must then be there.
func readOnlyCopy(path string) (immutable bool, err error) {
	errno := writeAccess(path)
	if errno == 0 {
		return false, nil
	}
	if _, err := os.Stat(path + "-wal"); errno == syscall.EROFS && errors.Is(err, fs.ErrNotExist) {
		return true, nil
	}
	base := filepath.Base(path)
	for _, side := range []string{path + "-wal", path + "-shm"} {
		_, err := os.Stat(side)
		if errors.Is(err, fs.ErrNotExist) {
			return false, fmt.Errorf("%s cannot be written by this user (%s), and no server serves it (%s is not there): "+
				"SQLite reads a store it may not write only beside a server, whose %s-wal and %s-shm it reads; "+
				"run the backup while the server serves the store, or as the user the server runs as (%s owns %s)",
				path, runningAs(), side, base, base, fileOwner(path), base)
		}
		if errno := readAccess(side); errno != 0 {
			return false, fmt.Errorf("%s cannot be read: %w (this user is %s): SQLite reads a store it may not write through its %s-wal and %s-shm, "+
				"which this user must be able to read, as %s", side, errno, runningAs(), base, base, base)
		}
	}
	return false, nil
}

// serverStopped says, after SQLite failed to read the database at path for a backup,
// whether that is because the server serving it stopped since readOnlyCopy found its
// WAL and WAL-index there: this process may not write path, and one of the two is
// gone (a server removes both when it stops). nil when not, and the failure is
// SQLite's to say. readOnlyCopy's check and SQLite's open cannot be made one step, as
// no lock this process may take keeps a server from stopping.
func serverStopped(path string) error {
	if writeAccess(path) == 0 {
		return nil
	}
	base := filepath.Base(path)
	for _, side := range []string{path + "-wal", path + "-shm"} {
		if _, err := os.Stat(side); errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("the server serving %s stopped during the backup (%s is gone), and this user (%s), who cannot write %s, "+
				"can read it only beside a server: nothing was copied; "+
				"run the backup again while the server serves the store, or as the user the server runs as (%s owns %s)",
				path, side, runningAs(), base, fileOwner(path), base)
		}
	}
	return nil
}

// readAccess is the system's answer to whether this process may read the file at path:
// 0, or the error number it would refuse a read with.
func readAccess(path string) syscall.Errno {
	var errno syscall.Errno
	errors.As(unix.Access(path, unix.R_OK), &errno)
	return errno
}

// fileOwner names the user that owns the file at path, or "its owner".
func fileOwner(path string) string {
	fi, err := os.Stat(path)
	if err != nil {
		return "its owner"
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return "its owner"
	}
	return userName(int(st.Uid))
}
