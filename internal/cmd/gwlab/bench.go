package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/gatewayd/gatewayd/internal/netlab"
)

// benchCase is one iperf3 configuration.
type benchCase struct {
	Name    string `json:"name"`
	Family  int    `json:"family"`
	Streams int    `json:"streams"`
	Reverse bool   `json:"reverse"` // iperf3 -R: the server sends (download)
	// RateMbps is the rate offered by all streams together (iperf3 -b,
	// split over the streams); 0: as fast as they go.
	RateMbps float64 `json:"rate_mbit_s,omitempty"`
}

// target is issue 14's goal for gatewayd's throughput relative to plain
// forwarding: 0.85x for one stream, 0.75x for eight.
func (c benchCase) target() float64 {
	if c.Streams == 1 {
		return 0.85
	}
	return 0.75
}

var benchCases = []benchCase{
	{Name: "IPv4 upload, 1 stream", Family: 4, Streams: 1},
	{Name: "IPv4 download, 1 stream", Family: 4, Streams: 1, Reverse: true},
	{Name: "IPv4 upload, 8 streams", Family: 4, Streams: 8},
	{Name: "IPv4 download, 8 streams", Family: 4, Streams: 8, Reverse: true},
	{Name: "IPv6 upload, 1 stream", Family: 6, Streams: 1},
}

// phase is one pass over all cases. Each phase uses its own iperf3 port,
// so no 4-tuple of one phase can meet a TIME_WAIT socket of the previous
// one (gatewayd's transparent sockets keep the original destination as
// their local address and would catch forwarded SYNs by early demux).
type phase struct {
	Name     string
	Port     uint16
	Gatewayd bool
	Baseline bool // runs the -baseline binary instead
}

var benchPhases = []phase{
	{"forwarding", 5201, false, false},
	{"gatewayd", 5202, true, false},
	{"forwarding after", 5203, false, false},
}

// baselinePhase runs after the others when -baseline names a binary.
var baselinePhase = phase{"baseline gatewayd", 5204, true, true}

// phases are the TCP phases of this run.
func (a *app) phases() []phase {
	if a.opt.baseline == "" {
		return benchPhases
	}
	return append(slices.Clone(benchPhases), baselinePhase)
}

// runResult is one iperf3 run.
type runResult struct {
	Gbps         float64    `json:"gbit_s"` // end.sum_received.bits_per_second / 1e9
	WallSeconds  float64    `json:"wall_s"`
	GatewaydCore float64    `json:"gatewayd_core_percent,omitempty"`      // CPU time / wall time
	GatewaydUser float64    `json:"gatewayd_user_core_percent,omitempty"` // the user-space part
	HostBusy     float64    `json:"host_cpu_busy_percent"`                // of all CPUs
	IperfCPU     [2]float64 `json:"iperf3_cpu_percent"`                   // client, server (iperf3's own figures)
	ServerSaw    string     `json:"server_saw"`
	OtherCore    float64    `json:"other_processes_core_percent"` // CPU of processes outside the measurement
	Attempts     int        `json:"attempts"`                     // > 1: earlier attempts were disturbed
	Disturbed    bool       `json:"disturbed"`                    // still disturbed after maxAttempts
	Cost         cpuCost    `json:"cost"`                         // CPU time and bytes, for CPU per GB
}

// phaseResult is the runs of one case in one phase, with medians.
type phaseResult struct {
	Phase        string      `json:"phase"`
	Port         uint16      `json:"port"`
	Gbps         float64     `json:"median_gbit_s"`
	GatewaydCore float64     `json:"median_gatewayd_core_percent,omitempty"`
	GatewaydUser float64     `json:"median_gatewayd_user_core_percent,omitempty"`
	HostBusy     float64     `json:"median_host_cpu_busy_percent"`
	Cost         costMedians `json:"cost"`
	Runs         []runResult `json:"runs"`
}

type caseResult struct {
	Case   benchCase     `json:"case"`
	Phases []phaseResult `json:"phases"` // in benchPhases order
	Ratio  float64       `json:"ratio"`  // gatewayd / forwarding (first phase)
	// CostRatio is gatewayd's whole-machine CPU per GB / forwarding's
	// (first phase).
	CostRatio float64 `json:"cost_ratio"`
	// VsBaseline is gatewayd / the -baseline binary; 0 without one.
	VsBaseline float64 `json:"ratio_vs_baseline,omitempty"`
	Target     float64 `json:"target"`
	Met        bool    `json:"target_met"`
}

type benchReport struct {
	Machine  machineInfo   `json:"machine"`
	Duration string        `json:"duration_per_run"`
	Runs     int           `json:"runs"`
	Started  time.Time     `json:"started"`
	Seconds  float64       `json:"total_seconds"`
	Cases    []caseResult  `json:"cases"`
	UDP      []udpCase     `json:"udp"`
	Fixed    []fixedCell   `json:"fixed_rate,omitempty"`
	DNS      *dnsReport    `json:"dns,omitempty"`
	Policy   *policyReport `json:"policy,omitempty"`
	Scale    *scaleReport  `json:"scale,omitempty"`
}

