package outbound

import (
	"context"
	"fmt"
	"net"
	"net/netip"
)

// reject opens nothing: every dial fails with ErrRejected at once.
type reject struct{ base }

func newReject(cfg Config) *reject { return &reject{base{name: cfg.Name}} }

// DialTCP implements Outbound.
func (r *reject) DialTCP(_ context.Context, dst Dest) (*net.TCPConn, error) {
	r.stats.begin()
	return nil, r.stats.end(fmt.Errorf("outbound %q: TCP to %s: %w", r.name, dst, ErrRejected))
}

// OpenUDP implements Outbound.
func (r *reject) OpenUDP(_ context.Context, client netip.AddrPort) (UDPConn, error) {
	r.stats.begin()
	return nil, r.stats.end(fmt.Errorf("outbound %q: UDP from %s: %w", r.name, client, ErrRejected))
}
