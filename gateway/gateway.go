// Package gateway is gatewayd's footprint in the kernel: the mangle table
// rules that divert LAN traffic to the TPROXY listeners, the policy routing
// that delivers it locally, the fast path's ipsets and the keeper that puts
// them back when something else changes them. Everything it installs is a
// pure function of a Spec (plus the LAN subnets it reads from the kernel),
// applied atomically, re-checked, and removed on every exit path.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync/atomic"
)

// Options are what a Gateway works with: the kernel's interfaces (strict
// fakes in tests) and a logger.
type Options struct {
	Log *slog.Logger
	// Tables holds the iptables of each family gatewayd may touch; a family
	// the spec intercepts must be present.
	Tables map[Family]Tables
	NL     Netlink
	// ReadSysctl reads a sysctl ("net.ipv4.ip_forward"); nil skips checks.
	ReadSysctl func(key string) (string, error)
	// FastPath, when set, keeps the kernel fast path's ipsets: Install
	// creates and fills them before the rules that match them, Remove
	// destroys them after the rules are gone. nil: no fast path.
	FastPath *FastPath
	// Events, if set, subscribes to kernel changes that may concern the
	// rules (KernelEvents), so the keeper checks at once instead of at
	// its next poll. The subscription ends when ctx is done.
	Events func(ctx context.Context, spec WatchSpec) Watch
}

// Gateway is gatewayd's footprint in the kernel: the mangle rules, the
// policy routing and the fast path's sets of one Spec. Install, Reconfigure
// and Remove are its only state changes; between Install and Remove a
// keeper puts back what something else changes.
type Gateway struct {
	o Options // Log set (discarding when none was given)

	// spec is what is installed; Reconfigure replaces it under the
	// keeper's mutex while installed.
	spec *Spec

	keeper atomic.Pointer[keeper] // set from Install on
	// stopKeeper ends the keeper Install started; nil before Install and
	// after Remove. Install and Remove run in one goroutine (the
	// daemon's lifecycle).
	stopKeeper func()
}

// New returns the Gateway of spec; it touches nothing before Install.
func New(spec *Spec, o Options) *Gateway {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return &Gateway{o: o, spec: spec}
}

func (g *Gateway) mangle(f Family) *mangleTable {
	return &mangleTable{Family: f, Tables: g.o.Tables[f], StateDir: g.spec.StateDir, Log: g.o.Log}
}

