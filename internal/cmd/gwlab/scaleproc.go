package main

import (
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// What the scale bench reads from /proc: a process's open fds, its RSS and
// open-file limit, and the whole machine's used memory.

// countFDs is the number of entries in /proc/<pid>/fd.
func countFDs(pid int) (int, error) {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return 0, fmt.Errorf("counting the fds of pid %d: %w", pid, err)
	}
	return len(ents), nil
}

// readRSS is VmRSS of pid in KiB.
func readRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("reading the RSS of pid %d: %w", pid, err)
	}
	return statusKiB(string(b), "VmRSS")
}

// statusKiB is the value of key ("VmRSS") in /proc/<pid>/status text, in
// KiB.
func statusKiB(text, key string) (int64, error) {
	for _, l := range strings.Split(text, "\n") {
		k, v, ok := strings.Cut(l, ":")
		if !ok || k != key {
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("status: malformed %s line %q", key, l)
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("status: malformed %s line %q", key, l)
		}
		return n, nil
	}
	return 0, fmt.Errorf("status: no %s line", key)
}

// readMemUsed is the machine's used memory in KiB; see memUsedKiB.
func readMemUsed() (int64, error) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, fmt.Errorf("reading /proc/meminfo: %w", err)
	}
	return memUsedKiB(string(b))
}

// memUsedKiB is MemTotal - MemFree - Buffers - Cached from /proc/meminfo
// text: what processes and the kernel (slab, socket buffers, page tables,
// pipe pages) hold, without the page cache.
func memUsedKiB(text string) (int64, error) {
	want := []string{"MemTotal", "MemFree", "Buffers", "Cached"}
	got := map[string]int64{}
	for _, l := range strings.Split(text, "\n") {
		k, _, ok := strings.Cut(l, ":")
		if !ok || !slices.Contains(want, k) {
			continue
		}
		n, err := statusKiB(l, k)
		if err != nil {
			return 0, fmt.Errorf("meminfo: %w", err)
		}
		got[k] = n
	}
	for _, k := range want {
		if _, ok := got[k]; !ok {
			return 0, fmt.Errorf("meminfo: no %s line", k)
		}
	}
	return got["MemTotal"] - got["MemFree"] - got["Buffers"] - got["Cached"], nil
}

// readNofile is the soft and hard open-file limit of pid.
func readNofile(pid int) (soft, hard string, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid))
	if err != nil {
		return "", "", fmt.Errorf("reading the limits of pid %d: %w", pid, err)
	}
	return nofileLimits(string(b))
}

var nofileRE = regexp.MustCompile(`(?m)^Max open files\s+(\S+)\s+(\S+)\s+files\s*$`)

// nofileLimits parses the "Max open files" line of /proc/<pid>/limits.
func nofileLimits(text string) (soft, hard string, err error) {
	m := nofileRE.FindStringSubmatch(text)
	if m == nil {
		return "", "", fmt.Errorf("limits: no \"Max open files\" line")
	}
	return m[1], m[2], nil
}

// perFlow is (at - before) / flows, and false when there are no flows.
func perFlow(before, at int64, flows int) (float64, bool) {
	if flows <= 0 {
		return 0, false
	}
	return float64(at-before) / float64(flows), true
}

// backNear reports whether a figure that went from start to peak while
// flows were open is back near start: at most a tenth of the rise, or
// slack, whichever is larger, above it.
func backNear(start, peak, now, slack int64) bool {
	return now-start <= max(slack, (peak-start)/10)
}

var logMsgRE = regexp.MustCompile(`level=(WARN|ERROR) msg=("(?:[^"\\]|\\.)*"|\S+)`)

// logSummary counts gatewayd's WARN and ERROR lines by level and message,
// most frequent first: ["ERROR \"accept failed\" x5600", ...].
func logSummary(log string) []string {
	n := map[string]int{}
	for _, l := range strings.Split(log, "\n") {
		if m := logMsgRE.FindStringSubmatch(l); m != nil {
			n[m[1]+" "+m[2]]++
		}
	}
	keys := make([]string, 0, len(n))
	for k := range n {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int {
		if n[a] != n[b] {
			return n[b] - n[a]
		}
		return strings.Compare(a, b)
	})
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = fmt.Sprintf("%s x%d", k, n[k])
	}
	return out
}
