// Package sealed keeps the secrets of sites and keys encrypted at rest. It wraps any
// socius.Store: Site.Secret and Key.Secret are sealed with AES-256-GCM under a master
// key before they reach the store, and opened when they are read back, so the database
// file, its backups and its replicas hold no usable secret. Every other method passes
// through to the wrapped store unchanged.
//
// # Format
//
// A sealed secret is stored as text:
//
//	enc:v1:<base64 of nonce (12 bytes) || ciphertext || GCM tag (16 bytes)>
//
// with a fresh random nonce per write. The additional authenticated data names the row
// ("site\x00<apiKey>" or "key\x00<userKey>"), so a sealed secret copied onto another
// row does not open. A stored value without the prefix is a secret written before
// encryption was enabled: it is read as is, and Migrate seals it.
//
// # The master key
//
// 32 random bytes, given to Socius as standard base64 text (a file or an environment
// variable; see ParseKey and LoadOrCreateKeyFile). A wrong key cannot decrypt garbage:
// GCM authentication fails, and Verify reports ErrWrongKey before the server starts.
package sealed

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/socius/socius"
)

// Prefix marks a sealed secret in the store.
const Prefix = "enc:v1:"

// KeySize is the size of a master key in bytes (AES-256).
const KeySize = 32

// ErrWrongKey is the failure to open a sealed secret: the master key is not the one it
// was sealed with (or the stored value was altered).
var ErrWrongKey = errors.New("the master key does not decrypt the stored secrets (not the key they were encrypted with, or the data was altered)")

// Store is a socius.Store whose site and key secrets are sealed at rest.
type Store struct {
	socius.Store
	aead cipher.AEAD
}

