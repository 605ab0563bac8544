package config

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// DefaultStatusListen is where the status endpoint listens unless the
// config says otherwise: loopback only, on port 9090 as Prometheus
// exporters customarily use. (internal/status.DefaultAddr is the same; the
// gateway package does not import it.)
const DefaultStatusListen = "127.0.0.1:9090"

// StatusConfig is the [status] section: gatewayd's read-only HTTP endpoint
// (Prometheus /metrics, /status JSON with the active flows, /healthz) and
// where `gatewayd status` reads from.
//
// Its values are checked as they are decoded (StatusListen, StatusHost),
// so a mistake is reported with its key and line like every other one.
type StatusConfig struct {
	Enabled bool `toml:"enabled"`
	// Listen is the endpoint's address. It shows every LAN client's flows:
	// loopback by default, a LAN address of the router only when written
	// here, never a wildcard. Clients other than loopback and the LAN
	// subnets are refused whatever the address.
	Listen StatusListen `toml:"listen"`
	// Hosts are host names requests may carry in their Host header besides
	// IP addresses and "localhost" (the endpoint's DNS rebinding guard),
	// e.g. "router.lan".
	Hosts []StatusHost `toml:"hosts"`
	// QueryLog records the LAN's recent DNS queries and blocked names for
	// the dashboard. Off by default: they tell what each device looks up.
	QueryLog bool `toml:"query_log"`
	// DHCPLeases is a dnsmasq leases file the dashboard names LAN devices
	// from (OpenWrt's /tmp/dhcp.leases); "" reads none.
	DHCPLeases StatusPath `toml:"dhcp_leases"`
}

// DefaultDHCPLeases is where OpenWrt's dnsmasq keeps its leases.
const DefaultDHCPLeases = "/tmp/dhcp.leases"

// DefaultStatus is the built-in [status] section: on, loopback only. Hosts
// is empty rather than nil so that the shipped file's `hosts = []` decodes
// to the same value.
func DefaultStatus() StatusConfig {
	return StatusConfig{
		Enabled:    true,
		Listen:     StatusListen{netip.MustParseAddrPort(DefaultStatusListen)},
		Hosts:      []StatusHost{},
		DHCPLeases: DefaultDHCPLeases,
	}
}

// HostNames returns Hosts as plain strings.
func (s StatusConfig) HostNames() []string {
	out := make([]string, len(s.Hosts))
	for i, h := range s.Hosts {
		out[i] = string(h)
	}
	return out
}

// StatusListen is the status endpoint's address:port. Decoding refuses
// what would expose the endpoint on every interface or cannot be listened
// on: the unspecified addresses (0.0.0.0, ::), multicast and broadcast,
// zones, port 0. An IPv4-mapped IPv6 address is stored as IPv4.
type StatusListen struct{ netip.AddrPort }

// errWildcard names the one mistake this section is most likely to see:
// the habit of exporters to listen on ":9090".
var errWildcard = errors.New("a wildcard address would answer on every interface, the WAN included; name 127.0.0.1 or one of the router's LAN addresses")

// ipv4Broadcast is the limited broadcast address, which no socket can be
// bound to for TCP.
var ipv4Broadcast = netip.AddrFrom4([4]byte{255, 255, 255, 255})

// UnmarshalText parses and checks "IP:port" ("[IPv6]:port").
func (l *StatusListen) UnmarshalText(b []byte) error {
	s := string(b)
	if strings.HasPrefix(s, ":") {
		return fmt.Errorf("%q: %w", s, errWildcard)
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return fmt.Errorf("%q: want IP:port, e.g. %q or \"[::1]:9090\"", s, DefaultStatusListen)
	}
	a := ap.Addr().Unmap()
	switch {
	case a.Zone() != "":
		return fmt.Errorf("%q: zones are not supported", s)
	case a.IsUnspecified():
		return fmt.Errorf("%q: %w", s, errWildcard)
	case a.IsMulticast() || a == ipv4Broadcast:
		return fmt.Errorf("%q: not an address a TCP listener can have", s)
	case ap.Port() == 0:
		return fmt.Errorf("%q: port 0 would pick a random port that `gatewayd status` cannot find", s)
	}
	l.AddrPort = netip.AddrPortFrom(a, ap.Port())
	return nil
}

// StatusHost is a host name allowed in the Host header of status requests.
// Decoding lower-cases it, drops a trailing dot and refuses anything but a
// DNS name of letters, digits and hyphens (an IP address needs no entry:
// every IP address is accepted).
type StatusHost string

// DNS name limits (RFC 1035 section 2.3.4).
const (
	maxHostName  = 253 // characters of a name, without the trailing dot
	maxHostLabel = 63  // characters of one label
)

// UnmarshalText checks and normalises a host name.
func (h *StatusHost) UnmarshalText(b []byte) error {
	name := strings.TrimSuffix(strings.ToLower(string(b)), ".")
	if _, err := netip.ParseAddr(strings.Trim(name, "[]")); err == nil {
		return fmt.Errorf("%q is an IP address; requests naming any IP address are accepted without an entry", b)
	}
	if err := checkHostName(name); err != nil {
		return fmt.Errorf("%q: %w", b, err)
	}
	*h = StatusHost(name)
	return nil
}

// checkHostName accepts a lower-case DNS host name.
func checkHostName(name string) error {
	if name == "" || len(name) > maxHostName {
		return fmt.Errorf("want a host name of 1 to %d characters", maxHostName)
	}
	for label := range strings.SplitSeq(name, ".") {
		switch {
		case label == "" || len(label) > maxHostLabel:
			return fmt.Errorf("each dot-separated part must have 1 to %d characters", maxHostLabel)
		case label[0] == '-' || label[len(label)-1] == '-':
			return errors.New("a part must not start or end with a hyphen")
		}
		for _, c := range []byte(label) {
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
				return fmt.Errorf("character %q: want letters, digits, hyphens and dots", c)
			}
		}
	}
	return nil
}
