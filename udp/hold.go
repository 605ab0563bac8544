package udp

import (
	"bytes"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// RouteHold is what a Router returns when it cannot route a flow (client,
// destination) yet: a QUIC ClientHello split over two Initial datagrams
// names its server only in the second. The server keeps the datagram and
// asks again with the flow's next datagram; after holdTimeout, or when the
// flow's hold is full, it asks with a nil datagram, and then the Router
// must decide. Held datagrams leave, in order, ahead of the datagram that
// got a route.
const RouteHold = -2

// Hold bounds. A client sends the Initials of one flight back to back, so
// the timeout only matters for a flow that never completes its
// ClientHello; the bounds keep a flood of such flows from holding memory.
// maxHeldDatagrams leaves room for the datagram that decides: together
// they fit the queue of a session whose upstream is still opening.
const (
	holdTimeout      = 100 * time.Millisecond
	maxHeldDatagrams = maxPending - 1
	maxHeldBytes     = 16 << 10
	maxHeldFlows     = 1024
)

// flowKey is one client's flow to one destination.
type flowKey struct{ client, dst netip.AddrPort }

// holds are the datagrams of flows whose route is not decided yet.
type holds struct {
	n  atomic.Int32 // flows held; the per-datagram path looks at nothing else while it is 0
	mu sync.Mutex
	m  map[flowKey]*held
}

type held struct {
	datagrams [][]byte // copies, in arrival order
	bytes     int
	timer     *time.Timer
}

// hold keeps a copy of p for the flow k and reports whether it did; it
// does not when the flow's hold or the table is full. A flow's first hold
// starts its timeout.
func (s *Server) hold(k flowKey, p []byte) bool {
	h := &s.holds
	h.mu.Lock()
	defer h.mu.Unlock()
	e := h.m[k]
	if e == nil {
		if len(h.m) >= maxHeldFlows {
			return false
		}
		if h.m == nil {
			h.m = make(map[flowKey]*held)
		}
		e = &held{}
		e.timer = time.AfterFunc(holdTimeout, func() { s.holdExpired(k) })
		h.m[k] = e
		h.n.Add(1)
		s.stats.flowsHeld.Add(1)
	}
	if len(e.datagrams) >= maxHeldDatagrams || e.bytes+len(p) > maxHeldBytes {
		return false
	}
	e.datagrams = append(e.datagrams, bytes.Clone(p))
	e.bytes += len(p)
	return true
}

// takeHeld removes and returns the datagrams held for k (nil if none) and
// stops the flow's timeout.
func (s *Server) takeHeld(k flowKey) [][]byte {
	h := &s.holds
	if h.n.Load() == 0 {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	e := h.m[k]
	if e == nil {
		return nil
	}
	e.timer.Stop()
	delete(h.m, k)
	h.n.Add(-1)
	return e.datagrams
}

// holdExpired decides a held flow that got no further datagram in time.
func (s *Server) holdExpired(k flowKey) {
	held := s.takeHeld(k)
	if len(held) == 0 {
		return
	}
	if s.closed() {
		s.stats.dropHeld.Add(uint64(len(held)))
		return
	}
	s.stats.holdTimeouts.Add(1)
	key, ok := s.decide(k.client, k.dst)
	if !ok {
		s.stats.dropRejected.Add(uint64(len(held)))
		return
	}
	now := s.now()
	for _, p := range held {
		s.relay(key, k.dst, p, now)
	}
}

// releaseHeld sends the datagrams held for flow k on the session of key.
func (s *Server) releaseHeld(k flowKey, key sessionKey) {
	now := s.now()
	for _, p := range s.takeHeld(k) {
		s.relay(key, k.dst, p, now)
	}
}

// dropHolds forgets every held datagram (Shutdown).
func (s *Server) dropHolds() {
	h := &s.holds
	h.mu.Lock()
	defer h.mu.Unlock()
	for k, e := range h.m {
		e.timer.Stop()
		s.stats.dropHeld.Add(uint64(len(e.datagrams)))
		delete(h.m, k)
	}
	h.n.Store(0)
}

// closed reports whether Shutdown has begun.
func (s *Server) closed() bool {
	select {
	case <-s.done:
		return true
	default:
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}
