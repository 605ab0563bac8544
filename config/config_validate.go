package config

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"time"

	"github.com/gatewayd/gatewayd/gateway"
	"github.com/gatewayd/gatewayd/internal/lan"
)

// validate checks every value that decoding alone cannot.
func (c *Config) validate() error {
	checks := []func() error{
		c.validateVersion, c.validateLAN, c.validateTProxy, c.validateMarks,
		c.validateRouting, c.validateMangle, c.validateBypass, c.validateTimeouts,
		c.validateLog, c.validateDNS, c.validateRoute,
	}
	for _, check := range checks {
		if err := check(); err != nil {
			return err
		}
	}
	return nil
}

func (c *Config) validateVersion() error {
	if c.Version == 0 {
		return c.errorf("version", "missing; set version = %d", Version)
	}
	if c.Version != Version {
		return c.errorf("version", "unsupported version %d; this gatewayd reads version %d", c.Version, Version)
	}
	if !filepath.IsAbs(c.StateDir) {
		return c.errorf("state_dir", "must be an absolute path, got %q", c.StateDir)
	}
	return nil
}

func (c *Config) validateLAN() error {
	if len(c.LAN.Interfaces) == 0 {
		return c.errorf("lan.interfaces", "at least one LAN interface is required")
	}
	seen := map[string]bool{}
	for _, name := range c.LAN.Interfaces {
		if err := lan.CheckPattern(name); err != nil {
			return c.errorf("lan.interfaces", "%v", err)
		}
		if seen[name] {
			return c.errorf("lan.interfaces", "%q is listed twice", name)
		}
		seen[name] = true
	}
	return nil
}

func (c *Config) validateTProxy() error {
	t := c.TProxy
	if t.Port == 0 {
		return c.errorf("tproxy.port", "must be 1-65535")
	}
	if len(t.Addresses) == 0 {
		return c.errorf("tproxy.addresses", "at least one listener address is required")
	}
	var v4, v6 int
	for _, a := range t.Addresses {
		switch {
		case a.Zone() != "":
			return c.errorf("tproxy.addresses", "%s: zones are not supported", a)
		case a.Is4() || a.Is4In6():
			v4++
		default:
			v6++
		}
	}
	if v4 > 1 || v6 > 1 {
		return c.errorf("tproxy.addresses", "at most one address per family (it becomes the TPROXY --on-ip)")
	}
	return nil
}

func (c *Config) validateMarks() error {
	t := c.TProxy
	switch {
	case t.Mask == 0:
		return c.errorf("tproxy.mask", "must not be 0")
	case t.Mark == 0:
		return c.errorf("tproxy.mark", "must not be 0")
	case t.Mark&^t.Mask != 0:
		return c.errorf("tproxy.mark", "0x%x has bits outside tproxy.mask 0x%x", t.Mark, t.Mask)
	case t.BypassMark == 0:
		return c.errorf("tproxy.bypass_mark", "must not be 0")
	case t.BypassMark&t.Mask != 0:
		return c.errorf("tproxy.bypass_mark", "0x%x shares bits with tproxy.mask 0x%x; gatewayd's own traffic would be delivered locally", t.BypassMark, t.Mask)
	}
	return nil
}

func (c *Config) validateRouting() error {
	if err := gateway.CheckTable(c.Routing.Table); err != nil {
		return c.errorf("routing.table", "%v", err)
	}
	if err := gateway.CheckPriority(c.Routing.Priority); err != nil {
		return c.errorf("routing.priority", "%v", err)
	}
	return nil
}

