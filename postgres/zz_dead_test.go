package postgres

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/socius/socius"
)

func TestZZDeadlock(t *testing.T) {
	a := newStore(t)
	ctx := t.Context()
	a.CreateSite(ctx, &socius.Site{APIKey: "3_site", Secret: "c2VjcmV0LTAxMjM0NTY3ODlhYmM=", CreatedAt: now})
	var d0 int64
	a.pool.QueryRow(ctx, `SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()`).Scan(&d0)
	var slow int
	for r := range 20 {
		uid := fmt.Sprintf("alice%d", r)
		if _, err := a.Login(ctx, "3_site", uid, nil, now); err != nil {
			t.Fatal(err)
		}
		root := &socius.Token{Hash: fmt.Sprintf("%060x%04d", 1, r), Kind: socius.SessionToken, APIKey: "3_site", UID: uid, CreatedAt: now}
		if err := a.CreateToken(ctx, root); err != nil {
			t.Fatal(err)
		}
		p := root.Hash
		for i := range 30 { // a chain, so that hash order and tree order differ
			tk := &socius.Token{Hash: fmt.Sprintf("%08x%052x%04d", (i*2654435761)%1000003, i, r), Kind: socius.SessionToken, APIKey: "3_site", UID: uid, CreatedAt: now, Parent: p}
			if err := a.CreateToken(ctx, tk); err != nil {
				t.Fatal(err)
			}
			p = tk.Hash
		}
		var wg sync.WaitGroup
		start := time.Now()
		wg.Go(func() {
			if err := a.RevokeToken(ctx, root.Hash, now.Add(time.Minute)); err != nil {
				t.Error(err)
			}
		})
		wg.Go(func() {
			if err := a.Logout(ctx, "3_site", uid, now.Add(time.Minute)); err != nil {
				t.Error(err)
			}
		})
		wg.Wait()
		if time.Since(start) > 500*time.Millisecond {
			slow++
		}
	}
	time.Sleep(600 * time.Millisecond) // stats
	var d1 int64
	a.pool.QueryRow(ctx, `SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()`).Scan(&d1)
	t.Logf("deadlocks %d, rounds over 500ms %d of 20", d1-d0, slow)
}
