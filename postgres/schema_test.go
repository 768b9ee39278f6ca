package postgres

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/socius/socius"
	"github.com/socius/socius/internal/pgtest"
)

// roleURL makes a role that may log in and use the schema of base (the test's own,
// made by the harness's superuser) but not create in it, runs grants (each with %s for
// the schema and %s for the role) and returns base with that role as its user.
func roleURL(t *testing.T, base string, grants ...string) string {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	schema := u.Query().Get("search_path")
	role := fmt.Sprintf("dml_%d", time.Now().UnixNano())
	conn, err := pgx.Connect(t.Context(), base)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	qs := []string{`CREATE ROLE ` + role + ` LOGIN`, fmt.Sprintf(`GRANT USAGE ON SCHEMA "%s" TO %s`, schema, role)}
	for _, g := range grants {
		qs = append(qs, fmt.Sprintf(g, schema, role))
	}
	for _, q := range qs {
		if _, err := conn.Exec(t.Context(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	u.User = url.User(role)
	return u.String()
}

// TestOpenWithoutCreate: a role that may read and write the tables of a migrated
// database, but not create tables in its schema, opens it and serves. It could not:
// the CREATE TABLE IF NOT EXISTS of schema_migrations at every start needs the schema's
// CREATE privilege, which PostgreSQL checks before it looks for the table. On a
// database still to migrate such a role is refused, saying what it needs.
func TestOpenWithoutCreate(t *testing.T) {
	ctx := t.Context()
	base := pgtest.URL(t)
	open(t, base).Close() // migrated by its owner
	dml := roleURL(t, base,
		`GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "%s" TO %s`)
	s, err := Open(ctx, dml)
	if err != nil {
		t.Fatalf("Open with a role that may read and write the tables: %v", err)
	}
	defer s.Close()
	if err := s.CreateSite(ctx, &socius.Site{APIKey: "3_dml", Secret: "c2VjcmV0LTAxMjM0NTY3ODlhYmM=", Name: "dml", CreatedAt: now}); err != nil {
		t.Errorf("CreateSite with that role: %v", err)
	}
	if ok, err := s.UseNonce(ctx, "apiKey 3_dml", "n", now.Add(time.Minute), now); !ok || err != nil {
		t.Errorf("UseNonce with that role: %v, %v", ok, err)
	}

	// A database still to migrate: refused, with what to do.
	fresh := roleURL(t, pgtest.URL(t))
	if s, err := Open(ctx, fresh); err == nil {
		s.Close()
		t.Fatal("Open of an empty database with a role that may not create tables succeeded")
	} else if !strings.Contains(err.Error(), "permission denied") || !strings.Contains(err.Error(), "may not change the database's schema") {
		t.Errorf("Open of an empty database with a role that may not create tables: %v", err)
	}
}

// TestOpenWithoutGrantOnNewTable: a role granted the tables of a migrated database
// (GRANT ... ON ALL TABLES), once the owner has applied a later migration that makes a
// table (0006's settings), may not read that table: the grant covered the tables of
// its time. Its start is refused saying what to grant; it said only PostgreSQL's
// "permission denied for table settings". With the owner's default privileges set
// before the migration, the new table is covered and the role serves.
func TestOpenWithoutGrantOnNewTable(t *testing.T) {
	before := []string{"0001_init.sql", "0002_tokens.sql", "0003_nonces.sql", "0004_tokens_by_key.sql", "0005_token_roots.sql"}
	grant := `GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "%s" TO %s`
	t.Run("granted before", func(t *testing.T) {
		base := pgtest.URL(t)
		olderDatabase(t, base, before)
		dml := roleURL(t, base, grant)
		open(t, base).Close() // the owner applies 0006
		s, err := Open(t.Context(), dml)
		if err == nil {
			s.Close()
			t.Fatal("Open with a role granted the tables before migration 0006 made settings succeeded")
		}
		for _, want := range []string{"permission denied for table settings", "0006_settings.sql", "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA", "ALTER DEFAULT PRIVILEGES"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("Open with a role granted the tables before 0006: %v\nwant it to say %q", err, want)
			}
		}
	})
	t.Run("default privileges", func(t *testing.T) {
		base := pgtest.URL(t)
		olderDatabase(t, base, before)
		dml := roleURL(t, base, grant,
			`ALTER DEFAULT PRIVILEGES IN SCHEMA "%s" GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO %s`)
		open(t, base).Close()
		s, err := Open(t.Context(), dml)
		if err != nil {
			t.Fatalf("Open with the owner's default privileges granted: %v", err)
		}
		defer s.Close()
		if _, err := s.SharedNonceWindow(t.Context(), time.Minute); err != nil {
			t.Errorf("the nonce window's write with that role: %v", err)
		}
	})
}

// TestOpenRefusesMissingTable: a database whose schema_migrations lists every
// migration but lacks a table or column one of them made (dropped by hand) is refused
// at Open, naming the migration; it was used, and every call that needed the table
// failed with 500028 while the readiness check, which reads sites, passed.
func TestOpenRefusesMissingTable(t *testing.T) {
	for _, c := range []struct{ drop, migration string }{
		{`DROP TABLE nonces`, "0003_nonces.sql"},
		{`DROP TABLE tokens`, "0002_tokens.sql"},
		{`ALTER TABLE tokens DROP COLUMN root`, "0005_token_roots.sql"},
		{`DROP TABLE settings`, "0006_settings.sql"},
	} {
		t.Run(c.migration, func(t *testing.T) {
			url := pgtest.URL(t)
			open(t, url).Close()
			conn, err := pgx.Connect(t.Context(), url)
			if err != nil {
				t.Fatal(err)
			}
			_, err = conn.Exec(t.Context(), c.drop)
			conn.Close(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			s, err := Open(t.Context(), url)
			if err == nil {
				s.Close()
				t.Fatalf("Open after %s succeeded", c.drop)
			}
			if !strings.Contains(err.Error(), "lacks what migration "+c.migration+" makes") {
				t.Errorf("Open after %s: %v", c.drop, err)
			}
		})
	}
}

// TestMigrationGivesWayToCalls: a migration that waits for a lock another session
// holds (here 0005's ALTER TABLE tokens, behind a transaction that read the table and
// stays open, as an analyst's psql or a long pg_dump does) gives up each wait after
// migrationLockTimeout and tries again, so that the reads of the table by the nodes
// serving, which queue behind its wait, go on meanwhile; once the session ends, the
// migration is applied. The wait had no bound but the migration's 10 minutes, and
// every token call of every node failed with 500028 at its deadline until then.
func TestMigrationGivesWayToCalls(t *testing.T) {
	ctx := t.Context()
	url := pgtest.URL(t)
	olderDatabase(t, url, []string{"0001_init.sql", "0002_tokens.sql", "0003_nonces.sql", "0004_tokens_by_key.sql"})
	// A node of the version before, which uses it as it is: a store on a pool of its
	// own, without Open's migrations.
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	background, cancel := context.WithCancel(context.Background())
	older := &Store{pool: pool, OpTimeout: DefaultOpTimeout, background: background, cancel: cancel}
	defer older.Close()

	_, tx := pgtest.HoldLock(t, url, "", `SELECT count(*) FROM tokens`)
	opened := make(chan error, 1)
	go func() {
		s, err := Open(context.Background(), url)
		if err == nil {
			s.Close()
		}
		opened <- err
	}()
	waitForLock(t, older, "%ALTER TABLE tokens%")

	// A token read of the older node, while the session still holds its lock.
	read := make(chan error, 1)
	go func() {
		var n int
		read <- older.pool.QueryRow(context.Background(), `SELECT count(*) FROM tokens WHERE hash = 'no-such-token'`).Scan(&n)
	}()
	select {
	case err := <-read:
		if err != nil {
			t.Errorf("a token read beside the waiting migration: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Error("a token read queued behind the migration's wait for the lock, and did not end in 30 s")
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-opened:
		if err != nil {
			t.Fatalf("Open once the lock was released: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("Open did not end within 60 s of the lock's release")
	}
	checkMigrations(t, older)
}
