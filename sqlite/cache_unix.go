//go:build unix

package sqlite

import (
	"encoding/binary"
	"runtime/debug"
	"sync/atomic"
	"syscall"
	"unsafe"
)

// mapHeader maps the first page of the -shm file read-only. SQLite maps the same
// page to write the header, so the mapping shows each commit's header as soon as it
// is written, without a system call to read it. When mapping fails, header reads
// use pread.
func (c *cache) mapHeader() {
	mem, err := syscall.Mmap(int(c.shm.Fd()), 0, syscall.Getpagesize(), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil || len(mem) < 2*walHeaderSize {
		return
	}
	c.mem.Store(&mem)
}

func (c *cache) unmapHeader() error {
	if mem := c.mem.Swap(nil); mem != nil {
		return syscall.Munmap(*mem)
	}
	return nil
}

// readMapped copies both header copies from the mapping, the first copy first, in
// 8-byte atomic loads (SQLite writes the second copy, then a barrier, then the
// first; reading in the other order is how SQLite itself detects a header being
// written). It returns false when there is no mapping. The pinned connection keeps
// SQLite from ever truncating the file; should the page still be gone (the file cut
// short behind SQLite's back), the fault is caught, the mapping dropped and pread
// used from then on.
func (c *cache) readMapped(buf *[2 * walHeaderSize]byte) (ok bool) {
	mem := c.mem.Load()
	if mem == nil {
		return false
	}
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if recover() != nil {
			c.mem.CompareAndSwap(mem, nil) // never unmapped: a reader may still hold it
			ok = false
		}
	}()
	for i := 0; i < len(buf); i += 8 {
		binary.NativeEndian.PutUint64(buf[i:], atomic.LoadUint64((*uint64)(unsafe.Pointer(&(*mem)[i]))))
	}
	return true
}
