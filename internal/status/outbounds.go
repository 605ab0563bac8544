package status

import (
	"cmp"
	"maps"
	"slices"

	"github.com/gatewayd/gatewayd/internal/metrics"
	"github.com/gatewayd/gatewayd/outbound"
)

// OutboundCollector exposes every outbound's counters: pass a func that
// returns them by outbound name (the policy's outbounds, each one's
// Stats). An outbound counts the flows the routing policy sends through
// it; flows the relays dial themselves (no policy configured) are not
// counted here.
func OutboundCollector(stats func() map[string]outbound.Stats) metrics.Collector {
	return func(w *metrics.Writer) {
		all := stats()
		for _, name := range slices.Sorted(maps.Keys(all)) {
			writeOutbound(w, metrics.L("outbound", name), all[name])
		}
	}
}

func writeOutbound(w *metrics.Writer, ob metrics.Label, s outbound.Stats) {
	w.Counter("gatewayd_outbound_dials_total",
		"Flows an outbound was asked to open (TCP connections and UDP sessions), whatever the outcome.", float64(s.Dials), ob)
	w.Gauge("gatewayd_outbound_dialing", "Dials of an outbound in progress now (connect and proxy handshake).", float64(s.Dialing), ob)
	const failName, failHelp = "gatewayd_outbound_dial_failures_total", "Failed dials of an outbound, by kind of failure."
	f := s.Failures
	for _, k := range []keyedCount{
		{outbound.KindRefused.String(), f.Refused},
		{outbound.KindTimeout.String(), f.Timeout},
		{outbound.KindUnreachable.String(), f.Unreachable},
		{outbound.KindAuth.String(), f.Auth},
		{outbound.KindHandshake.String(), f.Handshake},
		{outbound.KindProxy.String(), f.Proxy},
		{outbound.KindCanceled.String(), f.Canceled},
		{outbound.KindUnsupported.String(), f.Unsupported},
		{outbound.KindOther.String(), f.Other},
	} {
		w.Counter(failName, failHelp, float64(k.n), ob, metrics.L("kind", k.key))
	}
	w.Counter("gatewayd_outbound_rejected_total", "Flows a reject outbound refused.", float64(s.Rejected), ob)
	w.Counter("gatewayd_outbound_fallbacks_total", "Dials an outbound's primary failed, so its fallback was tried.", float64(s.Fallbacks), ob)
	w.Gauge("gatewayd_outbound_udp_associations", "SOCKS5 UDP associations of an outbound open now.", float64(s.UDPActive), ob)
	const dropName, dropHelp = "gatewayd_outbound_udp_drops_total", "Datagrams from a SOCKS5 proxy that were not delivered, by reason."
	w.Counter(dropName, dropHelp, float64(s.UDPDropped.Fragments), ob, metrics.L("reason", "fragmented"))
	w.Counter(dropName, dropHelp, float64(s.UDPDropped.Malformed), ob, metrics.L("reason", "malformed"))
}

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

// RuleReappliesCollector exposes how often gatewayd re-applied its
// interception (mangle rules, policy routing) after something else had
// changed or removed it: pass the gateway's Reapplies. A rising count
// means a firewall reload or another tool keeps undoing gatewayd's rules.
func RuleReappliesCollector(reapplies func() uint64) metrics.Collector {
	return func(w *metrics.Writer) {
		w.Counter("gatewayd_rule_reapplies_total",
			"Times the interception was re-applied because something else had changed it (self-healing).", float64(reapplies()))
	}
}
