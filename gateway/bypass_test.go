package gateway

import (
	"context"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// TestBypassExtraAndIntercept: bypass.extra_destinations adds to the
// default list without copying it, and bypass.intercept carves ranges out
// of it (a ULA-only IPv6 test LAN, one private IPv4 range), in the RETURN
// rules and in the fast path's set entries alike.
func TestBypassExtraAndIntercept(t *testing.T) {
	c, err := ParseConfig("f.toml", "version = 1\n[bypass]\n"+
		"extra_destinations = [\"198.18.200.0/24\"]\n"+
		"intercept = [\"fc00::/7\", \"10.1.0.0/16\"]\n")
	if err != nil {
		t.Fatal(err)
	}
	v4 := strings.Join(chainRules(c, IPv4, Env{}), "\n")
	v6 := strings.Join(chainRules(c, IPv6, Env{}), "\n")
	for _, want := range []string{"-d 198.18.200.0/24 -j RETURN", "-d 192.168.0.0/16 -j RETURN", "-d 10.0.0.0/16 -j RETURN", "-d 10.128.0.0/9 -j RETURN"} {
		if !strings.Contains(v4, want) {
			t.Errorf("IPv4 rules lack %q:\n%s", want, v4)
		}
	}
	for _, gone := range []string{"-d 10.0.0.0/8 -j RETURN", "-d 10.1.0.0/16 -j RETURN"} {
		if strings.Contains(v4, gone) {
			t.Errorf("IPv4 rules still have %q:\n%s", gone, v4)
		}
	}
	if strings.Contains(v6, "fc00::/7") || !strings.Contains(v6, "-d fe80::/10 -j RETURN") {
		t.Errorf("IPv6 rules: want fc00::/7 intercepted, fe80::/10 still bypassed:\n%s", v6)
	}
	entries := c.FastPathEntries(nil)
	for _, a := range []string{"fd00::1", "10.1.2.3"} {
		if slices.ContainsFunc(entries, func(p netip.Prefix) bool { return p.Contains(netip.MustParseAddr(a)) }) {
			t.Errorf("fast path entries %v hold %s, which is to be intercepted", entries, a)
		}
	}
	for _, a := range []string{"198.18.200.1", "10.2.0.1", "10.0.0.1", "fe80::1"} {
		if !slices.ContainsFunc(entries, func(p netip.Prefix) bool { return p.Contains(netip.MustParseAddr(a)) }) {
			t.Errorf("fast path entries %v lack %s, which is bypassed", entries, a)
		}
	}
}

func TestBypassErrors(t *testing.T) {
	expectConfigErrors(t, []struct{ name, text, want string }{
		{"extra host bits", "version = 1\n[bypass]\nextra_destinations = [\"198.18.200.1/24\"]\n", "f.toml:3: bypass.extra_destinations: 198.18.200.1/24 has host bits set"},
		{"intercept host bits", "version = 1\n[bypass]\nintercept = [\"fd00::1/8\"]\n", "f.toml:3: bypass.intercept: fd00::1/8 has host bits set"},
		{"intercept not bypassed", "version = 1\n[bypass]\nintercept = [\"198.18.0.0/15\"]\n", "f.toml:3: bypass.intercept: 198.18.0.0/15 is not in the bypass list"},
	})
}

// TestInstallLogsWhatIsLeftAlone: the start log names the families that
// are not intercepted and the bypassed ranges in effect.
func TestInstallLogsWhatIsLeftAlone(t *testing.T) {
	g, _ := newTestGateway(t, newFakeRelay(), nil)
	var buf strings.Builder
	g.Log = slog.New(slog.NewTextHandler(&buf, nil))
	g.Config.TProxy.Addresses = []netip.Addr{netip.MustParseAddr("127.0.0.1")} // IPv4 only
	g.Config.Bypass.Intercept = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	if err := g.Install(context.Background()); err != nil {
		t.Fatal(err)
	}
	var line string
	for _, l := range strings.Split(buf.String(), "\n") {
		if strings.Contains(l, "left alone") {
			line = l
		}
	}
	for _, want := range []string{"families=[IPv6]", "192.168.0.0/16", "intercepted_from_bypass=[10.0.0.0/8]"} {
		if !strings.Contains(line, want) {
			t.Errorf("start log line %q lacks %q; log:\n%s", line, want, buf.String())
		}
	}
	if strings.Contains(line, " 10.0.0.0/8 ") || strings.Contains(line, "[10.0.0.0/8 ") {
		t.Errorf("10.0.0.0/8 logged as bypassed although intercepted: %q", line)
	}
}
