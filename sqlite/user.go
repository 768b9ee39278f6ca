package sqlite

import (
	"context"
	"database/sql"
	"errors"
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

const selectUser = `SELECT nickname, photo_url, thumbnail_url, first_name, last_name, gender, age, email,
		created_at, updated_at, login_at, logged_in
	FROM users WHERE api_key = ? AND uid = ?`

// User returns a user, or socius.ErrNotFound.
func (s *Store) User(ctx context.Context, apiKey, uid string) (*socius.User, error) {
	u := socius.User{APIKey: apiKey, UID: uid}
	var profile [socius.NumFields]sql.NullString
	var created, updated int64
	var loginAt sql.NullInt64
	err := s.userStmt.QueryRowContext(ctx, apiKey, uid).Scan(
		&profile[socius.Nickname], &profile[socius.PhotoURL], &profile[socius.ThumbnailURL], &profile[socius.FirstName],
		&profile[socius.LastName], &profile[socius.Gender], &profile[socius.Age], &profile[socius.Email],
		&created, &updated, &loginAt, &u.LoggedIn)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, socius.ErrNotFound
	}
	if err != nil {
		return nil, errorFor("user", err)
	}
	for f, v := range profile {
		u.Profile[f] = v.String // NULL is ""
	}
	u.CreatedAt = fromMillis(created)
	u.UpdatedAt = fromMillis(updated)
	if loginAt.Valid {
		u.LoginAt = fromMillis(loginAt.Int64)
	}
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
		if v == "" {
			args = append(args, nil)
		} else {
			args = append(args, v)
		}
	}
	return cols, args
}

// assignments returns "a = ?, b = ?" for the columns.
func assignments(cols []string) string {
	return strings.Join(cols, " = ?, ") + " = ?"
}

// Logout marks the user logged out; socius.ErrNotFound if there is no such user.
func (s *Store) Logout(ctx context.Context, apiKey, uid string) error {
	return s.write(ctx, func(tx *sql.Tx) error { return logout(tx, apiKey, uid) })
}

func logout(tx *sql.Tx, apiKey, uid string) error {
	res, err := tx.Exec(`UPDATE users SET logged_in = ? WHERE api_key = ? AND uid = ?`, false, apiKey, uid)
	return affected(res, err, "logout")
}

// DeleteUser removes the user; socius.ErrNotFound if there is none.
func (s *Store) DeleteUser(ctx context.Context, apiKey, uid string) error {
	return s.write(ctx, func(tx *sql.Tx) error { return deleteUser(tx, apiKey, uid) })
}

func deleteUser(tx *sql.Tx, apiKey, uid string) error {
	res, err := tx.Exec(`DELETE FROM users WHERE api_key = ? AND uid = ?`, apiKey, uid)
	return affected(res, err, "delete user")
}

// RenameUser gives a user a new UID: socius.ErrNotFound if from does not exist,
// socius.ErrExists if to is taken.
func (s *Store) RenameUser(ctx context.Context, apiKey, from, to string) error {
	return s.write(ctx, func(tx *sql.Tx) error { return renameUser(tx, apiKey, from, to) })
}

func renameUser(tx *sql.Tx, apiKey, from, to string) error {
	res, err := tx.Exec(`UPDATE users SET uid = ? WHERE api_key = ? AND uid = ?`, to, apiKey, from)
	return affected(res, err, "rename user") // a taken UID fails the primary key: ErrExists
}
