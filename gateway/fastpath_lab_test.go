package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/internal/ipset"
	"github.com/gatewayd/gatewayd/internal/netlab"
)

// How long a client waits for a TCP handshake through the lab gateway: a
// forwarded one completes in milliseconds; an intercepted SYN with no
// listener behind TPROXY is dropped and never completes.
const (
	labDialOK      = 5 * time.Second
	labDialDropped = time.Second
)

// TestFastPathKernel installs interception with the fast path in the
// gateway namespace of a lab, against the real kernel (netlink, ipsets,
// iptables-restore), with no listener behind TPROXY: a destination in the
// set is forwarded by the kernel, any other is intercepted (and so
// dropped). The ipset(8) binary only observes.
func TestFastPathKernel(t *testing.T) {
	if testing.Short() {
		t.Skip("needs root and a network-namespace lab; make test-unit (-short) runs what needs no root")
	}
	for _, mode := range []string{ModeAppliance, ModeShared} {
		t.Run(mode, func(t *testing.T) { testFastPathKernel(t, mode) })
	}
}

func testFastPathKernel(t *testing.T, mode string) {
	l := netlab.NewT(t)
	netlab.RequireTools(t, "ipset")
	ctx := context.Background()
	gw := l.Gateway
	before := labTables(t, gw)

	h := gw.NetlinkHandle(t)
	k, err := ipset.NewNetlink(h)
	if err != nil {
		t.Fatal(err)
	}
	fp := NewFastPath(k, slog.New(slog.NewTextHandler(t.Output(), nil)))
	cfg := testSpec()
	cfg.StateDir = t.TempDir()
	cfg.Mangle.Mode = mode
	direct, learned, other := l.Remotes[0], l.Remotes[1], l.Remotes[2]
	cfg.Direct = []netip.Prefix{netip.PrefixFrom(direct.V4, 32), netip.PrefixFrom(direct.V6, 128)}
	g := New(cfg, Options{Log: slog.New(slog.NewTextHandler(t.Output(), nil)), NL: h, FastPath: fp})
	// iptables runs as a child of the thread switched into the lab
	// namespace, so it acts there and never on the host.
	if err := gw.Do(func() error {
		g.o.Tables = map[Family]Tables{}
		for _, f := range Families {
			tb, err := NewTables(f)
			if err != nil {
				return err
			}
			g.o.Tables[f] = tb
		}
		// Not Install: its keeper would run iptables from goroutines
		// outside the lab namespace, on the host's tables.
		_, err := g.installEnv(ctx)
		return err
	}); err != nil {
		t.Fatalf("Install: %v", err)
	}
	cleaned := false
	t.Cleanup(func() {
		if !cleaned {
			_ = gw.Do(g.Cleanup)
		}
	})

	for bin, set := range map[string]string{"iptables": DirectSet4, "ip6tables": DirectSet6} {
		rules := labRun(t, gw, bin, "-w", "-t", "mangle", "-S", chainPre)
		want := fmt.Sprintf("-A %s -m set --match-set %s dst -j RETURN\n", chainPre, set)
		i := strings.Index(rules, want)
		if next, _, _ := strings.Cut(rules[max(i, 0)+len(want):], "\n"); i < 0 || !strings.Contains(next, "-j TPROXY") {
			t.Errorf("%s -S %s: want %q right before the TPROXY rules:\n%s", bin, chainPre, want, rules)
		}
	}
	list4 := labRun(t, gw, "ipset", "list", DirectSet4)
	for _, want := range []string{"Type: hash:net", "family inet ", "maxelem 65536", "timeout 0", direct.V4.String() + " timeout 0"} {
		if !strings.Contains(list4, want) {
			t.Errorf("ipset list %s lacks %q:\n%s", DirectSet4, want, list4)
		}
	}

	// The set decides: the static destination is forwarded, the others
	// are intercepted until an address is learned.
	if err := dialThrough(l, direct.V4, labDialOK); err != nil {
		t.Errorf("static direct %v: %v", direct.V4, err)
	}
	if err := dialThrough(l, direct.V6, labDialOK); err != nil {
		t.Errorf("static direct %v: %v", direct.V6, err)
	}
	if err := dialThrough(l, learned.V4, labDialDropped); err == nil {
		t.Errorf("%v connected before it was learned: interception is not in place", learned.V4)
	}
	fp.Learn(learned.V4, 30*time.Second)
	m := regexp.MustCompile(regexp.QuoteMeta(learned.V4.String()) + ` timeout (\d+)`).FindStringSubmatch(labRun(t, gw, "ipset", "list", DirectSet4))
	if m == nil {
		t.Errorf("learned %v not in ipset list %s", learned.V4, DirectSet4)
	} else if n, _ := strconv.Atoi(m[1]); n <= 0 || time.Duration(n)*time.Second > minLearnTimeout {
		t.Errorf("learned %v has timeout %ds, want (0, %v]", learned.V4, n, minLearnTimeout)
	}
	if err := dialThrough(l, learned.V4, labDialOK); err != nil {
		t.Errorf("learned %v: %v", learned.V4, err)
	}
	if err := dialThrough(l, other.V4, labDialDropped); err == nil {
		t.Errorf("%v connected although it is in no set", other.V4)
	}
	// DNS gives the learned address for a name that does not go direct:
	// it leaves the set, and new flows to it are intercepted again.
	fp.Forbid(learned.V4, time.Minute)
	if list := labRun(t, gw, "ipset", "list", DirectSet4); strings.Contains(list, learned.V4.String()+" ") {
		t.Errorf("forbidden %v still in the set:\n%s", learned.V4, list)
	}
	if err := dialThrough(l, learned.V4, labDialDropped); err == nil {
		t.Errorf("%v connected after it was forbidden", learned.V4)
	}
	// Added: the two direct prefixes and the bypass list, which the sets
	// hold instead of one rule each (overlapping prefixes may merge).
	if st := fp.Stats(); st.Added <= 2 || st.Learned != 1 || st.Withdrawn != 1 || st.Failed != 0 {
		t.Errorf("Stats = %+v", st)
	}

	// The kernel keeps sets that rules match; Cleanup removes the rules
	// first, then the sets, and leaves the tables as they were.
	if err := fp.Teardown(); !errors.Is(err, ipset.ErrInUse) {
		t.Errorf("Teardown under the rules = %v, want ErrInUse", err)
	}
	cleaned = true
	if err := gw.Do(g.Cleanup); err != nil {
		t.Fatalf("Cleanup: %v", err)
	}
	if sets := labRun(t, gw, "ipset", "list", "-n"); strings.TrimSpace(sets) != "" {
		t.Errorf("sets left after Cleanup: %s", sets)
	}
	if after := labTables(t, gw); after != before {
		t.Errorf("tables after Cleanup differ:\n--- after ---\n%s--- before ---\n%s", after, before)
	}
}

func labRun(t *testing.T, ns *netlab.NS, name string, args ...string) string {
	t.Helper()
	out, err := ns.Run(context.Background(), name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// labTables is the normalized mangle tables of both families.
func labTables(t *testing.T, ns *netlab.NS) string {
	t.Helper()
	var b strings.Builder
	for _, f := range []int{4, 6} {
		s, err := ns.IptablesSave(context.Background(), f)
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString(netlab.NormalizeSave(s))
	}
	return b.String()
}

// dialThrough listens on dst in the server namespace and connects to it
// from the client namespace through the gateway, within timeout.
func dialThrough(l *netlab.Lab, dst netip.Addr, timeout time.Duration) error {
	var ln net.Listener
	if err := l.Server.Do(func() (err error) {
		ln, err = net.Listen("tcp", netip.AddrPortFrom(dst, 0).String())
		return err
	}); err != nil {
		return err
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.Close()
		}
	}()
	return l.Client.Do(func() error {
		c, err := net.DialTimeout("tcp", ln.Addr().String(), timeout)
		if err != nil {
			return err
		}
		return c.Close()
	})
}
