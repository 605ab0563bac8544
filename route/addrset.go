package route

import (
	"net/netip"
	"slices"
)

// addrRange is an inclusive range of addresses of one family.
type addrRange struct{ lo, hi u128 }

// rangeList is sorted, and its ranges neither overlap nor touch.
type rangeList []addrRange

// addrSet is a set of IPv4 and IPv6 addresses built from prefixes. Lookups
// are a binary search; the set operations serve DirectPrefixes.
type addrSet struct{ v4, v6 rangeList }

// unmapPrefix turns ::ffff:a.b.c.d/n (n >= 96) into a.b.c.d/(n-96), since
// flows are matched with unmapped addresses. Other prefixes are returned
// masked.
func unmapPrefix(p netip.Prefix) netip.Prefix {
	const mappedBits = 96 // length of the ::ffff:0:0/96 IPv4-mapped block
	if p.Addr().Is4In6() && p.Bits() >= mappedBits {
		return netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-mappedBits).Masked()
	}
	return p.Masked()
}

func prefixRange(p netip.Prefix) addrRange {
	width := bitsV6
	if p.Addr().Is4() {
		width = bitsV4
	}
	lo := u128Of(p.Masked().Addr())
	return addrRange{lo: lo, hi: lo.or(lowMask(width - p.Bits()))}
}

func newAddrSet(prefixes []netip.Prefix) addrSet {
	var s addrSet
	for _, p := range prefixes {
		if !p.IsValid() {
			continue
		}
		p = unmapPrefix(p)
		if p.Addr().Is4() {
			s.v4 = append(s.v4, prefixRange(p))
		} else {
			s.v6 = append(s.v6, prefixRange(p))
		}
	}
	s.v4, s.v6 = s.v4.normalize(), s.v6.normalize()
	return s
}

// contains reports whether a (unmapped by the caller) is in the set. The
// zero Addr is in no set.
func (s addrSet) contains(a netip.Addr) bool {
	switch {
	case !a.IsValid():
		return false
	case a.Is4():
		return s.v4.contains(u128Of(a))
	}
	return s.v6.contains(u128Of(a))
}

func (s addrSet) union(o addrSet) addrSet {
	return addrSet{
		v4: append(slices.Clone(s.v4), o.v4...).normalize(),
		v6: append(slices.Clone(s.v6), o.v6...).normalize(),
	}
}

func (s addrSet) minus(o addrSet) addrSet {
	return addrSet{v4: s.v4.minus(o.v4), v6: s.v6.minus(o.v6)}
}

// prefixes returns the fewest prefixes that cover exactly the set, IPv4
// first, each family in address order.
func (s addrSet) prefixes() []netip.Prefix {
	var out []netip.Prefix
	for _, r := range s.v4 {
		out = r.appendPrefixes(out, bitsV4)
	}
	for _, r := range s.v6 {
		out = r.appendPrefixes(out, bitsV6)
	}
	return out
}

// contains finds the first range ending at or after u and checks that it
// starts at or before it.
func (l rangeList) contains(u u128) bool {
	lo, hi := 0, len(l)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if l[m].hi.cmp(u) < 0 {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo < len(l) && l[lo].lo.cmp(u) <= 0
}

// normalize sorts l and merges overlapping and adjacent ranges, in place.
func (l rangeList) normalize() rangeList {
	if len(l) == 0 {
		return nil
	}
	slices.SortFunc(l, func(a, b addrRange) int { return a.lo.cmp(b.lo) })
	out := l[:1]
	for _, r := range l[1:] {
		last := &out[len(out)-1]
		// r touches last when r.lo <= last.hi+1; compare as r.lo-1 <= last.hi
		// so the family's last address cannot overflow.
		if r.lo.cmp(u128{}) == 0 || r.lo.subOne().cmp(last.hi) <= 0 {
			if r.hi.cmp(last.hi) > 0 {
				last.hi = r.hi
			}
			continue
		}
		out = append(out, r)
	}
	return out
}

// minus returns the parts of l that are not in o; both are normalized.
func (l rangeList) minus(o rangeList) rangeList {
	var out rangeList
	j := 0
	for _, r := range l {
		lo := r.lo
		for ; j < len(o) && o[j].hi.cmp(lo) < 0; j++ {
		}
		cut := false
		for k := j; k < len(o) && o[k].lo.cmp(r.hi) <= 0; k++ {
			if o[k].lo.cmp(lo) > 0 {
				out = append(out, addrRange{lo: lo, hi: o[k].lo.subOne()})
			}
			if o[k].hi.cmp(r.hi) >= 0 {
				cut = true
				break
			}
			lo = o[k].hi.addOne()
		}
		if !cut {
			out = append(out, addrRange{lo: lo, hi: r.hi})
		}
	}
	return out
}

// appendPrefixes splits the range into the largest aligned blocks.
func (r addrRange) appendPrefixes(out []netip.Prefix, width int) []netip.Prefix {
	lo := r.lo
	for {
		k := min(lo.trailingZeros(), width) // host bits of the next block
		for k > 0 && lo.or(lowMask(k)).cmp(r.hi) > 0 {
			k--
		}
		out = append(out, netip.PrefixFrom(lo.addr(width), width-k))
		last := lo.or(lowMask(k))
		if last.cmp(r.hi) >= 0 {
			return out
		}
		lo = last.addOne()
	}
}
