package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/socius/socius"
	"github.com/socius/socius/internal/pgtest"
)

// TestDiskFullIsSaid: PostgreSQL's disk_full (53100) is a database error that tells
// the client why, as SQLite's SQLITE_FULL is; other failures stay a plain one.
func TestDiskFullIsSaid(t *testing.T) {
	full := fmt.Errorf("exec: %w", &pgconn.PgError{Code: "53100", Message: "could not extend file"})
	var se *socius.Error
	if err := errorFor("update profile", full); !errors.As(err, &se) || se.Code != socius.CodeDatabaseError ||
		se.Details != "Database error: the store's disk is full; nothing was written" {
		t.Errorf("disk_full: %v", err)
	}
	other := &pgconn.PgError{Code: "42P01", Message: "relation does not exist"}
	if err := errorFor("update profile", other); !errors.As(err, &se) || se.Details != "Database error" {
		t.Errorf("undefined_table: %v", err)
	}
}

// TestDatabaseErrorsSaid: a database error says what kind of failure it was, where
// that tells a client something of use (the database unreachable or gone, taking no
// writes, too slow) and nothing of the server's insides; it said "Database error" for
// all of them.
func TestDatabaseErrorsSaid(t *testing.T) {
	for _, tt := range []struct {
		name string
		err  error
		want string
	}{
		{"admin_shutdown", &pgconn.PgError{Code: "57P01", Severity: "FATAL", Message: "terminating connection due to administrator command"}, "Database error: the connection to the database was lost"},
		{"a cut", fmt.Errorf("read: %w", io.ErrUnexpectedEOF), "Database error: the connection to the database was lost"},
		{"read-only", &pgconn.PgError{Code: "25006", Message: "cannot execute UPDATE in a read-only transaction"}, "Database error: the database takes no writes; nothing was written"},
		{"deadline", fmt.Errorf("query: %w", context.DeadlineExceeded), "Database error: the store did not answer in time"},
		{"permission denied", &pgconn.PgError{Code: "42501", Message: "permission denied for table users"}, "Database error: the database refused the server's role a privilege on a table it needs (permission denied)"},
	} {
		var se *socius.Error
		if err := errorFor("update profile", tt.err); !errors.As(err, &se) || se.Code != socius.CodeDatabaseError || se.Details != tt.want {
			t.Errorf("%s: %v, want %q", tt.name, err, tt.want)
		}
	}
	// A connection refused: from a real attempt, at a port where nothing listens.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, refused := pgconn.Connect(t.Context(), "postgres://socius@"+addr+"/socius?sslmode=disable&connect_timeout=2")
	var se *socius.Error
	if err := errorFor("site", refused); !errors.As(err, &se) || se.Details != "Database error: the database could not be reached" {
		t.Errorf("a refused connection (%v): %v", refused, err)
	}
}

// TestOpenSaysWhichTimeout: a server that accepts connections and never answers fails
// the open after the URL's connect_timeout, and the error names that limit, not the
// open's own 10 s check.
func TestOpenSaysWhichTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // held open, unanswered, until the test ends
		}
	}()
	_, err = Open(t.Context(), "postgres://socius@"+ln.Addr().String()+"/socius?sslmode=disable&connect_timeout=1")
	if err == nil || !strings.Contains(err.Error(), "no connection within connect_timeout (1s)") || strings.Contains(err.Error(), "within 10s") {
		t.Errorf("open of a server that never answers: %v", err)
	}
}

// TestConnectTimeoutDefault: a URL without connect_timeout, or with 0 (libpq's "no
// limit"), opens each connection within DefaultConnectTimeout; one that gives it, within
// that (as Open takes it: parseConfig sets it).
func TestConnectTimeoutDefault(t *testing.T) {
	for q, want := range map[string]time.Duration{
		"":                  DefaultConnectTimeout,
		"connect_timeout=0": DefaultConnectTimeout,
		"connect_timeout=2": 2 * time.Second,
	} {
		cfg, _, err := parseConfig("postgres://socius@127.0.0.1:1/socius?sslmode=disable&" + q)
		if err != nil || cfg.ConnConfig.ConnectTimeout != want {
			t.Errorf("%q: %v, %v; want %v", q, cfg.ConnConfig.ConnectTimeout, err, want)
		}
	}
}

