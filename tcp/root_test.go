package tcp

import (
	"context"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/gatewayd/gatewayd/internal/testutil"
	"golang.org/x/sys/unix"
)

// needRoot skips privileged tests for non-root users, except in CI, where
// they must run.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Getuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("test needs root (IP_TRANSPARENT, SO_MARK) and CI=true")
		}
		t.Skip("needs root (IP_TRANSPARENT, SO_MARK)")
	}
}

func TestListenTransparent(t *testing.T) {
	needRoot(t)
	checkGoroutines(t)
	addrs := []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:0")}
	if ln, err := net.Listen("tcp6", "[::1]:0"); err == nil {
		_ = ln.Close()
		addrs = append(addrs, netip.MustParseAddrPort("[::1]:0"))
	}
	s := New(Config{Listen: addrs}, testLogger(t))
	if err := s.Listen(context.Background()); err != nil {
		t.Fatalf("Listen: %v", err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve() }()

	s.mu.Lock()
	lns := append([]*net.TCPListener(nil), s.listeners...)
	s.mu.Unlock()
	for _, ln := range lns {
		a := listenerAddr(ln)
		if a.Port() == 0 {
			t.Fatalf("listener %s has no port", a)
		}
		if v, err := transparentBit(ln); err != nil || v != 1 {
			t.Errorf("IP_TRANSPARENT on %s = %d (err %v), want 1", a, v, err)
		}
		// Connecting to the listener itself is a loop and must be refused.
		expectRefused(t, net.TCPAddrFromAddrPort(a))
	}
	waitFor(t, "loop refusals", func() bool { return s.Stats().LoopRefused == uint64(len(addrs)) })
	s.Shutdown(0)
	if err := <-served; err != nil {
		t.Errorf("Serve = %v, want nil", err)
	}
}

// Clients get no keepalive probes from gatewayd.
func TestListenNoClientKeepAlive(t *testing.T) {
	needRoot(t)
	s := New(Config{Listen: []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:0")}}, testLogger(t))
	if err := s.Listen(context.Background()); err != nil {
		t.Fatalf("Listen: %v", err)
	}
	defer s.Close()
	ln := s.listeners[0] // not served: the test accepts itself
	c := dial(t, ln.Addr())
	defer c.Close()
	accepted, err := ln.AcceptTCP()
	if err != nil {
		t.Fatalf("accepting: %v", err)
	}
	defer accepted.Close()
	if on, _ := testutil.KeepAlive(t, accepted); on != 0 {
		t.Errorf("accepted client socket has SO_KEEPALIVE %d, want 0", on)
	}
}

func transparentBit(ln *net.TCPListener) (int, error) {
	raw, err := ln.SyscallConn()
	if err != nil {
		return 0, err
	}
	var v int
	var serr error
	if err := raw.Control(func(fd uintptr) {
		v, serr = unix.GetsockoptInt(int(fd), unix.SOL_IP, unix.IP_TRANSPARENT)
	}); err != nil {
		return 0, err
	}
	return v, serr
}

// Listen closes what it opened and names the address that failed.
func TestListenNamesFailingAddress(t *testing.T) {
	needRoot(t)
	checkGoroutines(t)
	busy := listenLoopback(t)
	taken := busy.Addr().(*net.TCPAddr).AddrPort()
	s := New(Config{Listen: []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:0"), taken}}, nil)
	err := s.Listen(context.Background())
	if err == nil {
		t.Fatal("Listen on a taken port succeeded")
	}
	if want := "listening on " + taken.String(); !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not name %s", err, taken)
	}
	if len(s.Addrs()) != 0 {
		t.Errorf("listeners kept after a failed Listen: %v", s.Addrs())
	}
}
