package outbound

import (
	"context"
	"net"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// bypassMark is an arbitrary SO_MARK for the privileged tests (on
// loopback sockets, as the tcp package's tests use it).
const bypassMark = 0x2

// sockMark reads SO_MARK and SO_BINDTODEVICE of c.
func sockOpts(t *testing.T, c syscall.Conn) (mark int, dev string) {
	t.Helper()
	raw, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var merr, derr error
	if err := raw.Control(func(fd uintptr) {
		mark, merr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK)
		dev, derr = unix.GetsockoptString(int(fd), unix.SOL_SOCKET, unix.SO_BINDTODEVICE)
	}); err != nil {
		t.Fatal(err)
	}
	if merr != nil || derr != nil {
		t.Fatalf("getsockopt: SO_MARK %v, SO_BINDTODEVICE %v", merr, derr)
	}
	return mark, dev
}

func expectMark(t *testing.T, what string, c syscall.Conn, dev string) {
	t.Helper()
	if m, d := sockOpts(t, c); m != bypassMark || d != dev {
		t.Errorf("%s: SO_MARK %#x, device %q; want %#x, %q", what, m, d, bypassMark, dev)
	}
}

// Every socket an outbound opens carries the mark; direct ones are bound
// to the configured device.
func TestMarksAndDevice(t *testing.T) {
	needRoot(t)
	checkGoroutines(t)
	srv := newServers(t)
	echo := startEcho(t, srv, "127.0.0.1:0")
	udpEcho := startUDPEcho(t, srv, "127.0.0.1:0")

	cfg := directConfig()
	cfg.Mark, cfg.Interface = bypassMark, "lo"
	direct := mustNew(t, cfg)
	c, err := direct.DialTCP(context.Background(), Dest{Addr: echo})
	if err != nil {
		t.Fatalf("direct DialTCP: %v", err)
	}
	expectMark(t, "direct TCP", c, "lo")
	expectEcho(t, c, "marked")
	_ = c.Close()
	u, err := direct.OpenUDP(context.Background(), testClient)
	if err != nil {
		t.Fatalf("direct OpenUDP: %v", err)
	}
	expectMark(t, "direct UDP", u.(*net.UDPConn), "lo")
	udpExchange(t, u, udpEcho, "marked")
	_ = u.Close()

	// A device the socket cannot reach: the dial fails and says why.
	cfg.Interface = "gwd-nonexist0"
	_, err = mustNew(t, cfg).DialTCP(context.Background(), Dest{Addr: echo})
	expectKind(t, err, KindOther, `SO_BINDTODEVICE "gwd-nonexist0"`)

	socks := newFakeSOCKS(t, srv, nil)
	scfg := socksConfig(socks.Addr)
	scfg.Mark = bypassMark
	so := mustNew(t, scfg)
	c, err = so.DialTCP(context.Background(), Dest{Addr: echo})
	if err != nil {
		t.Fatalf("socks5 DialTCP: %v", err)
	}
	expectMark(t, "socks5 TCP", c, "")
	_ = c.Close()
	u, err = so.OpenUDP(context.Background(), testClient)
	if err != nil {
		t.Fatalf("socks5 OpenUDP: %v", err)
	}
	expectMark(t, "socks5 control", u.(*socksUDP).ctrl, "")
	expectMark(t, "socks5 UDP", u.(syscall.Conn), "")
	udpExchange(t, u, udpEcho, "marked")
	_ = u.Close()

	hp := newFakeHTTP(t, srv, nil)
	hcfg := httpConfig(hp.Addr)
	hcfg.Mark = bypassMark
	c, err = mustNew(t, hcfg).DialTCP(context.Background(), Dest{Addr: echo})
	if err != nil {
		t.Fatalf("http DialTCP: %v", err)
	}
	expectMark(t, "http TCP", c, "")
	_ = c.Close()
}
