package client

import (
	"crypto/hmac"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"time"

	"github.com/socius/socius/gigya"
	"github.com/socius/socius/internal/errtext"
)

// Errors of the signature checks.
var (
	ErrInvalidSignature = errors.New("signature does not match")
	ErrSignatureExpired = errors.New("signature timestamp is too far from now")
)

// UIDSignature returns the UIDSignature that proves uid came from Gigya at timestamp
// (Unix seconds as text): base64(HMAC-SHA1(partnerSecret, timestamp + "_" + uid)),
// computed by gigya.UIDSignature. Like SigUtils.getSignature in the SDKs.
func UIDSignature(partnerSecret, uid, timestamp string) (string, error) {
	key, err := decodeSecret(partnerSecret)
	if err != nil {
		return "", fmt.Errorf("client: partner secret: %v", err)
	}
	return gigya.UIDSignature(key, timestamp, uid), nil
}

// ValidateUIDSignature checks a UIDSignature (as SigUtils.validateUserSignature in the
// SDKs) in constant time, and, when maxAge > 0, that signatureTimestamp is within
// maxAge of the system clock. It returns nil, ErrInvalidSignature or
// ErrSignatureExpired.
func ValidateUIDSignature(partnerSecret, uid, timestamp, signature string, maxAge time.Duration) error {
	key, err := decodeSecret(partnerSecret)
	if err != nil {
		return fmt.Errorf("client: partner secret: %v", err)
	}
	return validateUID(key, uid, timestamp, signature, maxAge, time.Now())
}

// ValidateUIDSignature checks a UIDSignature with the client's partner secret, against
// its clock corrected by the offset it learned from the server (see ClockOffset),
// within the WithUIDSignatureMaxAge window.
func (c *Client) ValidateUIDSignature(uid, timestamp, signature string) error {
	if c.secretKeys().uidKey == nil {
		return errors.New("client: no partner secret to validate UIDSignatures with (see WithPartnerSecret)")
	}
	return validateUID(c.secretKeys().uidKey, uid, timestamp, signature, c.cfg.uidMaxAge, c.now())
}

func validateUID(key []byte, uid, timestamp, signature string, maxAge time.Duration, now time.Time) error {
	if !gigya.ValidateUIDSignature(key, uid, timestamp, signature, 0, now) {
		return ErrInvalidSignature
	}
	if maxAge > 0 && !gigya.ValidateUIDSignature(key, uid, timestamp, signature, maxAge, now) {
		return fmt.Errorf("%w: signatureTimestamp %s, now %d, at most %v apart", ErrSignatureExpired, errtext.Printable(timestamp), now.Unix(), maxAge)
	}
	return nil
}

// FriendSignature returns the friendshipSignature that proves friendUID is a friend
// of uid, from Gigya at timestamp (Unix seconds as text): base64(HMAC-SHA1(
// partnerSecret, timestamp + "_" + friendUID + "_" + uid)), computed by
// gigya.FriendshipSignature. Its arguments come in the order of UIDSignature and
// ValidateFriendshipSignature: the user, the friend, the time.
func FriendSignature(partnerSecret, uid, friendUID, timestamp string) (string, error) {
	key, err := decodeSecret(partnerSecret)
	if err != nil {
		return "", fmt.Errorf("client: partner secret: %v", err)
	}
	return gigya.FriendshipSignature(key, timestamp, friendUID, uid), nil
}

// FriendshipSignature is FriendSignature with its arguments in the order of the
// string it signs: the time, the friend, the user.
//
// Deprecated: use FriendSignature, whose arguments come in the order of the other
// signature functions of this package; this one stays, unchanged, for the callers
// written against it (all its arguments are strings, so a new order here would go
// unnoticed by the compiler).
func FriendshipSignature(partnerSecret, timestamp, friendUID, uid string) (string, error) {
	return FriendSignature(partnerSecret, uid, friendUID, timestamp)
}

// ValidateFriendshipSignature checks a friendshipSignature (SigUtils.validateFriendSignature)
// in constant time and, when maxAge > 0, its timestamp against the system clock.
func ValidateFriendshipSignature(partnerSecret, uid, friendUID, timestamp, signature string, maxAge time.Duration) error {
	want, err := FriendSignature(partnerSecret, uid, friendUID, timestamp)
	if err != nil {
		return err
	}
	if !hmac.Equal([]byte(want), []byte(signature)) {
		return ErrInvalidSignature
	}
	if maxAge > 0 {
		ts, err := strconv.ParseInt(timestamp, 10, 64)
		if err != nil {
			return fmt.Errorf("%w: timestamp %q is not Unix seconds", ErrSignatureExpired, timestamp)
		}
		if d := time.Since(time.Unix(ts, 0)); d > maxAge || d < -maxAge {
			return fmt.Errorf("%w: timestamp %s is %v from now", ErrSignatureExpired, timestamp, d.Round(time.Second))
		}
	}
	return nil
}

// RequestSignature returns the sig of a request to rawURL with params (sig itself is
// left out) and the base string it covers: gigya.NormalizeURL, then gigya.BaseString
// and gigya.SignBase, exactly what the client sends and Socius verifies. secret is the
// partner secret, or the userKey's secret when params carry a userKey. Use it to debug
// a signature or to check one in your own code.
func RequestSignature(secret, httpMethod, rawURL string, params url.Values) (sig, baseString string, err error) {
	key, err := decodeSecret(secret)
	if err != nil {
		return "", "", fmt.Errorf("client: secret: %v", err)
	}
	norm, err := gigya.NormalizeURL(rawURL)
	if err != nil {
		return "", "", err
	}
	names := make([]string, 0, len(params))
	for name := range params {
		names = append(names, name)
	}
	sort.Strings(names)
	var ps []gigya.Param
	for _, name := range names {
		for _, v := range params[name] {
			ps = append(ps, gigya.Param{Name: name, Value: v})
		}
	}
	baseString = gigya.BaseString(httpMethod, norm, ps)
	return gigya.SignBase(key, baseString), baseString, nil
}
