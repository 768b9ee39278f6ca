package sqlite

import (
	"bytes"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"unsafe"

	"modernc.org/libc"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/socius/socius"
)

// bigPatch sets the nickname to a value of n bytes made from tag, so that each updated
// user takes a page (or more) of its own in the WAL.
func bigPatch(tag string, n int) *socius.Patch {
	return patchOf(map[socius.Field]string{socius.Nickname: bigValue(tag, n)})
}

// bigValue is the nickname of bigPatch(tag, n).
func bigValue(tag string, n int) string { return strings.Repeat(tag, n/len(tag)+1)[:n] }

// otherReader opens the store's file on a connection of its own, as another process
// would: it reads the WAL through its own file descriptor, so it sees only what was
// written to the file.
func otherReader(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	return db
}

func nickname(t *testing.T, db *sql.DB, uid string) string {
	t.Helper()
	var v sql.NullString
	if err := db.QueryRow(`SELECT nickname FROM users WHERE uid = ?`, uid).Scan(&v); err != nil {
		t.Fatalf("nickname of %s: %v", uid, err)
	}
	return v.String
}

func integrityOK(t *testing.T, db *sql.DB) {
	t.Helper()
	var res string
	if err := db.QueryRow(`PRAGMA integrity_check`).Scan(&res); err != nil || res != "ok" {
		t.Fatalf("integrity_check: %q, %v", res, err)
	}
}

// siteStore opens a new store in a file of its own, with the site 3_site and its key,
// and returns it with the file's path. It is closed when the test ends (Close may be
// called before).
func siteStore(t *testing.T) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "socius.db")
	s := open(t, path)
	t.Cleanup(func() { s.Close() })
	createSiteAndKey(t, s, "")
	return s, path
}

// writerWAL is the buffer of the writer's WAL file.
func writerWAL(t *testing.T, s *Store) *walBuffer {
	t.Helper()
	w := s.wc.bufferWAL()
	if w == nil {
		t.Fatal("the writer's WAL file is not buffered")
	}
	return w
}

