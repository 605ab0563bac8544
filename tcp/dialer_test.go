package tcp

import (
	"context"
	"net"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestDirectDialer(t *testing.T) {
	ln := listenLoopback(t)
	dst := ln.Addr().(*net.TCPAddr).AddrPort()
	c, err := DirectDialer{Timeout: failAfter}.DialTCP(context.Background(), Flow{Dst: dst})
	if err != nil {
		t.Fatalf("DialTCP(%s): %v", dst, err)
	}
	_ = c.Close()

	_ = ln.Close()
	_, err = DirectDialer{Timeout: failAfter}.DialTCP(context.Background(), Flow{Dst: dst})
	if err == nil || !strings.HasPrefix(err.Error(), "dialing "+dst.String()) {
		t.Errorf("DialTCP to a closed port: %v, want an error naming %s", err, dst)
	}
}

// The upstream leg probes after a minute of silence (sockopt.UpstreamKeepAlive),
// not Go's 15 s.
func TestDirectDialerKeepAlive(t *testing.T) {
	ln := listenLoopback(t)
	c, err := DirectDialer{Timeout: failAfter}.DialTCP(context.Background(), Flow{Dst: ln.Addr().(*net.TCPAddr).AddrPort()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	on, idle := keepAlive(t, c)
	if on != 1 || idle != 60 {
		t.Errorf("SO_KEEPALIVE %d, TCP_KEEPIDLE %d s; want 1 and 60", on, idle)
	}
}

// keepAlive reads SO_KEEPALIVE and TCP_KEEPIDLE (seconds) of c.
func keepAlive(t *testing.T, c *net.TCPConn) (on, idle int) {
	t.Helper()
	raw, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var e1, e2 error
	if err := raw.Control(func(fd uintptr) {
		on, e1 = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_KEEPALIVE)
		idle, e2 = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_KEEPIDLE)
	}); err != nil || e1 != nil || e2 != nil {
		t.Fatalf("reading keepalive options: %v %v %v", err, e1, e2)
	}
	return on, idle
}
