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
//
// # Changing the master key
//
// A store may be given previous master keys beside the current one: a secret opens
// with whichever of them sealed it, and every write seals with the current key.
// Migrate rewrites the secrets still under a previous key, after which the previous
// keys are no longer needed.
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
	aead     cipher.AEAD   // the current master key's: seals, and opens first
	previous []cipher.AEAD // previous master keys': open only
}

// New wraps st; key is the master key (KeySize bytes). previous are master keys that
// earlier secrets may still be sealed with (see Migrate).
func New(st socius.Store, key []byte, previous ...[]byte) (*Store, error) {
	aead, err := newAEAD(key)
	if err != nil {
		return nil, err
	}
	s := &Store{Store: st, aead: aead}
	for _, k := range previous {
		a, err := newAEAD(k)
		if err != nil {
			return nil, fmt.Errorf("%w (a previous master key)", err)
		}
		s.previous = append(s.previous, a)
	}
	return s, nil
}

func newAEAD(key []byte) (cipher.AEAD, error) {
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
	return aead, nil
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

// open decrypts a stored secret, with the current master key or else a previous one;
// a value without the prefix is returned as is.
func (s *Store) open(stored string, ad []byte) (string, error) {
	plain, _, err := s.openReporting(stored, ad)
	return plain, err
}

// openReporting is open that also reports whether the secret was sealed with the
// current master key (false for a value that is not sealed at all).
func (s *Store) openReporting(stored string, ad []byte) (plain string, current bool, err error) {
	if !IsSealed(stored) {
		return stored, false, nil
	}
	b, err := base64.StdEncoding.DecodeString(stored[len(Prefix):])
	if err != nil || len(b) < s.aead.NonceSize()+s.aead.Overhead() {
		return "", false, ErrWrongKey
	}
	n := s.aead.NonceSize()
	if p, err := s.aead.Open(nil, b[:n], b[n:], ad); err == nil {
		return string(p), true, nil
	}
	for _, a := range s.previous {
		if p, err := a.Open(nil, b[:n], b[n:], ad); err == nil {
			return string(p), false, nil
		}
	}
	return "", false, ErrWrongKey
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

// Snapshot opens a view of the wrapped store as it is now, whose sites and keys come
// with their secrets opened; errors.ErrUnsupported when the wrapped store is not a
// socius.Snapshotter.
func (s *Store) Snapshot(ctx context.Context) (socius.View, error) {
	sn, ok := s.Store.(socius.Snapshotter)
	if !ok {
		return nil, fmt.Errorf("sealed: the store cannot be read as of one moment: %w", errors.ErrUnsupported)
	}
	v, err := sn.Snapshot(ctx)
	if err != nil {
		return nil, err
	}
	return &view{View: v, s: s}, nil
}

// A view is a socius.View whose sites and keys come with their secrets opened.
type view struct {
	socius.View
	s *Store
}

// Site returns a site of the view with its secret opened.
func (v *view) Site(ctx context.Context, apiKey string) (*socius.Site, error) {
	site, err := v.View.Site(ctx, apiKey)
	if err != nil {
		return nil, err
	}
	return v.s.openSite(site)
}

// Sites lists the sites of the view with their secrets opened.
func (v *view) Sites(ctx context.Context) ([]*socius.Site, error) {
	sites, err := v.View.Sites(ctx)
	if err != nil {
		return nil, err
	}
	for _, site := range sites {
		if _, err := v.s.openSite(site); err != nil {
			return nil, err
		}
	}
	return sites, nil
}

// Keys lists keys of the view with their secrets opened.
func (v *view) Keys(ctx context.Context, apiKey string) ([]*socius.Key, error) {
	keys, err := v.View.Keys(ctx, apiKey)
	if err != nil {
		return nil, err
	}
	for _, k := range keys {
		if _, err := v.s.openKey(k); err != nil {
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

// Migrate seals with the current master key every secret that is not sealed with it:
// those stored in plain text (written before encryption was enabled) and those that
// only a previous master key opens (see New). It reports how many of each it rewrote;
// the previous keys are then no longer needed. Run Verify first: sealing with a wrong
// key would leave the store with secrets under two keys.
//
// Sites and keys are rewritten in place, each in one store transaction, so a Migrate
// that stops half way is finished by the next. When the wrapped store is a
// socius.SecretSwapper (both stores are), a secret is replaced only while it still
// holds the value read: a rotation or a key deletion made meanwhile (by another node,
// an admin command) stays as it was made. Otherwise it is written back whole (PutSite,
// PutKey).
func (s *Store) Migrate(ctx context.Context) (plain, previous int, err error) {
	swapper, _ := s.Store.(socius.SecretSwapper)
	// reseal rewrites one stored secret unless it is sealed with the current key,
	// with write (given the value sealed now and the secret), and counts it when it
	// was rewritten.
	reseal := func(stored string, ad []byte, write func(sealed, secret string) (bool, error)) error {
		secret, current, err := s.openReporting(stored, ad)
		if err != nil || current {
			return err
		}
		done, err := write(s.seal(secret, ad), secret)
		switch {
		case err != nil || !done:
		case !IsSealed(stored):
			plain++
		default:
			previous++
		}
		return err
	}
	sites, err := s.Store.Sites(ctx)
	if err != nil {
		return plain, previous, err
	}
	for _, site := range sites {
		err := reseal(site.Secret, siteAD(site.APIKey), func(sealed, secret string) (bool, error) {
			if swapper != nil {
				return swapper.SwapSiteSecret(ctx, site.APIKey, site.Secret, sealed)
			}
			site.Secret = secret
			return true, s.PutSite(ctx, site)
		})
		if err != nil {
			return plain, previous, fmt.Errorf("sealed: seal the secret of site %s: %w", site.APIKey, err)
		}
	}
	keys, err := s.Store.Keys(ctx, "")
	if err != nil {
		return plain, previous, err
	}
	for _, k := range keys {
		err := reseal(k.Secret, keyAD(k.UserKey), func(sealed, secret string) (bool, error) {
			if swapper != nil {
				return swapper.SwapKeySecret(ctx, k.UserKey, k.Secret, sealed)
			}
			k.Secret = secret
			return true, s.PutKey(ctx, k)
		})
		if err != nil {
			return plain, previous, fmt.Errorf("sealed: seal the secret of userKey %s: %w", k.UserKey, err)
		}
	}
	return plain, previous, nil
}

// ErrChangedMeanwhile is a rotation that found the secret changed since it read it.
var ErrChangedMeanwhile = errors.New("the secret changed meanwhile (another rotation?): nothing was written; run the rotation again")

// RotateSiteSecret gives the site a new secret, sealed, only while the stored secret
// is still the one read (socius.SecretSwapper): a rotation made meanwhile is reported
// (ErrChangedMeanwhile), not silently undone. socius.ErrNotFound for no such site.
func (s *Store) RotateSiteSecret(ctx context.Context, apiKey, secret string) error {
	site, err := s.Store.Site(ctx, apiKey)
	if err != nil {
		return err
	}
	return s.rotate(
		func() error { site.Secret = secret; return s.PutSite(ctx, site) },
		func(sw socius.SecretSwapper) (bool, error) {
			return sw.SwapSiteSecret(ctx, apiKey, site.Secret, s.seal(secret, siteAD(apiKey)))
		},
		func() error { _, err := s.Store.Site(ctx, apiKey); return err })
}

// RotateKeySecret is RotateSiteSecret for a key: a key deleted meanwhile stays deleted
// (socius.ErrNotFound), where writing it whole would have stored it again.
func (s *Store) RotateKeySecret(ctx context.Context, userKey, secret string) error {
	k, err := s.Store.Key(ctx, userKey)
	if err != nil {
		return err
	}
	return s.rotate(
		func() error { k.Secret = secret; return s.PutKey(ctx, k) },
		func(sw socius.SecretSwapper) (bool, error) {
			return sw.SwapKeySecret(ctx, userKey, k.Secret, s.seal(secret, keyAD(userKey)))
		},
		func() error { _, err := s.Store.Key(ctx, userKey); return err })
}

// rotate is the rest of a rotation, once the stored secret is read: swap it when the
// store can (else put it whole); when the swap finds another value, exists tells a
// secret changed meanwhile (ErrChangedMeanwhile) from a site or key gone (its error).
func (s *Store) rotate(put func() error, swap func(socius.SecretSwapper) (bool, error), exists func() error) error {
	sw, ok := s.Store.(socius.SecretSwapper)
	if !ok {
		return put()
	}
	done, err := swap(sw)
	if err != nil || done {
		return err
	}
	if err := exists(); err != nil {
		return err
	}
	return ErrChangedMeanwhile
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
