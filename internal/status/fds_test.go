package status

import (
	"testing"

	"github.com/gatewayd/gatewayd/internal/fdbudget"
)

func TestFDBudgetCollector(t *testing.T) {
	b := fdbudget.New(10)
	b.Take(4)
	b.Take(8) // refused
	e := gather(t, FDBudgetCollector(b.Stats))
	for name, want := range map[string]float64{
		"gatewayd_fd_budget_capacity":     10,
		"gatewayd_fd_budget_used":         4,
		"gatewayd_fd_budget_denied_total": 1,
		"gatewayd_fd_budget_reserve":      0,
	} {
		if got := e.value(t, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
}
