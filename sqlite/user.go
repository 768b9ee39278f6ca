package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"strings"
	"time"

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

// Login creates the user when new, applies the patch and marks the user logged in at
// now, in one operation of the writer's batch. It reports whether the user was created.
// A site that does not exist is socius.ErrNotFound.
func (s *Store) Login(ctx context.Context, apiKey, uid string, patch *socius.Patch, now time.Time) (bool, error) {
	var created bool
	err := s.writeUserData(ctx, func(tx *sql.Tx) error {
		var err error
		created, err = s.login(tx, apiKey, uid, patch, now)
		return err
	})
	return created, err
}

// LoginWithToken logs the user in and stores the token in one operation of the
// writer's batch: its savepoint undoes the login when the token cannot be stored, and
// a token whose userKey is gone (keyHeld) stores nothing.
func (s *Store) LoginWithToken(ctx context.Context, apiKey, uid string, patch *socius.Patch, now time.Time, t *socius.Token) (bool, error) {
	var created bool
	err := s.writeUserData(ctx, func(tx *sql.Tx) error {
		if err := keyHeld(tx, t); err != nil {
			return err // before the login: nothing to undo
		}
		if err := tokensLive(tx, uid, t.Root, t.MintedWith); err != nil {
			return err
		}
		var err error
		if created, err = s.login(tx, apiKey, uid, patch, now); err != nil {
			return err
		}
		return insertToken(tx, t)
	})
	if err != nil {
		created = false
	}
	return created, err
}

// LoginWhile is Login, in the same operation of the writer's batch as the check that
// each token lives: the batch's transaction holds the write lock, so that a logout,
// deletion or revocation comes before both or after both.
func (s *Store) LoginWhile(ctx context.Context, apiKey, uid string, patch *socius.Patch, now time.Time, tokens ...string) (bool, error) {
	var created bool
	err := s.writeUserData(ctx, func(tx *sql.Tx) error {
		if err := tokensLive(tx, uid, tokens...); err != nil {
			return err // before the login: nothing to undo
		}
		var err error
		created, err = s.login(tx, apiKey, uid, patch, now)
		return err
	})
	if err != nil {
		created = false
	}
	return created, err
}

func (s *Store) login(tx *sql.Tx, apiKey, uid string, patch *socius.Patch, now time.Time) (created bool, err error) {
	// The batch's transaction holds the write lock: no other write comes between the
	// update and the insert.
	args := make([]any, 0, 2*socius.NumFields+8)
	args = appendPatch(args, patch)
	args = append(args, !patch.Empty(), millis(now), millis(now), true, apiKey, uid)
	res, err := tx.Stmt(s.stmts.loginUpdate).Exec(args...)
	err = affected(res, err, "login")
	if !errors.Is(err, socius.ErrNotFound) {
		return false, err
	}

	args = args[:0]
	for f := socius.Field(0); f < socius.NumFields; f++ {
		args = append(args, patchValue(patch, f))
	}
	args = append(args, apiKey, uid, millis(now), millis(now), millis(now), true)
	_, err = tx.Stmt(s.stmts.loginInsert).Exec(args...)
	if err != nil {
		return false, errorFor("login", err) // the site's foreign key makes a missing site ErrNotFound
	}
	return true, nil
}

// siteOf is the site number of the API key given as its parameter, for the users
// table: NULL when there is no such site, which a user's insert turns into a NOT NULL
// failure (socius.ErrNotFound) and a lookup into no row.
const siteOf = `(SELECT id FROM sites WHERE api_key = ?)`

// userColumns are the columns of a user, in the order in which scanUser and
// lookupConn.lookupUser (which reads them by position) take them.
const userColumns = `uid, nickname, photo_url, thumbnail_url, first_name, last_name, gender, age, email,
		created_at, updated_at, login_at, logged_in`

const selectUser = `SELECT ` + userColumns + ` FROM users WHERE site = ` + siteOf + ` AND uid = ?`

