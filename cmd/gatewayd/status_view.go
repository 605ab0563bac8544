package main

import (
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/gatewayd/gatewayd/dispatch"
	"github.com/gatewayd/gatewayd/dns"
	"github.com/gatewayd/gatewayd/gateway"
	"github.com/gatewayd/gatewayd/internal/fdbudget"
	"github.com/gatewayd/gatewayd/internal/metrics"
	"github.com/gatewayd/gatewayd/internal/status"
	"github.com/gatewayd/gatewayd/outbound"
	"github.com/gatewayd/gatewayd/tcp"
	"github.com/gatewayd/gatewayd/udp"
)

// Proto values of status.Flow.
const (
	protoTCP = "tcp"
	protoUDP = "udp"
)

// statusView is what the status endpoint reads from the running daemon:
// the relays, the resolver, the gateway's counters and the routing policy.
// It holds only parts that stay for the daemon's life (reloads swap the
// policy through setPolicy and the resolver inside the DNS server), so the
// endpoint's goroutines read nothing a reload writes.
type statusView struct {
	tcp *tcp.Server
	udp *udp.Server
	dns *dns.Server // nil without the DNS hijack
	k   *kernel
	fds *fdbudget.Budget // nil: none

	dnsListen []netip.AddrPort // the DNS hijack's listeners
	pol       atomic.Pointer[statusPolicy]
}

// statusPolicy is the routing policy as the endpoint names outbounds.
type statusPolicy struct {
	disp      *dispatch.Dispatcher
	outbounds map[string]outbound.Outbound
}

func newStatusView(d *daemon) *statusView {
	v := &statusView{tcp: d.tcp, udp: d.udp, dns: d.dns, k: d.k, fds: d.fds}
	if d.dns != nil {
		for _, ap := range d.cfg.ListenAddrPorts() {
			v.dnsListen = append(v.dnsListen, netip.AddrPortFrom(ap.Addr(), d.cfg.DNS.Port))
		}
	}
	v.setPolicy(d.pol)
	return v
}

func (v *statusView) setPolicy(p *policy) {
	v.pol.Store(&statusPolicy{disp: p.disp, outbounds: p.outbounds})
}

// registry gathers every part's metrics.
func (v *statusView) registry() *metrics.Registry {
	r := metrics.NewRegistry(
		status.BuildCollector(version),
		status.GoCollector(),
		status.ProcessCollector(time.Now()),
		tcp.Collector(v.tcp.Stats),
		udp.Collector(v.udp.Stats),
		outbound.Collector(v.outboundStats),
		status.ActiveFlowsCollector(v.flowsBare),
		gateway.ReappliesCollector(v.k.g.Reapplies),
		status.FDBudgetCollector(v.fds.Stats),
	)
	if v.dns != nil {
		r.Register(
			dns.Collector(func() dns.Stats { return v.dns.Handler().Stats() }),
			dns.ServerCollector(v.dns.Dropped))
	}
	if fp := v.k.fast; fp != nil {
		r.Register(gateway.FastPathCollector(fp.Stats))
	}
	return r
}

// outboundStats are the policy's outbounds' counters.
func (v *statusView) outboundStats() map[string]outbound.Stats {
	p := v.pol.Load()
	out := make(map[string]outbound.Stats, len(p.outbounds))
	for name, ob := range p.outbounds {
		out[name] = ob.Stats()
	}
	return out
}

// flows lists the TCP flows and UDP sessions. A domain the flow did not
// name itself (TLS SNI, HTTP Host) comes from what the resolver answered
// for its destination.
func (v *statusView) flows() []status.Flow {
	var names *dns.Memory
	if v.dns != nil {
		names = v.dns.Handler().Memory()
	}
	return v.flowsNamed(names)
}

// flowsBare lists the flows with only the domains they named themselves:
// enough to count them, without a resolver lookup per flow.
func (v *statusView) flowsBare() []status.Flow { return v.flowsNamed(nil) }

// flowsNamed lists the flows, taking domains they did not name from names
// (nil: none).
func (v *statusView) flowsNamed(names *dns.Memory) []status.Flow {
	p := v.pol.Load()
	domain := func(known string, dst netip.Addr) string {
		if known == "" && names != nil {
			known, _ = names.Lookup(dst)
		}
		return known
	}
	tf, us := v.tcp.Flows(), v.udp.Sessions()
	out := make([]status.Flow, 0, len(tf)+len(us))
	for _, f := range tf {
		out = append(out, status.Flow{
			Proto: protoTCP, Client: f.Client, Destination: f.Dst, Domain: domain(f.Domain, f.Dst.Addr()),
			Outbound: f.Route, BytesUp: f.BytesUp, BytesDown: f.BytesDown, Start: f.Start,
		})
	}
	for _, s := range us {
		out = append(out, status.Flow{
			Proto: protoUDP, Client: s.Client, Destination: s.FirstDst, Domain: domain("", s.FirstDst.Addr()),
			Outbound: p.disp.RouteName(s.Route), BytesUp: s.BytesUp, BytesDown: s.BytesDown, Start: s.Start,
		})
	}
	return out
}

// listeners are the relays' bound addresses.
func (v *statusView) listeners() []status.Listener {
	var out []status.Listener
	for _, l := range []struct {
		name  string
		addrs []netip.AddrPort
	}{{"tcp", v.tcp.Addrs()}, {"udp", v.udp.Addrs()}, {"dns", v.dnsListen}} {
		for _, a := range l.addrs {
			out = append(out, status.Listener{Name: l.name, Addr: a})
		}
	}
	return out
}
