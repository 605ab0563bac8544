package route

import (
	"slices"
	"testing"
)

func TestDirectPrefixes(t *testing.T) {
	tests := []struct {
		name  string
		rules []RuleSpec
		def   string
		want  []string
	}{
		{"cidr-only direct", []RuleSpec{{Dst: pfx("198.18.100.0/24", "2001:2:0:100::/64"), Outbound: "direct"}}, "proxy",
			[]string{"198.18.100.0/24", "2001:2:0:100::/64"}},
		{"mapped prefixes unmapped", []RuleSpec{{Dst: pfx("::ffff:198.18.100.0/120"), Outbound: "direct"}}, "proxy",
			[]string{"198.18.100.0/24"}},
		{"direct with a port is not certain", []RuleSpec{{Dst: pfx("198.18.100.0/24"), Port: ports("443"), Outbound: "direct"}}, "proxy", nil},
		{"direct with proto, src, mac, iface or domain is not certain", []RuleSpec{
			{Dst: pfx("198.18.1.0/24"), Proto: ProtoTCP, Outbound: "direct"},
			{Dst: pfx("198.18.2.0/24"), Src: pfx("198.18.0.0/24"), Outbound: "direct"},
			{Dst: pfx("198.18.3.0/24"), MAC: macs("02:00:00:00:00:01"), Outbound: "direct"},
			{Dst: pfx("198.18.4.0/24"), Iface: []string{"br-lan"}, Outbound: "direct"},
			{Dst: pfx("198.18.5.0/24"), Domain: []string{"example.com"}, Outbound: "direct"},
		}, "direct", nil},
		{"a named direct-type outbound is not the fast path", []RuleSpec{{Dst: pfx("198.18.100.0/24"), Outbound: "wan2"}}, "direct", nil},
		{"earlier proxy rule on the same prefix", []RuleSpec{
			{Dst: pfx("198.18.100.0/24"), Port: ports("22"), Outbound: "proxy"},
			{Dst: pfx("198.18.100.0/24"), Outbound: "direct"},
		}, "direct", nil},
		{"earlier proxy rule on part of the prefix: split", []RuleSpec{
			{Dst: pfx("198.18.100.128/25"), Proto: ProtoUDP, Outbound: "proxy"},
			{Dst: pfx("198.18.100.0/24"), Outbound: "direct"},
		}, "proxy", []string{"198.18.100.0/25"}},
		{"earlier proxy rule elsewhere does not matter", []RuleSpec{
			{Dst: pfx("198.18.200.0/24"), Outbound: "proxy"},
			{Dst: pfx("198.18.100.0/24"), Outbound: "direct"},
		}, "proxy", []string{"198.18.100.0/24"}},
		{"later proxy rule does not matter", []RuleSpec{
			{Dst: pfx("198.18.100.0/24"), Outbound: "direct"},
			{Dst: pfx("198.18.100.0/24"), Outbound: "proxy"},
		}, "proxy", []string{"198.18.100.0/24"}},
		{"earlier domain proxy rule can catch any destination", []RuleSpec{
			{DomainSuffix: []string{"example.org"}, Outbound: "proxy"},
			{Dst: pfx("198.18.100.0/24"), Outbound: "direct"},
		}, "direct", nil},
		{"earlier mac proxy rule can catch any destination", []RuleSpec{
			{MAC: macs("02:00:00:00:00:01"), Outbound: "proxy"},
			{Dst: pfx("198.18.100.0/24"), Outbound: "direct"},
		}, "direct", nil},
		{"earlier reject (quic switch) can catch any destination", []RuleSpec{
			{Proto: ProtoUDP, Port: ports("443"), Outbound: "reject"},
			{Dst: pfx("198.18.100.0/24"), Outbound: "direct"},
		}, "direct", nil},
		{"earlier direct rules with conditions do not block", []RuleSpec{
			{DomainSuffix: []string{"example.org"}, Outbound: "direct"},
			{Port: ports("22"), Outbound: "direct"},
			{Dst: pfx("198.18.100.0/24"), Outbound: "direct"},
		}, "proxy", []string{"198.18.100.0/24"}},
		{"v6 only blocked in v6", []RuleSpec{
			{Dst: pfx("2001:2::/48"), Src: pfx("2001:2:1::/64"), Outbound: "proxy"},
			{Dst: pfx("2001:2::/47", "198.18.0.0/16"), Outbound: "direct"},
		}, "proxy", []string{"198.18.0.0/16", "2001:2:1::/48"}},
		{"catch-all and default do not contribute", []RuleSpec{{Outbound: "direct"}}, "direct", nil},
		{"overlapping direct rules merge", []RuleSpec{
			{Dst: pfx("198.18.100.0/25"), Outbound: "direct"},
			{Dst: pfx("198.18.100.128/25", "198.18.100.7/32"), Outbound: "direct"},
		}, "proxy", []string{"198.18.100.0/24"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tab := mustCompile(t, tt.rules, tt.def)
			var got []string
			for _, p := range tab.DirectPrefixes() {
				got = append(got, p.String())
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("DirectPrefixes = %v, want %v", got, tt.want)
			}
			// Whatever the flow, a destination in a direct prefix goes direct.
			for _, p := range tab.DirectPrefixes() {
				for _, f := range probeFlows(p.Addr().Next()) {
					if out, _ := tab.Match(f); out != Direct {
						t.Errorf("flow %+v to a direct prefix goes %q", f, out)
					}
				}
			}
		})
	}
}

