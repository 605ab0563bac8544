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
