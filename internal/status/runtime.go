package status

import (
	"runtime"
	"runtime/metrics"
)

// goMetric maps one runtime/metrics key onto an exposed family.
type goMetric struct {
	key, name, help string
	typ             metricType
}

// goMetrics are the Go runtime values worth watching on a router: leaks show
// as goroutines or heap growing, GC pressure as cycles and GC CPU. Names
// follow the Prometheus Go client where it has the same quantity.
var goMetrics = []goMetric{
	{"/sched/goroutines:goroutines", "go_goroutines", "Goroutines that currently exist.", typeGauge},
	{"/memory/classes/heap/objects:bytes", "go_memstats_heap_alloc_bytes", "Bytes of allocated heap objects, live or not yet swept.", typeGauge},
	{"/memory/classes/total:bytes", "go_memstats_sys_bytes", "Bytes of memory mapped by the Go runtime.", typeGauge},
	{"/gc/heap/goal:bytes", "go_gc_heap_goal_bytes", "Heap size target of the current GC cycle.", typeGauge},
	{"/gc/cycles/total:gc-cycles", "go_gc_cycles_total", "Completed GC cycles.", typeCounter},
	{"/cpu/classes/gc/total:cpu-seconds", "go_gc_cpu_seconds_total", "Estimated CPU time spent on GC.", typeCounter},
}

// GoCollector exposes the Go runtime's goroutines, heap and GC figures, and
// go_info. It reads runtime/metrics, which does not stop the world.
func GoCollector() Collector {
	return func(w *Writer) {
		samples := make([]metrics.Sample, len(goMetrics))
		for i, m := range goMetrics {
			samples[i].Name = m.key
		}
		metrics.Read(samples)
		for i, m := range goMetrics {
			v, ok := sampleValue(samples[i].Value)
			if !ok {
				continue // not provided by this Go version
			}
			if m.typ == typeCounter {
				w.Counter(m.name, m.help, v)
			} else {
				w.Gauge(m.name, m.help, v)
			}
		}
		w.Gauge("go_info", "The Go version gatewayd was built with.", 1, L("version", runtime.Version()))
	}
}

func sampleValue(v metrics.Value) (float64, bool) {
	switch v.Kind() {
	case metrics.KindUint64:
		return float64(v.Uint64()), true
	case metrics.KindFloat64:
		return v.Float64(), true
	default:
		return 0, false
	}
}

// BuildCollector exposes gatewayd_build_info{version="..."} 1, so dashboards
// can tell which build a router runs.
func BuildCollector(version string) Collector {
	return func(w *Writer) {
		w.Gauge("gatewayd_build_info", "The running gatewayd build; the value is always 1.", 1, L("version", version))
	}
}
