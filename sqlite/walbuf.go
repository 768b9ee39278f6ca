package sqlite

import (
	"sync"
	"unsafe"

	"modernc.org/libc"
	sqlite3 "modernc.org/sqlite/lib"
)

// SQLite writes each WAL frame with two writes, its 24-byte header and then the page,
// so a commit of 25 pages makes 50 system calls before its sync; on a virtual machine
// a system call costs microseconds, and all of it is on the writer's path, which every
// durable write of the server waits behind. A walBuffer gathers the writes of one
// connection's WAL file that follow each other in the file and hands them to the file
// in one write, at the latest when SQLite syncs the WAL, which a commit on a connection
// with synchronous=FULL always does before it publishes its frames (the WAL-index
// header that readers go by is written after the sync). Any other use of the file
// (a read, its size, a truncation, a file control, the sync, closing it) writes what is
// held first, so SQLite never sees the file differently than it would without the
// buffer; a write that does not follow the held bytes writes them first too, so the
// writes reach the file in SQLite's order.
//
// The buffer is installed on the writer's C API connection only (writeConn), by
// replacing the method table of its WAL file (sqlite3_file.pMethods, found with
// SQLITE_FCNTL_JOURNAL_POINTER) with a copy whose write, read, sync, truncate,
// file-size, file-control and close methods are those below; each calls SQLite's own
// method for the real work. The buffer and the table are libc memory, freed when
// SQLite closes the file.

// walBufSize is the most a buffer holds: the unix VFS writes at most 128 KiB - 1
// bytes in one call (it masks a larger length, and a write it takes for short then
// fails as a full disk), so a little less than that: about 30 frames of a 4,096-byte
// page.
const walBufSize = 31 * 4096

// A walBuffer is one WAL file's pending writes.
type walBuffer struct {
	file    uintptr // the sqlite3_file
	orig    uintptr // its own method table
	methods uintptr // the copy installed in its place
	buf     uintptr // walBufSize bytes
	off     int64   // where buf's first byte goes in the file
	n       int     // bytes held

	// Counted for tests: SQLite's writes, and the writes made to the file.
	writes, fileWrites int

	// failWrite, when set (tests only), makes the next write to the file fail as a
	// full disk would.
	failWrite bool
	// failSync, when set (tests only), makes the next sync fail, after the bytes held
	// went to the file, as a disk that failed to flush them does.
	failSync bool
}

// walBuffers maps each buffered file (its sqlite3_file address) to its buffer. The
// methods below are called with the file only.
var walBuffers = struct {
	sync.Mutex
	m map[uintptr]*walBuffer
}{m: map[uintptr]*walBuffer{}}

func walBufferOf(file uintptr) *walBuffer {
	walBuffers.Lock()
	w := walBuffers.m[file]
	walBuffers.Unlock()
	return w
}

// ioMethods is the method table at p.
func ioMethods(p uintptr) *sqlite3.Tsqlite3_io_methods {
	return (*sqlite3.Tsqlite3_io_methods)(cmem(p))
}

// bufferWAL makes sure that the WAL file of the connection's main database is
// buffered, and returns its buffer; nil when the connection has no WAL file open (no
// read transaction yet) or memory ran out, in which case writes go to the file as
// SQLite makes them.
func (c *writeConn) bufferWAL() *walBuffer {
	if c.out == 0 {
		if c.out = libc.Xmalloc(c.tls, 8); c.out == 0 {
			return nil
		}
	}
	*(*uintptr)(cmem(c.out)) = 0
	if sqlite3.Xsqlite3_file_control(c.tls, c.db, 0, sqlite3.SQLITE_FCNTL_JOURNAL_POINTER, c.out) != sqlite3.SQLITE_OK {
		return nil
	}
	file := *(*uintptr)(cmem(c.out))
	if file == 0 {
		return nil
	}
	methods := (*sqlite3.Tsqlite3_file)(cmem(file)).FpMethods
	if methods == 0 {
		return nil // not open
	}
	if w := c.wal; w != nil && w.file == file && w.methods == methods {
		return w
	}
	// Without powersafe overwrite (a VFS or URI that turns it off), SQLite pads a
	// commit to a sector boundary and writes the padding after the sync, unsynced and
	// published: bytes a buffer would still hold. The unix and Windows VFSes have it.
	dc := ioMethods(methods).FxDeviceCharacteristics
	if (*(*func(*libc.TLS, uintptr) int32)(unsafe.Pointer(&dc)))(c.tls, file)&sqlite3.SQLITE_IOCAP_POWERSAFE_OVERWRITE == 0 {
		return nil
	}
	w := &walBuffer{file: file, orig: methods}
	size := unsafe.Sizeof(sqlite3.Tsqlite3_io_methods{})
	if w.methods = libc.Xmalloc(c.tls, libc.Tsize_t(size)); w.methods == 0 {
		return nil
	}
	if w.buf = libc.Xmalloc(c.tls, walBufSize); w.buf == 0 {
		libc.Xfree(c.tls, w.methods)
		return nil
	}
	m := ioMethods(w.methods)
	*m = *ioMethods(methods)
	*(*func(*libc.TLS, uintptr) int32)(unsafe.Pointer(&m.FxClose)) = walBufClose
	*(*func(*libc.TLS, uintptr, uintptr, int32, int64) int32)(unsafe.Pointer(&m.FxRead)) = walBufRead
	*(*func(*libc.TLS, uintptr, uintptr, int32, int64) int32)(unsafe.Pointer(&m.FxWrite)) = walBufWrite
	*(*func(*libc.TLS, uintptr, int64) int32)(unsafe.Pointer(&m.FxTruncate)) = walBufTruncate
	*(*func(*libc.TLS, uintptr, int32) int32)(unsafe.Pointer(&m.FxSync)) = walBufSync
	*(*func(*libc.TLS, uintptr, uintptr) int32)(unsafe.Pointer(&m.FxFileSize)) = walBufFileSize
	*(*func(*libc.TLS, uintptr, int32, uintptr) int32)(unsafe.Pointer(&m.FxFileControl)) = walBufFileControl
	walBuffers.Lock()
	walBuffers.m[file] = w
	walBuffers.Unlock()
	(*sqlite3.Tsqlite3_file)(cmem(file)).FpMethods = w.methods
	c.wal = w
	return w
}

