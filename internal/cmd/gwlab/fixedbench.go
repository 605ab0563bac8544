package main

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"text/tabwriter"

	"github.com/gatewayd/gatewayd/internal/netlab"
)

// The fixed-rate part (issue 14): TCP and UDP at a rate both forwarding
// and gatewayd carry, so their CPU per GB is compared at equal work, not
// at saturation, where the faster path also does more work per second.

// fixedPortBase is the first iperf3 port of the part; every run takes the
// next one (fresh 4-tuples: see phase), above every other part's ports.
const fixedPortBase = 5301

// keepUpShare is the share of the offered rate a path must deliver (and,
// for UDP, the loss below udpLossTarget) to count as keeping up.
const keepUpShare = 0.95

// fixedCase is one fixed-rate cell.
type fixedCase struct {
	Name     string  `json:"name"`
	UDP      bool    `json:"udp"`
	Streams  int     `json:"streams"`
	Reverse  bool    `json:"reverse"`
	RateMbps float64 `json:"rate_mbit_s"` // all streams together
}

// fixedCases: 5 Gbit/s of TCP is about a third of what one stream
// forwards here; 500 Mbit/s of 1200-byte UDP is what gatewayd carried
// without loss at iperf3's default buffers in issue 3's runs.
var fixedCases = []fixedCase{
	{Name: "TCP IPv4 upload, 1 stream, 5 Gbit/s", Streams: 1, RateMbps: 5000},
	{Name: "TCP IPv4 download, 1 stream, 5 Gbit/s", Streams: 1, Reverse: true, RateMbps: 5000},
	{Name: "TCP IPv4 upload, 8 streams, 5 Gbit/s in all", Streams: 8, RateMbps: 5000},
	{Name: "UDP IPv4 upload, 1200 B, 500 Mbit/s", UDP: true, Streams: 1, RateMbps: 500},
	{Name: "UDP IPv4 download, 1200 B, 500 Mbit/s", UDP: true, Streams: 1, Reverse: true, RateMbps: 500},
}

// fixedRun is one run of a fixed-rate cell.
type fixedRun struct {
	Port          uint16  `json:"port"`
	DeliveredMbps float64 `json:"delivered_mbit_s"`
	LossPercent   float64 `json:"loss_percent,omitempty"` // UDP
	OtherCore     float64 `json:"other_processes_core_percent"`
	Cost          cpuCost `json:"cost"`
}

// keptUp reports whether the run delivered what was offered.
func (r fixedRun) keptUp(c fixedCase) bool {
	return r.DeliveredMbps >= keepUpShare*c.RateMbps && (!c.UDP || r.LossPercent < udpLossTarget)
}

// fixedCell is a cell's runs, forwarding and gatewayd interleaved.
type fixedCell struct {
	Case       fixedCase   `json:"case"`
	Forwarding []fixedRun  `json:"forwarding"`
	Gatewayd   []fixedRun  `json:"gatewayd"`
	Fwd        costMedians `json:"forwarding_cost"`
	Gwd        costMedians `json:"gatewayd_cost"`
	CostRatio  float64     `json:"cost_ratio"` // of the medians
	// PairRatio is the median of the runs' own ratios (each gatewayd run
	// against the forwarding run just before it): less sensitive to load
	// that changes between the runs of a cell.
	PairRatio float64 `json:"median_pair_cost_ratio"`
}

