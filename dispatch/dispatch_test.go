package dispatch

import (
	"context"
	"encoding/hex"
	"errors"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/outbound"
	"github.com/gatewayd/gatewayd/route"
	"github.com/gatewayd/gatewayd/tcp"
	"github.com/gatewayd/gatewayd/udp"
)

// fakeOutbound records what it was asked to open.
type fakeOutbound struct {
	name string
	mu   sync.Mutex
	tcp  []outbound.Dest
	udp  []netip.AddrPort
}

var errFake = errors.New("fake outbound opens nothing")

func (f *fakeOutbound) Name() string { return f.name }
func (f *fakeOutbound) DialTCP(_ context.Context, dst outbound.Dest) (*net.TCPConn, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tcp = append(f.tcp, dst)
	return nil, errFake
}
func (f *fakeOutbound) OpenUDP(_ context.Context, client netip.AddrPort) (outbound.UDPConn, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.udp = append(f.udp, client)
	return nil, errFake
}
func (f *fakeOutbound) Stats() outbound.Stats { return outbound.Stats{} }

type names map[netip.Addr]string

func (n names) Lookup(a netip.Addr) (string, bool) { s, ok := n[a]; return s, ok }

type macs map[netip.Addr]net.HardwareAddr

func (m macs) Lookup(a netip.Addr) net.HardwareAddr { return m[a] }

var (
	client   = netip.MustParseAddrPort("198.18.0.10:40000")
	otherCli = netip.MustParseAddrPort("198.18.0.11:40000")
	mac10, _ = net.ParseMAC("02:00:00:00:00:0a")
)

