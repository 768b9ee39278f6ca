package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/socius/socius"
)

// profileColumns are the users columns of the profile fields, in socius.Field order.
var profileColumns = [socius.NumFields]string{
	socius.Nickname:     "nickname",
	socius.PhotoURL:     "photo_url",
	socius.ThumbnailURL: "thumbnail_url",
	socius.FirstName:    "first_name",
	socius.LastName:     "last_name",
	socius.Gender:       "gender",
	socius.Age:          "age",
	socius.Email:        "email",
}

// A columnList is columns and their values, for the SET of an UPDATE or the column
// and VALUES lists of an INSERT; arg adds a value that is not a column's (the WHERE
// clause's), numbering placeholders after the columns'.
type columnList struct {
	names []string
	marks []string
	args  []any
}

func (l *columnList) add(col string, v any) {
	l.names = append(l.names, col)
	l.marks = append(l.marks, l.arg(v))
}

// arg adds an argument and returns its placeholder.
func (l *columnList) arg(v any) string {
	l.args = append(l.args, v)
	return fmt.Sprintf("$%d", len(l.args))
}

// assignments returns "a = $1, b = $2".
func (l *columnList) assignments() string {
	parts := make([]string, len(l.names))
	for i := range l.names {
		parts[i] = l.names[i] + " = " + l.marks[i]
	}
	return strings.Join(parts, ", ")
}

// insert returns "(a, b) VALUES ($1, $2)".
func (l *columnList) insert() string {
	return "(" + strings.Join(l.names, ", ") + ") VALUES (" + strings.Join(l.marks, ", ") + ")"
}

// addPatch adds the columns the patch changes: NULL for a cleared field.
func (l *columnList) addPatch(patch *socius.Patch) {
	if patch.Empty() {
		return
	}
	for _, f := range patch.Fields() {
		v, _ := patch.Get(f)
		l.add(profileColumns[f], nullString(v))
	}
}

// Login creates the user when new, applies the patch and marks the user logged in at
// now. It reports whether the user was created. A site that does not exist is
// socius.ErrNotFound.
//
// Each statement is atomic by itself: the UPDATE of an existing user; when there is
// none, the INSERT of the new user with its patch; when a concurrent Login inserted
// the user in between (the INSERT then inserts nothing), the UPDATE again. Exactly one
// of concurrent first logins inserts, and every patch applies. A round is lost only
// when others created the user and deleted it again meanwhile, which is their progress,
// so the rounds go on (after a few, with a growing random pause) until the operation's
// deadline. (One INSERT ... ON CONFLICT DO UPDATE would need xmax to tell an insert,
// which the SQL avoids: see docs/postgresql.md.)
func (s *Store) Login(ctx context.Context, apiKey, uid string, patch *socius.Patch, now time.Time) (bool, error) {
	var created bool
	err := s.write(ctx, "login", func(ctx context.Context) error {
		var err error
		created, err = login(ctx, s.pool, apiKey, uid, patch, now)
		return err
	})
	return created, err
}

// LoginWithToken is Login and the token's INSERT in one transaction: the login's
// UPDATE or INSERT holds the user's row, so that a Logout or DeleteUser (which revoke
// the user's tokens in their own transaction) comes before both or after both.
func (s *Store) LoginWithToken(ctx context.Context, apiKey, uid string, patch *socius.Patch, now time.Time, t *socius.Token) (bool, error) {
	var created bool
	err := s.tx(ctx, "login", func(ctx context.Context, tx pgx.Tx) error {
		if err := keyHeld(ctx, tx, t); err != nil {
			return err
		}
		var err error
		if created, err = login(ctx, tx, apiKey, uid, patch, now); err != nil {
			return err
		}
		if err := tokensLive(ctx, tx, uid, t.Root, t.MintedWith); err != nil {
			return err // the login is rolled back with the transaction
		}
		return insertToken(ctx, tx, t)
	})
	if err != nil {
		created = false
	}
	return created, err
}

