package main

import (
	"context"
	"time"
)

// Token housekeeping: expired and revoked tokens stay in the store for a while, so that
// a client presenting one is told "expired" or "revoked" rather than "unknown", and are
// then removed.
const (
	tokenRetention     = 7 * 24 * time.Hour
	housekeepingPeriod = time.Hour
)

// startHousekeeping removes dead tokens now and every housekeepingPeriod until Close,
// and, with PostgreSQL, reads the nodes' longest --clock-skew every nonceWindowPeriod.
func (m *Main) startHousekeeping() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	m.stopHousekeeping = func() {
		cancel()
		<-done
	}
	go func() {
		defer close(done)
		t := time.NewTicker(housekeepingPeriod)
		defer t.Stop()
		var windows <-chan time.Time
		if m.windows != nil {
			w := time.NewTicker(nonceWindowPeriod)
			defer w.Stop()
			windows = w.C
		}
		for {
			m.sweepTokens(ctx)
			for due := false; !due; {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					due = true
				case <-windows:
					if err := m.shareNonceWindow(ctx); err != nil && ctx.Err() == nil {
						m.Logger.Warn("nonce window: the other nodes' --clock-skew could not be read", "err", err)
					}
				}
			}
		}
	}()
}

// nonceWindowPeriod is how often a PostgreSQL node reads the longest --clock-skew of
// the nodes sharing its database (a node started with a longer one is heeded by the
// others within this time).
const nonceWindowPeriod = 10 * time.Second

// shareNonceWindow records this node's --clock-skew in the database and keeps, for as
// long as its nonces are remembered, the longest of the nodes'.
func (m *Main) shareNonceWindow(ctx context.Context) error {
	w, err := m.windows.SharedNonceWindow(ctx, m.ClockSkew)
	if err != nil {
		return err
	}
	m.nonceWindow.Store(int64(w))
	return nil
}

// sweepTokens removes the tokens that expired or were revoked more than tokenRetention
// ago (on the server's clock) and reports how many.
func (m *Main) sweepTokens(ctx context.Context) int {
	n, err := m.Store.DeleteExpiredTokens(ctx, m.Clock.Now().Add(-tokenRetention))
	if err != nil && ctx.Err() == nil {
		// PostgreSQL's sweep deletes in parts when one statement does not fit: what
		// the parts before the failure deleted is said too.
		m.Logger.Error("token housekeeping failed", "deleted", n, "err", err)
	} else if n > 0 {
		m.Logger.Info("token housekeeping", "deleted", n)
	}
	return n
}
