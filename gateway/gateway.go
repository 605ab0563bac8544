// Package gateway owns gatewayd's lifecycle and its footprint in the kernel:
// the config, the mangle table rules that divert LAN traffic to the TPROXY
// listeners, and the policy routing that delivers it locally. Everything it
// installs is a pure function of the config (plus the LAN subnets it reads
// from the kernel), applied atomically, re-checked, and removed on exit.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync/atomic"
	"time"
)

// Relay is a listener that serves intercepted flows (tcp.Server).
type Relay interface {
	// Listen opens the listeners; it runs before any rule points at them.
	Listen(ctx context.Context) error
	// Serve runs until Shutdown and returns nil then.
	Serve() error
	// Shutdown stops accepting and closes flows after grace.
	Shutdown(grace time.Duration)
}

// Gateway ties the relays to the rules that feed them.
type Gateway struct {
	Config *Config
	Log    *slog.Logger
	// Tables holds the iptables of each family gatewayd may touch; a family
	// the config intercepts must be present.
	Tables map[Family]Tables
	NL     Netlink
	Relays []Relay
	// ReadSysctl reads a sysctl ("net.ipv4.ip_forward"); nil skips checks.
	ReadSysctl func(key string) (string, error)
	// FastPath, when set, keeps the kernel fast path's ipsets: Install
	// creates and fills them before the rules that match them, Cleanup
	// destroys them after the rules are gone. nil: no fast path.
	FastPath *FastPath
	// Direct are destinations every flow to which goes direct (the
	// CIDR-only direct rules); with FastPath the kernel forwards them.
	Direct []netip.Prefix
	// Events, if set, subscribes to kernel changes that may concern the
	// rules (KernelEvents), so the keeper checks at once instead of at
	// its next poll. The subscription ends when ctx is done.
	Events func(ctx context.Context, spec WatchSpec) Watch

	keeper atomic.Pointer[keeper] // set while Run keeps the rules
}

func (g *Gateway) mangle(f Family) *Mangle {
	return &Mangle{Family: f, Tables: g.Tables[f], StateDir: g.Config.StateDir, Log: g.Log}
}

