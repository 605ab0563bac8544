package main

import (
	"context"
	"fmt"
	"net/netip"
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
	udpRatio      = 0.6 // target: gatewayd's lossless rate / forwarding's delivered rate
	udpPort       = 5211
)

// udpSearch are the fractions of forwarding's delivered rate offered to
// gatewayd, highest first, until one is delivered with < udpLossTarget loss.
var udpSearch = []float64{1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1}

// udpRun is one iperf3 UDP run.
type udpRun struct {
	OfferedMbps   float64 `json:"offered_mbit_s"` // 0: unlimited
	DeliveredMbps float64 `json:"delivered_mbit_s"`
	LossPercent   float64 `json:"loss_percent"`
	GatewaydCore  float64 `json:"gatewayd_core_percent,omitempty"`
}

// udpCase is one direction: forwarding's delivered rate at full speed, then
// gatewayd at full speed and at the highest rate it carries with < 1 % loss.
type udpCase struct {
	Name       string   `json:"name"`
	Reverse    bool     `json:"reverse"`
	Forwarding udpRun   `json:"forwarding"`
	GatewayMax udpRun   `json:"gatewayd_unlimited"`
	Lossless   udpRun   `json:"gatewayd_below_1pct_loss"`
	Search     []udpRun `json:"gatewayd_search"`
	Ratio      float64  `json:"ratio"`
}

// benchUDP measures both directions: forwarding first (gatewayd stopped),
// then gatewayd. Each direction uses a fresh server on its own port.
func (a *app) benchUDP(ctx context.Context, lab *netlab.Lab, g *gatewayd) ([]udpCase, error) {
	var out []udpCase
	for i, reverse := range []bool{false, true} {
		name := "IPv4 UDP upload, 1200 B"
		if reverse {
			name = "IPv4 UDP download, 1200 B"
		}
		c := udpCase{Name: name, Reverse: reverse}
		dst := netip.AddrPortFrom(lab.Remotes[0].V4, uint16(udpPort+i))
		srv, err := startIperfServer(ctx, lab.Server, dst)
		if err != nil {
			return nil, err
		}
		if c.Forwarding, err = a.udpMeasure(ctx, lab, dst, 0, reverse, nil); err != nil {
			srv.stop()
			return nil, fmt.Errorf("%s, forwarding: %w", name, err)
		}
		err = a.udpGatewayd(ctx, lab, g, dst, &c)
		srv.stop()
		if err != nil {
			return nil, fmt.Errorf("%s, gatewayd: %w", name, err)
		}
		out = append(out, c)
	}
	return out, nil
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
	if c.GatewayMax, err = a.udpMeasure(ctx, lab, dst, 0, c.Reverse, g); err != nil {
		return err
	}
	for _, f := range udpSearch {
		r, err := a.udpMeasure(ctx, lab, dst, f*c.Forwarding.DeliveredMbps, c.Reverse, g)
		if err != nil {
			return err
		}
		c.Search = append(c.Search, r)
		if r.LossPercent < udpLossTarget {
			c.Lossless = r
			break
		}
	}
	if c.Forwarding.DeliveredMbps > 0 {
		c.Ratio = c.Lossless.DeliveredMbps / c.Forwarding.DeliveredMbps
	}
	a.log.Info("udp case done", "case", c.Name, "forwarding_mbit_s", round2(c.Forwarding.DeliveredMbps),
		"gatewayd_lossless_mbit_s", round2(c.Lossless.DeliveredMbps), "ratio", round2(c.Ratio))
	return nil
}

// udpMeasure runs `iperf3 -u -l 1200 -b RATE` once (rate 0: unlimited).
func (a *app) udpMeasure(ctx context.Context, lab *netlab.Lab, dst netip.AddrPort, mbps float64, reverse bool, g *gatewayd) (udpRun, error) {
	args := []string{"-c", dst.Addr().String(), "-p", strconv.Itoa(int(dst.Port())), "-u",
		"-l", strconv.Itoa(udpDatagram), "-b", fmt.Sprintf("%.0fM", mbps), "-t", strconv.Itoa(a.secs()), "-J",
		"--connect-timeout", "3000"}
	if mbps == 0 {
		args[8] = "0"
	}
	if reverse {
		args = append(args, "-R")
	}
	var cpu0 procCPU
	var err error
	if g != nil {
		if cpu0, err = readProcCPU(g.proc.Pid()); err != nil {
			return udpRun{}, err
		}
	}
	start := time.Now()
	res, err := iperfOnce(ctx, lab.Client, time.Duration(a.secs()+20)*time.Second, args)
	if err != nil {
		return udpRun{}, err
	}
	r := udpRun{OfferedMbps: mbps, DeliveredMbps: res.End.SumReceived.BitsPerSecond / 1e6, LossPercent: res.End.SumReceived.LostPercent}
	if g != nil {
		cpu1, err := readProcCPU(g.proc.Pid())
		if err != nil {
			return r, err
		}
		r.GatewaydCore, _ = cpu1.corePercent(cpu0, time.Since(start))
	}
	a.log.Info("udp run", "offered_mbit_s", round2(mbps), "delivered_mbit_s", round2(r.DeliveredMbps),
		"loss_pct", round2(r.LossPercent), "gatewayd", g != nil, "reverse", reverse)
	return r, nil
}

// printUDPTable prints the UDP results.
func (a *app) printUDPTable(cases []udpCase) {
	a.printf("\nUDP (iperf3 -u -l %d, %ds per run; delivered = end.sum_received):\n\n", udpDatagram, a.secs())
	tw := tabwriter.NewWriter(a.out, 0, 0, 1, ' ', 0)
	row := func(cells ...string) { fmt.Fprintf(tw, "| %s\t|\n", strings.Join(cells, "\t| ")) }
	row("case", "forwarding Mbit/s (loss)", "gatewayd unlimited Mbit/s (loss)", "gatewayd < 1% loss Mbit/s (loss)", "ratio", "gatewayd %core", "target")
	row("---", "---:", "---:", "---:", "---:", "---:", "---")
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
			fmt.Sprintf(">= %.1f at < 1%% loss: %s", udpRatio, verdict))
	}
	_ = tw.Flush()
}
