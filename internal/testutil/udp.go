package testutil

import (
	"net"
	"net/netip"
	"testing"
	"time"
)

// maxDatagram is the largest UDP payload (64 KiB less the headers).
const maxDatagram = 65535

// ListenUDP opens a plain UDP socket on addr ("127.0.0.1:0", "[::1]:0"),
// closed when the test ends.
func ListenUDP(t testing.TB, addr string) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(addr)))
	if err != nil {
		t.Fatalf("listening on %s: %v", addr, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// LocalAddr is c's bound address.
func LocalAddr(c *net.UDPConn) netip.AddrPort {
	return c.LocalAddr().(*net.UDPAddr).AddrPort()
}

// ExpectDatagram reads one datagram from c within FailAfter, checks its
// payload, and returns its source.
func ExpectDatagram(t testing.TB, c *net.UDPConn, want string) netip.AddrPort {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(FailAfter))
	buf := make([]byte, maxDatagram)
	n, from, err := c.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatalf("waiting for %q: %v", want, err)
	}
	if got := string(buf[:n]); got != want {
		t.Fatalf("got %q from %s, want %q", got, from, want)
	}
	return from
}
