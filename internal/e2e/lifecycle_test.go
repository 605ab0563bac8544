package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/internal/netlab"
)

// foreignRules puts a rule gatewayd did not write into both mangle tables.
func foreignRules(t *testing.T, lab *netlab.Lab) {
	t.Helper()
	ctx := context.Background()
	for _, bin := range []string{"iptables", "ip6tables"} {
		if _, err := lab.Gateway.Run(ctx, bin, "-w", "5", "-t", "mangle", "-A", "FORWARD", "-o", "wan0", "-p", "udp", "-j", "MARK", "--set-xmark", "0x10/0xff"); err != nil {
			t.Fatal(err)
		}
	}
}

func mustContain(t *testing.T, what, s string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			t.Errorf("%s lacks %q:\n%s", what, sub, s)
		}
	}
}

// TestSIGTERMRestoresEverything (appliance mode): the foreign rule is kept
// aside while gatewayd runs and is back afterwards; mangle, ip rules and
// routes are exactly as before.
func TestSIGTERMRestoresEverything(t *testing.T) {
	lab := netlab.NewT(t)
	serveAll(t, lab)
	foreignRules(t, lab)
	before := kernelState(t, lab)
	g := newGW(t, lab, opts{})
	g.start()
	during := kernelState(t, lab)
	mustContain(t, "state while running", during, "-A PREROUTING -i br-lan -j GWD_PRE", "TPROXY", "lookup 2026", "local default dev lo table 2026")
	if strings.Contains(during, "--set-xmark 0x10/0xff") {
		t.Errorf("appliance mode left the foreign rule in place while running:\n%s", during)
	}
	mustContain(t, "gatewayd log", g.log.String(), "not written by gatewayd")
	if got := peerSeen(t, lab, lab.Remotes[0].V4); got != lab.GatewayWAN.V4 {
		t.Errorf("not intercepted while running: server saw %s", got)
	}
	g.stop()
	sameState(t, lab, before, "after SIGTERM")
	if got := peerSeen(t, lab, lab.Remotes[0].V4); got != lab.ClientAddr.V4 {
		t.Errorf("after exit the LAN should be plainly forwarded: server saw %s", got)
	}
}

// TestSharedModeLeavesForeignRules: in shared mode the foreign rule stays
// in place throughout.
func TestSharedModeLeavesForeignRules(t *testing.T) {
	lab := netlab.NewT(t)
	serveAll(t, lab)
	foreignRules(t, lab)
	before := kernelState(t, lab)
	g := newGW(t, lab, opts{mode: "shared"})
	g.start()
	during := kernelState(t, lab)
	mustContain(t, "state while running", during, "--set-xmark 0x10/0xff", "-A PREROUTING -i br-lan -j GWD_PRE")
	if got := peerSeen(t, lab, lab.Remotes[0].V6); got != lab.GatewayWAN.V6 {
		t.Errorf("not intercepted in shared mode: server saw %s", got)
	}
	g.stop()
	sameState(t, lab, before, "after SIGTERM")
}

// TestCrashThenCleanupAndRestart: after SIGKILL, `gatewayd cleanup` puts
// back plain forwarding and the kept-aside rule; a later start works.
func TestCrashThenCleanupAndRestart(t *testing.T) {
	lab := netlab.NewT(t)
	serveAll(t, lab)
	foreignRules(t, lab)
	before := kernelState(t, lab)
	g := newGW(t, lab, opts{})
	g.start()
	g.kill()
	if _, err := g.cmd("cleanup"); err != nil {
		t.Fatalf("cleanup: %v", err)
	}
	sameState(t, lab, before, "after crash + cleanup")
	if got := peerSeen(t, lab, lab.Remotes[0].V4); got != lab.ClientAddr.V4 {
		t.Errorf("after cleanup the flow should be forwarded: server saw %s", got)
	}
	if _, err := g.cmd("cleanup"); err != nil { // nothing left: still fine
		t.Fatalf("second cleanup: %v", err)
	}
	// Crash again, then start straight away: start-up cleans up first.
	g.start()
	g.kill()
	g.start()
	if got := peerSeen(t, lab, lab.Remotes[0].V6); got != lab.GatewayWAN.V6 {
		t.Errorf("restart after crash: server saw %s", got)
	}
	g.stop()
	sameState(t, lab, before, "after restart + SIGTERM")
}

// TestCleanupRefusedWhileRunning: `gatewayd cleanup` while gatewayd runs
// names the daemon's pid and leaves its rules alone; with --force it
// removes them (the daemon's self-healing then puts them back, as they
// were), and the daemon's own exit still restores everything.
func TestCleanupRefusedWhileRunning(t *testing.T) {
	lab := netlab.NewT(t)
	serveAll(t, lab)
	before := kernelState(t, lab)
	g := newGW(t, lab, opts{})
	g.start()
	during := kernelState(t, lab)
	out, err := g.cmd("cleanup")
	if err == nil || !strings.Contains(out, fmt.Sprintf("pid %d", g.proc.Pid())) || !strings.Contains(out, "--force") {
		t.Errorf("cleanup while gatewayd (pid %d) runs: %v\n%s\nwant a refusal naming the pid and --force", g.proc.Pid(), err, out)
	}
	sameState(t, lab, during, "after a refused cleanup")

	// --force is for a lock whose holder does not act (a stale lock):
	// gatewayd is frozen meanwhile. (A running gatewayd's keeper would put
	// each removed rule back within milliseconds, in the middle of the
	// cleanup's steps.)
	if err := g.proc.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	out, err = g.cmd("cleanup", "--force")
	removed := kernelState(t, lab)
	if err := g.proc.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	if err != nil || !strings.Contains(out, "cleanup done") {
		t.Fatalf("cleanup --force: %v\n%s", err, out)
	}
	if removed != before {
		t.Errorf("after cleanup --force:\n%s\nwant as before gatewayd started:\n%s", removed, before)
	}
	g.waitLog("self-healing: interception re-applied", 20*time.Second)
	sameState(t, lab, during, "after cleanup --force and the daemon's repair")
	// The running gatewayd's record of what it installed (its watchdog's
	// target) is left to it.
	if _, err := os.Stat(filepath.Join(filepath.Dir(g.cfg), "state", "installed.toml")); err != nil {
		t.Errorf("cleanup --force took the running gatewayd's installed.toml: %v", err)
	}
	g.stop()
	sameState(t, lab, before, "after cleanup --force and SIGTERM")
}
