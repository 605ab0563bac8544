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
	next := *g.spec
	next.Bypass = append([]netip.Prefix{netip.MustParsePrefix("198.19.44.0/24")}, next.Bypass...)
	if err := g.Reconfigure(context.Background(), &next); err != nil {
		t.Fatal(err)
	}
	saved, _ := sys.v4.Save("mangle")
	if !strings.Contains(saved, "-d 198.19.44.0/24 -j RETURN") {
		t.Errorf("new bypass entry not installed:\n%s", saved)
	}
	if g.spec != &next {
		t.Error("spec not replaced")
	}
	if err := g.keeper.Load().check(context.Background()); err != nil || g.Reapplies() != 0 {
		t.Errorf("the keeper sees a change after a reload (%d reapplies, %v)", g.Reapplies(), err)
	}
}

func TestReconfigureRefusesRestartKeys(t *testing.T) {
	g, sys := reconfigurable(t)
	before := sys.dump(t)
	next := *g.spec
	next.TProxy.Port++
	next.Routing.Table++
	err := g.Reconfigure(context.Background(), &next)
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
	old := g.spec
	next := *g.spec
	next.Mangle.ExtraV4 = []string{"-A PREROUTING -j no_such_chain"} // the fake refuses it, as iptables-restore does
	if err := g.Reconfigure(context.Background(), &next); err == nil {
		t.Fatal("an unloadable rule set was accepted")
	}
	if g.spec != old {
		t.Error("the failed config stayed current")
	}
	if after := sys.dump(t); after != before {
		t.Errorf("rules after a failed reload:\n%s\nwant:\n%s", after, before)
	}
}

func TestReconfigureNeedsRun(t *testing.T) {
	g, _ := newTestGateway(t, nil)
	if err := g.Reconfigure(context.Background(), g.spec); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Reconfigure before Install: %v", err)
	}
}

// TestReconfigureAfterRemoveRefused: a reload that lands while gatewayd
// stops (after Remove took the rules out) is refused and installs nothing:
// the LAN stays on plain forwarding.
func TestReconfigureAfterRemoveRefused(t *testing.T) {
	g, sys := newTestGateway(t, nil)
	if err := g.Install(context.Background()); err != nil {
		t.Fatalf("Install: %v", err)
	}
	if err := g.Remove(); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	next := *g.spec
	if err := g.Reconfigure(context.Background(), &next); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Reconfigure after Remove = %v, want ErrNotRunning", err)
	}
	if d := sys.dump(t); strings.Contains(d, ChainPrefix) || sys.nl.String() != "" {
		t.Errorf("a reconfigure after stop re-installed the interception:\n%s", d)
	}
}
