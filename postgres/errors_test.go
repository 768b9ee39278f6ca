package postgres

import (
	"errors"
	"fmt"
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
