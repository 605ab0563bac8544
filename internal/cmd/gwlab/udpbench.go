package main

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/gatewayd/gatewayd/internal/netlab"
)

// UDP bench parameters: the 1200-byte datagrams (a QUIC-sized
// payload), and the loss below which a rate counts as delivered.
const (
	udpDatagram   = 1200
	udpLossTarget = 1.0 // percent
	// udpRatio is issue 14's target: gatewayd's rate below 1 % loss at
	// least 0.8 of forwarding's delivered rate, with iperf3's default
	// buffers (issue 3 asked 0.6; the 2 MiB rows are shown against it too).
	udpRatio = 0.8
	udpPort  = 5211
)

// udpBuffers are the endpoint socket buffers the UDP part runs with, each
// for both directions and both paths. "" is iperf3's default: the system's
// net.core.rmem_default (208 KiB here), about 90 queued 1200-byte datagrams
// (each costs about 2.3 KB of buffer with the kernel's overhead), under a
// millisecond at 1 Gbit/s. "1M" is `iperf3 -w 1M` on both ends, which the
// kernel doubles to 2 MiB: the order of what UDP-heavy applications ask
// for (QUIC stacks request MiBs).
// It needs no sysctl change: net.core.rmem_max is 4 MiB here. The endpoint
// buffer is not gatewayd's: the two rows tell how much of the loss is the
// receiving iperf3 falling behind on CPUs it shares with the relay.
var udpBuffers = []string{"", "1M"}

// udpSearch are the fractions of forwarding's delivered rate offered to
// gatewayd, highest first, until one is delivered with < udpLossTarget loss.
// The search runs only when gatewayd at full speed loses more than that.
var udpSearch = []float64{1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1}

// udpRun is one iperf3 UDP run.
type udpRun struct {
	OfferedMbps   float64 `json:"offered_mbit_s"` // 0: unlimited
	DeliveredMbps float64 `json:"delivered_mbit_s"`
	LossPercent   float64 `json:"loss_percent"`
	GatewaydCore  float64 `json:"gatewayd_core_percent,omitempty"`
	OtherCore     float64 `json:"other_processes_core_percent"`
	// Socket receive-buffer overflows (UDP RcvbufErrors, both families)
	// during the run: in the gateway namespace (gatewayd's sockets) and in
	// the namespace of the receiving iperf3.
	GatewayDrops  uint64      `json:"gateway_ns_rcvbuf_errors"`
	ReceiverDrops uint64      `json:"receiver_ns_rcvbuf_errors"`
	Cost          cpuCost     `json:"cost"`
	Costs         costMedians `json:"cost_medians"`
	// Runs are the individual runs; the fields above are their medians,
	// each taken on its own.
	Runs []udpRun `json:"runs,omitempty"`
}

// udpCase is one direction: forwarding's delivered rate at full speed, then
// gatewayd at full speed and at the highest rate it carries with < 1 % loss.
type udpCase struct {
	Name       string   `json:"name"`
	Reverse    bool     `json:"reverse"`
	Buffer     string   `json:"iperf3_w,omitempty"` // "": iperf3's default
	Forwarding udpRun   `json:"forwarding"`
	GatewayMax udpRun   `json:"gatewayd_unlimited"`
	Lossless   udpRun   `json:"gatewayd_below_1pct_loss"`
	Search     []udpRun `json:"gatewayd_search"`
	Ratio      float64  `json:"ratio"`
}

// benchUDP measures both directions for each endpoint buffer: forwarding
// first (gatewayd stopped), then gatewayd. Each case uses a fresh server on
// its own port.
func (a *app) benchUDP(ctx context.Context, lab *netlab.Lab, g *gatewayd) ([]udpCase, error) {
	var out []udpCase
	for _, buf := range udpBuffers {
		for _, reverse := range []bool{false, true} {
			c := udpCase{Name: udpCaseName(reverse, buf), Reverse: reverse, Buffer: buf}
			dst := netip.AddrPortFrom(lab.Remotes[0].V4, uint16(udpPort+len(out)))
			srv, err := startIperfServer(ctx, lab.Server, dst)
			if err != nil {
				return nil, err
			}
			if c.Forwarding, err = a.udpMeasure(ctx, lab, dst, 0, &c, nil); err != nil {
				srv.stop()
				return nil, fmt.Errorf("%s, forwarding: %w", c.Name, err)
			}
			err = a.udpGatewayd(ctx, lab, g, dst, &c)
			srv.stop()
			if err != nil {
				return nil, fmt.Errorf("%s, gatewayd: %w", c.Name, err)
			}
			out = append(out, c)
		}
	}
	return out, nil
}

