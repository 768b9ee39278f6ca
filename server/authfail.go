package server

import (
	"math"
	"net"
	"net/netip"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/socius/socius"
	"github.com/socius/socius/ratelimit"
)

// MaxAuthFailureAddresses is the most client addresses the limit on failed
// authentications tracks at once (Config.AuthFailureLimit).
const MaxAuthFailureAddresses = 65536

// authFailures limits the failed authentications of each client address: a token
// bucket per address (ratelimit), spent by every call whose credentials name nothing
// or do not match (authFailureCounts), and checked before the authentication of every
// call from that address once it is spent, good calls too: before authentication
// nobody can tell them from bad ones.
//
// A good call costs no lookup in the table unless an address may have spent its
// budget: a bucket loses tokens only to failures, which say when it will hold one
// again (ratelimit's Charge); until is the latest of those moments over all addresses,
// and while the clock is past it the check before authentication is one atomic load.
type authFailures struct {
	limiter *ratelimit.Limiter
	until   atomic.Int64 // UnixNano: no address's budget is spent from then on
}

func newAuthFailures(rate float64, burst int) *authFailures {
	if burst <= 0 {
		burst = max(1, int(math.Ceil(rate)))
	}
	return &authFailures{limiter: ratelimit.New(rate, burst, MaxAuthFailureAddresses)}
}

// maxWindow is the furthest ahead of a failure that until goes: a rate of less than
// one failure a century has the check run for a century, and the moment stays within
// what UnixNano can tell.
const maxWindow = 100 * 365 * 24 * time.Hour

// readyIn returns how long after now the call's address may be authenticated again: 0
// when it may be now.
func (a *authFailures) readyIn(c *call) time.Duration {
	if c.now.UnixNano() >= a.until.Load() {
		return 0
	}
	return a.limiter.ReadyIn(c.authFailureAddress(), c.now)
}

// failed spends a token of the call's address for a failed authentication, whether
// or not its bucket still holds one: calls in flight together all passed the check
// before the first of them failed, and each failure is a guess that must be paid for
// (else a client that keeps many calls in flight would have all but one of them free
// each time its address may try again). The debt holds the address back for longer.
func (a *authFailures) failed(c *call) {
	ready := a.limiter.Charge(c.authFailureAddress(), c.now)
	if limit := c.now.Add(maxWindow); ready.After(limit) {
		ready = limit
	}
	until := ready.UnixNano()
	for {
		old := a.until.Load()
		if old >= until || a.until.CompareAndSwap(old, until) {
			return
		}
	}
}

// AuthFailureAddresses returns the number of client addresses the limit on failed
// authentications tracks (at most MaxAuthFailureAddresses): those that failed since
// their bucket was last dropped, which happens when the table needs room, to full
// buckets first, else to the nearest to full of a few (ratelimit's evict). 0 without
// the limit.
func (s *Server) AuthFailureAddresses() int {
	if s.authFailures == nil {
		return 0
	}
	return s.authFailures.limiter.Len()
}

// authFailureCounts reports whether an authentication's failure spends the address's
// budget: credentials that name nothing (400093: no site has the apiKey; 403005: no
// such userKey on the site; 403025: no token issued has the text sent) or do not match
// (403003: a signature, secret, client secret or JWT signature). Not a request that is
// merely malformed or sent the wrong way (400002, 400006, 400008, 403006, a token over
// plain HTTP, a 400093 for an apiKey or client_id missing or not of an id's shape, or
// for a userKey sent as client_id or apiKey with its own secret, a 403005 for a userKey empty or
// not of a key's shape, a 403025 for a token empty or of no kind Socius issues: each
// guesses nothing, and is answered without asking the store), nor a
// timestamp out of the window (403002: a client's clock), nor a replayed nonce
// (403004: the SDKs send a request again as it is when its answer was lost), nor the
// store failing (500028). Nor a token the server issued that has
// expired or was revoked, or whose site or key is gone: whoever sends it was given it
// (an app whose session aged, or whose user logged out elsewhere, and many of them
// share one address behind a carrier's NAT), and guesses nothing.
func authFailureCounts(c *call, err error) bool {
	switch socius.ErrorCode(err) {
	case socius.CodeInvalidAPIKey:
		return !c.noGuess
	case socius.CodeUnauthorizedUser:
		return !c.noGuess
	case socius.CodeInvalidSignature:
		return true
	case socius.CodeInvalidToken:
		return c.tokenUnknown
	}
	return false
}

// authFailureLimited is the refusal of a call from an address that spent its budget of
// failed authentications.
func (s *Server) authFailureLimited(c *call, wait time.Duration) error {
	c.AuthFailureLimited = true
	l := s.authFailures.limiter
	failures := "failed authentications"
	if l.Rate() == 1 {
		failures = "failed authentication"
	}
	// Whole milliseconds, rounded up: a client that waits as long is let through.
	secs := math.Ceil(float64(wait)/float64(time.Millisecond)) / 1000
	return socius.Errorf(socius.CodeRateLimited,
		"API Rate Limit Exceeded: address %s made more than %s %s a second (bursts of %d) to this server; every call from it is refused before authentication until it may try again, in %s s",
		c.authFailureAddress(), strconv.FormatFloat(l.Rate(), 'f', -1, 64), failures, l.Burst(),
		strconv.FormatFloat(secs, 'f', -1, 64))
}

// authFailureAddress returns the address of the call's client as the limit on failed
// authentications counts it: the one trusted proxies name (Call.ClientAddr), else the
// connection's (clientAddress).
func (c *Call) authFailureAddress() string {
	if a, ok := c.forwardedClient(); ok {
		return addressKey(a)
	}
	return clientAddress(c.RemoteAddr)
}

// clientAddress returns the address of a connection's peer as the limit on failed
// authentications counts it: the IP of its address (RemoteAddr, host:port), as
// addressKey has it.
func clientAddress(remote string) string {
	ip, ok := peerAddr(remote)
	if !ok {
		// Not an IP and a port (a listener of another kind): the host part, else the
		// whole, bounded.
		if host, _, err := net.SplitHostPort(remote); err == nil {
			return clip(host, 64)
		}
		return clip(remote, 64)
	}
	return addressKey(ip)
}

// addressKey returns an IP (unmapped, without a zone) as the limit on failed
// authentications counts it: an IPv4 one as it is, an IPv6 one as its /64, which is one
// host's or one customer's network rather than one machine's. An address of the
// well-known NAT64 prefix (64:ff9b::/96, RFC 6052) is an IPv4 client translated to
// IPv6 (an IPv6-only network behind a stateless translator): it counts as that IPv4
// address, else every IPv4 client there would share the prefix's one /64.
func addressKey(ip netip.Addr) string {
	if ip.Is4() {
		return ip.String()
	}
	if nat64.Contains(ip) {
		b := ip.As16()
		return netip.AddrFrom4([4]byte(b[12:])).String()
	}
	p, _ := ip.Prefix(64)
	return p.String()
}

var nat64 = netip.MustParsePrefix("64:ff9b::/96")
