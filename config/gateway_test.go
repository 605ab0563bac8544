package config

import (
	"net/netip"
	"os"
	"slices"
	"testing"

	"github.com/gatewayd/gatewayd/gateway"
)

// TestGatewaySpecRendersTheGoldenRules: the default config, and a shared
// IPv4-only one, map to the specs gateway's golden files were rendered
// from (gateway/testdata, written by gateway's own tests).
func TestGatewaySpecRendersTheGoldenRules(t *testing.T) {
	appliance := Default()
	appliance.Mangle.ExtraV4 = []string{"-A FORWARD -p tcp -m tcp --tcp-flags SYN,RST SYN -j TCPMSS --clamp-mss-to-pmtu"}
	shared, err := Parse("shared.toml", `version = 1
[lan]
interfaces = ["br-lan", "wg+"]
[tproxy]
addresses = ["127.0.0.1"]
[mangle]
mode = "shared"
[bypass]
destinations = ["10.0.0.0/8", "2001:db8::/32"]
`)
	if err != nil {
		t.Fatal(err)
	}
	env := gateway.Env{FastPath: true, LANSubnets: []netip.Prefix{
		netip.MustParsePrefix("198.18.1.0/24"), netip.MustParsePrefix("2001:2:1::/64"),
		netip.MustParsePrefix("fe80::/64"),
	}}
	for file, c := range map[string]*Config{"appliance.rules": appliance, "shared-v4only.rules": shared} {
		spec, err := c.Gateway()
		if err != nil {
			t.Fatal(err)
		}
		want, err := os.ReadFile("../gateway/testdata/" + file)
		if err != nil {
			t.Fatal(err)
		}
		if got := gateway.RenderAll(spec, env); got != string(want) {
			t.Errorf("%s: the config renders\n%s\nwant:\n%s", file, got, want)
		}
	}
}

func TestRestartKeys(t *testing.T) {
	a := Default()
	b := Default()
	if keys := RestartKeys(a, b); len(keys) != 0 {
		t.Errorf("same config: %v", keys)
	}
	b.TProxy.Port++
	b.Routing.Table++
	b.UDP.MaxSessions++
	b.Bypass.ExtraDestinations = []netip.Prefix{netip.MustParsePrefix("198.18.9.0/24")} // reloadable
	want := []string{"tproxy.port", "routing.table", "udp.max_sessions"}
	if keys := RestartKeys(a, b); !slices.Equal(keys, want) {
		t.Errorf("RestartKeys = %v, want %v", keys, want)
	}
}