func udpCaseName(reverse bool, buf string) string {
	dir := "upload"
	if reverse {
		dir = "download"
	}
	bufName := "default buffers"
	if buf != "" {
		bufName = "-w " + buf
	}
	return fmt.Sprintf("IPv4 UDP %s, 1200 B, %s", dir, bufName)
}

// udpGatewayd runs gatewayd and fills the gatewayd side of c.
func (a *app) udpGatewayd(ctx context.Context, lab *netlab.Lab, g *gatewayd, dst netip.AddrPort, c *udpCase) (err error) {
	if err := g.start(ctx); err != nil {
		return err
	}
	defer func() {
		if serr := g.stop(); serr != nil && err == nil {
			err = serr
		}
	}()
	if c.GatewayMax, err = a.udpMeasure(ctx, lab, dst, 0, c, g); err != nil {
		return err
	}
	if c.GatewayMax.LossPercent < udpLossTarget {
		c.Lossless = c.GatewayMax // full speed is already below the loss target
	} else if err := a.udpSearchLossless(ctx, lab, g, dst, c); err != nil {
		return err
	}
	if c.Forwarding.DeliveredMbps > 0 {
		c.Ratio = c.Lossless.DeliveredMbps / c.Forwarding.DeliveredMbps
	}
	a.log.Info("udp case done", "case", c.Name, "forwarding_mbit_s", round2(c.Forwarding.DeliveredMbps),
		"gatewayd_lossless_mbit_s", round2(c.Lossless.DeliveredMbps), "ratio", round2(c.Ratio))
	return nil
}

// udpSearchLossless offers gatewayd falling fractions of forwarding's rate
// until one is delivered with < udpLossTarget loss, and records it.
func (a *app) udpSearchLossless(ctx context.Context, lab *netlab.Lab, g *gatewayd, dst netip.AddrPort, c *udpCase) error {
	for _, f := range udpSearch {
		r, err := a.udpMeasure(ctx, lab, dst, f*c.Forwarding.DeliveredMbps, c, g)
		if err != nil {
			return err
		}
		c.Search = append(c.Search, r)
		if r.LossPercent < udpLossTarget {
			c.Lossless = r
			return nil
		}
	}
	return nil
}

// udpMeasure runs udpOnce -runs times and returns the medians: a rate
// counts as carried below the loss target only if the median run is.
func (a *app) udpMeasure(ctx context.Context, lab *netlab.Lab, dst netip.AddrPort, mbps float64, c *udpCase, g *gatewayd) (udpRun, error) {
	runs := make([]udpRun, 0, a.opt.runs)
	for range max(a.opt.runs, 1) {
		r, err := a.udpOnce(ctx, lab, dst, mbps, c, g)
		if err != nil {
			return udpRun{}, err
		}
		runs = append(runs, r)
	}
	return udpMedians(mbps, runs), nil
}

// udpMedians is the run of per-field medians of runs, which it keeps.
func udpMedians(mbps float64, runs []udpRun) udpRun {
	return udpRun{
		OfferedMbps:   mbps,
		DeliveredMbps: median(runs, func(r udpRun) float64 { return r.DeliveredMbps }),
		LossPercent:   median(runs, func(r udpRun) float64 { return r.LossPercent }),
		GatewaydCore:  median(runs, func(r udpRun) float64 { return r.GatewaydCore }),
		GatewayDrops:  uint64(median(runs, func(r udpRun) float64 { return float64(r.GatewayDrops) })),
		ReceiverDrops: uint64(median(runs, func(r udpRun) float64 { return float64(r.ReceiverDrops) })),
		Costs:         medianCosts(udpCosts(runs)),
		Runs:          runs,
	}
}

func udpCosts(runs []udpRun) []cpuCost {
	costs := make([]cpuCost, len(runs))
	for i, r := range runs {
		costs[i] = r.Cost
	}
	return costs
}

