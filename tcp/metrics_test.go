package tcp

import (
	"testing"

	"github.com/gatewayd/gatewayd/internal/metrics"
	"github.com/gatewayd/gatewayd/internal/metrics/metricstest"
)

func TestTCPCollector(t *testing.T) {
	var s Stats
	fields := metricstest.FillCounters(t, &s)
	e := metricstest.Gather(t, Collector(func() Stats { return s }, metrics.L("outbound", "direct")))
	metricstest.CheckEveryField(t, fields, e)
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
