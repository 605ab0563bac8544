package lan

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Resync backoff after the neighbour subscription breaks (for example the
// kernel dropped notifications because the socket buffer overflowed during
// an ARP storm: ENOBUFS). The table is re-listed on every resync, so the
// first retry is quick; the cap keeps a persistent failure from spinning.
const (
	neighRetryMin = 200 * time.Millisecond
	neighRetryMax = 30 * time.Second
)

// ethernetAddrLen is the length of the EUI-48 (Ethernet) addresses
// recorded: the ones rules by MAC match.
const ethernetAddrLen = 6

// Neighbors is an IP to MAC map kept current from the kernel neighbour
// table (ARP and NDP) through netlink. It is safe for concurrent use.
//
// Entries are keyed by IP alone: if two links have a neighbour with the
// same IP, the latest notification wins.
type Neighbors struct {
	log *slog.Logger
	src neighSource

	mu sync.RWMutex
	m  map[netip.Addr]neighEntry

	done chan struct{}
}

type neighEntry struct {
	mac  net.HardwareAddr
	link int
}

// neighSource is the kernel side: a dump of the table and a subscription
// to its changes. The netlink implementation is in neighbors_netlink.go.
type neighSource interface {
	list() ([]netlink.Neigh, error)
	// subscribe delivers changes to ch until done is closed, then closes
	// ch. It may also close ch on its own after reporting an error to
	// onErr. If it returns an error, ch is never used.
	subscribe(ch chan<- netlink.NeighUpdate, done <-chan struct{}, onErr func(error)) error
}

// WatchNeighbors lists the neighbour table of the network namespace ns
// (nil: the namespace the calling thread is in), then keeps the map current
// in a goroutine until ctx is done; Done is closed when that goroutine has
// exited. The first subscription and listing happen before it returns, so
// their errors are returned and Lookup knows every existing neighbour.
func WatchNeighbors(ctx context.Context, log *slog.Logger, ns *NetNS) (*Neighbors, error) {
	return watchNeighbors(ctx, log, netlinkNeighbors{ns: ns})
}

func watchNeighbors(ctx context.Context, log *slog.Logger, src neighSource) (*Neighbors, error) {
	n := &Neighbors{log: log, src: src, m: map[netip.Addr]neighEntry{}, done: make(chan struct{})}
	s, err := n.sync()
	if err != nil {
		return nil, err
	}
	go n.run(ctx, s)
	return n, nil
}

// Lookup returns the MAC address of the neighbour with this IP (IPv4-mapped
// addresses are unmapped), or nil. The result must not be modified.
func (n *Neighbors) Lookup(ip netip.Addr) net.HardwareAddr {
	n.mu.RLock()
	e := n.m[ip.Unmap()]
	n.mu.RUnlock()
	return e.mac
}

// Len is the number of neighbours with a known MAC.
func (n *Neighbors) Len() int {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return len(n.m)
}

// Done is closed once the watcher has stopped (after ctx is done).
func (n *Neighbors) Done() <-chan struct{} { return n.done }

// session is one subscription: updates arrive on ch; closing stop ends it.
type session struct {
	ch   chan netlink.NeighUpdate
	stop chan struct{}
	errs chan error // the latest error the subscription reported
}

// sync subscribes first and lists second, then replaces the map with the
// listing. Updates that raced with the listing are queued on the channel
// and applied afterwards in kernel order, so the map converges on the
// latest state.
func (n *Neighbors) sync() (*session, error) {
	s := &session{ch: make(chan netlink.NeighUpdate, 64), stop: make(chan struct{}), errs: make(chan error, 1)}
	onErr := func(err error) { // called by the subscription's one reader goroutine
		select {
		case <-s.errs: // keep only the latest
		default:
		}
		s.errs <- err
	}
	if err := n.src.subscribe(s.ch, s.stop, onErr); err != nil {
		close(s.stop)
		return nil, fmt.Errorf("subscribing to neighbour table changes: %w", err)
	}
	neighs, err := n.src.list()
	if err != nil {
		s.close()
		return nil, fmt.Errorf("listing the neighbour table: %w", err)
	}
	m := make(map[netip.Addr]neighEntry, len(neighs))
	for _, ne := range neighs {
		if ip, e, ok := entryOf(ne); ok {
			m[ip] = e
		}
	}
	n.mu.Lock()
	n.m = m
	n.mu.Unlock()
	return s, nil
}

// close ends the subscription and waits for it to close the channel (the
// netlink reader blocks on sending until someone reads). Call it once.
func (s *session) close() {
	close(s.stop)
	for range s.ch {
	}
}

func (n *Neighbors) run(ctx context.Context, s *session) {
	defer close(n.done)
	retry := neighRetryMin
	for {
		err := n.consume(ctx, s)
		if ctx.Err() != nil {
			return
		}
		n.log.Warn("neighbour table watch broke; re-listing", "err", err, "retry_in", retry)
		for s = nil; s == nil; {
			select {
			case <-ctx.Done():
				return
			case <-time.After(retry):
			}
			if s, err = n.sync(); err != nil {
				retry = min(2*retry, neighRetryMax)
				n.log.Warn("neighbour table resync failed", "err", err, "retry_in", retry)
			}
		}
		retry = neighRetryMin
		n.log.Info("neighbour table resynced", "neighbours", n.Len())
	}
}

// consume applies updates until ctx is done or the subscription breaks.
func (n *Neighbors) consume(ctx context.Context, s *session) error {
	for {
		select {
		case <-ctx.Done():
			s.close()
			return ctx.Err()
		case u, ok := <-s.ch:
			if !ok {
				// The reader gave up; closing stop also releases the
				// subscription's socket, which netlink closes only then.
				s.close()
				select {
				case err := <-s.errs:
					return err
				default:
					return errors.New("neighbour subscription closed")
				}
			}
			n.apply(u)
		}
	}
}

func (n *Neighbors) apply(u netlink.NeighUpdate) {
	ip, e, usable := entryOf(u.Neigh)
	if !ip.IsValid() {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	switch {
	case u.Type == unix.RTM_NEWNEIGH && usable:
		n.m[ip] = e
	case u.Type == unix.RTM_NEWNEIGH || u.Type == unix.RTM_DELNEIGH:
		// Gone or unresolved on this link; an entry of another link stays.
		if old, ok := n.m[ip]; ok && old.link == e.link {
			delete(n.m, ip)
		}
	}
}

// unusable neighbour states: resolution failed or is still in progress, so
// there is no MAC address to trust.
const unusable = netlink.NUD_FAILED | netlink.NUD_INCOMPLETE

// entryOf extracts the IP and entry of an ARP/NDP neighbour. ip is invalid
// for anything else (bridge FDB entries, which have no IP); ok is false
// when there is no usable Ethernet address.
func entryOf(ne netlink.Neigh) (ip netip.Addr, e neighEntry, ok bool) {
	if ne.Family != unix.AF_INET && ne.Family != unix.AF_INET6 {
		return netip.Addr{}, e, false
	}
	ip, valid := netip.AddrFromSlice(ne.IP)
	if !valid {
		return netip.Addr{}, e, false
	}
	ip = ip.Unmap()
	e = neighEntry{link: ne.LinkIndex}
	if len(ne.HardwareAddr) != ethernetAddrLen || ne.State&unusable != 0 || isZeroMAC(ne.HardwareAddr) {
		return ip, e, false
	}
	e.mac = slices.Clone(ne.HardwareAddr)
	return ip, e, true
}

func isZeroMAC(m net.HardwareAddr) bool {
	for _, b := range m {
		if b != 0 {
			return false
		}
	}
	return true
}
