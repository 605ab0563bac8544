package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/internal/netlab"
)

// writeConfig replaces g's config file with the lab config for o plus
// extra TOML.
func (g *gw) writeConfig(o opts, extra string) {
	g.t.Helper()
	text := configText(filepath.Join(filepath.Dir(g.cfg), "state"), o) + extra
	if err := os.WriteFile(g.cfg, []byte(text), 0o600); err != nil {
		g.t.Fatal(err)
	}
}

// TestReloadKeepsFlowsAndAppliesRules: while a TCP connection and a UDP
// session run through gatewayd, SIGHUP with a changed rule set (remote 1
// rejected) applies it to new flows only; both keep working; an invalid
// file on SIGHUP changes nothing.
func TestReloadKeepsFlowsAndAppliesRules(t *testing.T) {
	lab := netlab.NewT(t)
	serveAll(t, lab)
	serveUDPAll(t, lab)
	g := newGW(t, lab, opts{})
	g.start()

	// A long-lived TCP flow and a UDP session, through gatewayd.
	long, err := dial(lab.Client, netip.AddrPortFrom(lab.Remotes[0].V4, echoPort))
	if err != nil {
		t.Fatal(err)
	}
	defer long.Close()
	r := bufio.NewReader(long)
	if line, err := r.ReadString('\n'); err != nil || strings.TrimSpace(line) != "PEER "+lab.GatewayWAN.V4.String() {
		t.Fatalf("long flow: %q, %v (want it through gatewayd)", line, err)
	}
	echo := func(i int) {
		t.Helper()
		_ = long.SetDeadline(time.Now().Add(ioGuard))
		fmt.Fprintf(long, "line %d\n", i)
		if got, err := r.ReadString('\n'); err != nil || got != fmt.Sprintf("line %d\n", i) {
			t.Fatalf("long flow after %d lines: %q, %v", i, got, err)
		}
	}
	udpc := clientUDP(t, lab, false)
	udpDst := netip.AddrPortFrom(lab.Remotes[0].V4, udpEchoPort)
	_, peer0 := exchange(t, udpc, udpDst, []byte("before"))
	echo(0)

	rejected := netip.AddrPortFrom(lab.Remotes[1].V4, echoPort)
	g.writeConfig(opts{}, fmt.Sprintf("[[rule]]\ndst = [\"%s/32\"]\noutbound = \"reject\"\n", rejected.Addr()))
	before := len(g.log.String())
	if out, err := g.cmd("reload"); err != nil {
		t.Fatalf("gatewayd reload: %v\n%s", err, out)
	}
	g.waitLog("config reloaded", 10*time.Second)
	if strings.Contains(g.log.String()[before:], "interception installed") {
		t.Error("the reload re-installed from scratch")
	}

	echo(1)
	if _, peer := exchange(t, udpc, udpDst, []byte("after")); peer != peer0 {
		t.Errorf("UDP session changed across the reload: remote saw %s, then %s", peer0, peer)
	}
	if c, err := dial(lab.Client, rejected); err == nil {
		_ = c.SetReadDeadline(time.Now().Add(ioGuard))
		_, err = c.Read(make([]byte, 1))
		c.Close()
		if !isReset(err) {
			t.Errorf("flow to %s after the reload: %v, want a reset by the new reject rule", rejected, err)
		}
	} else if !isReset(err) {
		t.Errorf("dial %s: %v, want a reset", rejected, err)
	}
	if got := peerSeen(t, lab, lab.Remotes[2].V4); got != lab.GatewayWAN.V4 {
		t.Errorf("other remote after the reload seen from %s, want through gatewayd", got)
	}

	// An invalid file: rejected, nothing changes.
	state := kernelState(t, lab)
	if err := os.WriteFile(g.cfg, []byte("version = 1\n[tcp]\nidle_timeout = 5\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := g.cmd("reload"); err == nil || !strings.Contains(out, "tcp.idle_timeout") {
		t.Errorf("gatewayd reload of an invalid file: %v\n%s", err, out)
	}
	if err := g.proc.Signal(syscall.SIGHUP); err != nil { // a SIGHUP gatewayd gets anyway
		t.Fatal(err)
	}
	g.waitLog("reload rejected", 10*time.Second)
	echo(2)
	if after := kernelState(t, lab); after != state {
		t.Errorf("rules changed by a rejected reload:\n%s\nwant:\n%s", after, state)
	}
	if c, err := dial(lab.Client, rejected); err == nil {
		_ = c.SetReadDeadline(time.Now().Add(ioGuard))
		_, err = c.Read(make([]byte, 1))
		c.Close()
		if !isReset(err) {
			t.Errorf("the running rule set was lost: %s now %v", rejected, err)
		}
	}
	g.stop()
}

// resetBy tells whether a TCP flow from the client to dst is reset (a
// reject rule) rather than answered.
func resetBy(t *testing.T, lab *netlab.Lab, dst netip.AddrPort) bool {
	t.Helper()
	c, err := dial(lab.Client, dst)
	if err != nil {
		return isReset(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(ioGuard))
	_, err = c.Read(make([]byte, 1))
	return isReset(err)
}

// TestReloadOtherFile: `gatewayd reload -c OTHER` makes the running
// gatewayd apply OTHER (not the file it was started with) and prints
// that it did; one it refuses (a restart-only key changed) exits non-zero
// with the daemon's reason and changes nothing.
func TestReloadOtherFile(t *testing.T) {
	lab := netlab.NewT(t)
	serveAll(t, lab)
	g := newGW(t, lab, opts{})
	g.start()
	state := filepath.Join(filepath.Dir(g.cfg), "state")
	rejected := netip.AddrPortFrom(lab.Remotes[1].V4, echoPort)
	other := filepath.Join(t.TempDir(), "other.toml")
	text := configText(state, opts{}) + fmt.Sprintf("[[rule]]\ndst = [\"%s/32\"]\noutbound = \"reject\"\n", rejected.Addr())
	if err := os.WriteFile(other, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := lab.Gateway.Run(ctx, g.bin, "reload", "-c", other)
	if err != nil || !strings.Contains(out, "applied "+other) {
		t.Fatalf("gatewayd reload -c %s: %v\n%s", other, err, out)
	}
	if !resetBy(t, lab, rejected) {
		t.Errorf("flow to %s after reload -c %s not reset: the other file's reject rule is not applied", rejected, other)
	}
	if got := peerSeen(t, lab, lab.Remotes[0].V4); got != lab.GatewayWAN.V4 {
		t.Errorf("other remote after the reload seen from %s, want through gatewayd", got)
	}

	before := kernelState(t, lab)
	restart := filepath.Join(t.TempDir(), "restart.toml")
	if err := os.WriteFile(restart, []byte(configText(state, opts{})+"[routing]\ntable = 2027\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = lab.Gateway.Run(ctx, g.bin, "reload", "-c", restart)
	if err == nil || !strings.Contains(out, "refused") || !strings.Contains(out, "routing.table") {
		t.Errorf("gatewayd reload -c %s (routing.table changed): %v\n%s; want a refusal naming routing.table", restart, err, out)
	}
	sameState(t, lab, before, "after a refused reload")
	if !resetBy(t, lab, rejected) {
		t.Errorf("the applied rule set was lost by a refused reload")
	}
	g.stop()
}
