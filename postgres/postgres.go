// Package postgres is the store of Socius for more than one machine: PostgreSQL,
// through pgx and its connection pool (pure Go), implementing socius.Store and
// socius.NonceStore. Several stateless server nodes share one database and behave as
// one server: sites, keys, users, tokens and the nonces of signed requests all live in
// the database, and no node keeps any of them in memory.
//
// # Atomicity without a single writer
//
// The SQLite store serializes its writes through one goroutine; here every node writes
// at once, so each operation is written to be atomic by itself in the database:
//
//   - UpdateProfile is one UPDATE that sets only the patched columns. Concurrent
//     updates of different fields of one user each lock the row in turn and change
//     only their own columns: none is lost, on one node or across many.
//   - Login is an UPDATE of the user, and when there is none an INSERT ... ON CONFLICT
//     DO NOTHING, and when a concurrent login created the user in between, the UPDATE
//     again: each step is one statement, and exactly one caller inserts.
//   - Logout, DeleteUser, RenameUser and DeleteUsers change users and tokens in one
//     transaction, so the tokens are revoked (or moved, or removed) with the user or
//     not at all.
//   - UseNonce is one INSERT ... ON CONFLICT DO UPDATE ... WHERE: a new pair is
//     inserted, an expired one taken over, a live one left alone, and the statement
//     returns a row only in the first two cases. Two nodes racing on one nonce are
//     ordered by the primary key: exactly one of them gets the row.
//
// # Failures
//
// Driver errors are translated at this boundary: a unique violation is
// socius.ErrExists, a foreign key violation socius.ErrNotFound, anything else (refused
// connections, a server shutting down, timeouts) a socius.DatabaseError, which the
// server answers with 500028. Every operation runs under a deadline (OpTimeout), and
// connecting under a connect timeout, so a database that does not answer fails calls
// instead of hanging them. Reads are retried once when the connection broke under
// them; writes only when they certainly did not take effect (the server rolled the
// transaction back, or nothing was sent). The pool replaces broken connections on its
// own, so a node recovers when the database is back, without a restart.
//
// # Schema
//
// The schema lives in numbered files under migrations/, embedded in the binary. Open
// applies those that schema_migrations does not list, in order, each in one
// transaction together with the insert of its version row. When several nodes start
// at once on a new database, they may all begin a migration; the first to commit wins,
// the others fail on what it made (its tables, its version row), roll back whole, and
// find the migration applied when they look again. No advisory lock is needed
// (CockroachDB has none).
//
// The SQL stays within what PostgreSQL, CockroachDB and YugabyteDB accept: times are
// BIGINT Unix milliseconds, insertion order is a BIGINT identity column, UIDs are BYTEA
// so that they sort by bytes without a collation, and there are no advisory locks,
// LISTEN/NOTIFY, named constraints in ON CONFLICT, arrays or JSON. docs/postgresql.md
// says what was checked against those databases and what was not.
package postgres

import (
	"cmp"
	"context"
	"crypto/tls"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net"
	"path"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/socius/socius"
)

var (
	_ socius.Store      = (*Store)(nil)
	_ socius.NonceStore = (*Store)(nil)
)

// Defaults for what the connection URL does not say.
const (
	// DefaultConnectTimeout bounds the opening of one connection (connect_timeout in
	// the URL overrides it).
	DefaultConnectTimeout = 5 * time.Second
	// DefaultOpTimeout bounds one store operation, retries included.
	DefaultOpTimeout = 10 * time.Second
)

// Open's deadlines (variables for tests): its check that the database answers, the
// creation of the table of applied migrations (a write only on an empty database), and
// each migration, which may build an index over a large table.
var (
	openPingTimeout  = DefaultOpTimeout
	schemaTimeout    = DefaultOpTimeout
	migrationTimeout = 10 * time.Minute
	// migrationLockTimeout bounds each wait of a migration for a lock (lock_timeout),
	// and migrationLockPause is the pause before it tries again (doubling, up to 8
	// times as long), so that calls that queued behind the migration's wait go on.
	migrationLockTimeout = time.Second
	migrationLockPause   = 500 * time.Millisecond
)

// Store is a socius.Store and socius.NonceStore kept in PostgreSQL (or a database that
// speaks its protocol and SQL).
type Store struct {
	pool *pgxpool.Pool

	// OpTimeout bounds every operation; DefaultOpTimeout after Open.
	OpTimeout time.Duration

	nonceCalls atomic.Uint64
	sweeping   atomic.Bool
	// tokenSweep is where the sweeps of dead tokens stand (DeleteExpiredTokens).
	tokenSweep tokenSweep
	// asyncNonces: nonces are committed without waiting for the flush (nonce_commit=async).
	asyncNonces bool
	// log is told of failed nonce sweeps (Options.Logger); nil: nothing is logged.
	log *slog.Logger
	// sweepFailures counts the background nonce sweeps failed in a row (noteSweep).
	sweepFailures atomic.Int64

	// background is the context of the nonce sweeps; Close cancels it.
	background context.Context
	cancel     context.CancelFunc

	mu     sync.Mutex
	closed bool
	// views are the views open (snapshot.go), which Close ends first.
	views map[*view]struct{}
	// slots bounds the views open at once (viewSlots).
	slots   chan struct{}
	sweeps  sync.WaitGroup
	closing sync.Once
}

