package status

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/gatewayd/gatewayd/internal/metrics"
	"golang.org/x/sys/unix"
)

// procSelf is where the kernel describes the calling process.
const procSelf = "/proc/self"

// ProcessCollector exposes the process figures a router's owner watches:
// resident and virtual memory (from /proc/self/statm), open and maximum file
// descriptors, CPU time, and start as the start time.
func ProcessCollector(start time.Time) metrics.Collector {
	return processCollector(procSelf, start)
}

// processCollector reads its /proc figures below dir (a fake tree in tests).
func processCollector(dir string, start time.Time) metrics.Collector {
	return func(w *metrics.Writer) {
		w.Gauge("process_start_time_seconds", "Start time of the process since the Unix epoch, in seconds.",
			float64(start.UnixNano())/float64(time.Second))
		if vsz, rss, err := readStatm(filepath.Join(dir, "statm")); err != nil {
			w.Errorf("reading memory use: %w", err)
		} else {
			w.Gauge("process_resident_memory_bytes", "Resident memory size in bytes.", float64(rss))
			w.Gauge("process_virtual_memory_bytes", "Virtual memory size in bytes.", float64(vsz))
		}
		if n, err := countOpenFDs(filepath.Join(dir, "fd")); err != nil {
			w.Errorf("counting open file descriptors: %w", err)
		} else {
			w.Gauge("process_open_fds", "Open file descriptors.", float64(n))
		}
		var lim unix.Rlimit
		if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err == nil {
			w.Gauge("process_max_fds", "Limit on open file descriptors (RLIMIT_NOFILE, soft).", float64(lim.Cur))
		}
		var ru unix.Rusage
		if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err == nil {
			cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
			w.Counter("process_cpu_seconds_total", "User and system CPU time spent, in seconds.", cpu.Seconds())
		}
	}
}

// statmFields is how many leading fields of statm are read: size (virtual)
// and resident, both in pages.
const statmFields = 2

// readStatm returns the virtual and resident size in bytes from a
// /proc/PID/statm file.
func readStatm(path string) (vsz, rss uint64, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, err
	}
	f := strings.Fields(string(b))
	if len(f) < statmFields {
		return 0, 0, fmt.Errorf("%s: want at least %d fields, got %q", path, statmFields, b)
	}
	var pages [statmFields]uint64
	for i := range pages {
		if pages[i], err = strconv.ParseUint(f[i], 10, 64); err != nil {
			return 0, 0, fmt.Errorf("%s: field %d: %w", path, i+1, err)
		}
	}
	page := uint64(os.Getpagesize())
	return pages[0] * page, pages[1] * page, nil
}

// countOpenFDs counts the entries of /proc/PID/fd, less the descriptor
// that reading the directory itself holds open.
func countOpenFDs(dir string) (int, error) {
	d, err := os.Open(dir)
	if err != nil {
		return 0, err
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return 0, fmt.Errorf("listing %s: %w", dir, err)
	}
	self := strconv.FormatUint(uint64(d.Fd()), 10)
	n := 0
	for _, name := range names {
		if name != self {
			n++
		}
	}
	return n, nil
}
