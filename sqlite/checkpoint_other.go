//go:build !linux

package sqlite

import "os"

// Without sync_file_range, the copied pages reach the disk with the sync alone.
const canWriteBack = false

func writeBackRange(f *os.File, off, n int64) error { return nil }

func datasync(f *os.File) error { return f.Sync() }
