package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Self-healing. While gatewayd runs, its interception must stay what the
// config says even when something else changes the kernel's state: a
// firewall reload that flushes mangle, `iptables -t mangle -F`, another
// tool deleting the ip rule, a DHCP renewal or a re-created bridge that
// changes the LAN subnets the rules bypass. The keeper compares the kernel
// with what was applied whenever the kernel announces a change that may
// concern it (Gateway.Events: netlink for rules, routes, addresses and
// links; nftables notifications for the mangle table), logs what differs
// and applies the config again. Without any event it checks every
// self_heal.check_interval, for a notification that was lost; a part that
// sends none (legacy iptables) is checked every KeepInterval.

// KeepInterval is how often the keeper checks the kernel when some of what
// it keeps sends no change notification (legacy iptables, or a
// subscription that failed): such a change is repaired within this plus
// the time to re-apply.
const KeepInterval = 2 * time.Second

// applied is what the keeper compares the kernel against.
type applied struct {
	env    Env
	mangle map[Family]string // ownSnapshot of each family after the last apply
}

// keeper holds the keeper's state, from Install to Remove.
type keeper struct {
	g       *Gateway
	quiet   *slog.Logger // for DeriveEnv: a missing LAN interface is not news at every check
	reapply atomic.Uint64
	lastAt  atomic.Int64  // Unix nanoseconds of the last re-apply; 0: none
	checks  atomic.Uint64 // how often check ran (tests)

	mu   sync.Mutex // held by check and Reconfigure: one of them applies at a time
	last applied
	// stopped is set (under mu) when Remove stops keeping the rules, before
	// it removes them: no Reconfigure may install anything after that.
	stopped bool
}

// Reapplies counts how often the keeper re-applied the interception.
func (g *Gateway) Reapplies() uint64 {
	if k := g.keeper.Load(); k != nil {
		return k.reapply.Load()
	}
	return 0
}

// startKeeper starts keeping the rules applied for env; stop waits for it
// to end and then for a Reconfigure in progress, and refuses every later
// one (ErrNotRunning), so that nothing re-applies the rules once Remove
// removes them.
func (g *Gateway) startKeeper(env Env) (stop func(), err error) {
	k := &keeper{g: g, quiet: slog.New(slog.DiscardHandler)}
	// A Reconfigure (a reload right after start) waits for the setup
	// instead of being refused as "not running".
	k.mu.Lock()
	g.keeper.Store(k)
	ctx, cancel := context.WithCancel(context.Background())
	// Subscribe first: a change after this is notified; one made since
	// the install (a LAN address, a deleted rule) is found by the first
	// check, which runs at once.
	var w Watch
	if g.o.Events != nil {
		w = g.o.Events(ctx, WatchSpec{Table: g.spec.Routing.Table, Priority: g.spec.Routing.Priority,
			Families: g.spec.interceptedFamilies()})
	}
	err = k.snapshot(env)
	if err != nil {
		k.stopped = true
		k.mu.Unlock()
		cancel()
		return nil, err
	}
	k.logCoverage(w.covered()) // reads g.spec: under k.mu
	k.mu.Unlock()
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := k.check(ctx); err != nil {
			k.g.o.Log.Error("self-healing: re-applying interception failed; will retry", "err", err)
		}
		k.run(ctx, w)
	}()
	return func() {
		cancel()
		<-done
		k.mu.Lock()
		k.stopped = true
		k.mu.Unlock()
	}, nil
}

// snapshot records what the kernel shows right after an apply.
func (k *keeper) snapshot(env Env) error {
	k.last = applied{env: env, mangle: map[Family]string{}}
	for _, f := range Families {
		if !k.g.spec.Intercepts(f) {
			continue
		}
		saved, err := k.g.o.Tables[f].Save("mangle")
		if err != nil {
			return fmt.Errorf("reading back %s mangle table: %w", f, err)
		}
		k.last.mangle[f] = ownSnapshot(saved, k.g.spec.Mangle.Mode)
	}
	return nil
}

// logCoverage says how the keeper learns of changes.
func (k *keeper) logCoverage(cov Coverage) {
	c := k.g.spec
	var polled []string
	if !cov.Routing {
		polled = append(polled, "policy routing and LAN addresses")
	}
	for _, f := range c.interceptedFamilies() {
		if !cov.Mangle[f] {
			polled = append(polled, f.String()+" mangle table")
		}
	}
	if len(polled) == 0 {
		k.g.o.Log.Info("self-healing: reacting to kernel change notifications",
			"check_interval", c.CheckInterval)
		return
	}
	k.g.o.Log.Info("self-healing: no change notifications for some of the rules (legacy iptables?); checking them periodically",
		"polled", strings.Join(polled, ", "), "every", pollInterval(c, cov))
}

