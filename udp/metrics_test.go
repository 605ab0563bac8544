package udp

import (
	"strings"
	"testing"

	"github.com/gatewayd/gatewayd/internal/metrics/metricstest"
	"github.com/gatewayd/gatewayd/tcp"
)

func TestUDPCollector(t *testing.T) {
	var s Stats
	fields := metricstest.FillCounters(t, &s)
	e := metricstest.Gather(t, Collector(func() Stats { return s }))
	metricstest.CheckEveryField(t, fields, e)
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
		t.Errorf("gatewayd_udp_drops_total has %d reasons, Stats has %d Drop fields", got, drops)
	}
}

// TestRelayFamiliesMerge: TCP and UDP write the same families; the
// registry must emit each once, with both protos (the parser rejects a
// second TYPE line).
func TestRelayFamiliesMerge(t *testing.T) {
	ts := tcp.Stats{Active: 3, BytesUp: 10}
	us := Stats{SessionsActive: 5, BytesUp: 20}
	e := metricstest.Gather(t,
		tcp.Collector(func() tcp.Stats { return ts }),
		Collector(func() Stats { return us }))
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
