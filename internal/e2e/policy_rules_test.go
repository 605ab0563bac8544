package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/gatewayd/gatewayd/internal/netlab"
)

// unusedMAC is a MAC address no lab interface has (02: locally
// administered), for a rule that must not match.
const unusedMAC = "02:00:5e:10:00:01"

// TestPolicyRulesByAddressPortSourceMAC: rules by destination prefix,
// destination port, source address and source MAC (the client's veth, from
// the gateway's neighbour table) each send their flows through dante,
// both families; a rule for another MAC matches nothing, and flows no rule
// matches go direct.
func TestPolicyRulesByAddressPortSourceMAC(t *testing.T) {
	lab := netlab.NewT(t)
	ctx := context.Background()
	serveAll(t, lab)
	for _, a := range []netip.Addr{lab.Remotes[0].V4, lab.Remotes[0].V6} {
		serve(t, lab.Server, netip.AddrPortFrom(a, policyPort), peerEcho)
	}
	// A second client address, for the rule by source.
	src2 := netlab.Addrs{V4: netip.MustParseAddr("198.18.1.3"), V6: netip.MustParseAddr("2001:2:1::3")}
	for _, p := range []netip.Prefix{netip.PrefixFrom(src2.V4, 24), netip.PrefixFrom(src2.V6, 64)} {
		if err := lab.Client.AddAddr(ctx, netlab.ClientIf, p); err != nil {
			t.Fatal(err)
		}
	}
	mac, err := lab.Client.HardwareAddr(netlab.ClientIf)
	if err != nil {
		t.Fatal(err)
	}
	dante := startDante(t, lab)
	byDst, byMAC := lab.Remotes[1], lab.Remotes[2]
	g := newPolicyGW(t, lab, opts{}, socksOutbound("socks", dante.addr, "", "", "")+
		dstRule(byDst, "socks")+
		fmt.Sprintf("[[rule]]\nport = [%d]\noutbound = \"socks\"\n", policyPort)+
		fmt.Sprintf("[[rule]]\nsrc = [%q, %q]\noutbound = \"socks\"\n", hostPrefix(src2.V4), hostPrefix(src2.V6))+
		fmt.Sprintf("[[rule]]\nmac = [%q]\noutbound = \"reject\"\n", unusedMAC)+
		fmt.Sprintf("[[rule]]\nmac = [%q]\ndst = [%q, %q]\noutbound = \"socks\"\n", mac, hostPrefix(byMAC.V4), hostPrefix(byMAC.V6)))
	g.start()

	for _, fam := range []func(netlab.Addrs) netip.Addr{
		func(a netlab.Addrs) netip.Addr { return a.V4 },
		func(a netlab.Addrs) netip.Addr { return a.V6 },
	} {
		client, proxied, direct := fam(lab.ClientAddr), fam(dante.egress), fam(lab.GatewayWAN)
		for _, c := range []struct {
			what     string
			src      netip.Addr
			dst      netip.AddrPort
			want     netip.Addr
			outbound string
		}{
			{"by destination", client, netip.AddrPortFrom(fam(byDst), echoPort), proxied, "socks"},
			{"by port", client, netip.AddrPortFrom(fam(lab.Remotes[0]), policyPort), proxied, "socks"},
			{"by source", fam(src2), netip.AddrPortFrom(fam(lab.Remotes[0]), echoPort), proxied, "socks"},
			{"by MAC", client, netip.AddrPortFrom(fam(byMAC), echoPort), proxied, "socks"},
			{"no rule", client, netip.AddrPortFrom(fam(lab.Remotes[0]), echoPort), direct, "direct"},
		} {
			if got := peerFrom(t, lab, c.src, c.dst); got != c.want {
				t.Errorf("%s: %s -> %s: server saw %s, want %s", c.what, c.src, c.dst, got, c.want)
			}
			if got := routedFrom(t, g, c.src, c.dst); got != c.outbound {
				t.Errorf("%s: %s -> %s: gatewayd routed it to %q, want %q", c.what, c.src, c.dst, got, c.outbound)
			}
		}
	}
	for _, dst := range []netip.AddrPort{
		netip.AddrPortFrom(byDst.V6, echoPort), netip.AddrPortFrom(lab.Remotes[0].V4, policyPort),
		netip.AddrPortFrom(byMAC.V4, echoPort), netip.AddrPortFrom(byMAC.V6, echoPort),
	} {
		waitUpstreamLog(t, dante, fmt.Sprintf("%s.%d", dst.Addr(), dst.Port()))
	}
	out, err := g.cmd("rules")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "rule[4]") || !strings.Contains(out, mac.String()) {
		t.Errorf("gatewayd rules does not list rule[4] with the client's MAC %s:\n%s", mac, out)
	}
	g.stop()
}

