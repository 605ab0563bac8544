package udp

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"
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

// testDatagram is one datagram put into a receive batch by hand.
type testDatagram struct {
	p         []byte
	from, dst netip.AddrPort
}

// fillBatch lays datagrams out in rb as recvmmsg would have, with the
// original destination control message the kernel attaches.
func fillBatch(t testing.TB, rb *recvBatch, ds []testDatagram) {
	t.Helper()
	if len(ds) > len(rb.msgs) {
		t.Fatalf("%d datagrams for a batch of %d", len(ds), len(rb.msgs))
	}
	for i, d := range ds {
		copy(rb.bufs[i*maxDatagram:], d.p)
		rb.msgs[i].Len = uint32(len(d.p))
		n, ok := encodeSockaddr(&rb.names[i], d.from, !d.from.Addr().Is4())
		if !ok {
			t.Fatalf("cannot encode %s", d.from)
		}
		h := &rb.msgs[i].Hdr
		h.Namelen, h.Flags = n, 0
		c := origDstCmsg(d.dst)
		copy(rb.oob[i*rb.oobLen:], c)
		h.SetControllen(len(c))
	}
	rb.n, rb.used = len(ds), len(ds)
}

// recvAll reads n datagrams from c (a receive buffer big enough for them
// all is the caller's business).
func recvAll(t testing.TB, c *net.UDPConn, n int) ([][]byte, []netip.AddrPort) {
	t.Helper()
	var ps [][]byte
	var froms []netip.AddrPort
	buf := make([]byte, maxDatagram)
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
	buf := make([]byte, maxDatagram)
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

// recvmmsg fills a batch from a real socket: payloads (empty and 60 KB
// ones too), sources and the kernel's original-destination messages.
func TestRecvBatchFromSocket(t *testing.T) {
	lc := net.ListenConfig{Control: sockoptRecvOrigDst}
	pc, err := lc.ListenPacket(context.Background(), "udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := pc.(*net.UDPConn)
	defer ln.Close()
	bigBuffers(t, ln)
	senders := []*net.UDPConn{listenUDP(t, "127.0.0.1:0"), listenUDP(t, "127.0.0.1:0")}
	sizes := []int{1200, 0, 60000, 1, 1200, 1472}
	const rounds = 10 // more than one batch
	for r := range rounds {
		for i, n := range sizes {
			c := senders[i%2]
			if _, err := c.WriteToUDPAddrPort(payload(r*len(sizes)+i, n), localAddr(ln)); err != nil {
				t.Fatal(err)
			}
		}
	}
	rc, err := ln.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	rb := newRecvBatch(listenerBatch, oobSize)
	_ = ln.SetReadDeadline(time.Now().Add(failAfter))
	for got := 0; got < rounds*len(sizes); {
		if err := rb.read(rc); err != nil {
			t.Fatalf("after %d datagrams: %v", got, err)
		}
		if rb.n < 1 || rb.n > listenerBatch {
			t.Fatalf("read returned %d datagrams", rb.n)
		}
		for i := range rb.n {
			tag := got + i
			want := payload(tag, sizes[tag%len(sizes)])
			if !bytes.Equal(rb.datagram(i), want) {
				t.Fatalf("datagram %d: %d bytes, want %d", tag, len(rb.datagram(i)), len(want))
			}
			if from, ok := rb.source(i); !ok || from != localAddr(senders[tag%2]) {
				t.Errorf("datagram %d from %v (%v), want %s", tag, from, ok, localAddr(senders[tag%2]))
			}
			if rb.flags(i) != 0 {
				t.Errorf("datagram %d: flags %#x", tag, rb.flags(i))
			}
			if dst, err := origDst(rb.control(i)); err != nil || dst != localAddr(ln) {
				t.Errorf("datagram %d: original destination %v, %v; want %s", tag, dst, err, localAddr(ln))
			}
		}
		got += rb.n
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

// A send batch coalesces runs of equal-size datagrams to one destination
// (GSO), and the receivers still get every datagram on its own, in order.
func TestSendBatchCoalesces(t *testing.T) {
	sender := listenUDP(t, "127.0.0.1:0")
	a, b := listenUDP(t, "127.0.0.1:0"), listenUDP(t, "127.0.0.1:0")
	bigBuffers(t, a)
	bigBuffers(t, b)
	rs := newRawSock(sender)
	if rs == nil || rs.inet6 {
		t.Fatalf("rawSock = %+v", rs)
	}
	gso := rs.gsoMax.Load() > 0
	sb := newSendBatch(32)
	sb.begin(rs)
	var toA, toB [][]byte
	add := func(p []byte, c *net.UDPConn, list *[][]byte) {
		if !sb.add(p, localAddr(c)) {
			t.Fatal("add refused an IPv4 destination")
		}
		*list = append(*list, p)
	}
	tag := 0
	next := func(n int) []byte { tag++; return payload(tag, n) }
	for range 5 {
		add(next(1200), a, &toA)
	}
	add(next(700), a, &toA) // ends the run
	for range 3 {
		add(next(1200), a, &toA)
	}
	add(next(1000), b, &toB)
	add(next(1000), b, &toB)
	add(next(0), b, &toB) // never coalesced
	add(next(1300), a, &toA)
	if gso {
		if sb.nmsg != 5 {
			t.Errorf("%d messages, want 5 (6+3 to a, 2+1 to b, 1 to a)", sb.nmsg)
		}
	} else {
		t.Log("no UDP GSO here: one message per datagram")
	}
	if err := sb.flush(); err != nil {
		t.Fatal(err)
	}
	if sb.sentN != len(toA)+len(toB) || sb.dropped != 0 {
		t.Errorf("sent %d, dropped %d; want %d sent", sb.sentN, sb.dropped, len(toA)+len(toB))
	}
	checkReceived(t, a, toA, localAddr(sender))
	checkReceived(t, b, toB, localAddr(sender))
	if gso && rs.gsoMax.Load() != maxDatagram {
		t.Errorf("gsoMax = %d after a good send", rs.gsoMax.Load())
	}
}

// A GSO send the kernel refuses is sent again one datagram at a time, and
// runs that long are not coalesced on that socket again.
func TestSendBatchGSOFallback(t *testing.T) {
	sender := listenUDP(t, "127.0.0.1:0")
	rs := newRawSock(sender)
	if rs == nil || rs.gsoMax.Load() == 0 {
		t.Skip("no UDP GSO here")
	}
	// Without UDP checksums the kernel refuses GSO (EINVAL), but sends
	// single datagrams.
	raw, _ := sender.SyscallConn()
	_ = raw.Control(func(fd uintptr) {
		if err := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_NO_CHECK, 1); err != nil {
			t.Fatal(err)
		}
	})
	dst := listenUDP(t, "127.0.0.1:0")
	bigBuffers(t, dst)
	var want [][]byte
	sb := newSendBatch(16)
	for round, size := range []int{1200, 1200, 1000} {
		sb.begin(rs)
		for i := range 4 {
			p := payload(round*4+i, size)
			sb.add(p, localAddr(dst))
			want = append(want, p)
		}
		if err := sb.flush(); err != nil {
			t.Fatal(err)
		}
		if sb.sentN != 4 || sb.dropped != 0 {
			t.Errorf("round %d: sent %d, dropped %d", round, sb.sentN, sb.dropped)
		}
		if got := rs.gsoMax.Load(); got != int32(size-1) {
			t.Errorf("round %d: gsoMax = %d, want %d", round, got, size-1)
		}
	}
	checkReceived(t, dst, want, localAddr(sender))

	// EIO (no checksum offload on the route) switches GSO off.
	rs.refuseGSO(unix.EIO, 500)
	if got := rs.gsoMax.Load(); got != 0 {
		t.Errorf("gsoMax = %d after EIO", got)
	}
}

// Without GSO every datagram is its own message, and flush still sends
// them in one call.
func TestSendBatchWithoutGSO(t *testing.T) {
	sender := listenUDP(t, "127.0.0.1:0")
	rs := newRawSock(sender)
	rs.gsoMax.Store(0)
	dst := listenUDP(t, "127.0.0.1:0")
	bigBuffers(t, dst)
	sb := newSendBatch(8)
	sb.begin(rs)
	var want [][]byte
	for i := range 8 {
		p := payload(i, 1200)
		sb.add(p, localAddr(dst))
		want = append(want, p)
	}
	if sb.nmsg != 8 {
		t.Errorf("%d messages, want 8", sb.nmsg)
	}
	if err := sb.flush(); err != nil || sb.sentN != 8 {
		t.Fatalf("flush: %v, sent %d", err, sb.sentN)
	}
	checkReceived(t, dst, want, localAddr(sender))
}

// An IPv6 socket reaches IPv6 destinations and IPv4 ones as mapped
// addresses; an IPv4 socket refuses IPv6 destinations.
func TestSendBatchFamilies(t *testing.T) {
	if !haveIPv6(t) {
		t.Skip("no IPv6")
	}
	s6 := listenUDP(t, "[::]:0")
	rs6 := newRawSock(s6)
	if rs6 == nil || !rs6.inet6 {
		t.Fatalf("rawSock = %+v, want AF_INET6", rs6)
	}
	d6, d4 := listenUDP(t, "[::1]:0"), listenUDP(t, "127.0.0.1:0")
	sb := newSendBatch(4)
	sb.begin(rs6)
	if !sb.add([]byte("six"), localAddr(d6)) || !sb.add([]byte("four"), localAddr(d4)) {
		t.Fatal("add refused a destination")
	}
	if err := sb.flush(); err != nil || sb.sentN != 2 {
		t.Fatalf("flush: %v, sent %d", err, sb.sentN)
	}
	expectDatagram(t, d6, "six")
	expectDatagram(t, d4, "four")

	sb.begin(newRawSock(listenUDP(t, "127.0.0.1:0")))
	if sb.add([]byte("x"), localAddr(d6)) {
		t.Error("an IPv4 socket took an IPv6 destination")
	}
}

// sockaddr round trips, with the scope of link-local addresses.
func TestSockaddrRoundTrip(t *testing.T) {
	for _, s := range []string{"198.51.100.7:53", "[2001:db8::1]:443", "[fe80::1%7]:9"} {
		ap := netip.MustParseAddrPort(s)
		var b sockaddrBuf
		n, ok := encodeSockaddr(&b, ap, ap.Addr().Is6())
		if !ok {
			t.Fatalf("encode %s", s)
		}
		got, ok := decodeSockaddr(&b, n)
		if !ok || got != ap {
			t.Errorf("%s: got %s (%v)", s, got, ok)
		}
	}
	// IPv4 on an IPv6 socket: mapped, and decoded unmapped.
	ap := netip.MustParseAddrPort("198.51.100.7:53")
	var b sockaddrBuf
	n, _ := encodeSockaddr(&b, ap, true)
	if n != unix.SizeofSockaddrInet6 {
		t.Errorf("length %d, want sockaddr_in6", n)
	}
	if got, _ := decodeSockaddr(&b, n); got != ap {
		t.Errorf("mapped: got %s", got)
	}
	if _, ok := decodeSockaddr(&b, 10); ok {
		t.Error("decoded a short sockaddr")
	}
}

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
		down = append(down, testDatagram{payload(i, 1200), remote, remote})
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