func TestDirectDomain(t *testing.T) {
	tests := []struct {
		name  string
		rules []RuleSpec
		def   string
		ask   string
		want  bool
	}{
		{"domain-only direct rule", []RuleSpec{{DomainSuffix: []string{"example.org"}, Outbound: "direct"}}, "proxy", "www.Example.org.", true},
		{"name not matched, default proxy", []RuleSpec{{DomainSuffix: []string{"example.org"}, Outbound: "direct"}}, "proxy", "example.com", false},
		{"name not matched, default direct", []RuleSpec{{DomainSuffix: []string{"example.org"}, Outbound: "proxy"}}, "direct", "example.com", true},
		{"matched by proxy rule", []RuleSpec{{DomainSuffix: []string{"example.org"}, Outbound: "proxy"}}, "direct", "a.example.org", false},
		{"direct rule with a port", []RuleSpec{{Domain: []string{"example.org"}, Port: ports("443"), Outbound: "direct"}}, "proxy", "example.org", false},
		{"direct rule with a port, default direct", []RuleSpec{{Domain: []string{"example.org"}, Port: ports("443"), Outbound: "direct"}}, "direct", "example.org", true},
		{"earlier proxy cidr rule may catch the address", []RuleSpec{
			{Dst: pfx("198.18.0.0/16"), Outbound: "proxy"},
			{Domain: []string{"example.org"}, Outbound: "direct"},
		}, "proxy", "example.org", false},
		{"earlier proxy port rule may catch the flow", []RuleSpec{
			{Port: ports("22"), Outbound: "proxy"},
			{Domain: []string{"example.org"}, Outbound: "direct"},
		}, "proxy", "example.org", false},
		{"earlier proxy rule for another domain is skipped", []RuleSpec{
			{DomainSuffix: []string{"example.com"}, Port: ports("443"), Outbound: "proxy"},
			{DomainKeyword: []string{"ample"}, Outbound: "direct"},
		}, "proxy", "example.org", true},
		{"earlier direct rules with conditions are harmless", []RuleSpec{
			{Dst: pfx("198.18.0.0/16"), Outbound: "direct"},
			{Port: ports("22"), Domain: []string{"example.org"}, Outbound: "direct"},
			{Domain: []string{"example.org"}, Outbound: "direct"},
		}, "proxy", "example.org", true},
		{"proxy rule for the same name with a port", []RuleSpec{
			{Domain: []string{"example.org"}, Port: ports("22"), Outbound: "proxy"},
			{Domain: []string{"example.org"}, Outbound: "direct"},
		}, "direct", "example.org", false},
		{"catch-all direct", []RuleSpec{{Outbound: "direct"}}, "proxy", "example.org", true},
		{"catch-all proxy", []RuleSpec{{Outbound: "proxy"}}, "direct", "example.org", false},
		{"empty name", []RuleSpec{{Outbound: "direct"}}, "direct", "", false},
		{"named direct-type outbound is not the fast path", []RuleSpec{{Domain: []string{"example.org"}, Outbound: "wan2"}}, "direct", "example.org", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tab := mustCompile(t, tt.rules, tt.def)
			if got := tab.DirectDomain(tt.ask); got != tt.want {
				t.Fatalf("DirectDomain(%q) = %v, want %v", tt.ask, got, tt.want)
			}
			if !tt.want {
				return
			}
			// Every flow carrying that domain goes direct, to any address.
			for _, dst := range []string{"198.18.0.1", "198.18.99.9", "2001:2::1"} {
				for _, f := range probeFlows(mustAddr(dst)) {
					f.Domain = tt.ask
					if out, _ := tab.Match(f); out != Direct {
						t.Errorf("flow %+v goes %q", f, out)
					}
				}
			}
		})
	}
}