// LoginWhile is Login and the check that each token lives in one transaction: the
// login's UPDATE or INSERT holds the user's row, and the check the tokens' rows, so
// that a Logout or DeleteUser (which revoke the user's tokens) or a revocation of a
// token comes before both or after both. The tokens' rows are held roots first,
// whatever the order they are named in (tokensLiveRootsFirst).
func (s *Store) LoginWhile(ctx context.Context, apiKey, uid string, patch *socius.Patch, now time.Time, tokens ...string) (bool, error) {
	var created bool
	err := s.tx(ctx, "login", func(ctx context.Context, tx pgx.Tx) error {
		var err error
		if created, err = login(ctx, tx, apiKey, uid, patch, now); err != nil {
			return err
		}
		return tokensLiveRootsFirst(ctx, tx, uid, tokens...) // else the login is rolled back with the transaction
	})
	if err != nil {
		created = false
	}
	return created, err
}

// An execer runs statements: the pool (each statement its own transaction) or a
// transaction.
type execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// login is Login's rounds, on q.
func login(ctx context.Context, q execer, apiKey, uid string, patch *socius.Patch, now time.Time) (created bool, err error) {
	for round := 0; ; round++ {
		if round >= 2 {
			if err := pause(ctx, retryPause(round-2)); err != nil {
				return false, err
			}
		}
		err := updateLogin(ctx, q, apiKey, uid, patch, now)
		if !errors.Is(err, socius.ErrNotFound) {
			return false, err
		}
		var ins columnList
		ins.addPatch(patch)
		ins.add("api_key", apiKey)
		ins.add("uid", []byte(uid))
		ins.add("created_at", millis(now))
		ins.add("updated_at", millis(now))
		ins.add("login_at", millis(now))
		ins.add("logged_in", true)
		tag, err := q.Exec(ctx, `INSERT INTO users `+ins.insert()+` ON CONFLICT (api_key, uid) DO NOTHING`, ins.args...)
		if err != nil {
			return false, err // the site's foreign key makes a missing site ErrNotFound
		}
		if tag.RowsAffected() == 1 {
			return true, nil
		}
		// A concurrent Login created the user: update it. (Should it be deleted
		// again at once, the loop starts over.)
	}
}

// updateLogin applies the patch to an existing user and marks it logged in;
// socius.ErrNotFound when there is no such user.
func updateLogin(ctx context.Context, q execer, apiKey, uid string, patch *socius.Patch, now time.Time) error {
	var set columnList
	set.addPatch(patch)
	if !patch.Empty() {
		set.add("updated_at", millis(now))
	}
	set.add("login_at", millis(now))
	set.add("logged_in", true)
	return affected(q.Exec(ctx, `UPDATE users SET `+set.assignments()+
		` WHERE api_key = `+set.arg(apiKey)+` AND uid = `+set.arg([]byte(uid)), set.args...))
}

// userColumns are the columns that scanUser reads.
const userColumns = `uid, nickname, photo_url, thumbnail_url, first_name, last_name, gender, age, email,
		created_at, updated_at, login_at, logged_in`

