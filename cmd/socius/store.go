package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/socius/socius"
	"github.com/socius/socius/nonce"
	"github.com/socius/socius/postgres"
	"github.com/socius/socius/sqlite"
)

// storeHelp is the help text of --store, shared by every command that opens a store.
const storeHelp = `the store: empty (or "sqlite") for the embedded SQLite file in --data, or a PostgreSQL URL (postgres://user:password@host:port/db?sslmode=...) that several server nodes share`

// isPostgres reports whether spec names a PostgreSQL database.
func isPostgres(spec string) bool {
	return strings.HasPrefix(spec, "postgres://") || strings.HasPrefix(spec, "postgresql://")
}

// checkStore checks the --store value without opening anything.
func checkStore(spec string) error {
	if spec == "" || spec == "sqlite" || isPostgres(spec) {
		return nil
	}
	return fmt.Errorf("--store %q: want empty (the embedded SQLite in --data) or a postgres:// URL", postgres.Redact(spec))
}

// openStore opens the store that spec names (see storeHelp) and the nonce store that
// goes with it: with PostgreSQL the nonces live in the database, shared by every node;
// with the embedded store, which one node alone uses, in memory.
func openStore(ctx context.Context, spec, dataDir string) (socius.Store, socius.NonceStore, error) {
	if err := checkStore(spec); err != nil {
		return nil, nil, err
	}
	if isPostgres(spec) {
		st, err := postgres.Open(ctx, spec)
		if err != nil {
			return nil, nil, err
		}
		return st, st, nil
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, nil, err
	}
	st, err := sqlite.Open(filepath.Join(dataDir, "socius.db"))
	if err != nil {
		return nil, nil, err
	}
	return st, nonce.New(0), nil
}

// describeStore says which store spec names, without secrets.
func describeStore(spec, dataDir string) string {
	if isPostgres(spec) {
		return "PostgreSQL " + postgres.Redact(spec)
	}
	return "SQLite " + filepath.Join(dataDir, "socius.db")
}
