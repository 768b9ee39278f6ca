package socius

import (
	"context"
	"errors"
	"iter"
	"time"
)

// SiteStore keeps sites and their keys.
type SiteStore interface {
	// CreateSite adds a site; ErrExists if its apiKey is taken.
	CreateSite(ctx context.Context, s *Site) error
	// PutSite creates the site or, if it exists, replaces its secret and name.
	PutSite(ctx context.Context, s *Site) error
	// Site returns the site with the apiKey, or ErrNotFound.
	Site(ctx context.Context, apiKey string) (*Site, error)
	// Sites lists every site, ordered by creation.
	Sites(ctx context.Context) ([]*Site, error)

	// CreateKey adds a key to an existing site; ErrExists if the userKey is taken,
	// ErrNotFound if the site does not exist.
	CreateKey(ctx context.Context, k *Key) error
	// PutKey creates the key or, if it exists, replaces its secret, methods and public
	// key at once (the key keeps its site and creation time): rotation without a moment
	// when the key is missing. ErrNotFound if the site does not exist, ErrExists if the
	// userKey belongs to another site.
	PutKey(ctx context.Context, k *Key) error
	// Key returns the key, or ErrNotFound.
	Key(ctx context.Context, userKey string) (*Key, error)
	// Keys lists the keys of a site (all sites when apiKey is empty), ordered by creation.
	Keys(ctx context.Context, apiKey string) ([]*Key, error)
	// DeleteKey removes a key and every token it obtained; ErrNotFound if there is
	// none. The key goes at once, and with it every token it obtained stops working (a
	// token is taken only while its key lives); the tokens themselves may go in batches
	// after it, and those a DeleteKey cut short left go when the userKey is created
	// again.
	DeleteKey(ctx context.Context, userKey string) error
}

// UserStore keeps the users of every site. Each method is atomic, and a write returns
// only after it is durable.
type UserStore interface {
	// Login creates the user when new, applies the patch (which may be empty) and marks
	// the user logged in at now, all at once. It reports whether the user was created.
	Login(ctx context.Context, apiKey, uid string, patch *Patch, now time.Time) (created bool, err error)
	// LoginWithToken is Login followed by CreateToken(t), a token of the user, as one
	// operation: the user is logged in and holds the token, or nothing changed (a taken
	// hash is ErrExists, a site that does not exist ErrNotFound, a t.UserKey that names
	// no key of the site ErrKeyGone, a revoked or missing t.Root or t.MintedWith
	// ErrRootGone, one bound to a user other than uid ErrTokenMoved). A logout, deletion
	// or renaming of the user, a deletion of the token's key and a revocation of its
	// root (or of the token it was minted with) come before both or after both.
	LoginWithToken(ctx context.Context, apiKey, uid string, patch *Patch, now time.Time, t *Token) (created bool, err error)
	// LoginWhile is Login made only while every token named (by its hash) is stored and
	// not revoked (ErrRootGone otherwise) and bound to uid or to no user (ErrTokenMoved
	// otherwise), and nothing changed when it is not. A logout, deletion or renaming of
	// the user and a revocation of one of the tokens come before it (refused when they
	// ended or moved one) or after it: a call authenticated with a token does not log
	// its user in again after a logout or deletion that ended the token meanwhile, nor
	// make the old UID again after a rename that moved it.
	LoginWhile(ctx context.Context, apiKey, uid string, patch *Patch, now time.Time, tokens ...string) (created bool, err error)
	// User returns a user, or ErrNotFound.
	User(ctx context.Context, apiKey, uid string) (*User, error)
	// UpdateProfile merges the patch into the user's profile without a read-modify-write
	// race: concurrent updates of different fields all survive. ErrNotFound if no user.
	UpdateProfile(ctx context.Context, apiKey, uid string, patch *Patch, now time.Time) error
	// Logout marks the user logged out and revokes (at now) every token of the user,
	// at once; ErrNotFound if no user. Logging out a logged-out user is not an error.
	Logout(ctx context.Context, apiKey, uid string, now time.Time) error
	// DeleteUser removes the user and its profile and revokes (at now) every token of
	// the user, at once; ErrNotFound if none.
	DeleteUser(ctx context.Context, apiKey, uid string, now time.Time) error
	// RenameUser gives a user a new UID, and its tokens follow it; ErrNotFound if from
	// does not exist, ErrExists if to is taken (then nothing changes).
	RenameUser(ctx context.Context, apiKey, from, to string) error

	// Users returns up to limit users of the site whose UID sorts after `after` (byte
	// order), in UID order: pages for exports ("" starts at the beginning).
	Users(ctx context.Context, apiKey, after string, limit int) ([]*User, error)
	// PutUser creates the user, or replaces it whole (profile, times, login state):
	// imports. ErrNotFound if the site does not exist.
	PutUser(ctx context.Context, u *User) error
	// CountUsers returns the number of users of the site (all sites when apiKey is "").
	CountUsers(ctx context.Context, apiKey string) (int, error)
	// DeleteUsers removes every user of the site (of every site when apiKey is "") and
	// every token of theirs, and reports how many users went (the emulator's reset).
	DeleteUsers(ctx context.Context, apiKey string) (int, error)
}

