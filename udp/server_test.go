package udp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/internal/fdbudget"

	"github.com/gatewayd/gatewayd/internal/listen"
	"github.com/gatewayd/gatewayd/internal/udpio"
	"golang.org/x/sys/unix"
)

// The relay is full cone: one upstream per client for every destination,
// and any remote that sends to it reaches the client, from its own address.
func TestRelayFullCone(t *testing.T) {
	checkGoroutines(t)
	h := startHarness(t, Config{}, nil)
	client := listenUDP(t, "127.0.0.1:0")

	sendTo(t, client, h.addr, "ping")
	if dst := next(t, h.dsts, "upstream send"); dst != h.addr {
		t.Errorf("upstream asked to send to %s, want the original destination %s", dst, h.addr)
	}
	mapping := expectDatagram(t, h.backend, "ping")
	sendTo(t, h.backend, mapping, "pong")
	expectDatagram(t, client, "pong")
	if r := next(t, h.remotes, "reply socket"); r != localAddr(h.backend) {
		t.Errorf("reply socket bound for %s, want the backend %s", r, localAddr(h.backend))
	}

	// A remote the client never contacted finds it through the mapping.
	stranger := listenUDP(t, "127.0.0.1:0")
	sendTo(t, stranger, mapping, "hello")
	expectDatagram(t, client, "hello")
	if r := next(t, h.remotes, "reply socket"); r != localAddr(stranger) {
		t.Errorf("reply socket bound for %s, want the stranger %s", r, localAddr(stranger))
	}

	// Later datagrams use the same mapping.
	sendTo(t, client, h.addr, "again")
	if from := expectDatagram(t, h.backend, "again"); from != mapping {
		t.Errorf("second datagram left from %s, want the session's mapping %s", from, mapping)
	}
	// Another client gets its own.
	other := listenUDP(t, "127.0.0.1:0")
	sendTo(t, other, h.addr, "other")
	if from := expectDatagram(t, h.backend, "other"); from == mapping {
		t.Errorf("a second client shares the mapping %s", from)
	}

	// A datagram can arrive before its sender has counted it.
	want := Stats{
		SessionsActive: 2, SessionsTotal: 2, ReplySockets: 2,
		DatagramsUp: 3, DatagramsDown: 2, BytesUp: 14, BytesDown: 9,
	}
	var got Stats
	waitFor(t, "counters", func() bool { got = h.s.Stats(); return got.DatagramsUp == 3 && got.DatagramsDown == 2 })
	if got != want {
		t.Errorf("Stats = %+v\nwant    %+v", got, want)
	}
}

func TestSessionIdleExpiry(t *testing.T) {
	checkGoroutines(t)
	var logs logBuffer
	h := startHarness(t, Config{IdleTimeout: 250 * time.Millisecond}, logs.logger())
	client := listenUDP(t, "127.0.0.1:0")
	sendTo(t, client, h.addr, "ping")
	sendTo(t, h.backend, expectDatagram(t, h.backend, "ping"), "pong")
	expectDatagram(t, client, "pong")

	waitFor(t, "idle expiry", func() bool {
		st := h.s.Stats()
		return st.SessionsActive == 0 && st.SessionsExpired == 1 && st.ReplySockets == 0
	})
	waitFor(t, "session log line", func() bool { return strings.Contains(logs.String(), "udp session closed") })
	line := logs.String()
	for _, want := range []string{
		"client=" + localAddr(client).String(), "dst=" + h.addr.String(), "dsts=1",
		"up=1", "up_bytes=4", "down=1", "down_bytes=4", "reason=idle", "duration=",
	} {
		if !strings.Contains(line, want) {
			t.Errorf("session log lacks %q:\n%s", want, line)
		}
	}

	// The client comes back: a new session.
	sendTo(t, client, h.addr, "back")
	expectDatagram(t, h.backend, "back")
	if st := h.s.Stats(); st.SessionsTotal != 2 || st.SessionsActive != 1 {
		t.Errorf("after return: %+v, want a second session", st)
	}
}

