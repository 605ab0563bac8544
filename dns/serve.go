package dns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatewayd/gatewayd/internal/listen"
	"github.com/gatewayd/gatewayd/internal/sockopt"
)

// ServerConfig is where the DNS hijack listens. The mangle rules send LAN
// DNS (UDP and TCP port 53, any destination) to these transparent
// listeners with TPROXY, so the original destination is known: for TCP it
// is the accepted socket's local address, for UDP the IP_ORIGDSTADDR
// control message, and UDP answers leave from a transparent socket bound
// to it. gatewayd never binds the router's own port 53, so it coexists
// with a local resolver such as dnsmasq.
type ServerConfig struct {
	Listen     []netip.AddrPort // one UDP and one TCP listener each, e.g. 127.0.0.1:15053
	BypassMark uint32           // SO_MARK of the reply sockets
}

// Server receives hijacked queries and answers them with a Handler.
type Server struct {
	cfg ServerConfig
	h   atomic.Pointer[Handler] // SetHandler replaces it
	log *slog.Logger

	mu      sync.Mutex
	udp     []*net.UDPConn
	tcp     []*tcpServer
	replies *replySockets

	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup // UDP read loops
	dropped atomic.Uint64  // queries dropped: undecodable destination, send errors, garbage to an address with no reply socket open
}

// NewServer returns a server answering with h. A nil log discards output.
func NewServer(cfg ServerConfig, h *Handler, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		cfg: cfg, log: log, ctx: ctx, cancel: cancel,
		replies: newReplySockets(cfg.BypassMark),
	}
	s.h.Store(h)
	return s
}

// SetHandler makes h answer the queries that arrive from now on (a config
// reload; see Handler.Adopt).
func (s *Server) SetHandler(h *Handler) { s.h.Store(h) }

// Handler is the Handler answering now.
func (s *Server) Handler() *Handler { return s.h.Load() }

// Listen opens the transparent UDP and TCP listeners.
func (s *Server) Listen(ctx context.Context) error {
	if len(s.cfg.Listen) == 0 {
		return errors.New("listening for DNS: no addresses configured")
	}
	ulc := net.ListenConfig{Control: sockopt.Chain(sockopt.Transparent, sockopt.RecvOrigDst)}
	udps, err := listen.All(s.cfg.Listen, func(ap netip.AddrPort) (*net.UDPConn, error) {
		return listen.On[*net.UDPConn](ctx, &ulc, ap)
	})
	if err != nil {
		return fmt.Errorf("DNS over UDP: %w", err)
	}
	tlc := net.ListenConfig{Control: sockopt.Chain(sockopt.Transparent)}
	tlc.SetMultipathTCP(false)
	lns, err := listen.All(s.cfg.Listen, func(ap netip.AddrPort) (net.Listener, error) {
		return tlc.Listen(ctx, listen.Network("tcp", ap.Addr()), ap.String())
	})
	if err != nil {
		listen.CloseAll(udps)
		return fmt.Errorf("DNS over TCP: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.udp = udps
	for _, ln := range lns {
		s.tcp = append(s.tcp, newTCPServer(ln, s))
		s.log.Info("dns listening", "addr", ln.Addr().String())
	}
	return nil
}

// Serve answers queries until Shutdown; it returns nil then.
func (s *Server) Serve() error {
	s.mu.Lock()
	udps, tcps := s.udp, s.tcp
	s.mu.Unlock()
	errs := make(chan error, len(udps)+len(tcps))
	for _, c := range udps {
		s.wg.Add(1)
		go func() { defer s.wg.Done(); errs <- s.readLoop(c) }()
	}
	for _, t := range tcps {
		go func() { errs <- t.serve() }()
	}
	var first error
	for range len(udps) + len(tcps) {
		if err := <-errs; err != nil && first == nil && s.ctx.Err() == nil {
			first = err
			s.cancel()
			s.closeListeners()
		}
	}
	return first
}

// Shutdown stops listening, lets queries being resolved finish for up to
// grace, and closes the reply sockets.
func (s *Server) Shutdown(grace time.Duration) {
	s.cancel()
	s.closeListeners()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(grace):
	}
	s.mu.Lock()
	for _, t := range s.tcp {
		t.shutdown()
	}
	s.mu.Unlock()
	s.replies.closeAll()
}

func (s *Server) closeListeners() {
	s.mu.Lock()
	defer s.mu.Unlock()
	listen.CloseAll(s.udp)
	for _, t := range s.tcp {
		_ = t.ln.Close()
	}
}

// Dropped counts queries dropped by the transport.
func (s *Server) Dropped() uint64 { return s.dropped.Load() }
