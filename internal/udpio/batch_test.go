package udpio

import (
	"bytes"
	"context"
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

// recvAll reads n datagrams from c (a receive buffer big enough for them
// all is the caller's business).
func recvAll(t testing.TB, c *net.UDPConn, n int) ([][]byte, []netip.AddrPort) {
	t.Helper()
	var ps [][]byte
	var froms []netip.AddrPort
	buf := make([]byte, MaxDatagram)
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
	buf := make([]byte, MaxDatagram)
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
	rb := NewRecvBatch(32, oobSize)
	_ = ln.SetReadDeadline(time.Now().Add(failAfter))
	for got := 0; got < rounds*len(sizes); {
		if err := rb.Read(rc); err != nil {
			t.Fatalf("after %d datagrams: %v", got, err)
		}
		if rb.Len() < 1 || rb.Len() > 32 {
			t.Fatalf("read returned %d datagrams", rb.Len())
		}
		for i := range rb.Len() {
			tag := got + i
			want := payload(tag, sizes[tag%len(sizes)])
			if !bytes.Equal(rb.Datagram(i), want) {
				t.Fatalf("datagram %d: %d bytes, want %d", tag, len(rb.Datagram(i)), len(want))
			}
			if from, ok := rb.Source(i); !ok || from != localAddr(senders[tag%2]) {
				t.Errorf("datagram %d from %v (%v), want %s", tag, from, ok, localAddr(senders[tag%2]))
			}
			if rb.Flags(i) != 0 {
				t.Errorf("datagram %d: flags %#x", tag, rb.Flags(i))
			}
			if dst, err := OrigDst(rb.Control(i)); err != nil || dst != localAddr(ln) {
				t.Errorf("datagram %d: original destination %v, %v; want %s", tag, dst, err, localAddr(ln))
			}
		}
		got += rb.Len()
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
	rs := NewSock(sender)
	if rs == nil || rs.inet6 {
		t.Fatalf("Sock = %+v", rs)
	}
	gso := rs.gsoMax.Load() > 0
	sb := NewSendBatch(32)
	sb.Begin(rs)
	var toA, toB [][]byte
	add := func(p []byte, c *net.UDPConn, list *[][]byte) {
		if !sb.Add(p, localAddr(c)) {
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
	if err := sb.Flush(); err != nil {
		t.Fatal(err)
	}
	if sb.sentN != len(toA)+len(toB) || sb.dropped != 0 {
		t.Errorf("sent %d, dropped %d; want %d sent", sb.sentN, sb.dropped, len(toA)+len(toB))
	}
	checkReceived(t, a, toA, localAddr(sender))
	checkReceived(t, b, toB, localAddr(sender))
	if gso && rs.gsoMax.Load() != MaxDatagram {
		t.Errorf("gsoMax = %d after a good send", rs.gsoMax.Load())
	}
}

// A GSO send the kernel refuses is sent again one datagram at a time, and
// runs that long are not coalesced on that socket again.
func TestSendBatchGSOFallback(t *testing.T) {
	sender := listenUDP(t, "127.0.0.1:0")
	rs := NewSock(sender)
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
	sb := NewSendBatch(16)
	for round, size := range []int{1200, 1200, 1000} {
		sb.Begin(rs)
		for i := range 4 {
			p := payload(round*4+i, size)
			sb.Add(p, localAddr(dst))
			want = append(want, p)
		}
		if err := sb.Flush(); err != nil {
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
	rs := NewSock(sender)
	rs.gsoMax.Store(0)
	dst := listenUDP(t, "127.0.0.1:0")
	bigBuffers(t, dst)
	sb := NewSendBatch(8)
	sb.Begin(rs)
	var want [][]byte
	for i := range 8 {
		p := payload(i, 1200)
		sb.Add(p, localAddr(dst))
		want = append(want, p)
	}
	if sb.nmsg != 8 {
		t.Errorf("%d messages, want 8", sb.nmsg)
	}
	if err := sb.Flush(); err != nil || sb.sentN != 8 {
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
	rs6 := NewSock(s6)
	if rs6 == nil || !rs6.inet6 {
		t.Fatalf("Sock = %+v, want AF_INET6", rs6)
	}
	d6, d4 := listenUDP(t, "[::1]:0"), listenUDP(t, "127.0.0.1:0")
	sb := NewSendBatch(4)
	sb.Begin(rs6)
	if !sb.Add([]byte("six"), localAddr(d6)) || !sb.Add([]byte("four"), localAddr(d4)) {
		t.Fatal("add refused a destination")
	}
	if err := sb.Flush(); err != nil || sb.sentN != 2 {
		t.Fatalf("flush: %v, sent %d", err, sb.sentN)
	}
	expectDatagram(t, d6, "six")
	expectDatagram(t, d4, "four")

	sb.Begin(NewSock(listenUDP(t, "127.0.0.1:0")))
	if sb.Add([]byte("x"), localAddr(d6)) {
		t.Error("an IPv4 socket took an IPv6 destination")
	}
}

// sockaddr round trips, with the scope of link-local addresses.
func TestSockaddrRoundTrip(t *testing.T) {
	for _, s := range []string{"198.51.100.7:53", "[2001:db8::1]:443", "[fe80::1%7]:9"} {
		ap := netip.MustParseAddrPort(s)
		var b Sockaddr
		n, ok := EncodeSockaddr(&b, ap, ap.Addr().Is6())
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
	var b Sockaddr
	n, _ := EncodeSockaddr(&b, ap, true)
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

// Put lays datagrams out as Read would, for tests of what consumes
// batches; what does not fit is refused.
func TestRecvBatchPut(t *testing.T) {
	rb := NewRecvBatch(2, oobSize)
	from4 := netip.MustParseAddrPort("198.18.0.1:1000")
	from6 := netip.MustParseAddrPort("[2001:2::1]:2000")
	dst := netip.MustParseAddrPort("198.18.0.53:53")
	if !rb.Put(0, []byte("one"), from4, origDstCmsg(dst)) || !rb.Put(1, nil, from6, nil) {
		t.Fatal("Put refused")
	}
	if rb.Len() != 2 {
		t.Fatalf("Len = %d, want 2", rb.Len())
	}
	if got := string(rb.Datagram(0)); got != "one" || len(rb.Datagram(1)) != 0 {
		t.Errorf("datagrams %q, %q", got, rb.Datagram(1))
	}
	if src, ok := rb.Source(0); !ok || src != from4 {
		t.Errorf("source 0 = %v, %v", src, ok)
	}
	if src, ok := rb.Source(1); !ok || src != from6 {
		t.Errorf("source 1 = %v, %v", src, ok)
	}
	if got, err := OrigDst(rb.Control(0)); err != nil || got != dst {
		t.Errorf("OrigDst = %v, %v", got, err)
	}
	if len(rb.Control(1)) != 0 || rb.Flags(0) != 0 {
		t.Errorf("control %d bytes, flags %#x", len(rb.Control(1)), rb.Flags(0))
	}
	if rb.Put(2, nil, from4, nil) || rb.Put(0, make([]byte, MaxDatagram+1), from4, nil) ||
		rb.Put(0, nil, from4, make([]byte, oobSize+1)) {
		t.Error("Put took what does not fit")
	}
	if b := rb.Buffer(1); len(b) != MaxDatagram || cap(b) != MaxDatagram {
		t.Errorf("Buffer: len %d, cap %d", len(b), cap(b))
	}
}

// A flush on a closed socket leaves what it did not send in Unsent, in
// order; a good flush leaves nothing there.
func TestSendBatchUnsent(t *testing.T) {
	sender := listenUDP(t, "127.0.0.1:0")
	rs := NewSock(sender)
	dst := localAddr(listenUDP(t, "127.0.0.1:0"))
	sb := NewSendBatch(4)
	sb.Begin(rs)
	if sb.Sock() != rs || !sb.Empty() {
		t.Fatal("Begin: wrong socket, or not empty")
	}
	ps := [][]byte{payload(0, 100), payload(1, 100), payload(2, 50)}
	for _, p := range ps {
		sb.Add(p, dst)
	}
	if err := sb.Flush(); err != nil || len(sb.Unsent()) != 0 {
		t.Fatalf("Flush: %v, %d unsent", err, len(sb.Unsent()))
	}
	if n, bytes := sb.Sent(); n != 3 || bytes != 250 || sb.Dropped() != 0 {
		t.Errorf("Sent = %d, %d; Dropped = %d", n, bytes, sb.Dropped())
	}
	_ = sender.Close()
	sb.Begin(rs)
	for _, p := range ps {
		sb.Add(p, dst)
	}
	if err := sb.Flush(); err == nil {
		t.Fatal("Flush on a closed socket succeeded")
	}
	un := sb.Unsent()
	if len(un) != len(ps) {
		t.Fatalf("%d unsent, want %d", len(un), len(ps))
	}
	for i, q := range un {
		if !bytes.Equal(q.Payload, ps[i]) || q.Dst != dst {
			t.Errorf("unsent %d: %d bytes to %s", i, len(q.Payload), q.Dst)
		}
	}
}

// Receiving and sending a batch allocate nothing.
func TestBatchIOAllocs(t *testing.T) {
	ln := listenUDP(t, "127.0.0.1:0")
	bigBuffers(t, ln)
	rc, err := ln.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	rs := NewSock(listenUDP(t, "127.0.0.1:0"))
	rb, sb := NewRecvBatch(8, oobSize), NewSendBatch(8)
	p := payload(1, 1200)
	_ = ln.SetReadDeadline(time.Now().Add(failAfter))
	round := func() {
		sb.Begin(rs)
		for range 8 {
			sb.Add(p, localAddr(ln))
		}
		if err := sb.Flush(); err != nil {
			t.Fatal(err)
		}
		for got := 0; got < 8; got += rb.Len() {
			if err := rb.Read(rc); err != nil {
				t.Fatal(err)
			}
			for i := range rb.Len() {
				if _, ok := rb.Source(i); !ok {
					t.Fatal("no source")
				}
			}
		}
	}
	round()
	if n := testing.AllocsPerRun(100, round); n != 0 {
		t.Errorf("%v allocations per batch sent and received", n)
	}
}
