package status

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/internal/metrics"
	"github.com/gatewayd/gatewayd/internal/metrics/metricstest"
)

func TestGoCollector(t *testing.T) {
	e := metricstest.Gather(t, GoCollector(), BuildCollector("v1.2.3"))
	if got := e.Value(t, "go_goroutines"); got < 1 {
		t.Errorf("go_goroutines = %v, want at least this test's", got)
	}
	if got := e.Value(t, "go_memstats_heap_alloc_bytes"); got <= 0 {
		t.Errorf("go_memstats_heap_alloc_bytes = %v, want > 0", got)
	}
	for _, name := range []string{"go_memstats_sys_bytes", "go_gc_heap_goal_bytes", "go_gc_cycles_total", "go_gc_cpu_seconds_total"} {
		if e[name] == nil {
			t.Errorf("%s missing", name)
		}
	}
	if got := e.Value(t, "go_info", "version", runtime.Version()); got != 1 {
		t.Errorf("go_info = %v, want 1", got)
	}
	if got := e.Value(t, "gatewayd_build_info", "version", "v1.2.3"); got != 1 {
		t.Errorf("gatewayd_build_info = %v, want 1", got)
	}
}

// TestProcessCollectorReal reads this test process's own /proc entries.
func TestProcessCollectorReal(t *testing.T) {
	start := time.Unix(1700000000, 500_000_000)
	e := metricstest.Gather(t, ProcessCollector(start))
	if got := e.Value(t, "process_start_time_seconds"); got != 1700000000.5 {
		t.Errorf("process_start_time_seconds = %v, want 1700000000.5", got)
	}
	rss := e.Value(t, "process_resident_memory_bytes")
	if rss <= 0 || rss > e.Value(t, "process_virtual_memory_bytes") {
		t.Errorf("resident %v bytes: want > 0 and <= virtual", rss)
	}
	if int(rss)%os.Getpagesize() != 0 {
		t.Errorf("resident %v bytes is not whole pages", rss)
	}
	// Open one more file and see the count follow.
	before := e.Value(t, "process_open_fds")
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	after := metricstest.Gather(t, ProcessCollector(start)).Value(t, "process_open_fds")
	if after != before+1 {
		t.Errorf("process_open_fds %v -> %v after opening a file, want +1", before, after)
	}
	if maxFDs := e.Value(t, "process_max_fds"); maxFDs < before {
		t.Errorf("process_max_fds %v < open fds %v", maxFDs, before)
	}
	if e["process_cpu_seconds_total"] == nil {
		t.Error("process_cpu_seconds_total missing")
	}
}

// fakeProc makes a /proc/PID-like directory with the given statm text and
// nfds entries in fd/.
func fakeProc(t *testing.T, statm string, nfds int) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "statm"), []byte(statm), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "fd"), 0o700); err != nil {
		t.Fatal(err)
	}
	for i := range nfds {
		// Numbers below 3 are never the directory reader's own descriptor.
		if err := os.WriteFile(filepath.Join(dir, "fd", string(rune('0'+i))), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestProcessCollectorFake(t *testing.T) {
	page := float64(os.Getpagesize())
	dir := fakeProc(t, "1000 250 30 4 0 90 0\n", 3)
	e := metricstest.Gather(t, processCollector(dir, time.Unix(10, 0)))
	if got := e.Value(t, "process_resident_memory_bytes"); got != 250*page {
		t.Errorf("resident = %v, want 250 pages (%v)", got, 250*page)
	}
	if got := e.Value(t, "process_virtual_memory_bytes"); got != 1000*page {
		t.Errorf("virtual = %v, want 1000 pages", got)
	}
	if got := e.Value(t, "process_open_fds"); got != 3 {
		t.Errorf("open fds = %v, want 3", got)
	}
}

// TestProcessCollectorMalformed: unreadable or garbled /proc files drop
// their metrics and are reported, never panic.
func TestProcessCollectorMalformed(t *testing.T) {
	for _, statm := range []string{"", "12", "abc 34", "12 -5", "99999999999999999999999 1", "\x00\xff"} {
		dir := fakeProc(t, statm, 1)
		w := metrics.NewRegistry(processCollector(dir, time.Unix(10, 0))).Gather()
		var buf strings.Builder
		if _, err := w.WriteTo(&buf); err != nil {
			t.Fatal(err)
		}
		e := metricstest.Parse(t, buf.String())
		if e["process_resident_memory_bytes"] != nil {
			t.Errorf("statm %q: resident memory exposed from a garbled file", statm)
		}
		if e.Value(t, "process_open_fds") != 1 || e.Value(t, "process_start_time_seconds") != 10 {
			t.Errorf("statm %q: the other process metrics went missing", statm)
		}
		if err := w.Err(); err == nil || !strings.Contains(err.Error(), "reading memory use") {
			t.Errorf("statm %q: Err() = %v, want the statm problem", statm, err)
		}
	}
	w := metrics.NewRegistry(processCollector(filepath.Join(t.TempDir(), "missing"), time.Unix(10, 0))).Gather()
	if err := w.Err(); err == nil || !strings.Contains(err.Error(), "counting open file descriptors") {
		t.Errorf("missing /proc dir: Err() = %v, want both reads reported", err)
	}
}
