package route

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
)

func TestAddrSetContains(t *testing.T) {
	s := newAddrSet(pfx("198.18.0.0/24", "198.18.1.0/24", "198.18.4.0/22", "2001:2::/48", "::ffff:198.19.0.0/112", "0.0.0.0/32"))
	in := []string{"198.18.0.0", "198.18.1.255", "198.18.7.255", "2001:2::1", "2001:2:0:ffff::1", "198.19.0.1", "0.0.0.0"}
	out := []string{"198.18.2.0", "198.18.3.255", "198.18.8.0", "2001:3::", "::ffff:198.19.0.1", "::", "0.0.0.1", "255.255.255.255"}
	for _, a := range in {
		if !s.contains(netip.MustParseAddr(a)) {
			t.Errorf("%s not in set", a)
		}
	}
	for _, a := range out {
		if s.contains(netip.MustParseAddr(a)) {
			t.Errorf("%s in set", a)
		}
	}
	if s.contains(netip.Addr{}) {
		t.Error("zero Addr in set")
	}
	// 198.18.0.0/24 and 198.18.1.0/24 are adjacent: merged into one range.
	if got := s.prefixes(); !slices.Equal(got, pfx("0.0.0.0/32", "198.18.0.0/23", "198.18.4.0/22", "198.19.0.0/16", "2001:2::/48")) {
		t.Errorf("prefixes = %v", got)
	}
}

func TestAddrSetMinus(t *testing.T) {
	tests := []struct {
		a, b []netip.Prefix
		want []netip.Prefix
	}{
		{pfx("198.18.0.0/24"), nil, pfx("198.18.0.0/24")},
		{pfx("198.18.0.0/24"), pfx("198.18.0.0/16"), nil},
		{pfx("198.18.0.0/24"), pfx("198.18.0.128/25"), pfx("198.18.0.0/25")},
		{pfx("198.18.0.0/24"), pfx("198.18.0.5/32"), pfx("198.18.0.0/30", "198.18.0.4/32", "198.18.0.6/31", "198.18.0.8/29", "198.18.0.16/28", "198.18.0.32/27", "198.18.0.64/26", "198.18.0.128/25")},
		{pfx("198.18.0.0/24", "2001:2::/48"), pfx("2001:2:0:8000::/49", "198.19.0.0/16"), pfx("198.18.0.0/24", "2001:2::/49")},
		{pfx("0.0.0.0/0"), pfx("128.0.0.0/1"), pfx("0.0.0.0/1")},
		{pfx("::/0"), pfx("::/1"), pfx("8000::/1")},
		{pfx("0.0.0.0/0"), pfx("0.0.0.0/32", "255.255.255.255/32"), pfx("0.0.0.1/32", "0.0.0.2/31", "0.0.0.4/30", "0.0.0.8/29", "0.0.0.16/28", "0.0.0.32/27", "0.0.0.64/26", "0.0.0.128/25", "0.0.1.0/24", "0.0.2.0/23", "0.0.4.0/22", "0.0.8.0/21", "0.0.16.0/20", "0.0.32.0/19", "0.0.64.0/18", "0.0.128.0/17", "0.1.0.0/16", "0.2.0.0/15", "0.4.0.0/14", "0.8.0.0/13", "0.16.0.0/12", "0.32.0.0/11", "0.64.0.0/10", "0.128.0.0/9", "1.0.0.0/8", "2.0.0.0/7", "4.0.0.0/6", "8.0.0.0/5", "16.0.0.0/4", "32.0.0.0/3", "64.0.0.0/2", "128.0.0.0/2", "192.0.0.0/3", "224.0.0.0/4", "240.0.0.0/5", "248.0.0.0/6", "252.0.0.0/7", "254.0.0.0/8", "255.0.0.0/9", "255.128.0.0/10", "255.192.0.0/11", "255.224.0.0/12", "255.240.0.0/13", "255.248.0.0/14", "255.252.0.0/15", "255.254.0.0/16", "255.255.0.0/17", "255.255.128.0/18", "255.255.192.0/19", "255.255.224.0/20", "255.255.240.0/21", "255.255.248.0/22", "255.255.252.0/23", "255.255.254.0/24", "255.255.255.0/25", "255.255.255.128/26", "255.255.255.192/27", "255.255.255.224/28", "255.255.255.240/29", "255.255.255.248/30", "255.255.255.252/31", "255.255.255.254/32")},
	}
	for _, tt := range tests {
		got := newAddrSet(tt.a).minus(newAddrSet(tt.b)).prefixes()
		if !slices.Equal(got, tt.want) {
			t.Errorf("%v minus %v = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
	if full := fullAddrSet().prefixes(); !slices.Equal(full, pfx("0.0.0.0/0", "::/0")) {
		t.Errorf("full set = %v", full)
	}
}

// fullAddrSet holds every IPv4 and IPv6 address.
func fullAddrSet() addrSet {
	return addrSet{
		v4: rangeList{{hi: lowMask(bitsV4)}},
		v6: rangeList{{hi: lowMask(bitsV6)}},
	}
}

// TestAddrSetAgainstBruteForce checks union, minus, prefixes and contains
// on random prefixes inside one /24 (so every address can be enumerated)
// against a plain bitmap.
func TestAddrSetAgainstBruteForce(t *testing.T) {
	const (
		base   = "198.18.7.0"
		space  = 256 // addresses in the /24
		rounds = 300
	)
	rng := rand.New(rand.NewPCG(1, 2))
	randPrefixes := func() []netip.Prefix {
		var out []netip.Prefix
		for range rng.IntN(6) {
			bits := 24 + rng.IntN(9)
			b := netip.MustParseAddr(base).As4()
			b[3] = byte(rng.IntN(space))
			out = append(out, netip.PrefixFrom(netip.AddrFrom4(b), bits).Masked())
		}
		return out
	}
	bitmap := func(ps []netip.Prefix) (m [space]bool) {
		for i := range space {
			b := netip.MustParseAddr(base).As4()
			b[3] = byte(i)
			for _, p := range ps {
				m[i] = m[i] || p.Contains(netip.AddrFrom4(b))
			}
		}
		return m
	}
	for range rounds {
		a, b := randPrefixes(), randPrefixes()
		ma, mb := bitmap(a), bitmap(b)
		sa, sb := newAddrSet(a), newAddrSet(b)
		diff := sa.minus(sb)
		union := sa.union(sb)
		mdiff, munion := bitmap(diff.prefixes()), bitmap(union.prefixes())
		for i := range space {
			b4 := netip.MustParseAddr(base).As4()
			b4[3] = byte(i)
			addr := netip.AddrFrom4(b4)
			if mdiff[i] != (ma[i] && !mb[i]) || diff.contains(addr) != mdiff[i] {
				t.Fatalf("%v minus %v wrong at %v: got %v", a, b, addr, diff.prefixes())
			}
			if munion[i] != (ma[i] || mb[i]) || union.contains(addr) != munion[i] {
				t.Fatalf("%v union %v wrong at %v: got %v", a, b, addr, union.prefixes())
			}
		}
		// prefixes is minimal: no two results could merge into their parent.
		ps := diff.prefixes()
		for i := 1; i < len(ps); i++ {
			p, q := ps[i-1], ps[i]
			if p.Bits() == q.Bits() && p.Bits() > 0 {
				parent, _ := p.Addr().Prefix(p.Bits() - 1)
				if parent.Contains(q.Addr()) {
					t.Fatalf("prefixes not minimal: %v and %v", p, q)
				}
			}
		}
	}
}
