package gateway

import (
	"context"
	"testing"
	"time"
)

// TestLastReapply: zero before the keeper runs and before any self-heal;
// the time of the re-apply after one.
func TestLastReapply(t *testing.T) {
	g, sys, k := keptGateway(t)
	if at := g.LastReapply(); !at.IsZero() {
		t.Errorf("without a keeper: LastReapply %v, want zero", at)
	}
	g.keeper.Store(k)
	if at := g.LastReapply(); !at.IsZero() {
		t.Errorf("before a self-heal: LastReapply %v, want zero", at)
	}
	for ch := range sys.v4.chains { // iptables -t mangle -F
		sys.v4.chains[ch] = nil
	}
	before := time.Now()
	if err := k.check(context.Background()); err != nil {
		t.Fatal(err)
	}
	if at := g.LastReapply(); at.Before(before) || at.After(time.Now()) || g.Reapplies() != 1 {
		t.Errorf("after a self-heal: LastReapply %v (check started %v), reapplies %d", at, before, g.Reapplies())
	}
}
