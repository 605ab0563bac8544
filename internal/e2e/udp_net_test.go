package e2e

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/internal/netlab"
)

// UDP test server ports in the server namespace.
const (
	udpEchoPort = 7100 // replies "PEER <src addr:port>|<payload>" from the address it was sent to
	udpConePort = 7200 // remote B's socket in the full-cone test
)

// listenUDP opens a UDP socket bound to addr inside ns, closed at test end.
func listenUDP(t *testing.T, ns *netlab.NS, addr netip.AddrPort) *net.UDPConn {
	t.Helper()
	var c *net.UDPConn
	err := ns.Do(func() (err error) {
		c, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(addr))
		return err
	})
	if err != nil {
		t.Fatalf("listen udp %s in %s: %v", addr, ns.Name, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// serveUDPEcho answers every datagram with "PEER <src>|" + payload, from
// the address it was sent to (the socket is bound to it).
func serveUDPEcho(t *testing.T, ns *netlab.NS, addr netip.AddrPort) {
	c := listenUDP(t, ns, addr)
	go func() {
		buf := make([]byte, 1<<16)
		for {
			n, src, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			reply := append([]byte(fmt.Sprintf("PEER %s|", unmapAP(src))), buf[:n]...)
			_, _ = c.WriteToUDPAddrPort(reply, src)
		}
	}()
}

func unmapAP(a netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
}

// serveUDPAll starts the UDP echo server on every remote address.
func serveUDPAll(t *testing.T, lab *netlab.Lab) {
	for _, r := range lab.Remotes {
		for _, a := range []netip.Addr{r.V4, r.V6} {
			serveUDPEcho(t, lab.Server, netip.AddrPortFrom(a, udpEchoPort))
		}
	}
}

// clientUDP opens an unconnected UDP socket in the client namespace.
func clientUDP(t *testing.T, lab *netlab.Lab, v6 bool) *net.UDPConn {
	any := netip.AddrPortFrom(lab.ClientAddr.V4, 0)
	if v6 {
		any = netip.AddrPortFrom(lab.ClientAddr.V6, 0)
	}
	return listenUDP(t, lab.Client, any)
}

// exchange sends payload to dst from c and returns the reply's source and
// the peer the echo server reported, checking the echoed payload.
func exchange(t *testing.T, c *net.UDPConn, dst netip.AddrPort, payload []byte) (src, peer netip.AddrPort) {
	t.Helper()
	if _, err := c.WriteToUDPAddrPort(payload, dst); err != nil {
		t.Fatalf("send to %s: %v", dst, err)
	}
	buf := make([]byte, 1<<17)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, src, err := c.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatalf("reply from %s: %v", dst, err)
	}
	head, body, ok := strings.Cut(string(buf[:n]), "|")
	if !ok || body != string(payload) {
		t.Fatalf("reply from %s: %d bytes, payload intact=%v", dst, n, ok && body == string(payload))
	}
	peer, err = netip.ParseAddrPort(strings.TrimPrefix(head, "PEER "))
	if err != nil {
		t.Fatalf("bad reply head %q", head)
	}
	return unmapAP(src), peer
}