// Options are what OpenWith takes besides the URL.
type Options struct {
	// Logger is told what the start waits for when it waits (a lock another session
	// holds: startWatch), and when the background sweeps of expired nonces fail and
	// succeed again. nil: nothing is logged.
	Logger *slog.Logger
}

// Open connects to the database at url (postgres://user:password@host:port/db?...,
// or the key=value form), checks that it answers and brings its schema up to date.
// Besides libpq's parameters the URL takes pgxpool's (pool_max_conns, ...); without
// pool_max_conns the pool holds up to 4 connections per CPU, at least 16. It also takes
// Socius's own nonce_commit: sync (the default) or async (see nonceAsyncSQL). Its
// connections are named application_name=socius unless the URL or PGAPPNAME names them.
func Open(ctx context.Context, connString string) (*Store, error) {
	return OpenWith(ctx, connString, Options{})
}

// OpenWith is Open with opts: while the start runs, what it waits for is looked at
// every startWatchPeriod and logged to opts.Logger (startWatch), and a start that gives
// up a wait names in its error the sessions that held it.
func OpenWith(ctx context.Context, connString string, opts Options) (*Store, error) {
	cfg, asyncNonces, err := parseConfig(connString)
	if err != nil {
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	if !strings.Contains(connString, "pool_max_conns") {
		cfg.MaxConns = int32(max(16, 4*runtime.GOMAXPROCS(0)))
	}
	watch := watchStart(cfg.ConnConfig, opts.Logger)
	cfg.AfterConnect = watch.connected
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		watch.end()
		return nil, fmt.Errorf("postgres: open %s: %w", Redact(connString), err)
	}
	if err := start(ctx, pool, cfg, watch); err != nil {
		watch.end()
		return nil, fmt.Errorf("postgres: open %s: %w", Redact(connString), watch.gaveUp(err))
	}
	watch.end()
	background, cancel := context.WithCancel(context.Background())
	return &Store{pool: pool, OpTimeout: DefaultOpTimeout, asyncNonces: asyncNonces, background: background, cancel: cancel, log: opts.Logger}, nil
}

// start runs Open's steps on pool, telling watch which: the check that the database
// answers, the migrations, the check of the schema and the check that the database
// takes writes. It closes pool when one fails.
func start(ctx context.Context, pool *pgxpool.Pool, cfg *pgxpool.Config, watch *startWatch) (err error) {
	// A pooler in front of a database that is down accepts the connection and holds
	// the first statement (PgBouncer: until its query_wait_timeout, two minutes by
	// default), so the check that the database answers has a deadline of its own.
	watch.at("the check that the database answers")
	pingCtx, cancelPing := context.WithTimeout(ctx, openPingTimeout)
	err = pool.Ping(pingCtx)
	pingExpired := pingCtx.Err() != nil
	cancelPing()
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			// Which limit it was: this check's, or the URL's connect_timeout (5 s by
			// default, see above) for a connection that was never made.
			if pingExpired {
				err = fmt.Errorf("no answer within %v: %w", openPingTimeout, err)
			} else {
				err = fmt.Errorf("no connection within connect_timeout (%v): %w", cfg.ConnConfig.ConnectTimeout, err)
			}
			// Closing the connection that waited may take 15 s more (see Close).
			go pool.Close()
		} else {
			pool.Close()
		}
		if r, ok := connectRefusal(err); ok {
			err = fmt.Errorf("%s: %w", r.advice, err)
		}
		return err
	}
	defer func() {
		if err != nil {
			pool.Close()
		}
	}()
	if _, err := migrate(ctx, pool, watch); err != nil {
		return err
	}
	if err := checkSchema(ctx, pool, watch); err != nil {
		return err
	}
	// A database whose schema is up to date is not written at start: a standby would
	// pass, and its node answer every signed call 500028.
	watch.at("the check that the database takes writes")
	var readOnly string
	roCtx, cancelRO := context.WithTimeout(ctx, schemaTimeout)
	err = pool.QueryRow(roCtx, `SHOW transaction_read_only`).Scan(&readOnly)
	cancelRO()
	if err == nil && readOnly == "on" {
		err = errors.New("the database takes no writes: transaction_read_only is on (a standby not yet promoted, or read-only by its settings)")
	}
	return err
}

