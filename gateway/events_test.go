package gateway

import (
	"context"
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// nlMsg builds a netlink message: header of type typ, then body, then
// attributes (type, value) in order.
func nlMsg(typ uint16, body []byte, attrs ...any) []byte {
	b := append([]byte(nil), body...)
	for i := 0; i+1 < len(attrs); i += 2 {
		v := attrs[i+1].([]byte)
		a := make([]byte, unix.SizeofNlAttr, unix.SizeofNlAttr+len(v)+3)
		binary.NativeEndian.PutUint16(a[0:2], uint16(unix.SizeofNlAttr+len(v)))
		binary.NativeEndian.PutUint16(a[2:4], attrs[i].(uint16))
		a = append(a, v...)
		for len(a)%4 != 0 {
			a = append(a, 0)
		}
		b = append(b, a...)
	}
	h := make([]byte, unix.SizeofNlMsghdr)
	binary.NativeEndian.PutUint32(h[0:4], uint32(unix.SizeofNlMsghdr+len(b)))
	binary.NativeEndian.PutUint16(h[4:6], typ)
	return append(h, b...)
}

func u32(v uint32) []byte { return binary.NativeEndian.AppendUint32(nil, v) }

// rtBody is a struct rtmsg / fib_rule_hdr of family fam with table tbl.
func rtBody(fam, tbl byte) []byte { return []byte{fam, 0, 0, 0, tbl, 0, 0, 0, 0, 0, 0, 0} }

func TestRouteEventMatters(t *testing.T) {
	spec := WatchSpec{Table: 2026, Priority: 9000, Families: Families}
	for _, c := range []struct {
		name string
		msg  []byte
		want bool
	}{
		{"our rule deleted (table ≥ 256 as FRA_TABLE)", nlMsg(unix.RTM_DELRULE, rtBody(unix.AF_INET6, unix.RT_TABLE_UNSPEC),
			uint16(unix.FRA_PRIORITY), u32(9000), uint16(unix.FRA_TABLE), u32(2026)), true},
		{"a rule at our priority to another table", nlMsg(unix.RTM_NEWRULE, rtBody(unix.AF_INET, 100),
			uint16(unix.FRA_PRIORITY), u32(9000)), true},
		{"someone else's rule", nlMsg(unix.RTM_DELRULE, rtBody(unix.AF_INET, 100),
			uint16(unix.FRA_PRIORITY), u32(32000), uint16(unix.FRA_TABLE), u32(100)), false},
		{"route in our table", nlMsg(unix.RTM_DELROUTE, rtBody(unix.AF_INET, unix.RT_TABLE_UNSPEC),
			uint16(unix.RTA_TABLE), u32(2026)), true},
		{"route in main", nlMsg(unix.RTM_NEWROUTE, rtBody(unix.AF_INET6, unix.RT_TABLE_MAIN),
			uint16(unix.RTA_TABLE), u32(unix.RT_TABLE_MAIN)), false},
		{"local route of a new address", nlMsg(unix.RTM_NEWROUTE, rtBody(unix.AF_INET, unix.RT_TABLE_LOCAL)), false},
		{"address", nlMsg(unix.RTM_NEWADDR, make([]byte, unix.SizeofIfAddrmsg)), true},
		{"link", nlMsg(unix.RTM_DELLINK, make([]byte, unix.SizeofIfInfomsg)), true},
		{"neighbour", nlMsg(unix.RTM_NEWNEIGH, make([]byte, 12)), false},
		{"truncated rule", nlMsg(unix.RTM_DELRULE, []byte{2, 0}), true},
		{"garbage", []byte{1, 2, 3}, true},
	} {
		if got := routeEventMatters(c.msg, spec); got != c.want {
			t.Errorf("%s: matters = %v, want %v", c.name, got, c.want)
		}
	}
}

// nftMsg is an nftables notification of msg type m for a table.
func nftMsg(m uint16, nfproto byte, table string) []byte {
	return nlMsg(unix.NFNL_SUBSYS_NFTABLES<<8|m, []byte{nfproto, 0, 0, 0},
		uint16(1), append([]byte(table), 0), uint16(2), []byte("PREROUTING\x00"))
}

func TestNFTEventMatters(t *testing.T) {
	v4only := []Family{IPv4}
	for _, c := range []struct {
		name string
		msg  []byte
		fams []Family
		want bool
	}{
		{"rule deleted from ip mangle", nftMsg(unix.NFT_MSG_DELRULE, nfprotoIPv4, "mangle"), Families, true},
		{"rule destroyed in ip6 mangle", nftMsg(nftDestroyRule, nfprotoIPv6, "mangle"), Families, true},
		{"ip6 mangle while only IPv4 is watched", nftMsg(unix.NFT_MSG_DELRULE, nfprotoIPv6, "mangle"), v4only, false},
		{"chain added to ip mangle", nftMsg(unix.NFT_MSG_NEWCHAIN, nfprotoIPv4, "mangle"), Families, true},
		{"ip mangle table deleted", nftMsg(unix.NFT_MSG_DELTABLE, nfprotoIPv4, "mangle"), Families, true},
		{"rule in ip filter", nftMsg(unix.NFT_MSG_NEWRULE, nfprotoIPv4, "filter"), Families, false},
		{"rule in inet fw4", nftMsg(unix.NFT_MSG_DELRULE, 1, "fw4"), Families, false},
		{"inet table named mangle", nftMsg(unix.NFT_MSG_DELRULE, 1, "mangle"), Families, false},
		{"set element", nftMsg(unix.NFT_MSG_NEWSETELEM, nfprotoIPv4, "mangle"), Families, false},
		{"generation", nftMsg(unix.NFT_MSG_NEWGEN, 0, ""), Families, false},
		{"ipset subsystem", nlMsg(6<<8|2, []byte{2, 0, 0, 0}), Families, false},
		{"truncated", nlMsg(unix.NFNL_SUBSYS_NFTABLES<<8|unix.NFT_MSG_DELRULE, []byte{2}), Families, true},
	} {
		if got := nftEventMatters(c.msg, c.fams); got != c.want {
			t.Errorf("%s: matters = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestDatagramMattersLooksAtEveryMessage(t *testing.T) {
	spec := WatchSpec{Table: 2026, Priority: 9000}
	other := nlMsg(unix.RTM_NEWROUTE, rtBody(unix.AF_INET, unix.RT_TABLE_MAIN))
	ours := nlMsg(unix.RTM_DELROUTE, rtBody(unix.AF_INET, unix.RT_TABLE_UNSPEC), uint16(unix.RTA_TABLE), u32(2026))
	matters := func(m []byte) bool { return routeEventMatters(m, spec) }
	if datagramMatters(append(append([]byte(nil), other...), other...), matters) {
		t.Error("two main-table routes matter")
	}
	if !datagramMatters(append(append([]byte(nil), other...), ours...), matters) {
		t.Error("the second message, a route of our table, was missed")
	}
}

func TestPollInterval(t *testing.T) {
	c := testSpec()
	safety := c.CheckInterval
	full := Coverage{Routing: true, Mangle: map[Family]bool{IPv4: true, IPv6: true}}
	legacy6 := Coverage{Routing: true, Mangle: map[Family]bool{IPv4: true}}
	if got := pollInterval(c, full); got != safety {
		t.Errorf("everything notified: poll every %v, want %v", got, safety)
	}
	for name, cov := range map[string]Coverage{"legacy ip6tables": legacy6, "no routing events": {Mangle: full.Mangle}, "nothing": {}} {
		if got := pollInterval(c, cov); got != KeepInterval {
			t.Errorf("%s: poll every %v, want %v", name, got, KeepInterval)
		}
	}
	c.TProxy.Addresses = c.TProxy.Addresses[:1] // IPv4 only: IPv6's mangle is not kept
	if got := pollInterval(c, legacy6); got != safety {
		t.Errorf("IPv4-only config, IPv4 notified: poll every %v, want %v", got, safety)
	}
	c.CheckInterval = time.Second
	if got := pollInterval(c, Coverage{}); got != time.Second {
		t.Errorf("check_interval 1s without events: poll every %v, want 1s", got)
	}
}

// runKeeper runs k with a fake watch covering everything and check_interval
// 1h (so only events make it check); send notifies like KernelEvents.
func runKeeper(t *testing.T, k *keeper) (send func()) {
	t.Helper()
	k.g.spec.CheckInterval = time.Hour
	ch := make(chan struct{}, 1)
	full := func() Coverage { return Coverage{Routing: true, Mangle: map[Family]bool{IPv4: true, IPv6: true}} }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); k.run(ctx, Watch{C: ch, Covered: full}) }()
	t.Cleanup(func() { cancel(); <-done })
	return func() {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// waitCount waits (at most a generous deadline) until c reaches want.
func waitCount(t *testing.T, what string, c func() uint64, want uint64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for c() < want {
		if time.Now().After(deadline) {
			t.Fatalf("%s = %d, want %d", what, c(), want)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestKeeperChecksOnEventOnly(t *testing.T) {
	g, sys, k := keptGateway(t)
	send := runKeeper(t, k)
	time.Sleep(3 * eventDebounce)
	if n := k.checks.Load(); n != 0 {
		t.Fatalf("%d checks without an event (check_interval 1h)", n)
	}
	if err := sys.nl.RuleDel(fwmarkRule(g.spec, IPv4)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for range 50 { // a burst: one check
		send()
	}
	waitCount(t, "reapplies", k.reapply.Load, 1)
	t.Logf("re-applied %v after the event", time.Since(start))
	time.Sleep(3 * eventDebounce)
	if n := k.checks.Load(); n != 1 {
		t.Errorf("%d checks for one burst of events, want 1", n)
	}
	if m, err := (&policyRouting{NL: sys.nl}).Missing(g.spec); err != nil || len(m) != 0 {
		t.Errorf("after the event, missing %v (%v)", m, err)
	}
}

// restoreFailsOnce is a fakeTables whose next Restore fails.
type restoreFailsOnce struct {
	*fakeTables
	failed bool
}

func (r *restoreFailsOnce) Restore(payload string, noflush bool) error {
	if !r.failed {
		r.failed = true
		return errors.New("iptables-restore: another app is currently holding the xtables lock")
	}
	return r.fakeTables.Restore(payload, noflush)
}

func TestKeeperRetriesAFailedRepairWithoutAnEvent(t *testing.T) {
	g, sys, k := keptGateway(t)
	g.o.Tables[IPv4] = &restoreFailsOnce{fakeTables: sys.v4}
	send := runKeeper(t, k) // check_interval 1h: only the retry can repair
	for ch := range sys.v4.chains {
		sys.v4.chains[ch] = nil
	}
	send()
	start := time.Now()
	waitCount(t, "reapplies", k.reapply.Load, 1)
	if took := time.Since(start); took < KeepInterval/2 {
		t.Errorf("repaired after %v: the first repair should have failed", took)
	} else {
		t.Logf("repaired by the retry %v after the event", took)
	}
}
