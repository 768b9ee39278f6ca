package e2e

import (
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"fmt"
	mathrand "math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/socius/socius/internal/pgtest"
)

// A backend is a store the process-level tests run the binary on.
type backend struct {
	name string
	// flags returns the `socius serve` flags of a new, empty store of this kind, for
	// the data folder dir (which holds the certificate, and the master key).
	flags func(t *testing.T, dir string) []string
	// file: the store is the SQLite file in dir, which the tests can check directly.
	file bool
}

// backends are the stores the crash and shutdown tests run on: the embedded SQLite
// file, and PostgreSQL (a fresh database on the throwaway server of package pgtest;
// Socius is killed, the database server is not), directly and through a PgBouncer in
// transaction mode (pgx's exec mode, as docs/postgresql.md gives it).
var backends = []backend{
	{"sqlite", func(*testing.T, string) []string { return nil }, true},
	{"postgres", func(t *testing.T, dir string) []string {
		return []string{"--store", pgtest.URL(t), "--master-key-file", masterKeyFile(t, dir)}
	}, false},
	{"pgbouncer", func(t *testing.T, dir string) []string {
		url := pgtest.StartBouncer(t, 4).NewURL(t) + "&default_query_exec_mode=exec"
		return []string{"--store", url, "--master-key-file", masterKeyFile(t, dir)}
	}, false},
}

// masterKeyFile writes a new master key into dir and returns the file's name.
func masterKeyFile(t *testing.T, dir string) string {
	key := make([]byte, 32)
	rand.Read(key)
	file := filepath.Join(dir, "postgres-master.key")
	if err := os.WriteFile(file, []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// A slot is one (user, field) that exactly one writer owns. The writer stores
// "<field>-<n>" with n increasing by one per write.
type slot struct {
	uid, field string
	acked      int // the last n answered with errorCode 0; 0 when none
	sent       int // the n of the last write sent (acked, failed or unanswered)
}

func (s *slot) value(n int) string { return fmt.Sprintf("%s-%d", s.field, n) }

// parse reads n back from a stored value; 0 for no value.
func (s *slot) parse(v string) (int, error) {
	if v == "" {
		return 0, nil
	}
	rest, ok := strings.CutPrefix(v, s.field+"-")
	n, err := strconv.Atoi(rest)
	if !ok || err != nil || n <= 0 {
		return 0, fmt.Errorf("%s of %s holds %q, which no writer wrote", s.field, s.uid, v)
	}
	return n, nil
}

// slotFields are the text fields the writers use (six per user).
var slotFields = []string{"nickname", "firstName", "lastName", "email", "photoURL", "thumbnailURL"}

func newSlots(users int) []*slot {
	var slots []*slot
	for u := 0; u < users; u++ {
		for _, f := range slotFields {
			slots = append(slots, &slot{uid: fmt.Sprintf("crash-user-%d", u), field: f})
		}
	}
	return slots
}

// writeLoad runs one writer per set of slots, each sending setUserInfo calls for its
// slots in turn (one at a time, each with its slot's next n), until stop is closed or
// a call fails in transport (the server is gone). A call answered with an error code
// is a test failure. It returns once every writer has stopped, and counts the
// acknowledged writes in acks.
func writeLoad(t *testing.T, p *proc, sets [][]*slot, stop <-chan struct{}, acks *atomic.Int64) {
	var wg sync.WaitGroup
	for _, set := range sets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				s := set[i%len(set)]
				n := s.sent + 1
				s.sent = n
				a, err := p.call(lab, "socialize.setUserInfo", url.Values{
					"UID": {s.uid}, "userInfo": {fmt.Sprintf(`{%q:%q}`, s.field, s.value(n))},
				})
				if err != nil {
					return // the server went away: this write may or may not be durable
				}
				if a.code() != 0 {
					t.Errorf("setUserInfo %s %s=%d: %v", s.uid, s.field, n, a)
					return
				}
				s.acked = n
				acks.Add(1)
			}
		}()
	}
	wg.Wait()
}

// eachAlone puts every slot in a set of its own: a writer per slot.
func eachAlone(slots []*slot) [][]*slot {
	sets := make([][]*slot, len(slots))
	for i, s := range slots {
		sets[i] = []*slot{s}
	}
	return sets
}

// checkSlots reads every slot from the restarted server: each must hold its last
// acknowledged value, or the value of the one write that was sent after it and never
// answered. Older or missing values are lost writes. It moves each slot on to what is
// stored, so the next round of writes continues from there.
func checkSlots(t *testing.T, p *proc, slots []*slot) {
	t.Helper()
	users := map[string]answer{}
	for _, s := range slots {
		a, ok := users[s.uid]
		if !ok {
			a = p.mustCall(lab, "socialize.getUserInfo", url.Values{"UID": {s.uid}})
			users[s.uid] = a
		}
		got, err := s.parse(a.str(s.field))
		if err != nil {
			t.Error(err)
			continue
		}
		if got != s.acked && !(got == s.sent && s.sent == s.acked+1) {
			t.Errorf("%s of %s is %d after the restart; the last acknowledged write was %d, the last sent %d",
				s.field, s.uid, got, s.acked, s.sent)
		}
		s.acked, s.sent = got, got
	}
}

// integrityCheck runs SQLite's own consistency check on the data folder's store.
func integrityCheck(t *testing.T, dir string) {
	t.Helper()
	// Not read-only: the first connection after a crash recovers the write-ahead log.
	db, err := sql.Open("sqlite", filepath.Join(dir, "socius.db")+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var res string
	if err := db.QueryRow(`PRAGMA integrity_check`).Scan(&res); err != nil || res != "ok" {
		t.Fatalf("integrity_check after the crash: %q, %v", res, err)
	}
}

// TestCrashSafety kills the server with SIGKILL while concurrent setUserInfo calls
// run, restarts it on the same data folder, and requires every acknowledged write to
// be there with exactly its value, several times over. A SIGKILL loses what the process
// holds in memory, not what it has written to the kernel: this proves that Socius
// answers only after the write has left the process (and the store's WAL makes it
// consistent), not that it survives a power loss (the fsync of every commit, which the
// sqlite package's tests cover, is what guarantees that).
func TestCrashSafety(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			const cycles = 4
			dir := t.TempDir()
			flags := append(append([]string{}, labFlags...), b.flags(t, dir)...)
			slots := newSlots(4)
			p := serve(t, dir, flags...)
			for u := 0; u < 4; u++ {
				p.login(lab, fmt.Sprintf("crash-user-%d", u), "")
			}
			var total int64
			for cycle := 1; cycle <= cycles; cycle++ {
				var acks atomic.Int64
				stop := make(chan struct{})
				done := make(chan struct{})
				go func() {
					writeLoad(t, p, eachAlone(slots), stop, &acks)
					close(done)
				}()
				// Kill at a random moment once the load is well under way.
				deadline := time.Now().Add(5 * time.Second)
				for acks.Load() < 50 && time.Now().Before(deadline) {
					time.Sleep(5 * time.Millisecond)
				}
				time.Sleep(time.Duration(mathrand.IntN(150)) * time.Millisecond)
				p.kill()
				<-done
				close(stop)
				if acks.Load() == 0 {
					t.Fatalf("cycle %d: no write was acknowledged before the kill", cycle)
				}
				total += acks.Load()

				if b.file {
					integrityCheck(t, dir)
				}
				p = serveAfterKill(t, dir, flags...)
				checkSlots(t, p, slots)
				if t.Failed() {
					t.FailNow()
				}
			}
			t.Logf("%d kill cycles, %d acknowledged writes, all found", cycles, total)
			p.stop()
		})
	}
}
