package sqlite

import (
	"crypto/sha256"
	"database/sql/driver"
	"encoding/binary"
	"fmt"

	"modernc.org/sqlite"
)

// Users live in a rowid table (migration 0005): a user's rowid is, when it was free
// as the user was written, a number derived from the site's API key and the UID, so
// that the hot statements (getUserInfo's lookup, setUserInfo's and notifyLogin's
// updates) find the row by one search on an integer key. The unique index
// users_by_uid on (site, uid) is the truth: a user whose number was taken by another
// (two keys giving the same 63 bits, or a user placed by SQLite's own choice after
// such a collision) is found through it. A profile update does not change the
// indexed columns, so it writes the table's leaf alone.
//
// Before, the table was keyed by (site, uid) without rowid: SQLite keeps such a table
// as an index b-tree whose every cell is a whole row, five levels for a million
// users, each compared as a record of two columns; the users' B-tree with integer keys
// is three levels whose inner pages fit in the page cache. See docs/performance.md,
// item 22.

// userID is the number a user of the site apiKey named uid is stored under when that
// number is free. A variable so that tests can make every user collide.
var userID = hashUserID

// hashUserID is the first 63 bits of SHA-256 over the API key, a zero byte and the
// UID: stable across versions (it is in every store), and not something one user can
// aim at another's number with. A collision costs a second search, not correctness.
func hashUserID(apiKey, uid string) int64 {
	var buf [160]byte
	b := append(buf[:0], apiKey...)
	b = append(b, 0)
	b = append(b, uid...)
	sum := sha256.Sum256(b)
	return int64(binary.BigEndian.Uint64(sum[:8]) >> 1)
}

// The migration that moved the users into the rowid table computes their numbers with
// socius_user_id(api_key, uid), registered here for every connection of the process.
func init() {
	sqlite.MustRegisterDeterministicScalarFunction("socius_user_id", 2,
		func(_ *sqlite.FunctionContext, args []driver.Value) (driver.Value, error) {
			apiKey, ok1 := args[0].(string)
			uid, ok2 := args[1].(string)
			if !ok1 || !ok2 {
				return nil, fmt.Errorf("socius_user_id: want two texts, got %T and %T", args[0], args[1])
			}
			return userID(apiKey, uid), nil
		})
}

// freeID is the value of a new row's rowid: the user's number (bound twice) unless a
// row has it, and then NULL, with which SQLite chooses a free rowid.
const freeID = `CASE WHEN EXISTS (SELECT 1 FROM users WHERE id = ?) THEN NULL ELSE ? END`
