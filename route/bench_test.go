package route

import (
	"fmt"
	"net/netip"
	"testing"
)

// benchRules is a realistic large table: n rules cycling through CIDR,
// port, source and domain conditions, none of which match the benchmark
// flows, so Match walks all of them.
func benchRules(n int) []RuleSpec {
	var rules []RuleSpec
	for i := range n {
		third := byte(i)
		dst := netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 19, third, 0}), 24)
		r := RuleSpec{Outbound: "proxy"}
		switch i % 4 {
		case 0:
			r.Dst = []netip.Prefix{dst, netip.MustParsePrefix(fmt.Sprintf("2001:2:%x::/48", i))}
		case 1:
			r.Dst, r.Port = []netip.Prefix{dst}, ports("8000-8100", "22")
		case 2:
			r.Src, r.Proto = pfx(fmt.Sprintf("198.18.%d.0/24", 100+i%100)), ProtoUDP
		case 3:
			r.DomainSuffix = []string{fmt.Sprintf("site%d.example", i)}
		}
		rules = append(rules, r)
	}
	return rules
}

func BenchmarkMatch200Rules(b *testing.B) {
	tab := mustCompile(b, benchRules(200), "direct")
	f := tcp("198.18.77.1:443")
	f.Domain = "www.nomatch.example.com"
	b.ReportAllocs()
	for b.Loop() {
		if out, _ := tab.Match(f); out != "direct" {
			b.Fatal(out)
		}
	}
}

func BenchmarkMatch200RulesNoDomain(b *testing.B) {
	tab := mustCompile(b, benchRules(200), "direct")
	f := tcp("198.18.77.1:443")
	b.ReportAllocs()
	for b.Loop() {
		tab.Match(f)
	}
}

// BenchmarkMatchSuffixList10k is one rule with a 10,000-entry suffix list
// (a typical "proxy these sites" list), asked for a deep name that does not
// match, so every label of it is looked up.
func BenchmarkMatchSuffixList10k(b *testing.B) {
	const entries = 10000
	suffixes := make([]string, entries)
	for i := range suffixes {
		suffixes[i] = fmt.Sprintf("site%d.example", i)
	}
	tab := mustCompile(b, []RuleSpec{{DomainSuffix: suffixes, Outbound: "proxy"}}, "direct")
	miss := tcp("198.18.77.1:443")
	miss.Domain = "a.b.cdn.Site.Example.net."
	hit := miss
	hit.Domain = "img.cdn.site9999.example"
	if out, _ := tab.Match(hit); out != "proxy" {
		b.Fatalf("hit goes %q", out)
	}
	b.ReportAllocs()
	b.Run("miss", func(b *testing.B) {
		for b.Loop() {
			tab.Match(miss)
		}
	})
	b.Run("hit", func(b *testing.B) {
		for b.Loop() {
			tab.Match(hit)
		}
	})
}
