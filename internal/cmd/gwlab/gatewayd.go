package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gatewayd/gatewayd/internal/netlab"
)

// syncBuffer collects a process's output while it runs.
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

// Len is the number of bytes written so far; String()[Len():] later is
// what came after.
func (s *syncBuffer) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Len()
}

var (
	stateDirRE = regexp.MustCompile(`(?m)^state_dir\s*=.*$`)
	levelRE    = regexp.MustCompile(`(?m)^level\s*=.*$`)
)

// labConfig is the base config with only state_dir and the log level
// changed. Both keys must be present exactly once.
func labConfig(base []byte, stateDir, level string) ([]byte, error) {
	for _, c := range []struct {
		re   *regexp.Regexp
		repl string
	}{
		{stateDirRE, fmt.Sprintf("state_dir = %q", stateDir)},
		{levelRE, fmt.Sprintf("level = %q", level)},
	} {
		if n := len(c.re.FindAll(base, -1)); n != 1 {
			return nil, fmt.Errorf("base config: want one line matching %s, found %d", c.re, n)
		}
		base = c.re.ReplaceAllLiteral(base, []byte(c.repl))
	}
	return base, nil
}

// gatewayd is the gatewayd binary with a lab config, run in the gateway
// namespace.
type gatewayd struct {
	bin, cfg string
	ns       *netlab.NS
	log      *slog.Logger

	out  *syncBuffer // log of the current run
	proc *netlab.Proc
}

// newGatewayd writes the lab config (base with state_dir under dir and the
// given log level) into dir and checks it with `gatewayd check`.
func newGatewayd(ctx context.Context, a *app, ns *netlab.NS, dir, level string) (*gatewayd, error) {
	base, err := os.ReadFile(a.opt.config)
	if err != nil {
		return nil, fmt.Errorf("reading the base config: %w", err)
	}
	text, err := labConfig(base, filepath.Join(dir, "state"), level)
	if err != nil {
		return nil, fmt.Errorf("writing the lab config from %s: %w", a.opt.config, err)
	}
	cfg := filepath.Join(dir, "gateway.toml")
	if err := os.WriteFile(cfg, text, 0o600); err != nil {
		return nil, fmt.Errorf("writing the lab config: %w", err)
	}
	g := &gatewayd{bin: a.opt.gatewayd, cfg: cfg, ns: ns, log: a.log}
	if _, err := g.command(ctx, "check"); err != nil {
		return nil, fmt.Errorf("checking the lab config: %w", err)
	}
	return g, nil
}

// command runs a gatewayd subcommand (check, rules, version) in the
// gateway namespace.
func (g *gatewayd) command(ctx context.Context, sub string) (string, error) {
	args := []string{sub}
	if sub != "version" {
		args = append(args, "-c", g.cfg)
	}
	return g.ns.Run(ctx, g.bin, args...)
}

// start runs `gatewayd -c cfg` and waits until it logs that interception
// is installed.
func (g *gatewayd) start(ctx context.Context) error {
	g.out = &syncBuffer{}
	p, err := g.ns.Start(ctx, g.out, g.bin, "-c", g.cfg)
	if err != nil {
		return fmt.Errorf("starting gatewayd: %w", err)
	}
	g.proc = p
	if err := g.waitLog(ctx, "interception installed", 1, 10*time.Second); err != nil {
		return fmt.Errorf("starting gatewayd: %w", err)
	}
	g.log.Debug("gatewayd running", "pid", p.Pid())
	return nil
}

// waitLog waits until substr occurs at least n times in the current run's
// log.
func (g *gatewayd) waitLog(ctx context.Context, substr string, n int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for strings.Count(g.out.String(), substr) < n {
		select {
		case <-g.proc.Done():
			return fmt.Errorf("gatewayd exited (%v) before logging %q", g.proc.Wait(0), substr)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("gatewayd did not log %q %d time(s) within %v", substr, n, timeout)
		}
	}
	return nil
}

// logTail is the last n lines of the current run's log, for failure
// reports; empty if gatewayd never started.
func (g *gatewayd) logTail(n int) string {
	if g == nil || g.out == nil {
		return ""
	}
	return lastLines(g.out.String(), n)
}

// stop sends SIGTERM and requires a clean exit within 10s.
func (g *gatewayd) stop() error {
	if err := g.proc.Signal(syscall.SIGTERM); err != nil {
		return fmt.Errorf("sending SIGTERM to gatewayd: %w", err)
	}
	if err := g.proc.Wait(10 * time.Second); err != nil {
		return fmt.Errorf("gatewayd after SIGTERM: %w", err)
	}
	return nil
}

// gwdRulesLeft returns the gateway namespace's mangle lines (both
// families) that mention GWD_, and the ip rules that use the config's
// routing table.
func gwdRulesLeft(ctx context.Context, ns *netlab.NS) ([]string, error) {
	var left []string
	for _, fam := range []int{4, 6} {
		s, err := ns.IptablesSave(ctx, fam)
		if err != nil {
			return nil, fmt.Errorf("reading the mangle table: %w", err)
		}
		for _, l := range strings.Split(s, "\n") {
			if strings.Contains(l, "GWD_") {
				left = append(left, fmt.Sprintf("IPv%d: %s", fam, l))
			}
		}
	}
	rules, err := ns.IPRules(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading policy routing: %w", err)
	}
	for _, l := range strings.Split(rules, "\n") {
		if strings.Contains(l, "fwmark") {
			left = append(left, l)
		}
	}
	return left, nil
}

// indent prefixes every line of s with four spaces.
func indent(s string) string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return "    (empty)"
	}
	return "    " + strings.ReplaceAll(s, "\n", "\n    ")
}

// stopClean stops gatewayd, fails if any of its rules are left in the
// gateway namespace, and passes on its warnings and errors (logged as msg).
func (g *gatewayd) stopClean(ctx context.Context, msg string) error {
	if err := g.stopRulesGone(ctx); err != nil {
		return err
	}
	for _, l := range strings.Split(g.out.String(), "\n") {
		if strings.Contains(l, "level=WARN") || strings.Contains(l, "level=ERROR") {
			g.log.Warn(msg, "line", l)
		}
	}
	return nil
}

// stopRulesGone stops gatewayd and fails if any of its rules are left in
// the gateway namespace.
func (g *gatewayd) stopRulesGone(ctx context.Context) error {
	if err := g.stop(); err != nil {
		return err
	}
	left, err := gwdRulesLeft(ctx, g.ns)
	if err != nil {
		return err
	}
	if len(left) > 0 {
		return fmt.Errorf("gatewayd's rules are still installed after SIGTERM:\n%s", indent(strings.Join(left, "\n")))
	}
	return nil
}