// User returns a user, or socius.ErrNotFound.
func (s *Store) User(ctx context.Context, apiKey, uid string) (*socius.User, error) {
	if err := ctx.Err(); err != nil {
		return nil, errorFor("user", err)
	}
	u, found, err := s.lookupUser(apiKey, uid)
	if err != nil {
		return nil, dbError("sqlite: user", err)
	}
	if !found {
		return nil, socius.ErrNotFound
	}
	return u, nil
}

// scanUser reads the userColumns of a user of the site apiKey.
func scanUser(row scanner, apiKey string) (*socius.User, error) {
	u := socius.User{APIKey: apiKey}
	var profile [socius.NumFields]sql.NullString
	var created, updated int64
	var loginAt sql.NullInt64
	err := row.Scan(&u.UID,
		&profile[socius.Nickname], &profile[socius.PhotoURL], &profile[socius.ThumbnailURL], &profile[socius.FirstName],
		&profile[socius.LastName], &profile[socius.Gender], &profile[socius.Age], &profile[socius.Email],
		&created, &updated, &loginAt, &u.LoggedIn)
	if err != nil {
		return nil, err
	}
	for f, v := range profile {
		u.Profile[f] = v.String // NULL is ""
	}
	u.CreatedAt = fromMillis(created)
	u.UpdatedAt = fromMillis(updated)
	u.LoginAt = fromNullMillis(loginAt)
	return &u, nil
}

// UpdateProfile merges the patch into the user's profile with one UPDATE that changes
// only the patched columns (every other one is set to itself), so concurrent updates of
// different fields all survive. socius.ErrNotFound if there is no such user.
func (s *Store) UpdateProfile(ctx context.Context, apiKey, uid string, patch *socius.Patch, now time.Time) error {
	if patch.Empty() {
		// Nothing to write, but an unknown user is still an error.
		var one int
		err := s.rdb.QueryRowContext(ctx, `SELECT 1 FROM users WHERE site = `+siteOf+` AND uid = ?`, apiKey, uid).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return socius.ErrNotFound
		}
		if err != nil {
			return errorFor("update profile", err)
		}
		return nil
	}
	return s.send(ctx, s.updateProfileOp(apiKey, uid, patch, now))
}

// updateProfileOp is the write of UpdateProfile, in both its forms.
func (s *Store) updateProfileOp(apiKey, uid string, patch *socius.Patch, now time.Time) *writeOp {
	return &writeOp{
		fn:       func(tx *sql.Tx) error { return s.updateProfile(tx, apiKey, uid, patch, now) },
		fast:     func(c *writeConn) error { return c.updateProfile(apiKey, uid, patch, millis(now)) },
		userData: true,
	}
}

func (s *Store) updateProfile(tx *sql.Tx, apiKey, uid string, patch *socius.Patch, now time.Time) error {
	args := make([]any, 0, 2*socius.NumFields+3)
	args = appendPatch(args, patch)
	args = append(args, millis(now), apiKey, uid)
	res, err := tx.Stmt(s.stmts.updateProfile).Exec(args...)
	return affected(res, err, "update profile")
}

// The hot writes are fixed statements, prepared once: a statement built for the
// patched columns would be parsed again on every write. Each profile column is set
// by "CASE WHEN ? THEN ? ELSE column END": a flag (does the patch hold the field?)
// and the value (NULL clears), see appendPatch.
var (
	updateProfileSQL = `UPDATE users SET ` + patchAssignments() + `, updated_at = ? WHERE site = ` + siteOf + ` AND uid = ?`
	loginUpdateSQL   = `UPDATE users SET ` + patchAssignments() +
		`, updated_at = CASE WHEN ? THEN ? ELSE updated_at END, login_at = ?, logged_in = ? WHERE site = ` + siteOf + ` AND uid = ?`
	loginInsertSQL = `INSERT INTO users (` + strings.Join(profileColumns[:], ", ") +
		`, site, uid, created_at, updated_at, login_at, logged_in) VALUES (?` + strings.Repeat(", ?", len(profileColumns)-1) +
		`, ` + siteOf + `, ?, ?, ?, ?, ?)`
)

// patchAssignments returns "nickname = CASE WHEN ? THEN ? ELSE nickname END, ..." for
// every profile column.
func patchAssignments() string {
	var b strings.Builder
	for i, col := range profileColumns {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(col + " = CASE WHEN ? THEN ? ELSE " + col + " END")
	}
	return b.String()
}

