package config

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/gatewayd/gatewayd/dns"
	"github.com/gatewayd/gatewayd/gateway"
	"github.com/gatewayd/gatewayd/udp"
)

// Defaults. The marks, table and priority are explained in marks.go.
const (
	DefaultStateDir       = "/run/gatewayd"
	DefaultLAN            = "br-lan" // OpenWrt's LAN bridge
	DefaultPort           = 15001
	DefaultConnectTimeout = 5 * time.Second
	DefaultIdleTimeout    = 10 * time.Minute
	DefaultMaxConnections = 16384
	DefaultShutdownGrace  = 2 * time.Second
	// DefaultCheckInterval is self_heal.check_interval: the keeper's
	// check without an event (keeper.go).
	DefaultCheckInterval  = 30 * time.Second
	DefaultUDPIdle        = udp.DefaultIdleTimeout
	DefaultUDPMaxSessions = udp.DefaultMaxSessions
	// DefaultDNSPort is where the hijacked DNS lands (on the tproxy
	// listener addresses); answers still leave from the queried :53.
	DefaultDNSPort = 15053
	// DefaultResolvConf is where OpenWrt keeps the WAN's DHCP resolvers.
	DefaultResolvConf = "/tmp/resolv.conf.d/resolv.conf.auto"
)

// DefaultBypass is bypass.destinations' default (gateway.DefaultBypass).
var DefaultBypass = gateway.DefaultBypass

// Default returns the built-in configuration.
func Default() *Config {
	c := &Config{
		Version:  Version,
		StateDir: DefaultStateDir,
		LAN:      LANConfig{Interfaces: []string{DefaultLAN}},
		TProxy: TProxyConfig{
			Port:       DefaultPort,
			Addresses:  []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1")},
			Mark:       gateway.DefaultTProxyMark,
			Mask:       gateway.DefaultTProxyMark,
			BypassMark: gateway.DefaultBypassMark,
		},
		Routing: RoutingConfig{Table: gateway.DefaultTable, Priority: gateway.DefaultPriority},
		Mangle:  MangleConfig{Mode: gateway.ModeAppliance},
		TCP: TCPConfig{
			ConnectTimeout: Duration{DefaultConnectTimeout},
			IdleTimeout:    Duration{DefaultIdleTimeout},
			MaxConnections: DefaultMaxConnections,
		},
		UDP: UDPConfig{
			IdleTimeout: Duration{DefaultUDPIdle},
			MaxSessions: DefaultUDPMaxSessions,
		},
		DNS: DNSConfig{
			Enabled:          true,
			Port:             DefaultDNSPort,
			HijackRouter:     true,
			ResolvConf:       DefaultResolvConf,
			Timeout:          Duration{2 * time.Second},
			CacheSize:        dns.DefaultCacheSize,
			MaxTTL:           Duration{24 * time.Hour},
			MaxStale:         Duration{24 * time.Hour},
			BlockMode:        "nxdomain",
			RebindProtection: true,
		},
		Log:      LogConfig{Level: "info", Format: "text"},
		Shutdown: ShutdownConfig{Grace: Duration{DefaultShutdownGrace}},
		SelfHeal: SelfHealConfig{CheckInterval: Duration{DefaultCheckInterval}},
		Status:   DefaultStatus(),
		path:     "(defaults)",
	}
	for _, s := range DefaultBypass {
		c.Bypass.Destinations = append(c.Bypass.Destinations, netip.MustParsePrefix(s))
	}
	return c
}

// Parse decodes and validates config text; name is used in errors.
// Keys absent from the text keep their defaults.
func Parse(name, text string) (*Config, error) {
	c := Default()
	c.path, c.text = name, text
	c.Version = 0 // required in every file
	c.lines = keyLines(text)
	for k, n := range arrayTableLines(text) { // rule[2].dst, outbound[0].server
		c.lines[k] = n
	}
	c.elems = arrayElems(text)
	md, err := toml.Decode(text, c)
	if err != nil {
		return nil, c.decodeError(err)
	}
	if u := md.Undecoded(); len(u) > 0 {
		k := u[0].String()
		return nil, c.errorf(indexKey(c.elems, k, c.lines[k]), "unknown key")
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// decodeError turns a toml error into a Error with key and line.
func (c *Config) decodeError(err error) error {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		return &Error{File: c.path, Key: indexKey(c.elems, pe.LastKey, pe.Position.Line), Line: pe.Position.Line, Msg: pe.Message}
	}
	// Type mismatches are plain errors: `toml: line 3 (last key "tcp.x"): ...`.
	msg := strings.TrimPrefix(err.Error(), "toml: ")
	var line int
	var key string
	if n, _ := fmt.Sscanf(msg, "line %d (last key %q):", &line, &key); n == 2 {
		if i := strings.Index(msg, "):"); i >= 0 {
			msg = strings.TrimSpace(msg[i+2:])
		}
		return &Error{File: c.path, Key: indexKey(c.elems, key, line), Line: line, Msg: msg}
	}
	return &Error{File: c.path, Msg: msg}
}

// errorf builds a Error for key, with the line the key is on.
func (c *Config) errorf(key, format string, args ...any) error {
	return &Error{File: c.path, Key: key, Line: c.lines[key], Msg: fmt.Sprintf(format, args...)}
}

// KeyError is a config error about key (dotted, e.g. "dns.split"), found
// by a later stage than decoding; it carries the key's line.
func (c *Config) KeyError(key string, err error) error {
	return &Error{File: c.path, Key: key, Line: c.keyLine(key), Msg: err.Error()}
}

// keyLine is the line key is on; for an entry of a list or table
// ("dns.upstreams[1]", `dns.split["lan"][0]`) the line of the key that
// holds it.
func (c *Config) keyLine(key string) int {
	if n := c.lines[key]; n > 0 {
		return n
	}
	base, rest, ok := strings.Cut(key, "[")
	if !ok {
		return 0
	}
	if name, _, ok := strings.Cut(rest, "]"); ok && strings.HasPrefix(name, `"`) {
		if n := c.lines[base+"."+strings.Trim(name, `"`)]; n > 0 {
			return n
		}
	}
	return c.lines[base]
}

// Path is the file the config was read from.
func (c *Config) Path() string { return c.path }

// Text is the TOML the config was parsed from ("" for built-in defaults):
// parsing it again gives the same config.
func (c *Config) Text() string { return c.text }