// benchFixed runs every fixed-rate cell -runs times through forwarding and
// through gatewayd, interleaved.
func (a *app) benchFixed(ctx context.Context, lab *netlab.Lab, g *gatewayd) ([]fixedCell, error) {
	port := uint16(fixedPortBase)
	var out []fixedCell
	if !waitQuiet(ctx) && ctx.Err() == nil {
		a.log.Warn("the machine is busy with other work; results may be disturbed", "waited", quietTimeout)
	}
	for _, c := range fixedCases {
		cell := fixedCell{Case: c}
		for i := range a.opt.runs {
			for _, gw := range []*gatewayd{nil, g} {
				r, err := a.fixedOnce(ctx, lab, c, gw, port)
				if err != nil {
					return out, fmt.Errorf("%s, run %d, gatewayd %v: %w", c.Name, i+1, gw != nil, err)
				}
				port++
				a.log.Info("fixed rate", "case", c.Name, "run", i+1, "gatewayd", gw != nil,
					"delivered_mbit_s", round2(r.DeliveredMbps), "machine_cpu_s_per_gb", round2(r.Cost.HostPerGB()*1000)/1000,
					"tick_sampled_per_gb", round2(perGB(r.Cost.HostTickSeconds, r.Cost.Bytes)*1000)/1000,
					"gatewayd_cpu_s_per_gb", round2(r.Cost.GatewaydPerGB()*1000)/1000, "other_core_pct", round2(r.OtherCore))
				if gw == nil {
					cell.Forwarding = append(cell.Forwarding, r)
				} else {
					cell.Gatewayd = append(cell.Gatewayd, r)
				}
			}
		}
		cell.summarize()
		out = append(out, cell)
	}
	return out, nil
}

// summarize fills in the medians and ratios from the runs.
func (c *fixedCell) summarize() {
	costs := func(runs []fixedRun) []cpuCost {
		out := make([]cpuCost, len(runs))
		for i, r := range runs {
			out[i] = r.Cost
		}
		return out
	}
	c.Fwd, c.Gwd = medianCosts(costs(c.Forwarding)), medianCosts(costs(c.Gatewayd))
	c.CostRatio = ratio(c.Gwd.HostPerGB, c.Fwd.HostPerGB)
	var pairs []float64
	for i := range min(len(c.Forwarding), len(c.Gatewayd)) {
		if r := ratio(c.Gatewayd[i].Cost.HostPerGB(), c.Forwarding[i].Cost.HostPerGB()); r > 0 {
			pairs = append(pairs, r)
		}
	}
	c.PairRatio = median(pairs, func(f float64) float64 { return f })
}

// fixedOnce runs one cell once on its own port and server, through gw
// (started for the run and stopped after it) or forwarded (gw nil).
func (a *app) fixedOnce(ctx context.Context, lab *netlab.Lab, c fixedCase, gw *gatewayd, port uint16) (fixedRun, error) {
	dst := netip.AddrPortFrom(lab.Remotes[0].V4, port)
	srv, err := startIperfServer(ctx, lab.Server, dst)
	if err != nil {
		return fixedRun{}, err
	}
	defer srv.stop()
	if gw != nil {
		if err := gw.start(ctx); err != nil {
			return fixedRun{}, err
		}
		defer gw.proc.Kill() // no-op after a clean stop
	}
	r, err := a.fixedMeasure(ctx, lab, srv, c, gw)
	if err != nil {
		return r, err
	}
	if gw != nil {
		if err := gw.stopRulesGone(ctx); err != nil {
			return r, err
		}
	}
	return r, nil
}

// fixedMeasure runs iperf3 once for c against srv and checks who the
// server saw.
func (a *app) fixedMeasure(ctx context.Context, lab *netlab.Lab, srv *iperfServer, c fixedCase, gw *gatewayd) (fixedRun, error) {
	r := fixedRun{Port: srv.addr.Port()}
	want, why := clientAddr(lab, srv.addr.Addr()), "gatewayd is stopped, so the flow must be forwarded"
	if gw != nil {
		want, why = gatewayAddr(lab, srv.addr.Addr()), "gatewayd runs, so the flow must be relayed"
	}
	if !c.UDP {
		bc := benchCase{Name: c.Name, Family: 4, Streams: c.Streams, Reverse: c.Reverse, RateMbps: c.RateMbps}
		res, _, err := a.measure(ctx, lab, srv, bc, gw, nil, want, why)
		r.DeliveredMbps, r.OtherCore, r.Cost = res.Gbps*1000, res.OtherCore, res.Cost
		return r, err
	}
	off := srv.out.Len()
	u, err := a.udpOnce(ctx, lab, srv.addr, c.RateMbps, &udpCase{Name: c.Name, Reverse: c.Reverse}, gw)
	if err != nil {
		return r, err
	}
	r.DeliveredMbps, r.LossPercent, r.Cost, r.OtherCore = u.DeliveredMbps, u.LossPercent, u.Cost, u.OtherCore
	peers, err := srv.streamPeers(off, 1)
	if err != nil {
		return r, err
	}
	if peers[0] != want {
		return r, fmt.Errorf("the iperf3 server saw a stream from %s, want %s (%s)", peers[0], want, why)
	}
	return r, nil
}

