package e2e

import (
	"bufio"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"net/netip"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/internal/netlab"
)

// TestTCPRelayedToOriginalDestination: every remote, both families, is
// reached through gatewayd: the server sees the gateway's WAN address (the
// lab has no NAT, so a forwarded flow would show the client's address) and
// the client sees the original destination as its peer.
func TestTCPRelayedToOriginalDestination(t *testing.T) {
	lab := netlab.NewT(t)
	serveAll(t, lab)
	g := newGW(t, lab, opts{})
	g.start()
	for _, r := range lab.Remotes {
		for _, dst := range []netip.Addr{r.V4, r.V6} {
			want := lab.GatewayWAN.V4
			if dst.Is6() {
				want = lab.GatewayWAN.V6
			}
			if got := peerSeen(t, lab, dst); got != want {
				t.Errorf("%s: server saw %s, want the gateway's WAN address %s", dst, got, want)
			}
		}
	}
	g.stop()
}

// TestTCPLargeTransferIntact pushes 64 MiB each way through the relay and
// compares checksums.
func TestTCPLargeTransferIntact(t *testing.T) {
	lab := netlab.NewT(t)
	serveAll(t, lab)
	g := newGW(t, lab, opts{})
	g.start()
	for _, dst := range []netip.Addr{lab.Remotes[0].V4, lab.Remotes[0].V6} {
		c, err := dial(lab.Client, netip.AddrPortFrom(dst, echoPort))
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(2 * ioGuard))
		r := bufio.NewReader(c)
		if _, err := r.ReadString('\n'); err != nil { // PEER line
			t.Fatal(err)
		}
		const size = 64 << 20
		sent := sha256.New()
		errc := make(chan error, 1)
		go func() {
			_, err := io.CopyN(io.MultiWriter(c, sent), rand.Reader, size)
			if err == nil {
				err = c.CloseWrite()
			}
			errc <- err
		}()
		got := sha256.New()
		n, err := io.Copy(got, r)
		if err != nil {
			t.Fatalf("%s: reading echo: %v", dst, err)
		}
		if err := <-errc; err != nil {
			t.Fatalf("%s: sending: %v", dst, err)
		}
		c.Close()
		if n != size || fmt.Sprintf("%x", got.Sum(nil)) != fmt.Sprintf("%x", sent.Sum(nil)) {
			t.Errorf("%s: echoed %d bytes with sha256 %x, sent %d with %x", dst, n, got.Sum(nil), size, sent.Sum(nil))
		}
	}
	g.stop()
}

// TestTCPHalfClose: the client shuts down its sending side and still gets
// the server's answer, which the server only sends after seeing EOF.
func TestTCPHalfClose(t *testing.T) {
	lab := netlab.NewT(t)
	serveAll(t, lab)
	g := newGW(t, lab, opts{})
	g.start()
	for _, dst := range []netip.Addr{lab.Remotes[1].V4, lab.Remotes[1].V6} {
		c, err := dial(lab.Client, netip.AddrPortFrom(dst, halfPort))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write(make([]byte, 100000)); err != nil {
			t.Fatal(err)
		}
		if err := c.CloseWrite(); err != nil {
			t.Fatal(err)
		}
		reply, err := io.ReadAll(c)
		c.Close()
		if err != nil || string(reply) != "got 100000\n" {
			t.Errorf("%s: reply %q, %v; want \"got 100000\\n\"", dst, reply, err)
		}
	}
	g.stop()
}

// TestTCPClosedPortResetsClient: the upstream refuses, so the client,
// whose handshake the TPROXY listener completed, gets a reset rather than
// a hang.
func TestTCPClosedPortResetsClient(t *testing.T) {
	lab := netlab.NewT(t)
	g := newGW(t, lab, opts{})
	g.start()
	for _, dst := range []netip.Addr{lab.Remotes[0].V4, lab.Remotes[0].V6} {
		c, err := dial(lab.Client, netip.AddrPortFrom(dst, closedPort))
		if err != nil {
			if isReset(err) {
				continue
			}
			t.Fatalf("%s: dial: %v", dst, err)
		}
		_, err = c.Read(make([]byte, 1))
		c.Close()
		if !isReset(err) {
			t.Errorf("%s: read on a flow to a closed port = %v, want a connection reset", dst, err)
		}
	}
	g.stop()
}

// TestBypassedDestinationIsForwarded: a bypassed destination is forwarded
// by the kernel: the server sees the client's own address.
func TestBypassedDestinationIsForwarded(t *testing.T) {
	lab := netlab.NewT(t)
	serveAll(t, lab)
	byp := lab.Remotes[2]
	g := newGW(t, lab, opts{bypass: []string{byp.V4.String() + "/32", byp.V6.String() + "/128"}})
	g.start()
	for _, dst := range []netip.Addr{byp.V4, byp.V6} {
		want := lab.ClientAddr.V4
		if dst.Is6() {
			want = lab.ClientAddr.V6
		}
		if got := peerSeen(t, lab, dst); got != want {
			t.Errorf("bypassed %s: server saw %s, want the client %s (kernel forwarding)", dst, got, want)
		}
	}
	// And an intercepted one next to it still goes through gatewayd.
	if got := peerSeen(t, lab, lab.Remotes[0].V4); got != lab.GatewayWAN.V4 {
		t.Errorf("intercepted destination: server saw %s", got)
	}
	g.stop()
}

// TestNotIntercepted: traffic entering from the WAN side and traffic to
// the router's own addresses never reach gatewayd.
func TestNotIntercepted(t *testing.T) {
	lab := netlab.NewT(t)
	g := newGW(t, lab, opts{})
	// A service on the client (reached from the WAN) and on the router.
	for _, a := range []netip.Addr{lab.ClientAddr.V4, lab.ClientAddr.V6} {
		serve(t, lab.Client, netip.AddrPortFrom(a, echoPort), peerEcho)
	}
	for _, a := range []netip.Addr{lab.GatewayLAN.V4, lab.GatewayLAN.V6, lab.GatewayWAN.V4, lab.GatewayWAN.V6} {
		serve(t, lab.Gateway, netip.AddrPortFrom(a, echoPort), peerEcho)
	}
	g.start()
	check := func(from *netlab.NS, dst, wantPeer netip.Addr) {
		t.Helper()
		c, err := dial(from, netip.AddrPortFrom(dst, echoPort))
		if err != nil {
			t.Fatalf("%s -> %s: %v", from.Name, dst, err)
		}
		defer c.Close()
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil || line != fmt.Sprintf("PEER %s\n", wantPeer) {
			t.Errorf("%s -> %s: got %q, %v; want PEER %s", from.Name, dst, line, err, wantPeer)
		}
	}
	check(lab.Server, lab.ClientAddr.V4, lab.ServerAddr.V4)
	check(lab.Server, lab.ClientAddr.V6, lab.ServerAddr.V6)
	check(lab.Client, lab.GatewayLAN.V4, lab.ClientAddr.V4)
	check(lab.Client, lab.GatewayLAN.V6, lab.ClientAddr.V6)
	check(lab.Client, lab.GatewayWAN.V4, lab.ClientAddr.V4)
	check(lab.Client, lab.GatewayWAN.V6, lab.ClientAddr.V6)
	g.stop()
}
