package sockopt

import (
	"context"
	"fmt"
	"net"
	"net/netip"
)

// DialTCP connects d to addr and returns the *net.TCPConn the relays
// splice; what names the peer in errors ("dialing 198.18.1.1:443: ...").
func DialTCP(ctx context.Context, d *net.Dialer, addr netip.AddrPort, what string) (*net.TCPConn, error) {
	c, err := d.DialContext(ctx, "tcp", addr.String())
	if err != nil {
		return nil, fmt.Errorf("dialing %s: %w", what, err)
	}
	tc, ok := c.(*net.TCPConn)
	if !ok {
		_ = c.Close()
		return nil, fmt.Errorf("dialing %s: got a %T, want *net.TCPConn", what, c)
	}
	return tc, nil
}

// ListenUDP opens an unconnected UDP socket of network ("udp4", "udp6")
// bound to bind, with opts applied before the bind. Errors do not say what
// the socket is for: the caller does.
func ListenUDP(ctx context.Context, network string, bind netip.AddrPort, opts ...Option) (*net.UDPConn, error) {
	lc := net.ListenConfig{Control: Chain(opts...)}
	pc, err := lc.ListenPacket(ctx, network, bind.String())
	if err != nil {
		return nil, err
	}
	uc, ok := pc.(*net.UDPConn)
	if !ok {
		_ = pc.Close()
		return nil, fmt.Errorf("got a %T, want *net.UDPConn", pc)
	}
	return uc, nil
}
