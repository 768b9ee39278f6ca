package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/socius/socius"
	"github.com/socius/socius/internal/pgtest"
)

// One or more sequential chain minters: each mints a token with the token it minted last.
func TestZZChain(t *testing.T) {
	for _, c := range []struct {
		chains  int
		gap     time.Duration
		prebuilt int
	}{{1, 200 * time.Millisecond, 50000}, {2, 100 * time.Millisecond, 50000}} {
		t.Run(fmt.Sprint(c.chains, "-", c.gap, "-", c.prebuilt), func(t *testing.T) {
			u := pgtest.URL(t)
			a, b := open(t, u), open(t, u)
			defer a.Close()
			defer b.Close()
			ctx := t.Context()
			if err := a.CreateSite(ctx, &socius.Site{APIKey: "3_site", Secret: "c2VjcmV0LTAxMjM0NTY3ODlhYmM=", CreatedAt: now}); err != nil {
				t.Fatal(err)
			}
			root := &socius.Token{Hash: fmt.Sprintf("%064x", 1), Kind: socius.AccessToken, APIKey: "3_site", CreatedAt: now}
			if err := a.CreateToken(ctx, root); err != nil {
				t.Fatal(err)
			}
			if c.prebuilt > 0 { // sessions minted earlier with the root: direct children
				if _, err := a.pool.Exec(ctx, `INSERT INTO tokens (hash, kind, api_key, uid, created_at, parent)
					SELECT md5(i::text)||md5((-i)::text), 'session', '3_site', 'p'||i, 0, $1 FROM generate_series(1,$2::int) i`, root.Hash, c.prebuilt); err != nil {
					t.Fatal(err)
				}
				a.pool.Exec(ctx, `ANALYZE tokens`)
			}
			var stop atomic.Bool
			var n, refused atomic.Int64
			var wg sync.WaitGroup
			for w := range c.chains {
				wg.Go(func() {
					p := root.Hash
					for i := 0; !stop.Load(); i++ {
						time.Sleep(c.gap)
						tk := &socius.Token{Hash: fmt.Sprintf("%032x%032x", w+2, i), Kind: socius.SessionToken, APIKey: "3_site", UID: fmt.Sprintf("u%d", w), CreatedAt: now, Parent: p}
						_, err := a.LoginWithToken(ctx, "3_site", tk.UID, nil, now, tk)
						if errors.Is(err, socius.ErrParentGone) {
							refused.Add(1)
							return
						}
						if err != nil {
							t.Error(err)
							return
						}
						n.Add(1)
						p = tk.Hash
					}
				})
			}
			time.Sleep(300 * time.Millisecond)
			start := time.Now()
			err := b.RevokeToken(context.Background(), root.Hash, now.Add(time.Minute))
			d := time.Since(start)
			stop.Store(true)
			wg.Wait()
			var live int
			a.pool.QueryRow(ctx, `SELECT count(*) FROM tokens WHERE revoked_at IS NULL`).Scan(&live)
			t.Logf("chains %d gap %v prebuilt %d: revoke %v err %v; minted %d refused %d; live after %d", c.chains, c.gap, c.prebuilt, d, err, n.Load(), refused.Load(), live)
		})
	}
}
