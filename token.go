package socius

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Token texts start with a prefix that names their kind, so that a leaked token is
// recognizable (secret scanners, logs) and a text that cannot be a Socius token is
// refused without a store read.
const (
	AccessTokenPrefix  = "st2.at."
	SessionTokenPrefix = "st2.ss."
)

// tokenRandomBytes is the randomness in a token: 256 bits.
const tokenRandomBytes = 32

// MaxTokenLen is the longest text that can be a token; longer ones are refused unread.
const MaxTokenLen = 128

// NewTokenText returns a fresh token of the kind: its prefix and 32 random bytes,
// URL-safe base64 without padding. Only its HashToken is ever stored.
func NewTokenText(kind TokenKind) string {
	b := make([]byte, tokenRandomBytes)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	prefix := AccessTokenPrefix
	if kind == SessionToken {
		prefix = SessionTokenPrefix
	}
	return prefix + base64.RawURLEncoding.EncodeToString(b)
}

// HashToken returns the key under which a token is stored: the lower-case hex SHA-256
// of its text. A token has 256 random bits, so a fast unsalted hash is enough: nothing
// can be guessed from it, and looking a token up stays one indexed read.
func HashToken(text string) string {
	sum := sha256.Sum256([]byte(text))
	return hex.EncodeToString(sum[:])
}

// TokenKindOf tells the kind of a token by its prefix; false when the text cannot be a
// token that Socius issued.
func TokenKindOf(text string) (TokenKind, bool) {
	if len(text) > MaxTokenLen {
		return "", false
	}
	switch {
	case strings.HasPrefix(text, AccessTokenPrefix):
		return AccessToken, true
	case strings.HasPrefix(text, SessionTokenPrefix):
		return SessionToken, true
	}
	return "", false
}

// SessionSecret derives the secret that signs the calls of a mobile session:
// base64(HMAC-SHA256(partnerKey, "socius-session:" + sessionToken)), standard base64 of
// 32 bytes, which the mobile SDKs base64-decode into their HMAC-SHA1 key. partnerKey is
// the decoded partner secret of the token's site.
//
// Deriving instead of storing keeps the secret out of the store (only the token's hash
// is kept) and lets every node verify a session; the price is that changing a site's
// partner secret ends all its mobile sessions (their signatures stop matching).
func SessionSecret(partnerKey []byte, sessionToken string) string {
	m := hmac.New(sha256.New, partnerKey)
	m.Write([]byte("socius-session:"))
	m.Write([]byte(sessionToken))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// MinRSABits and MaxRSABits bound the RSA modulus accepted for bearer-JWT keys. The
// largest is OpenSSL's (OPENSSL_RSA_MAX_MODULUS_BITS): the server verifies every
// bearer call with the key, at a cost that grows with the square of its size.
const (
	MinRSABits = 2048
	MaxRSABits = 16384
)

// MaxRSAPublicKeyPEM is the longest text ParseRSAPublicKey reads, in bytes: a
// MaxRSABits key is under 3 KiB of PEM, and about 10 KiB with the text that `openssl
// rsa -pubin -text` writes before it.
const MaxRSAPublicKeyPEM = 16 << 10

// ParseRSAPublicKey reads a PEM-encoded RSA public key, PKIX ("PUBLIC KEY") or PKCS #1
// ("RSA PUBLIC KEY"), of MinRSABits to MaxRSABits bits, in at most MaxRSAPublicKeyPEM
// bytes of text.
func ParseRSAPublicKey(pemText string) (*rsa.PublicKey, error) {
	if len(pemText) > MaxRSAPublicKeyPEM {
		return nil, fmt.Errorf("longer than %d bytes: an RSA public key of %d bits is under 3 KiB of PEM", MaxRSAPublicKeyPEM, MaxRSABits)
	}
	if strings.ContainsRune(pemText, 0) || !utf8.ValidString(pemText) {
		// Text around the PEM block is let be (CanonicalRSAPublicKey stores the block
		// alone), but not these: user import and seeds stored the text as given until
		// 2026-12-02, and PostgreSQL refuses these, which SQLite takes.
		return nil, errors.New("the text holds a NUL byte or is not UTF-8")
	}
	block, _ := pem.Decode([]byte(pemText))
	if block == nil {
		return nil, errors.New("no PEM block found")
	}
	var pub *rsa.PublicKey
	switch block.Type {
	case "PUBLIC KEY":
		k, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, err
		}
		var ok bool
		if pub, ok = k.(*rsa.PublicKey); !ok {
			return nil, fmt.Errorf("%s, not an RSA public key", keyKind(k))
		}
	case "RSA PUBLIC KEY":
		k, err := x509.ParsePKCS1PublicKey(block.Bytes)
		if err != nil {
			return nil, err
		}
		pub = k
	default:
		return nil, fmt.Errorf("PEM block %q is not a public key (want PUBLIC KEY or RSA PUBLIC KEY)", block.Type)
	}
	if n := pub.N.BitLen(); n < MinRSABits {
		return nil, fmt.Errorf("RSA key of %d bits, at least %d are needed", n, MinRSABits)
	} else if n > MaxRSABits {
		return nil, fmt.Errorf("RSA key of %d bits, at most %d are accepted", n, MaxRSABits)
	}
	return pub, nil
}

// keyKind names a public key that is not RSA, for an error.
func keyKind(k any) string {
	switch k.(type) {
	case *ecdsa.PublicKey:
		return "an ECDSA (EC) key"
	case ed25519.PublicKey:
		return "an Ed25519 key"
	}
	return "a key of another kind"
}

// EncodeRSAPublicKey returns the key as PKIX PEM ("PUBLIC KEY"), the form stored in
// Key.PublicKey.
func EncodeRSAPublicKey(pub *rsa.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", err
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})), nil
}

// CanonicalRSAPublicKey reads pemText as ParseRSAPublicKey does and returns the key as
// Key.PublicKey stores it (EncodeRSAPublicKey: PKIX PEM, without the text around the
// block), so that one key is stored as one text however it was given: PKCS #1 or
// PKIX, with or without `openssl rsa -pubin -text`'s text, to `socius key create
// --public-key` or on a key line of `user import` or of a seed.
func CanonicalRSAPublicKey(pemText string) (string, error) {
	pub, err := ParseRSAPublicKey(pemText)
	if err != nil {
		return "", err
	}
	return EncodeRSAPublicKey(pub)
}
