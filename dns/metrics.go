package dns

import "github.com/gatewayd/gatewayd/internal/metrics"

// Collector exposes the resolver's counters: pass handler.Stats. Every
// query is counted once by transport and once by result (the partition
// Stats documents); stale answers, SERVFAILs and rebinding refusals
// come on top.
func Collector(stats func() Stats) metrics.Collector {
	return func(w *metrics.Writer) {
		s := stats()
		const qName, qHelp = "gatewayd_dns_queries_total", "DNS queries received, by transport."
		w.CountersBy(qName, qHelp, "transport", []metrics.Keyed{
			{Key: "udp", N: s.QueriesUDP}, {Key: "tcp", N: s.QueriesTCP}, {Key: "other", N: s.QueriesOther}})
		const rName, rHelp = "gatewayd_dns_query_results_total", "DNS queries by how they were handled: each query counts in exactly one result."
		w.CountersBy(rName, rHelp, "result", []metrics.Keyed{
			{Key: "malformed", N: s.Malformed},
			{Key: "hosts", N: s.Hosts},
			{Key: "blocked", N: s.Blocked},
			{Key: "cache_hit", N: s.CacheHits},
			{Key: "cache_miss", N: s.CacheMisses},
		})
		w.Counter("gatewayd_dns_stale_answers_total", "Cache misses answered from an expired entry because every upstream failed.", float64(s.CacheStale))
		w.Counter("gatewayd_dns_servfail_total", "SERVFAIL answers sent because every upstream failed.", float64(s.ServFail))
		w.Counter("gatewayd_dns_rebinding_refused_total", "Answers refused because a public name resolved to a private address.", float64(s.Rebinding))
		w.Counter("gatewayd_dns_forwarded_total", "Upstream exchanges started (identical concurrent misses share one).", float64(s.Forwarded))
		w.Counter("gatewayd_dns_shared_total", "Cache misses that waited for an identical query's upstream exchange.", float64(s.Shared))
		w.Gauge("gatewayd_dns_cache_entries", "Entries in the DNS cache now.", float64(s.CacheEntries))
		w.Counter("gatewayd_dns_cache_evictions_total", "DNS cache entries dropped to stay within the cache size.", float64(s.CacheEvicted))
		for _, u := range s.Upstreams {
			up := metrics.L("upstream", u.Upstream)
			w.Counter("gatewayd_dns_upstream_queries_total", "Tries sent to a DNS upstream.", float64(u.Queries), up)
			w.Counter("gatewayd_dns_upstream_errors_total", "Tries to a DNS upstream that failed: network error, timeout, SERVFAIL/REFUSED, bad answer.", float64(u.Errors), up)
			w.Summary("gatewayd_dns_upstream_latency_seconds", "Round trip of the DNS upstream tries that got an answer.",
				u.LatencySum.Seconds(), u.LatencyCount, up)
		}
	}
}

// ServerCollector exposes the DNS hijack transport's drops: pass
// server.Dropped.
func ServerCollector(dropped func() uint64) metrics.Collector {
	return func(w *metrics.Writer) {
		w.Counter("gatewayd_dns_dropped_total", "DNS queries dropped by the hijack transport: undecodable destination, send errors, garbage sent to an address no reply socket is open for.", float64(dropped()))
	}
}
