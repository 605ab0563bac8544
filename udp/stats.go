package udp

import "sync/atomic"

// Stats is a snapshot of the server's counters. Datagrams and bytes count
// what was sent on successfully; every datagram not sent is counted in
// exactly one Drop field.
type Stats struct {
	SessionsActive  uint64 // sessions in the table now
	SessionsTotal   uint64 // sessions ever created
	SessionsEvicted uint64 // sessions closed to make room (least recently used first)
	SessionsExpired uint64 // sessions closed after IdleTimeout without traffic
	ReplySockets    uint64 // transparent reply sockets open now
	FlowsHeld       uint64 // flows whose first datagrams were held for the Router to see more (RouteHold)
	HoldTimeouts    uint64 // held flows the Router had to decide after holdTimeout

	DatagramsUp   uint64 // client -> remote
	DatagramsDown uint64 // remote -> client
	// DatagramsDownRaw counts the DatagramsDown sent from a raw reply
	// socket (no descriptor per remote) rather than a bound one.
	DatagramsDownRaw uint64
	BytesUp          uint64 // client -> remote payload bytes
	BytesDown        uint64 // remote -> client payload bytes

	DropTruncated   uint64 // datagram larger than the receive buffer (MSG_TRUNC)
	DropCtrunc      uint64 // control data truncated (MSG_CTRUNC)
	DropNoOrigDst   uint64 // no or garbled original-destination control message
	DropLoop        uint64 // original destination is gatewayd itself
	DropFamily      uint64 // destination family differs from the client's
	DropQueue       uint64 // client datagrams beyond the byte budget (per session, global) of sessions still opening their upstreams
	DropDial        uint64 // queued client datagrams lost because the upstream could not be opened
	DropRejected    uint64 // the Router's route was RouteReject
	DropSendUp      uint64 // sending to the remote failed
	DropLocalSource uint64 // remote datagram from a loopback, multicast or router-local source: not spoofed
	DropReplySocket uint64 // no reply socket could be bound to the remote address
	DropSendDown    uint64 // sending to the client failed
	DropHeld        uint64 // held for a route decision when the server shut down
	DropFDs         uint64 // a new session's first datagram: no descriptor in the budget and no UDP session to take one from
}

// counters are the live values behind Stats.
type counters struct {
	sessionsTotal   atomic.Uint64
	sessionsEvicted atomic.Uint64
	sessionsExpired atomic.Uint64
	flowsHeld       atomic.Uint64
	holdTimeouts    atomic.Uint64

	datagramsUp      atomic.Uint64
	datagramsDown    atomic.Uint64
	datagramsDownRaw atomic.Uint64
	bytesUp          atomic.Uint64
	bytesDown        atomic.Uint64

	dropTruncated   atomic.Uint64
	dropCtrunc      atomic.Uint64
	dropNoOrigDst   atomic.Uint64
	dropLoop        atomic.Uint64
	dropFamily      atomic.Uint64
	dropQueue       atomic.Uint64
	dropDial        atomic.Uint64
	dropRejected    atomic.Uint64
	dropSendUp      atomic.Uint64
	dropLocalSource atomic.Uint64
	dropReplySocket atomic.Uint64
	dropSendDown    atomic.Uint64
	dropHeld        atomic.Uint64
	dropFDs         atomic.Uint64
}

// Stats returns a snapshot of the counters. The fields are read one by one,
// so they need not be mutually consistent while traffic flows.
func (s *Server) Stats() Stats {
	c := &s.stats
	return Stats{
		SessionsActive:  uint64(max(s.sessions.len(), 0)),
		SessionsTotal:   c.sessionsTotal.Load(),
		SessionsEvicted: c.sessionsEvicted.Load(),
		SessionsExpired: c.sessionsExpired.Load(),
		ReplySockets:    uint64(max(s.replies.len(), 0)),
		FlowsHeld:       c.flowsHeld.Load(),
		HoldTimeouts:    c.holdTimeouts.Load(),

		DatagramsUp:      c.datagramsUp.Load(),
		DatagramsDown:    c.datagramsDown.Load(),
		DatagramsDownRaw: c.datagramsDownRaw.Load(),
		BytesUp:          c.bytesUp.Load(),
		BytesDown:        c.bytesDown.Load(),

		DropTruncated:   c.dropTruncated.Load(),
		DropCtrunc:      c.dropCtrunc.Load(),
		DropNoOrigDst:   c.dropNoOrigDst.Load(),
		DropLoop:        c.dropLoop.Load(),
		DropFamily:      c.dropFamily.Load(),
		DropQueue:       c.dropQueue.Load(),
		DropDial:        c.dropDial.Load(),
		DropRejected:    c.dropRejected.Load(),
		DropSendUp:      c.dropSendUp.Load(),
		DropLocalSource: c.dropLocalSource.Load(),
		DropReplySocket: c.dropReplySocket.Load(),
		DropSendDown:    c.dropSendDown.Load(),
		DropHeld:        c.dropHeld.Load(),
		DropFDs:         c.dropFDs.Load(),
	}
}
