package udp

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// holdRouter holds every datagram whose payload starts with "hold",
// rejects those starting with "drop" and routes the rest to route 1; asked
// with a nil datagram it answers final.
type holdRouter struct {
	final int // the answer to a nil datagram
	mu    sync.Mutex
	nils  int // nil-datagram calls
}

func (r *holdRouter) Route(_, _ netip.AddrPort, p []byte) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case p == nil:
		r.nils++
		return r.final
	case strings.HasPrefix(string(p), "hold"):
		return RouteHold
	case strings.HasPrefix(string(p), "drop"):
		return RouteReject
	}
	return 1
}

func (r *holdRouter) nilCalls() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.nils
}

func newHoldServer(t *testing.T, r Router) (*Server, *routeDialer) {
	t.Helper()
	d := &routeDialer{{}, {}}
	s := New(Config{Dialer: d, Router: r}, testLogger(t))
	t.Cleanup(func() { s.Shutdown(0) })
	return s, d
}

// A flow held for its first datagrams goes out in order once a later
// datagram of it gets a route; another flow of the same client is not held
// up meanwhile.
func TestHeldDatagramsLeaveFirst(t *testing.T) {
	checkGoroutines(t)
	s, d := newHoldServer(t, &holdRouter{final: 0})
	client, quic, other := clientN(1), netip.MustParseAddrPort("198.19.0.1:443"), netip.MustParseAddrPort("198.19.0.2:443")
	s.handleDatagram([]byte("hold-1"), origDstCmsg(quic), 0, client)
	s.handleDatagram([]byte("hold-2"), origDstCmsg(quic), 0, client)
	s.handleDatagram([]byte("x"), origDstCmsg(other), 0, client)
	s.handleDatagram([]byte("three"), origDstCmsg(quic), 0, client)
	waitFor(t, "four datagrams on route 1", func() bool { return s.Stats().DatagramsUp == 4 })
	got, dsts := d[1].upstream(client).sent()
	if want := []string{"x", "hold-1", "hold-2", "three"}; !slices.Equal(got, want) {
		t.Errorf("route 1 sent %q, want %q", got, want)
	}
	if !slices.Equal(dsts, []netip.AddrPort{other, quic, quic, quic}) {
		t.Errorf("to %v", dsts)
	}
	if n := int(s.holds.n.Load()); n != 0 {
		t.Errorf("%d flows still held", n)
	}
	if st := s.Stats(); st.FlowsHeld != 1 || st.HoldTimeouts != 0 {
		t.Errorf("stats: %d flows held, %d timeouts; want 1 and 0", st.FlowsHeld, st.HoldTimeouts)
	}
}

// A flow that never gets a route from its datagrams is decided after
// holdTimeout (a nil datagram) and its held datagrams follow that route,
// or count as rejected.
func TestHeldFlowDecidedAtTimeout(t *testing.T) {
	for _, final := range []int{0, RouteReject} {
		t.Run(fmt.Sprint("final=", final), func(t *testing.T) {
			checkGoroutines(t)
			r := &holdRouter{final: final}
			s, d := newHoldServer(t, r)
			client, dst := clientN(2), netip.MustParseAddrPort("198.19.0.1:443")
			s.handleDatagram([]byte("hold-a"), origDstCmsg(dst), 0, client)
			s.handleDatagram([]byte("hold-b"), origDstCmsg(dst), 0, client)
			if final == RouteReject {
				waitFor(t, "two rejected", func() bool { return s.Stats().DropRejected == 2 })
			} else {
				waitFor(t, "two sent on route 0", func() bool { return s.Stats().DatagramsUp == 2 })
				if got, _ := d[0].upstream(client).sent(); !slices.Equal(got, []string{"hold-a", "hold-b"}) {
					t.Errorf("route 0 sent %q", got)
				}
			}
			if n := r.nilCalls(); n != 1 {
				t.Errorf("router asked to decide %d times, want 1", n)
			}
			if n := s.Stats().HoldTimeouts; n != 1 {
				t.Errorf("%d hold timeouts counted, want 1", n)
			}
		})
	}
}

