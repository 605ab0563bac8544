package dns

import (
	"net/netip"

	"github.com/miekg/dns"
)

// DNS rebinding protection: a public name must not resolve to an address
// inside the home network, or a web page from that name could script the
// router or other LAN devices with the browser's same-origin blessing.
//
// An offending answer is replaced by REFUSED (with an Extended DNS Error
// "Blocked" for EDNS clients), not NXDOMAIN: NXDOMAIN would claim the name
// does not exist, for every type, and clients would cache that for the SOA
// minimum; REFUSED states a policy decision about this answer only, is not
// cached, and shows up as such in client-side diagnostics.
//
// Exempt are names from the hosts list, names routed to a split-DNS
// upstream, and names at or under a RebindAllow domain.

// privateAddr reports addresses that a public name must not resolve to:
// RFC 1918 and unique-local (fc00::/7), loopback, link-local and
// unspecified addresses, also when written IPv4-mapped (::ffff:10.0.0.1).
func privateAddr(a netip.Addr) bool {
	a = a.Unmap()
	return a.IsPrivate() || a.IsLoopback() || a.IsLinkLocalUnicast() || a.IsUnspecified()
}

// rebindAddr returns the first private address among m's A/AAAA answers.
func rebindAddr(m *dns.Msg) (netip.Addr, bool) {
	for _, rr := range m.Answer {
		if a, ok := rrAddr(rr); ok && privateAddr(a) {
			return a, true
		}
	}
	return netip.Addr{}, false
}

// rrAddr returns the address of an A or AAAA record.
func rrAddr(rr dns.RR) (netip.Addr, bool) {
	switch rr := rr.(type) {
	case *dns.A:
		a, ok := netip.AddrFromSlice(rr.A)
		return a.Unmap(), ok
	case *dns.AAAA:
		return netip.AddrFromSlice(rr.AAAA)
	}
	return netip.Addr{}, false
}
