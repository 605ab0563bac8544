package status

import (
	"runtime"
	rtmetrics "runtime/metrics"

	"github.com/gatewayd/gatewayd/internal/metrics"
)

// goMetric maps one runtime/metrics key onto an exposed family.
type goMetric struct {
	key, name, help string
	counter         bool // else a gauge
}

// goMetrics are the Go runtime values worth watching on a router: leaks show
// as goroutines or heap growing, GC pressure as cycles and GC CPU. Names
// follow the Prometheus Go client where it has the same quantity.
var goMetrics = []goMetric{
	{"/sched/goroutines:goroutines", "go_goroutines", "Goroutines that currently exist.", false},
	{"/memory/classes/heap/objects:bytes", "go_memstats_heap_alloc_bytes", "Bytes of allocated heap objects, live or not yet swept.", false},
	{"/memory/classes/total:bytes", "go_memstats_sys_bytes", "Bytes of memory mapped by the Go runtime.", false},
	{"/gc/heap/goal:bytes", "go_gc_heap_goal_bytes", "Heap size target of the current GC cycle.", false},
	{"/gc/cycles/total:gc-cycles", "go_gc_cycles_total", "Completed GC cycles.", true},
	{"/cpu/classes/gc/total:cpu-seconds", "go_gc_cpu_seconds_total", "Estimated CPU time spent on GC.", true},
}

// GoCollector exposes the Go runtime's goroutines, heap and GC figures, and
// go_info. It reads runtime/metrics, which does not stop the world.
func GoCollector() metrics.Collector {
	return func(w *metrics.Writer) {
		samples := make([]rtmetrics.Sample, len(goMetrics))
		for i, m := range goMetrics {
			samples[i].Name = m.key
		}
		rtmetrics.Read(samples)
		for i, m := range goMetrics {
			v, ok := sampleValue(samples[i].Value)
			if !ok {
				continue // not provided by this Go version
			}
			if m.counter {
				w.Counter(m.name, m.help, v)
			} else {
				w.Gauge(m.name, m.help, v)
			}
		}
		w.Gauge("go_info", "The Go version gatewayd was built with.", 1, metrics.L("version", runtime.Version()))
	}
}

func sampleValue(v rtmetrics.Value) (float64, bool) {
	switch v.Kind() {
	case rtmetrics.KindUint64:
		return float64(v.Uint64()), true
	case rtmetrics.KindFloat64:
		return v.Float64(), true
	default:
		return 0, false
	}
}

// BuildCollector exposes gatewayd_build_info{version="..."} 1, so dashboards
// can tell which build a router runs.
func BuildCollector(version string) metrics.Collector {
	return func(w *metrics.Writer) {
		w.Gauge("gatewayd_build_info", "The running gatewayd build; the value is always 1.", 1, metrics.L("version", version))
	}
}
