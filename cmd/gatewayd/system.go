package main

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"

	"github.com/gatewayd/gatewayd/gateway"
	"github.com/gatewayd/gatewayd/tcp"
	"github.com/gatewayd/gatewayd/udp"
	"github.com/vishvananda/netlink"
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
	g := &gateway.Gateway{Config: cfg, Log: log, Tables: tables, NL: h, ReadSysctl: readSysctl}
	return g, h.Close, nil
}

// newRelays builds the TCP and UDP relays for the config.
func newRelays(cfg *gateway.Config, log *slog.Logger) []gateway.Relay {
	srv := tcp.New(tcp.Config{
		Listen:      cfg.ListenAddrPorts(),
		Dialer:      &tcp.DirectDialer{Mark: cfg.TProxy.BypassMark, Timeout: cfg.TCP.ConnectTimeout.Duration},
		IdleTimeout: cfg.TCP.IdleTimeout.Duration,
		MaxConns:    cfg.TCP.MaxConnections,
		IsLocal:     isLocalAddr,
	}, log.With("relay", "tcp"))
	usrv := udp.New(udp.Config{
		Listen:      cfg.ListenAddrPorts(),
		BypassMark:  cfg.TProxy.BypassMark,
		IdleTimeout: cfg.UDP.IdleTimeout.Duration,
		MaxSessions: cfg.UDP.MaxSessions,
		IsLocal:     isLocalAddr,
	}, log.With("relay", "udp"))
	return []gateway.Relay{srv, usrv}
}

// isLocalAddr reports whether a is one of the router's addresses. The
// relay's loop guard asks only for flows to the listener port, so reading
// the interface addresses each time costs nothing on the hot path.
func isLocalAddr(a netip.Addr) bool {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, ad := range addrs {
		if p, ok := ad.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(p.IP); ok && ip.Unmap() == a.Unmap() {
				return true
			}
		}
	}
	return false
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
