package server

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// TrustedProxies is a list of the addresses of proxies in front of Socius whose
// X-Forwarded-For is believed (Config.TrustedProxies): single addresses and prefixes.
// The zero value (nil) trusts no proxy: every client is the connection's peer.
type TrustedProxies []netip.Prefix

// ParseTrustedProxies reads a comma-separated list of IP addresses and CIDR prefixes
// ("127.0.0.1,10.0.0.0/8,::1"), spaces around each allowed; an empty (or blank) list
// trusts no proxy. An address stands for itself alone; an IPv4-mapped IPv6 one (or
// prefix of at least /96) for its IPv4 form, as connections are compared unmapped. A
// prefix's host bits are dropped (10.1.2.3/8 is 10.0.0.0/8). Refused, naming the entry:
// an empty entry, a zone (fe80::1%eth0: an interface of one machine), a host name, a
// port, brackets, an IPv4-mapped prefix shorter than /96 (which no connection could
// match).
func ParseTrustedProxies(list string) (TrustedProxies, error) {
	if strings.TrimSpace(list) == "" {
		return nil, nil
	}
	var out TrustedProxies
	for e := range strings.SplitSeq(list, ",") {
		e = strings.TrimSpace(e)
		p, err := parseTrustedProxy(e)
		if err != nil {
			return nil, fmt.Errorf("%q: %v", e, err)
		}
		out = append(out, p)
	}
	return out, nil
}

func parseTrustedProxy(e string) (netip.Prefix, error) {
	if e == "" {
		return netip.Prefix{}, errors.New("an empty entry (two commas, or one at an end)")
	}
	if strings.Contains(e, "%") {
		return netip.Prefix{}, errors.New("an address with a zone: give it without its %zone")
	}
	if strings.HasPrefix(e, "[") {
		return netip.Prefix{}, errors.New("an address in brackets: give an IPv6 address without them (::1), and no port")
	}
	var p netip.Prefix
	if strings.Contains(e, "/") {
		var err error
		if p, err = netip.ParsePrefix(e); err != nil {
			return netip.Prefix{}, errors.New("not a CIDR prefix (an IP address, a slash and a number of bits: 10.0.0.0/8, fd00::/8)")
		}
	} else {
		a, err := netip.ParseAddr(e)
		if err != nil {
			return netip.Prefix{}, errors.New("not an IP address nor a CIDR prefix (host names and ports are not taken)")
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	if a := p.Addr(); a.Is4In6() {
		if p.Bits() < 96 {
			// It reaches past the mapped addresses, and a connection's is compared
			// unmapped: it would trust no IPv4 client at all, unsaid.
			return netip.Prefix{}, errors.New("an IPv4-mapped prefix shorter than /96: give the IPv4 prefix (10.0.0.0/8), or ::ffff:0:0/96 for every IPv4 address")
		}
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p.Masked(), nil
}

// String returns the list as ParseTrustedProxies reads it.
func (t TrustedProxies) String() string {
	s := make([]string, len(t))
	for i, p := range t {
		if p.IsSingleIP() {
			s[i] = p.Addr().String()
		} else {
			s[i] = p.String()
		}
	}
	return strings.Join(s, ",")
}

// trusts reports whether a is the address of a trusted proxy (a is unmapped, without a
// zone).
func (t TrustedProxies) trusts(a netip.Addr) bool {
	for _, p := range t {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// The bounds of the walk through X-Forwarded-For: at most so many entries, and so many
// bytes from the right end of its values, are looked at. A longer chain of trusted
// proxies than that is no real one.
const (
	maxForwardedEntries = 64
	maxForwardedBytes   = 8 << 10
)

// client returns the address of the client of a connection from peer with the
// X-Forwarded-For fields given: peer itself unless it is a trusted proxy. From a
// trusted proxy, the entries of the fields (every field, in order, each a
// comma-separated list) are walked from the right, the proxies nearest to Socius
// first; the first entry that is not a trusted proxy is the client, and every entry
// left of it is ignored: it is text that the client, or a proxy nobody trusts, wrote. If
// every entry is a trusted proxy, the leftmost is the client. An entry that is not an
// address, or the bounds of the walk (maxForwardedEntries, maxForwardedBytes), end the
// walk: the client is then the last address found, the trusted proxy nearest to the
// unknown. An entry is an IP address, or an address and port as some proxies write
// them (1.2.3.4:80, [2001:db8::1]:80), or an IPv6 address in brackets; no zone.
func (t TrustedProxies) client(peer netip.Addr, fields []string) netip.Addr {
	if !t.trusts(peer) {
		return peer
	}
	found, entries, budget := peer, 0, maxForwardedBytes
	for i := len(fields) - 1; i >= 0; i-- {
		f := fields[i]
		for end := len(f); ; {
			if budget <= 0 {
				return found
			}
			// Only the last budget bytes of what is left are searched for the comma
			// before the entry.
			lo := max(0, end-budget)
			start := strings.LastIndexByte(f[lo:end], ',')
			if start >= 0 {
				start += lo + 1
			} else if lo > 0 {
				return found // the entry goes on past the bytes allowed
			} else {
				start = 0
			}
			entries++
			if entries > maxForwardedEntries {
				return found
			}
			a, ok := parseForwarded(f[start:end])
			if !ok {
				return found
			}
			if !t.trusts(a) {
				return a
			}
			found = a
			budget -= end - start + 1 // the comma (or the field's end) too
			if start == 0 {
				break
			}
			end = start - 1
		}
	}
	return found
}

// parseForwarded reads an entry of X-Forwarded-For (see client): the address, unmapped.
func parseForwarded(e string) (netip.Addr, bool) {
	e = strings.Trim(e, " \t")
	if len(e) > 64 || strings.Contains(e, "%") {
		// Longer than an IPv6 address in brackets with a port; or with a zone.
		return netip.Addr{}, false
	}
	var a netip.Addr
	var err error
	switch {
	case strings.HasPrefix(e, "[") && strings.HasSuffix(e, "]"):
		a, err = netip.ParseAddr(e[1 : len(e)-1])
		if err == nil && !a.Is6() {
			return netip.Addr{}, false
		}
	case strings.HasPrefix(e, "[") || strings.Count(e, ":") == 1:
		var ap netip.AddrPort
		ap, err = netip.ParseAddrPort(e)
		a = ap.Addr()
	default:
		a, err = netip.ParseAddr(e)
	}
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

// peerAddr returns the address of a connection's peer (RemoteAddr, host:port), unmapped
// and without a zone; false when it is no IP and port (a listener of another kind).
func peerAddr(remote string) (netip.Addr, bool) {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		return netip.Addr{}, false
	}
	return ap.Addr().Unmap().WithZone(""), true
}
