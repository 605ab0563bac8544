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
// or one client from taking every slot. The held datagrams (at most
// maxHeldBytes plus their pendingOverhead) and a deciding datagram of up
// to 47 KiB fit the queue of a session whose upstream is still opening
// (maxPendingBytes); a QUIC Initial is about 1.2 KiB.
const (
	holdTimeout           = 100 * time.Millisecond
	maxHeldDatagrams      = 7
	maxHeldBytes          = 16 << 10
	maxHeldFlowsPerClient = 16
	holdShards            = 16 // by client address: a client's flood stays in its shard
	maxHeldFlowsPerShard  = 64 // 1024 flows in all
)

// The bound above, checked by the compiler (a negative constant does not
// convert to uint).
const _ = uint(maxPendingBytes - (maxHeldBytes + maxHeldDatagrams*pendingOverhead) - (47<<10 + pendingOverhead))

// flowKey is one client's flow to one destination.
type flowKey struct{ client, dst netip.AddrPort }

// holds are the datagrams of flows whose route is not decided yet.
type holds struct {
	n        atomic.Int32 // flows held; the per-datagram path looks at nothing else while it is 0
	shards   [holdShards]holdShard
	expiring sync.WaitGroup // timeout callbacks running
}

type holdShard struct {
	mu sync.Mutex
	m  map[flowKey]*held
	// perClient counts held flows by client address.
	perClient map[netip.Addr]int
	closed    bool // Shutdown: hold nothing more
}

func (h *holds) shard(k flowKey) *holdShard {
	return &h.shards[hashAddrPort(netip.AddrPortFrom(k.client.Addr(), 0), 0)%holdShards]
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
	sh := h.shard(k)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.m[k]
}

// add keeps a copy of p in the hold of flow k, creating it (and starting
// its timeout) if e is nil; e must be locked. It reports whether p was
// kept: not when the hold or the table is full.
func (s *Server) add(k flowKey, e *held, p []byte, r Router) bool {
	sh := s.holds.shard(k)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.closed {
		return false
	}
	if e == nil {
		if len(sh.m) >= maxHeldFlowsPerShard || sh.perClient[k.client.Addr()] >= maxHeldFlowsPerClient || len(p) > maxHeldBytes {
			return false
		}
		if sh.m == nil {
			sh.m, sh.perClient = make(map[flowKey]*held), make(map[netip.Addr]int)
		}
		e = &held{router: r}
		e.timer = time.AfterFunc(holdTimeout, func() { s.holdExpired(k, e) })
		sh.m[k] = e
		sh.perClient[k.client.Addr()]++
		s.holds.n.Add(1)
		s.stats.flowsHeld.Add(1)
	} else if sh.m[k] != e || len(e.datagrams) >= maxHeldDatagrams || e.bytes+len(p) > maxHeldBytes {
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
	sh := s.holds.shard(k)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.m[k] == e
}

// take removes the hold e of flow k from the table and returns its
// datagrams; nil if e is no longer there (routed, expired or shut down).
func (s *Server) take(k flowKey, e *held) [][]byte {
	if e == nil {
		return nil // the per-datagram path: nothing was held, take no lock
	}
	sh := s.holds.shard(k)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.m[k] != e {
		return nil
	}
	e.timer.Stop()
	delete(sh.m, k)
	if sh.perClient[k.client.Addr()]--; sh.perClient[k.client.Addr()] <= 0 {
		delete(sh.perClient, k.client.Addr())
	}
	s.holds.n.Add(-1)
	return e.datagrams
}

// holdExpired decides a held flow that got no further datagram in time.
func (s *Server) holdExpired(k flowKey, e *held) {
	sh := s.holds.shard(k)
	sh.mu.Lock()
	if sh.closed {
		sh.mu.Unlock()
		return
	}
	s.holds.expiring.Add(1)
	sh.mu.Unlock()
	defer s.holds.expiring.Done()

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
	for i := range s.holds.shards {
		sh := &s.holds.shards[i]
		sh.mu.Lock()
		sh.closed = true
		for _, e := range sh.m {
			e.timer.Stop()
			s.stats.dropHeld.Add(uint64(len(e.datagrams)))
		}
		s.holds.n.Add(-int32(len(sh.m)))
		clear(sh.m)
		clear(sh.perClient)
		sh.mu.Unlock()
	}
	s.holds.expiring.Wait()
}
