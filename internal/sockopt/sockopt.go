// Package sockopt builds the net.ListenConfig / net.Dialer Control functions
// gatewayd's sockets need: transparent (TPROXY) listeners and reply sockets,
// and the bypass mark on every socket gatewayd opens towards the outside.
//
// Options are applied in Control, which runs after socket() and before
// bind()/connect(), so a transparent socket can bind a foreign address and a
// marked socket's very first packet (the SYN) already carries the mark.
package sockopt

import (
	"fmt"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Control is the signature of net.ListenConfig.Control and net.Dialer.Control.
type Control = func(network, address string, c syscall.RawConn) error

// Option sets one socket option on a raw descriptor.
type Option func(fd int, network string) error

// Chain returns a Control that applies opts in order and stops at the first
// error, naming the option that failed.
func Chain(opts ...Option) Control {
	return func(network, address string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			for _, o := range opts {
				if serr = o(int(fd), network); serr != nil {
					return
				}
			}
		})
		if err != nil {
			return fmt.Errorf("socket control for %s %s: %w", network, address, err)
		}
		if serr != nil {
			return fmt.Errorf("socket options for %s %s: %w", network, address, serr)
		}
		return nil
	}
}

// isV6 reports whether the socket is AF_INET6 ("tcp6"/"udp6"). A dual-stack
// wildcard socket is also AF_INET6 and gets the IPv4 options as well.
func isV6(network string) bool { return strings.HasSuffix(network, "6") }

func setInt(fd, level, opt, val int, name string) error {
	if err := unix.SetsockoptInt(fd, level, opt, val); err != nil {
		return fmt.Errorf("setsockopt %s: %w", name, err)
	}
	return nil
}

// Transparent sets IP_TRANSPARENT (and IPV6_TRANSPARENT on AF_INET6 sockets):
// the socket may bind foreign addresses and TPROXY may hand it packets.
// Needs CAP_NET_RAW or CAP_NET_ADMIN.
func Transparent(fd int, network string) error {
	if err := setInt(fd, unix.SOL_IP, unix.IP_TRANSPARENT, 1, "IP_TRANSPARENT"); err != nil {
		return err
	}
	if isV6(network) {
		return setInt(fd, unix.SOL_IPV6, unix.IPV6_TRANSPARENT, 1, "IPV6_TRANSPARENT")
	}
	return nil
}

// RecvOrigDst asks for the original destination of each datagram as a control
// message. A dual-stack AF_INET6 socket needs the IPv4 option too, or IPv4
// datagrams arrive without one.
func RecvOrigDst(fd int, network string) error {
	if err := setInt(fd, unix.SOL_IP, unix.IP_RECVORIGDSTADDR, 1, "IP_RECVORIGDSTADDR"); err != nil {
		return err
	}
	if isV6(network) {
		return setInt(fd, unix.SOL_IPV6, unix.IPV6_RECVORIGDSTADDR, 1, "IPV6_RECVORIGDSTADDR")
	}
	return nil
}

// ReuseAddr sets SO_REUSEADDR, which lets several transparent reply sockets
// bind the same foreign address:port.
func ReuseAddr(fd int, _ string) error {
	return setInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1, "SO_REUSEADDR")
}

// Mark returns an Option that sets SO_MARK, so the kernel's policy routing
// and gatewayd's own mangle rules recognise gatewayd's outbound traffic.
// A zero mark sets nothing.
func Mark(mark uint32) Option {
	return func(fd int, _ string) error {
		if mark == 0 {
			return nil
		}
		return setInt(fd, unix.SOL_SOCKET, unix.SO_MARK, int(mark), fmt.Sprintf("SO_MARK 0x%x", mark))
	}
}

// RecvBuffer returns an Option that sizes the receive buffer to n bytes:
// SO_RCVBUFFORCE (CAP_NET_ADMIN, ignores net.core.rmem_max), else
// SO_RCVBUF (capped by rmem_max). A relay socket needs room to absorb the
// bursts that arrive while its goroutine is not scheduled.
func RecvBuffer(n int) Option {
	return func(fd int, _ string) error {
		if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, n) == nil {
			return nil
		}
		return setInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, n, "SO_RCVBUF")
	}
}