// Cleanup removes everything gatewayd installs (this run's or a crashed
// earlier run's) and restores what appliance mode kept aside. Safe to run
// when nothing is installed.
func (g *Gateway) Cleanup() error {
	var errs []error
	for _, f := range Families {
		if g.o.Tables[f] == nil {
			continue
		}
		if err := g.mangle(f).Cleanup(); err != nil {
			errs = append(errs, err)
		}
	}
	r := &policyRouting{NL: g.o.NL}
	if err := r.Cleanup(g.spec); err != nil {
		errs = append(errs, err)
	}
	if g.o.FastPath != nil { // after the rules: the kernel keeps a set a rule matches
		if err := g.o.FastPath.Teardown(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Install checks the system (forwarding, br_netfilter), removes what an
// earlier run may have left, applies the rules, routes and fast path for
// the spec, and starts keeping them. On failure it removes whatever it had
// applied; only an error wrapping ErrInterceptionLeft leaves anything.
func (g *Gateway) Install(ctx context.Context) error {
	if g.stopKeeper != nil {
		return errors.New("installing interception: already installed")
	}
	if err := g.checkSysctls(); err != nil {
		return err
	}
	if err := g.Cleanup(); err != nil {
		return fmt.Errorf("removing leftovers of an earlier run: %w: %w", ErrInterceptionLeft, err)
	}
	env, err := g.installEnv(ctx)
	if err != nil {
		return err
	}
	if g.stopKeeper, err = g.startKeeper(env); err != nil {
		return errors.Join(err, g.removeInstalled())
	}
	return nil
}

// Remove stops keeping the interception and removes it: the LAN falls
// back to plain forwarding. A Reconfigure after it is refused. Safe to
// call when nothing is installed.
func (g *Gateway) Remove() error {
	if g.stopKeeper != nil {
		g.stopKeeper() // first: nothing re-applies after this
		g.stopKeeper = nil
	}
	return g.removeInstalled()
}

// removeInstalled is Cleanup, with its failure marked as interception left.
func (g *Gateway) removeInstalled() error {
	if err := g.Cleanup(); err != nil {
		return fmt.Errorf("removing interception: %w: %w", ErrInterceptionLeft, err)
	}
	g.o.Log.Info("interception removed")
	return nil
}

// installEnv is Install returning the environment it applied.
func (g *Gateway) installEnv(ctx context.Context) (Env, error) {
	env, err := DeriveEnv(g.o.NL, g.spec, g.o.Log)
	if err != nil {
		return env, fmt.Errorf("reading LAN subnets: %w", err)
	}
	if env, err = g.install(ctx, env); err != nil {
		if cerr := g.Cleanup(); cerr != nil {
			return env, errors.Join(err, fmt.Errorf("removing partially installed rules: %w: %w", ErrInterceptionLeft, cerr))
		}
		return env, err
	}
	g.o.Log.Info("interception installed", "lan", g.spec.LAN.Interfaces, "bypassed_lan_subnets", env.LANSubnets,
		"mode", g.spec.Mangle.Mode, "table", g.spec.Routing.Table, "fast_path", env.FastPath)
	g.logLeftAlone()
	return env, nil
}

// logLeftAlone logs what the rules forward as usual besides the LAN
// subnets and the router's own addresses: the families without a listener
// address and the bypass list in effect (bypass.intercept carved out).
func (g *Gateway) logLeftAlone() {
	c := g.spec
	families := []string{}
	var bypassed []netip.Prefix
	for _, f := range Families {
		if !c.Intercepts(f) {
			families = append(families, f.String())
		}
	}
	for _, p := range c.Bypass {
		if f := familyOf(p); c.Intercepts(f) {
			bypassed = append(bypassed, p)
		}
	}
	g.o.Log.Info("left alone (forwarded as usual)", "families", families, "destinations", bypassed,
		"intercepted_from_bypass", c.Intercept)
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
	r := &policyRouting{NL: g.o.NL}
	if err := r.Set(g.spec); err != nil {
		return env, fmt.Errorf("installing policy routing: %w", err)
	}
	if g.o.FastPath != nil {
		// The sets before the rules: iptables-restore rejects a rule
		// that names a missing set.
		var fams []Family
		for _, f := range Families {
			if g.spec.Intercepts(f) {
				fams = append(fams, f)
			}
		}
		if err := g.o.FastPath.Setup(ctx, fams, g.spec.FastPathEntries()); err != nil {
			// Without ipsets every flow goes through user space, where the
			// same rules route it: slower, not wrong.
			g.o.Log.Warn("kernel fast path not available; direct flows are relayed in user space", "err", err)
			env.FastPath = false
		} else {
			env.FastPath = true
		}
	}
	for _, f := range Families {
		if !g.spec.Intercepts(f) {
			continue
		}
		if g.o.Tables[f] == nil {
			return env, fmt.Errorf("installing %s mangle rules: %s iptables not available", f, f)
		}
		if err := g.mangle(f).Set(g.spec, env); err != nil {
			return env, fmt.Errorf("installing mangle rules: %w", err)
		}
	}
	return env, nil
}

// ErrInterceptionLeft marks an error after which rules or routes may still
// be installed because removing them failed. Every other error of Install
// and Remove leaves the kernel as it found it (or cleaner).
var ErrInterceptionLeft = errors.New("interception may still be installed")

// checkSysctls warns when forwarding is off: intercepted flows still work
// (TPROXY delivers them locally) but bypassed traffic needs forwarding. It
// fails when br_netfilter would break interception on a LAN bridge.
func (g *Gateway) checkSysctls() error {
	if g.o.ReadSysctl == nil {
		return nil
	}
	for _, key := range []string{"net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"} {
		v, err := g.o.ReadSysctl(key)
		if err != nil {
			g.o.Log.Warn("cannot read sysctl", "key", key, "err", err)
			continue
		}
		if v != "1" {
			g.o.Log.Warn("forwarding is off: intercepted flows work, but bypassed LAN traffic (LAN subnets, bypass list) will not be forwarded; enable it with sysctl -w "+key+"=1",
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
	for _, name := range g.spec.LAN.Interfaces {
		if l, err := g.o.NL.LinkByName(name); err == nil && l.Type() == "bridge" {
			bridged = true
		}
	}
	if !bridged {
		return nil
	}
	for _, f := range Families {
		key := map[Family]string{IPv4: "net.bridge.bridge-nf-call-iptables", IPv6: "net.bridge.bridge-nf-call-ip6tables"}[f]
		if v, err := g.o.ReadSysctl(key); err == nil && v == "1" && g.spec.Intercepts(f) {
			return fmt.Errorf("checking sysctls: %s=1 (br_netfilter) breaks TPROXY on LAN bridges: "+
				"set it to 0 (sysctl -w %s=0, or /etc/sysctl.d/ as gatewayd's rootfs ships it)", key, key)
		}
	}
	return nil
}