// udpOnce runs `iperf3 -u -l 1200 -b RATE [-w BUF]` once (rate 0:
// unlimited) and counts where datagrams were dropped.
func (a *app) udpOnce(ctx context.Context, lab *netlab.Lab, dst netip.AddrPort, mbps float64, c *udpCase, g *gatewayd) (udpRun, error) {
	args := []string{"-c", dst.Addr().String(), "-p", strconv.Itoa(int(dst.Port())), "-u",
		"-l", strconv.Itoa(udpDatagram), "-b", fmt.Sprintf("%.0fM", mbps), "-t", strconv.Itoa(a.secs()), "-J",
		"--connect-timeout", "3000"}
	if mbps == 0 {
		args[8] = "0"
	}
	if c.Reverse {
		args = append(args, "-R")
	}
	if c.Buffer != "" {
		args = append(args, "-w", c.Buffer)
	}
	receiver := lab.Server
	if c.Reverse {
		receiver = lab.Client
	}
	var cpu0 procCPU
	var err error
	if g != nil {
		if cpu0, err = readProcCPU(g.proc.Pid()); err != nil {
			return udpRun{}, err
		}
	}
	gw0, err := udpRcvbufErrors(ctx, lab.Gateway)
	if err != nil {
		return udpRun{}, err
	}
	rcv0, err := udpRcvbufErrors(ctx, receiver)
	if err != nil {
		return udpRun{}, err
	}
	l0, err := readLoad()
	if err != nil {
		return udpRun{}, err
	}
	start := time.Now()
	res, err := iperfOnce(ctx, lab.Client, time.Duration(a.secs()+20)*time.Second, args)
	if err != nil {
		return udpRun{}, err
	}
	l1, err := readLoad()
	if err != nil {
		return udpRun{}, err
	}
	r := udpRun{OfferedMbps: mbps, DeliveredMbps: res.End.SumReceived.BitsPerSecond / 1e6, LossPercent: res.End.SumReceived.LostPercent}
	var cpu1 procCPU
	if g != nil {
		if cpu1, err = readProcCPU(g.proc.Pid()); err != nil {
			return r, err
		}
		r.GatewaydCore, _ = cpu1.corePercent(cpu0, time.Since(start))
	}
	r.Cost = newCPUCost(l0, l1, cpu0, cpu1, res.End.SumReceived.Bytes)
	r.OtherCore = l1.otherCorePercent(l0, time.Since(start))
	gw1, err := udpRcvbufErrors(ctx, lab.Gateway)
	if err != nil {
		return r, err
	}
	rcv1, err := udpRcvbufErrors(ctx, receiver)
	if err != nil {
		return r, err
	}
	r.GatewayDrops, r.ReceiverDrops = gw1-gw0, rcv1-rcv0
	a.log.Info("udp run", "offered_mbit_s", round2(mbps), "delivered_mbit_s", round2(r.DeliveredMbps),
		"loss_pct", round2(r.LossPercent), "gatewayd", g != nil, "reverse", c.Reverse, "w", c.Buffer,
		"gateway_ns_drops", r.GatewayDrops, "receiver_ns_drops", r.ReceiverDrops)
	return r, nil
}

// udpRcvbufErrors is the namespace's count of UDP datagrams dropped because
// a socket's receive buffer was full, IPv4 and IPv6 together. Without IPv6
// there is no /proc/net/snmp6, and nothing to add from it.
func udpRcvbufErrors(ctx context.Context, ns *netlab.NS) (uint64, error) {
	v4, err := ns.Run(ctx, "cat", "/proc/net/snmp")
	if err != nil {
		return 0, fmt.Errorf("reading UDP counters in %s: %w", ns.Name, err)
	}
	v6, err := ns.Run(ctx, "sh", "-c", "[ ! -e /proc/net/snmp6 ] || cat /proc/net/snmp6")
	if err != nil {
		return 0, fmt.Errorf("reading UDP counters in %s: %w", ns.Name, err)
	}
	n, err := parseRcvbufErrors(v4 + v6)
	if err != nil {
		return 0, fmt.Errorf("reading UDP counters in %s: %w", ns.Name, err)
	}
	return n, nil
}

// parseRcvbufErrors sums Udp RcvbufErrors from /proc/net/snmp (a header
// line and a value line, both starting "Udp:") and Udp6RcvbufErrors from
// /proc/net/snmp6 ("name value" lines).
func parseRcvbufErrors(text string) (uint64, error) {
	var sum uint64
	var header []string
	found := false
	for line := range strings.Lines(text) {
		f := strings.Fields(line)
		switch {
		case len(f) == 2 && f[0] == "Udp6RcvbufErrors":
			v, err := strconv.ParseUint(f[1], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("parsing the Udp6RcvbufErrors value: %w", err)
			}
			sum += v
		case len(f) > 1 && f[0] == "Udp:" && header == nil:
			header = f
		case len(f) > 1 && f[0] == "Udp:":
			i := slices.Index(header, "RcvbufErrors")
			if i < 0 || i >= len(f) {
				return 0, fmt.Errorf("no Udp RcvbufErrors column")
			}
			v, err := strconv.ParseUint(f[i], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("parsing the Udp RcvbufErrors value: %w", err)
			}
			sum += v
			found = true
		}
	}
	if !found {
		return 0, fmt.Errorf("no Udp counters")
	}
	return sum, nil
}

