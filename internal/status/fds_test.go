package status

import (
	"testing"

	"github.com/gatewayd/gatewayd/internal/fdbudget"
	"github.com/gatewayd/gatewayd/internal/metrics/metricstest"
)

func TestFDBudgetCollector(t *testing.T) {
	b := fdbudget.New(10)
	b.Take(4)
	b.Take(8) // refused
	e := metricstest.Gather(t, FDBudgetCollector(b.Stats))
	for name, want := range map[string]float64{
		"gatewayd_fd_budget_capacity":     10,
		"gatewayd_fd_budget_used":         4,
		"gatewayd_fd_budget_denied_total": 1,
		"gatewayd_fd_budget_reserve":      0,
	} {
		if got := e.Value(t, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
}
