package main

import (
	"fmt"
	"log/slog"
	"net/netip"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gatewayd/gatewayd/config"
	"github.com/gatewayd/gatewayd/dns"
	"github.com/gatewayd/gatewayd/internal/dashboard"
	"github.com/gatewayd/gatewayd/internal/status"
	"github.com/vishvananda/netlink"
)

// dashSource is what the dashboard reads from the running daemon: the
// status view's parts, the query log (nil when [status] query_log is off)
// and the status server (set once built) for the config digest.
type dashSource struct {
	view      *statusView
	srv       atomic.Pointer[status.Server]
	recent    *dns.Recent
	lan       []string // LAN interfaces: their byte counters are the throughput graph
	failsafe  string
	neighbors *neighborWatch
}

// newDashboard builds the dashboard for d; with query_log on, it gives
// the resolver its query log (before the DNS server serves).
func newDashboard(d *daemon, view *statusView, log *slog.Logger) (*dashboard.Dashboard, *dashSource) {
	cfg := d.cfg
	s := &dashSource{view: view, lan: append([]string(nil), cfg.LAN.Interfaces...), failsafe: cfg.Failsafe.Mode.String(), neighbors: d.pol.neighbors}
	if cfg.Status.QueryLog && d.dns != nil {
		s.recent = dns.NewRecent(dns.DefaultRecentQueries)
		d.dns.Handler().SetRecent(s.recent)
	}
	src := dashboard.Source{
		Version: version, Start: time.Now(),
		Config: s.config, Interception: s.interception, Counters: s.counters,
		Flows: s.flows, LANBytes: s.lanBytes, Rules: s.rules, MAC: s.mac,
		HostNames:  reverseHosts(cfg.DNS.Hosts),
		LeasesPath: string(cfg.Status.DHCPLeases),
	}
	if d.dns != nil {
		src.Upstreams = s.upstreams
	}
	if s.recent != nil {
		src.Queries, src.TopBlocked = s.queries, s.topBlocked
	}
	return dashboard.New(src, log.With("part", "dashboard")), s
}

func (s *dashSource) config() dashboard.ConfigInfo {
	if srv := s.srv.Load(); srv != nil {
		c := srv.ConfigInfo()
		return dashboard.ConfigInfo{Path: c.Path, SHA256: c.SHA256}
	}
	return dashboard.ConfigInfo{}
}

// interception: the status endpoint serves only while the interception
// is installed and kept (the lifecycle opens the listeners first but
// serves only after Install).
func (s *dashSource) interception() dashboard.Interception {
	g := s.view.k.g
	return dashboard.Interception{Installed: true, Reapplies: g.Reapplies(), LastReapply: g.LastReapply(), Failsafe: s.failsafe}
}

func (s *dashSource) counters() dashboard.Counters {
	c := dashboard.Counters{TCPActive: s.view.tcp.Stats().Active, UDPActive: s.view.udp.Stats().SessionsActive}
	if s.view.dns != nil {
		st := s.view.dns.Handler().Stats()
		c.DNSQueries = st.QueriesUDP + st.QueriesTCP + st.QueriesOther
		c.DNSCacheHits, c.DNSBlocked = st.CacheHits, st.Blocked
	}
	return c
}

// flows are the status view's flows with the rule each matches now.
func (s *dashSource) flows() []dashboard.Flow {
	disp := s.view.pol.Load().disp
	flows := s.view.flows()
	out := make([]dashboard.Flow, 0, len(flows))
	for _, f := range flows {
		rule := disp.RuleOf(f.Proto, f.Client, f.Destination, f.Domain)
		out = append(out, dashboard.Flow{
			Proto: f.Proto, Client: f.Client, Dst: f.Destination, Domain: f.Domain,
			Outbound: f.Outbound, Rule: rule, Up: f.BytesUp, Down: f.BytesDown, Start: f.Start,
		})
	}
	return out
}

// lanBytes sums the LAN interfaces' byte counters (netlink: those of the
// daemon's network namespace).
func (s *dashSource) lanBytes() (rx, tx uint64, err error) {
	for _, name := range s.lan {
		l, lerr := netlink.LinkByName(name)
		if lerr != nil {
			err = fmt.Errorf("reading the byte counters of LAN interface %s: %w", name, lerr)
			continue
		}
		if st := l.Attrs().Statistics; st != nil {
			rx, tx = rx+st.RxBytes, tx+st.TxBytes
		}
	}
	return rx, tx, err
}

func (s *dashSource) upstreams() []dashboard.Upstream {
	var out []dashboard.Upstream
	for _, u := range s.view.dns.Handler().Stats().Upstreams {
		var mean time.Duration
		if u.LatencyCount > 0 {
			mean = u.LatencySum / time.Duration(u.LatencyCount)
		}
		out = append(out, dashboard.Upstream{Name: u.Upstream, Queries: u.Queries, Errors: u.Errors, Latency: mean})
	}
	return out
}

func (s *dashSource) queries() []dashboard.Query {
	qs := s.recent.Queries()
	out := make([]dashboard.Query, 0, len(qs))
	for _, q := range qs {
		out = append(out, dashboard.Query{Time: q.Time, Client: q.Client, Name: q.Name, Type: q.Type,
			Result: q.Source, Rcode: q.Rcode, Answer: q.Answer, Latency: q.Latency})
	}
	return out
}

func (s *dashSource) topBlocked(n int) []dashboard.NameCount {
	var out []dashboard.NameCount
	for _, b := range s.recent.TopBlocked(n) {
		out = append(out, dashboard.NameCount{Name: b.Name, Count: b.Count})
	}
	return out
}

// rules are the policy's compiled rules with their hit counts, and the
// fast path's size.
func (s *dashSource) rules() dashboard.Rules {
	out := dashboard.Rules{Default: config.OutboundDirect}
	if fp := s.view.k.fast; fp != nil {
		st := fp.Stats()
		out.FastPath = dashboard.FastPath{Enabled: true, Learned: st.Learned, Removed: st.Withdrawn}
	}
	disp := s.view.pol.Load().disp
	t := disp.Table()
	out.Default = t.Default()
	out.FastPath.Static = len(t.DirectPrefixes())
	hits := disp.RuleHits()
	for i, r := range t.Rules() {
		out.Rules = append(out.Rules, dashboard.Rule{
			Label: r.Label, Match: strings.TrimSuffix(r.String(), " -> "+r.Outbound), Outbound: r.Outbound,
			HitsTCP: hits[i].TCP, HitsUDP: hits[i].UDP,
		})
	}
	return out
}

func (s *dashSource) mac(a netip.Addr) string {
	if m := s.neighbors.Lookup(a); m != nil {
		return m.String()
	}
	return ""
}

// reverseHosts names addresses by the [dns.hosts] entries that give them
// (the first name in order when several do).
func reverseHosts(hosts map[string][]string) map[netip.Addr]string {
	names := make([]string, 0, len(hosts))
	for name := range hosts {
		names = append(names, name)
	}
	sort.Strings(names)
	out := map[netip.Addr]string{}
	for _, name := range names {
		for _, a := range hosts[name] {
			if ip, err := netip.ParseAddr(a); err == nil {
				if _, ok := out[ip.Unmap()]; !ok {
					out[ip.Unmap()] = strings.TrimSuffix(name, ".")
				}
			}
		}
	}
	return out
}
