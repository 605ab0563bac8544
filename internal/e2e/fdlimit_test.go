package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/internal/netlab"
)

const (
	// fdLimit is gatewayd's open-file limit in the overload test: room for
	// about a hundred flows after the reserve.
	fdLimit = 256
	// holdPort's server keeps every connection until its client closes it.
	holdPort = 7002
	// refusedBurst is how many clients are refused in a row.
	refusedBurst = 20
)

// holdPeer answers "PEER <addr>\n" and then holds the connection open,
// without serve's deadline, until the client closes it.
func holdPeer(c *net.TCPConn) {
	fmt.Fprintf(c, "PEER %s\n", netip.MustParseAddrPort(c.RemoteAddr().String()).Addr().Unmap())
	_ = c.SetDeadline(time.Time{})
	_, _ = io.Copy(io.Discard, c)
}

// holdFlow opens a flow to dst and reads the PEER line: the flow is relayed
// (nil) or was refused with a reset (isReset(err)).
func holdFlow(lab *netlab.Lab, dst netip.AddrPort) (*net.TCPConn, error) {
	c, err := dial(lab.Client, dst)
	if err != nil {
		return nil, err
	}
	if _, err := bufio.NewReader(c).ReadString('\n'); err != nil {
		c.Close()
		return nil, err
	}
	_ = c.SetDeadline(time.Time{})
	return c, nil
}

// TestFDLimitRefusesPromptlyAndHeals: under a small open-file limit, flows
// beyond gatewayd's descriptor budget get a prompt RST (counted by reason,
// logged once for the burst) instead of hanging; the reserve keeps
// self-healing and the status endpoint working while the budget is spent;
// closing flows lets new ones through again.
func TestFDLimitRefusesPromptlyAndHeals(t *testing.T) {
	lab := netlab.NewT(t)
	serveAll(t, lab)
	dst := netip.AddrPortFrom(lab.Remotes[0].V4, holdPort)
	serve(t, lab.Server, dst, holdPeer)
	g := newGW(t, lab, opts{})
	g.wrap = []string{"prlimit", fmt.Sprintf("--nofile=%d:%d", fdLimit, fdLimit)}
	appendConfig(t, g.cfg, fmt.Sprintf("[status]\nenabled = true\nlisten = \"127.0.0.1:%d\"\n", statusPort))
	g.start()
	g.waitLog("status listening", 10*time.Second)
	before := kernelState(t, lab)

	var held []*net.TCPConn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	var worst time.Duration
	refused := 0
	for refused < refusedBurst {
		if len(held) > fdLimit {
			t.Fatalf("%d flows relayed under a limit of %d descriptors: no budget", len(held), fdLimit)
		}
		start := time.Now()
		c, err := holdFlow(lab, dst)
		switch {
		case err == nil:
			if refused > 0 {
				t.Fatalf("a flow was relayed after %d were refused, with none closed", refused)
			}
			held = append(held, c)
		case isReset(err):
			refused++
			worst = max(worst, time.Since(start))
		default:
			t.Fatalf("flow %d: %v (want relayed or reset)", len(held)+refused+1, err)
		}
	}
	// A client left in the backlog instead of refused would time out at
	// ioGuard and fail above; how fast the RSTs came is only logged.
	t.Logf("%d flows relayed under a limit of %d fds; %d refused, the slowest RST after %v",
		len(held), fdLimit, refused, worst)
	ap := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), statusPort)
	m := scrape(t, lab, ap) // the status endpoint works at the limit
	if got := m.value(t, "gatewayd_tcp_refused_total", "reason", "fd_limit"); got < refusedBurst {
		t.Errorf("gatewayd_tcp_refused_total{reason=fd_limit} = %v, want at least %d", got, refusedBurst)
	}
	g.waitLog(`reason="fd limit" refused=1`, ioGuard)
	if n := strings.Count(g.log.String(), "tcp clients refused at a limit"); n != 1 {
		t.Errorf("the burst was logged %d times, want once", n)
	}

	// Self-healing still works with the budget spent.
	if _, err := lab.Gateway.Run(t.Context(), "iptables", "-w", "-t", "mangle", "-F"); err != nil {
		t.Fatal(err)
	}
	g.waitLog("mangle rules changed by something else", ioGuard)
	deadline := time.Now().Add(ioGuard)
	for kernelState(t, lab) != before {
		if time.Now().After(deadline) {
			t.Fatalf("rules not restored during the overload:\n%s\nwant:\n%s\nlog:\n%s", kernelState(t, lab), before, g.log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Closing flows gives their descriptors back.
	for _, c := range held[:len(held)/2] {
		c.Close()
	}
	held = held[len(held)/2:]
	deadline = time.Now().Add(ioGuard)
	for {
		c, err := holdFlow(lab, dst)
		if err == nil {
			held = append(held, c)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no flow relayed after half the flows closed: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got := peerSeen(t, lab, lab.Remotes[0].V4); got != lab.GatewayWAN.V4 {
		t.Errorf("after recovery the server saw %s, want the gateway's WAN address", got)
	}
	g.stop()
}
