package outbound

import (
	"maps"
	"slices"

	"github.com/gatewayd/gatewayd/internal/metrics"
)

// Collector exposes every outbound's counters: pass a func that
// returns them by outbound name (the policy's outbounds, each one's
// Stats). An outbound counts the flows the routing policy sends through
// it; flows the relays dial themselves (no policy configured) are not
// counted here.
func Collector(stats func() map[string]Stats) metrics.Collector {
	return func(w *metrics.Writer) {
		all := stats()
		for _, name := range slices.Sorted(maps.Keys(all)) {
			writeOutbound(w, metrics.L("outbound", name), all[name])
		}
	}
}

func writeOutbound(w *metrics.Writer, ob metrics.Label, s Stats) {
	w.Counter("gatewayd_outbound_dials_total",
		"Flows an outbound was asked to open (TCP connections and UDP sessions), whatever the outcome.", float64(s.Dials), ob)
	w.Gauge("gatewayd_outbound_dialing", "Dials of an outbound in progress now (connect and proxy handshake).", float64(s.Dialing), ob)
	const failName, failHelp = "gatewayd_outbound_dial_failures_total", "Failed dials of an outbound, by kind of failure."
	f := s.Failures
	w.CountersBy(failName, failHelp, "kind", []metrics.Keyed{
		{Key: KindRefused.String(), N: f.Refused},
		{Key: KindTimeout.String(), N: f.Timeout},
		{Key: KindUnreachable.String(), N: f.Unreachable},
		{Key: KindAuth.String(), N: f.Auth},
		{Key: KindHandshake.String(), N: f.Handshake},
		{Key: KindProxy.String(), N: f.Proxy},
		{Key: KindCanceled.String(), N: f.Canceled},
		{Key: KindUnsupported.String(), N: f.Unsupported},
		{Key: KindOther.String(), N: f.Other},
	}, ob)
	w.Counter("gatewayd_outbound_rejected_total", "Flows a reject outbound refused.", float64(s.Rejected), ob)
	w.Counter("gatewayd_outbound_fallbacks_total", "Dials an outbound's primary failed, so its fallback was tried.", float64(s.Fallbacks), ob)
	w.Gauge("gatewayd_outbound_udp_associations", "SOCKS5 UDP associations of an outbound open now.", float64(s.UDPActive), ob)
	const dropName, dropHelp = "gatewayd_outbound_udp_drops_total", "Datagrams from a SOCKS5 proxy that were not delivered, by reason."
	w.Counter(dropName, dropHelp, float64(s.UDPDropped.Fragments), ob, metrics.L("reason", "fragmented"))
	w.Counter(dropName, dropHelp, float64(s.UDPDropped.Malformed), ob, metrics.L("reason", "malformed"))
}
