package loadgen

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/socius/socius"
	"github.com/socius/socius/gigya"
)

// CreateUsers makes sure the users UID(from) .. UID(to-1) exist, with their Profile,
// by calling socialize.notifyLogin for each, signed, over conns concurrent connections. It is
// idempotent: notifyLogin of an existing user only marks it logged in again. A progress
// line goes to progress (nil: none).
func CreateUsers(ctx context.Context, t Target, from, to, conns int, progress io.Writer) error {
	if to <= from {
		return nil
	}
	addr, err := hostPort(t.URL)
	if err != nil {
		return err
	}
	conns = max(1, min(conns, to-from))
	p := NewProgress(progress, "creating users", to-from)
	defer p.Done()
	var next atomic.Int64
	next.Store(int64(from))
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	runID := newRunID()
	var wg sync.WaitGroup
	for i := range conns {
		s, err := newSigner(t, i, runID)
		if err != nil {
			return fmt.Errorf("loadgen: %v", err)
		}
		c := newConn(addr)
		wg.Go(func() {
			defer c.close()
			for ctx.Err() == nil {
				n := int(next.Add(1) - 1)
				if n >= to {
					return
				}
				if err := call(c, s, methodNotifyLogin, "siteUID", UID(n), "userInfo", profileJSON(n)); err != nil {
					cancel(fmt.Errorf("loadgen: create user %s: %w", UID(n), err))
					return
				}
				p.Add(1)
			}
		})
	}
	wg.Wait()
	return context.Cause(ctx)
}

// CountUsers reports how many of the users at the given indexes exist (by calling
// socialize.getUserInfo for each): a quick check of whether a store already holds the
// bench's users.
func CountUsers(ctx context.Context, t Target, indexes []int) (int, error) {
	addr, err := hostPort(t.URL)
	if err != nil {
		return 0, err
	}
	s, err := newSigner(t, 0, newRunID())
	if err != nil {
		return 0, fmt.Errorf("loadgen: %v", err)
	}
	c := newConn(addr)
	defer c.close()
	found := 0
	for _, n := range indexes {
		if err := ctx.Err(); err != nil {
			return found, err
		}
		err := call(c, s, methodGetUserInfo, "UID", UID(n))
		switch {
		case err == nil:
			found++
		case isCode(err, 403005): // UID not found
		default:
			return found, fmt.Errorf("loadgen: getUserInfo %s: %w", UID(n), err)
		}
	}
	return found, nil
}

// callError is a call answered with a non-zero errorCode.
type callError struct {
	Code    int
	Details string
}

func (e *callError) Error() string { return fmt.Sprintf("errorCode %d: %s", e.Code, e.Details) }

func isCode(err error, code int) bool {
	e, ok := err.(*callError)
	return ok && e.Code == code
}

// call sends one signed call, retrying transport failures a few times.
func call(c *conn, s *signer, method string, args ...string) error {
	var err error
	for range 3 {
		path, form := s.sign(method, args...)
		var status int
		var body []byte
		status, body, err = c.post(path, form)
		if err != nil {
			continue
		}
		if status != 200 {
			return fmt.Errorf("HTTP %d: %s", status, errorDetails(body))
		}
		if code := errorCode(body); code != 0 {
			return &callError{Code: code, Details: errorDetails(body)}
		}
		return nil
	}
	return err
}

// Profile is the profile the n-th bench user is created with: every field set, so that
// getUserInfo answers a typical, full user.
func Profile(n int) socius.Profile {
	id := strconv.Itoa(n)
	var p socius.Profile
	p[socius.Nickname] = "bench-" + id
	p[socius.PhotoURL] = "https://example.com/photos/" + id + ".jpg"
	p[socius.ThumbnailURL] = "https://example.com/photos/" + id + "-t.jpg"
	p[socius.FirstName] = "Ada"
	p[socius.LastName] = "Lovelace"
	p[socius.Gender] = "f"
	p[socius.Age] = strconv.Itoa(18 + n%60)
	p[socius.Email] = "bench-" + id + "@example.com"
	return p
}

// profileJSON is Profile(n) as a userInfo parameter.
func profileJSON(n int) string {
	p := Profile(n)
	o := make(gigya.Object, 0, socius.NumFields)
	for f := socius.Field(0); f < socius.NumFields; f++ {
		if f == socius.Age {
			o = append(o, gigya.KV{Key: f.Name(), Value: gigya.Number(p[f])})
		} else {
			o = append(o, gigya.KV{Key: f.Name(), Value: p[f]})
		}
	}
	return string(gigya.AppendJSON(nil, o))
}
