package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/gatewayd/gatewayd/gateway"
	"github.com/gatewayd/gatewayd/internal/lan"
	"github.com/gatewayd/gatewayd/outbound"
	"github.com/gatewayd/gatewayd/route"
)

// The built-in outbounds. They always exist and cannot be redefined.
const (
	OutboundDirect = route.Direct // straight to the destination, with the bypass mark
	OutboundReject = "reject"     // TCP reset, UDP dropped
)

// QUICRuleLabel names the rule route.quic = "reject" adds, in
// `gatewayd rules` and logs.
const QUICRuleLabel = "route.quic"

// OutboundConfig is one [[outbound]] table (package outbound documents
// the fields).
type OutboundConfig struct {
	Name        string         `toml:"name"`
	Type        string         `toml:"type"`
	Server      netip.AddrPort `toml:"server"`
	Username    string         `toml:"username"`
	Password    string         `toml:"password"`
	PreferNames bool           `toml:"prefer_names"`
	Interface   string         `toml:"interface"`
	Source      netip.Addr     `toml:"source"`
	// Timeout bounds connect plus handshake; 0 means tcp.connect_timeout.
	Timeout Duration `toml:"timeout"`
	// Fallback names the outbound used when this one fails to connect.
	Fallback string `toml:"fallback"`
}

// RouteConfig is the [route] table.
type RouteConfig struct {
	// Default is the outbound of flows no rule matches; "" means "direct".
	Default string     `toml:"default"`
	QUIC    QUICPolicy `toml:"quic"`
}

// DefaultOutbound is Default with "" resolved to "direct".
func (r RouteConfig) DefaultOutbound() string {
	if r.Default == "" {
		return OutboundDirect
	}
	return r.Default
}

// QUICPolicy is "allow" (the zero value and default) or "reject".
type QUICPolicy uint8

const (
	// QUICAllow treats UDP port 443 like any other flow.
	QUICAllow QUICPolicy = iota
	// QUICReject adds a first rule sending UDP port 443 to "reject".
	QUICReject
)

func (q QUICPolicy) String() string {
	if q == QUICReject {
		return "reject"
	}
	return "allow"
}

// MarshalText renders the policy as written in the config.
func (q QUICPolicy) MarshalText() ([]byte, error) { return []byte(q.String()), nil }

// UnmarshalText accepts "allow" or "reject".
func (q *QUICPolicy) UnmarshalText(b []byte) error {
	switch string(b) {
	case "allow":
		*q = QUICAllow
	case "reject":
		*q = QUICReject
	default:
		return fmt.Errorf("%q: want \"allow\" or \"reject\"", b)
	}
	return nil
}

// RuleConfig is one [[rule]]: every condition given must hold, a list
// holds if any entry does; domain, domain_suffix and domain_keyword are one
// condition together (package route documents matching).
type RuleConfig struct {
	Dst           []netip.Prefix    `toml:"dst"`
	Port          []route.PortRange `toml:"port"`
	Proto         string            `toml:"proto"`
	Src           []netip.Prefix    `toml:"src"`
	MAC           []string          `toml:"mac"`
	Iface         []string          `toml:"iface"`
	Domain        []string          `toml:"domain"`
	DomainSuffix  []string          `toml:"domain_suffix"`
	DomainKeyword []string          `toml:"domain_keyword"`
	Outbound      string            `toml:"outbound"`
}

func (r RuleConfig) hasCondition() bool {
	return len(r.Dst)+len(r.Port)+len(r.Src)+len(r.MAC)+len(r.Iface)+
		len(r.Domain)+len(r.DomainSuffix)+len(r.DomainKeyword) > 0 || r.Proto != ""
}

// RuleSpecs maps the rules to route's types, in match order: the QUIC
// switch's rule first when route.quic = "reject", then every [[rule]]
// labelled with its key ("rule[2]"). The config must be valid.
func (c *Config) RuleSpecs() []route.RuleSpec {
	var specs []route.RuleSpec
	if c.Route.QUIC == QUICReject {
		specs = append(specs, route.RuleSpec{
			Label: QUICRuleLabel, Proto: route.ProtoUDP,
			Port: []route.PortRange{{Lo: gateway.QUICPort, Hi: gateway.QUICPort}}, Outbound: OutboundReject,
		})
	}
	for i, r := range c.Rules {
		spec, _ := r.spec(fmt.Sprintf("rule[%d]", i)) // validate parsed every MAC
		specs = append(specs, spec)
	}
	return specs
}

