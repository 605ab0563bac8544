package listen

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/gatewayd/gatewayd/internal/testutil"
)

// loopbacks are the test's listener addresses, IPv6 only where ::1 works.
func loopbacks(t *testing.T) []netip.AddrPort {
	addrs := []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:0")}
	if testutil.HaveIPv6(t) {
		addrs = append(addrs, netip.MustParseAddrPort("[::1]:0"))
	}
	return addrs
}

func TestOnOpensTheFamilyAsked(t *testing.T) {
	for _, ap := range append(loopbacks(t), netip.MustParseAddrPort("[::ffff:127.0.0.2]:0")) {
		var lc net.ListenConfig
		tl, err := On[*net.TCPListener](context.Background(), &lc, ap)
		if err != nil {
			t.Fatalf("On[TCP](%s): %v", ap, err)
		}
		defer tl.Close()
		ul, err := On[*net.UDPConn](context.Background(), &lc, ap)
		if err != nil {
			t.Fatalf("On[UDP](%s): %v", ap, err)
		}
		defer ul.Close()
		want := ap.Addr().Unmap()
		for what, got := range map[string]netip.AddrPort{"TCP": Bound(tl), "UDP": Bound(ul)} {
			if got.Addr() != want || got.Port() == 0 {
				t.Errorf("%s listener asked on %s is bound to %s, want %s and a real port", what, ap, got, want)
			}
		}
	}
}

func TestOnUsesTheListenConfig(t *testing.T) {
	refused := errors.New("refused by Control")
	networks := map[string]bool{}
	lc := net.ListenConfig{Control: func(network, _ string, _ syscall.RawConn) error {
		networks[network] = true
		return refused
	}}
	ap := netip.MustParseAddrPort("127.0.0.1:0")
	if _, err := On[*net.TCPListener](context.Background(), &lc, ap); !errors.Is(err, refused) {
		t.Errorf("On[TCP] = %v, want the Control error", err)
	}
	if _, err := On[*net.UDPConn](context.Background(), &lc, ap); !errors.Is(err, refused) {
		t.Errorf("On[UDP] = %v, want the Control error", err)
	}
	// Go may try a TCP listener twice (MPTCP first, then plain TCP).
	if len(networks) != 2 || !networks["tcp4"] || !networks["udp4"] {
		t.Errorf("Control saw networks %v, want tcp4 and udp4", networks)
	}
}

func TestOpenHandsListenersToAdopt(t *testing.T) {
	var logs testutil.LogBuffer
	var adopted []*net.UDPConn
	addrs := loopbacks(t)
	err := Open(context.Background(), &net.ListenConfig{}, addrs, func(lns ...*net.UDPConn) error {
		adopted = append(adopted, lns...)
		return nil
	}, logs.Logger())
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer CloseAll(adopted)
	if len(adopted) != len(addrs) {
		t.Fatalf("adopted %d listeners, want %d", len(adopted), len(addrs))
	}
	for i, a := range BoundAll(adopted) {
		if a.Addr() != addrs[i].Addr() {
			t.Errorf("listener %d on %s, want %s", i, a, addrs[i].Addr())
		}
		if line := `msg="udp listening" addr=` + a.String(); !strings.Contains(logs.String(), line) {
			t.Errorf("log lacks %q:\n%s", line, logs.String())
		}
	}
}

func TestOpenWithoutAddresses(t *testing.T) {
	err := Open(context.Background(), &net.ListenConfig{}, nil, func(...*net.TCPListener) error {
		t.Error("adopt called without listeners")
		return nil
	}, testutil.Logger(t))
	if err == nil || err.Error() != "listening: no TCP listen addresses configured" {
		t.Errorf("Open = %v, want the no addresses error", err)
	}
}

func TestOpenClosesWhatAdoptRefuses(t *testing.T) {
	refused := errors.New("server is shut down")
	var offered []*net.TCPListener
	err := Open(context.Background(), &net.ListenConfig{}, loopbacks(t), func(lns ...*net.TCPListener) error {
		offered = lns
		return refused
	}, testutil.Logger(t))
	if !errors.Is(err, refused) {
		t.Errorf("Open = %v, want adopt's error", err)
	}
	if len(offered) == 0 {
		t.Fatal("adopt got no listeners")
	}
	for _, ln := range offered {
		if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
			t.Errorf("listener on %s not closed: Accept = %v", Bound(ln), err)
		}
	}
}

func TestOpenClosesAllWhenOneFails(t *testing.T) {
	taken, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	busy := Bound(taken)
	before := fdCount(t)
	err = Open(context.Background(), &net.ListenConfig{}, []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:0"), busy},
		func(...*net.UDPConn) error {
			t.Error("adopt called although a listener failed")
			return nil
		}, testutil.Logger(t))
	if !errors.Is(err, syscall.EADDRINUSE) || !strings.Contains(err.Error(), "listening on "+busy.String()) {
		t.Errorf("Open = %v, want address in use, naming %s", err, busy)
	}
	if after := fdCount(t); after != before {
		t.Errorf("%d descriptors open after the failed Open, %d before", after, before)
	}
}

func TestBoundAllKeepsOrder(t *testing.T) {
	var lns []*net.TCPListener
	for _, a := range []string{"127.0.0.3:0", "127.0.0.2:0", "127.0.0.1:0"} {
		ln, err := On[*net.TCPListener](context.Background(), &net.ListenConfig{}, netip.MustParseAddrPort(a))
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		lns = append(lns, ln)
	}
	got := BoundAll(lns)
	for i, ln := range lns {
		if want := ln.Addr().(*net.TCPAddr).AddrPort(); got[i] != want {
			t.Errorf("BoundAll[%d] = %s, want %s", i, got[i], want)
		}
	}
}

// fdCount is the number of open descriptors of the test process.
func fdCount(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatalf("counting descriptors: %v", err)
	}
	return len(ents)
}