// User returns a user, or socius.ErrNotFound.
func (s *Store) User(ctx context.Context, apiKey, uid string) (*socius.User, error) {
	var u *socius.User
	err := s.read(ctx, "user", func(ctx context.Context) error {
		var err error
		u, err = scanUser(s.pool.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE api_key = $1 AND uid = $2`,
			apiKey, []byte(uid)), apiKey)
		return err
	})
	if err != nil {
		return nil, err
	}
	return u, nil
}

// scanUser reads the userColumns of a user of the site apiKey.
func scanUser(row pgx.Row, apiKey string) (*socius.User, error) {
	u := socius.User{APIKey: apiKey}
	var uid []byte
	var profile [socius.NumFields]*string
	var created, updated int64
	var loginAt *int64
	err := row.Scan(&uid,
		&profile[socius.Nickname], &profile[socius.PhotoURL], &profile[socius.ThumbnailURL], &profile[socius.FirstName],
		&profile[socius.LastName], &profile[socius.Gender], &profile[socius.Age], &profile[socius.Email],
		&created, &updated, &loginAt, &u.LoggedIn)
	if err != nil {
		return nil, err
	}
	u.UID = string(uid)
	for f, v := range profile {
		u.Profile[f] = fromNullString(v)
	}
	u.CreatedAt = fromMillis(created)
	u.UpdatedAt = fromMillis(updated)
	u.LoginAt = fromNullMillis(loginAt)
	return &u, nil
}

// UpdateProfile merges the patch into the user's profile with one UPDATE that sets only
// the patched columns: concurrent updates of different fields, from any number of
// nodes, each change only their own columns, and all survive. socius.ErrNotFound if
// there is no such user.
func (s *Store) UpdateProfile(ctx context.Context, apiKey, uid string, patch *socius.Patch, now time.Time) error {
	if patch.Empty() {
		// Nothing to write, but an unknown user is still an error.
		return s.read(ctx, "update profile", func(ctx context.Context) error {
			var one int
			return s.pool.QueryRow(ctx, `SELECT 1 FROM users WHERE api_key = $1 AND uid = $2`, apiKey, []byte(uid)).Scan(&one)
		})
	}
	return s.write(ctx, "update profile", func(ctx context.Context) error {
		var set columnList
		set.addPatch(patch)
		set.add("updated_at", millis(now))
		return affected(s.pool.Exec(ctx, `UPDATE users SET `+set.assignments()+
			` WHERE api_key = `+set.arg(apiKey)+` AND uid = `+set.arg([]byte(uid)), set.args...))
	})
}

// Logout marks the user logged out and revokes every live token of the user at now, in
// one transaction; socius.ErrNotFound if there is no such user (and then nothing is
// revoked). A token revoked before keeps its first revocation time.
func (s *Store) Logout(ctx context.Context, apiKey, uid string, now time.Time) error {
	return s.tx(ctx, "logout", func(ctx context.Context, tx pgx.Tx) error {
		if err := affected(tx.Exec(ctx, `UPDATE users SET logged_in = FALSE WHERE api_key = $1 AND uid = $2`, apiKey, []byte(uid))); err != nil {
			return err
		}
		return revokeUserTokens(ctx, tx, apiKey, uid, now)
	})
}

// DeleteUser removes the user and revokes every live token of the user at now, in one
// transaction; socius.ErrNotFound if there is none. The token rows stay, revoked, so
// that a client presenting one is told it was revoked; DeleteExpiredTokens removes them.
func (s *Store) DeleteUser(ctx context.Context, apiKey, uid string, now time.Time) error {
	return s.tx(ctx, "delete user", func(ctx context.Context, tx pgx.Tx) error {
		if err := affected(tx.Exec(ctx, `DELETE FROM users WHERE api_key = $1 AND uid = $2`, apiKey, []byte(uid))); err != nil {
			return err
		}
		return revokeUserTokens(ctx, tx, apiKey, uid, now)
	})
}

// RenameUser gives a user a new UID and moves its tokens along, in one transaction:
// socius.ErrNotFound if from does not exist, socius.ErrExists if to is taken (and then
// nothing moves: the transaction rolls back).
func (s *Store) RenameUser(ctx context.Context, apiKey, from, to string) error {
	return s.tx(ctx, "rename user", func(ctx context.Context, tx pgx.Tx) error {
		err := affected(tx.Exec(ctx, `UPDATE users SET uid = $1 WHERE api_key = $2 AND uid = $3`, []byte(to), apiKey, []byte(from)))
		if err != nil {
			return err // a taken UID fails the primary key: ErrExists
		}
		_, err = tx.Exec(ctx, `UPDATE tokens SET uid = $1 WHERE api_key = $2 AND uid = $3`, to, apiKey, from)
		return err
	})
}

const selectUsersPage = `SELECT ` + userColumns + ` FROM users
	WHERE api_key = $1 AND uid > $2 ORDER BY uid LIMIT $3`

// Users returns up to limit users of the site whose UID sorts after `after`, in UID
// order. UIDs are BYTEA, which compares byte by byte whatever the database's collation,
// and the primary key (api_key, uid) serves the page without a sort. A limit of zero or
// less returns no users.
func (s *Store) Users(ctx context.Context, apiKey, after string, limit int) ([]*socius.User, error) {
	if limit <= 0 || !storable(apiKey) {
		return nil, nil
	}
	var users []*socius.User
	err := s.read(ctx, "users", func(ctx context.Context) error {
		var err error
		users, err = queryUsers(ctx, s.pool, apiKey, after, limit)
		return err
	})
	if err != nil {
		return nil, err
	}
	return users, nil
}

// queryUsers is Users' query, on q.
func queryUsers(ctx context.Context, q querier, apiKey, after string, limit int) ([]*socius.User, error) {
	rows, err := q.Query(ctx, selectUsersPage, apiKey, []byte(after), limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (*socius.User, error) { return scanUser(row, apiKey) })
}

// PutUser creates the user, or replaces its profile, times and login state with those
// of u; its tokens are left alone. socius.ErrNotFound if the site does not exist.
func (s *Store) PutUser(ctx context.Context, u *socius.User) error {
	var ins columnList
	ins.add("api_key", u.APIKey)
	ins.add("uid", []byte(u.UID))
	for f, v := range u.Profile {
		ins.add(profileColumns[f], nullString(v))
	}
	ins.add("created_at", millis(u.CreatedAt))
	ins.add("updated_at", millis(u.UpdatedAt))
	ins.add("login_at", nullMillis(u.LoginAt))
	ins.add("logged_in", u.LoggedIn)
	var replace []string
	for _, c := range ins.names[2:] { // all but the key
		replace = append(replace, c+" = excluded."+c)
	}
	return s.write(ctx, "put user", func(ctx context.Context) error {
		_, err := s.pool.Exec(ctx, `INSERT INTO users `+ins.insert()+`
			ON CONFLICT (api_key, uid) DO UPDATE SET `+strings.Join(replace, ", "), ins.args...)
		return err // the site's foreign key makes a missing site ErrNotFound
	})
}

// CountUsers returns the number of users of the site, or of every site when apiKey is
// empty.
func (s *Store) CountUsers(ctx context.Context, apiKey string) (int, error) {
	if !storable(apiKey) {
		return 0, nil
	}
	var n int
	err := s.read(ctx, "count users", func(ctx context.Context) error {
		if apiKey == "" {
			return s.pool.QueryRow(ctx, `SELECT COUNT(*) FROM users`).Scan(&n)
		}
		return s.pool.QueryRow(ctx, `SELECT COUNT(*) FROM users WHERE api_key = $1`, apiKey).Scan(&n)
	})
	return n, err
}

// DeleteUsers removes every user of the site (of every site when apiKey is empty) and
// every token bound to a user of the site, in one transaction, and reports how many
// users went. The tokens removed include the revoked ones of users deleted before;
// tokens bound to no user (client credentials without a UID) stay.
func (s *Store) DeleteUsers(ctx context.Context, apiKey string) (int, error) {
	if !storable(apiKey) {
		return 0, nil
	}
	var n int
	err := s.tx(ctx, "delete users", func(ctx context.Context, tx pgx.Tx) error {
		// Users first, then tokens: the order of Logout and DeleteUser, so that they
		// cannot deadlock with this.
		delUsers, delTokens := `DELETE FROM users`, `DELETE FROM tokens WHERE uid IS NOT NULL`
		var args []any
		if apiKey != "" {
			delUsers += ` WHERE api_key = $1`
			delTokens += ` AND api_key = $1`
			args = append(args, apiKey)
		}
		tag, err := tx.Exec(ctx, delUsers, args...)
		if err != nil {
			return err
		}
		n = int(tag.RowsAffected())
		_, err = tx.Exec(ctx, delTokens, args...)
		return err
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}
