package server

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/socius/socius"
)

// stall waits d, as a store call on a database that does not answer waits for its
// deadline, or less when ctx ends first (a deadline of the caller's sooner than the
// store's own): then it fails as the PostgreSQL store does, with a DatabaseError of
// context.DeadlineExceeded. It returns nil when d passed first (the store answered).
func stall(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return socius.DatabaseError("stall", context.DeadlineExceeded)
	}
}

// slowSites answers each site lookup after delay nanoseconds (or fails at the
// caller's deadline).
type slowSites struct {
	socius.Store
	delay *atomic.Int64
}

func (s slowSites) Site(ctx context.Context, apiKey string) (*socius.Site, error) {
	if err := stall(ctx, time.Duration(s.delay.Load())); err != nil {
		return nil, err
	}
	return s.Store.Site(ctx, apiKey)
}

// stalledWork is a Config.Nonced whose operations, while stalled, wait for their
// deadline (opTimeout, or the caller's when sooner) and fail recording nothing, as
// behind a users table locked by another session; otherwise they are works'.
type stalledWork struct {
	works     socius.NoncedUserStore
	opTimeout time.Duration
	stalled   *atomic.Bool
}

func (w stalledWork) UpdateProfileNonced(ctx context.Context, n socius.NonceUse, apiKey, uid string, p *socius.Patch, now time.Time) (bool, error) {
	if w.stalled.Load() {
		return false, w.stall(ctx)
	}
	return w.works.UpdateProfileNonced(ctx, n, apiKey, uid, p, now)
}

func (w stalledWork) UserNonced(ctx context.Context, n socius.NonceUse, apiKey, uid string) (bool, *socius.User, error) {
	if w.stalled.Load() {
		return false, nil, w.stall(ctx)
	}
	return w.works.UserNonced(ctx, n, apiKey, uid)
}

func (w stalledWork) stall(ctx context.Context) error {
	if err := stall(ctx, w.opTimeout); err != nil {
		return err
	}
	return socius.DatabaseError("stalled work", context.DeadlineExceeded)
}

// stallingNonces records nonces, or, while stalled, waits for its deadline (opTimeout,
// or the caller's when sooner) and fails, recording nothing; given a context already
// ended, it fails at once, as PostgreSQL's store does.
type stallingNonces struct {
	socius.NonceStore
	opTimeout time.Duration
	stalled   *atomic.Bool
}

func (n stallingNonces) UseNonce(ctx context.Context, credential, nonce string, expires, now time.Time) (bool, error) {
	if n.stalled.Load() {
		if err := stall(ctx, n.opTimeout); err != nil {
			return false, err
		}
		return false, socius.DatabaseError("stalled nonce", context.DeadlineExceeded)
	}
	if err := ctx.Err(); err != nil {
		// As PostgreSQL's store: a context already ended fails at once.
		return false, socius.DatabaseError("nonce", err)
	}
	return n.NonceStore.UseNonce(ctx, credential, nonce, expires, now)
}

// serveWithWriteTimeout serves s over real HTTP with the write timeout wt, which s
// knows too (as cmd/socius configures both), until the test ends.
func serveWithWriteTimeout(t *testing.T, s *Server, wt time.Duration) *httptest.Server {
	s.cfg.WriteTimeout = wt
	ts := httptest.NewUnstartedServer(s)
	ts.Config.WriteTimeout = wt
	ts.Start()
	t.Cleanup(ts.Close)
	return ts
}