// dropWAL forgets the bytes the connection's WAL buffer holds, unwritten. Only for a
// transaction that ended without committing: a commit syncs the WAL, which writes them.
func (c *writeConn) dropWAL() {
	if c.wal != nil {
		c.wal.n = 0
	}
}

// The original methods, called through the table the file came with.

func (w *walBuffer) origWrite(tls *libc.TLS, p uintptr, n int32, off int64) int32 {
	w.fileWrites++
	if w.failWrite {
		w.failWrite = false
		return sqlite3.SQLITE_FULL
	}
	f := ioMethods(w.orig).FxWrite
	return (*(*func(*libc.TLS, uintptr, uintptr, int32, int64) int32)(unsafe.Pointer(&f)))(tls, w.file, p, n, off)
}

// flush writes what is held. Held bytes are dropped whether or not the write
// succeeds: after a failure SQLite fails the commit and writes its frames again.
func (w *walBuffer) flush(tls *libc.TLS) int32 {
	if w.n == 0 {
		return sqlite3.SQLITE_OK
	}
	n := w.n
	w.n = 0
	return w.origWrite(tls, w.buf, int32(n), w.off)
}

func walBufWrite(tls *libc.TLS, file, p uintptr, n int32, off int64) int32 {
	w := walBufferOf(file)
	w.writes++
	if w.n > 0 && off == w.off+int64(w.n) && w.n+int(n) <= walBufSize {
		copy(unsafe.Slice((*byte)(cmem(w.buf+uintptr(w.n))), n), unsafe.Slice((*byte)(cmem(p)), n))
		w.n += int(n)
		return sqlite3.SQLITE_OK
	}
	if rc := w.flush(tls); rc != sqlite3.SQLITE_OK {
		return rc
	}
	if int(n) > walBufSize {
		return w.origWrite(tls, p, n, off)
	}
	copy(unsafe.Slice((*byte)(cmem(w.buf)), n), unsafe.Slice((*byte)(cmem(p)), n))
	w.off, w.n = off, int(n)
	return sqlite3.SQLITE_OK
}

func walBufRead(tls *libc.TLS, file, p uintptr, n int32, off int64) int32 {
	w := walBufferOf(file)
	if rc := w.flush(tls); rc != sqlite3.SQLITE_OK {
		return rc
	}
	f := ioMethods(w.orig).FxRead
	return (*(*func(*libc.TLS, uintptr, uintptr, int32, int64) int32)(unsafe.Pointer(&f)))(tls, file, p, n, off)
}

func walBufSync(tls *libc.TLS, file uintptr, flags int32) int32 {
	w := walBufferOf(file)
	if rc := w.flush(tls); rc != sqlite3.SQLITE_OK {
		return rc
	}
	if w.failSync {
		w.failSync = false
		return sqlite3.SQLITE_IOERR_FSYNC
	}
	f := ioMethods(w.orig).FxSync
	return (*(*func(*libc.TLS, uintptr, int32) int32)(unsafe.Pointer(&f)))(tls, file, flags)
}

func walBufTruncate(tls *libc.TLS, file uintptr, size int64) int32 {
	w := walBufferOf(file)
	if rc := w.flush(tls); rc != sqlite3.SQLITE_OK {
		return rc
	}
	f := ioMethods(w.orig).FxTruncate
	return (*(*func(*libc.TLS, uintptr, int64) int32)(unsafe.Pointer(&f)))(tls, file, size)
}

func walBufFileSize(tls *libc.TLS, file, pSize uintptr) int32 {
	w := walBufferOf(file)
	if rc := w.flush(tls); rc != sqlite3.SQLITE_OK {
		return rc
	}
	f := ioMethods(w.orig).FxFileSize
	return (*(*func(*libc.TLS, uintptr, uintptr) int32)(unsafe.Pointer(&f)))(tls, file, pSize)
}

func walBufFileControl(tls *libc.TLS, file uintptr, op int32, arg uintptr) int32 {
	w := walBufferOf(file)
	if rc := w.flush(tls); rc != sqlite3.SQLITE_OK {
		return rc
	}
	f := ioMethods(w.orig).FxFileControl
	return (*(*func(*libc.TLS, uintptr, int32, uintptr) int32)(unsafe.Pointer(&f)))(tls, file, op, arg)
}

// walBufClose writes what is held, puts the file's own table back, closes the file
// with it and frees the buffer.
func walBufClose(tls *libc.TLS, file uintptr) int32 {
	w := walBufferOf(file)
	rc := w.flush(tls)
	walBuffers.Lock()
	delete(walBuffers.m, file)
	walBuffers.Unlock()
	(*sqlite3.Tsqlite3_file)(cmem(file)).FpMethods = w.orig
	f := ioMethods(w.orig).FxClose
	if crc := (*(*func(*libc.TLS, uintptr) int32)(unsafe.Pointer(&f)))(tls, file); rc == sqlite3.SQLITE_OK {
		rc = crc
	}
	libc.Xfree(tls, w.buf)
	libc.Xfree(tls, w.methods)
	return rc
}
