package route

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// RuleSpec is one rule before compilation: every non-empty field is a
// condition, and all of them must hold. A RuleSpec with no condition
// matches every flow.
type RuleSpec struct {
	// Label names the rule in String and logs, e.g. "rule[3]"; Compile uses
	// "rule[i]" when it is empty.
	Label string

	Dst   []netip.Prefix // destination address in any of these
	Src   []netip.Prefix // source address in any of these
	Port  []PortRange    // destination port in any of these
	Proto string         // ProtoTCP, ProtoUDP or "" (both)
	MAC   []net.HardwareAddr
	// Iface lists LAN interface names; a trailing "+" matches every name
	// with that prefix, as in iptables ("lan+" matches lan0, lan1).
	Iface []string

	// Domain (exact names), DomainSuffix (the name and every name below it)
	// and DomainKeyword (substring) are one condition together. Case and a
	// trailing dot do not matter.
	Domain        []string
	DomainSuffix  []string
	DomainKeyword []string

	Outbound string
}

// PortRange is an inclusive range of ports; a single port has Lo == Hi.
type PortRange struct{ Lo, Hi uint16 }

// ParsePortRange parses "443" or "8000-8100". Port 0 is refused: no flow
// has it.
func ParsePortRange(s string) (PortRange, error) {
	lo, hi, isRange := strings.Cut(strings.TrimSpace(s), "-")
	if !isRange {
		hi = lo
	}
	l, err := parsePort(lo)
	if err != nil {
		return PortRange{}, fmt.Errorf("port range %q: %w", s, err)
	}
	h, err := parsePort(hi)
	if err != nil {
		return PortRange{}, fmt.Errorf("port range %q: %w", s, err)
	}
	if l > h {
		return PortRange{}, fmt.Errorf("port range %q: start is after end", s)
	}
	return PortRange{Lo: l, Hi: h}, nil
}

func parsePort(s string) (uint16, error) {
	n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 16)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("%q is not a port (1-65535)", s)
	}
	return uint16(n), nil
}

// UnmarshalText implements encoding.TextUnmarshaler (so TOML accepts both
// 443 and "8000-8100").
func (p *PortRange) UnmarshalText(b []byte) error {
	r, err := ParsePortRange(string(b))
	if err != nil {
		return err
	}
	*p = r
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (p PortRange) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

func (p PortRange) String() string {
	if p.Lo == p.Hi {
		return strconv.Itoa(int(p.Lo))
	}
	return strconv.Itoa(int(p.Lo)) + "-" + strconv.Itoa(int(p.Hi))
}

func (p PortRange) contains(port uint16) bool { return p.Lo <= port && port <= p.Hi }

// CompileError is a RuleSpec Compile refused: the rule's index, the field
// (named like the config key: "dst", "port", "domain_suffix", ...) and why.
type CompileError struct {
	Rule  int
	Field string
	Err   error
}

func (e *CompileError) Error() string {
	return fmt.Sprintf("rule %d: %s: %v", e.Rule, e.Field, e.Err)
}

func (e *CompileError) Unwrap() error { return e.Err }
