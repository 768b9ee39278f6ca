package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/socius/socius"
	"github.com/socius/socius/internal/pgtest"
	"github.com/socius/socius/internal/syncbuf"
)

// The tests here run a server on a PostgreSQL of its own and make the database fail
// under it while signed setUserInfo and getUserInfo calls go on: what a caller sees
// (docs/postgresql.md, "When the database goes away").

// faultUsers is how many users the callers of a fault test write to, in turn.
const faultUsers = 8

// An outcome is what one call got: its answer's code (-1: no answer at all, err
// says why; -2: a getUserInfo that saw a write by half), its details, when it started
// and how long it took.
type outcome struct {
	method  string
	user    int
	seq     int // the value a setUserInfo wrote, 0 for a getUserInfo
	code    int
	details string
	err     error
	start   time.Time
	took    time.Duration
}

// faultCaller sends signed calls to a test server from goroutines, without failing the
// test from them, and records what each got.
type faultCaller struct {
	ts     *testServer
	client *http.Client

	mu       sync.Mutex
	outcomes []outcome
	seq      int
}

func newFaultCaller(ts *testServer) *faultCaller {
	// A call may take the store's bounds (docs/postgresql.md: about 30 s at most): the
	// client waits longer, so that a hang shows as a call that took too long.
	return &faultCaller{ts: ts, client: &http.Client{Timeout: 45 * time.Second, Transport: &http.Transport{}}}
}

// send makes one signed call and records its outcome.
func (c *faultCaller) send(t *testing.T, method string, user, seq int, params url.Values) outcome {
	params.Set("UID", fmt.Sprintf("u%d", user))
	p := c.ts.signed(t, c.ts.HTTPURL, method, params, "", "")
	o := outcome{method: method, user: user, seq: seq, code: -1, start: time.Now()}
	resp, err := c.client.Post(c.ts.HTTPURL+"/"+method, "application/x-www-form-urlencoded", strings.NewReader(p.Encode()))
	if err == nil {
		var body []byte
		body, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		var a answer
		if err == nil {
			if err = json.Unmarshal(body, &a); err != nil {
				err = fmt.Errorf("not a JSON answer: %v: %q", err, body)
			}
		}
		if err == nil {
			o.code, o.details = a.code(), a.str("errorDetails")
			if o.code == 0 && method == "socialize.getUserInfo" && a.str("firstName") != a.str("lastName") {
				o.code, o.details = -2, fmt.Sprintf("a write by half: firstName %q, lastName %q", a.str("firstName"), a.str("lastName"))
			}
		}
	}
	o.err, o.took = err, time.Since(o.start)
	c.mu.Lock()
	c.outcomes = append(c.outcomes, o)
	c.mu.Unlock()
	return o
}

// write sets a user's firstName and lastName to the next number, in one call.
func (c *faultCaller) write(t *testing.T) outcome {
	c.mu.Lock()
	c.seq++
	seq := c.seq
	c.mu.Unlock()
	v := strconv.Itoa(seq)
	return c.send(t, "socialize.setUserInfo", seq%faultUsers, seq,
		url.Values{"userInfo": {`{"firstName":"` + v + `","lastName":"` + v + `"}`}})
}

// writeTo sets user's firstName and lastName to the next number, in one call.
func (c *faultCaller) writeTo(t *testing.T, user int) outcome {
	c.mu.Lock()
	c.seq++
	seq := c.seq
	c.mu.Unlock()
	v := strconv.Itoa(seq)
	return c.send(t, "socialize.setUserInfo", user, seq,
		url.Values{"userInfo": {`{"firstName":"` + v + `","lastName":"` + v + `"}`}})
}

// read reads a user.
func (c *faultCaller) read(t *testing.T, user int) outcome {
	return c.send(t, "socialize.getUserInfo", user, 0, url.Values{})
}

