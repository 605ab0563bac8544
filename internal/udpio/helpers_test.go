package udpio

import (
	"net"
	"net/netip"
	"testing"

	"github.com/gatewayd/gatewayd/internal/sockopt"
	"github.com/gatewayd/gatewayd/internal/testutil"
)

// failAfter guards every blocking step of a test; it is never a timing
// assertion, only a way to fail instead of hanging.
const failAfter = testutil.FailAfter

// The UDP socket helpers every datagram test uses (internal/testutil).
var (
	listenUDP      = testutil.ListenUDP
	localAddr      = testutil.LocalAddr
	expectDatagram = testutil.ExpectDatagram
)

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
