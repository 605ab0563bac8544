package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
)

// ErrNotRunning: Reconfigure needs a running Gateway; it is refused before
// Run keeps the rules and once Run has begun to stop.
var ErrNotRunning = errors.New("gatewayd is not running")

// Reconfigure applies a reloaded config to the running interception: the
// LAN interfaces, bypass list, extra rules, DNS hijack rules and the fast
// path's static entries (direct). Keys that need a restart (see
// RestartKeys) must be unchanged. Flows are untouched: the listeners stay
// and established connections keep matching the socket rule. If the new
// config cannot be applied, the old one is applied again and the error
// returned.
func (g *Gateway) Reconfigure(ctx context.Context, cfg *Config, direct []netip.Prefix) error {
	k := g.keeper.Load()
	if k == nil {
		return ErrNotRunning
	}
	k.mu.Lock() // g.Config is only written and read under it while Run runs
	defer k.mu.Unlock()
	if k.stopped {
		return ErrNotRunning
	}
	if keys := RestartKeys(g.Config, cfg); len(keys) > 0 {
		return fmt.Errorf("reloading: %v changed, which needs a restart", keys)
	}
	old, oldDirect := g.Config, g.Direct
	err := g.apply(ctx, k, cfg, direct)
	if err == nil {
		return nil
	}
	if rerr := g.apply(ctx, k, old, oldDirect); rerr != nil {
		err = errors.Join(err, fmt.Errorf("re-applying the previous config: %w", rerr))
	}
	return err
}

// apply installs cfg's rules in place of the current ones. Called with
// k.mu held.
func (g *Gateway) apply(ctx context.Context, k *keeper, cfg *Config, direct []netip.Prefix) error {
	if cfg.Mangle.Mode == ModeShared && !slices.Equal(cfg.LAN.Interfaces, g.Config.LAN.Interfaces) {
		// Shared mode only adds missing jumps: take the old ones out
		// first (the LAN is forwarded plainly for the moment this takes).
		for _, f := range Families {
			if g.Tables[f] != nil && g.Config.Intercepts(f) {
				if err := g.mangle(f).removeOwn(); err != nil {
					return err
				}
			}
		}
	}
	g.Config, g.Direct = cfg, direct
	env, err := DeriveEnv(g.NL, cfg, k.quiet)
	if err != nil {
		return fmt.Errorf("reading LAN subnets: %w", err)
	}
	if env, err = g.install(ctx, env); err != nil {
		return err
	}
	return k.snapshot(env)
}

// RestartKeys lists the config keys whose change a reload cannot apply:
// they decide sockets that are open (listeners, marks), kernel objects
// named by them (routing table, rule priority), where state is kept, or
// the mangle mode. Empty: b can replace a at run time.
func RestartKeys(a, b *Config) []string {
	var keys []string
	check := func(key string, same bool) {
		if !same {
			keys = append(keys, key)
		}
	}
	check("state_dir", a.StateDir == b.StateDir)
	check("tproxy.port", a.TProxy.Port == b.TProxy.Port)
	check("tproxy.addresses", slices.Equal(a.TProxy.Addresses, b.TProxy.Addresses))
	check("tproxy.mark", a.TProxy.Mark == b.TProxy.Mark)
	check("tproxy.mask", a.TProxy.Mask == b.TProxy.Mask)
	check("tproxy.bypass_mark", a.TProxy.BypassMark == b.TProxy.BypassMark)
	check("routing.table", a.Routing.Table == b.Routing.Table)
	check("routing.priority", a.Routing.Priority == b.Routing.Priority)
	check("mangle.mode", a.Mangle.Mode == b.Mangle.Mode)
	check("dns.enabled", a.DNS.Enabled == b.DNS.Enabled)
	check("dns.port", a.DNS.Port == b.DNS.Port)
	check("tcp.max_connections", a.TCP.MaxConnections == b.TCP.MaxConnections)
	check("tcp.idle_timeout", a.TCP.IdleTimeout == b.TCP.IdleTimeout)
	check("udp.idle_timeout", a.UDP.IdleTimeout == b.UDP.IdleTimeout)
	check("udp.max_sessions", a.UDP.MaxSessions == b.UDP.MaxSessions)
	check("log.format", a.Log.Format == b.Log.Format)
	check("status.enabled", a.Status.Enabled == b.Status.Enabled)
	check("status.listen", a.Status.Listen == b.Status.Listen)
	check("status.hosts", slices.Equal(a.Status.Hosts, b.Status.Hosts))
	check("status.query_log", a.Status.QueryLog == b.Status.QueryLog)
	check("status.dhcp_leases", a.Status.DHCPLeases == b.Status.DHCPLeases)
	return keys
}
