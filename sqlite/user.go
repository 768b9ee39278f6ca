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
	err := s.write(ctx, func(tx *sql.Tx) error {
		var err error
		created, err = login(tx, apiKey, uid, patch, now)
		return err
	})
	return created, err
}

func login(tx *sql.Tx, apiKey, uid string, patch *socius.Patch, now time.Time) (created bool, err error) {
	// The batch's transaction holds the write lock: no other write comes between the
	// update and the insert.
	cols, args := profileSet(patch)
	if len(cols) > 0 {
		cols = append(cols, "updated_at")
		args = append(args, millis(now))
	}
	cols = append(cols, "login_at", "logged_in")
	args = append(args, millis(now), true)
	res, err := tx.Exec(`UPDATE users SET `+assignments(cols)+` WHERE api_key = ? AND uid = ?`,
		append(args, apiKey, uid)...)
	err = affected(res, err, "login")
	if !errors.Is(err, socius.ErrNotFound) {
		return false, err
	}

	cols, args = profileSet(patch)
	cols = append(cols, "api_key", "uid", "created_at", "updated_at", "login_at", "logged_in")
	args = append(args, apiKey, uid, millis(now), millis(now), millis(now), true)
	_, err = tx.Exec(`INSERT INTO users (`+strings.Join(cols, ", ")+`) VALUES (?`+strings.Repeat(", ?", len(cols)-1)+`)`, args...)
	if err != nil {
		return false, errorFor("login", err) // the site's foreign key makes a missing site ErrNotFound
	}
	return true, nil
}

// userColumns are the columns that scanUser reads, after the UID.
const userColumns = `uid, nickname, photo_url, thumbnail_url, first_name, last_name, gender, age, email,
		created_at, updated_at, login_at, logged_in`

const selectUser = `SELECT ` + userColumns + ` FROM users WHERE api_key = ? AND uid = ?`

// User returns a user, or socius.ErrNotFound.
func (s *Store) User(ctx context.Context, apiKey, uid string) (*socius.User, error) {
	u, err := scanUser(s.userStmt.QueryRowContext(ctx, apiKey, uid), apiKey)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, socius.ErrNotFound
	}
	if err != nil {
		return nil, errorFor("user", err)
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

// UpdateProfile merges the patch into the user's profile with one UPDATE that sets only
// the patched columns, so concurrent updates of different fields all survive.
// socius.ErrNotFound if there is no such user.
func (s *Store) UpdateProfile(ctx context.Context, apiKey, uid string, patch *socius.Patch, now time.Time) error {
	if patch.Empty() {
		// Nothing to write, but an unknown user is still an error.
		var one int
		err := s.rdb.QueryRowContext(ctx, `SELECT 1 FROM users WHERE api_key = ? AND uid = ?`, apiKey, uid).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return socius.ErrNotFound
		}
		if err != nil {
			return errorFor("update profile", err)
		}
		return nil
	}
	return s.write(ctx, func(tx *sql.Tx) error { return updateProfile(tx, apiKey, uid, patch, now) })
}

func updateProfile(tx *sql.Tx, apiKey, uid string, patch *socius.Patch, now time.Time) error {
	cols, args := profileSet(patch)
	cols = append(cols, "updated_at")
	args = append(args, millis(now), apiKey, uid)
	res, err := tx.Exec(`UPDATE users SET `+assignments(cols)+` WHERE api_key = ? AND uid = ?`, args...)
	return affected(res, err, "update profile")
}

// profileSet returns the columns the patch changes and their values: nil (NULL) for a
// cleared field.
func profileSet(patch *socius.Patch) (cols []string, args []any) {
	if patch.Empty() {
		return nil, nil
	}
	for _, f := range patch.Fields() {
		v, _ := patch.Get(f)
		cols = append(cols, profileColumns[f])
		args = append(args, nullString(v))
	}
	return cols, args
}

// assignments returns "a = ?, b = ?" for the columns.
func assignments(cols []string) string {
	return strings.Join(cols, " = ?, ") + " = ?"
}

