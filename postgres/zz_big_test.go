package postgres

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/socius/socius"
)

func TestZZBig(t *testing.T) {
	for _, n := range []int{50000, 300000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			a := newStore(t)
			ctx := t.Context()
			a.CreateSite(ctx, &socius.Site{APIKey: "3_site", Secret: "c2VjcmV0LTAxMjM0NTY3ODlhYmM=", CreatedAt: now})
			root := &socius.Token{Hash: fmt.Sprintf("%064x", 1), Kind: socius.AccessToken, APIKey: "3_site", CreatedAt: now}
			a.CreateToken(ctx, root)
			if _, err := a.pool.Exec(ctx, `INSERT INTO tokens (hash, kind, api_key, uid, created_at, parent)
				SELECT md5(i::text)||md5((-i)::text), 'session', '3_site', 'p'||i, 0, $1 FROM generate_series(1,$2::int) i`, root.Hash, n); err != nil {
				t.Fatal(err)
			}
			a.pool.Exec(ctx, `ANALYZE tokens`)
			start := time.Now()
			err := a.RevokeToken(context.Background(), root.Hash, now.Add(time.Minute))
			t.Logf("%d children: first revoke %v %v", n, time.Since(start), err)
			start = time.Now()
			err = a.RevokeToken(context.Background(), root.Hash, now.Add(time.Hour))
			t.Logf("%d children: revoke again (nothing to do) %v %v", n, time.Since(start), err)
		})
	}
}
