package gateway

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func reconfigurable(t *testing.T) (*Gateway, *fakeSystem) {
	g, sys, k := keptGateway(t)
	g.keeper.Store(k)
	return g, sys
}

func TestReconfigureAppliesBypassAndRules(t *testing.T) {
	g, sys := reconfigurable(t)
	next := *g.Config
	next.Bypass.Destinations = append([]netip.Prefix{netip.MustParsePrefix("198.19.44.0/24")}, next.Bypass.Destinations...)
	if err := g.Reconfigure(context.Background(), &next, nil); err != nil {
		t.Fatal(err)
	}
	saved, _ := sys.v4.Save("mangle")
	if !strings.Contains(saved, "-d 198.19.44.0/24 -j RETURN") {
		t.Errorf("new bypass entry not installed:\n%s", saved)
	}
	if g.Config != &next {
		t.Error("Config not replaced")
	}
	if err := g.keeper.Load().check(context.Background()); err != nil || g.Reapplies() != 0 {
		t.Errorf("the keeper sees a change after a reload (%d reapplies, %v)", g.Reapplies(), err)
	}
}

func TestReconfigureRefusesRestartKeys(t *testing.T) {
	g, sys := reconfigurable(t)
	before := sys.dump(t)
	next := *g.Config
	next.TProxy.Port++
	next.Routing.Table++
	err := g.Reconfigure(context.Background(), &next, nil)
	if err == nil || !strings.Contains(err.Error(), "tproxy.port") || !strings.Contains(err.Error(), "routing.table") {
		t.Fatalf("Reconfigure = %v, want a restart error naming the keys", err)
	}
	if after := sys.dump(t); after != before {
		t.Errorf("kernel changed by a refused reload")
	}
}

func TestReconfigureFailureRestoresTheOldRules(t *testing.T) {
	g, sys := reconfigurable(t)
	before := sys.dump(t)
	old := g.Config
	next := *g.Config
	next.Mangle.ExtraV4 = []string{"-A PREROUTING -j no_such_chain"} // the fake refuses it, as iptables-restore does
	if err := g.Reconfigure(context.Background(), &next, nil); err == nil {
		t.Fatal("an unloadable rule set was accepted")
	}
	if g.Config != old {
		t.Error("the failed config stayed current")
	}
	if after := sys.dump(t); after != before {
		t.Errorf("rules after a failed reload:\n%s\nwant:\n%s", after, before)
	}
}

func TestReconfigureNeedsRun(t *testing.T) {
	g, _ := newTestGateway(t, newFakeRelay(), nil)
	if err := g.Reconfigure(context.Background(), g.Config, nil); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Reconfigure before Run: %v", err)
	}
}

// TestReconfigureAfterRunRefused: a reload that lands while gatewayd stops
// (after Run removed the rules) is refused and installs nothing: the LAN
// stays on plain forwarding.
func TestReconfigureAfterRunRefused(t *testing.T) {
	relay := newFakeRelay()
	g, sys := newTestGateway(t, relay, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	select {
	case <-relay.serving:
	case err := <-done:
		t.Fatalf("Run returned early: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	next := *g.Config
	if err := g.Reconfigure(context.Background(), &next, nil); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Reconfigure after Run returned = %v, want ErrNotRunning", err)
	}
	if d := sys.dump(t); strings.Contains(d, chainPrefix) || sys.nl.String() != "" {
		t.Errorf("a reconfigure after stop re-installed the interception:\n%s", d)
	}
}
