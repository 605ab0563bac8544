package status

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"net/netip"
	"slices"
	"time"
)

// Snapshot is the /status document.
type Snapshot struct {
	Version       string      `json:"version"`
	GoVersion     string      `json:"go_version"`
	Started       time.Time   `json:"started"`
	UptimeSeconds float64     `json:"uptime_seconds"`
	Config        ConfigInfo  `json:"config"`
	Listeners     []Listener  `json:"listeners"`
	Flows         FlowSummary `json:"flows"`
	// ActiveFlows lists the largest flows (bytes up plus down), at most the
	// request's limit; Flows counts all of them.
	ActiveFlows []Flow `json:"active_flows"`
}

// ConfigInfo names the config file the daemon runs with.
type ConfigInfo struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"` // of the file's bytes, hex: tells which revision is live
}

// Listener is one address the daemon serves on.
type Listener struct {
	Name string         `json:"name"` // what listens: "tcp", "udp", "dns", "status"
	Addr netip.AddrPort `json:"addr"`
}

// FlowSummary counts the active flows.
type FlowSummary struct {
	Active     int            `json:"active"`
	ByProto    map[string]int `json:"by_proto"`
	ByOutbound map[string]int `json:"by_outbound"`
}

// Flow is one active flow, as the daemon's flows func reports it.
type Flow struct {
	Proto       string         `json:"proto"` // "tcp" or "udp"
	Client      netip.AddrPort `json:"client"`
	Destination netip.AddrPort `json:"destination"`
	Domain      string         `json:"domain,omitempty"`   // the name the client looked up, when known
	Outbound    string         `json:"outbound,omitempty"` // how it leaves: "direct" or an outbound's name
	BytesUp     uint64         `json:"bytes_up"`           // client -> remote so far
	BytesDown   uint64         `json:"bytes_down"`         // remote -> client so far
	Start       time.Time      `json:"started"`
	// AgeSeconds is filled in by the server from Start.
	AgeSeconds float64 `json:"age_seconds"`
}

// Bytes is the flow's traffic both ways.
func (f Flow) Bytes() uint64 { return f.BytesUp + f.BytesDown }

// ConfigDigest is the ConfigInfo.SHA256 of a config file's bytes.
func ConfigDigest(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// summarize counts flows, sets their age at now, and returns the count and
// the limit largest, largest first (older first among equals).
func summarize(flows []Flow, now time.Time, limit int) (FlowSummary, []Flow) {
	sum := FlowSummary{Active: len(flows), ByProto: map[string]int{}, ByOutbound: map[string]int{}}
	for i := range flows {
		f := &flows[i]
		sum.ByProto[f.Proto]++
		if f.Outbound != "" {
			sum.ByOutbound[f.Outbound]++
		}
		if !f.Start.IsZero() {
			f.AgeSeconds = max(now.Sub(f.Start).Seconds(), 0)
		}
	}
	slices.SortStableFunc(flows, func(a, b Flow) int {
		if c := cmp.Compare(b.Bytes(), a.Bytes()); c != 0 {
			return c
		}
		return cmp.Compare(b.AgeSeconds, a.AgeSeconds)
	})
	return sum, flows[:min(len(flows), max(limit, 0))]
}
