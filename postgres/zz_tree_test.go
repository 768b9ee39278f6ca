package postgres

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/socius/socius"
	"github.com/socius/socius/internal/pgtest"
)

func TestZZTree(t *testing.T) {
	for _, level := range []string{"read committed", "repeatable read", "serializable"} {
		for round := range 3 {
			t.Run(fmt.Sprint(level, round), func(t *testing.T) {
				u := pgtest.URL(t) + "&default_transaction_isolation=" + url.PathEscape(level)
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
				var mu sync.Mutex
				pool := []string{root.Hash}
				var stop atomic.Bool
				var n, refused atomic.Int64
				var wg sync.WaitGroup
				for w := range 6 {
					wg.Go(func() {
						for i := 0; !stop.Load(); i++ {
							mu.Lock()
							// prefer recent tokens: deep chains
							p := pool[max(0, len(pool)-1-rand.IntN(min(len(pool), 4)))]
							mu.Unlock()
							tk := &socius.Token{Hash: fmt.Sprintf("%032x%032x", w+2, i), Kind: socius.SessionToken, APIKey: "3_site", UID: fmt.Sprintf("u%d", w), CreatedAt: now, Parent: p}
							var err error
							if i%2 == 0 {
								_, err = a.LoginWithToken(ctx, "3_site", tk.UID, nil, now, tk)
							} else {
								err = a.CreateToken(ctx, tk)
							}
							if errors.Is(err, socius.ErrParentGone) {
								refused.Add(1)
								continue
							}
							if err != nil {
								t.Error(err)
								return
							}
							n.Add(1)
							mu.Lock()
							pool = append(pool, tk.Hash)
							mu.Unlock()
						}
					})
				}
				time.Sleep(300 * time.Millisecond)
				start := time.Now()
				err := b.RevokeToken(context.Background(), root.Hash, now.Add(time.Minute))
				d := time.Since(start)
				time.Sleep(100 * time.Millisecond)
				stop.Store(true)
				wg.Wait()
				var live, depth int
				a.pool.QueryRow(ctx, `WITH RECURSIVE m(hash, d) AS (SELECT hash, 1 FROM tokens WHERE parent = $1
					UNION ALL SELECT tokens.hash, d+1 FROM tokens JOIN m ON tokens.parent = m.hash)
					SELECT count(*) FILTER (WHERE revoked_at IS NULL), max(d) FROM tokens JOIN m USING (hash)`, root.Hash).Scan(&live, &depth)
				t.Logf("%s: revoke %v err %v; minted %d refused %d; depth %d live after %d", level, d, err, n.Load(), refused.Load(), depth, live)
				if live != 0 {
					t.Errorf("%d live descendants", live)
				}
			})
		}
	}
}
