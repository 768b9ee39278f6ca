package socius_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"math/big"
	"regexp"
	"strings"
	"testing"

	"github.com/socius/socius"
)

func TestTokenText(t *testing.T) {
	shape := map[socius.TokenKind]*regexp.Regexp{
		socius.AccessToken:  regexp.MustCompile(`^st2\.at\.[A-Za-z0-9_-]{43}$`),
		socius.SessionToken: regexp.MustCompile(`^st2\.ss\.[A-Za-z0-9_-]{43}$`),
	}
	seen := map[string]bool{}
	for kind, re := range shape {
		for i := 0; i < 100; i++ {
			text := socius.NewTokenText(kind)
			if !re.MatchString(text) {
				t.Fatalf("%s token %q", kind, text)
			}
			if seen[text] {
				t.Fatalf("token %q issued twice", text)
			}
			seen[text] = true
			if got, ok := socius.TokenKindOf(text); !ok || got != kind {
				t.Errorf("TokenKindOf(%q) = %v, %v", text, got, ok)
			}
		}
	}
	for _, text := range []string{"", "lab-oauth-token-123", "st2.xx.abc", "ST2.AT.abc", "st2.at." + strings.Repeat("a", socius.MaxTokenLen)} {
		if _, ok := socius.TokenKindOf(text); ok {
			t.Errorf("TokenKindOf(%q) accepts it", text)
		}
	}
}

func TestHashToken(t *testing.T) {
	// SHA-256 of "abc", lower-case hex: the store contract's hash.
	if got, want := socius.HashToken("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"; got != want {
		t.Errorf("HashToken(abc) = %s, want %s", got, want)
	}
	// Of the text as given: a token's letters in another case are another token.
	if got, want := socius.HashToken("st2.at.AbC-_xYz"), "0a9dc794a7131fbf02b9fa4ea096a7e3bf674b4ae729cac1d3ff088fb5d3c28c"; got != want {
		t.Errorf("HashToken(st2.at.AbC-_xYz) = %s, want %s", got, want)
	}
}

func TestSessionSecret(t *testing.T) {
	key, _ := socius.DecodeSecret("c2VjcmV0LWZvci10aGUtZ2lneWEtbGFiLTEyMzQ1Ng==")
	a := socius.SessionSecret(key, "st2.ss.one")
	raw, err := base64.StdEncoding.DecodeString(a)
	if err != nil || len(raw) != 32 {
		t.Fatalf("SessionSecret = %q: not standard base64 of 32 bytes", a)
	}
	if socius.SessionSecret(key, "st2.ss.one") != a {
		t.Error("SessionSecret is not deterministic: another node could not verify")
	}
	if socius.SessionSecret(key, "st2.ss.two") == a {
		t.Error("two sessions share a secret")
	}
	other, _ := socius.DecodeSecret(socius.NewSecret())
	if socius.SessionSecret(other, "st2.ss.one") == a {
		t.Error("a new partner secret keeps the session secret")
	}
	// Pinned (computed independently with Python hmac), so that nodes of different
	// versions agree.
	if want := "jcxbOBUYcOPmyQb/Xo/nZVZj+bRGVSUVQkUU56umIqM="; a != want {
		t.Errorf("SessionSecret = %s, want %s", a, want)
	}
}

func TestParseRSAPublicKey(t *testing.T) {
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pkix, _ := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	for _, block := range []*pem.Block{
		{Type: "PUBLIC KEY", Bytes: pkix},
		{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&priv.PublicKey)},
	} {
		pub, err := socius.ParseRSAPublicKey(string(pem.EncodeToMemory(block)))
		if err != nil || !pub.Equal(&priv.PublicKey) {
			t.Errorf("%s: %v", block.Type, err)
			continue
		}
		// What is stored reads back as the same key.
		stored, err := socius.EncodeRSAPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		if again, err := socius.ParseRSAPublicKey(stored); err != nil || !again.Equal(pub) {
			t.Errorf("stored form of %s does not read back: %v", block.Type, err)
		}
	}
	for name, text := range map[string]string{
		"empty":       "",
		"not PEM":     "hello",
		"private key": string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(priv)})),
		"garbage DER": string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte("nope")})),
		// A good key with what PostgreSQL cannot store beside it (SQLite can).
		"NUL after": string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pkix})) + "\x00junk",
		"not UTF-8": string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pkix})) + "\xff",
	} {
		if _, err := socius.ParseRSAPublicKey(text); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func FuzzParseRSAPublicKey(f *testing.F) {
	f.Add("-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA\n-----END PUBLIC KEY-----\n")
	f.Add("-----BEGIN RSA PUBLIC KEY-----\nAAAA\n-----END RSA PUBLIC KEY-----\n")
	f.Fuzz(func(t *testing.T, s string) {
		pub, err := socius.ParseRSAPublicKey(s)
		if err != nil {
			return
		}
		if pub.N.BitLen() < socius.MinRSABits {
			t.Errorf("accepted a %d-bit key", pub.N.BitLen())
		}
		// What is accepted is stored in its PKIX form, which must read back the same.
		stored, err := socius.EncodeRSAPublicKey(pub)
		if err != nil {
			t.Fatalf("accepted key does not encode: %v", err)
		}
		if again, err := socius.ParseRSAPublicKey(stored); err != nil || !again.Equal(pub) {
			t.Fatalf("the stored form of an accepted key does not read back: %v", err)
		}
	})
}

// TestParseRSAPublicKeyOfAnotherKind: a public key of another kind is named in words,
// not by its Go type.
func TestParseRSAPublicKeyOfAnotherKind(t *testing.T) {
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&ec.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	_, err = socius.ParseRSAPublicKey(string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})))
	if err == nil || err.Error() != "an ECDSA (EC) key, not an RSA public key" {
		t.Errorf("an EC key: %v", err)
	}
}