// Close ends the views still open (their reads fail from then on), stops the
// background nonce sweep, if one runs, and closes the pool. Operations after Close
// fail with a database error. Close may be called more than once.
//
// Close waits at most closeWait for the pool's connections to close. Nothing is left to
// write at that point (every operation commits before it returns); what takes longer
// is the driver's goodbye to a server that does not answer it. pgx waits up to 15 s for
// the other side to close a connection after its Terminate message, and PgBouncer,
// holding an earlier statement of that connection while its database is down, reads
// the Terminate only once that statement is done: a node shutting down in such an
// outage then waited 15 s more. Those connections close in the background.
func (s *Store) Close() error {
	s.closing.Do(func() {
		s.mu.Lock()
		s.closed = true
		views := make([]*view, 0, len(s.views))
		for v := range s.views {
			views = append(views, v)
		}
		s.mu.Unlock()
		// The views first: the pool's Close waits for their connections.
		for _, v := range views {
			v.Close()
		}
		s.cancel()
		s.sweeps.Wait()
		closed := make(chan struct{})
		go func() {
			s.pool.Close()
			close(closed)
		}()
		select {
		case <-closed:
		case <-time.After(closeWait):
		}
	})
	return nil
}

// closeWait bounds Close's wait for the pool's connections to close.
const closeWait = 2 * time.Second

//go:embed migrations/*.sql migrations/superseded/*.sql
var migrations embed.FS

// migrate applies the migrations that the database has not seen, in order, and reports
// how many it applied.
func migrate(ctx context.Context, pool *pgxpool.Pool, watch *startWatch) (int, error) {
	watch.at("the table of applied migrations (schema_migrations)")
	// Two nodes creating the table at once can both pass IF NOT EXISTS, and then one
	// fails on PostgreSQL's catalog (unique violation, duplicate table or type): the
	// table is there all the same, so try again.
	for attempt := 0; ; attempt++ {
		// A deadline, as for any call: a server that never commits (synchronous
		// replication with no standby attached) would hold a first start for ever.
		stepCtx, cancel := context.WithTimeout(ctx, schemaTimeout)
		// Looked for first: PostgreSQL checks the CREATE privilege on the schema before
		// it looks for the table, so CREATE TABLE IF NOT EXISTS alone would refuse a
		// role that may only read and write the tables of a migrated database.
		_, err := pool.Exec(stepCtx, `SELECT 1 FROM schema_migrations LIMIT 0`)
		if hasCode(err, "42P01") { // undefined_table
			_, err = pool.Exec(stepCtx, `CREATE TABLE IF NOT EXISTS schema_migrations (
				version    BIGINT PRIMARY KEY,
				name       TEXT NOT NULL,
				applied_at BIGINT NOT NULL
			)`)
		}
		cancel()
		if err == nil {
			break
		}
		if attempt >= 5 || !hasCode(err, "23505", "42P07", "42710") && !idempotentRetry(err) {
			return 0, fmt.Errorf("create schema_migrations: %w%s", err, mayNotCreate(err))
		}
		if err := pause(ctx, time.Duration(attempt+1)*10*time.Millisecond); err != nil {
			return 0, fmt.Errorf("create schema_migrations: %w", err)
		}
	}
	names, err := fs.Glob(migrations, "migrations/*.sql") // in lexical order: 0001_, 0002_, ...
	if err != nil {
		return 0, err
	}
	// A database that a newer Socius migrated is used all the same: PostgreSQL's
	// migrations only add, so that the older nodes of a rolling upgrade keep working.
	applied := 0
	for _, name := range names {
		base := path.Base(name)
		prefix, _, _ := strings.Cut(base, "_")
		version, err := strconv.Atoi(prefix)
		if err != nil {
			return applied, fmt.Errorf("migration %s: name does not start with a number", base)
		}
		watch.at("migration " + base)
		ok, err := applyMigration(ctx, pool, watch, version, name)
		if err != nil {
			return applied, fmt.Errorf("migration %s: %w%s", base, err, mayNotCreate(err))
		}
		if ok {
			applied++
		}
	}
	return applied, nil
}

// schemaTables are the tables the store uses, each with its columns and the migration
// that made it (tokens.root: 0005), for checkSchema.
var schemaTables = []struct{ table, columns, migration string }{
	{"sites", siteColumns + ", seq", "0001_init.sql"},
	{"keys", keyColumns + ", seq", "0001_init.sql"},
	{"users", "api_key, " + userColumns, "0001_init.sql"},
	{"tokens", "hash, kind, api_key, uid, user_key, created_at, expires_at, revoked_at", "0002_tokens.sql"},
	{"tokens", "root", "0005_token_roots.sql"},
	{"nonces", "key, expires_at", "0003_nonces.sql"},
	{"settings", "name, value", "0006_settings.sql"},
}

