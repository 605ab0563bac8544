package udp

import (
	"context"
	"net/netip"
	"slices"
	"testing"
)

// portRouter routes by destination port: 53 on route 1, 9 rejected, the
// rest on route 0.
type portRouter struct{}

func (portRouter) Route(_, dst netip.AddrPort, _ []byte) int {
	switch dst.Port() {
	case 53:
		return 1
	case 9:
		return RouteReject
	}
	return 0
}

// routeDialer opens each route's upstreams with its own memDialer.
type routeDialer [2]*memDialer

func (d *routeDialer) OpenUpstream(ctx context.Context, client netip.AddrPort, route int) (Upstream, error) {
	return d[route].OpenUpstream(ctx, client, route)
}

func TestRouterSplitsSessionsByRoute(t *testing.T) {
	checkGoroutines(t)
	d := &routeDialer{{}, {}}
	s := New(Config{Dialer: d, Router: portRouter{}}, testLogger(t))
	t.Cleanup(func() { s.Shutdown(0) })
	client := clientN(1)
	dns := netip.MustParseAddrPort("198.19.0.53:53")
	web := netip.MustParseAddrPort("198.19.0.80:443")
	discard := netip.MustParseAddrPort("198.19.0.9:9")

	for _, m := range []struct {
		dst netip.AddrPort
		p   string
	}{{dns, "q1"}, {web, "w1"}, {discard, "x"}, {dns, "q2"}, {web, "w2"}} {
		s.handleDatagram([]byte(m.p), origDstCmsg(m.dst), 0, client)
	}
	waitFor(t, "both upstreams", func() bool { return d[0].upstream(client) != nil && d[1].upstream(client) != nil })
	waitFor(t, "datagrams sent", func() bool { return s.Stats().DatagramsUp == 4 })
	got0, dsts0 := d[0].upstream(client).sent()
	got1, dsts1 := d[1].upstream(client).sent()
	if !slices.Equal(got0, []string{"w1", "w2"}) || !slices.Equal(dsts0, []netip.AddrPort{web, web}) {
		t.Errorf("route 0 sent %v to %v", got0, dsts0)
	}
	if !slices.Equal(got1, []string{"q1", "q2"}) || !slices.Equal(dsts1, []netip.AddrPort{dns, dns}) {
		t.Errorf("route 1 sent %v to %v", got1, dsts1)
	}
	st := s.Stats()
	if st.SessionsActive != 2 || st.DropRejected != 1 {
		t.Errorf("stats %+v, want 2 sessions and 1 rejected", st)
	}
}
