package udp

import "net/netip"

// Router picks where each client datagram goes. Routes are small integers
// (0 to the number of routes - 1) that the Dialer turns into upstreams:
// a client has one full-cone session per route it sends on, so remotes
// reach it through every mapping it opened. RouteReject drops the
// datagram (counted as DropRejected).
//
// Route runs on the listener's read loop for every datagram and must be
// fast and safe for concurrent use; it should give one flow (client, dst)
// the same route for as long as the flow lives, even when later datagrams
// carry less information than the first (a QUIC Initial names a server,
// what follows does not). It may return RouteHold to see more of a flow
// before deciding; called with a nil datagram it must decide.
type Router interface {
	Route(client, dst netip.AddrPort, p []byte) int
}

// RouteReject is the route of datagrams that are dropped.
const RouteReject = -1

// routing is how datagrams are routed and sessions opened.
type routing struct {
	router Router
	dialer Dialer
}

// SetRouting makes new datagrams routed by r (nil: route 0) and new
// sessions opened by d (a config reload; nil: Config.Dialer). Sessions
// already open keep their upstreams; r must keep the route numbers of
// routes that still exist.
func (s *Server) SetRouting(r Router, d Dialer) {
	if d == nil {
		d = s.cfg.Dialer
	}
	s.routing.Store(&routing{router: r, dialer: d})
}

// sessionKey identifies a session: a client address:port on one route.
type sessionKey struct {
	client netip.AddrPort
	route  int
}

func hashSessionKey(k sessionKey, seed uint64) uint64 {
	return hashAddrPort(k.client, seed+uint64(k.route)*hashMul1)
}

// route returns the route of a datagram; false if it is rejected or held
// (RouteHold). A datagram that gets a route sends what was held for its
// flow first.
func (s *Server) route(client, dst netip.AddrPort, p []byte) (sessionKey, bool) {
	k := sessionKey{client: client}
	r := s.routing.Load().router
	if r == nil {
		return k, true
	}
	fk := flowKey{client, dst}
	e := s.holds.lookup(fk)
	if e != nil {
		e.mu.Lock() // the timeout may be deciding this flow: wait, then route after it
		defer e.mu.Unlock()
		if e.router != r && s.holding(fk, e) {
			e.catchUp(fk, r)
		}
	}
	k.route = r.Route(client, dst, p)
	if k.route == RouteHold {
		if s.add(fk, e, p, r) {
			return k, false
		}
		k.route = r.Route(client, dst, nil) // cannot hold more: decide now
	}
	held := s.take(fk, e)
	if k.route < 0 { // with what was held for the flow
		s.stats.dropRejected.Add(uint64(1 + len(held)))
		return k, false
	}
	s.sendHeld(k, dst, held)
	return k, true
}

// decide asks the Router for the final route of a held flow (nil
// datagram); false if it is rejected. The caller counts the drops.
func (s *Server) decide(client, dst netip.AddrPort) (sessionKey, bool) {
	k := sessionKey{client: client}
	if r := s.routing.Load().router; r != nil {
		k.route = r.Route(client, dst, nil)
	}
	return k, k.route >= 0 // RouteHold here would break the Router's contract: refuse the flow
}
