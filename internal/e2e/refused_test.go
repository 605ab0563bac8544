package e2e

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/config"
	"github.com/gatewayd/gatewayd/internal/netlab"
)

// TestRefusedStartIsNoCrash: a gatewayd that cannot open its TPROXY
// listener (another socket holds the port) exits with the reason and a
// failure status, leaves mangle and routing as they were, and its watchdog
// exits quietly: nothing was installed, so there is no crash to report and
// nothing to clean up.
func TestRefusedStartIsNoCrash(t *testing.T) {
	lab := netlab.NewT(t)
	before := kernelState(t, lab)
	var squatter net.Listener
	taken := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), config.DefaultPort) // a default tproxy address and port
	if err := lab.Gateway.Do(func() (err error) {
		squatter, err = net.Listen("tcp", taken.String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer squatter.Close()

	g := newGW(t, lab, opts{})
	g.log = &syncBuffer{}
	g.logs = append(g.logs, g.log)
	p, err := lab.Gateway.Start(context.Background(), g.log, g.bin, "-c", g.cfg)
	if err != nil {
		t.Fatal(err)
	}
	g.proc = p
	select {
	case <-p.Done():
	case <-time.After(ioGuard):
		p.Kill()
		t.Fatalf("gatewayd still running %v after start although %s was taken", ioGuard, taken)
	}
	var exit *exec.ExitError
	if err := p.Wait(ioGuard); !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("gatewayd exit: %v, want exit status 1", err)
	}
	waitNoWatchdog(t, g.cfg)
	log := g.log.String()
	// The watchdog was told and says so (debug level) before gatewayd exits.
	mustContain(t, "gatewayd log", log, "opening listeners", "address already in use", "watchdog: gatewayd exited cleanly")
	for _, alarm := range []string{"exited unexpectedly", "removing interception"} {
		if strings.Contains(log, alarm) {
			t.Errorf("a refused start was reported as a crash (%q):\n%s", alarm, log)
		}
	}
	sameState(t, lab, before, "after the refused start")
}

// waitNoWatchdog waits up to ioGuard until no `gatewayd watchdog -c cfg`
// process is left.
func waitNoWatchdog(t *testing.T, cfg string) {
	t.Helper()
	deadline := time.Now().Add(ioGuard)
	for {
		pid := watchdogFor(cfg)
		if pid == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("watchdog (pid %d) for %s still running after %v", pid, cfg, ioGuard)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// watchdogFor returns the pid of a live watchdog started for cfg, or 0.
func watchdogFor(cfg string) int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	for _, e := range ents {
		argv, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil || !strings.Contains(string(argv), "\x00watchdog\x00-c\x00"+cfg+"\x00") {
			continue
		}
		if pid, err := strconv.Atoi(e.Name()); err == nil && !exited(pid) {
			return pid
		}
	}
	return 0
}
