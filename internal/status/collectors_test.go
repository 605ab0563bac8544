package status

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/dns"
	"github.com/gatewayd/gatewayd/internal/metrics"
	"github.com/gatewayd/gatewayd/internal/metrics/metricstest"
	"github.com/gatewayd/gatewayd/tcp"
	"github.com/gatewayd/gatewayd/udp"
)

// fieldBase spaces the distinct values fillCounters gives each field, far
// from any constant a collector writes (0, 1, a start time).
const fieldBase = 1000

// fillCounters sets every uint64 field of the struct *p to a distinct value
// (fieldBase+1, +2, …) and returns field name -> value.
func fillCounters(t *testing.T, p any) map[string]float64 {
	t.Helper()
	v := reflect.ValueOf(p).Elem()
	out := map[string]float64{}
	for i := range v.NumField() {
		if f := v.Field(i); f.Kind() == reflect.Uint64 {
			n := uint64(fieldBase + i + 1)
			f.SetUint(n)
			out[v.Type().Field(i).Name] = float64(n)
		}
	}
	if len(out) == 0 {
		t.Fatalf("%T has no uint64 fields", p)
	}
	return out
}

// checkEveryField fails for each stats field whose value appears in no
// sample: a counter added to the stats type but not to its collector.
func checkEveryField(t *testing.T, fields map[string]float64, e metricstest.Exposition) {
	t.Helper()
	got := e.Values()
	for name, v := range fields {
		if !slices.Contains(got, v) {
			t.Errorf("stats field %s (value %v) is not exposed", name, v)
		}
	}
}

func TestTCPCollector(t *testing.T) {
	var s tcp.Stats
	fields := fillCounters(t, &s)
	e := metricstest.Gather(t, TCPCollector(func() tcp.Stats { return s }, metrics.L("outbound", "direct")))
	checkEveryField(t, fields, e)
	for _, c := range []struct {
		name   string
		labels []string
		want   uint64
	}{
		{"gatewayd_flows_active", []string{"proto", "tcp"}, s.Active},
		{"gatewayd_flows_total", []string{"proto", "tcp"}, s.Accepted},
		{"gatewayd_bytes_total", []string{"proto", "tcp", "direction", "up"}, s.BytesUp},
		{"gatewayd_bytes_total", []string{"proto", "tcp", "direction", "down"}, s.BytesDown},
		{"gatewayd_tcp_refused_total", []string{"reason", "max_connections"}, s.Rejected},
		{"gatewayd_tcp_refused_total", []string{"reason", "fd_limit"}, s.FDRefused},
		{"gatewayd_tcp_refused_total", []string{"reason", "loop"}, s.LoopRefused},
		{"gatewayd_tcp_refused_total", []string{"reason", "dial_failed"}, s.DialFailed},
	} {
		labels := append([]string{"outbound", "direct"}, c.labels...)
		if got := e.Value(t, c.name, labels...); got != float64(c.want) {
			t.Errorf("%s%v = %v, want %d", c.name, labels, got, c.want)
		}
	}
}

func TestUDPCollector(t *testing.T) {
	var s udp.Stats
	fields := fillCounters(t, &s)
	e := metricstest.Gather(t, UDPCollector(func() udp.Stats { return s }))
	checkEveryField(t, fields, e)
	for _, c := range []struct {
		name   string
		labels []string
		want   uint64
	}{
		{"gatewayd_flows_active", []string{"proto", "udp"}, s.SessionsActive},
		{"gatewayd_flows_total", []string{"proto", "udp"}, s.SessionsTotal},
		{"gatewayd_bytes_total", []string{"proto", "udp", "direction", "up"}, s.BytesUp},
		{"gatewayd_udp_datagrams_total", []string{"direction", "down"}, s.DatagramsDown},
		{"gatewayd_udp_sessions_closed_total", []string{"reason", "idle"}, s.SessionsExpired},
		{"gatewayd_udp_sessions_closed_total", []string{"reason", "evicted"}, s.SessionsEvicted},
		{"gatewayd_udp_reply_sockets", nil, s.ReplySockets},
		{"gatewayd_udp_raw_replies_total", nil, s.DatagramsDownRaw},
		{"gatewayd_udp_drops_total", []string{"reason", "loop"}, s.DropLoop},
		{"gatewayd_udp_drops_total", []string{"reason", "send_down_failed"}, s.DropSendDown},
	} {
		if got := e.Value(t, c.name, c.labels...); got != float64(c.want) {
			t.Errorf("%s%v = %v, want %d", c.name, c.labels, got, c.want)
		}
	}
	// Every Drop field has its own reason.
	drops := 0
	for name := range fields {
		if strings.HasPrefix(name, "Drop") {
			drops++
		}
	}
	if got := len(e["gatewayd_udp_drops_total"].Metric); got != drops {
		t.Errorf("gatewayd_udp_drops_total has %d reasons, udp.Stats has %d Drop fields", got, drops)
	}
}

// TestRelayFamiliesMerge: TCP and UDP write the same families; the
// registry must emit each once, with both protos (the parser rejects a
// second TYPE line).
func TestRelayFamiliesMerge(t *testing.T) {
	ts := tcp.Stats{Active: 3, BytesUp: 10}
	us := udp.Stats{SessionsActive: 5, BytesUp: 20}
	e := metricstest.Gather(t,
		TCPCollector(func() tcp.Stats { return ts }),
		UDPCollector(func() udp.Stats { return us }))
	if got := e.Value(t, "gatewayd_flows_active", "proto", "tcp"); got != 3 {
		t.Errorf("tcp active = %v, want 3", got)
	}
	if got := e.Value(t, "gatewayd_flows_active", "proto", "udp"); got != 5 {
		t.Errorf("udp active = %v, want 5", got)
	}
	if got := e.Value(t, "gatewayd_bytes_total", "proto", "udp", "direction", "up"); got != 20 {
		t.Errorf("udp bytes up = %v, want 20", got)
	}
}

func TestDNSCollector(t *testing.T) {
	var s dns.Stats
	fields := fillCounters(t, &s)
	s.Upstreams = []dns.UpstreamStats{
		{Upstream: "udp://198.18.1.53:53", Queries: 10, Errors: 2, LatencySum: 1500 * time.Millisecond, LatencyCount: 8},
		{Upstream: "tls://198.18.1.54:853", Queries: 4, Errors: 0, LatencySum: 0, LatencyCount: 0},
	}
	e := metricstest.Gather(t, DNSCollector(func() dns.Stats { return s }), DNSServerCollector(func() uint64 { return 77 }))
	checkEveryField(t, fields, e)
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
