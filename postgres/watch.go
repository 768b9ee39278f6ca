package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/socius/socius/internal/errtext"
)

// The start watched: Open's steps (the ping, the migrations, the schema check, the
// read-only check) may wait for a lock that another session holds (a psql left idle in
// a transaction that touched users, a LOCK TABLE, a long pg_dump), and a node then sat
// silent until a deadline, whose error did not say who held it. While the start runs, a
// watcher looks every startWatchPeriod at what the start's sessions wait for, asking
// PostgreSQL (pg_blocking_pids, pg_stat_activity) on a connection of its own, not the
// pool's, which the start may hold whole (pool_max_conns=1). It logs what it finds,
// and a start that gives up names the holders last seen in its error.

// startWatchPeriod is how often the watcher looks (a variable for tests). A start that
// ends sooner is never looked at.
var startWatchPeriod = 5 * time.Second

// watchLookTimeout bounds each look: its connection and its statement
// (statement_timeout, set for its own transaction).
const watchLookTimeout = 3 * time.Second

// startWatch watches one start (Open): the step it is at, the backends of the
// connections its pool made (by the pool's AfterConnect), and the holders of the locks
// they waited for when last looked at.
type startWatch struct {
	log *slog.Logger // nil: nothing logged
	cfg *pgx.ConnConfig

	mu    sync.Mutex
	step  string
	since time.Time // when step began
	pids  []uint32
	ended bool   // the start ended: later connections are the store's, not the start's
	held  string // the holders a look last found the step waiting for, "" when none
	blind bool   // a look could not see, said once
	// retrying: the step's migration gave up a wait for a lock (lock_timeout) and
	// tries again, after a pause (applyMigration).
	retrying bool
	cancel   context.CancelFunc
	done     chan struct{}
}

// watchStart starts watching a start that connects with cfg (a copy is kept); log may
// be nil. end stops it.
func watchStart(cfg *pgx.ConnConfig, log *slog.Logger) *startWatch {
	wcfg := cfg.Copy()
	if wcfg.ConnectTimeout == 0 || wcfg.ConnectTimeout > watchLookTimeout {
		wcfg.ConnectTimeout = watchLookTimeout
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &startWatch{log: log, cfg: wcfg, step: "connecting", since: time.Now(), cancel: cancel, done: make(chan struct{})}
	go w.run(ctx, startWatchPeriod)
	return w
}

// connected records the backend of a connection the pool made (pgxpool's AfterConnect).
func (w *startWatch) connected(_ context.Context, c *pgx.Conn) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.ended {
		w.pids = append(w.pids, c.PgConn().PID())
	}
	return nil
}

// at says that the start is at step now. A nil watch (migrate's tests) does nothing.
func (w *startWatch) at(step string) {
	if w == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.step, w.since, w.held = step, time.Now(), ""
}

// retry says whether the step's migration is trying again after it gave up a wait for
// a lock. A nil watch does nothing.
func (w *startWatch) retry(on bool) {
	if w == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.retrying = on
}

// end stops the watcher, a look in progress with it, and waits until it has stopped.
func (w *startWatch) end() {
	w.mu.Lock()
	w.ended = true
	w.mu.Unlock()
	w.cancel()
	<-w.done
}

// gaveUp returns err, a failure of the start, with the holders of the lock that a look
// last found the failed step waiting for, when err is the start giving up a wait (its
// deadline, its context, a lock_timeout or statement_timeout): "...; it waited for a
// lock held by pid 123 (psql, user alice, ...)". Not only the last look's: the
// statement cancelled at the deadline no longer waits, and a look just after it finds
// no holder. Other failures, and a step never found waiting, are returned as they are.
func (w *startWatch) gaveUp(err error) error {
	w.mu.Lock()
	held := w.held
	w.mu.Unlock()
	if held == "" || !(errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) ||
		hasCode(err, "55P03", "57014")) { // lock_not_available, query_canceled
		return err
	}
	return fmt.Errorf("%w; it waited for a lock held by %s", err, held)
}

func (w *startWatch) run(ctx context.Context, period time.Duration) {
	defer close(w.done)
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		w.look(ctx)
	}
}

