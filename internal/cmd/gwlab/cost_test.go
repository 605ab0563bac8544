package main

import (
	"encoding/json"
	"math"
	"testing"
	"time"
)

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

// Ticks are USER_HZ (1/100 s); a GB is 10^9 bytes. The machine's busy
// time is CPUs × wall time less idle time, not the tick-sampled busy
// fields.
func TestCPUCost(t *testing.T) {
	t0 := time.Unix(1000, 0)
	l0 := loadSnapshot{host: hostCPU{busy: 1000, idle: 500, cpus: 2, at: t0}, ours: 300}
	l1 := loadSnapshot{host: hostCPU{busy: 1700, idle: 700, cpus: 2, at: t0.Add(5 * time.Second)}, ours: 900}
	c := newCPUCost(l0, l1, procCPU{user: 10, sys: 90}, procCPU{user: 20, sys: 330}, 4e9)
	// 2 CPUs × 5 s less 2 s idle = 8 s; sampled 7 s; lab 6 s; gatewayd 2.5 s.
	if !near(c.HostSeconds, 8) || !near(c.HostTickSeconds, 7) || !near(c.LabSeconds, 6) || !near(c.GatewaydSeconds, 2.5) || c.Bytes != 4e9 {
		t.Fatalf("newCPUCost = %+v, want 8 s machine (7 sampled), 6 s lab, 2.5 s gatewayd, 4e9 bytes", c)
	}
	if !near(c.HostPerGB(), 2) || !near(c.LabPerGB(), 1.5) || !near(c.GatewaydPerGB(), 0.625) {
		t.Errorf("per GB = %v, %v, %v; want 2, 1.5, 0.625", c.HostPerGB(), c.LabPerGB(), c.GatewaydPerGB())
	}
	// Forwarding: no gatewayd; nothing delivered: no figure rather than +Inf.
	f := newCPUCost(l0, l1, procCPU{}, procCPU{}, 0)
	if f.GatewaydSeconds != 0 || f.HostPerGB() != 0 {
		t.Errorf("newCPUCost without gatewayd or bytes = %+v, per GB %v", f, f.HostPerGB())
	}
	// Counters that went backwards (a reaped process) count as nothing.
	if b := newCPUCost(l1, l0, procCPU{user: 9}, procCPU{user: 3}, 1e9); b.HostSeconds != 0 || b.LabSeconds != 0 || b.GatewaydSeconds != 0 {
		t.Errorf("newCPUCost with falling counters = %+v", b)
	}
}

func TestParseHostCPU(t *testing.T) {
	const stat = `cpu  1099495 0 400192 577526 2374 0 109342 2897 0 0
cpu0 553278 0 195340 292100 508 0 52752 1448 0 0
cpu1 546216 0 204851 285426 1865 0 56590 1450 0 0
intr 123 4 5
ctxt 99
`
	h, err := parseHostCPU(stat)
	if err != nil {
		t.Fatal(err)
	}
	if h.busy != 1099495+400192+109342+2897 || h.idle != 577526+2374 || h.total != h.busy+h.idle || h.cpus != 2 {
		t.Errorf("parseHostCPU = %+v", h)
	}
	for _, bad := range []string{"", "cpu 1 2 3\ncpu0 1 2 3\n", "cpu 1 2 3 4 5 6 7 x\ncpu0 1\n", "cpu 1 2 3 4 5 6 7 8\nintr 1\n"} {
		if _, err := parseHostCPU(bad); err == nil {
			t.Errorf("parseHostCPU(%q) gave no error", bad)
		}
	}
}

func TestMedianCostsAndRatio(t *testing.T) {
	m := medianCosts([]cpuCost{
		{HostSeconds: 3, GatewaydSeconds: 1, Bytes: 1e9},
		{HostSeconds: 1, GatewaydSeconds: 2, Bytes: 1e9},
		{HostSeconds: 4, GatewaydSeconds: 4, Bytes: 2e9},
	})
	if !near(m.HostPerGB, 2) || !near(m.GatewaydPerGB, 2) {
		t.Errorf("medianCosts = %+v, want 2 and 2 (each median on its own)", m)
	}
	if ratio(3, 2) != 1.5 || ratio(3, 0) != 0 || ratioText(0) != "-" || costText(0.1234) != "0.123" {
		t.Error("ratio or its text is wrong")
	}
}

// A gatewayd run is compared with the forwarding run just before it.
func TestFixedCellSummarize(t *testing.T) {
	run := func(host float64) fixedRun { return fixedRun{Cost: cpuCost{HostSeconds: host, Bytes: 1e9}} }
	c := fixedCell{
		Forwarding: []fixedRun{run(1), run(2), run(1)},
		Gatewayd:   []fixedRun{run(2), run(2), run(3)},
	}
	c.summarize()
	if c.Fwd.HostPerGB != 1 || c.Gwd.HostPerGB != 2 || c.CostRatio != 2 {
		t.Errorf("medians %v, %v, ratio %v; want 1, 2, 2", c.Fwd.HostPerGB, c.Gwd.HostPerGB, c.CostRatio)
	}
	if c.PairRatio != 2 { // pairs: 2, 1, 3
		t.Errorf("median pair ratio = %v, want 2", c.PairRatio)
	}
	tcp := fixedCase{RateMbps: 5000}
	udp := fixedCase{UDP: true, RateMbps: 500}
	for _, k := range []struct {
		c    fixedCase
		r    fixedRun
		want bool
	}{
		{tcp, fixedRun{DeliveredMbps: 4800}, true},
		{tcp, fixedRun{DeliveredMbps: 4700}, false},
		{udp, fixedRun{DeliveredMbps: 499, LossPercent: 0.2}, true},
		{udp, fixedRun{DeliveredMbps: 499, LossPercent: 1.5}, false},
	} {
		if got := k.r.keptUp(k.c); got != k.want {
			t.Errorf("keptUp(%+v, %+v) = %v", k.c, k.r, got)
		}
	}
}

func TestCheckOnly(t *testing.T) {
	for _, ok := range []string{"", "tcp", "tcp,fixed", "udp,fixed,scale"} {
		if err := checkOnly(ok); err != nil {
			t.Errorf("checkOnly(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"tcpx", "tcp,", "tcp,,udp", "TCP"} {
		if checkOnly(bad) == nil {
			t.Errorf("checkOnly(%q) accepted it", bad)
		}
	}
	a := &app{opt: options{only: "tcp,fixed"}}
	if !a.benchPart("tcp") || !a.benchPart("fixed") || a.benchPart("udp") {
		t.Error("benchPart does not follow a comma-separated -only")
	}
	if all := (&app{}); !all.benchPart("scale") {
		t.Error("without -only every part runs")
	}
}

// The fields gwlab reads of iperf3's report (3.12, TCP and UDP).
func TestIperfResultBytes(t *testing.T) {
	const report = `{"end":{"sum_received":{"start":0,"end":5.00,"seconds":5.00,"bytes":9375000000,
	"bits_per_second":15000000000,"lost_percent":0.5},"cpu_utilization_percent":{"host_total":80.1,"remote_total":40.2}}}`
	var r iperfResult
	if err := json.Unmarshal([]byte(report), &r); err != nil {
		t.Fatal(err)
	}
	s := r.End.SumReceived
	if s.Bytes != 9375000000 || s.BitsPerSecond != 15e9 || s.LostPercent != 0.5 || r.End.CPU.Host != 80.1 {
		t.Errorf("parsed %+v", r.End)
	}
	if got := rateArg(5000.0 / 8); got != "625000K" {
		t.Errorf("rateArg(625 Mbit/s) = %q", got)
	}
}
