package listen

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
)

// Listener is a relay's transparent socket: the TCP relay's listener or the
// UDP relay's receiving socket.
type Listener interface {
	*net.TCPListener | *net.UDPConn
	Close() error
}

// proto is L's protocol, "tcp" or "udp", as net and the logs spell it.
func proto[L Listener]() string {
	var ln L
	if _, ok := any(ln).(*net.TCPListener); ok {
		return "tcp"
	}
	return "udp"
}

// On opens one listener of type L on ap with lc, of ap's family (see
// Network).
func On[L Listener](ctx context.Context, lc *net.ListenConfig, ap netip.AddrPort) (L, error) {
	var (
		opened io.Closer
		err    error
		want   L
	)
	switch any(want).(type) {
	case *net.TCPListener:
		opened, err = lc.Listen(ctx, Network("tcp", ap.Addr()), ap.String())
	case *net.UDPConn:
		opened, err = lc.ListenPacket(ctx, Network("udp", ap.Addr()), ap.String())
	}
	if err != nil {
		return want, err
	}
	ln, ok := opened.(L)
	if !ok {
		_ = opened.Close()
		return want, fmt.Errorf("got a %T, want %T", opened, want)
	}
	return ln, nil
}

// Open opens a listener of type L on every address with lc (see All),
// hands them to adopt, which makes them the server's, and logs each one.
// If no address is given, one fails to open or adopt refuses them, every
// listener opened is closed again.
func Open[L Listener](ctx context.Context, lc *net.ListenConfig, addrs []netip.AddrPort, adopt func(...L) error, log *slog.Logger) error {
	p := proto[L]()
	if len(addrs) == 0 {
		return fmt.Errorf("listening: no %s listen addresses configured", strings.ToUpper(p))
	}
	opened, err := All(addrs, func(ap netip.AddrPort) (L, error) { return On[L](ctx, lc, ap) })
	if err != nil {
		return err
	}
	if err := adopt(opened...); err != nil {
		CloseAll(opened)
		return err
	}
	for _, ln := range opened {
		log.Info(p+" listening", "addr", local(ln).String())
	}
	return nil
}

// local is ln's bound address as the socket reports it.
func local[L Listener](ln L) net.Addr {
	switch ln := any(ln).(type) {
	case *net.TCPListener:
		return ln.Addr()
	case *net.UDPConn:
		return ln.LocalAddr()
	}
	return nil
}

// Bound returns ln's bound address, with the real port where 0 was asked
// for, in Canonical form; the zero AddrPort if the socket reports none.
func Bound[L Listener](ln L) netip.AddrPort {
	switch a := local(ln).(type) {
	case *net.TCPAddr:
		return Canonical(a.AddrPort())
	case *net.UDPAddr:
		return Canonical(a.AddrPort())
	}
	return netip.AddrPort{}
}

// BoundAll returns the bound address of every listener, in order.
func BoundAll[L Listener](lns []L) []netip.AddrPort {
	out := make([]netip.AddrPort, 0, len(lns))
	for _, ln := range lns {
		out = append(out, Bound(ln))
	}
	return out
}
