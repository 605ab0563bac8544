// Package outbound opens the outside leg of an intercepted flow through a
// named outbound: straight to the destination ("direct"), through a SOCKS5
// proxy (RFC 1928, with RFC 1929 username/password), through an HTTP
// CONNECT proxy, or nowhere ("reject").
//
// Every outbound hands TCP flows back as a plain *net.TCPConn, so the relay
// keeps the kernel's splice path: for a proxy it is the connection to the
// proxy after a completed handshake, read byte-precisely so no payload byte
// is left in a user-space buffer. Every socket an outbound opens carries the
// configured SO_MARK, so gatewayd never intercepts its own traffic.
//
// An Outbound holds no goroutines of its own between calls; a SOCKS5 UDP
// association holds one (watching its control connection) until it is
// closed or the proxy ends it.
package outbound

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"
)

// Dest is where a flow goes: always the original IP destination; Domain is
// set when known (DNS memory, sniffing), and used only by proxy outbounds
// configured with PreferNames.
type Dest struct {
	Addr   netip.AddrPort
	Domain string
}

// String is the domain:port when the domain is set, else the address.
func (d Dest) String() string {
	if d.Domain != "" {
		return net.JoinHostPort(d.Domain, strconv.Itoa(int(d.Addr.Port()))) + " (" + d.Addr.Addr().String() + ")"
	}
	return d.Addr.String()
}

// Outbound opens the outside leg of flows. Implementations are safe for
// concurrent use.
type Outbound interface {
	// Name is the configured name.
	Name() string
	// DialTCP returns a connection whose bytes, from now on, go to and
	// come from dst unchanged. For a proxy outbound it is the connection
	// to the proxy after a completed handshake, with no byte of the
	// destination's stream consumed.
	DialTCP(ctx context.Context, dst Dest) (*net.TCPConn, error)
	// OpenUDP returns the packet endpoint of one client's full-cone
	// session. ctx bounds only the opening; the endpoint lives until
	// Close (or, for SOCKS5, until the proxy ends the association).
	OpenUDP(ctx context.Context, client netip.AddrPort) (UDPConn, error)
	// Stats returns a snapshot of the outbound's counters.
	Stats() Stats
}

// UDPConn is the method set of udp.Upstream: a packet socket that sends to
// any destination and receives from any source. The direct outbound
// returns a plain *net.UDPConn (so the udp package's batched sends and
// receives apply); the SOCKS5 one also implements syscall.Conn (the
// association's UDP socket) so an idle session can wait without a buffer.
type UDPConn interface {
	WriteToUDPAddrPort(b []byte, dst netip.AddrPort) (int, error)
	ReadFromUDPAddrPort(b []byte) (int, netip.AddrPort, error)
	SetReadDeadline(t time.Time) error
	Close() error
}

// Errors an outbound's dials wrap, so callers can tell the failures apart
// with errors.Is (KindOf sorts them into a FailureKind). The error text
// itself always says what was being done and to what.
var (
	// ErrRejected is returned by the reject outbound: the TCP relay
	// answers with an RST, the UDP relay drops the datagrams.
	ErrRejected = errors.New("rejected by policy")
	// ErrUnsupported: the outbound cannot carry this kind of traffic
	// (UDP over an HTTP CONNECT proxy).
	ErrUnsupported = errors.New("not supported by this outbound")
	// ErrAuth: the proxy refused our credentials, or wants some we do not
	// have (SOCKS5 "no acceptable methods", RFC 1929 status, HTTP 407 or
	// 401).
	ErrAuth = errors.New("proxy authentication failed")
	// ErrRefused: the destination or the proxy's policy refused the
	// connection (ECONNREFUSED, SOCKS5 rep 2 and 5, HTTP 403).
	ErrRefused = errors.New("connection refused")
	// ErrUnreachable: no route to the destination (SOCKS5 rep 3 and 4,
	// ENETUNREACH, EHOSTUNREACH).
	ErrUnreachable = errors.New("destination unreachable")
	// ErrTimeout: the proxy reported a timeout (SOCKS5 rep 6, HTTP 504).
	// Our own deadlines surface as os.ErrDeadlineExceeded or
	// context.DeadlineExceeded; KindOf counts all three as timeouts.
	ErrTimeout = errors.New("timed out")
	// ErrHandshake: the proxy broke the protocol (wrong version, unknown
	// address type, malformed or over-long reply) or the connection failed
	// mid-handshake (closed, reset).
	ErrHandshake = errors.New("proxy handshake failed")
	// ErrProxy: the proxy answered properly but reported a failure not
	// covered above (SOCKS5 rep 1, 7, 8 or unassigned; other HTTP statuses).
	ErrProxy = errors.New("proxy reported a failure")
)

// New builds the outbound cfg describes. Errors are *ConfigError and name
// the offending field.
func New(cfg Config) (Outbound, error) {
	cfg, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	switch cfg.Type {
	case TypeDirect:
		return newDirect(cfg), nil
	case TypeSOCKS5:
		return newSOCKS5(cfg), nil
	case TypeHTTP:
		return newHTTP(cfg), nil
	case TypeReject:
		return newReject(cfg), nil
	}
	// normalize accepts only the types above.
	return nil, &ConfigError{Outbound: cfg.Name, Field: "type", Reason: fmt.Sprintf("unknown type %q", cfg.Type)}
}
