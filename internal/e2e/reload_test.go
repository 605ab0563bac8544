package e2e

import (
	"bufio"
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
