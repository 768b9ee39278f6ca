package main

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"testing"
)

// FuzzParseRSAPrivateKey reads arbitrary text as the file of `socius call
// --private-key`. It is an RSA key, which writes back as PKCS #1 PEM and reads back
// equal, or one of parseRSAPrivateKey's own three messages.
func FuzzParseRSAPrivateKey(f *testing.F) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		f.Fatal(err)
	}
	pkcs8, _ := x509.MarshalPKCS8PrivateKey(key)
	f.Add(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}))
	f.Add(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}))
	f.Add(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8[:len(pkcs8)/2]}))
	f.Add([]byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"))
	f.Add([]byte("not a key"))
	messages := map[string]bool{
		"no PEM block": true,
		"not an RSA private key (PKCS #1 or PKCS #8)": true,
		"not an RSA private key":                      true,
	}
	f.Fuzz(func(t *testing.T, text []byte) {
		k, err := parseRSAPrivateKey(text)
		if err != nil {
			if !messages[err.Error()] {
				t.Fatalf("not one of its messages: %q", err)
			}
			return
		}
		again, err := parseRSAPrivateKey(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)}))
		if err != nil || !again.Equal(k) {
			t.Fatalf("written as PKCS #1 and read back: %v", err)
		}
	})
}
