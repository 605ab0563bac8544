package dns

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/gatewayd/gatewayd/udp"
	"github.com/miekg/dns"
	"golang.org/x/sys/unix"
)

// maxQuery is the largest UDP query read (EDNS allows up to 64 KiB).
const maxQuery = 65535

// udpWorkers read and answer queries on each UDP listener. Each worker
// reads the socket itself and answers inline, so a cache hit costs no
// goroutine start or hand-off; up to udpWorkers cache misses per listener
// wait for upstreams at once while the others keep answering.
const udpWorkers = 64

// readLoop runs the workers of listener c and returns when they end.
func (s *Server) readLoop(c *net.UDPConn) error {
	errs := make(chan error, udpWorkers)
	for range udpWorkers {
		go func() { errs <- s.worker(c) }()
	}
	var first error
	for range udpWorkers {
		if err := <-errs; err != nil && first == nil {
			first = err
			_ = c.Close() // end the other workers
		}
	}
	return first
}

// worker receives queries on c and answers each before reading the next.
func (s *Server) worker(c *net.UDPConn) error {
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
		s.answerUDP(buf[:n], netip.AddrPortFrom(client.Addr().Unmap(), client.Port()), dst)
	}
}

// answerUDP resolves one query and sends the answer from dst, the address
// the client asked.
func (s *Server) answerUDP(query []byte, client, dst netip.AddrPort) {
	q := QueryInfo{Client: client, Transport: "udp"}
	var reply []byte
	req := new(dns.Msg)
	if err := req.Unpack(query); err != nil {
		var ok bool
		if reply, ok = s.h.HandleWire(s.ctx, query, q); !ok { // FORMERR, counted
			return
		}
	} else {
		q.MaxSize = MaxSizeFor(req, "udp") // the client's EDNS size
		resp := s.h.Handle(s.ctx, req, q)
		if resp == nil {
			return
		}
		if reply, err = resp.Pack(); err != nil {
			s.dropped.Add(1)
			return
		}
	}
	if err := s.replies.send(reply, dst, client); err != nil {
		s.dropped.Add(1)
		s.log.Debug("dns answer not sent", "client", client.String(), "from", dst.String(), "err", err)
	}
}
