package listen

import (
	"context"
	"fmt"
	"net"
	"net/netip"

	"github.com/gatewayd/gatewayd/internal/sockopt"
)

// ReplySocket binds a transparent UDP socket (IP_TRANSPARENT, SO_REUSEADDR,
// SO_MARK=mark) of addr's family to addr, a foreign address:port, so that
// datagrams sent from it to a LAN client carry addr as their source.
// Several such sockets may share one addr. It is never read.
func ReplySocket(addr netip.AddrPort, mark uint32) (*net.UDPConn, error) {
	addr = Canonical(addr)
	lc := net.ListenConfig{Control: sockopt.Chain(sockopt.Transparent, sockopt.ReuseAddr, sockopt.Mark(mark))}
	uc, err := On[*net.UDPConn](context.Background(), &lc, addr)
	if err != nil {
		return nil, fmt.Errorf("binding reply socket to %s: %w", addr, err)
	}
	return uc, nil
}
