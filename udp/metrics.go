package udp

import "github.com/gatewayd/gatewayd/internal/metrics"

// Label values: the proto of the relay families (metrics.WriteFlows) and
// the directions.
const (
	metricProto = "udp"
	metricUp    = "up"
	metricDown  = "down"
)

// Collector exposes a Server's counters: pass srv.Stats. Every sample also
// carries labels.
func Collector(stats func() Stats, labels ...metrics.Label) metrics.Collector {
	return func(w *metrics.Writer) {
		s := stats()
		metrics.WriteFlows(w, metricProto, metrics.FlowCounts{Active: s.SessionsActive, Total: s.SessionsTotal,
			BytesUp: s.BytesUp, BytesDown: s.BytesDown}, labels...)

		const dgName, dgHelp = "gatewayd_udp_datagrams_total", "UDP datagrams relayed; up is client to remote."
		w.Counter(dgName, dgHelp, float64(s.DatagramsUp), metrics.With(labels, metrics.L("direction", metricUp))...)
		w.Counter(dgName, dgHelp, float64(s.DatagramsDown), metrics.With(labels, metrics.L("direction", metricDown))...)

		const closedName, closedHelp = "gatewayd_udp_sessions_closed_total", "UDP sessions closed by gatewayd, by reason."
		w.Counter(closedName, closedHelp, float64(s.SessionsEvicted), metrics.With(labels, metrics.L("reason", "evicted"))...)
		w.Counter(closedName, closedHelp, float64(s.SessionsExpired), metrics.With(labels, metrics.L("reason", "idle"))...)

		w.Gauge("gatewayd_udp_reply_sockets", "Transparent UDP reply sockets open now (bound to a remote that streams).",
			float64(s.ReplySockets), labels...)
		w.Counter("gatewayd_udp_raw_replies_total",
			"UDP datagrams to clients sent from the raw reply sockets (no descriptor per remote); part of direction=down.",
			float64(s.DatagramsDownRaw), labels...)
		w.Counter("gatewayd_udp_flows_held_total",
			"UDP flows whose first datagrams were held until the route was known (a QUIC ClientHello over several Initials).",
			float64(s.FlowsHeld), labels...)
		w.Counter("gatewayd_udp_hold_timeouts_total", "Held UDP flows routed after the hold timed out, without a name.",
			float64(s.HoldTimeouts), labels...)

		const dropName, dropHelp = "gatewayd_udp_drops_total", "UDP datagrams not relayed, by reason."
		w.CountersBy(dropName, dropHelp, "reason", dropReasons(s), labels...)
	}
}

// dropReasons lists every Drop field of Stats under a stable reason name.
func dropReasons(s Stats) []metrics.Keyed {
	return []metrics.Keyed{
		{Key: "truncated", N: s.DropTruncated},
		{Key: "control_truncated", N: s.DropCtrunc},
		{Key: "no_original_destination", N: s.DropNoOrigDst},
		{Key: "loop", N: s.DropLoop},
		{Key: "family_mismatch", N: s.DropFamily},
		{Key: "queue_full", N: s.DropQueue},
		{Key: "fd_limit", N: s.DropFDs},
		{Key: "dial_failed", N: s.DropDial},
		{Key: "rejected", N: s.DropRejected},
		{Key: "send_up_failed", N: s.DropSendUp},
		{Key: "local_source", N: s.DropLocalSource},
		{Key: "reply_socket_failed", N: s.DropReplySocket},
		{Key: "send_down_failed", N: s.DropSendDown},
		{Key: "held_at_shutdown", N: s.DropHeld},
	}
}
