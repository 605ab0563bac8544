package main

import (
	"fmt"
	"strings"
	"text/tabwriter"
)

// printTable prints the bench results as an aligned Markdown table, then
// the individual runs and whether the targets are met.
func (a *app) printTable(rep benchReport) {
	a.printf("\nResults (medians of %d runs of %s each; Gbit/s = iperf3 end.sum_received):\n\n", rep.Runs, rep.Duration)
	tw := tabwriter.NewWriter(a.out, 0, 0, 1, ' ', 0)
	row := func(cells ...string) { fmt.Fprintf(tw, "| %s\t|\n", strings.Join(cells, "\t| ")) }
	row("case", "forwarding Gbit/s", "gatewayd Gbit/s", "ratio", "gatewayd %core", "target", "forwarding after Gbit/s", "host CPU busy fwd / gwd")
	row("---", "---:", "---:", "---:", "---:", "---", "---:", "---:")
	met := 0
	for _, cr := range rep.Cases {
		fwd, gw, after := cr.Phases[0], cr.Phases[1], cr.Phases[2]
		verdict := "missed"
		if cr.Met {
			verdict = "met"
			met++
		}
		drift := 0.0
		if fwd.Gbps > 0 {
			drift = 100 * (after.Gbps - fwd.Gbps) / fwd.Gbps
		}
		name := cr.Case.Name
		for _, p := range cr.Phases {
			for _, r := range p.Runs {
				if r.Disturbed && !strings.HasSuffix(name, " (*)") {
					name += " (*)"
				}
			}
		}
		row(name,
			fmt.Sprintf("%.2f", fwd.Gbps),
			fmt.Sprintf("%.2f", gw.Gbps),
			fmt.Sprintf("%.2f", cr.Ratio),
			fmt.Sprintf("%.0f", gw.GatewaydCore),
			fmt.Sprintf(">= %.2f: %s", cr.Target, verdict),
			fmt.Sprintf("%.2f (%+.0f%%)", after.Gbps, drift),
			fmt.Sprintf("%.0f%% / %.0f%%", fwd.HostBusy, gw.HostBusy))
	}
	_ = tw.Flush()
	a.printf("\ntargets (issue 14: gatewayd >= 0.85x forwarding for 1 stream, >= 0.75x for 8 streams): %d of %d cases met\n", met, len(rep.Cases))
	a.printCostTable(rep.Cases)
	a.printBaseline(rep)
	a.printf("%%core: gatewayd's utime+stime over the run's wall time (100 = one CPU); host CPU busy: all %d CPUs, /proc/stat\n",
		rep.Machine.NProc)
	var user []string
	for _, cr := range rep.Cases {
		user = append(user, fmt.Sprintf("%.0f", cr.Phases[1].GatewaydUser))
	}
	a.printf("of gatewayd's %%core, user space per case: %s (the rest is kernel time: splice, TCP, netfilter)\n", strings.Join(user, ", "))

	var runs []runResult
	for _, cr := range rep.Cases {
		for _, p := range cr.Phases {
			runs = append(runs, p.Runs...)
		}
	}
	a.printOthers(runs)

	a.printf("\nindividual runs, Gbit/s (forwarding | gatewayd | forwarding after):\n")
	for _, cr := range rep.Cases {
		var parts []string
		for _, p := range cr.Phases {
			var v []string
			for _, r := range p.Runs {
				v = append(v, fmt.Sprintf("%.2f", r.Gbps))
			}
			parts = append(parts, strings.Join(v, " "))
		}
		a.printf("    %-26s %s\n", cr.Case.Name+":", strings.Join(parts, " | "))
	}
}

// printOthers prints how much CPU other processes used during the kept
// runs, and how many runs they made repeat or left disturbed.
func (a *app) printOthers(runs []runResult) {
	var maxOther float64
	repeated, disturbed := 0, 0
	for _, r := range runs {
		maxOther = max(maxOther, r.OtherCore)
		if r.Attempts > 1 {
			repeated++
		}
		if r.Disturbed {
			disturbed++
		}
	}
	a.printf("other processes on the machine: at most %.0f%% of a CPU during a kept run; %d run(s) repeated because of them, %d kept although disturbed (> %.0f%%, marked (*))\n",
		maxOther, repeated, disturbed, disturbedCore)
}

// printBaseline compares gatewayd with the -baseline binary, case by case.
func (a *app) printBaseline(rep benchReport) {
	if a.opt.baseline == "" {
		return
	}
	a.printf("\nagainst the baseline binary %s (same lab, its own phase after the others):\n\n", a.opt.baseline)
	tw := tabwriter.NewWriter(a.out, 0, 0, 1, ' ', 0)
	row := func(cells ...string) { fmt.Fprintf(tw, "| %s\t|\n", strings.Join(cells, "\t| ")) }
	row("case", "gatewayd Gbit/s", "%core", "baseline Gbit/s", "%core", "gatewayd / baseline")
	row("---", "---:", "---:", "---:", "---:", "---:")
	for _, cr := range rep.Cases {
		if len(cr.Phases) < 4 {
			continue
		}
		gw, base := cr.Phases[1], cr.Phases[3]
		row(cr.Case.Name, fmt.Sprintf("%.2f", gw.Gbps), fmt.Sprintf("%.0f", gw.GatewaydCore),
			fmt.Sprintf("%.2f", base.Gbps), fmt.Sprintf("%.0f", base.GatewaydCore), fmt.Sprintf("%.3f", cr.VsBaseline))
	}
	_ = tw.Flush()
}

// printCostTable prints CPU per GB delivered, forwarding against gatewayd,
// with the cost ratio beside the throughput ratio.
func (a *app) printCostTable(cases []caseResult) {
	a.printf("\nCost per GB delivered (CPU-seconds per 10^9 bytes received, medians of the runs; gatewayd own = its utime+stime):\n\n")
	tw := tabwriter.NewWriter(a.out, 0, 0, 1, ' ', 0)
	row := func(cells ...string) { fmt.Fprintf(tw, "| %s\t|\n", strings.Join(cells, "\t| ")) }
	row("case", "throughput ratio", "machine CPU-s/GB fwd", "machine CPU-s/GB gwd", "cost ratio gwd/fwd", "target",
		"lab CPU-s/GB fwd / gwd", "lab ratio", "gatewayd own CPU-s/GB")
	row("---", "---:", "---:", "---:", "---:", "---", "---:", "---:", "---:")
	met := 0
	for _, cr := range cases {
		fwd, gw := cr.Phases[0].Cost, cr.Phases[1].Cost
		verdict := "missed"
		if cr.CostRatio > 0 && cr.CostRatio <= costTarget {
			verdict = "met"
			met++
		}
		row(cr.Case.Name, ratioText(cr.Ratio), costText(fwd.HostPerGB), costText(gw.HostPerGB), ratioText(cr.CostRatio),
			fmt.Sprintf("<= %.1f: %s", costTarget, verdict), costText(fwd.LabPerGB)+" / "+costText(gw.LabPerGB),
			ratioText(ratio(gw.LabPerGB, fwd.LabPerGB)), costText(gw.GatewaydPerGB))
	}
	_ = tw.Flush()
	a.printf("\ncost target (issue 14: gatewayd's machine CPU per GB <= %.1fx forwarding's): %d of %d cases met\n", costTarget, met, len(cases))
	a.printf("machine = CPUs x wall time less idle time (/proc/stat): everything on the machine, other work included;\n")
	a.printf("lab = the CPU time of the lab's own processes (gwlab, gatewayd, iperf3, kernel threads): without other work, and without softirq work done while a CPU idled\n")
}
