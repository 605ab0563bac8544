package gateway

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// fakeRelay records its lifecycle; Serve blocks until Shutdown.
type fakeRelay struct {
	listenErr error
	serveErr  error
	events    []string
	serving   chan struct{} // closed when Serve is called
	stop      chan struct{}
}

func newFakeRelay() *fakeRelay {
	return &fakeRelay{serving: make(chan struct{}), stop: make(chan struct{})}
}

func (r *fakeRelay) Listen(context.Context) error {
	r.events = append(r.events, "listen")
	return r.listenErr
}

func (r *fakeRelay) Serve() error {
	if r.serveErr != nil {
		return r.serveErr
	}
	close(r.serving)
	<-r.stop
	return nil
}

func (r *fakeRelay) Shutdown(time.Duration) {
	r.events = append(r.events, "shutdown")
	close(r.stop)
}

type fakeSystem struct {
	v4, v6 *fakeTables
	nl     *fakeNetlink
}

func newTestGateway(t *testing.T, relay Relay, sysctls map[string]string) (*Gateway, *fakeSystem) {
	sys := &fakeSystem{v4: newFakeTables(), v6: newFakeTables(), nl: newFakeNetlink()}
	c := DefaultConfig()
	c.StateDir = t.TempDir()
	g := &Gateway{
		Config: c, Log: discard(), NL: sys.nl, Relays: []Relay{relay},
		Tables: map[Family]Tables{IPv4: sys.v4, IPv6: sys.v6},
		ReadSysctl: func(k string) (string, error) {
			if v, ok := sysctls[k]; ok {
				return v, nil
			}
			return "", errors.New("no such sysctl")
		},
	}
	return g, sys
}

func (s *fakeSystem) dump(t *testing.T) string {
	return mustSave(t, s.v4) + mustSave(t, s.v6) + s.nl.String()
}

func TestRunInstallsAndRemoves(t *testing.T) {
	relay := newFakeRelay()
	g, sys := newTestGateway(t, relay, map[string]string{"net.ipv4.ip_forward": "1"})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	select {
	case <-relay.serving: // Serve runs after the rules are in
	case err := <-done:
		t.Fatalf("Run returned early: %v", err)
	}
	during := sys.dump(t)
	for _, want := range []string{"-A PREROUTING -i br-lan -j GWD_PRE", "TPROXY --on-ip ::1", "rule af=2 prio=9000"} {
		if !strings.Contains(during, want) {
			t.Errorf("while running, state lacks %q:\n%s", want, during)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got := strings.Join(relay.events, ","); got != "listen,shutdown" {
		t.Errorf("relay events = %s", got)
	}
	if after := sys.dump(t); strings.Contains(after, chainPrefix) || sys.nl.String() != "" {
		t.Errorf("left after Run:\n%s", after)
	}
}

func TestRunListenFailureInstallsNothing(t *testing.T) {
	relay := newFakeRelay()
	relay.listenErr = errors.New("address in use")
	g, sys := newTestGateway(t, relay, nil)
	err := g.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "opening listeners: address in use") {
		t.Fatalf("Run = %v", err)
	}
	if errors.Is(err, ErrInterceptionLeft) {
		t.Errorf("Run = %v: says interception may be left although it removed everything", err)
	}
	if sys.v4.restores+sys.v6.restores != 0 || sys.nl.String() != "" {
		t.Errorf("rules installed although the listener failed:\n%s", sys.dump(t))
	}
}

func TestRunServeFailureRemovesRules(t *testing.T) {
	relay := newFakeRelay()
	relay.serveErr = errors.New("accept: boom")
	g, sys := newTestGateway(t, relay, nil)
	err := g.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "serving: accept: boom") {
		t.Fatalf("Run = %v", err)
	}
	if errors.Is(err, ErrInterceptionLeft) {
		t.Errorf("Run = %v: says interception may be left although it removed everything", err)
	}
	if d := sys.dump(t); strings.Contains(d, chainPrefix) || sys.nl.String() != "" {
		t.Errorf("rules left after a relay failure:\n%s", d)
	}
}

func TestRunInstallFailureRollsBack(t *testing.T) {
	relay := newFakeRelay()
	g, sys := newTestGateway(t, relay, nil)
	g.Config.Mangle.ExtraV6 = []string{"-A NOSUCH -j ACCEPT"} // rejected by (fake) ip6tables-restore
	err := g.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "installing IPv6 mangle table") {
		t.Fatalf("Run = %v", err)
	}
	if errors.Is(err, ErrInterceptionLeft) {
		t.Errorf("Run = %v: says interception may be left although it removed everything", err)
	}
	if d := sys.dump(t); strings.Contains(d, chainPrefix) || sys.nl.String() != "" {
		t.Errorf("partial install left behind:\n%s", d)
	}
	if got := strings.Join(relay.events, ","); got != "listen,shutdown" {
		t.Errorf("relay events = %s", got)
	}
}

func TestRunRefusesBridgeNetfilter(t *testing.T) {
	g, sys := newTestGateway(t, newFakeRelay(), map[string]string{"net.bridge.bridge-nf-call-iptables": "1"})
	err := g.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "net.bridge.bridge-nf-call-iptables=1 (br_netfilter) breaks TPROXY") {
		t.Fatalf("Run = %v", err)
	}
	if errors.Is(err, ErrInterceptionLeft) {
		t.Errorf("Run = %v: says interception may be left although it removed everything", err)
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
func TestRunReportsInterceptionLeft(t *testing.T) {
	relay := newFakeRelay()
	relay.serveErr = errors.New("accept: boom")
	g, sys := newTestGateway(t, relay, nil)
	g.Tables[IPv4] = &restoreFailsAfter{fakeTables: sys.v4, n: 1} // installs, then cannot put the table back
	err := g.Run(context.Background())
	if !errors.Is(err, ErrInterceptionLeft) || !strings.Contains(err.Error(), "serving: accept: boom") {
		t.Fatalf("Run = %v, want the serve error and ErrInterceptionLeft", err)
	}
}

// saveFails is a fakeTables whose table dumps (iptables-save) fail.
type saveFails struct{ *fakeTables }

func (t saveFails) Save(string) (string, error) {
	return "", errors.New("iptables-save: resource temporarily unavailable")
}

func TestRunReportsLeftoversLeft(t *testing.T) {
	g, sys := newTestGateway(t, newFakeRelay(), nil)
	g.Tables[IPv4] = saveFails{sys.v4}
	err := g.Run(context.Background())
	if !errors.Is(err, ErrInterceptionLeft) || !strings.Contains(err.Error(), "removing leftovers of an earlier run") {
		t.Fatalf("Run = %v, want a leftovers error with ErrInterceptionLeft", err)
	}
}

func TestRunReportsPartialInstallLeft(t *testing.T) {
	g, sys := newTestGateway(t, newFakeRelay(), nil)
	g.Config.Mangle.ExtraV6 = []string{"-A NOSUCH -j ACCEPT"}     // IPv6 install fails after IPv4's
	g.Tables[IPv4] = &restoreFailsAfter{fakeTables: sys.v4, n: 1} // and IPv4's table cannot be put back
	err := g.Run(context.Background())
	if !errors.Is(err, ErrInterceptionLeft) || !strings.Contains(err.Error(), "installing IPv6 mangle table") {
		t.Fatalf("Run = %v, want the install error with ErrInterceptionLeft", err)
	}
}