// run makes writes and reads in turn from n goroutines until stop is closed.
func (c *faultCaller) run(t *testing.T, n int, stop <-chan struct{}) *sync.WaitGroup {
	var wg sync.WaitGroup
	for g := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				c.write(t)
				c.read(t, (g+i)%faultUsers)
			}
		}()
	}
	return &wg
}

// between returns the outcomes of the calls started in [from, to).
func (c *faultCaller) between(from, to time.Time) []outcome {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []outcome
	for _, o := range c.outcomes {
		if !o.start.Before(from) && o.start.Before(to) {
			out = append(out, o)
		}
	}
	return out
}

// checkAnswers fails the test for every call that got no Gigya envelope, an error
// other than 500028 Database error, or took longer than bound.
func checkAnswers(t *testing.T, what string, outcomes []outcome, bound time.Duration) (failed int) {
	t.Helper()
	for _, o := range outcomes {
		switch {
		case o.err != nil || o.code < 0:
			t.Errorf("%s: %s of u%d: no answer: %v %s", what, o.method, o.user, o.err, o.details)
		case o.code == socius.CodeDatabaseError:
			failed++
			if !strings.HasPrefix(o.details, "Database error") {
				t.Errorf("%s: %s of u%d: 500028 with details %q", what, o.method, o.user, o.details)
			}
		case o.code != 0:
			t.Errorf("%s: %s of u%d: %d %q, want success or 500028 Database error", what, o.method, o.user, o.code, o.details)
		}
		if o.took > bound {
			t.Errorf("%s: %s of u%d took %s, more than %s", what, o.method, o.user, o.took.Round(time.Millisecond), bound)
		}
	}
	return failed
}

// summary says how many calls got each answer, and how long the longest took.
func summary(outcomes []outcome) string {
	counts := map[string]int{}
	var longest time.Duration
	for _, o := range outcomes {
		counts[fmt.Sprintf("%d %s", o.code, o.details)]++
		longest = max(longest, o.took)
	}
	return fmt.Sprintf("%d calls, %v, the longest %s", len(outcomes), counts, longest.Round(time.Millisecond))
}

// checkWrites reads every user once the database is back and fails the test for a
// user whose firstName and lastName differ (a write by half), or whose value is not
// that of a write, acknowledged or failed (which may have been committed before its
// answer was lost), that no acknowledged write followed.
func (c *faultCaller) checkWrites(t *testing.T) {
	t.Helper()
	c.mu.Lock()
	writes := map[int][]outcome{}
	for _, o := range c.outcomes {
		if o.seq > 0 {
			writes[o.user] = append(writes[o.user], o)
		}
	}
	c.mu.Unlock()
	for user := range faultUsers {
		a := c.ts.post(t, c.ts.HTTPURL, "socialize.getUserInfo",
			c.ts.signed(t, c.ts.HTTPURL, "socialize.getUserInfo", url.Values{"UID": {fmt.Sprintf("u%d", user)}}, "", ""))
		if a.code() != 0 {
			t.Errorf("u%d after the fault: %v", user, a)
			continue
		}
		first, last := a.str("firstName"), a.str("lastName")
		if first != last {
			t.Errorf("u%d after the fault: firstName %q, lastName %q: a write by half", user, first, last)
			continue
		}
		// Writes to one user from different callers may overlap: the value must be
		// that of a write that no acknowledged write began after the end of (which
		// would have overwritten it).
		var from *outcome
		for i, o := range writes[user] {
			if strconv.Itoa(o.seq) == first {
				from = &writes[user][i]
			}
		}
		var acked []outcome
		for _, o := range writes[user] {
			if o.code == 0 {
				acked = append(acked, o)
			}
		}
		switch {
		case from == nil && len(acked) > 0:
			t.Errorf("u%d after the fault: firstName %q, the value of no write, though %d were acknowledged", user, first, len(acked))
		case from != nil:
			for _, o := range acked {
				if o.start.After(from.start.Add(from.took)) {
					t.Errorf("u%d after the fault: the value of write %d (%d %q), though write %d, begun after it, was acknowledged", user, from.seq, from.code, from.details, o.seq)
					break
				}
			}
		}
	}
}

