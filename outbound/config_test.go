package outbound

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestConfigErrors(t *testing.T) {
	proxy := netip.MustParseAddrPort("198.18.1.1:1080")
	tests := []struct {
		name  string
		cfg   Config
		field string
		want  string
	}{
		{"no name", Config{Type: TypeDirect}, "name", "empty"},
		{"no type", Config{Name: "x"}, "type", "missing"},
		{"unknown type", Config{Name: "x", Type: "socks4"}, "type", `unknown type "socks4"`},
		{"negative timeout", Config{Name: "x", Type: TypeDirect, Timeout: -time.Second}, "timeout", "negative"},
		{"socks5 without server", Config{Name: "x", Type: TypeSOCKS5}, "server", "missing"},
		{"http without port", Config{Name: "x", Type: TypeHTTP, Server: netip.AddrPortFrom(proxy.Addr(), 0)}, "server", "no port"},
		{"unspecified server", Config{Name: "x", Type: TypeSOCKS5, Server: netip.MustParseAddrPort("0.0.0.0:1080")}, "server", "not a unicast"},
		{"multicast server", Config{Name: "x", Type: TypeHTTP, Server: netip.MustParseAddrPort("[ff02::1]:80")}, "server", "not a unicast"},
		{"direct with server", Config{Name: "x", Type: TypeDirect, Server: proxy}, "server", "not used by a direct outbound"},
		{"reject with username", Config{Name: "x", Type: TypeReject, Username: "u"}, "username", "not used"},
		{"direct with password", Config{Name: "x", Type: TypeDirect, Password: "p"}, "password", "not used"},
		{"direct with prefer_names", Config{Name: "x", Type: TypeDirect, PreferNames: true}, "prefer_names", "not used"},
		{"socks5 with interface", Config{Name: "x", Type: TypeSOCKS5, Server: proxy, Interface: "wan"}, "interface", "only a direct"},
		{"http with source", Config{Name: "x", Type: TypeHTTP, Server: proxy, Source: netip.MustParseAddr("198.18.0.1")}, "source", "only a direct"},
		{"password without user", Config{Name: "x", Type: TypeSOCKS5, Server: proxy, Password: "p"}, "password", "without a username"},
		{"socks5 empty password", Config{Name: "x", Type: TypeSOCKS5, Server: proxy, Username: "u"}, "password", "RFC 1929"},
		{"socks5 long username", Config{Name: "x", Type: TypeSOCKS5, Server: proxy, Username: strings.Repeat("u", 256), Password: "p"}, "username", "at most 255"},
		{"socks5 long password", Config{Name: "x", Type: TypeSOCKS5, Server: proxy, Username: "u", Password: strings.Repeat("p", 256)}, "password", "1 to 255"},
		{"http colon username", Config{Name: "x", Type: TypeHTTP, Server: proxy, Username: "a:b"}, "username", "':'"},
		{"long interface", Config{Name: "x", Type: TypeDirect, Interface: "abcdefghijklmnop"}, "interface", "longer than 15"},
		{"slash interface", Config{Name: "x", Type: TypeDirect, Interface: "eth/0"}, "interface", "contains"},
		{"dot interface", Config{Name: "x", Type: TypeDirect, Interface: ".."}, "interface", "not an interface name"},
		{"unspecified source", Config{Name: "x", Type: TypeDirect, Source: netip.IPv6Unspecified()}, "source", "not a unicast"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := New(tt.cfg)
			if o != nil {
				t.Errorf("New returned an outbound: %v", o)
			}
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("New: %v, want a *ConfigError", err)
			}
			if ce.Field != tt.field || !strings.Contains(err.Error(), tt.want) || ce.Outbound != tt.cfg.Name {
				t.Errorf("New: %q (field %q), want field %q and %q", err, ce.Field, tt.field, tt.want)
			}
			if !strings.HasPrefix(err.Error(), `outbound "`+tt.cfg.Name+`": `+tt.field+": ") {
				t.Errorf("error %q does not start with the outbound and field", err)
			}
		})
	}
}

func TestConfigValid(t *testing.T) {
	proxy := netip.MustParseAddrPort("[::ffff:198.18.1.1]:1080")
	tests := []Config{
		{Name: "d", Type: TypeDirect},
		{Name: "d", Type: TypeDirect, Interface: "wan0", Source: netip.MustParseAddr("198.18.0.2"), Mark: 0x2, Timeout: time.Second},
		{Name: "s", Type: TypeSOCKS5, Server: proxy, PreferNames: true},
		{Name: "s", Type: TypeSOCKS5, Server: proxy, Username: "u", Password: strings.Repeat("p", 255)},
		{Name: "h", Type: TypeHTTP, Server: proxy, Username: "u"},
		{Name: "r", Type: TypeReject, Mark: 0x2},
	}
	for _, cfg := range tests {
		o, err := New(cfg)
		if err != nil {
			t.Errorf("New(%+v): %v", cfg, err)
			continue
		}
		if o.Name() != cfg.Name {
			t.Errorf("Name() = %q, want %q", o.Name(), cfg.Name)
		}
	}
	n, err := Config{Name: "s", Type: TypeSOCKS5, Server: proxy}.normalize()
	if err != nil {
		t.Fatal(err)
	}
	if n.Timeout != DefaultTimeout || n.Server != netip.MustParseAddrPort("198.18.1.1:1080") {
		t.Errorf("normalized = %+v, want the default timeout and an unmapped server", n)
	}
}
