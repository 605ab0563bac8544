package metrics_test

import (
	"bytes"
	"math"
	"strings"
	"testing"

	"github.com/gatewayd/gatewayd/internal/metrics"
	"github.com/gatewayd/gatewayd/internal/metrics/metricstest"
)

// TestWriterExactText pins the format itself: HELP/TYPE once per family,
// families sorted by name, samples by labels, escapes, special values.
func TestWriterExactText(t *testing.T) {
	w := metrics.NewWriter()
	w.Gauge("b_gauge", "A gauge.\nSecond line with a \\ backslash.", 2.5, metrics.L("x", `q"uo\te`+"\n"))
	w.Counter("a_total", "A counter.", 3, metrics.L("k", "z"))
	w.Counter("a_total", "A counter.", 1e21, metrics.L("k", "a"))
	w.Gauge("c", "Specials.", math.Inf(1), metrics.L("v", "inf"))
	w.Gauge("c", "Specials.", math.Inf(-1), metrics.L("v", "minf"))
	w.Gauge("c", "Specials.", math.NaN(), metrics.L("v", "nan"))
	w.Summary("d_seconds", "A summary.", 0.25, 4, metrics.L("u", "x"))
	w.Gauge("e", "No labels.", 0)
	var buf bytes.Buffer
	if _, err := w.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	if err := w.Err(); err != nil {
		t.Fatal(err)
	}
	want := `# HELP a_total A counter.
# TYPE a_total counter
a_total{k="a"} 1e+21
a_total{k="z"} 3
# HELP b_gauge A gauge.\nSecond line with a \\ backslash.
# TYPE b_gauge gauge
b_gauge{x="q\"uo\\te\n"} 2.5
# HELP c Specials.
# TYPE c gauge
c{v="inf"} +Inf
c{v="minf"} -Inf
c{v="nan"} NaN
# HELP d_seconds A summary.
# TYPE d_seconds summary
d_seconds_sum{u="x"} 0.25
d_seconds_count{u="x"} 4
# HELP e No labels.
# TYPE e gauge
e 0
`
	if got := buf.String(); got != want {
		t.Errorf("output:\n%s\nwant:\n%s", got, want)
	}
	metricstest.Parse(t, buf.String())
}

// TestWriterRoundTrip: what goes in comes out of the real Prometheus
// parser unchanged, however odd the label values.
func TestWriterRoundTrip(t *testing.T) {
	odd := []string{"", `a"b`, `back\slash`, "new\nline", "tab\there", "ünïcødé ✓", "\xff\xfebad utf8", `\n literal`}
	w := metrics.NewWriter()
	for i, v := range odd {
		w.Counter("odd_total", "Odd label values.", float64(i), metrics.L("v", v), metrics.L("i", string(rune('a'+i))))
	}
	var buf bytes.Buffer
	if _, err := w.WriteTo(&buf); err != nil || w.Err() != nil {
		t.Fatalf("write: %v, %v", err, w.Err())
	}
	e := metricstest.Parse(t, buf.String())
	for i, v := range odd {
		want := strings.ToValidUTF8(v, "\uFFFD")
		if got := e.Value(t, "odd_total", "v", want, "i", string(rune('a'+i))); got != float64(i) {
			t.Errorf("label %q: value %v, want %d", v, got, i)
		}
	}
}

// TestWriterDeterministic: the order samples arrive in does not matter.
func TestWriterDeterministic(t *testing.T) {
	type s struct {
		name, label string
		v           float64
	}
	in := []s{{"x_total", "b", 1}, {"y", "a", 2}, {"x_total", "a", 3}, {"y", "c", 4}, {"z", "", 5}}
	render := func(order []int) string {
		w := metrics.NewWriter()
		for _, i := range order {
			if in[i].name == "y" {
				w.Gauge(in[i].name, "Y.", in[i].v, metrics.L("l", in[i].label))
			} else {
				w.Counter(in[i].name, "C.", in[i].v, metrics.L("l", in[i].label))
			}
		}
		var buf bytes.Buffer
		_, _ = w.WriteTo(&buf)
		return buf.String()
	}
	first := render([]int{0, 1, 2, 3, 4})
	if got := render([]int{4, 3, 2, 1, 0}); got != first {
		t.Errorf("order changed the output:\n%s\nvs\n%s", first, got)
	}
	metricstest.Parse(t, first)
}

