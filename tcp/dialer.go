package tcp

import (
	"context"
	"net"
	"net/netip"
	"time"

	"github.com/gatewayd/gatewayd/internal/sockopt"
)

// Flow is what the Dialer knows of a flow when it opens the upstream.
type Flow struct {
	Client netip.AddrPort // unmapped
	Dst    netip.AddrPort // the original destination, unmapped
	// Domain is the server name sniffed from the client's first bytes
	// (TLS SNI or HTTP Host) when Config.Sniff is on; "" if none.
	Domain string
}

// Dialer opens the upstream leg of a flow: straight to f.Dst, or through a
// proxy (package outbound). It must return a plain *net.TCPConn carrying
// the flow's bytes unchanged from then on, so the relay keeps the kernel
// splice path.
type Dialer interface {
	DialTCP(ctx context.Context, f Flow) (*net.TCPConn, error)
}

// RouteDialer is a Dialer that also names the way it sent a flow (the
// outbound), for the flow's log line and Flows.
type RouteDialer interface {
	Dialer
	DialTCPRoute(ctx context.Context, f Flow) (c *net.TCPConn, route string, err error)
}

// DirectDialer connects straight to the original destination. Every socket
// carries SO_MARK=Mark (0 sets no mark) so the TPROXY rules let it pass;
// the mark must not intersect the TPROXY fwmark/mask. Timeout bounds the
// connect (0: only the context bounds it). MPTCP is off; keepalive is
// sockopt.UpstreamKeepAlive.
type DirectDialer struct {
	Mark    uint32
	Timeout time.Duration
}

// DialTCP implements Dialer.
func (d DirectDialer) DialTCP(ctx context.Context, f Flow) (*net.TCPConn, error) {
	dst := f.Dst
	nd := net.Dialer{Timeout: d.Timeout, Control: sockopt.Chain(sockopt.Mark(d.Mark)), KeepAliveConfig: sockopt.UpstreamKeepAlive()}
	nd.SetMultipathTCP(false)
	return sockopt.DialTCP(ctx, &nd, dst, dst.String())
}
