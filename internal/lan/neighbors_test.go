package lan

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// fakeNeighbors is a neighSource driven by the test: list returns table,
// and each subscription forwards what the test sends on feed.
type fakeNeighbors struct {
	mu      sync.Mutex
	table   []netlink.Neigh
	listErr error
	subErr  error
	subs    int
	stops   []<-chan struct{} // each subscription's done channel
	feed    chan netlink.NeighUpdate
	breakCh chan error // a send ends the current subscription with that error
}

func newFakeNeighbors(table ...netlink.Neigh) *fakeNeighbors {
	return &fakeNeighbors{table: table, feed: make(chan netlink.NeighUpdate), breakCh: make(chan error)}
}

func (f *fakeNeighbors) list() ([]netlink.Neigh, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]netlink.Neigh(nil), f.table...), f.listErr
}

func (f *fakeNeighbors) subscribe(ch chan<- netlink.NeighUpdate, done <-chan struct{}, onErr func(error)) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.subErr != nil {
		return f.subErr
	}
	f.subs++
	f.stops = append(f.stops, done)
	go func() {
		defer close(ch)
		for {
			select {
			case <-done:
				return
			case err := <-f.breakCh:
				onErr(err)
				return
			case u := <-f.feed:
				ch <- u // blocks like the netlink reader does
			}
		}
	}()
	return nil
}

func (f *fakeNeighbors) subscriptions() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.subs
}

func neigh(ip, mac string, link, state int) netlink.Neigh {
	a := netip.MustParseAddr(ip)
	fam := unix.AF_INET6
	if a.Is4() {
		fam = unix.AF_INET
	}
	var hw net.HardwareAddr
	if mac != "" {
		hw, _ = net.ParseMAC(mac)
	}
	return netlink.Neigh{Family: fam, IP: a.AsSlice(), HardwareAddr: hw, LinkIndex: link, State: state}
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

// eventually polls cond for up to a few seconds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func lookupIs(n *Neighbors, ip, want string) func() bool {
	return func() bool { return n.Lookup(netip.MustParseAddr(ip)).String() == want }
}

func TestNeighborsUpdates(t *testing.T) {
	const reach, stale = netlink.NUD_REACHABLE, netlink.NUD_STALE
	src := newFakeNeighbors(
		neigh("198.18.0.2", "02:00:00:00:00:02", 3, reach),
		neigh("2001:2::2", "02:00:00:00:00:03", 3, stale),
		neigh("198.18.0.9", "", 3, netlink.NUD_INCOMPLETE),
		netlink.Neigh{Family: unix.AF_BRIDGE, HardwareAddr: net.HardwareAddr{2, 0, 0, 0, 0, 7}, LinkIndex: 4}, // FDB entry
	)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n, err := watchNeighbors(ctx, testLogger(t), src)
	if err != nil {
		t.Fatal(err)
	}
	// The initial listing is there when watchNeighbors returns.
	if got := n.Lookup(netip.MustParseAddr("198.18.0.2")).String(); got != "02:00:00:00:00:02" {
		t.Errorf("listed v4 neighbour = %q", got)
	}
	if got := n.Lookup(netip.MustParseAddr("::ffff:198.18.0.2")).String(); got != "02:00:00:00:00:02" {
		t.Errorf("mapped lookup = %q", got)
	}
	if got := n.Lookup(netip.MustParseAddr("2001:2::2")).String(); got != "02:00:00:00:00:03" {
		t.Errorf("listed v6 neighbour = %q", got)
	}
	if n.Len() != 2 {
		t.Errorf("Len = %d, want 2 (incomplete and FDB entries left out)", n.Len())
	}

	send := func(typ uint16, ne netlink.Neigh) { src.feed <- netlink.NeighUpdate{Type: typ, Neigh: ne} }
	send(unix.RTM_NEWNEIGH, neigh("198.18.0.2", "02:00:00:00:00:aa", 3, reach))
	eventually(t, "changed MAC", lookupIs(n, "198.18.0.2", "02:00:00:00:00:aa"))
	send(unix.RTM_NEWNEIGH, neigh("198.18.0.3", "02:00:00:00:00:bb", 3, netlink.NUD_PERMANENT))
	eventually(t, "new neighbour", lookupIs(n, "198.18.0.3", "02:00:00:00:00:bb"))
	send(unix.RTM_NEWNEIGH, neigh("198.18.0.3", "", 3, netlink.NUD_FAILED))
	eventually(t, "failed neighbour removed", lookupIs(n, "198.18.0.3", ""))
	send(unix.RTM_DELNEIGH, neigh("198.18.0.2", "02:00:00:00:00:aa", 9, reach)) // another link
	send(unix.RTM_NEWNEIGH, neigh("198.18.0.4", "00:00:00:00:00:00", 3, netlink.NUD_NOARP))
	send(unix.RTM_NEWNEIGH, neigh("198.18.0.5", "02:00:00:00:00:05", 3, reach)) // a marker: the two above are applied
	eventually(t, "marker", lookupIs(n, "198.18.0.5", "02:00:00:00:00:05"))
	if got := n.Lookup(netip.MustParseAddr("198.18.0.2")).String(); got != "02:00:00:00:00:aa" {
		t.Errorf("delete on another link removed the entry: %q", got)
	}
	if got := n.Lookup(netip.MustParseAddr("198.18.0.4")); got != nil {
		t.Errorf("all-zero MAC stored: %v", got)
	}
	send(unix.RTM_DELNEIGH, neigh("2001:2::2", "02:00:00:00:00:03", 3, stale))
	eventually(t, "deleted v6 neighbour", lookupIs(n, "2001:2::2", ""))

	cancel()
	select {
	case <-n.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("watcher did not stop")
	}
}

