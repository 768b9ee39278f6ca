package server_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/socius/socius"
	"github.com/socius/socius/nonce"
	"github.com/socius/socius/server"
)

// FuzzBearerJWT sends getUserInfo calls with Authorization: Bearer <JWT>, the JWT built
// from fuzzed pieces: its alg and kid, iat and exp (in milliseconds from the server's
// clock, written as whole or fractional seconds), jti, aud, iss, sub and an extra
// claim, the alphabet and padding of its base64, and a signature by the key's RSA
// private key, by another key or none. The answer must be what the documentation of
// bearer JWTs (docs/compatibility.md, README) says, computed by a plain model: 0 for a
// token signed by the real key with iat within the clock skew, exp (if any) not passed
// and a jti; 400008, 403002, 403003 or 403005 (an unknown kid) otherwise, with
// errorDetails. An accepted token is refused when sent again (403004), and, sent
// before it, any copy of it with one byte changed is refused too, but for the same
// token written in another of the four encodings, all three parts in it (sameJWT).
func FuzzBearerJWT(f *testing.F) {
	ctx := context.Background()
	store, priv := jwtStore(f)
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		f.Fatal(err)
	}
	if err := store.CreateKey(ctx, &socius.Key{UserKey: "ANoPublicKey", APIKey: apiKey, Secret: secret, CreatedAt: time.Now()}); err != nil {
		f.Fatal(err)
	}
	// A quarter past the second: an iat in whole seconds is compared with the second,
	// a fractional one with the time itself, and the window's ends (a fraction of .25)
	// are exact in a float64.
	now := time.Date(2026, 11, 30, 12, 0, 0, 250_000_000, time.UTC)
	const skew = 120 * time.Second
	srv := server.New(server.Config{Store: store, Nonces: nonce.New(0), Clock: jwtClock{now}, Skew: skew})
	var sent atomic.Int64 // makes each jti unique
	call := func(authorization string) (code int, details string) {
		answer := authorized(srv, "apiKey="+apiKey+"&UID=u1", authorization)
		var a struct {
			ErrorCode    int    `json:"errorCode"`
			ErrorDetails string `json:"errorDetails"`
		}
		if err := json.Unmarshal(answer, &a); err != nil {
			f.Fatalf("answer is not JSON: %s", answer)
		}
		return a.ErrorCode, a.ErrorDetails
	}

	f.Add("RS256", uint8(0), "", int64(0), int64(3_600_000), true, "1", "aud", "iss", "sub", "x", "1", uint8(0), uint8(0), uint16(0), uint8(0))
	f.Add("RS256", uint8(0), "", int64(-120_000), int64(0), false, "2", "", "", "", "", "", uint8(1), uint8(1), uint16(40), uint8(1))
	f.Add("RS256", uint8(0), "", int64(120_250), int64(1), true, "3", "", "", "", "", "", uint8(2), uint8(0), uint16(500), uint8(7))
	f.Add("RS256", uint8(0), "", int64(-120_001), int64(0), false, "4", "", "", "", "", "", uint8(3), uint8(0), uint16(0), uint8(0))
	f.Add("HS256", uint8(0), "", int64(0), int64(0), false, "5", "", "", "", "", "", uint8(0), uint8(0), uint16(0), uint8(0))
	f.Add("RS256", uint8(1), "AUnknown", int64(0), int64(0), false, "6", "", "", "", "", "", uint8(0), uint8(0), uint16(0), uint8(0))
	f.Add("RS256", uint8(0), "", int64(0), int64(0), false, "7", "", "", "", "", "", uint8(0), uint8(4), uint16(0), uint8(0))
	f.Add("RS256", uint8(0), "", int64(5), int64(-1), true, "", "", "", "", "", "", uint8(0), uint8(5), uint16(0), uint8(0))
	f.Add("RS256", uint8(0), "", int64(0), int64(0), false, "8", "", "", "", "", "", uint8(0), uint8(0), uint16(0x8000), uint8(3))
	f.Fuzz(func(t *testing.T, alg string, kidKind uint8, kid string, iatMillis, expMillis int64, hasExp bool,
		jti, aud, iss, sub, extraName, extraValue string, enc, sigKind uint8, flipAt uint16, flipXor uint8) {
		// Within about a year of now: the claims stay valid Unix times.
		iatMillis %= 1 << 35
		expMillis %= 1 << 35

		header := map[string]any{"alg": alg, "typ": "JWT"}
		switch kidKind % 4 {
		case 0:
			kid = "AJwt"
		case 1:
			// The fuzzed kid, as it comes.
		case 2:
			kid = "ANoPublicKey"
		case 3:
			kid = ""
		}
		if kid != "" {
			header["kid"] = kid
		}
		// jti is made unique, so that every token is new to the nonce store: the
		// serial first and a colon, which no serial has (after the fuzzed text, "1"
		// and serial "42" made the jti of "14" and "2", or the number 142 of another
		// call, whose jti is its serial in decimal). One of a string's length 257 or
		// more is refused, as is an empty one.
		serial := strconv.FormatInt(sent.Add(1), 36) + ":"
		// Invalid UTF-8 would reach the server as U+FFFD, another length.
		jti = strings.ToValidUTF8(jti, "?")
		claims := map[string]any{"aud": aud, "iss": iss, "sub": sub}
		if extraName != "" {
			claims["x_"+extraName] = extraValue
		}
		jtiOK := false
		switch {
		case sigKind&4 != 0:
			// No jti.
		case sigKind&8 != 0:
			claims["jti"] = json.Number(strconv.FormatInt(sent.Load(), 10))
			jtiOK = true
		default:
			claims["jti"] = serial + jti
			jtiOK = len(serial+jti) <= 256
		}
		iat := now.Truncate(time.Second).Add(time.Duration(iatMillis) * time.Millisecond)
		claims["iat"] = seconds(iat)
		inWindow := func(tm time.Time) bool {
			ref := now
			if tm.Nanosecond() == 0 {
				ref = now.Truncate(time.Second)
			}
			d := ref.Sub(tm)
			return d <= skew && d >= -skew
		}
		exp := now.Truncate(time.Second).Add(time.Duration(expMillis) * time.Millisecond)
		if hasExp {
			claims["exp"] = seconds(exp)
		}
		if sigKind&16 != 0 {
			delete(claims, "iat")
		}

		encoding := base64.RawURLEncoding
		switch enc % 4 {
		case 1:
			encoding = base64.URLEncoding
		case 2:
			encoding = base64.RawStdEncoding
		case 3:
			encoding = base64.StdEncoding
		}
		part := func(v any) string {
			b, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			return encoding.EncodeToString(b)
		}
		input := part(header) + "." + part(claims)
		digest := sha256.Sum256([]byte(input))
		var sig []byte
		switch sigKind % 4 {
		case 0, 3:
			sig, _ = rsa.SignPKCS1v15(nil, priv, crypto.SHA256, digest[:])
		case 1:
			sig, _ = rsa.SignPKCS1v15(nil, other, crypto.SHA256, digest[:])
		case 2:
			sig = digest[:]
		}
		jwt := input + "." + encoding.EncodeToString(sig)

		// The model, in the order the documentation gives.
		var want int
		switch {
		case alg != "RS256" || kid == "":
			want = 400008
		case kid == "ANoPublicKey":
			want = 400008
		case kid != "AJwt":
			want = 403005
		case sigKind&16 != 0 || !jtiOK:
			want = 400008
		case !inWindow(iat):
			want = 403002
		case hasExp && !now.Before(exp):
			want = 403002
		case sigKind%4 == 1 || sigKind%4 == 2:
			want = 403003
		}
		if want == 403005 && kid != "" {
			// A kid of another key, or that no key can have: 403005, from the store or
			// for its shape.
			code, details := call("Bearer " + jwt)
			if code != 403005 || details == "" {
				t.Fatalf("kid %q: %d %q, want 403005", kid, code, details)
			}
			return
		}

		// One byte changed, sent first: refused, whatever the token was.
		if flipXor != 0 {
			// From the start, or with the top bit set from the end.
			i := int(flipAt) % len(jwt)
			if flipAt&0x8000 != 0 {
				i = len(jwt) - 1 - int(flipAt&0x7fff)%len(jwt)
			}
			changed := []byte(jwt)
			changed[i] ^= flipXor
			// The header's value loses the spaces around it.
			same := sameJWT(jwt, strings.TrimSpace(string(changed)))
			code, details := call("Bearer " + string(changed))
			switch {
			case same && code != want:
				t.Fatalf("JWT %s with byte %d changed from %q to %q, the same token: %d %q, want %d", jwt, i, jwt[i], changed[i], code, details, want)
			case !same && (code == 0 || details == ""):
				t.Fatalf("JWT %s with byte %d changed from %q to %q: %d %q, want a refusal", jwt, i, jwt[i], changed[i], code, details)
			case same && want == 0:
				// Its jti is taken now.
				want = 403004
			}
		}
		code, details := call("Bearer " + jwt)
		if code != want || code != 0 && details == "" {
			t.Fatalf("JWT %s (header %v, claims %v): %d %q, want %d", jwt, header, claims, code, details, want)
		}
		if code == 0 {
			// The jti is spent.
			if code, details := call("Bearer " + jwt); code != 403004 || details == "" {
				t.Fatalf("JWT %s sent again: %d %q, want 403004", jwt, code, details)
			}
		}
	})
}

