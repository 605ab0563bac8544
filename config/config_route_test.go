package config

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/route"
)

const routeExample = `version = 1

[[outbound]]
name = "proxy"
type = "socks5"
server = "198.18.1.1:1080"
username = "u"
password = "p"
prefer_names = true
timeout = "3s"
fallback = "backup"

[[outbound]]
name = "backup"
type = "http"
server = "[2001:2::1]:3128"

[[outbound]]
name = "wan2"
type = "direct"
interface = "wan2"
source = "198.18.9.1"

[route]
default = "proxy"
quic = "reject"

[[rule]]
dst = ["198.18.100.0/24", "2001:2:0:100::/64"]
outbound = "direct"

[[rule]]
port = ["443", 8000, "8000-8100"]
proto = "tcp"
src = ["198.18.0.0/24"]
mac = ["02:00:00:00:00:01"]
iface = ["br-lan"]
outbound = "wan2"

[[rule]]
domain = ["Example.COM."]
domain_suffix = ["example.org"]
domain_keyword = ["tracker"]
outbound = "reject"
`

func TestRouteConfig(t *testing.T) {
	c, err := Parse("f.toml", routeExample)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Outbounds) != 3 || c.Outbounds[0].Timeout.Duration != 3*time.Second || c.Outbounds[1].Server != netip.MustParseAddrPort("[2001:2::1]:3128") {
		t.Errorf("outbounds = %+v", c.Outbounds)
	}
	if c.Route.DefaultOutbound() != "proxy" || c.Route.QUIC != QUICReject {
		t.Errorf("route = %+v", c.Route)
	}
	tab, err := c.RouteTable()
	if err != nil {
		t.Fatal(err)
	}
	want := "" +
		"1  route.quic  proto=udp port=443 -> reject\n" +
		"2  rule[0]     dst=198.18.100.0/24,2001:2:0:100::/64 -> direct\n" +
		"3  rule[1]     proto=tcp port=443,8000,8000-8100 src=198.18.0.0/24 mac=02:00:00:00:00:01 iface=br-lan -> wan2\n" +
		"4  rule[2]     domain=example.com domain_suffix=example.org domain_keyword=tracker -> reject\n" +
		"   default     -> proxy\n"
	if got := tab.String(); got != want {
		t.Errorf("table:\n%s\nwant:\n%s", got, want)
	}
	f := route.Flow{Proto: route.ProtoUDP, Src: netip.MustParseAddrPort("198.18.0.2:5000"), Dst: netip.MustParseAddrPort("198.18.100.1:443")}
	if out, i := tab.Match(f); out != OutboundReject || tab.Label(i) != QUICRuleLabel {
		t.Errorf("QUIC flow goes %q (%s)", out, tab.Label(i))
	}

	specs := c.OutboundSpecs()
	if len(specs) != 5 || specs[0].Config.Name != "direct" || specs[1].Config.Name != "reject" {
		t.Fatalf("OutboundSpecs = %+v", specs)
	}
	p := specs[2]
	if p.Config.Name != "proxy" || p.Fallback != "backup" || p.Config.Mark != c.TProxy.BypassMark || p.Config.Timeout != 3*time.Second || !p.Config.PreferNames {
		t.Errorf("proxy spec = %+v", p)
	}
	if specs[3].Config.Timeout != c.TCP.ConnectTimeout.Duration {
		t.Errorf("unset timeout = %v, want tcp.connect_timeout", specs[3].Config.Timeout)
	}
	if specs[4].Config.Interface != "wan2" || specs[4].Config.Source != netip.MustParseAddr("198.18.9.1") {
		t.Errorf("wan2 spec = %+v", specs[4])
	}
}

func TestRouteDefaults(t *testing.T) {
	c := Default()
	if len(c.Outbounds) != 0 || len(c.Rules) != 0 || c.Route.DefaultOutbound() != "direct" || c.Route.QUIC != QUICAllow {
		t.Errorf("defaults: %+v %+v %+v", c.Outbounds, c.Route, c.Rules)
	}
	tab, err := c.RouteTable()
	if err != nil {
		t.Fatal(err)
	}
	if tab.Len() != 0 || tab.Default() != "direct" || tab.NeedsDomain() || tab.NeedsMAC() {
		t.Errorf("default table: %s", tab)
	}
	c, err = Parse("f.toml", "version = 1\n[route]\ndefault = \"reject\"\nquic = \"allow\"\n")
	if err != nil || c.Route.DefaultOutbound() != "reject" {
		t.Errorf("explicit route: %v %+v", err, c)
	}
}

// outboundBlock is an [[outbound]] with the given body lines.
func outboundBlock(body ...string) string {
	return "[[outbound]]\n" + strings.Join(body, "\n") + "\n"
}

