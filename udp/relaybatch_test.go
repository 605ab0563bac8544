package udp

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/internal/udpio"
)

// payload is n bytes that tell datagram tag apart from every other.
func payload(tag, n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(tag*7 + i)
	}
	if n >= 2 {
		p[0], p[1] = byte(tag>>8), byte(tag)
	}
	return p
}

// testDatagram is one datagram put into a receive batch by hand. dst is
// its original destination; zero in a session reader's batch, which has
// no room for control messages.
type testDatagram struct {
	p         []byte
	from, dst netip.AddrPort
}

// fillBatch lays datagrams out in rb as recvmmsg would have, with the
// original destination control message the kernel attaches.
func fillBatch(t testing.TB, rb *udpio.RecvBatch, ds []testDatagram) {
	t.Helper()
	for i, d := range ds {
		var oob []byte
		if d.dst.IsValid() {
			oob = origDstCmsg(d.dst)
		}
		if !rb.Put(i, d.p, d.from, oob) {
			t.Fatalf("datagram %d does not fit the batch", i)
		}
	}
}

// recvAll reads n datagrams from c (a receive buffer big enough for them
// all is the caller's business).
func recvAll(t testing.TB, c *net.UDPConn, n int) ([][]byte, []netip.AddrPort) {
	t.Helper()
	var ps [][]byte
	var froms []netip.AddrPort
	buf := make([]byte, udpio.MaxDatagram)
	_ = c.SetReadDeadline(time.Now().Add(failAfter))
	for range n {
		m, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("after %d of %d datagrams: %v", len(ps), n, err)
		}
		ps = append(ps, append([]byte(nil), buf[:m]...))
		froms = append(froms, from)
	}
	return ps, froms
}

// expectNothingMore fails if c receives another datagram soon.
func expectNothingMore(t testing.TB, c *net.UDPConn) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	buf := make([]byte, udpio.MaxDatagram)
	if n, from, err := c.ReadFromUDPAddrPort(buf); err == nil {
		t.Errorf("unexpected datagram of %d bytes from %s", n, from)
	}
}

func bigBuffers(t testing.TB, c *net.UDPConn) {
	t.Helper()
	if err := c.SetReadBuffer(8 << 20); err != nil {
		t.Fatal(err)
	}
}

// checkReceived compares what c got with want, in order.
func checkReceived(t *testing.T, c *net.UDPConn, want [][]byte, from netip.AddrPort) {
	t.Helper()
	got, froms := recvAll(t, c, len(want))
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Errorf("datagram %d: got %d bytes %x..., want %d bytes %x...", i, len(got[i]), head(got[i]), len(want[i]), head(want[i]))
		}
		if froms[i] != from {
			t.Errorf("datagram %d from %s, want %s", i, froms[i], from)
		}
	}
	expectNothingMore(t, c)
}

func head(p []byte) []byte { return p[:min(len(p), 4)] }

// batchServer is a server with direct upstreams whose sessions for
// clients are open, ready for batches. The clients are addresses nobody
// listens on: nothing is sent to them here.
func batchServer(t testing.TB, clients []netip.AddrPort, sink netip.AddrPort) *Server {
	t.Helper()
	s := New(Config{Dialer: DirectDialer{}}, nil)
	s.raw = nil // bound (faked) reply sockets only
	s.openReply = func(netip.AddrPort) (*net.UDPConn, error) {
		return net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	}
	t.Cleanup(func() { s.Shutdown(0) })
	for _, c := range clients {
		s.handleDatagram([]byte("open"), origDstCmsg(sink), 0, c)
	}
	waitFor(t, "sessions ready", func() bool {
		for _, c := range clients {
			ss, ok := s.sessions.get(sessionKey{client: c})
			if !ok || !ss.ready.Load() {
				return false
			}
		}
		return true
	})
	return s
}

