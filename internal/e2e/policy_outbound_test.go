package e2e

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/gatewayd/gatewayd/internal/netlab"
)

// socksOutbound is an [[outbound]] of type socks5 (user and pass may be
// empty) with its extra keys.
func socksOutbound(name string, server netip.AddrPort, user, pass, extra string) string {
	s := fmt.Sprintf("[[outbound]]\nname = %q\ntype = \"socks5\"\nserver = %q\n", name, server)
	if user != "" {
		s += fmt.Sprintf("username = %q\npassword = %q\n", user, pass)
	}
	return s + extra
}

// httpOutbound is an [[outbound]] of type http (CONNECT).
func httpOutbound(name string, server netip.AddrPort, user, pass string) string {
	s := fmt.Sprintf("[[outbound]]\nname = %q\ntype = \"http\"\nserver = %q\n", name, server)
	if user != "" {
		s += fmt.Sprintf("username = %q\npassword = %q\n", user, pass)
	}
	return s
}

// dstRule is a [[rule]] sending flows to the addresses of r to outbound.
func dstRule(r netlab.Addrs, outbound string) string {
	return fmt.Sprintf("[[rule]]\ndst = [%q, %q]\noutbound = %q\n", hostPrefix(r.V4), hostPrefix(r.V6), outbound)
}

// TestPolicySOCKS5TCP: flows a rule sends to a socks5 outbound (dante, no
// authentication) reach their destination through the proxy, IPv4 (curl
// to an HTTP server) and IPv6 (echo round trip); dante logs them and
// gatewayd logs the routing. Flows no rule matches go direct.
func TestPolicySOCKS5TCP(t *testing.T) {
	lab := netlab.NewT(t)
	netlab.RequireTools(t, "curl")
	serveAll(t, lab)
	dst := lab.Remotes[0]
	serveWho(t, lab.Server, netip.AddrPortFrom(dst.V4, whoHTTPPort), false)
	dante := startDante(t, lab)
	g := newPolicyGW(t, lab, opts{}, socksOutbound("socks", dante.addr, "", "", "")+dstRule(dst, "socks"))
	g.start()

	httpDst := netip.AddrPortFrom(dst.V4, whoHTTPPort)
	if w := curlWho(t, lab, fmt.Sprintf("http://%s/", httpDst)); w.Peer != dante.egress.V4 {
		t.Errorf("curl %s: server saw %s, want dante's egress %s", httpDst, w.Peer, dante.egress.V4)
	}
	if got := routedTo(t, g, httpDst); got != "socks" {
		t.Errorf("flow to %s routed to %q, want socks", httpDst, got)
	}
	waitUpstreamLog(t, dante, fmt.Sprintf("%s.%d", dst.V4, whoHTTPPort))

	if got := peerSeen(t, lab, dst.V6); got != dante.egress.V6 {
		t.Errorf("%s: server saw %s, want dante's egress %s", dst.V6, got, dante.egress.V6)
	}
	waitUpstreamLog(t, dante, fmt.Sprintf("%s.%d", dst.V6, echoPort))

	other := lab.Remotes[1].V4
	if got := peerSeen(t, lab, other); got != lab.GatewayWAN.V4 {
		t.Errorf("%s (no rule): server saw %s, want the gateway %s (direct)", other, got, lab.GatewayWAN.V4)
	}
	if got := routedTo(t, g, netip.AddrPortFrom(other, echoPort)); got != "direct" {
		t.Errorf("flow to %s routed to %q, want direct", other, got)
	}
	g.stop()
}

// TestPolicySOCKS5Auth: against microsocks requiring a username and
// password (RFC 1929), the right credentials relay the flow; a wrong
// password and no credentials at all get the client a prompt reset, and
// gatewayd logs why and counts them as authentication failures.
func TestPolicySOCKS5Auth(t *testing.T) {
	lab := netlab.NewT(t)
	serveAll(t, lab)
	ms := startMicrosocks(t, lab)
	good, bad, none := lab.Remotes[0], lab.Remotes[1], lab.Remotes[2]
	g := newPolicyGW(t, lab, opts{}, socksOutbound("good", ms.addr, proxyUser, proxyPass, "")+
		socksOutbound("badpass", ms.addr, proxyUser, "wrong", "")+
		socksOutbound("nocreds", ms.addr, "", "", "")+
		dstRule(good, "good")+dstRule(bad, "badpass")+dstRule(none, "nocreds"))
	g.start()

	if got := peerSeen(t, lab, good.V4); got != ms.egress.V4 {
		t.Errorf("%s: server saw %s, want microsocks' egress %s", good.V4, got, ms.egress.V4)
	}
	waitUpstreamLog(t, ms, fmt.Sprintf("connected to %s:%d", good.V4, echoPort))

	for _, c := range []struct {
		dst  netip.Addr
		want string // in the relay's error
	}{
		{bad.V4, fmt.Sprintf("rejected username %q", proxyUser)},
		{none.V4, "accepts none of the offered authentication methods"},
	} {
		ap := netip.AddrPortFrom(c.dst, echoPort)
		took := expectReset(t, lab, ap)
		if err := closedErr(t, g, ap); !strings.Contains(err, c.want) {
			t.Errorf("flow to %s: gatewayd logged err=%s, want it to say %q", ap, err, c.want)
		}
		t.Logf("flow to %s reset after %v", ap, took)
	}
	if strings.Contains(ms.log.String(), "connected to "+bad.V4.String()) {
		t.Errorf("microsocks connected a flow whose credentials were wrong:\n%s", ms.log.String())
	}
	expectFailures(t, policyMetrics(t, g), map[string]string{"badpass": "auth", "nocreds": "auth"})
	g.stop()
}

