package sqlite

import (
	"database/sql"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/socius/socius"
)

// walFrames reads the WAL-index: mxFrame, the WAL's last frame, is at byte 16 of the
// header; nBackfill, the frames copied back, at byte 96 (the checkpoint-info after
// the two header copies).
func walFrames(t *testing.T, s *Store) (mx, backfilled uint32) {
	t.Helper()
	mx, backfilled, err := readWALFrames(s)
	if err != nil {
		t.Fatal(err)
	}
	return mx, backfilled
}

// readWALFrames is walFrames for a goroutine other than the test's.
func readWALFrames(s *Store) (mx, backfilled uint32, err error) {
	b := make([]byte, 100)
	if _, err := s.cache.shm.ReadAt(b, 0); err != nil {
		return 0, 0, err
	}
	return binary.NativeEndian.Uint32(b[16:]), binary.NativeEndian.Uint32(b[96:]), nil
}

// walRestarts reads the checkpoint sequence number of the WAL's file header, which
// SQLite increments each time it starts the WAL over.
func walRestarts(t *testing.T, path string) uint32 {
	t.Helper()
	f, err := os.Open(path + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 16)
	if _, err := f.ReadAt(b, 0); err != nil {
		t.Fatal(err)
	}
	return binary.BigEndian.Uint32(b[12:])
}

