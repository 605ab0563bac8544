package config

import (
	"net/netip"
	"os"
	"reflect"
	"strings"
	"testing"
)

// TestShippedStatusIsTheDefault: the [status] section of
// configs/gateway.toml is the built-in default, key for key.
func TestShippedStatusIsTheDefault(t *testing.T) {
	text, err := os.ReadFile("../configs/gateway.toml")
	if err != nil {
		t.Fatal(err)
	}
	got, err := Parse("gateway.toml", string(text))
	if err != nil {
		t.Fatalf("shipped config rejected: %v", err)
	}
	if want := DefaultStatus(); !reflect.DeepEqual(got.Status, want) {
		t.Errorf("shipped [status] = %#v, want the default %#v", got.Status, want)
	}
	for _, key := range []string{"status.enabled", "status.listen", "status.hosts", "status.query_log", "status.dhcp_leases"} {
		if got.lines[key] == 0 {
			t.Errorf("configs/gateway.toml does not show %s", key)
		}
	}
}

func TestStatusDefaults(t *testing.T) {
	c, err := Parse("min.toml", "version = 1\n")
	if err != nil {
		t.Fatal(err)
	}
	s := c.Status
	if !s.Enabled || s.Listen.AddrPort != netip.MustParseAddrPort("127.0.0.1:9090") || len(s.Hosts) != 0 {
		t.Errorf("default status = %+v, want enabled on 127.0.0.1:9090 without hosts", s)
	}
	if !s.Listen.Addr().IsLoopback() {
		t.Errorf("default listen %s is not loopback", s.Listen)
	}
}

func TestStatusAccepted(t *testing.T) {
	tests := []struct {
		name, body string
		listen     string
		hosts      []string
		enabled    bool
	}{
		{"lan address", `listen = "198.18.1.1:9090"`, "198.18.1.1:9090", []string{}, true},
		{"ipv6 loopback", `listen = "[::1]:19090"`, "[::1]:19090", []string{}, true},
		{"ipv4-mapped is unmapped", `listen = "[::ffff:198.18.1.1]:9090"`, "198.18.1.1:9090", []string{}, true},
		{"ipv6 lan", `listen = "[2001:2:1::1]:9090"`, "[2001:2:1::1]:9090", []string{}, true},
		{"hosts normalised", `hosts = ["Router.LAN.", "gw-1.example"]`, DefaultStatusListen, []string{"router.lan", "gw-1.example"}, true},
		{"disabled", `enabled = false`, DefaultStatusListen, []string{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse("f.toml", "version = 1\n[status]\n"+tt.body+"\n")
			if err != nil {
				t.Fatal(err)
			}
			s := c.Status
			if s.Enabled != tt.enabled || s.Listen.String() != tt.listen || !reflect.DeepEqual(s.HostNames(), tt.hosts) {
				t.Errorf("status = enabled %v, listen %s, hosts %q; want %v, %s, %q",
					s.Enabled, s.Listen, s.HostNames(), tt.enabled, tt.listen, tt.hosts)
			}
		})
	}
}

func TestStatusErrors(t *testing.T) {
	tests := []struct {
		name, text, want string
	}{
		{"wildcard v4", "version = 1\n[status]\nlisten = \"0.0.0.0:9090\"\n", "f.toml:3: status.listen: \"0.0.0.0:9090\": a wildcard address would answer on every interface"},
		{"wildcard v6", "version = 1\n[status]\n\nlisten = \"[::]:9090\"\n", "f.toml:4: status.listen: \"[::]:9090\": a wildcard address"},
		{"port only", "version = 1\n[status]\nlisten = \":9090\"\n", "f.toml:3: status.listen: \":9090\": a wildcard address"},
		{"mapped wildcard", "version = 1\n[status]\nlisten = \"[::ffff:0.0.0.0]:9090\"\n", "f.toml:3: status.listen:"},
		{"no port", "version = 1\n[status]\nlisten = \"127.0.0.1\"\n", "f.toml:3: status.listen: \"127.0.0.1\": want IP:port"},
		{"name", "version = 1\n[status]\nlisten = \"localhost:9090\"\n", "f.toml:3: status.listen: \"localhost:9090\": want IP:port"},
		{"port zero", "version = 1\n[status]\nlisten = \"127.0.0.1:0\"\n", "f.toml:3: status.listen: \"127.0.0.1:0\": port 0"},
		{"multicast", "version = 1\n[status]\nlisten = \"224.0.0.1:9090\"\n", "f.toml:3: status.listen: \"224.0.0.1:9090\": not an address"},
		{"broadcast", "version = 1\n[status]\nlisten = \"255.255.255.255:9090\"\n", "f.toml:3: status.listen:"},
		{"zone", "version = 1\n[status]\nlisten = \"[fe80::1%br-lan]:9090\"\n", "f.toml:3: status.listen: \"[fe80::1%br-lan]:9090\": zones are not supported"},
		{"not a string", "version = 1\n[status]\nlisten = 9090\n", "f.toml:3: status.listen:"},
		{"enabled type", "version = 1\n[status]\nenabled = \"yes\"\n", "f.toml:3: status.enabled:"},
		{"host with space", "version = 1\n[status]\nhosts = [\"router lan\"]\n", "f.toml:3: status.hosts: \"router lan\": character ' '"},
		{"host ip", "version = 1\n[status]\nhosts = [\"198.18.1.1\"]\n", "f.toml:3: status.hosts: \"198.18.1.1\" is an IP address"},
		{"host empty", "version = 1\n[status]\nhosts = [\"\"]\n", "f.toml:3: status.hosts: \"\": want a host name"},
		{"host empty label", "version = 1\n[status]\nhosts = [\"a..lan\"]\n", "f.toml:3: status.hosts: \"a..lan\": each dot-separated part"},
		{"host hyphen", "version = 1\n[status]\nhosts = [\"-x.lan\"]\n", "must not start or end with a hyphen"},
		{"host long label", "version = 1\n[status]\nhosts = [\"" + strings.Repeat("a", 64) + ".lan\"]\n", "1 to 63 characters"},
		{"host escape", "version = 1\n[status]\nhosts = [\"a\\u001b.lan\"]\n", "character '\\x1b'"},
		{"unknown key", "version = 1\n[status]\nport = 9090\n", "f.toml:3: status.port: unknown key"},
	}
	expectConfigErrors(t, tests)
}

// FuzzStatusListen: no input panics, and whatever is accepted is an
// address the endpoint may listen on.
func FuzzStatusListen(f *testing.F) {
	for _, s := range []string{DefaultStatusListen, "[::1]:9090", "0.0.0.0:1", ":9090", "[::ffff:0.0.0.0]:1", "[fe80::1%x]:1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var l StatusListen
		if err := l.UnmarshalText([]byte(s)); err != nil {
			return
		}
		a := l.Addr()
		if a.IsUnspecified() || a.Is4In6() || a.Zone() != "" || a.IsMulticast() || l.Port() == 0 {
			t.Fatalf("accepted %q as %s", s, l)
		}
	})
}