// TestParseRSAPublicKeyLimits: a key of more than MaxRSABits bits, or a text of more
// than MaxRSAPublicKeyPEM bytes, is refused: the server verifies every bearer call
// with the key, at a cost that grows with its size. Those at the limits are taken.
func TestParseRSAPublicKeyLimits(t *testing.T) {
	// pemOf is a PKIX PEM of an RSA public key of the bits given; its modulus, 2^(bits-1)
	// + 1, is no product of two primes, which nothing here needs it to be.
	pemOf := func(bits int) string {
		n := new(big.Int).Lsh(big.NewInt(1), uint(bits-1))
		n.Add(n, big.NewInt(1))
		der, err := x509.MarshalPKIXPublicKey(&rsa.PublicKey{N: n, E: 65537})
		if err != nil {
			t.Fatal(err)
		}
		return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	}
	largest := pemOf(socius.MaxRSABits)
	if pub, err := socius.ParseRSAPublicKey(largest); err != nil || pub.N.BitLen() != socius.MaxRSABits {
		t.Errorf("a key of %d bits: %v", socius.MaxRSABits, err)
	}
	// The text written around the PEM block (openssl's -text) counts, up to the limit.
	padded := strings.Repeat("#", socius.MaxRSAPublicKeyPEM-len(largest)-1) + "\n" + largest
	if _, err := socius.ParseRSAPublicKey(padded); err != nil {
		t.Errorf("a text of %d bytes: %v", len(padded), err)
	}
	for _, tt := range []struct{ name, text, want string }{
		{"a bit too many", pemOf(socius.MaxRSABits + 1), "RSA key of 16385 bits, at most 16384 are accepted"},
		{"a key of 65536 bits", pemOf(65536), "RSA key of 65536 bits, at most 16384 are accepted"},
		{"a byte too long", "#" + padded, "longer than 16384 bytes: an RSA public key of 16384 bits is under 3 KiB of PEM"},
		{"a megabyte", strings.Repeat("#", 1<<20) + largest, "longer than 16384 bytes"},
	} {
		_, err := socius.ParseRSAPublicKey(tt.text)
		if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("%s: %v, want %q", tt.name, err, tt.want)
		}
	}
}
