package gateway

import (
	"fmt"
	"net/netip"
	"strings"
)

// gatewayd's chains in the mangle table. Everything named ChainPrefix* is
// gatewayd's; cleanup removes every such chain and every jump into one.
const (
	ChainPrefix = "GWD_"
	// chainPre holds the interception logic; PREROUTING jumps to it only for
	// packets entering LAN interfaces.
	chainPre = ChainPrefix + "PRE"
	// chainDivert marks packets of flows gatewayd already holds a socket for
	// and accepts them (the kernel tproxy recipe's DIVERT chain).
	chainDivert = ChainPrefix + "DIVERT"
	// chainOut tags the conntrack entries of connections gatewayd's own
	// sockets open (see chainRules).
	chainOut = ChainPrefix + "OUT"
)

// ownChains are gatewayd's chains, in the order they can be deleted (a
// chain can only go once nothing jumps to it).
var ownChains = []string{chainPre, chainOut, chainDivert}

// builtinMangle are the mangle table's built-in chains, in iptables-save order.
var builtinMangle = []string{"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"}

// Env is what gatewayd derives from the running system rather than the
// config: the LAN interfaces' connected subnets, which are always bypassed.
// The router's own addresses are bypassed by `-m addrtype --dst-type LOCAL`,
// which the kernel evaluates per packet and so follows address changes.
type Env struct {
	LANSubnets []netip.Prefix
	// FastPath is set when the kernel fast path's ipsets exist (see
	// FastPath): GWD_PRE then RETURNs the destinations in them before
	// TPROXY, so the kernel forwards those flows itself. iptables-restore
	// rejects a rule that names a missing set, so the sets are created
	// before the rules are installed.
	FastPath bool
}

// jump is a rule in a built-in chain that enters one of gatewayd's chains.
type jump struct {
	chain string   // built-in chain
	spec  []string // rule arguments, ending in -j GWD_*
}

// jumps are the rules that hook gatewayd's chains in: PREROUTING for packets
// entering each LAN interface, and OUTPUT.
func jumps(c *Spec) []jump {
	var j []jump
	for _, lan := range c.LAN.Interfaces {
		j = append(j, jump{"PREROUTING", []string{"-i", lan, "-j", chainPre}})
	}
	return append(j, jump{"OUTPUT", []string{"-j", chainOut}})
}

// chainRules renders gatewayd's own chains for family f as iptables-restore
// "-A" lines (without chain declarations).
func chainRules(c *Spec, f Family, env Env) []string {
	t := c.TProxy
	tmark := fmt.Sprintf("0x%x/0x%x", t.Mark, t.Mask)
	bmark := fmt.Sprintf("0x%x/0x%x", t.BypassMark, t.BypassMark)
	on, _ := c.ListenAddr(f)
	tproxy := []string{"-j", "TPROXY", "--on-ip", on.String(), "--on-port", fmt.Sprint(t.Port), "--tproxy-mark", tmark}
	r := []string{
		a(chainDivert, "-j", "MARK", "--set-xmark", tmark),
		a(chainDivert, "-j", "ACCEPT"),
		a(chainPre, "-m", "mark", "--mark", bmark, "-j", "RETURN"),
	}
	if env.FastPath {
		// Connections the fast path let through (connmark bypass bit set
		// below, at the set match) skip the rest of the chain, the
		// per-packet socket lookup included, from their second packet on.
		// Only LAN-originated directions: the bit on gatewayd's own
		// connections (chainOut) marks their REPLY direction, which the
		// --ctdir REPLY rule below handles.
		r = append(r, a(chainPre, "-m", "connmark", "--mark", bmark, "-m", "conntrack", "--ctdir", "ORIGINAL", "-j", "RETURN"))
	}
	r = append(r, a(chainPre, "-p", "tcp", "-m", "socket", "--transparent", "-j", chainDivert))
	dns := dnsRules(c, f, tmark)
	if c.DNS.HijackRouter {
		r = append(r, dns...) // before the router's own addresses return
	}
	r = append(r, a(chainPre, "-m", "addrtype", "--dst-type", "LOCAL", "-j", "RETURN"))
	if !c.DNS.HijackRouter {
		r = append(r, dns...) // queries to the router stay with its own resolver
	}
	r = append(r,
		// Replies of connections opened from elsewhere (the WAN, port
		// forwards) are not new LAN flows. Connections gatewayd's own
		// sockets opened carry the bypass bit in their connmark (chainOut):
		// a LAN client answering a remote that reached it through a UDP
		// full-cone mapping must still go through that mapping.
		a(chainPre, "-m", "conntrack", "--ctdir", "REPLY", "-m", "connmark", "!", "--mark", bmark, "-j", "RETURN"))
	for _, p := range bypassFor(c, f, env) {
		r = append(r, a(chainPre, "-d", p.String(), "-j", "RETURN"))
	}
	if env.FastPath && c.RejectQUIC {
		// QUIC goes to gatewayd, which rejects it, whatever the fast path
		// holds: so the QUIC switch does not empty the fast path.
		r = append(r, a(chainPre, append([]string{"-p", "udp", "--dport", fmt.Sprint(QUICPort)}, tproxy...)...))
	}
	if env.FastPath {
		// Destinations that would certainly be relayed `direct` are left
		// to the kernel. After the socket rule, so TCP flows gatewayd
		// already holds stay with it when an address is learned later.
		r = append(r,
			a(chainPre, "-m", "set", "--match-set", DirectSet(f), "dst", "-j", "CONNMARK", "--set-xmark", bmark),
			a(chainPre, "-m", "set", "--match-set", DirectSet(f), "dst", "-j", "RETURN"))
	}
	// TCP: only SYNs. Later packets of gatewayd's flows match the socket
	// rule above, and flows that existed before gatewayd started keep
	// being forwarded instead of being reset.
	r = append(r, a(chainPre, append([]string{"-p", "tcp", "--syn"}, tproxy...)...))
	// UDP: every datagram (no -m socket rule: it would hand datagrams to
	// the never-read reply sockets).
	r = append(r, a(chainPre, append([]string{"-p", "udp"}, tproxy...)...))
	r = append(r, a(chainOut, "-m", "mark", "--mark", bmark, "-m", "conntrack", "--ctstate", "NEW",
		"-j", "CONNMARK", "--set-xmark", bmark))
	return r
}

