package dns

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/miekg/dns"
	"golang.org/x/sys/unix"

	"github.com/gatewayd/gatewayd/internal/udpio"
)

// maxResolving bounds the UDP queries being resolved at once per listener
// (cache misses waiting for upstreams); a query beyond it is dropped and
// counted, and the client retries.
const maxResolving = 1024

// udpBatch is how many queries one recvmmsg(2) takes and one sendmmsg(2)
// answers. Under load a batch fills and the system calls per query drop;
// at a low rate each call returns the one query that woke it.
const udpBatch = 32

// readLoop receives the queries of listener c. One goroutine reads them in
// batches and answers repeats of memoized queries inline (CachedUDP): on a
// busy resolver that is almost every query, and it costs a share of one
// receive and one send call and a copy, with no goroutine hand-off or
// thread wake-up. Any other query is resolved in a goroutine of its own,
// so a slow upstream never holds up the cache hits behind it.
func (s *Server) readLoop(c *net.UDPConn) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return fmt.Errorf("batch reader for %s: %w", c.LocalAddr(), err)
	}
	rb := udpio.NewRecvBatch(udpBatch, udpio.OOBSize())
	resolving := make(chan struct{}, maxResolving)
	hits := newHitBatch(s)
	for {
		if err := rb.Read(rc); err != nil {
			if s.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("receiving DNS on %s: %w", c.LocalAddr(), err)
		}
		for i := range rb.Len() {
			query := rb.Datagram(i)
			client, dst, ok := queryAddrs(rb, i)
			if !ok {
				s.dropped.Add(1)
				continue
			}
			if hits.answer(query, client, dst) {
				continue
			}
			// An undecodable datagram is answered here (a FORMERR
			// header, or nothing): it needs no resolver, and a flood of
			// garbage must not take the resolving slots real queries
			// need. Its answer leaves only from a reply socket already
			// open (see send).
			if new(dns.Msg).Unpack(query) != nil {
				if reply, ok := s.h.Load().HandleWire(s.ctx, query, QueryInfo{Client: client, Transport: "udp"}); ok {
					hits.queue(reply, client, dst)
				}
				continue
			}
			select {
			case resolving <- struct{}{}:
			default:
				s.dropped.Add(1)
				continue
			}
			query = append([]byte(nil), query...)
			s.wg.Add(1)
			go func() {
				defer func() { <-resolving; s.wg.Done() }()
				if reply, ok := s.h.Load().HandleWire(s.ctx, query, QueryInfo{Client: client, Transport: "udp"}); ok {
					s.sendUDP(reply, dst, client)
				}
			}()
		}
		hits.flush()
	}
}

// queryAddrs are datagram i's unmapped source and original destination;
// false if it was truncated or its addresses cannot be decoded (drop it).
func queryAddrs(rb *udpio.RecvBatch, i int) (src, dst netip.AddrPort, ok bool) {
	if rb.Flags(i)&(unix.MSG_TRUNC|unix.MSG_CTRUNC) != 0 {
		return src, dst, false
	}
	if src, ok = rb.Source(i); !ok {
		return src, dst, false
	}
	dst, err := udpio.OrigDst(rb.Control(i))
	return src, dst, err == nil
}

// hitBatch collects the fast-path answers of one received batch and sends
// them with one sendmmsg(2) per reply address.
type hitBatch struct {
	s    *Server
	outs [udpBatch][]byte // answer buffers, reused
	n    int
	dst  [udpBatch]netip.AddrPort
	to   [udpBatch]netip.AddrPort
	// garbage marks answers to undecodable datagrams (queue).
	garbage [udpBatch]bool
	sb      *udpio.SendBatch

	order [udpBatch]int // flush's send order
}

func newHitBatch(s *Server) *hitBatch { return &hitBatch{s: s, sb: udpio.NewSendBatch(udpBatch)} }

// answer queues the memoized answer to query, if there is one.
func (h *hitBatch) answer(query []byte, client, dst netip.AddrPort) bool {
	out, ok := h.s.h.Load().CachedUDP(query, h.outs[h.n])
	if !ok {
		return false
	}
	h.outs[h.n], h.dst[h.n], h.to[h.n] = out, dst, client
	h.garbage[h.n] = false
	h.n++
	return true
}

// queue queues the answer to an undecodable datagram of the batch.
func (h *hitBatch) queue(reply []byte, client, dst netip.AddrPort) {
	h.outs[h.n] = append(h.outs[h.n][:0], reply...)
	h.dst[h.n], h.to[h.n] = dst, client
	h.garbage[h.n] = true
	h.n++
}

// flush sends the queued answers with one sendmmsg(2) per reply address
// (usually one: most clients ask the same resolver). They are sent sorted
// by reply address, client and size: answers to one client of one size
// (a stub resolver asking the same names) are then consecutive, and the
// send coalesces them into one UDP GSO message, which the kernel takes
// through routing, netfilter and the veth or NIC once. Answers to
// different queries have no order among themselves.
func (h *hitBatch) flush() {
	order := h.order[:h.n]
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, h.compare)
	for start := 0; start < len(order); {
		src := h.dst[order[start]]
		end := start
		for end < len(order) && h.dst[order[end]] == src {
			end++
		}
		h.send(src, order[start:end])
		start = end
	}
	h.n = 0
}

func (h *hitBatch) compare(a, b int) int {
	if c := h.dst[a].Compare(h.dst[b]); c != 0 {
		return c
	}
	if c := h.to[a].Compare(h.to[b]); c != 0 {
		return c
	}
	return len(h.outs[b]) - len(h.outs[a]) // longest first: a GSO run may end with a shorter one
}

// send sends the answers idx from src. Answers to garbage alone open no
// reply socket: random bytes sent to port 53 at a new address each time
// would otherwise cost gatewayd a transparent socket per datagram (and
// its read loop the time to open it, while real queries queue behind).
// They are counted as dropped.
func (h *hitBatch) send(src netip.AddrPort, idx []int) {
	var snd *udpio.Sock
	var err error
	if !slices.ContainsFunc(idx, func(i int) bool { return !h.garbage[i] }) {
		var ok bool
		if snd, ok = h.s.replies.open(src); !ok {
			h.s.dropped.Add(uint64(len(idx)))
			return
		}
	} else {
		snd, err = h.s.replies.sender(src)
	}
	if err != nil {
		h.s.dropped.Add(uint64(len(idx)))
		h.s.log.Debug("dns answers not sent", "from", src.String(), "err", err)
		return
	}
	h.sb.Begin(snd)
	queued := 0
	for _, i := range idx {
		if h.sb.Add(h.outs[i], h.to[i]) {
			queued++
		} else {
			h.s.dropped.Add(1)
		}
	}
	if queued > 0 {
		// Refused by the kernel, or not sent at all on a socket that
		// closed under the flush: dropped either way.
		_ = h.sb.Flush()
		h.s.dropped.Add(uint64(h.sb.Dropped() + len(h.sb.Unsent())))
	}
}

// sendUDP sends an answer to client from dst, the address the client asked.
func (s *Server) sendUDP(reply []byte, dst, client netip.AddrPort) {
	if err := s.replies.send(reply, dst, client); err != nil {
		s.dropped.Add(1)
		s.log.Debug("dns answer not sent", "client", client.String(), "from", dst.String(), "err", err)
	}
}
