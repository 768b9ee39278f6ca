package socius

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// A Site is a tenant: its apiKey identifies it on every call and its partner secret
// (standard base64, at least 16 decoded bytes) signs and authenticates server calls.
type Site struct {
	APIKey    string
	Secret    string
	Name      string
	CreatedAt time.Time
}

// A Key is an application or user key of a site: its own secret replaces the partner
// secret, and Methods, when not empty, lists the only methods it may call.
type Key struct {
	UserKey   string
	APIKey    string
	Secret    string
	Methods   []string
	PublicKey string // PEM-encoded RSA public key for bearer-JWT calls; empty when none
	CreatedAt time.Time
}

// Allows reports whether the key may call method (full name, e.g. socialize.setUserInfo).
// Method names compare in any ASCII letter case, as Socius routes them. A listed name
// without a namespace (getUserInfo) stands for socialize's method of that name: builds
// before 2026-11-29 stored the --methods of `socius key create` as typed, and a key
// they made with --methods getUserInfo could call nothing.
func (k *Key) Allows(method string) bool {
	if len(k.Methods) == 0 {
		return true
	}
	const ns = "socialize."
	short := ""
	if len(method) > len(ns) && EqualFoldASCII(method[:len(ns)], ns) {
		short = method[len(ns):]
	}
	for _, m := range k.Methods {
		if EqualFoldASCII(m, method) || short != "" && !strings.Contains(m, ".") && EqualFoldASCII(m, short) {
			return true
		}
	}
	return false
}

// MinSecretBytes is the least number of decoded bytes a secret must have.
const MinSecretBytes = 16

// DecodeSecret decodes a secret as the official SDKs do: standard, padded base64.
// Whitespace is ignored (every SDK tolerates it).
func DecodeSecret(s string) ([]byte, error) {
	return base64.StdEncoding.DecodeString(CompactSecret(s))
}

// SecretsEqual compares two secrets in constant time, whatever their lengths (it
// compares their SHA-256 digests).
func SecretsEqual(a, b string) bool {
	ha := sha256.Sum256([]byte(a))
	hb := sha256.Sum256([]byte(b))
	return hmac.Equal(ha[:], hb[:])
}

// CompactSecret is s without the spaces, tabs and line ends that DecodeSecret skips
// (a secret read from a file, with its newline): the text to send as a plain secret.
func CompactSecret(s string) string {
	return strings.Map(func(r rune) rune {
		if r == ' ' || r == '\t' || r == '\n' || r == '\r' {
			return -1
		}
		return r
	}, s)
}

// ValidateSecret checks that s is usable as a site or key secret.
func ValidateSecret(s string) error {
	b, err := DecodeSecret(s)
	if err != nil {
		return fmt.Errorf("secret is not standard base64: %s", SecretProblem(s, err))
	}
	if len(b) < MinSecretBytes {
		return fmt.Errorf("secret decodes to %d bytes, at least %d are needed", len(b), MinSecretBytes)
	}
	return nil
}

// SecretProblem says what is wrong with s, a secret that DecodeSecret refused with err,
// in words a person can mend it by (its length, a character base64 does not use, an =
// out of place).
func SecretProblem(s string, err error) string {
	return base64Problem(CompactSecret(s), err)
}

// base64Problem says what is wrong with s, which standard base64 refused with err,
// so that a person can mend it: Go's own words, "illegal base64 data at input byte 0",
// count from 0 and name the first character of "abc", whose fault is its length. It
// says where the fault is and what kind it is, never a character of s but =.
func base64Problem(s string, err error) string {
	var ce base64.CorruptInputError
	if !errors.As(err, &ce) || int(ce) < 0 || int(ce) > len(s) {
		return err.Error()
	}
	i := int(ce)
	at := utf8.RuneCountInString(s[:i]) + 1 // the character's number, from 1
	switch eq := strings.IndexByte(s, '='); {
	case i < len(s) && s[i] != '=' && !isStdBase64(s[i]):
		// The character itself is not said, nor which one it may be (a - or _ of
		// URL-safe base64): it is one of a secret's, and the message may reach a log.
		return fmt.Sprintf("character %d is not in the standard base64 alphabet (A-Z a-z 0-9 + /, then = to pad the end; URL-safe base64's - and _ are not in it: write them as + and /)", at)
	case eq >= 0 && eq < i:
		return fmt.Sprintf("it goes on after the = at character %d, which may only end it", utf8.RuneCountInString(s[:eq])+1)
	case i < len(s) && s[i] == '=':
		return fmt.Sprintf("the = at character %d comes too early: = only pads the end to a multiple of 4 characters", at)
	}
	return fmt.Sprintf("its %d characters are not a multiple of 4 (standard base64 pads its end with =: is one cut off?)", utf8.RuneCountInString(s))
}

func isStdBase64(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '+' || c == '/'
}

// NewSecret returns a fresh random secret of 24 bytes, base64-encoded.
func NewSecret() string {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return base64.StdEncoding.EncodeToString(b)
}

// NewAPIKey returns a fresh apiKey in Gigya's shape: "3_" and 64 URL-safe characters.
func NewAPIKey() string {
	b := make([]byte, 48)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return "3_" + base64.RawURLEncoding.EncodeToString(b)
}

// NewUserKey returns a fresh userKey: 12 URL-safe characters, like Gigya's.
func NewUserKey() string {
	b := make([]byte, 9)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return "A" + base64.RawURLEncoding.EncodeToString(b)
}

// ValidAPIKey reports whether s can be an apiKey: 1 to 128 printable ASCII characters
// without spaces.
func ValidAPIKey(s string) bool { return validID(s, 128) }

// MaxSiteName is the longest site name, in bytes.
const MaxSiteName = 256

// ValidateSiteName checks a site's name: at most MaxSiteName bytes of UTF-8 without
// control characters. Both stores then hold it alike (PostgreSQL refuses a NUL byte or
// invalid UTF-8, which SQLite takes), so a site moves between them by export and import.
func ValidateSiteName(name string) error {
	if len(name) > MaxSiteName {
		return fmt.Errorf("a site name is at most %d bytes", MaxSiteName)
	}
	if !utf8.ValidString(name) {
		return errors.New("a site name must be UTF-8")
	}
	for _, r := range name {
		if unicode.IsControl(r) {
			return fmt.Errorf("a site name may not hold the control character %U", r)
		}
	}
	return nil
}

// ValidUserKey reports whether s can be a userKey (same rule as apiKeys).
func ValidUserKey(s string) bool { return validID(s, 128) }

func validID(s string, max int) bool {
	if s == "" || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}