func TestRouteConfigErrors(t *testing.T) {
	proxy := outboundBlock(`name = "proxy"`, `type = "socks5"`, `server = "198.18.1.1:1080"`)
	rule := func(body ...string) string { return "[[rule]]\n" + strings.Join(body, "\n") + "\n" }
	tests := []struct {
		name, text string
		line       int // of the key, counted from "version = 1" on line 1
		key, want  string
	}{
		// Decoding errors: the toml library knows the line; the key is
		// indexed as in validation errors (one form everywhere).
		{"server not ip:port", outboundBlock(`name = "p"`, `type = "socks5"`, `server = "proxy.lan:1080"`), 5, "outbound[0].server", "ParseAddr"},
		{"bad prefix", rule(`dst = ["198.18.0.0/33"]`, `outbound = "direct"`), 3, "rule[0].dst", ""},
		{"bad port", proxy + rule(`port = ["0"]`, `outbound = "proxy"`), 7, "rule[0].port", `"0" is not a port`},
		{"bad port second rule", rule(`port = [1]`, `outbound = "direct"`) + rule(`port = ["0"]`, `outbound = "direct"`), 6, "rule[1].port", `"0" is not a port`},
		{"reversed range", rule(`port = ["90-80"]`, `outbound = "direct"`), 3, "rule[0].port", "start is after end"},
		{"bad quic", "[route]\nquic = \"block\"\n", 3, "route.quic", `"block": want "allow" or "reject"`},
		{"unknown rule key", rule(`dest = ["198.18.0.0/24"]`, `outbound = "direct"`), 3, "rule[0].dest", "unknown key"},
		{"unknown key second rule", rule(`port = [1]`, `outbound = "direct"`) + rule(`dest = ["198.18.0.0/24"]`, `outbound = "direct"`), 6, "rule[1].dest", "unknown key"},
		{"bare int timeout", outboundBlock(`name = "p"`, `type = "direct"`, `timeout = 5`), 5, "outbound[0].timeout", "want a duration string"},
		{"type mismatch second outbound", proxy + outboundBlock(`name = "p"`, `type = "direct"`, `timeout = 5`), 9, "outbound[1].timeout", "want a duration string"},
		// Validation errors: keys are indexed.
		{"builtin name", outboundBlock(`name = "direct"`, `type = "direct"`), 3, "outbound[0].name", `"direct" is built in`},
		{"bad name", outboundBlock(`name = "My Proxy"`, `type = "direct"`), 3, "outbound[0].name", "lowercase"},
		{"duplicate name", proxy + proxy, 7, "outbound[1].name", `"proxy" is defined twice`},
		{"missing type", outboundBlock(`name = "p"`), 2, "outbound[0].type", "missing"},
		{"unknown type", outboundBlock(`name = "p"`, `type = "vpn"`), 4, "outbound[0].type", `unknown type "vpn"`},
		{"server missing", outboundBlock(`name = "p"`, `type = "http"`), 2, "outbound[0].server", "missing"},
		{"server on direct", outboundBlock(`name = "p"`, `type = "direct"`, `server = "198.18.1.1:80"`), 5, "outbound[0].server", "not used by a direct outbound"},
		{"username without password", outboundBlock(`name = "p"`, `type = "socks5"`, `server = "198.18.1.1:1080"`, `username = "u"`), 2, "outbound[0].password", "RFC 1929"},
		{"password without username", outboundBlock(`name = "p"`, `type = "http"`, `server = "198.18.1.1:3128"`, `password = "x"`), 6, "outbound[0].password", "without a username"},
		{"interface on socks5", proxy + outboundBlock(`name = "q"`, `type = "socks5"`, `server = "198.18.1.1:1080"`, `interface = "wan"`), 10, "outbound[1].interface", "only a direct outbound"},
		{"fallback unknown", outboundBlock(`name = "p"`, `type = "direct"`, `fallback = "nope"`), 5, "outbound[0].fallback", `"nope" is not an outbound`},
		{"fallback self", outboundBlock(`name = "p"`, `type = "direct"`, `fallback = "p"`), 5, "outbound[0].fallback", "itself"},
		{"fallback on reject", outboundBlock(`name = "p"`, `type = "reject"`, `fallback = "direct"`), 5, "outbound[0].fallback", "never fails"},
		{"fallback cycle", outboundBlock(`name = "a"`, `type = "direct"`, `fallback = "b"`) + outboundBlock(`name = "b"`, `type = "direct"`, `fallback = "c"`) + outboundBlock(`name = "c"`, `type = "direct"`, `fallback = "a"`),
			5, "outbound[0].fallback", "fallback cycle a -> b -> c -> a"},
		{"default unknown", "[route]\ndefault = \"vpn\"\n", 3, "route.default", `"vpn" is not an outbound`},
		{"rule outbound missing", rule(`dst = ["198.18.0.0/24"]`), 2, "rule[0]", "outbound is missing"},
		{"rule outbound unknown", proxy + rule(`dst = ["198.18.0.0/24"]`, `outbound = "direct"`) + rule(`port = [22]`, `outbound = "prox"`), 11, "rule[1].outbound", `"prox" is not an outbound`},
		{"catch-all not last", rule(`outbound = "reject"`) + rule(`port = [22]`, `outbound = "direct"`), 2, "rule[0]", "matches every flow"},
		{"bad proto", rule(`proto = "icmp"`, `outbound = "direct"`), 3, "rule[0].proto", `"icmp"`},
		{"bad mac", rule(`port = [1]`, `outbound = "direct"`) + rule(`mac = ["02:00:00:00:00"]`, `outbound = "direct"`), 6, "rule[1].mac", "not a MAC address"},
		{"host bits", rule(`src = ["198.18.0.1/24"]`, `outbound = "direct"`), 3, "rule[0].src", "did you mean 198.18.0.0/24?"},
		{"iface not on lan", rule(`iface = ["eth9"]`, `outbound = "direct"`), 3, "rule[0].iface", `"eth9" is not one of lan.interfaces`},
		{"wildcard domain", rule(`domain = ["*.example.com"]`, `outbound = "direct"`), 3, "rule[0].domain", "use domain_suffix"},
		{"bad suffix", rule(`port = [1]`, `outbound = "direct"`) + rule(`domain_suffix = [`, `  "example.org",`, `  "exa mple.org",`, `]`, `outbound = "direct"`), 6, "rule[1].domain_suffix", "not allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text := "version = 1\n" + tt.text
			_, err := Parse("f.toml", text)
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("error = %v, want a *Error", err)
			}
			if ce.Key != tt.key || !strings.Contains(ce.Msg, tt.want) {
				t.Errorf("error = %q; want key %q and message containing %q", err, tt.key, tt.want)
			}
			// Indexed keys get their line from arrayTableLines; that it
			// points where it should is checked here, whether or not
			// Parse merges it in yet (see arrayTableLines).
			line := ce.Line
			if strings.Contains(tt.key, "[") {
				line = elemLine(arrayTableLines(text), tt.key)
				if ce.Line != 0 && ce.Line != line {
					t.Errorf("error line %d, arrayTableLines says %d", ce.Line, line)
				}
			}
			if line != tt.line {
				t.Errorf("%s is on line %d, want %d", tt.key, line, tt.line)
			}
		})
	}
}

