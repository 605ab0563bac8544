package gateway

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/internal/netlab"
)

// TestKernelEventsLab subscribes in a lab's gateway namespace and makes
// changes there with ip(8) and iptables(8): those that concern the rules
// (an ip rule or route of gatewayd's table, the mangle table, an address)
// are reported, others (the filter table, a main-table route) are not.
func TestKernelEventsLab(t *testing.T) {
	if testing.Short() {
		t.Skip("needs root and a network-namespace lab; make test-unit (-short) runs what needs no root")
	}
	l := netlab.NewT(t)
	gw := l.Gateway
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	spec := WatchSpec{Table: 2026, Priority: 9000, Families: Families}
	var w Watch
	if err := gw.Do(func() error {
		w = KernelEvents(slog.New(slog.NewTextHandler(t.Output(), nil)))(ctx, spec)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	cov := w.Covered()
	if !cov.Routing {
		t.Fatal("no routing notifications")
	}
	nft := true
	for _, f := range Families {
		if ok, err := iptablesIsNFT(f); err != nil || !ok {
			nft = false
		}
		if !cov.Mangle[f] && nft {
			t.Errorf("%s: iptables-nft, but mangle changes are not covered", f)
		}
	}
	// expect runs cmd and waits for an event (want) or makes sure none
	// comes within a while (a negative can only be checked for a time).
	expect := func(want bool, cmd ...string) {
		t.Helper()
		for len(w.C) > 0 { // left from the previous step
			<-w.C
		}
		start := time.Now()
		labRun(t, gw, cmd[0], cmd[1:]...)
		wait := 10 * time.Second
		if !want {
			wait = 300 * time.Millisecond
		}
		select {
		case <-w.C:
			if !want {
				t.Errorf("%v: notified, but it does not concern the rules", cmd)
			} else {
				t.Logf("%v: notified within %v of starting the command", cmd, time.Since(start).Round(time.Millisecond))
			}
		case <-time.After(wait):
			if want {
				t.Errorf("%v: no notification within %v", cmd, wait)
			}
		}
	}
	expect(true, "ip", "rule", "add", "fwmark", "0x1000000/0x1000000", "lookup", "2026", "priority", "9000")
	expect(true, "ip", "-6", "rule", "add", "fwmark", "0x1000000/0x1000000", "lookup", "2026", "priority", "9000")
	expect(true, "ip", "-6", "rule", "del", "priority", "9000")
	expect(false, "ip", "rule", "add", "fwmark", "0x4", "lookup", "77", "priority", "9100")
	expect(true, "ip", "route", "add", "local", "0.0.0.0/0", "dev", "lo", "table", "2026")
	expect(true, "ip", "route", "del", "local", "0.0.0.0/0", "dev", "lo", "table", "2026")
	expect(false, "ip", "route", "add", "198.18.200.0/24", "dev", "lo", "table", "77")
	expect(true, "ip", "addr", "add", "198.18.201.1/24", "dev", "lo")
	if nft {
		expect(true, "iptables", "-w", "-t", "mangle", "-A", "PREROUTING", "-j", "RETURN")
		expect(true, "iptables", "-w", "-t", "mangle", "-F")
		expect(true, "ip6tables", "-w", "-t", "mangle", "-N", "OTHER")
		expect(false, "iptables", "-w", "-t", "filter", "-A", "INPUT", "-j", "RETURN")
	}
}
