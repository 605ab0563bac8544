package gateway

import (
	"context"
	"errors"
	"fmt"
	"slices"
)

// ErrNotRunning: Reconfigure needs an installed Gateway; it is refused
// before Install and once Remove has begun.
var ErrNotRunning = errors.New("gatewayd is not running")

// Reconfigure applies a reloaded spec to the installed interception: the
// LAN interfaces, bypass list, extra rules, DNS hijack rules and the fast
// path's static entries (Direct). What needs a restart (see RestartKeys)
// must be unchanged. Flows are untouched: the listeners stay
// and established connections keep matching the socket rule. If the new
// config cannot be applied, the old one is applied again and the error
// returned.
func (g *Gateway) Reconfigure(ctx context.Context, spec *Spec) error {
	k := g.keeper.Load()
	if k == nil {
		return ErrNotRunning
	}
	k.mu.Lock() // g.spec is only written and read under it while installed
	defer k.mu.Unlock()
	if k.stopped {
		return ErrNotRunning
	}
	if keys := RestartKeys(g.spec, spec); len(keys) > 0 {
		return fmt.Errorf("reloading: %v changed, which needs a restart", keys)
	}
	old := g.spec
	err := g.apply(ctx, k, spec)
	if err == nil {
		return nil
	}
	if rerr := g.apply(ctx, k, old); rerr != nil {
		err = errors.Join(err, fmt.Errorf("re-applying the previous config: %w", rerr))
	}
	return err
}

// apply installs cfg's rules in place of the current ones. Called with
// k.mu held.
func (g *Gateway) apply(ctx context.Context, k *keeper, cfg *Spec) error {
	if cfg.Mangle.Mode == ModeShared && !slices.Equal(cfg.LAN.Interfaces, g.spec.LAN.Interfaces) {
		// Shared mode only adds missing jumps: take the old ones out
		// first (the LAN is forwarded plainly for the moment this takes).
		for _, f := range Families {
			if g.o.Tables[f] != nil && g.spec.Intercepts(f) {
				if err := g.mangle(f).removeOwn(); err != nil {
					return err
				}
			}
		}
	}
	g.spec = cfg
	env, err := DeriveEnv(g.o.NL, cfg, k.quiet)
	if err != nil {
		return fmt.Errorf("reading LAN subnets: %w", err)
	}
	if env, err = g.install(ctx, env); err != nil {
		return err
	}
	return k.snapshot(env)
}

// RestartKeys lists what of the kernel footprint a reload cannot change,
// named by their config keys: what decides sockets that are open
// (listeners, marks), kernel objects named by them (routing table, rule
// priority), where state is kept, and the mangle mode. Empty: b can
// replace a while installed.
func RestartKeys(a, b *Spec) []string {
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
	return keys
}
