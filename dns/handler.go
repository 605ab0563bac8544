// Package dns is the resolver core of gatewayd's DNS hijack: the transport
// that receives the LAN's intercepted queries hands each one to a Handler.
//
// A query is answered by the first of these that applies:
//
//  1. an error rcode, for malformed or unsupported queries;
//  2. the hosts list (exact names);
//  3. the block lists (a listed domain and all names under it);
//  4. the cache, keyed by name, type, class and DO bit;
//  5. the upstream resolvers: the split-DNS Group of the longest matching
//     domain, else the default Group (plain DNS or DNS over TLS, marked so
//     it bypasses the interception, with failover between upstreams).
//     Identical concurrent misses share one upstream exchange;
//  6. an expired cache entry (serve-stale), when every upstream failed;
//  7. SERVFAIL.
//
// Answers from 4-6 go through DNS rebinding protection (rebind.go). Every
// address served is remembered by name (Memory) for routing decisions made
// later.
package dns

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"time"

	"github.com/miekg/dns"
)

// QueryInfo describes how a query arrived.
type QueryInfo struct {
	Client    netip.AddrPort // the LAN client
	Transport string         // "udp" or "tcp"
	// MaxSize bounds the packed reply: the client's EDNS UDP size (at least
	// 512) or 512 without EDNS over UDP, dns.MaxMsgSize over TCP. See
	// MaxSizeFor, which HandleWire applies when MaxSize is 0. Other values
	// outside [512, 65535] are clamped.
	MaxSize int
}

// Handler answers DNS queries. It is safe for concurrent use.
type Handler struct {
	log       *slog.Logger
	now       func() time.Time
	stats     counters
	upstreams *upstreamRegistry

	upstream *Group            // default route
	split    suffixMap[*Group] // split-DNS routes
	groups   []*Group          // all of them, for Close

	hosts     hosts
	block     *blockList
	blockNull bool
	rebind    bool
	allow     suffixMap[struct{}]

	cache          *cache     // nil: no caching
	wire           *wireCache // UDP fast path; nil with cache
	minTTL, maxTTL time.Duration
	flight         flight[cacheKey, *entry]
	memory         *Memory
	recent         *Recent // the query log; nil: off
}

// Memory returns the address -> name memory filled from served answers.
func (h *Handler) Memory() *Memory { return h.memory }

// Close closes idle upstream connections. Handle keeps working (it dials
// again), so Close may run while queries are still being answered.
func (h *Handler) Close() error {
	var errs []error
	for _, g := range h.groups {
		errs = append(errs, g.Close())
	}
	return errors.Join(errs...)
}

// Sources of an answer, for the query log.
const (
	srcHosts     = "hosts"
	srcBlocked   = "blocked"
	srcCache     = "cache"
	srcStale     = "stale"
	srcUpstream  = "upstream"
	srcShared    = "shared"
	srcRebinding = "rebinding"
	srcServFail  = "servfail"
	srcInvalid   = "invalid"
)

// result is a reply on its way out.
type result struct {
	msg *dns.Msg
	src string
	ede *dns.EDNS0_EDE // Extended DNS Error for EDNS clients, or nil
	err error          // why upstreams failed, for the log
	// fresh is the cache entry a fresh answer came from (cache hit or
	// upstream); its packed form may then be memoized until it expires.
	fresh *entry
}

// Handle answers req. It returns nil only for messages that must not be
// answered (responses, QR=1); every query gets a reply, an error rcode if
// nothing better: FORMERR (not exactly one question, several OPT records),
// NOTIMP (opcode other than QUERY), BADVERS (EDNS version > 0), REFUSED
// (class other than IN, zone transfers, rebinding), SERVFAIL (no upstream
// answered). The reply is compressed and truncated (TC=1) to q.MaxSize.
func (h *Handler) Handle(ctx context.Context, req *dns.Msg, q QueryInfo) *dns.Msg {
	return h.handle(ctx, req, q).msg
}

