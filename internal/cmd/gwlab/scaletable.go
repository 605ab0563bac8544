package main

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
)

// printScale prints the scale part: the idle-flow table with the per-flow
// figures, what failed and how, then the connection-rate table. rep may
// be partial (a failed bench) or nil.
func (a *app) printScale(rep *scaleReport) {
	if rep == nil {
		return
	}
	a.printf("\nScale (issue 11): %d idle TCP flows, client namespace -> %s in the server namespace, held idle; forwarding vs gatewayd.\n",
		rep.Flows, "an echo server")
	a.printf("readings: before the flows, and at N %v after the last connect; per flow = (at N - before) / flows that reached the server;\n", a.opt.settle)
	a.printf("machine = MemTotal-MemFree-Buffers-Cached (whole machine, median of %d readings %v apart);\n", scaleMemReadings, scaleMemGap)
	a.printf("less others = the same less the RssAnon of every process outside the lab but gwlab (other work on the machine)\n\n")
	tw := tabwriter.NewWriter(a.out, 0, 0, 1, ' ', 0)
	row := func(cells ...string) { fmt.Fprintf(tw, "| %s\t|\n", strings.Join(cells, "\t| ")) }
	row("cell", "flows", "established", "reached server", "alive (echo)", "setup s",
		"gatewayd fds before / at N", "fds per flow", "gatewayd RSS MiB before / at N", "RSS KiB per flow",
		"machine used MiB before / at N", "machine KiB per flow", "less others KiB per flow", "fds back after close", "RSS back after close")
	row("---", "---:", "---:", "---:", "---:", "---:", "---:", "---:", "---:", "---:", "---:", "---:", "---:", "---", "---")
	for i := range rep.Idle {
		c := &rep.Idle[i]
		n := c.relayed()
		fds, rss, back, rssBack := "-", "-", "-", "-"
		fdsPer, rssPer := "-", "-"
		if c.Gatewayd && c.Before.FDs > 0 {
			fds = fmt.Sprintf("%d / %d", c.Before.FDs, c.AtN.FDs)
			rss = fmt.Sprintf("%.1f / %.1f", kib2mib(c.Before.RSSKiB), kib2mib(c.AtN.RSSKiB))
			fdsPer = perFlowText(int64(c.Before.FDs), int64(c.AtN.FDs), n, "%.2f")
			rssPer = perFlowText(c.Before.RSSKiB, c.AtN.RSSKiB, n, "%.1f")
			back, rssBack = backText(c.FDsBack), backText(c.RSSBack)
		}
		row(c.Name, fmt.Sprint(c.Flows), fmt.Sprint(c.Open.Established), fmt.Sprint(n), fmt.Sprint(c.Echo.Alive),
			fmt.Sprintf("%.1f", c.Open.Seconds), fds, fdsPer, rss, rssPer,
			fmt.Sprintf("%.0f / %.0f", kib2mib(c.Before.MemUsedKiB), kib2mib(c.AtN.MemUsedKiB)),
			perFlowText(c.Before.MemUsedKiB, c.AtN.MemUsedKiB, n, "%.1f"),
			perFlowText(c.Before.MemLabKiB, c.AtN.MemLabKiB, n, "%.1f"), back, rssBack)
	}
	_ = tw.Flush()
	if len(rep.Idle) == 2 {
		fwd, gwd := &rep.Idle[0], &rep.Idle[1]
		f, ok1 := perFlow(fwd.Before.MemUsedKiB, fwd.AtN.MemUsedKiB, fwd.relayed())
		g, ok2 := perFlow(gwd.Before.MemUsedKiB, gwd.AtN.MemUsedKiB, gwd.relayed())
		fl, _ := perFlow(fwd.Before.MemLabKiB, fwd.AtN.MemLabKiB, fwd.relayed())
		gl, _ := perFlow(gwd.Before.MemLabKiB, gwd.AtN.MemLabKiB, gwd.relayed())
		if ok1 && ok2 {
			a.printf("\nmachine memory per flow above forwarding: %.1f KiB (gatewayd cell %.1f - forwarding cell %.1f); less others: %.1f KiB (%.1f - %.1f)\n",
				g-f, g, f, gl-fl, gl, fl)
		}
		all := gwd.Open.Established == gwd.Flows && gwd.relayed() == gwd.Flows && gwd.Echo.Alive == gwd.Flows
		a.printf("all %d flows established, relayed and alive through gatewayd: %s\n", gwd.Flows, yesNo(all))
		fds, okF := perFlow(int64(gwd.Before.FDs), int64(gwd.AtN.FDs), gwd.relayed())
		rss, okR := perFlow(gwd.Before.RSSKiB, gwd.AtN.RSSKiB, gwd.relayed())
		if okF && okR && ok1 && ok2 {
			a.printf("issue 11 targets: all flows alive: %s; <= %.0f fds per flow: %s (%.2f); <= %.0f KiB gatewayd RSS per flow: %s (%.1f); <= %.0f KiB machine memory per flow above forwarding: %s (%.1f, less others %.1f)\n",
				verdict(all), scaleFDTarget, verdict(fds <= scaleFDTarget+0.05), fds, scaleRSSTargetKiB, verdict(rss <= scaleRSSTargetKiB), rss,
				scaleMemTargetKiB, verdict(g-f <= scaleMemTargetKiB && gl-fl <= scaleMemTargetKiB), g-f, gl-fl)
			a.printf("(the memory target counts as met only if both figures meet it: on a busy machine either may be off by tens of KiB per flow)\n")
		}
	}
	a.printf("\n")
	for i := range rep.Idle {
		c := &rep.Idle[i]
		a.printf("%s: connects took %.1f s (last success at %.1f s), %d not attempted (open deadline %v); connect errors: %s\n",
			c.Name, c.Open.Seconds, c.Open.LastOK, c.Open.NotAttempted, peerOpenDeadline, countsText(c.Open.Errors))
		a.printf("    echo (one %d-byte message per flow, %v for all): %d alive in %.1f s; errors: %s\n",
			len(echoMsg), peerEchoTimeout, c.Echo.Alive, c.Echo.Seconds, countsText(c.Echo.Errors))
		a.printf("    server: %d accepted, %d open at N, peers %s; accept errors: %s\n",
			c.Server.Accepted, c.Server.Open, countsText(c.Server.Peers), countsText(c.Server.AcceptErrors))
		a.printf("    open-file limits: client peer %d, server peer %d", c.PeerNofile[0], c.PeerNofile[1])
		if c.Gatewayd {
			a.printf(", gatewayd %s (soft/hard)\n", c.GatewaydNofile)
			a.printf("    gatewayd after the echo: %d fds, RSS %.1f MiB; last reading after close: %d fds, RSS %.1f MiB\n",
				c.AfterEcho.FDs, kib2mib(c.AfterEcho.RSSKiB), c.End.FDs, kib2mib(c.End.RSSKiB))
			a.printf("    gatewayd logged at WARN/ERROR: %s\n", strings.Join(firstN(c.GatewaydLog, 6), "; "))
		} else {
			a.printf("\n")
		}
		a.printf("    other processes: %.0f%% of a CPU from before the flows to at N\n", c.OtherCore)
	}
	a.printf("back after close: gatewayd's fds / RSS at most a tenth of the rise (or %d fds / %d MiB) above before; polled every %v for %v\n",
		scaleFDSlack, scaleRSSSlackKiB/1024, scalePoll, scaleRecovery)

	if len(rep.Rate) == 0 {
		return
	}
	a.printf("\nConnection rate: %d concurrent clients in the client namespace, each: connect, one HTTP/1.1 GET (Connection: close), read to the end, close;\n",
		rateClients)
	a.printf("%d runs of %ds per cell, forwarding and gatewayd interleaved, the median run by connections/s; request = connect start to the answer's last byte\n\n",
		a.opt.runs, a.secs())
	tw = tabwriter.NewWriter(a.out, 0, 0, 1, ' ', 0)
	row = func(cells ...string) { fmt.Fprintf(tw, "| %s\t|\n", strings.Join(cells, "\t| ")) }
	row("cell", "connections/s", "ratio", "connect p50 / p99 ms", "request p50 / p99 ms", "errors (median run)")
	row("---", "---:", "---:", "---:", "---:", "---")
	fwdRate := rep.Rate[0].Median.PerSecond
	for _, c := range rep.Rate {
		m := c.Median
		ratio := "-"
		if fwdRate > 0 {
			ratio = fmt.Sprintf("%.2f", m.PerSecond/fwdRate)
		}
		row(c.Name, fmt.Sprintf("%.0f", m.PerSecond), ratio,
			fmt.Sprintf("%.2f / %.2f", m.ConnP50, m.ConnP99), fmt.Sprintf("%.2f / %.2f", m.ReqP50, m.ReqP99), countsText(m.Errors))
	}
	_ = tw.Flush()
	if fwdRate > 0 && len(rep.Rate) == 2 {
		r := rep.Rate[1].Median.PerSecond / fwdRate
		a.printf("issue 11 target: gatewayd >= %.1fx forwarding's connections/s: %s (%.2f)\n", rateTarget, verdict(r >= rateTarget), r)
	}
	a.printf("\nindividual runs, connections/s (other processes' CPU during the run, %% of a CPU):")
	for _, c := range rep.Rate {
		var v []string
		for _, r := range c.Runs {
			v = append(v, fmt.Sprintf("%.0f (%.0f%%)", r.PerSecond, r.OtherCore))
		}
		a.printf(" %s %s;", c.Name, strings.Join(v, " "))
	}
	a.printf("\n")
}