func (c *Config) validateMangle() error {
	m := c.Mangle
	if m.Mode != gateway.ModeAppliance && m.Mode != gateway.ModeShared {
		return c.errorf("mangle.mode", "%q: want %q or %q", m.Mode, gateway.ModeAppliance, gateway.ModeShared)
	}
	for key, rules := range map[string][]string{"mangle.extra_rules_v4": m.ExtraV4, "mangle.extra_rules_v6": m.ExtraV6} {
		if len(rules) > 0 && m.Mode == gateway.ModeShared {
			return c.errorf(key, "only used in %q mode; in %q mode keep such rules in your own firewall scripts", gateway.ModeAppliance, gateway.ModeShared)
		}
		for _, r := range rules {
			if !strings.HasPrefix(r, "-A ") || strings.ContainsAny(r, "\n\r") {
				return c.errorf(key, "%q: each entry must be one iptables-restore line starting with \"-A CHAIN\"", r)
			}
			if strings.Contains(r, gateway.ChainPrefix) {
				return c.errorf(key, "%q: chains named %s* belong to gatewayd", r, gateway.ChainPrefix)
			}
		}
	}
	return nil
}

func (c *Config) validateBypass() error {
	for _, l := range []struct {
		key  string
		list []netip.Prefix
	}{
		{"bypass.destinations", c.Bypass.Destinations},
		{"bypass.extra_destinations", c.Bypass.ExtraDestinations},
		{"bypass.intercept", c.Bypass.Intercept},
	} {
		for _, p := range l.list {
			if p != p.Masked() {
				return c.errorf(l.key, "%s has host bits set; did you mean %s?", p, p.Masked())
			}
		}
	}
	for _, p := range c.Bypass.Intercept {
		if !c.bypassedBy(p) {
			return c.errorf("bypass.intercept", "%s is not in the bypass list (bypass.destinations, bypass.extra_destinations), so it is intercepted anyway", p)
		}
	}
	return nil
}

// The bounds of self_heal.check_interval: more often than every second
// costs CPU for nothing (events do the quick work); less often than every
// hour leaves a lost event unrepaired for too long.
const (
	minCheckInterval = time.Second
	maxCheckInterval = time.Hour
)

func (c *Config) validateTimeouts() error {
	switch {
	case c.TCP.ConnectTimeout.Duration <= 0:
		return c.errorf("tcp.connect_timeout", "must be positive")
	case c.SelfHeal.CheckInterval.Duration < minCheckInterval || c.SelfHeal.CheckInterval.Duration > maxCheckInterval:
		return c.errorf("self_heal.check_interval", "must be between %v and %v, got %v",
			minCheckInterval, maxCheckInterval, c.SelfHeal.CheckInterval.Duration)
	case c.TCP.IdleTimeout.Duration <= 0:
		return c.errorf("tcp.idle_timeout", "must be positive")
	case c.TCP.MaxConnections < 1:
		return c.errorf("tcp.max_connections", "must be at least 1")
	case c.UDP.IdleTimeout.Duration <= 0:
		return c.errorf("udp.idle_timeout", "must be positive")
	case c.UDP.MaxSessions < 1:
		return c.errorf("udp.max_sessions", "must be at least 1")
	}
	return nil
}

func (c *Config) validateDNS() error {
	d := c.DNS
	if !d.Enabled {
		return nil
	}
	switch {
	case d.Port == 0:
		return c.errorf("dns.port", "must be 1-65535")
	case d.Port == c.TProxy.Port:
		return c.errorf("dns.port", "%d is tproxy.port; the DNS listener needs its own port", d.Port)
	case len(d.Upstreams) == 0 && d.ResolvConf == "":
		return c.errorf("dns.upstreams", "set upstreams or resolv_conf (or dns.enabled = false)")
	case d.BlockMode != "nxdomain" && d.BlockMode != "null":
		return c.errorf("dns.block_mode", "%q: want \"nxdomain\" or \"null\"", d.BlockMode)
	}
	return nil
}

func (c *Config) validateLog() error {
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return c.errorf("log.level", "%q: want debug, info, warn or error", c.Log.Level)
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		return c.errorf("log.format", "%q: want text or json", c.Log.Format)
	}
	return nil
}

// String summarises the config for logs.
func (c *Config) String() string {
	return fmt.Sprintf("lan=%v port=%d mode=%s", c.LAN.Interfaces, c.TProxy.Port, c.Mangle.Mode)
}