func (h *Handler) handle(ctx context.Context, req *dns.Msg, q QueryInfo) result {
	start := time.Now()
	h.stats.countQuery(q.Transport)
	if req == nil || req.Response {
		h.stats.malformed.Add(1)
		h.log.Debug("dns: dropped a response or empty message", "client", q.Client)
		return result{}
	}
	if hasNilRR(req) {
		// Only a programming error builds such a message; miekg/dns
		// would panic on it, so it is answered from its header alone.
		req = &dns.Msg{MsgHdr: req.MsgHdr}
	}
	res := h.resolve(ctx, req)
	h.finish(req, &res, q.MaxSize)
	took := time.Since(start)
	h.logQuery(ctx, req, q, &res, took)
	h.recent.record(req, q, &res, took)
	return res
}

func (h *Handler) resolve(ctx context.Context, req *dns.Msg) result {
	if rcode := checkQuery(req); rcode != dns.RcodeSuccess {
		h.stats.malformed.Add(1)
		return result{msg: errorReply(req, rcode), src: srcInvalid}
	}
	qs := req.Question[0]
	name := canonical(qs.Name)
	if addrs, ok := h.hosts[name]; ok {
		h.stats.hosts.Add(1)
		m := h.hosts.reply(req, addrs)
		h.memory.record(name, m)
		return result{msg: m, src: srcHosts}
	}
	if h.block.match(name) {
		h.stats.blocked.Add(1)
		return h.blockedReply(req)
	}
	up, local := h.route(name)
	key := cacheKey{name: name, qtype: qs.Qtype, qclass: qs.Qclass, do: doBit(req)}
	old, fresh := h.cache.get(key)
	if fresh {
		h.stats.cacheHits.Add(1)
		return h.answer(req, old, name, local, srcCache)
	}
	h.stats.cacheMisses.Add(1)
	lctx := context.WithoutCancel(ctx) // the exchange serves every waiter
	e, err, shared := h.flight.do(ctx, key, func() (*entry, error) { return h.forward(lctx, up, key) })
	if err == nil {
		src := srcUpstream
		if shared {
			h.stats.shared.Add(1)
			src = srcShared
		}
		return h.answer(req, e, name, local, src)
	}
	if old != nil {
		h.stats.cacheStale.Add(1)
		r := h.answer(req, old, name, local, srcStale)
		if r.src == srcStale {
			r.ede = &dns.EDNS0_EDE{InfoCode: dns.ExtendedErrorCodeStaleAnswer}
		}
		r.err = err
		return r
	}
	h.stats.servFail.Add(1)
	return result{msg: errorReply(req, dns.RcodeServerFailure), src: srcServFail, err: err,
		ede: &dns.EDNS0_EDE{InfoCode: dns.ExtendedErrorCodeNetworkError, ExtraText: "no upstream answered"}}
}

func hasNilRR(m *dns.Msg) bool {
	for _, sec := range [][]dns.RR{m.Answer, m.Ns, m.Extra} {
		for _, rr := range sec {
			if rr == nil {
				return true
			}
		}
	}
	return false
}

// checkQuery returns the error rcode for a query that is not answered
// normally, or RcodeSuccess.
func checkQuery(req *dns.Msg) int {
	if req.Opcode != dns.OpcodeQuery {
		return dns.RcodeNotImplemented
	}
	if len(req.Question) != 1 {
		return dns.RcodeFormatError
	}
	opts := 0
	for _, rr := range req.Extra {
		if rr.Header().Rrtype == dns.TypeOPT {
			opts++
		}
	}
	if opts > 1 { // RFC 6891 §6.1.1
		return dns.RcodeFormatError
	}
	if opt := req.IsEdns0(); opt != nil && opt.Version() != 0 {
		return dns.RcodeBadVers
	}
	q := req.Question[0]
	if _, ok := dns.IsDomainName(q.Name); !ok || !dns.IsFqdn(q.Name) {
		return dns.RcodeFormatError
	}
	switch q.Qtype {
	case dns.TypeOPT, dns.TypeTSIG, dns.TypeTKEY, dns.TypeNone:
		return dns.RcodeFormatError
	case dns.TypeAXFR, dns.TypeIXFR, dns.TypeMAILA, dns.TypeMAILB:
		return dns.RcodeRefused
	}
	if q.Qclass != dns.ClassINET {
		return dns.RcodeRefused
	}
	return dns.RcodeSuccess
}

