package server_test

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/socius/socius"
	"github.com/socius/socius/nonce"
	"github.com/socius/socius/server"
)

// FuzzAuthorization sends arbitrary Authorization headers (bearer JWTs, OAuth and
// Basic credentials) and oauth_token values over TLS. Whatever arrives, the answer is
// an authentication error or a success, never a general server error; a success was
// had with the credential the call carried: the access token of the store (as the
// parameter or the header), or else a bearer JWT of the userKey AJwt.
func FuzzAuthorization(f *testing.F) {
	ctx := context.Background()
	store, priv := jwtStore(f)
	token := socius.NewTokenText(socius.AccessToken)
	if err := store.CreateToken(ctx, &socius.Token{Hash: socius.HashToken(token), Kind: socius.AccessToken, APIKey: apiKey, UID: "u1", CreatedAt: time.Now()}); err != nil {
		f.Fatal(err)
	}
	var observed server.Call
	srv := server.New(server.Config{Store: store, Nonces: nonce.New(0), Observe: func(c *server.Call) { observed = *c }})

	input := jwtSegment(map[string]any{"alg": "RS256", "typ": "JWT", "kid": "AJwt"}) + "." + jwtSegment(map[string]any{"iat": time.Now().Unix(), "jti": "1"})
	digest := sha256.Sum256([]byte(input))
	sig, _ := rsa.SignPKCS1v15(rand.Reader, priv, crypto.SHA256, digest[:])
	f.Add("Bearer "+input+"."+base64.RawURLEncoding.EncodeToString(sig), "")
	f.Add("Bearer "+input+".", "")
	f.Add("Bearer a.b.c", "")
	f.Add("OAuth st2.at.AAAA", "")
	f.Add("Basic "+base64.StdEncoding.EncodeToString([]byte(apiKey+":"+secret)), "")
	f.Add("", "st2.ss."+strings.Repeat("A", 43))
	f.Add("Bearer st2.at.x", "st2.at.y")
	f.Add("OAuth "+token, "")
	f.Add("bearer  "+token, token)
	f.Add("", token)

	allowed := map[int]bool{0: true, 400002: true, 400006: true, 400008: true, 400093: true, 403002: true,
		403003: true, 403004: true, 403005: true, 403007: true, 403025: true}
	f.Fuzz(func(t *testing.T, authorization, tokenParam string) {
		body := "apiKey=" + apiKey + "&UID=u1"
		if tokenParam != "" {
			body += "&oauth_token=" + strings.NewReplacer("%", "%25", "&", "%26", "+", "%2B", "=", "%3D").Replace(tokenParam)
		}
		answer := authorized(srv, body, authorization)
		var a struct {
			ErrorCode int `json:"errorCode"`
		}
		if err := json.Unmarshal(answer, &a); err != nil {
			t.Fatalf("answer is not JSON: %s", answer)
		}
		if !allowed[a.ErrorCode] {
			t.Errorf("Authorization %q, oauth_token %q: errorCode %d: %s", authorization, tokenParam, a.ErrorCode, strconv.Quote(string(answer)))
		}
		if a.ErrorCode != 0 {
			return
		}
		// The scheme's name is case-insensitive, its value after spaces.
		scheme, value, _ := strings.Cut(authorization, " ")
		value = strings.TrimSpace(value)
		carried := tokenParam == token || strings.EqualFold(scheme, "OAuth") && value == token ||
			strings.EqualFold(scheme, "Bearer") && value == token
		switch {
		case carried && (observed.Credential != "access-token" || observed.UserKey != ""):
			t.Errorf("Authorization %q, oauth_token %q: accepted as %q (userKey %q), not as the access token", authorization, tokenParam, observed.Credential, observed.UserKey)
		case !carried && (observed.Credential != "key-bearer" || observed.UserKey != "AJwt" || !strings.EqualFold(scheme, "Bearer")):
			t.Errorf("Authorization %q, oauth_token %q: accepted as %q (userKey %q), not as a bearer JWT of AJwt", authorization, tokenParam, observed.Credential, observed.UserKey)
		}
	})
}