// TestPolicyDomainRules: a flow's domain comes from gatewayd's DNS memory
// (the client resolved the name through the hijacked DNS, then connects
// to the address), from the TLS SNI (curl --resolve against a TLS
// server) and from the HTTP Host header; exact, suffix and keyword rules
// send such flows through dante, and the same destinations with other
// names go direct.
func TestPolicyDomainRules(t *testing.T) {
	netlab.RequireTools(t, "dig", "dnsmasq", "curl")
	lab := netlab.NewT(t)
	serveAll(t, lab)
	dns := lab.Remotes[2]
	startDnsmasq(t, lab, dns)
	named := serveNamed(t, lab)
	tlsDst, httpDst := lab.Remotes[0], lab.Remotes[1]
	for _, a := range []netip.Addr{tlsDst.V4, tlsDst.V6} {
		serveWho(t, lab.Server, netip.AddrPortFrom(a, whoHTTPSPort), true)
	}
	serveWho(t, lab.Server, netip.AddrPortFrom(httpDst.V4, whoHTTPPort), false)
	dante := startDante(t, lab)
	g := newPolicyGW(t, lab, opts{dns: dnsVia(dns)},
		socksOutbound("socks", dante.addr, "", "", "")+
			"[[rule]]\ndomain = [\"www.example.test\"]\noutbound = \"socks\"\n"+
			"[[rule]]\ndomain_suffix = [\"sni.example.test\"]\noutbound = \"socks\"\n"+
			"[[rule]]\ndomain_keyword = [\"hostkw\"]\noutbound = \"socks\"\n")
	g.start()

	t.Run("dns memory", func(t *testing.T) {
		// Before the client resolved the name, nothing names the address.
		if got := peerSeen(t, lab, named.V4); got != lab.GatewayWAN.V4 {
			t.Errorf("%s before resolving: server saw %s, want the gateway (direct)", named.V4, got)
		}
		for _, q := range []struct{ typ, want string }{{"A", named.V4.String()}, {"AAAA", named.V6.String()}} {
			if out, err := dig(t, lab.Client, "@198.18.50.50", "+short", "www.example.test", q.typ); err != nil || strings.TrimSpace(out) != q.want {
				t.Fatalf("dig www.example.test %s = %q, %v; want %s", q.typ, out, err, q.want)
			}
		}
		for _, a := range []netip.Addr{named.V4, named.V6} {
			if got := peerSeen(t, lab, a); got != pick(dante.egress, a) {
				t.Errorf("%s after resolving www.example.test: server saw %s, want dante's egress", a, got)
			}
		}
		m := waitLogRE(t, g, flowLogRE("tcp flow routed", netip.AddrPortFrom(named.V6, echoPort), "outbound"))
		if !strings.Contains(m[0], "domain=www.example.test") || logUnquote(m[1]) != "socks" {
			t.Errorf("routing of the flow to %s: %s", named.V6, m[0])
		}
	})
	t.Run("tls sni", func(t *testing.T) {
		for _, a := range []netip.Addr{tlsDst.V4, tlsDst.V6} {
			for _, c := range []struct {
				name string
				want netip.Addr
			}{{"a.sni.example.test", pick(dante.egress, a)}, {"other.test", pick(lab.GatewayWAN, a)}} {
				resolve := fmt.Sprintf("%s:%d:%s", c.name, whoHTTPSPort, a)
				if a.Is6() {
					resolve = fmt.Sprintf("%s:%d:[%s]", c.name, whoHTTPSPort, a)
				}
				w := curlWho(t, lab, "-k", "--resolve", resolve, fmt.Sprintf("https://%s:%d/", c.name, whoHTTPSPort))
				if w.SNI != c.name || w.Peer != c.want {
					t.Errorf("https://%s via %s: server saw %s with SNI %q, want %s with SNI %q", c.name, a, w.Peer, w.SNI, c.want, c.name)
				}
			}
		}
		m := waitLogRE(t, g, flowLogRE("tcp flow routed", netip.AddrPortFrom(tlsDst.V4, whoHTTPSPort), "outbound"))
		if !strings.Contains(m[0], "domain=a.sni.example.test") {
			t.Errorf("the first TLS flow was routed without its SNI: %s", m[0])
		}
	})
	t.Run("http host", func(t *testing.T) {
		url := fmt.Sprintf("http://%s/", netip.AddrPortFrom(httpDst.V4, whoHTTPPort))
		for _, c := range []struct {
			host string
			want netip.Addr
		}{{"www.hostkw.test", dante.egress.V4}, {"plain.test", lab.GatewayWAN.V4}} {
			w := curlWho(t, lab, "-H", "Host: "+c.host, url)
			if w.Host != c.host || w.Peer != c.want {
				t.Errorf("%s with Host %s: server saw %s (Host %q), want %s", url, c.host, w.Peer, w.Host, c.want)
			}
		}
	})
	g.stop()
}

