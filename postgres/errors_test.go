package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/socius/socius"
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
