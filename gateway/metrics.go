package gateway

import "github.com/gatewayd/gatewayd/internal/metrics"

// FastPathCollector exposes the kernel fast path's counters: pass
// FastPath.Stats.
func FastPathCollector(stats func() FastPathStats) metrics.Collector {
	return func(w *metrics.Writer) {
		s := stats()
		w.Counter("gatewayd_fastpath_static_added_total", "Fast path entries added for the direct destinations of the rules.", float64(s.Added))
		w.Counter("gatewayd_fastpath_learned_total", "Addresses DNS answered for names going direct, added to or refreshed in the fast path.", float64(s.Learned))
		w.Counter("gatewayd_fastpath_covered_total", "Learned addresses not added: a static fast path entry holds them already.", float64(s.Covered))
		w.Counter("gatewayd_fastpath_withheld_total", "Learned addresses kept off the fast path: DNS also gave them for a name that does not go direct.", float64(s.Withheld))
		w.Counter("gatewayd_fastpath_withdrawn_total", "Learned fast path entries removed: DNS later gave them for a name that does not go direct.", float64(s.Withdrawn))
		w.Counter("gatewayd_fastpath_failures_total", "Fast path entries not added or removed (set full, kernel error).", float64(s.Failed))
	}
}

// ReappliesCollector exposes how often gatewayd re-applied its
// interception (mangle rules, policy routing) after something else had
// changed or removed it: pass the Gateway's Reapplies. A rising count
// means a firewall reload or another tool keeps undoing gatewayd's rules.
func ReappliesCollector(reapplies func() uint64) metrics.Collector {
	return func(w *metrics.Writer) {
		w.Counter("gatewayd_rule_reapplies_total",
			"Times the interception was re-applied because something else had changed it (self-healing).", float64(reapplies()))
	}
}