// A flow that keeps asking to be held is decided when its hold is full,
// and nothing it sent is lost or reordered.
func TestFullHoldDecides(t *testing.T) {
	checkGoroutines(t)
	r := &holdRouter{final: 0}
	s, d := newHoldServer(t, r)
	client, dst := clientN(3), netip.MustParseAddrPort("198.19.0.1:443")
	var want []string
	for i := range maxHeldDatagrams + 1 {
		p := fmt.Sprintf("hold-%d", i)
		want = append(want, p)
		s.handleDatagram([]byte(p), origDstCmsg(dst), 0, client)
	}
	waitFor(t, "all sent", func() bool { return s.Stats().DatagramsUp == uint64(len(want)) })
	if got, _ := d[0].upstream(client).sent(); !slices.Equal(got, want) {
		t.Errorf("route 0 sent %q, want %q", got, want)
	}
	if n, st := r.nilCalls(), s.Stats(); n != 1 || st.HoldTimeouts != 0 {
		t.Errorf("decided %d times, %d timeouts; want once, when the hold was full", n, st.HoldTimeouts)
	}
}

// Held datagrams are copies: the read buffer they came in is reused.
func TestHeldDatagramIsCopied(t *testing.T) {
	s, d := newHoldServer(t, &holdRouter{final: 0})
	client, dst := clientN(4), netip.MustParseAddrPort("198.19.0.1:443")
	buf := []byte("hold-me")
	s.handleDatagram(buf, origDstCmsg(dst), 0, client)
	copy(buf, "xxxxxxx")
	s.handleDatagram([]byte("go"), origDstCmsg(dst), 0, client)
	waitFor(t, "two sent", func() bool { return s.Stats().DatagramsUp == 2 })
	if got, _ := d[1].upstream(client).sent(); !slices.Equal(got, []string{"hold-me", "go"}) {
		t.Errorf("route 1 sent %q", got)
	}
}

// Shutdown with flows held drops them and leaves no timer behind.
func TestShutdownDropsHolds(t *testing.T) {
	checkGoroutines(t)
	r := &holdRouter{final: 0}
	s, _ := newHoldServer(t, r)
	for i := range 5 {
		s.handleDatagram([]byte("hold"), origDstCmsg(netip.MustParseAddrPort("198.19.0.1:443")), 0, clientN(10+i))
	}
	s.Shutdown(0)
	if n := int(s.holds.n.Load()); n != 0 {
		t.Errorf("%d flows held after Shutdown", n)
	}
	if n := s.Stats().DropHeld; n != 5 {
		t.Errorf("%d held datagrams counted as dropped at shutdown, want 5", n)
	}
	if n := r.nilCalls(); n != 0 {
		t.Errorf("router asked to decide %d times after Shutdown", n)
	}
}

// A held flow whose route turns out to be RouteReject drops what was held
// at once, counted as rejected, not at the timeout.
func TestHeldFlowRejected(t *testing.T) {
	checkGoroutines(t)
	r := &holdRouter{final: 0}
	s, _ := newHoldServer(t, r)
	client, dst := clientN(5), netip.MustParseAddrPort("198.19.0.1:443")
	s.handleDatagram([]byte("hold-1"), origDstCmsg(dst), 0, client)
	s.handleDatagram([]byte("hold-2"), origDstCmsg(dst), 0, client)
	s.handleDatagram([]byte("drop"), origDstCmsg(dst), 0, client)
	st := s.Stats()
	if st.DropRejected != 3 || st.DatagramsUp != 0 || int(s.holds.n.Load()) != 0 {
		t.Errorf("stats %+v, %d flows held; want 3 rejected, none sent or held", st, int(s.holds.n.Load()))
	}
	s.Shutdown(0)
	if n := r.nilCalls(); n != 0 || s.Stats().HoldTimeouts != 0 {
		t.Errorf("router asked to decide %d times, %d timeouts; want none", n, s.Stats().HoldTimeouts)
	}
}

