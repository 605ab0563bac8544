package outbound

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/gatewayd/gatewayd/internal/sockopt"
)

// udpRecvBuffer is the receive buffer of every UDP socket an outbound
// opens for a session: a download burst for one client queues there
// (Linux's default is ~200 KiB).
const udpRecvBuffer = 1 << 20

// direct connects straight to the original destination.
type direct struct {
	base
	timeout   time.Duration // connect bound
	source    netip.Addr
	opts      []sockopt.Option // SO_BINDTODEVICE when configured; SO_MARK is added per socket
	mark      uint32
	ifaceNote string // " via <interface>" for errors, or ""
}

func newDirect(cfg Config) *direct {
	d := &direct{base: base{name: cfg.Name}, timeout: cfg.Timeout, source: cfg.Source, mark: cfg.Mark}
	if cfg.Interface != "" {
		d.opts = append(d.opts, bindToDevice(cfg.Interface))
		d.ifaceNote = " via " + cfg.Interface
	}
	return d
}

// localAddr is the configured source if it has dst's family, else the
// zero Addr (the kernel chooses).
func (d *direct) localAddr(dst netip.Addr) netip.Addr {
	if d.source.IsValid() && d.source.Is4() == dst.Is4() {
		return d.source
	}
	return netip.Addr{}
}

// DialTCP implements Outbound: it connects to dst.Addr (never the domain).
func (d *direct) DialTCP(ctx context.Context, dst Dest) (*net.TCPConn, error) {
	d.stats.begin()
	c, err := d.dialTCP(ctx, dst.Addr)
	return c, d.stats.end(err)
}

func (d *direct) dialTCP(ctx context.Context, dst netip.AddrPort) (*net.TCPConn, error) {
	dst = netip.AddrPortFrom(dst.Addr().Unmap(), dst.Port())
	if !dst.IsValid() {
		return nil, fmt.Errorf("dialing %s: invalid destination", dst)
	}
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	nd := newDialer(d.mark, d.opts...)
	if src := d.localAddr(dst.Addr()); src.IsValid() {
		nd.LocalAddr = net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0))
	}
	return sockopt.DialTCP(ctx, nd, dst, dst.String()+d.ifaceNote)
}

// OpenUDP implements Outbound: an unconnected *net.UDPConn of the
// client's family, bound to the wildcard (or the configured source).
func (d *direct) OpenUDP(ctx context.Context, client netip.AddrPort) (UDPConn, error) {
	d.stats.begin()
	c, err := d.openUDP(ctx, client)
	if err != nil {
		return nil, d.stats.end(err)
	}
	d.stats.end(nil)
	return c, nil
}

func (d *direct) openUDP(ctx context.Context, client netip.AddrPort) (*net.UDPConn, error) {
	network, laddr := "udp6", netip.IPv6Unspecified()
	if client.Addr().Unmap().Is4() {
		network, laddr = "udp4", netip.IPv4Unspecified()
	}
	if src := d.localAddr(laddr); src.IsValid() {
		laddr = src
	}
	opts := append([]sockopt.Option{sockopt.Mark(d.mark), sockopt.RecvBuffer(udpRecvBuffer)}, d.opts...)
	bind := netip.AddrPortFrom(laddr, 0)
	uc, err := sockopt.ListenUDP(ctx, network, bind, opts...)
	if err != nil {
		return nil, fmt.Errorf("opening UDP socket %s%s for %s: %w", bind, d.ifaceNote, client, err)
	}
	return uc, nil
}
