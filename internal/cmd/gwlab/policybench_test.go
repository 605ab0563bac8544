package main

import (
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"github.com/gatewayd/gatewayd/config"
	"github.com/gatewayd/gatewayd/route"
)

// The shipped config plus policyRules must route the three iperf3 servers
// the way the policy bench assumes: the first to the default (direct, in
// user space, not in the fast path), the second through the kernel fast
// path, the third to the SOCKS5 outbound.
func TestPolicyRulesRouteAsTheBenchAssumes(t *testing.T) {
	base, err := os.ReadFile("../../../configs/gateway.toml")
	if err != nil {
		t.Fatal(err)
	}
	user, fast, socks := netip.MustParseAddr("198.19.0.10"), netip.MustParseAddr("198.19.0.11"), netip.MustParseAddr("198.19.0.12")
	server := netip.MustParseAddrPort("198.18.2.2:1080")
	cfg, err := config.Parse("policy.toml", string(base)+policyRules(fast, socks, server))
	if err != nil {
		t.Fatalf("the bench's config does not load: %v", err)
	}
	table, err := cfg.RouteTable()
	if err != nil {
		t.Fatal(err)
	}
	client := netip.MustParseAddrPort("198.18.1.2:40000")
	for _, c := range []struct {
		dst       netip.Addr
		outbound  string
		ruleIndex int
	}{
		{user, config.OutboundDirect, -1},
		{fast, config.OutboundDirect, 0},
		{socks, socksOutbound, 1},
	} {
		ob, i := table.Match(route.Flow{Proto: route.ProtoTCP, Src: client, Dst: netip.AddrPortFrom(c.dst, 5222)})
		if ob != c.outbound || i != c.ruleIndex {
			t.Errorf("%s: outbound %q (rule %d), want %q (rule %d)", c.dst, ob, i, c.outbound, c.ruleIndex)
		}
	}
	fp, err := cfg.FastPathTable()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := fp.DirectPrefixes(), []netip.Prefix{netip.PrefixFrom(fast, 32)}; !slices.Equal(got, want) {
		t.Errorf("fast path prefixes %v, want %v", got, want)
	}
	var sawServer bool
	for _, s := range cfg.OutboundSpecs() {
		if s.Config.Name == socksOutbound {
			sawServer = s.Config.Server == server
		}
	}
	if !sawServer {
		t.Errorf("no outbound %q with server %s in %+v", socksOutbound, server, cfg.OutboundSpecs())
	}
}

// danted itself must accept the generated config (-V checks it and
// exits). Loopback addresses, since -V checks that they are local.
func TestDantedAcceptsItsConfig(t *testing.T) {
	bin, err := exec.LookPath("danted")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("danted not installed (make deps installs dante-server): %v", err)
		}
		t.Skipf("danted not installed (make deps installs dante-server): %v", err)
	}
	conf := filepath.Join(t.TempDir(), "danted.conf")
	text := dantedConfig(netip.MustParseAddrPort("127.0.0.1:1080"), netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("127.0.0.3"))
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-V", "-f", conf)
	cmd.Env = append(os.Environ(), "TMPDIR="+t.TempDir())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("danted -V: %v\n%s\nconfig:\n%s", err, out, text)
	}
}

func TestParseStat(t *testing.T) {
	// comm with a space and a ')' (field 2 is free text), then state, ppid,
	// and the fields up to cstime (17).
	line := "4242 (dan ted)) S 4000 4242 4242 0 -1 4194560 100 0 0 0 11 22 33 44 20 0 1 0 5 0 0\n"
	st, err := parseStat(line)
	if err != nil {
		t.Fatal(err)
	}
	if want := (procStat{ppid: 4000, utime: 11, stime: 22, cutime: 33, cstime: 44}); st != want {
		t.Errorf("parseStat = %+v, want %+v", st, want)
	}
	for _, bad := range []string{"", "4242 no parens", "1 (x) S 0 1 1 0 -1 0 0 0 0 0 1 2", "1 (x) S p 1 1 0 -1 0 0 0 0 0 1 2 3 4 5", "1 (x) S 0 1 1 0 -1 0 0 0 0 0 1 -2 3 4 5"} {
		if _, err := parseStat(bad); err == nil {
			t.Errorf("parseStat(%q): no error", bad)
		}
	}
}

func TestPolicyCasesAreTheIPv4TCPCases(t *testing.T) {
	cs := policyCases()
	if len(cs) != 4 {
		t.Fatalf("policyCases = %v, want the 4 IPv4 cases", cs)
	}
	var streams, reverse int
	for _, c := range cs {
		if c.Family != 4 {
			t.Errorf("%s: family %d", c.Name, c.Family)
		}
		streams += c.Streams
		if c.Reverse {
			reverse++
		}
	}
	if streams != 18 || reverse != 2 {
		t.Errorf("policyCases = %v: want 1 and 8 streams in both directions", cs)
	}
}

// Every path has its own iperf3 port, distinct from the other parts of
// the bench, so no 4-tuple meets a TIME_WAIT socket of a relayed flow.
func TestPolicyPortsAreUnique(t *testing.T) {
	used := map[uint16]string{udpPort: "udp", udpPort + 1: "udp"}
	for _, ph := range benchPhases {
		used[ph.Port] = ph.Name
	}
	for _, ph := range policyPhases {
		for _, p := range ph.Paths {
			if other, ok := used[p.Port]; ok {
				t.Errorf("path %q: port %d also used by %q", p.Name, p.Port, other)
			}
			used[p.Port] = p.Name
		}
	}
}
