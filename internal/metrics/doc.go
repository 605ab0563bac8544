// Package metrics is the Prometheus text exposition format writer (Writer,
// Label, Counter, Gauge, Summary) and the registry of collectors /metrics
// runs (Collector, Registry). It depends on nothing of gatewayd's: each part
// of the daemon exposes its own Collector next to its stats, and the status
// endpoint only serves what the Registry gathers.
package metrics
