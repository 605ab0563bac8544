package gateway

import (
	"testing"

	"github.com/gatewayd/gatewayd/internal/metrics/metricstest"
)

func TestFastPathCollector(t *testing.T) {
	s := FastPathStats{Added: 1, Learned: 2, Covered: 3, Withheld: 4, Withdrawn: 5, Failed: 6}
	e := metricstest.Gather(t, FastPathCollector(func() FastPathStats { return s }))
	for name, want := range map[string]float64{
		"gatewayd_fastpath_static_added_total": 1, "gatewayd_fastpath_learned_total": 2,
		"gatewayd_fastpath_covered_total": 3, "gatewayd_fastpath_withheld_total": 4,
		"gatewayd_fastpath_withdrawn_total": 5, "gatewayd_fastpath_failures_total": 6,
	} {
		if got := e.Value(t, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
}

func TestReappliesCollector(t *testing.T) {
	n := uint64(3)
	c := ReappliesCollector(func() uint64 { return n })
	if got := metricstest.Gather(t, c).Value(t, "gatewayd_rule_reapplies_total"); got != 3 {
		t.Errorf("reapplies = %v, want 3", got)
	}
	n = 4
	if got := metricstest.Gather(t, c).Value(t, "gatewayd_rule_reapplies_total"); got != 4 {
		t.Errorf("reapplies read once: %v after the count rose to 4", got)
	}
}
