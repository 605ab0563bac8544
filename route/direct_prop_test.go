package route

import (
	"math/rand/v2"
	"net/netip"
	"testing"
)

// TestDirectIsConservative builds random tables from a small pool of
// conditions and checks the promise of DirectPrefixes and DirectDomain
// against Match: every probe flow to a direct prefix, and every probe flow
// carrying a direct domain, goes "direct".
func TestDirectIsConservative(t *testing.T) {
	const tables = 400
	rng := rand.New(rand.NewPCG(7, 9))
	dsts := pfx("198.18.0.0/16", "198.18.5.0/24", "198.18.5.128/25", "198.19.0.0/16", "2001:2::/48", "2001:2:0:5::/64")
	names := []string{"example.org", "a.example.org", "example.com", "tracker.example.net"}
	outs := []string{Direct, Direct, "proxy", "reject"}
	pick := func(n int) bool { return rng.IntN(n) == 0 }
	var withPrefixes, withDomains int
	for range tables {
		var rules []RuleSpec
		for range 1 + rng.IntN(5) {
			r := RuleSpec{Outbound: outs[rng.IntN(len(outs))]}
			if pick(2) {
				r.Dst = []netip.Prefix{dsts[rng.IntN(len(dsts))]}
			}
			if pick(5) {
				r.Port = ports("443")
			}
			if pick(6) {
				r.Proto = ProtoUDP
			}
			if pick(6) {
				r.Src = pfx("198.18.1.0/24")
			}
			if pick(8) {
				r.MAC = macs("02:00:00:00:00:01")
			}
			if pick(8) {
				r.Iface = []string{"guest"}
			}
			if pick(3) {
				r.DomainSuffix = []string{names[rng.IntN(len(names))]}
			}
			rules = append(rules, r)
		}
		def := outs[rng.IntN(len(outs))]
		tab := mustCompile(t, rules, def)
		for _, p := range tab.DirectPrefixes() {
			width := bitsV6
			if p.Addr().Is4() {
				width = bitsV4
			}
			withPrefixes++
			for _, a := range []netip.Addr{p.Addr(), prefixRange(p).hi.addr(width)} {
				for _, f := range probeFlows(a) {
					if out, _ := tab.Match(f); out != Direct {
						t.Fatalf("table:\n%sDirectPrefixes %v, but flow %+v goes %q", tab, tab.DirectPrefixes(), f, out)
					}
				}
			}
		}
		for _, name := range append(names, "other.test") {
			if !tab.DirectDomain(name) {
				continue
			}
			withDomains++
			for _, dst := range dsts {
				for _, f := range probeFlows(dst.Addr()) {
					f.Domain = name
					if out, _ := tab.Match(f); out != Direct {
						t.Fatalf("table:\n%sDirectDomain(%q), but flow %+v goes %q", tab, name, f, out)
					}
				}
			}
		}
	}
	// The test means something only if the promises were made often.
	if withPrefixes < tables/10 || withDomains < tables/10 {
		t.Errorf("only %d direct prefixes and %d direct domains in %d tables", withPrefixes, withDomains, tables)
	}
	t.Logf("checked %d direct prefixes and %d direct domains", withPrefixes, withDomains)
}
