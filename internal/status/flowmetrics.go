package status

import (
	"cmp"
	"maps"
	"slices"

	"github.com/gatewayd/gatewayd/internal/metrics"
)

// unknownOutbound labels flows whose outbound has no name (a route a
// reload added after the flow's policy was read).
const unknownOutbound = "unknown"

// ActiveFlowsCollector exposes the active flows (TCP connections and UDP
// sessions) by outbound and protocol, counted from flows at scrape time:
// pass the daemon's flows func, the one /status lists.
func ActiveFlowsCollector(flows func() []Flow) metrics.Collector {
	type key struct{ outbound, proto string }
	return func(w *metrics.Writer) {
		n := map[key]int{}
		for _, f := range flows() {
			k := key{f.Outbound, f.Proto}
			if k.outbound == "" {
				k.outbound = unknownOutbound
			}
			n[k]++
		}
		keys := slices.SortedFunc(maps.Keys(n), func(a, b key) int {
			return cmp.Or(cmp.Compare(a.outbound, b.outbound), cmp.Compare(a.proto, b.proto))
		})
		for _, k := range keys {
			w.Gauge("gatewayd_outbound_flows_active", "Flows open now (TCP connections, UDP sessions) by the outbound they leave through.",
				float64(n[k]), metrics.L("outbound", k.outbound), metrics.L("proto", k.proto))
		}
	}
}
