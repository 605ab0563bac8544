package dashboard

import (
	"time"
)

// topBlockedShown is how many blocked names the DNS panel lists.
const topBlockedShown = 10

// DNSView is the /api/dns answer: the DNS panel.
type DNSView struct {
	DNSSummary
	// QueryLog tells whether recent queries and blocked names are
	// recorded ([status] query_log); Recent and TopBlocked are empty when
	// it is off.
	QueryLog   bool           `json:"query_log"`
	Upstreams  []UpstreamView `json:"upstreams"`
	Recent     []QueryView    `json:"recent"`
	TopBlocked []NameCount    `json:"top_blocked"`
}

// UpstreamView is one upstream's health.
type UpstreamView struct {
	Upstream
	LatencyMS float64 `json:"latency_ms"` // mean round trip; 0: no answer yet
}

// QueryView is one recent query.
type QueryView struct {
	Time      time.Time `json:"time"`
	Client    string    `json:"client"`
	Hostname  string    `json:"hostname,omitempty"`
	Name      string    `json:"name"`
	Type      string    `json:"type"`
	Result    string    `json:"result"`
	Rcode     string    `json:"rcode"`
	Answer    string    `json:"answer,omitempty"`
	LatencyMS float64   `json:"latency_ms"`
}

func (d *Dashboard) dnsView() any {
	v := DNSView{
		DNSSummary: d.dnsSummary(d.counters()),
		QueryLog:   d.src.Queries != nil,
		Upstreams:  []UpstreamView{},
		Recent:     []QueryView{},
		TopBlocked: []NameCount{},
	}
	if d.src.Upstreams != nil {
		for _, u := range d.src.Upstreams() {
			v.Upstreams = append(v.Upstreams, UpstreamView{Upstream: u, LatencyMS: ms(u.Latency)})
		}
	}
	if d.src.Queries != nil {
		names := d.names()
		for _, q := range d.src.Queries() {
			v.Recent = append(v.Recent, QueryView{
				Time: q.Time, Client: q.Client.String(), Hostname: names.name(q.Client).Hostname,
				Name: q.Name, Type: q.Type, Result: q.Result, Rcode: q.Rcode, Answer: q.Answer,
				LatencyMS: ms(q.Latency),
			})
		}
	}
	if d.src.TopBlocked != nil {
		v.TopBlocked = append(v.TopBlocked, d.src.TopBlocked(topBlockedShown)...)
	}
	return v
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func (d *Dashboard) rulesView() any {
	if d.src.Rules == nil {
		return Rules{Rules: []Rule{}}
	}
	r := d.src.Rules()
	if r.Rules == nil {
		r.Rules = []Rule{}
	}
	return r
}
