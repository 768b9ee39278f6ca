package gigya

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"time"
)

// BearerJWT returns the JWT of the userKey + RSA private key credential, as the SDKs
// build it (PHP JWTUtils::getBearerToken, Java GSAuthRequest, .NET
// SigUtils.CalcAuthorizationBearer): header {"typ":"JWT","alg":"RS256","kid":userKey},
// payload {"iat":<Unix seconds>,"jti":<nonce>}, RS256 (RSASSA-PKCS1-v1_5 with SHA-256),
// each part base64url without padding. It travels as "Authorization: Bearer <JWT>",
// with apiKey (and timestamp) as parameters and neither secret nor sig.
func BearerJWT(key *rsa.PrivateKey, userKey, jti string, iat time.Time) (string, error) {
	if key == nil {
		return "", errors.New("gigya: bearer JWT needs an RSA private key")
	}
	header := AppendJSON(nil, Object{{"typ", "JWT"}, {"alg", "RS256"}, {"kid", userKey}})
	payload := AppendJSON(nil, Object{{"iat", iat.Unix()}, {"jti", jti}})
	enc := base64.RawURLEncoding
	b := make([]byte, 0, 512)
	b = enc.AppendEncode(b, header)
	b = append(b, '.')
	b = enc.AppendEncode(b, payload)
	sum := sha256.Sum256(b)
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		return "", err
	}
	b = append(b, '.')
	b = enc.AppendEncode(b, sig)
	return string(b), nil
}
