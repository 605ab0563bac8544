package e2e

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/internal/netlab"
)

// upstreamTimeout is the socks5 outbounds' timeout (connect plus
// handshake) in TestPolicyUpstreamDown.
const upstreamTimeout = time.Second

// failedFlows is how many flows of each failure kind the leak check runs.
const failedFlows = 50

// silentProxyPort is where a "proxy" accepts connections and never
// answers the SOCKS5 greeting.
const silentProxyPort = 1090

// fallbackBurst is how many flows fall back within one burst: gatewayd
// logs the first and counts the others.
const fallbackBurst = 10

// TestPolicyUpstreamDown: when a socks5 upstream fails, clients get a
// reset: at once when the proxy is gone (dante stopped, connection
// refused), after the outbound's 1 s timeout when it accepts and never
// answers; gatewayd logs why, and warns once per burst for each failing
// outbound. Which of the two happened is asserted from gatewayd's logged
// cause and its failure counters, and a timed-out flow must not be reset
// before the timeout could fire; how long the resets took is only logged
// (this test once failed at 1.6 s against a 1.5 s margin under load). An outbound with a fallback sends its flows to "direct"
// instead. After 50 failed flows of each kind gatewayd holds no more
// descriptors or goroutines than before, and its counters tell the
// failures apart.
func TestPolicyUpstreamDown(t *testing.T) {
	lab := netlab.NewT(t)
	serveAll(t, lab)
	dante := startDante(t, lab)
	silent := netip.AddrPortFrom(lab.ServerAddr.V4, silentProxyPort)
	serve(t, lab.Server, silent, func(c *net.TCPConn) { _, _ = io.Copy(io.Discard, c) })
	viaDante, viaSilent, withFallback := lab.Remotes[0], lab.Remotes[1], lab.Remotes[2]
	upstreamTimeoutCfg := fmt.Sprintf("timeout = %q\n", upstreamTimeout)
	g := newPolicyGW(t, lab, opts{}, socksOutbound("socks", dante.addr, "", "", upstreamTimeoutCfg)+
		socksOutbound("silent", silent, "", "", upstreamTimeoutCfg)+
		socksOutbound("socksfb", dante.addr, "", "", upstreamTimeoutCfg+"fallback = \"direct\"\n")+
		dstRule(viaDante, "socks")+dstRule(viaSilent, "silent")+dstRule(withFallback, "socksfb"))
	g.start()
	for _, a := range []netip.Addr{viaDante.V4, withFallback.V4} {
		if got := peerSeen(t, lab, a); got != dante.egress.V4 {
			t.Fatalf("%s with dante up: server saw %s, want dante's egress", a, got)
		}
	}

	dante.proc.Kill()
	for range fallbackBurst {
		if got := peerSeen(t, lab, withFallback.V4); got != lab.GatewayWAN.V4 {
			t.Fatalf("%s with dante down: server saw %s, want the gateway (fallback direct)", withFallback.V4, got)
		}
	}
	if n := strings.Count(g.log.String(), `msg="outbound failed, using its fallback"`); n != 1 {
		t.Errorf("gatewayd logged %d fallback lines for a burst of %d, want 1", n, fallbackBurst)
	}

	// The baseline comes after relayed flows: Go keeps the pipes of the
	// splice relay in a pool. Failed flows never reach the relay.
	pid := g.proc.Pid()
	fdsBefore, listBefore := quietFDs(t, pid)
	goroutinesBefore := policyMetrics(t, g).value(t, "go_goroutines")
	refused := netip.AddrPortFrom(viaDante.V4, echoPort)
	var slowest time.Duration
	for range failedFlows {
		slowest = max(slowest, expectReset(t, lab, refused))
	}
	t.Logf("%d flows with the proxy stopped: slowest reset after %v", failedFlows, slowest)
	if err := closedErr(t, g, refused); !strings.Contains(err, "connection refused") {
		t.Errorf("flow to %s: gatewayd logged err=%s, want \"connection refused\"", refused, err)
	}

	timedOut := netip.AddrPortFrom(viaSilent.V4, echoPort)
	var wg sync.WaitGroup
	var mu sync.Mutex
	fastest, slowest := time.Hour, time.Duration(0)
	for range failedFlows {
		wg.Go(func() {
			took := expectReset(t, lab, timedOut)
			mu.Lock()
			fastest, slowest = min(fastest, took), max(slowest, took)
			mu.Unlock()
		})
	}
	wg.Wait()
	t.Logf("%d flows to a proxy that never answers: resets after %v to %v", failedFlows, fastest, slowest)
	if fastest < upstreamTimeout/2 {
		t.Errorf("a flow to the silent proxy was reset after %v, before the %v timeout could have fired", fastest, upstreamTimeout)
	}
	if err := closedErr(t, g, timedOut); !strings.Contains(err, "deadline exceeded") && !strings.Contains(err, "timeout") {
		t.Errorf("flow to %s: gatewayd logged err=%s, want a timeout", timedOut, err)
	}
	for _, name := range []string{"socks", "silent"} {
		re := regexp.MustCompile(`(?m)^.*msg="outbound failing; its flows are refused".* outbound=` + name + ` .*$`)
		if lines := re.FindAllString(g.log.String(), -1); len(lines) != 1 {
			t.Errorf("gatewayd logged %d warnings for the %d failures of outbound %s, want one per burst:\n%s",
				len(lines), failedFlows, name, strings.Join(lines, "\n"))
		}
	}

	deadline := time.Now().Add(logGuard)
	fds := fdCount(t, pid)
	for fds > fdsBefore && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		fds = fdCount(t, pid)
	}
	if fds > fdsBefore {
		t.Errorf("gatewayd holds %d descriptors after %d failed flows, %d before:\nbefore: %s\nafter:  %s",
			fds, 2*failedFlows, fdsBefore, listBefore, fdList(pid))
	}
	m := policyMetrics(t, g)
	goroutines := m.value(t, "go_goroutines")
	t.Logf("gatewayd: %d descriptors and %v goroutines before the failed flows, %d and %v after",
		fdsBefore, goroutinesBefore, fds, goroutines)
	if goroutines > goroutinesBefore+goroutineSlack {
		t.Errorf("gatewayd has %v goroutines after %d failed flows, %v before", goroutines, 2*failedFlows, goroutinesBefore)
	}
	for _, c := range []struct {
		outbound, kind string
	}{{"socks", "refused"}, {"silent", "timeout"}} {
		if n := m.value(t, "gatewayd_outbound_dial_failures_total", "outbound", c.outbound, "kind", c.kind); n != failedFlows {
			t.Errorf("outbound %s: %v dial failures of kind %s counted, want %d", c.outbound, n, c.kind, failedFlows)
		}
	}
	if n := m.value(t, "gatewayd_outbound_fallbacks_total", "outbound", "socksfb"); n != fallbackBurst {
		t.Errorf("outbound socksfb: %v fallbacks counted, want %d", n, fallbackBurst)
	}
	g.stop()
}

