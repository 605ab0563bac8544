package main

import (
	"fmt"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
)

// printPolicyTable prints the routing-policy results: one row per case,
// each path's median with its ratio to forwarding, then the individual
// runs. tcp is the TCP part of the same run (nil with -only policy); when
// present, the user-space direct path is also compared with gatewayd
// without rules.
func (a *app) printPolicyTable(rep *policyReport, tcp []caseResult) {
	a.printf("\nRouting policy (issue 5): TCP, IPv4, medians of %d runs of %ds; ratio = path / forwarding, both from this part.\n",
		a.opt.runs, a.secs())
	a.printf("gatewayd runs the base config plus these rules; the SOCKS5 upstream is %s in the server namespace:\n%s\n\n",
		rep.Danted, indent(strings.TrimSpace(rep.Rules)))
	tw := tabwriter.NewWriter(a.out, 0, 0, 1, ' ', 0)
	row := func(cells ...string) { fmt.Fprintf(tw, "| %s\t|\n", strings.Join(cells, "\t| ")) }
	row("case", "forwarding Gbit/s", "direct, user space Gbit/s (ratio)", "direct, fast path Gbit/s (ratio)",
		"socks5 via Dante Gbit/s (ratio)", "gatewayd %core user space / fast path / socks5", "Dante %core",
		fmt.Sprintf("fast path >= %.1fx", policyFastPathTarget), "forwarding after Gbit/s",
		"host CPU busy fwd / user space / fast path / socks5")
	row("---", "---:", "---:", "---:", "---:", "---:", "---:", "---", "---:", "---:")
	gbps := func(c *policyCell) string {
		if c == nil {
			return "-"
		}
		return fmt.Sprintf("%.2f (%.2f)", c.Gbps, c.Ratio)
	}
	for _, pc := range rep.Cases {
		fwd, dir, fast, socks, after := pc.cell(pathForwarding), pc.cell(pathDirect), pc.cell(pathFast), pc.cell(pathSOCKS), pc.cell(pathForwardingAfter)
		if fwd == nil || dir == nil || fast == nil || socks == nil || after == nil {
			continue // the bench failed before this case was complete
		}
		name := pc.Case.Name
		if pc.disturbed() {
			name += " (*)"
		}
		verdict := "missed"
		if fast.Ratio >= policyFastPathTarget {
			verdict = "met"
		}
		row(name,
			fmt.Sprintf("%.2f", fwd.Gbps),
			gbps(dir), gbps(fast), gbps(socks),
			fmt.Sprintf("%.0f / %.0f / %.0f", dir.GatewaydCore, fast.GatewaydCore, socks.GatewaydCore),
			fmt.Sprintf("%.0f", socks.DantedCore),
			verdict,
			fmt.Sprintf("%.2f (%+.0f%%)", after.Gbps, 100*(after.Ratio-1)),
			fmt.Sprintf("%.0f%% / %.0f%% / %.0f%% / %.0f%%", fwd.HostBusy, dir.HostBusy, fast.HostBusy, socks.HostBusy))
	}
	_ = tw.Flush()
	a.printf("%%core: CPU time over the run's wall time (100 = one CPU); Dante's counts all its processes. host CPU busy: all %d CPUs, /proc/stat\n",
		runtime.NumCPU())
	a.printf("fast path: the destination is in gatewayd's ipset and the kernel forwards the flow; gatewayd's %%core there is what it uses while idle.\n")
	if cmp := withoutRules(rep, tcp); cmp != "" {
		a.printf("direct in user space with rules / gatewayd without rules (TCP part of this run): %s\n", cmp)
	}
	var runs []runResult
	for _, pc := range rep.Cases {
		for _, c := range pc.Cells {
			for _, r := range c.Runs {
				runs = append(runs, r.runResult)
			}
		}
	}
	a.printOthers(runs)

	a.printf("\nindividual runs, Gbit/s (forwarding | direct, user space | direct, fast path | socks5 | forwarding after):\n")
	for _, pc := range rep.Cases {
		var parts []string
		for _, c := range pc.Cells {
			var v []string
			for _, r := range c.Runs {
				v = append(v, fmt.Sprintf("%.2f", r.Gbps))
			}
			parts = append(parts, strings.Join(v, " "))
		}
		a.printf("    %-26s %s\n", pc.Case.Name+":", strings.Join(parts, " | "))
	}
}

// disturbed reports whether a run of the case was kept although other
// processes used noticeable CPU during it.
func (c *policyCase) disturbed() bool {
	return slices.ContainsFunc(c.Cells, func(cell policyCell) bool {
		return slices.ContainsFunc(cell.Runs, func(r policyRun) bool { return r.Disturbed })
	})
}

// withoutRules compares, per case, the user-space direct path with the
// gatewayd phase of the TCP part (same relay, no rules, no dispatcher):
// "IPv4 upload, 1 stream 0.98, ...". Empty without a TCP part.
func withoutRules(rep *policyReport, tcp []caseResult) string {
	var out []string
	for _, pc := range rep.Cases {
		dir := pc.cell(pathDirect)
		i := slices.IndexFunc(tcp, func(cr caseResult) bool { return cr.Case == pc.Case })
		if dir == nil || i < 0 || len(tcp[i].Phases) < 2 || tcp[i].Phases[1].Gbps <= 0 {
			continue
		}
		out = append(out, fmt.Sprintf("%s %.2f", pc.Case.Name, dir.Gbps/tcp[i].Phases[1].Gbps))
	}
	return strings.Join(out, ", ")
}
