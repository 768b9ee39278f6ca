package postgres

import (
	"errors"
	"fmt"
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
	other := &pgconn.PgError{Code: "57P01", Message: "terminating connection due to administrator command"}
	if err := errorFor("update profile", other); !errors.As(err, &se) || se.Details != "Database error" {
		t.Errorf("admin_shutdown: %v", err)
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