// TestPolicySOCKS5UDP: UDP flows a rule sends to the socks5 outbound go
// through dante's UDP ASSOCIATE relay, both families: the destination sees
// dante, and the reply reaches the client from the exact address:port it
// sent to. Other UDP, and TCP to the same destination (the rule is
// proto = "udp"), goes direct.
func TestPolicySOCKS5UDP(t *testing.T) {
	lab := netlab.NewT(t)
	serveAll(t, lab)
	serveUDPAll(t, lab)
	dante := startDante(t, lab)
	dst := lab.Remotes[0]
	g := newPolicyGW(t, lab, opts{}, socksOutbound("socks", dante.addr, "", "", "")+
		fmt.Sprintf("[[rule]]\nproto = \"udp\"\ndst = [%q, %q]\noutbound = \"socks\"\n", hostPrefix(dst.V4), hostPrefix(dst.V6)))
	g.start()

	for _, v6 := range []bool{false, true} {
		c := clientUDP(t, lab, v6)
		to := netip.AddrPortFrom(dst.V4, udpEchoPort)
		if v6 {
			to = netip.AddrPortFrom(dst.V6, udpEchoPort)
		}
		for i := range 3 {
			src, peer := exchange(t, c, to, fmt.Appendf(nil, "through socks %d", i))
			if src != to {
				t.Errorf("reply to %s came from %s", to, src)
			}
			if want := pick(dante.egress, to.Addr()); peer.Addr() != want {
				t.Errorf("%s saw %s, want dante's egress %s", to, peer, want)
			}
		}
		other := netip.AddrPortFrom(pick(lab.Remotes[1], to.Addr()), udpEchoPort)
		if _, peer := exchange(t, c, other, []byte("direct")); peer.Addr() != pick(lab.GatewayWAN, to.Addr()) {
			t.Errorf("%s (no rule) saw %s, want the gateway (direct)", other, peer)
		}
	}
	waitUpstreamLog(t, dante, "udpassociate")
	if got := peerSeen(t, lab, dst.V4); got != lab.GatewayWAN.V4 {
		t.Errorf("TCP to %s (udp-only rule): server saw %s, want the gateway (direct)", dst.V4, got)
	}
	g.stop()
}

// TestPolicyHTTPConnect: flows sent to an http outbound go through
// tinyproxy with CONNECT and basic auth; a wrong password, missing
// credentials and a port tinyproxy does not allow CONNECT to each get the
// client a prompt reset; gatewayd logs tinyproxy's answer and counts the
// failures by kind.
func TestPolicyHTTPConnect(t *testing.T) {
	lab := netlab.NewT(t)
	serveAll(t, lab)
	tp := startTinyproxy(t, lab)
	good, bad, none := lab.Remotes[0], lab.Remotes[1], lab.Remotes[2]
	g := newPolicyGW(t, lab, opts{}, httpOutbound("web", tp.addr, proxyUser, proxyPass)+
		httpOutbound("badpass", tp.addr, proxyUser, "wrong")+
		httpOutbound("nocreds", tp.addr, "", "")+
		dstRule(good, "web")+dstRule(bad, "badpass")+dstRule(none, "nocreds"))
	g.start()

	if got := peerSeen(t, lab, good.V4); got != tp.egress.V4 {
		t.Errorf("%s: server saw %s, want tinyproxy's egress %s", good.V4, got, tp.egress.V4)
	}
	waitUpstreamLog(t, tp, fmt.Sprintf("CONNECT %s:%d", good.V4, echoPort))
	if got := routedTo(t, g, netip.AddrPortFrom(good.V4, echoPort)); got != "web" {
		t.Errorf("flow to %s routed to %q, want web", good.V4, got)
	}

	for _, c := range []struct {
		dst  netip.AddrPort
		want string // in the relay's error: tinyproxy's status line
	}{
		// tinyproxy 1.11 answers wrong credentials with 401, missing
		// ones with 407; both are authentication failures.
		{netip.AddrPortFrom(bad.V4, echoPort), "401 Unauthorized (credentials rejected)"},
		{netip.AddrPortFrom(none.V4, echoPort), "407 Proxy Authentication Required (no credentials configured)"},
		{netip.AddrPortFrom(good.V4, halfPort), "403"}, // not a ConnectPort
	} {
		took := expectReset(t, lab, c.dst)
		if err := closedErr(t, g, c.dst); !strings.Contains(err, c.want) {
			t.Errorf("flow to %s: gatewayd logged err=%s, want it to say %q", c.dst, err, c.want)
		}
		t.Logf("flow to %s reset after %v", c.dst, took)
	}
	expectFailures(t, policyMetrics(t, g), map[string]string{"badpass": "auth", "nocreds": "auth", "web": "refused"})
	g.stop()
}

// expectFailures checks that each outbound named in want counted exactly
// one failed dial, of the kind given.
func expectFailures(t *testing.T, m metrics, want map[string]string) {
	t.Helper()
	for ob, kind := range want {
		if n := m.value(t, "gatewayd_outbound_dial_failures_total", "outbound", ob, "kind", kind); n != 1 {
			t.Errorf("outbound %s: %v failures of kind %s counted, want 1", ob, n, kind)
		}
	}
}
