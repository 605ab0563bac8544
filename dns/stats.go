package dns

import (
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Stats is a snapshot of the Handler's counters. Every query is counted in
// one Queries* field, then in one of Malformed, Hosts, Blocked, CacheHits
// and CacheMisses, in the order the Handler checks them. A cache miss ends
// as an upstream answer, a stale answer (CacheStale) or a SERVFAIL
// (ServFail). Rebinding refusals are counted on top of the hit or miss
// whose answer was refused.
type Stats struct {
	QueriesUDP   uint64 // queries handed in with Transport "udp"
	QueriesTCP   uint64 // queries handed in with Transport "tcp"
	QueriesOther uint64 // queries with any other Transport string

	CacheHits    uint64 // answered from a fresh cache entry
	CacheMisses  uint64 // needed an upstream answer (shared or not)
	CacheStale   uint64 // every upstream failed; answered from an expired entry
	CacheEntries uint64 // entries in the cache now
	CacheEvicted uint64 // entries dropped to stay within CacheSize

	Forwarded uint64 // upstream exchanges started (one per singleflight leader)
	Shared    uint64 // cache misses that waited for an identical query's exchange
	ServFail  uint64 // SERVFAIL sent because every upstream failed

	Hosts     uint64 // answered from the hosts list
	Blocked   uint64 // answered per BlockMode because the name is on a block list
	Rebinding uint64 // refused: a public name resolved to a private address
	Malformed uint64 // undecodable, malformed or unsupported queries (answered with an error rcode or dropped)

	Upstreams []UpstreamStats // per upstream, sorted by name
}

// UpstreamStats counts the tries sent to one upstream (every upstream a
// Group tries for one exchange counts once).
type UpstreamStats struct {
	Upstream     string        // Upstream.String()
	Queries      uint64        // tries sent
	Errors       uint64        // tries that failed: network error, timeout, SERVFAIL/REFUSED, bad answer
	LatencySum   time.Duration // summed round trip of the tries that got an answer
	LatencyCount uint64        // tries that got an answer (LatencySum / LatencyCount is the mean)
}

// counters are the live values behind Stats.
type counters struct {
	queriesUDP, queriesTCP, queriesOther atomic.Uint64

	cacheHits, cacheMisses, cacheStale atomic.Uint64

	forwarded, shared, servFail atomic.Uint64

	hosts, blocked, rebinding, malformed atomic.Uint64
}

func (c *counters) countQuery(transport string) {
	switch transport {
	case "udp":
		c.queriesUDP.Add(1)
	case "tcp":
		c.queriesTCP.Add(1)
	default:
		c.queriesOther.Add(1)
	}
}

// upstreamCounters are the live values behind one UpstreamStats.
type upstreamCounters struct {
	queries, errors, latencyCount atomic.Uint64
	latencySum                    atomic.Int64 // nanoseconds
}

// observe counts one try. rtt counts only when an answer arrived
// (answered), failed or not: a SERVFAIL still measures the round trip.
func (u *upstreamCounters) observe(rtt time.Duration, answered, failed bool) {
	u.queries.Add(1)
	if failed {
		u.errors.Add(1)
	}
	if answered {
		u.latencySum.Add(int64(rtt))
		u.latencyCount.Add(1)
	}
}

// upstreamRegistry hands out one upstreamCounters per upstream name, so
// counters survive a Group being rebuilt (resolv.conf reloads) and several
// Groups naming the same server add up.
type upstreamRegistry struct {
	mu sync.Mutex
	m  map[string]*upstreamCounters
}

func (r *upstreamRegistry) get(name string) *upstreamCounters {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil {
		r.m = make(map[string]*upstreamCounters)
	}
	c, ok := r.m[name]
	if !ok {
		c = new(upstreamCounters)
		r.m[name] = c
	}
	return c
}

func (r *upstreamRegistry) snapshot() []UpstreamStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]UpstreamStats, 0, len(r.m))
	for name, c := range r.m {
		out = append(out, UpstreamStats{
			Upstream:     name,
			Queries:      c.queries.Load(),
			Errors:       c.errors.Load(),
			LatencySum:   time.Duration(c.latencySum.Load()),
			LatencyCount: c.latencyCount.Load(),
		})
	}
	slices.SortFunc(out, func(a, b UpstreamStats) int { return strings.Compare(a.Upstream, b.Upstream) })
	return out
}

// add adds o's counts to c's (a reload's new Handler adopting the old's).
func (c *counters) add(o *counters) {
	for _, p := range [][2]*atomic.Uint64{
		{&c.queriesUDP, &o.queriesUDP}, {&c.queriesTCP, &o.queriesTCP}, {&c.queriesOther, &o.queriesOther},
		{&c.cacheHits, &o.cacheHits}, {&c.cacheMisses, &o.cacheMisses}, {&c.cacheStale, &o.cacheStale},
		{&c.forwarded, &o.forwarded}, {&c.shared, &o.shared}, {&c.servFail, &o.servFail},
		{&c.hosts, &o.hosts}, {&c.blocked, &o.blocked}, {&c.rebinding, &o.rebinding}, {&c.malformed, &o.malformed},
	} {
		p[0].Add(p[1].Load())
	}
}

// Stats returns a snapshot of the counters. The fields are read one by one,
// so they need not be mutually consistent while queries are in flight.
func (h *Handler) Stats() Stats {
	c := &h.stats
	return Stats{
		QueriesUDP:   c.queriesUDP.Load(),
		QueriesTCP:   c.queriesTCP.Load(),
		QueriesOther: c.queriesOther.Load(),
		CacheHits:    c.cacheHits.Load(),
		CacheMisses:  c.cacheMisses.Load(),
		CacheStale:   c.cacheStale.Load(),
		CacheEntries: uint64(h.cache.len()),
		CacheEvicted: h.cache.evictions(),
		Forwarded:    c.forwarded.Load(),
		Shared:       c.shared.Load(),
		ServFail:     c.servFail.Load(),
		Hosts:        c.hosts.Load(),
		Blocked:      c.blocked.Load(),
		Rebinding:    c.rebinding.Load(),
		Malformed:    c.malformed.Load(),
		Upstreams:    h.upstreams.snapshot(),
	}
}
