package udp

import (
	"net/netip"
	"time"
)

// SessionInfo is one session as Sessions lists it.
type SessionInfo struct {
	Client netip.AddrPort // unmapped
	// FirstDst is the first destination the client sent to through this
	// session; a full-cone session may have sent to more (Dsts).
	FirstDst netip.AddrPort
	// Dsts counts the distinct destinations seen, up to 256 (a client
	// scanning ports is not tracked further).
	Dsts int
	// Route is the session's route (Router); 0 without a Router.
	Route int
	Start time.Time
	// LastActive is when the last datagram either way went through.
	LastActive time.Time
	// Connected is false while the upstream is still being opened.
	Connected bool

	BytesUp, BytesDown         uint64 // payload bytes sent on, client -> remote and back
	DatagramsUp, DatagramsDown uint64
}

// Sessions lists the sessions in the table, in no particular order. It
// takes each table shard's lock in turn and each session's lock briefly, as
// the datagram path does: listing never stalls the relay for long.
func (s *Server) Sessions() []SessionInfo {
	sessions := s.sessions.values()
	out := make([]SessionInfo, 0, len(sessions))
	for _, ss := range sessions {
		out = append(out, s.sessionInfo(ss))
	}
	return out
}

func (s *Server) sessionInfo(ss *session) SessionInfo {
	ss.mu.Lock()
	first, ndst := ss.firstDst, len(ss.dsts)
	if !first.IsValid() && len(ss.pending) > 0 {
		// Just created: its first datagram is queued but not yet noted.
		first = ss.pending[0].dst
	}
	ss.mu.Unlock()
	if ndst == 0 && first.IsValid() {
		ndst = 1
	}
	return SessionInfo{
		Client:        ss.client,
		FirstDst:      first,
		Dsts:          ndst,
		Route:         ss.key.route,
		Start:         ss.start,
		LastActive:    s.epoch.Add(time.Duration(ss.lastActive())),
		Connected:     ss.ready.Load(),
		BytesUp:       ss.upBytes.Load(),
		BytesDown:     ss.downBytes.Load(),
		DatagramsUp:   ss.upDatagrams.Load(),
		DatagramsDown: ss.downDatagrams.Load(),
	}
}

// values returns every entry, one shard's lock at a time: an entry added
// or removed meanwhile may or may not be in the result.
func (t *table[K, V]) values() []V {
	out := make([]V, 0, t.len())
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		for _, n := range sh.m {
			out = append(out, n.val)
		}
		sh.mu.Unlock()
	}
	return out
}