// TestWriterMisuse: bad calls are dropped and reported; the rest of the
// output is still valid.
func TestWriterMisuse(t *testing.T) {
	w := metrics.NewWriter()
	w.Counter("good_total", "Good.", 1)
	for _, bad := range []func(){
		func() { w.Counter("1bad", "Bad name.", 1) },
		func() { w.Counter("bad-name", "Bad name.", 1) },
		func() { w.Counter("", "Empty name.", 1) },
		func() { w.Counter("l_total", "Bad label.", 1, metrics.L("1x", "v")) },
		func() { w.Counter("l_total", "Bad label.", 1, metrics.L("__reserved", "v")) },
		func() { w.Counter("l_total", "Bad label.", 1, metrics.L("a", "1"), metrics.L("a", "2")) },
		func() { w.Summary("s_seconds", "Quantile.", 1, 1, metrics.L("quantile", "0.5")) },
		func() { w.Gauge("good_total", "Good.", 2) },           // type conflict
		func() { w.Counter("good_total", "Other help.", 2) },   // help conflict
		func() { w.Counter("good_total", "Good.", 2) },         // repeated sample
		func() { w.Summary("good_total", "Good.", 1, 1) },      // type conflict, summary
		func() { w.Summary("lat_seconds", "Lat.", 1, 2) },      // fine, sets up the next two
		func() { w.Counter("lat_seconds_count", "Clash.", 1) }, // would read as the summary's
		func() { w.Gauge("good_total_sum", "Gauge.", 1) },      // fine: good_total is no summary
		func() { w.Summary("good_total", "Good.", 1, 1) },      // still a conflict
	} {
		bad()
	}
	var buf bytes.Buffer
	if _, err := w.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	e := metricstest.Parse(t, buf.String())
	if got := e.Value(t, "good_total"); got != 1 {
		t.Errorf("good_total = %v, want the first sample, 1", got)
	}
	for _, name := range []string{"1bad", "bad-name", "l_total", "s_seconds", "lat_seconds_count"} {
		if e[name] != nil {
			t.Errorf("%s was written despite being invalid", name)
		}
	}
	if e["lat_seconds"] == nil || e["good_total_sum"] == nil {
		t.Errorf("valid families lat_seconds and good_total_sum missing:\n%s", buf.String())
	}
	err := w.Err()
	if err == nil {
		t.Fatal("Err() = nil after misuse")
	}
	for _, want := range []string{`"1bad"`, `"bad-name"`, `"1x"`, `"__reserved"`, `label "a" given twice`,
		`"quantile" is reserved`, "declared as counter", "sample written twice", "summary lat_seconds"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Err() lacks %q:\n%v", want, err)
		}
	}
}

// FuzzWriter: whatever names, labels and values collectors pass, nothing
// panics and the output always parses.
func FuzzWriter(f *testing.F) {
	f.Add("m_total", "help", "l", "v", 1.0, uint8(0))
	f.Add("m", "h\n\\", "__x", "\"\n\\", math.NaN(), uint8(1))
	f.Add("m_sum", "", "quantile", "\xff", math.Inf(-1), uint8(2))
	f.Add("a:b", "h", "", "", math.Copysign(0, -1), uint8(3))
	f.Fuzz(func(t *testing.T, name, help, lname, lvalue string, v float64, kind uint8) {
		w := metrics.NewWriter()
		add := []func(string, float64){
			func(n string, v float64) { w.Counter(n, help, v, metrics.L(lname, lvalue)) },
			func(n string, v float64) { w.Gauge(n, help, v, metrics.L(lname, lvalue)) },
			func(n string, v float64) { w.Summary(n, help, v, uint64(kind), metrics.L(lname, lvalue)) },
		}
		for i := range 4 {
			add[(int(kind)+i)%len(add)](name, v)
			add[i%len(add)](name+"_sum", v)
			add[(i+1)%len(add)](strings.TrimSuffix(name, "_count"), v)
		}
		var buf bytes.Buffer
		if _, err := w.WriteTo(&buf); err != nil {
			t.Fatal(err)
		}
		metricstest.Parse(t, buf.String())
	})
}