// bench measures iperf3 throughput through plain forwarding, through
// gatewayd, and through plain forwarding again, in one lab.
func bench(ctx context.Context, a *app) (err error) {
	rep := benchReport{Duration: a.opt.duration.String(), Runs: a.opt.runs, Started: time.Now()}
	dir, err := os.MkdirTemp("", "gwlab-bench-")
	if err != nil {
		return fmt.Errorf("creating a temp dir: %w", err)
	}
	defer os.RemoveAll(dir)

	lab, teardown, err := a.newLab(ctx)
	if err != nil {
		return err
	}
	defer teardown() // the success path calls it again and checks the result
	g, err := newGatewayd(ctx, a, lab.Gateway, dir, "info")
	if err != nil {
		return err
	}
	defer func() {
		if tail := g.logTail(20); err != nil && tail != "" {
			a.printf("\n--- gatewayd log, last lines (for the failure below) ---\n%s\n", indent(tail))
		}
	}()
	rep.Machine = readMachine()
	rep.Machine.toolVersions(ctx, g)
	rep.Machine.Offloads = offloads(lab)
	a.printf("%s\n", rep.Machine)
	a.printf("veth/bridge offloads (kernel defaults, untouched by the lab):\n%s\n", indent(strings.Join(rep.Machine.Offloads, "\n")))
	if a.benchPart("tcp") || a.benchPart("udp") {
		a.printf("method: iperf3 -t %d -P 1|8 [-R] from the client namespace to %s / %s in the server namespace,\n",
			a.secs(), lab.Remotes[0].V4, lab.Remotes[0].V6)
		a.printf("        phases forwarding -> gatewayd -> forwarding again, %d runs per cell, medians; gatewayd at log level info\n", a.opt.runs)
	}

	for _, c := range benchCases {
		rep.Cases = append(rep.Cases, caseResult{Case: c, Target: c.target()})
	}
	if !waitQuiet(ctx) && ctx.Err() == nil {
		a.log.Warn("the machine is busy with other work; results may be disturbed", "waited", quietTimeout)
	}
	var spent time.Duration // on repeating disturbed runs
	var base *gatewayd
	if a.opt.baseline != "" {
		b := *g
		b.bin = a.opt.baseline
		base = &b
	}
	for _, ph := range a.phases() {
		if !a.benchPart("tcp") {
			break
		}
		run := g
		if ph.Baseline {
			run = base
		}
		if err := a.benchPhase(ctx, lab, run, ph, rep.Cases, &spent); err != nil {
			return fmt.Errorf("phase %q: %w", ph.Name, err)
		}
	}
	for i := range rep.Cases {
		cr := &rep.Cases[i]
		if len(cr.Phases) < 2 {
			continue // -only udp
		}
		cr.Ratio = ratio(cr.Phases[1].Gbps, cr.Phases[0].Gbps)
		cr.CostRatio = ratio(cr.Phases[1].Cost.HostPerGB, cr.Phases[0].Cost.HostPerGB)
		cr.Met = cr.Ratio >= cr.Target
		if len(cr.Phases) > 3 && cr.Phases[3].Gbps > 0 {
			cr.VsBaseline = cr.Phases[1].Gbps / cr.Phases[3].Gbps
		}
	}
	if a.benchPart("fixed") {
		if rep.Fixed, err = a.benchFixed(ctx, lab, g); err != nil {
			return fmt.Errorf("fixed rate: %w", err)
		}
	}
	if a.benchPart("policy") {
		if rep.Policy, err = a.benchPolicy(ctx, lab, dir); err != nil {
			return fmt.Errorf("routing policy: %w", err)
		}
	}
	if a.benchPart("udp") {
		if rep.UDP, err = a.benchUDP(ctx, lab, g); err != nil {
			return fmt.Errorf("UDP: %w", err)
		}
	}
	if a.benchPart("dns") {
		if rep.DNS, err = a.benchDNS(ctx, lab, dir); err != nil {
			return fmt.Errorf("DNS: %w", err)
		}
	}
	if a.benchPart("scale") {
		rep.Scale, err = a.benchScale(ctx, lab, g)
		if err != nil {
			a.printScale(rep.Scale) // what was measured before the failure
			return fmt.Errorf("scale: %w", err)
		}
	}
	rep.Seconds = time.Since(rep.Started).Seconds()
	if a.benchPart("tcp") {
		a.printTable(rep)
	}
	if a.benchPart("udp") {
		a.printUDPTable(rep.UDP)
	}
	if a.benchPart("fixed") {
		a.printFixedTable(rep.Fixed)
	}
	if a.benchPart("dns") {
		a.printDNSTable(rep.DNS)
	}
	if a.benchPart("policy") {
		a.printPolicyTable(rep.Policy, rep.Cases)
	}
	if a.benchPart("scale") {
		a.printScale(rep.Scale)
	}

	if a.opt.jsonOut != "" {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return fmt.Errorf("encoding the JSON report: %w", err)
		}
		if err := os.WriteFile(a.opt.jsonOut, append(b, '\n'), 0o644); err != nil {
			return fmt.Errorf("writing the JSON report: %w", err)
		}
		a.printf("results written to %s\n", a.opt.jsonOut)
	}
	if err := teardown(); err != nil {
		return err
	}
	a.printf("lab %s removed; bench took %v\n", lab.ID, time.Since(rep.Started).Round(time.Second))
	return nil
}

