package socius

import (
	"context"
	"errors"
	"fmt"
)

// Gigya error codes that Socius's own code emits (the emulator's fault rules can
// answer with any code of the table). The full table (messages, HTTP status) lives
// in package gigya; these names exist so that code reads as what it means.
const (
	CodeOK                  = 0
	CodeInvalidRequest      = 400001 // Invalid request format
	CodeMissingParameter    = 400002 // Missing required parameter
	CodeInvalidValue        = 400006 // Invalid parameter value
	CodeInvalidAuthHeader   = 400008 // Invalid authentication header
	CodeUnsupportedGrant    = 400013 // Unsupported grant type
	CodeInvalidAPIKey       = 400093 // Invalid ApiKey parameter
	CodeRequestExpired      = 403002 // Request has expired
	CodeInvalidSignature    = 403003 // Invalid request signature
	CodeDuplicateNonce      = 403004 // Duplicate nonce
	CodeUnauthorizedUser    = 403005 // Unauthorized user
	CodeSecretOverHTTP      = 403006 // Secret Sent Over Http
	CodePermissionDenied    = 403007 // Permission denied
	CodeInvalidToken        = 403025 // Invalid token
	CodeRateLimited         = 403048 // API Rate Limit Exceeded
	CodeEntityTooLarge      = 413001 // Request entity too large
	CodeGeneralServerError  = 500001 // General Server error
	CodeDatabaseError       = 500028 // Database error
	CodeRequestTimeout      = 504002 // Request Timeout
	CodeUniqueIdentifierSet = 400003 // Unique identifier exists
)

// Error is a failure that reaches the client as a Gigya error: Code is the errorCode,
// Details the errorDetails text the client sees. Err is the internal cause, logged but
// never sent.
type Error struct {
	Code    int
	Details string
	Err     error
}

// Errorf returns an *Error with the given code and formatted details.
func Errorf(code int, format string, args ...any) *Error {
	return &Error{Code: code, Details: fmt.Sprintf(format, args...)}
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("gigya error %d: %s: %v", e.Code, e.Details, e.Err)
	}
	return fmt.Sprintf("gigya error %d: %s", e.Code, e.Details)
}

func (e *Error) Unwrap() error { return e.Err }

// ErrorCode returns the Gigya code of err: 0 for nil, the Code of an *Error in its chain,
// else CodeGeneralServerError (an unexpected failure: a bug, not a client mistake).
func ErrorCode(err error) int {
	if err == nil {
		return CodeOK
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeGeneralServerError
}

// Domain errors returned by stores. The server translates them into Gigya codes that fit
// the operation (an unknown UID is 403005 for setUserInfo, an unknown site 400093).
var (
	ErrNotFound = errors.New("not found")
	ErrExists   = errors.New("already exists")
	// ErrKeyGone: a token obtained with a userKey that, when the token was to be
	// stored, no longer named a key of the token's site (deleted since the call
	// authenticated). Nothing was stored.
	ErrKeyGone = errors.New("the token's userKey is gone")
	// ErrRootGone: a token minted from another whose root token (Token.Root), or the
	// token it was minted with (Token.MintedWith), was revoked or no longer stored
	// when it was to be stored (revoked since the call authenticated). Nothing was
	// stored.
	ErrRootGone = errors.New("the token it was minted from is revoked")
	// ErrTokenMoved: a login made with a token (LoginWhile, LoginWithToken's Root and
	// MintedWith) whose token is bound to a user other than the one logged in: its
	// user was given another UID (RenameUser) since the call authenticated, and the
	// token went with it. Nothing was stored.
	ErrTokenMoved = errors.New("the token is bound to another user")
)

// DatabaseError wraps a store driver failure (connection lost, disk full, ...) as
// 500028, so that clients see a database error rather than a general server error, and
// the cause stays in the logs. A store that did not answer within its deadline is
// said: a client learns that much, and nothing of the server's insides.
func DatabaseError(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return DatabaseErrorSaying("the store did not answer in time", op, err)
	}
	return &Error{Code: CodeDatabaseError, Details: "Database error", Err: fmt.Errorf("%s: %w", op, err)}
}

// DatabaseErrorSaying is a DatabaseError whose details say why, after "Database
// error: ": what a client may learn (a full disk, a database that takes no writes).
func DatabaseErrorSaying(why, op string, err error) error {
	return &Error{Code: CodeDatabaseError, Details: "Database error: " + why, Err: fmt.Errorf("%s: %w", op, err)}
}

// DiskFullError is the DatabaseError of a store whose disk is full: a client learns
// that its write was not made and why, which tells nothing of the server's insides.
func DiskFullError(op string, err error) error {
	return DatabaseErrorSaying("the store's disk is full; nothing was written", op, err)
}