// printFixedTable prints the fixed-rate cells.
func (a *app) printFixedTable(cells []fixedCell) {
	a.printf("\nFixed rate (issue 14: cost at equal work): iperf3 -b RATE (split over the streams; UDP -u -l %d), %d runs of %ds per path,\n",
		udpDatagram, a.opt.runs, a.secs())
	a.printf("forwarding and gatewayd interleaved (gatewayd started for each of its runs); CPU-seconds per 10^9 bytes received, medians:\n\n")
	tw := tabwriter.NewWriter(a.out, 0, 0, 1, ' ', 0)
	row := func(cells ...string) { fmt.Fprintf(tw, "| %s\t|\n", strings.Join(cells, "\t| ")) }
	row("cell", "fwd Mbit/s", "gwd Mbit/s", "both keep up", "machine CPU-s/GB fwd", "machine CPU-s/GB gwd",
		"cost ratio gwd/fwd", "median of pair ratios", "target", "lab CPU-s/GB fwd / gwd", "lab ratio", "gatewayd own CPU-s/GB")
	row("---", "---:", "---:", "---", "---:", "---:", "---:", "---:", "---", "---:", "---:", "---:")
	var all []float64
	for _, c := range cells {
		keep := "yes"
		for _, r := range append(append([]fixedRun(nil), c.Forwarding...), c.Gatewayd...) {
			if !r.keptUp(c.Case) {
				keep = "no"
			}
			all = append(all, r.OtherCore)
		}
		verdict := "missed"
		if c.CostRatio > 0 && c.CostRatio <= costTarget {
			verdict = "met"
		}
		row(c.Case.Name, fixedRate(c.Case, c.Forwarding), fixedRate(c.Case, c.Gatewayd), keep,
			costText(c.Fwd.HostPerGB), costText(c.Gwd.HostPerGB), ratioText(c.CostRatio), ratioText(c.PairRatio),
			fmt.Sprintf("<= %.1f: %s", costTarget, verdict), costText(c.Fwd.LabPerGB)+" / "+costText(c.Gwd.LabPerGB),
			ratioText(ratio(c.Gwd.LabPerGB, c.Fwd.LabPerGB)), costText(c.Gwd.GatewaydPerGB))
	}
	_ = tw.Flush()
	a.printf("keep up: every run delivered >= %.0f%% of the rate (UDP: and lost < %.0f%%); other processes: at most %.0f%% of a CPU during a run\n",
		100*keepUpShare, udpLossTarget, maxOf(all))
	a.printf("lab = the CPU time of the lab's own processes (gwlab, gatewayd, iperf3, kernel threads): without other work on the machine\n")
	a.printf("individual runs, machine CPU-s/GB (forwarding | gatewayd):\n")
	for _, c := range cells {
		a.printf("    %-46s %s | %s\n", c.Case.Name+":", fixedCosts(c.Forwarding), fixedCosts(c.Gatewayd))
	}
}

// fixedRate is the median delivered rate, with the median loss for UDP.
func fixedRate(c fixedCase, runs []fixedRun) string {
	mbps := median(runs, func(r fixedRun) float64 { return r.DeliveredMbps })
	if c.UDP {
		return fmt.Sprintf("%.0f (%.2f%%)", mbps, median(runs, func(r fixedRun) float64 { return r.LossPercent }))
	}
	return fmt.Sprintf("%.0f", mbps)
}

func fixedCosts(runs []fixedRun) string {
	parts := make([]string, len(runs))
	for i, r := range runs {
		parts[i] = costText(r.Cost.HostPerGB())
	}
	return strings.Join(parts, " ")
}

func maxOf(v []float64) float64 {
	m := 0.0
	for _, x := range v {
		m = max(m, x)
	}
	return m
}
