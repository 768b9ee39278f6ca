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

// startHousekeeping removes dead tokens now and every housekeepingPeriod until Close.
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
		for {
			m.sweepTokens(ctx)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}

// sweepTokens removes the tokens that expired or were revoked more than tokenRetention
// ago (on the server's clock) and reports how many.
func (m *Main) sweepTokens(ctx context.Context) int {
	n, err := m.Store.DeleteExpiredTokens(ctx, m.Clock.Now().Add(-tokenRetention))
	if err != nil && ctx.Err() == nil {
		m.Logger.Error("token housekeeping failed", "err", err)
	} else if n > 0 {
		m.Logger.Info("token housekeeping", "deleted", n)
	}
	return n
}
