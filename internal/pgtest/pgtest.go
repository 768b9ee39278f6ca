// Package pgtest runs throwaway PostgreSQL servers for tests: the real server, from the
// system's PostgreSQL binaries (Debian's postgresql package puts them under
// /usr/lib/postgresql/<version>/bin), in a temp folder, on a free port of 127.0.0.1.
//
// A test package calls Main from its TestMain. The first test that asks for a database
// (URL) starts one shared server for the whole test binary; each call to URL gives a
// fresh, empty place on it, so tests never see each other's data. That place is a
// schema of its own in one database, named in the URL's search_path: to the code under
// test it is an empty database, and creating it takes a millisecond where CREATE
// DATABASE takes half a second (a hundred tests would spend a minute on it). Main stops
// the server when the tests are done. A test that needs a server of its own, to stop and
// start it (Start), to crash it (Crash), with settings, files and a pg_hba.conf of its
// own (StartWith: TLS, passwords), or with a hot standby to promote (StartStandby,
// Promote), gets one that its cleanup removes; and a PgBouncer in front of a server
// (StartBouncer, in bouncer.go), from Debian's pgbouncer package (SOCIUS_PGBOUNCER names
// the binary when it is elsewhere).
//
// When the binaries are missing the tests fail with a message saying how to get them
// (./test.sh installs them), unless SOCIUS_SKIP_POSTGRES=1 asks to skip them instead.
// SOCIUS_PG_BIN names the folder of the binaries when they are elsewhere.
//
// PostgreSQL refuses to run as root, and tests (in CI too) often run as root: then the
// server runs as the postgres user that the Debian package creates, its folder given
// to that user. The server is a child process of the test binary that the kernel stops
// (SIGQUIT, PostgreSQL's immediate shutdown) if the test binary dies without cleaning
// up, so a crashed or timed-out test leaves no server behind.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// SkipEnv is the variable that, set to 1, skips the PostgreSQL tests when the binaries
// are missing instead of failing them.
const SkipEnv = "SOCIUS_SKIP_POSTGRES"

// An owner is the user and group a server's files and processes are given to.
type owner struct{ uid, gid int }

// A Server is one running PostgreSQL server.
type Server struct {
	dir   string // the temp folder: data/, the socket, the log
	bin   string
	port  int
	owner *owner // whom the server runs as; nil: the current user
	setup Setup

	dbOnce sync.Once

	mu   sync.Mutex
	cmd  *exec.Cmd
	exit chan struct{} // closed when cmd has exited
}

var (
	sharedOnce sync.Once
	shared     *Server
	sharedErr  error
	dbSeq      atomic.Int64
)

// Main runs the tests of a package, stops the shared server if a test started it, and
// exits. Call it from TestMain.
func Main(m *testing.M) { os.Exit(Run(m)) }

// Run is Main without the exit, for a TestMain with cleanups of its own: it returns
// the exit code of the tests.
func Run(m *testing.M) int {
	code := m.Run()
	if shared != nil {
		shared.stop()
		shared.remove()
	}
	return code
}

// URL returns the URL of a new, empty schema on the shared server, starting the
// server on first use.
func URL(t testing.TB) string {
	t.Helper()
	sharedOnce.Do(func() { shared, sharedErr = start(Setup{}) })
	if sharedErr != nil {
		unavailable(t, sharedErr)
	}
	return shared.NewURL(t)
}

// HoldLock opens a session on url (named app, unless app is empty) that runs
// statement (a LOCK TABLE, a read) in a transaction it leaves open, as a psql left idle
// in a transaction does, and returns its backend's pid and the transaction, rolled
// back and closed by the test's cleanup if the test has not ended it.
func HoldLock(t testing.TB, url, app, statement string) (uint32, pgx.Tx) {
	t.Helper()
	if app != "" {
		url += "&application_name=" + app
	}
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	tx, err := conn.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tx.Rollback(context.Background()) })
	if _, err := tx.Exec(t.Context(), statement); err != nil {
		t.Fatal(err)
	}
	return conn.PgConn().PID(), tx
}