// faultServer starts PostgreSQL with setup (synchronous_commit on: the harness turns
// it off, which loses acknowledged commits in a crash) and Socius on it, with the
// users the callers write to. Its logs go to logs.
func faultServer(t *testing.T, setup pgtest.Setup, store func(*pgtest.Server) string, logs io.Writer) (*pgtest.Server, *testServer) {
	t.Helper()
	setup.Settings = append([]string{"synchronous_commit=on"}, setup.Settings...)
	srv := pgtest.StartWith(t, setup)
	dsn := ""
	if store != nil {
		dsn = store(srv)
	} else {
		dsn = srv.NewURL(t)
	}
	ts := startMain(t, func(m *Main) { m.LogOutput = logs }, "--store", dsn, "--master-key-file", testMasterKeyFile(t),
		"--https", "", "--log-level", "warn")
	for user := range faultUsers {
		ts.login(t, fmt.Sprintf("u%d", user))
	}
	return srv, ts
}

// TestServeDatabaseRestartUnderLoad stops PostgreSQL (fast shutdown) and, in another
// run, kills it outright (SIGKILL of the postmaster and of every process it started),
// while signed setUserInfo and getUserInfo calls go on from four callers, then starts it
// again: every call gets an answer, success or 500028 Database error, within the
// store's bounds; every write acknowledged before the database came back is there,
// none by half (checked before anything else is written); and 3 s after the database
// is back every call succeeds, with the same server.
func TestServeDatabaseRestartUnderLoad(t *testing.T) {
	for _, how := range []string{"stop", "kill"} {
		t.Run(how, func(t *testing.T) {
			var logs syncbuf.Buffer
			srv, ts := faultServer(t, pgtest.Setup{}, nil, &logs)
			c := newFaultCaller(ts)
			stop := make(chan struct{})
			wg := c.run(t, 4, stop)
			time.Sleep(500 * time.Millisecond)

			down := time.Now()
			if how == "stop" {
				srv.Stop()
			} else {
				srv.Kill()
			}
			time.Sleep(1500 * time.Millisecond)
			close(stop)
			wg.Wait()
			outage := c.between(down, time.Now())
			failed := checkAnswers(t, "during the outage", outage, 12*time.Second)
			if failed == 0 {
				t.Errorf("during the outage: %d calls, none failed: the database was not down", len(outage))
			}

			// Back: before anything else is written, every acknowledged write is there
			// (the callers' later writes would hide a lost one).
			if err := srv.Start(); err != nil {
				t.Fatal(err)
			}
			up := time.Now()
			for c.read(t, 0).code != 0 {
				if time.Since(up) > 5*time.Second {
					t.Fatalf("no getUserInfo succeeded within 5 s of the database's start: %s", summary(c.between(up, time.Now())))
				}
				time.Sleep(50 * time.Millisecond)
			}
			checkAnswers(t, "once the database is back", c.between(up, time.Now()), 12*time.Second)
			c.checkWrites(t)

			// Calls go on, and all succeed from 3 s after the start on.
			stop = make(chan struct{})
			wg = c.run(t, 4, stop)
			settled := up.Add(3 * time.Second)
			time.Sleep(time.Until(settled.Add(time.Second)))
			close(stop)
			wg.Wait()
			checkAnswers(t, "once the database is back", c.between(up, settled), 12*time.Second)
			after := c.between(settled, time.Now())
			if n := checkAnswers(t, "3 s after the database is back", after, 5*time.Second); n > 0 || len(after) == 0 {
				t.Errorf("3 s after the database is back: %d of %d calls failed", n, len(after))
			}
			c.checkWrites(t)
			t.Logf("during the outage: %s; after: %s", summary(outage), summary(c.between(up, time.Now())))
		})
	}
}