// benchParts are the parts -only can select.
var benchParts = []string{"tcp", "udp", "fixed", "dns", "policy", "scale"}

// benchPart reports whether -only selects part (one of benchParts);
// without -only every part runs.
func (a *app) benchPart(part string) bool {
	return a.opt.only == "" || slices.Contains(strings.Split(a.opt.only, ","), part)
}

// checkOnly checks a -only value: one part or a comma-separated list of
// parts, each one of benchParts.
func checkOnly(only string) error {
	if only == "" {
		return nil
	}
	for _, p := range strings.Split(only, ",") {
		if !slices.Contains(benchParts, p) {
			return fmt.Errorf("-only %q: %q is not a part; want one or more of %s, comma-separated", only, p, strings.Join(benchParts, ", "))
		}
	}
	return nil
}

func (a *app) secs() int { return int(a.opt.duration.Round(time.Second) / time.Second) }

// benchPhase runs every case opt.runs times with fresh iperf3 servers on
// the phase's port, with gatewayd running if the phase says so, and adds
// a phaseResult to every case. spent is the repeat budget used so far.
func (a *app) benchPhase(ctx context.Context, lab *netlab.Lab, g *gatewayd, ph phase, cases []caseResult, spent *time.Duration) error {
	servers := map[int]*iperfServer{}
	for fam, addr := range map[int]netip.Addr{4: lab.Remotes[0].V4, 6: lab.Remotes[0].V6} {
		s, err := startIperfServer(ctx, lab.Server, netip.AddrPortFrom(addr, ph.Port))
		if err != nil {
			return err
		}
		defer s.stop()
		servers[fam] = s
	}
	var gw *gatewayd
	if ph.Gatewayd {
		if err := g.start(ctx); err != nil {
			return err
		}
		defer g.proc.Kill() // no-op after a clean stop
		gw = g
	}
	a.log.Info("phase started", "phase", ph.Name, "port", ph.Port, "gatewayd", ph.Gatewayd)
	for i := range cases {
		c := cases[i].Case
		pr := phaseResult{Phase: ph.Name, Port: ph.Port}
		want := clientAddr(lab, servers[c.Family].addr.Addr())
		why := "gatewayd is stopped, so the flow must be forwarded"
		if gw != nil {
			want = gatewayAddr(lab, servers[c.Family].addr.Addr())
			why = "gatewayd runs, so the flow must be relayed"
		}
		for run := 1; run <= a.opt.runs; run++ {
			r, err := undisturbed(ctx, a, spent, c.Name, func() (runResult, error) {
				r, _, err := a.measure(ctx, lab, servers[c.Family], c, gw, nil, want, why)
				return r, err
			})
			if err != nil {
				return fmt.Errorf("%s, run %d: %w", c.Name, run, err)
			}
			a.log.Info("run", "phase", ph.Name, "case", c.Name, "run", run,
				"gbit_s", round2(r.Gbps), "gatewayd_core_pct", round2(r.GatewaydCore), "of_it_user", round2(r.GatewaydUser),
				"other_core_pct", round2(r.OtherCore), "server_saw", r.ServerSaw)
			pr.Runs = append(pr.Runs, r)
		}
		pr.Gbps = median(pr.Runs, func(r runResult) float64 { return r.Gbps })
		pr.HostBusy = median(pr.Runs, func(r runResult) float64 { return r.HostBusy })
		pr.Cost = runCosts(pr.Runs)
		if gw != nil {
			pr.GatewaydCore = median(pr.Runs, func(r runResult) float64 { return r.GatewaydCore })
			pr.GatewaydUser = median(pr.Runs, func(r runResult) float64 { return r.GatewaydUser })
		}
		cases[i].Phases = append(cases[i].Phases, pr)
	}
	if gw != nil {
		return gw.stopClean(ctx, "gatewayd logged")
	}
	return nil
}