// Start starts a server for this test alone, removed by the test's cleanup.
func Start(t testing.TB) *Server {
	t.Helper()
	return StartWith(t, Setup{})
}

// A Setup is what StartWith adds to a server of its own.
type Setup struct {
	// Files are written into the data folder before the server starts, owned by the
	// server's user, mode 0600 (certificates and keys, named in Settings).
	Files map[string][]byte
	// Settings are given to postgres as -c name=value.
	Settings []string
	// HBA replaces pg_hba.conf, which otherwise trusts every connection. The harness
	// connects through the server's Unix socket, which it must let in
	// ("local all all trust").
	HBA string
}

// StartWith starts a server for this test alone with setup, removed by the test's
// cleanup. With setup.HBA, URL-giving methods still name the server's TCP address,
// with sslmode=disable: adjust them to what HBA allows.
func StartWith(t testing.TB, setup Setup) *Server {
	t.Helper()
	s, err := start(setup)
	if err != nil {
		unavailable(t, err)
	}
	t.Cleanup(func() {
		s.stop()
		s.remove()
	})
	return s
}

var errNoBinaries = errors.New("the PostgreSQL server binaries (initdb, postgres) were not found under /usr/lib/postgresql/*/bin")

func unavailable(t testing.TB, err error) {
	t.Helper()
	if errors.Is(err, errNoBinaries) {
		if os.Getenv(SkipEnv) == "1" {
			t.Skipf("PostgreSQL tests skipped (%s=1): %v", SkipEnv, err)
		}
		t.Fatalf("%v.\nRun ./test.sh, which installs them (Debian package postgresql), or set %s=1 to skip the PostgreSQL tests.", err, SkipEnv)
	}
	t.Fatalf("pgtest: cannot start PostgreSQL: %v", err)
}

// binDir finds the folder of initdb and postgres: SOCIUS_PG_BIN, else the newest
// version under /usr/lib/postgresql.
func binDir() (string, error) {
	if d := os.Getenv("SOCIUS_PG_BIN"); d != "" {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err != nil {
			return "", fmt.Errorf("%w (SOCIUS_PG_BIN=%s has no initdb)", errNoBinaries, d)
		}
		return d, nil
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(matches) == 0 {
		return "", errNoBinaries
	}
	version := func(p string) int {
		v, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(p))))
		return v
	}
	slices.SortFunc(matches, func(a, b string) int { return version(b) - version(a) })
	return filepath.Dir(matches[0]), nil
}

// start initializes a cluster in a new temp folder and starts it on a free port.
func start(setup Setup) (*Server, error) {
	return launch(setup, func(s *Server) error {
		if err := s.initdb(); err != nil {
			return err
		}
		return s.writeSetup()
	})
}

// launch makes a server in a new temp folder, fills its data folder with fill and
// starts it on a free port.
func launch(setup Setup, fill func(*Server) error) (*Server, error) {
	bin, err := binDir()
	if err != nil {
		return nil, err
	}
	parent := os.TempDir()
	if os.Geteuid() == 0 && !traversable(parent) {
		parent = "/tmp" // the postgres user must reach the folder
	}
	dir, err := os.MkdirTemp(parent, "socius-pgtest-")
	if err != nil {
		return nil, err
	}
	s := &Server{dir: dir, bin: bin, setup: setup}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			s.remove()
			return nil, fmt.Errorf("running as root, PostgreSQL needs another user and there is no postgres user (%v); install Debian's postgresql package (./test.sh does)", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		s.owner = &owner{uid: uid, gid: gid}
		if err := os.Chown(dir, uid, gid); err != nil {
			s.remove()
			return nil, err
		}
	}
	if err := fill(s); err != nil {
		s.remove()
		return nil, err
	}
	// A free port can be taken between the probe and the server's bind: try again.
	for range 5 {
		if s.port, err = freePort(); err != nil {
			break
		}
		if err = s.Start(); err == nil {
			return s, nil
		}
	}
	s.remove()
	return nil, err
}

