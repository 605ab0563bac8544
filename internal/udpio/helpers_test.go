package udpio

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/internal/sockopt"
	"github.com/gatewayd/gatewayd/internal/testutil"
)

// failAfter guards every blocking step of a test; it is never a timing
// assertion, only a way to fail instead of hanging.
const failAfter = testutil.FailAfter

// listenUDP opens a plain UDP socket on addr ("127.0.0.1:0", "[::1]:0").
func listenUDP(t testing.TB, addr string) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(addr)))
	if err != nil {
		t.Fatalf("listening on %s: %v", addr, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func localAddr(c *net.UDPConn) netip.AddrPort {
	return c.LocalAddr().(*net.UDPAddr).AddrPort()
}

// expectDatagram reads one datagram from c and checks its payload.
func expectDatagram(t testing.TB, c *net.UDPConn, want string) netip.AddrPort {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(failAfter))
	buf := make([]byte, MaxDatagram)
	n, from, err := c.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatalf("waiting for %q: %v", want, err)
	}
	if got := string(buf[:n]); got != want {
		t.Fatalf("got %q from %s, want %q", got, from, want)
	}
	return from
}

func haveIPv6(t *testing.T) bool {
	c, err := net.ListenPacket("udp6", "[::1]:0")
	if err != nil {
		t.Logf("no IPv6 loopback: %v", err)
		return false
	}
	_ = c.Close()
	return true
}

// sockoptRecvOrigDst asks for IP_ORIGDSTADDR, which needs no privilege.
var sockoptRecvOrigDst = sockopt.Chain(sockopt.RecvOrigDst)

// cmsg builds one control message the way the kernel lays it out,
// independently of the decoder.
func cmsg(level, typ int32, data []byte) []byte { return testutil.Cmsg(level, typ, data) }

// sockaddr returns ap as the bytes of a struct sockaddr_in or sockaddr_in6.
func sockaddr(ap netip.AddrPort) []byte { return testutil.Sockaddr(ap) }

// origDstCmsg is the control message the kernel attaches for dst.
func origDstCmsg(dst netip.AddrPort) []byte { return testutil.OrigDstCmsg(dst) }
