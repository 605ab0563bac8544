package main

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/gatewayd/gatewayd/internal/netlab"
	"golang.org/x/sys/unix"
)

// machineInfo describes where a benchmark ran.
type machineInfo struct {
	NProc       int      `json:"nproc"`
	CPUModel    string   `json:"cpu_model"`
	Kernel      string   `json:"kernel"`
	MemTotalMiB int      `json:"mem_total_mib"`
	Iperf3      string   `json:"iperf3"`
	Gatewayd    string   `json:"gatewayd"`
	Offloads    []string `json:"veth_offloads"`
}

func readMachine() machineInfo {
	m := machineInfo{NProc: runtime.NumCPU(), CPUModel: "unknown", Kernel: "unknown"}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) >= 2 && f[0] == "MemTotal:" {
				kb, _ := strconv.Atoi(f[1])
				m.MemTotalMiB = kb / 1024
			}
		}
	}
	return m
}

func (m machineInfo) String() string {
	return fmt.Sprintf("machine: %d CPUs (%s), kernel %s, %d MiB RAM; %s; gatewayd %s",
		m.NProc, m.CPUModel, m.Kernel, m.MemTotalMiB, m.Iperf3, m.Gatewayd)
}

// procCPU is a process's CPU time in clock ticks.
type procCPU struct{ user, sys uint64 }

// readProcCPU reads utime and stime of pid from /proc/<pid>/stat.
func readProcCPU(pid int) (procCPU, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procCPU{}, fmt.Errorf("reading CPU time of pid %d: %w", pid, err)
	}
	// The command name (field 2) may contain spaces; fields after it are
	// plain. utime and stime are fields 14 and 15.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return procCPU{}, fmt.Errorf("reading CPU time of pid %d: malformed stat %q", pid, b)
	}
	f := strings.Fields(string(b[i+1:])) // f[0] is field 3 (state)
	if len(f) < 13 {
		return procCPU{}, fmt.Errorf("reading CPU time of pid %d: malformed stat %q", pid, b)
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return procCPU{}, fmt.Errorf("reading CPU time of pid %d: malformed stat %q", pid, b)
	}
	return procCPU{user: ut, sys: st}, nil
}

// corePercent converts the CPU time used since p0 over wall into percent
// of one CPU: total and user space only.
func (p procCPU) corePercent(p0 procCPU, wall time.Duration) (total, user float64) {
	per := func(ticks uint64) float64 { return 100 * float64(ticks) / clockTicks / wall.Seconds() }
	return per(p.user + p.sys - p0.user - p0.sys), per(p.user - p0.user)
}

// clockTicks is USER_HZ, the unit of /proc CPU times (100 on Linux).
const clockTicks = 100

// hostCPU is the machine-wide CPU time from /proc/stat, in ticks: busy
// (everything but idle and iowait) and total, as sampled by the kernel's
// tick; and idle (idle and iowait), which a tickless kernel takes from its
// precise idle clock, with the number of CPUs and when it was read.
type hostCPU struct {
	busy, total uint64
	idle        uint64
	cpus        int
	at          time.Time
}

func readHostCPU() (hostCPU, error) {
	b, err := os.ReadFile("/proc/stat")
	at := time.Now()
	if err != nil {
		return hostCPU{}, fmt.Errorf("reading /proc/stat: %w", err)
	}
	h, err := parseHostCPU(string(b))
	if err != nil {
		return hostCPU{}, fmt.Errorf("reading /proc/stat: %w", err)
	}
	h.at = at
	return h, nil
}

// parseHostCPU reads the "cpu" line of /proc/stat and counts the "cpuN"
// lines.
func parseHostCPU(text string) (hostCPU, error) {
	line, rest, _ := strings.Cut(text, "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return hostCPU{}, fmt.Errorf("unexpected first line %q", line)
	}
	var h hostCPU
	for i, s := range f[1:9] { // user nice system idle iowait irq softirq steal
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return hostCPU{}, fmt.Errorf("%q: %w", line, err)
		}
		h.total += v
		if i != 3 && i != 4 {
			h.busy += v
		} else {
			h.idle += v
		}
	}
	for l := range strings.Lines(rest) {
		if len(l) > 3 && l[:3] == "cpu" && l[3] >= '0' && l[3] <= '9' {
			h.cpus++
		}
	}
	if h.cpus == 0 {
		return hostCPU{}, fmt.Errorf("no cpuN lines")
	}
	return h, nil
}

