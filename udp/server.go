// Package udp is gatewayd's UDP side of TPROXY: transparent listeners that
// learn each datagram's original destination from a control message, and a
// full-cone relay. Every client address:port gets one session with one
// upstream socket for all its destinations; whatever any remote sends to
// that socket reaches the client from the remote's address:port: from a
// few raw sockets shared by all remotes (gatewayd writes the headers), or,
// for a remote that streams, from a transparent reply socket bound to the
// remote's address.
package udp

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatewayd/gatewayd/internal/fdbudget"
	"github.com/gatewayd/gatewayd/internal/listen"
)

// Defaults for zero Config fields (and the config file's).
const (
	// DefaultIdleTimeout ends a session without datagrams either way:
	// long enough for games, VoIP and QUIC between keepalives (commonly
	// 15-30 s), less than Linux conntrack's UDP stream timeout
	// (net.netfilter.nf_conntrack_udp_timeout_stream, 120 s).
	DefaultIdleTimeout = 60 * time.Second
	DefaultMaxSessions = 4096
	// defaultRepliesPerSession sizes the reply socket cache: most sessions
	// talk to one remote, some to a few.
	defaultRepliesPerSession = 2
)

// The sweeper runs sweepsPerIdle times per IdleTimeout (so a session ends
// at most a quarter late), but not more often than sweepFloor.
const (
	sweepsPerIdle = 4
	sweepFloor    = 10 * time.Millisecond
)

// During Shutdown, sessions quiet for drainQuiet are closed at once (their
// replies are in); the others get until the grace period ends. drainPoll is
// how often that is re-checked.
const (
	drainQuiet = 500 * time.Millisecond
	drainPoll  = 50 * time.Millisecond
)

// Config configures a Server.
type Config struct {
	// Listen gets one transparent listener per address (e.g. 127.0.0.1:15001
	// and [::1]:15001). "[::]:p" is dual-stack, "0.0.0.0:p" IPv4 only.
	Listen []netip.AddrPort
	// BypassMark is the SO_MARK of the default upstream sockets and of the
	// reply sockets; it must not intersect the TPROXY fwmark/mask.
	BypassMark uint32
	// Dialer opens each session's upstream (the daemon's dispatcher, whose
	// "direct" outbound sends straight). nil: no session opens until
	// SetRouting.
	Dialer Dialer
	// Router picks each datagram's route; nil: route 0 for all.
	Router Router
	// IdleTimeout ends a session (and a reply socket) that carried no
	// datagram for this long. <= 0: 60 s.
	IdleTimeout time.Duration
	// MaxSessions bounds the session table. A new client always gets a
	// session; beyond the bound the least recently active one is evicted.
	// <= 0: 4096.
	MaxSessions int
	// MaxReplySockets bounds the reply socket cache, least recently used
	// first out. <= 0: 2*MaxSessions.
	MaxReplySockets int
	// FDs is the process's descriptor budget: a session takes one for its
	// upstream socket, a bound reply socket one. At the budget a new
	// session takes over the descriptor of the least recently active
	// session, which is evicted (UDP recycles its own descriptors, never
	// TCP's), and a remote that would get a bound reply socket stays on the
	// raw ones. nil: no budget.
	FDs *fdbudget.Budget
	// IsLocal reports router-local addresses, for the loop guard and to
	// refuse spoofing them. It must be safe for concurrent use. nil: only
	// listener addresses and loopback/unspecified addresses on a listener
	// port count.
	IsLocal func(netip.Addr) bool
}

// Server receives TPROXY'd UDP datagrams and relays them full cone.
type Server struct {
	cfg   Config
	log   *slog.Logger
	stats counters
	epoch time.Time // zero of the server clock (monotonic)

	ctx    context.Context // parent of upstream opens
	cancel context.CancelFunc
	done   chan struct{} // closed when Shutdown starts
	guard  atomic.Pointer[listen.Guard]
	// routing is Config.Router and Dialer; SetRouting replaces them.
	routing atomic.Pointer[routing]

	// pendingBytes is what the queues of sessions still opening their
	// upstreams hold, against maxPendingTotal.
	pendingBytes atomic.Int64
	holds        holds // datagrams of flows the Router has not routed yet (RouteHold)
	sessions     *table[sessionKey, *session]
	replies      *table[netip.AddrPort, *replySock]
	// Session readers' batches (*downBatch) of one datagram and of
	// sessionBatch datagrams.
	smallBatches, bigBatches sync.Pool
	bufsHeld                 atomic.Int64  // batches session readers hold now
	linger                   time.Duration // bufferLinger; shorter in tests
	// openReply binds a reply socket; a seam for unprivileged tests.
	openReply func(remote netip.AddrPort) (*net.UDPConn, error)
	// raw sends replies without a socket per remote (rawreply.go); nil:
	// bound reply sockets only (tests that fake those).
	raw        *rawReplier
	rawBatches sync.Pool // *rawBatch for one-datagram deliveries

	warnedNoOrigDst, warnedReply, warnedRaw atomic.Bool

	mu        sync.Mutex
	listeners []*net.UDPConn
	serving   bool // Serve was called
	stopped   bool // listeners closed: read errors are expected
	closing   bool // Shutdown started

	loops        sync.WaitGroup // listener read loops
	sweepWG      sync.WaitGroup // the sweeper
	sessWG       sync.WaitGroup // session goroutines
	shutdownOnce sync.Once
}

