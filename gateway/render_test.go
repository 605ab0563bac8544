package gateway

import (
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./gateway -run %s -update to create it)", err, t.Name())
	}
	if string(want) != got {
		t.Errorf("%s differs from the rendering:\n--- got ---\n%s\n--- want ---\n%s", path, got, want)
	}
}

func labEnv() Env {
	return Env{LANSubnets: []netip.Prefix{
		netip.MustParsePrefix("198.18.1.0/24"), netip.MustParsePrefix("2001:2:1::/64"),
		netip.MustParsePrefix("fe80::/64"),
	}}
}

func TestRenderGolden(t *testing.T) {
	appliance := testSpec()
	appliance.Mangle.ExtraV4 = []string{"-A FORWARD -p tcp -m tcp --tcp-flags SYN,RST SYN -j TCPMSS --clamp-mss-to-pmtu"}
	env := labEnv()
	env.FastPath = true
	golden(t, "appliance.rules", RenderAll(appliance, env))
	golden(t, "shared-v4only.rules", RenderAll(sharedV4Spec(), env))
}

// sharedV4Spec is the spec of config's testdata shared.toml (config's
// tests render that file against the same golden file).
func sharedV4Spec() *Spec {
	s := testSpec()
	s.LAN.Interfaces = []string{"br-lan", "wg+"}
	s.TProxy.Addresses = s.TProxy.Addresses[:1]
	s.Mangle.Mode = ModeShared
	s.Bypass = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8::/32")}
	return s
}

// TestRenderWithoutFastPath: with the fast path's sets the bypass list is
// matched in them (one rule for the set instead of one per prefix); without
// them each prefix has its RETURN rule and there is no set match. The rest
// is the same.
func TestRenderWithoutFastPath(t *testing.T) {
	c := testSpec()
	with := labEnv()
	with.FastPath = true
	w, wo := RenderAll(c, with), RenderAll(c, labEnv())
	for _, p := range c.Bypass {
		line := "-A GWD_PRE -d " + p.String() + " -j RETURN\n"
		if strings.Contains(w, line) || !strings.Contains(wo, line) {
			t.Errorf("bypass %s: a rule of its own with the fast path, or none without it", p)
		}
	}
	if strings.Contains(wo, "--match-set") || strings.Contains(wo, "# ipsets") || strings.Contains(wo, "--ctdir ORIGINAL") {
		t.Error("the set match is rendered without the fast path")
	}
	for _, line := range strings.Split(w, "\n") {
		fastOnly := strings.Contains(line, "--match-set") || strings.Contains(line, "--ctdir ORIGINAL")
		if !fastOnly && !strings.HasPrefix(line, "#") && !strings.Contains(wo, line) {
			t.Errorf("%q is rendered only with the fast path", line)
		}
	}
	for _, f := range Families {
		rules := chainRules(c, f, with)
		i := slices.Index(rules, a(chainPre, "-m", "set", "--match-set", DirectSet(f), "dst", "-j", "RETURN"))
		if i < 2 || !strings.Contains(rules[i-1], "-j CONNMARK") || !strings.Contains(rules[i-2], "-j RETURN") || !strings.Contains(rules[i+1], "-j TPROXY") {
			t.Errorf("%s: the set match is not between the RETURN rules and TPROXY:\n%s", f, strings.Join(rules, "\n"))
		}
	}
	q := testSpec()
	q.RejectQUIC = true // the QUIC rule must sit between the bypass list and the set
	if rules := RenderAll(q, with); !strings.Contains(rules, "-A GWD_PRE -d 10.0.0.0/8 -j RETURN") {
		t.Errorf("with the QUIC switch the bypass list must keep its rules:\n%s", rules)
	}
}

func TestBypassDedupAndFamilies(t *testing.T) {
	c := testSpec()
	c.Bypass = []netip.Prefix{
		netip.MustParsePrefix("198.18.1.0/24"), // also a LAN subnet: listed once
		netip.MustParsePrefix("::ffff:0:0/96"), // an IPv6 prefix, never IPv4
	}
	v4 := bypassFor(c, IPv4, labEnv())
	v6 := bypassFor(c, IPv6, labEnv())
	if len(v4) != 1 || v4[0].String() != "198.18.1.0/24" {
		t.Errorf("v4 bypass = %v", v4)
	}
	if len(v6) != 3 || v6[2].String() != "::ffff:0.0.0.0/96" {
		t.Errorf("v6 bypass = %v", v6)
	}
}