// One client cannot take every hold: beyond maxHeldFlowsPerClient its new
// flows are decided at once, while another client's flow is still held.
func TestHoldsPerClientBound(t *testing.T) {
	r := &holdRouter{final: 0}
	s, _ := newHoldServer(t, r)
	greedy, other := clientN(6), clientN(7)
	for i := range maxHeldFlowsPerClient + 1 {
		dst := netip.AddrPortFrom(netip.MustParseAddr("198.19.0.1"), uint16(1000+i))
		s.handleDatagram([]byte("hold"), origDstCmsg(dst), 0, greedy)
	}
	if n, held := r.nilCalls(), int(s.holds.n.Load()); n != 1 || held != maxHeldFlowsPerClient {
		t.Errorf("%d decided at once, %d held; want 1 and %d", n, held, maxHeldFlowsPerClient)
	}
	s.handleDatagram([]byte("hold"), origDstCmsg(netip.MustParseAddrPort("198.19.0.1:443")), 0, other)
	if held := int(s.holds.n.Load()); held != maxHeldFlowsPerClient+1 {
		t.Errorf("another client's flow was not held: %d held", held)
	}
}

// gateRouter is holdRouter whose nil-datagram decisions wait for release.
type gateRouter struct {
	holdRouter
	deciding chan struct{} // receives when a decision starts
	release  chan struct{}
}

func newGateRouter(t *testing.T) *gateRouter {
	t.Helper()
	return &gateRouter{holdRouter: holdRouter{final: 1}, deciding: make(chan struct{}), release: make(chan struct{})}
}

func (r *gateRouter) Route(c, d netip.AddrPort, p []byte) int {
	if p == nil {
		r.deciding <- struct{}{}
		<-r.release
	}
	return r.holdRouter.Route(c, d, p)
}

// A datagram that arrives while the timeout is deciding its flow waits,
// and leaves after the held ones.
func TestHoldTimeoutRacingADatagram(t *testing.T) {
	checkGoroutines(t)
	r := newGateRouter(t)
	s, d := newHoldServer(t, r)
	release := sync.OnceFunc(func() { close(r.release) })
	t.Cleanup(release) // before the Shutdown newHoldServer registered
	client, dst := clientN(8), netip.MustParseAddrPort("198.19.0.1:443")
	s.handleDatagram([]byte("hold-1"), origDstCmsg(dst), 0, client)
	next(t, r.deciding, "the timeout's decision")
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.handleDatagram([]byte("late"), origDstCmsg(dst), 0, client)
	}()
	stillBlocked(t, done, "the late datagram was routed while the timeout was deciding its flow")
	release()
	<-done
	waitFor(t, "both sent", func() bool { return s.Stats().DatagramsUp == 2 })
	if got, _ := d[1].upstream(client).sent(); !slices.Equal(got, []string{"hold-1", "late"}) {
		t.Errorf("route 1 sent %q, want the held datagram first", got)
	}
}

// Shutdown waits for a timeout that is deciding, so no session is opened
// after the sessions were drained.
func TestShutdownWaitsForADecidingTimeout(t *testing.T) {
	checkGoroutines(t)
	r := newGateRouter(t)
	release := sync.OnceFunc(func() { close(r.release) })
	d := &routeDialer{{}, {}}
	s := New(Config{Dialer: d, Router: r}, testLogger(t))
	t.Cleanup(func() { release(); s.Shutdown(0) })
	client, dst := clientN(9), netip.MustParseAddrPort("198.19.0.1:443")
	s.handleDatagram([]byte("hold-1"), origDstCmsg(dst), 0, client)
	next(t, r.deciding, "the timeout's decision")
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		s.Shutdown(0)
	}()
	stillBlocked(t, stopped, "Shutdown returned while a timeout was still deciding")
	release()
	<-stopped
	if st := s.Stats(); st.SessionsActive != 0 {
		t.Errorf("%d sessions left after Shutdown", st.SessionsActive)
	}
}

