// Package metricstest checks what collectors write the way a strict scraper
// would: with the real Prometheus text parser. It is for tests only.
package metricstest

import (
	"bytes"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/gatewayd/gatewayd/internal/metrics"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Exposition is parsed text-format output, checked the way a strict scraper
// would: the real Prometheus parser, plus no repeated sample (which that
// parser lets through).
type Exposition map[string]*dto.MetricFamily

// Parse parses text, failing the test on any problem.
func Parse(t testing.TB, text string) Exposition {
	t.Helper()
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("Prometheus text parser: %v\n%s", err, text)
	}
	for name, f := range fams {
		seen := map[string]bool{}
		for _, m := range f.Metric {
			key := LabelKey(m.Label)
			if seen[key] {
				t.Fatalf("metric %s%s appears twice\n%s", name, key, text)
			}
			seen[key] = true
		}
	}
	return fams
}

// Gather runs collectors and parses what they wrote; it fails the test on
// any problem the Writer reports.
func Gather(t testing.TB, cs ...metrics.Collector) Exposition {
	t.Helper()
	var buf bytes.Buffer
	if _, err := metrics.NewRegistry(cs...).WriteTo(&buf); err != nil {
		t.Fatalf("writing metrics: %v", err)
	}
	return Parse(t, buf.String())
}

// LabelKey renders labels sorted by name, as {a=x,b=y}.
func LabelKey(ls []*dto.LabelPair) string {
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

// Value is the sample of family name with exactly labels (name=value
// pairs); a summary gives its sum.
func (e Exposition) Value(t testing.TB, name string, labels ...string) float64 {
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
		if LabelKey(m.Label) != keyOf(want) {
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

// Values is every sample value in the exposition (summaries: sum and count).
func (e Exposition) Values() []float64 {
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

// FieldBase spaces the distinct values FillCounters and FillNested give
// each field, far from any constant a collector writes (0, 1, a start time).
const FieldBase = 1000

// FillCounters sets every uint64 field of the struct *p to a distinct value
// (FieldBase+1, +2, …) and returns field name -> value.
func FillCounters(t testing.TB, p any) map[string]float64 {
	t.Helper()
	v := reflect.ValueOf(p).Elem()
	out := map[string]float64{}
	for i := range v.NumField() {
		if f := v.Field(i); f.Kind() == reflect.Uint64 {
			n := uint64(FieldBase + i + 1)
			f.SetUint(n)
			out[v.Type().Field(i).Name] = float64(n)
		}
	}
	if len(out) == 0 {
		t.Fatalf("%T has no uint64 fields", p)
	}
	return out
}

// FillNested is FillCounters for structs with nested structs of counters:
// every uint64 field of *p, at any depth, gets a distinct value from
// FieldBase+1 on; the map is keyed by the field's dotted path.
func FillNested(t testing.TB, p any) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	next := uint64(FieldBase)
	fillNested(reflect.ValueOf(p).Elem(), "", &next, out)
	if len(out) == 0 {
		t.Fatalf("%T has no uint64 fields", p)
	}
	return out
}

// fillNested fills v; next is the last value given out.
func fillNested(v reflect.Value, prefix string, next *uint64, out map[string]float64) {
	for i := range v.NumField() {
		f, name := v.Field(i), prefix+v.Type().Field(i).Name
		switch f.Kind() {
		case reflect.Uint64:
			*next++
			f.SetUint(*next)
			out[name] = float64(*next)
		case reflect.Struct:
			fillNested(f, name+".", next, out)
		}
	}
}

// CheckEveryField fails for each stats field whose value appears in no
// sample: a counter added to the stats type but not to its collector.
func CheckEveryField(t testing.TB, fields map[string]float64, e Exposition) {
	t.Helper()
	got := e.Values()
	for name, v := range fields {
		if !slices.Contains(got, v) {
			t.Errorf("stats field %s (value %v) is not exposed", name, v)
		}
	}
}
