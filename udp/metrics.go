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
		for _, d := range dropReasons(s) {
			w.Counter(dropName, dropHelp, float64(d.n), metrics.With(labels, metrics.L("reason", d.key))...)
		}
	}
}

// keyedCount is one sample of a family split by one label: its value and count.
type keyedCount struct {
	key string
	n   uint64
}

// dropReasons lists every Drop field of Stats under a stable reason name.
func dropReasons(s Stats) []keyedCount {
	return []keyedCount{
		{"truncated", s.DropTruncated},
		{"control_truncated", s.DropCtrunc},
		{"no_original_destination", s.DropNoOrigDst},
		{"loop", s.DropLoop},
		{"family_mismatch", s.DropFamily},
		{"queue_full", s.DropQueue},
		{"fd_limit", s.DropFDs},
		{"dial_failed", s.DropDial},
		{"rejected", s.DropRejected},
		{"send_up_failed", s.DropSendUp},
		{"local_source", s.DropLocalSource},
		{"reply_socket_failed", s.DropReplySocket},
		{"send_down_failed", s.DropSendDown},
		{"held_at_shutdown", s.DropHeld},
	}
}
