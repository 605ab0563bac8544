package dispatch

import (
	"context"
	"net/netip"
	"reflect"
	"testing"

	"github.com/gatewayd/gatewayd/route"
	"github.com/gatewayd/gatewayd/tcp"
)

// TestRuleHits: every TCP flow and UDP routing decision counts for the
// rule that matched it, or the default; RuleOf names the rule without
// counting.
func TestRuleHits(t *testing.T) {
	d, _ := newTestDispatcher(t, []route.RuleSpec{
		{Label: "games", Proto: route.ProtoUDP, Port: []route.PortRange{{Lo: 7100, Hi: 7100}}, Outbound: "proxy"},
		{Domain: []string{"proxied.example"}, Outbound: "proxy"},
	}, names{netip.MustParseAddr("198.19.1.1"): "proxied.example"})
	ctx := context.Background()
	for _, dst := range []string{"198.19.1.1:443", "198.19.2.2:443", "198.19.2.2:80"} {
		_, _ = d.DialTCP(ctx, tcp.Flow{Client: client, Dst: netip.MustParseAddrPort(dst)})
	}
	d.Route(client, netip.MustParseAddrPort("198.19.2.2:7100"), []byte("x"))
	d.Route(client, netip.MustParseAddrPort("198.19.2.2:7100"), []byte("x")) // remembered: not a new decision
	d.Route(otherCli, netip.MustParseAddrPort("198.19.2.2:53"), []byte("x"))
	want := []RuleHit{{Label: "games", UDP: 1}, {Label: "rule[1]", TCP: 1}, {Label: "default", TCP: 2, UDP: 1}}
	if got := d.RuleHits(); !reflect.DeepEqual(got, want) {
		t.Errorf("rule hits %+v, want %+v", got, want)
	}
	for _, c := range []struct {
		proto, dst, domain, want string
	}{
		{route.ProtoTCP, "198.19.1.1:443", "", "rule[1]"}, // by the DNS memory
		{route.ProtoTCP, "198.19.2.2:443", "proxied.example", "rule[1]"},
		{route.ProtoUDP, "198.19.2.2:7100", "", "games"},
		{route.ProtoTCP, "198.19.2.2:7100", "", "default"},
	} {
		if got := d.RuleOf(c.proto, client, netip.MustParseAddrPort(c.dst), c.domain); got != c.want {
			t.Errorf("RuleOf(%s %s %q) = %q, want %q", c.proto, c.dst, c.domain, got, c.want)
		}
	}
	if got := d.RuleHits(); !reflect.DeepEqual(got, want) {
		t.Errorf("RuleOf counted: hits %+v, want %+v", got, want)
	}
}
