// Package tcp is gatewayd's TCP side of TPROXY: transparent listeners whose
// accepted connections carry the client's original destination as their
// local address, and a splice-friendly relay to an upstream opened by a
// Dialer.
package tcp

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

// Config configures a Server.
type Config struct {
	// Listen gets one transparent listener per address (e.g. 127.0.0.1:15001
	// and [::1]:15001). "[::]:p" is dual-stack, "0.0.0.0:p" IPv4 only.
	Listen []netip.AddrPort
	// Dialer opens upstreams (the daemon's dispatcher, whose "direct"
	// outbound connects straight). nil: every flow is refused until
	// SetDialer.
	Dialer Dialer
	// IdleTimeout closes a flow that carried no data either way for this
	// long. 0 disables it.
	IdleTimeout time.Duration
	// MaxConns limits concurrent flows; a client over it is reset at once.
	// 0 means no limit.
	MaxConns int
	// Sniff reads each flow's first bytes before dialing, for the server
	// name (TLS SNI, HTTP Host) the Dialer gets in Flow.Domain. Off, flows
	// are dialed at once. The bytes read go upstream first; the relay
	// keeps the splice path either way.
	Sniff bool
	// SniffTimeout bounds the wait for the first bytes; 0:
	// DefaultSniffTimeout.
	SniffTimeout time.Duration
	// FDs is the process's descriptor budget: a flow takes FDsPerFlow
	// from it when accepted (a client over it is reset at once), a pipe
	// two while lent. nil: no budget.
	FDs *fdbudget.Budget
	// MaxPipes bounds the splice pipes (two fds each) lent to directions
	// that are moving data; a direction that finds none copies through a
	// 16 KiB buffer instead. 0: 512.
	MaxPipes int
	// IsLocal reports router-local addresses for the loop guard. nil: only
	// the listener addresses and loopback/unspecified addresses on a
	// listener port are refused.
	IsLocal func(netip.Addr) bool
}

// Server accepts TPROXY'd TCP connections and relays them upstream.
type Server struct {
	cfg   Config
	log   *slog.Logger
	stats counters

	ctx      context.Context // parent of upstream dials
	cancel   context.CancelFunc
	done     chan struct{} // closed when Shutdown starts; wakes accept backoff
	relays   *relayer
	limitLog limitLog
	spare    spareFD // for accepting at EMFILE
	guard    atomic.Pointer[listen.Guard]
	route    atomic.Pointer[routing] // Config.Dialer and Sniff; SetDialer replaces them

	mu        sync.Mutex
	listeners []*net.TCPListener
	flows     map[*flow]struct{}
	serving   bool // Serve was called
	stopped   bool // listeners closed: accept errors are expected
	closing   bool // Shutdown started: no new flows or listeners
	forced    bool // grace expired: flows are being killed

	loops        sync.WaitGroup // accept loops
	flowWG       sync.WaitGroup // flow goroutines
	shutdownOnce sync.Once
}

// New returns a Server for cfg. It opens nothing: call Listen, then Serve.
// A nil log discards output.
func New(cfg Config, log *slog.Logger) *Server {
	if cfg.Dialer == nil {
		cfg.Dialer = noDialer{}
	}
	if cfg.SniffTimeout <= 0 {
		cfg.SniffTimeout = DefaultSniffTimeout
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		cfg:    cfg,
		log:    log,
		ctx:    ctx,
		cancel: cancel,
		done:   make(chan struct{}),
		flows:  make(map[*flow]struct{}),
		relays: newRelayer(cfg.MaxPipes, cfg.FDs),
	}
	s.guard.Store(listen.NewGuard(nil, cfg.IsLocal))
	s.route.Store(&routing{dialer: cfg.Dialer, sniff: cfg.Sniff})
	return s
}

// routing is how new flows are dialed.
type routing struct {
	dialer Dialer
	sniff  bool
}

// SetDialer makes new flows use d, sniffed first if sniff (a config
// reload); flows already relayed keep their upstreams.
func (s *Server) SetDialer(d Dialer, sniff bool) {
	s.route.Store(&routing{dialer: d, sniff: sniff})
}

// Serve runs one accept loop per listener and blocks until they end. It
// returns nil after Shutdown or Close. If a listener fails permanently, Serve
// closes the other listeners (active flows go on) and returns that error.
func (s *Server) Serve() error {
	s.mu.Lock()
	switch {
	case s.closing:
		s.mu.Unlock()
		return nil
	case s.serving:
		s.mu.Unlock()
		return errors.New("serving TCP: Serve already called")
	case len(s.listeners) == 0:
		s.mu.Unlock()
		return errors.New("serving TCP: no listeners, call Listen first")
	}
	s.serving = true
	s.spare.open()
	lns := append([]*net.TCPListener(nil), s.listeners...)
	s.loops.Add(len(lns))
	s.mu.Unlock()

	defer s.loops.Add(-len(lns)) // ServeAll returns once every loop has ended
	return listen.ServeAll(lns, s.acceptLoop, s.closeListeners)
}

// Shutdown stops accepting at once, gives active flows up to grace to end
// on their own, then resets the rest. It returns when every goroutine of the
// server has ended. Later calls wait for the first to finish.
func (s *Server) Shutdown(grace time.Duration) {
	s.shutdownOnce.Do(func() {
		s.mu.Lock()
		s.closing = true
		s.mu.Unlock()
		close(s.done)
		s.closeListeners()
		s.loops.Wait()

		flowsDone := make(chan struct{})
		go func() { s.flowWG.Wait(); close(flowsDone) }()
		timer := time.NewTimer(grace)
		defer timer.Stop()
		select {
		case <-flowsDone:
		case <-timer.C:
			s.killFlows()
			<-flowsDone
		}
		s.cancel()
		s.relays.close()
		s.spare.release()
	})
}

// Close is Shutdown without grace.
func (s *Server) Close() error {
	s.Shutdown(0)
	return nil
}

// closeListeners closes every listener; their accept loops then end.
func (s *Server) closeListeners() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopped = true
	listen.CloseAll(s.listeners)
}

// killFlows resets every remaining flow and aborts dials in progress.
func (s *Server) killFlows() {
	type victim struct {
		f  *flow
		up *net.TCPConn
	}
	s.mu.Lock()
	s.forced = true
	victims := make([]victim, 0, len(s.flows))
	for f := range s.flows {
		victims = append(victims, victim{f, f.upstream})
	}
	s.mu.Unlock()
	for _, v := range victims { // unlocked: a killed relay completes its flow, which takes s.mu
		v.f.kill(v.up)
	}
	s.cancel() // after marking the flows, so an aborted dial is not a dial failure
}
