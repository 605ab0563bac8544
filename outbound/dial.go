package outbound

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/gatewayd/gatewayd/internal/sockopt"
	"golang.org/x/sys/unix"
)

// longAgo is a deadline in the past: setting it makes pending reads and
// writes on a conn return at once.
var longAgo = time.Unix(1, 0)

// newDialer returns a dialer whose sockets carry mark (and opts). MPTCP is
// off: the relay splices plain TCP sockets.
func newDialer(mark uint32, opts ...sockopt.Option) *net.Dialer {
	d := &net.Dialer{Control: sockopt.Chain(append([]sockopt.Option{sockopt.Mark(mark)}, opts...)...)}
	d.SetMultipathTCP(false)
	return d
}

// dialTCP connects d to addr; what names the peer in errors ("socks5
// proxy 198.18.1.1:1080").
func dialTCP(ctx context.Context, d *net.Dialer, addr netip.AddrPort, what string) (*net.TCPConn, error) {
	c, err := d.DialContext(ctx, "tcp", addr.String())
	if err != nil {
		return nil, fmt.Errorf("dialing %s: %w", what, err)
	}
	tc, ok := c.(*net.TCPConn)
	if !ok {
		_ = c.Close()
		return nil, fmt.Errorf("dialing %s: got a %T, want *net.TCPConn", what, c)
	}
	return tc, nil
}

// handshake runs fn, which talks to a proxy over c, under ctx: c's
// deadline is ctx's, and cancelling ctx interrupts fn's I/O. After
// success the deadline is cleared, so the relay's own timeouts govern c.
func handshake(ctx context.Context, c net.Conn, fn func() error) error {
	if dl, ok := ctx.Deadline(); ok {
		if err := c.SetDeadline(dl); err != nil {
			return fmt.Errorf("setting the handshake deadline: %w", err)
		}
	}
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(longAgo) })
	err := fn()
	if !stop() {
		// ctx ended during fn (and may still be moving the deadline):
		// its error says why better than the I/O error it caused.
		if err == nil {
			return fmt.Errorf("handshake interrupted: %w", ctx.Err())
		}
		return fmt.Errorf("%w (%w)", err, ctx.Err())
	}
	if err != nil {
		return err
	}
	if err := c.SetDeadline(time.Time{}); err != nil {
		return fmt.Errorf("clearing the handshake deadline: %w", err)
	}
	return nil
}

// bindToDevice returns an Option that sets SO_BINDTODEVICE (needs
// CAP_NET_RAW): the socket sends and receives only through that device.
func bindToDevice(name string) sockopt.Option {
	return func(fd int, _ string) error {
		if err := unix.BindToDevice(fd, name); err != nil {
			return fmt.Errorf("setsockopt SO_BINDTODEVICE %q: %w", name, err)
		}
		return nil
	}
}
