package config

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/gatewayd/gatewayd/gateway"
)

// TestBypassExtraAndIntercept: bypass.extra_destinations adds to the
// default list without copying it, and bypass.intercept carves ranges out
// of it (a ULA-only IPv6 test LAN, one private IPv4 range), in the RETURN
// rules and in the fast path's set entries alike.
func TestBypassExtraAndIntercept(t *testing.T) {
	c, err := Parse("f.toml", "version = 1\n[bypass]\n"+
		"extra_destinations = [\"198.18.200.0/24\"]\n"+
		"intercept = [\"fc00::/7\", \"10.1.0.0/16\"]\n")
	if err != nil {
		t.Fatal(err)
	}
	spec, err := c.Gateway()
	if err != nil {
		t.Fatal(err)
	}
	rules := gateway.RenderAll(spec, gateway.Env{})
	v4, v6, _ := strings.Cut(rules, "# ip6tables-restore")
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
	entries := spec.Bypass // the fast path's sets hold it, with the direct rules' prefixes
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