// look finds what the start waits for and says it: the holders of the locks its
// sessions wait for (Warn), or that they wait for none (Info, a step that takes long),
// or that it cannot be seen (Warn, the reason said once).
func (w *startWatch) look(ctx context.Context) {
	began := time.Now()
	w.mu.Lock()
	step, since, pids, retrying := w.step, w.since, slices.Clone(w.pids), w.retrying
	w.mu.Unlock()
	if len(pids) == 0 {
		w.say(slog.LevelWarn, "postgres: the start waits for a connection to the database", "step", step, "waited", round(time.Since(since)))
		return
	}
	sessions, err := w.query(ctx, pids, func() bool {
		// A migration that gives up each wait for a lock (lock_timeout) and tries
		// again after a pause is found waiting only during its attempts: it is looked
		// at again until one is caught, for up to a whole cycle of them.
		w.mu.Lock()
		again := w.retrying && w.step == step
		w.mu.Unlock()
		return again && time.Since(began) < migrationLockTimeout+8*migrationLockPause
	})
	if ctx.Err() != nil {
		return // the start ended meanwhile
	}
	attrs := []any{"step", step, "waited", round(time.Since(since))}
	var unseen string
	switch {
	case err != nil:
		unseen = "the watcher could not read pg_stat_activity: " + errtext.Printable(err.Error())
	case len(sessions) == 0:
		unseen = "the start's sessions are not in pg_stat_activity (a pooler such as PgBouncer between Socius and PostgreSQL?)"
	}
	if unseen != "" {
		w.mu.Lock()
		first := !w.blind
		w.blind = true
		w.mu.Unlock()
		if first {
			attrs = append(attrs, "unseen", unseen+"; not said again")
		}
		w.say(slog.LevelWarn, "postgres: the start waits; what for cannot be seen", attrs...)
		return
	}
	held, waits := holdersOf(sessions)
	w.mu.Lock()
	if held != "" && w.step == step {
		w.held = held
	}
	last := w.held
	if w.step != step {
		last = "" // the step it was looked at for is over
	}
	w.mu.Unlock()
	const endIt = "end that session's transaction (or the session: SELECT pg_terminate_backend(pid)) to let it go on"
	switch {
	case held != "":
		w.say(slog.LevelWarn, "postgres: the start waits for a lock another session holds; "+endIt, append(attrs, "held_by", held)...)
	case retrying:
		w.say(slog.LevelWarn, "postgres: the start waits to try a migration again: another session held a lock it needs; "+endIt,
			append(attrs, "held_by", cmp.Or(last, "(not seen: the migration gives up each wait after "+migrationLockTimeout.String()+")"))...)
	default:
		if waits != "" {
			attrs = append(attrs, "wait_event", waits)
		}
		w.say(slog.LevelInfo, "postgres: the start is still at work, waiting for no other session", attrs...)
	}
}

// holdersOf says the holders of the locks that sessions wait for, "; " between them,
// and what else they wait for (wait events), ", " between them.
func holdersOf(sessions []watchedSession) (held, waits string) {
	var holders, events []string
	for _, s := range sessions {
		for _, h := range s.holders {
			if d := h.String(); !slices.Contains(holders, d) {
				holders = append(holders, d)
			}
		}
		if s.wait != "" && !slices.Contains(events, s.wait) {
			events = append(events, s.wait)
		}
	}
	return strings.Join(holders, "; "), strings.Join(events, ", ")
}

func (w *startWatch) say(level slog.Level, msg string, attrs ...any) {
	if w.log != nil {
		w.log.Log(context.Background(), level, msg, attrs...)
	}
}

// watchedSession is one of the start's sessions: what it waits for, and who holds it.
type watchedSession struct {
	wait    string // wait_event_type:wait_event, "" when it waits for nothing
	holders []holder
}

// holder is a session that holds a lock the start waits for, as pg_stat_activity shows
// it (the columns other roles' sessions hide from a role without pg_read_all_stats are
// nil).
type holder struct {
	pid             int32
	exists          bool // still in pg_stat_activity when looked at
	user, app, addr *string
	state           *string
	inState, inXact *float64 // seconds in its state, in its transaction
	query           *string  // its start (watchQuerySQL)
	queryBytes      *int64   // the whole statement's length
}

