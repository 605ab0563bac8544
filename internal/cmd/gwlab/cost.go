package main

import "fmt"

// Cost per byte (issue 14): CPU time spent per GB delivered, for the whole
// machine (/proc/stat) and for gatewayd alone (/proc/<pid>/stat), so a
// relay is compared with forwarding by the work it makes, not only by the
// throughput it reaches on a machine whose CPUs it shares with the
// endpoints.

// bytesPerGB is the GB of the cost figures: 10^9 bytes, as iperf3 counts.
const bytesPerGB = 1e9

// costTarget is issue 14's goal: gatewayd's whole-machine CPU per GB at
// most this times forwarding's.
const costTarget = 1.5

// cpuCost is the CPU time one run used, in seconds, and what it delivered.
type cpuCost struct {
	HostSeconds float64 `json:"host_cpu_s"` // whole machine: CPUs × wall time less idle time
	// HostTickSeconds is the busy time as the kernel's tick sampled it
	// (/proc/stat's busy fields): kept to show how far sampling is off.
	HostTickSeconds float64 `json:"host_cpu_s_tick_sampled"`
	// LabSeconds is the CPU time of the lab's own processes (gwlab, its
	// children: gatewayd and iperf3; kernel threads): the machine's figure
	// without other work on the machine, but also without softirq work
	// done while a CPU was idle.
	LabSeconds      float64 `json:"lab_cpu_s"`
	GatewaydSeconds float64 `json:"gatewayd_cpu_s,omitempty"` // gatewayd's utime+stime
	Bytes           float64 `json:"bytes_received"`           // end.sum_received.bytes
}

// newCPUCost converts the readings before (l0, gw0) and after (l1, gw1) a
// run and its delivered bytes into a cpuCost. gw0 and gw1 are zero when
// gatewayd did not run.
func newCPUCost(l0, l1 loadSnapshot, gw0, gw1 procCPU, bytes float64) cpuCost {
	c := cpuCost{Bytes: bytes, HostSeconds: l1.host.busySeconds(l0.host)}
	c.HostTickSeconds = tickSeconds(l0.host.busy, l1.host.busy)
	c.LabSeconds = tickSeconds(l0.ours, l1.ours)
	c.GatewaydSeconds = tickSeconds(gw0.user+gw0.sys, gw1.user+gw1.sys)
	return c
}

// tickSeconds is the seconds between two tick counters; 0 if the counter
// fell (a process was reaped between the readings).
func tickSeconds(t0, t1 uint64) float64 {
	if t1 <= t0 {
		return 0
	}
	return float64(t1-t0) / clockTicks
}

// perGB is CPU-seconds per GB delivered; 0 when nothing was delivered.
func perGB(seconds, bytes float64) float64 {
	if bytes <= 0 {
		return 0
	}
	return seconds / (bytes / bytesPerGB)
}

// HostPerGB is the whole machine's CPU-seconds per GB delivered.
func (c cpuCost) HostPerGB() float64 { return perGB(c.HostSeconds, c.Bytes) }

// LabPerGB is the lab processes' CPU-seconds per GB delivered.
func (c cpuCost) LabPerGB() float64 { return perGB(c.LabSeconds, c.Bytes) }

// GatewaydPerGB is gatewayd's own CPU-seconds per GB delivered.
func (c cpuCost) GatewaydPerGB() float64 { return perGB(c.GatewaydSeconds, c.Bytes) }

// costMedians are the per-GB medians of a cell's runs, each taken on its own.
type costMedians struct {
	HostPerGB     float64 `json:"median_host_cpu_s_per_gb"`
	LabPerGB      float64 `json:"median_lab_cpu_s_per_gb"`
	GatewaydPerGB float64 `json:"median_gatewayd_cpu_s_per_gb,omitempty"`
}

func medianCosts(costs []cpuCost) costMedians {
	return costMedians{
		HostPerGB:     median(costs, cpuCost.HostPerGB),
		LabPerGB:      median(costs, cpuCost.LabPerGB),
		GatewaydPerGB: median(costs, cpuCost.GatewaydPerGB),
	}
}

// ratio is a / b, 0 when b is 0 (nothing to compare with).
func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// ratioText prints a ratio, or "-" where there is none.
func ratioText(r float64) string {
	if r == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", r)
}

// costText prints CPU-seconds per GB, or "-" where nothing was measured.
func costText(v float64) string {
	if v == 0 {
		return "-"
	}
	return fmt.Sprintf("%.3f", v)
}