func (r RuleConfig) spec(label string) (route.RuleSpec, error) {
	s := route.RuleSpec{
		Label: label, Dst: r.Dst, Src: r.Src, Port: r.Port, Proto: r.Proto, Iface: r.Iface,
		Domain: r.Domain, DomainSuffix: r.DomainSuffix, DomainKeyword: r.DomainKeyword,
		Outbound: r.Outbound,
	}
	for _, m := range r.MAC {
		hw, err := net.ParseMAC(m)
		if err != nil {
			return s, fmt.Errorf("%q is not a MAC address", m)
		}
		s.MAC = append(s.MAC, hw)
	}
	return s, nil
}

// RouteTable compiles the rules (RuleSpecs) with the default outbound.
func (c *Config) RouteTable() (*route.Table, error) {
	return c.compileRules(c.RuleSpecs())
}

// compileRules compiles specs with the default outbound.
func (c *Config) compileRules(specs []route.RuleSpec) (*route.Table, error) {
	t, err := route.Compile(specs, c.Route.DefaultOutbound())
	if err != nil {
		return nil, fmt.Errorf("compiling the routing rules: %w", err)
	}
	return t, nil
}

// FastPathTable is the rule table the kernel fast path is derived from:
// its DirectPrefixes are the static entries and its DirectDomain says which
// DNS answers are learned. The QUIC switch's rule is left out: with the
// fast path, the mangle rules send QUIC to gatewayd before the fast path's
// RETURN, so it is rejected anyway and does not empty the
// fast path.
func (c *Config) FastPathTable() (*route.Table, error) {
	specs := c.RuleSpecs()
	if c.Route.QUIC == QUICReject {
		specs = specs[1:]
	}
	return c.compileRules(specs)
}

// OutboundSpec is an outbound to build with outbound.New, and the name of
// the outbound to wrap it with (outbound.NewFallback) when it has one.
type OutboundSpec struct {
	Config   outbound.Config
	Fallback string
}

// OutboundSpecs returns the built-in outbounds and then the configured
// ones, each with the bypass mark and its timeout resolved.
func (c *Config) OutboundSpecs() []OutboundSpec {
	mark, timeout := c.TProxy.BypassMark, c.TCP.ConnectTimeout.Duration
	specs := []OutboundSpec{
		{Config: outbound.Config{Name: OutboundDirect, Type: outbound.TypeDirect, Mark: mark, Timeout: timeout}},
		{Config: outbound.Config{Name: OutboundReject, Type: outbound.TypeReject, Mark: mark, Timeout: timeout}},
	}
	for _, o := range c.Outbounds {
		specs = append(specs, OutboundSpec{Config: o.outbound(mark, timeout), Fallback: o.Fallback})
	}
	return specs
}

func (o OutboundConfig) outbound(mark uint32, defTimeout time.Duration) outbound.Config {
	t := o.Timeout.Duration
	if t == 0 {
		t = defTimeout
	}
	return outbound.Config{
		Name: o.Name, Type: o.Type, Server: o.Server, Username: o.Username, Password: o.Password,
		PreferNames: o.PreferNames, Interface: o.Interface, Source: o.Source, Mark: mark, Timeout: t,
	}
}

// isOutboundName: lowercase letters, digits, '_' and '-'. Names appear in
// logs, counters and `gatewayd rules` without quoting.
func isOutboundName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// validateRoute checks [[outbound]], [route] and [[rule]].
func (c *Config) validateRoute() error {
	names, err := c.validateOutbounds()
	if err != nil {
		return err
	}
	if d := c.Route.DefaultOutbound(); !names[d] {
		return c.elemErrorf("route.default", "%q is not an outbound (built in: direct, reject; others from [[outbound]])", d)
	}
	return c.validateRules(names)
}

// validateOutbounds checks every [[outbound]] and returns the set of all
// outbound names, built-ins included.
func (c *Config) validateOutbounds() (map[string]bool, error) {
	names := map[string]bool{OutboundDirect: true, OutboundReject: true}
	for i, o := range c.Outbounds {
		key := fmt.Sprintf("outbound[%d]", i)
		switch {
		case o.Name == OutboundDirect || o.Name == OutboundReject:
			return nil, c.elemErrorf(key+".name", "%q is built in; give your outbound another name", o.Name)
		case !isOutboundName(o.Name):
			return nil, c.elemErrorf(key+".name", "%q: want lowercase letters, digits, '_' and '-'", o.Name)
		case names[o.Name]:
			return nil, c.elemErrorf(key+".name", "%q is defined twice", o.Name)
		}
		names[o.Name] = true
		if _, err := outbound.New(o.outbound(c.TProxy.BypassMark, c.TCP.ConnectTimeout.Duration)); err != nil {
			var oe *outbound.ConfigError
			if errors.As(err, &oe) {
				return nil, c.elemErrorf(key+"."+oe.Field, "%s", oe.Reason)
			}
			return nil, c.elemErrorf(key, "%v", err)
		}
	}
	for i, o := range c.Outbounds {
		key := fmt.Sprintf("outbound[%d].fallback", i)
		switch {
		case o.Fallback == "":
		case !names[o.Fallback]:
			return nil, c.elemErrorf(key, "%q is not an outbound", o.Fallback)
		case o.Fallback == o.Name:
			return nil, c.elemErrorf(key, "an outbound cannot fall back to itself")
		case o.Type == outbound.TypeReject:
			return nil, c.elemErrorf(key, "a reject outbound never fails to connect; the fallback would never be used")
		}
		if cycle := c.fallbackCycle(i); cycle != "" {
			return nil, c.elemErrorf(key, "fallback cycle %s", cycle)
		}
	}
	return names, nil
}