// A session reader gives its receive buffer back once the upstream is
// quiet, and still gets the next datagram (the bufferless wait).
func TestReaderReleasesBufferWhenQuiet(t *testing.T) {
	checkGoroutines(t)
	const linger = 20 * time.Millisecond
	h := startHarnessWith(t, Config{}, nil, func(s *Server) { s.linger = linger })
	client := listenUDP(t, "127.0.0.1:0")
	sendTo(t, client, h.addr, "ping")
	mapping := expectDatagram(t, h.backend, "ping")
	for _, msg := range []string{"pong", "after a pause", "and another"} {
		sendTo(t, h.backend, mapping, msg)
		expectDatagram(t, client, msg)
		waitFor(t, "buffer returned", func() bool { return h.s.bufsHeld.Load() == 0 })
		time.Sleep(2 * linger)
	}
	// A burst is read with one batch (small or big).
	for range 3 {
		sendTo(t, h.backend, mapping, "burst")
	}
	for range 3 {
		expectDatagram(t, client, "burst")
	}
	if n := h.s.bufsHeld.Load(); n > sessionBatch {
		t.Errorf("%d buffers held by one session, more than one batch", n)
	}
	waitFor(t, "buffer returned", func() bool { return h.s.bufsHeld.Load() == 0 })
}

// memUpstream is an in-memory Upstream: writes are recorded, reads block
// until Close.
type memUpstream struct {
	closed chan struct{}
	once   sync.Once
	open   *atomic.Int64

	mu     sync.Mutex
	writes []string
	dsts   []netip.AddrPort
}

func (m *memUpstream) WriteToUDPAddrPort(b []byte, dst netip.AddrPort) (int, error) {
	select {
	case <-m.closed:
		return 0, net.ErrClosed
	default:
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.writes = append(m.writes, string(b))
	m.dsts = append(m.dsts, dst)
	return len(b), nil
}

func (m *memUpstream) ReadFromUDPAddrPort([]byte) (int, netip.AddrPort, error) {
	<-m.closed
	return 0, netip.AddrPort{}, net.ErrClosed
}

func (m *memUpstream) SetReadDeadline(time.Time) error { return nil }

func (m *memUpstream) Close() error {
	m.once.Do(func() {
		close(m.closed)
		m.open.Add(-1)
	})
	return nil
}

// memDialer opens memUpstreams and keeps count of the open ones.
type memDialer struct {
	open   atomic.Int64
	opened atomic.Int64
	mu     sync.Mutex
	ups    map[netip.AddrPort]*memUpstream // latest per client
	gate   chan struct{}                   // if set, opens wait for it
	fail   error
}

func (d *memDialer) OpenUpstream(ctx context.Context, client netip.AddrPort, _ int) (Upstream, error) {
	if d.gate != nil {
		select {
		case <-d.gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if d.fail != nil {
		return nil, d.fail
	}
	u := &memUpstream{closed: make(chan struct{}), open: &d.open}
	d.open.Add(1)
	d.opened.Add(1)
	d.mu.Lock()
	if d.ups == nil {
		d.ups = map[netip.AddrPort]*memUpstream{}
	}
	d.ups[client] = u
	d.mu.Unlock()
	return u, nil
}

func (d *memDialer) upstream(client netip.AddrPort) *memUpstream {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.ups[client]
}

func (u *memUpstream) sent() ([]string, []netip.AddrPort) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.writes...), append([]netip.AddrPort(nil), u.dsts...)
}

// newMemServer is a Server without listeners, fed by handleDatagram.
func newMemServer(t *testing.T, cfg Config, d *memDialer) *Server {
	t.Helper()
	cfg.Dialer = d
	s := New(cfg, testLogger(t))
	s.raw = nil // bound (faked) reply sockets only
	s.openReply = func(netip.AddrPort) (*net.UDPConn, error) { return nil, errors.New("no reply sockets here") }
	t.Cleanup(func() { s.Shutdown(0) })
	return s
}

func clientN(i int) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)}), uint16(10000+i%50000))
}

