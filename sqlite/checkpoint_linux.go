package sqlite

import (
	"os"

	"golang.org/x/sys/unix"
)

const canWriteBack = true

// writeBackRange starts writing the dirty pages of f in [off, off+n) to the disk,
// without waiting for them.
func writeBackRange(f *os.File, off, n int64) error {
	return unix.SyncFileRange(int(f.Fd()), off, n, unix.SYNC_FILE_RANGE_WRITE)
}

// datasync makes f's data durable, with the metadata needed to read it back.
func datasync(f *os.File) error {
	return unix.Fdatasync(int(f.Fd()))
}
