package config

import (
	"errors"
	"net/netip"
	"os"
	"reflect"
	"strings"
	"testing"
)

func TestShippedConfigIsTheDefault(t *testing.T) {
	text, err := os.ReadFile("../configs/gateway.toml")
	if err != nil {
		t.Fatal(err)
	}
	got, err := Parse("gateway.toml", string(text))
	if err != nil {
		t.Fatalf("shipped config rejected: %v", err)
	}
	want := Default()
	got.path, got.lines, got.text, got.elems, want.path, want.lines = "", nil, "", nil, "", nil
	if len(got.Mangle.ExtraV4)+len(got.Mangle.ExtraV6) == 0 { // [] in the file, nil by default
		got.Mangle.ExtraV4, got.Mangle.ExtraV6 = nil, nil
	}
	for _, l := range []*[]string{&got.DNS.Upstreams, &got.DNS.BlockLists, &got.DNS.RebindAllow} {
		if len(*l) == 0 {
			*l = nil
		}
	}
	for _, l := range []*[]netip.Prefix{&got.Bypass.ExtraDestinations, &got.Bypass.Intercept} {
		if len(*l) == 0 {
			*l = nil
		}
	}
	// route.default: "direct" in the file, "" (meaning direct) by default.
	if got.Route.DefaultOutbound() == want.Route.DefaultOutbound() {
		got.Route.Default = want.Route.Default
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("configs/gateway.toml differs from the built-in defaults:\n got %#v\nwant %#v", *got, *want)
	}
}

func TestMinimalConfig(t *testing.T) {
	c, err := Parse("min.toml", "version = 1\n")
	if err != nil {
		t.Fatal(err)
	}
	if c.LAN.Interfaces[0] != "br-lan" || c.TProxy.Port != DefaultPort || len(c.Bypass.Destinations) != len(DefaultBypass) {
		t.Errorf("defaults not applied: %+v", c)
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name, text, want string
	}{
		{"missing version", "[lan]\ninterfaces=[\"x\"]\n", "f.toml: version: missing"},
		{"bad version", "version = 2\n", "f.toml:1: version: unsupported version 2"},
		{"unknown key", "version = 1\n[tcp]\n\nidel_timeout = \"5s\"\n", "f.toml:4: tcp.idel_timeout: unknown key"},
		{"unknown table", "version = 1\n[tcpp]\nx = 1\n", "f.toml:2: tcpp: unknown key"},
		{"type mismatch", "version = 1\n[tproxy]\nport = \"80\"\n", "f.toml:3: tproxy.port:"},
		{"port range", "version = 1\n[tproxy]\nport = 70000\n", "f.toml:3: tproxy.port:"},
		{"port zero", "version = 1\n[tproxy]\nport = 0\n", "f.toml:3: tproxy.port: must be 1-65535"},
		{"bad address", "version = 1\n[tproxy]\naddresses = [\"1.2.3\"]\n", "f.toml:3: tproxy.addresses:"},
		{"two v4 listeners", "version = 1\n[tproxy]\naddresses = [\"127.0.0.1\", \"127.0.0.2\"]\n", "f.toml:3: tproxy.addresses: at most one address per family"},
		{"bare int duration", "version = 1\n[tcp]\nidle_timeout = 5\n", "f.toml:3: tcp.idle_timeout: want a duration string"},
		{"bad duration", "version = 1\n[tcp]\nconnect_timeout = \"5 parsecs\"\n", "f.toml:3: tcp.connect_timeout:"},
		{"zero timeout", "version = 1\n[tcp]\nconnect_timeout = \"0s\"\n", "f.toml:3: tcp.connect_timeout: must be positive"},
		{"marks overlap", "version = 1\n[tproxy]\nmark = 1\nmask = 3\nbypass_mark = 2\n", "f.toml:5: tproxy.bypass_mark: 0x2 shares bits with tproxy.mask 0x3"},
		{"mark outside mask", "version = 1\n[tproxy]\nmark = 3\nmask = 1\n", "f.toml:3: tproxy.mark: 0x3 has bits outside tproxy.mask 0x1"},
		{"zero mark", "version = 1\n[tproxy]\nmark = 0\n", "f.toml:3: tproxy.mark: must not be 0"},
		{"main table", "version = 1\n[routing]\ntable = 254\n", "f.toml:3: routing.table: 254 is reserved"},
		{"priority after main", "version = 1\n[routing]\npriority = 32766\n", "f.toml:3: routing.priority:"},
		{"bad mode", "version = 1\n[mangle]\nmode = \"owned\"\n", "f.toml:3: mangle.mode: \"owned\""},
		{"extra in shared", "version = 1\n[mangle]\nmode = \"shared\"\nextra_rules_v4 = [\"-A FORWARD -j ACCEPT\"]\n", "f.toml:4: mangle.extra_rules_v4: only used in"},
		{"extra not -A", "version = 1\n[mangle]\nextra_rules_v6 = [\n  \"-F\",\n]\n", "f.toml:3: mangle.extra_rules_v6: \"-F\""},
		{"extra uses own chain", "version = 1\n[mangle]\nextra_rules_v4 = [\"-A GWD_PRE -j RETURN\"]\n", "belong to gatewayd"},
		{"host bits", "version = 1\n[bypass]\ndestinations = [\n \"10.0.0.0/8\",\n \"10.1.2.3/8\",\n]\n", "f.toml:3: bypass.destinations: 10.1.2.3/8 has host bits set"},
		{"bad prefix", "version = 1\n[bypass]\ndestinations = [\"10.0.0.0/33\"]\n", "f.toml:3: bypass.destinations:"},
		{"no lan", "version = 1\n[lan]\ninterfaces = []\n", "f.toml:3: lan.interfaces: at least one"},
		{"long ifname", "version = 1\n[lan]\ninterfaces = [\"a-very-long-interface\"]\n", "f.toml:3: lan.interfaces: \"a-very-long-interface\" is not a valid"},
		{"log level", "version = 1\n[log]\nlevel = \"loud\"\n", "f.toml:3: log.level:"},
		{"relative state dir", "version = 1\nstate_dir = \"run\"\n", "f.toml:2: state_dir: must be an absolute path"},
		{"syntax", "version = 1\n[tcp\n", "f.toml:3: expected"},
		{"comment and string with hash", "version = 1 # the version\n[log]\nformat = \"te#xt\" # x\n", "f.toml:3: log.format: \"te#xt\""},
	}
	expectConfigErrors(t, tests)
}