// queryShown is how much of a holder's statement is said, in bytes.
const queryShown = 200

// String says the holder for a person: pid 123 (psql, user alice, from 10.0.0.5, idle
// in transaction for 2m10s, its transaction open 2m12s: UPDATE users ...), its text
// escaped (errtext.Printable) and its statement clipped.
func (h holder) String() string {
	if !h.exists {
		return fmt.Sprintf("pid %d (gone from pg_stat_activity)", h.pid)
	}
	var parts []string
	if h.app != nil && *h.app != "" {
		parts = append(parts, errtext.Printable(*h.app))
	} else {
		parts = append(parts, "no application_name")
	}
	if h.user != nil {
		parts = append(parts, "user "+errtext.Printable(*h.user))
	}
	if h.addr != nil {
		parts = append(parts, "from "+errtext.Printable(*h.addr))
	}
	if h.state != nil {
		s := errtext.Printable(*h.state)
		if h.inState != nil {
			s += " for " + round(seconds(*h.inState)).String()
		}
		parts = append(parts, s)
	}
	if h.inXact != nil {
		parts = append(parts, "its transaction open "+round(seconds(*h.inXact)).String())
	}
	text := strings.Join(parts, ", ")
	if h.query != nil && *h.query != "" {
		// The length said is the text's as shown: its constants left out, and not
		// known when the statement was longer than what was read of it.
		q := withoutLiterals(*h.query)
		size := len(q)
		if h.queryBytes != nil && *h.queryBytes > int64(len(*h.query)) {
			size = -1
		}
		text += ": " + errtext.Clip([]byte(q), size, queryShown)
	}
	return fmt.Sprintf("pid %d (%s)", h.pid, text)
}

// withoutLiterals returns the statement q with the text of its string constants, quoted
// ('...', E'...') or dollar-quoted ($$...$$, $tag$...$tag$), left out ('…', $$…$$): the
// session holding the lock is another program's, and its statement can hold a
// password (ALTER ROLE ... PASSWORD '...') or someone's data, which Socius's log is no
// place for. Its shape (the command, the tables) is what tells the operator who it is.
// A constant that q, a statement's start, cuts off is left out to its end.
func withoutLiterals(q string) string {
	var b strings.Builder
	for i := 0; i < len(q); {
		switch c := q[i]; {
		case c == '\'':
			// '' inside a constant is a quote in it, and so is \' in an escape
			// constant (E'...'), the only kind in which a backslash escapes anything
			// (standard_conforming_strings, on since PostgreSQL 9.1).
			escapes := i > 0 && (q[i-1] == 'E' || q[i-1] == 'e') && (i < 2 || !identByte(q[i-2]))
			end := i + 1
			for end < len(q) {
				switch {
				case escapes && q[end] == '\\':
					end += 2
					continue
				case q[end] == '\'':
					if end+1 < len(q) && q[end+1] == '\'' {
						end += 2
						continue
					}
				default:
					end++
					continue
				}
				break
			}
			b.WriteString("'…'")
			i = end + 1
		case c == '$':
			tag, ok := dollarTag(q[i:])
			if !ok {
				b.WriteByte(c)
				i++
				continue
			}
			b.WriteString(tag + "…" + tag)
			if end := strings.Index(q[i+len(tag):], tag); end >= 0 {
				i += len(tag) + end + len(tag)
			} else {
				i = len(q)
			}
		default:
			b.WriteByte(c)
			i++
		}
	}
	return b.String()
}

// dollarTag returns the dollar-quote tag ($$ or $name$) at the start of s, if one is:
// $1, a parameter, is none.
func dollarTag(s string) (string, bool) {
	for j := 1; j < len(s); j++ {
		c := s[j]
		switch {
		case c == '$':
			return s[:j+1], true
		case c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c >= 0x80 || j > 1 && '0' <= c && c <= '9':
		default:
			return "", false
		}
	}
	return "", false
}

