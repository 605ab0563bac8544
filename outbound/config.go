package outbound

import (
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// The outbound types.
const (
	TypeDirect = "direct"
	TypeSOCKS5 = "socks5"
	TypeHTTP   = "http"
	TypeReject = "reject"
)

// DefaultTimeout bounds connect plus handshake when Config.Timeout is 0:
// long enough for a proxy across a slow uplink, short enough that a dead
// proxy does not hold a client's SYN for a minute.
const DefaultTimeout = 10 * time.Second

// maxCredentialLen is the longest username or password RFC 1929 can
// carry: ULEN and PLEN are one byte each (and must be at least 1).
const maxCredentialLen = 255

// ifNameMax is the longest interface name Linux accepts: IFNAMSIZ (16)
// minus the terminating NUL.
const ifNameMax = 15

// Config describes one outbound (mapped from TOML by the gateway package).
// Fields a type does not use must be left zero; New rejects them so a typo
// in the config does not silently change nothing.
type Config struct {
	Name string
	Type string // TypeDirect, TypeSOCKS5, TypeHTTP or TypeReject

	// Server is the proxy address (socks5, http).
	Server netip.AddrPort
	// Username and Password are optional proxy credentials: RFC 1929 for
	// socks5 (1 to 255 bytes each), Basic auth for http (no ':' in the
	// username).
	Username, Password string
	// PreferNames sends Dest.Domain instead of the IP when it is known
	// (socks5 ATYP 3, http CONNECT host:port). TCP only: UDP datagrams
	// always carry the IP.
	PreferNames bool

	// Interface binds direct sockets to a device (SO_BINDTODEVICE).
	Interface string
	// Source is the local address of direct sockets of its family; flows
	// of the other family use the kernel's choice.
	Source netip.Addr

	// Mark is the SO_MARK of every socket this outbound opens (the bypass
	// mark, set by the gateway); 0 sets none.
	Mark uint32
	// Timeout bounds connect plus handshake (DefaultTimeout if 0).
	Timeout time.Duration
}

// ConfigError is an invalid Config: Field names the key (as in the TOML
// config) so the gateway can point at the offending line.
type ConfigError struct {
	Outbound string // the outbound's name; may be empty
	Field    string // "server", "username", ...
	Reason   string
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("outbound %q: %s: %s", e.Outbound, e.Field, e.Reason)
}

// normalize validates c and returns it with defaults applied and addresses
// unmapped.
func (c Config) normalize() (Config, error) {
	bad := func(field, format string, args ...any) (Config, error) {
		return Config{}, &ConfigError{Outbound: c.Name, Field: field, Reason: fmt.Sprintf(format, args...)}
	}
	if c.Name == "" {
		return bad("name", "empty")
	}
	if c.Timeout < 0 {
		return bad("timeout", "negative (%s)", c.Timeout)
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	proxy := c.Type == TypeSOCKS5 || c.Type == TypeHTTP
	switch c.Type {
	case TypeDirect, TypeSOCKS5, TypeHTTP, TypeReject:
	case "":
		return bad("type", "missing (want %s, %s, %s or %s)", TypeDirect, TypeSOCKS5, TypeHTTP, TypeReject)
	default:
		return bad("type", "unknown type %q (want %s, %s, %s or %s)", c.Type, TypeDirect, TypeSOCKS5, TypeHTTP, TypeReject)
	}
	if !proxy {
		switch {
		case c.Server.IsValid():
			return bad("server", "not used by a %s outbound", c.Type)
		case c.Username != "":
			return bad("username", "not used by a %s outbound", c.Type)
		case c.Password != "":
			return bad("password", "not used by a %s outbound", c.Type)
		case c.PreferNames:
			return bad("prefer_names", "not used by a %s outbound", c.Type)
		}
	}
	if c.Type != TypeDirect {
		switch {
		case c.Interface != "":
			return bad("interface", "only a direct outbound binds to an interface")
		case c.Source.IsValid():
			return bad("source", "only a direct outbound sets a source address")
		}
	}
	if proxy {
		if err := c.checkServer(); err != nil {
			return Config{}, err
		}
		c.Server = netip.AddrPortFrom(c.Server.Addr().Unmap(), c.Server.Port())
		if err := c.checkCredentials(); err != nil {
			return Config{}, err
		}
	}
	if c.Interface != "" {
		if reason := badIfName(c.Interface); reason != "" {
			return bad("interface", "%q: %s", c.Interface, reason)
		}
	}
	if c.Source.IsValid() {
		c.Source = c.Source.Unmap()
		if c.Source.IsUnspecified() || c.Source.IsMulticast() {
			return bad("source", "%s is not a unicast address", c.Source)
		}
	}
	return c, nil
}

func (c Config) checkServer() error {
	bad := func(format string, args ...any) error {
		return &ConfigError{Outbound: c.Name, Field: "server", Reason: fmt.Sprintf(format, args...)}
	}
	switch a := c.Server.Addr(); {
	case !c.Server.IsValid():
		return bad("missing (the %s proxy's address:port)", c.Type)
	case c.Server.Port() == 0:
		return bad("%s has no port", c.Server)
	case a.IsUnspecified() || a.IsMulticast():
		return bad("%s is not a unicast address", a)
	}
	return nil
}

func (c Config) checkCredentials() error {
	bad := func(field, format string, args ...any) error {
		return &ConfigError{Outbound: c.Name, Field: field, Reason: fmt.Sprintf(format, args...)}
	}
	if c.Username == "" {
		if c.Password != "" {
			return bad("password", "set without a username")
		}
		return nil
	}
	switch c.Type {
	case TypeSOCKS5:
		if len(c.Username) > maxCredentialLen {
			return bad("username", "%d bytes; RFC 1929 allows at most %d", len(c.Username), maxCredentialLen)
		}
		if len(c.Password) == 0 || len(c.Password) > maxCredentialLen {
			return bad("password", "%d bytes; RFC 1929 needs 1 to %d", len(c.Password), maxCredentialLen)
		}
	case TypeHTTP:
		if strings.Contains(c.Username, ":") {
			return bad("username", "contains ':', which Basic authentication cannot carry")
		}
	}
	return nil
}

// badIfName says why name is not a valid Linux interface name (the
// kernel's dev_valid_name), or "".
func badIfName(name string) string {
	switch {
	case len(name) > ifNameMax:
		return fmt.Sprintf("longer than %d bytes", ifNameMax)
	case name == "." || name == "..":
		return "not an interface name"
	case strings.ContainsAny(name, "/: \t\n\v\f\r"):
		return "contains '/', ':' or white space"
	}
	return ""
}
