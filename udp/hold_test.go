package udp

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
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
	if n := s.holds.n.Load(); n != 0 {
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
	s, d := newHoldServer(t, &holdRouter{final: 0})
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
	if n := s.holds.n.Load(); n != 0 {
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
	if st.DropRejected != 3 || st.DatagramsUp != 0 || s.holds.n.Load() != 0 {
		t.Errorf("stats %+v, %d flows held; want 3 rejected, none sent or held", st, s.holds.n.Load())
	}
	s.Shutdown(0)
	if n := r.nilCalls(); n != 0 || s.Stats().HoldTimeouts != 0 {
		t.Errorf("router asked to decide %d times, %d timeouts; want none", n, s.Stats().HoldTimeouts)
	}
}
