package dns

import (
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// Memory remembers which name each address was last served for, so later
// routing decisions can be made by name for connections that only carry an
// address. An entry lives as long as the A/AAAA record that taught it (its
// TTL as served); the number of entries is bounded, least recently used
// out. Safe for concurrent use.
type Memory struct {
	now func() time.Time

	mu      sync.Mutex
	lru     *lru[netip.Addr, memEntry]
	learned func(name string, addr netip.Addr, ttl time.Duration) // Config.Learned
}

type memEntry struct {
	name    string // lowercase, without trailing dot
	expires time.Time
}

func newMemory(size int, now func() time.Time) *Memory {
	return &Memory{now: now, lru: newLRU[netip.Addr, memEntry](size)}
}

// Lookup returns the name addr was last served for, lowercase and without
// the trailing dot ("www.example.com"), if that answer has not expired.
// IPv4-mapped IPv6 addresses are looked up as IPv4.
func (m *Memory) Lookup(addr netip.Addr) (name string, ok bool) {
	addr = addr.Unmap().WithZone("")
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.lru.get(addr)
	if !ok {
		return "", false
	}
	if !m.now().Before(e.expires) {
		m.lru.remove(addr)
		return "", false
	}
	return e.name, true
}

// Len returns the number of entries, expired ones not yet dropped included.
func (m *Memory) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lru.len()
}

// record remembers the A/AAAA answers of resp as belonging to name (the
// question's name, not a CNAME target: the name the client asked for is the
// one routing rules are written for). Records with TTL 0 and unspecified
// addresses (blocked answers) are skipped.
func (m *Memory) record(name string, resp *dns.Msg) {
	if m == nil {
		return
	}
	name = strings.TrimSuffix(strings.ToLower(name), ".")
	now := m.now()
	var news []learnedAddr
	m.mu.Lock()
	learned := m.learned
	for _, rr := range resp.Answer {
		a, ok := rrAddr(rr)
		if !ok || a.IsUnspecified() || rr.Header().Ttl == 0 {
			continue
		}
		ttl := time.Duration(rr.Header().Ttl) * time.Second
		old, had := m.lru.get(a)
		m.lru.put(a, memEntry{name: name, expires: now.Add(ttl)})
		if learned != nil && (!had || old.name != name || old.expires.Sub(now) < ttl/2) {
			news = append(news, learnedAddr{a, ttl})
		}
	}
	m.mu.Unlock()
	for _, l := range news {
		learned(name, l.addr, l.ttl)
	}
}

type learnedAddr struct {
	addr netip.Addr
	ttl  time.Duration
}
