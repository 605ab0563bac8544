// Package dispatch sends each intercepted flow to its outbound: it
// completes what the relays know of a flow (the domain from sniffing or
// the DNS memory, the client's MAC from the neighbour table, its LAN
// interface), matches it against the compiled rules (package route) and
// opens the flow's upstream with the chosen outbound (package outbound).
//
// A Dispatcher is the tcp package's Dialer and the udp package's Router
// and Dialer.
package dispatch

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/gatewayd/gatewayd/outbound"
	"github.com/gatewayd/gatewayd/route"
	"github.com/gatewayd/gatewayd/tcp"
	"github.com/gatewayd/gatewayd/udp"
)

// Config is what a Dispatcher routes with.
type Config struct {
	// Table is the compiled rule list.
	Table *route.Table
	// Outbounds by name; every outbound the table names must be here.
	Outbounds map[string]outbound.Outbound
	// Names maps destination addresses to the name DNS answered them for
	// (the dns package's Memory); nil: only sniffed names.
	Names interface {
		Lookup(netip.Addr) (string, bool)
	}
	// MACs maps LAN addresses to MAC addresses (lan.Neighbors); nil:
	// rules by MAC never match.
	MACs interface {
		Lookup(netip.Addr) net.HardwareAddr
	}
	// Iface names the LAN interface a client address is on; nil: rules by
	// interface never match.
	Iface func(netip.Addr) string
	// FlowCache bounds the UDP flows whose route is remembered (see
	// Route); 0: DefaultFlowCache.
	FlowCache int
	// Previous is the Dispatcher this one replaces (a config reload): an
	// outbound name keeps its route number, so UDP sessions open on it
	// stay apart from the others. nil: numbering starts afresh.
	Previous *Dispatcher
}

// Dispatcher routes flows. It is safe for concurrent use.
type Dispatcher struct {
	cfg     Config
	log     *slog.Logger
	routes  []outbound.Outbound // a route number is an index here
	byName  map[string]int
	rejects []bool                 // per route: a reject outbound
	limits  []*outbound.LogLimiter // per route: failures logged once per burst
	flows   *flowCache
	quic    *quicFlows // QUIC flows whose ClientHello is incomplete (with flows)
	hits    *ruleHits
}

var (
	_ tcp.RouteDialer = (*Dispatcher)(nil)
	_ udp.Router      = (*Dispatcher)(nil)
	_ udp.Dialer      = (*Dispatcher)(nil)
)