// crashCopy copies the database and its WAL as they are now, as a crash would leave
// them (without the WAL-index, which SQLite rebuilds from the WAL), and returns the
// copy's path.
func crashCopy(t *testing.T, path string) string {
	t.Helper()
	crashed := filepath.Join(t.TempDir(), "socius.db")
	for _, suffix := range []string{"", "-wal"} {
		b, err := os.ReadFile(path + suffix)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(crashed+suffix, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return crashed
}

func uids(n int) []string {
	u := make([]string, n)
	for i := range u {
		u[i] = fmt.Sprintf("u%03d", i)
	}
	return u
}

// TestWALBufferGathersFrames: a batch of profile updates reaches the WAL file in a
// few writes, not two per page, and every update is there for another connection as
// soon as the batch is answered, and after the store is closed and opened again.
func TestWALBufferGathersFrames(t *testing.T) {
	s, path := siteStore(t)
	users := uids(60)
	loginUsers(t, s, "3_site", users...)

	batch := make([]*writeOp, len(users))
	for i, uid := range users {
		batch[i] = fastOnly(s, "3_site", uid, bigPatch(uid+"-gathered-", 3000), now)
	}
	w := writerWAL(t, s)
	writes, fileWrites := w.writes, w.fileWrites
	if _, err := s.commit(batch); err != nil { // the writer is idle: nothing else uses the connections
		t.Fatal(err)
	}
	for i, op := range batch {
		if op.err != nil {
			t.Fatalf("op %d: %v", i, op.err)
		}
	}
	writes, fileWrites = w.writes-writes, w.fileWrites-fileWrites
	// 60 pages of about 3 KB: at least 60 frames, two writes each.
	if writes < 120 {
		t.Fatalf("SQLite made %d writes for 60 updated pages", writes)
	}
	if limit := writes/20 + 1; fileWrites > limit {
		t.Errorf("%d writes of SQLite reached the file in %d writes, want at most %d", writes, fileWrites, limit)
	}
	t.Logf("%d writes of SQLite, %d to the file", writes, fileWrites)

	db := otherReader(t, path)
	for _, uid := range users {
		if got, want := nickname(t, db, uid), bigValue(uid+"-gathered-", 3000); got != want {
			t.Fatalf("%s: another connection reads %.20q..., want %.20q...", uid, got, want)
		}
	}
	integrityOK(t, db)
	db.Close()

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if walBuffers.m[w.file] == w {
		t.Error("the buffer outlives its file")
	}
	s = open(t, path)
	defer s.Close()
	for _, uid := range users {
		u, err := s.User(t.Context(), "3_site", uid)
		if err != nil || u.Profile[socius.Nickname] != bigValue(uid+"-gathered-", 3000) {
			t.Fatalf("%s after reopening: %v", uid, err)
		}
	}
}

// TestWALBufferEveryCommitVisible: after every answered update, of every size, a
// connection of its own reads the new value (without the write at the sync it would
// read pages that are not in the file yet).
func TestWALBufferEveryCommitVisible(t *testing.T) {
	s, path := siteStore(t)
	loginUsers(t, s, "3_site", "a", "b")
	db := otherReader(t, path)
	for i := range 40 {
		uid := []string{"a", "b"}[i%2]
		want := bigValue(fmt.Sprintf("v%d-", i), 10+i*250) // from a few bytes to 10 KB (overflow pages)
		if err := s.UpdateProfile(t.Context(), "3_site", uid, patchOf(map[socius.Field]string{socius.Nickname: want}), now); err != nil {
			t.Fatal(err)
		}
		if got := nickname(t, db, uid); got != want {
			t.Fatalf("update %d: another connection reads %.20q... (%d bytes), want %.20q... (%d bytes)", i, got, len(got), want, len(want))
		}
	}
	if s.wc.wal == nil || s.wc.wal.fileWrites == 0 {
		t.Fatal("the updates did not go through the WAL buffer")
	}
	integrityOK(t, db)
}

// TestWALBufferSpill: a batch larger than the writer's page cache spills pages into the
// WAL before its commit and reads them back, and rewrites a spilled page in place:
// reads and writes out of order, each of which must see the file as SQLite wrote it.
func TestWALBufferSpill(t *testing.T) {
	s, path := siteStore(t)
	users := uids(150)
	loginUsers(t, s, "3_site", users...)
	if err := s.wc.exec(`PRAGMA cache_size = 10`); err != nil {
		t.Fatal(err)
	}
	// Each user twice, the second time a few updates after the first: by then its
	// page has been spilled, and SQLite reads it back from the WAL to change it again;
	// at the commit it writes such pages over their frames and reads the
	// transaction's frames back to compute their checksums again.
	var batch []*writeOp
	want := map[string]string{}
	update := func(uid, tag string) {
		batch = append(batch, fastOnly(s, "3_site", uid, bigPatch(tag, 2000), now))
		want[uid] = bigValue(tag, 2000)
	}
	for gap := 4; gap < 16; gap++ {
		for i := range 30 {
			uid := users[(gap*30+i)%len(users)]
			update(uid, fmt.Sprintf("%s-%d-", uid, gap))
			if i >= gap {
				uid := users[(gap*30+i-gap)%len(users)]
				update(uid, fmt.Sprintf("%s-%d-again-", uid, gap))
			}
		}
	}
	w := writerWAL(t, s)
	before := w.fileWrites
	if _, err := s.commit(batch); err != nil {
		t.Fatal(err)
	}
	for i, op := range batch {
		if op.err != nil {
			t.Fatalf("op %d: %v", i, op.err)
		}
	}
	if w.fileWrites-before < 3 {
		t.Errorf("%d writes to the file: the batch did not spill", w.fileWrites-before)
	}
	db := otherReader(t, path)
	// And what a crash would leave: the database and its WAL as they are now, without
	// the WAL-index, which SQLite rebuilds from the WAL, trusting each frame only if
	// its checksum holds (after a spill SQLite reads the transaction's frames back to
	// compute their checksums).
	crashed := crashCopy(t, path)
	for _, db := range []*sql.DB{db, otherReader(t, crashed)} {
		for uid, want := range want {
			if got := nickname(t, db, uid); got != want {
				t.Fatalf("%s: %.20q..., want %.20q...", uid, got, want)
			}
		}
		integrityOK(t, db)
	}
}

// TestWALBufferWriteFails: when the buffered frames cannot be written (a full disk,
// injected), the batch fails for every caller with a database error, nothing of it is
// stored, and the next write works.
func TestWALBufferWriteFails(t *testing.T) {
	s, path := siteStore(t)
	users := uids(10)
	loginUsers(t, s, "3_site", users...)
	w := writerWAL(t, s)
	batch := make([]*writeOp, len(users))
	for i, uid := range users {
		batch[i] = fastOnly(s, "3_site", uid, bigPatch("lost-", 3000), now)
	}
	w.failWrite = true
	_, err := s.commit(batch)
	if socius.ErrorCode(err) != socius.CodeDatabaseError {
		t.Fatalf("commit with the WAL write failing: %v, want a database error", err)
	}
	// The client hears why (SQLITE_FULL), not the bare "Database error".
	if se := (*socius.Error)(nil); !errors.As(err, &se) || se.Details != "Database error: the store's disk is full; nothing was written" {
		t.Errorf("the failed batch's errorDetails: %v", err)
	}
	if w.failWrite {
		t.Fatal("the batch never wrote to the file")
	}
	db := otherReader(t, path)
	for _, uid := range users {
		if got := nickname(t, db, uid); got != "old" {
			t.Fatalf("%s after the failed batch: %.20q, want \"old\"", uid, got)
		}
		u, err := s.User(t.Context(), "3_site", uid)
		if err != nil || u.Profile[socius.Nickname] != "old" {
			t.Fatalf("%s after the failed batch: %+v, %v", uid, u, err)
		}
	}
	for _, uid := range users {
		if err := s.UpdateProfile(t.Context(), "3_site", uid, bigPatch("kept-", 3000), now); err != nil {
			t.Fatalf("UpdateProfile after the failed batch: %v", err)
		}
	}
	for _, uid := range users {
		if got := nickname(t, db, uid); got != bigValue("kept-", 3000) {
			t.Fatalf("%s: %.20q...", uid, got)
		}
	}
	integrityOK(t, db)
}

// walFile calls the methods of a file through the table SQLite would use.
type walFile struct {
	t    *testing.T
	tls  *libc.TLS // the connection's
	mem  *libc.TLS // the test's, for its buffers
	file uintptr
}

func (f walFile) methods() *sqlite3.Tsqlite3_io_methods {
	return ioMethods((*sqlite3.Tsqlite3_file)(cmem(f.file)).FpMethods)
}

// cbytes copies b into libc memory, freed when the test ends.
func (f walFile) cbytes(b []byte) uintptr {
	p := libc.Xmalloc(f.mem, libc.Tsize_t(len(b)+1))
	if p == 0 {
		f.t.Fatal("out of memory")
	}
	f.t.Cleanup(func() { libc.Xfree(f.mem, p) })
	copy(unsafe.Slice((*byte)(cmem(p)), len(b)), b)
	return p
}

func (f walFile) write(b []byte, off int64) {
	fn := f.methods().FxWrite
	if rc := (*(*func(*libc.TLS, uintptr, uintptr, int32, int64) int32)(unsafe.Pointer(&fn)))(f.tls, f.file, f.cbytes(b), int32(len(b)), off); rc != sqlite3.SQLITE_OK {
		f.t.Fatalf("write at %d: %d", off, rc)
	}
}

func (f walFile) read(n int, off int64) []byte {
	p := f.cbytes(make([]byte, n))
	fn := f.methods().FxRead
	if rc := (*(*func(*libc.TLS, uintptr, uintptr, int32, int64) int32)(unsafe.Pointer(&fn)))(f.tls, f.file, p, int32(n), off); rc != sqlite3.SQLITE_OK {
		f.t.Fatalf("read at %d: %d", off, rc)
	}
	return slices.Clone(unsafe.Slice((*byte)(cmem(p)), n))
}

func (f walFile) size() int64 {
	p := f.cbytes(make([]byte, 8))
	fn := f.methods().FxFileSize
	if rc := (*(*func(*libc.TLS, uintptr, uintptr) int32)(unsafe.Pointer(&fn)))(f.tls, f.file, p); rc != sqlite3.SQLITE_OK {
		f.t.Fatalf("size: %d", rc)
	}
	return *(*int64)(cmem(p))
}

func (f walFile) truncate(size int64) {
	fn := f.methods().FxTruncate
	if rc := (*(*func(*libc.TLS, uintptr, int64) int32)(unsafe.Pointer(&fn)))(f.tls, f.file, size); rc != sqlite3.SQLITE_OK {
		f.t.Fatalf("truncate: %d", rc)
	}
}

// TestWALBufferMethods: through the buffer, the WAL file reads, measures and truncates
// as if every write had gone straight to it; what is held reaches the file at the sync,
// at any other use of the file, and when it is closed.
func TestWALBufferMethods(t *testing.T) {
	s, path := siteStore(t)
	loginUsers(t, s, "3_site", "u1")
	c := s.wc
	// The writer is idle; its write lock keeps every other connection from writing
	// the WAL while bytes are written past its end and taken away again.
	if err := c.run(c.begin, "begin"); err != nil {
		t.Fatal(err)
	}
	w := c.bufferWAL()
	if w == nil {
		t.Fatal("the writer's WAL file is not buffered")
	}
	mem := libc.NewTLS()
	t.Cleanup(mem.Close) // after the buffers' frees, which are registered later
	f := walFile{t: t, tls: c.tls, mem: mem, file: w.file}
	onDisk := func() int64 {
		st, err := os.Stat(path + "-wal")
		if err != nil {
			t.Fatal(err)
		}
		return st.Size()
	}
	end := f.size()
	a, b, d := bytes.Repeat([]byte("a"), 100), bytes.Repeat([]byte("b"), 5000), bytes.Repeat([]byte("d"), 24)

	// Held, then read: the read sees them.
	f.write(a, end)
	f.write(b, end+100)
	if w.n != 5100 || onDisk() != end {
		t.Fatalf("after two writes in a row: %d bytes held, file %d bytes; want 5100 held, the file unchanged (%d)", w.n, onDisk(), end)
	}
	if got := f.read(5100, end); !bytes.Equal(got, append(slices.Clone(a), b...)) {
		t.Fatalf("read of held bytes: %.10q...", got)
	}
	if w.n != 0 || onDisk() != end+5100 {
		t.Fatalf("after a read: %d bytes held, file %d bytes", w.n, onDisk())
	}

	// Held, then measured.
	f.write(d, end+5100)
	if got := f.size(); got != end+5124 || w.n != 0 {
		t.Fatalf("size with 24 bytes held: %d (%d held), want %d", got, w.n, end+5124)
	}

	// A write that does not follow what is held: both reach the file in order.
	f.write(a, end+6000)
	f.write(d, end+6050) // over the middle of a
	f.write(b, end+7000)
	want := append(append(slices.Clone(a[:50]), d...), a[74:]...)
	if got := f.read(100, end+6000); !bytes.Equal(got, want) {
		t.Fatalf("read after a write over held bytes: %q", got)
	}
	if got := f.read(5000, end+7000); !bytes.Equal(got, b) {
		t.Fatalf("read of the last write: %.10q...", got)
	}

	// Held, then truncated away.
	f.write(b, end+12000)
	f.truncate(end)
	if got := f.size(); got != end || onDisk() != end {
		t.Fatalf("after truncating to %d: size %d, file %d bytes", end, got, onDisk())
	}

	// Held at the sync.
	f.write(a, end)
	fn := f.methods().FxSync
	if rc := (*(*func(*libc.TLS, uintptr, int32) int32)(unsafe.Pointer(&fn)))(f.tls, f.file, sqlite3.SQLITE_SYNC_NORMAL); rc != sqlite3.SQLITE_OK {
		t.Fatalf("sync: %d", rc)
	}
	if w.n != 0 || onDisk() != end+100 {
		t.Fatalf("after the sync: %d held, file %d bytes", w.n, onDisk())
	}

	// Held when a file control comes.
	f.write(a, end+100)
	fn = f.methods().FxFileControl
	if rc := (*(*func(*libc.TLS, uintptr, int32, uintptr) int32)(unsafe.Pointer(&fn)))(f.tls, f.file, sqlite3.SQLITE_FCNTL_HAS_MOVED, f.cbytes(make([]byte, 8))); rc != sqlite3.SQLITE_OK {
		t.Fatalf("file control: %d", rc)
	}
	if w.n != 0 || onDisk() != end+200 {
		t.Fatalf("after a file control: %d held, file %d bytes", w.n, onDisk())
	}
	f.truncate(end)
	if err := c.run(c.rollback, "rollback"); err != nil {
		t.Fatal(err)
	}

	// Held when the file is closed: closing the store closes the connection, and with
	// it the WAL file. (Another connection is kept open, so that the last close does not
	// checkpoint and delete the WAL.)
	keep := otherReader(t, path)
	if got := nickname(t, keep, "u1"); got != "old" {
		t.Fatalf("u1: %q", got)
	}
	if err := c.run(c.begin, "begin"); err != nil {
		t.Fatal(err)
	}
	end = f.size()
	f.write(a, end)
	if err := c.run(c.rollback, "rollback"); err != nil {
		t.Fatal(err)
	}
	fileWrites := w.fileWrites
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if w.fileWrites != fileWrites+1 || onDisk() < end+100 {
		t.Errorf("closing the file with 100 bytes held: %d writes, file %d bytes, want one write, at least %d bytes", w.fileWrites-fileWrites, onDisk(), end+100)
	}
	integrityOK(t, keep)
}

// readFault makes reads of a connection's main database file fail once armed, as a
// disk's read error would: SQLite then rolls the whole transaction back itself.
type readFault struct {
	file, orig, methods uintptr
	armed               atomic.Bool
}

var readFaults sync.Map // file -> *readFault

func faultRead(tls *libc.TLS, file, p uintptr, n int32, off int64) int32 {
	v, _ := readFaults.Load(file)
	f := v.(*readFault)
	if f.armed.CompareAndSwap(true, false) {
		return sqlite3.SQLITE_IOERR_READ
	}
	read := ioMethods(f.orig).FxRead
	return (*(*func(*libc.TLS, uintptr, uintptr, int32, int64) int32)(unsafe.Pointer(&read)))(tls, file, p, n, off)
}

// injectReadFault installs a readFault on c's main database file until the test ends.
func injectReadFault(t *testing.T, c *writeConn) *readFault {
	t.Helper()
	mem := libc.NewTLS()
	t.Cleanup(mem.Close)
	out := libc.Xmalloc(mem, 8)
	t.Cleanup(func() { libc.Xfree(mem, out) })
	if rc := sqlite3.Xsqlite3_file_control(c.tls, c.db, 0, sqlite3.SQLITE_FCNTL_FILE_POINTER, out); rc != sqlite3.SQLITE_OK {
		t.Fatalf("SQLITE_FCNTL_FILE_POINTER: %d", rc)
	}
	f := &readFault{file: *(*uintptr)(cmem(out))}
	file := (*sqlite3.Tsqlite3_file)(cmem(f.file))
	f.orig = file.FpMethods
	size := unsafe.Sizeof(sqlite3.Tsqlite3_io_methods{})
	f.methods = libc.Xmalloc(mem, libc.Tsize_t(size))
	m := ioMethods(f.methods)
	*m = *ioMethods(f.orig)
	*(*func(*libc.TLS, uintptr, uintptr, int32, int64) int32)(unsafe.Pointer(&m.FxRead)) = faultRead
	readFaults.Store(f.file, f)
	file.FpMethods = f.methods
	t.Cleanup(func() {
		file.FpMethods = f.orig
		readFaults.Delete(f.file)
		libc.Xfree(mem, f.methods)
	})
	return f
}

// TestWALBufferRollback: a batch that SQLite rolls back itself (a read error) after it
// spilled frames into the WAL buffer leaves nothing held: the writes acknowledged after
// it, which reuse those WAL offsets, all survive, in the live files and in a copy taken
// as a crash would leave them. (Held, the rolled-back frames were written later over
// theirs: writes lost, the database malformed.)
func TestWALBufferRollback(t *testing.T) {
	path := filepath.Join(t.TempDir(), "socius.db")
	s := open(t, path)
	createSiteAndKey(t, s, "")
	users := uids(150)
	loginUsers(t, s, "3_site", users...)
	for _, uid := range users {
		if err := s.UpdateProfile(t.Context(), "3_site", uid, patchOf(map[socius.Field]string{socius.Email: bigValue("e", 2000)}), now); err != nil {
			t.Fatal(err)
		}
	}
	// Every page into the database file, out of the WAL: the batch reads them there.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, path)
	defer s.Close()
	if err := s.wc.exec(`PRAGMA cache_size = 10`); err != nil {
		t.Fatal(err)
	}
	fault := injectReadFault(t, s.wc)
	var batch []*writeOp
	for _, uid := range users[:60] {
		batch = append(batch, fastOnly(s, "3_site", uid, bigPatch("lost-", 2000), now))
	}
	last := fastOnly(s, "3_site", users[149], bigPatch("lost-", 2000), now)
	update := last.fast
	last.fast = func(c *writeConn) error {
		fault.armed.Store(true)
		return update(c)
	}
	batch = append(batch, last)
	if _, err := s.commit(batch); socius.ErrorCode(err) != socius.CodeDatabaseError {
		t.Fatalf("batch with a read error: %v, want a database error", err)
	}
	if fault.armed.Load() {
		t.Fatal("the batch never read the database file after the fault was armed")
	}
	if s.wc.inTx() {
		t.Fatal("the failed batch left its transaction open")
	}
	if w := s.wc.wal; w != nil && w.n != 0 {
		t.Errorf("the WAL buffer holds %d bytes of the rolled-back batch", w.n)
	}
	// Writes on the other connection, acknowledged, over the WAL's same offsets; then a
	// write on the buffered connection again.
	want := map[string]string{}
	for _, uid := range users[60:120] {
		u, err := s.User(t.Context(), "3_site", uid)
		if err != nil {
			t.Fatal(err)
		}
		u.Profile[socius.Nickname] = bigValue(uid+"-kept-", 2000)
		if err := s.PutUser(t.Context(), u); err != nil {
			t.Fatal(err)
		}
		want[uid] = u.Profile[socius.Nickname]
	}
	if err := s.UpdateProfile(t.Context(), "3_site", users[140], bigPatch("after-", 100), now); err != nil {
		t.Fatal(err)
	}
	want[users[140]] = bigValue("after-", 100)
	for _, uid := range users[:60] {
		want[uid] = "old"
	}
	crashed := crashCopy(t, path)
	for _, db := range []*sql.DB{otherReader(t, path), otherReader(t, crashed)} {
		integrityOK(t, db)
		for uid, want := range want {
			if got := nickname(t, db, uid); got != want {
				t.Errorf("%s: %.24q, want %.24q", uid, got, want)
			}
		}
	}
}
