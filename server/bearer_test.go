package server_test

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/socius/socius/nonce"
	"github.com/socius/socius/server"
)

// bearerCall returns a function that sends srv a getUserInfo over HTTPS with a bearer
// JWT and returns the answer's body.
func bearerCall(srv *server.Server) func(jwt string) string {
	return func(jwt string) string {
		return string(authorized(srv, "apiKey="+apiKey+"&UID=u1", "Bearer "+jwt))
	}
}

// TestBearerJWTSignatureLastDigit: the last base64 digit of a signature carries bits
// that are no part of it (a 256-byte signature's 342nd digit, two bits and four to
// spare). A copy of an accepted JWT with those spare bits set is another string for
// the same signature, and is refused: every encoder writes them as zero.
func TestBearerJWTSignatureLastDigit(t *testing.T) {
	store, priv := jwtStore(t)
	srv := server.New(server.Config{Store: store, Nonces: nonce.New(0)})
	call := bearerCall(srv)
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

// TestBearerJWTOneBase64: a JWT is read in base64url or standard base64, padded or
// not, but in one of them for its three parts, as one encoder writes it: a part in the
// other alphabet, a part that mixes the two, padding on one part and not another, or
// padding that is not exactly what the length needs, is refused (403003 for the
// signature, 400008 for the header or payload), where each of them was read.
func TestBearerJWTOneBase64(t *testing.T) {
	store, priv := jwtStore(t)
	srv := server.New(server.Config{Store: store, Nonces: nonce.New(0)})
	call := bearerCall(srv)
	// A header and a payload whose standard base64 has a '+' or '/' (so that their
	// base64url has a '-' or '_': a '~' at a third byte of three makes one) and needs
	// padding; a new jti for every token.
	serial := 0
	claims := func() (header, payload []byte) {
		for {
			serial++
			header, _ = json.Marshal(map[string]any{"alg": "RS256", "kid": "AJwt", "x": "~~~" + strconv.Itoa(serial)})
			payload, _ = json.Marshal(map[string]any{"iat": time.Now().Unix(), "jti": "~~~" + strconv.Itoa(serial)})
			h, p := base64.StdEncoding.EncodeToString(header), base64.StdEncoding.EncodeToString(payload)
			if strings.ContainsAny(h, "+/") && strings.ContainsAny(p, "+/") && strings.HasSuffix(h, "=") && strings.HasSuffix(p, "=") {
				return header, payload
			}
		}
	}
	sign := func(input string) []byte {
		digest := sha256.Sum256([]byte(input))
		sig, err := rsa.SignPKCS1v15(nil, priv, crypto.SHA256, digest[:])
		if err != nil {
			t.Fatal(err)
		}
		return sig
	}
	encodings := map[string]*base64.Encoding{"RawURL": base64.RawURLEncoding, "URL": base64.URLEncoding, "RawStd": base64.RawStdEncoding, "Std": base64.StdEncoding}
	// Every part in one encoding: accepted, the .NET SDK's standard base64 with
	// padding too.
	for name, enc := range encodings {
		header, payload := claims()
		input := enc.EncodeToString(header) + "." + enc.EncodeToString(payload)
		if got := call(input + "." + enc.EncodeToString(sign(input))); !strings.Contains(got, `"errorCode":0,`) {
			t.Errorf("every part in %s: %s", name, got)
		}
	}
	for _, tt := range []struct {
		name                 string
		header, payload, sig *base64.Encoding
		editSig              func(string) string
		want                 string
	}{
		{"header base64url, payload standard", base64.RawURLEncoding, base64.RawStdEncoding, base64.RawURLEncoding, nil, `"errorCode":400008`},
		{"header padded, payload not", base64.StdEncoding, base64.RawStdEncoding, base64.StdEncoding, nil, `"errorCode":400008`},
		{"signature in the other alphabet", base64.RawURLEncoding, base64.RawURLEncoding, base64.RawStdEncoding, nil, `"errorCode":403003`},
		{"signature padded, the rest not", base64.RawStdEncoding, base64.RawStdEncoding, base64.StdEncoding, nil, `"errorCode":403003`},
		{"signature unpadded, the rest padded", base64.StdEncoding, base64.StdEncoding, base64.RawStdEncoding, nil, `"errorCode":403003`},
		{"one digit of the signature in the other alphabet", base64.RawURLEncoding, base64.RawURLEncoding, base64.RawURLEncoding,
			func(s string) string {
				i := strings.IndexAny(s, "-_")
				return s[:i] + map[byte]string{'-': "+", '_': "/"}[s[i]] + s[i+1:]
			}, `"errorCode":403003`},
		{"a padding digit more", base64.StdEncoding, base64.StdEncoding, base64.StdEncoding, func(s string) string { return s + "=" }, `"errorCode":403003`},
		{"a padding digit less", base64.StdEncoding, base64.StdEncoding, base64.StdEncoding, func(s string) string { return s[:len(s)-1] }, `"errorCode":403003`},
	} {
		header, payload := claims()
		input := tt.header.EncodeToString(header) + "." + tt.payload.EncodeToString(payload)
		sig := tt.sig.EncodeToString(sign(input))
		if tt.editSig != nil {
			sig = tt.editSig(sig)
		}
		if got := call(input + "." + sig); !strings.Contains(got, tt.want) {
			t.Errorf("%s: %s, want %s", tt.name, got, tt.want)
		}
	}
}

// signedJWT returns a JWT of the key AJwt with the claims, signed by priv.
func signedJWT(t *testing.T, priv *rsa.PrivateKey, claims map[string]any) string {
	t.Helper()
	input := jwtSegment(map[string]any{"alg": "RS256", "kid": "AJwt"}) + "." + jwtSegment(claims)
	digest := sha256.Sum256([]byte(input))
	sig, err := rsa.SignPKCS1v15(nil, priv, crypto.SHA256, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// TestBearerJWTNotBefore: a JWT whose nbf claim is ahead of the server time by more
// than the clock skew is not valid yet (RFC 7519), 403002 as an iat that far ahead;
// one within the skew (a signer's clock ahead, nbf its iat) or passed is taken, and an
// nbf that is no Unix time in seconds is 400008, as an exp. It was not read: a JWT
// its signer made for later was taken at once.
func TestBearerJWTNotBefore(t *testing.T) {
	store, priv := jwtStore(t)
	srv := server.New(server.Config{Store: store, Nonces: nonce.New(0)})
	call := bearerCall(srv)
	now := time.Now().Unix()
	for i, tt := range []struct {
		nbf  any
		want string
	}{
		{now + 3600, `"errorCode":403002`},
		{now + int64(server.DefaultSkew/time.Second) + 5, `"errorCode":403002`},
		{now + 30, `"errorCode":0,`},
		{now, `"errorCode":0,`},
		{now - 3600, `"errorCode":0,`},
		{float64(now) + 0.5, `"errorCode":0,`},
		{(now + 3600) * 1000, `"errorCode":400008`},
		{"soon", `"errorCode":400008`},
	} {
		got := call(signedJWT(t, priv, map[string]any{"iat": now, "nbf": tt.nbf, "jti": "nbf-" + strconv.Itoa(i)}))
		if !strings.Contains(got, tt.want) {
			t.Errorf("nbf %v: %s, want %s", tt.nbf, got, tt.want)
		}
		if strings.Contains(got, `"errorCode":403002`) && !strings.Contains(got, "the JWT is not valid yet: its nbf claim") {
			t.Errorf("nbf %v: %s, want errorDetails naming nbf", tt.nbf, got)
		}
	}
}

// TestBearerJWTIatClipped: an iat refused for the clock skew is quoted in errorDetails
// clipped, as an exp or nbf is: a JSON number has no length limit ("1000000000.000..."
// of kilobytes is 1e9), and the whole text went into the answer and the log.
func TestBearerJWTIatClipped(t *testing.T) {
	store, priv := jwtStore(t)
	srv := server.New(server.Config{Store: store, Nonces: nonce.New(0)})
	iat := json.Number("1000000000." + strings.Repeat("0", 8<<10))
	got := bearerCall(srv)(signedJWT(t, priv, map[string]any{"iat": iat, "jti": "long-iat"}))
	if !strings.Contains(got, `"errorCode":403002`) || !strings.Contains(got, "JWT iat 1000000000.0000000000000... is behind") || len(got) > 2<<10 {
		t.Errorf("an iat of %d bytes: %d bytes: %.400s", len(iat), len(got), got)
	}
}

// TestBearerJWTOfDots: a bearer token of the largest header made of dots is refused
// (400008) for what a JWT's three parts bound it to, not split first into one string a
// dot: 64 KiB of dots (the default --max-header-bytes) cost a megabyte each call.
func TestBearerJWTOfDots(t *testing.T) {
	store, _ := jwtStore(t)
	srv := server.New(server.Config{Store: store, Nonces: nonce.New(0)})
	call := bearerCall(srv)
	dots := strings.Repeat(".", 60<<10)
	call(dots) // the site's first lookup, which prepares statements
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	got := call(dots)
	runtime.ReadMemStats(&after)
	if !strings.Contains(got, `"errorCode":400008`) {
		t.Errorf("a bearer token of %d dots: %s", len(dots), got)
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > 256<<10 {
		t.Errorf("a bearer token of %d dots allocated %d KiB", len(dots), n>>10)
	}
}