// run checks until ctx is done: after events (a burst is one check) and,
// without any, every pollInterval.
func (k *keeper) run(ctx context.Context, w Watch) {
	poll := time.NewTimer(k.pollInterval(w))
	defer poll.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-poll.C:
		case <-w.C:
			if !debounce(ctx, w.C) {
				return
			}
		}
		next := k.pollInterval(w)
		if err := k.check(ctx); err != nil {
			k.g.o.Log.Error("self-healing: re-applying interception failed; will retry", "err", err, "in", min(next, KeepInterval))
			next = min(next, KeepInterval) // a failure is not notified
		}
		poll.Reset(next)
	}
}

// pollInterval is pollInterval for the current config (a reload may
// change check_interval).
func (k *keeper) pollInterval(w Watch) time.Duration {
	k.mu.Lock()
	c := k.g.spec
	k.mu.Unlock()
	return pollInterval(c, w.covered())
}

// check compares the kernel with what was applied and re-applies on any
// difference.
func (k *keeper) check(ctx context.Context) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.checks.Add(1)
	g := k.g
	env, err := DeriveEnv(g.o.NL, g.spec, k.quiet)
	if err != nil {
		return fmt.Errorf("reading LAN subnets: %w", err)
	}
	env.FastPath = k.last.env.FastPath
	var why []string
	if !slices.Equal(env.LANSubnets, k.last.env.LANSubnets) {
		g.o.Log.Info("LAN subnets changed; updating the bypass rules",
			"before", k.last.env.LANSubnets, "after", env.LANSubnets)
		why = append(why, "LAN subnets changed")
	}
	r := &policyRouting{NL: g.o.NL}
	missing, err := r.Missing(g.spec)
	if err != nil {
		return err
	}
	for _, m := range missing {
		g.o.Log.Warn("self-healing: policy routing changed by something else", "missing", m)
		why = append(why, m)
	}
	if len(missing) > 0 {
		// Put the rule and route back at once, before reading the mangle
		// tables (which runs iptables-save): while they are missing every
		// intercepted flow is dropped. install sets them again.
		if err := r.Set(g.spec); err != nil {
			return fmt.Errorf("restoring policy routing: %w", err)
		}
	}
	for _, f := range Families {
		if !g.spec.Intercepts(f) {
			continue
		}
		saved, err := g.o.Tables[f].Save("mangle")
		if err != nil {
			return fmt.Errorf("reading %s mangle table: %w", f, err)
		}
		if now := ownSnapshot(saved, g.spec.Mangle.Mode); now != k.last.mangle[f] {
			gone, added := lineDiff(k.last.mangle[f], now)
			g.o.Log.Warn("self-healing: mangle rules changed by something else", "family", f.String(),
				"missing", summarizeLines(gone), "unexpected", summarizeLines(added))
			why = append(why, f.String()+" mangle rules changed")
		}
	}
	if len(why) == 0 {
		return nil
	}
	env, err = g.install(ctx, env)
	if err != nil {
		return err
	}
	k.reapply.Add(1)
	k.lastAt.Store(time.Now().UnixNano())
	g.o.Log.Info("self-healing: interception re-applied", "because", strings.Join(why, "; "))
	return k.snapshot(env)
}

// ownSnapshot is the part of an iptables-save dump gatewayd answers for:
// the whole table in appliance mode, its chains and jumps in shared mode;
// without comments and counters, so two dumps of the same rules are equal.
func ownSnapshot(saved, mode string) string {
	var b strings.Builder
	for _, line := range strings.Split(saved, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if i := strings.Index(line, " ["); strings.HasPrefix(line, ":") && i > 0 {
			line = line[:i] // ":PREROUTING ACCEPT [12:345]"
		}
		if mode == ModeShared && !isOwnLine(line) {
			continue
		}
		b.WriteString(line + "\n")
	}
	return b.String()
}

// lineDiff lists the lines only in a and only in b.
func lineDiff(a, b string) (onlyA, onlyB []string) {
	as, bs := strings.Split(strings.TrimSpace(a), "\n"), strings.Split(strings.TrimSpace(b), "\n")
	for _, l := range as {
		if l != "" && !slices.Contains(bs, l) {
			onlyA = append(onlyA, l)
		}
	}
	for _, l := range bs {
		if l != "" && !slices.Contains(as, l) {
			onlyB = append(onlyB, l)
		}
	}
	return onlyA, onlyB
}

// maxLoggedLines bounds the rules one self-healing log line quotes.
const maxLoggedLines = 5

func summarizeLines(ls []string) string {
	if len(ls) > maxLoggedLines {
		return fmt.Sprintf("%s (+%d more)", strings.Join(ls[:maxLoggedLines], " | "), len(ls)-maxLoggedLines)
	}
	return strings.Join(ls, " | ")
}