var remoteDst = netip.MustParseAddrPort("198.19.0.53:53")

// A burst of clients far beyond MaxSessions: every new client gets a
// session, the table never exceeds the bound, the evicted sessions' sockets
// close.
func TestSessionEvictionUnderBurst(t *testing.T) {
	checkGoroutines(t)
	const maxSessions, burst = 8, 2000
	d := &memDialer{}
	s := newMemServer(t, Config{MaxSessions: maxSessions}, d)
	oob := origDstCmsg(remoteDst)
	for i := range burst {
		s.handleDatagram([]byte("x"), oob, 0, clientN(i))
		if n := s.Stats().SessionsActive; n > maxSessions {
			t.Fatalf("after %d clients: %d sessions > %d", i+1, n, maxSessions)
		}
		if _, ok := s.sessions.get(sessionKey{client: clientN(i)}); !ok {
			t.Fatalf("client %d got no session", i)
		}
	}
	st := s.Stats()
	if st.SessionsTotal != burst || st.SessionsEvicted != burst-maxSessions || st.SessionsActive != maxSessions {
		t.Errorf("Stats = %+v, want %d total, %d evicted, %d active", st, burst, burst-maxSessions, maxSessions)
	}
	waitFor(t, "evicted upstreams closed", func() bool { return d.open.Load() <= maxSessions })
	for i := burst - maxSessions; i < burst; i++ {
		if _, ok := s.sessions.get(sessionKey{client: clientN(i)}); !ok {
			t.Errorf("recent client %d evicted", i)
		}
	}
	s.Shutdown(0)
	if n := d.open.Load(); n != 0 {
		t.Errorf("%d upstreams open after Shutdown", n)
	}
}

// A session touched by traffic survives a burst that evicts quiet ones.
func TestEvictionSparesBusySession(t *testing.T) {
	checkGoroutines(t)
	const maxSessions = 4
	d := &memDialer{}
	s := newMemServer(t, Config{MaxSessions: maxSessions}, d)
	oob := origDstCmsg(remoteDst)
	busy := clientN(0)
	for i := range 100 {
		s.handleDatagram([]byte("x"), oob, 0, clientN(i+1))
		s.handleDatagram([]byte("x"), oob, 0, busy)
	}
	if st := s.Stats(); st.SessionsTotal != 101 {
		t.Errorf("SessionsTotal = %d, want 101 (busy client kept its session)", st.SessionsTotal)
	}
}

// Drops are counted by reason, and none creates a session.
func TestDrops(t *testing.T) {
	checkGoroutines(t)
	d := &memDialer{}
	s := newMemServer(t, Config{}, d)
	listener := netip.MustParseAddrPort("127.0.0.1:15001")
	s.guard.Store(listen.NewGuard([]netip.AddrPort{listener}, nil))
	client := clientN(1)
	ok := origDstCmsg(remoteDst)
	for _, tc := range []struct {
		name   string
		oob    []byte
		flags  int
		client netip.AddrPort
	}{
		{"ctrunc", ok, unix.MSG_CTRUNC, client},
		{"trunc", ok, unix.MSG_TRUNC, client},
		{"no cmsg", nil, 0, client},
		{"garbage cmsg", []byte{1, 2, 3}, 0, client},
		{"loop: listener", origDstCmsg(listener), 0, client},
		{"loop: loopback on listener port", origDstCmsg(netip.MustParseAddrPort("127.0.0.9:15001")), 0, client},
		{"family", origDstCmsg(netip.MustParseAddrPort("[2001:2::53]:53")), 0, client},
	} {
		s.handleDatagram([]byte(tc.name), tc.oob, tc.flags, tc.client)
	}
	want := Stats{DropCtrunc: 1, DropTruncated: 1, DropNoOrigDst: 2, DropLoop: 2, DropFamily: 1}
	if got := s.Stats(); got != want {
		t.Errorf("Stats = %+v\nwant    %+v", got, want)
	}
	if d.opened.Load() != 0 {
		t.Error("a dropped datagram opened an upstream")
	}
}