// TestCheckpointer checks that commits are copied back into the database file soon
// after, off the writer's path: once writes stop, the WAL-index shows every frame of
// the WAL backfilled within a few checkpoint periods.
func TestCheckpointer(t *testing.T) {
	s := newStore(t)
	if err := s.CreateSite(t.Context(), &socius.Site{APIKey: "3_site", Secret: "c2VjcmV0LTAxMjM0NTY3ODlhYmM=", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		loginUsers(t, s, "3_site", "u"+strconv.Itoa(i))
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		mx, done := walFrames(t, s)
		if mx > 0 && done == mx {
			if canWriteBack && s.ckpt.spreads.Load() == 0 {
				t.Error("no cycle handed its pages to the disk in parts")
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d WAL frames backfilled after 5 s", done, mx)
		}
		time.Sleep(checkpointEvery)
	}
}

// TestCheckpointPinKeepsWAL checks what makes copying without a sync safe: between
// the checkpointer's copy and its sync, no connection starts the WAL over, not even
// one of another program that commits when every frame has been copied (as SQLite
// would, trusting the copies to be on disk). After the sync, one does.
func TestCheckpointPinKeepsWAL(t *testing.T) {
	s, path, held := heldStore(t)
	hook := func() { held.hold(s) }
	s.ckpt.afterCopy.Store(&hook)
	held.commit(t, s)
	// Every frame is copied, none of it synced: the case in which SQLite would
	// start the WAL over at the next commit.
	other, before := commitOfAnother(t, path, "while the copy was not yet durable")
	held.let()

	// Once the cycle has synced and let go, the other program's own checkpoint
	// copies its commit and its next commit starts the WAL over.
	deadline := time.Now().Add(5 * time.Second)
	for v := 2; walRestarts(t, path) == before; v++ {
		if time.Now().After(deadline) {
			t.Fatal("the WAL was not started over within 5 s of the sync")
		}
		time.Sleep(checkpointEvery)
		if _, err := other.Exec(`PRAGMA wal_checkpoint(PASSIVE)`); err != nil {
			t.Fatal(err)
		}
		if _, err := other.Exec(`PRAGMA user_version = ` + strconv.Itoa(v)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestCheckpointPinHeldThroughSync checks that the pin is let go only after the
// fdatasync of the database file: while that sync runs, every frame copied and none
// of the copies yet durable, a commit of another program must not start the WAL over
// either.
func TestCheckpointPinHeldThroughSync(t *testing.T) {
	s, path, held := heldStore(t)
	fault := func(f *os.File) error {
		if f == s.ckpt.db { // the sync of a copy
			held.hold(s)
		}
		return nil
	}
	s.ckpt.syncFault.Store(&fault)
	held.commit(t, s)
	commitOfAnother(t, path, "during the sync of the copy")
}

// A held is a checkpoint cycle held at a hook, once: the first time the hook runs
// after the test's commit with every frame of the WAL copied.
type held struct {
	committed         atomic.Bool
	reached, released chan struct{}
	once, letOnce     sync.Once
}

// heldStore opens a store in a new folder, with a site and a key, and a held for its
// checkpointer. When the test ends, the held is let go before the store is closed, so
// that a test that fails while a cycle is held does not hang in the Close.
func heldStore(t *testing.T) (*Store, string, *held) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "socius.db")
	s := open(t, path)
	t.Cleanup(func() { s.Close() })
	createSiteAndKey(t, s, "one")
	h := &held{reached: make(chan struct{}), released: make(chan struct{})}
	t.Cleanup(h.let)
	return s, path, h
}

// hold, in the hook, holds the cycle if this is the time. A copy stops at its pin's
// snapshot: one pinned before the test's commit leaves it out. (A copy of the frames
// before it, late on a loaded machine, is not the time either: with the commit not
// yet made, it too saw every frame copied.)
func (h *held) hold(s *Store) {
	if !h.committed.Load() {
		return
	}
	if mx, done, err := readWALFrames(s); err != nil || mx == 0 || done != mx {
		return
	}
	h.once.Do(func() { close(h.reached); <-h.released })
}

func (h *held) let() { h.letOnce.Do(func() { close(h.released) }) }

// commit logs a user in and waits until a cycle is held with its copy.
func (h *held) commit(t *testing.T, s *Store) {
	t.Helper()
	loginUsers(t, s, "3_site", "u1")
	h.committed.Store(true)
	select {
	case <-h.reached:
	case <-time.After(5 * time.Second):
		t.Fatal("no checkpoint held a copy of the commit within 5 s")
	}
	if mx, done := walFrames(t, s); mx == 0 || done != mx {
		t.Fatalf("held, %d of %d WAL frames backfilled; the test needs all", done, mx)
	}
}

// commitOfAnother commits on a connection of another program, which, every frame
// copied, would start the WAL over but for the pin, and fails the test if it did. It
// returns the connection and the WAL's restarts before the commit.
func commitOfAnother(t *testing.T, path, while string) (*sql.DB, uint32) {
	t.Helper()
	other, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close() })
	before := walRestarts(t, path)
	if _, err := other.Exec(`PRAGMA user_version = 1`); err != nil {
		t.Fatal(err)
	}
	if got := walRestarts(t, path); got != before {
		t.Fatalf("the WAL was started over (%d to %d) %s", before, got, while)
	}
	return other, before
}

// TestCheckpointSyncOrder checks the order of a cycle's syncs, SQLite's own: the WAL
// is made durable before the copy (the commits of another program may not have
// synced it), and the database file after it.
func TestCheckpointSyncOrder(t *testing.T) {
	s := newStore(t)
	var mu sync.Mutex
	var steps []string
	step := func(name string) {
		mu.Lock()
		steps = append(steps, name)
		mu.Unlock()
	}
	fault := func(f *os.File) error {
		switch f {
		case s.ckpt.wal:
			step("sync WAL")
		case s.ckpt.db:
			step("sync db")
		default:
			step("sync of another file")
		}
		return nil
	}
	copied := func() { step("copy") }
	s.ckpt.syncFault.Store(&fault)
	s.ckpt.afterCopy.Store(&copied)
	createSiteAndKey(t, s, "one")
	deadline := time.Now().Add(5 * time.Second)
	for i := 0; ; i++ {
		loginUsers(t, s, "3_site", "u"+strconv.Itoa(i))
		mu.Lock()
		got := slices.Clone(steps)
		mu.Unlock()
		if n := len(got) - len(got)%3; n >= 9 {
			for c := 0; c < n; c += 3 {
				if want := []string{"sync WAL", "copy", "sync db"}; !slices.Equal(got[c:c+3], want) {
					t.Fatalf("a cycle's steps: %q, want %q", got[c:c+3], want)
				}
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("steps of the cycles within 5 s: %q; want three cycles", got)
		}
		time.Sleep(checkpointEvery)
	}
}

// TestWALStartsOver checks that under a steady stream of commits, which keeps every
// copy behind the end of the WAL, the WAL is still started over once it holds
// restartFrames frames, and so stays short.
func TestWALStartsOver(t *testing.T) {
	defer func(n int64) { restartFrames = n }(restartFrames)
	restartFrames = 40
	path := filepath.Join(t.TempDir(), "socius.db")
	s := open(t, path)
	defer s.Close()
	createSiteAndKey(t, s, "one")

	before := walRestarts(t, path)
	var longest int64
	for i := 0; i < 3000 && walRestarts(t, path) < before+3; i++ {
		loginUsers(t, s, "3_site", "u"+strconv.Itoa(i))
		if fi, err := os.Stat(path + "-wal"); err == nil {
			longest = max(longest, fi.Size())
		}
	}
	if got := walRestarts(t, path); got < before+3 {
		t.Fatalf("the WAL was started over %d times in 3000 commits; want 3 or more", got-before)
	}
	// A frame is a page and a 24-byte header. The writer's own threshold
	// (writerAutoCheckpoint) is far beyond this.
	if limit := int64(20*restartFrames) * (4096 + 24); longest > limit {
		t.Errorf("the WAL grew to %d bytes; want at most %d", longest, limit)
	}
}

// TestCycleBeforeRestartIsShort checks that the cycle which asks the writer to copy
// the rest lets go of its pin at once, without spreading its pages over writeBackParts
// pauses: the writer waits for its own copy, which takes what was committed meanwhile.
func TestCycleBeforeRestartIsShort(t *testing.T) {
	defer func(n int64) { restartFrames = n }(restartFrames)
	restartFrames = 1 // every cycle finds the WAL long
	path := filepath.Join(t.TempDir(), "socius.db")
	s := open(t, path)
	defer s.Close()
	createSiteAndKey(t, s, "one")

	before := walRestarts(t, path)
	for i := 0; i < 3000 && walRestarts(t, path) < before+2; i++ {
		loginUsers(t, s, "3_site", "u"+strconv.Itoa(i))
	}
	if walRestarts(t, path) < before+2 {
		t.Fatal("the WAL was not started over twice in 3000 commits")
	}
	// The only cycles that spread are the catch-up ones (a long-apart cycle that found
	// the WAL long spreads as usual, and the next asks the writer), which a loaded
	// machine can bring about: cycles that copy many frames of few pages go long apart.
	if n, k := s.ckpt.spreads.Load(), s.ckpt.catchUps.Load(); n != k {
		t.Errorf("%d cycles spread their pages, %d of them catching up: a cycle that asked the writer spread", n, k)
	}
}

// TestPeriod: cycles go checkpointEveryLong apart when the frames of a cycle repeat
// their pages, and back to checkpointEvery when they do not; a cycle of few frames
// does not change the period.
func TestPeriod(t *testing.T) {
	for _, c := range []struct {
		long             bool
		frames, distinct int
		want             time.Duration
	}{
		{false, 260, 255, checkpointEvery},     // a large table: every write a page of its own
		{false, 260, 195, checkpointEveryLong}, // 10,000 users: a quarter repeats within 20 ms
		{false, 260, 208, checkpointEvery},     // just at shortRepeats
		{true, 1300, 420, checkpointEveryLong}, // 10,000 users over 100 ms
		{true, 1300, 650, checkpointEvery},     // just at longRepeats
		{true, 1300, 1290, checkpointEvery},
		{false, judgeFrames - 1, 1, checkpointEvery}, // too few to judge: as it was
		{true, judgeFrames - 1, judgeFrames - 1, checkpointEveryLong},
		{false, 0, 0, checkpointEvery}, // not counted
		{true, 0, 0, checkpointEveryLong},
	} {
		if got := period(c.long, c.frames, c.distinct); got != c.want {
			t.Errorf("period(%v, %d, %d) = %v, want %v", c.long, c.frames, c.distinct, got, c.want)
		}
	}
}

// updateLoop updates the users of uids, from 16 goroutines, each update a value of
// size bytes, until stop is closed. It goes through them with a stride (7919, a prime),
// so that writes close in time fall on rows far apart.
func updateLoop(t *testing.T, s *Store, uids []string, size int, stop <-chan struct{}) *sync.WaitGroup {
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := g; ; i += 16 {
				select {
				case <-stop:
					return
				default:
				}
				uid := uids[(i*7919)%len(uids)]
				if err := s.UpdateProfile(t.Context(), "3_site", uid, bigPatch(fmt.Sprintf("%s-%d-", uid, i), size), now); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	return &wg
}

// loginMany logs in the users of uids from 16 goroutines, each with a nickname of
// size bytes.
func loginMany(t *testing.T, s *Store, uids []string, size int) {
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := g; i < len(uids); i += 16 {
				if _, err := s.Login(t.Context(), "3_site", uids[i], bigPatch("x", size), now); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// TestCheckpointCountsPages: the pages a cycle counts, read from the WAL-index, are
// those of the frames it copied as the WAL itself records them (each frame's header
// holds its page number), also past the WAL-index's first block (frame 4062).
func TestCheckpointCountsPages(t *testing.T) {
	// Put back after the store is closed (siteStore's cleanup, registered later, runs
	// first): its checkpointer reads the value until then.
	old := restartFrames
	t.Cleanup(func() { restartFrames = old })
	restartFrames = 8000 // so that the WAL grows past the first block
	s, path := siteStore(t)
	users := uids(300)
	loginMany(t, s, users, 3000)
	wal, err := os.Open(path + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	defer wal.Close()

	type check struct {
		to              uint32
		listed, inWAL   []uint32 // every frame's page, from the first
		copied, counted []uint32 // the distinct pages of the copy
		err             error
	}
	checks := make(chan check, 1000)
	hook := func() { // on the checkpointer, pinned: the WAL cannot start over
		c := s.ckpt
		if c.frames == 0 {
			return
		}
		from, to := c.copied[0], c.copied[1]
		ck := check{to: to, counted: slices.Clone(c.pages[:c.distinct])}
		ck.listed, ck.err = c.framePages(0, to, nil)
		var hdr [4]byte
		for frame := uint32(1); frame <= to && ck.err == nil; frame++ {
			_, ck.err = wal.ReadAt(hdr[:], 32+int64(frame-1)*(4096+24))
			ck.inWAL = append(ck.inWAL, binary.BigEndian.Uint32(hdr[:]))
		}
		if ck.err == nil {
			ck.copied = slices.Clone(ck.inWAL[from:])
			slices.Sort(ck.copied)
			ck.copied = slices.Compact(ck.copied)
		}
		select {
		case checks <- ck:
		default:
		}
	}
	s.ckpt.afterCopy.Store(&hook)
	stop := make(chan struct{})
	wg := updateLoop(t, s, users, 3000, stop)
	defer wg.Wait()
	defer close(stop)
	deadline := time.After(20 * time.Second)
	counted := 0
	for {
		select {
		case c := <-checks:
			if c.err != nil {
				t.Fatal(c.err)
			}
			if !slices.Equal(c.listed, c.inWAL) {
				t.Fatalf("frames 1 to %d: the WAL-index lists pages %v, the WAL %v", c.to, c.listed, c.inWAL)
			}
			if !slices.Equal(c.counted, c.copied) {
				t.Fatalf("pages counted %v, copied %v", c.counted, c.copied)
			}
			counted++
			if c.to > shmFirstFrames && counted >= 3 {
				return
			}
		case <-deadline:
			t.Fatalf("after 20 s, %d cycles counted, none past frame %d", counted, shmFirstFrames)
		}
	}
}

// TestCheckpointWaitsForRepeats: writes to a few pages make the checkpointer's cycles
// checkpointEveryLong apart; writes spread over many pages keep them checkpointEvery
// apart.
func TestCheckpointWaitsForRepeats(t *testing.T) {
	t.Run("few pages", func(t *testing.T) {
		s := newStore(t)
		createSiteAndKey(t, s, "")
		// Rows of 800 bytes, four or five to a leaf: 40 users on about ten pages. A
		// commit of the 16 writers' updates writes most of them, so that a cycle
		// copies the judgeFrames it needs to decide from four or five commits, even on
		// a slow disk, and sees its pages several times. (With every user on one page,
		// a commit wrote one frame: a cycle decided only when the disk synced 32
		// commits in 20 ms.)
		users := uids(40)
		loginMany(t, s, users, 800)
		stop := make(chan struct{})
		wg := updateLoop(t, s, users, 800, stop)
		deadline := time.Now().Add(10 * time.Second)
		for !s.ckpt.long.Load() && time.Now().Before(deadline) {
			time.Sleep(checkpointEvery)
		}
		close(stop)
		wg.Wait()
		if !s.ckpt.long.Load() {
			t.Fatalf("writes to 40 users on about ten pages: cycles still %v apart after 10 s", checkpointEvery)
		}
	})
	t.Run("many pages", func(t *testing.T) {
		s := newStore(t)
		createSiteAndKey(t, s, "")
		// Rows of 3,000 bytes: about 1,000 in a leaf of the table (four to a leaf), the
		// rest in a page of overflow. Written with a stride, a cycle sees few pages
		// twice.
		users := uids(6000)
		loginMany(t, s, users, 3000)
		// The logins are inserts in order, which repeat their pages: copied first.
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(checkpointEvery) {
			if mx, done := walFrames(t, s); done == mx {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the logins were not copied within 5 s")
			}
		}
		type cycle struct{ frames, distinct int }
		cycles := make(chan cycle, 1000)
		hook := func() {
			if c := s.ckpt; c.frames >= judgeFrames {
				select {
				case cycles <- cycle{c.frames, c.distinct}:
				default:
				}
			}
		}
		s.ckpt.afterCopy.Store(&hook)
		stop := make(chan struct{})
		wg := updateLoop(t, s, users, 3000, stop) // a row a page
		judged, small := 0, 0
		deadline := time.After(20 * time.Second)
		for judged < 5 || small == 0 {
			select {
			case c := <-cycles:
				judged++
				if c.frames <= 1200 {
					small++
				}
				t.Logf("a cycle of %d frames, %d distinct pages", c.frames, c.distinct)
				// A long cycle (a slow machine: 3,007 frames in one CI run) writes so
				// many of the 1,500 leaves that it shares some by chance; the stride
				// keeps a cycle of up to 600 updates, a tenth of the users, apart.
				if c.frames <= 1200 && float64(c.distinct) < shortRepeats*float64(c.frames) {
					t.Errorf("a cycle of %d frames over 6,000 pages counted %d distinct", c.frames, c.distinct)
				}
			case <-deadline:
				t.Fatalf("after 20 s, %d cycles copied %d frames or more, %d of them 1,200 or fewer", judged, judgeFrames, small)
			}
		}
		// The last cycle's hook runs before the cycle decides: wait for cycles to be
		// short apart again (a long cycle on a slow machine may have made them long).
		long := true
		for end := time.Now().Add(5 * time.Second); long && time.Now().Before(end); time.Sleep(checkpointEvery) {
			long = s.ckpt.long.Load()
		}
		close(stop)
		wg.Wait()
		if long {
			t.Errorf("writes spread over 6,000 users: cycles still %v apart after 5 s", checkpointEveryLong)
		}
	})
}

// TestAskWriter: while cycles are checkpointEveryLong apart, a cycle that finds the WAL
// long spreads its pages and leaves asking the writer to the next, checkpointEvery
// later; that one asks. Otherwise a cycle that finds the WAL long asks at once.
func TestAskWriter(t *testing.T) {
	for _, c := range []struct {
		walLong, longApart, caughtUp bool
		ask, catchUp                 bool
	}{
		{false, false, false, false, false},
		{true, false, false, true, false},
		{false, true, false, false, false},
		{true, true, false, false, true}, // a long cycle: spread, catch up
		{true, true, true, true, false},  // the catch-up: ask
		{false, true, true, false, false},
	} {
		ask, catchUp := askWriter(c.walLong, c.longApart, c.caughtUp)
		if ask != c.ask || catchUp != c.catchUp {
			t.Errorf("askWriter(%v, %v, %v) = %v, %v; want %v, %v", c.walLong, c.longApart, c.caughtUp, ask, catchUp, c.ask, c.catchUp)
		}
	}
}

// TestWALStartsOverLongApart: with cycles checkpointEveryLong apart (writes to a few
// users), the WAL still starts over again and again and stays short.
func TestWALStartsOverLongApart(t *testing.T) {
	// Put back after the store is closed (siteStore's cleanup, registered later, runs
	// first): its checkpointer reads the value until then.
	old := restartFrames
	t.Cleanup(func() { restartFrames = old })
	restartFrames = 400
	s, path := siteStore(t)
	users := uids(20)
	loginMany(t, s, users, 1000)
	stop := make(chan struct{})
	wg := updateLoop(t, s, users, 1000, stop)
	defer wg.Wait()
	defer close(stop)
	before, longSeen := walRestarts(t, path), 0
	var longest int64
	deadline := time.Now().Add(20 * time.Second)
	for longSeen < 3 || walRestarts(t, path) < before+6 {
		if time.Now().After(deadline) {
			t.Fatalf("in 20 s: the WAL started over %d times, cycles seen long apart %d times", walRestarts(t, path)-before, longSeen)
		}
		if s.ckpt.long.Load() {
			longSeen++
		}
		if fi, err := os.Stat(path + "-wal"); err == nil {
			longest = max(longest, fi.Size())
		}
		time.Sleep(checkpointEvery)
	}
	if limit := int64(20*restartFrames) * (4096 + 24); longest > limit {
		t.Errorf("the WAL grew to %d bytes; want at most %d", longest, limit)
	}
}