// dnsRules hijack LAN DNS, UDP and TCP port 53 to any destination, into
// gatewayd's resolver. They come before the bypass list: a client with a
// hard-coded resolver in a private range is hijacked too.
func dnsRules(c *Spec, f Family, tmark string) []string {
	if !c.DNS.Enabled {
		return nil
	}
	on, _ := c.ListenAddr(f)
	tproxy := []string{"-j", "TPROXY", "--on-ip", on.String(), "--on-port", fmt.Sprint(c.DNS.Port), "--tproxy-mark", tmark}
	return []string{
		a(chainPre, append([]string{"-p", "udp", "--dport", "53"}, tproxy...)...),
		a(chainPre, append([]string{"-p", "tcp", "--dport", "53", "--syn"}, tproxy...)...),
	}
}

// bypassFor is the deduplicated list of family-f destinations RETURNed
// before TPROXY by rules of their own: the LAN subnets first, then the
// configured list unless the fast path's set holds it (bypassInSet).
func bypassFor(c *Spec, f Family, env Env) []netip.Prefix {
	seen := map[netip.Prefix]bool{}
	var out []netip.Prefix
	lists := [][]netip.Prefix{env.LANSubnets, c.Bypass}
	if env.FastPath && bypassInSet(c) {
		lists = lists[:1]
	}
	for _, list := range lists {
		for _, p := range list {
			p = p.Masked()
			// No Unmap here: ::ffff:0:0/96 is an IPv6 prefix in its own right.
			if p.Addr().Is4() == (f == IPv4) && !seen[p] {
				seen[p] = true
				out = append(out, p)
			}
		}
	}
	return out
}

// bypassInSet reports whether the bypass list goes into the fast path's
// sets (when they exist) instead of one RETURN rule per prefix: every rule a
// packet walks costs, and the sets answer in one hash lookup whatever their
// size. Not with the QUIC switch on: its rule must come after the bypass
// list (bypassed destinations are never intercepted, QUIC or not) and
// before the learned direct addresses (which it must catch).
func bypassInSet(c *Spec) bool { return !c.RejectQUIC }

// QUICPort is the UDP port of HTTP/3 (QUIC), which route.quic = "reject"
// refuses so browsers fall back to TCP, where the rules see the flow's
// domain in the TLS ClientHello.
const QUICPort = 443

// a renders one "-A chain args..." line.
func a(chain string, args ...string) string {
	return "-A " + chain + " " + strings.Join(args, " ")
}

// declare renders a chain declaration line for iptables-restore.
func declare(chain, policy string) string { return ":" + chain + " " + policy + " [0:0]" }

// writeOwn writes gatewayd's chain declarations and rules.
func writeOwn(b *strings.Builder, c *Spec, f Family, env Env) {
	for _, ch := range ownChains {
		b.WriteString(declare(ch, "-") + "\n")
	}
	for _, r := range chainRules(c, f, env) {
		b.WriteString(r + "\n")
	}
}

// renderAppliance renders the complete mangle table of family f for appliance
// mode: gatewayd's chains, the jumps into them and the firmware builder's
// extra rules, to be loaded with iptables-restore (which replaces the whole
// table in one transaction).
func renderAppliance(c *Spec, f Family, env Env) string {
	var b strings.Builder
	b.WriteString("*mangle\n")
	for _, ch := range builtinMangle {
		b.WriteString(declare(ch, "ACCEPT") + "\n")
	}
	writeOwn(&b, c, f, env)
	for _, j := range jumps(c) {
		b.WriteString(a(j.chain, j.spec...) + "\n")
	}
	extra := c.Mangle.ExtraV4
	if f == IPv6 {
		extra = c.Mangle.ExtraV6
	}
	for _, r := range extra {
		b.WriteString(r + "\n")
	}
	b.WriteString("COMMIT\n")
	return b.String()
}

// renderShared renders gatewayd's chains alone for shared mode, to be loaded
// with iptables-restore --noflush: it creates or flushes-and-refills only the
// GWD_ chains and leaves every other rule alone. The jumps are added
// separately and idempotently (a "-I" in a --noflush payload would add a
// duplicate on every apply).
func renderShared(c *Spec, f Family, env Env) string {
	var b strings.Builder
	b.WriteString("*mangle\n")
	writeOwn(&b, c, f, env)
	b.WriteString("COMMIT\n")
	return b.String()
}

// render renders the payload for the configured mangle mode.
func render(c *Spec, f Family, env Env) string {
	if c.Mangle.Mode == ModeShared {
		return renderShared(c, f, env)
	}
	return renderAppliance(c, f, env)
}
