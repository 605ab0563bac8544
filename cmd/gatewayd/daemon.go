package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/gatewayd/gatewayd/config"
	"github.com/gatewayd/gatewayd/dns"
	"github.com/gatewayd/gatewayd/internal/fdbudget"
	"github.com/gatewayd/gatewayd/internal/lan"
	"github.com/gatewayd/gatewayd/route"
	"github.com/gatewayd/gatewayd/tcp"
	"github.com/gatewayd/gatewayd/udp"
)

// daemon is a running gatewayd's parts, kept for reloads.
type daemon struct {
	k     *kernel
	log   *slog.Logger
	level *slog.LevelVar

	// cfg is the config applied now: the one place it is kept. Only
	// reload writes it, from the control socket's goroutine.
	cfg *config.Config
	pol *policy
	tcp *tcp.Server
	udp *udp.Server
	dns *dns.Server // nil without the DNS hijack
	fds *fdbudget.Budget
	// addrs is what the daemon knows of the router's interfaces: LAN
	// subnets, local addresses, the LAN interface of a client.
	addrs *lan.Addrs
	// status is the status endpoint; nil when the config disables it.
	status *statusEndpoint
}

// newDaemon builds the services for cfg: TCP, UDP and the DNS hijack,
// routed by the config's policy, and the status endpoint; k is its
// kernel footprint, whose fast path DNS answers feed.
func newDaemon(cfg *config.Config, k *kernel, log *slog.Logger, level *slog.LevelVar) (*daemon, error) {
	d := &daemon{k: k, log: log, level: level, cfg: cfg}
	fast, err := cfg.FastPathTable()
	if err != nil {
		return nil, err
	}
	var resolver *dns.Handler
	if cfg.DNS.Enabled {
		if d.dns, resolver, err = newDNSServer(cfg, d.learnedHook(fast), log); err != nil {
			return nil, err
		}
	}
	d.addrs = lan.NewAddrs(cfg.LAN.Interfaces, nil)
	if d.pol, err = newPolicy(cfg, memoryOf(resolver), d.addrs, log, nil); err != nil {
		return nil, err
	}
	if d.fds, err = fdbudget.ForProcess(); err != nil {
		log.Warn("no descriptor budget: flows are not refused before the open-file limit", "err", err)
	}
	d.tcp = tcp.New(tcp.Config{
		FDs:         d.fds,
		Listen:      cfg.ListenAddrPorts(),
		IdleTimeout: cfg.TCP.IdleTimeout.Duration,
		MaxConns:    cfg.TCP.MaxConnections,
		IsLocal:     d.addrs.IsLocal,
	}, log.With("relay", "tcp"))
	d.udp = udp.New(udp.Config{
		FDs:         d.fds,
		Listen:      cfg.ListenAddrPorts(),
		BypassMark:  cfg.TProxy.BypassMark,
		IdleTimeout: cfg.UDP.IdleTimeout.Duration,
		MaxSessions: cfg.UDP.MaxSessions,
		IsLocal:     d.addrs.IsLocal,
	}, log.With("relay", "udp"))
	d.route(d.pol)
	d.status = newStatusEndpoint(d)
	return d, nil
}

// services are what the lifecycle opens and serves, in that order.
func (d *daemon) services() []service {
	ss := []service{d.pol.neighbors, d.tcp, d.udp}
	if d.dns != nil {
		ss = append(ss, d.dns)
	}
	if d.status != nil {
		ss = append(ss, d.status)
	}
	return ss
}

// route points the relays at pol's dispatcher.
func (d *daemon) route(pol *policy) {
	d.tcp.SetDialer(pol.disp, pol.disp.SniffTCP())
	d.udp.SetRouting(pol.disp, pol.disp)
}

// learnedHook tells the fast path the addresses DNS answers for names
// whose flows go direct, and keeps those of other names off it (a CDN
// address shared with a name that goes elsewhere). nil when nothing is
// learned: no fast path, or no rule by domain.
func (d *daemon) learnedHook(fast *route.Table) func(string, netip.Addr, time.Duration) {
	fp := d.k.fast
	if fp == nil || !fast.NeedsDomain() {
		return nil
	}
	return func(name string, addr netip.Addr, ttl time.Duration) {
		if fast.DirectDomain(name) {
			fp.Learn(addr, ttl)
		} else {
			fp.Forbid(addr, ttl)
		}
	}
}

func memoryOf(h *dns.Handler) interface {
	Lookup(netip.Addr) (string, bool)
} {
	if h == nil {
		return nil
	}
	return h.Memory()
}

// reload reads path again and applies it: the kernel's rules first (the
// gateway restores the old ones if that fails), then the resolver (with
// the old one's cache), the routing policy, and the log level. An invalid
// file, or one that changes what only a restart can, changes nothing.
// Flows and sessions in progress keep going.
func (d *daemon) reload(ctx context.Context, path string) (*config.Config, error) {
	cfg, err := config.Load(path)
	if err != nil {
		return nil, err
	}
	if keys := config.RestartKeys(d.cfg, cfg); len(keys) > 0 {
		return nil, fmt.Errorf("%v changed: restart gatewayd to apply them", keys)
	}
	fast, err := cfg.FastPathTable()
	if err != nil {
		return nil, err
	}
	spec := cfg.GatewayFrom(fast)
	var resolver *dns.Handler
	if cfg.DNS.Enabled {
		if resolver, err = newResolver(cfg, d.learnedHook(fast), d.log.With("relay", "dns")); err != nil {
			return nil, err
		}
	}
	pol, err := newPolicy(cfg, memoryOf(resolver), d.addrs, d.log, d.pol)
	if err != nil {
		closeResolver(resolver)
		return nil, err
	}
	if err := d.k.g.Reconfigure(ctx, spec); err != nil {
		closeResolver(resolver)
		return nil, err
	}
	if resolver != nil {
		old := d.dns.Handler()
		resolver.Adopt(old)
		d.dns.SetHandler(resolver)
		_ = old.Close()
	}
	d.addrs.SetPatterns(cfg.LAN.Interfaces)
	d.route(pol)
	d.pol, d.cfg = pol, cfg
	if d.status != nil {
		d.status.reloaded(cfg, pol)
	}
	_ = d.level.UnmarshalText([]byte(cfg.Log.Level)) // validated by the config
	return cfg, nil
}

func closeResolver(h *dns.Handler) {
	if h != nil {
		_ = h.Close()
	}
}

// flowCount is the flows relayed now: TCP flows and UDP sessions.
func (d *daemon) flowCount() int {
	return int(d.tcp.Stats().Active + d.udp.Stats().SessionsActive)
}

// flowsStarted is the flows ever started: TCP connections accepted and
// UDP sessions created.
func (d *daemon) flowsStarted() uint64 {
	return d.tcp.Stats().Accepted + d.udp.Stats().SessionsTotal
}