// While the upstream is opening, datagrams queue by bytes (up to
// maxPendingBytes) and go out in order, before any later one. Many small
// datagrams fit; what exceeds the budget is dropped and counted.
func TestPendingQueue(t *testing.T) {
	checkGoroutines(t)
	d := &memDialer{gate: make(chan struct{})}
	s := newMemServer(t, Config{}, d)
	client := clientN(1)
	oob := origDstCmsg(remoteDst)
	// 500 small datagrams (a DHT node greeting 500 remotes) fit, then
	// 1000-byte ones until the budget is spent.
	const small, big = 500, 100
	var want []string
	var charged int64
	for i := range small + big {
		msg := fmt.Sprintf("%04d", i)
		if i >= small {
			msg += strings.Repeat("x", 996)
		}
		s.handleDatagram([]byte(msg), oob, 0, client)
		if cost := pendingCost([]byte(msg)); charged+cost <= maxPendingBytes {
			charged += cost
			want = append(want, msg)
		}
	}
	if len(want) <= small {
		t.Fatalf("test broken: only %d datagrams fit the budget", len(want))
	}
	queued := uint64(len(want))
	if st := s.Stats(); st.DropQueue != small+big-queued || st.DatagramsUp != 0 {
		t.Errorf("while opening: %+v, want %d queue drops, nothing sent", st, small+big-queued)
	}
	if got := s.pendingBytes.Load(); got != charged {
		t.Errorf("pending bytes %d, want %d", got, charged)
	}
	close(d.gate)
	waitFor(t, "queue flush", func() bool { return s.Stats().DatagramsUp == queued })
	if got := s.pendingBytes.Load(); got != 0 {
		t.Errorf("pending bytes %d after the flush, want 0", got)
	}
	s.handleDatagram([]byte("late"), oob, 0, client)
	want = append(want, "late")
	got, dsts := d.upstream(client).sent()
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("upstream got %d datagrams, want %d in order", len(got), len(want))
	}
	for _, dst := range dsts {
		if dst != remoteDst {
			t.Errorf("sent to %s, want %s", dst, remoteDst)
		}
	}
}

// A single datagram of the largest size queues too: an empty queue takes
// one datagram whatever its length.
func TestPendingQueueTakesOneHugeDatagram(t *testing.T) {
	checkGoroutines(t)
	d := &memDialer{gate: make(chan struct{})}
	s := newMemServer(t, Config{}, d)
	huge := make([]byte, udpio.MaxDatagram-28)
	s.handleDatagram(huge, origDstCmsg(remoteDst), 0, clientN(1))
	s.handleDatagram(huge, origDstCmsg(remoteDst), 0, clientN(1))
	if st := s.Stats(); st.DropQueue != 1 {
		t.Errorf("DropQueue = %d, want 1 (the second)", st.DropQueue)
	}
	close(d.gate)
	waitFor(t, "queue flush", func() bool { return s.Stats().DatagramsUp == 1 })
}

// All queues together stay within maxPendingTotal: once it is spent, new
// sessions start with nothing queued, and the budget comes back as the
// upstreams open (or the sessions close).
func TestPendingQueueGlobalBound(t *testing.T) {
	checkGoroutines(t)
	d := &memDialer{gate: make(chan struct{})}
	s := newMemServer(t, Config{}, d)
	oob := origDstCmsg(remoteDst)
	payload := make([]byte, 1024-pendingOverhead) // costs exactly 1 KiB
	const perSession = maxPendingBytes / 1024
	const fill = maxPendingTotal / maxPendingBytes // sessions that fill the budget
	const clients = fill + 10
	for c := range clients {
		for range perSession {
			s.handleDatagram(payload, oob, 0, clientN(c))
		}
		if got := s.pendingBytes.Load(); got > maxPendingTotal {
			t.Fatalf("after client %d: %d bytes pending, more than %d", c, got, maxPendingTotal)
		}
	}
	if st := s.Stats(); st.DropQueue != (clients-fill)*perSession || st.SessionsTotal != clients {
		t.Errorf("Stats = %+v, want %d queue drops and %d sessions", st, (clients-fill)*perSession, clients)
	}
	close(d.gate)
	waitFor(t, "queues flushed", func() bool { return s.Stats().DatagramsUp == fill*perSession })
	if got := s.pendingBytes.Load(); got != 0 {
		t.Errorf("pending bytes %d after the flush, want 0", got)
	}
}

