package gateway

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

// testSpec is the spec of the default config (config's tests check that
// it maps to this, through the golden files).
func testSpec() *Spec {
	s := &Spec{
		StateDir: "/run/gatewayd",
		LAN:      LANSpec{Interfaces: []string{"br-lan"}},
		TProxy: TProxySpec{
			Port:       15001,
			Addresses:  []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1")},
			Mark:       DefaultTProxyMark,
			Mask:       DefaultTProxyMark,
			BypassMark: DefaultBypassMark,
		},
		Routing:       RoutingSpec{Table: DefaultTable, Priority: DefaultPriority},
		Mangle:        MangleSpec{Mode: ModeAppliance},
		DNS:           DNSSpec{Enabled: true, Port: 15053, HijackRouter: true},
		CheckInterval: 30 * time.Second,
	}
	for _, p := range DefaultBypass {
		s.Bypass = append(s.Bypass, netip.MustParsePrefix(p))
	}
	return s
}

type fakeSystem struct {
	v4, v6 *fakeTables
	nl     *fakeNetlink
}

func newTestGateway(t *testing.T, sysctls map[string]string) (*Gateway, *fakeSystem) {
	sys := &fakeSystem{v4: newFakeTables(), v6: newFakeTables(), nl: newFakeNetlink()}
	spec := testSpec()
	spec.StateDir = t.TempDir()
	g := New(spec, Options{
		Log: discard(), NL: sys.nl,
		Tables: map[Family]Tables{IPv4: sys.v4, IPv6: sys.v6},
		ReadSysctl: func(k string) (string, error) {
			if v, ok := sysctls[k]; ok {
				return v, nil
			}
			return "", errors.New("no such sysctl")
		},
	})
	return g, sys
}

func (s *fakeSystem) dump(t *testing.T) string {
	return mustSave(t, s.v4) + mustSave(t, s.v6) + s.nl.String()
}

func TestInstallAndRemove(t *testing.T) {
	g, sys := newTestGateway(t, map[string]string{"net.ipv4.ip_forward": "1"})
	if err := g.Install(context.Background()); err != nil {
		t.Fatalf("Install: %v", err)
	}
	during := sys.dump(t)
	for _, want := range []string{"-A PREROUTING -i br-lan -j GWD_PRE", "TPROXY --on-ip ::1", "rule af=2 prio=9000"} {
		if !strings.Contains(during, want) {
			t.Errorf("while installed, state lacks %q:\n%s", want, during)
		}
	}
	if err := g.Install(context.Background()); err == nil {
		t.Error("a second Install was accepted")
	}
	if err := g.Remove(); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if after := sys.dump(t); strings.Contains(after, ChainPrefix) || sys.nl.String() != "" {
		t.Errorf("left after Remove:\n%s", after)
	}
	if err := g.Remove(); err != nil {
		t.Errorf("a second Remove: %v", err)
	}
}

func TestInstallFailureRollsBack(t *testing.T) {
	g, sys := newTestGateway(t, nil)
	g.spec.Mangle.ExtraV6 = []string{"-A NOSUCH -j ACCEPT"} // rejected by (fake) ip6tables-restore
	err := g.Install(context.Background())
	if err == nil || !strings.Contains(err.Error(), "installing IPv6 mangle table") {
		t.Fatalf("Install = %v", err)
	}
	if errors.Is(err, ErrInterceptionLeft) {
		t.Errorf("Install = %v: says interception may be left although it removed everything", err)
	}
	if d := sys.dump(t); strings.Contains(d, ChainPrefix) || sys.nl.String() != "" {
		t.Errorf("partial install left behind:\n%s", d)
	}
}

func TestInstallRefusesBridgeNetfilter(t *testing.T) {
	g, sys := newTestGateway(t, map[string]string{"net.bridge.bridge-nf-call-iptables": "1"})
	err := g.Install(context.Background())
	if err == nil || !strings.Contains(err.Error(), "net.bridge.bridge-nf-call-iptables=1 (br_netfilter) breaks TPROXY") {
		t.Fatalf("Install = %v", err)
	}
	if errors.Is(err, ErrInterceptionLeft) {
		t.Errorf("Install = %v: says interception may be left although it removed everything", err)
	}
	if sys.v4.restores != 0 {
		t.Error("rules installed")
	}
}

// restoreFailsAfter is a fakeTables whose restores fail after the first n.
type restoreFailsAfter struct {
	*fakeTables
	n int
}

func (t *restoreFailsAfter) Restore(payload string, noflush bool) error {
	if t.restores >= t.n {
		return errors.New("iptables-restore: resource temporarily unavailable")
	}
	return t.fakeTables.Restore(payload, noflush)
}

// Only a failed removal tells the caller (the failsafe watchdog's owner)
// that interception may still be installed.
func TestRemoveReportsInterceptionLeft(t *testing.T) {
	g, sys := newTestGateway(t, nil)
	g.o.Tables[IPv4] = &restoreFailsAfter{fakeTables: sys.v4, n: 1} // installs, then cannot put the table back
	if err := g.Install(context.Background()); err != nil {
		t.Fatalf("Install: %v", err)
	}
	if err := g.Remove(); !errors.Is(err, ErrInterceptionLeft) {
		t.Fatalf("Remove = %v, want ErrInterceptionLeft", err)
	}
}

// saveFails is a fakeTables whose table dumps (iptables-save) fail.
type saveFails struct{ *fakeTables }

func (t saveFails) Save(string) (string, error) {
	return "", errors.New("iptables-save: resource temporarily unavailable")
}

func TestInstallReportsLeftoversLeft(t *testing.T) {
	g, sys := newTestGateway(t, nil)
	g.o.Tables[IPv4] = saveFails{sys.v4}
	err := g.Install(context.Background())
	if !errors.Is(err, ErrInterceptionLeft) || !strings.Contains(err.Error(), "removing leftovers of an earlier run") {
		t.Fatalf("Install = %v, want a leftovers error with ErrInterceptionLeft", err)
	}
}

func TestInstallReportsPartialInstallLeft(t *testing.T) {
	g, sys := newTestGateway(t, nil)
	g.spec.Mangle.ExtraV6 = []string{"-A NOSUCH -j ACCEPT"}         // IPv6 install fails after IPv4's
	g.o.Tables[IPv4] = &restoreFailsAfter{fakeTables: sys.v4, n: 1} // and IPv4's table cannot be put back
	err := g.Install(context.Background())
	if !errors.Is(err, ErrInterceptionLeft) || !strings.Contains(err.Error(), "installing IPv6 mangle table") {
		t.Fatalf("Install = %v, want the install error with ErrInterceptionLeft", err)
	}
}

// TestInstallLogsWhatIsLeftAlone: the start log names the families that
// are not intercepted and the bypassed ranges in effect.
func TestInstallLogsWhatIsLeftAlone(t *testing.T) {
	g, _ := newTestGateway(t, nil)
	var buf strings.Builder
	g.o.Log = slog.New(slog.NewTextHandler(&buf, nil))
	g.spec.TProxy.Addresses = []netip.Addr{netip.MustParseAddr("127.0.0.1")} // IPv4 only
	g.spec.Intercept = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	g.spec.Bypass = slices.DeleteFunc(g.spec.Bypass, func(p netip.Prefix) bool { return p == g.spec.Intercept[0] })
	if err := g.Install(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Remove() })
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