// identByte reports whether c can be part of an SQL identifier (or a number).
func identByte(c byte) bool {
	return c == '_' || c == '$' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c >= 0x80
}

func seconds(s float64) time.Duration { return time.Duration(max(s, 0) * float64(time.Second)) }

// round rounds d for a person: to the second from a second on, else to the millisecond.
func round(d time.Duration) time.Duration {
	if d >= time.Second {
		return d.Round(time.Second)
	}
	return d.Round(time.Millisecond)
}

// watchQuerySQL reads, for each of the start's backends ($1) that pg_stat_activity
// shows, what it waits for and the sessions that block it (pg_blocking_pids: those
// holding a lock it waits for, or ahead of it in the lock's queue), one row per
// blocker, or one with a NULL blocker when none. A holder's statement is read in part
// (left), which watchedSession clips again by bytes.
const watchQuerySQL = `SELECT w.pid, COALESCE(w.wait_event_type || ':' || w.wait_event, ''),
		b.pid, h.pid IS NOT NULL, h.usename::text, h.application_name, host(h.client_addr), h.state,
		EXTRACT(EPOCH FROM clock_timestamp() - h.state_change)::float8,
		EXTRACT(EPOCH FROM clock_timestamp() - h.xact_start)::float8,
		left(h.query, 400), octet_length(h.query)::bigint
	FROM pg_stat_activity w
	LEFT JOIN LATERAL unnest(pg_blocking_pids(w.pid)) AS b(pid) ON true
	LEFT JOIN pg_stat_activity h ON h.pid = b.pid
	WHERE w.pid = ANY($1::int4[])
	ORDER BY w.pid, b.pid`

// lookPoll is how often a look asks again while again says to (a migration between
// its attempts).
const lookPoll = 100 * time.Millisecond

// query reads what the start's sessions (pids) wait for, on a connection of its own
// that it closes, each reading within watchLookTimeout; again while no holder is found
// and again() says to, every lookPoll.
func (w *startWatch) query(ctx context.Context, pids []uint32, again func() bool) ([]watchedSession, error) {
	connectCtx, cancel := context.WithTimeout(ctx, watchLookTimeout)
	conn, err := pgx.ConnectConfig(connectCtx, w.cfg)
	cancel()
	if err != nil {
		return nil, err
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		conn.Close(closeCtx)
	}()
	ids := make([]int32, len(pids))
	for i, p := range pids {
		ids[i] = int32(p)
	}
	for {
		sessions, err := readSessions(ctx, conn, ids)
		if err != nil || len(sessions) == 0 || slices.ContainsFunc(sessions, func(s watchedSession) bool { return len(s.holders) > 0 }) ||
			!again() || pause(ctx, lookPoll) != nil {
			return sessions, err
		}
	}
}

// readSessions runs watchQuerySQL on conn, in a read-only transaction of its own with a
// statement_timeout, within watchLookTimeout.
func readSessions(ctx context.Context, conn *pgx.Conn, ids []int32) ([]watchedSession, error) {
	ctx, cancel := context.WithTimeout(ctx, watchLookTimeout)
	defer cancel()
	var out []watchedSession
	err := pgx.BeginTxFunc(ctx, conn, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		// In the transaction alone: through a pooler in transaction mode, a session's
		// SET would stay on the server connection for its next clients.
		if _, err := tx.Exec(ctx, fmt.Sprintf(`SET LOCAL statement_timeout = %d`, watchLookTimeout.Milliseconds())); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, watchQuerySQL, ids)
		if err != nil {
			return err
		}
		defer rows.Close()
		last := int32(-1)
		for rows.Next() {
			var pid int32
			var wait string
			var blocker *int32
			var h holder
			if err := rows.Scan(&pid, &wait, &blocker, &h.exists, &h.user, &h.app, &h.addr, &h.state,
				&h.inState, &h.inXact, &h.query, &h.queryBytes); err != nil {
				return err
			}
			if pid != last {
				out = append(out, watchedSession{wait: wait})
				last = pid
			}
			if blocker != nil {
				h.pid = *blocker
				s := &out[len(out)-1]
				s.holders = append(s.holders, h)
			}
		}
		return rows.Err()
	})
	return out, err
}