func TestArrayTableLines(t *testing.T) {
	text := `version = 1
[[rule]]   # first
dst = [
  "198.18.0.0/24",   # [[not a table]]
]
outbound = "direct"

[route]
default = "direct"

[[rule]]
"port" = [22]
domain = """
[[rule]]
"""
outbound = "x"
[[outbound]]
name = "p"
`
	got := arrayTableLines(text)
	want := map[string]int{
		"rule[0]": 2, "rule[0].dst": 3, "rule[0].outbound": 6,
		"rule[1]": 11, "rule[1].port": 12, "rule[1].domain": 13, "rule[1].outbound": 16,
		"outbound[0]": 17, "outbound[0].name": 18,
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("arrayTableLines =\n%v\nwant\n%v", got, want)
	}
}

func TestLANCovers(t *testing.T) {
	c := Default()
	c.LAN.Interfaces = []string{"br-lan", "wg+"}
	for iface, want := range map[string]bool{"br-lan": true, "br-lan2": false, "br+": true, "wg0": true, "wg+": true, "w+": true, "eth0": false, "eth+": false} {
		if got := c.lanCovers(iface); got != want {
			t.Errorf("lanCovers(%q) = %v, want %v", iface, got, want)
		}
	}
}

// TestShippedRouteExample uncomments the example rule set in
// configs/gateway.toml and checks that it is a valid config doing what its
// comments say.
func TestShippedRouteExample(t *testing.T) {
	text, err := os.ReadFile("../configs/gateway.toml")
	if err != nil {
		t.Fatal(err)
	}
	_, example, ok := strings.Cut(string(text), "# Example rule set:\n")
	example, _, ok2 := strings.Cut(example, "# End of the example.")
	if !ok || !ok2 {
		t.Fatal("example rule set markers not found in configs/gateway.toml")
	}
	var b strings.Builder
	b.WriteString("version = 1\n")
	for _, line := range strings.Split(example, "\n") {
		line = strings.TrimPrefix(strings.TrimPrefix(line, "#"), " ")
		b.WriteString(line + "\n")
	}
	c, err := Parse("example.toml", b.String())
	if err != nil {
		t.Fatalf("uncommented example rejected: %v\n%s", err, b.String())
	}
	tab, err := c.RouteTable()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("example table:\n%s", tab)
	if len(c.Outbounds) != 3 || tab.Len() != 6 || !tab.NeedsDomain() || !tab.NeedsMAC() {
		t.Errorf("example: %d outbounds, %d rules, domain %v, mac %v", len(c.Outbounds), tab.Len(), tab.NeedsDomain(), tab.NeedsMAC())
	}
	if got := fmt.Sprint(tab.DirectPrefixes()); got != "[198.18.100.0/24 2001:2:0:100::/64]" {
		t.Errorf("example fast path = %s", got)
	}
	flow := route.Flow{Proto: route.ProtoTCP, Src: netip.MustParseAddrPort("198.18.1.9:40000"), Dst: netip.MustParseAddrPort("198.19.0.1:8050"), Domain: "git.corp.example.com"}
	if out, _ := tab.Match(flow); out != "office" {
		t.Errorf("work flow goes %q", out)
	}
}
