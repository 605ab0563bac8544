package status

import (
	"github.com/gatewayd/gatewayd/internal/metrics"
	"github.com/gatewayd/gatewayd/tcp"
	"github.com/gatewayd/gatewayd/udp"
)

// Families shared by the TCP and UDP relays, told apart by the proto label.
const (
	metricFlowsActive = "gatewayd_flows_active"
	helpFlowsActive   = "Flows being relayed now: TCP connections, UDP sessions."
	metricFlowsTotal  = "gatewayd_flows_total"
	helpFlowsTotal    = "Flows started: TCP connections accepted (refused ones included), UDP sessions created."
	metricBytes       = "gatewayd_bytes_total"
	helpBytes         = "Payload bytes relayed; up is client to remote. TCP adds a flow's bytes when it ends."
)

// Label values of the shared families.
const (
	protoTCP = "tcp"
	protoUDP = "udp"
	dirUp    = "up"
	dirDown  = "down"
)

// TCPCollector exposes a tcp.Server's counters: pass srv.Stats. Every
// sample also carries labels (e.g. metrics.L("outbound", "direct") where several
// servers relay through different outbounds).
func TCPCollector(stats func() tcp.Stats, labels ...metrics.Label) metrics.Collector {
	return func(w *metrics.Writer) {
		s := stats()
		proto := with(labels, metrics.L("proto", protoTCP))
		w.Gauge(metricFlowsActive, helpFlowsActive, float64(s.Active), proto...)
		w.Counter(metricFlowsTotal, helpFlowsTotal, float64(s.Accepted), proto...)
		w.Counter(metricBytes, helpBytes, float64(s.BytesUp), with(proto, metrics.L("direction", dirUp))...)
		w.Counter(metricBytes, helpBytes, float64(s.BytesDown), with(proto, metrics.L("direction", dirDown))...)
		const name, help = "gatewayd_tcp_refused_total", "TCP clients reset instead of relayed, by reason."
		for _, r := range []keyedCount{
			{"max_connections", s.Rejected},
			{"fd_limit", s.FDRefused},
			{"loop", s.LoopRefused},
			{"dial_failed", s.DialFailed},
		} {
			w.Counter(name, help, float64(r.n), with(labels, metrics.L("reason", r.key))...)
		}
		const pipes, pipesHelp = "gatewayd_tcp_splice_pipes", "Splice pipes (two fds each): lent to flows moving data, or spare."
		w.Gauge(pipes, pipesHelp, float64(s.PipesLent), with(labels, metrics.L("state", "lent"))...)
		w.Gauge(pipes, pipesHelp, float64(s.PipesSpare), with(labels, metrics.L("state", "spare"))...)
	}
}

// UDPCollector exposes a udp.Server's counters: pass srv.Stats. Every sample
// also carries labels.
func UDPCollector(stats func() udp.Stats, labels ...metrics.Label) metrics.Collector {
	return func(w *metrics.Writer) {
		s := stats()
		proto := with(labels, metrics.L("proto", protoUDP))
		w.Gauge(metricFlowsActive, helpFlowsActive, float64(s.SessionsActive), proto...)
		w.Counter(metricFlowsTotal, helpFlowsTotal, float64(s.SessionsTotal), proto...)
		w.Counter(metricBytes, helpBytes, float64(s.BytesUp), with(proto, metrics.L("direction", dirUp))...)
		w.Counter(metricBytes, helpBytes, float64(s.BytesDown), with(proto, metrics.L("direction", dirDown))...)

		const dgName, dgHelp = "gatewayd_udp_datagrams_total", "UDP datagrams relayed; up is client to remote."
		w.Counter(dgName, dgHelp, float64(s.DatagramsUp), with(labels, metrics.L("direction", dirUp))...)
		w.Counter(dgName, dgHelp, float64(s.DatagramsDown), with(labels, metrics.L("direction", dirDown))...)

		const closedName, closedHelp = "gatewayd_udp_sessions_closed_total", "UDP sessions closed by gatewayd, by reason."
		w.Counter(closedName, closedHelp, float64(s.SessionsEvicted), with(labels, metrics.L("reason", "evicted"))...)
		w.Counter(closedName, closedHelp, float64(s.SessionsExpired), with(labels, metrics.L("reason", "idle"))...)

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
		for _, d := range udpDrops(s) {
			w.Counter(dropName, dropHelp, float64(d.n), with(labels, metrics.L("reason", d.key))...)
		}
	}
}

// keyedCount is one sample of a family split by one label: its value and count.
type keyedCount struct {
	key string
	n   uint64
}

// udpDrops lists every Drop field of udp.Stats under a stable reason name.
func udpDrops(s udp.Stats) []keyedCount {
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

// with returns base followed by more, in a new slice (base is shared by
// several samples of one collector and must not be appended to in place).
func with(base []metrics.Label, more ...metrics.Label) []metrics.Label {
	return append(append(make([]metrics.Label, 0, len(base)+len(more)), base...), more...)
}
