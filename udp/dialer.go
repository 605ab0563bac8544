package udp

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"time"

	"github.com/gatewayd/gatewayd/internal/udpio"
)

// Upstream is the outside leg of one client's session: a packet socket that
// sends to any destination and receives from any source (full cone).
// *net.UDPConn implements it; later outbounds (a SOCKS5 UDP association)
// may wrap their own transport.
//
// If the Upstream also implements syscall.Conn, a session waits for its next
// datagram without holding a receive buffer, so idle sessions cost no
// buffer memory. Otherwise the session's reader keeps a 64 KiB buffer for
// as long as it lives.
//
// A plain *net.UDPConn (the direct outbound's) is driven through its descriptor:
// the listener sends a client's datagrams with sendmmsg(2) (and UDP GSO),
// and the session reads with recvmmsg(2). Any other Upstream is used
// through these methods, one datagram per call.
type Upstream interface {
	// WriteToUDPAddrPort sends one datagram to dst. It is called from the
	// listener's read loop and must not block for long.
	WriteToUDPAddrPort(b []byte, dst netip.AddrPort) (int, error)
	// ReadFromUDPAddrPort receives one datagram and its source.
	ReadFromUDPAddrPort(b []byte) (int, netip.AddrPort, error)
	// SetReadDeadline bounds ReadFromUDPAddrPort, as net.Conn's does.
	SetReadDeadline(t time.Time) error
	// Close ends the session's reads with an error.
	Close() error
}

// Dialer opens the Upstream of a new session of client on route (the
// Router's choice; 0 without a Router). It runs in the session's own
// goroutine (datagrams of the client are queued meanwhile), and ctx is
// cancelled when the session is evicted or the server shuts down.
type Dialer interface {
	OpenUpstream(ctx context.Context, client netip.AddrPort, route int) (Upstream, error)
}

// DialerFunc adapts a function to Dialer.
type DialerFunc func(ctx context.Context, client netip.AddrPort, route int) (Upstream, error)

// OpenUpstream implements Dialer.
func (f DialerFunc) OpenUpstream(ctx context.Context, client netip.AddrPort, route int) (Upstream, error) {
	return f(ctx, client, route)
}

// errNoDialer fails the sessions of a Server given no Dialer yet.
var errNoDialer = errors.New("no dialer configured")

// noDialer is the Dialer of a Server configured without one: every
// session is refused until SetRouting.
type noDialer struct{}

func (noDialer) OpenUpstream(context.Context, netip.AddrPort, int) (Upstream, error) {
	return nil, errNoDialer
}

// batchReader is implemented by an Upstream whose datagrams arrive
// unchanged on a *net.UDPConn (it only changes how it sends): its session
// then reads them straight from that socket, many per recvmmsg(2).
type batchReader interface {
	batchConn() *net.UDPConn
}

// batchSockets returns the descriptors a session batches on: sends only
// when up is a plain *net.UDPConn (a wrapper may change what it sends),
// receives also through batchReader. nil: one datagram per call.
func batchSockets(up Upstream) (send, recv *udpio.Sock) {
	switch u := up.(type) {
	case *net.UDPConn:
		r := udpio.NewSock(u)
		return r, r
	case batchReader:
		return nil, udpio.NewSock(u.batchConn())
	}
	return nil, nil
}
