package route

import (
	"net/netip"
	"testing"
)

func TestMatch(t *testing.T) {
	rules := []RuleSpec{
		/* 0 */ {Proto: ProtoUDP, Port: ports("443"), Outbound: "reject", Label: "quic"},
		/* 1 */ {Dst: pfx("198.18.100.0/24", "2001:2:0:100::/64"), Port: ports("443", "8000-8100"), Proto: ProtoTCP, Outbound: "proxy"},
		/* 2 */ {Dst: pfx("198.18.100.0/24"), Outbound: "direct"},
		/* 3 */ {Src: pfx("198.18.0.128/25", "2001:2:0:1::/64"), Outbound: "kids"},
		/* 4 */ {MAC: macs("02:00:00:00:00:01"), Outbound: "tv"},
		/* 5 */ {Iface: []string{"guest", "wg+"}, Outbound: "guestnet"},
		/* 6 */ {Domain: []string{"Exact.Example.COM."}, Outbound: "exact"},
		/* 7 */ {DomainSuffix: []string{"example.org", ".example.net"}, Outbound: "suffix"},
		/* 8 */ {DomainKeyword: []string{"tracker"}, Outbound: "kw"},
		/* 9 */ {Dst: pfx("::ffff:198.18.200.0/120"), Outbound: "mapped-rule"},
		/* 10 */ {Dst: pfx("198.18.201.0/24"), Src: pfx("198.18.0.0/24"), Port: ports("22"), Proto: ProtoTCP, Outbound: "all-of"},
	}
	tab := mustCompile(t, rules, "default-out")
	with := func(f Flow, mod func(*Flow)) Flow { mod(&f); return f }
	tests := []struct {
		name string
		flow Flow
		want string
		idx  int
	}{
		{"quic first", udp("198.18.100.5:443"), "reject", 0},
		{"tcp 443 not quic", tcp("198.18.100.5:443"), "proxy", 1},
		{"port range low", tcp("198.18.100.5:8000"), "proxy", 1},
		{"port range high", tcp("198.18.100.5:8100"), "proxy", 1},
		{"port outside range falls to next rule", tcp("198.18.100.5:8101"), "direct", 2},
		{"udp not proxied", udp("198.18.100.5:8000"), "direct", 2},
		{"v6 dst", tcp("[2001:2:0:100::7]:443"), "proxy", 1},
		{"v6 outside", tcp("[2001:2:0:101::7]:443"), "default-out", -1},
		{"mapped dst unmapped", tcp("[::ffff:198.18.100.5]:443"), "proxy", 1},
		{"src v4", with(tcp("198.18.50.1:80"), func(f *Flow) { f.Src = netip.MustParseAddrPort("198.18.0.200:1") }), "kids", 3},
		{"src mapped", with(tcp("198.18.50.1:80"), func(f *Flow) { f.Src = netip.MustParseAddrPort("[::ffff:198.18.0.200]:1") }), "kids", 3},
		{"src v6", with(tcp("[2001:2:9::1]:80"), func(f *Flow) { f.Src = netip.MustParseAddrPort("[2001:2:0:1::5]:1") }), "kids", 3},
		{"src outside", tcp("198.18.50.1:80"), "default-out", -1},
		{"mac", with(tcp("198.18.50.1:80"), func(f *Flow) { f.MAC = macs("02:00:00:00:00:01")[0] }), "tv", 4},
		{"other mac", with(tcp("198.18.50.1:80"), func(f *Flow) { f.MAC = macs("02:00:00:00:00:02")[0] }), "default-out", -1},
		{"eui64 mac never matches", with(tcp("198.18.50.1:80"), func(f *Flow) { f.MAC = macs("02:00:00:00:00:01:00:00")[0] }), "default-out", -1},
		{"iface exact", with(tcp("198.18.50.1:80"), func(f *Flow) { f.Iface = "guest" }), "guestnet", 5},
		{"iface prefix", with(tcp("198.18.50.1:80"), func(f *Flow) { f.Iface = "wg0" }), "guestnet", 5},
		{"iface other", with(tcp("198.18.50.1:80"), func(f *Flow) { f.Iface = "guest2" }), "default-out", -1},
		{"domain exact any case", with(tcp("198.18.50.1:80"), func(f *Flow) { f.Domain = "EXACT.example.com." }), "exact", 6},
		{"domain exact is not suffix", with(tcp("198.18.50.1:80"), func(f *Flow) { f.Domain = "a.exact.example.com" }), "default-out", -1},
		{"suffix itself", with(tcp("198.18.50.1:80"), func(f *Flow) { f.Domain = "example.org" }), "suffix", 7},
		{"suffix child", with(tcp("198.18.50.1:80"), func(f *Flow) { f.Domain = "a.b.Example.org." }), "suffix", 7},
		{"suffix leading dot entry", with(tcp("198.18.50.1:80"), func(f *Flow) { f.Domain = "x.example.net" }), "suffix", 7},
		{"suffix is label aligned", with(tcp("198.18.50.1:80"), func(f *Flow) { f.Domain = "badexample.org" }), "default-out", -1},
		{"keyword", with(tcp("198.18.50.1:80"), func(f *Flow) { f.Domain = "ads.TRACKER-cdn.net" }), "kw", 8},
		{"no domain", tcp("198.18.50.1:80"), "default-out", -1},
		{"overlong domain", with(tcp("198.18.50.1:80"), func(f *Flow) { f.Domain = string(make([]byte, 300)) + "tracker" }), "default-out", -1},
		{"mapped rule prefix, v4 flow", tcp("198.18.200.9:80"), "mapped-rule", 9},
		{"and: all hold", with(tcp("198.18.201.1:22"), func(f *Flow) { f.Src = netip.MustParseAddrPort("198.18.0.9:5") }), "all-of", 10},
		{"and: proto fails", with(udp("198.18.201.1:22"), func(f *Flow) { f.Src = netip.MustParseAddrPort("198.18.0.9:5") }), "default-out", -1},
		{"and: port fails", with(tcp("198.18.201.1:23"), func(f *Flow) { f.Src = netip.MustParseAddrPort("198.18.0.9:5") }), "default-out", -1},
		{"and: src fails", with(tcp("198.18.201.1:22"), func(f *Flow) { f.Src = netip.MustParseAddrPort("198.18.1.9:5") }), "default-out", -1},
		{"zero flow", Flow{}, "default-out", -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, idx := tab.Match(tt.flow)
			if got != tt.want || idx != tt.idx {
				t.Errorf("Match = %q, %d; want %q, %d", got, idx, tt.want, tt.idx)
			}
		})
	}
}

