package config

import (
	"net/netip"
	"slices"

	"github.com/gatewayd/gatewayd/gateway"
	"github.com/gatewayd/gatewayd/route"
)

// Gateway is the kernel footprint the config asks for: what package
// gateway installs. The fast path's static entries come from the rules
// (FastPathTable), which validation has compiled once already.
func (c *Config) Gateway() (*gateway.Spec, error) {
	fast, err := c.FastPathTable()
	if err != nil {
		return nil, err
	}
	return c.GatewayFrom(fast), nil
}

// GatewayFrom is Gateway with the rules' fast path table already
// compiled (FastPathTable).
func (c *Config) GatewayFrom(fast *route.Table) *gateway.Spec {
	s := c.footprint()
	s.Direct = fast.DirectPrefixes()
	return s
}

// footprint is Gateway without the fast path's entries (which need the
// rules compiled).
func (c *Config) footprint() *gateway.Spec {
	return &gateway.Spec{
		StateDir: c.StateDir,
		LAN:      gateway.LANSpec{Interfaces: slices.Clone(c.LAN.Interfaces)},
		TProxy: gateway.TProxySpec{
			Port: c.TProxy.Port, Addresses: slices.Clone(c.TProxy.Addresses),
			Mark: c.TProxy.Mark, Mask: c.TProxy.Mask, BypassMark: c.TProxy.BypassMark,
		},
		Routing:       gateway.RoutingSpec{Table: c.Routing.Table, Priority: c.Routing.Priority},
		Mangle:        gateway.MangleSpec{Mode: c.Mangle.Mode, ExtraV4: c.Mangle.ExtraV4, ExtraV6: c.Mangle.ExtraV6},
		Bypass:        c.BypassList(),
		Intercept:     c.Bypass.Intercept,
		DNS:           gateway.DNSSpec{Enabled: c.DNS.Enabled, Port: c.DNS.Port, HijackRouter: c.DNS.HijackRouter},
		RejectQUIC:    c.Route.QUIC == QUICReject,
		CheckInterval: c.SelfHeal.CheckInterval.Duration,
	}
}

// ListenAddr is the tproxy listener address of family f, if configured.
func (c *Config) ListenAddr(f gateway.Family) (netip.Addr, bool) {
	for _, a := range c.TProxy.Addresses {
		if f.Contains(a) {
			return a.Unmap(), true
		}
	}
	return netip.Addr{}, false
}

// ListenAddrPorts are the TPROXY listener addresses with the port, IPv4
// first.
func (c *Config) ListenAddrPorts() []netip.AddrPort {
	var out []netip.AddrPort
	for _, f := range gateway.Families {
		if a, ok := c.ListenAddr(f); ok {
			out = append(out, netip.AddrPortFrom(a, c.TProxy.Port))
		}
	}
	return out
}

// RestartKeys lists the config keys whose change a reload cannot apply:
// the kernel footprint's (gateway.RestartKeys), and those that size or
// open what runs (relay limits and timeouts, log format, the status
// endpoint). Empty: b can replace a at run time.
func RestartKeys(a, b *Config) []string {
	keys := gateway.RestartKeys(a.footprint(), b.footprint())
	check := func(key string, same bool) {
		if !same {
			keys = append(keys, key)
		}
	}
	check("tcp.max_connections", a.TCP.MaxConnections == b.TCP.MaxConnections)
	check("tcp.idle_timeout", a.TCP.IdleTimeout == b.TCP.IdleTimeout)
	check("udp.idle_timeout", a.UDP.IdleTimeout == b.UDP.IdleTimeout)
	check("udp.max_sessions", a.UDP.MaxSessions == b.UDP.MaxSessions)
	check("log.format", a.Log.Format == b.Log.Format)
	check("status.enabled", a.Status.Enabled == b.Status.Enabled)
	check("status.listen", a.Status.Listen == b.Status.Listen)
	check("status.hosts", slices.Equal(a.Status.Hosts, b.Status.Hosts))
	check("status.query_log", a.Status.QueryLog == b.Status.QueryLog)
	check("status.dhcp_leases", a.Status.DHCPLeases == b.Status.DHCPLeases)
	return keys
}