// StartStandby starts a hot standby of s for this test alone, removed by the test's
// cleanup: a copy of s's data (pg_basebackup, through s's Unix socket) on a port of its
// own that replays what s commits, read-only until Promote, run with settings (as
// Setup's), not s's. It returns once the standby streams from s. (A setup's HBA must
// let in "local replication all trust".)
func (s *Server) StartStandby(t testing.TB, settings ...string) *Server {
	t.Helper()
	st, err := launch(Setup{Settings: settings, HBA: s.setup.HBA}, func(st *Server) error {
		out, err := st.command(filepath.Join(st.bin, "pg_basebackup"),
			"-h", s.dir, "-p", strconv.Itoa(s.port), "-U", "postgres",
			"-D", st.dataDir(), "--write-recovery-conf", "--checkpoint=fast", "--no-sync").CombinedOutput()
		if err != nil {
			return fmt.Errorf("pg_basebackup: %v\n%s", err, out)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("pgtest: cannot start a standby: %v", err)
	}
	t.Cleanup(func() {
		st.stop()
		st.remove()
	})
	// Until it streams, a primary with synchronous_standby_names holds every commit.
	s.withAdmin(t, "postgres", 30*time.Second, func(ctx context.Context, conn *pgx.Conn) error {
		for {
			var streaming bool
			err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_replication WHERE state = 'streaming')`).Scan(&streaming)
			if err != nil {
				return fmt.Errorf("the standby does not stream within 30 s: %w", err)
			}
			if streaming {
				return nil
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
	return st
}

// Promote makes a standby the primary and waits until it takes writes.
func (s *Server) Promote(t testing.TB) {
	t.Helper()
	s.withAdmin(t, "postgres", 70*time.Second, func(ctx context.Context, conn *pgx.Conn) error {
		var done bool
		if err := conn.QueryRow(ctx, "SELECT pg_promote(true, 60)").Scan(&done); err != nil || !done {
			return fmt.Errorf("pg_promote: %v, %v", done, err)
		}
		return nil
	})
}

// initdb creates the cluster. The test databases use an ICU collation that does not
// sort by bytes when the server has ICU, so that a query that relies on the
// database's collation to order by bytes fails here as it would on a real server;
// otherwise it falls back to plain locales.
func (s *Server) initdb() error {
	base := []string{"-D", s.dataDir(), "-U", "postgres", "--auth=trust", "--encoding=UTF8", "--no-sync"}
	var errs []error
	for _, locale := range [][]string{
		{"--locale=C.UTF-8", "--locale-provider=icu", "--icu-locale=en-US"},
		{"--locale=C.UTF-8"},
		{"--locale=C"},
	} {
		os.RemoveAll(s.dataDir())
		out, err := s.command(filepath.Join(s.bin, "initdb"), append(base, locale...)...).CombinedOutput()
		if err == nil {
			return nil
		}
		errs = append(errs, fmt.Errorf("initdb %s: %v\n%s", strings.Join(locale, " "), err, out))
	}
	return errors.Join(errs...)
}

func (s *Server) dataDir() string { return filepath.Join(s.dir, "data") }

// writeSetup writes the setup's files and pg_hba.conf into the data folder.
func (s *Server) writeSetup() error {
	files := maps.Clone(s.setup.Files)
	if s.setup.HBA != "" {
		if files == nil {
			files = map[string][]byte{}
		}
		files["pg_hba.conf"] = []byte(s.setup.HBA)
	}
	for name, content := range files {
		p := filepath.Join(s.dataDir(), name)
		if err := os.WriteFile(p, content, 0o600); err != nil {
			return err
		}
		if o := s.owner; o != nil {
			if err := os.Chown(p, o.uid, o.gid); err != nil {
				return err
			}
		}
	}
	return nil
}

// command returns a command that runs as the server's user, in its folder.
func (s *Server) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Dir = s.dir
	cmd.Env = []string{"PATH=" + s.bin + ":/usr/bin:/bin", "HOME=" + s.dir, "LC_ALL=C.UTF-8"}
	cmd.SysProcAttr = childAttr(s.owner, 0)
	return cmd
}

// Start starts the server on its port (again, after Stop) and waits until it accepts
// connections.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return errors.New("pgtest: server already running")
	}
	logFile, err := os.OpenFile(filepath.Join(s.dir, "postgres.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logFile.Close() // the child keeps its own descriptor
	cmd := s.command(filepath.Join(s.bin, "postgres"),
		"-D", s.dataDir(),
		"-p", strconv.Itoa(s.port),
		"-k", s.dir,
		"-c", "listen_addresses=127.0.0.1",
		"-c", "max_connections=300",
		// Throwaway data: durability is not what these tests check.
		"-c", "fsync=off",
		"-c", "synchronous_commit=off",
		"-c", "full_page_writes=off",
	)
	for _, setting := range s.setup.Settings {
		cmd.Args = append(cmd.Args, "-c", setting)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = childAttr(s.owner, syscall.SIGQUIT)
	exit, err := startChild(cmd)
	if err != nil {
		return err
	}
	s.cmd, s.exit = cmd, exit

	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		conn, err := pgx.Connect(ctx, s.adminURL("postgres"))
		cancel()
		if err == nil {
			conn.Close(context.Background())
			return nil
		}
		select {
		case <-exit:
			s.cmd = nil
			return fmt.Errorf("postgres exited at start: %s", s.logTail())
		default:
		}
		if time.Now().After(deadline) {
			s.stopLocked()
			return fmt.Errorf("postgres did not accept connections within 30 s: %v\n%s", err, s.logTail())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop shuts the server down as `pg_ctl stop -m fast` does (SIGINT: sessions are
// ended, open transactions rolled back) and waits until it has exited.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked()
}

func (s *Server) stop() { s.Stop() }

// Crash stops the server at once, as a crash of the server would (SIGQUIT,
// PostgreSQL's immediate shutdown: no checkpoint, no waiting for sessions or for
// standbys to catch up), and waits until it has exited. What it wrote stays in the
// OS's cache: not a power cut of the machine (the test servers do not fsync). Start
// starts it again, with crash recovery.
func (s *Server) Crash() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopWith(syscall.SIGQUIT)
}

// Kill kills the server outright, as the kernel's OOM killer or `kill -9` would: the
// postmaster is stopped (SIGSTOP, so that it starts no process meanwhile), then it and
// every process it started get SIGKILL, with no chance to write anything more. Start
// starts it again, with crash recovery. What a commit wrote to the WAL survives (it is
// in the OS's cache); what only PostgreSQL's memory held does not: the commits that
// synchronous_commit=off, the harness's default, acknowledged before their WAL was
// written. A test that counts acknowledged writes sets synchronous_commit=on.
func (s *Server) Kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	killChildren(s.cmd.Process.Pid)
	s.stopWith(syscall.SIGKILL)
}

func (s *Server) stopLocked() { s.stopWith(syscall.SIGINT) }

// stopWith stops the server with sig, s.mu held.
func (s *Server) stopWith(sig os.Signal) {
	if s.cmd == nil {
		return
	}
	halt(s.cmd, s.exit, sig, 30*time.Second)
	s.cmd = nil
	s.reservePort() // for a Start again on the same port
}

func (s *Server) remove() { os.RemoveAll(s.dir) }

// startChild starts cmd and returns a channel closed once it has exited.
func startChild(cmd *exec.Cmd) (chan struct{}, error) {
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	exit := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exit)
	}()
	return exit, nil
}

// halt sends sig to the started cmd and waits until it has exited (exit is closed),
// killing it if that takes longer than within.
func halt(cmd *exec.Cmd, exit chan struct{}, sig os.Signal, within time.Duration) {
	cmd.Process.Signal(sig)
	select {
	case <-exit:
	case <-time.After(within):
		cmd.Process.Kill()
		<-exit
	}
}

func (s *Server) logTail() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "postgres.log"))
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

func (s *Server) url(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.port, db)
}

// adminURL is the URL of db for the harness itself: through the Unix socket when the
// setup's HBA may refuse what url gives.
func (s *Server) adminURL(db string) string {
	if s.setup.HBA == "" {
		return s.url(db)
	}
	return fmt.Sprintf("postgres://postgres@/%s?host=%s&port=%d", db, s.dir, s.port)
}

// Exec runs sql on the server's database postgres as its superuser, through the
// harness's own connection (ALTER USER postgres PASSWORD '...', for a setup that asks
// for passwords).
func (s *Server) Exec(t testing.TB, sql string) {
	t.Helper()
	s.exec(t, "postgres", sql)
}

func (s *Server) exec(t testing.TB, db, sql string) {
	t.Helper()
	s.withAdmin(t, db, 30*time.Second, func(ctx context.Context, conn *pgx.Conn) error {
		if _, err := conn.Exec(ctx, sql); err != nil {
			return fmt.Errorf("%s: %w", sql, err)
		}
		return nil
	})
}

// withAdmin runs fn on a connection of the harness's own to db, within the given time,
// and fails the test with fn's error.
func (s *Server) withAdmin(t testing.TB, db string, within time.Duration, fn func(ctx context.Context, conn *pgx.Conn) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.adminURL(db))
	if err != nil {
		t.Fatalf("pgtest: connect: %v", err)
	}
	defer conn.Close(context.Background())
	if err := fn(ctx, conn); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
}

// Port is the server's TCP port on 127.0.0.1; it stays the same across Stop and Start.
func (s *Server) Port() int { return s.port }

// NewURL returns the URL of a new, empty schema, named in the URL's search_path, in
// the database "socius" of the server.
func (s *Server) NewURL(t testing.TB) string {
	t.Helper()
	s.dbOnce.Do(func() { s.exec(t, "postgres", "CREATE DATABASE socius") })
	name := fmt.Sprintf("t_%d", dbSeq.Add(1))
	s.exec(t, "socius", "CREATE SCHEMA "+name)
	return s.url("socius") + "&search_path=" + name
}

// traversable reports whether every folder on the way to dir lets other users through.
func traversable(dir string) bool {
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil || fi.Mode().Perm()&0o001 == 0 {
			return false
		}
		if d == filepath.Dir(d) {
			return true
		}
	}
}

// freePort returns a free port of 127.0.0.1, reserved (see reserve) so that nothing
// else in the machine is handed it before the server binds it.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	reserve(ln)
	return port, nil
}

// reserve closes ln, keeping its port from other programs for a minute: a connection
// it accepted, closed from its side first, stays in TIME_WAIT on the port, and the
// kernel hands such a port to no bind of port 0 and no connect (other tests' servers
// and clients), while a bind of that port by number with SO_REUSEADDR, which postgres
// sets, still succeeds. Without it, the port was free between the probe and the
// server's bind, and between a Stop and the Start that must reuse it.
func reserve(ln net.Listener) {
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return
	}
	defer c.Close()
	sc, err := ln.Accept()
	if err != nil {
		return
	}
	sc.Close()                                         // this side first: its TIME_WAIT holds the port
	c.SetReadDeadline(time.Now().Add(5 * time.Second)) // until its FIN has come
	c.Read(make([]byte, 1))
}

// reservePort reserves the server's port again (after Stop), for the next Start.
func (s *Server) reservePort() {
	if ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", s.port)); err == nil {
		reserve(ln)
	}
}
