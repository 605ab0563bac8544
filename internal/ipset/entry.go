package ipset

import (
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// maxTimeout is the longest entry timeout the kernel keeps,
// IPSET_MAX_TIMEOUT = (UINT_MAX >> 1) / MSEC_PER_SEC seconds (about 24.8
// days). The kernel silently shortens longer ones; Add does it first so the
// caller's intent and the kernel's state agree.
const maxTimeout = 2147483 * time.Second

// timeoutSeconds is d as an ipset entry timeout: 0 (permanent) for 0,
// otherwise whole seconds rounded up (a timeout of 0 would mean
// permanent) and capped at maxTimeout.
func timeoutSeconds(d time.Duration) uint32 {
	if d <= 0 {
		return 0
	}
	d = min(d, maxTimeout)
	return uint32((d + time.Second - 1) / time.Second)
}

// checkPrefix reports why p cannot be an entry of a family-f set.
func checkPrefix(p netip.Prefix, f Family) error {
	switch {
	case !p.IsValid():
		return fmt.Errorf("invalid prefix %v", p)
	case p.Addr().Is4In6():
		// netlink v1.3.1 encodes any address with a To4() form as IPv4,
		// so the kernel would reject it for an inet6 set; no packet on
		// the wire carries such a destination anyway.
		return fmt.Errorf("IPv4-mapped IPv6 prefix %v cannot be put in an ipset", p)
	case p.Addr().Is4() != (f == IPv4):
		return fmt.Errorf("prefix %v does not belong in a family %s set", p, f)
	}
	return nil
}

// members returns the entries that together hold p: p itself (masked), or
// for a /0, which hash:net cannot hold, its two /1 halves.
func members(p netip.Prefix) []netip.Prefix {
	p = p.Masked()
	if p.Bits() > 0 {
		return []netip.Prefix{p}
	}
	lo := netip.PrefixFrom(p.Addr(), 1)
	hiAddr := make([]byte, p.Addr().BitLen()/8)
	hiAddr[0] = 0x80
	hi, _ := netip.AddrFromSlice(hiAddr)
	return []netip.Prefix{lo, netip.PrefixFrom(hi, 1)}
}

// kernelEntry is p as a netlink entry with the given timeout in seconds
// (nil: the set's default). replace turns "add" into "add or update",
// ipset's -exist.
func kernelEntry(p netip.Prefix, timeout *uint32, replace bool) *netlink.IPSetEntry {
	return &netlink.IPSetEntry{
		IP:      net.IP(p.Addr().AsSlice()),
		CIDR:    uint8(p.Bits()),
		Timeout: timeout,
		Replace: replace,
	}
}

// entryFrom converts a listed kernel entry of a family-f set.
func entryFrom(e netlink.IPSetEntry, f Family) (Entry, error) {
	addr, ok := netip.AddrFromSlice(e.IP)
	if !ok {
		return Entry{}, fmt.Errorf("entry with malformed address %x", []byte(e.IP))
	}
	if f == IPv4 {
		addr = addr.Unmap()
	}
	bits := int(e.CIDR)
	if bits == 0 { // no CIDR attribute: a host entry
		bits = addr.BitLen()
	}
	p := netip.PrefixFrom(addr, bits)
	if err := checkPrefix(p, f); err != nil {
		return Entry{}, fmt.Errorf("listed entry %v/%d: %w", addr, e.CIDR, err)
	}
	var left time.Duration
	if e.Timeout != nil {
		left = time.Duration(*e.Timeout) * time.Second
	}
	return Entry{Prefix: p.Masked(), Timeout: left}, nil
}

// familyOf maps a kernel family (AF_INET, AF_INET6) to a Family; 0 when it
// is neither.
func familyOf(af uint8) Family {
	switch af {
	case unix.AF_INET:
		return IPv4
	case unix.AF_INET6:
		return IPv6
	}
	return 0
}

// af is the kernel family of f.
func (f Family) af() uint8 {
	if f == IPv6 {
		return unix.AF_INET6
	}
	return unix.AF_INET
}