// printUDPTable prints the UDP results.
func (a *app) printUDPTable(cases []udpCase) {
	a.printf("\nUDP (iperf3 -u -l %d, medians of %d runs of %ds; delivered = end.sum_received):\n\n", udpDatagram, max(a.opt.runs, 1), a.secs())
	tw := tabwriter.NewWriter(a.out, 0, 0, 1, ' ', 0)
	row := func(cells ...string) { fmt.Fprintf(tw, "| %s\t|\n", strings.Join(cells, "\t| ")) }
	row("case", "forwarding Mbit/s (loss)", "gatewayd unlimited Mbit/s (loss)", "gatewayd < 1% loss Mbit/s (loss)", "ratio", "gatewayd %core", "target",
		"drops gw ns / receiver ns, gatewayd unlimited")
	row("---", "---:", "---:", "---:", "---:", "---:", "---", "---:")
	for _, c := range cases {
		verdict := "missed"
		if c.Ratio >= udpRatio && c.Lossless.LossPercent < udpLossTarget {
			verdict = "met"
		}
		row(c.Name,
			fmt.Sprintf("%.0f (%.2f%%)", c.Forwarding.DeliveredMbps, c.Forwarding.LossPercent),
			fmt.Sprintf("%.0f (%.2f%%)", c.GatewayMax.DeliveredMbps, c.GatewayMax.LossPercent),
			fmt.Sprintf("%.0f (%.2f%%)", c.Lossless.DeliveredMbps, c.Lossless.LossPercent),
			fmt.Sprintf("%.2f", c.Ratio),
			fmt.Sprintf("%.0f", c.Lossless.GatewaydCore),
			fmt.Sprintf(">= %.1f at < 1%% loss: %s", udpRatio, verdict),
			fmt.Sprintf("%d / %d", c.GatewayMax.GatewayDrops, c.GatewayMax.ReceiverDrops))
	}
	_ = tw.Flush()
	a.printf("\nUDP cost per GB delivered (CPU-seconds per 10^9 bytes received, medians; machine = /proc/stat, all CPUs; gatewayd = its own):\n\n")
	tw = tabwriter.NewWriter(a.out, 0, 0, 1, ' ', 0)
	row = func(cells ...string) { fmt.Fprintf(tw, "| %s\t|\n", strings.Join(cells, "\t| ")) }
	row("case", "machine fwd", "machine gwd unlimited", "cost ratio", "lab fwd / gwd unlimited", "lab ratio",
		"gatewayd own, unlimited", "machine gwd < 1% loss", "gatewayd own, < 1% loss")
	row("---", "---:", "---:", "---:", "---:", "---:", "---:", "---:", "---:")
	for _, c := range cases {
		fwd, gmax, gl := c.Forwarding.Costs, c.GatewayMax.Costs, c.Lossless.Costs
		row(c.Name, costText(fwd.HostPerGB), costText(gmax.HostPerGB), ratioText(ratio(gmax.HostPerGB, fwd.HostPerGB)),
			costText(fwd.LabPerGB)+" / "+costText(gmax.LabPerGB), ratioText(ratio(gmax.LabPerGB, fwd.LabPerGB)),
			costText(gmax.GatewaydPerGB), costText(gl.HostPerGB), costText(gl.GatewaydPerGB))
	}
	_ = tw.Flush()
	a.printf("(at full speed gatewayd's cost per GB delivered includes the datagrams it or the receiver dropped; the fixed-rate cells compare equal work)\n\n")
	a.printf("drops: UDP RcvbufErrors (receive-buffer overflows only) in the gateway namespace (gatewayd's sockets) and in the receiving iperf3's namespace\n")
	a.printf("individual runs, delivered Mbit/s (loss %%): forwarding | gatewayd unlimited | gatewayd < 1%% loss\n")
	for _, c := range cases {
		a.printf("    %-45s %s | %s | %s\n", c.Name+":", udpRunsText(c.Forwarding), udpRunsText(c.GatewayMax), udpRunsText(c.Lossless))
	}
}

func udpRunsText(r udpRun) string {
	parts := make([]string, 0, len(r.Runs))
	for _, x := range r.Runs {
		parts = append(parts, fmt.Sprintf("%.0f (%.2f)", x.DeliveredMbps, x.LossPercent))
	}
	return strings.Join(parts, " ")
}
