package e2e

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/internal/netlab"
)

// idleCPUEnv, when set to a duration ("60s"), makes TestIdleCPU run
// gatewayd idle for that long; unset, the test is skipped (it only
// measures).
const idleCPUEnv = "GATEWAYD_IDLE_CPU"

// idleBinEnv, when set, names another gatewayd binary to measure (an
// older build, for a before/after comparison).
const idleBinEnv = "GATEWAYD_IDLE_BIN"

// clockTicks is USER_HZ, the unit of /proc/PID/stat's times (100 on
// every Linux architecture gatewayd ships for).
const clockTicks = 100

// cpuTimes reads pid's CPU time from /proc/PID/stat: its own (utime +
// stime) and that of its waited-for children (cutime + cstime: the
// iptables-save runs of the keeper, for example).
func cpuTimes(t *testing.T, pid int) (own, children time.Duration) {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// The fields after "(comm)": state is field 3, utime 14 ... cstime 17.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	tick := func(i int) time.Duration {
		n, err := strconv.ParseInt(f[i-3], 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		return time.Duration(n) * time.Second / clockTicks
	}
	return tick(14) + tick(15), tick(16) + tick(17)
}

// TestIdleCPU measures what an idle gatewayd costs: it starts gatewayd
// in the lab, lets it settle, and reports the CPU time it (and the
// programs it ran) used over GATEWAYD_IDLE_CPU, scaled to an hour. The
// times are in clock ticks (10 ms): measure for minutes, not seconds.
func TestIdleCPU(t *testing.T) {
	d, err := time.ParseDuration(os.Getenv(idleCPUEnv))
	if err != nil || d <= 0 {
		t.Skipf("set %s to a duration (e.g. 60s) to measure idle CPU", idleCPUEnv)
	}
	lab := netlab.NewT(t)
	g := newGW(t, lab, opts{})
	if bin := os.Getenv(idleBinEnv); bin != "" {
		g.bin = bin
	}
	g.start()
	time.Sleep(5 * time.Second) // start-up work is not idle cost
	pid := g.proc.Pid()
	own0, ch0 := cpuTimes(t, pid)
	start := time.Now()
	time.Sleep(d)
	own1, ch1 := cpuTimes(t, pid)
	el := time.Since(start)
	perHour := func(x time.Duration) time.Duration {
		return (x * time.Duration(time.Hour/time.Millisecond) / time.Duration(el/time.Millisecond)).Round(10 * time.Millisecond)
	}
	t.Logf("idle %v: gatewayd utime+stime %v (%v per hour), children cutime+cstime %v (%v per hour)",
		el.Round(time.Millisecond), own1-own0, perHour(own1-own0), ch1-ch0, perHour(ch1-ch0))
	g.stop()
}