// undisturbed runs measure once, and again (up to maxAttempts in all)
// after the machine has become quiet if other processes used noticeable
// CPU during the run. spent accumulates the time used for waiting and
// repeating, bounded by repeatBudget over the whole bench. name is the
// case, for the logs.
func undisturbed[R any, P interface {
	*R
	base() *runResult
}](ctx context.Context, a *app, spent *time.Duration, name string, measure func() (R, error)) (R, error) {
	for attempt := 1; ; attempt++ {
		res, err := measure()
		r := P(&res).base()
		r.Attempts = attempt
		if err != nil || r.OtherCore <= disturbedCore {
			return res, err
		}
		if attempt == maxAttempts || *spent >= repeatBudget {
			r.Disturbed = true
			a.log.Warn("run disturbed by other processes; keeping it", "case", name,
				"other_core_pct", round2(r.OtherCore), "attempts", attempt, "repeat_budget_left", max(0, repeatBudget-*spent))
			return res, nil
		}
		a.log.Warn("run disturbed by other processes; repeating it once the machine is quiet", "case", name,
			"other_core_pct", round2(r.OtherCore))
		start := time.Now()
		if !waitQuiet(ctx) && ctx.Err() == nil {
			a.log.Warn("machine still busy", "waited", quietTimeout)
		}
		*spent += time.Since(start) + time.Duration(r.WallSeconds*float64(time.Second))
	}
}

// base is the run itself; policyRun has it through embedding, for undisturbed.
func (r *runResult) base() *runResult { return r }

// measure runs iperf3 once against srv and checks that every data stream
// reached it from want (why says why, for the error). gw is the running
// gatewayd (nil: stopped). With d, Dante's CPU is measured too, as a
// percentage of one core; it is the lab's, so it is taken out of the
// other processes' share (its workers are not gwlab's children, which is
// all readLoad counts as ours).
func (a *app) measure(ctx context.Context, lab *netlab.Lab, srv *iperfServer, c benchCase, gw *gatewayd, d *danted,
	want netip.Addr, why string) (r runResult, dantedCore float64, err error) {
	off := srv.out.Len()
	var cpu0 procCPU
	if gw != nil {
		if cpu0, err = readProcCPU(gw.proc.Pid()); err != nil {
			return r, 0, err
		}
	}
	var d0, d1 uint64
	if d != nil {
		if d0, err = d.ticks(); err != nil {
			return r, 0, fmt.Errorf("danted: %w", err)
		}
	}
	load0, err := readLoad()
	if err != nil {
		return r, 0, err
	}
	start := time.Now()
	res, err := runIperfClient(ctx, lab.Client, srv.addr, a.secs(), c)
	wall := time.Since(start)
	if err != nil {
		return r, 0, err
	}
	load1, err := readLoad()
	if err != nil {
		return r, 0, err
	}
	if d != nil {
		if d1, err = d.ticks(); err != nil {
			return r, 0, fmt.Errorf("danted: %w", err)
		}
	}
	var cpu1 procCPU
	if gw != nil {
		if cpu1, err = readProcCPU(gw.proc.Pid()); err != nil {
			return r, 0, err
		}
		r.GatewaydCore, r.GatewaydUser = cpu1.corePercent(cpu0, wall)
	}
	r.Cost = newCPUCost(load0, load1, cpu0, cpu1, res.End.SumReceived.Bytes)
	if d1 > d0 { // a worker reaped without accounting takes its time out of the sum
		dantedCore = 100 * float64(d1-d0) / clockTicks / wall.Seconds()
	}
	r.Gbps = res.End.SumReceived.BitsPerSecond / 1e9
	r.WallSeconds = wall.Seconds()
	r.HostBusy = load1.host.busyPercent(load0.host)
	r.OtherCore = max(0, load1.otherCorePercent(load0, wall)-dantedCore)
	r.IperfCPU = [2]float64{res.End.CPU.Host, res.End.CPU.Remote}

	peers, err := srv.streamPeers(off, c.Streams)
	if err != nil {
		return r, dantedCore, err
	}
	for _, p := range peers {
		if p != want {
			return r, dantedCore, fmt.Errorf("the iperf3 server saw a stream from %s, want %s (%s)", p, want, why)
		}
	}
	r.ServerSaw = want.String()
	return r, dantedCore, nil
}

// runCosts are the per-GB medians of runs.
func runCosts(runs []runResult) costMedians {
	costs := make([]cpuCost, len(runs))
	for i, r := range runs {
		costs[i] = r.Cost
	}
	return medianCosts(costs)
}

// median is the median of f over runs (0 for none).
func median[R any](runs []R, f func(R) float64) float64 {
	v := make([]float64, len(runs))
	for i, r := range runs {
		v[i] = f(r)
	}
	slices.Sort(v)
	n := len(v)
	if n == 0 {
		return 0
	}
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
}

func round2(f float64) float64 { return float64(int64(f*100+0.5)) / 100 }