// appendPatch appends, for every profile field in order, whether the patch holds it
// and its value (nil, that is NULL, for a cleared or absent field).
func appendPatch(args []any, patch *socius.Patch) []any {
	for f := socius.Field(0); f < socius.NumFields; f++ {
		held := false
		if !patch.Empty() {
			_, held = patch.Get(f)
		}
		args = append(args, held, patchValue(patch, f))
	}
	return args
}

// patchValue is the stored value of f: its text, or nil (NULL) when the patch clears
// it or does not hold it.
func patchValue(patch *socius.Patch, f socius.Field) any {
	if patch.Empty() {
		return nil
	}
	v, _ := patch.Get(f)
	return nullString(v)
}

// Logout marks the user logged out and revokes every live token of the user at now, in
// one operation; socius.ErrNotFound if there is no such user (and then nothing is
// revoked). A token revoked before keeps its first revocation time.
func (s *Store) Logout(ctx context.Context, apiKey, uid string, now time.Time) error {
	return s.writeUserData(ctx, func(tx *sql.Tx) error { return logout(tx, apiKey, uid, now) })
}

func logout(tx *sql.Tx, apiKey, uid string, now time.Time) error {
	res, err := tx.Exec(`UPDATE users SET logged_in = ? WHERE site = `+siteOf+` AND uid = ?`, false, apiKey, uid)
	if err := affected(res, err, "logout"); err != nil {
		return err
	}
	return revokeUserTokens(tx, "logout", apiKey, uid, now)
}

// DeleteUser removes the user and revokes every live token of the user at now, in one
// operation; socius.ErrNotFound if there is none. The token rows stay, revoked, so that
// a client presenting one is told it was revoked; DeleteExpiredTokens removes them.
func (s *Store) DeleteUser(ctx context.Context, apiKey, uid string, now time.Time) error {
	return s.writeUserData(ctx, func(tx *sql.Tx) error { return deleteUser(tx, apiKey, uid, now) })
}

func deleteUser(tx *sql.Tx, apiKey, uid string, now time.Time) error {
	res, err := tx.Exec(`DELETE FROM users WHERE site = `+siteOf+` AND uid = ?`, apiKey, uid)
	if err := affected(res, err, "delete user"); err != nil {
		return err
	}
	return revokeUserTokens(tx, "delete user", apiKey, uid, now)
}

// RenameUser gives a user a new UID and moves its tokens along, in one operation:
// socius.ErrNotFound if from does not exist, socius.ErrExists if to is taken (and then
// nothing moves: the savepoint of the operation is rolled back).
func (s *Store) RenameUser(ctx context.Context, apiKey, from, to string) error {
	return s.writeUserData(ctx, func(tx *sql.Tx) error { return renameUser(tx, apiKey, from, to) })
}

func renameUser(tx *sql.Tx, apiKey, from, to string) error {
	res, err := tx.Exec(`UPDATE users SET uid = ? WHERE site = `+siteOf+` AND uid = ?`, to, apiKey, from)
	if err := affected(res, err, "rename user"); err != nil {
		return err // a taken UID fails the primary key: ErrExists
	}
	if _, err := tx.Exec(`UPDATE tokens SET uid = ? WHERE api_key = ? AND uid = ?`, to, apiKey, from); err != nil {
		return errorFor("rename user: move tokens", err)
	}
	return nil
}

const selectUsersPage = `SELECT ` + userColumns + ` FROM users
	WHERE site = ` + siteOf + ` AND uid > ? ORDER BY uid LIMIT ?`

// Users returns up to limit users of the site whose UID sorts after `after`, in UID
// order. The users table compares UIDs with SQLite's default BINARY collation, which
// is byte order, and its primary key (site, uid) serves the page without a sort.
// A limit of zero or less returns no users.
func (s *Store) Users(ctx context.Context, apiKey, after string, limit int) ([]*socius.User, error) {
	return queryUsers(ctx, s.rdb, apiKey, after, limit)
}