// otherBackends returns the process ids of the database's connections other than
// the harness's own: Socius's.
func otherBackends(t *testing.T, conn *pgx.Conn) []int {
	t.Helper()
	rows, err := conn.Query(t.Context(), `SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`)
	if err != nil {
		t.Fatal(err)
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		t.Fatal(err)
	}
	return pids
}

// TestServeBackendsTerminated ends every connection of a serving Socius from another
// session (pg_terminate_backend, as a DBA or a pooler's health check does): the calls
// after it succeed, but for at most one 500028 for the connections found gone.
func TestServeBackendsTerminated(t *testing.T) {
	var logs syncbuf.Buffer
	srv, ts := faultServer(t, pgtest.Setup{}, nil, &logs)
	conn, err := pgx.Connect(t.Context(), strings.Replace(srv.NewURL(t), "search_path=", "application_name=harness&search_path=", 1))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	c := newFaultCaller(ts)
	for range 2 {
		// Warm the pool: several connections, from concurrent calls.
		wg := c.run(t, 4, closedAfter(300*time.Millisecond))
		wg.Wait()
		pids := otherBackends(t, conn)
		if len(pids) == 0 {
			t.Fatal("Socius has no connection to terminate")
		}
		for _, pid := range pids {
			if _, err := conn.Exec(t.Context(), `SELECT pg_terminate_backend($1, 5000)`, pid); err != nil {
				t.Fatal(err)
			}
		}
		from := time.Now()
		for i := range 6 {
			if i%2 == 0 {
				c.write(t)
			} else {
				c.read(t, i%faultUsers)
			}
		}
		after := c.between(from, time.Now())
		t.Logf("after %d connections were terminated: %s", len(pids), summary(after))
		if failed := checkAnswers(t, "after the connections were terminated", after, 5*time.Second); failed > 1 {
			t.Errorf("after %d connections were terminated, %d of 6 calls failed, want at most 1", len(pids), failed)
		}
	}

	// Terminated under calls: each call then in flight may fail (a write whose
	// statement was sent is not run again), the calls after them succeed.
	stop := make(chan struct{})
	wg := c.run(t, 4, stop)
	time.Sleep(300 * time.Millisecond)
	pids := otherBackends(t, conn)
	for _, pid := range pids {
		if _, err := conn.Exec(t.Context(), `SELECT pg_terminate_backend($1, 5000)`, pid); err != nil {
			t.Fatal(err)
		}
	}
	cut := time.Now()
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()
	around := c.between(cut.Add(-100*time.Millisecond), cut.Add(200*time.Millisecond))
	t.Logf("%d connections terminated under four callers: %s", len(pids), summary(around))
	if failed := checkAnswers(t, "when the connections were terminated under calls", around, 5*time.Second); failed > len(pids) {
		t.Errorf("%d connections terminated under four callers: %d calls failed", len(pids), failed)
	}
	later := c.between(cut.Add(200*time.Millisecond), time.Now())
	if failed := checkAnswers(t, "after the connections were terminated under calls", later, 5*time.Second); failed > 0 {
		t.Errorf("after the connections were terminated under calls: %d of %d calls failed", failed, len(later))
	}
	c.checkWrites(t)
}

// closedAfter returns a channel closed after d.
func closedAfter(d time.Duration) <-chan struct{} {
	ch := make(chan struct{})
	time.AfterFunc(d, func() { close(ch) })
	return ch
}