// The listener's batch path: datagrams of several clients, interleaved,
// leave from each client's own upstream, in each client's order, through
// sendmmsg/GSO, and are counted.
func TestRelayBatch(t *testing.T) {
	checkGoroutines(t)
	a, b := listenUDP(t, "127.0.0.1:0"), listenUDP(t, "127.0.0.1:0")
	bigBuffers(t, a)
	bigBuffers(t, b)
	c1 := netip.MustParseAddrPort("127.0.0.1:9")
	c2 := netip.MustParseAddrPort("127.0.0.2:9")
	s := batchServer(t, []netip.AddrPort{c1, c2}, localAddr(a))
	recvAll(t, a, 2) // the datagrams that opened the sessions
	ss1, _ := s.sessions.get(sessionKey{client: c1})
	ss2, _ := s.sessions.get(sessionKey{client: c2})
	if ss1.raw == nil || ss2.raw == nil {
		t.Fatal("direct upstreams have no descriptor for batched sends")
	}

	u := newUpBatch()
	var ds []testDatagram
	var toA1, toA2, toB1 [][]byte
	add := func(p []byte, from netip.AddrPort, to *net.UDPConn, list *[][]byte) {
		ds = append(ds, testDatagram{p, from, localAddr(to)})
		*list = append(*list, p)
	}
	for i := range 5 {
		add(payload(i, 1200), c1, a, &toA1)
	}
	add(payload(5, 1200), c2, a, &toA2)
	add(payload(6, 1200), c1, a, &toA1)
	add(payload(7, 60000), c1, b, &toB1)
	for i := range 4 {
		add(payload(8+i, 900), c1, b, &toB1)
	}
	add(payload(12, 1200), c2, a, &toA2)
	fillBatch(t, u.rb, ds)
	before := s.Stats()
	s.relayBatch(u)

	got, froms := recvAll(t, a, len(toA1)+len(toA2))
	var got1, got2 [][]byte
	for i, p := range got {
		switch froms[i] {
		case upstreamAddr(t, ss1):
			got1 = append(got1, p)
		case upstreamAddr(t, ss2):
			got2 = append(got2, p)
		default:
			t.Fatalf("datagram from %s, not from a session's upstream", froms[i])
		}
	}
	for _, c := range []struct {
		got, want [][]byte
	}{{got1, toA1}, {got2, toA2}} {
		if len(c.got) != len(c.want) {
			t.Fatalf("got %d datagrams, want %d", len(c.got), len(c.want))
		}
		for i := range c.want {
			if !bytes.Equal(c.got[i], c.want[i]) {
				t.Errorf("datagram %d out of order or damaged", i)
			}
		}
	}
	checkReceived(t, b, toB1, upstreamAddr(t, ss1))
	st := s.Stats()
	if n := st.DatagramsUp - before.DatagramsUp; n != uint64(len(ds)) {
		t.Errorf("DatagramsUp grew by %d, want %d", n, len(ds))
	}
	var bytesWant uint64
	for _, d := range ds {
		bytesWant += uint64(len(d.p))
	}
	if n := st.BytesUp - before.BytesUp; n != bytesWant {
		t.Errorf("BytesUp grew by %d, want %d", n, bytesWant)
	}
	if st.DropSendUp != 0 || st.SessionsTotal != 2 {
		t.Errorf("Stats = %+v", st)
	}
}

// upstreamAddr is where a loopback receiver sees the session's upstream
// (bound to the wildcard address) send from.
func upstreamAddr(t testing.TB, ss *session) netip.AddrPort {
	t.Helper()
	c, ok := ss.up.(*net.UDPConn)
	if !ok {
		t.Fatalf("upstream is a %T", ss.up)
	}
	return netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), localAddr(c).Port())
}

// A batch whose session was closed meanwhile goes to a new session: the
// one-datagram path takes over what the closed upstream refused.
func TestRelayBatchClosedSession(t *testing.T) {
	checkGoroutines(t)
	a := listenUDP(t, "127.0.0.1:0")
	bigBuffers(t, a)
	c1 := netip.MustParseAddrPort("127.0.0.1:9")
	s := batchServer(t, []netip.AddrPort{c1}, localAddr(a))
	recvAll(t, a, 1)
	ss, _ := s.sessions.get(sessionKey{client: c1})
	ss.close(reasonEvicted, nil) // still in the table

	u := newUpBatch()
	var ds []testDatagram
	var want [][]byte
	for i := range 4 {
		p := payload(i, 100)
		ds = append(ds, testDatagram{p, c1, localAddr(a)})
		want = append(want, p)
	}
	fillBatch(t, u.rb, ds)
	s.relayBatch(u)
	got, froms := recvAll(t, a, len(want))
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Errorf("datagram %d out of order or damaged", i)
		}
		if froms[i] == upstreamAddr(t, ss) {
			t.Errorf("datagram %d left from the closed session's socket", i)
		}
	}
	if st := s.Stats(); st.SessionsTotal != 2 || st.DropSendUp != 0 || st.DropQueue != 0 {
		t.Errorf("Stats = %+v, want a second session and no drops", st)
	}
}

