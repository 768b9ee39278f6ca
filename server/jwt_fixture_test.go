package server_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/socius/socius"
	"github.com/socius/socius/server"
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

// authorized sends srv a getUserInfo over HTTPS with the form body and the
// Authorization header given, and returns the answer's body: the call of the tests and
// fuzz targets of bearer JWTs and other Authorization credentials.
func authorized(srv *server.Server, body, authorization string) []byte {
	req := httptest.NewRequest("POST", "https://socialize.localtest/socialize.getUserInfo", strings.NewReader(body))
	req.TLS = &tls.ConnectionState{}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", authorization)
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, req)
	return rec.Body.Bytes()
}
