package lan

import (
	"errors"
	"fmt"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// NetNS is a network namespace handle (an open /proc/.../ns/net or
// /run/netns/<name> file), as returned by netns.GetFromName.
type NetNS = netns.NsHandle

// neighDumpAttempts bounds retries of a neighbour dump the kernel marked
// as interrupted (the table changed while it was being dumped).
const neighDumpAttempts = 5

// netlinkNeighbors is the real neighSource. ns nil means the namespace of
// the calling thread.
type netlinkNeighbors struct{ ns *NetNS }

func (s netlinkNeighbors) list() ([]netlink.Neigh, error) {
	h, err := s.handle()
	if err != nil {
		return nil, err
	}
	defer h.Close()
	for attempt := 1; ; attempt++ {
		// Link 0 and family AF_UNSPEC (0): every link, IPv4 and IPv6.
		neighs, err := h.NeighList(0, 0)
		if errors.Is(err, netlink.ErrDumpInterrupted) && attempt < neighDumpAttempts {
			continue
		}
		return neighs, err
	}
}

func (s netlinkNeighbors) handle() (*netlink.Handle, error) {
	if s.ns == nil {
		return netlink.NewHandle()
	}
	h, err := netlink.NewHandleAt(*s.ns)
	if err != nil {
		return nil, fmt.Errorf("opening netlink in namespace %v: %w", *s.ns, err)
	}
	return h, nil
}

func (s netlinkNeighbors) subscribe(ch chan<- netlink.NeighUpdate, done <-chan struct{}, onErr func(error)) error {
	return netlink.NeighSubscribeWithOptions(ch, done, netlink.NeighSubscribeOptions{
		Namespace:     s.ns,
		ErrorCallback: onErr,
	})
}
