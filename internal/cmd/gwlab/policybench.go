package main

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/gatewayd/gatewayd/internal/netlab"
)

// The routing-policy bench (issue 5): TCP throughput of the three ways a
// routing policy sends a flow out, each against plain forwarding in the
// same lab. gatewayd runs with the base config plus policyRules:
//
//   - Remotes[0] matches no rule and goes to the default outbound,
//     "direct", in user space: the dispatcher is active (the config has
//     rules), so this is the relay with routing in play.
//   - Remotes[1] is the dst of a CIDR-only direct rule: its address is in
//     the fast-path ipset, the mangle chain RETURNs it before TPROXY and
//     the kernel forwards the flow.
//   - Remotes[2] goes to a SOCKS5 outbound: Dante (danted) in the server
//     namespace on the server's WAN address.
//
// Every path has its own iperf3 server (remote and port), and the server's
// log must show the peer the path implies on every run: the client
// (forwarded), the gateway's WAN address (relayed) or Dante's address.
// Ports differ from every other part of the bench, so no 4-tuple meets a
// TIME_WAIT socket of an earlier relayed flow (see phase).

// policyFastPathTarget is the fast path's goal, "plain-forwarding speed",
// less the 10-15 % that forwarding itself moves between runs of the same
// cell in this lab (docs/benchmarks.md).
const policyFastPathTarget = 0.9

// socksOutbound is the name of the SOCKS5 outbound in policyRules.
const socksOutbound = "dante"

// policyPath is one way out, measured with every case.
type policyPath struct {
	Name   string
	Remote int    // index into lab.Remotes of the iperf3 server
	Port   uint16 // iperf3 port
	// peer is who the iperf3 server must see, and why.
	peer func(lab *netlab.Lab, d *danted) (netip.Addr, string)
}

// Path names, also the keys of the report.
const (
	pathForwarding      = "forwarding"
	pathDirect          = "direct, user space"
	pathFast            = "direct, fast path"
	pathSOCKS           = "socks5 (Dante)"
	pathForwardingAfter = "forwarding after"
)

func forwarded(why string) func(*netlab.Lab, *danted) (netip.Addr, string) {
	return func(lab *netlab.Lab, _ *danted) (netip.Addr, string) { return lab.ClientAddr.V4, why }
}

const stoppedWhy = "gatewayd is stopped, so the flow must be forwarded"

// policyPhase is a run of paths with gatewayd (the policy config) running
// or stopped.
type policyPhase struct {
	Gatewayd bool
	Paths    []policyPath
}

// policyPhases run in order: forwarding, gatewayd's three paths (one
// gatewayd start), forwarding again for the drift. The iperf3 ports,
// 5221-5225, are one per path and apart from the TCP part's (5201-5203)
// and the UDP part's (5211-5212).
var policyPhases = []policyPhase{
	{false, []policyPath{{pathForwarding, 0, 5221, forwarded(stoppedWhy)}}},
	{true, []policyPath{
		{pathDirect, 0, 5222, func(lab *netlab.Lab, _ *danted) (netip.Addr, string) {
			return lab.GatewayWAN.V4, "no rule matches, so gatewayd must relay the flow to the default outbound, direct"
		}},
		{pathFast, 1, 5223, forwarded("a CIDR-only direct rule covers the destination, so the kernel must forward the flow")},
		{pathSOCKS, 2, 5224, func(_ *netlab.Lab, d *danted) (netip.Addr, string) {
			return d.addr.Addr(), "a rule sends the destination to the socks5 outbound, so Dante must connect"
		}},
	}},
	{false, []policyPath{{pathForwardingAfter, 0, 5225, forwarded(stoppedWhy)}}},
}

// policyCases are the IPv4 cases of the TCP bench (Dante and the rules
// are set up for IPv4).
func policyCases() []benchCase {
	var out []benchCase
	for _, c := range benchCases {
		if c.Family == 4 {
			out = append(out, c)
		}
	}
	return out
}

