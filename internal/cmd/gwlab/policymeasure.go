package main

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/gatewayd/gatewayd/internal/netlab"
)

// policyMeasure runs iperf3 once against srv and checks that every data
// stream reached it from want. g is the running gatewayd (nil: stopped).
// Dante's CPU is measured on every path; it is the lab's, so it is taken
// out of the other processes' share (its workers are not gwlab's children,
// which is all readLoad counts as ours).
func (a *app) policyMeasure(ctx context.Context, lab *netlab.Lab, srv *iperfServer, c benchCase, g *gatewayd, d *danted,
	want netip.Addr, why string) (policyRun, error) {
	var r policyRun
	off := srv.out.Len()
	var g0 procCPU
	var err error
	if g != nil {
		if g0, err = readProcCPU(g.proc.Pid()); err != nil {
			return r, err
		}
	}
	d0, err := d.ticks()
	if err != nil {
		return r, fmt.Errorf("danted: %w", err)
	}
	load0, err := readLoad()
	if err != nil {
		return r, err
	}
	start := time.Now()
	res, err := runIperfClient(ctx, lab.Client, srv.addr, a.secs(), c.Streams, c.Reverse)
	wall := time.Since(start)
	if err != nil {
		return r, err
	}
	load1, err := readLoad()
	if err != nil {
		return r, err
	}
	d1, err := d.ticks()
	if err != nil {
		return r, fmt.Errorf("danted: %w", err)
	}
	if g != nil {
		g1, err := readProcCPU(g.proc.Pid())
		if err != nil {
			return r, err
		}
		r.GatewaydCore, r.GatewaydUser = g1.corePercent(g0, wall)
	}
	if d1 > d0 { // a worker reaped without accounting takes its time out of the sum
		r.DantedCore = 100 * float64(d1-d0) / clockTicks / wall.Seconds()
	}
	r.Gbps = res.End.SumReceived.BitsPerSecond / 1e9
	r.WallSeconds = wall.Seconds()
	r.HostBusy = load1.host.busyPercent(load0.host)
	r.OtherCore = max(0, load1.otherCorePercent(load0, wall)-r.DantedCore)
	r.IperfCPU = [2]float64{res.End.CPU.Host, res.End.CPU.Remote}

	peers, err := srv.streamPeers(off, c.Streams)
	if err != nil {
		return r, err
	}
	for _, p := range peers {
		if p != want {
			return r, fmt.Errorf("the iperf3 server saw a stream from %s, want %s (%s)", p, want, why)
		}
	}
	r.ServerSaw = want.String()
	return r, nil
}