// TestPolicyReject: TCP to a destination a rule rejects is reset at once
// (not left to time out), both families; UDP to it is dropped (nothing
// reaches the server, nothing comes back), while other destinations work;
// the counters of the status endpoint count both.
func TestPolicyReject(t *testing.T) {
	lab := netlab.NewT(t)
	serveAll(t, lab)
	serveUDPAll(t, lab)
	rej := lab.Remotes[1]
	got := map[netip.Addr]*atomic.Int64{}
	for _, a := range []netip.Addr{rej.V4, rej.V6} {
		got[a] = countingUDPEcho(t, lab.Server, netip.AddrPortFrom(a, udpEchoPort+1))
	}
	g := newPolicyGW(t, lab, opts{}, dstRule(rej, "reject"))
	g.start()

	for _, a := range []netip.Addr{rej.V4, rej.V6} {
		ap := netip.AddrPortFrom(a, echoPort)
		took := expectReset(t, lab, ap)
		t.Logf("TCP to %s reset after %v", ap, took)
		if err := closedErr(t, g, ap); !strings.Contains(err, "rejected by policy") {
			t.Errorf("flow to %s: gatewayd logged err=%s, want \"rejected by policy\"", ap, err)
		}
		c := clientUDP(t, lab, a.Is6())
		var payloads [][]byte
		for i := range rejectedDatagrams {
			payloads = append(payloads, fmt.Appendf(nil, "rejected %d", i))
		}
		expectNoReply(t, c, netip.AddrPortFrom(a, udpEchoPort+1), payloads...)
		if n := got[a].Load(); n != 0 {
			t.Errorf("the server at %s received %d datagrams a rule rejects", a, n)
		}
		ok := netip.AddrPortFrom(pick(lab.Remotes[0], a), udpEchoPort)
		if _, peer := exchange(t, c, ok, []byte("allowed")); peer.Addr() != pick(lab.GatewayWAN, a) {
			t.Errorf("%s saw %s, want the gateway (direct)", ok, peer)
		}
	}
	if got := peerSeen(t, lab, lab.Remotes[0].V6); got != lab.GatewayWAN.V6 {
		t.Errorf("TCP to %s (no rule): server saw %s, want the gateway", lab.Remotes[0].V6, got)
	}
	m := policyMetrics(t, g)
	if n := m.value(t, "gatewayd_udp_drops_total", "reason", "rejected"); n != 2*rejectedDatagrams {
		t.Errorf("gatewayd counted %v UDP datagrams dropped as rejected, want %d", n, 2*rejectedDatagrams)
	}
	if n := m.value(t, "gatewayd_outbound_rejected_total", "outbound", "reject"); n != 2 {
		t.Errorf("outbound reject counted %v TCP flows, want 2", n)
	}
	g.stop()
}

// rejectedDatagrams is how many datagrams TestPolicyReject sends per
// family to the rejected destination.
const rejectedDatagrams = 3

// quicPort is UDP's HTTP/3 port, which route.quic = "reject" refuses.
const quicPort = 443

// TestPolicyQUICSwitch: with route.quic = "reject", UDP to port 443 is
// dropped (both families), while UDP to other ports and TCP to port 443
// still work. The config also has a domain rule, as a real one would
// (the switch exists so that browsers fall back to TCP, where the rules
// see the name): with it gatewayd logs the routing of each UDP flow, and
// the QUIC flows' route is the reject route (-1).
func TestPolicyQUICSwitch(t *testing.T) {
	lab := netlab.NewT(t)
	serveUDPAll(t, lab)
	dst := lab.Remotes[0]
	got := map[netip.Addr]*atomic.Int64{}
	for _, a := range []netip.Addr{dst.V4, dst.V6} {
		got[a] = countingUDPEcho(t, lab.Server, netip.AddrPortFrom(a, quicPort))
		serve(t, lab.Server, netip.AddrPortFrom(a, quicPort), peerEcho)
	}
	g := newPolicyGW(t, lab, opts{}, "[route]\nquic = \"reject\"\n"+
		"[[rule]]\ndomain_suffix = [\"ads.example.test\"]\noutbound = \"reject\"\n")
	g.start()

	for _, a := range []netip.Addr{dst.V4, dst.V6} {
		c := clientUDP(t, lab, a.Is6())
		quic := netip.AddrPortFrom(a, quicPort)
		expectNoReply(t, c, quic, []byte("not really a QUIC Initial"))
		if n := got[a].Load(); n != 0 {
			t.Errorf("the server at %s received %d datagrams on the QUIC port", quic, n)
		}
		if m := waitLogRE(t, g, flowLogRE("udp flow routed", quic, "route")); m[1] != "-1" {
			t.Errorf("UDP flow to %s: route %s, want -1 (rejected): %s", quic, m[1], m[0])
		}
		other := netip.AddrPortFrom(a, udpEchoPort)
		if src, _ := exchange(t, c, other, []byte("not QUIC")); src != other {
			t.Errorf("reply to %s came from %s", other, src)
		}
		if p := peerFrom(t, lab, pick(lab.ClientAddr, a), quic); p != pick(lab.GatewayWAN, a) {
			t.Errorf("TCP to %s: server saw %s, want the gateway (direct)", quic, p)
		}
	}
	if n := policyMetrics(t, g).value(t, "gatewayd_udp_drops_total", "reason", "rejected"); n != 2 {
		t.Errorf("gatewayd counted %v UDP datagrams dropped as rejected, want 2 (one per family)", n)
	}
	g.stop()
}
