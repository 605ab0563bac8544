package tcp

import (
	"context"
	"errors"
	"net"
	"net/netip"
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

// errNoDialer fails the flows of a Server given no Dialer yet.
var errNoDialer = errors.New("no dialer configured")

// noDialer is the Dialer of a Server configured without one: every flow
// is refused until SetDialer.
type noDialer struct{}

func (noDialer) DialTCP(context.Context, Flow) (*net.TCPConn, error) { return nil, errNoDialer }
