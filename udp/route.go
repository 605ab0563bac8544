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
// what follows does not).
type Router interface {
	Route(client, dst netip.AddrPort, p []byte) int
}

// RouteReject is the route of datagrams that are dropped.
const RouteReject = -1

// sessionKey identifies a session: a client address:port on one route.
type sessionKey struct {
	client netip.AddrPort
	route  int
}

func hashSessionKey(k sessionKey, seed uint64) uint64 {
	return hashAddrPort(k.client, seed+uint64(k.route)*hashMul1)
}

// route returns the route of a datagram; false if it is rejected.
func (s *Server) route(client, dst netip.AddrPort, p []byte) (sessionKey, bool) {
	k := sessionKey{client: client}
	if s.cfg.Router == nil {
		return k, true
	}
	k.route = s.cfg.Router.Route(client, dst, p)
	if k.route < 0 {
		s.stats.dropRejected.Add(1)
		return k, false
	}
	return k, true
}
