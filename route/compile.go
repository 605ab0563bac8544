package route

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/gatewayd/gatewayd/internal/lan"
)

// Direct is the built-in outbound that connects straight to the
// destination; DirectPrefixes and DirectDomain are about it.
const Direct = "direct"

// cond is a bit set of the conditions a rule has.
type cond uint8

const (
	condDst cond = 1 << iota
	condSrc
	condPort
	condProto
	condMAC
	condIface
	condDomain
)

// Rule is one compiled rule.
type Rule struct {
	Label    string
	Outbound string

	conds   cond
	proto   string
	dst     addrSet
	src     addrSet
	ports   []PortRange
	macs    [][6]byte
	ifaces  []string // exact names
	ifpfx   []string // "lan+" entries, without the "+"
	domains domainMatcher
	shown   RuleSpec // normalized conditions, for String
}

// Table is a compiled, immutable rule list; it is safe for concurrent use.
type Table struct {
	rules   []Rule
	def     string
	direct  []netip.Prefix
	needDom bool
	needMAC bool
	needIfc bool
}

// macLen is the length of the EUI-48 (Ethernet) addresses rules match.
const macLen = 6

// Compile checks and compiles rules, in order, with def as the outbound of
// flows no rule matches. A refused rule gives a *CompileError.
func Compile(rules []RuleSpec, def string) (*Table, error) {
	if def == "" {
		return nil, errors.New("compiling rules: the default outbound is empty")
	}
	t := &Table{def: def, rules: make([]Rule, 0, len(rules))}
	for i, spec := range rules {
		r, cerr := compileRule(spec)
		if cerr != nil {
			cerr.Rule = i
			return nil, cerr
		}
		if r.Label == "" {
			r.Label = fmt.Sprintf("rule[%d]", i)
		}
		t.needDom = t.needDom || r.conds&condDomain != 0
		t.needMAC = t.needMAC || r.conds&condMAC != 0
		t.needIfc = t.needIfc || r.conds&condIface != 0
		t.rules = append(t.rules, r)
	}
	t.direct = t.directSet().prefixes()
	return t, nil
}

func compileRule(spec RuleSpec) (Rule, *CompileError) {
	fail := func(field string, format string, args ...any) (Rule, *CompileError) {
		return Rule{}, &CompileError{Field: field, Err: fmt.Errorf(format, args...)}
	}
	r := Rule{Label: spec.Label, Outbound: spec.Outbound}
	if spec.Outbound == "" {
		return fail("outbound", "missing")
	}
	r.shown = RuleSpec{Label: spec.Label, Outbound: spec.Outbound, Proto: spec.Proto}

	for _, f := range []struct {
		name string
		list []netip.Prefix
	}{{"dst", spec.Dst}, {"src", spec.Src}} {
		for _, p := range f.list {
			if !p.IsValid() {
				return fail(f.name, "invalid prefix %v", p)
			}
		}
	}
	if len(spec.Dst) > 0 {
		r.conds |= condDst
		r.dst = newAddrSet(spec.Dst)
		r.shown.Dst = normalizePrefixes(spec.Dst)
	}
	if len(spec.Src) > 0 {
		r.conds |= condSrc
		r.src = newAddrSet(spec.Src)
		r.shown.Src = normalizePrefixes(spec.Src)
	}
	for _, p := range spec.Port {
		if p.Lo == 0 || p.Lo > p.Hi {
			return fail("port", "invalid port range %d-%d", p.Lo, p.Hi)
		}
	}
	if len(spec.Port) > 0 {
		r.conds |= condPort
		r.ports = slices.Clone(spec.Port)
		r.shown.Port = r.ports
	}
	switch spec.Proto {
	case "":
	case ProtoTCP, ProtoUDP:
		r.conds |= condProto
		r.proto = spec.Proto
	default:
		return fail("proto", "%q: want %q, %q or \"\" (both)", spec.Proto, ProtoTCP, ProtoUDP)
	}
	for _, m := range spec.MAC {
		if len(m) != macLen {
			return fail("mac", "%v is not a %d-byte Ethernet address", m, macLen)
		}
		r.macs = append(r.macs, [macLen]byte(m))
		r.shown.MAC = append(r.shown.MAC, m)
	}
	if len(r.macs) > 0 {
		r.conds |= condMAC
	}
	for _, name := range spec.Iface {
		if err := lan.CheckPattern(name); err != nil {
			return fail("iface", "%v", err)
		}
		base, wild := strings.CutSuffix(name, lan.Wildcard)
		if wild {
			r.ifpfx = append(r.ifpfx, base)
		} else {
			r.ifaces = append(r.ifaces, name)
		}
		r.shown.Iface = append(r.shown.Iface, name)
	}
	if len(spec.Iface) > 0 {
		r.conds |= condIface
	}
	d, cerr := newDomainMatcher(spec)
	if cerr != nil {
		return Rule{}, cerr
	}
	if !d.isEmpty() {
		r.conds |= condDomain
		r.domains = d
		r.shown.Domain = sortedKeys(d.exact)
		r.shown.DomainSuffix = sortedKeys(d.suffix)
		for _, k := range d.keywords {
			r.shown.DomainKeyword = append(r.shown.DomainKeyword, string(k))
		}
	}
	return r, nil
}

func normalizePrefixes(ps []netip.Prefix) []netip.Prefix {
	out := make([]netip.Prefix, len(ps))
	for i, p := range ps {
		out[i] = unmapPrefix(p)
	}
	return out
}

func sortedKeys(m map[string]struct{}) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Default is the outbound of flows no rule matches.
func (t *Table) Default() string { return t.def }

// Len is the number of rules.
func (t *Table) Len() int { return len(t.rules) }

// Rules returns the compiled rules in order.
func (t *Table) Rules() []Rule { return slices.Clone(t.rules) }

// Label names rule i for logs ("rule[3]", "quic"), or "default" for -1.
func (t *Table) Label(i int) string {
	if i < 0 || i >= len(t.rules) {
		return "default"
	}
	return t.rules[i].Label
}

// NeedsDomain reports whether any rule has a domain condition: only then
// do the relays need the flow's domain (DNS memory, sniffing).
func (t *Table) NeedsDomain() bool { return t.needDom }

// NeedsMAC reports whether any rule matches on source MAC: only then is a
// neighbour watch (internal/lan) needed.
func (t *Table) NeedsMAC() bool { return t.needMAC }

// NeedsIface reports whether a rule matches by LAN interface, so flows
// need Flow.Iface.
func (t *Table) NeedsIface() bool { return t.needIfc }

// hasMAC reports whether mac is one of the rule's MAC addresses.
func (r *Rule) hasMAC(mac net.HardwareAddr) bool {
	if len(mac) != macLen {
		return false
	}
	return slices.Contains(r.macs, [macLen]byte(mac))
}
