package outbound

import (
	"reflect"
	"strings"
	"testing"

	"github.com/gatewayd/gatewayd/internal/metrics"
	"github.com/gatewayd/gatewayd/internal/metrics/metricstest"
)

func TestOutboundCollector(t *testing.T) {
	var proxy Stats
	fields := metricstest.FillNested(t, &proxy)
	direct := Stats{Dials: 5}
	e := metricstest.Gather(t, Collector(func() map[string]Stats {
		return map[string]Stats{"proxy": proxy, "direct": direct}
	}))
	metricstest.CheckEveryField(t, fields, e)
	for _, c := range []struct {
		name   string
		labels []string
		want   uint64
	}{
		{"gatewayd_outbound_dials_total", []string{"outbound", "proxy"}, proxy.Dials},
		{"gatewayd_outbound_dials_total", []string{"outbound", "direct"}, 5},
		{"gatewayd_outbound_dialing", []string{"outbound", "proxy"}, proxy.Dialing},
		{"gatewayd_outbound_dial_failures_total", []string{"outbound", "proxy", "kind", "auth"}, proxy.Failures.Auth},
		{"gatewayd_outbound_dial_failures_total", []string{"outbound", "proxy", "kind", "timeout"}, proxy.Failures.Timeout},
		{"gatewayd_outbound_dial_failures_total", []string{"outbound", "direct", "kind", "refused"}, 0},
		{"gatewayd_outbound_rejected_total", []string{"outbound", "proxy"}, proxy.Rejected},
		{"gatewayd_outbound_fallbacks_total", []string{"outbound", "proxy"}, proxy.Fallbacks},
		{"gatewayd_outbound_udp_associations", []string{"outbound", "proxy"}, proxy.UDPActive},
		{"gatewayd_outbound_udp_drops_total", []string{"outbound", "proxy", "reason", "fragmented"}, proxy.UDPDropped.Fragments},
		{"gatewayd_outbound_udp_drops_total", []string{"outbound", "proxy", "reason", "malformed"}, proxy.UDPDropped.Malformed},
	} {
		if got := e.Value(t, c.name, c.labels...); got != float64(c.want) {
			t.Errorf("%s%v = %v, want %d", c.name, c.labels, got, c.want)
		}
	}
	// Each failure kind is one sample, none summed into another.
	kinds := reflect.TypeFor[Failures]().NumField()
	if got := len(e["gatewayd_outbound_dial_failures_total"].Metric); got != 2*kinds {
		t.Errorf("%d failure samples for 2 outbounds, want %d (one per kind)", got, 2*kinds)
	}
}

func TestOutboundCollectorNone(t *testing.T) {
	w := metrics.NewWriter()
	Collector(func() map[string]Stats { return nil })(w)
	var out strings.Builder
	if _, err := w.WriteTo(&out); err != nil {
		t.Fatal(err)
	}
	if err := w.Err(); err != nil || out.Len() != 0 {
		t.Errorf("no outbounds: wrote %q, err %v; want nothing", out.String(), err)
	}
}
