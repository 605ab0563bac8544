package status

import (
	"testing"

	"github.com/gatewayd/gatewayd/internal/metrics/metricstest"
)

func TestActiveFlowsCollector(t *testing.T) {
	flows := []Flow{
		{Proto: "tcp", Outbound: "direct"}, {Proto: "tcp", Outbound: "direct"}, {Proto: "udp", Outbound: "direct"},
		{Proto: "tcp", Outbound: "proxy"}, {Proto: "udp", Outbound: ""},
	}
	e := metricstest.Gather(t, ActiveFlowsCollector(func() []Flow { return flows }))
	for _, c := range []struct {
		outbound, proto string
		want            float64
	}{{"direct", "tcp", 2}, {"direct", "udp", 1}, {"proxy", "tcp", 1}, {"unknown", "udp", 1}} {
		if got := e.Value(t, "gatewayd_outbound_flows_active", "outbound", c.outbound, "proto", c.proto); got != c.want {
			t.Errorf("flows_active{outbound=%s,proto=%s} = %v, want %v", c.outbound, c.proto, got, c.want)
		}
	}
	if got := len(e["gatewayd_outbound_flows_active"].Metric); got != 4 {
		t.Errorf("%d samples, want 4 (one per outbound and protocol with flows)", got)
	}
	flows = nil
	if got := len(metricstest.Gather(t, ActiveFlowsCollector(func() []Flow { return flows }))); got != 0 {
		t.Errorf("no flows: %d families, want none", got)
	}
}
