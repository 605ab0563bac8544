package dns

import (
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/internal/metrics/metricstest"
)

func TestDNSCollector(t *testing.T) {
	var s Stats
	fields := metricstest.FillCounters(t, &s)
	s.Upstreams = []UpstreamStats{
		{Upstream: "udp://198.18.1.53:53", Queries: 10, Errors: 2, LatencySum: 1500 * time.Millisecond, LatencyCount: 8},
		{Upstream: "tls://198.18.1.54:853", Queries: 4, Errors: 0, LatencySum: 0, LatencyCount: 0},
	}
	e := metricstest.Gather(t, Collector(func() Stats { return s }), ServerCollector(func() uint64 { return 77 }))
	metricstest.CheckEveryField(t, fields, e)
	if got := e.Value(t, "gatewayd_dns_query_results_total", "result", "cache_hit"); got != float64(s.CacheHits) {
		t.Errorf("cache hits = %v, want %d", got, s.CacheHits)
	}
	if got := e.Value(t, "gatewayd_dns_queries_total", "transport", "tcp"); got != float64(s.QueriesTCP) {
		t.Errorf("tcp queries = %v, want %d", got, s.QueriesTCP)
	}
	up := "udp://198.18.1.53:53"
	if got := e.Value(t, "gatewayd_dns_upstream_errors_total", "upstream", up); got != 2 {
		t.Errorf("upstream errors = %v, want 2", got)
	}
	lat := e["gatewayd_dns_upstream_latency_seconds"]
	for _, m := range lat.GetMetric() {
		if metricstest.LabelKey(m.Label) == "{upstream="+up+"}" {
			if sum, n := m.GetSummary().GetSampleSum(), m.GetSummary().GetSampleCount(); sum != 1.5 || n != 8 {
				t.Errorf("latency summary = %v s over %d, want 1.5 s over 8", sum, n)
			}
		}
	}
	if len(lat.GetMetric()) != len(s.Upstreams) {
		t.Errorf("latency summaries for %d upstreams, want %d", len(lat.GetMetric()), len(s.Upstreams))
	}
	if got := e.Value(t, "gatewayd_dns_dropped_total"); got != 77 {
		t.Errorf("dropped = %v, want 77", got)
	}
}
