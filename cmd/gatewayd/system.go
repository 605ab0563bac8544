package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/gatewayd/gatewayd/config"
	"github.com/gatewayd/gatewayd/gateway"
	"github.com/gatewayd/gatewayd/internal/fdbudget"
	"github.com/gatewayd/gatewayd/internal/ipset"
	"github.com/gatewayd/gatewayd/tcp"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// kernel is gatewayd's footprint in the kernel with the real seams wired
// in: iptables of each family and a netlink handle in gatewayd's network
// namespace.
type kernel struct {
	g *gateway.Gateway
	// fast is the fast path's sets (nil without ipsets), which DNS
	// answers feed.
	fast  *gateway.FastPath
	close func() // the netlink handle
}

// newKernel wires the kernel seams for cfg's footprint.
func newKernel(cfg *config.Config, log *slog.Logger) (*kernel, error) {
	spec, err := cfg.Gateway()
	if err != nil {
		return nil, err
	}
	tables := map[gateway.Family]gateway.Tables{}
	for _, f := range gateway.Families {
		t, err := gateway.NewTables(f)
		if err != nil {
			if spec.Intercepts(f) {
				return nil, err
			}
			log.Debug("family not available", "family", f.String(), "err", err)
			continue
		}
		tables[f] = t
	}
	h, err := netlink.NewHandle()
	if err != nil {
		return nil, fmt.Errorf("opening netlink: %w", err)
	}
	k := &kernel{close: h.Close}
	if ks, err := ipset.NewNetlink(h); err == nil {
		k.fast = gateway.NewFastPath(ks, log.With("part", "fastpath"))
	} else {
		log.Warn("no kernel fast path: ipsets not available", "err", err)
	}
	k.g = gateway.New(spec, gateway.Options{Log: log, Tables: tables, NL: h, ReadSysctl: readSysctl,
		FastPath: k.fast, Events: gateway.KernelEvents(log)})
	return k, nil
}

func readSysctl(key string) (string, error) {
	b, err := os.ReadFile("/proc/sys/" + strings.ReplaceAll(key, ".", "/"))
	return strings.TrimSpace(string(b)), err
}

func newLogger(cfg *config.Config, w io.Writer) *slog.Logger {
	log, _ := newLevelLogger(cfg, w)
	return log
}

// newLevelLogger is newLogger with its level adjustable (reloads).
func newLevelLogger(cfg *config.Config, w io.Writer) (*slog.Logger, *slog.LevelVar) {
	lvl := new(slog.LevelVar)
	_ = lvl.UnmarshalText([]byte(cfg.Log.Level)) // validated by the config
	opts := &slog.HandlerOptions{Level: lvl}
	if cfg.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts)), lvl
	}
	return slog.New(slog.NewTextHandler(w, opts)), lvl
}

// udpFDsPerSession is the most a UDP session can hold: its upstream socket
// and up to two bound reply sockets (udp.Config.MaxReplySockets' default).
// Most hold one: replies leave from a few shared raw sockets, and only a
// remote that streams gets a bound socket.
const udpFDsPerSession = 3

// checkFileLimit warns when the descriptor limit cannot hold the configured
// flows: what an idle TCP flow holds (tcp.FDsPerFlow), the splice pipes of
// the flows moving data, the UDP sessions, and the reserve the budget keeps
// for self-healing, DNS and the status endpoint. Flows beyond it are not
// lost silently: the budget refuses them with an RST, counted in /metrics.
// (Go already raised the soft limit to the hard one at start.)
func checkFileLimit(cfg *config.Config, log *slog.Logger) {
	var r unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &r); err != nil {
		return
	}
	reserve := fdbudget.ReserveFor(int64(r.Cur))
	need := uint64(tcp.FDsPerFlow*cfg.TCP.MaxConnections + 2*tcp.DefaultMaxPipes +
		udpFDsPerSession*cfg.UDP.MaxSessions + int(reserve))
	if r.Cur < need {
		log.Warn("open file limit is below what tcp.max_connections and udp.max_sessions need; flows beyond it are refused (TCP with an RST) and counted in gatewayd_fd_budget_denied_total (raise LimitNOFILE / procd limits, or lower the maximums)",
			"limit", r.Cur, "need", need, "reserve", reserve)
	}
}
