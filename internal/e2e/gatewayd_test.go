package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/config"
	"github.com/gatewayd/gatewayd/internal/netlab"
)

// syncBuffer is a log sink written by the gatewayd process and read by the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// opts are the config choices the tests vary.
type opts struct {
	mode   string   // mangle.mode; "" = appliance
	bypass []string // added to the default bypass list
	udp    string   // [udp] section body, e.g. "idle_timeout = \"1s\"\n"
	dns    string   // [dns] section body; "" disables the DNS hijack
	level  string   // log.level; "" = debug
	// checkInterval is self_heal.check_interval; "" leaves the default.
	checkInterval string
}

// configText renders a gatewayd config for the lab: the shipped defaults
// plus a private state dir, debug logs and a short shutdown grace.
func configText(stateDir string, o opts) string {
	mode := o.mode
	if mode == "" {
		mode = "appliance"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "version = 1\nstate_dir = %q\n", stateDir)
	fmt.Fprintf(&b, "[mangle]\nmode = %q\n", mode)
	if len(o.bypass) > 0 {
		b.WriteString("[bypass]\ndestinations = [\n")
		for _, p := range append(slices.Clone(config.DefaultBypass), o.bypass...) {
			fmt.Fprintf(&b, "  %q,\n", p)
		}
		b.WriteString("]\n")
	}
	if o.udp != "" {
		b.WriteString("[udp]\n" + o.udp)
	}
	if o.dns == "" {
		o.dns = "enabled = false\n"
	}
	b.WriteString("[dns]\n" + o.dns)
	if o.checkInterval != "" {
		fmt.Fprintf(&b, "[self_heal]\ncheck_interval = %q\n", o.checkInterval)
	}
	level := o.level
	if level == "" {
		level = "debug"
	}
	fmt.Fprintf(&b, "[log]\nlevel = %q\n[shutdown]\ngrace = \"300ms\"\n", level)
	return b.String()
}

// gw is one gatewayd process in the lab's gateway namespace.
type gw struct {
	t    *testing.T
	lab  *netlab.Lab
	bin  string
	cfg  string
	log  *syncBuffer   // the current run's log
	logs []*syncBuffer // every run's log, for failure output
	proc *netlab.Proc
	// wrap runs gatewayd through another program, e.g. prlimit.
	wrap []string
}

// newGW writes a config for o; start runs it.
func newGW(t *testing.T, lab *netlab.Lab, o opts) *gw {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "gateway.toml")
	if err := os.WriteFile(cfg, []byte(configText(filepath.Join(dir, "state"), o)), 0o600); err != nil {
		t.Fatal(err)
	}
	g := &gw{t: t, lab: lab, bin: netlab.Gatewayd(t), cfg: cfg}
	t.Cleanup(func() {
		if t.Failed() {
			for i, l := range g.logs {
				t.Logf("gatewayd log (run %d):\n%s", i+1, l.String())
			}
		}
	})
	return g
}

// start runs `gatewayd -c cfg` and waits until interception is installed.
func (g *gw) start() {
	g.t.Helper()
	g.log = &syncBuffer{}
	g.logs = append(g.logs, g.log)
	argv := append(slices.Clone(g.wrap), g.bin, "-c", g.cfg)
	p, err := g.lab.Gateway.Start(context.Background(), g.log, argv[0], argv[1:]...)
	if err != nil {
		g.t.Fatal(err)
	}
	g.proc = p
	g.waitLog("interception installed", 10*time.Second)
}

// waitLog waits for substr in gatewayd's log.
func (g *gw) waitLog(substr string, timeout time.Duration) {
	g.t.Helper()
	deadline := time.Now().Add(timeout)
	for !strings.Contains(g.log.String(), substr) {
		select {
		case <-g.proc.Done():
			g.t.Fatalf("gatewayd exited (%v) before logging %q", g.proc.Wait(0), substr)
		default:
		}
		if time.Now().After(deadline) {
			g.t.Fatalf("gatewayd did not log %q within %v", substr, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop sends SIGTERM and requires a clean exit.
func (g *gw) stop() {
	g.t.Helper()
	if err := g.proc.Signal(syscall.SIGTERM); err != nil {
		g.t.Fatalf("SIGTERM: %v", err)
	}
	if err := g.proc.Wait(10 * time.Second); err != nil {
		g.t.Fatalf("gatewayd after SIGTERM: %v", err)
	}
}

// kill sends SIGKILL: nothing of gatewayd's exit path runs.
func (g *gw) kill() {
	g.t.Helper()
	if err := g.proc.Signal(syscall.SIGKILL); err != nil {
		g.t.Fatalf("SIGKILL: %v", err)
	}
	_ = g.proc.Wait(10 * time.Second)
}

// cmd runs a gatewayd subcommand in the gateway namespace.
func (g *gw) cmd(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return g.lab.Gateway.Run(ctx, g.bin, append(args, "-c", g.cfg)...)
}

// sameState fails the test (and goes on) unless the kernel state is
// before; when names the moment, as in "after SIGTERM".
func sameState(t *testing.T, lab *netlab.Lab, before, when string) {
	t.Helper()
	if after := kernelState(t, lab); after != before {
		t.Errorf("state %s differs:\n--- after ---\n%s\n--- before ---\n%s", when, after, before)
	}
}

// kernelState is the gateway namespace's mangle tables and policy routing,
// normalised (comments and counters dropped) for before/after comparison.
func kernelState(t *testing.T, lab *netlab.Lab) string {
	t.Helper()
	ctx := context.Background()
	var b strings.Builder
	for _, fam := range []int{4, 6} {
		s, err := lab.Gateway.IptablesSave(ctx, fam)
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString(netlab.NormalizeSave(s))
	}
	r, err := lab.Gateway.IPRules(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b.WriteString(r)
	return b.String()
}