func TestUpstreamOpenFailure(t *testing.T) {
	checkGoroutines(t)
	d := &memDialer{fail: errors.New("no sockets left")}
	s := newMemServer(t, Config{}, d)
	s.handleDatagram([]byte("x"), origDstCmsg(remoteDst), 0, clientN(1))
	waitFor(t, "failed session gone", func() bool { return s.Stats().SessionsActive == 0 })
	if st := s.Stats(); st.DropDial != 1 || st.SessionsTotal != 1 {
		t.Errorf("Stats = %+v, want 1 dial drop", st)
	}
}

// A session closed between lookup and send (sweeper, eviction, failure)
// is replaced and the datagram still goes out.
func TestClosedSessionIsReplaced(t *testing.T) {
	checkGoroutines(t)
	d := &memDialer{}
	s := newMemServer(t, Config{}, d)
	client := clientN(1)
	oob := origDstCmsg(remoteDst)
	s.handleDatagram([]byte("first"), oob, 0, client)
	waitFor(t, "first send", func() bool { return s.Stats().DatagramsUp == 1 })
	old, _ := s.sessions.get(sessionKey{client: client})
	old.close(reasonIdle, nil) // closed, but still in the table
	s.handleDatagram([]byte("second"), oob, 0, client)
	waitFor(t, "second send", func() bool { return s.Stats().DatagramsUp == 2 })
	if st := s.Stats(); st.SessionsTotal != 2 || st.DropSendUp != 0 {
		t.Errorf("Stats = %+v, want a second session and no drop", st)
	}
	if cur, _ := s.sessions.get(sessionKey{client: client}); cur == old {
		t.Error("closed session still in the table")
	}
}

// Sessions and reply sockets that expire give their descriptors back.
func TestDescriptorsReturnToBaseline(t *testing.T) {
	checkGoroutines(t)
	const clients, backends = 300, 4
	var bes []netip.AddrPort
	var echoes sync.WaitGroup
	t.Cleanup(echoes.Wait) // after the backends close: cleanups run last-in first-out
	for range backends {
		be := listenUDP(t, "127.0.0.1:0")
		bes = append(bes, localAddr(be))
		echoes.Go(func() {
			buf := make([]byte, 64)
			for {
				n, from, err := be.ReadFromUDPAddrPort(buf)
				if err != nil {
					return
				}
				_, _ = be.WriteToUDPAddrPort(buf[:n], from)
			}
		})
	}
	s := New(Config{Dialer: DirectDialer{}}, testLogger(t))
	s.raw = nil // bound (faked) reply sockets only
	s.openReply = func(netip.AddrPort) (*net.UDPConn, error) {
		return net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	}
	defer s.Shutdown(0)
	baseline := fdCount(t)

	// Clients are loopback addresses nobody listens on: replies to them
	// are sent and discarded.
	for i := range clients {
		client := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 1, byte(i % 250)}), uint16(20000+i))
		s.handleDatagram([]byte("x"), origDstCmsg(bes[i%backends]), 0, client)
	}
	waitFor(t, "echoes delivered", func() bool { return s.Stats().DatagramsDown == clients })
	if peak := fdCount(t); peak < baseline+clients {
		t.Errorf("%d descriptors with %d sessions, baseline %d: sessions hold no sockets?", peak, clients, baseline)
	}
	if st := s.Stats(); st.ReplySockets != backends {
		t.Errorf("ReplySockets = %d, want one per backend (%d)", st.ReplySockets, backends)
	}

	s.sweep(s.now() + int64(time.Hour))
	waitFor(t, "descriptors back to baseline", func() bool { return fdCount(t) <= baseline })
	if st := s.Stats(); st.SessionsActive != 0 || st.SessionsExpired != clients || st.ReplySockets != 0 {
		t.Errorf("after expiry: %+v", st)
	}
}

