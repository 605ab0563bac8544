package udp

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatewayd/gatewayd/internal/udpio"
)

// Why a session ended, for its log line.
const (
	reasonIdle     = "idle"
	reasonEvicted  = "evicted"
	reasonShutdown = "shutdown"
	reasonError    = "error"
)

// While a session's upstream is being opened, its client's datagrams queue
// by bytes, not by count: a client that greets thousands of remotes at once
// (a BitTorrent DHT node, a P2P game) sends hundreds of small datagrams in
// that time. A session queues up to maxPendingBytes, and all sessions
// together up to maxPendingTotal, so a flood of new sessions cannot hold
// more; the rest are dropped (DropQueue). Each queued datagram is charged
// its length plus pendingOverhead for its copy's header and rounding.
const (
	maxPendingBytes = 64 << 10
	maxPendingTotal = 8 << 20
	pendingOverhead = 64
)

// pendingCost is what queueing p charges against the budgets.
func pendingCost(p []byte) int64 { return int64(len(p)) + pendingOverhead }

// maxTrackedDsts bounds the set of distinct destinations a session
// remembers for its log line, so a client scanning ports costs no more.
const maxTrackedDsts = 256

// errSessionClosed reports a send on a session that has just been closed
// (evicted or expired); the caller retries with a new session.
var errSessionClosed = errors.New("session closed")

// pendingDatagram is a client datagram waiting for the upstream.
type pendingDatagram struct {
	payload []byte
	dst     netip.AddrPort
}

// session is the full-cone mapping of one client address:port: one
// upstream socket for every destination the client sends to, and every
// remote that sends to that socket reaches the client.
type session struct {
	key    sessionKey
	client netip.AddrPort // unmapped; key.client
	start  time.Time
	cancel context.CancelFunc // aborts the upstream open

	last  atomic.Int64 // server clock at the last datagram either way
	ready atomic.Bool  // up is set and the pending queue flushed
	up    Upstream     // written once, before ready
	raw   *udpio.Sock  // up's descriptor if up is a *net.UDPConn (batched sends); written before ready
	rawIn *udpio.Sock  // the descriptor up's datagrams are read from in batches, if any

	lastDst atomic.Uint64 // hash of the last destination, skips the set on repeats
	holdsFD atomic.Bool   // holds a descriptor of Config.FDs for its upstream
	mtu     atomic.Int32  // of the route to the client, for raw replies; 0: not looked up

	upDatagrams, upBytes     atomic.Uint64
	downDatagrams, downBytes atomic.Uint64

	mu           sync.Mutex
	closed       bool
	reason       string
	err          error
	pending      []pendingDatagram
	pendingBytes int64         // what pending is charged, also counted in pendingTotal
	pendingTotal *atomic.Int64 // the server's pendingBytes
	firstDst     netip.AddrPort
	dsts         map[netip.AddrPort]struct{}
}

func (ss *session) lastActive() int64 { return ss.last.Load() }

// touch records activity at now (server clock). The two directions touch
// from different goroutines; the timestamp never goes back.
func (ss *session) touch(now int64) {
	for {
		old := ss.last.Load()
		if old >= now || ss.last.CompareAndSwap(old, now) {
			return
		}
	}
}

// close ends the session for reason: it aborts an upstream open in
// progress, or closes the upstream, which ends the session's goroutine.
// Only the first call counts; it reports whether it was.
func (ss *session) close(reason string, err error) bool {
	ss.mu.Lock()
	if ss.closed {
		ss.mu.Unlock()
		return false
	}
	ss.closed, ss.reason, ss.err = true, reason, err
	ss.dropPendingLocked()
	up := ss.up
	ss.mu.Unlock()
	ss.cancel()
	if up != nil {
		_ = up.Close()
	}
	return true
}

// dropPendingLocked forgets the queued datagrams and gives their bytes
// back to the server's budget. ss.mu must be held.
func (ss *session) dropPendingLocked() {
	ss.pending = nil
	if ss.pendingBytes != 0 && ss.pendingTotal != nil {
		ss.pendingTotal.Add(-ss.pendingBytes)
	}
	ss.pendingBytes = 0
}

