package socius

import (
	"context"
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
	// Key returns the key, or ErrNotFound.
	Key(ctx context.Context, userKey string) (*Key, error)
	// Keys lists the keys of a site (all sites when apiKey is empty), ordered by creation.
	Keys(ctx context.Context, apiKey string) ([]*Key, error)
	// DeleteKey removes a key; ErrNotFound if there is none.
	DeleteKey(ctx context.Context, userKey string) error
}

// UserStore keeps the users of every site. Each method is atomic, and a write returns
// only after it is durable.
type UserStore interface {
	// Login creates the user when new, applies the patch (which may be empty) and marks
	// the user logged in at now, all at once. It reports whether the user was created.
	Login(ctx context.Context, apiKey, uid string, patch *Patch, now time.Time) (created bool, err error)
	// User returns a user, or ErrNotFound.
	User(ctx context.Context, apiKey, uid string) (*User, error)
	// UpdateProfile merges the patch into the user's profile without a read-modify-write
	// race: concurrent updates of different fields all survive. ErrNotFound if no user.
	UpdateProfile(ctx context.Context, apiKey, uid string, patch *Patch, now time.Time) error
	// Logout marks the user logged out; ErrNotFound if no user.
	Logout(ctx context.Context, apiKey, uid string) error
	// DeleteUser removes the user and everything that belongs to it; ErrNotFound if none.
	DeleteUser(ctx context.Context, apiKey, uid string) error
	// RenameUser gives a user a new UID; ErrNotFound if from does not exist, ErrExists
	// if to is taken.
	RenameUser(ctx context.Context, apiKey, from, to string) error
}

// NonceStore remembers the nonces of signed requests so that a replay is refused.
// A nonce only needs remembering until its request's timestamp leaves the window.
type NonceStore interface {
	// UseNonce records (credential, nonce) until expires and reports whether it was new.
	// A pair seen before and not yet expired reports false.
	UseNonce(ctx context.Context, credential, nonce string, expires, now time.Time) (bool, error)
}

// Store is everything a backend provides.
type Store interface {
	SiteStore
	UserStore
	Close() error
}