// A download burst reaches the client complete and in order, from the
// remote's address, read and sent in batches; the reader's batches go
// back to the pool when the upstream is quiet.
func TestDownloadBurst(t *testing.T) {
	checkGoroutines(t)
	const linger = 50 * time.Millisecond
	h := startHarnessWith(t, Config{}, nil, func(s *Server) { s.linger = linger })
	client := listenUDP(t, "127.0.0.1:0")
	bigBuffers(t, client)
	sendTo(t, client, h.addr, "ping")
	mapping := expectDatagram(t, h.backend, "ping")
	other := listenUDP(t, "127.0.0.1:0")

	const n = 2000
	var want [][]byte
	for i := range n {
		p := payload(i, 1200)
		if i%500 == 499 {
			p = payload(i, 60000)
		}
		from := h.backend
		if i%100 == 99 {
			from = other // another remote now and then
			p = []byte(fmt.Sprintf("other %d", i))
		}
		if _, err := from.WriteToUDPAddrPort(p, mapping); err != nil {
			t.Fatal(err)
		}
		want = append(want, p)
		if i%50 == 49 {
			// Bursts of 50: the upstream socket's buffer holds them even
			// when this machine is busy; a lost datagram fails the test.
			time.Sleep(2 * time.Millisecond)
		}
	}
	got, froms := recvAll(t, client, n)
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("datagram %d out of order or damaged: %d bytes %x..., want %d bytes %x...",
				i, len(got[i]), head(got[i]), len(want[i]), head(want[i]))
		}
	}
	// The harness's reply sockets are plain loopback ones: the remote
	// shows as which socket sent, one per remote.
	if froms[0] == froms[99] {
		t.Errorf("datagrams of two remotes left from one reply socket %s", froms[0])
	}
	if st := h.s.Stats(); st.DatagramsDown != n || st.DropSendDown != 0 {
		t.Errorf("Stats = %+v, want %d down", st, n)
	}
	waitFor(t, "batches returned", func() bool { return h.s.bufsHeld.Load() == 0 })
}

// The batched paths allocate nothing per batch once sessions and reply
// sockets exist.
func TestBatchAllocs(t *testing.T) {
	sink := listenUDP(t, "127.0.0.1:0")
	c1 := netip.MustParseAddrPort("127.0.0.1:9")
	c2 := netip.MustParseAddrPort("127.0.0.2:9")
	s := batchServer(t, []netip.AddrPort{c1, c2}, localAddr(sink))
	u := newUpBatch()
	var ds []testDatagram
	for i := range listenerBatch {
		c := c1
		if i%8 == 7 {
			c = c2
		}
		ds = append(ds, testDatagram{payload(i, 1200), c, localAddr(sink)})
	}
	fillBatch(t, u.rb, ds)
	if n := testing.AllocsPerRun(200, func() { s.relayBatch(u) }); n != 0 {
		t.Errorf("relayBatch: %v allocations per batch", n)
	}

	ss, _ := s.sessions.get(sessionKey{client: c1})
	db := newDownBatch(sessionBatch)
	var slot replySlot
	remote := localAddr(sink)
	var down []testDatagram
	for i := range sessionBatch {
		down = append(down, testDatagram{p: payload(i, 1200), from: remote})
	}
	fillBatch(t, db.rb, down)
	s.deliverBatch(ss, &slot, db, s.now()) // opens the reply socket
	if n := testing.AllocsPerRun(200, func() { s.deliverBatch(ss, &slot, db, s.now()) }); n != 0 {
		t.Errorf("deliverBatch: %v allocations per batch", n)
	}
	if st := s.Stats(); st.DropSendUp != 0 || st.DropSendDown != 0 {
		t.Errorf("Stats = %+v", st)
	}
}