func kib2mib(k int64) float64 { return float64(k) / 1024 }

// perFlowText formats perFlow, "-" without flows.
func perFlowText(before, at int64, flows int, format string) string {
	v, ok := perFlow(before, at, flows)
	if !ok {
		return "-"
	}
	return fmt.Sprintf(format, v)
}

// backText formats a recovery time; negative means not within the poll.
func backText(s float64) string {
	if s < 0 {
		return fmt.Sprintf("not within %v", scaleRecovery)
	}
	return fmt.Sprintf("%.0f s", s)
}

// countsText formats counts by kind, most frequent first: "timeout x5,
// EOF x2"; "none" if empty.
func countsText(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	keys := slices.SortedFunc(maps.Keys(m), func(a, b string) int {
		if m[a] != m[b] {
			return m[b] - m[a]
		}
		return strings.Compare(a, b)
	})
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s x%d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

func firstN(s []string, n int) []string {
	if len(s) == 0 {
		return []string{"nothing"}
	}
	if len(s) > n {
		return append(slices.Clone(s[:n]), fmt.Sprintf("(%d more kinds)", len(s)-n))
	}
	return s
}

// The targets for the scale part (issue 11, "Done when").
const (
	scaleFDTarget     = 2.0  // fds per idle relayed flow
	scaleRSSTargetKiB = 4.0  // gatewayd RSS per idle relayed flow
	scaleMemTargetKiB = 12.0 // machine memory per flow above forwarding
	rateTarget        = 0.6  // gatewayd / forwarding connections per second
)

func verdict(met bool) string {
	if met {
		return "met"
	}
	return "missed"
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
