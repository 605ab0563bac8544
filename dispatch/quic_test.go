package dispatch

import (
	"errors"
	"fmt"
	"net/netip"
	"testing"

	"github.com/gatewayd/gatewayd/route"
	"github.com/gatewayd/gatewayd/sniff"
	"github.com/gatewayd/gatewayd/udp"
)

// splitHello is a strict fake of a QUIC sniffer for a ClientHello in two
// Initials: the first datagram is incomplete, the second names the server.
// Any other call fails the test.
type splitHello struct {
	t    *testing.T
	name string
	fed  int
}

func (s *splitHello) Feed(p []byte) (string, error) {
	s.fed++
	switch {
	case s.fed == 1 && string(p) == "initial-1":
		return "", sniff.ErrNeedMore
	case s.fed == 2 && string(p) == "initial-2":
		return s.name, nil
	}
	s.t.Errorf("sniffer fed %q as datagram %d", p, s.fed)
	return "", errors.New("unexpected datagram")
}

func TestRouteHoldsASplitClientHello(t *testing.T) {
	d, _ := newTestDispatcher(t, []route.RuleSpec{{Domain: []string{"example.com"}, Outbound: "proxy"}}, names{})
	d.quic.newFeeder = func() helloFeeder { return &splitHello{t: t, name: "example.com"} }
	quicDst := netip.MustParseAddrPort("198.19.5.5:443")
	if r := d.Route(client, quicDst, []byte("initial-1")); r != udp.RouteHold {
		t.Fatalf("first Initial of a split ClientHello: route %d, want RouteHold", r)
	}
	r := d.Route(client, quicDst, []byte("initial-2"))
	if r < 0 || d.Outbound(r).Name() != "proxy" {
		t.Fatalf("second Initial: route %d, want the proxy (example.com)", r)
	}
	if again := d.Route(client, quicDst, []byte("short header")); again != r {
		t.Errorf("the flow's next datagram went to route %d, want %d", again, r)
	}
	if n := d.quic.pending(); n != 0 {
		t.Errorf("%d flows still pending", n)
	}
}

// The relay gives up waiting (a nil datagram): the flow is routed without
// a name, and its sniffer is forgotten.
func TestRouteDecidesAHeldFlowOnNil(t *testing.T) {
	d, _ := newTestDispatcher(t, []route.RuleSpec{{Domain: []string{"example.com"}, Outbound: "proxy"}}, names{})
	d.quic.newFeeder = func() helloFeeder { return &splitHello{t: t, name: "example.com"} }
	quicDst := netip.MustParseAddrPort("198.19.5.5:443")
	if r := d.Route(client, quicDst, []byte("initial-1")); r != udp.RouteHold {
		t.Fatalf("route %d, want RouteHold", r)
	}
	r := d.Route(client, quicDst, nil)
	if r < 0 || d.Outbound(r).Name() != "direct" {
		t.Fatalf("decided without a name: route %d, want direct", r)
	}
	if n := d.quic.pending(); n != 0 {
		t.Errorf("%d flows still pending", n)
	}
}

// Beyond maxQUICPending waiting flows, a new one is routed on its first
// datagram instead of being held.
func TestRouteBoundsPendingQUICFlows(t *testing.T) {
	d, _ := newTestDispatcher(t, []route.RuleSpec{{Domain: []string{"example.com"}, Outbound: "proxy"}}, names{})
	d.quic.newFeeder = func() helloFeeder { return &splitHello{t: t, name: "example.com"} }
	dst := netip.MustParseAddrPort("198.19.5.5:443")
	for i := range maxQUICPending {
		c := netip.MustParseAddrPort(fmt.Sprintf("198.18.%d.%d:4000", i/250, 1+i%250))
		if r := d.Route(c, dst, []byte("initial-1")); r != udp.RouteHold {
			t.Fatalf("flow %d: route %d, want RouteHold", i, r)
		}
	}
	if r := d.Route(client, dst, []byte("initial-1")); r == udp.RouteHold {
		t.Fatal("a flow beyond the bound was held")
	}
	if n := d.quic.pending(); n != maxQUICPending {
		t.Errorf("%d pending, want %d", n, maxQUICPending)
	}
}

// With the real sniffer, a datagram that is no QUIC Initial is routed at
// once: only an Initial with part of a ClientHello is held.
func TestRouteDoesNotHoldNonQUIC(t *testing.T) {
	d, _ := newTestDispatcher(t, []route.RuleSpec{{Domain: []string{"example.com"}, Outbound: "proxy"}}, names{})
	if r := d.Route(client, netip.MustParseAddrPort("198.19.5.5:443"), []byte("not quic at all")); r == udp.RouteHold || r < 0 {
		t.Errorf("route %d for a non-QUIC datagram to port 443", r)
	}
	if n := d.quic.pending(); n != 0 {
		t.Errorf("%d flows pending", n)
	}
}

// pending is the number of flows waiting for more of their ClientHello.
func (q *quicFlows) pending() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.m)
}
