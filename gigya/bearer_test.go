package gigya

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestBearerJWT(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	iat := time.Unix(1700000000, 0)
	jwt, err := BearerJWT(key, "AUserKeyLab1", "1700000000123_42", iat)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		t.Fatalf("%d parts: %s", len(parts), jwt)
	}
	dec := base64.RawURLEncoding
	header, err1 := dec.DecodeString(parts[0])
	payload, err2 := dec.DecodeString(parts[1])
	sig, err3 := dec.DecodeString(parts[2])
	if err1 != nil || err2 != nil || err3 != nil {
		t.Fatalf("not base64url without padding: %v %v %v", err1, err2, err3)
	}
	if string(header) != `{"typ":"JWT","alg":"RS256","kid":"AUserKeyLab1"}` {
		t.Errorf("header %s", header)
	}
	var claims struct {
		IAT int64  `json:"iat"`
		JTI string `json:"jti"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil || claims.IAT != 1700000000 || claims.JTI != "1700000000123_42" {
		t.Errorf("payload %s: %v", payload, err)
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(&key.PublicKey, crypto.SHA256, sum[:], sig); err != nil {
		t.Errorf("RS256 signature does not verify: %v", err)
	}
	if _, err := BearerJWT(nil, "k", "j", iat); err == nil {
		t.Error("no key: want an error")
	}
}
