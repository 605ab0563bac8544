package gateway

import (
	"fmt"
	"net/netip"
	"strings"
)

// RenderAll is the text `gatewayd rules` prints: per intercepted family the
// iptables-restore payload (and, in shared mode, the jumps added beside
// it), then the policy routing as ip(8) commands.
func RenderAll(c *Spec, env Env) string {
	var b strings.Builder
	if env.FastPath {
		b.WriteString("# ipsets of the kernel fast path, created over netlink before the rules that match them\n")
		for _, f := range Families {
			if c.Intercepts(f) {
				fmt.Fprintf(&b, "#   %s\n", directSetSpec(f))
			}
		}
		b.WriteString("\n")
	}
	for _, f := range Families {
		if !c.Intercepts(f) {
			fmt.Fprintf(&b, "# %s: no listener address, not intercepted\n\n", f)
			continue
		}
		bin := map[Family]string{IPv4: "iptables", IPv6: "ip6tables"}[f]
		if c.Mangle.Mode == ModeShared {
			fmt.Fprintf(&b, "# %s-restore --noflush (shared mode: only gatewayd's chains)\n", bin)
		} else {
			fmt.Fprintf(&b, "# %s-restore (appliance mode: replaces the whole mangle table)\n", bin)
		}
		b.WriteString(render(c, f, env))
		if c.Mangle.Mode == ModeShared {
			pos := map[string]int{}
			b.WriteString("# then, each if absent:\n")
			for _, j := range jumps(c) {
				pos[j.chain]++
				fmt.Fprintf(&b, "%s -t mangle -I %s %d %s\n", bin, j.chain, pos[j.chain], strings.Join(j.spec, " "))
			}
		}
		b.WriteString("\n")
	}
	b.WriteString("# policy routing\n")
	for _, f := range Families {
		if !c.Intercepts(f) {
			continue
		}
		def := netip.PrefixFrom(netip.IPv4Unspecified(), 0)
		if f == IPv6 {
			def = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
		}
		fmt.Fprintf(&b, "ip -%d rule add fwmark 0x%x/0x%x lookup %d priority %d\n",
			f, c.TProxy.Mark, c.TProxy.Mask, c.Routing.Table, c.Routing.Priority)
		fmt.Fprintf(&b, "ip -%d route add local %s dev lo table %d\n", f, def, c.Routing.Table)
	}
	return b.String()
}
