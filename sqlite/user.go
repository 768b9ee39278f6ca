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
		created, err = s.login(tx, apiKey, uid, patch, now)
		return err
	})
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

const selectUser = `SELECT nickname, photo_url, thumbnail_url, first_name, last_name, gender, age, email,
		created_at, updated_at, login_at, logged_in
	FROM users WHERE api_key = ? AND uid = ?`

// User returns a user, or socius.ErrNotFound.
func (s *Store) User(ctx context.Context, apiKey, uid string) (*socius.User, error) {
	u := socius.User{APIKey: apiKey, UID: uid}
	var profile [socius.NumFields]sql.NullString
	var created, updated int64
	var loginAt sql.NullInt64
	if err := ctx.Err(); err != nil {
		return nil, errorFor("user", err)
	}
	err := s.userStmt.QueryRowContext(lookupContext(ctx), apiKey, uid).Scan(
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

// UpdateProfile merges the patch into the user's profile with one UPDATE that changes
// only the patched columns (every other one is set to itself), so concurrent updates of
// different fields all survive. socius.ErrNotFound if there is no such user.
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
	return s.write(ctx, func(tx *sql.Tx) error { return s.updateProfile(tx, apiKey, uid, patch, now) })
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
	updateProfileSQL = `UPDATE users SET ` + patchAssignments() + `, updated_at = ? WHERE api_key = ? AND uid = ?`
	loginUpdateSQL   = `UPDATE users SET ` + patchAssignments() +
		`, updated_at = CASE WHEN ? THEN ? ELSE updated_at END, login_at = ?, logged_in = ? WHERE api_key = ? AND uid = ?`
	loginInsertSQL = `INSERT INTO users (` + strings.Join(profileColumns[:], ", ") +
		`, api_key, uid, created_at, updated_at, login_at, logged_in) VALUES (?` + strings.Repeat(", ?", len(profileColumns)+5) + `)`
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
	if v, ok := patch.Get(f); ok && v != "" {
		return v
	}
	return nil
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