// Shutdown stops receiving at once but lets a session get its reply.
func TestShutdownDrainsReplies(t *testing.T) {
	checkGoroutines(t)
	var logs logBuffer
	h := startHarness(t, Config{}, logs.logger())
	client := listenUDP(t, "127.0.0.1:0")
	sendTo(t, client, h.addr, "ping")
	mapping := expectDatagram(t, h.backend, "ping")

	done := make(chan struct{})
	start := time.Now()
	go func() {
		h.s.Shutdown(failAfter)
		close(done)
	}()
	waitFor(t, "listeners closed", h.s.listenersStopped)
	sendTo(t, h.backend, mapping, "late pong")
	expectDatagram(t, client, "late pong")
	select {
	case <-done:
	case <-time.After(failAfter):
		t.Fatal("Shutdown did not return once the session was quiet")
	}
	if took := time.Since(start); took >= failAfter {
		t.Errorf("Shutdown took the whole grace (%v)", took)
	}
	if err := next(t, h.served, "Serve to return"); err != nil {
		t.Errorf("Serve = %v, want nil", err)
	}
	h.served <- nil // for the harness cleanup
	if !strings.Contains(logs.String(), "reason=shutdown") {
		t.Errorf("no shutdown log line:\n%s", logs.String())
	}
	if st := h.s.Stats(); st.SessionsActive != 0 || st.ReplySockets != 0 {
		t.Errorf("after Shutdown: %+v", st)
	}
}

func TestServeAndListenErrors(t *testing.T) {
	s := New(Config{}, nil)
	if err := s.Serve(); err == nil || !strings.Contains(err.Error(), "no listeners") {
		t.Errorf("Serve without listeners = %v", err)
	}
	if err := s.Listen(context.Background()); err == nil || !strings.Contains(err.Error(), "no UDP listen addresses") {
		t.Errorf("Listen without addresses = %v", err)
	}
	s.Shutdown(0)
	if err := s.Serve(); err != nil {
		t.Errorf("Serve after Shutdown = %v, want nil", err)
	}
	if err := s.addListeners(); err == nil {
		t.Error("adding listeners after Shutdown succeeded")
	}
}

func TestDefaults(t *testing.T) {
	s := New(Config{BypassMark: 0x2}, nil)
	defer s.Shutdown(0)
	if s.cfg.IdleTimeout != DefaultIdleTimeout || s.cfg.MaxSessions != DefaultMaxSessions ||
		s.cfg.MaxReplySockets != defaultRepliesPerSession*DefaultMaxSessions {
		t.Errorf("defaults: %+v", s.cfg)
	}
	if _, err := s.cfg.Dialer.OpenUpstream(context.Background(), netip.MustParseAddrPort("198.18.0.2:5000"), 0); !errors.Is(err, errNoDialer) {
		t.Errorf("default dialer opened an upstream (%v): the daemon's dispatcher must be given", err)
	}
}

func TestSpoofable(t *testing.T) {
	router := netip.MustParseAddr("198.18.0.1")
	s := New(Config{IsLocal: func(a netip.Addr) bool { return a == router }}, nil)
	defer s.Shutdown(0)
	for a, want := range map[string]bool{
		"198.19.0.53": true, "2001:2::53": true,
		"127.0.0.1": false, "::1": false, "224.0.0.251": false, "ff02::fb": false,
		"0.0.0.0": false, "::": false, "198.18.0.1": false,
	} {
		if got := s.spoofable(netip.MustParseAddr(a)); got != want {
			t.Errorf("spoofable(%s) = %v, want %v", a, got, want)
		}
	}
	// The production opener refuses before binding anything.
	rs, err := s.openReplySocket(netip.MustParseAddrPort("127.0.0.1:53"))
	if !errors.Is(err, errLocalSource) {
		t.Errorf("openReplySocket(loopback) = %v, %v; want errLocalSource", rs, err)
	}
	// And deliver counts it as such.
	ss := &session{client: clientN(1)}
	s.deliver(ss, &replySlot{}, []byte("x"), netip.MustParseAddrPort("[::ffff:198.18.0.1]:53"), 0)
	if st := s.Stats(); st.DropLocalSource != 1 || st.DropReplySocket != 0 || st.DatagramsDown != 0 {
		t.Errorf("Stats = %+v, want one local-source drop", st)
	}
}

