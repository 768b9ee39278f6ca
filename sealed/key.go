package sealed

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// NewKey returns a fresh random master key.
func NewKey() []byte {
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return k
}

// EncodeKey returns the text form of a master key: standard base64.
func EncodeKey(key []byte) string { return base64.StdEncoding.EncodeToString(key) }

// ParseKey reads a master key from its text form: standard (or URL-safe) base64 of
// KeySize bytes; surrounding whitespace is ignored. The error never repeats the text.
func ParseKey(text string) ([]byte, error) {
	text = strings.TrimSpace(text)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		if k, err := enc.DecodeString(text); err == nil {
			if len(k) != KeySize {
				unit := "bytes"
				if len(k) == 1 {
					unit = "byte"
				}
				return nil, fmt.Errorf("a master key is base64 of %d bytes; this decodes to %d %s (make one with: head -c 32 /dev/urandom | base64)", KeySize, len(k), unit)
			}
			return k, nil
		}
	}
	return nil, fmt.Errorf("a master key is base64 of %d bytes; this is not base64 (make one with: head -c 32 /dev/urandom | base64)", KeySize)
}

// MaxKeyFile is the most a master key file is read of: its text is 44 bytes, and a
// file of more (a database, a device such as /dev/zero, given by mistake) is refused
// without being read whole into memory.
const MaxKeyFile = 4 << 10

// ReadKeyFile reads a master key from a file holding its text form, MaxKeyFile bytes
// at most.
func ReadKeyFile(path string) ([]byte, error) {
	b, err := ReadKeyText(path)
	if err != nil {
		return nil, fmt.Errorf("master key file: %w", err)
	}
	k, err := ParseKey(string(b))
	if err != nil {
		return nil, fmt.Errorf("master key file %s: %w", path, err)
	}
	return k, nil
}

// ReadKeyText returns the text of the master key file at path, or an error that names
// path when it cannot be read or holds more than MaxKeyFile bytes (an *fs.PathError
// either way, whose Err says which).
func ReadKeyText(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxKeyFile+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxKeyFile {
		return nil, &fs.PathError{Op: "read", Path: path, Err: fmt.Errorf("longer than %d bytes; a master key is base64 of %d bytes (make one with: head -c 32 /dev/urandom | base64)", MaxKeyFile, KeySize)}
	}
	return b, nil
}

// CreateKeyFile writes a new random master key to path, readable by its owner only,
// and returns it. It fails with fs.ErrExist if the file exists; two processes racing
// to create it cannot both succeed, so the loser reads the winner's key.
func CreateKeyFile(path string) ([]byte, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	key := NewKey()
	tmp, err := os.CreateTemp(filepath.Dir(path), ".master.key-*")
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return nil, err
	}
	if _, err := tmp.WriteString(EncodeKey(key) + "\n"); err != nil {
		tmp.Close()
		return nil, err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return nil, err
	}
	if err := tmp.Close(); err != nil {
		return nil, err
	}
	// A hard link appears complete or not at all, and fails if path exists.
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil, fs.ErrExist
		}
		return nil, err
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
	return key, nil
}