// New returns a Server for cfg. It opens nothing: call Listen, then Serve.
// A nil log discards output.
func New(cfg Config, log *slog.Logger) *Server {
	if cfg.Dialer == nil {
		cfg.Dialer = noDialer{}
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.MaxSessions <= 0 {
		cfg.MaxSessions = DefaultMaxSessions
	}
	if cfg.MaxReplySockets <= 0 {
		cfg.MaxReplySockets = defaultRepliesPerSession * cfg.MaxSessions
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		cfg:      cfg,
		log:      log,
		epoch:    time.Now(),
		ctx:      ctx,
		cancel:   cancel,
		done:     make(chan struct{}),
		sessions: newTable[sessionKey, *session](hashSessionKey),
		replies:  newTable[netip.AddrPort, *replySock](hashAddrPort),
	}
	s.smallBatches.New = func() any { return newDownBatch(1) }
	s.bigBatches.New = func() any { return newDownBatch(sessionBatch) }
	s.openReply = s.openReplySocket
	s.raw = newRawReplier(cfg.BypassMark)
	s.rawBatches.New = func() any { return newRawBatch() }
	s.linger = bufferLinger
	s.guard.Store(listen.NewGuard(nil, cfg.IsLocal))
	s.routing.Store(&routing{router: cfg.Router, dialer: cfg.Dialer})
	return s
}

// now reads the server clock: monotonic nanoseconds since New.
func (s *Server) now() int64 { return int64(time.Since(s.epoch)) }

// Serve runs one read loop per listener and the session sweeper, and blocks
// until the read loops end. It returns nil after Shutdown. If a listener
// fails permanently, Serve closes the other listeners (sessions go on until
// Shutdown) and returns that error.
func (s *Server) Serve() error {
	s.mu.Lock()
	switch {
	case s.closing:
		s.mu.Unlock()
		return nil
	case s.serving:
		s.mu.Unlock()
		return errors.New("serving UDP: Serve already called")
	case len(s.listeners) == 0:
		s.mu.Unlock()
		return errors.New("serving UDP: no listeners, call Listen first")
	}
	s.serving = true
	lns := append([]*net.UDPConn(nil), s.listeners...)
	s.loops.Add(len(lns))
	s.sweepWG.Add(1)
	s.mu.Unlock()

	go func() {
		defer s.sweepWG.Done()
		s.sweepLoop()
	}()
	defer s.loops.Add(-len(lns)) // ServeAll returns once every loop has ended
	return listen.ServeAll(lns, s.readLoop, s.closeListeners)
}

// Shutdown stops receiving at once. Sessions then have up to grace to
// receive their last replies: each is closed once it has been quiet for
// drainQuiet, the rest when grace ends. It returns when every goroutine and
// socket of the server is gone. Later calls wait for the first to finish.
func (s *Server) Shutdown(grace time.Duration) {
	s.shutdownOnce.Do(func() {
		s.mu.Lock()
		s.closing = true
		s.mu.Unlock()
		s.closeListeners()
		s.loops.Wait()
		s.dropHolds()

		s.drain(grace)
		close(s.done)
		s.sweepWG.Wait()
		for _, ss := range s.sessions.drain() {
			ss.close(reasonShutdown, nil)
		}
		s.cancel()
		s.sessWG.Wait()
		for _, rs := range s.replies.drain() {
			s.closeReply(rs)
		}
		if s.raw != nil {
			s.raw.close()
		}
	})
}

// Close is Shutdown without grace.
func (s *Server) Close() error {
	s.Shutdown(0)
	return nil
}

// drain closes sessions as they go quiet, until none is left or grace
// has passed.
func (s *Server) drain(grace time.Duration) {
	if grace <= 0 {
		return
	}
	deadline := time.Now().Add(grace)
	for s.sessions.len() > 0 {
		for _, ss := range s.sessions.expire(s.now() - int64(drainQuiet)) {
			ss.close(reasonShutdown, nil)
		}
		left := time.Until(deadline)
		if left <= 0 || s.sessions.len() == 0 {
			return
		}
		time.Sleep(min(drainPoll, left))
	}
}

// sweepLoop expires idle sessions and reply sockets until Shutdown.
func (s *Server) sweepLoop() {
	t := time.NewTicker(max(s.cfg.IdleTimeout/sweepsPerIdle, sweepFloor))
	defer t.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-t.C:
			s.sweep(s.now())
		}
	}
}

// sweep closes the sessions and reply sockets idle for IdleTimeout at now.
func (s *Server) sweep(now int64) {
	cutoff := now - int64(s.cfg.IdleTimeout)
	for _, ss := range s.sessions.expire(cutoff) {
		if ss.close(reasonIdle, nil) {
			s.stats.sessionsExpired.Add(1)
		}
	}
	for _, rs := range s.replies.expire(cutoff) {
		s.closeReply(rs)
	}
	if s.raw != nil {
		s.raw.expire(cutoff)
	}
}

// closeListeners closes every listener; their read loops then end.
func (s *Server) closeListeners() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopped = true
	listen.CloseAll(s.listeners)
}

func (s *Server) listenersStopped() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopped
}
