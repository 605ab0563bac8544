package e2e

import (
	"context"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/internal/netlab"
)

// dnsmasqTTL is the TTL startDnsmasq gives its records (--local-ttl).
const dnsmasqTTL = 300

// ipsetEntry returns the timeout ipset(8) lists for a in set (0 for a
// permanent entry) and whether a is in the set at all.
func ipsetEntry(t *testing.T, lab *netlab.Lab, set string, a netip.Addr) (int, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ioGuard)
	defer cancel()
	out, err := lab.Gateway.Run(ctx, "ipset", "list", set)
	if err != nil {
		t.Fatal(err)
	}
	// hash:net lists a single address without its /32 or /128.
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(a.String()) + `(?:/\d+)?(?: timeout (\d+))?\s*$`)
	m := re.FindStringSubmatch(out)
	if m == nil {
		return 0, false
	}
	n, _ := strconv.Atoi(m[1])
	return n, true
}

// TestPolicyFastPath: everything goes through dante by default, except a
// destination a CIDR-only direct rule covers, which is in the fast path's
// ipsets and forwarded by the kernel (the server sees the client itself;
// gatewayd neither logs nor counts the flow), and the addresses of a name whose rule is
// domain -> direct, which land in the ipsets with a timeout once the
// client resolves the name through the hijacked DNS.
func TestPolicyFastPath(t *testing.T) {
	netlab.RequireTools(t, "dig", "dnsmasq", "ipset")
	lab := netlab.NewT(t)
	serveAll(t, lab)
	dns := lab.Remotes[2]
	startDnsmasq(t, lab, dns)
	named := serveNamed(t, lab)
	dante := startDante(t, lab)
	fast := lab.Remotes[1]
	g := newPolicyGW(t, lab, opts{dns: dnsVia(dns)},
		socksOutbound("socks", dante.addr, "", "", "")+
			dstRule(fast, "direct")+
			"[[rule]]\ndomain = [\"www.example.test\"]\noutbound = \"direct\"\n"+
			"[route]\ndefault = \"socks\"\n")
	g.start()

	out, err := g.cmd("rules")
	if err != nil {
		t.Fatal(err)
	}
	_, fastList, _ := strings.Cut(out, "# kernel fast path")
	tcpFlows := policyMetrics(t, g).value(t, "gatewayd_flows_total", "proto", "tcp")
	for _, a := range []netip.Addr{fast.V4, fast.V6} {
		if !strings.Contains(fastList, hostPrefix(a)) {
			t.Errorf("gatewayd rules lists no fast path entry %s:\n%s", hostPrefix(a), out)
		}
		set := "gwd_direct4"
		if a.Is6() {
			set = "gwd_direct6"
		}
		if timeout, ok := ipsetEntry(t, lab, set, a); !ok || timeout != 0 {
			t.Errorf("ipset %s: %s present=%v timeout=%d, want a permanent entry", set, a, ok, timeout)
		}
		if got := peerSeen(t, lab, a); got != pick(lab.ClientAddr, a) {
			t.Errorf("%s (fast path): server saw %s, want the client %s (kernel forwarding)", a, got, pick(lab.ClientAddr, a))
		}
	}
	if n := policyMetrics(t, g).value(t, "gatewayd_flows_total", "proto", "tcp"); n != tcpFlows {
		t.Errorf("gatewayd's TCP flow count went from %v to %v over the fast path flows", tcpFlows, n)
	}
	// An intercepted flow after the fast ones: once its routing is logged,
	// theirs would have been too.
	for _, a := range []netip.Addr{lab.Remotes[0].V4, lab.Remotes[0].V6} {
		if got := peerSeen(t, lab, a); got != pick(dante.egress, a) {
			t.Errorf("%s (default): server saw %s, want dante's egress", a, got)
		}
	}
	routedTo(t, g, netip.AddrPortFrom(lab.Remotes[0].V6, echoPort))
	for _, a := range []netip.Addr{fast.V4, fast.V6} {
		if dst := netip.AddrPortFrom(a, echoPort).String(); strings.Contains(g.log.String(), "dst="+dst) {
			t.Errorf("gatewayd saw the fast path flow to %s", dst)
		}
	}

	for _, q := range []struct {
		typ, set string
		addr     netip.Addr
	}{{"A", "gwd_direct4", named.V4}, {"AAAA", "gwd_direct6", named.V6}} {
		if _, ok := ipsetEntry(t, lab, q.set, q.addr); ok {
			t.Errorf("%s is in %s before any client resolved www.example.test", q.addr, q.set)
		}
		if out, err := dig(t, lab.Client, "@198.18.50.50", "+short", "www.example.test", q.typ); err != nil || strings.TrimSpace(out) != q.addr.String() {
			t.Fatalf("dig www.example.test %s = %q, %v", q.typ, out, err)
		}
		deadline := time.Now().Add(logGuard)
		timeout, ok := ipsetEntry(t, lab, q.set, q.addr)
		for !ok && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
			timeout, ok = ipsetEntry(t, lab, q.set, q.addr)
		}
		if !ok || timeout <= 0 || timeout > dnsmasqTTL {
			t.Errorf("ipset %s: learned %s present=%v timeout=%d, want a timeout in (0, %d] (the answer's TTL)",
				q.set, q.addr, ok, timeout, dnsmasqTTL)
		}
		t.Logf("ipset %s: %s timeout %d", q.set, q.addr, timeout)
		if got := peerSeen(t, lab, q.addr); got != pick(lab.ClientAddr, q.addr) {
			t.Errorf("%s (learned fast path): server saw %s, want the client (kernel forwarding)", q.addr, got)
		}
	}
	peerSeen(t, lab, lab.Remotes[2].V4) // intercepted, logged after the flows above
	routedTo(t, g, netip.AddrPortFrom(lab.Remotes[2].V4, echoPort))
	for _, a := range []netip.Addr{named.V4, named.V6} {
		if dst := netip.AddrPortFrom(a, echoPort).String(); strings.Contains(g.log.String(), "dst="+dst) {
			t.Errorf("gatewayd saw the flow to %s, whose address DNS put on the fast path", dst)
		}
	}
	g.stop()
}
