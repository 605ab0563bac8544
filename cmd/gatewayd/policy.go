package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/gatewayd/gatewayd/config"
	"github.com/gatewayd/gatewayd/dispatch"
	"github.com/gatewayd/gatewayd/internal/lan"
	"github.com/gatewayd/gatewayd/outbound"
	"github.com/gatewayd/gatewayd/route"
)

// policy is the routing of a config: its rules, its outbounds and the
// dispatcher that applies them. Every flow goes through the dispatcher,
// rules or none: "direct" is an outbound like the others.
type policy struct {
	table     *route.Table
	outbounds map[string]outbound.Outbound
	disp      *dispatch.Dispatcher
	neighbors *neighborWatch // client MACs, for rules by MAC
}

// newPolicy builds cfg's outbounds and rule table; names resolves
// destination addresses to names (the DNS memory), nil without DNS. prev is
// the policy a reload replaces (nil at start): its route numbers and
// neighbour watch carry over.
func newPolicy(cfg *config.Config, names interface {
	Lookup(netip.Addr) (string, bool)
}, addrs *lan.Addrs, log *slog.Logger, prev *policy) (*policy, error) {
	table, err := cfg.RouteTable()
	if err != nil {
		return nil, err
	}
	obs, err := newOutbounds(cfg, log)
	if err != nil {
		return nil, err
	}
	// The neighbour watch runs from the start, whatever the rules: a
	// reload may bring rules by MAC, and the watch is one netlink socket.
	p := &policy{table: table, outbounds: obs, neighbors: &neighborWatch{log: log}}
	if prev != nil {
		p.neighbors = prev.neighbors
	}
	dcfg := dispatch.Config{Table: table, Outbounds: obs, Iface: addrs.Iface, MACs: p.neighbors}
	if names != nil {
		dcfg.Names = names
	}
	if prev != nil {
		dcfg.Previous = prev.disp
	}
	if p.disp, err = dispatch.New(dcfg, log.With("part", "dispatch")); err != nil {
		return nil, err
	}
	return p, nil
}

// newOutbounds builds every outbound, wrapping those with a fallback.
func newOutbounds(cfg *config.Config, log *slog.Logger) (map[string]outbound.Outbound, error) {
	specs := cfg.OutboundSpecs()
	base := map[string]outbound.Outbound{}
	fallback := map[string]string{}
	for _, s := range specs {
		ob, err := outbound.New(s.Config)
		if err != nil {
			return nil, fmt.Errorf("building outbound %q: %w", s.Config.Name, err)
		}
		base[s.Config.Name] = ob
		if s.Fallback != "" {
			fallback[s.Config.Name] = s.Fallback
		}
	}
	// The config refuses fallback cycles, so resolving terminates.
	var resolve func(name string) outbound.Outbound
	resolve = func(name string) outbound.Outbound {
		fb, ok := fallback[name]
		if !ok {
			return base[name]
		}
		return outbound.NewFallback(base[name], resolve(fb), log.With("outbound", name))
	}
	obs := map[string]outbound.Outbound{}
	for name := range base {
		obs[name] = resolve(name)
	}
	return obs, nil
}

// neighborWatch runs the neighbour table watch (client MACs for rules by
// MAC) for as long as the relays serve.
type neighborWatch struct {
	log    *slog.Logger
	mu     sync.Mutex
	n      *lan.Neighbors
	cancel context.CancelFunc
}

var _ service = (*neighborWatch)(nil)

func (r *neighborWatch) Listen(context.Context) error {
	ctx, cancel := context.WithCancel(context.Background())
	n, err := lan.WatchNeighbors(ctx, r.log.With("part", "neighbors"), nil)
	if err != nil {
		cancel()
		// Only rules by MAC need it; they then never match.
		r.log.Warn("cannot watch the neighbour table: rules by MAC will not match", "err", err)
		return nil
	}
	r.mu.Lock()
	r.n, r.cancel = n, cancel
	r.mu.Unlock()
	return nil
}

func (r *neighborWatch) Serve() error {
	r.mu.Lock()
	n := r.n
	r.mu.Unlock()
	if n != nil {
		<-n.Done()
	}
	return nil
}

func (r *neighborWatch) Shutdown(time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cancel != nil {
		r.cancel()
	}
}

// Lookup is the MAC of a LAN address, nil when unknown or not watching.
func (r *neighborWatch) Lookup(a netip.Addr) net.HardwareAddr {
	r.mu.Lock()
	n := r.n
	r.mu.Unlock()
	if n == nil {
		return nil
	}
	return n.Lookup(a)
}
