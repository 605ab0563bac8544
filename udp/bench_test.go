package udp

import (
	"net"
	"net/netip"
	"testing"
)

// hotPath is a server with one live session whose upstream is a real
// socket sending to a sink that is never read (the kernel drops what does
// not fit), and a reply socket towards a client address nobody listens on.
type hotPath struct {
	s      *Server
	ss     *session
	client netip.AddrPort
	dst    netip.AddrPort
	oob    []byte
	slot   replySlot
	p      []byte
}

func newHotPath(tb testing.TB) *hotPath {
	tb.Helper()
	sink := listenUDP(tb, "127.0.0.1:0")
	h := &hotPath{
		client: netip.MustParseAddrPort("127.0.0.1:9"), // discard: nobody listens
		dst:    localAddr(sink),
		p:      make([]byte, 1200),
	}
	h.oob = origDstCmsg(h.dst)
	h.s = New(Config{Dialer: DirectDialer{}}, nil)
	h.s.raw = nil // bound (faked) reply sockets only
	h.s.openReply = func(netip.AddrPort) (*net.UDPConn, error) {
		return net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	}
	tb.Cleanup(func() { h.s.Shutdown(0) })
	h.s.handleDatagram(h.p, h.oob, 0, h.client)
	waitFor(tb, "session ready", func() bool {
		ss, ok := h.s.sessions.get(sessionKey{client: h.client})
		h.ss = ss
		return ok && ss.ready.Load()
	})
	h.s.deliver(h.ss, &h.slot, h.p, h.dst, h.s.now()) // opens the reply socket
	return h
}

// The per-datagram paths allocate nothing once the session and the reply
// socket exist.
func TestHotPathAllocs(t *testing.T) {
	h := newHotPath(t)
	up := testing.AllocsPerRun(1000, func() { h.s.handleDatagram(h.p, h.oob, 0, h.client) })
	down := testing.AllocsPerRun(1000, func() { h.s.deliver(h.ss, &h.slot, h.p, h.dst, h.s.now()) })
	if up != 0 || down != 0 {
		t.Errorf("allocations per datagram: client->remote %v, remote->client %v; want 0", up, down)
	}
	if st := h.s.Stats(); st.DropSendUp != 0 || st.DropSendDown != 0 || st.SessionsTotal != 1 {
		t.Errorf("Stats = %+v", st)
	}
}

// BenchmarkHotPath is the listener's work per client datagram: decode the
// original destination, guard, look up the session, send.
func BenchmarkHotPath(b *testing.B) {
	h := newHotPath(b)
	b.ReportAllocs()
	b.SetBytes(int64(len(h.p)))
	for b.Loop() {
		h.s.handleDatagram(h.p, h.oob, 0, h.client)
	}
}

// routeZero is a Router that sends every datagram on route 0, as the
// daemon's dispatcher does for a config without rules.
type routeZero struct{}

func (routeZero) Route(netip.AddrPort, netip.AddrPort, []byte) int { return 0 }

// BenchmarkHotPathRouted is BenchmarkHotPath with a Router set, as every
// datagram is routed since the one flow path: the flow-hold lookup and the
// router's call on top of the hot path (the dispatcher's own lookup is
// dispatch's BenchmarkRouteNoRules).
func BenchmarkHotPathRouted(b *testing.B) {
	h := newHotPath(b)
	h.s.SetRouting(routeZero{}, nil)
	b.ReportAllocs()
	b.SetBytes(int64(len(h.p)))
	for b.Loop() {
		h.s.handleDatagram(h.p, h.oob, 0, h.client)
	}
}

// BenchmarkHotPathParallel has many clients on many goroutines, as with
// several listeners, to show the sharded table does not serialize them.
func BenchmarkHotPathParallel(b *testing.B) {
	h := newHotPath(b)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			h.s.handleDatagram(h.p, h.oob, 0, h.client)
		}
	})
}

// BenchmarkDeliver is a session reader's work per remote datagram.
func BenchmarkDeliver(b *testing.B) {
	h := newHotPath(b)
	b.ReportAllocs()
	b.SetBytes(int64(len(h.p)))
	for b.Loop() {
		h.s.deliver(h.ss, &h.slot, h.p, h.dst, h.s.now())
	}
}

// BenchmarkLookup is the session table alone.
func BenchmarkLookup(b *testing.B) {
	tab := newTable[netip.AddrPort, *fakeEntry](hashAddrPort)
	for i := range 4096 {
		tab.add(key(i), newFake(i, 0))
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, ok := tab.get(key(i & 4095)); !ok {
			b.Fatal("missing")
		}
		i++
	}
}

// BenchmarkRelayBatch is the listener's work per recvmmsg batch of
// listenerBatch datagrams of two clients (decode, guard, lookup, group,
// sendmmsg/GSO); ns/datagram is the per-datagram share.
func BenchmarkRelayBatch(b *testing.B) {
	sink := listenUDP(b, "127.0.0.1:0")
	c1 := netip.MustParseAddrPort("127.0.0.1:9")
	c2 := netip.MustParseAddrPort("127.0.0.2:9")
	s := batchServer(b, []netip.AddrPort{c1, c2}, localAddr(sink))
	u := newUpBatch()
	var ds []testDatagram
	for i := range listenerBatch {
		c := c1
		if i >= listenerBatch*3/4 {
			c = c2
		}
		ds = append(ds, testDatagram{payload(i, 1200), c, localAddr(sink)})
	}
	fillBatch(b, u.rb, ds)
	b.ReportAllocs()
	b.SetBytes(int64(1200 * listenerBatch))
	for b.Loop() {
		s.relayBatch(u)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*listenerBatch), "ns/datagram")
}

// BenchmarkDeliverBatch is a session reader's work per batch of
// sessionBatch datagrams from one remote (reply socket, sendmmsg/GSO).
func BenchmarkDeliverBatch(b *testing.B) {
	sink := listenUDP(b, "127.0.0.1:0")
	c1 := netip.MustParseAddrPort("127.0.0.1:9")
	s := batchServer(b, []netip.AddrPort{c1}, localAddr(sink))
	ss, _ := s.sessions.get(sessionKey{client: c1})
	db := newDownBatch(sessionBatch)
	var ds []testDatagram
	for i := range sessionBatch {
		ds = append(ds, testDatagram{p: payload(i, 1200), from: localAddr(sink)})
	}
	fillBatch(b, db.rb, ds)
	var slot replySlot
	b.ReportAllocs()
	b.SetBytes(int64(1200 * sessionBatch))
	for b.Loop() {
		s.deliverBatch(ss, &slot, db, s.now())
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*sessionBatch), "ns/datagram")
}
