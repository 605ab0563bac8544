package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/internal/netlab"
)

// healBound is the bound for noticing and repairing a change.
const healBound = 5 * time.Second

// waitIntercepted polls until a TCP flow to the lab's first remote goes
// through gatewayd again (the server sees the gateway's WAN address), and
// returns how long that took.
func waitIntercepted(t *testing.T, lab *netlab.Lab, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		if peerSeen(t, lab, lab.Remotes[0].V4) == lab.GatewayWAN.V4 {
			return time.Since(start)
		}
		if time.Since(start) > within {
			t.Fatalf("interception not back within %v", within)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestSelfHealingAfterMangleFlush: `iptables -t mangle -F` (a firewall
// reload) and deleting the ip rule in the gateway namespace; gatewayd
// notices, logs what changed and re-applies within healBound.
func TestSelfHealingAfterMangleFlush(t *testing.T) {
	lab := netlab.NewT(t)
	serveAll(t, lab)
	for _, mode := range []string{"appliance", "shared"} {
		t.Run(mode, func(t *testing.T) {
			g := newGW(t, lab, opts{mode: mode})
			g.start()
			before := kernelState(t, lab)
			ctx := context.Background()
			if _, err := lab.Gateway.Run(ctx, "iptables", "-w", "-t", "mangle", "-F"); err != nil {
				t.Fatal(err)
			}
			if got := peerSeen(t, lab, lab.Remotes[0].V4); got != lab.ClientAddr.V4 {
				t.Logf("right after the flush the server saw %s (plain forwarding shows the client)", got)
			}
			took := waitIntercepted(t, lab, healBound)
			t.Logf("%s: interception back %v after the flush", mode, took)
			g.waitLog("mangle rules changed by something else", time.Second)
			if after := kernelState(t, lab); after != before {
				t.Errorf("rules after repair:\n%s\nwant:\n%s", after, before)
			}

			if _, err := lab.Gateway.Run(ctx, "ip", "-6", "rule", "del", "priority", "9000"); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(healBound)
			for !strings.Contains(kernelState(t, lab), "9000:\tfrom all fwmark 0x1000000/0x1000000 lookup 2026") ||
				kernelState(t, lab) != before {
				if time.Now().After(deadline) {
					t.Fatalf("ip rule not restored within %v:\n%s", healBound, kernelState(t, lab))
				}
				time.Sleep(100 * time.Millisecond)
			}
			g.waitLog("policy routing changed by something else", time.Second)
			g.stop()
		})
	}
}

// TestLANAddressChangeUpdatesBypass: a new address on the LAN bridge (a
// renumbered LAN) is bypassed without a restart.
func TestLANAddressChangeUpdatesBypass(t *testing.T) {
	lab := netlab.NewT(t)
	g := newGW(t, lab, opts{})
	g.start()
	ctx := context.Background()
	if _, err := lab.Gateway.Run(ctx, "ip", "addr", "add", "198.18.77.1/24", "dev", "br-lan"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(healBound)
	for {
		s, err := lab.Gateway.IptablesSave(ctx, 4)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(s, "-d 198.18.77.0/24 -j RETURN") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("new LAN subnet not bypassed within %v:\n%s", healBound, s)
		}
		time.Sleep(100 * time.Millisecond)
	}
	g.waitLog("LAN subnets changed", time.Second)
	g.stop()
}