// policyRules is the routing policy appended to the base config: a
// CIDR-only direct rule for fast (the fast path) and a rule sending socks
// to the SOCKS5 server. Other destinations take route.default.
func policyRules(fast, socks netip.Addr, server netip.AddrPort) string {
	host := func(a netip.Addr) string { return netip.PrefixFrom(a, a.BitLen()).String() }
	return fmt.Sprintf(`
# gwlab bench, routing policy: appended to the base config.
[[outbound]]
name = %q
type = "socks5"
server = %q

[[rule]]
dst = [%q]
outbound = "direct"

[[rule]]
dst = [%q]
outbound = %q
`, socksOutbound, server, host(fast), host(socks), socksOutbound)
}

// policyRun is one iperf3 run on one path.
type policyRun struct {
	runResult
	DantedCore float64 `json:"danted_core_percent"` // Dante's processes, CPU time / wall time
}

// policyCell is one case on one path: its runs and medians.
type policyCell struct {
	Path         string      `json:"path"`
	Port         uint16      `json:"port"`
	Gbps         float64     `json:"median_gbit_s"`
	Ratio        float64     `json:"ratio_to_forwarding"` // to the first forwarding phase
	GatewaydCore float64     `json:"median_gatewayd_core_percent,omitempty"`
	DantedCore   float64     `json:"median_danted_core_percent"`
	HostBusy     float64     `json:"median_host_cpu_busy_percent"`
	Runs         []policyRun `json:"runs"`
}

type policyCase struct {
	Case  benchCase    `json:"case"`
	Cells []policyCell `json:"paths"` // in the order they ran (policyPhases)
}

// cell returns the case's cell of a path, nil if it did not run.
func (c *policyCase) cell(path string) *policyCell {
	for i := range c.Cells {
		if c.Cells[i].Path == path {
			return &c.Cells[i]
		}
	}
	return nil
}

// policyReport is the routing-policy part of the bench report.
type policyReport struct {
	Danted string       `json:"danted"`
	Rules  string       `json:"rules"` // what was appended to the base config
	Cases  []policyCase `json:"cases"`
}

// benchPolicy runs the routing-policy bench in lab: Dante in the server
// namespace, gatewayd with policyRules in the gateway namespace.
func (a *app) benchPolicy(ctx context.Context, lab *netlab.Lab, dir string) (_ *policyReport, err error) {
	dir = filepath.Join(dir, "policy")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating %s: %w", dir, err)
	}
	socksAddr := netip.AddrPortFrom(lab.ServerAddr.V4, dantedPort)
	rep := &policyReport{
		Danted: dantedVersion(ctx, lab.Server),
		Rules:  policyRules(lab.Remotes[1].V4, lab.Remotes[2].V4, socksAddr),
	}
	for _, c := range policyCases() {
		rep.Cases = append(rep.Cases, policyCase{Case: c})
	}
	d, err := startDanted(ctx, lab.Server, dir, socksAddr, lab.GatewayWAN.V4, lab.Remotes[2].V4)
	if err != nil {
		return nil, err
	}
	defer d.stop()
	g, err := a.policyGatewayd(ctx, lab, dir, rep.Rules)
	if err != nil {
		return nil, err
	}
	defer func() {
		if tail := g.logTail(20); err != nil && tail != "" {
			a.printf("\n--- gatewayd (routing policy) log, last lines ---\n%s\n", indent(tail))
		}
		if err != nil {
			a.printf("\n--- danted log, last lines ---\n%s\n", indent(lastLines(d.log.String(), 20)))
		}
	}()

	var spent time.Duration // on repeating disturbed runs
	for _, ph := range policyPhases {
		if ph.Gatewayd {
			err = a.policyWithGatewayd(ctx, lab, d, g, ph.Paths, rep.Cases, &spent)
		} else {
			for _, p := range ph.Paths {
				if err = a.policyPath(ctx, lab, d, nil, p, rep.Cases, &spent); err != nil {
					break
				}
			}
		}
		if err != nil {
			return nil, err
		}
	}
	for i := range rep.Cases {
		c := &rep.Cases[i]
		if fwd := c.cell(pathForwarding); fwd != nil && fwd.Gbps > 0 {
			for j := range c.Cells {
				c.Cells[j].Ratio = c.Cells[j].Gbps / fwd.Gbps
			}
		}
	}
	return rep, nil
}

