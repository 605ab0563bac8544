package dashboard

import (
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"time"
)

// defaultFlowLimit is how many flows /api/flows lists unless ?limit= says
// otherwise (the largest first): a table a person can read, and an answer
// of a few hundred KiB at most on a router with tens of thousands of flows.
const defaultFlowLimit = 500

// FlowView is one row of the Flows table.
type FlowView struct {
	Proto       string  `json:"proto"`
	Client      string  `json:"client"` // address:port
	ClientIP    string  `json:"client_ip"`
	MAC         string  `json:"mac,omitempty"`
	Hostname    string  `json:"hostname,omitempty"`
	Destination string  `json:"destination"`
	Domain      string  `json:"domain,omitempty"`
	Outbound    string  `json:"outbound,omitempty"`
	Rule        string  `json:"rule,omitempty"`
	BytesUp     uint64  `json:"bytes_up"`
	BytesDown   uint64  `json:"bytes_down"`
	AgeSeconds  float64 `json:"age_seconds"`
	// ID tells a flow apart across polls (the page computes live rates
	// from the byte counts of successive answers).
	ID string `json:"id"`
}

// FlowsView is the /api/flows answer.
type FlowsView struct {
	// At is when the list was taken, Unix milliseconds: rates between two
	// answers are the byte counts' difference over their At's.
	At    int64      `json:"at"`
	Total int        `json:"total"` // flows open now; Flows lists the largest
	Flows []FlowView `json:"flows"`
}

func (d *Dashboard) serveFlows(w http.ResponseWriter, r *http.Request) {
	limit := defaultFlowLimit
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			http.Error(w, fmt.Sprintf("dashboard: limit %q: want a count of flows, 0 or more", v), http.StatusBadRequest)
			return
		}
		limit = n
	}
	d.writeJSON(w, d.flowsView(limit))
}

func (d *Dashboard) flows() []Flow {
	if d.src.Flows == nil {
		return nil
	}
	return d.src.Flows()
}

func (d *Dashboard) flowsView(limit int) FlowsView {
	flows := d.flows()
	sort.SliceStable(flows, func(i, j int) bool { // largest first, older first among equals
		a, b := flows[i].Up+flows[i].Down, flows[j].Up+flows[j].Down
		return a > b || a == b && flows[i].Start.Before(flows[j].Start)
	})
	names, now := d.names(), d.now()
	v := FlowsView{At: now.UnixMilli(), Total: len(flows), Flows: []FlowView{}}
	for _, f := range flows[:min(limit, len(flows))] {
		n := names.name(f.Client.Addr())
		v.Flows = append(v.Flows, FlowView{
			Proto: f.Proto, Client: f.Client.String(), ClientIP: f.Client.Addr().Unmap().String(),
			MAC: n.MAC, Hostname: n.Hostname, Destination: f.Dst.String(), Domain: f.Domain,
			Outbound: f.Outbound, Rule: f.Rule, BytesUp: f.Up, BytesDown: f.Down,
			AgeSeconds: age(now, f.Start),
			ID:         fmt.Sprintf("%s %s %s %d", f.Proto, f.Client, f.Dst, f.Start.UnixNano()),
		})
	}
	return v
}

func age(now, start time.Time) float64 {
	if start.IsZero() {
		return 0
	}
	return max(now.Sub(start).Seconds(), 0)
}