// Without raw sockets (no CAP_NET_RAW, say) replies go by bound reply
// sockets; the failure is logged once and the open is not retried for
// every datagram.
func TestRawUnavailableFallsBackToBound(t *testing.T) {
	checkGoroutines(t)
	var logs logBuffer
	var opens atomic.Int64
	h := startHarnessWith(t, Config{}, logs.logger(), func(s *Server) {
		s.raw = newRawReplier(0)
		s.raw.open = func(bool, uint32) (*rawSender, error) {
			opens.Add(1)
			return nil, unix.EPERM
		}
	})
	client := listenUDP(t, "127.0.0.1:0")
	sendTo(t, client, h.addr, "ping")
	mapping := expectDatagram(t, h.backend, "ping")
	for i := range 5 {
		sendTo(t, h.backend, mapping, fmt.Sprint("pong ", i))
		expectDatagram(t, client, fmt.Sprint("pong ", i))
	}
	if n := opens.Load(); n != 1 {
		t.Errorf("raw sockets opened %d times, want 1 (then not before rawRetry)", n)
	}
	// The counters move after the send: the client can have the 5th first.
	waitFor(t, "5 datagrams counted down", func() bool { return h.s.Stats().DatagramsDown == 5 })
	if st := h.s.Stats(); st.DatagramsDownRaw != 0 || st.DatagramsDown != 5 || st.ReplySockets != 1 {
		t.Errorf("Stats = %+v, want 5 datagrams down by one bound socket", st)
	}
	if n := strings.Count(logs.String(), "udp raw reply sockets failed"); n != 1 {
		t.Errorf("raw failure logged %d times, want once:\n%s", n, logs.String())
	}
}

// At the descriptor budget a new session takes over the descriptor of the
// least recently active one (evicted), so UDP never holds more than it had
// when the budget ran out; with no session to take from, the datagram is
// dropped and counted.
func TestSessionsAtTheFDBudget(t *testing.T) {
	checkGoroutines(t)
	const budget, burst = 5, 200
	fds := fdbudget.New(budget)
	d := &memDialer{}
	s := newMemServer(t, Config{MaxSessions: 1000, FDs: fds}, d)
	oob := origDstCmsg(remoteDst)
	for i := range burst {
		s.handleDatagram([]byte("x"), oob, 0, clientN(i))
		if used := fds.Stats().Used; used > budget {
			t.Fatalf("after %d clients: %d descriptors used, budget %d", i+1, used, budget)
		}
		if _, ok := s.sessions.get(sessionKey{client: clientN(i)}); !ok {
			t.Fatalf("client %d got no session", i)
		}
	}
	if st := s.Stats(); st.SessionsActive != budget || st.SessionsEvicted != burst-budget || st.DropFDs != 0 {
		t.Errorf("Stats = %+v, want %d active, %d evicted, no fd drops", st, budget, burst-budget)
	}
	waitFor(t, "evicted upstreams closed", func() bool { return d.open.Load() <= budget })

	// TCP took what UDP gave back: nothing left to take over.
	s.Shutdown(0)
	if used := fds.Stats().Used; used != 0 {
		t.Fatalf("%d descriptors still held after Shutdown", used)
	}
	s2 := newMemServer(t, Config{MaxSessions: 1000, FDs: fdbudget.New(0)}, &memDialer{})
	s2.handleDatagram([]byte("x"), oob, 0, clientN(0))
	if st := s2.Stats(); st.SessionsActive != 0 || st.DropFDs != 1 {
		t.Errorf("with an empty budget: Stats = %+v, want no session and 1 fd drop", st)
	}
}
