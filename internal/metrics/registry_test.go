package metrics_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/gatewayd/gatewayd/internal/metrics"
	"github.com/gatewayd/gatewayd/internal/metrics/metricstest"
)

func TestRegistrySurvivesPanickingCollector(t *testing.T) {
	r := metrics.NewRegistry(
		func(w *metrics.Writer) { w.Gauge("before", "B.", 1) },
		nil,
		func(w *metrics.Writer) { w.Gauge("partial", "P.", 2); panic("boom") },
		func(w *metrics.Writer) { w.Gauge("after", "A.", 3) },
	)
	var buf strings.Builder
	_, err := r.WriteTo(&buf)
	if err == nil || !strings.Contains(err.Error(), "panicked: boom") {
		t.Errorf("WriteTo error = %v, want the panic reported", err)
	}
	e := metricstest.Parse(t, buf.String())
	for name, want := range map[string]float64{"before": 1, "partial": 2, "after": 3} {
		if got := e.Value(t, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
}

// TestRegistryConcurrent: registering while scraping is safe (run with
// -race to mean something).
func TestRegistryConcurrent(t *testing.T) {
	r := &metrics.Registry{}
	const n = 50
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range n {
			name := fmt.Sprintf("g%d", i)
			r.Register(func(w *metrics.Writer) { w.Gauge(name, "G.", float64(i)) })
		}
	}()
	for range n {
		var buf strings.Builder
		if _, err := r.WriteTo(&buf); err != nil {
			t.Fatal(err)
		}
		metricstest.Parse(t, buf.String())
	}
	<-done
	var buf strings.Builder
	_, _ = r.WriteTo(&buf)
	if got := len(metricstest.Parse(t, buf.String())); got != n {
		t.Errorf("%d families after all registrations, want %d", got, n)
	}
}
