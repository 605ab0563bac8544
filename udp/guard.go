package udp

import "net/netip"

// loopGuard drops datagrams that would make gatewayd relay to itself: a
// datagram to one of its own listener addresses, or to a listener port on a
// loopback, unspecified or router-local address. Relaying those would feed
// the listener its own traffic.
//
// A guard is immutable once built; the server swaps in a new one when its
// listeners change.
type loopGuard struct {
	addrs   map[netip.AddrPort]struct{} // listener addresses, unmapped, no zone
	ports   map[uint16]struct{}         // listener ports
	isLocal func(netip.Addr) bool       // may be nil
}

func newLoopGuard(listeners []netip.AddrPort, isLocal func(netip.Addr) bool) *loopGuard {
	g := &loopGuard{
		addrs:   make(map[netip.AddrPort]struct{}, len(listeners)),
		ports:   make(map[uint16]struct{}, len(listeners)),
		isLocal: isLocal,
	}
	for _, ap := range listeners {
		g.addrs[canonical(ap)] = struct{}{}
		g.ports[ap.Port()] = struct{}{}
	}
	return g
}

// refuses reports whether datagrams to dst must be dropped.
func (g *loopGuard) refuses(dst netip.AddrPort) bool {
	dst = canonical(dst)
	if _, ok := g.addrs[dst]; ok {
		return true
	}
	if _, ok := g.ports[dst.Port()]; !ok {
		return false
	}
	a := dst.Addr()
	return a.IsLoopback() || a.IsUnspecified() || (g.isLocal != nil && g.isLocal(a))
}

// canonical unmaps an IPv4-mapped address and drops the zone, so the same
// endpoint always compares equal.
func canonical(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap().WithZone(""), ap.Port())
}