// queryUsers is Users, read with q.
func queryUsers(ctx context.Context, q querier, apiKey, after string, limit int) ([]*socius.User, error) {
	if limit <= 0 {
		return nil, nil
	}
	rows, err := q.QueryContext(ctx, selectUsersPage, apiKey, after, limit)
	if err != nil {
		return nil, errorFor("users", err)
	}
	defer rows.Close()
	var users []*socius.User
	for rows.Next() {
		u, err := scanUser(rows, apiKey)
		if err != nil {
			return nil, errorFor("users", err)
		}
		users = append(users, u)
	}
	if err := rows.Err(); err != nil {
		return nil, errorFor("users", err)
	}
	return users, nil
}

// PutUser creates the user, or replaces its profile, times and login state with those
// of u; its tokens are left alone. socius.ErrNotFound if the site does not exist.
func (s *Store) PutUser(ctx context.Context, u *socius.User) error {
	return s.writeUserData(ctx, func(tx *sql.Tx) error { return putUser(tx, u) })
}

func putUser(tx *sql.Tx, u *socius.User) error {
	cols := slices.Concat(profileColumns[:], []string{"created_at", "updated_at", "login_at", "logged_in"})
	args := make([]any, 0, 2+len(cols))
	args = append(args, u.APIKey, u.UID)
	for _, v := range u.Profile {
		args = append(args, nullString(v))
	}
	args = append(args, millis(u.CreatedAt), millis(u.UpdatedAt), nullMillis(u.LoginAt), u.LoggedIn)
	replace := make([]string, len(cols))
	for i, c := range cols {
		replace[i] = c + " = excluded." + c
	}
	// An upsert rather than a delete and insert: the row is replaced in place.
	_, err := tx.Exec(`INSERT INTO users (site, uid, `+strings.Join(cols, ", ")+`)
		VALUES (`+siteOf+`, ?`+strings.Repeat(", ?", len(cols))+`)
		ON CONFLICT (site, uid) DO UPDATE SET `+strings.Join(replace, ", "), args...)
	if err != nil {
		return errorFor("put user", err) // the site's foreign key makes a missing site ErrNotFound
	}
	return nil
}

// CountUsers returns the number of users of the site, or of every site when apiKey is
// empty.
func (s *Store) CountUsers(ctx context.Context, apiKey string) (int, error) {
	var n int
	var err error
	if apiKey == "" {
		err = s.rdb.QueryRowContext(ctx, `SELECT COUNT(*) FROM users`).Scan(&n)
	} else {
		err = s.rdb.QueryRowContext(ctx, `SELECT COUNT(*) FROM users WHERE site = `+siteOf, apiKey).Scan(&n)
	}
	if err != nil {
		return 0, errorFor("count users", err)
	}
	return n, nil
}

// DeleteUsers removes every user of the site (of every site when apiKey is empty) and
// every token bound to a user of the site, in one operation, and reports how many users
// went. The tokens removed include the revoked ones of users deleted before; tokens
// bound to no user (client credentials without a UID) stay.
func (s *Store) DeleteUsers(ctx context.Context, apiKey string) (int, error) {
	var n int
	err := s.writeUserData(ctx, func(tx *sql.Tx) error {
		var err error
		n, err = deleteUsers(tx, apiKey)
		return err
	})
	return n, err
}

func deleteUsers(tx *sql.Tx, apiKey string) (int, error) {
	delTokens, delUsers := `DELETE FROM tokens WHERE uid IS NOT NULL`, `DELETE FROM users`
	var args []any
	if apiKey != "" {
		delTokens += ` AND api_key = ?`
		delUsers += ` WHERE site = ` + siteOf
		args = append(args, apiKey)
	}
	if _, err := tx.Exec(delTokens, args...); err != nil {
		return 0, errorFor("delete users: delete tokens", err)
	}
	res, err := tx.Exec(delUsers, args...)
	if err != nil {
		return 0, errorFor("delete users", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, errorFor("delete users", err)
	}
	return int(n), nil
}

// nullString is v, or NULL when v is empty.
func nullString(v string) any {
	if v == "" {
		return nil
	}
	return v
}