// jwtClock is the server's clock of FuzzBearerJWT: it stays at one time.
type jwtClock struct{ t time.Time }

func (c jwtClock) Now() time.Time { return c.t }

// seconds writes a time as a JWT NumericDate: whole seconds, or with the fraction of
// its milliseconds.
func seconds(t time.Time) json.Number {
	if ms := t.Nanosecond() / 1e6; ms != 0 {
		return json.Number(fmt.Sprintf("%d.%03d", t.Unix(), ms))
	}
	return json.Number(strconv.FormatInt(t.Unix(), 10))
}

// jwtEncodings are the encodings a bearer JWT may be written in, all three parts in
// one of them.
var jwtEncodings = []*base64.Encoding{base64.RawURLEncoding.Strict(), base64.URLEncoding.Strict(), base64.RawStdEncoding.Strict(), base64.StdEncoding.Strict()}

// sameJWT reports whether b is the JWT a in one of jwtEncodings: its header and payload
// the same text (what the signature signs), and its three parts, each of them decoded,
// the same bytes as a's.
func sameJWT(a, b string) bool {
	if i := strings.LastIndexByte(a, '.'); i < 0 || !strings.HasPrefix(b, a[:i+1]) {
		return false
	}
	decode := func(jwt string, enc *base64.Encoding) ([][]byte, bool) {
		parts := strings.Split(jwt, ".")
		if len(parts) != 3 {
			return nil, false
		}
		var out [][]byte
		for _, p := range parts {
			d, err := enc.DecodeString(p)
			if err != nil {
				return nil, false
			}
			out = append(out, d)
		}
		return out, true
	}
	var want [][]byte
	for _, enc := range jwtEncodings {
		if d, ok := decode(a, enc); ok {
			want = d
			break
		}
	}
	for _, enc := range jwtEncodings {
		if d, ok := decode(b, enc); ok && want != nil && bytes.Equal(d[0], want[0]) && bytes.Equal(d[1], want[1]) && bytes.Equal(d[2], want[2]) {
			return true
		}
	}
	return false
}
