package config

import (
	"net/netip"
	"slices"
)

// BypassList is the bypass list in effect: bypass.destinations plus
// bypass.extra_destinations, without bypass.intercept. A bypassed range an
// intercepted one lies in is split around it (10.0.0.0/8 without
// 10.1.0.0/16 is 10.0.0.0/16, 10.2.0.0/15, ... 10.128.0.0/9). The LAN
// subnets and the router's own addresses are bypassed in any case.
func (c *Config) BypassList() []netip.Prefix {
	out := slices.Concat(c.Bypass.Destinations, c.Bypass.ExtraDestinations)
	for _, q := range c.Bypass.Intercept {
		var next []netip.Prefix
		for _, p := range out {
			next = append(next, subtractPrefix(p.Masked(), q.Masked())...)
		}
		out = next
	}
	return out
}

// subtractPrefix is p without q: p if they do not overlap, nothing if q
// covers p, else the prefixes that make up the rest of p (one per bit
// between their lengths: the half at each level that does not hold q).
func subtractPrefix(p, q netip.Prefix) []netip.Prefix {
	if !p.Overlaps(q) {
		return []netip.Prefix{p}
	}
	if q.Bits() <= p.Bits() {
		return nil
	}
	var out []netip.Prefix
	for bits := p.Bits() + 1; bits <= q.Bits(); bits++ {
		half, _ := q.Addr().Prefix(bits) // the half holding q
		out = append(out, otherHalf(half))
	}
	return out
}

// otherHalf is the prefix of the same length whose last bit differs.
func otherHalf(p netip.Prefix) netip.Prefix {
	b := p.Addr().AsSlice()
	i := p.Bits() - 1
	b[i/8] ^= 0x80 >> (i % 8)
	a, _ := netip.AddrFromSlice(b)
	return netip.PrefixFrom(a, p.Bits())
}

// bypassedBy reports whether a range of the bypass list before intercept
// overlaps q (else intercepting q changes nothing).
func (c *Config) bypassedBy(q netip.Prefix) bool {
	return slices.ContainsFunc(slices.Concat(c.Bypass.Destinations, c.Bypass.ExtraDestinations), q.Overlaps)
}
