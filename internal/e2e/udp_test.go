package e2e

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/internal/netlab"
)

// TestUDPEchoFromOriginalDestination: datagrams to several destinations and
// ports, both families, are relayed; each reply's source is exactly the
// address:port the client sent to, and the server saw the gateway.
func TestUDPEchoFromOriginalDestination(t *testing.T) {
	lab := netlab.NewT(t)
	serveUDPAll(t, lab)
	for _, r := range lab.Remotes[:2] {
		for _, a := range []netip.Addr{r.V4, r.V6} {
			serveUDPEcho(t, lab.Server, netip.AddrPortFrom(a, udpEchoPort+1))
		}
	}
	g := newGW(t, lab, opts{})
	g.start()
	for _, v6 := range []bool{false, true} {
		c := clientUDP(t, lab, v6)
		wan := lab.GatewayWAN.V4
		if v6 {
			wan = lab.GatewayWAN.V6
		}
		for _, r := range lab.Remotes[:2] {
			for _, port := range []uint16{udpEchoPort, udpEchoPort + 1} {
				dst := netip.AddrPortFrom(r.V4, port)
				if v6 {
					dst = netip.AddrPortFrom(r.V6, port)
				}
				src, peer := exchange(t, c, dst, []byte("hello "+dst.String()))
				if src != dst {
					t.Errorf("reply to %s came from %s", dst, src)
				}
				if peer.Addr() != wan {
					t.Errorf("%s saw %s, want the gateway's WAN address %s", dst, peer, wan)
				}
			}
		}
	}
	g.stop()
}

