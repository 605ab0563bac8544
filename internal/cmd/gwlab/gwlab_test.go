package main

import (
	"os"
	"strings"
	"testing"
	"time"
)

// The shipped config must keep exactly one state_dir and one level line,
// or demo and bench cannot derive their lab config from it.
func TestLabConfigFromShippedConfig(t *testing.T) {
	base, err := os.ReadFile("../../../configs/gateway.toml")
	if err != nil {
		t.Fatal(err)
	}
	got, err := labConfig(base, "/tmp/x/state", "debug")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"\nstate_dir = \"/tmp/x/state\"\n", "\nlevel = \"debug\"\n"} {
		if !strings.Contains(string(got), want) {
			t.Errorf("lab config lacks %q", want)
		}
	}
	if strings.Count(string(got), "\n") != strings.Count(string(base), "\n") {
		t.Error("labConfig changed the number of lines")
	}
}

func TestLabConfigRejectsMissingKey(t *testing.T) {
	if _, err := labConfig([]byte("version = 1\n[log]\nlevel = \"info\"\n"), "/s", "debug"); err == nil {
		t.Error("no error for a config without state_dir")
	}
}

func TestMedian(t *testing.T) {
	runs := func(v ...float64) []runResult {
		var r []runResult
		for _, x := range v {
			r = append(r, runResult{Gbps: x})
		}
		return r
	}
	gbps := func(r runResult) float64 { return r.Gbps }
	for _, c := range []struct {
		in   []runResult
		want float64
	}{
		{runs(3, 1, 2), 2}, {runs(4, 1, 3, 2), 2.5}, {runs(7), 7}, {nil, 0},
	} {
		if got := median(c.in, gbps); got != c.want {
			t.Errorf("median(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}

func TestFlowField(t *testing.T) {
	l := `time=x level=DEBUG msg="tcp flow closed" relay=tcp client=[2001:2:1::2]:5 dst=198.19.0.10:80 up=7 down=170 reason=eof`
	for k, want := range map[string]string{"client": "[2001:2:1::2]:5", "dst": "198.19.0.10:80", "down": "170", "up": "7", "nope": ""} {
		if got := flowField(l, k); got != want {
			t.Errorf("flowField(%q) = %q, want %q", k, got, want)
		}
	}
}

func TestCorePercent(t *testing.T) {
	total, user := procCPU{user: 150, sys: 250}.corePercent(procCPU{user: 100, sys: 100}, 2*time.Second)
	if total != 100 || user != 25 {
		t.Errorf("corePercent = %v, %v; want 100, 25", total, user)
	}
}

// The drop counters come from /proc/net/snmp and /proc/net/snmp6 read
// together; UdpLite's columns must not be mistaken for UDP's.
func TestParseRcvbufErrors(t *testing.T) {
	const text = `Ip: Forwarding DefaultTTL
Ip: 1 64
Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors IgnoredMulti MemErrors
Udp: 162256 49703 238921 256560 238920 0 0 17 0
UdpLite: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors IgnoredMulti MemErrors
UdpLite: 0 0 0 0 7 0 0 0 0
Udp6InErrors                    	5
Udp6RcvbufErrors                	4
Udp6SndbufErrors                	3
`
	got, err := parseRcvbufErrors(text)
	if err != nil {
		t.Fatal(err)
	}
	if got != 238924 {
		t.Fatalf("parseRcvbufErrors = %d, want 238920 + 4", got)
	}
	for _, bad := range []string{
		"",
		"Udp: InDatagrams NoPorts\nUdp: 1 2\n",
		"Udp: InDatagrams RcvbufErrors\nUdp: 1 x\n",
		"Udp: InDatagrams RcvbufErrors\nUdp: 1 2\nUdp6RcvbufErrors -1\n",
	} {
		if n, err := parseRcvbufErrors(bad); err == nil {
			t.Errorf("parseRcvbufErrors(%q) = %d, want an error", bad, n)
		}
	}
}

// A UDP rate counts as carried below the loss target only when the median
// run is: one lucky run out of three does not decide it.
func TestUDPMedians(t *testing.T) {
	runs := []udpRun{
		{DeliveredMbps: 1200, LossPercent: 0.5, ReceiverDrops: 10},
		{DeliveredMbps: 1000, LossPercent: 4.0, ReceiverDrops: 900},
		{DeliveredMbps: 1100, LossPercent: 2.0, ReceiverDrops: 300},
	}
	m := udpMedians(1500, runs)
	if m.OfferedMbps != 1500 || m.DeliveredMbps != 1100 || m.LossPercent != 2.0 || m.ReceiverDrops != 300 || len(m.Runs) != 3 {
		t.Fatalf("udpMedians = %+v", m)
	}
	if m.LossPercent < udpLossTarget {
		t.Fatal("two of three runs lost more than the target, yet the median is below it")
	}
}