// A UserPager reads the users of a site a page at a time, as [UserStore.Users] does:
// a store, or a [View] of one.
type UserPager interface {
	Users(ctx context.Context, apiKey, after string, limit int) ([]*User, error)
}

// AllUsers yields every user of a site in UID order, reading them from st a page of
// pageSize at a time ([UserStore.Users]), so that a caller never holds more than one
// page. A failed read ends the sequence with (nil, err). Each page is read at its own
// moment from a store, which a write between two pages may change (a user renamed
// across the page boundary is met twice, or never); from a [View], every page is of
// the view's one moment.
func AllUsers(ctx context.Context, st UserPager, apiKey string, pageSize int) iter.Seq2[*User, error] {
	return func(yield func(*User, error) bool) {
		after := ""
		for {
			users, err := st.Users(ctx, apiKey, after, pageSize)
			if err != nil {
				yield(nil, err)
				return
			}
			for _, u := range users {
				if !yield(u, nil) {
					return
				}
			}
			if len(users) < pageSize {
				return
			}
			after = users[len(users)-1].UID
		}
	}
}

// TokenKind tells access tokens from mobile session tokens.
type TokenKind string

// The kinds of token.
const (
	// AccessToken is an OAuth 2.0 access token from socialize.getToken.
	AccessToken TokenKind = "access"
	// SessionToken is a mobile session from notifyLogin with targetEnv=mobile; calls
	// with it are signed with its session secret.
	SessionToken TokenKind = "session"
)

// A Token is what the store knows of an access or session token. The token itself is
// never stored, only its hash.
type Token struct {
	// Hash is the lower-case hex SHA-256 of the token text; the key of the token.
	Hash   string
	Kind   TokenKind
	APIKey string
	// UID is the user the token acts for; "" when it is bound to none (a
	// client_credentials token without x_siteUID).
	UID string
	// UserKey is the key whose credentials obtained the token; "" for the partner
	// secret.
	UserKey   string
	CreatedAt time.Time
	// ExpiresAt is when the token stops working; zero for never.
	ExpiresAt time.Time
	// RevokedAt is when logout, deleteAccount or `socius token revoke` ended the
	// token; zero while it lives.
	RevokedAt time.Time
	// Root is the hash of the token at the top of the chain of calls that minted
	// this one: a mobile session made by notifyLogin called with an access or session
	// token has that token's Root, or that token itself when its Root is "". "" for a
	// token made with a site's or key's own credentials. Revoking a token revokes the
	// tokens whose Root it is: every session made from it, directly or through
	// sessions made from those.
	Root string
	// MintedWith is the hash of the token the call that makes this one authenticated
	// with ("" for none), when it is not Root. Not stored: CreateToken and
	// LoginWithToken check that it still lives, as they check Root, so that a session
	// is not made from a token revoked (or logged out) since the call authenticated.
	MintedWith string
}

// MintedBatch is the most minted tokens RevokeToken revokes in one transaction: a
// site token that minted sessions for a million users must not hold the store (or
// SQLite's single writer) for seconds.
const MintedBatch = 1000

// TokenStore keeps access and session tokens.
type TokenStore interface {
	// CreateToken stores a token; ErrExists if its hash is taken, ErrNotFound if the
	// site does not exist, ErrKeyGone if t.UserKey is set and names no key of the
	// site, ErrRootGone if t.Root or t.MintedWith is set and names no stored token, or
	// a revoked one. A deletion of the key comes before the token (ErrKeyGone) or after it
	// (which deletes the token with the key's others); a revocation of the root
	// likewise (ErrRootGone, or the token revoked with the root).
	CreateToken(ctx context.Context, t *Token) error
	// Token returns the token with the hash, revoked and expired ones included (so that
	// a client can be told which), or ErrNotFound.
	Token(ctx context.Context, hash string) (*Token, error)
	// RevokeToken marks a token revoked at now, and every token whose Root it is;
	// ErrNotFound if there is neither (a token housekeeping removed still has the live
	// tokens minted from it revoked). The token is revoked first, with up to
	// MintedBatch of its minted tokens in the same operation; from then on no token
	// is minted from it, and the rest are revoked right after, MintedBatch at a time
	// (revoked never before they were made). A token keeps its first revocation time
	// (revoking again, by any path, is not an error, and revokes what was minted from
	// it and still lives: the way to finish a revocation that failed half way). It
	// reports how many minted tokens this call revoked.
	RevokeToken(ctx context.Context, hash string, now time.Time) (minted int, err error)
	// DeleteExpiredTokens removes tokens that expired or were revoked before `before`
	// and reports how many (housekeeping).
	DeleteExpiredTokens(ctx context.Context, before time.Time) (int, error)
}