// TestConnectRefusalsSaid: PostgreSQL answering a new connection and refusing it (a
// wrong password, a role without LOGIN, no CONNECT privilege, no slot free, a missing
// database, a server shutting down) is said as that, to the caller in errorDetails and
// to the operator in the log's cause and in Open's error, never with the password;
// until 2026-11-30 each was "the database could not be reached", which sends an
// operator after the network. Each refusal is made on a real server under a store
// that worked: its pool emptied, the next call must connect.
func TestConnectRefusalsSaid(t *testing.T) {
	const password, other = "first-Pa55word", "second-Pa55word"
	srv := pgtest.StartWith(t, pgtest.Setup{HBA: "local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n"})
	srv.Exec(t, "CREATE ROLE socius LOGIN PASSWORD '"+password+"'")
	srv.Exec(t, "CREATE DATABASE socius OWNER socius")
	dsn := fmt.Sprintf("postgres://socius:%s@127.0.0.1:%d/socius?sslmode=disable&connect_timeout=5", password, srv.Port())
	s := open(t, dsn)
	defer s.Close()

	// refused checks what a call and an Open get while the fault holds.
	refused := func(t *testing.T, code, details, said string) {
		t.Helper()
		s.pool.Reset()
		_, err := s.Site(t.Context(), "3_nosuchsite")
		var se *socius.Error
		if !errors.As(err, &se) || se.Code != socius.CodeDatabaseError || se.Details != "Database error: "+details {
			t.Errorf("a call: %v, want 500028 %q", err, "Database error: "+details)
		} else if cause := se.Err.Error(); !strings.Contains(cause, said) || !strings.Contains(cause, "SQLSTATE "+code) ||
			strings.Contains(cause, password) || strings.Contains(cause, other) {
			t.Errorf("the call's cause, for the log (want %q, PostgreSQL's own message, never a password): %s", said, cause)
		}
		t.Logf("a call's cause: %v", err)
		if o, err := Open(t.Context(), dsn); err == nil {
			o.Close()
			t.Errorf("Open succeeded")
		} else if msg := err.Error(); !strings.Contains(msg, said) || !strings.Contains(msg, "SQLSTATE "+code) ||
			strings.Contains(msg, password) || strings.Contains(msg, other) {
			t.Errorf("Open (what serve prints; want %q, never a password): %s", said, msg)
		} else {
			t.Logf("Open: %s", msg)
		}
	}
	t.Run("wrong password", func(t *testing.T) {
		srv.Exec(t, "ALTER ROLE socius PASSWORD '"+other+"'")
		defer srv.Exec(t, "ALTER ROLE socius PASSWORD '"+password+"'")
		refused(t, "28P01", "the database refused the server's credentials (password authentication failed)",
			"PostgreSQL refused the password of the URL's role")
	})
	t.Run("no LOGIN", func(t *testing.T) {
		srv.Exec(t, "ALTER ROLE socius NOLOGIN")
		defer srv.Exec(t, "ALTER ROLE socius LOGIN")
		refused(t, "28000", "the database refused the server's login (its role is unknown, may not log in, or is not let in from this host)",
			"PostgreSQL refused the URL's role")
	})
	t.Run("no CONNECT", func(t *testing.T) {
		// The owner's privileges are its database's by default, until taken away.
		srv.Exec(t, "REVOKE CONNECT ON DATABASE socius FROM PUBLIC, socius")
		defer srv.Exec(t, "GRANT CONNECT ON DATABASE socius TO PUBLIC, socius")
		refused(t, "42501", "the server's role may not connect to its database", "has no CONNECT privilege")
	})
	t.Run("no slot", func(t *testing.T) {
		srv.Exec(t, "ALTER ROLE socius CONNECTION LIMIT 0")
		defer srv.Exec(t, "ALTER ROLE socius CONNECTION LIMIT -1")
		refused(t, "53300", "the database has no connection free for the server (too many connections)",
			"PostgreSQL has no connection slot")
	})
	t.Run("no database", func(t *testing.T) {
		// Renamed away: PostgreSQL renames no database that has sessions.
		s.pool.Reset()
		srv.Exec(t, "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE datname = 'socius'")
		srv.Exec(t, "ALTER DATABASE socius RENAME TO socius_away")
		defer srv.Exec(t, "ALTER DATABASE socius_away RENAME TO socius")
		refused(t, "3D000", "the server's database does not exist", "the database the URL names does not exist")
	})
	t.Run("shutting down", func(t *testing.T) {
		// A smart shutdown (SIGTERM to the postmaster, pg_ctl stop -m smart) waits for
		// the sessions open, here the harness's, and refuses new ones meanwhile.
		held, err := pgx.Connect(t.Context(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer held.Close(context.Background())
		var backend int
		if err := held.QueryRow(t.Context(), `SELECT pg_backend_pid()`).Scan(&backend); err != nil {
			t.Fatal(err)
		}
		postmaster, err := parentPID(backend)
		if err != nil {
			t.Skipf("the postmaster's pid, to shut it down: %v", err)
		}
		if err := syscall.Kill(postmaster, syscall.SIGTERM); err != nil {
			t.Skipf("SIGTERM to the postmaster: %v", err)
		}
		refused(t, "57P03", "the database takes no connections now (starting up, shutting down, or in recovery)",
			"PostgreSQL takes no connections now")
	})
}

// parentPID returns the pid of the parent of the process pid, from Linux's /proc.
func parentPID(pid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// pid (comm) state ppid ...: comm may hold spaces and parentheses.
	_, rest, ok := strings.Cut(string(b[bytes.LastIndexByte(b, ')')+1:]), " ")
	fields := strings.Fields(rest)
	if !ok || len(fields) < 2 {
		return 0, fmt.Errorf("/proc/%d/stat: %q", pid, b)
	}
	return strconv.Atoi(fields[1])
}