// TestServeUsersTableLocked: another session holds the users table locked (LOCK TABLE
// ... IN ACCESS EXCLUSIVE MODE, as a DBA's ALTER TABLE or a long migration does) for
// longer than a store operation may take: signed getUserInfo and setUserInfo calls get
// 500028 "the store did not answer in time" within the bound, not later; the write is
// not applied when the lock goes, and Socius leaves no statement waiting behind it;
// once the lock is gone, calls succeed.
func TestServeUsersTableLocked(t *testing.T) {
	var logs syncbuf.Buffer
	_, ts := faultServer(t, pgtest.Setup{}, nil, &logs)
	locker, err := pgx.Connect(t.Context(), ts.StoreURL)
	if err != nil {
		t.Fatal(err)
	}
	defer locker.Close(context.Background())
	c := newFaultCaller(ts)
	if o := c.write(t); o.code != 0 {
		t.Fatalf("a write before the lock: %v", o)
	}
	before := c.read(t, 1)

	tx, err := locker.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(t.Context(), `LOCK TABLE users IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	from := time.Now()
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(2)
		go func() { defer wg.Done(); c.write(t) }()
		go func() { defer wg.Done(); c.read(t, 1) }()
	}
	// While the calls wait, their statements show as waiting for a lock: the count
	// after the calls would see any left.
	if n := lockWaits(t, tx, 1, 8*time.Second); n == 0 {
		t.Errorf("while the calls wait for the lock, no statement waits for one")
	}
	wg.Wait()
	locked := c.between(from, time.Now())
	if failed := checkAnswers(t, "while the users table is locked", locked, 12*time.Second); failed != len(locked) {
		t.Errorf("while the users table is locked: %d of %d calls failed, want all", failed, len(locked))
	}
	for _, o := range locked {
		if o.code == socius.CodeDatabaseError && o.details != "Database error: the store did not answer in time" {
			t.Errorf("%s while the users table is locked: %q, want the store did not answer in time", o.method, o.details)
		}
	}
	// Socius's statements behind the lock: each holds a connection of the database's
	// until the lock goes, and then runs.
	// pgx, giving up on a statement at its deadline, closes the connection and asks
	// the server to cancel it: the cancel may take a moment.
	var waiting int
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if waiting = lockWaiting(t, tx); waiting == 0 || time.Now().After(deadline) {
			break
		}
	}
	t.Logf("while the users table is locked: %s", summary(locked))
	if waiting != 0 {
		t.Errorf("%d of Socius's statements still wait for the lock after their calls failed", waiting)
	}
	if err := tx.Rollback(t.Context()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if o := c.read(t, 1); o.code != 0 {
		t.Errorf("getUserInfo once the lock is gone: %d %q %v", o.code, o.details, o.err)
	} else if before.code != 0 {
		t.Fatalf("a read before the lock: %v", before)
	}
	c.checkWrites(t)
	// A signed write records its nonce with its work; when the work timed out, its
	// nonce alone: the statement cancelled behind the lock, had it run after, would have
	// found the nonce taken and written nothing.
	for _, o := range locked {
		if o.seq == 0 {
			continue
		}
		if a := ts.call(t, "socialize.getUserInfo", url.Values{"UID": {fmt.Sprintf("u%d", o.user)}}); a.str("firstName") == strconv.Itoa(o.seq) {
			t.Errorf("the write %d that failed while the users table was locked was applied after", o.seq)
		}
	}
	if o := c.write(t); o.code != 0 {
		t.Errorf("setUserInfo once the lock is gone: %d %q %v", o.code, o.details, o.err)
	}
	if status, body := get(t, ts.AdminURL+"/readyz"); status != 200 {
		t.Errorf("/readyz once the lock is gone: %d %q", status, body)
	}
}

// TestServeUserRowLocked: another session holds one user's row locked and sits idle in
// its transaction, as a node frozen in the middle of a call does (docs/postgresql.md):
// a signed setUserInfo of that user gets 500028 "the store did not answer in time" at
// the store's 10 s deadline, not 10 s after it (its nonce, then recorded alone, does
// not wait for the statement that timed out); meanwhile the node's other calls, to
// other users or reading that one, answer at once, and so does /readyz: the
// connection given up on is not handed out again broken. With every connection of the
// pool stuck so, /readyz answers 503 and a call to another user waits for a
// connection, answered within the bound. Once the lock goes, the user is written, and
// none of the writes that failed is applied. (TestServeUsersTableLocked locks the
// whole table, with no connection to spare.)
func TestServeUserRowLocked(t *testing.T) {
	const conns = 3
	var logs syncbuf.Buffer
	_, ts := faultServer(t, pgtest.Setup{}, func(srv *pgtest.Server) string {
		return srv.NewURL(t) + fmt.Sprintf("&pool_max_conns=%d", conns)
	}, &logs)
	locker, err := pgx.Connect(t.Context(), strings.Replace(ts.StoreURL, fmt.Sprintf("&pool_max_conns=%d", conns), "", 1))
	if err != nil {
		t.Fatal(err)
	}
	defer locker.Close(context.Background())
	c := newFaultCaller(ts)
	tx, err := locker.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(t.Context(), `SELECT 1 FROM users WHERE uid = 'u1'::bytea FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	// stuck writes u1 from n goroutines, and returns their outcomes once all answered.
	stuck := func(n int) func() []outcome {
		var wg sync.WaitGroup
		out := make([]outcome, n)
		for i := range n {
			wg.Go(func() { out[i] = c.writeTo(t, 1) })
		}
		return func() []outcome { wg.Wait(); return out }
	}
	timedOut := func(what string, outcomes []outcome) {
		t.Helper()
		for _, o := range outcomes {
			if o.code != socius.CodeDatabaseError || o.details != "Database error: the store did not answer in time" ||
				o.took < 9*time.Second || o.took > 12*time.Second {
				t.Errorf("%s: %d %q %v after %s, want 500028 the store did not answer in time after about 10 s",
					what, o.code, o.details, o.err, o.took.Round(time.Millisecond))
			}
		}
	}
	quick := func(what string, o outcome) {
		t.Helper()
		if o.code != 0 || o.took > 2*time.Second {
			t.Errorf("%s: %d %q %v after %s, want success at once", what, o.code, o.details, o.err, o.took.Round(time.Millisecond))
		}
	}

	// One call stuck: the others go on.
	wait := stuck(1)
	if n := lockWaits(t, tx, 1, 5*time.Second); n != 1 {
		t.Errorf("%d statements wait for the row's lock, want the stuck call's", n)
	}
	quick("setUserInfo of another user beside the stuck one", c.writeTo(t, 2))
	quick("getUserInfo of the locked user", c.read(t, 1))
	if status, body := get(t, ts.AdminURL+"/readyz"); status != 200 {
		t.Errorf("/readyz beside one stuck call: %d %q", status, body)
	}
	failed := wait()
	timedOut("setUserInfo of the locked user", failed)
	quick("setUserInfo of another user after the stuck one failed", c.writeTo(t, 2))
	quick("getUserInfo after the stuck one failed", c.read(t, 2))

	// Every connection stuck: the readiness probe, which waits 2 s for one, says so; a
	// call to another user waits for a connection (the stuck calls' own end at their
	// deadline, and their nonces are recorded), within the bound all the same.
	wait = stuck(conns)
	if n := lockWaits(t, tx, conns, 5*time.Second); n != conns {
		t.Errorf("%d statements wait for the row's lock, want the %d stuck calls'", n, conns)
	}
	if status, body := get(t, ts.AdminURL+"/readyz"); status != 503 {
		t.Errorf("/readyz with every connection stuck: %d %q, want 503", status, body)
	}
	other := c.writeTo(t, 2)
	failed = append(failed, wait()...)
	timedOut("setUserInfo of the locked user, every connection stuck", failed[1:])
	t.Logf("setUserInfo of another user with every connection stuck: %d %q after %s", other.code, other.details, other.took.Round(time.Millisecond))
	if other.took > 12*time.Second || other.code != 0 && other.details != "Database error: the store did not answer in time" {
		t.Errorf("setUserInfo of another user with every connection stuck: %d %q %v after %s, want an answer within 12 s",
			other.code, other.details, other.err, other.took.Round(time.Millisecond))
	}

	if err := tx.Rollback(t.Context()); err != nil {
		t.Fatal(err)
	}
	// The statements given up on were cancelled, not left to run when the lock goes.
	time.Sleep(200 * time.Millisecond)
	if a := ts.call(t, "socialize.getUserInfo", url.Values{"UID": {"u1"}}); a.code() != 0 {
		t.Errorf("getUserInfo of u1 once the lock is gone: %v", a)
	} else {
		for _, o := range failed {
			if a.str("firstName") == strconv.Itoa(o.seq) {
				t.Errorf("the write %d that failed while u1 was locked was applied after", o.seq)
			}
		}
	}
	quick("setUserInfo of the user once the lock is gone", c.writeTo(t, 1))
	c.checkWrites(t)
}

// TestServeRoleChanged: Socius's role gets another password, or loses its privileges
// on the tables, while Socius serves. The connections it has keep working across a
// password change (PostgreSQL checks a password at connecting); once they are gone
// (terminated here), calls get 500028 "the database refused the server's credentials", and
// the log says why (password authentication failed) without the password. Without privileges,
// calls get 500028 Database error and the log says "permission denied". Set back, the
// same server answers again. A node started with the wrong password exits with status
// 1, saying why, without the password.
func TestServeRoleChanged(t *testing.T) {
	var logs syncbuf.Buffer
	const password, other = "first-Pa55word", "second-Pa55word"
	setup := pgtest.Setup{HBA: "local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n"}
	srv, ts := faultServer(t, setup, func(srv *pgtest.Server) string {
		srv.Exec(t, "CREATE ROLE socius LOGIN PASSWORD '"+password+"'")
		srv.Exec(t, "CREATE DATABASE socius OWNER socius")
		return fmt.Sprintf("postgres://socius:%s@127.0.0.1:%d/socius?sslmode=disable", password, srv.Port())
	}, &logs)
	c := newFaultCaller(ts)
	calls := func(what string, want int) {
		t.Helper()
		from := time.Now()
		c.write(t)
		c.read(t, 1)
		outcomes := c.between(from, time.Now())
		if failed := checkAnswers(t, what, outcomes, 12*time.Second); failed != want {
			t.Errorf("%s: %d of %d calls failed, want %d", what, failed, len(outcomes), want)
		}
	}
	terminate := func() {
		t.Helper()
		srv.Exec(t, `SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE usename = 'socius'`)
	}
	calls("before", 0)

	srv.Exec(t, "ALTER ROLE socius PASSWORD '"+other+"'")
	calls("the password changed, the connections still open", 0)
	terminate()
	// The first call after the termination may find a connection gone and fail at
	// once; then every call must connect, and is refused.
	c.read(t, 1)
	mark := len(logs.String())
	calls("the password changed, the connections gone", 2)
	for _, o := range c.between(time.Now().Add(-time.Minute), time.Now()) {
		if want := "Database error: the database refused the server's credentials (password authentication failed)"; o.code == socius.CodeDatabaseError && o.details != want {
			t.Errorf("%s with the wrong password: %q, want %q", o.method, o.details, want)
			break
		}
	}
	logged := logs.String()[mark:]
	if !strings.Contains(logged, "password authentication failed") || strings.Contains(logged, password) || strings.Contains(logged, other) {
		t.Errorf("the log with the wrong password (want the reason, never a password):\n%s", logged)
	}
	srv.Exec(t, "ALTER ROLE socius PASSWORD '"+password+"'")
	calls("the password set back", 0)

	// The role owns the tables, and so may take its own privileges away, and give
	// them back.
	owner, err := pgx.Connect(t.Context(), ts.StoreURL)
	if err != nil {
		t.Fatal(err)
	}
	defer owner.Close(context.Background())
	if _, err := owner.Exec(t.Context(), "REVOKE ALL ON ALL TABLES IN SCHEMA public FROM socius"); err != nil {
		t.Fatal(err)
	}
	mark = len(logs.String())
	calls("the role without privileges", 2)
	if logged := logs.String()[mark:]; !strings.Contains(logged, "permission denied") {
		t.Errorf("the log without privileges (want permission denied):\n%s", logged)
	}
	if _, err := owner.Exec(t.Context(), "GRANT ALL ON ALL TABLES IN SCHEMA public TO socius"); err != nil {
		t.Fatal(err)
	}
	calls("the privileges given back", 0)
	c.checkWrites(t)

	// A node started with the wrong password exits at once, saying so, without it.
	wrong := strings.Replace(ts.StoreURL, password, other, 1)
	code, out, errOut := runCLI(t, noEnv, "serve", "--store", wrong, "--master-key-file", ts.MasterKeyFile,
		"--data", t.TempDir(), "--http", "127.0.0.1:0", "--https", "", "--admin", "127.0.0.1:0")
	t.Logf("serve with the wrong password: exit %d: %s", code, strings.TrimSpace(errOut))
	if code != 1 || !strings.Contains(errOut, "password authentication failed") || strings.Contains(out+errOut, other) {
		t.Errorf("serve with the wrong password: exit %d, want 1, saying password authentication failed without the password\nstdout: %s\nstderr: %s", code, out, errOut)
	}
}

// TestServeStartsWithTheDatabaseDown: `socius serve` started while PostgreSQL is down
// does not wait for it: it exits with status 1 at once, saying it could not open the
// store and why (connection refused), the password masked (docs/postgresql.md, "When
// the database goes away"); started again once the database is up, it serves.
func TestServeStartsWithTheDatabaseDown(t *testing.T) {
	const password = "Pa55word-never-printed"
	srv := pgtest.Start(t)
	dsn := strings.Replace(srv.NewURL(t), "postgres@", "postgres:"+password+"@", 1)
	key := testMasterKeyFile(t)
	srv.Stop()
	args := []string{"serve", "--store", dsn, "--master-key-file", key, "--data", t.TempDir(),
		"--http", "127.0.0.1:0", "--https", "", "--admin", "127.0.0.1:0"}
	start := time.Now()
	code, out, errOut := runCLI(t, noEnv, args...)
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("serve with the database down took %s to give up", took)
	}
	if code != 1 || !strings.Contains(errOut, "connection refused") || strings.Contains(out+errOut, password) {
		t.Errorf("serve with the database down: exit %d, want 1, saying connection refused without the password\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	t.Logf("serve with the database down: exit %d after %s: %s", code, time.Since(start).Round(time.Millisecond), strings.TrimSpace(errOut))

	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, "--store", dsn, "--master-key-file", key)
	ts.login(t, "u1")
}

// lockWaits returns how many statements of the database wait for a lock, as the
// session of tx sees it, once they are at least n or within has passed: the calls
// started before have reached PostgreSQL, however loaded the machine (a fixed sleep
// was a guess). The statistics are read anew each time: a transaction otherwise sees
// those of its first read.
func lockWaits(t *testing.T, tx pgx.Tx, n int, within time.Duration) int {
	t.Helper()
	for deadline := time.Now().Add(within); ; time.Sleep(20 * time.Millisecond) {
		if got := lockWaiting(t, tx); got >= n || time.Now().After(deadline) {
			return got
		}
	}
}

// lockWaiting returns how many statements of the database wait for a lock now, as
// the session of tx sees it.
func lockWaiting(t *testing.T, tx pgx.Tx) int {
	t.Helper()
	var n int
	if _, err := tx.Exec(t.Context(), `SELECT pg_stat_clear_snapshot()`); err != nil {
		t.Fatal(err)
	}
	if err := tx.QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
