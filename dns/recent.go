package dns

import (
	"net/netip"
	"sort"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// Bounds of the query log a dashboard shows. Both hold names the LAN
// looked up: they exist only when the user turns the query log on.
const (
	DefaultRecentQueries = 200 // the ring of recent queries: a screenful or two
	maxBlockedNames      = 512 // distinct blocked names counted; past it the rarest is forgotten
)

// RecentQuery is one answered query of the query log.
type RecentQuery struct {
	Time    time.Time
	Client  netip.Addr
	Name    string // as asked, with its trailing dot
	Type    string // "A", "AAAA", ...
	Source  string // what answered: "upstream", "cache", "hosts", "blocked", "rebinding", "servfail", ...
	Rcode   string // "NOERROR", "NXDOMAIN", ...
	Answer  string // the answer records, briefly (as the debug log shows them)
	Latency time.Duration
}

// BlockedName is a blocked name and how often it was asked.
type BlockedName struct {
	Name  string
	Count uint64
}

// Recent is the query log: a bounded ring of the last queries and the
// counts of blocked names. A Handler records into it once SetRecent gave
// it one; a reload's Handler adopts the old one's. Safe for concurrent
// use; a nil *Recent records nothing.
type Recent struct {
	mu      sync.Mutex
	ring    []RecentQuery
	next    int // where the next query goes once the ring is full
	blocked map[string]uint64
}

// NewRecent returns a query log keeping the last n queries.
func NewRecent(n int) *Recent {
	return &Recent{ring: make([]RecentQuery, 0, max(n, 1)), blocked: map[string]uint64{}}
}

// SetRecent makes h record every query it answers into r (nil: none).
// Call it before h serves. With a query log, repeated UDP queries take
// the slow path too (CachedUDP declines them), so that each is recorded.
func (h *Handler) SetRecent(r *Recent) { h.recent = r }

// record adds one answered query.
func (r *Recent) record(req *dns.Msg, q QueryInfo, res *result, took time.Duration) {
	if r == nil || res.msg == nil {
		return
	}
	e := RecentQuery{Time: time.Now(), Client: q.Client.Addr().Unmap(), Source: res.src,
		Rcode: dns.RcodeToString[res.msg.Rcode], Answer: summarize(res.msg), Latency: took}
	if len(req.Question) > 0 {
		e.Name, e.Type = req.Question[0].Name, dns.Type(req.Question[0].Qtype).String()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.ring) < cap(r.ring) {
		r.ring = append(r.ring, e)
	} else {
		r.ring[r.next] = e
		r.next = (r.next + 1) % len(r.ring)
	}
	if res.src == srcBlocked && e.Name != "" {
		r.countBlockedLocked(canonical(e.Name))
	}
}

// countBlockedLocked counts name, first forgetting the least counted
// name when the map is full.
func (r *Recent) countBlockedLocked(name string) {
	if _, ok := r.blocked[name]; !ok && len(r.blocked) >= maxBlockedNames {
		rarest, least := "", uint64(0)
		for n, c := range r.blocked {
			if rarest == "" || c < least {
				rarest, least = n, c
			}
		}
		delete(r.blocked, rarest)
	}
	r.blocked[name]++
}

// Queries returns the recorded queries, newest first.
func (r *Recent) Queries() []RecentQuery {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]RecentQuery, 0, len(r.ring))
	for i := range len(r.ring) {
		out = append(out, r.ring[(r.next-1-i+2*len(r.ring))%len(r.ring)])
	}
	return out
}

// TopBlocked returns the n most blocked names, most first (by name among
// equals).
func (r *Recent) TopBlocked(n int) []BlockedName {
	r.mu.Lock()
	out := make([]BlockedName, 0, len(r.blocked))
	for name, c := range r.blocked {
		out = append(out, BlockedName{Name: name, Count: c})
	}
	r.mu.Unlock()
	// sort.Slice: a generic sort's instantiation would add KiB to the
	// router binary for a list read only by the dashboard.
	sort.Slice(out, func(i, j int) bool {
		return out[i].Count > out[j].Count || out[i].Count == out[j].Count && out[i].Name < out[j].Name
	})
	return out[:min(max(n, 0), len(out))]
}
