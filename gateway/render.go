package gateway

import (
	"fmt"
	"net/netip"
	"strings"
)

// gatewayd's chains in the mangle table. Everything named chainPrefix* is
// gatewayd's; cleanup removes every such chain and every jump into one.
const (
	chainPrefix = "GWD_"
	// chainPre holds the interception logic; PREROUTING jumps to it only for
	// packets entering LAN interfaces.
	chainPre = chainPrefix + "PRE"
	// chainDivert marks packets of flows gatewayd already holds a socket for
	// and accepts them (the kernel tproxy recipe's DIVERT chain).
	chainDivert = chainPrefix + "DIVERT"
)

// builtinMangle are the mangle table's built-in chains, in iptables-save order.
var builtinMangle = []string{"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"}

// Env is what gatewayd derives from the running system rather than the
// config: the LAN interfaces' connected subnets, which are always bypassed.
// The router's own addresses are bypassed by `-m addrtype --dst-type LOCAL`,
// which the kernel evaluates per packet and so follows address changes.
type Env struct {
	LANSubnets []netip.Prefix
}

// jumpSpec is the PREROUTING rule that sends packets entering lan to chainPre.
func jumpSpec(lan string) []string { return []string{"-i", lan, "-j", chainPre} }

// chainRules renders gatewayd's own chains for family f as iptables-restore
// "-A" lines (without chain declarations).
func chainRules(c *Config, f Family, env Env) []string {
	t := c.TProxy
	tmark := fmt.Sprintf("0x%x/0x%x", t.Mark, t.Mask)
	bmark := fmt.Sprintf("0x%x/0x%x", t.BypassMark, t.BypassMark)
	on, _ := c.ListenAddr(f)
	r := []string{
		a(chainDivert, "-j", "MARK", "--set-xmark", tmark),
		a(chainDivert, "-j", "ACCEPT"),
		a(chainPre, "-m", "mark", "--mark", bmark, "-j", "RETURN"),
		a(chainPre, "-p", "tcp", "-m", "socket", "--transparent", "-j", chainDivert),
		a(chainPre, "-m", "addrtype", "--dst-type", "LOCAL", "-j", "RETURN"),
		// Replies of connections opened from elsewhere (the WAN, port
		// forwards) are not new LAN flows.
		a(chainPre, "-m", "conntrack", "--ctdir", "REPLY", "-j", "RETURN"),
	}
	for _, p := range bypassFor(c, f, env) {
		r = append(r, a(chainPre, "-d", p.String(), "-j", "RETURN"))
	}
	// Only SYNs: later packets of gatewayd's flows match the socket rule
	// above, and flows that existed before gatewayd started keep being
	// forwarded instead of being reset.
	r = append(r, a(chainPre, "-p", "tcp", "--syn", "-j", "TPROXY",
		"--on-ip", on.String(), "--on-port", fmt.Sprint(t.Port), "--tproxy-mark", tmark))
	return r
}

// bypassFor is the deduplicated list of family-f destinations RETURNed
// before TPROXY: the LAN subnets first, then the configured list.
func bypassFor(c *Config, f Family, env Env) []netip.Prefix {
	seen := map[netip.Prefix]bool{}
	var out []netip.Prefix
	for _, list := range [][]netip.Prefix{env.LANSubnets, c.Bypass.Destinations} {
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

// a renders one "-A chain args..." line.
func a(chain string, args ...string) string {
	return "-A " + chain + " " + strings.Join(args, " ")
}

// declare renders a chain declaration line for iptables-restore.
func declare(chain, policy string) string { return ":" + chain + " " + policy + " [0:0]" }

// RenderAppliance renders the complete mangle table of family f for appliance
// mode: gatewayd's chains, the jumps from PREROUTING and the firmware
// builder's extra rules, to be loaded with iptables-restore (which replaces
// the whole table in one transaction).
func RenderAppliance(c *Config, f Family, env Env) string {
	var b strings.Builder
	b.WriteString("*mangle\n")
	for _, ch := range builtinMangle {
		b.WriteString(declare(ch, "ACCEPT") + "\n")
	}
	b.WriteString(declare(chainPre, "-") + "\n")
	b.WriteString(declare(chainDivert, "-") + "\n")
	for _, lan := range c.LAN.Interfaces {
		b.WriteString(a("PREROUTING", jumpSpec(lan)...) + "\n")
	}
	extra := c.Mangle.ExtraV4
	if f == IPv6 {
		extra = c.Mangle.ExtraV6
	}
	for _, r := range extra {
		b.WriteString(r + "\n")
	}
	for _, r := range chainRules(c, f, env) {
		b.WriteString(r + "\n")
	}
	b.WriteString("COMMIT\n")
	return b.String()
}

// RenderShared renders gatewayd's chains alone for shared mode, to be loaded
// with iptables-restore --noflush: it creates or flushes-and-refills only the
// GWD_ chains and leaves every other rule alone. The PREROUTING jumps are
// added separately and idempotently (a "-I PREROUTING" in a --noflush payload
// would add a duplicate on every apply).
func RenderShared(c *Config, f Family, env Env) string {
	var b strings.Builder
	b.WriteString("*mangle\n")
	b.WriteString(declare(chainPre, "-") + "\n")
	b.WriteString(declare(chainDivert, "-") + "\n")
	for _, r := range chainRules(c, f, env) {
		b.WriteString(r + "\n")
	}
	b.WriteString("COMMIT\n")
	return b.String()
}

// Render renders the payload for the configured mangle mode.
func Render(c *Config, f Family, env Env) string {
	if c.Mangle.Mode == ModeShared {
		return RenderShared(c, f, env)
	}
	return RenderAppliance(c, f, env)
}