// errorReply answers req with rcode and no records. The question is echoed
// only if it can be packed.
func errorReply(req *dns.Msg, rcode int) *dns.Msg {
	m := new(dns.Msg)
	m.SetRcode(req, rcode)
	if len(m.Question) == 1 {
		if _, ok := dns.IsDomainName(m.Question[0].Name); !ok || !dns.IsFqdn(m.Question[0].Name) {
			m.Question = nil
		}
	}
	return m
}

// route picks the upstream for name; local reports a split-DNS route.
func (h *Handler) route(name string) (up *Group, local bool) {
	if g, _, ok := h.split.lookup(name); ok {
		return g, true
	}
	return h.upstream, false
}

// forward asks up for key's answer and caches it. It runs once for all
// identical queries waiting in h.flight.
func (h *Handler) forward(ctx context.Context, up *Group, key cacheKey) (*entry, error) {
	h.stats.forwarded.Add(1)
	m := new(dns.Msg)
	m.Id = dns.Id()
	m.RecursionDesired = true
	m.Question = []dns.Question{{Name: key.name, Qtype: key.qtype, Qclass: key.qclass}}
	m.SetEdns0(upstreamEDNSSize, key.do)
	r, err := up.Exchange(ctx, m)
	if err != nil {
		return nil, err
	}
	e := newEntry(r, h.now(), h.minTTL, h.maxTTL)
	h.cache.put(key, e)
	return e, nil
}

// answer builds the reply to req from e, unless rebinding protection
// refuses it, and remembers its addresses.
func (h *Handler) answer(req *dns.Msg, e *entry, name string, local bool, src string) result {
	var ttl uint32
	if src == srcStale {
		ttl = staleTTL
	}
	if h.rebind && !local {
		if a, bad := rebindAddr(e.msg); bad {
			if _, _, allowed := h.allow.lookup(name); !allowed {
				h.stats.rebinding.Add(1)
				return result{msg: errorReply(req, dns.RcodeRefused), src: srcRebinding,
					ede: &dns.EDNS0_EDE{InfoCode: dns.ExtendedErrorCodeBlocked, ExtraText: "DNS rebinding: private address " + a.String()}}
			}
		}
	}
	m := e.reply(req, h.now(), ttl)
	h.memory.record(name, m)
	r := result{msg: m, src: src}
	if src != srcStale && e.ttl > 0 {
		r.fresh = e
	}
	return r
}

// blockedReply answers a blocked name per the block mode.
func (h *Handler) blockedReply(req *dns.Msg) result {
	m := new(dns.Msg)
	m.SetReply(req)
	if !h.blockNull {
		m.Rcode = dns.RcodeNameError
		return result{msg: m, src: srcBlocked, ede: &dns.EDNS0_EDE{InfoCode: dns.ExtendedErrorCodeBlocked}}
	}
	q := req.Question[0]
	for _, a := range []netip.Addr{netip.IPv4Unspecified(), netip.IPv6Unspecified()} {
		if rr := addrRR(q.Name, q.Qtype, a, localTTL); rr != nil {
			m.Answer = append(m.Answer, rr)
		}
	}
	return result{msg: m, src: srcBlocked}
}

// finish gives the reply its EDNS record, mirroring the client's (RFC 6891:
// none if the query had none), and fits it into maxSize.
func (h *Handler) finish(req *dns.Msg, res *result, maxSize int) {
	m := res.msg
	m.RecursionAvailable = true
	opt := req.IsEdns0()
	if m.Rcode > 0xF && opt == nil {
		// An upstream's extended rcode (BADCOOKIE...) cannot be sent to
		// a client without EDNS.
		m.Rcode = dns.RcodeServerFailure
	}
	if opt != nil {
		o := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
		o.SetUDPSize(upstreamEDNSSize)
		if opt.Do() {
			o.SetDo()
		}
		if res.ede != nil {
			o.Option = append(o.Option, res.ede)
		}
		m.Extra = append(m.Extra, o)
	}
	m.Truncate(min(max(maxSize, dns.MinMsgSize), dns.MaxMsgSize))
	m.Compress = true
}