// TestSignedWriteWithinWriteTimeout: a signed write makes up to three store calls in
// turn (the site's lookup, the work with its nonce, the nonce alone when the work
// failed), each with the store's deadline; their sum may pass the write timeout, past
// which the caller would get no envelope at all (the connection closed). Here, as with
// PostgreSQL's 10 s and the default 30 s, three store deadlines pass the write timeout
// and two do not, and the site's lookup answers near its deadline: the call still
// answers 500028 "the store did not answer in time" before the write timeout, the
// nonce recorded alone ending by answerBy. When the nonce's table answers, the nonce is
// recorded alone, and a replay is 403004.
func TestSignedWriteWithinWriteTimeout(t *testing.T) {
	const (
		writeTimeout = 4 * time.Second
		opTimeout    = 1500 * time.Millisecond // PostgreSQL's DefaultOpTimeout, scaled
		siteDelay    = 1400 * time.Millisecond // the site's lookup, just under it
	)
	for _, nonceStalled := range []bool{true, false} {
		name := "the nonce's table answers"
		if nonceStalled {
			name = "the nonce's table stalls too"
		}
		t.Run(name, func(t *testing.T) {
			s := newTestServer(t, t.TempDir(), nil)
			var stalled, workStalled atomic.Bool
			stalled.Store(nonceStalled)
			workStalled.Store(true)
			s.cfg.Nonces = stallingNonces{s.cfg.Nonces, opTimeout, &stalled}
			var delay atomic.Int64
			delay.Store(int64(siteDelay))
			s.cfg.Store = slowSites{s.cfg.Store, &delay}
			s.cfg.Nonced = stalledWork{&noncedStore{st: s.cfg.Store, ns: s.cfg.Nonces}, opTimeout, &workStalled}
			ts := serveWithWriteTimeout(t, s, writeTimeout)

			post := func(body string) (string, time.Duration) {
				t.Helper()
				r, err := http.NewRequest("POST", ts.URL+"/socialize.setUserInfo", strings.NewReader(body))
				if err != nil {
					t.Fatal(err)
				}
				r.Host = "socialize.localtest" // the host the request was signed for
				r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				start := time.Now()
				resp, err := ts.Client().Do(r)
				if err != nil {
					t.Fatalf("no answer after %s: %v", time.Since(start), err)
				}
				defer resp.Body.Close()
				b, err := io.ReadAll(resp.Body)
				if err != nil {
					t.Fatalf("the answer after %s was cut: %v", time.Since(start), err)
				}
				return string(b), time.Since(start)
			}
			body := signedBody("socialize.setUserInfo", "n-late", url.Values{"UID": {"u1"}, "userInfo": {`{"firstName":"Late"}`}})
			got, took := post(body)
			if !strings.Contains(got, `"errorCode":500028`) || !strings.Contains(got, "the store did not answer in time") {
				t.Errorf("the call (%s): %s, want 500028 the store did not answer in time", took, got)
			}
			if took >= writeTimeout {
				t.Errorf("the call took %s, past the write timeout %s", took, writeTimeout)
			}
			if nonceStalled {
				return
			}
			// The replay, with the store answering at once: its nonce was recorded alone.
			delay.Store(0)
			workStalled.Store(false)
			if got, _ := post(body); !strings.Contains(got, `"errorCode":403004`) {
				t.Errorf("its replay: %s, want 403004", got)
			}
		})
	}
}

// TestNonceRecordedWhenTheAnswerIsLate: a signed write whose body came so slowly that
// the time for its answer (answerBy) had passed when its work failed still records its
// nonce alone, with the store's own deadline: no answer could go out in time anyway,
// and the work may have been applied, so its replay must be 403004. Bounded by the
// passed answerBy, the recording failed at once and the replay was served.
func TestNonceRecordedWhenTheAnswerIsLate(t *testing.T) {
	const (
		writeTimeout = 4 * time.Second
		opTimeout    = 1500 * time.Millisecond
		bodyDelay    = 3 * time.Second // the work starts after 3 s; answerBy is at 3.6 s
	)
	s := newTestServer(t, t.TempDir(), nil)
	var nonceStalled, workStalled atomic.Bool
	workStalled.Store(true)
	s.cfg.Nonces = stallingNonces{s.cfg.Nonces, opTimeout, &nonceStalled}
	s.cfg.Nonced = stalledWork{&noncedStore{st: s.cfg.Store, ns: s.cfg.Nonces}, opTimeout, &workStalled}
	ts := serveWithWriteTimeout(t, s, writeTimeout)

	body := signedBody("socialize.setUserInfo", "n-slow", url.Values{"UID": {"u1"}, "userInfo": {`{"firstName":"Slow"}`}})
	send := func(delay time.Duration) (string, error) {
		pr, pw := io.Pipe()
		go func() {
			time.Sleep(delay)
			io.WriteString(pw, body)
			pw.Close()
		}()
		r, err := http.NewRequest("POST", ts.URL+"/socialize.setUserInfo", pr)
		if err != nil {
			t.Fatal(err)
		}
		r.ContentLength = int64(len(body))
		r.Host = "socialize.localtest"
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := ts.Client().Do(r)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	// The first call's answer is past the write timeout: cut, or late; either way.
	send(bodyDelay)
	workStalled.Store(false)
	got, err := send(0)
	if err != nil || !strings.Contains(got, `"errorCode":403004`) {
		t.Errorf("its replay: %s %v, want 403004 (the nonce recorded after the late call's work failed)", got, err)
	}
}
