package pgtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// A Bouncer is a real PgBouncer (Debian's pgbouncer package) in transaction pooling
// mode in front of a Server: each transaction, and each statement outside
// one, gets whichever server connection of the pool is free, so a store that left
// anything in a session (a prepared statement, a SET, a temporary table) would find it
// gone or find another client's. It runs as the server does (as the postgres user when
// the tests run as root: PgBouncer refuses root), and its cleanup stops it.
type Bouncer struct {
	dir    string
	port   int
	server *Server
	pool   int

	mu   sync.Mutex
	dbs  []string // the [databases] lines
	cmd  *exec.Cmd
	exit chan struct{}
}

var errNoBouncer = errors.New("PgBouncer (pgbouncer) was not found in /usr/sbin or on PATH")

// bouncerPath finds the pgbouncer binary: SOCIUS_PGBOUNCER, else /usr/sbin/pgbouncer
// (Debian's), else PATH.
func bouncerPath() (string, error) {
	if p := os.Getenv("SOCIUS_PGBOUNCER"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%w (SOCIUS_PGBOUNCER=%s: %v)", errNoBouncer, p, err)
		}
		return p, nil
	}
	if _, err := os.Stat("/usr/sbin/pgbouncer"); err == nil {
		return "/usr/sbin/pgbouncer", nil
	}
	if p, err := exec.LookPath("pgbouncer"); err == nil {
		return p, nil
	}
	return "", errNoBouncer
}

// StartBouncer starts a PgBouncer in transaction mode with poolSize server connections
// for each database it serves, in front of the shared server (started if need be).
// Ask it for places with NewURL.
func StartBouncer(t testing.TB, poolSize int) *Bouncer {
	t.Helper()
	sharedOnce.Do(func() { shared, sharedErr = start(Setup{}) })
	if sharedErr != nil {
		unavailable(t, sharedErr)
	}
	return shared.StartBouncer(t, poolSize)
}

// StartBouncer starts a PgBouncer as the function of that name does, in front of s.
func (s *Server) StartBouncer(t testing.TB, poolSize int) *Bouncer {
	t.Helper()
	path, err := bouncerPath()
	if err != nil {
		if os.Getenv(SkipEnv) == "1" {
			t.Skipf("PgBouncer tests skipped (%s=1): %v", SkipEnv, err)
		}
		t.Fatalf("%v.\nRun ./test.sh, which installs it (Debian package pgbouncer), or set %s=1 to skip the PostgreSQL tests.", err, SkipEnv)
	}
	dir, err := os.MkdirTemp(filepath.Dir(s.dir), "socius-pgbouncer-")
	if err != nil {
		t.Fatal(err)
	}
	b := &Bouncer{dir: dir, server: s, pool: poolSize}
	t.Cleanup(func() {
		b.stop()
		os.RemoveAll(dir)
	})
	if o := s.owner; o != nil {
		if err := os.Chown(dir, o.uid, o.gid); err != nil {
			t.Fatal(err)
		}
	}
	// trust still wants each user named in the auth file.
	if err := b.writeFile("users.txt", `"postgres" ""`+"\n"); err != nil {
		t.Fatal(err)
	}
	// The control database answers the start-up probe; places are added by NewURL.
	b.dbs = []string{b.dbLine("probe", b.serverAddr(), "")}
	for range 5 { // a free port can be taken between the probe and PgBouncer's bind
		if b.port, err = freePort(); err != nil {
			t.Fatal(err)
		}
		if err = b.start(path); err == nil {
			return b
		}
	}
	t.Fatalf("pgtest: cannot start PgBouncer: %v", err)
	return nil
}

// dbLine is the [databases] line of alias: the database socius of the server at
// hostport (postgres for the probe), each new server connection put on schema's
// search_path.
func (b *Bouncer) dbLine(alias, hostport, schema string) string {
	host, port, _ := strings.Cut(hostport, ":")
	if schema == "" {
		return fmt.Sprintf("%s = host=%s port=%s dbname=postgres user=postgres", alias, host, port)
	}
	return fmt.Sprintf("%s = host=%s port=%s dbname=socius user=postgres connect_query='SET search_path TO %s'",
		alias, host, port, schema)
}

func (b *Bouncer) writeFile(name, content string) error {
	p := filepath.Join(b.dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		return err
	}
	if o := b.server.owner; o != nil {
		return os.Chown(p, o.uid, o.gid)
	}
	return nil
}

