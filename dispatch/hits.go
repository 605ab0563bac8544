package dispatch

import (
	"net/netip"
	"sync/atomic"

	"github.com/gatewayd/gatewayd/route"
)

// ruleHits counts the routing decisions each rule made, per protocol; the
// last slot is the default's.
type ruleHits struct {
	tcp, udp []atomic.Uint64
}

func newRuleHits(rules int) *ruleHits {
	return &ruleHits{tcp: make([]atomic.Uint64, rules+1), udp: make([]atomic.Uint64, rules+1)}
}

// count counts one decision of rule i (-1: the default).
func (h *ruleHits) count(proto string, i int) {
	if i < 0 {
		i = len(h.tcp) - 1
	}
	if proto == route.ProtoUDP {
		h.udp[i].Add(1)
	} else {
		h.tcp[i].Add(1)
	}
}

// RuleHit is what one rule decided since this Dispatcher was built (the
// last config load).
type RuleHit struct {
	Label string // the rule's label; "default" for flows no rule matched
	// TCP counts TCP flows. UDP counts routing decisions: one per new
	// flow when a rule matches by domain (flows' routes are remembered),
	// else one per datagram, each being routed on its own.
	TCP, UDP uint64
}

// RuleHits returns the counts of every rule in match order, then the
// default's.
func (d *Dispatcher) RuleHits() []RuleHit {
	t, h := d.cfg.Table, d.hits
	out := make([]RuleHit, 0, len(h.tcp))
	for i := range h.tcp {
		label := t.Label(i)
		if i == len(h.tcp)-1 {
			label = t.Label(-1)
		}
		out = append(out, RuleHit{Label: label, TCP: h.tcp[i].Load(), UDP: h.udp[i].Load()})
	}
	return out
}

// RuleOf names the rule that routes a flow like this one now ("default"
// if none matches), without counting it: for listings of open flows. A
// flow opened before a reload, or whose domain came from bytes sniffed
// then, may have been routed by another.
func (d *Dispatcher) RuleOf(proto string, client, dst netip.AddrPort, domain string) string {
	f := d.complete(route.Flow{Proto: proto, Src: client, Dst: dst, Domain: domain})
	_, i := d.cfg.Table.Match(f)
	return d.cfg.Table.Label(i)
}

// Table is the compiled rule list the Dispatcher routes with.
func (d *Dispatcher) Table() *route.Table { return d.cfg.Table }