func TestNeighborsResyncAfterBreak(t *testing.T) {
	src := newFakeNeighbors(neigh("198.18.0.2", "02:00:00:00:00:02", 3, netlink.NUD_REACHABLE))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n, err := watchNeighbors(ctx, testLogger(t), src)
	if err != nil {
		t.Fatal(err)
	}
	// While the subscription is broken the table changes; the resync must
	// drop the stale entry and pick up the new one.
	src.mu.Lock()
	src.table = []netlink.Neigh{neigh("198.18.0.7", "02:00:00:00:00:07", 3, netlink.NUD_REACHABLE)}
	src.mu.Unlock()
	src.breakCh <- unix.ENOBUFS
	eventually(t, "resync", func() bool { return src.subscriptions() == 2 && n.Len() == 1 })
	if n.Lookup(netip.MustParseAddr("198.18.0.2")) != nil || n.Lookup(netip.MustParseAddr("198.18.0.7")) == nil {
		t.Errorf("after resync: .2=%v .7=%v", n.Lookup(netip.MustParseAddr("198.18.0.2")), n.Lookup(netip.MustParseAddr("198.18.0.7")))
	}
	// The broken subscription was released (netlink closes its socket only
	// when done is closed).
	src.mu.Lock()
	first := src.stops[0]
	src.mu.Unlock()
	select {
	case <-first:
	default:
		t.Error("the broken subscription's done channel is still open")
	}
	// Updates flow on the new subscription.
	src.feed <- netlink.NeighUpdate{Type: unix.RTM_NEWNEIGH, Neigh: neigh("198.18.0.8", "02:00:00:00:00:08", 3, netlink.NUD_REACHABLE)}
	eventually(t, "update after resync", lookupIs(n, "198.18.0.8", "02:00:00:00:00:08"))
	cancel()
	<-n.Done()
}

func TestNeighborsStartErrors(t *testing.T) {
	src := newFakeNeighbors()
	src.subErr = errors.New("no netlink")
	if _, err := watchNeighbors(context.Background(), testLogger(t), src); err == nil || !errors.Is(err, src.subErr) {
		t.Errorf("subscribe failure: err = %v", err)
	}
	src = newFakeNeighbors()
	src.listErr = errors.New("dump failed")
	if _, err := watchNeighbors(context.Background(), testLogger(t), src); err == nil || !errors.Is(err, src.listErr) {
		t.Errorf("list failure: err = %v", err)
	}
	if src.subscriptions() != 1 {
		t.Errorf("subscriptions = %d", src.subscriptions())
	}
}

func TestNeighborsStopWhileReaderBlocked(t *testing.T) {
	src := newFakeNeighbors()
	ctx, cancel := context.WithCancel(context.Background())
	n, err := watchNeighbors(ctx, testLogger(t), src)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	// The fake reader may now be blocked sending this update; stopping must
	// still finish (the session drains the channel).
	select {
	case src.feed <- netlink.NeighUpdate{Type: unix.RTM_NEWNEIGH, Neigh: neigh("198.18.0.2", "02:00:00:00:00:02", 3, netlink.NUD_REACHABLE)}:
	case <-n.Done():
	}
	select {
	case <-n.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("watcher did not stop")
	}
}