// stillBlocked fails with msg if ch is closed within 50 ms.
func stillBlocked(t *testing.T, ch <-chan struct{}, msg string) {
	t.Helper()
	select {
	case <-ch:
		t.Fatal(msg)
	case <-time.After(50 * time.Millisecond):
	}
}

// seqRouter names a flow only after seeing its two Initials in order, as
// a QUIC sniffer does: "hold-1" is held, "hold-2" after it goes to route 1,
// anything else to route 0.
type seqRouter struct {
	mu   sync.Mutex
	seen []string
}

func (r *seqRouter) Route(_, _ netip.AddrPort, p []byte) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen = append(r.seen, string(p))
	switch {
	case string(p) == "hold-1":
		return RouteHold
	case string(p) == "hold-2" && slices.Contains(r.seen, "hold-1"):
		return 1
	}
	return 0
}

// A reload while a flow is held: the new Router is shown what was held
// before the flow's next datagram, so it names the flow as the old one
// would have.
func TestHoldSurvivesARouterChange(t *testing.T) {
	s, d := newHoldServer(t, &seqRouter{})
	client, dst := clientN(11), netip.MustParseAddrPort("198.19.0.1:443")
	s.handleDatagram([]byte("hold-1"), origDstCmsg(dst), 0, client)
	s.SetRouting(&seqRouter{}, d)
	s.handleDatagram([]byte("hold-2"), origDstCmsg(dst), 0, client)
	waitFor(t, "both sent", func() bool { return s.Stats().DatagramsUp == 2 })
	up := d[1].upstream(client)
	if up == nil {
		t.Fatal("nothing went on route 1: the new Router never named the flow")
	}
	if got, _ := up.sent(); !slices.Equal(got, []string{"hold-1", "hold-2"}) {
		t.Errorf("route 1 sent %q, want both Initials", got)
	}
	if n := s.Stats().HoldTimeouts; n != 0 {
		t.Errorf("%d hold timeouts", n)
	}
}

// A shard of the hold table holds at most maxHeldFlowsPerShard flows,
// whichever clients they come from; other shards still hold.
func TestHoldsShardBound(t *testing.T) {
	r := &holdRouter{final: 0}
	s, _ := newHoldServer(t, r)
	dst := func(i int) netip.AddrPort {
		return netip.AddrPortFrom(netip.MustParseAddr("198.19.0.1"), uint16(1000+i))
	}
	first := s.holds.shard(flowKey{client: clientN(100)})
	var same, others []netip.AddrPort // clients in first's shard, and in another one
	for i := 100; len(same) < maxHeldFlowsPerShard/maxHeldFlowsPerClient+1 || len(others) == 0; i++ {
		if c := clientN(i); s.holds.shard(flowKey{client: c}) == first {
			same = append(same, c)
		} else {
			others = append(others, c)
		}
	}
	for _, c := range same[:maxHeldFlowsPerShard/maxHeldFlowsPerClient] {
		for i := range maxHeldFlowsPerClient {
			s.handleDatagram([]byte("hold"), origDstCmsg(dst(i)), 0, c)
		}
	}
	if n := r.nilCalls(); n != 0 || int(s.holds.n.Load()) != maxHeldFlowsPerShard {
		t.Fatalf("%d decided at once, %d held; want 0 and %d", n, int(s.holds.n.Load()), maxHeldFlowsPerShard)
	}
	s.handleDatagram([]byte("hold"), origDstCmsg(dst(0)), 0, same[len(same)-1])
	if n := r.nilCalls(); n != 1 {
		t.Errorf("a flow beyond the shard's bound: decided %d times at once, want 1", n)
	}
	s.handleDatagram([]byte("hold"), origDstCmsg(dst(0)), 0, others[0])
	if held := int(s.holds.n.Load()); held != maxHeldFlowsPerShard+1 {
		t.Errorf("a client in another shard was not held: %d held", held)
	}
}
