package tcp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/gatewayd/gatewayd/internal/listen"
	"github.com/gatewayd/gatewayd/internal/sockopt"
)

// Listen opens a transparent listener (IP_TRANSPARENT, no MPTCP) on every
// Config.Listen address. On failure it closes the ones it opened and names
// the address that failed. Needs CAP_NET_RAW or CAP_NET_ADMIN.
func (s *Server) Listen(ctx context.Context) error {
	if len(s.cfg.Listen) == 0 {
		return errors.New("listening: no TCP listen addresses configured")
	}
	lc := net.ListenConfig{Control: sockopt.Chain(sockopt.Transparent)}
	lc.SetMultipathTCP(false)
	opened, err := listen.All(s.cfg.Listen, func(ap netip.AddrPort) (*net.TCPListener, error) {
		return listenOne(ctx, &lc, ap)
	})
	if err != nil {
		return err
	}
	if err := s.addListeners(opened...); err != nil {
		listen.CloseAll(opened)
		return err
	}
	for _, ln := range opened {
		s.log.Info("tcp listening", "addr", ln.Addr().String())
	}
	return nil
}

// Addrs returns the bound listener addresses (with the real port where the
// config said 0).
func (s *Server) Addrs() []netip.AddrPort {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]netip.AddrPort, 0, len(s.listeners))
	for _, ln := range s.listeners {
		out = append(out, listenerAddr(ln))
	}
	return out
}

// addListeners makes lns part of the server: served by Serve, closed by
// Shutdown and guarded against loops.
func (s *Server) addListeners(lns ...*net.TCPListener) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return errors.New("listening: server is shut down")
	}
	if s.serving {
		return errors.New("listening: server is already serving")
	}
	s.listeners = append(s.listeners, lns...)
	addrs := make([]netip.AddrPort, 0, len(s.listeners))
	for _, ln := range s.listeners {
		addrs = append(addrs, listenerAddr(ln))
	}
	s.guard.Store(listen.NewGuard(addrs, s.cfg.IsLocal))
	return nil
}

func listenOne(ctx context.Context, lc *net.ListenConfig, ap netip.AddrPort) (*net.TCPListener, error) {
	ln, err := lc.Listen(ctx, listen.Network("tcp", ap.Addr()), ap.String())
	if err != nil {
		return nil, err
	}
	tl, ok := ln.(*net.TCPListener)
	if !ok {
		_ = ln.Close()
		return nil, fmt.Errorf("got a %T, want *net.TCPListener", ln)
	}
	return tl, nil
}

func listenerAddr(ln *net.TCPListener) netip.AddrPort {
	if a, ok := ln.Addr().(*net.TCPAddr); ok {
		return listen.Canonical(a.AddrPort())
	}
	return netip.AddrPort{}
}
