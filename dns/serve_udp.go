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

// maxResolving bounds the UDP queries being resolved at once per listener
// (cache misses waiting for upstreams); a query beyond it is dropped and
// counted, and the client retries.
const maxResolving = 1024

// readLoop receives the queries of listener c. One goroutine reads and
// answers repeats of memoized queries inline (CachedUDP): on a busy
// resolver that is almost every query, and it costs one receive, one copy
// and one send, with no goroutine hand-off or thread wake-up. Any other
// query is resolved in a goroutine of its own, so a slow upstream never
// holds up the cache hits behind it.
func (s *Server) readLoop(c *net.UDPConn) error {
	oob := make([]byte, udp.OOBSize())
	buf := make([]byte, maxQuery)
	var out []byte
	resolving := make(chan struct{}, maxResolving)
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
		client = netip.AddrPortFrom(client.Addr().Unmap(), client.Port())
		var ok bool
		if out, ok = s.h.CachedUDP(buf[:n], out); ok {
			s.sendUDP(out, dst, client)
			continue
		}
		select {
		case resolving <- struct{}{}:
		default:
			s.dropped.Add(1)
			continue
		}
		query := append([]byte(nil), buf[:n]...)
		s.wg.Add(1)
		go func() {
			defer func() { <-resolving; s.wg.Done() }()
			if reply, ok := s.h.HandleWire(s.ctx, query, QueryInfo{Client: client, Transport: "udp"}); ok {
				s.sendUDP(reply, dst, client)
			}
		}()
	}
}

// sendUDP sends an answer to client from dst, the address the client asked.
func (s *Server) sendUDP(reply []byte, dst, client netip.AddrPort) {
	if err := s.replies.send(reply, dst, client); err != nil {
		s.dropped.Add(1)
		s.log.Debug("dns answer not sent", "client", client.String(), "from", dst.String(), "err", err)
	}
}
