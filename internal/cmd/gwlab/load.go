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

// otherSnapshot is the CPU time (ticks, including reaped children) of
// every process that is not part of the measurement: not gwlab itself,
// not its children (gatewayd, the iperf3 servers and client, ip, ss), not
// a kernel thread.
type otherSnapshot map[int]uint64

func readOthers() otherSnapshot {
	self := os.Getpid()
	snap := otherSnapshot{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
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
		if ppid == self || ppid == 2 || pid == 2 {
			continue
		}
		var ticks uint64
		for _, s := range f[11:15] { // utime stime cutime cstime
			v, _ := strconv.ParseUint(s, 10, 64)
			ticks += v
		}
		snap[pid] = ticks
	}
	return snap
}

// corePercent is the other processes' CPU use between s0 and s over wall,
// in percent of one CPU. Processes that started meanwhile count fully;
// those that exited count through their parent's reaped-children time.
func (s otherSnapshot) corePercent(s0 otherSnapshot, wall time.Duration) float64 {
	var d uint64
	for pid, t := range s {
		if t0 := s0[pid]; t >= t0 { // a new process has t0 = 0; t < t0 only for a reused pid
			d += t - t0
		}
	}
	return 100 * float64(d) / clockTicks / wall.Seconds()
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
