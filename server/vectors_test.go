package server

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/socius/socius"
	"github.com/socius/socius/gigya"
	"github.com/socius/socius/internal/vectors"
	"github.com/socius/socius/nonce"
)

// TestRequestVectorsThroughServer: each body that a real SDK POSTs for a vector of
// test-vectors.json (wire_bodies: its own sig, the .NET SDK's without the port it
// never signs, its emoji turned into U+FFFD) is taken by the server as it arrives at
// the vector's URL: over TLS for https, the Host header as the SDK sends it (upper
// case, an explicit default or a non-default port), the path as sent (case kept), the
// server's clock at the vector's timestamp. Every one is answered 0 and stores the
// vector's userInfo, but key-order's, which holds Zeta and zeta: two case variants of
// one name, 400006 (SPEC 1) before any signature is looked at. gigya's
// TestRequestSignatureVectors checks the same bodies against gigya.CandidateURLs
// alone; this one goes through the whole server (the form as each SDK encodes it, the
// scheme and Host it came with, the userKey's secret, the timestamp window, the nonce).
func TestRequestVectorsThroughServer(t *testing.T) {
	f, err := vectors.Load()
	if err != nil {
		t.Fatal(err)
	}
	if len(f.RequestSignatureVectors) != 21 {
		t.Fatalf("%d vectors, want 21", len(f.RequestSignatureVectors))
	}
	s := newTestServer(t, t.TempDir(), nil)
	ctx := context.Background()
	for _, v := range f.RequestSignatureVectors {
		u, err := url.Parse(v.URL)
		if err != nil {
			t.Fatal(err)
		}
		var ts string
		for _, p := range v.Params {
			if p[0] == "timestamp" {
				ts = p[1]
			}
		}
		at, ok := gigya.ParseTimestamp(ts)
		if !ok {
			t.Fatalf("%s: timestamp %q", v.ID, ts)
		}
		sdks := make([]string, 0, len(v.WireBodies))
		for sdk := range v.WireBodies {
			sdks = append(sdks, sdk)
		}
		sort.Strings(sdks)
		if len(sdks) < 4 {
			t.Errorf("%s: wire bodies of %v only", v.ID, sdks)
		}
		for _, sdk := range sdks {
			// Each SDK's request is a first one: the vectors share their nonce.
			s.cfg.Nonces = nonce.New(0)
			s.cfg.Clock = fixedClock{at.Add(1500 * time.Millisecond)}
			// A new user each time, to see that this SDK's userInfo was stored.
			_ = s.cfg.Store.DeleteUser(ctx, labAPIKey, "lab-uid-1", at)
			if _, err := s.cfg.Store.Login(ctx, labAPIKey, "lab-uid-1", &socius.Patch{}, at); err != nil {
				t.Fatal(err)
			}
			r := httptest.NewRequest("POST", u.EscapedPath(), strings.NewReader(v.WireBodies[sdk]))
			r.Host = u.Host
			if strings.EqualFold(u.Scheme, "https") {
				r.TLS = &tls.ConnectionState{}
			}
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			w := serve(s, r)
			var got struct {
				ErrorCode    int    `json:"errorCode"`
				ErrorDetails string `json:"errorDetails"`
			}
			if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
				t.Fatalf("%s/%s: %v: %s", v.ID, sdk, err, w.Body)
			}
			if v.ID == "key-order" {
				if got.ErrorCode != 400006 || !strings.Contains(strings.ToLower(got.ErrorDetails), "duplicate parameter: zeta") {
					t.Errorf("%s/%s: %s, want 400006 for Zeta and zeta", v.ID, sdk, w.Body)
				}
				continue
			}
			if got.ErrorCode != 0 {
				t.Errorf("%s/%s (%s %s): %s", v.ID, sdk, r.Host, r.URL.Path, w.Body)
				continue
			}
			user, err := s.cfg.Store.User(ctx, labAPIKey, "lab-uid-1")
			if err != nil {
				t.Fatal(err)
			}
			if user.Profile[socius.FirstName] == "" {
				t.Errorf("%s/%s: userInfo not stored: %v", v.ID, sdk, user.Profile)
			}
		}
	}
}
