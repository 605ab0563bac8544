package status

import (
	"bytes"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// testLogger logs at debug level into the test output.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// exposition is parsed text-format output, checked the way a strict scraper
// would: the real Prometheus parser, plus no repeated sample (which that
// parser lets through).
type exposition map[string]*dto.MetricFamily

func parseText(t testing.TB, text string) exposition {
	t.Helper()
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("Prometheus text parser: %v\n%s", err, text)
	}
	for name, f := range fams {
		seen := map[string]bool{}
		for _, m := range f.Metric {
			key := labelKey(m.Label)
			if seen[key] {
				t.Fatalf("metric %s%s appears twice\n%s", name, key, text)
			}
			seen[key] = true
		}
	}
	return fams
}

// gather runs collectors and parses what they wrote; it fails the test on
// any problem the Writer reports.
func gather(t testing.TB, cs ...Collector) exposition {
	t.Helper()
	var buf bytes.Buffer
	if _, err := NewRegistry(cs...).WriteTo(&buf); err != nil {
		t.Fatalf("writing metrics: %v", err)
	}
	return parseText(t, buf.String())
}

// labelKey renders labels sorted by name, as {a="x",b="y"}.
func labelKey(ls []*dto.LabelPair) string {
	m := map[string]string{}
	for _, l := range ls {
		m[l.GetName()] = l.GetValue()
	}
	return keyOf(m)
}

func keyOf(m map[string]string) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, k+"="+m[k])
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// value is the sample of family name with exactly labels (name=value
// pairs); a summary gives its sum.
func (e exposition) value(t testing.TB, name string, labels ...string) float64 {
	t.Helper()
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
	f := e[name]
	if f == nil {
		t.Fatalf("no metric family %s", name)
	}
	for _, m := range f.Metric {
		if labelKey(m.Label) != keyOf(want) {
			continue
		}
		switch f.GetType() {
		case dto.MetricType_COUNTER:
			return m.GetCounter().GetValue()
		case dto.MetricType_GAUGE:
			return m.GetGauge().GetValue()
		case dto.MetricType_SUMMARY:
			return m.GetSummary().GetSampleSum()
		}
		t.Fatalf("metric %s has unexpected type %v", name, f.GetType())
	}
	t.Fatalf("no sample %s%s", name, keyOf(want))
	return 0
}

// values is every sample value in the exposition (summaries: sum and count).
func (e exposition) values() []float64 {
	var out []float64
	for _, f := range e {
		for _, m := range f.Metric {
			switch {
			case m.Counter != nil:
				out = append(out, m.GetCounter().GetValue())
			case m.Gauge != nil:
				out = append(out, m.GetGauge().GetValue())
			case m.Summary != nil:
				out = append(out, m.GetSummary().GetSampleSum(), float64(m.GetSummary().GetSampleCount()))
			}
		}
	}
	return out
}
