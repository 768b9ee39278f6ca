package e2e

import (
	endian "encoding/binary"
	"fmt"
	mathrand "math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// A churnUser is created by notifyLogin and, later, deleted by deleteAccount, by one
// churn writer; what was sent and answered says what the store must hold.
type churnUser struct {
	uid                     string
	createSent, createAcked bool
	deleteSent, deleteAcked bool
}

// walSequence reads the checkpoint sequence of the data folder's WAL header, which
// SQLite increments each time the WAL starts over; 0 without a WAL.
func walSequence(t *testing.T, dir string) uint32 {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "socius.db-wal"))
	if err != nil || len(b) < 16 {
		return 0
	}
	return endian.BigEndian.Uint32(b[12:16])
}

// TestCrashSafetyMixed is TestCrashSafety with a store of 2,000 users, so that the
// writes of a batch land on many pages and the SQLite WAL grows past the length at
// which it starts over (each cycle is killed only after it has), and with a mix of
// writes: profile updates (the writer's fast path) beside notifyLogin creations and
// deleteAccount deletions (the database/sql path, often in the same batches). After
// each kill and restart every acknowledged write must be there: each profile slot its
// last acknowledged value (or the one unanswered write after it), each acknowledged
// creation its user, and each acknowledged deletion no user.
func TestCrashSafetyMixed(t *testing.T) {
	const (
		users        = 2000
		slotWriters  = 24
		churnWriters = 4
		cycles       = 3
	)
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			dir := t.TempDir()
			flags := append(append([]string{}, labFlags...), b.flags(t, dir)...)
			p := serve(t, dir, flags...)
			// The users, created in parallel; the slots of user u belong to writer
			// u % slotWriters, which goes through them in turn, user by user.
			var wg sync.WaitGroup
			for w := 0; w < 16; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for u := w; u < users; u += 16 {
						p.login(lab, fmt.Sprintf("crash-user-%d", u), "")
					}
				}()
			}
			wg.Wait()
			slots := newSlots(users)
			sets := make([][]*slot, slotWriters)
			for i, s := range slots {
				u := i / len(slotFields)
				sets[u%slotWriters] = append(sets[u%slotWriters], s)
			}
			var total int64
			restarted := false
			for cycle := 1; cycle <= cycles; cycle++ {
				var acks atomic.Int64
				stop := make(chan struct{})
				var load sync.WaitGroup
				load.Add(1)
				go func() {
					defer load.Done()
					writeLoad(t, p, sets, stop, &acks)
				}()
				churn := make([][]*churnUser, churnWriters)
				// acked sends a call and reports whether it was acknowledged; a call
				// answered with an error code is a test failure.
				acked := func(method string, params url.Values) bool {
					a, err := p.call(lab, method, params)
					if err != nil {
						return false // the server went away
					}
					if a.code() != 0 {
						t.Errorf("%s %v: %v", method, params, a)
						return false
					}
					acks.Add(1)
					return true
				}
				for w := range churn {
					load.Add(1)
					go func() {
						defer load.Done()
						for n := 0; ; n++ {
							select {
							case <-stop:
								return
							default:
							}
							c := &churnUser{uid: fmt.Sprintf("churn-%d-%d-%d", cycle, w, n), createSent: true}
							churn[w] = append(churn[w], c)
							if c.createAcked = acked("socialize.notifyLogin", url.Values{"siteUID": {c.uid}, "userInfo": {`{"nickname":"` + c.uid + `"}`}}); !c.createAcked {
								return
							}
							if n%2 == 1 { // every other user is deleted again: the one before
								prev := churn[w][n-1]
								prev.deleteSent = true
								if prev.deleteAcked = acked("socialize.deleteAccount", url.Values{"UID": {prev.uid}}); !prev.deleteAcked {
									return
								}
							}
						}
					}()
				}
				// Kill at a random moment once the load is well under way and, with
				// SQLite, once the WAL has started over at least once in this cycle.
				seq := walSequence(t, dir)
				deadline := time.Now().Add(20 * time.Second)
				for time.Now().Before(deadline) && (acks.Load() < 2000 || b.file && walSequence(t, dir) == seq) {
					time.Sleep(10 * time.Millisecond)
				}
				if b.file && walSequence(t, dir) != seq {
					restarted = true
				}
				time.Sleep(time.Duration(mathrand.IntN(200)) * time.Millisecond)
				p.kill()
				close(stop)
				load.Wait()
				if t.Failed() {
					t.FailNow()
				}
				total += acks.Load()

				if b.file {
					integrityCheck(t, dir)
				}
				p = serveAfterKill(t, dir, flags...)
				checkSlots(t, p, slots)
				for _, list := range churn {
					for _, c := range list {
						a, err := p.call(lab, "socialize.getUserInfo", url.Values{"UID": {c.uid}})
						if err != nil {
							t.Fatal(err)
						}
						exists := a.code() == 0 && a.str("nickname") == c.uid
						switch {
						case c.deleteAcked && a.code() != 403005:
							t.Errorf("%s: deleted (acknowledged) before the kill, found after the restart: %v", c.uid, a)
						case c.createAcked && !c.deleteSent && !exists:
							t.Errorf("%s: created (acknowledged) before the kill, not found after the restart: %v", c.uid, a)
						case a.code() != 0 && a.code() != 403005:
							t.Errorf("%s: %v", c.uid, a)
						}
					}
				}
				if t.Failed() {
					t.FailNow()
				}
			}
			if b.file && !restarted {
				t.Error("the WAL never started over during the load: the test did not reach that path")
			}
			t.Logf("%d kill cycles, %d acknowledged writes, all found", cycles, total)
			p.stop()
		})
	}
}