func TestKeyLines(t *testing.T) {
	text := "version = 1\n[a]\nx = [\n  \"]\",\n]\ny = '''\nz = 1\n'''\n\"q\" = 2 # c\n[b . c]\nd=1\n"
	got := keyLines(text)
	want := map[string]int{"version": 1, "a": 2, "a.x": 3, "a.y": 6, "a.q": 9, "b.c": 10, "b.c.d": 11}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("keyLines = %v, want %v", got, want)
	}
}

// FuzzParseConfig: any text gives a config that passes validation or a
// Error naming the file and, if any, a line the text has.
func FuzzParseConfig(f *testing.F) {
	text, err := os.ReadFile("../configs/gateway.toml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(string(text))
	f.Add("version = 1\n[tcp]\nidle_timeout = \"1s\"\n")
	f.Add("version = 1\n[tproxy]\nmark = 0x10\nmask = 0x10\n")
	f.Add(routeExample)
	f.Fuzz(func(t *testing.T, s string) {
		c, err := Parse("fuzz.toml", s)
		if err == nil && c.validate() != nil {
			t.Fatalf("accepted config fails validation")
		}
		if err != nil && !errors.Is(err, ErrInvalid) {
			t.Fatalf("error is not a Error: %v", err)
		}
		// An error points into the file: its name, a line it has.
		var ce *Error
		if errors.As(err, &ce) && (ce.File != "fuzz.toml" || ce.Line < 0 || ce.Line > strings.Count(s, "\n")+1) {
			t.Fatalf("error %q: file %q, line %d of a %d-line text", err, ce.File, ce.Line, strings.Count(s, "\n")+1)
		}
	})
}

// expectConfigErrors parses each case's text and requires an ErrInvalid
// whose message contains want.
func expectConfigErrors(t *testing.T, tests []struct{ name, text, want string }) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("f.toml", tt.text)
			if err == nil {
				t.Fatalf("accepted, want error %q", tt.want)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v is not ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %q, want it to contain %q", err, tt.want)
			}
		})
	}
}
