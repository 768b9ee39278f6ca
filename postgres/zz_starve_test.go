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

func TestZZStarve(t *testing.T) {
	for _, workers := range []int{2, 4, 8} {
		t.Run(fmt.Sprint(workers), func(t *testing.T) {
			url := pgtest.URL(t)
			a, b := open(t, url), open(t, url)
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
			var stop atomic.Bool
			var n, refused atomic.Int64
			var wg sync.WaitGroup
			for w := range workers {
				wg.Go(func() {
					for i := 0; !stop.Load(); i++ {
						tk := &socius.Token{Hash: fmt.Sprintf("%032x%032x", w+2, i), Kind: socius.SessionToken, APIKey: "3_site", UID: fmt.Sprintf("u%d-%d", w, i%50), CreatedAt: now, Parent: root.Hash}
						_, err := a.LoginWithToken(ctx, "3_site", tk.UID, nil, now, tk)
						if errors.Is(err, socius.ErrParentGone) {
							refused.Add(1)
							continue
						}
						if err != nil {
							t.Error(err)
							return
						}
						n.Add(1)
					}
				})
			}
			time.Sleep(500 * time.Millisecond)
			start := time.Now()
			before := n.Load()
			err := b.RevokeToken(context.Background(), root.Hash, now.Add(time.Minute))
			d := time.Since(start)
			stop.Store(true)
			wg.Wait()
			t.Logf("workers %d: RevokeToken took %v, err %v; minted before %d, total %d, refused %d", workers, d, err, before, n.Load(), refused.Load())
			var live int
			a.pool.QueryRow(ctx, `SELECT count(*) FROM tokens WHERE parent = $1 AND revoked_at IS NULL`, root.Hash).Scan(&live)
			t.Logf("live minted after: %d", live)
		})
	}
}
