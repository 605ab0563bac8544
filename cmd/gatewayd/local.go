package main

import (
	"net"
	"net/netip"
	"sync"
	"time"
)

// localRefresh is how old the cached list of the router's addresses may get.
// The relays ask for each new remote (UDP reply sockets) and for flows to the
// listener port (loop guard); an address added since is missed for at most
// this long.
const localRefresh = 2 * time.Second

// localAddrs answers "is this one of the router's addresses?" from a cached
// list, refreshed on demand. Safe for concurrent use.
type localAddrs struct {
	mu  sync.Mutex
	at  time.Time
	set map[netip.Addr]bool
}

// Has reports whether a is an address of one of the router's interfaces.
func (l *localAddrs) Has(a netip.Addr) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.set == nil || time.Since(l.at) > localRefresh {
		l.refreshLocked()
	}
	return l.set[a.Unmap()]
}

func (l *localAddrs) refreshLocked() {
	l.at = time.Now()
	addrs, err := net.InterfaceAddrs()
	if err != nil && l.set != nil {
		return // keep the last good list
	}
	set := map[netip.Addr]bool{}
	for _, ad := range addrs {
		if p, ok := ad.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(p.IP); ok {
				set[ip.Unmap()] = true
			}
		}
	}
	l.set = set
}
