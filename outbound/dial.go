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
// off: the relay splices plain TCP sockets. TCP keepalive is the upstream
// one (sockopt.UpstreamKeepAlive).
func newDialer(mark uint32, opts ...sockopt.Option) *net.Dialer {
	d := &net.Dialer{
		Control:         sockopt.Chain(append([]sockopt.Option{sockopt.Mark(mark)}, opts...)...),
		KeepAliveConfig: sockopt.UpstreamKeepAlive(),
	}
	d.SetMultipathTCP(false)
	return d
}

// proxy is what the proxy outbounds share: where the proxy is and how
// they reach it.
type proxy struct {
	base
	server      netip.AddrPort
	preferNames bool
	timeout     time.Duration
	mark        uint32
	desc        string // "socks5 proxy 198.18.1.1:1080", for errors
}

// newProxy takes the proxy settings of cfg; kind names the proxy's
// protocol in errors ("socks5", "http").
func newProxy(cfg Config, kind string) proxy {
	return proxy{
		base:        base{name: cfg.Name},
		server:      cfg.Server,
		preferNames: cfg.PreferNames,
		timeout:     cfg.Timeout,
		mark:        cfg.Mark,
		desc:        kind + " proxy " + cfg.Server.String(),
	}
}

// connect opens a TCP flow to dst through the proxy: it dials the proxy
// and runs fn, which asks the proxy for dst over c, as a handshake; both
// are bounded by the timeout. On failure c is closed.
func (p *proxy) connect(ctx context.Context, dst Dest, fn func(c *net.TCPConn) error) (*net.TCPConn, error) {
	if !dst.Addr.IsValid() {
		return nil, fmt.Errorf("%s: CONNECT to %s: invalid destination", p.desc, dst)
	}
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	c, err := sockopt.DialTCP(ctx, newDialer(p.mark), p.server, p.desc)
	if err != nil {
		return nil, err
	}
	if err := handshake(ctx, c, func() error { return fn(c) }); err != nil {
		_ = c.Close()
		return nil, err
	}
	return c, nil
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
