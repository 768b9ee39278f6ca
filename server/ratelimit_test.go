package server

import (
	"context"
	"encoding/json"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/socius/socius"
	"github.com/socius/socius/gigya"
	"github.com/socius/socius/ratelimit"
)

// nonceHook runs before before each UseNonce of the store it wraps.
type nonceHook struct {
	socius.NonceStore
	before func()
}

func (h nonceHook) UseNonce(ctx context.Context, credential, nonce string, expires, now time.Time) (bool, error) {
	h.before()
	return h.NonceStore.UseNonce(ctx, credential, nonce, expires, now)
}

// TestRateLimitSessionChargedOnceReady: a call signed with a session token and no
// apiKey, found within its site's budget before its nonce is recorded, is served and
// charged, if need be beyond the budget, when another call of the site takes the last
// token meanwhile (here, while its nonce is recorded), as a call naming its apiKey is
// once found ready before authentication. It was refused 403048 after its nonce was
// recorded, so that the SDK's retry of the same request got 403004.
func TestRateLimitSessionChargedOnceReady(t *testing.T) {
	s := newTestServer(t, t.TempDir(), nil)
	a := siteToken(t, s, "")
	got := postBody(s, nil, true, "socialize.notifyLogin", "oauth_token="+a.AccessToken+"&siteUID=alice&targetEnv=mobile")
	var m struct{ SessionToken, SessionSecret string }
	if err := json.Unmarshal([]byte(got), &m); err != nil || m.SessionToken == "" {
		t.Fatalf("notifyLogin with the site token: %s", got)
	}
	s.limiter = ratelimit.New(1, 1, 0)
	nonces := s.cfg.Nonces
	taken := 0
	s.cfg.Nonces = nonceHook{nonces, func() {
		// Another call of the site, between this one's check and its charge.
		s.limiter.Take(labAPIKey, labTime)
		taken++
	}}
	p := url.Values{"oauth_token": {m.SessionToken}, "UID": {"alice"},
		"timestamp": {strconv.FormatInt(labTime.Unix(), 10)}, "nonce": {"n1"}}
	var list []gigya.Param
	for k, vs := range p {
		list = append(list, gigya.Param{Name: k, Value: vs[0]})
	}
	key, _ := socius.DecodeSecret(m.SessionSecret)
	p.Set("sig", gigya.Sign(key, "POST", "https://socialize.localtest/socialize.getUserInfo", list))
	got = postBody(s, nil, true, "socialize.getUserInfo", p.Encode())
	if taken != 1 || !strings.Contains(got, `"errorCode":0`) {
		t.Errorf("a session call found within the budget, its nonce recorded (%d): %s; want it served", taken, got)
	}
	if s.limiter.Ready(labAPIKey, labTime.Add(time.Second)) {
		t.Error("the call was not charged: the site is within its budget a second later")
	}
}
