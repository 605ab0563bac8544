package listen

import (
	"net/netip"
	"testing"
)

func TestLoopGuard(t *testing.T) {
	routerLAN := netip.MustParseAddr("198.18.0.1")
	isLocal := func(a netip.Addr) bool { return a == routerLAN }
	g := NewGuard([]netip.AddrPort{
		netip.MustParseAddrPort("127.0.0.1:15001"),
		netip.MustParseAddrPort("[::]:15002"),
	}, isLocal)

	for dst, want := range map[string]bool{
		"127.0.0.1:15001":           true,  // a listener address
		"[::ffff:127.0.0.1]:15001":  true,  // the same, as a dual-stack socket reports it
		"127.0.0.2:15001":           true,  // loopback on a listener port
		"[::1]:15002":               true,  // loopback on the other listener port
		"0.0.0.0:15002":             true,  // unspecified
		"198.18.0.1:15001":          true,  // router-local on a listener port
		"[::ffff:198.18.0.1]:15002": true,  // mapped router-local
		"198.18.0.1:443":            false, // router-local, other port: a LAN service
		"198.18.0.9:15001":          false, // a remote host that happens to use the port
		"[2001:2::9]:15002":         false,
		"127.0.0.1:80":              false, // loopback, other port
		"[fe80::1%eth0]:15001":      false,
		"[::]:15002":                true,
	} {
		if got := g.Refuses(netip.MustParseAddrPort(dst)); got != want {
			t.Errorf("refuses(%s) = %v, want %v", dst, got, want)
		}
	}
}

func TestLoopGuardWithoutIsLocal(t *testing.T) {
	g := NewGuard([]netip.AddrPort{netip.MustParseAddrPort("[::1]:15001")}, nil)
	if !g.Refuses(netip.MustParseAddrPort("[::1]:15001")) {
		t.Error("listener address not refused")
	}
	if g.Refuses(netip.MustParseAddrPort("198.18.0.1:15001")) {
		t.Error("non-loopback address refused without IsLocal")
	}
}

func TestNetwork(t *testing.T) {
	for a, want := range map[string]string{
		"127.0.0.1": "udp4", "::ffff:127.0.0.1": "udp4", "0.0.0.0": "udp4", "::": "udp", "::1": "udp6",
	} {
		if got := Network("udp", netip.MustParseAddr(a)); got != want {
			t.Errorf("Network(udp, %s) = %s, want %s", a, got, want)
		}
	}
}
