package main

import (
	"context"
	"os"
	"strconv"
	"strings"
	"time"
)

// The lab shares the machine with whatever else runs on it. A run during
// which other processes used more than disturbedCore percent of one CPU is
// repeated (up to maxAttempts in all) once the machine is quiet again, as
// long as the bench has spent less than repeatBudget on waiting and
// repeating; later disturbed runs are kept and marked.
const (
	disturbedCore = 10.0
	maxAttempts   = 3
	repeatBudget  = 90 * time.Second
	quietBusy     = 5.0 // host CPU busy percent that counts as quiet
	quietTimeout  = 20 * time.Second
)

// loadSnapshot splits the machine's CPU time (ticks) into the part the
// measurement itself uses and the rest. Ours is gwlab, its children
// (gatewayd, the iperf3 servers and client, ip, ss; live ones directly,
// exited ones through gwlab's reaped-children time) and kernel threads
// (ksoftirqd does part of the lab's packet processing). The rest, "other",
// is what unrelated processes on the machine used, plus softirq work
// done while a CPU was otherwise idle (a few percent of a CPU).
type loadSnapshot struct {
	host hostCPU
	ours uint64
}

func readLoad() (loadSnapshot, error) {
	h, err := readHostCPU()
	if err != nil {
		return loadSnapshot{}, err
	}
	snap := loadSnapshot{host: h}
	self := os.Getpid()
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // exited meanwhile
		}
		i := strings.LastIndexByte(string(b), ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:])) // f[0] is field 3 (state), f[1] ppid
		if len(f) < 15 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		fields := f[11:13] // utime stime
		switch {
		case pid == self:
			fields = f[11:15] // and cutime cstime: our exited children
		case ppid == self, ppid == 2:
		default:
			continue
		}
		for _, s := range fields {
			v, _ := strconv.ParseUint(s, 10, 64)
			snap.ours += v
		}
	}
	return snap, nil
}

// otherCorePercent is the CPU time between s0 and s that was not ours, in
// percent of one CPU over wall.
func (s loadSnapshot) otherCorePercent(s0 loadSnapshot, wall time.Duration) float64 {
	busy := int64(s.host.busy - s0.host.busy)
	ours := int64(s.ours - s0.ours)
	return 100 * float64(max(0, busy-ours)) / clockTicks / wall.Seconds()
}

// waitQuiet waits until the whole machine is at most quietBusy percent
// busy over half a second, or quietTimeout has passed. It reports whether
// the machine became quiet.
func waitQuiet(ctx context.Context) bool {
	deadline := time.Now().Add(quietTimeout)
	for time.Now().Before(deadline) {
		h0, err := readHostCPU()
		if err != nil {
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(500 * time.Millisecond):
		}
		h1, err := readHostCPU()
		if err != nil {
			return false
		}
		if h1.busyPercent(h0) <= quietBusy {
			return true
		}
	}
	return false
}