// checkSchema checks, once the migrations are applied, that the database has every
// table and column the store uses. schema_migrations lists a migration as applied, so
// a table dropped since (or a schema made by hand) is not made again, and a server
// that started on it answered every call that needs it with 500028 while /readyz said
// ready.
func checkSchema(ctx context.Context, pool *pgxpool.Pool, watch *startWatch) error {
	for _, t := range schemaTables {
		watch.at("the check of table " + t.table)
		stepCtx, cancel := context.WithTimeout(ctx, schemaTimeout)
		_, err := pool.Exec(stepCtx, `SELECT `+t.columns+` FROM `+t.table+` LIMIT 0`)
		cancel()
		if hasCode(err, "42P01", "42703") { // undefined_table, undefined_column
			return fmt.Errorf("the database lacks what migration %s makes, though schema_migrations lists it as applied (a table dropped or changed by hand since, or a schema made by hand): %w; "+
				"restore the database from a backup, or make what is missing as that migration does (postgres/migrations/ in Socius's source) and start again", t.migration, err)
		}
		if hasCode(err, "42501") { // insufficient_privilege
			// A GRANT ... ON ALL TABLES covers the tables there when it ran, not those a
			// later migration made: the role then serves nothing after the upgrade.
			return fmt.Errorf("check table %s: %w: the URL's role may not read table %s (made by migration %s): "+
				"as the tables' owner, GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA ... TO %s "+
				"(a GRANT ... ON ALL TABLES covers the tables there when it runs, not those a later migration makes; "+
				"ALTER DEFAULT PRIVILEGES ... GRANT ... ON TABLES covers those too; docs/postgresql.md)",
				t.table, err, t.table, t.migration, pool.Config().ConnConfig.User)
		}
		if err != nil {
			return fmt.Errorf("check table %s: %w", t.table, err)
		}
	}
	return nil
}

// mayNotCreate is what to do, after err, when err is PostgreSQL refusing the URL's role
// a privilege (42501) that a migration needs: to create tables in the database's
// schema, or to change one it does not own.
func mayNotCreate(err error) string {
	if !hasCode(err, "42501") {
		return ""
	}
	return ": the URL's role may not change the database's schema, which this Socius must bring up to date: " +
		"start it once with a role that owns the database (createdb --owner) or the tables, or that may create tables in its schema " +
		"(GRANT CREATE ON SCHEMA ...); a database whose schema is up to date needs only the privileges to read and write its tables (docs/postgresql.md)"
}