// Cleanup removes everything gatewayd installs (this run's or a crashed
// earlier run's) and restores what appliance mode kept aside. Safe to run
// when nothing is installed.
func (g *Gateway) Cleanup() error {
	var errs []error
	for _, f := range Families {
		if g.Tables[f] == nil {
			continue
		}
		if err := g.mangle(f).Cleanup(); err != nil {
			errs = append(errs, err)
		}
	}
	r := &Routing{NL: g.NL}
	if err := r.Cleanup(g.Config); err != nil {
		errs = append(errs, err)
	}
	if g.FastPath != nil { // after the rules: the kernel keeps a set a rule matches
		if err := g.FastPath.Teardown(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Install applies the rules and routes for the config. On failure it
// removes whatever it had applied.
func (g *Gateway) Install(ctx context.Context) error {
	_, err := g.installEnv(ctx)
	return err
}

// installEnv is Install returning the environment it applied.
func (g *Gateway) installEnv(ctx context.Context) (Env, error) {
	env, err := DeriveEnv(g.NL, g.Config, g.Log)
	if err != nil {
		return env, fmt.Errorf("reading LAN subnets: %w", err)
	}
	if env, err = g.install(ctx, env); err != nil {
		if cerr := g.Cleanup(); cerr != nil {
			return env, errors.Join(err, fmt.Errorf("removing partially installed rules: %w: %w", ErrInterceptionLeft, cerr))
		}
		return env, err
	}
	g.Log.Info("interception installed", "lan", g.Config.LAN.Interfaces, "bypassed_lan_subnets", env.LANSubnets,
		"mode", g.Config.Mangle.Mode, "table", g.Config.Routing.Table, "fast_path", env.FastPath)
	g.logLeftAlone()
	return env, nil
}

// logLeftAlone logs what the rules forward as usual besides the LAN
// subnets and the router's own addresses: the families without a listener
// address and the bypass list in effect (bypass.intercept carved out).
func (g *Gateway) logLeftAlone() {
	c := g.Config
	families := []string{}
	var bypassed []netip.Prefix
	for _, f := range Families {
		if !c.Intercepts(f) {
			families = append(families, f.String())
		}
	}
	for _, p := range c.BypassList() {
		if f := familyOf(p); c.Intercepts(f) {
			bypassed = append(bypassed, p)
		}
	}
	g.Log.Info("left alone (forwarded as usual)", "families", families, "destinations", bypassed,
		"intercepted_from_bypass", c.Bypass.Intercept)
}

// familyOf is the family of prefix p (::ffff:0:0/96 is IPv6).
func familyOf(p netip.Prefix) Family {
	if p.Addr().Is4() {
		return IPv4
	}
	return IPv6
}

// install applies routing, the fast path's sets and the mangle rules for
// env; repeatable. It returns env as applied (FastPath set if the sets
// exist).
func (g *Gateway) install(ctx context.Context, env Env) (Env, error) {
	// Routing first: rules without the local route would blackhole.
	r := &Routing{NL: g.NL}
	if err := r.Set(g.Config); err != nil {
		return env, fmt.Errorf("installing policy routing: %w", err)
	}
	if g.FastPath != nil {
		// The sets before the rules: iptables-restore rejects a rule
		// that names a missing set.
		var fams []Family
		for _, f := range Families {
			if g.Config.Intercepts(f) {
				fams = append(fams, f)
			}
		}
		if err := g.FastPath.Setup(ctx, fams, g.Config.FastPathEntries(g.Direct)); err != nil {
			// Without ipsets every flow goes through user space, where the
			// same rules route it: slower, not wrong.
			g.Log.Warn("kernel fast path not available; direct flows are relayed in user space", "err", err)
			env.FastPath = false
		} else {
			env.FastPath = true
		}
	}
	for _, f := range Families {
		if !g.Config.Intercepts(f) {
			continue
		}
		if g.Tables[f] == nil {
			return env, fmt.Errorf("installing %s mangle rules: %s iptables not available", f, f)
		}
		if err := g.mangle(f).Set(g.Config, env); err != nil {
			return env, fmt.Errorf("installing mangle rules: %w", err)
		}
	}
	return env, nil
}

// ErrInterceptionLeft marks an error after which rules or routes may still
// be installed because removing them failed. Every other error of Run
// leaves the kernel as it found it (or cleaner).
var ErrInterceptionLeft = errors.New("interception may still be installed")

// Run starts the relays, installs interception and serves until ctx is
// done or a relay fails. Every return path removes the rules first (so the
// LAN falls back to plain forwarding at once), then gives flows the
// configured grace. Only an error wrapping ErrInterceptionLeft leaves
// anything behind.
func (g *Gateway) Run(ctx context.Context) (err error) {
	if err := g.checkSysctls(); err != nil {
		return err
	}
	if err := g.Cleanup(); err != nil {
		return fmt.Errorf("removing leftovers of an earlier run: %w: %w", ErrInterceptionLeft, err)
	}
	var opened []Relay
	defer func() {
		for _, r := range opened {
			r.Shutdown(g.Config.Shutdown.Grace.Duration)
		}
	}()
	for _, r := range g.Relays {
		if err := r.Listen(ctx); err != nil {
			return fmt.Errorf("opening listeners: %w", err)
		}
		opened = append(opened, r)
	}
	env, err := g.installEnv(ctx)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := g.Cleanup(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("removing interception: %w: %w", ErrInterceptionLeft, cerr))
		} else {
			g.Log.Info("interception removed")
		}
	}()
	stopKeeper, err := g.startKeeper(ctx, env)
	if err != nil {
		return err
	}
	defer stopKeeper() // before the Cleanup above: nothing re-applies after it
	served := make(chan error, len(g.Relays))
	for _, r := range g.Relays {
		go func() { served <- r.Serve() }()
	}
	select {
	case <-ctx.Done():
		g.Log.Info("stopping", "cause", context.Cause(ctx))
		return nil
	case err := <-served:
		if err == nil {
			err = errors.New("listener stopped unexpectedly")
		}
		return fmt.Errorf("serving: %w", err)
	}
}

// checkSysctls warns when forwarding is off: intercepted flows still work
// (TPROXY delivers them locally) but bypassed traffic needs forwarding. It
// fails when br_netfilter would break interception on a LAN bridge.
func (g *Gateway) checkSysctls() error {
	if g.ReadSysctl == nil {
		return nil
	}
	for _, key := range []string{"net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"} {
		v, err := g.ReadSysctl(key)
		if err != nil {
			g.Log.Warn("cannot read sysctl", "key", key, "err", err)
			continue
		}
		if v != "1" {
			g.Log.Warn("forwarding is off: intercepted flows work, but bypassed LAN traffic (LAN subnets, bypass list) will not be forwarded; enable it with sysctl -w "+key+"=1",
				"key", key, "value", v)
		}
	}
	return g.checkBridgeNetfilter()
}

// checkBridgeNetfilter refuses to start when a LAN interface is a bridge and
// br_netfilter passes bridged IPv4/IPv6 through iptables: the TPROXY target
// then runs at the bridge layer and the IP layer drops the socket it
// assigned, so every intercepted connection would be reset.
func (g *Gateway) checkBridgeNetfilter() error {
	bridged := false
	for _, name := range g.Config.LAN.Interfaces {
		if l, err := g.NL.LinkByName(name); err == nil && l.Type() == "bridge" {
			bridged = true
		}
	}
	if !bridged {
		return nil
	}
	for _, f := range Families {
		key := map[Family]string{IPv4: "net.bridge.bridge-nf-call-iptables", IPv6: "net.bridge.bridge-nf-call-ip6tables"}[f]
		if v, err := g.ReadSysctl(key); err == nil && v == "1" && g.Config.Intercepts(f) {
			return fmt.Errorf("checking sysctls: %s=1 (br_netfilter) breaks TPROXY on LAN bridges: "+
				"set it to 0 (sysctl -w %s=0, or /etc/sysctl.d/ as gatewayd's rootfs ships it)", key, key)
		}
	}
	return nil
}
