package server_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/socius/socius"
	"github.com/socius/socius/sqlite"
)

// jwtStore opens a store in a temporary folder holding the site apiKey, its key AJwt
// with the public half of a new RSA key, and the user u1, for the tests of bearer JWTs;
// it returns the store, closed when the test ends, and the key's private half.
func jwtStore(tb testing.TB) (*sqlite.Store, *rsa.PrivateKey) {
	tb.Helper()
	ctx := context.Background()
	store, err := sqlite.Open(filepath.Join(tb.TempDir(), "socius.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { store.Close() })
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		tb.Fatal(err)
	}
	pub, _ := socius.EncodeRSAPublicKey(&priv.PublicKey)
	if err := store.CreateSite(ctx, &socius.Site{APIKey: apiKey, Secret: secret, CreatedAt: time.Now()}); err != nil {
		tb.Fatal(err)
	}
	if err := store.CreateKey(ctx, &socius.Key{UserKey: "AJwt", APIKey: apiKey, Secret: secret, PublicKey: pub, CreatedAt: time.Now()}); err != nil {
		tb.Fatal(err)
	}
	if _, err := store.Login(ctx, apiKey, "u1", &socius.Patch{}, time.Now()); err != nil {
		tb.Fatal(err)
	}
	return store, priv
}

// jwtSegment is a JWT's header or payload: v as JSON, in base64url without padding.
func jwtSegment(v any) string {
	b, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(b)
}
