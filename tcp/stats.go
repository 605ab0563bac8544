package tcp

import "sync/atomic"

// Stats is a snapshot of the server's counters.
type Stats struct {
	Accepted    uint64 // connections taken from the listeners (including refused ones)
	Active      uint64 // flows in progress now
	Rejected    uint64 // clients reset because MaxConns flows were active
	FDRefused   uint64 // clients reset because the fd budget was spent, or accepted at EMFILE only to be reset
	PipesLent   int    // splice pipes carrying data now (two fds each)
	PipesSpare  int    // splice pipes kept for the next burst
	LoopRefused uint64 // clients reset by the loop guard
	DialFailed  uint64 // clients reset because the upstream could not be dialed
	BytesUp     uint64 // client -> upstream, added when a flow ends
	BytesDown   uint64 // upstream -> client, added when a flow ends
}

// counters are the live values behind Stats.
type counters struct {
	accepted    atomic.Uint64
	active      atomic.Int64
	rejected    atomic.Uint64
	fdRefused   atomic.Uint64
	loopRefused atomic.Uint64
	dialFailed  atomic.Uint64
	bytesUp     atomic.Uint64
	bytesDown   atomic.Uint64
}

// Stats returns a snapshot of the counters. The fields are read one by one,
// so they need not be mutually consistent while flows come and go.
func (s *Server) Stats() Stats {
	c := &s.stats
	lent, spare := s.relays.pipes.counts()
	return Stats{
		FDRefused:   c.fdRefused.Load(),
		PipesLent:   lent,
		PipesSpare:  spare,
		Accepted:    c.accepted.Load(),
		Active:      uint64(max(c.active.Load(), 0)),
		Rejected:    c.rejected.Load(),
		LoopRefused: c.loopRefused.Load(),
		DialFailed:  c.dialFailed.Load(),
		BytesUp:     c.bytesUp.Load(),
		BytesDown:   c.bytesDown.Load(),
	}
}
