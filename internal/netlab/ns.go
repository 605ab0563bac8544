package netlab

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// NS is one named network namespace of a Lab (see /run/netns/<Name>).
type NS struct {
	Name string

	mu     sync.Mutex
	procs  []*Proc // started with Start, killed by Lab.Close
	closed bool
}

// Command returns a command that runs `ip netns exec n.Name name args...`.
// It is killed if ctx is done before it exits.
func (n *NS) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	argv := append([]string{"netns", "exec", n.Name, name}, args...)
	return exec.CommandContext(ctx, "ip", argv...)
}

// Run runs name with args inside the namespace and returns its combined
// output. A failure's error names the namespace, the command line and the
// output.
func (n *NS) Run(ctx context.Context, name string, args ...string) (string, error) {
	out, err := n.Command(ctx, name, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("netns %s: %s: %w: %s",
			n.Name, strings.Join(append([]string{name}, args...), " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// Do runs fn on an OS thread switched into the namespace and waits for it.
// Sockets created in fn belong to the namespace and may be used from any
// goroutine afterwards. Goroutines that fn starts run in the caller's
// namespace, not in this one. fn must not call t.FailNow and friends.
//
// fn runs on a fresh goroutine locked to its thread. The thread is switched
// back to the original namespace before it is unlocked; if that fails, the
// thread stays locked and the runtime discards it when the goroutine exits.
// A panic in fn is re-raised in the caller.
func (n *NS) Do(fn func() error) error {
	target, err := netns.GetFromName(n.Name)
	if err != nil {
		return fmt.Errorf("netns %s: open: %w", n.Name, err)
	}
	defer target.Close()

	type result struct {
		err   error
		panic any
	}
	done := make(chan result, 1)
	go func() {
		res := result{err: errors.New("netlab: Do: fn exited via runtime.Goexit")}
		defer func() { done <- res }()
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			res.err = fmt.Errorf("netns: get current: %w", err)
			return
		}
		defer orig.Close()
		if err := netns.Set(target); err != nil {
			runtime.UnlockOSThread()
			res.err = fmt.Errorf("netns %s: setns: %w", n.Name, err)
			return
		}
		defer func() {
			if err := netns.Set(orig); err == nil {
				runtime.UnlockOSThread()
			} // else: stay locked, the thread dies with this goroutine
		}()
		defer func() {
			if p := recover(); p != nil {
				res.panic = p
			}
		}()
		res.err = fn()
	}()
	res := <-done
	if res.panic != nil {
		panic(res.panic)
	}
	return res.err
}

// Sysctl sets key to value inside the namespace (`sysctl -w key=value`).
func (n *NS) Sysctl(ctx context.Context, key, value string) error {
	_, err := n.Run(ctx, "sysctl", "-q", "-w", key+"="+value)
	return err
}

// IptablesSave returns `iptables-save -t mangle` (family 4) or
// `ip6tables-save -t mangle` (family 6) run inside the namespace.
// Compare results with NormalizeSave.
func (n *NS) IptablesSave(ctx context.Context, family int) (string, error) {
	var bin string
	switch family {
	case 4:
		bin = "iptables-save"
	case 6:
		bin = "ip6tables-save"
	default:
		return "", fmt.Errorf("netlab: IptablesSave: family %d, want 4 or 6", family)
	}
	return n.Run(ctx, bin, "-t", "mangle")
}

var counterRE = regexp.MustCompile(`\[\d+:\d+\]`)

// NormalizeSave strips comment lines (those starting with '#') and zeroes
// packet/byte counters ("[12:345]" becomes "[0:0]") in iptables-save output,
// so that two dumps can be compared for equality.
func NormalizeSave(s string) string {
	var b strings.Builder
	for _, line := range strings.Split(s, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		b.WriteString(counterRE.ReplaceAllString(line, "[0:0]"))
		b.WriteByte('\n')
	}
	return strings.TrimRight(b.String(), "\n") + "\n"
}

// IPRules returns the policy routing state of the namespace for before/after
// comparisons: `ip -4 rule`, `ip -6 rule`, `ip -4 route show table all` and
// `ip -6 route show table all`, each under a "== command ==" header.
func (n *NS) IPRules(ctx context.Context) (string, error) {
	var b strings.Builder
	for _, args := range [][]string{
		{"-4", "rule"},
		{"-6", "rule"},
		{"-4", "route", "show", "table", "all"},
		{"-6", "route", "show", "table", "all"},
	} {
		out, err := ipOut(ctx, append([]string{"-n", n.Name}, args...)...)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "== ip %s ==\n%s", strings.Join(args, " "), out)
	}
	return b.String(), nil
}

// track registers p so that killAll stops it; it fails once the NS is closed.
func (n *NS) track(p *Proc) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return false
	}
	n.procs = append(n.procs, p)
	return true
}

// killAll marks the NS closed and SIGKILLs every process started in it.
func (n *NS) killAll() {
	n.mu.Lock()
	procs := n.procs
	n.procs, n.closed = nil, true
	n.mu.Unlock()
	for _, p := range procs {
		p.Kill()
	}
}

// ipOut runs `ip args...` in the caller's namespace (use -n to target a lab
// namespace) and returns its output; errors include the command line.
func ipOut(ctx context.Context, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// NetlinkHandle opens a netlink handle in n (every netlink family,
// NETLINK_NETFILTER included), closed when the test ends.
func (n *NS) NetlinkHandle(t testing.TB) *netlink.Handle {
	t.Helper()
	nsh, err := netns.GetFromName(n.Name)
	if err != nil {
		t.Fatalf("netns %s: open: %v", n.Name, err)
	}
	defer nsh.Close()
	h, err := netlink.NewHandleAt(nsh)
	if err != nil {
		t.Fatalf("netns %s: netlink handle: %v", n.Name, err)
	}
	t.Cleanup(h.Close)
	return h
}
