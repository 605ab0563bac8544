// Package ipset manages gatewayd's kernel ip sets: hash:net sets with
// per-entry timeout support, which the mangle rules match with
// `-m set --match-set NAME dst`. It talks to the kernel over netlink (no
// ipset(8) binary) through Kernel, a thin seam over exactly the
// github.com/vishvananda/netlink calls it makes; package ipsettest has a
// strict in-memory Kernel for tests without root.
//
// A set that an iptables rule references cannot be destroyed: remove the
// rules first, then call Destroy.
package ipset

import (
	"net/netip"
	"time"

	"github.com/vishvananda/netlink"
)

// Kernel is the seam over the kernel's ipset netlink API: exactly the
// *netlink.Handle methods Sets calls. NewNetlink returns the real one.
type Kernel interface {
	IpsetCreate(setname, typename string, options netlink.IpsetCreateOptions) error
	IpsetDestroy(setname string) error
	IpsetList(setname string) (*netlink.IPSetResult, error)
	IpsetAdd(setname string, entry *netlink.IPSetEntry) error
	IpsetDel(setname string, entry *netlink.IPSetEntry) error
}

var _ Kernel = (*netlink.Handle)(nil)

// TypeHashNet is the only set type gatewayd creates: networks of any
// prefix length from 1 to the address length, looked up per packet in
// O(number of distinct prefix lengths).
const TypeHashNet = "hash:net"

// Family is the address family of a set: IPv4 (family inet) or IPv6
// (family inet6). The values match gateway.Family.
type Family int

// The two set families.
const (
	IPv4 Family = 4
	IPv6 Family = 6
)

func (f Family) String() string {
	switch f {
	case IPv4:
		return "inet"
	case IPv6:
		return "inet6"
	}
	return "family?"
}

// Set describes one hash:net set with timeout support.
type Set struct {
	Name   string
	Family Family
	// MaxElem bounds the number of entries; adding to a full set fails
	// with ErrFull. 0 leaves the kernel's default.
	MaxElem uint32
}

// Entry is one member of a set.
type Entry struct {
	Prefix netip.Prefix
	// Timeout is the time left before the kernel removes the entry, to
	// the second; 0 marks a permanent entry.
	Timeout time.Duration
}

// Permanent reports whether the entry never expires.
func (e Entry) Permanent() bool { return e.Timeout == 0 }

// Info is what List reports about a set.
type Info struct {
	Name       string
	Type       string // "hash:net"
	Family     Family // 0 when the kernel reported a family other than inet/inet6
	MaxElem    uint32
	Timeouts   bool   // created with timeout support
	References uint32 // rules (or list sets) that use the set
	Entries    []Entry
}
