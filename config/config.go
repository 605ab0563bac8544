// Package config is gatewayd's configuration file (TOML, configs/gateway.toml
// documents every key): its schema and defaults, parsing and validation with
// errors that name the key and line, and its mapping onto what the other
// packages take (gateway.Spec, outbound configs, rule specs, the resolver's
// and the relays' settings). Only the daemon (cmd/gatewayd) imports it.
package config

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"time"
)

// Version is the only config format version this build understands.
const Version = 1

// Config is gatewayd's configuration file (TOML). configs/gateway.toml
// documents every key.
type Config struct {
	Version  int            `toml:"version"`
	StateDir string         `toml:"state_dir"`
	LAN      LANConfig      `toml:"lan"`
	TProxy   TProxyConfig   `toml:"tproxy"`
	Routing  RoutingConfig  `toml:"routing"`
	Mangle   MangleConfig   `toml:"mangle"`
	Bypass   BypassConfig   `toml:"bypass"`
	TCP      TCPConfig      `toml:"tcp"`
	UDP      UDPConfig      `toml:"udp"`
	DNS      DNSConfig      `toml:"dns"`
	Log      LogConfig      `toml:"log"`
	Shutdown ShutdownConfig `toml:"shutdown"`
	Failsafe FailsafeConfig `toml:"failsafe"`
	SelfHeal SelfHealConfig `toml:"self_heal"`
	Status   StatusConfig   `toml:"status"`

	// Routing policy (config_route.go): named outbounds, the default
	// outbound and QUIC switch, and the ordered rules.
	Outbounds []OutboundConfig `toml:"outbound"`
	Route     RouteConfig      `toml:"route"`
	Rules     []RuleConfig     `toml:"rule"`

	// path is the file the config was read from ("" for built-in defaults).
	path string
	// text is what was read from it ("" for built-in defaults).
	text string
	// lines maps dotted keys to the line they were defined on, for errors.
	lines map[string]int
	// elems maps the lines of arrays of tables to their element
	// ("rule[1]"), for errors the toml decoder reports.
	elems map[int]string
}

// LANConfig names the interfaces whose incoming traffic is intercepted.
type LANConfig struct {
	Interfaces []string `toml:"interfaces"`
}

// TProxyConfig is the transparent listener and its marks.
type TProxyConfig struct {
	Port       uint16       `toml:"port"`
	Addresses  []netip.Addr `toml:"addresses"`
	Mark       uint32       `toml:"mark"`
	Mask       uint32       `toml:"mask"`
	BypassMark uint32       `toml:"bypass_mark"`
}

// RoutingConfig is the policy routing that delivers marked packets locally.
type RoutingConfig struct {
	Table    int `toml:"table"`
	Priority int `toml:"priority"`
}

// MangleConfig selects how the mangle table is owned.
type MangleConfig struct {
	Mode string `toml:"mode"`
	// ExtraV4/ExtraV6 are iptables-restore rule lines ("-A CHAIN ...") that
	// become part of the table in appliance mode.
	ExtraV4 []string `toml:"extra_rules_v4"`
	ExtraV6 []string `toml:"extra_rules_v6"`
}

// BypassConfig lists destinations that are never intercepted (see
// Config.BypassList).
type BypassConfig struct {
	// Destinations replaces the default list (DefaultBypass).
	Destinations []netip.Prefix `toml:"destinations"`
	// ExtraDestinations are added to Destinations.
	ExtraDestinations []netip.Prefix `toml:"extra_destinations"`
	// Intercept are carved out of the two: intercepted after all.
	Intercept []netip.Prefix `toml:"intercept"`
}

// TCPConfig tunes the TCP relay.
type TCPConfig struct {
	ConnectTimeout Duration `toml:"connect_timeout"`
	IdleTimeout    Duration `toml:"idle_timeout"`
	MaxConnections int      `toml:"max_connections"`
}

// UDPConfig tunes the UDP relay.
type UDPConfig struct {
	IdleTimeout Duration `toml:"idle_timeout"`
	MaxSessions int      `toml:"max_sessions"`
}