// fallbackCycle follows fallbacks from outbound i and returns the chain
// ("a -> b -> a") if it comes back to a name it has seen, else "".
func (c *Config) fallbackCycle(i int) string {
	byName := map[string]OutboundConfig{}
	for _, o := range c.Outbounds {
		byName[o.Name] = o
	}
	chain := []string{c.Outbounds[i].Name}
	seen := map[string]bool{c.Outbounds[i].Name: true}
	for next := c.Outbounds[i].Fallback; next != ""; next = byName[next].Fallback {
		chain = append(chain, next)
		if seen[next] {
			return strings.Join(chain, " -> ")
		}
		seen[next] = true
	}
	return ""
}

func (c *Config) validateRules(names map[string]bool) error {
	specs := make([]route.RuleSpec, len(c.Rules))
	for i, r := range c.Rules {
		key := fmt.Sprintf("rule[%d]", i)
		switch {
		case r.Outbound == "":
			return c.elemErrorf(key, "outbound is missing")
		case !names[r.Outbound]:
			return c.elemErrorf(key+".outbound", "%q is not an outbound", r.Outbound)
		case !r.hasCondition() && i < len(c.Rules)-1:
			return c.elemErrorf(key, "has no condition, so it matches every flow and the rules after it are never used")
		}
		spec, err := r.spec(key)
		if err != nil {
			return c.elemErrorf(key+".mac", "%v", err)
		}
		for _, p := range append(r.Dst, r.Src...) {
			if p != p.Masked() {
				field := "dst"
				if !containsPrefix(r.Dst, p) {
					field = "src"
				}
				return c.elemErrorf(key+"."+field, "%s has host bits set; did you mean %s?", p, p.Masked())
			}
		}
		for _, name := range r.Iface {
			if !c.lanCovers(name) {
				return c.elemErrorf(key+".iface", "%q is not one of lan.interfaces %v, so no flow comes in on it", name, c.LAN.Interfaces)
			}
		}
		specs[i] = spec
	}
	if _, err := route.Compile(specs, c.Route.DefaultOutbound()); err != nil {
		var ce *route.CompileError
		if errors.As(err, &ce) {
			return c.elemErrorf(fmt.Sprintf("rule[%d].%s", ce.Rule, ce.Field), "%v", ce.Err)
		}
		return c.elemErrorf("rule", "%v", err)
	}
	return nil
}

func containsPrefix(list []netip.Prefix, p netip.Prefix) bool {
	for _, q := range list {
		if q == p {
			return true
		}
	}
	return false
}

// lanCovers reports whether a flow could come in on a LAN interface that
// the rule's iface entry matches; either may end in the "+" wildcard.
func (c *Config) lanCovers(ruleIface string) bool {
	return slices.ContainsFunc(c.LAN.Interfaces, func(p string) bool { return lan.Overlap(ruleIface, p) })
}

// elemErrorf is errorf for keys inside an array of tables
// ("outbound[1].password"): when the key itself is not in the file (a
// missing value), the error points at the element's [[header]].
func (c *Config) elemErrorf(key, format string, args ...any) error {
	return &Error{File: c.path, Key: key, Line: elemLine(c.lines, key), Msg: fmt.Sprintf(format, args...)}
}

func elemLine(lines map[string]int, key string) int {
	if n := lines[key]; n > 0 {
		return n
	}
	if i := strings.Index(key, "]."); i >= 0 {
		return lines[key[:i+1]]
	}
	return 0
}

// arrayTableLines maps the keys of TOML arrays of tables, indexed as in
// config errors ("rule[2]", "rule[2].dst", "outbound[0].server"), to the
// line they are on. keyLines knows only the first occurrence of
// "rule.dst"; Parse merges this map into the config's lines.
func arrayTableLines(text string) map[string]int {
	lines := map[string]int{}
	scanKeys(text, func(n int, _, elem, key string) {
		switch {
		case elem == "":
		case key == "":
			lines[elem] = n
		default:
			setFirst(lines, elem+"."+key, n)
		}
	})
	return lines
}