// writeConfig writes pgbouncer.ini with the current databases. Unlike PgBouncer's
// defaults: it tries a database again a second after a failed login
// (server_login_retry, 15 s by default), and holds a call waiting for a server
// connection at most 5 s (query_wait_timeout, two minutes by default), so that tests
// of outages do not wait that long; and each transaction on a server connection that
// served one before starts with PgBouncer's check of it (server_check_delay 0). A
// server connection idle for 10 s is closed (server_idle_timeout, 600 s by default):
// each test's database has a pool of its own, and the conformance suites make some
// four hundred of them through one PgBouncer, whose idle connections, kept ten minutes,
// filled the server's max_connections ("sorry, too many clients already").
func (b *Bouncer) writeConfig() error {
	var c strings.Builder
	c.WriteString("[databases]\n")
	for _, l := range b.dbs {
		c.WriteString(l + "\n")
	}
	fmt.Fprintf(&c, `[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
unix_socket_dir =
auth_type = trust
auth_file = %s
pool_mode = transaction
default_pool_size = %d
max_client_conn = 500
server_check_delay = 0
server_login_retry = 1
query_wait_timeout = 5
server_idle_timeout = 10
logfile = %s
`, b.port, filepath.Join(b.dir, "users.txt"), b.pool, filepath.Join(b.dir, "pgbouncer.log"))
	return b.writeFile("pgbouncer.ini", c.String())
}

func (b *Bouncer) start(path string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.writeConfig(); err != nil {
		return err
	}
	cmd := exec.Command(path, filepath.Join(b.dir, "pgbouncer.ini"))
	cmd.Dir = b.dir
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + b.dir}
	cmd.SysProcAttr = childAttr(b.server.owner, syscall.SIGTERM)
	out, err := os.Create(filepath.Join(b.dir, "stderr.log"))
	if err != nil {
		return err
	}
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	exit, err := startChild(cmd)
	if err != nil {
		return err
	}
	b.cmd, b.exit = cmd, exit
	if err := b.await("probe", 30*time.Second); err != nil {
		b.stopLocked()
		return err
	}
	return nil
}

// await waits until alias answers a query through PgBouncer.
func (b *Bouncer) await(alias string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		err := b.ping(alias)
		if err == nil {
			return nil
		}
		select {
		case <-b.exit:
			return fmt.Errorf("pgbouncer exited: %s", b.logTail())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pgbouncer did not serve %s within %v: %v\n%s", alias, within, err, b.logTail())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (b *Bouncer) ping(alias string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, b.url(alias)+"&default_query_exec_mode=simple_protocol")
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "SELECT 1")
	return err
}

// serverAddr is the server's address, host:port.
func (b *Bouncer) serverAddr() string { return fmt.Sprintf("127.0.0.1:%d", b.server.port) }

func (b *Bouncer) url(alias string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", b.port, alias)
}

// NewURL returns the URL, through PgBouncer, of a new, empty schema on the shared
// server. PgBouncer puts its server connections on the schema (connect_query), since
// it refuses a search_path sent by the client. Add pgx's default_query_exec_mode to the
// URL: PgBouncer 1.18 in transaction mode cannot keep the prepared statements of pgx's
// default mode across transactions.
func (b *Bouncer) NewURL(t testing.TB) string {
	t.Helper()
	url, _ := b.NewURLVia(t, b.serverAddr())
	return url
}

// NewURLVia is NewURL with PgBouncer reaching the server at hostport (host:port)
// rather than at the server's own address, and it also returns the server's own URL of
// the schema (as Server.NewURL does), which goes through neither. A proxy at hostport,
// in front of the server, sees every server connection that PgBouncer opens for the
// URL: its startup, its connect_query, then the statements of PgBouncer's clients;
// since server_check_delay is 0 here, each transaction on a connection that served one
// before is preceded by PgBouncer's check of it ("select 1").
func (b *Bouncer) NewURLVia(t testing.TB, hostport string) (url, direct string) {
	t.Helper()
	direct = b.server.NewURL(t)
	i := strings.LastIndex(direct, "search_path=")
	schema := direct[i+len("search_path="):]
	alias := "db_" + schema
	b.mu.Lock()
	b.dbs = append(b.dbs, b.dbLine(alias, hostport, schema))
	err := b.writeConfig()
	if err == nil && b.cmd != nil {
		err = b.cmd.Process.Signal(syscall.SIGHUP) // reload the configuration
	}
	b.mu.Unlock()
	if err != nil {
		t.Fatalf("pgtest: add %s to PgBouncer: %v", alias, err)
	}
	if err := b.await(alias, 10*time.Second); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return b.url(alias), direct
}

// Port is PgBouncer's TCP port on 127.0.0.1.
func (b *Bouncer) Port() int { return b.port }

func (b *Bouncer) stop() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.stopLocked()
}

func (b *Bouncer) stopLocked() {
	if b.cmd == nil {
		return
	}
	halt(b.cmd, b.exit, syscall.SIGTERM, 10*time.Second) // immediate shutdown: the tests are done
	b.cmd = nil
}

func (b *Bouncer) logTail() string {
	var all []byte
	for _, name := range []string{"stderr.log", "pgbouncer.log"} {
		if c, err := os.ReadFile(filepath.Join(b.dir, name)); err == nil {
			all = append(all, c...)
		}
	}
	if len(all) > 4000 {
		all = all[len(all)-4000:]
	}
	return string(all)
}
