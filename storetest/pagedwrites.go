package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/socius/socius"
)

// PagedWrites is a store that another writer changes between every two pages of users
// read from it, or from a view of it: what the tests of an export of one moment (socius
// user export, the emulator's export) read through. Before page k it renames user
// u-(k-1) of Site, already exported, to z-k, past the pages (read again, it would be in
// the export twice), and u-(N-k), not yet exported, to a-k, before them (it would be
// missing); before the first page it also changes Other, exported after Site: a key
// AKeyOfLater added, user o-1 deleted, o-3 created. A rename of a user not there (an
// earlier export's renames) is skipped. It counts the pages, the views opened and the
// views not closed.
type PagedWrites struct {
	socius.Store
	t            testing.TB
	site, other  string
	n            int
	keySecret    string
	createdAt    time.Time
	pages, views int
	open         atomic.Int32
}

// NewPagedWrites wraps st, whose sites site and other exist, for n users of site
// (Seed makes them); keySecret is the secret of the key it adds.
func NewPagedWrites(t testing.TB, st socius.Store, site, other string, n int, keySecret string) *PagedWrites {
	return &PagedWrites{Store: st, t: t, site: site, other: other, n: n, keySecret: keySecret,
		createdAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
}

// Seed puts the users the writes change: u-000 to u-(N-1) of the site, each with a
// nickname, and o-1 and o-2 of the other site.
func (w *PagedWrites) Seed(ctx context.Context) {
	w.t.Helper()
	for i := range w.n {
		u := &socius.User{APIKey: w.site, UID: fmt.Sprintf("u-%03d", i), CreatedAt: w.createdAt}
		u.Profile[socius.Nickname] = fmt.Sprint("user ", i)
		if err := w.Store.PutUser(ctx, u); err != nil {
			w.t.Fatal(err)
		}
	}
	for _, uid := range []string{"o-1", "o-2"} {
		if err := w.Store.PutUser(ctx, &socius.User{APIKey: w.other, UID: uid, CreatedAt: w.createdAt}); err != nil {
			w.t.Fatal(err)
		}
	}
}

// Pages returns the pages of users read so far, Views the views opened, OpenViews
// those not closed.
func (w *PagedWrites) Pages() int     { return w.pages }
func (w *PagedWrites) Views() int     { return w.views }
func (w *PagedWrites) OpenViews() int { return int(w.open.Load()) }

// write makes the changes before a page.
func (w *PagedWrites) write() {
	ctx := context.Background()
	w.pages++
	k := w.pages
	for _, r := range [][2]string{{fmt.Sprintf("u-%03d", k-1), fmt.Sprintf("z-%03d", k)}, {fmt.Sprintf("u-%03d", w.n-k), fmt.Sprintf("a-%03d", k)}} {
		if err := w.Store.RenameUser(ctx, w.site, r[0], r[1]); err != nil && !errors.Is(err, socius.ErrNotFound) {
			w.t.Errorf("rename %s to %s: %v", r[0], r[1], err)
		}
	}
	if k != 1 {
		return
	}
	if err := w.Store.CreateKey(ctx, &socius.Key{UserKey: "AKeyOfLater", APIKey: w.other, Secret: w.keySecret, CreatedAt: time.Now()}); err != nil && !errors.Is(err, socius.ErrExists) {
		w.t.Error(err)
	}
	if err := w.Store.DeleteUser(ctx, w.other, "o-1", time.Now()); err != nil && !errors.Is(err, socius.ErrNotFound) {
		w.t.Error(err)
	}
	if err := w.Store.PutUser(ctx, &socius.User{APIKey: w.other, UID: "o-3", CreatedAt: w.createdAt}); err != nil {
		w.t.Error(err)
	}
}

// Users is the store's, after the writes of a page.
func (w *PagedWrites) Users(ctx context.Context, apiKey, after string, limit int) ([]*socius.User, error) {
	w.write()
	return w.Store.Users(ctx, apiKey, after, limit)
}

// Snapshot opens a view of the store under it whose pages of users are each read
// after the writes of a page.
func (w *PagedWrites) Snapshot(ctx context.Context) (socius.View, error) {
	v, err := w.Store.(socius.Snapshotter).Snapshot(ctx)
	if err != nil {
		return nil, err
	}
	w.views++
	w.open.Add(1)
	return &pagedView{View: v, w: w}, nil
}

type pagedView struct {
	socius.View
	w      *PagedWrites
	closed bool
}

func (v *pagedView) Users(ctx context.Context, apiKey, after string, limit int) ([]*socius.User, error) {
	v.w.write()
	return v.View.Users(ctx, apiKey, after, limit)
}

func (v *pagedView) Close() error {
	if !v.closed {
		v.closed = true
		v.w.open.Add(-1)
	}
	return v.View.Close()
}