// applyMigration runs one migration, unless schema_migrations lists it, in one
// transaction: the migration's statements first, then the insert of its version row.
// When nodes start together, each may begin the same migration; the first to commit
// wins, and the others fail on what it made (the same table or row, on which
// PostgreSQL makes them wait until it commits) and roll back whole, so that
// nothing is applied twice. They then find the version listed and skip it. The
// statements come before the version row because CockroachDB refuses a schema change
// after a write in the same transaction.
func applyMigration(ctx context.Context, pool *pgxpool.Pool, watch *startWatch, version int, name string) (bool, error) {
	body, err := migrations.ReadFile(name)
	if err != nil {
		return false, err
	}
	defer watch.retry(false)
	deadline := time.Now().Add(migrationTimeout)
	lockWaits := 0
	for attempt := 0; ; {
		var applied bool
		mctx, cancel := context.WithDeadline(ctx, deadline)
		err := pgx.BeginFunc(mctx, pool, func(tx pgx.Tx) error {
			// A lock the migration waits for (another session's transaction on a table
			// it alters) puts every statement on that table after it, the calls of the
			// nodes serving, in the queue behind it: give up the wait after a while,
			// let them through, and try again.
			if _, err := tx.Exec(mctx, fmt.Sprintf(`SET LOCAL lock_timeout = %d`, migrationLockTimeout.Milliseconds())); err != nil {
				return err
			}
			var recorded string
			err := tx.QueryRow(mctx, `SELECT name FROM schema_migrations WHERE version = $1`, version).Scan(&recorded)
			switch {
			case err == nil && recorded == path.Base(name):
				return nil
			case err == nil:
				// The version was applied by a development build that had another
				// migration of that number: repaired when Socius knows it, else refused.
				// Nodes repairing at once: the first commits, the others fail on the
				// column it added and find the version as this build names it.
				repair, rerr := supersededRepair(version, recorded, path.Base(name))
				if rerr != nil {
					return rerr
				}
				if _, err := tx.Exec(mctx, string(repair)); err != nil {
					return fmt.Errorf("repairing %s: %w", recorded, err)
				}
				_, err = tx.Exec(mctx, `UPDATE schema_migrations SET name = $1, applied_at = $2 WHERE version = $3`,
					path.Base(name), time.Now().UnixMilli(), version)
				applied = err == nil
				return err
			case !errors.Is(err, pgx.ErrNoRows):
				return err
			}
			if _, err := tx.Exec(mctx, string(body)); err != nil { // no arguments: the simple protocol, several statements
				return err
			}
			_, err = tx.Exec(mctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)`,
				version, path.Base(name), time.Now().UnixMilli())
			applied = err == nil
			return err
		})
		cancel()
		if err == nil {
			return applied, nil
		}
		if hasCode(err, "55P03") { // lock_not_available: lock_timeout, above
			wait := min(migrationLockPause<<min(lockWaits, 4), 8*migrationLockPause)
			lockWaits++
			watch.retry(true)
			if ctx.Err() == nil && time.Now().Add(wait).Before(deadline) && pause(ctx, wait) == nil {
				continue
			}
			if ctx.Err() != nil {
				// A start cancelled (a signal to the node) ends at once, in its pause too.
				return false, fmt.Errorf("gave up waiting for a lock that the migration needs: %w (the last wait: %w)", ctx.Err(), err)
			}
			return false, lockHeld(err)
		}
		if lockWaits > 0 && errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			// The deadline came in a wait for the lock, after waits given up before it.
			return false, lockHeld(err)
		}
		// Another node applying the same migration at the same time makes it fail on
		// what that node created (a table, a type, the version row).
		if attempt >= 5 || !idempotentRetry(err) && !hasCode(err, "23505", "42P07", "42710", "42701") {
			return false, err
		}
		attempt++
		if perr := pause(ctx, time.Duration(attempt)*10*time.Millisecond); perr != nil {
			return false, fmt.Errorf("%w (after: %w)", perr, err)
		}
	}
}

// lockHeld is the error of a migration that waited for a lock, up to its deadline.
func lockHeld(err error) error {
	return fmt.Errorf("another session held a lock that the migration needs for %v (each wait given up after %v, so that the calls of the nodes serving do not queue behind it; "+
		"find the session in pg_locks and pg_stat_activity, e.g. one idle in a transaction, or a long pg_dump): %w", migrationTimeout, migrationLockTimeout, err)
}

// supersededRepair returns the statements that turn a database on which a development
// build applied recorded as its migration version into one on which this build applied
// want, from migrations/superseded; an error that says what to do when Socius has none.
func supersededRepair(version int, recorded, want string) ([]byte, error) {
	// Only a repair of that version: its file name starts with the version's number.
	if fs.ValidPath(recorded) && !strings.Contains(recorded, "/") && strings.HasPrefix(recorded, fmt.Sprintf("%04d_", version)) {
		if body, err := migrations.ReadFile("migrations/superseded/" + recorded); err == nil {
			return body, nil
		}
	}
	return nil, fmt.Errorf("the database's schema version %d is %q, which this Socius does not know (its version %d is %s): "+
		"a development build of Socius made the database; with that build, export it (`socius user export --with-site`) and import the file into a new database", version, recorded, version, want)
}

// idempotentRetry reports whether work that may run twice (the migrations: each looks
// first at what is there) may run again after err: also when the connection broke
// after the work was sent, which retryable refuses for work that may not.
func idempotentRetry(err error) bool {
	return retryable(err) || connectionLost(err)
}

// errorFor translates a driver error at the store's boundary: a taken key is
// socius.ErrExists, a reference to a missing site socius.ErrNotFound, anything else a
// database error (500028) that keeps the cause for the logs. A query for one row that
// found none is socius.ErrNotFound; domain errors pass through.
func errorFor(op string, err error) error {
	if err == nil || errors.Is(err, socius.ErrNotFound) || errors.Is(err, socius.ErrExists) || errors.Is(err, socius.ErrKeyGone) ||
		errors.Is(err, socius.ErrRootGone) || errors.Is(err, socius.ErrTokenMoved) {
		return err
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return socius.ErrNotFound
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "23505": // unique_violation
			return socius.ErrExists
		case "23503": // foreign_key_violation
			return socius.ErrNotFound
		case "53100": // disk_full
			return socius.DiskFullError("postgres: "+op, err)
		case "25006": // read_only_sql_transaction: a standby, or default_transaction_read_only
			return socius.DatabaseErrorSaying("the database takes no writes; nothing was written", "postgres: "+op, err)
		case "42501": // insufficient_privilege on a statement (at connecting: refusals, below)
			if ce := (*pgconn.ConnectError)(nil); !errors.As(err, &ce) {
				return socius.DatabaseErrorSaying("the database refused the server's role a privilege on a table it needs (permission denied)", "postgres: "+op, err)
			}
		}
		if unstorable(err) {
			// The caller's value, not the database: 400006, as SQLite, which stores
			// such text, would answer for whatever the server checks itself.
			return socius.Errorf(socius.CodeInvalidValue, "Invalid parameter value: %s: PostgreSQL cannot store it (a NUL byte, invalid UTF-8, or a key too long for an index)", op)
		}
	}
	var ce *pgconn.ConnectError
	switch {
	case errors.As(err, &ce):
		if r, ok := connectRefusal(err); ok {
			return socius.DatabaseErrorSaying(r.details, "postgres: "+op, fmt.Errorf("%s: %w", r.advice, err))
		}
		return socius.DatabaseErrorSaying("the database could not be reached", "postgres: "+op, err)
	case connectionLost(err):
		return socius.DatabaseErrorSaying("the connection to the database was lost", "postgres: "+op, err)
	}
	return socius.DatabaseError("postgres: "+op, err)
}

// A refusal is PostgreSQL answering a new connection and refusing it: the server was
// reached, so "could not be reached" would send an operator after the network.
// details is what a client reads after "Database error: " (the kind of refusal,
// nothing of the server's names or addresses); advice is what the log and Open's
// error say before the driver's own text, which names the role and the database.
type refusal struct{ details, advice string }

// refusals are the refusals by SQLSTATE.
var refusals = map[string]refusal{
	"28P01": { // invalid_password
		"the database refused the server's credentials (password authentication failed)",
		"PostgreSQL refused the password of the URL's role: the password is not the role's (changed since the URL was written), or the role has none, or does not exist: PostgreSQL says the same for all three",
	},
	"28000": { // invalid_authorization_specification
		"the database refused the server's login (its role is unknown, may not log in, or is not let in from this host)",
		"PostgreSQL refused the URL's role: it does not exist, has no LOGIN, or pg_hba.conf does not let it in from this host (PostgreSQL's message says which)",
	},
	"3D000": { // invalid_catalog_name
		"the server's database does not exist",
		"the database the URL names does not exist on the server (dropped, renamed, or misspelt in the URL)",
	},
	"42501": { // insufficient_privilege, at connecting: no CONNECT on the database
		"the server's role may not connect to its database",
		"the URL's role has no CONNECT privilege on the database (GRANT CONNECT ON DATABASE ... TO the role)",
	},
	"53300": { // too_many_connections
		"the database has no connection free for the server (too many connections)",
		"PostgreSQL has no connection slot for a new connection: max_connections, or the role's or the database's CONNECTION LIMIT, is reached (lower pool_max_conns across the nodes, or raise the limit)",
	},
	"57P03": { // cannot_connect_now
		"the database takes no connections now (starting up, shutting down, or in recovery)",
		"PostgreSQL takes no connections now: it is starting up, shutting down, or a standby that takes none (hot_standby off, or not yet consistent)",
	},
}

// connectRefusal reports the refusal of a connection that err holds, if PostgreSQL
// answered the connection and refused it with one of refusals' codes.
func connectRefusal(err error) (refusal, bool) {
	var ce *pgconn.ConnectError
	var pe *pgconn.PgError
	if !errors.As(err, &ce) || !errors.As(ce, &pe) {
		return refusal{}, false
	}
	r, ok := refusals[pe.Code]
	return r, ok
}

// storable reports whether PostgreSQL can hold s as text: valid UTF-8 without a NUL
// byte. A key that is not finds nothing, which is answered without asking.
func storable(s string) bool {
	return utf8.ValidString(s) && strings.IndexByte(s, 0) < 0
}

// unstorable reports whether err is PostgreSQL refusing a value as text it cannot hold
// (a NUL byte, invalid UTF-8: 22021, 22P05) or as too long for an index (54000), or
// refusing a message that a NUL byte cut short (refusedMessage).
func unstorable(err error) bool {
	return hasCode(err, "22021", "22P05", "54000") || refusedMessage(err)
}

// refusedMessage reports whether err is PostgreSQL refusing one message it could not
// parse, after which the session goes on. Over the simple protocol
// (default_query_exec_mode=simple_protocol) the values travel in the statement's text,
// which a NUL byte cuts short: PostgreSQL answers "invalid message format" (08P01) at
// ERROR severity, naming the routine that refused it. pgx builds every other message
// right. A pooler reports its own failures with the same code but ends the session
// (PgBouncer: "FATAL: query_wait_timeout", "pgbouncer cannot connect to server") and
// names no routine: those are the connection's failures (connectionLost).
func refusedMessage(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "08P01" && pe.Routine != "" && !fatal(pe)
}

// fatal reports whether the server (or a pooler) ends the session with the error.
func fatal(pe *pgconn.PgError) bool {
	switch cmp.Or(pe.SeverityUnlocalized, pe.Severity) {
	case "FATAL", "PANIC":
		return true
	}
	return false
}

// hasCode reports whether err is a server error with one of the SQLSTATE codes.
func hasCode(err error, codes ...string) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && slices.Contains(codes, pe.Code)
}

// retryable reports whether a failed operation certainly took no effect and may run
// again: the server rolled its transaction back (a serialization failure, which
// CockroachDB reports under contention, or a deadlock), or the request never left.
//
// pgx calls a connection found closed (pgconn.ErrConnClosed) safe to retry, but pgx
// 5.12 also reports so a connection that broke while it read the answer to a statement
// sent with the simple protocol (default_query_exec_mode=simple_protocol, which
// PgBouncer in transaction mode needs; BEGIN and COMMIT always): it drains the answer
// after the first failure, and the second failure's error replaces the first. The
// statement may have been committed, so that is not retried. A transaction that lost
// its connection before its COMMIT was sent is (beforeCommit), and so is any write
// whose connection failed to open (pgx does not call that safe): it sent nothing.
func retryable(err error) bool {
	var bc *beforeCommit
	var ce *pgconn.ConnectError
	return hasCode(err, "40001", "40P01") || errors.As(err, &bc) || errors.As(err, &ce) ||
		pgconn.SafeToRetry(err) && !errors.Is(err, pgconn.ErrConnClosed)
}

// connectionLost reports whether err is a failure of the connection or of the server
// as a whole rather than of the statement: a read that failed so may simply run again.
func connectionLost(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		// An error that ends the session; class 08, connection exception, but for a
		// message refused (refusedMessage), after which the session goes on;
		// 57P01..57P03: the server is shutting down, crashed or not yet accepting
		// connections.
		return fatal(pe) || strings.HasPrefix(pe.Code, "08") && !refusedMessage(err) ||
			slices.Contains([]string{"57P01", "57P02", "57P03"}, pe.Code)
	}
	var ne net.Error
	var ce *pgconn.ConnectError
	return errors.As(err, &ne) || errors.As(err, &ce) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, pgconn.ErrConnClosed)
}

// withTimeout returns ctx bounded by the store's operation timeout.
func (s *Store) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.OpTimeout)
}

// lost reports whether err says the connection, or the server, is gone. When a
// connection that worked broke, it resets the pool, whose other idle connections most
// likely went with it (a restart, a failover, a network cut): the next calls then open
// new connections rather than fail one by one on the old ones. A new connection that
// could not be opened (refused, its slots full: 53300) says nothing of those that
// work: a reset would throw them away, and with max_connections full each call after
// it would have to connect, and be refused in turn.
func (s *Store) lost(err error) bool {
	if err == nil || !connectionLost(err) {
		return false
	}
	var ce *pgconn.ConnectError
	if !errors.As(err, &ce) {
		s.pool.Reset()
	}
	return true
}

// read runs an idempotent read, once more if the connection broke under it (a pooled
// connection that the database closed while it sat idle, for instance).
func (s *Store) read(ctx context.Context, op string, fn func(ctx context.Context) error) error {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	err := fn(ctx)
	if err != nil && (s.lost(err) || retryable(err)) && ctx.Err() == nil {
		err = fn(ctx)
		s.lost(err)
	}
	if unstorable(err) {
		return socius.ErrNotFound // no row holds what the database cannot store
	}
	return errorFor(op, err)
}

// write runs a write that is one statement (or several that are each complete), again
// while it certainly took no effect. A write that was sent on a connection that then
// broke is not run again: it may have been committed.
func (s *Store) write(ctx context.Context, op string, fn func(ctx context.Context) error) error {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	var err error
	for attempt := 0; ; attempt++ {
		err = fn(ctx)
		s.lost(err)
		if err == nil || !retryable(err) || ctx.Err() != nil {
			break
		}
		// A serialization failure (at SERIALIZABLE, or CockroachDB's only level) is
		// the database asking for the transaction again: writers to one row keep
		// meeting until they are spread out, so each waits a growing, random while,
		// for as long as the deadline allows. Any other failure that certainly took no
		// effect runs again at once, at most three times: a database that is gone
		// fails the call, as it should, rather than hold it.
		if !hasCode(err, "40001", "40P01") {
			if attempt >= 2 {
				break
			}
			continue
		}
		if pause(ctx, retryPause(attempt)) != nil {
			break
		}
	}
	return errorFor(op, err)
}

// pause waits d, or until ctx ends (then its error).
func pause(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// retryPause is the wait before the attempt after attempt (counted from 0) of a
// transaction that failed to serialize: random, up to 1 ms doubled for each attempt,
// at most 100 ms.
func retryPause(attempt int) time.Duration {
	limit := min(time.Millisecond<<min(attempt, 7), 100*time.Millisecond)
	return time.Duration(rand.Int64N(int64(limit))) + 1
}

// tx runs fn in a transaction, committed if fn returns nil and rolled back otherwise,
// and runs it again while the transaction certainly took no effect: when the database
// refused it (a serialization failure, also at COMMIT), or lost its connection before
// the COMMIT was sent (beforeCommit). A COMMIT whose answer did not come back may have
// taken effect, and is never run again, whatever error the driver gives for it
// (commitLost; pgx gives one it calls safe to retry, see retryable).
func (s *Store) tx(ctx context.Context, op string, fn func(ctx context.Context, tx pgx.Tx) error) error {
	return s.txWith(ctx, op, pgx.TxOptions{}, fn)
}

// txWith is tx with the transaction's options (an isolation level).
func (s *Store) txWith(ctx context.Context, op string, opts pgx.TxOptions, fn func(ctx context.Context, tx pgx.Tx) error) error {
	return s.write(ctx, op, func(ctx context.Context) error {
		tx, err := s.pool.BeginTx(ctx, opts)
		if err != nil {
			return lostBeforeCommit(err)
		}
		// After the commit a no-op; after fn's error (the one to report) or a panic,
		// the rollback, and the connection back to the pool.
		defer func() { _ = tx.Rollback(ctx) }()
		if err := fn(ctx, tx); err != nil {
			return lostBeforeCommit(err)
		}
		if err := tx.Commit(ctx); err != nil {
			var pe *pgconn.PgError
			if errors.As(err, &pe) {
				return err
			}
			return &commitLost{err}
		}
		return nil
	})
}

// lostBeforeCommit marks err, a transaction's failure before its COMMIT was sent, as
// safe to retry when it is the connection's loss: the database rolls back a
// transaction whose connection ends, so it took no effect. (pgx calls such a failure
// safe to retry only when nothing at all was sent on the connection.)
func lostBeforeCommit(err error) error {
	if connectionLost(err) {
		return &beforeCommit{err}
	}
	return err
}

// beforeCommit is a transaction's connection lost before its COMMIT was sent.
type beforeCommit struct{ err error }

func (e *beforeCommit) Error() string { return e.err.Error() }
func (e *beforeCommit) Unwrap() error { return e.err }

// commitLost is a COMMIT that failed without an answer from the database: it may have
// taken effect, so it is not safe to retry, whatever the driver's error says.
type commitLost struct{ err error }

func (e *commitLost) Error() string {
	return "commit unanswered, it may have taken effect: " + e.err.Error()
}
func (e *commitLost) Unwrap() error     { return e.err }
func (e *commitLost) SafeToRetry() bool { return false }

// affected turns the command tag of an UPDATE or DELETE of one row into an error:
// socius.ErrNotFound when no row matched.
func affected(tag pgconn.CommandTag, err error) error {
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return socius.ErrNotFound
	}
	return nil
}

// millis and fromMillis convert times to and from the stored Unix milliseconds.
func millis(t time.Time) int64 { return t.UnixMilli() }

func fromMillis(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

// nullMillis and fromNullMillis do the same for optional times: the zero time is NULL.
func nullMillis(t time.Time) *int64 {
	if t.IsZero() {
		return nil
	}
	ms := millis(t)
	return &ms
}

func fromNullMillis(ms *int64) time.Time {
	if ms == nil {
		return time.Time{}
	}
	return fromMillis(*ms)
}

// nullString is v, or NULL when v is empty.
func nullString(v string) *string {
	if v == "" {
		return nil
	}
	return &v
}

// fromNullString is the value, or "" for NULL.
func fromNullString(v *string) string {
	if v == nil {
		return ""
	}
	return *v
}

// Advice returns what the database's settings, or the URL's, leave open that an
// operator should close, one sentence each; nil when nothing. Two checks. A session left
// idle inside a transaction (a node frozen, paused or cut off mid-call) keeps the rows
// it wrote locked until PostgreSQL ends it, and without
// idle_in_transaction_session_timeout it never does: every other node's writes to
// those users then fail at their deadline. And a connection to another machine whose
// server certificate is not checked (connectionAdvice).
func (s *Store) Advice(ctx context.Context) []string {
	var out []string
	if a := connectionAdvice(&s.pool.Config().ConnConfig.Config); a != "" {
		out = append(out, a)
	}
	var v string
	if err := s.pool.QueryRow(ctx, `SHOW idle_in_transaction_session_timeout`).Scan(&v); err == nil && v == "0" {
		out = append(out, "idle_in_transaction_session_timeout is 0 (off): a node frozen or cut off in the middle of a call would keep its users' rows locked, and the other nodes' writes to them failing, until PostgreSQL notices its connection is gone (if ever); set it, e.g. ALTER ROLE <socius's role> SET idle_in_transaction_session_timeout = '30s' (see docs/postgresql.md)")
	}
	return out
}

// connectionAdvice says so when the URL lets the store connect to a database on
// another machine without checking its server's certificate: sslmode=disable, allow,
// prefer (pgx's default when the URL gives none: it takes any certificate, and falls
// back to plain text when the server offers no TLS) or require (any certificate). On
// such a connection whoever is on the path may read and change what Socius reads and
// writes (the users' data, tokens' hashes, sealed secrets) by posing as the database.
// A Unix socket and a loopback host are not another machine. "" when every host is
// checked (verify-ca, verify-full) or local.
func connectionAdvice(cc *pgconn.Config) string {
	type target struct {
		host string
		tls  *tls.Config
	}
	targets := []target{{cc.Host, cc.TLSConfig}}
	for _, fb := range cc.Fallbacks {
		targets = append(targets, target{fb.Host, fb.TLSConfig})
	}
	var hosts []string
	for _, t := range targets {
		if localHost(t.host) || t.tls != nil && (!t.tls.InsecureSkipVerify || t.tls.VerifyPeerCertificate != nil) {
			continue
		}
		if !slices.Contains(hosts, t.host) {
			hosts = append(hosts, t.host)
		}
	}
	if len(hosts) == 0 {
		return ""
	}
	return fmt.Sprintf("the connection to %s does not check the database server's certificate (sslmode disable, allow, prefer or require; prefer when the URL gives none, which also falls back to plain text): whoever is on the network path may read and change what Socius reads and writes; give sslmode=verify-full, with sslrootcert=FILE for a private CA (see docs/postgresql.md)",
		strings.Join(hosts, ", "))
}

// localHost reports whether a connection's host is this machine: a Unix socket's
// folder, localhost or a loopback address.
func localHost(host string) bool {
	if strings.HasPrefix(host, "/") || strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Healthy reports whether the database takes writes. A server that became read-only
// (a demoted primary, a standby, default_transaction_read_only) still answers reads,
// so a read alone calls the node ready while every signed call fails: its nonce is a
// write. /readyz asks this.
func (s *Store) Healthy() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	// A read as the calls' reads are: tried again on a new connection when its pooled
	// one broke while idle (the database closed it, restarted, failed over), so that
	// the probe does not call the node down for what the calls mend.
	var readOnly string
	if err := s.read(ctx, "readiness", func(ctx context.Context) error {
		return s.pool.QueryRow(ctx, `SHOW transaction_read_only`).Scan(&readOnly)
	}); err != nil {
		return err
	}
	if readOnly == "on" {
		return socius.DatabaseError("postgres", errors.New("the database takes no writes (transaction_read_only is on: a standby, or read-only by its settings)"))
	}
	return nil
}
