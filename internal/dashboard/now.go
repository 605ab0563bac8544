package dashboard

import (
	"time"
)

// NowView is the /api/now answer: the Now panel.
type NowView struct {
	Version       string           `json:"version"`
	Started       time.Time        `json:"started"`
	UptimeSeconds float64          `json:"uptime_seconds"`
	Config        ConfigInfo       `json:"config"`
	Interception  InterceptionView `json:"interception"`
	TCPFlows      uint64           `json:"tcp_flows"`
	UDPSessions   uint64           `json:"udp_sessions"`
	DNS           DNSSummary       `json:"dns"`
	QueryLog      bool             `json:"query_log"`
	// Throughput is the LAN traffic of the last minutes, oldest first.
	Throughput    []Point `json:"throughput"`
	SampleSeconds float64 `json:"sample_seconds"`
	GapSeconds    float64 `json:"gap_seconds"` // points further apart are not joined
}

// InterceptionView is the interception state.
type InterceptionView struct {
	Installed    bool       `json:"installed"`
	SelfHeals    uint64     `json:"self_heals"`
	LastSelfHeal *time.Time `json:"last_self_heal"` // null: never
	Failsafe     string     `json:"failsafe"`
}

// DNSSummary is the resolver's totals.
type DNSSummary struct {
	Enabled       bool    `json:"enabled"`
	Queries       uint64  `json:"queries"`
	CacheHits     uint64  `json:"cache_hits"`
	Blocked       uint64  `json:"blocked"`
	CacheHitRatio float64 `json:"cache_hit_ratio"` // cache hits / queries since start; 0 before any
	QPS           float64 `json:"qps"`             // over the last sample interval
}

func (d *Dashboard) nowView() any {
	now := d.now()
	c := d.counters()
	d.hist.observe(now, func() sample { return d.sample(c) })
	pts := d.hist.points()
	v := NowView{
		Version:       d.src.Version,
		Started:       d.src.Start,
		UptimeSeconds: max(now.Sub(d.src.Start).Seconds(), 0),
		TCPFlows:      c.TCPActive,
		UDPSessions:   c.UDPActive,
		DNS:           d.dnsSummary(c),
		QueryLog:      d.src.Queries != nil,
		Throughput:    pts,
		SampleSeconds: sampleEvery.Seconds(),
		GapSeconds:    gapAfter.Seconds(),
	}
	if n := len(pts); n > 0 && now.Sub(time.UnixMilli(pts[n-1].T)) <= gapAfter {
		v.DNS.QPS = pts[n-1].DNSQPS
	}
	if d.src.Config != nil {
		v.Config = d.src.Config()
	}
	if d.src.Interception != nil {
		v.Interception = interceptionView(d.src.Interception())
	}
	return v
}

func interceptionView(i Interception) InterceptionView {
	v := InterceptionView{Installed: i.Installed, SelfHeals: i.Reapplies, Failsafe: i.Failsafe}
	if !i.LastReapply.IsZero() {
		t := i.LastReapply
		v.LastSelfHeal = &t
	}
	return v
}

func (d *Dashboard) counters() Counters {
	if d.src.Counters == nil {
		return Counters{}
	}
	return d.src.Counters()
}

func (d *Dashboard) dnsSummary(c Counters) DNSSummary {
	s := DNSSummary{Enabled: d.src.Upstreams != nil, Queries: c.DNSQueries, CacheHits: c.DNSCacheHits, Blocked: c.DNSBlocked}
	if c.DNSQueries > 0 {
		s.CacheHitRatio = float64(c.DNSCacheHits) / float64(c.DNSQueries)
	}
	return s
}

// sample reads the totals the history keeps.
func (d *Dashboard) sample(c Counters) sample {
	s := sample{queries: c.DNSQueries}
	if d.src.LANBytes != nil {
		rx, tx, err := d.src.LANBytes()
		if err != nil {
			d.log.Debug("dashboard: LAN byte counters", "err", err)
		}
		s.rx, s.tx = rx, tx
	}
	return s
}