func newTestDispatcher(t testing.TB, rules []route.RuleSpec, mem names) (*Dispatcher, map[string]*fakeOutbound) {
	t.Helper()
	table, err := route.Compile(rules, "direct")
	if err != nil {
		t.Fatal(err)
	}
	obs := map[string]*fakeOutbound{"direct": {name: "direct"}, "proxy": {name: "proxy"}}
	all := map[string]outbound.Outbound{"direct": obs["direct"], "proxy": obs["proxy"]}
	rej, err := outbound.New(outbound.Config{Name: "reject", Type: outbound.TypeReject})
	if err != nil {
		t.Fatal(err)
	}
	all["reject"] = rej
	d, err := New(Config{Table: table, Outbounds: all, Names: mem,
		MACs:  macs{client.Addr(): mac10},
		Iface: func(netip.Addr) string { return "br-lan" }}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return d, obs
}

func TestDialTCPPicksTheRuleOutbound(t *testing.T) {
	d, obs := newTestDispatcher(t, []route.RuleSpec{
		{Domain: []string{"proxied.example"}, Outbound: "proxy"},
		{MAC: []net.HardwareAddr{mac10}, Port: []route.PortRange{{Lo: 8080, Hi: 8080}}, Outbound: "proxy"},
		{Dst: []netip.Prefix{netip.MustParsePrefix("198.19.66.0/24")}, Outbound: "reject"},
	}, names{netip.MustParseAddr("198.19.1.1"): "proxied.example"})
	ctx := context.Background()
	for _, tc := range []struct {
		f      tcp.Flow
		want   string // outbound, or "reject"
		domain string
	}{
		{tcp.Flow{Client: client, Dst: netip.MustParseAddrPort("198.19.1.1:443")}, "proxy", "proxied.example"},                            // DNS memory
		{tcp.Flow{Client: client, Dst: netip.MustParseAddrPort("198.19.2.2:443"), Domain: "proxied.example"}, "proxy", "proxied.example"}, // sniffed
		{tcp.Flow{Client: client, Dst: netip.MustParseAddrPort("198.19.2.2:443")}, "direct", ""},
		{tcp.Flow{Client: client, Dst: netip.MustParseAddrPort("198.19.2.2:8080")}, "proxy", ""},    // MAC + port
		{tcp.Flow{Client: otherCli, Dst: netip.MustParseAddrPort("198.19.2.2:8080")}, "direct", ""}, // other MAC
		{tcp.Flow{Client: client, Dst: netip.MustParseAddrPort("198.19.66.7:80")}, "reject", ""},
	} {
		before := map[string]int{"direct": len(obs["direct"].tcp), "proxy": len(obs["proxy"].tcp)}
		_, err := d.DialTCP(ctx, tc.f)
		if tc.want == "reject" {
			if !errors.Is(err, outbound.ErrRejected) {
				t.Errorf("%+v: %v, want rejected", tc.f, err)
			}
			continue
		}
		ob := obs[tc.want]
		if len(ob.tcp) != before[tc.want]+1 {
			t.Errorf("%+v went elsewhere, want %s", tc.f, tc.want)
			continue
		}
		if got := ob.tcp[len(ob.tcp)-1]; got.Addr != tc.f.Dst || got.Domain != tc.domain {
			t.Errorf("%+v: outbound got %+v, want domain %q", tc.f, got, tc.domain)
		}
	}
}

func quicInitial(t *testing.T) []byte {
	t.Helper()
	raw, err := os.ReadFile("../sniff/testdata/rfc9001-a2-client-initial.hex")
	if err != nil {
		t.Fatal(err)
	}
	var digits strings.Builder
	for _, line := range strings.Split(string(raw), "\n") {
		if !strings.HasPrefix(line, "#") {
			digits.WriteString(strings.Join(strings.Fields(line), ""))
		}
	}
	b, err := hex.DecodeString(digits.String())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRouteUDPFlowKeepsItsFirstRoute(t *testing.T) {
	d, _ := newTestDispatcher(t, []route.RuleSpec{
		{Domain: []string{"example.com"}, Outbound: "proxy"},
		{Proto: route.ProtoUDP, Port: []route.PortRange{{Lo: 9, Hi: 9}}, Outbound: "reject"},
	}, names{})
	quicDst := netip.MustParseAddrPort("198.19.5.5:443")
	r := d.Route(client, quicDst, quicInitial(t)) // names example.com
	if d.Outbound(r).Name() != "proxy" {
		t.Fatalf("QUIC Initial for example.com routed to %s", d.Outbound(r).Name())
	}
	if r2 := d.Route(client, quicDst, []byte{0x40, 1, 2, 3}); r2 != r { // short header: no name
		t.Errorf("the flow's next datagram went to route %d, its first to %d", r2, r)
	}
	if r3 := d.Route(otherCli, quicDst, []byte{0x40, 1, 2, 3}); d.Outbound(r3).Name() != "direct" {
		t.Errorf("another client's unnamed flow went to %s", d.Outbound(r3).Name())
	}
	if r4 := d.Route(client, netip.MustParseAddrPort("198.19.5.5:9"), []byte("x")); r4 != udp.RouteReject {
		t.Errorf("udp/9 got route %d, want RouteReject", r4)
	}
	if _, err := d.OpenUpstream(context.Background(), client, r); !errors.Is(err, errFake) {
		t.Errorf("OpenUpstream on the proxy route: %v", err)
	}
}

func TestRouteWithoutDomainRulesNeedsNoCache(t *testing.T) {
	d, _ := newTestDispatcher(t, []route.RuleSpec{
		{Dst: []netip.Prefix{netip.MustParsePrefix("198.19.9.0/24")}, Outbound: "proxy"},
	}, nil)
	if d.flows != nil {
		t.Fatal("flow cache without domain rules")
	}
	if r := d.Route(client, netip.MustParseAddrPort("198.19.9.1:53"), nil); d.Outbound(r).Name() != "proxy" {
		t.Errorf("routed to %s", d.Outbound(r).Name())
	}
	if d.SniffTCP() {
		t.Error("SniffTCP without domain rules")
	}
}

func TestNewRefusesUnknownOutbound(t *testing.T) {
	table, _ := route.Compile([]route.RuleSpec{{Port: []route.PortRange{{Lo: 1, Hi: 1}}, Outbound: "nowhere"}}, "direct")
	_, err := New(Config{Table: table, Outbounds: map[string]outbound.Outbound{"direct": &fakeOutbound{name: "direct"}}}, nil)
	if err == nil || !strings.Contains(err.Error(), "nowhere") {
		t.Errorf("New: %v, want an error naming the outbound", err)
	}
}

func TestFlowCacheBounded(t *testing.T) {
	c := newFlowCache(32)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 1000 {
		c.put(flowKey{netip.AddrPortFrom(client.Addr(), uint16(i)), client}, 1, now)
	}
	n := 0
	for i := range c.shards {
		n += len(c.shards[i].m)
	}
	if n > 32 {
		t.Errorf("%d flows cached, bound 32", n)
	}
}

func TestPreviousKeepsRouteNumbers(t *testing.T) {
	d1, _ := newTestDispatcher(t, []route.RuleSpec{
		{Dst: []netip.Prefix{netip.MustParsePrefix("198.19.1.0/24")}, Outbound: "proxy"},
	}, nil)
	proxy1 := d1.byName["proxy"]
	table, err := route.Compile([]route.RuleSpec{
		{Dst: []netip.Prefix{netip.MustParsePrefix("198.19.2.0/24")}, Outbound: "reject"},
		{Dst: []netip.Prefix{netip.MustParsePrefix("198.19.1.0/24")}, Outbound: "proxy"},
	}, "direct")
	if err != nil {
		t.Fatal(err)
	}
	rej, _ := outbound.New(outbound.Config{Name: "reject", Type: outbound.TypeReject})
	newProxy := &fakeOutbound{name: "proxy"}
	d2, err := New(Config{Table: table, Previous: d1, Outbounds: map[string]outbound.Outbound{
		"direct": &fakeOutbound{name: "direct"}, "proxy": newProxy, "reject": rej}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if d2.byName["proxy"] != proxy1 || d2.Outbound(proxy1) != newProxy {
		t.Errorf("proxy moved from route %d to %d", proxy1, d2.byName["proxy"])
	}
	if r := d2.Route(client, netip.MustParseAddrPort("198.19.2.2:53"), nil); r != udp.RouteReject {
		t.Errorf("new reject rule: route %d", r)
	}
}
