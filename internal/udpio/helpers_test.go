package udpio

import (
	"net/netip"

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

// haveIPv6 reports whether the IPv6 loopback is usable (internal/testutil).
var haveIPv6 = testutil.HaveIPv6

// sockoptRecvOrigDst asks for IP_ORIGDSTADDR, which needs no privilege.
var sockoptRecvOrigDst = sockopt.Chain(sockopt.RecvOrigDst)

// cmsg builds one control message the way the kernel lays it out,
// independently of the decoder.
func cmsg(level, typ int32, data []byte) []byte { return testutil.Cmsg(level, typ, data) }

// sockaddr returns ap as the bytes of a struct sockaddr_in or sockaddr_in6.
func sockaddr(ap netip.AddrPort) []byte { return testutil.Sockaddr(ap) }

// origDstCmsg is the control message the kernel attaches for dst.
func origDstCmsg(dst netip.AddrPort) []byte { return testutil.OrigDstCmsg(dst) }
