package udp

import (
	"cmp"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"
)

func TestSessionsListsRelayedSession(t *testing.T) {
	checkGoroutines(t)
	h := startHarness(t, Config{}, nil)
	if got := h.s.Sessions(); len(got) != 0 {
		t.Fatalf("Sessions before any datagram = %+v, want none", got)
	}
	before := time.Now()
	client := listenUDP(t, "127.0.0.1:0")
	sendTo(t, client, h.addr, "ping")
	sendTo(t, h.backend, expectDatagram(t, h.backend, "ping"), "pong!")
	expectDatagram(t, client, "pong!")

	// The reply can reach the client before the relay has counted it.
	var got []SessionInfo
	waitFor(t, "the reply counted", func() bool {
		got = h.s.Sessions()
		return len(got) == 1 && got[0].DatagramsDown == 1
	})
	ss := got[0]
	want := SessionInfo{
		Client: localAddr(client), FirstDst: h.addr, Dsts: 1, Route: 0,
		Start: ss.Start, LastActive: ss.LastActive, Connected: true,
		BytesUp: 4, BytesDown: 5, DatagramsUp: 1, DatagramsDown: 1,
	}
	if ss != want {
		t.Errorf("session = %+v\nwant      %+v", ss, want)
	}
	if ss.Start.Before(before) || ss.LastActive.Before(ss.Start) || ss.LastActive.After(time.Now()) {
		t.Errorf("session times: start %v, last active %v; want %v <= start <= last active <= now", ss.Start, ss.LastActive, before)
	}
}

func TestSessionsByRouteAndDestinations(t *testing.T) {
	checkGoroutines(t)
	d := &routeDialer{{}, {}}
	s := New(Config{Dialer: d, Router: portRouter{}}, testLogger(t))
	t.Cleanup(func() { s.Shutdown(0) })
	client := clientN(7)
	dns1 := netip.MustParseAddrPort("198.19.0.53:53")
	dns2 := netip.MustParseAddrPort("198.19.0.54:53")
	web := netip.MustParseAddrPort("198.19.0.80:443")
	for _, m := range []struct {
		dst netip.AddrPort
		p   string
	}{{dns1, "q1"}, {web, "web"}, {dns2, "q22"}, {dns1, "q333"}} {
		s.handleDatagram([]byte(m.p), origDstCmsg(m.dst), 0, client)
	}
	waitFor(t, "datagrams sent", func() bool { return s.Stats().DatagramsUp == 4 })
	got := s.Sessions()
	slices.SortFunc(got, func(a, b SessionInfo) int { return cmp.Compare(a.Route, b.Route) })
	if len(got) != 2 {
		t.Fatalf("Sessions = %+v, want one per route", got)
	}
	for i, w := range []struct {
		first      netip.AddrPort
		dsts       int
		up, upDgms uint64
	}{{web, 1, 3, 1}, {dns1, 2, 9, 3}} {
		g := got[i]
		if g.Client != client || g.Route != i || g.FirstDst != w.first || g.Dsts != w.dsts ||
			g.BytesUp != w.up || g.DatagramsUp != w.upDgms || !g.Connected {
			t.Errorf("route %d session = %+v; want client %s, first dst %s, %d dsts, %d bytes in %d datagrams up, connected",
				i, g, client, w.first, w.dsts, w.up, w.upDgms)
		}
	}
}

// A session whose upstream is still opening is listed, with the
// destination its queued datagram is for.
func TestSessionsListsOpeningSession(t *testing.T) {
	checkGoroutines(t)
	d := &memDialer{gate: make(chan struct{})}
	s := newMemServer(t, Config{}, d)
	client := clientN(1)
	s.handleDatagram([]byte("first"), origDstCmsg(remoteDst), 0, client)
	got := s.Sessions()
	if len(got) != 1 {
		t.Fatalf("Sessions = %+v, want the opening session", got)
	}
	if g := got[0]; g.Connected || g.FirstDst != remoteDst || g.Dsts != 1 || g.BytesUp != 0 {
		t.Errorf("opening session = %+v; want not connected, first dst %s, nothing sent yet", g, remoteDst)
	}
	close(d.gate)
	waitFor(t, "the queued datagram sent", func() bool {
		got := s.Sessions()
		return len(got) == 1 && got[0].Connected && got[0].BytesUp == uint64(len("first"))
	})
}

// TestSessionsConcurrent lists sessions while sessions are created and
// evicted; the race detector checks the listing's reads.
func TestSessionsConcurrent(t *testing.T) {
	checkGoroutines(t)
	const maxSessions, clients = 8, 200
	s := newMemServer(t, Config{MaxSessions: maxSessions}, &memDialer{})
	stop := make(chan struct{})
	var lister sync.WaitGroup
	lister.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			for _, ss := range s.Sessions() {
				if !ss.Client.IsValid() || ss.FirstDst != remoteDst {
					t.Errorf("listed session %+v: want a client and first dst %s", ss, remoteDst)
				}
			}
		}
	})
	for i := range clients {
		s.handleDatagram([]byte("x"), origDstCmsg(remoteDst), 0, clientN(i))
	}
	close(stop)
	lister.Wait()
	if n := len(s.Sessions()); n > maxSessions {
		t.Errorf("%d sessions listed, want at most MaxSessions %d", n, maxSessions)
	}
}
