package route

import (
	"net/netip"
	"slices"
)

// DirectPrefixes returns destination prefixes that every flow, whatever
// its source, port, protocol, MAC, interface or domain, would send to the
// "direct" outbound. The gateway may RETURN them in the mangle chain so the
// kernel forwards them without gatewayd. The list is sorted (IPv4 first)
// and minimal; it is empty when nothing is certain.
//
// Reasoning (computed once by Compile): walk the rules in order and keep
// caught, the destinations some earlier rule with another outbound could
// take. Such a rule can take a flow to d only if d is in its dst list, or
// it has no dst condition (then any d). Its other conditions only narrow
// which flows it takes, and some flow may satisfy them, so they are
// ignored: a rule "domain_suffix = example.org -> proxy" catches every
// destination, since a flow to any address may carry that SNI.
//
// A "direct" rule whose only condition is dst then sends every flow to
// dst minus caught direct: no earlier rule can take such a flow first, and
// it takes all of them. The split of dst around caught is exact (address
// ranges, turned back into the fewest prefixes). Direct rules with more
// conditions add nothing (flows they do not take go on to later rules) and
// catch nothing that matters (what they take goes direct). Neither a
// condition-less rule nor the default outbound contributes, even when
// "direct": that would put the whole address space (0.0.0.0/0) on the fast
// path, which is not what the fast path is for.
func (t *Table) DirectPrefixes() []netip.Prefix { return slices.Clone(t.direct) }

func (t *Table) directSet() addrSet {
	var caught, direct addrSet
	for i := range t.rules {
		r := &t.rules[i]
		switch {
		case r.Outbound != Direct && r.conds&condDst == 0:
			return direct // caught is everything from here on
		case r.Outbound != Direct:
			caught = caught.union(r.dst)
		case r.conds == condDst:
			direct = direct.union(r.dst.minus(caught))
		}
	}
	return direct
}

// DirectDomain reports whether the addresses a DNS answer for name gives
// may be put on the kernel fast path: every flow to such an address whose
// domain is name certainly goes "direct", whatever its port, protocol,
// source, MAC or interface.
//
// It walks the rules in order. A rule with a domain condition that name
// does not match cannot take such flows and is skipped. Every other rule
// could take some of them: if its outbound is not "direct" the answer is
// false; if it is "direct" and it has no condition besides the domain, it
// takes all remaining flows direct and the answer is true; otherwise it
// takes some flows direct and the walk goes on. Past the last rule the
// default outbound decides.
//
// Limits the caller must mind: flows to the address that carry another
// domain (a CDN address shared with a proxied name, a sniffed SNI that
// differs) or no domain are forwarded too once the address is on the fast
// path. The gateway should therefore leave out an address that DNS also
// returned for a name for which DirectDomain is false.
func (t *Table) DirectDomain(name string) bool {
	var buf nameBuf
	if !normalizeName(&buf, name) {
		return false
	}
	n := buf.b[:buf.n]
	for i := range t.rules {
		r := &t.rules[i]
		if r.conds&condDomain != 0 && !r.domains.match(n) {
			continue
		}
		if r.Outbound != Direct {
			return false
		}
		if r.conds&^condDomain == 0 {
			return true
		}
	}
	return t.def == Direct
}
