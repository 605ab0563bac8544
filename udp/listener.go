package udp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/gatewayd/gatewayd/internal/listen"
	"github.com/gatewayd/gatewayd/internal/sockopt"
)

// listenerRecvBuffer is the listeners' receive buffer: every LAN client's
// datagrams queue there while the read loop is descheduled (the default,
// about 200 KiB, holds ~170 datagrams of 1200 bytes). Much more only adds
// queueing delay: at ~50k datagrams/s 1 MiB is ~20 ms.
const listenerRecvBuffer = 1 << 20

// Listen opens a transparent listener (IP_TRANSPARENT, IP_RECVORIGDSTADDR,
// and their IPv6 twins on AF_INET6 sockets) on every Config.Listen address.
// On failure it closes the ones it opened and names the address that
// failed. Needs CAP_NET_RAW or CAP_NET_ADMIN.
func (s *Server) Listen(ctx context.Context) error {
	if len(s.cfg.Listen) == 0 {
		return errors.New("listening: no UDP listen addresses configured")
	}
	lc := net.ListenConfig{Control: sockopt.Chain(sockopt.Transparent, sockopt.RecvOrigDst, sockopt.RecvBuffer(listenerRecvBuffer))}
	opened, err := listen.All(s.cfg.Listen, func(ap netip.AddrPort) (*net.UDPConn, error) {
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
		s.log.Info("udp listening", "addr", ln.LocalAddr().String())
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
func (s *Server) addListeners(lns ...*net.UDPConn) error {
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

func listenOne(ctx context.Context, lc *net.ListenConfig, ap netip.AddrPort) (*net.UDPConn, error) {
	pc, err := lc.ListenPacket(ctx, listen.Network("udp", ap.Addr()), ap.String())
	if err != nil {
		return nil, err
	}
	uc, ok := pc.(*net.UDPConn)
	if !ok {
		_ = pc.Close()
		return nil, fmt.Errorf("got a %T, want *net.UDPConn", pc)
	}
	return uc, nil
}

func listenerAddr(ln *net.UDPConn) netip.AddrPort {
	if a, ok := ln.LocalAddr().(*net.UDPAddr); ok {
		return listen.Canonical(a.AddrPort())
	}
	return netip.AddrPort{}
}
