package metrics

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

// ContentType is what /metrics is served as: the Prometheus text exposition
// format, version 0.0.4.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// Label is one name="value" pair of a sample.
type Label struct{ Name, Value string }

// L is shorthand for Label{name, value}.
func L(name, value string) Label { return Label{Name: name, Value: value} }

type metricType string

const (
	typeCounter metricType = "counter"
	typeGauge   metricType = "gauge"
	typeSummary metricType = "summary"
)

// Summary sample suffixes, in the order they are written.
const (
	suffixSum   = "_sum"
	suffixCount = "_count"
)

// Writer collects samples and writes them in the Prometheus text format:
// one HELP and TYPE line per family, each family's samples together, families
// sorted by name and samples by labels, so the output is deterministic no
// matter in which order collectors ran. Misuse (an invalid name, a family
// re-declared with another type or help, a repeated sample) drops the sample
// and is reported by Err; the output stays parseable. A Writer is not safe
// for concurrent use.
type Writer struct {
	families map[string]*family
	errs     []error
}

type family struct {
	name, help string
	typ        metricType
	samples    []sample
	seen       map[string]bool // rendered label sets already written
}

type sample struct {
	labels string // rendered: {a="x",b="y"}, or empty
	suffix string // summaries: suffixSum or suffixCount
	value  float64
}

// NewWriter returns an empty Writer.
func NewWriter() *Writer { return &Writer{families: make(map[string]*family)} }

// Counter adds a sample of a counter: a value that only goes up (restarts
// aside). By convention the name ends in _total.
func (w *Writer) Counter(name, help string, v float64, labels ...Label) {
	w.add(name, help, typeCounter, labels, sample{value: v})
}

// Gauge adds a sample of a gauge: a value that goes up and down.
func (w *Writer) Gauge(name, help string, v float64, labels ...Label) {
	w.add(name, help, typeGauge, labels, sample{value: v})
}

// Summary adds a summary without quantiles: the sum and count of the
// observations (name_sum and name_count), enough for a mean over any window.
func (w *Writer) Summary(name, help string, sum float64, count uint64, labels ...Label) {
	w.add(name, help, typeSummary, labels,
		sample{suffix: suffixSum, value: sum}, sample{suffix: suffixCount, value: float64(count)})
}

// Errorf records a collector's problem (e.g. a /proc file it could not
// read); Err returns it with the rest.
func (w *Writer) Errorf(format string, args ...any) {
	w.errs = append(w.errs, fmt.Errorf(format, args...))
}

// Err reports every misuse and collector problem so far, joined.
func (w *Writer) Err() error { return errors.Join(w.errs...) }

func (w *Writer) add(name, help string, typ metricType, labels []Label, samples ...sample) {
	rendered, err := renderLabels(labels, typ)
	if err != nil {
		w.errs = append(w.errs, fmt.Errorf("metric %s: %w", name, err))
		return
	}
	f, err := w.family(name, help, typ)
	if err != nil {
		w.errs = append(w.errs, err)
		return
	}
	if f.seen[rendered] {
		w.errs = append(w.errs, fmt.Errorf("metric %s%s: sample written twice, keeping the first", name, rendered))
		return
	}
	f.seen[rendered] = true
	for _, s := range samples {
		s.labels = rendered
		f.samples = append(f.samples, s)
	}
}

// family returns the family called name, declaring it on first use.
func (w *Writer) family(name, help string, typ metricType) (*family, error) {
	if f, ok := w.families[name]; ok {
		if f.typ != typ || f.help != help {
			return nil, fmt.Errorf("metric %s: declared as %s %q, now as %s %q; dropping the sample",
				name, f.typ, f.help, typ, help)
		}
		return f, nil
	}
	if !validMetricName(name) {
		return nil, fmt.Errorf("metric %q: invalid name (want [a-zA-Z_:][a-zA-Z0-9_:]*)", name)
	}
	if clash := w.clash(name, typ); clash != "" {
		return nil, fmt.Errorf("metric %s: its samples would be read as part of summary %s", name, clash)
	}
	f := &family{name: name, help: help, typ: typ, seen: make(map[string]bool)}
	w.families[name] = f
	return f, nil
}

// clash names an existing family whose sample lines a new family's would be
// confused with: a summary x owns the lines x_sum and x_count.
func (w *Writer) clash(name string, typ metricType) string {
	for _, suf := range []string{suffixSum, suffixCount} {
		if base, ok := strings.CutSuffix(name, suf); ok {
			if f := w.families[base]; f != nil && f.typ == typeSummary {
				return base
			}
		}
		if typ == typeSummary && w.families[name+suf] != nil {
			return name + suf
		}
	}
	return ""
}

// WriteTo writes every family in the text format.
func (w *Writer) WriteTo(out io.Writer) (int64, error) {
	cw := &countingWriter{w: out}
	bw := bufio.NewWriter(cw)
	names := make([]string, 0, len(w.families))
	for name := range w.families {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		f := w.families[name]
		fmt.Fprintf(bw, "# HELP %s %s\n# TYPE %s %s\n", name, escapeHelp(f.help), name, f.typ)
		slices.SortStableFunc(f.samples, func(a, b sample) int { return strings.Compare(a.labels, b.labels) })
		for _, s := range f.samples {
			bw.WriteString(name + s.suffix + s.labels + " " + formatValue(s.value) + "\n")
		}
	}
	err := bw.Flush()
	return cw.n, err
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// renderLabels renders labels as {a="x",b="y"}, in the order given.
func renderLabels(labels []Label, typ metricType) (string, error) {
	if len(labels) == 0 {
		return "", nil
	}
	var b strings.Builder
	b.WriteByte('{')
	for i, l := range labels {
		switch {
		case !validLabelName(l.Name):
			return "", fmt.Errorf("invalid label name %q (want [a-zA-Z_][a-zA-Z0-9_]*, not starting with __)", l.Name)
		case typ == typeSummary && l.Name == "quantile":
			return "", errors.New(`label "quantile" is reserved in a summary`)
		case slices.ContainsFunc(labels[:i], func(o Label) bool { return o.Name == l.Name }):
			return "", fmt.Errorf("label %q given twice", l.Name)
		}
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(l.Name + `="` + escapeLabelValue(l.Value) + `"`)
	}
	b.WriteByte('}')
	return b.String(), nil
}

// Escaping per the text format: HELP escapes backslash and newline; a label
// value also escapes the double quote. The format is UTF-8, so invalid bytes
// (a label value taken from the network) become U+FFFD.
var (
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
	valueEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
)

func escapeHelp(s string) string { return helpEscaper.Replace(strings.ToValidUTF8(s, "\uFFFD")) }

func escapeLabelValue(s string) string {
	return valueEscaper.Replace(strings.ToValidUTF8(s, "\uFFFD"))
}

// formatValue writes the shortest exact float; FormatFloat already spells
// the specials as the format wants: +Inf, -Inf, NaN.
func formatValue(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

func validMetricName(s string) bool {
	return validName(s, func(c byte) bool { return isLetter(c) || c == '_' || c == ':' }, isDigit)
}

func validLabelName(s string) bool {
	return !strings.HasPrefix(s, "__") && validName(s, func(c byte) bool { return isLetter(c) || c == '_' }, isDigit)
}

// validName checks s against first for its first byte, and first or more
// for the rest.
func validName(s string, first, more func(byte) bool) bool {
	if s == "" || !first(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if !first(s[i]) && !more(s[i]) {
			return false
		}
	}
	return true
}

func isLetter(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }
func isDigit(c byte) bool  { return '0' <= c && c <= '9' }
