package sqlite

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

const canWriteBack = true

// writeBackRange starts writing the dirty pages of f in [off, off+n) to the disk,
// without waiting for them.
func writeBackRange(f *os.File, off, n int64) error {
	return unix.SyncFileRange(int(f.Fd()), off, n, unix.SYNC_FILE_RANGE_WRITE)
}

// datasync makes f's data durable, with the metadata needed to read it back. An
// interrupted call (EINTR, which a signal can cause on some file systems) is made
// again, as os.File.Sync does: it reported no failure of the disk, and a failure
// stops the store (checkpointer.syncFailed).
func datasync(f *os.File) error {
	for {
		err := unix.Fdatasync(int(f.Fd()))
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}
