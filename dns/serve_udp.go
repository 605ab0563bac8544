package dns

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/gatewayd/gatewayd/udp"
	"golang.org/x/sys/unix"
)

// maxQuery is the largest UDP query read (EDNS allows up to 64 KiB).
const maxQuery = 65535

// readLoop receives hijacked queries on c and answers each in its own
// goroutine, bounded by maxInFlight.
func (s *Server) readLoop(c *net.UDPConn) error {
	oob := make([]byte, udp.OOBSize())
	buf := make([]byte, maxQuery)
	for {
		n, oobn, flags, client, err := c.ReadMsgUDPAddrPort(buf, oob)
		if err != nil {
			if s.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("receiving DNS on %s: %w", c.LocalAddr(), err)
		}
		dst, err := udp.OrigDst(oob[:oobn])
		if err != nil || flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) != 0 {
			s.dropped.Add(1)
			continue
		}
		select {
		case s.inFlight <- struct{}{}:
		default:
			s.dropped.Add(1) // overloaded: the client will retry
			continue
		}
		query := append([]byte(nil), buf[:n]...)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() { <-s.inFlight }()
			s.answerUDP(query, netip.AddrPortFrom(client.Addr().Unmap(), client.Port()), dst)
		}()
	}
}

// answerUDP resolves one query and sends the answer from dst, the address
// the client asked.
func (s *Server) answerUDP(query []byte, client, dst netip.AddrPort) {
	reply, ok := s.h.HandleWire(s.ctx, query, QueryInfo{Client: client, Transport: "udp"})
	if !ok {
		return
	}
	if err := s.replies.send(reply, dst, client); err != nil {
		s.dropped.Add(1)
		s.log.Debug("dns answer not sent", "client", client.String(), "from", dst.String(), "err", err)
	}
}
