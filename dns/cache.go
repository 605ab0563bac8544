package dns

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// maxNegativeTTL caps negative caching whatever the SOA says: RFC 2308 §5
// finds one to three hours to work well, and a name that starts to exist
// should not stay invisible for a day.
const maxNegativeTTL = 3 * time.Hour

// staleTTL is the TTL of a stale answer, the value RFC 8767 §4 recommends:
// clients come back soon, when an upstream may be reachable again.
const staleTTL = 30

// cacheKey identifies an answer. DO is part of it because a DNSSEC-aware
// client gets signatures that a plain client must not be sent.
type cacheKey struct {
	name   string // canonical
	qtype  uint16
	qclass uint16
	do     bool
}

// entry is an upstream answer as kept and served: its sections without the
// OPT record, and how long it is fresh. msg is never modified once the
// entry exists; replies are built from copies.
type entry struct {
	msg    *dns.Msg
	stored time.Time
	ttl    time.Duration // fresh lifetime; 0: not cacheable, served with its own TTLs
}

func (e *entry) expires() time.Time { return e.stored.Add(e.ttl) }

// newEntry wraps an upstream answer received at now, without its OPT and
// TSIG records, which belong to one message (in any section: one in the
// answer would be served with a TTL written over its EDNS flags). The
// lifetime is the smallest TTL in it (for a negative answer, the SOA's TTL
// and MINIMUM count, RFC 2308 §5), clamped to [minTTL, maxTTL], negative
// answers also to maxNegativeTTL. Answers that must not be cached get ttl
// 0: truncated ones, rcodes other than NOERROR/NXDOMAIN, and negative
// answers without a SOA (RFC 2308 §5).
func newEntry(r *dns.Msg, now time.Time, minTTL, maxTTL time.Duration) *entry {
	m := &dns.Msg{MsgHdr: r.MsgHdr, Question: r.Question, Answer: withoutMeta(r.Answer), Ns: withoutMeta(r.Ns), Extra: withoutMeta(r.Extra)}
	e := &entry{msg: m, stored: now}
	secs, ok := answerTTL(m)
	if !ok {
		return e
	}
	ttl := time.Duration(secs) * time.Second
	ttl = min(max(ttl, minTTL), maxTTL)
	if isNegative(m) {
		ttl = min(ttl, maxNegativeTTL)
	}
	if ttl >= time.Second {
		e.ttl = ttl
	}
	return e
}

// withoutMeta returns rrs without OPT and TSIG records (rrs itself if it
// has none).
func withoutMeta(rrs []dns.RR) []dns.RR {
	meta := func(rr dns.RR) bool { t := rr.Header().Rrtype; return t == dns.TypeOPT || t == dns.TypeTSIG }
	if !slices.ContainsFunc(rrs, meta) {
		return rrs
	}
	return slices.DeleteFunc(slices.Clone(rrs), meta)
}

// isNegative reports NXDOMAIN and NODATA answers.
func isNegative(m *dns.Msg) bool {
	return m.Rcode == dns.RcodeNameError || m.Rcode == dns.RcodeSuccess && len(m.Answer) == 0
}

// answerTTL returns the smallest TTL of m's records, or false if m is not
// cacheable at all.
func answerTTL(m *dns.Msg) (uint32, bool) {
	if m.Truncated || m.Rcode != dns.RcodeSuccess && m.Rcode != dns.RcodeNameError {
		return 0, false
	}
	neg := isNegative(m)
	ttl, haveSOA := ^uint32(0), false
	for _, sec := range [][]dns.RR{m.Answer, m.Ns, m.Extra} {
		for _, rr := range sec {
			t := rr.Header().Ttl
			if soa, ok := rr.(*dns.SOA); ok && neg {
				haveSOA = true
				t = min(t, soa.Minttl)
			}
			ttl = min(ttl, t)
		}
	}
	if neg && !haveSOA {
		return 0, false
	}
	return ttl, true
}

// reply builds the answer to req from e. Its records are copies whose TTL
// is what remains of e's lifetime at now (ttl, if not 0, overrides that:
// serve-stale). An uncacheable entry keeps the TTLs it came with.
func (e *entry) reply(req *dns.Msg, now time.Time, ttl uint32) *dns.Msg {
	if ttl == 0 && e.ttl > 0 {
		ttl = uint32(max(e.expires().Sub(now), 0) / time.Second)
	}
	keep := e.ttl == 0 && ttl == 0
	m := new(dns.Msg)
	m.SetReply(req)
	m.Rcode = e.msg.Rcode
	m.AuthenticatedData = e.msg.AuthenticatedData && (req.AuthenticatedData || doBit(req))
	m.Answer = copyRRs(e.msg.Answer, ttl, keep)
	m.Ns = copyRRs(e.msg.Ns, ttl, keep)
	m.Extra = copyRRs(e.msg.Extra, ttl, keep)
	return m
}

func copyRRs(rrs []dns.RR, ttl uint32, keep bool) []dns.RR {
	if len(rrs) == 0 {
		return nil
	}
	out := make([]dns.RR, len(rrs))
	for i, rr := range rrs {
		out[i] = dns.Copy(rr)
		if !keep {
			out[i].Header().Ttl = ttl
		}
	}
	return out
}

// cache holds entries under a least-recently-used bound. With a positive
// maxStale, expired entries stay usable as stale answers for that long.
// A nil *cache caches nothing.
type cache struct {
	maxStale time.Duration
	now      func() time.Time
	evicted  atomic.Uint64 // entries dropped to stay within the size

	mu  sync.Mutex
	lru *lru[cacheKey, *entry]
}

func newCache(size int, maxStale time.Duration, now func() time.Time) *cache {
	return &cache{maxStale: maxStale, now: now, lru: newLRU[cacheKey, *entry](size)}
}

// get returns the entry under k and whether it is fresh. A stale entry is
// returned (fresh false) only while it is within maxStale of expiring;
// older ones are dropped.
func (c *cache) get(k cacheKey) (e *entry, fresh bool) {
	if c == nil {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.lru.get(k)
	if !ok {
		return nil, false
	}
	now := c.now()
	if now.Before(e.expires()) {
		return e, true
	}
	if c.maxStale > 0 && now.Sub(e.expires()) <= c.maxStale {
		return e, false
	}
	c.lru.remove(k)
	return nil, false
}

// put stores e under k if it is cacheable.
func (c *cache) put(k cacheKey, e *entry) {
	if c == nil || e.ttl == 0 {
		return
	}
	c.mu.Lock()
	n := c.lru.put(k, e)
	c.mu.Unlock()
	c.evicted.Add(uint64(n))
}

func (c *cache) evictions() uint64 {
	if c == nil {
		return 0
	}
	return c.evicted.Load()
}

func (c *cache) len() int {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.len()
}

// doBit reports the DNSSEC OK bit of m's OPT record.
func doBit(m *dns.Msg) bool {
	opt := m.IsEdns0()
	return opt != nil && opt.Do()
}