// Logout marks the user logged out and revokes every live token of the user at now, in
// one operation; socius.ErrNotFound if there is no such user (and then nothing is
// revoked). A token revoked before keeps its first revocation time.
func (s *Store) Logout(ctx context.Context, apiKey, uid string, now time.Time) error {
	return s.write(ctx, func(tx *sql.Tx) error { return logout(tx, apiKey, uid, now) })
}

func logout(tx *sql.Tx, apiKey, uid string, now time.Time) error {
	res, err := tx.Exec(`UPDATE users SET logged_in = ? WHERE api_key = ? AND uid = ?`, false, apiKey, uid)
	if err := affected(res, err, "logout"); err != nil {
		return err
	}
	return revokeUserTokens(tx, "logout", apiKey, uid, now)
}

// DeleteUser removes the user and revokes every live token of the user at now, in one
// operation; socius.ErrNotFound if there is none. The token rows stay, revoked, so that
// a client presenting one is told it was revoked; DeleteExpiredTokens removes them.
func (s *Store) DeleteUser(ctx context.Context, apiKey, uid string, now time.Time) error {
	return s.write(ctx, func(tx *sql.Tx) error { return deleteUser(tx, apiKey, uid, now) })
}

func deleteUser(tx *sql.Tx, apiKey, uid string, now time.Time) error {
	res, err := tx.Exec(`DELETE FROM users WHERE api_key = ? AND uid = ?`, apiKey, uid)
	if err := affected(res, err, "delete user"); err != nil {
		return err
	}
	return revokeUserTokens(tx, "delete user", apiKey, uid, now)
}

// RenameUser gives a user a new UID and moves its tokens along, in one operation:
// socius.ErrNotFound if from does not exist, socius.ErrExists if to is taken (and then
// nothing moves: the savepoint of the operation is rolled back).
func (s *Store) RenameUser(ctx context.Context, apiKey, from, to string) error {
	return s.write(ctx, func(tx *sql.Tx) error { return renameUser(tx, apiKey, from, to) })
}

func renameUser(tx *sql.Tx, apiKey, from, to string) error {
	res, err := tx.Exec(`UPDATE users SET uid = ? WHERE api_key = ? AND uid = ?`, to, apiKey, from)
	if err := affected(res, err, "rename user"); err != nil {
		return err // a taken UID fails the primary key: ErrExists
	}
	if _, err := tx.Exec(`UPDATE tokens SET uid = ? WHERE api_key = ? AND uid = ?`, to, apiKey, from); err != nil {
		return errorFor("rename user: move tokens", err)
	}
	return nil
}

const selectUsersPage = `SELECT ` + userColumns + ` FROM users
	WHERE api_key = ? AND uid > ? ORDER BY uid LIMIT ?`

// Users returns up to limit users of the site whose UID sorts after `after`, in UID
// order. The users table compares UIDs with SQLite's default BINARY collation, which
// is byte order, and its primary key (api_key, uid) serves the page without a sort.
// A limit of zero or less returns no users.
func (s *Store) Users(ctx context.Context, apiKey, after string, limit int) ([]*socius.User, error) {
	if limit <= 0 {
		return nil, nil
	}
	rows, err := s.rdb.QueryContext(ctx, selectUsersPage, apiKey, after, limit)
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
	return s.write(ctx, func(tx *sql.Tx) error { return putUser(tx, u) })
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
	_, err := tx.Exec(`INSERT INTO users (api_key, uid, `+strings.Join(cols, ", ")+`)
		VALUES (?, ?`+strings.Repeat(", ?", len(cols))+`)
		ON CONFLICT (api_key, uid) DO UPDATE SET `+strings.Join(replace, ", "), args...)
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
		err = s.rdb.QueryRowContext(ctx, `SELECT COUNT(*) FROM users WHERE api_key = ?`, apiKey).Scan(&n)
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
	err := s.write(ctx, func(tx *sql.Tx) error {
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
		delUsers += ` WHERE api_key = ?`
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
