// Package listen holds what the TCP and UDP relays share about their
// transparent listeners: opening a set of them, the network name for an
// address, their bound addresses, and the loop guard.
package listen

import "net/netip"

// Guard refuses traffic that would make gatewayd relay to itself: to one of
// its own listener addresses, or to a listener port on a loopback,
// unspecified or router-local address. Relaying those would feed the
// listener its own traffic until the descriptors run out.
//
// A Guard is immutable once built; a relay swaps in a new one when its
// listeners change.
type Guard struct {
	addrs   map[netip.AddrPort]struct{} // listener addresses, canonical
	ports   map[uint16]struct{}         // listener ports
	isLocal func(netip.Addr) bool       // may be nil
}

// NewGuard builds a guard for the listener addresses; isLocal (may be nil)
// reports router-local addresses.
func NewGuard(listeners []netip.AddrPort, isLocal func(netip.Addr) bool) *Guard {
	g := &Guard{
		addrs:   make(map[netip.AddrPort]struct{}, len(listeners)),
		ports:   make(map[uint16]struct{}, len(listeners)),
		isLocal: isLocal,
	}
	for _, ap := range listeners {
		g.addrs[Canonical(ap)] = struct{}{}
		g.ports[ap.Port()] = struct{}{}
	}
	return g
}

// Refuses reports whether traffic to dst must be refused (TCP) or dropped
// (UDP).
func (g *Guard) Refuses(dst netip.AddrPort) bool {
	dst = Canonical(dst)
	if _, ok := g.addrs[dst]; ok {
		return true
	}
	if _, ok := g.ports[dst.Port()]; !ok {
		return false
	}
	a := dst.Addr()
	return a.IsLoopback() || a.IsUnspecified() || (g.isLocal != nil && g.isLocal(a))
}

// Canonical unmaps an IPv4-mapped address and drops the zone, so the same
// endpoint always compares equal.
func Canonical(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap().WithZone(""), ap.Port())
}
