package testutil

import (
	"net"
	"testing"

	"golang.org/x/sys/unix"
)

// KeepAlive reads SO_KEEPALIVE and TCP_KEEPIDLE (seconds) of c.
func KeepAlive(t testing.TB, c *net.TCPConn) (on, idle int) {
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
