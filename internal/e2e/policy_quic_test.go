package e2e

import (
	"bytes"
	"net"
	"net/netip"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/internal/netlab"
	"github.com/gatewayd/gatewayd/sniff"
)

// quicInitialPayload bounds the ClientHello bytes one Initial carries
// here, about what a client fits in a 1200-byte datagram.
const quicInitialPayload = 1100

// splitInitials returns real QUIC Initial datagrams for a ClientHello naming
// server, cut in the middle of the name (clients that shuffle their
// extensions put it anywhere), then every quicInitialPayload bytes.
func splitInitials(t *testing.T, server string) [][]byte {
	t.Helper()
	hello, err := sniff.QUICClientHello(server)
	if err != nil {
		t.Fatal(err)
	}
	at := bytes.Index(hello, []byte(server))
	if at < 0 {
		t.Fatalf("the ClientHello does not contain %q", server)
	}
	var cuts []int
	for c := at + len(server)/2; c < len(hello); c += quicInitialPayload {
		cuts = append(cuts, c)
	}
	grams, err := sniff.SealClientInitials([]byte("gwd-dcid"), hello, cuts...)
	if err != nil {
		t.Fatal(err)
	}
	return grams
}

// udpRoutedRE matches the dispatcher's log line for the UDP flow from
// client to dst and captures its domain and route.
func udpRoutedRE(client, dst netip.AddrPort) *regexp.Regexp {
	return regexp.MustCompile(`msg="udp flow routed" .*\bclient="?` + regexp.QuoteMeta(client.String()) + `"? dst="?` +
		regexp.QuoteMeta(dst.String()) + `"? domain=` + logValue + ` route=` + logValue)
}

// TestPolicyQUICSplitClientHello: a ClientHello too large for one Initial
// is sent as clients send it, two Initial datagrams back to back. The name
// a domain rule matches is complete only with the second: gatewayd holds
// the flow until then and routes both datagrams on the rule (reject here),
// while a flow naming another server is relayed with both datagrams, in
// order. IPv4 and IPv6.
func TestPolicyQUICSplitClientHello(t *testing.T) {
	lab := netlab.NewT(t)
	dst := lab.Remotes[0]
	got := map[netip.Addr]*atomic.Int64{}
	for _, a := range []netip.Addr{dst.V4, dst.V6} {
		got[a] = countingUDPEcho(t, lab.Server, netip.AddrPortFrom(a, quicPort))
	}
	g := newPolicyGW(t, lab, opts{}, "[[rule]]\ndomain = [\"split.example.test\"]\noutbound = \"reject\"\n")
	g.start()

	for _, a := range []netip.Addr{dst.V4, dst.V6} {
		quic := netip.AddrPortFrom(a, quicPort)

		blocked := clientUDP(t, lab, a.Is6())
		expectNoReply(t, blocked, quic, splitInitials(t, "split.example.test")...)
		if n := got[a].Load(); n != 0 {
			t.Errorf("the server at %s received %d datagrams of the rejected flow", quic, n)
		}
		m := waitLogRE(t, g, udpRoutedRE(unmapAP(localAP(blocked)), quic))
		if logUnquote(m[1]) != "split.example.test" || m[2] != "-1" {
			t.Errorf("rejected flow to %s logged domain %s, route %s: %s", quic, m[1], m[2], m[0])
		}

		allowed := clientUDP(t, lab, a.Is6())
		grams := splitInitials(t, "other.example.test")
		for _, d := range grams {
			if _, err := allowed.WriteToUDPAddrPort(d, quic); err != nil {
				t.Fatal(err)
			}
		}
		wan := netip.AddrPortFrom(pick(lab.GatewayWAN, a), 0).String() // "ADDR:0" or "[ADDR]:0"
		prefix := "PEER " + strings.TrimSuffix(wan, "0")               // the server saw the gateway, any port
		buf := make([]byte, 4096)
		for i, d := range grams {
			_ = allowed.SetReadDeadline(time.Now().Add(ioGuard))
			n, src, err := allowed.ReadFromUDPAddrPort(buf)
			if err != nil {
				t.Fatalf("reply %d from %s: %v", i, quic, err)
			}
			if unmapAP(src) != quic || !bytes.HasPrefix(buf[:n], []byte(prefix)) || !bytes.HasSuffix(buf[:n], d) {
				t.Errorf("reply %d: %d bytes from %s, want datagram %d echoed from %s via the gateway", i, n, src, i, quic)
			}
		}
		m = waitLogRE(t, g, udpRoutedRE(unmapAP(localAP(allowed)), quic))
		if logUnquote(m[1]) != "other.example.test" {
			t.Errorf("allowed flow to %s logged domain %s: %s", quic, m[1], m[0])
		}
	}
	m := policyMetrics(t, g)
	if held, timeouts := m.value(t, "gatewayd_udp_flows_held_total"), m.value(t, "gatewayd_udp_hold_timeouts_total"); held != 4 || timeouts != 0 {
		t.Errorf("gatewayd held %v UDP flows, %v timed out; want 4 (two per family) and 0", held, timeouts)
	}
	g.stop()
}

// localAP is c's local address.
func localAP(c *net.UDPConn) netip.AddrPort {
	return netip.MustParseAddrPort(c.LocalAddr().String())
}
