package gateway

import (
	"fmt"
	"net/netip"
	"slices"
	"time"
)

// Spec is everything gatewayd installs in the kernel, as the config sets
// it (package config maps a config file to it). Install, Reconfigure and
// Remove apply it; nothing else in this package reads configuration.
type Spec struct {
	// StateDir keeps what appliance mode sets aside (the mangle table it
	// replaced) between start and exit.
	StateDir string
	LAN      LANSpec
	TProxy   TProxySpec
	Routing  RoutingSpec
	Mangle   MangleSpec
	// Bypass are destinations forwarded as usual (bypass.intercept
	// already carved out); the LAN subnets and the router's own addresses
	// are bypassed in any case.
	Bypass []netip.Prefix
	// Intercept is bypass.intercept, for the start-up log.
	Intercept []netip.Prefix
	DNS       DNSSpec
	// RejectQUIC: route.quic = "reject"; QUIC goes to gatewayd whatever
	// the fast path holds.
	RejectQUIC bool
	// Direct are destinations every flow to which goes direct (the
	// CIDR-only direct rules); with a fast path the kernel forwards them.
	Direct []netip.Prefix
	// CheckInterval is the keeper's check without a kernel event.
	CheckInterval time.Duration
}

// LANSpec names the interfaces whose incoming traffic is intercepted
// ("lan+" is iptables' wildcard: lan0, lan1, ...).
type LANSpec struct {
	Interfaces []string
}

// TProxySpec is the transparent listener and the marks (marks.go).
type TProxySpec struct {
	Port       uint16
	Addresses  []netip.Addr // at most one per family
	Mark       uint32
	Mask       uint32
	BypassMark uint32
}

// RoutingSpec is the policy routing that delivers marked packets locally.
type RoutingSpec struct {
	Table    int
	Priority int
}

// DefaultBypass are destinations that are never intercepted: loopback,
// link-local, multicast, broadcast, private and other reserved ranges.
// 198.18.0.0/15 and 2001:2::/48 (benchmarking) are deliberately absent:
// fake-IP schemes and gatewayd's own lab use them.
var DefaultBypass = []string{
	"0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
	"172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24",
	"192.168.0.0/16", "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4",
	"240.0.0.0/4", "255.255.255.255/32",
	"::/128", "::1/128", "::ffff:0:0/96", "100::/64", "2001:db8::/32",
	"fc00::/7", "fe80::/10", "ff00::/8",
}

// Mangle table modes.
const (
	// ModeAppliance: gatewayd owns the whole mangle table of each family; it is
	// rendered from the config and replaced atomically.
	ModeAppliance = "appliance"
	// ModeShared: gatewayd owns only its own chains and the jumps into them.
	ModeShared = "shared"
)

// MangleSpec selects how the mangle table is owned.
type MangleSpec struct {
	Mode string // ModeAppliance or ModeShared
	// ExtraV4/ExtraV6 are iptables-restore rule lines ("-A CHAIN ...") that
	// become part of the table in appliance mode.
	ExtraV4, ExtraV6 []string
}

// DNSSpec is the DNS hijack's part of the rules.
type DNSSpec struct {
	Enabled bool
	Port    uint16 // the resolver's port on the tproxy addresses
	// HijackRouter: queries to the router's own addresses go to gatewayd
	// too (else to the router's resolver).
	HijackRouter bool
}

// ListenAddr is the tproxy listener address of the family, if configured.
func (s *Spec) ListenAddr(f Family) (netip.Addr, bool) {
	for _, a := range s.TProxy.Addresses {
		if f.Contains(a) {
			return a.Unmap(), true
		}
	}
	return netip.Addr{}, false
}

// Intercepts reports whether gatewayd intercepts family f: it does when a
// listener address of that family is configured.
func (s *Spec) Intercepts(f Family) bool {
	_, ok := s.ListenAddr(f)
	return ok
}

// interceptedFamilies are the families with a listener address.
func (s *Spec) interceptedFamilies() []Family {
	var out []Family
	for _, f := range Families {
		if s.Intercepts(f) {
			out = append(out, f)
		}
	}
	return out
}

// FastPathEntries are the static entries of the fast path's sets: the
// direct destinations, and (unless QUIC is rejected) the bypass list, so
// one set match replaces the per-prefix RETURN rules.
func (s *Spec) FastPathEntries() []netip.Prefix {
	if !bypassInSet(s) {
		return slices.Clone(s.Direct)
	}
	return append(slices.Clone(s.Direct), s.Bypass...)
}

// Reserved routing tables and rule priorities that gatewayd must not take.
const (
	tableUnspec  = 0
	tableDefault = 253
	tableMain    = 254
	tableLocal   = 255
	// maxTable is the largest routing table id that means the same on
	// every router CPU: netlink's table attribute is a uint32, but 32-bit
	// builds (mipsle, arm) hold it in a Go int.
	maxTable  = 1<<31 - 1
	prioLocal = 0     // the `from all lookup local` rule
	prioMain  = 32766 // `from all lookup main`
)

// CheckTable says why table cannot hold gatewayd's local route (nil: it
// can).
func CheckTable(table int) error {
	switch table {
	case tableUnspec, tableDefault, tableMain, tableLocal:
		return fmt.Errorf("%d is reserved (0, 253 default, 254 main, 255 local)", table)
	}
	if table < 0 || table > maxTable {
		return fmt.Errorf("must be between 1 and %d", maxTable)
	}
	return nil
}

// CheckPriority says why prio cannot hold gatewayd's fwmark rule (nil: it
// can): it must come after local and before main.
func CheckPriority(prio int) error {
	if prio <= prioLocal || prio >= prioMain {
		return fmt.Errorf("%d must be between %d and %d (before the main table)", prio, prioLocal+1, prioMain-1)
	}
	return nil
}