// busySeconds is the CPU time all CPUs were not idle between h0 and h:
// CPUs × wall time less the idle time. Unlike the tick-sampled busy
// fields, it does not miss work that happens between ticks (a paced
// sender wakes with the timer tick and may finish before the next one),
// as long as the kernel is tickless (NO_HZ), where idle time is measured,
// not sampled.
func (h hostCPU) busySeconds(h0 hostCPU) float64 {
	wall := h.at.Sub(h0.at).Seconds()
	if wall <= 0 || h.idle < h0.idle {
		return 0
	}
	return max(0, float64(h.cpus)*wall-float64(h.idle-h0.idle)/clockTicks)
}

// busyPercent is the share of all CPUs that was busy between h0 and h.
func (h hostCPU) busyPercent(h0 hostCPU) float64 {
	if h.total <= h0.total {
		return 0
	}
	return 100 * float64(h.busy-h0.busy) / float64(h.total-h0.total)
}

// Legacy ethtool "get one feature" commands (linux/ethtool.h); the kernel
// still answers them from the device's feature flags.
var ethtoolFeatures = []struct {
	name string
	cmd  uint32
}{
	{"rx-csum", 0x14}, {"tx-csum", 0x16}, {"sg", 0x18}, {"tso", 0x1e}, {"gso", 0x23}, {"gro", 0x2b},
}

// offloads reports the offload features of the lab's veth and bridge
// devices, e.g. "gateway wan0: rx-csum on, tx-csum on, ...". netlab leaves
// them at the kernel's defaults; this only reads them.
func offloads(lab *netlab.Lab) []string {
	devs := []struct {
		role string
		ns   *netlab.NS
		dev  string
	}{
		{"client", lab.Client, netlab.ClientIf},
		{"gateway", lab.Gateway, netlab.LANPort},
		{"gateway", lab.Gateway, netlab.LANBridge},
		{"gateway", lab.Gateway, netlab.WANIf},
		{"server", lab.Server, netlab.ServerIf},
	}
	var out []string
	for _, d := range devs {
		var feats []string
		err := d.ns.Do(func() error {
			fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				return err
			}
			defer unix.Close(fd)
			for _, f := range ethtoolFeatures {
				on, err := ethtoolGet(fd, d.dev, f.cmd)
				if err != nil {
					return fmt.Errorf("%s: %w", f.name, err)
				}
				state := "off"
				if on {
					state = "on"
				}
				feats = append(feats, f.name+" "+state)
			}
			return nil
		})
		line := fmt.Sprintf("%s %s: %s", d.role, d.dev, strings.Join(feats, ", "))
		if err != nil {
			line = fmt.Sprintf("%s %s: cannot read offloads: %v", d.role, d.dev, err)
		}
		out = append(out, line)
	}
	return out
}

// ethtoolGet runs one ETHTOOL_G* value command through SIOCETHTOOL.
func ethtoolGet(fd int, dev string, cmd uint32) (bool, error) {
	val := struct{ cmd, data uint32 }{cmd: cmd}
	var ifr struct {
		name [unix.IFNAMSIZ]byte
		data unsafe.Pointer
		_    [16]byte // rest of the ifreq union
	}
	copy(ifr.name[:], dev)
	ifr.data = unsafe.Pointer(&val)
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr)))
	if errno != 0 {
		return false, errno
	}
	return val.data != 0, nil
}

// toolVersions fills in the iperf3 and gatewayd versions.
func (m *machineInfo) toolVersions(ctx context.Context, g *gatewayd) {
	if out, err := g.command(ctx, "version"); err == nil {
		m.Gatewayd = strings.TrimPrefix(strings.TrimSpace(out), "gatewayd ")
	}
	if out, err := g.ns.Run(ctx, "iperf3", "--version"); err == nil {
		m.Iperf3, _, _ = strings.Cut(strings.TrimSpace(out), "\n")
		m.Iperf3, _, _ = strings.Cut(m.Iperf3, " (")
	}
}
