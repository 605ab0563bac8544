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
// may name its server only in the second. The server keeps the datagram
// and asks again with the flow's next datagram; after holdTimeout, or when
// the flow's hold is full, it asks with a nil datagram, and then the
// Router must decide. Held datagrams leave, in order, ahead of the
// datagram that got a route.
const RouteHold = -2

// Hold bounds. A client sends the Initials of one flight back to back, so
// the timeout only matters for a flow that never completes its
// ClientHello; the bounds keep a flood of such flows from holding memory,
// or one client from taking every slot. maxHeldDatagrams leaves room for
// the datagram that decides: together they fit the queue of a session
// whose upstream is still opening.
const (
	holdTimeout           = 100 * time.Millisecond
	maxHeldDatagrams      = maxPending - 1
	maxHeldBytes          = 16 << 10
	maxHeldFlows          = 1024
	maxHeldFlowsPerClient = 16
)

// flowKey is one client's flow to one destination.
type flowKey struct{ client, dst netip.AddrPort }

// holds are the datagrams of flows whose route is not decided yet.
type holds struct {
	n  atomic.Int32 // flows held; the per-datagram path looks at nothing else while it is 0
	mu sync.Mutex
	m  map[flowKey]*held
	// perClient counts held flows by client address.
	perClient map[netip.Addr]int
	closed    bool           // Shutdown: hold nothing more
	expiring  sync.WaitGroup // timeout callbacks running
}

// held is one flow's hold. Whoever routes the flow, the read loop with
// its next datagram or the timeout, does so under mu, so the two never
// interleave: the held datagrams always leave first.
type held struct {
	mu        sync.Mutex
	datagrams [][]byte // copies, in arrival order
	bytes     int
	timer     *time.Timer
	router    Router // the one that has seen the datagrams
}

// lookup returns the hold of flow k, or nil.
func (h *holds) lookup(k flowKey) *held {
	if h.n.Load() == 0 {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.m[k]
}

// add keeps a copy of p in the hold of flow k, creating it (and starting
// its timeout) if e is nil; e must be locked. It reports whether p was
// kept: not when the hold or the table is full.
func (s *Server) add(k flowKey, e *held, p []byte, r Router) bool {
	h := &s.holds
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return false
	}
	if e == nil {
		if len(h.m) >= maxHeldFlows || h.perClient[k.client.Addr()] >= maxHeldFlowsPerClient || len(p) > maxHeldBytes {
			return false
		}
		if h.m == nil {
			h.m, h.perClient = make(map[flowKey]*held), make(map[netip.Addr]int)
		}
		e = &held{router: r}
		e.timer = time.AfterFunc(holdTimeout, func() { s.holdExpired(k, e) })
		h.m[k] = e
		h.perClient[k.client.Addr()]++
		h.n.Add(1)
		s.stats.flowsHeld.Add(1)
	} else if h.m[k] != e || len(e.datagrams) >= maxHeldDatagrams || e.bytes+len(p) > maxHeldBytes {
		return false
	}
	e.datagrams = append(e.datagrams, bytes.Clone(p))
	e.bytes += len(p)
	return true
}

// catchUp shows r, a Router that replaced the one the hold began with (a
// reload), the datagrams held so far, so it can name the flow as the old
// one would have: its first Initial holds the start of the ClientHello.
// e must be locked.
func (e *held) catchUp(k flowKey, r Router) {
	if e.router == r {
		return
	}
	e.router = r
	for _, p := range e.datagrams {
		if r.Route(k.client, k.dst, p) != RouteHold {
			return // decided: what follows hits its memory of the flow
		}
	}
}

// holding reports whether e is still flow k's hold.
func (s *Server) holding(k flowKey, e *held) bool {
	h := &s.holds
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.m[k] == e
}

// take removes the hold e of flow k from the table and returns its
// datagrams; nil if e is no longer there (routed, expired or shut down).
func (s *Server) take(k flowKey, e *held) [][]byte {
	if e == nil {
		return nil // the per-datagram path: nothing was held, take no lock
	}
	h := &s.holds
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.m[k] != e {
		return nil
	}
	e.timer.Stop()
	delete(h.m, k)
	if h.perClient[k.client.Addr()]--; h.perClient[k.client.Addr()] <= 0 {
		delete(h.perClient, k.client.Addr())
	}
	h.n.Add(-1)
	return e.datagrams
}

// holdExpired decides a held flow that got no further datagram in time.
func (s *Server) holdExpired(k flowKey, e *held) {
	h := &s.holds
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return
	}
	h.expiring.Add(1)
	h.mu.Unlock()
	defer h.expiring.Done()

	e.mu.Lock()
	defer e.mu.Unlock()
	if !s.holding(k, e) {
		return // the read loop routed the flow first
	}
	// The hold stays in the table while the Router decides, so the flow's
	// next datagram finds it and waits on e.mu.
	s.stats.holdTimeouts.Add(1)
	if r := s.routing.Load().router; r != nil {
		e.catchUp(k, r)
	}
	key, ok := s.decide(k.client, k.dst)
	held := s.take(k, e)
	if !ok {
		s.stats.dropRejected.Add(uint64(len(held)))
		return
	}
	s.sendHeld(key, k.dst, held)
}

// sendHeld sends a flow's held datagrams on the session of key.
func (s *Server) sendHeld(key sessionKey, dst netip.AddrPort, held [][]byte) {
	now := s.now()
	for _, p := range held {
		s.relay(key, dst, p, now)
	}
}

// dropHolds forgets every held datagram and waits for running timeouts
// (Shutdown, before sessions are drained).
func (s *Server) dropHolds() {
	h := &s.holds
	h.mu.Lock()
	h.closed = true
	for k, e := range h.m {
		e.timer.Stop()
		s.stats.dropHeld.Add(uint64(len(e.datagrams)))
		delete(h.m, k)
	}
	clear(h.perClient)
	h.n.Store(0)
	h.mu.Unlock()
	h.expiring.Wait()
}
