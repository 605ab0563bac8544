package gateway

import (
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

func TestRoutingSetIsIdempotentAndCleanupExact(t *testing.T) {
	nl := newFakeNetlink()
	// Someone else's rule in the same table at another priority must stay.
	other := netlink.NewRule()
	other.Family, other.Table, other.Priority = unix.AF_INET, DefaultTable, 100
	if err := nl.RuleAdd(other); err != nil {
		t.Fatal(err)
	}
	before := nl.String()
	r := &policyRouting{NL: nl}
	c := testSpec()
	for range 2 {
		if err := r.Set(c); err != nil {
			t.Fatal(err)
		}
	}
	want := `route table=2026 type=2 dev=1 dst=0.0.0.0/0 scope=254
route table=2026 type=2 dev=1 dst=::/0 scope=0
rule af=10 prio=9000 fwmark=0x1000000/0x1000000 table=2026
rule af=2 prio=100 fwmark=0x0/0x0 table=2026
rule af=2 prio=9000 fwmark=0x1000000/0x1000000 table=2026`
	if got := nl.String(); got != want {
		t.Errorf("after Set:\n%s\nwant:\n%s", got, want)
	}
	for range 2 {
		if err := r.Cleanup(c); err != nil {
			t.Fatal(err)
		}
	}
	if got := nl.String(); got != before {
		t.Errorf("after Cleanup:\n%s\nwant:\n%s", got, before)
	}
}

func TestRoutingV4Only(t *testing.T) {
	nl := newFakeNetlink()
	c := testSpec()
	c.TProxy.Addresses = c.TProxy.Addresses[:1]
	if err := (&policyRouting{NL: nl}).Set(c); err != nil {
		t.Fatal(err)
	}
	want := `route table=2026 type=2 dev=1 dst=0.0.0.0/0 scope=254
rule af=2 prio=9000 fwmark=0x1000000/0x1000000 table=2026`
	if got := nl.String(); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

func TestDeriveEnv(t *testing.T) {
	nl := newFakeNetlink()
	c := testSpec()
	c.LAN.Interfaces = []string{"br-lan", "missing0", "l+"}
	env, err := DeriveEnv(nl, c, discard())
	if err != nil {
		t.Fatal(err)
	}
	got := ""
	for _, p := range env.LANSubnets {
		got += p.String() + " "
	}
	if got != "198.18.1.0/24 2001:2:1::/64 fe80::/64 " {
		t.Errorf("LAN subnets = %s", got)
	}
}