// TestUDPManyClients: 60 concurrent client sockets exchange datagrams with
// unique payloads; none gets another's reply.
func TestUDPManyClients(t *testing.T) {
	lab := netlab.NewT(t)
	serveUDPAll(t, lab)
	g := newGW(t, lab, opts{})
	g.start()
	const clients, rounds = 60, 10
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := range clients {
		v6 := i%2 == 1
		c := clientUDP(t, lab, v6)
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 2048)
			for j := range rounds {
				r := lab.Remotes[(i+j)%len(lab.Remotes)]
				dst := netip.AddrPortFrom(r.V4, udpEchoPort)
				if v6 {
					dst = netip.AddrPortFrom(r.V6, udpEchoPort)
				}
				want := fmt.Sprintf("client %d round %d", i, j)
				if _, err := c.WriteToUDPAddrPort([]byte(want), dst); err != nil {
					errs <- err
					return
				}
				_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
				n, src, err := c.ReadFromUDPAddrPort(buf)
				if err != nil {
					errs <- fmt.Errorf("client %d round %d: %w", i, j, err)
					return
				}
				if _, body, _ := strings.Cut(string(buf[:n]), "|"); body != want || unmapAP(src) != dst {
					errs <- fmt.Errorf("client %d round %d: got %q from %s", i, j, buf[:n], src)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	g.stop()
}

// TestUDPFullCone: after the client talks to A, a different remote B can
// reach the client through the same mapping (the gateway's WAN address and
// port that A saw), the client sees B as the source, and the client's
// answer to B leaves through the same mapping.
func TestUDPFullCone(t *testing.T) {
	lab := netlab.NewT(t)
	serveUDPAll(t, lab)
	g := newGW(t, lab, opts{})
	g.start()
	for _, v6 := range []bool{false, true} {
		a, b := lab.Remotes[0].V4, lab.Remotes[1].V4
		if v6 {
			a, b = lab.Remotes[0].V6, lab.Remotes[1].V6
		}
		c := clientUDP(t, lab, v6)
		_, mapped := exchange(t, c, netip.AddrPortFrom(a, udpEchoPort), []byte("to A"))
		bSock := listenUDP(t, lab.Server, netip.AddrPortFrom(b, udpConePort))
		if _, err := bSock.WriteToUDPAddrPort([]byte("from B"), mapped); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 100)
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, src, err := c.ReadFromUDPAddrPort(buf)
		if err != nil || string(buf[:n]) != "from B" || unmapAP(src) != bSock.LocalAddr().(*net.UDPAddr).AddrPort() {
			t.Fatalf("v6=%v: client got %q from %s (%v), want \"from B\" from %s", v6, buf[:n], src, err, bSock.LocalAddr())
		}
		if _, err := c.WriteToUDPAddrPort([]byte("answer B"), unmapAP(src)); err != nil {
			t.Fatal(err)
		}
		_ = bSock.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, from, err := bSock.ReadFromUDPAddrPort(buf)
		if err != nil || string(buf[:n]) != "answer B" || unmapAP(from) != mapped {
			t.Errorf("v6=%v: B got %q from %s (%v), want \"answer B\" from the mapping %s", v6, buf[:n], from, err, mapped)
		}
	}
	g.stop()
}

// TestUDPLargeDatagrams: 8 KB and 60 KB datagrams (fragmented on the wire,
// reassembled by TPROXY) arrive intact both ways.
func TestUDPLargeDatagrams(t *testing.T) {
	lab := netlab.NewT(t)
	serveUDPAll(t, lab)
	g := newGW(t, lab, opts{})
	g.start()
	for _, v6 := range []bool{false, true} {
		c := clientUDP(t, lab, v6)
		dst := netip.AddrPortFrom(lab.Remotes[0].V4, udpEchoPort)
		if v6 {
			dst = netip.AddrPortFrom(lab.Remotes[0].V6, udpEchoPort)
		}
		for _, size := range []int{8 << 10, 60 << 10} {
			payload := bytes.Repeat([]byte(fmt.Sprintf("%08d", size)), size/8)
			exchange(t, c, dst, payload)
		}
	}
	g.stop()
}

// fdCount counts the open file descriptors of pid.
func fdCount(t *testing.T, pid int) int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// TestUDPSessionLimitAndExpiry: a burst of new sessions beyond the limit
// evicts old ones (every new client still gets through); descriptors stay
// bounded and return to the baseline after the idle timeout.
func TestUDPSessionLimitAndExpiry(t *testing.T) {
	lab := netlab.NewT(t)
	serveUDPAll(t, lab)
	const limit = 10
	g := newGW(t, lab, opts{udp: fmt.Sprintf("idle_timeout = \"1s\"\nmax_sessions = %d\n", limit)})
	g.start()
	base := fdCount(t, g.proc.Pid())
	dst := netip.AddrPortFrom(lab.Remotes[0].V4, udpEchoPort)
	peak := 0
	for i := range 8 * limit {
		c := clientUDP(t, lab, false)
		exchange(t, c, dst, []byte(fmt.Sprintf("burst %d", i)))
		c.Close()
		peak = max(peak, fdCount(t, g.proc.Pid()))
	}
	// Each session: one upstream socket; plus reply sockets (one here).
	if bound := base + limit + 4; peak > bound {
		t.Errorf("descriptors peaked at %d with %d sessions allowed (baseline %d)", peak, limit, base)
	}
	if n := strings.Count(g.log.String(), "reason=evicted"); n < 8*limit-limit-1 {
		t.Errorf("%d sessions logged as evicted, want about %d", n, 7*limit)
	}
	deadline := time.Now().Add(10 * time.Second)
	for fdCount(t, g.proc.Pid()) > base {
		if time.Now().After(deadline) {
			t.Fatalf("descriptors still %d after idle expiry (baseline %d)", fdCount(t, g.proc.Pid()), base)
		}
		time.Sleep(100 * time.Millisecond)
	}
	g.stop()
}

// TestUDPNotIntercepted: bypassed destinations, the router's own addresses
// and replies to WAN-initiated flows are never intercepted for UDP.
func TestUDPNotIntercepted(t *testing.T) {
	lab := netlab.NewT(t)
	serveUDPAll(t, lab)
	for _, a := range []netip.Addr{lab.GatewayLAN.V4, lab.GatewayLAN.V6, lab.GatewayWAN.V4} {
		serveUDPEcho(t, lab.Gateway, netip.AddrPortFrom(a, udpEchoPort))
	}
	for _, a := range []netip.Addr{lab.ClientAddr.V4, lab.ClientAddr.V6} {
		serveUDPEcho(t, lab.Client, netip.AddrPortFrom(a, udpEchoPort))
	}
	byp := lab.Remotes[2]
	g := newGW(t, lab, opts{bypass: []string{byp.V4.String() + "/32", byp.V6.String() + "/128"}})
	g.start()
	for _, v6 := range []bool{false, true} {
		c := clientUDP(t, lab, v6)
		self := netip.AddrPortFrom(lab.ClientAddr.V4, 0)
		dsts := []netip.Addr{byp.V4, lab.GatewayLAN.V4, lab.GatewayWAN.V4}
		if v6 {
			self = netip.AddrPortFrom(lab.ClientAddr.V6, 0)
			dsts = []netip.Addr{byp.V6, lab.GatewayLAN.V6}
		}
		for _, d := range dsts {
			_, peer := exchange(t, c, netip.AddrPortFrom(d, udpEchoPort), []byte("direct"))
			if peer.Addr() != self.Addr() {
				t.Errorf("%s saw %s, want the client itself (not intercepted)", d, peer)
			}
		}
	}
	// From the WAN side to a LAN client: the client's reply enters the LAN
	// interface in the conntrack reply direction and is forwarded.
	for _, pair := range [][2]netip.Addr{{lab.ServerAddr.V4, lab.ClientAddr.V4}, {lab.ServerAddr.V6, lab.ClientAddr.V6}} {
		s := listenUDP(t, lab.Server, netip.AddrPortFrom(pair[0], 0))
		src, peer := exchange(t, s, netip.AddrPortFrom(pair[1], udpEchoPort), []byte("from wan"))
		if src.Addr() != pair[1] || peer.Addr() != pair[0] {
			t.Errorf("WAN->LAN: reply from %s, client saw %s", src, peer)
		}
	}
	g.stop()
}
