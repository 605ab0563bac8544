package tcp

import "github.com/gatewayd/gatewayd/internal/metrics"

// metricProto is the proto label of the relay families
// (metrics.WriteFlows).
const metricProto = "tcp"

// Collector exposes a Server's counters: pass srv.Stats. Every sample also
// carries labels (e.g. metrics.L("outbound", "direct") where several
// servers relay through different outbounds).
func Collector(stats func() Stats, labels ...metrics.Label) metrics.Collector {
	return func(w *metrics.Writer) {
		s := stats()
		metrics.WriteFlows(w, metricProto, metrics.FlowCounts{Active: s.Active, Total: s.Accepted,
			BytesUp: s.BytesUp, BytesDown: s.BytesDown}, labels...)
		const name, help = "gatewayd_tcp_refused_total", "TCP clients reset instead of relayed, by reason."
		w.CountersBy(name, help, "reason", []metrics.Keyed{
			{Key: "max_connections", N: s.Rejected},
			{Key: "fd_limit", N: s.FDRefused},
			{Key: "loop", N: s.LoopRefused},
			{Key: "dial_failed", N: s.DialFailed},
		}, labels...)
		const pipes, pipesHelp = "gatewayd_tcp_splice_pipes", "Splice pipes (two fds each): lent to flows moving data, or spare."
		w.Gauge(pipes, pipesHelp, float64(s.PipesLent), metrics.With(labels, metrics.L("state", "lent"))...)
		w.Gauge(pipes, pipesHelp, float64(s.PipesSpare), metrics.With(labels, metrics.L("state", "spare"))...)
	}
}
