package sqlite

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/socius/socius"
)

var zzNow = time.Date(2026, time.November, 28, 10, 30, 0, 0, time.UTC)

func TestZZBigSQLite(t *testing.T) {
	a := newStore(t)
	ctx := context.Background()
	if err := a.CreateSite(ctx, &socius.Site{APIKey: "3_site", Secret: "c2VjcmV0LTAxMjM0NTY3ODlhYmM=", CreatedAt: zzNow}); err != nil {
		t.Fatal(err)
	}
	root := &socius.Token{Hash: fmt.Sprintf("%064x", 1), Kind: socius.AccessToken, APIKey: "3_site", CreatedAt: zzNow}
	if err := a.CreateToken(ctx, root); err != nil {
		t.Fatal(err)
	}
	if _, err := a.wdb.Exec(`WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM g WHERE i < 300000)
		INSERT INTO tokens (hash, kind, api_key, uid, created_at, parent) SELECT printf('%064d', i+10), 'session', '3_site', 'p'||i, 0, ? FROM g`, root.Hash); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err := a.RevokeToken(ctx, root.Hash, zzNow.Add(time.Minute))
	t.Logf("300k children: revoke %v %v", time.Since(start), err)
	start = time.Now()
	err = a.RevokeToken(ctx, root.Hash, zzNow.Add(time.Hour))
	t.Logf("again: %v %v", time.Since(start), err)
}