// chargeLocked reserves cost bytes of the per-session and the global
// pending budgets; false if either is spent. An empty queue takes one
// datagram of any size. ss.mu must be held (or ss not shared yet).
func (ss *session) chargeLocked(cost int64) bool {
	if ss.pendingBytes > 0 && ss.pendingBytes+cost > maxPendingBytes {
		return false
	}
	if ss.pendingTotal.Add(cost) > maxPendingTotal {
		ss.pendingTotal.Add(-cost)
		return false
	}
	ss.pendingBytes += cost
	return true
}

// noteDst records dst among the session's destinations.
func (ss *session) noteDst(dst netip.AddrPort, h uint64) {
	if ss.lastDst.Load() == h {
		return
	}
	ss.lastDst.Store(h)
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if !ss.firstDst.IsValid() {
		ss.firstDst = dst
	}
	if len(ss.dsts) < maxTrackedDsts {
		if ss.dsts == nil {
			ss.dsts = make(map[netip.AddrPort]struct{})
		}
		ss.dsts[dst] = struct{}{}
	}
}

// newSession creates the session for client with its first datagram
// queued, makes room for it and starts its goroutine. If another read loop
// created one first, it returns that one and false: the caller sends. If
// the session can have no descriptor, it returns nil and false, the
// datagram dropped and counted.
func (s *Server) newSession(key sessionKey, now int64, p []byte, dst netip.AddrPort) (*session, bool) {
	if !s.takeFD() {
		s.stats.dropFDs.Add(1)
		return nil, false
	}
	ctx, cancel := context.WithCancel(s.ctx)
	ss := &session{
		key:          key,
		client:       key.client,
		start:        time.Now(),
		cancel:       cancel,
		firstDst:     dst, // set before the session is listed (Sessions)
		pendingTotal: &s.pendingBytes,
	}
	ss.last.Store(now)
	// Queued before the session is listed, so no later datagram overtakes
	// it. With the global budget spent a new session starts empty.
	queued := ss.chargeLocked(pendingCost(p))
	if queued {
		ss.pending = []pendingDatagram{{payload: append([]byte(nil), p...), dst: dst}}
	}
	ss.holdsFD.Store(true)
	got, added := s.sessions.add(key, ss)
	if !added {
		ss.dropPendingLocked()
		cancel()
		s.giveFD(ss)
		return got, false
	}
	if !queued {
		s.stats.dropQueue.Add(1)
	}
	s.stats.sessionsTotal.Add(1)
	for s.sessions.len() > s.cfg.MaxSessions {
		victim, ok := s.sessions.popOldest(ss)
		if !ok {
			break
		}
		if victim.close(reasonEvicted, nil) {
			s.stats.sessionsEvicted.Add(1)
		}
	}
	s.sessWG.Add(1)
	go s.runSession(ctx, ss)
	return ss, true
}

// send relays one client datagram. Once the upstream is open this is a
// single WriteToUDPAddrPort from the caller's goroutine.
func (s *Server) send(ss *session, p []byte, dst netip.AddrPort) error {
	if !ss.ready.Load() {
		queued, err := s.enqueue(ss, p, dst)
		if queued || err != nil {
			return err
		}
	}
	_, err := ss.up.WriteToUDPAddrPort(p, dst)
	if err != nil {
		ss.mu.Lock()
		closed := ss.closed
		ss.mu.Unlock()
		if closed {
			return errSessionClosed
		}
		return err
	}
	s.countUp(ss, 1, len(p))
	return nil
}

// enqueue queues a datagram while the upstream is being opened. It reports
// false if the upstream became ready meanwhile (the caller sends directly).
func (s *Server) enqueue(ss *session, p []byte, dst netip.AddrPort) (bool, error) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	switch {
	case ss.closed:
		return false, errSessionClosed
	case ss.ready.Load():
		return false, nil
	case !ss.chargeLocked(pendingCost(p)):
		s.stats.dropQueue.Add(1)
		return true, nil
	}
	ss.pending = append(ss.pending, pendingDatagram{payload: append([]byte(nil), p...), dst: dst})
	return true, nil
}

// countUp records n datagrams of the given total length sent upstream.
func (s *Server) countUp(ss *session, n, bytes int) {
	ss.upDatagrams.Add(uint64(n))
	ss.upBytes.Add(uint64(bytes))
	s.stats.datagramsUp.Add(uint64(n))
	s.stats.bytesUp.Add(uint64(bytes))
}

