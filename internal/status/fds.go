package status

import (
	"github.com/gatewayd/gatewayd/internal/fdbudget"
	"github.com/gatewayd/gatewayd/internal/metrics"
)

// FDBudgetCollector exposes the descriptor budget the relays share: pass
// budget.Stats (a nil budget reports zeros).
func FDBudgetCollector(stats func() fdbudget.Stats) metrics.Collector {
	return func(w *metrics.Writer) {
		s := stats()
		w.Gauge("gatewayd_fd_budget_capacity", "Descriptors flows may hold: the open-file limit less those open at start and the reserve.", float64(s.Capacity))
		w.Gauge("gatewayd_fd_budget_reserve", "Descriptors kept free for self-healing, DNS, the status endpoint and reloads.", float64(s.Reserve))
		w.Gauge("gatewayd_fd_budget_used", "Descriptors held by flows now (TCP sockets, splice pipes).", float64(s.Used))
		w.Counter("gatewayd_fd_budget_denied_total", "Flows or pipes refused because the budget was spent.", float64(s.Denied))
	}
}
