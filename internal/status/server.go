// Package status is gatewayd's read-only HTTP endpoint: Prometheus metrics
// (/metrics, what a metrics.Registry gathers from the collectors each part
// of the daemon exposes; status adds only the process, Go runtime, build,
// descriptor budget and active flow ones), a JSON status document with the
// active flows (/status), and a liveness check (/healthz); and the client
// `gatewayd status` uses to read it.
//
// The endpoint shows every LAN client's flows, so it listens on loopback
// (DefaultAddr) unless a non-loopback address is explicitly allowed, and
// even then answers only the clients Config.AllowClient accepts and only
// requests naming it by an IP address, localhost or a configured host name
// (a DNS rebinding guard).
package status

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/gatewayd/gatewayd/internal/listen"
	"github.com/gatewayd/gatewayd/internal/metrics"
)

// DefaultAddr is where the endpoint listens unless configured otherwise:
// loopback only, port 9090 as Prometheus exporters customarily use.
const DefaultAddr = "127.0.0.1:9090"

// HTTP server limits. Requests carry no body, so they are read quickly; a
// /status with many flows on a slow router gets longer to be written.
const (
	readHeaderTimeout = 5 * time.Second  // request head must arrive within this (slowloris guard)
	readTimeout       = 10 * time.Second // whole request, head included
	writeTimeout      = 30 * time.Second // writing one response
	idleTimeout       = 2 * time.Minute  // keep-alive between scrapes (Prometheus default interval: 1 min)
	maxHeaderBytes    = 8 << 10          // 8 KiB: a GET with a few headers needs far less
)

// Config configures a Server.
type Config struct {
	// Listen is the endpoint's address; the zero value means DefaultAddr.
	Listen netip.AddrPort
	// AllowNonLoopback must be set for a Listen address outside loopback:
	// only when the user configured that address themselves. The unspecified
	// addresses (0.0.0.0, ::) are always refused: they would serve the WAN.
	AllowNonLoopback bool
	// AllowClient reports whether a client address may connect; others are
	// disconnected at accept. nil allows loopback clients only, so a LAN
	// address needs e.g. "loopback or in a LAN subnet".
	AllowClient func(netip.Addr) bool
	// Hosts are host names (beyond IP addresses and "localhost") that
	// requests may name in their Host header, e.g. "router.lan".
	Hosts []string

	Version string
	Start   time.Time // the daemon's start; zero: when New was called
	// ConfigPath and ConfigSHA256 (see ConfigDigest) name the running
	// config; SetConfig replaces them after a reload.
	ConfigPath, ConfigSHA256 string

	Metrics   *metrics.Registry // what /metrics serves; nil: an empty Registry
	Flows     func() []Flow     // the active flows; nil: none
	Listeners func() []Listener // the daemon's listeners; the endpoint's own is added
	Health    func() error      // nil or returning nil: /healthz answers 200; else 503 with the error
	// Pages serves GET and HEAD for every path the endpoint does not,
	// "/" included (the dashboard), behind the same guards; nil: "/" lists
	// the endpoint's paths.
	Pages http.Handler
}

// Server is the status endpoint.
type Server struct {
	cfg  Config
	log  *slog.Logger
	http *http.Server

	mu     sync.Mutex
	ln     net.Listener
	config ConfigInfo
	closed bool // Shutdown was called
}

// New checks cfg and returns a Server; it opens nothing until Listen. A nil
// log discards output.
func New(cfg Config, log *slog.Logger) (*Server, error) {
	if !cfg.Listen.IsValid() {
		cfg.Listen = netip.MustParseAddrPort(DefaultAddr)
	}
	if err := cfg.check(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Start.IsZero() {
		cfg.Start = time.Now()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = &metrics.Registry{}
	}
	s := &Server{cfg: cfg, log: log, config: ConfigInfo{Path: cfg.ConfigPath, SHA256: cfg.ConfigSHA256}}
	s.http = &http.Server{
		Handler:           s.handler(),
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	return s, nil
}

// check refuses listen addresses that would expose the endpoint by accident.
func (c *Config) check() error {
	a := c.Listen.Addr().Unmap()
	switch {
	case a.IsUnspecified():
		return fmt.Errorf("status endpoint: refusing to listen on %s: the wildcard address would answer on every interface, WAN included; name a loopback or LAN address", c.Listen)
	case !a.IsLoopback() && !c.AllowNonLoopback:
		return fmt.Errorf("status endpoint: refusing to listen on %s: not a loopback address, and non-loopback listening was not explicitly configured", c.Listen)
	}
	return nil
}

// SetConfig records the config now running (after a reload).
func (s *Server) SetConfig(path, sha256 string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.config = ConfigInfo{Path: path, SHA256: sha256}
}

// Listen opens the endpoint's TCP listener.
func (s *Server) Listen(ctx context.Context) error {
	ap := s.cfg.Listen
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, listen.Network("tcp", ap.Addr()), ap.String())
	if err != nil {
		return fmt.Errorf("listening for status requests on %s: %w", ap, err)
	}
	allow := s.cfg.AllowClient
	if allow == nil {
		allow = netip.Addr.IsLoopback
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.ln != nil {
		_ = ln.Close()
		return errors.New("listening for status requests: server is shut down or already listening")
	}
	s.ln = &filterListener{Listener: ln, allow: allow, log: s.log}
	s.log.Info("status listening", "addr", ln.Addr().String())
	return nil
}

// Addr is the bound address (with the real port where the config said 0),
// or the zero value before Listen.
func (s *Server) Addr() netip.AddrPort {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return netip.AddrPort{}
	}
	return addrPortOf(s.ln.Addr())
}

// Serve answers requests until Shutdown; it returns nil then.
func (s *Server) Serve() error {
	s.mu.Lock()
	ln, closed := s.ln, s.closed
	s.mu.Unlock()
	switch {
	case closed:
		return nil
	case ln == nil:
		return errors.New("serving status: no listener, call Listen first")
	}
	if err := s.http.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serving status on %s: %w", ln.Addr(), err)
	}
	return nil
}

// Shutdown stops listening, lets requests in progress finish for up to
// grace, then closes the remaining connections.
func (s *Server) Shutdown(grace time.Duration) {
	s.mu.Lock()
	s.closed = true
	ln := s.ln
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := s.http.Shutdown(ctx); err != nil {
		_ = s.http.Close()
	}
	if ln != nil {
		_ = ln.Close() // in case Serve never ran: http.Server only closes listeners it serves
	}
}

// Close is Shutdown without grace.
func (s *Server) Close() error {
	s.Shutdown(0)
	return nil
}

func addrPortOf(a net.Addr) netip.AddrPort {
	if ta, ok := a.(*net.TCPAddr); ok {
		return listen.Canonical(ta.AddrPort())
	}
	return netip.AddrPort{}
}

// filterListener disconnects, at accept, clients its allow func refuses.
type filterListener struct {
	net.Listener
	allow func(netip.Addr) bool
	log   *slog.Logger
}

func (l *filterListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		client := addrPortOf(c.RemoteAddr())
		if l.allow(client.Addr()) {
			return c, nil
		}
		l.log.Debug("status: refused a client not allowed to connect", "client", client.String())
		_ = c.Close()
	}
}
