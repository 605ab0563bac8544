package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/gatewayd/gatewayd/dns"
	"github.com/gatewayd/gatewayd/gateway"
	"github.com/gatewayd/gatewayd/internal/ipset"
	"github.com/gatewayd/gatewayd/tcp"
	"github.com/gatewayd/gatewayd/udp"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// newGateway wires the real kernel seams: iptables of each family and a
// netlink handle in gatewayd's network namespace.
func newGateway(cfg *gateway.Config, log *slog.Logger) (*gateway.Gateway, func(), error) {
	tables := map[gateway.Family]gateway.Tables{}
	for _, f := range gateway.Families {
		t, err := gateway.NewTables(f)
		if err != nil {
			if cfg.Intercepts(f) {
				return nil, nil, err
			}
			log.Debug("family not available", "family", f.String(), "err", err)
			continue
		}
		tables[f] = t
	}
	h, err := netlink.NewHandle()
	if err != nil {
		return nil, nil, fmt.Errorf("opening netlink: %w", err)
	}
	g := &gateway.Gateway{Config: cfg, Log: log, Tables: tables, NL: h, ReadSysctl: readSysctl, Events: netEvents(log)}
	if k, err := ipset.NewNetlink(h); err == nil {
		g.FastPath = gateway.NewFastPath(k, log.With("part", "fastpath"))
	} else {
		log.Warn("no kernel fast path: ipsets not available", "err", err)
	}
	return g, h.Close, nil
}

// newRelays builds the TCP and UDP relays and the DNS hijack, routed by
// the config's policy, and gives g the fast path's static prefixes.
func newRelays(cfg *gateway.Config, g *gateway.Gateway, log *slog.Logger) ([]gateway.Relay, error) {
	var relays []gateway.Relay
	var resolver *dns.Handler
	var learned func(string, netip.Addr, time.Duration)
	fast, err := cfg.FastPathTable()
	if err != nil {
		return nil, err
	}
	g.Direct = fast.DirectPrefixes()
	if cfg.DNS.Enabled {
		// The resolver tells the fast path what it learns for names whose
		// flows go direct.
		if fp := g.FastPath; fp != nil && fast.NeedsDomain() {
			learned = func(name string, addr netip.Addr, ttl time.Duration) {
				if fast.DirectDomain(name) {
					fp.Learn(addr, ttl)
				} else {
					fp.Forbid(addr, ttl) // a CDN address shared with a name that goes elsewhere
				}
			}
		}
		d, h, err := newDNSServer(cfg, learned, log)
		if err != nil {
			return nil, err
		}
		relays, resolver = append(relays, d), h
	}
	var names interface {
		Lookup(netip.Addr) (string, bool)
	}
	if resolver != nil {
		names = resolver.Memory()
	}
	pol, err := newPolicy(cfg, names, log)
	if err != nil {
		return nil, err
	}
	local := &localAddrs{}
	tcfg := tcp.Config{
		Listen:      cfg.ListenAddrPorts(),
		Dialer:      &tcp.DirectDialer{Mark: cfg.TProxy.BypassMark, Timeout: cfg.TCP.ConnectTimeout.Duration},
		IdleTimeout: cfg.TCP.IdleTimeout.Duration,
		MaxConns:    cfg.TCP.MaxConnections,
		IsLocal:     local.Has,
	}
	ucfg := udp.Config{
		Listen:      cfg.ListenAddrPorts(),
		BypassMark:  cfg.TProxy.BypassMark,
		IdleTimeout: cfg.UDP.IdleTimeout.Duration,
		MaxSessions: cfg.UDP.MaxSessions,
		IsLocal:     local.Has,
	}
	if pol.disp != nil {
		tcfg.Dialer, tcfg.Sniff = pol.disp, pol.disp.SniffTCP()
		ucfg.Dialer, ucfg.Router = pol.disp, pol.disp
	}
	if pol.neighbors != nil {
		relays = append(relays, pol.neighbors)
	}
	relays = append(relays, tcp.New(tcfg, log.With("relay", "tcp")), udp.New(ucfg, log.With("relay", "udp")))
	// status relay
	return relays, nil
}

func readSysctl(key string) (string, error) {
	b, err := os.ReadFile("/proc/sys/" + strings.ReplaceAll(key, ".", "/"))
	return strings.TrimSpace(string(b)), err
}

func newLogger(cfg *gateway.Config, w io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(cfg.Log.Level)) // validated by the config
	opts := &slog.HandlerOptions{Level: lvl}
	if cfg.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// fdReserve covers listeners, netlink, logs and exec'd iptables.
const fdReserve = 64

// checkFileLimit warns when the descriptor limit cannot hold the configured
// flows: two per TCP flow, one per UDP session plus up to two reply sockets.
// (Go already raised the soft limit to the hard one at start.)
func checkFileLimit(cfg *gateway.Config, log *slog.Logger) {
	var r unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &r); err != nil {
		return
	}
	need := uint64(2*cfg.TCP.MaxConnections + 3*cfg.UDP.MaxSessions + fdReserve)
	if r.Cur < need {
		log.Warn("open file limit is below what tcp.max_connections and udp.max_sessions need; new flows will fail when it is reached (raise LimitNOFILE / procd limits, or lower the maximums)",
			"limit", r.Cur, "need", need)
	}
}

// netEvents reports address and link changes of gatewayd's network
// namespace (DHCP/PPPoE renewals, a bridge re-created, a LAN interface
// appearing), for the keeper. A subscription that fails is logged; the
// keeper's periodic check still covers those changes.
func netEvents(log *slog.Logger) func(ctx context.Context) <-chan struct{} {
	return func(ctx context.Context) <-chan struct{} {
		out := make(chan struct{}, 1)
		notify := func() {
			select {
			case out <- struct{}{}:
			default: // one pending event is enough
			}
		}
		onErr := func(err error) { log.Warn("network change notifications failed; checking periodically", "err", err) }
		addrs := make(chan netlink.AddrUpdate, 16)
		if err := netlink.AddrSubscribeWithOptions(addrs, ctx.Done(), netlink.AddrSubscribeOptions{ErrorCallback: onErr}); err != nil {
			onErr(err)
		} else {
			go func() {
				for range addrs {
					notify()
				}
			}()
		}
		links := make(chan netlink.LinkUpdate, 16)
		if err := netlink.LinkSubscribeWithOptions(links, ctx.Done(), netlink.LinkSubscribeOptions{ErrorCallback: onErr}); err != nil {
			onErr(err)
		} else {
			go func() {
				for range links {
					notify()
				}
			}()
		}
		return out
	}
}
