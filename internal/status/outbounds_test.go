package status

import (
	"reflect"
	"strings"
	"testing"

	"github.com/gatewayd/gatewayd/internal/metrics"
	"github.com/gatewayd/gatewayd/internal/metrics/metricstest"
	"github.com/gatewayd/gatewayd/outbound"
)

// fillNested is fillCounters for structs with nested structs of counters:
// every uint64 field, at any depth, gets a distinct value; the map is keyed
// by the field's dotted path. next is the last value given out.
func fillNested(v reflect.Value, prefix string, next *uint64, out map[string]float64) {
	for i := range v.NumField() {
		f, name := v.Field(i), prefix+v.Type().Field(i).Name
		switch f.Kind() {
		case reflect.Uint64:
			*next++
			f.SetUint(*next)
			out[name] = float64(*next)
		case reflect.Struct:
			fillNested(f, name+".", next, out)
		}
	}
}

func TestOutboundCollector(t *testing.T) {
	var proxy outbound.Stats
	fields := map[string]float64{}
	next := uint64(fieldBase)
	fillNested(reflect.ValueOf(&proxy).Elem(), "", &next, fields)
	direct := outbound.Stats{Dials: 5}
	e := metricstest.Gather(t, OutboundCollector(func() map[string]outbound.Stats {
		return map[string]outbound.Stats{"proxy": proxy, "direct": direct}
	}))
	checkEveryField(t, fields, e)
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
	kinds := reflect.TypeFor[outbound.Failures]().NumField()
	if got := len(e["gatewayd_outbound_dial_failures_total"].Metric); got != 2*kinds {
		t.Errorf("%d failure samples for 2 outbounds, want %d (one per kind)", got, 2*kinds)
	}
}

func TestOutboundCollectorNone(t *testing.T) {
	w := metrics.NewWriter()
	OutboundCollector(func() map[string]outbound.Stats { return nil })(w)
	var out strings.Builder
	if _, err := w.WriteTo(&out); err != nil {
		t.Fatal(err)
	}
	if err := w.Err(); err != nil || out.Len() != 0 {
		t.Errorf("no outbounds: wrote %q, err %v; want nothing", out.String(), err)
	}
}

func TestRuleReappliesCollector(t *testing.T) {
	n := uint64(3)
	c := RuleReappliesCollector(func() uint64 { return n })
	if got := metricstest.Gather(t, c).Value(t, "gatewayd_rule_reapplies_total"); got != 3 {
		t.Errorf("reapplies = %v, want 3", got)
	}
	n = 4
	if got := metricstest.Gather(t, c).Value(t, "gatewayd_rule_reapplies_total"); got != 4 {
		t.Errorf("reapplies read once: %v after the count rose to 4", got)
	}
}

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
