package server_test

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/socius/socius/nonce"
	"github.com/socius/socius/server"
)

// TestBearerJWTSignatureLastDigit: the last base64 digit of a signature carries bits
// that are no part of it (a 256-byte signature's 342nd digit, two bits and four to
// spare). A copy of an accepted JWT with those spare bits set is another string for
// the same signature, and is refused: every encoder writes them as zero.
func TestBearerJWTSignatureLastDigit(t *testing.T) {
	store, priv := jwtStore(t)
	srv := server.New(server.Config{Store: store, Nonces: nonce.New(0)})
	call := func(jwt string) string {
		req := httptest.NewRequest("POST", "https://socialize.localtest/socialize.getUserInfo", strings.NewReader("apiKey="+apiKey+"&UID=u1"))
		req.TLS = &tls.ConnectionState{}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Authorization", "Bearer "+jwt)
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		return rec.Body.String()
	}
	const digits = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	for i, spare := range []int{1, 15} {
		input := jwtSegment(map[string]any{"alg": "RS256", "kid": "AJwt"}) + "." + jwtSegment(map[string]any{"iat": time.Now().Unix(), "jti": "last-digit-" + strconv.Itoa(i)})
		digest := sha256.Sum256([]byte(input))
		sig, err := rsa.SignPKCS1v15(nil, priv, crypto.SHA256, digest[:])
		if err != nil {
			t.Fatal(err)
		}
		text := base64.RawURLEncoding.EncodeToString(sig)
		last := strings.IndexByte(digits, text[len(text)-1])
		spared := text[:len(text)-1] + string(digits[last|spare])
		if got := call(input + "." + spared); !strings.Contains(got, `"errorCode":403003`) {
			t.Errorf("the signature's last digit %c as %c: %s", text[len(text)-1], spared[len(spared)-1], got)
		}
		if got := call(input + "." + text); !strings.Contains(got, `"errorCode":0`) {
			t.Errorf("the JWT itself: %s", got)
		}
	}
}