// goroutineSlack is how many more goroutines than at the baseline gatewayd
// may have after the failed flows: ones that come and go on their own
// (the rule keeper's iptables-save run, on a kernel change or every
// self_heal.check_interval, with os/exec's output copiers), not one per
// flow.
const goroutineSlack = 3

// fdSamples and fdSampleGap: gatewayd's rule keeper checks the kernel
// with iptables-save on a change and every self_heal.check_interval,
// holding three more descriptors (pipes, pidfd) for some milliseconds;
// the least of several samples is its steady count.
const (
	fdSamples   = 5
	fdSampleGap = 20 * time.Millisecond
)

// quietFDs returns pid's steady descriptor count and their description.
func quietFDs(t *testing.T, pid int) (int, string) {
	t.Helper()
	n, list := fdCount(t, pid), fdList(pid)
	for range fdSamples - 1 {
		time.Sleep(fdSampleGap)
		if m := fdCount(t, pid); m < n {
			n, list = m, fdList(pid)
		}
	}
	return n, list
}

// fdList describes pid's open descriptors ("3:socket:[1234] ..."), for
// failure messages.
func fdList(pid int) string {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err.Error()
	}
	var b strings.Builder
	for _, e := range ents {
		target, _ := os.Readlink(filepath.Join(dir, e.Name()))
		fmt.Fprintf(&b, "%s:%s ", e.Name(), target)
	}
	return b.String()
}