// New wraps st; key is the master key (KeySize bytes).
func New(st socius.Store, key []byte) (*Store, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("sealed: the master key must be %d bytes, not %d", KeySize, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("sealed: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("sealed: %w", err)
	}
	return &Store{Store: st, aead: aead}, nil
}

// IsSealed reports whether a stored secret is sealed.
func IsSealed(stored string) bool { return strings.HasPrefix(stored, Prefix) }

func siteAD(apiKey string) []byte { return []byte("site\x00" + apiKey) }
func keyAD(userKey string) []byte { return []byte("key\x00" + userKey) }

// seal encrypts a secret for the row named by ad.
func (s *Store) seal(secret string, ad []byte) string {
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(secret)+s.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return Prefix + base64.StdEncoding.EncodeToString(s.aead.Seal(nonce, nonce, []byte(secret), ad))
}

// open decrypts a stored secret; a value without the prefix is returned as is.
func (s *Store) open(stored string, ad []byte) (string, error) {
	if !IsSealed(stored) {
		return stored, nil
	}
	b, err := base64.StdEncoding.DecodeString(stored[len(Prefix):])
	if err != nil || len(b) < s.aead.NonceSize()+s.aead.Overhead() {
		return "", ErrWrongKey
	}
	n := s.aead.NonceSize()
	plain, err := s.aead.Open(nil, b[:n], b[n:], ad)
	if err != nil {
		return "", ErrWrongKey
	}
	return string(plain), nil
}

func (s *Store) sealSite(site *socius.Site) *socius.Site {
	c := *site
	c.Secret = s.seal(site.Secret, siteAD(site.APIKey))
	return &c
}

func (s *Store) openSite(site *socius.Site) (*socius.Site, error) {
	secret, err := s.open(site.Secret, siteAD(site.APIKey))
	if err != nil {
		return nil, fmt.Errorf("sealed: secret of site %s: %w", site.APIKey, err)
	}
	site.Secret = secret
	return site, nil
}

func (s *Store) sealKey(k *socius.Key) *socius.Key {
	c := *k
	c.Secret = s.seal(k.Secret, keyAD(k.UserKey))
	return &c
}

func (s *Store) openKey(k *socius.Key) (*socius.Key, error) {
	secret, err := s.open(k.Secret, keyAD(k.UserKey))
	if err != nil {
		return nil, fmt.Errorf("sealed: secret of userKey %s: %w", k.UserKey, err)
	}
	k.Secret = secret
	return k, nil
}

// CreateSite adds a site, its secret sealed.
func (s *Store) CreateSite(ctx context.Context, site *socius.Site) error {
	return s.Store.CreateSite(ctx, s.sealSite(site))
}

// PutSite creates or updates a site, its secret sealed.
func (s *Store) PutSite(ctx context.Context, site *socius.Site) error {
	return s.Store.PutSite(ctx, s.sealSite(site))
}

// Site returns a site with its secret opened.
func (s *Store) Site(ctx context.Context, apiKey string) (*socius.Site, error) {
	site, err := s.Store.Site(ctx, apiKey)
	if err != nil {
		return nil, err
	}
	return s.openSite(site)
}

// Sites lists the sites with their secrets opened.
func (s *Store) Sites(ctx context.Context) ([]*socius.Site, error) {
	sites, err := s.Store.Sites(ctx)
	if err != nil {
		return nil, err
	}
	for _, site := range sites {
		if _, err := s.openSite(site); err != nil {
			return nil, err
		}
	}
	return sites, nil
}

// CreateKey adds a key, its secret sealed.
func (s *Store) CreateKey(ctx context.Context, k *socius.Key) error {
	return s.Store.CreateKey(ctx, s.sealKey(k))
}

// PutKey creates or replaces a key, its secret sealed.
func (s *Store) PutKey(ctx context.Context, k *socius.Key) error {
	return s.Store.PutKey(ctx, s.sealKey(k))
}

// Key returns a key with its secret opened.
func (s *Store) Key(ctx context.Context, userKey string) (*socius.Key, error) {
	k, err := s.Store.Key(ctx, userKey)
	if err != nil {
		return nil, err
	}
	return s.openKey(k)
}

// Keys lists keys with their secrets opened.
func (s *Store) Keys(ctx context.Context, apiKey string) ([]*socius.Key, error) {
	keys, err := s.Store.Keys(ctx, apiKey)
	if err != nil {
		return nil, err
	}
	for _, k := range keys {
		if _, err := s.openKey(k); err != nil {
			return nil, err
		}
	}
	return keys, nil
}

// Verify opens every sealed secret in the store and fails with ErrWrongKey (naming
// the row) at the first that does not open: run it at start, so that a wrong master
// key is a clear error then rather than failed calls later.
func (s *Store) Verify(ctx context.Context) error {
	if _, err := s.Sites(ctx); err != nil {
		return err
	}
	_, err := s.Keys(ctx, "")
	return err
}

// Migrate seals the secrets that are stored in plain text (written before encryption
// was enabled) and reports how many it sealed. Run Verify first: sealing with a wrong
// key would leave the store with secrets under two keys.
//
// Sites and keys are rewritten in place (PutSite, PutKey), each in one store
// transaction.
func (s *Store) Migrate(ctx context.Context) (int, error) {
	n := 0
	sites, err := s.Store.Sites(ctx)
	if err != nil {
		return n, err
	}
	for _, site := range sites {
		if IsSealed(site.Secret) {
			continue
		}
		if err := s.PutSite(ctx, site); err != nil {
			return n, fmt.Errorf("sealed: seal the secret of site %s: %w", site.APIKey, err)
		}
		n++
	}
	keys, err := s.Store.Keys(ctx, "")
	if err != nil {
		return n, err
	}
	for _, k := range keys {
		if IsSealed(k.Secret) {
			continue
		}
		if err := s.PutKey(ctx, k); err != nil {
			return n, fmt.Errorf("sealed: seal the secret of userKey %s: %w", k.UserKey, err)
		}
		n++
	}
	return n, nil
}

// HoldsSealed reports whether st (an unwrapped store) holds any sealed secret: a
// store that does needs the master key it was sealed with, never a new one.
func HoldsSealed(ctx context.Context, st socius.Store) (bool, error) {
	sites, err := st.Sites(ctx)
	if err != nil {
		return false, err
	}
	for _, site := range sites {
		if IsSealed(site.Secret) {
			return true, nil
		}
	}
	keys, err := st.Keys(ctx, "")
	if err != nil {
		return false, err
	}
	for _, k := range keys {
		if IsSealed(k.Secret) {
			return true, nil
		}
	}
	return false, nil
}
