package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
)

// writeOut writes what write produces to path, whole or not at all: into a temporary
// file beside the file path names (a symbolic link is followed, and stays), synced,
// then renamed into place, so that a write that fails or is cut short (a signal, a
// kill, a power loss) leaves path as it was; the folder is synced after the rename,
// so that the new file is there after a power loss (a *folderNotSyncedError when
// that fails: the file is in place, whole). A path that names no regular file (a
// pipe, a device) is written to as it is, since renaming onto it would replace it;
// one that names the process's own standard output or error (/dev/stdout, whatever
// that is: a terminal, a pipe, a log file it was redirected to) is written through
// it, after what it holds. A file made here is readable by its owner alone: exports
// hold profiles, and secrets in clear.
func writeOut(path string, write func(io.Writer) error) error {
	fi, err := os.Stat(path) // the kernel's resolution: /proc/self/fd/1 names a pipe too
	switch {
	case err == nil && ownOutput(fi) != nil:
		return write(ownOutput(fi))
	case err == nil && !fi.Mode().IsRegular() && !fi.IsDir():
		f, err := createPrivate(path)
		if err != nil {
			return err
		}
		err = write(f)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		return err
	}
	target := followLinks(path)
	f, err := os.CreateTemp(filepath.Dir(target), ".socius-out-*") // mode 0600
	if err != nil {
		return cannotCreate(path, err)
	}
	err = write(f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		if err = os.Rename(f.Name(), target); err == nil {
			return syncRenamed(path, filepath.Dir(target))
		}
	}
	if err != nil {
		os.Remove(f.Name())
		// The temporary file is ours, not a name the user gave: a write or a sync that
		// failed on it (a full disk) failed on path.
		var pe *os.PathError
		if errors.As(err, &pe) && pe.Path == f.Name() {
			err = fmt.Errorf("cannot write %s: %w", path, pe.Err)
		}
	}
	return err
}

// syncFolder flushes a folder's entries (syncDir); tests see it called, or make it
// fail, through this variable.
var syncFolder = syncDir

// syncRenamed syncs dir, the folder a file was just renamed into, so that the rename
// outlasts a power loss. Not on Windows, where a folder opened for reading cannot be
// flushed, nor on a file system that syncs no folder (EINVAL, which PostgreSQL's
// fsync_fname lets by too): there the rename is as durable as the system makes it.
func syncRenamed(path, dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	err := syncFolder(dir)
	if err == nil || errors.Is(err, errors.ErrUnsupported) || errors.Is(err, syscall.EINVAL) {
		return nil
	}
	return &folderNotSyncedError{path: path, err: err}
}

// folderNotSyncedError is writeOut's error when path is written and in place, but
// its folder could not be synced (one its user may write but not read, a failing
// disk): only a power loss before the system writes the folder out may lose it.
type folderNotSyncedError struct {
	path string
	err  error
}

func (e *folderNotSyncedError) Error() string {
	return fmt.Sprintf("%s is written, but its folder could not be synced (%v): a power loss before the system writes the folder out may lose it", e.path, e.err)
}

func (e *folderNotSyncedError) Unwrap() error { return e.err }

// cannotCreate says that no file could be made for path, with the cause of err, a
// failure to create a temporary file beside it: the name of that file (which the user
// never gave, and which is not left behind) would only puzzle.
func cannotCreate(path string, err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return fmt.Errorf("cannot create %s: %w", path, err)
}

// ownOutput returns os.Stdout or os.Stderr when fi is the file it writes to; nil if
// neither.
func ownOutput(fi os.FileInfo) *os.File {
	for _, f := range []*os.File{os.Stdout, os.Stderr} {
		if own, err := f.Stat(); err == nil && os.SameFile(fi, own) {
			return f
		}
	}
	return nil
}

// followLinks returns the path that path names once its symbolic links are followed,
// the last one too when what it names does not exist yet.
func followLinks(path string) string {
	for range 40 { // as the kernel, which gives up after 40 links
		fi, err := os.Lstat(path)
		if err != nil || fi.Mode()&os.ModeSymlink == 0 {
			break
		}
		dest, err := os.Readlink(path)
		if err != nil {
			break
		}
		if !filepath.IsAbs(dest) {
			// Relative to the link's folder as the kernel has it: with that folder's
			// own links resolved, a ".." in dest goes up from where they lead.
			dir := filepath.Dir(path)
			if real, err := filepath.EvalSymlinks(dir); err == nil {
				dir = real
			}
			dest = filepath.Join(dir, dest)
		}
		path = dest
	}
	return path
}

// checkWritable fails when path (if not empty) could not be written in place, leaving
// no file behind and an existing one as it is: a flag's file that is written into, not
// replaced, checked before a long run (the bench's --latency-log). A pipe or a device
// is not opened (a pipe would wait for its reader); a path that names no file yet, or
// a link to none, needs a folder that takes a new file.
func checkWritable(path string) error {
	if path == "" {
		return nil
	}
	fi, err := os.Stat(path) // through links
	if err == nil && fi.Mode().IsRegular() {
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		return f.Close()
	}
	return checkOutFolder(path)
}

// checkOutFolder fails when writeOut could not write path (if not empty), leaving no
// file behind and an existing one as it is: an --out checked before the export runs,
// the bench's --json, the emulator's --export-on-exit. As writeOut
// renames a temporary file onto path, what counts is that path's folder takes a new
// file, not whether the file there now may be written. A folder is refused (a rename
// would not replace it); a pipe or a device is not opened (a pipe would wait for its
// reader), as writeOut writes to it as it is.
func checkOutFolder(path string) error {
	if path == "" {
		return nil
	}
	fi, err := os.Stat(path) // through links
	switch {
	case err == nil && fi.IsDir():
		return fmt.Errorf("%s is a folder", path)
	case err == nil && !fi.Mode().IsRegular():
		return nil
	case err != nil && !errors.Is(err, os.ErrNotExist):
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(followLinks(path)), ".socius-check-*")
	if err != nil {
		return cannotCreate(path, err)
	}
	f.Close()
	return os.Remove(f.Name())
}
