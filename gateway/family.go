package gateway

import (
	"net/netip"

	"golang.org/x/sys/unix"
)

// Family is an IP family: IPv4 (iptables) or IPv6 (ip6tables).
type Family int

// The two families gatewayd handles.
const (
	IPv4 Family = 4
	IPv6 Family = 6
)

// Families lists both, IPv4 first.
var Families = []Family{IPv4, IPv6}

func (f Family) String() string {
	if f == IPv6 {
		return "IPv6"
	}
	return "IPv4"
}

// Netlink returns the AF_* constant of the family.
func (f Family) Netlink() int {
	if f == IPv6 {
		return unix.AF_INET6
	}
	return unix.AF_INET
}

// Contains reports whether addr belongs to the family.
func (f Family) Contains(a netip.Addr) bool { return a.Unmap().Is4() == (f == IPv4) }

// Bits is the address length of the family.
func (f Family) Bits() int {
	if f == IPv6 {
		return 128
	}
	return 32
}