// New checks that every outbound the table names exists.
func New(cfg Config, log *slog.Logger) (*Dispatcher, error) {
	if cfg.Table == nil {
		return nil, fmt.Errorf("dispatch: no rule table")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &Dispatcher{cfg: cfg, log: log, byName: map[string]int{}, hits: newRuleHits(cfg.Table.Len())}
	if p := cfg.Previous; p != nil {
		// Old routes keep their slots (and, if no longer used, their
		// outbound, for sessions still opening on them).
		d.routes = slices.Clone(p.routes)
		for name, i := range p.byName {
			if ob, ok := cfg.Outbounds[name]; ok {
				d.byName[name], d.routes[i] = i, ob
			}
		}
	}
	names := []string{cfg.Table.Default()}
	for _, r := range cfg.Table.Rules() {
		names = append(names, r.Outbound)
	}
	for _, name := range names {
		if _, ok := d.byName[name]; ok {
			continue
		}
		ob, ok := cfg.Outbounds[name]
		if !ok {
			return nil, fmt.Errorf("dispatch: the rules name outbound %q, which is not configured", name)
		}
		d.byName[name] = len(d.routes)
		d.routes = append(d.routes, ob)
	}
	for _, ob := range d.routes {
		d.rejects = append(d.rejects, outbound.Rejects(ob))
		d.limits = append(d.limits, &outbound.LogLimiter{Every: failureLogEvery})
	}
	if cfg.Table.NeedsDomain() {
		d.flows = newFlowCache(cfg.FlowCache)
		d.quic = newQUICFlows()
	}
	return d, nil
}

// flow completes f with what the rules need, matches it and counts the
// rule's hit. It returns the route and the flow as matched.
func (d *Dispatcher) flow(f route.Flow) (int, route.Flow) {
	f = d.complete(f)
	name, i := d.cfg.Table.Match(f)
	d.hits.count(f.Proto, i)
	return d.byName[name], f
}

// complete fills in what the rules need to know of f.
func (d *Dispatcher) complete(f route.Flow) route.Flow {
	t := d.cfg.Table
	if f.Domain == "" && t.NeedsDomain() && d.cfg.Names != nil {
		f.Domain, _ = d.cfg.Names.Lookup(f.Dst.Addr())
	}
	if t.NeedsMAC() && d.cfg.MACs != nil {
		f.MAC = d.cfg.MACs.Lookup(f.Src.Addr())
	}
	if t.NeedsIface() && d.cfg.Iface != nil {
		f.Iface = d.cfg.Iface(f.Src.Addr())
	}
	return f
}

// DialTCP implements tcp.Dialer: the flow goes to its outbound, which for
// the reject outbound fails at once (the relay then resets the client).
func (d *Dispatcher) DialTCP(ctx context.Context, tf tcp.Flow) (*net.TCPConn, error) {
	c, _, err := d.DialTCPRoute(ctx, tf)
	return c, err
}

// DialTCPRoute implements tcp.RouteDialer: DialTCP, naming the outbound.
func (d *Dispatcher) DialTCPRoute(ctx context.Context, tf tcp.Flow) (*net.TCPConn, string, error) {
	r, f := d.flow(route.Flow{Proto: route.ProtoTCP, Src: tf.Client, Dst: tf.Dst, Domain: tf.Domain})
	ob := d.routes[r]
	d.log.Debug("tcp flow routed", "client", tf.Client, "dst", tf.Dst, "domain", f.Domain, "outbound", ob.Name())
	c, err := ob.DialTCP(ctx, outbound.Dest{Addr: tf.Dst, Domain: f.Domain})
	if err != nil {
		d.failed(r, err)
	}
	return c, ob.Name(), err
}

// failureLogEvery: an outbound that fails keeps failing for every flow
// until it is back; one line per this long tells it (with a count).
const failureLogEvery = 10 * time.Second

// failed logs an outbound's failure, once per burst.
func (d *Dispatcher) failed(r int, err error) {
	switch outbound.KindOf(err) {
	case outbound.KindRejected, outbound.KindCanceled:
		return
	}
	if ok, suppressed := d.limits[r].Allow(); ok {
		d.log.Warn("outbound failing; its flows are refused", "outbound", d.routes[r].Name(),
			"err", err, "failures_not_logged", suppressed)
	}
}

// OpenUpstream implements udp.Dialer.
func (d *Dispatcher) OpenUpstream(ctx context.Context, client netip.AddrPort, r int) (udp.Upstream, error) {
	if r < 0 || r >= len(d.routes) {
		return nil, fmt.Errorf("dispatch: no route %d", r)
	}
	up, err := d.routes[r].OpenUDP(ctx, client)
	if err != nil {
		d.failed(r, err)
		return nil, err
	}
	return up, nil
}

// Outbound is the outbound of route r, for logs and counters.
func (d *Dispatcher) Outbound(r int) outbound.Outbound { return d.routes[r] }

// RouteName is the name of route r's outbound; "" for a route this
// Dispatcher does not have (RouteReject, or one a later reload added).
func (d *Dispatcher) RouteName(r int) string {
	if r < 0 || r >= len(d.routes) {
		return ""
	}
	return d.routes[r].Name()
}

// SniffTCP reports whether TCP flows should be sniffed for their server
// name: only when a rule matches by domain.
func (d *Dispatcher) SniffTCP() bool { return d.cfg.Table.NeedsDomain() }