func TestMatchFirstWins(t *testing.T) {
	tab := mustCompile(t, []RuleSpec{
		{Dst: pfx("198.18.0.0/15"), Outbound: "a"},
		{Dst: pfx("198.18.5.0/24"), Outbound: "b"}, // shadowed by the wider rule above
		{Outbound: "c"}, // catch-all
		{Dst: pfx("198.18.5.0/24"), Outbound: "d"},
	}, "direct")
	for dst, want := range map[string]string{"198.18.5.1:1": "a", "198.19.0.1:1": "a", "198.20.0.1:1": "c", "[2001:2::1]:1": "c"} {
		if got, _ := tab.Match(tcp(dst)); got != want {
			t.Errorf("Match(%s) = %q, want %q", dst, got, want)
		}
	}
}

func TestMatchEmptyTable(t *testing.T) {
	tab := mustCompile(t, nil, "direct")
	if got, idx := tab.Match(tcp("198.18.0.1:80")); got != "direct" || idx != -1 {
		t.Errorf("Match = %q, %d; want direct, -1", got, idx)
	}
	if tab.NeedsDomain() || tab.NeedsMAC() || len(tab.DirectPrefixes()) != 0 {
		t.Errorf("empty table needs something: %v %v %v", tab.NeedsDomain(), tab.NeedsMAC(), tab.DirectPrefixes())
	}
}

func TestNeeds(t *testing.T) {
	tab := mustCompile(t, []RuleSpec{{DomainKeyword: []string{"x"}, Outbound: "p"}}, "direct")
	if !tab.NeedsDomain() || tab.NeedsMAC() {
		t.Errorf("domain rule: NeedsDomain %v NeedsMAC %v", tab.NeedsDomain(), tab.NeedsMAC())
	}
	tab = mustCompile(t, []RuleSpec{{MAC: macs("02:00:00:00:00:09"), Outbound: "p"}}, "direct")
	if tab.NeedsDomain() || !tab.NeedsMAC() {
		t.Errorf("mac rule: NeedsDomain %v NeedsMAC %v", tab.NeedsDomain(), tab.NeedsMAC())
	}
}

func TestMatchDoesNotAllocate(t *testing.T) {
	tab := mustCompile(t, []RuleSpec{
		{MAC: macs("02:00:00:00:00:01"), Outbound: "m"},
		{DomainSuffix: []string{"example.org"}, Outbound: "s"},
		{DomainKeyword: []string{"tracker"}, Outbound: "k"},
		{Dst: pfx("198.18.100.0/24", "2001:2::/48"), Port: ports("1-1000"), Outbound: "d"},
	}, "direct")
	f := tcp("198.18.99.1:443")
	f.Domain = "Very.Long.Name.Under.Some.Zone.Example.NET."
	f.MAC = macs("02:00:00:00:00:02")[0]
	if n := testing.AllocsPerRun(100, func() { tab.Match(f) }); n != 0 {
		t.Errorf("Match allocates %v times per call", n)
	}
}