// DNSConfig is the DNS hijack and its resolver (package dns documents the
// resolver settings).
type DNSConfig struct {
	Enabled          bool                `toml:"enabled"`
	Port             uint16              `toml:"port"`
	HijackRouter     bool                `toml:"hijack_router"`
	Upstreams        []string            `toml:"upstreams"`
	ResolvConf       string              `toml:"resolv_conf"`
	Timeout          Duration            `toml:"timeout"`
	CacheSize        int                 `toml:"cache_size"`
	MinTTL           Duration            `toml:"min_ttl"`
	MaxTTL           Duration            `toml:"max_ttl"`
	ServeStale       bool                `toml:"serve_stale"`
	MaxStale         Duration            `toml:"max_stale"`
	Hosts            map[string][]string `toml:"hosts"`
	BlockLists       []string            `toml:"block_lists"`
	BlockMode        string              `toml:"block_mode"`
	Split            map[string][]string `toml:"split"`
	RebindProtection bool                `toml:"rebind_protection"`
	RebindAllow      []string            `toml:"rebind_allow"`
}

// LogConfig selects log level and format.
type LogConfig struct {
	Level  string `toml:"level"`
	Format string `toml:"format"`
}

// ShutdownConfig tunes the exit path.
type ShutdownConfig struct {
	Grace Duration `toml:"grace"`
}

// FailsafeConfig is what happens to the interception when gatewayd dies
// without removing it (crash, SIGKILL, OOM kill); its watchdog acts on it.
type FailsafeConfig struct {
	Mode FailsafeMode `toml:"mode"`
}

// SelfHealConfig tunes the keeper that puts the rules back when something
// else changes them (keeper.go).
type SelfHealConfig struct {
	// CheckInterval is the safety check done without any kernel event:
	// for a change whose notification was lost. Changes are otherwise
	// noticed by event within milliseconds.
	CheckInterval Duration `toml:"check_interval"`
}

// FailsafeMode is "open" (the zero value and default) or "closed".
type FailsafeMode uint8

const (
	// FailOpen removes the interception: the LAN falls back to plain
	// forwarding.
	FailOpen FailsafeMode = iota
	// FailClosed keeps it: intercepted LAN traffic is dropped (no
	// internet) rather than forwarded past the gateway.
	FailClosed
)

func (m FailsafeMode) String() string {
	if m == FailClosed {
		return "closed"
	}
	return "open"
}

// MarshalText renders the mode as written in the config.
func (m FailsafeMode) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// UnmarshalText accepts "open" or "closed".
func (m *FailsafeMode) UnmarshalText(b []byte) error {
	switch string(b) {
	case "open":
		*m = FailOpen
	case "closed":
		*m = FailClosed
	default:
		return fmt.Errorf("%q: want \"open\" or \"closed\"", b)
	}
	return nil
}

// Duration is a time.Duration written as a Go duration string ("5s", "10m").
// A bare TOML integer is rejected: BurntSushi/toml would read 5 as 5ns.
type Duration struct{ time.Duration }

// UnmarshalTOML implements toml.Unmarshaler.
func (d *Duration) UnmarshalTOML(v any) error {
	s, ok := v.(string)
	if !ok {
		return fmt.Errorf("want a duration string such as \"5s\", got %v", v)
	}
	p, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	if p < 0 {
		return fmt.Errorf("duration %q is negative", s)
	}
	d.Duration = p
	return nil
}

// MarshalText renders the duration for `gatewayd rules` and logs.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// Error is a config mistake: the key, the line it is on (0 when the
// key is absent from the file) and what is wrong.
type Error struct {
	File string
	Key  string
	Line int
	Msg  string
}

func (e *Error) Error() string {
	switch {
	case e.Line > 0 && e.Key != "":
		return fmt.Sprintf("%s:%d: %s: %s", e.File, e.Line, e.Key, e.Msg)
	case e.Line > 0:
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	case e.Key != "":
		return fmt.Sprintf("%s: %s: %s", e.File, e.Key, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// ErrInvalid is matched by every *Error (errors.Is(err, ErrInvalid)).
var ErrInvalid = errors.New("invalid config")

// Is makes errors.Is(err, ErrInvalid) true for config errors.
func (e *Error) Is(target error) bool { return target == ErrInvalid }

// Load reads and validates a config file.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	return Parse(path, string(data))
}
