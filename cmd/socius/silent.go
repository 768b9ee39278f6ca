package main

import (
	"net"
	"net/http"
	"sync"
	"time"
)

// silentConns are the connections that have not sent a request yet (net/http's
// StateNew): a browser's speculative connection, a load balancer's TCP check, a client
// that opened one and went quiet. http.Server.Shutdown waits for them until they are
// five seconds old, so a Ctrl-C would often take five seconds for nothing; during a
// shutdown they are closed once silentGrace has passed without a request.
type silentConns struct {
	mu    sync.Mutex
	since map[net.Conn]time.Time
}

// silentGrace is how long a connection may stay silent after the shutdown began (or
// after it opened, if later): a request already on its way arrives well within it.
const silentGrace = time.Second

// track is an http.Server's ConnState hook.
func (s *silentConns) track(c net.Conn, state http.ConnState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if state == http.StateNew {
		if s.since == nil {
			s.since = make(map[net.Conn]time.Time)
		}
		s.since[c] = time.Now()
		return
	}
	delete(s.since, c)
}

// reap closes, until stop is called, the connections silent for silentGrace since
// start (or since they opened).
func (s *silentConns) reap(start time.Time) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(silentGrace / 4)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case now := <-tick.C:
				s.mu.Lock()
				for c, since := range s.since {
					if since.Before(start) {
						since = start
					}
					if now.Sub(since) >= silentGrace {
						c.Close()
						delete(s.since, c)
					}
				}
				s.mu.Unlock()
			}
		}
	})
	return func() { close(done); wg.Wait() }
}
