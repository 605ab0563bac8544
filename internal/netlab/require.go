package netlab

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Missing returns the unmet prerequisites for building a lab and testing
// gatewayd in it: root, the ip, iptables, ip6tables, iptables-restore,
// ip6tables-restore, iptables-save, ip6tables-save and sysctl programs in
// PATH, and /proc/sys/net. It is empty when everything is there.
func Missing() []string {
	var m []string
	if os.Geteuid() != 0 {
		m = append(m, "root (euid 0)")
	}
	for _, bin := range []string{
		"ip", "iptables", "ip6tables", "iptables-restore", "ip6tables-restore",
		"iptables-save", "ip6tables-save", "sysctl",
	} {
		if _, err := exec.LookPath(bin); err != nil {
			m = append(m, bin+" in PATH")
		}
	}
	if _, err := os.Stat("/proc/sys/net"); err != nil {
		m = append(m, "/proc/sys/net")
	}
	return m
}

// Require skips the test when a prerequisite of a lab is missing, naming
// what is missing. With CI=true in the environment it fails instead, so a
// misconfigured CI runner cannot silently skip the lab tests.
func Require(tb testing.TB) {
	tb.Helper()
	requireWith(tb, Missing(), os.Getenv("CI") == "true")
}

func requireWith(tb testing.TB, missing []string, ci bool) {
	tb.Helper()
	if len(missing) == 0 {
		return
	}
	msg := "netlab: missing prerequisites: " + strings.Join(missing, ", ")
	if ci {
		tb.Fatalf("%s (CI=true, not skipping)", msg)
		return
	}
	tb.Skipf("%s", msg)
}

// NewT is Require followed by New; the lab is closed by tb.Cleanup and a
// build error is fatal.
func NewT(tb testing.TB) *Lab {
	tb.Helper()
	Require(tb)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l, err := New(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := l.Close(); err != nil {
			tb.Errorf("netlab: close lab: %v", err)
		}
	})
	return l
}

var gatewaydBuild struct {
	once sync.Once
	path string
	err  string
}

// Gatewayd builds github.com/gatewayd/gatewayd/cmd/gatewayd once per test
// binary and returns the path of the binary; a build failure is fatal (for
// this and every later call). The binary lives in a directory
// "gwdlab-gatewayd-<pid>-*" under os.TempDir(); directories of dead
// processes are removed on the next build.
func Gatewayd(tb testing.TB) string {
	tb.Helper()
	b := &gatewaydBuild
	b.once.Do(func() {
		sweepBuildDirs()
		dir, err := os.MkdirTemp("", fmt.Sprintf("gwdlab-gatewayd-%d-", os.Getpid()))
		if err != nil {
			b.err = err.Error()
			return
		}
		path := filepath.Join(dir, "gatewayd")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", "build", "-o", path, "github.com/gatewayd/gatewayd/cmd/gatewayd")
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = "go build ./cmd/gatewayd: " + err.Error() + "\n" + string(out)
			_ = os.RemoveAll(dir)
			return
		}
		b.path = path
	})
	if b.err != "" {
		tb.Fatalf("netlab: %s", b.err)
	}
	return b.path
}

// sweepBuildDirs removes gatewayd build directories of dead processes.
func sweepBuildDirs() {
	ents, _ := os.ReadDir(os.TempDir())
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), "gwdlab-gatewayd-")
		if !ok || !e.IsDir() {
			continue
		}
		if pid, ok := labPid(NamePrefix + rest); ok && pid != os.Getpid() && !pidAlive(pid) {
			_ = os.RemoveAll(filepath.Join(os.TempDir(), e.Name()))
		}
	}
}

// RequireTools is Require for the extra programs a test runs in the lab
// (dig, dnsmasq, iperf3...): skip when one is missing, fail under CI=true.
func RequireTools(tb testing.TB, bins ...string) {
	tb.Helper()
	var m []string
	for _, bin := range bins {
		if _, err := exec.LookPath(bin); err != nil {
			m = append(m, bin+" in PATH")
		}
	}
	requireWith(tb, m, os.Getenv("CI") == "true")
}
