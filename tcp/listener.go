package tcp

import (
	"context"
	"errors"
	"net"
	"net/netip"

	"github.com/gatewayd/gatewayd/internal/listen"
	"github.com/gatewayd/gatewayd/internal/sockopt"
)

// Listen opens a transparent listener (IP_TRANSPARENT, no MPTCP, no
// keepalive probes to clients) on every
// Config.Listen address. On failure it closes the ones it opened and names
// the address that failed. Needs CAP_NET_RAW or CAP_NET_ADMIN.
func (s *Server) Listen(ctx context.Context) error {
	lc := net.ListenConfig{Control: sockopt.Chain(sockopt.Transparent), KeepAlive: sockopt.NoClientKeepAlive}
	lc.SetMultipathTCP(false)
	return listen.Open(ctx, &lc, s.cfg.Listen, s.addListeners, s.log)
}

// Addrs returns the bound listener addresses (with the real port where the
// config said 0).
func (s *Server) Addrs() []netip.AddrPort {
	s.mu.Lock()
	defer s.mu.Unlock()
	return listen.BoundAll(s.listeners)
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
	s.guard.Store(listen.NewGuard(listen.BoundAll(s.listeners), s.cfg.IsLocal))
	return nil
}

// listenerAddr is ln's bound address, canonical.
func listenerAddr(ln *net.TCPListener) netip.AddrPort { return listen.Bound(ln) }