// policyGatewayd writes the base config plus rules into dir and checks it.
func (a *app) policyGatewayd(ctx context.Context, lab *netlab.Lab, dir, rules string) (*gatewayd, error) {
	base, err := os.ReadFile(a.opt.config)
	if err != nil {
		return nil, fmt.Errorf("reading the base config: %w", err)
	}
	baseCfg := filepath.Join(dir, "base.toml")
	if err := os.WriteFile(baseCfg, append(base, rules...), 0o600); err != nil {
		return nil, fmt.Errorf("writing the routing-policy config: %w", err)
	}
	pa := *a
	pa.opt.config = baseCfg
	g, err := newGatewayd(ctx, &pa, lab.Gateway, dir, "info")
	if err != nil {
		return nil, fmt.Errorf("gatewayd with the routing policy: %w", err)
	}
	return g, nil
}

// policyWithGatewayd starts gatewayd, measures paths, stops it and checks
// that it left no rule behind.
func (a *app) policyWithGatewayd(ctx context.Context, lab *netlab.Lab, d *danted, g *gatewayd, paths []policyPath, cases []policyCase, spent *time.Duration) error {
	if err := g.start(ctx); err != nil {
		return err
	}
	defer g.proc.Kill() // no-op after a clean stop
	for _, p := range paths {
		if err := a.policyPath(ctx, lab, d, g, p, cases, spent); err != nil {
			return err
		}
	}
	return g.stopClean(ctx, "gatewayd (routing policy) logged")
}

// policyPath runs every case opt.runs times on path p with a fresh iperf3
// server and adds a cell to every case. g is the running gatewayd, nil
// when it is stopped.
func (a *app) policyPath(ctx context.Context, lab *netlab.Lab, d *danted, g *gatewayd, p policyPath, cases []policyCase, spent *time.Duration) error {
	srv, err := startIperfServer(ctx, lab.Server, netip.AddrPortFrom(lab.Remotes[p.Remote].V4, p.Port))
	if err != nil {
		return err
	}
	defer srv.stop()
	want, why := p.peer(lab, d)
	a.log.Info("policy path started", "path", p.Name, "server", srv.addr, "gatewayd", g != nil)
	for i := range cases {
		c := cases[i].Case
		cell := policyCell{Path: p.Name, Port: p.Port}
		for run := 1; run <= a.opt.runs; run++ {
			r, err := undisturbed(ctx, a, spent, c.Name, func() (policyRun, error) {
				r, dantedCore, err := a.measure(ctx, lab, srv, c, g, d, want, why)
				return policyRun{runResult: r, DantedCore: dantedCore}, err
			})
			if err != nil {
				return fmt.Errorf("%s, %s, run %d: %w", p.Name, c.Name, run, err)
			}
			a.log.Info("run", "path", p.Name, "case", c.Name, "run", run, "gbit_s", round2(r.Gbps),
				"gatewayd_core_pct", round2(r.GatewaydCore), "danted_core_pct", round2(r.DantedCore),
				"other_core_pct", round2(r.OtherCore), "server_saw", r.ServerSaw)
			cell.Runs = append(cell.Runs, r)
		}
		cell.Gbps = median(cell.Runs, func(r policyRun) float64 { return r.Gbps })
		cell.HostBusy = median(cell.Runs, func(r policyRun) float64 { return r.HostBusy })
		cell.DantedCore = median(cell.Runs, func(r policyRun) float64 { return r.DantedCore })
		if g != nil {
			cell.GatewaydCore = median(cell.Runs, func(r policyRun) float64 { return r.GatewaydCore })
		}
		cases[i].Cells = append(cases[i].Cells, cell)
	}
	return nil
}