// countDown records n datagrams of the given total length sent to the
// client.
func (s *Server) countDown(ss *session, n, bytes int) {
	ss.downDatagrams.Add(uint64(n))
	ss.downBytes.Add(uint64(bytes))
	s.stats.datagramsDown.Add(uint64(n))
	s.stats.bytesDown.Add(uint64(bytes))
}

// runSession opens the upstream, flushes what the client sent meanwhile and
// relays the remotes' datagrams to the client until the session is closed.
func (s *Server) runSession(ctx context.Context, ss *session) {
	defer s.sessWG.Done()
	up, err := s.routing.Load().dialer.OpenUpstream(ctx, ss.client, ss.key.route)
	if s.attach(ss, up, err) {
		if err := s.pump(ss, up); err != nil {
			ss.close(reasonError, err)
		}
	}
	s.sessions.remove(ss.key, ss)
	s.giveFD(ss)
	s.logSession(ss)
}

// takeFD takes a descriptor for a new session from the budget or, when it
// is spent, from the least recently active session, which is evicted: its
// upstream is closed now and it never gives the descriptor back. A flood of
// new sessions thus recycles UDP's own descriptors and never takes TCP's.
// false: no session to take one from.
func (s *Server) takeFD() bool {
	for {
		if s.cfg.FDs.Take(1) { // also what a victim's ending gave back meanwhile
			return true
		}
		victim, ok := s.sessions.popOldest(nil)
		if !ok {
			return false
		}
		if victim.close(reasonEvicted, nil) {
			s.stats.sessionsEvicted.Add(1)
		}
		if victim.holdsFD.Swap(false) {
			return true
		}
	}
}

// giveFD returns ss's descriptor to the budget, unless another session
// took it over.
func (s *Server) giveFD(ss *session) {
	if ss.holdsFD.Swap(false) {
		s.cfg.FDs.Give(1)
	}
}

// attach makes up the session's upstream and sends the queued datagrams,
// in order, before any later one can overtake them. It reports false if
// the session cannot go on (open failed, or closed meanwhile).
func (s *Server) attach(ss *session, up Upstream, err error) bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	switch {
	case ss.closed:
		if up != nil {
			_ = up.Close()
		}
		return false
	case err != nil:
		s.stats.dropDial.Add(uint64(len(ss.pending)))
		ss.closed, ss.reason, ss.err = true, reasonError, err
		ss.dropPendingLocked()
		return false
	}
	ss.up = up
	for _, d := range ss.pending {
		if _, err := up.WriteToUDPAddrPort(d.payload, d.dst); err != nil {
			s.stats.dropSendUp.Add(1)
			continue
		}
		s.countUp(ss, 1, len(d.payload))
	}
	ss.dropPendingLocked()
	ss.raw, ss.rawIn = batchSockets(up)
	ss.ready.Store(true)
	return true
}

// logSession writes the one debug line of a session's end.
func (s *Server) logSession(ss *session) {
	ctx := context.Background()
	if !s.log.Enabled(ctx, slog.LevelDebug) {
		return
	}
	ss.mu.Lock()
	reason, err, first, ndst := ss.reason, ss.err, ss.firstDst, len(ss.dsts)
	ss.mu.Unlock()
	attrs := []slog.Attr{
		slog.String("client", ss.client.String()),
		slog.String("dst", addrPortString(first)),
		slog.Int("dsts", ndst),
		slog.Uint64("up", ss.upDatagrams.Load()),
		slog.Uint64("up_bytes", ss.upBytes.Load()),
		slog.Uint64("down", ss.downDatagrams.Load()),
		slog.Uint64("down_bytes", ss.downBytes.Load()),
		slog.Duration("duration", time.Since(ss.start)),
		slog.String("reason", reason),
	}
	if ndst >= maxTrackedDsts {
		attrs = append(attrs, slog.Bool("dsts_capped", true))
	}
	if err != nil {
		attrs = append(attrs, slog.String("err", err.Error()))
	}
	s.log.LogAttrs(ctx, slog.LevelDebug, "udp session closed", attrs...)
}

func addrPortString(ap netip.AddrPort) string {
	if !ap.IsValid() {
		return ""
	}
	return ap.String()
}
