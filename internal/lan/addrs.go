package lan

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Refresh is how old the cached interface list may get. The relays ask
// for each new remote (UDP reply sockets) and for flows to the listener
// port (loop guard), the status endpoint for each client: an address added
// since is missed for at most this long.
const Refresh = 2 * time.Second

// Iface is one interface's name and address prefixes.
type Iface struct {
	Name     string
	Prefixes []netip.Prefix
}

// Addrs answers what the relays, the rules and the status endpoint ask of
// the router's addresses, from one cached list of the interfaces that is
// read again once older than Refresh. Reads take no lock: one caller
// refreshes while the others use the last list. Safe for concurrent use.
type Addrs struct {
	patterns atomic.Pointer[[]string] // the LAN interface patterns
	read     func() ([]Iface, error)
	cur      atomic.Pointer[view]
	mu       sync.Mutex // held while reading the kernel
}

// view is one reading of the interfaces.
type view struct {
	at    time.Time
	local map[netip.Addr]bool // every address of the router
	lans  []Iface             // the LAN interfaces, all their prefixes
	nets  []netip.Prefix      // LAN subnets, masked, without link-local ones
	own   map[netip.Addr]bool // the router's LAN addresses, without link-local ones
}

// NewAddrs returns the cache for LAN interface patterns; read lists the
// interfaces (nil: SystemInterfaces).
func NewAddrs(patterns []string, read func() ([]Iface, error)) *Addrs {
	if read == nil {
		read = SystemInterfaces
	}
	l := &Addrs{read: read}
	l.patterns.Store(&patterns)
	return l
}

// SetPatterns replaces the LAN interface patterns (a reload changed
// lan.interfaces); the next question reads the interfaces again.
func (l *Addrs) SetPatterns(patterns []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.patterns.Store(&patterns)
	l.cur.Store(nil)
}

// IsLocal reports whether a is an address of one of the router's
// interfaces.
func (l *Addrs) IsLocal(a netip.Addr) bool { return l.view().local[a.Unmap()] }

// IsLANAddr reports whether a is one of the router's LAN addresses.
func (l *Addrs) IsLANAddr(a netip.Addr) bool { return l.view().own[a.Unmap()] }

// InLAN reports whether a is loopback or inside a LAN subnet (link-local
// subnets excepted: such a subnet is on every link).
func (l *Addrs) InLAN(a netip.Addr) bool {
	a = a.Unmap()
	if a.IsLoopback() {
		return true
	}
	for _, p := range l.view().nets {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Iface is the LAN interface whose subnet holds a (link-local subnets
// included); "" if none. With one LAN interface pattern, that one.
func (l *Addrs) Iface(a netip.Addr) string {
	if p := *l.patterns.Load(); len(p) == 1 {
		return p[0]
	}
	a = a.Unmap()
	for _, ifc := range l.view().lans {
		for _, p := range ifc.Prefixes {
			if p.Masked().Contains(a) {
				return ifc.Name
			}
		}
	}
	return ""
}

// view returns the current reading, reading the kernel again when it is
// stale and no other caller is at it. A failed read keeps the last
// reading (none at first: loopback only).
func (l *Addrs) view() *view {
	if v := l.cur.Load(); v != nil && time.Since(v.at) < Refresh {
		return v
	}
	if !l.mu.TryLock() {
		if v := l.cur.Load(); v != nil {
			return v // another caller is reading
		}
		l.mu.Lock() // the first reading: wait for it
	}
	defer l.mu.Unlock()
	prev := l.cur.Load()
	if prev != nil && time.Since(prev.at) < Refresh {
		return prev // read meanwhile
	}
	next, err := l.readView()
	if err != nil {
		next = &view{at: time.Now()}
		if prev != nil {
			next.local, next.lans, next.nets, next.own = prev.local, prev.lans, prev.nets, prev.own
		}
	}
	l.cur.Store(next)
	return next
}

func (l *Addrs) readView() (*view, error) {
	all, err := l.read()
	if err != nil {
		return nil, err
	}
	patterns := *l.patterns.Load()
	v := &view{at: time.Now(), local: map[netip.Addr]bool{}, own: map[netip.Addr]bool{}}
	for _, ifc := range all {
		for _, p := range ifc.Prefixes {
			v.local[p.Addr().Unmap()] = true
		}
		if !MatchesAny(patterns, ifc.Name) {
			continue
		}
		v.lans = append(v.lans, ifc)
		for _, p := range ifc.Prefixes {
			if p.Addr().IsLinkLocalUnicast() {
				continue
			}
			v.nets = append(v.nets, p.Masked())
			v.own[p.Addr().Unmap()] = true
		}
	}
	return v, nil
}

// SystemInterfaces reads the interfaces and their addresses from the
// kernel (IPv4-mapped addresses unmapped).
func SystemInterfaces() ([]Iface, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	out := make([]Iface, 0, len(ifs))
	for _, ifc := range ifs {
		addrs, err := ifc.Addrs()
		if err != nil {
			continue // gone meanwhile
		}
		ia := Iface{Name: ifc.Name}
		for _, ad := range addrs {
			n, ok := ad.(*net.IPNet)
			if !ok {
				continue
			}
			ip, ok := netip.AddrFromSlice(n.IP)
			if !ok {
				continue
			}
			ones, _ := n.Mask.Size()
			ia.Prefixes = append(ia.Prefixes, netip.PrefixFrom(ip.Unmap(), ones))
		}
		out = append(out, ia)
	}
	return out, nil
}
