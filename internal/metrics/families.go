package metrics

// Families more than one package writes: the TCP and UDP relays both
// count flows and bytes, told apart by the proto label. A family must have
// one help text wherever it is written (the Writer drops a sample whose
// help differs), so it is named here once.
const (
	FlowsActive     = "gatewayd_flows_active"
	FlowsActiveHelp = "Flows being relayed now: TCP connections, UDP sessions."
	FlowsTotal      = "gatewayd_flows_total"
	FlowsTotalHelp  = "Flows started: TCP connections accepted (refused ones included), UDP sessions created."
	Bytes           = "gatewayd_bytes_total"
	BytesHelp       = "Payload bytes relayed; up is client to remote. TCP adds a flow's bytes when it ends."
)

// With returns base followed by more, in a new slice (base is shared by
// several samples of one collector and must not be appended to in place).
func With(base []Label, more ...Label) []Label {
	return append(append(make([]Label, 0, len(base)+len(more)), base...), more...)
}

// FlowCounts are a relay's samples of the shared families.
type FlowCounts struct {
	Active, Total, BytesUp, BytesDown uint64
}

// WriteFlows writes a relay's flows and bytes under proto ("tcp", "udp"),
// every sample also carrying labels.
func WriteFlows(w *Writer, proto string, c FlowCounts, labels ...Label) {
	p := With(labels, L("proto", proto))
	w.Gauge(FlowsActive, FlowsActiveHelp, float64(c.Active), p...)
	w.Counter(FlowsTotal, FlowsTotalHelp, float64(c.Total), p...)
	w.Counter(Bytes, BytesHelp, float64(c.BytesUp), With(p, L("direction", "up"))...)
	w.Counter(Bytes, BytesHelp, float64(c.BytesDown), With(p, L("direction", "down"))...)
}

// Keyed is one sample of a family split by one label: the label's value
// and the count.
type Keyed struct {
	Key string
	N   uint64
}

// CountersBy writes one counter sample of name per entry of ks, labelled
// with labels and then label=Key.
func (w *Writer) CountersBy(name, help, label string, ks []Keyed, labels ...Label) {
	for _, k := range ks {
		w.Counter(name, help, float64(k.N), With(labels, L(label, k.Key))...)
	}
}