// NonceStore remembers the nonces of signed requests so that a replay is refused.
// A nonce only needs remembering until its request's timestamp leaves the window.
type NonceStore interface {
	// UseNonce records (credential, nonce) until expires and reports whether it was new.
	// A pair seen before and not yet expired reports false.
	UseNonce(ctx context.Context, credential, nonce string, expires, now time.Time) (bool, error)
}

// A NonceUse is a signed call's nonce, to be recorded as NonceStore.UseNonce records
// it: the pair (Credential, Nonce) until Expires, as seen at Now.
type NonceUse struct {
	Credential, Nonce string
	Expires, Now      time.Time
}

// A NoncedUserStore is a store that keeps a server's nonces with its users
// (PostgreSQL's, where every signed call writes its nonce to the database). It records
// a call's nonce in the same statement as the call's own store work: one round trip
// to the database and one commit instead of two. fresh false with err nil is a nonce
// seen before: then nothing else was done. fresh true is a nonce that was new and is
// recorded, whatever the rest of the operation finds (ErrNotFound for no such user), as
// UseNonce before it would have; a failed operation that recorded nothing reports
// fresh false with its error.
type NoncedUserStore interface {
	// UpdateProfileNonced is UseNonce(n) and, when fresh, UpdateProfile, as one
	// operation.
	UpdateProfileNonced(ctx context.Context, n NonceUse, apiKey, uid string, patch *Patch, now time.Time) (fresh bool, err error)
	// UserNonced is UseNonce(n) and User, as one operation; u is nil unless fresh and
	// err nil.
	UserNonced(ctx context.Context, n NonceUse, apiKey, uid string) (fresh bool, u *User, err error)
}

// Store is everything a backend provides.
type Store interface {
	SiteStore
	UserStore
	TokenStore
	Close() error
}

// A View is a read-only view of a store as it was at one moment (the opening of its
// Snapshot): its sites, keys and users are those committed before then, and nothing
// written after, whatever is written meanwhile and however long the reading takes. It
// is what an export reads, so that the sites, keys and users it writes are of one
// moment. Its methods answer as the store's of the same names (Site's ErrNotFound).
// A View holds a database connection and a transaction until Close: close it as soon
// as the reading is done, and before the store.
type View interface {
	// Site returns the site with the apiKey, or ErrNotFound.
	Site(ctx context.Context, apiKey string) (*Site, error)
	// Sites lists every site, ordered by creation.
	Sites(ctx context.Context) ([]*Site, error)
	// Keys lists the keys of a site (all sites when apiKey is empty), ordered by
	// creation.
	Keys(ctx context.Context, apiKey string) ([]*Key, error)
	// Users returns a page of the users of a site, as UserStore.Users.
	UserPager
	// Close ends the view and gives back its connection. Reads after it fail. Close
	// may be called more than once.
	Close() error
}

// A Snapshotter is a store that can be read as of one moment: both stores are (SQLite
// in one read transaction, which WAL mode keeps apart from later commits; PostgreSQL
// in one REPEATABLE READ READ ONLY transaction). A store that wraps another (package
// sealed) has the method whether or not the wrapped one does, and then answers
// errors.ErrUnsupported.
type Snapshotter interface {
	// Snapshot opens a view of the store as it is now. ctx bounds the opening only:
	// each read of the view takes its own.
	Snapshot(ctx context.Context) (View, error)
}

// OpenView opens a view of st as of now when st is a [Snapshotter] (both stores, and
// every wrapper of one that serve puts around them, are); for a store that cannot be
// read as of one moment (its Snapshot answers errors.ErrUnsupported, or it has none),
// it returns a View that reads st itself, each read at its own moment, and whose Close
// leaves st open. Any other failure to open the view is returned: a reader that falls
// back on the store then would not be of one moment, and would not say so.
func OpenView(ctx context.Context, st Store) (View, error) {
	if sn, ok := st.(Snapshotter); ok {
		v, err := sn.Snapshot(ctx)
		if !errors.Is(err, errors.ErrUnsupported) {
			return v, err
		}
	}
	return storeView{st}, nil
}

// storeView is a View that reads a store that cannot be read as of one moment as it
// is at each read.
type storeView struct{ Store }

// Close leaves the store open: its owner closes it.
func (storeView) Close() error { return nil }

// A SecretSwapper replaces the stored secret of a site or a key only while it still
// holds the value read before, and reports whether it did: what re-encrypting the
// secrets under a new master key needs, so that it neither undoes a change made
// meanwhile (a rotation) nor stores again a key deleted meanwhile. Both stores have it.
type SecretSwapper interface {
	SwapSiteSecret(ctx context.Context, apiKey, old, new string) (bool, error)
	SwapKeySecret(ctx context.Context, userKey, old, new string) (bool, error)
}
