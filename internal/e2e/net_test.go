package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/internal/netlab"
)

// ioGuard bounds every network wait in these tests: a hang fails, it
// does not time the test out. It is a failure guard, not a measurement.
const ioGuard = 15 * time.Second

// Ports of the test servers in the server namespace.
const (
	echoPort   = 7000 // "PEER <addr>\n" then echo
	halfPort   = 7001 // read to EOF, answer "got N\n", close
	closedPort = 7999 // nothing listens
)

// serve runs handler for every connection accepted on addr inside ns,
// until the test ends.
func serve(t *testing.T, ns *netlab.NS, addr netip.AddrPort, handler func(*net.TCPConn)) {
	t.Helper()
	var ln *net.TCPListener
	err := ns.Do(func() (err error) {
		ln, err = net.ListenTCP("tcp", net.TCPAddrFromAddrPort(addr))
		return err
	})
	if err != nil {
		t.Fatalf("listen %s in %s: %v", addr, ns.Name, err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.AcceptTCP()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(ioGuard))
				handler(c)
			}()
		}
	}()
}

// peerEcho tells the client who it sees, then echoes.
func peerEcho(c *net.TCPConn) {
	fmt.Fprintf(c, "PEER %s\n", netip.MustParseAddrPort(c.RemoteAddr().String()).Addr().Unmap())
	_, _ = io.Copy(c, c)
}

// halfCloser reads to EOF, then answers with the byte count.
func halfCloser(c *net.TCPConn) {
	n, _ := io.Copy(io.Discard, c)
	fmt.Fprintf(c, "got %d\n", n)
}

// serveAll starts the echo and half-close servers on every remote address.
func serveAll(t *testing.T, lab *netlab.Lab) {
	t.Helper()
	for _, r := range lab.Remotes {
		for _, a := range []netip.Addr{r.V4, r.V6} {
			serve(t, lab.Server, netip.AddrPortFrom(a, echoPort), peerEcho)
			serve(t, lab.Server, netip.AddrPortFrom(a, halfPort), halfCloser)
		}
	}
}

// dial connects from ns to dst.
func dial(ns *netlab.NS, dst netip.AddrPort) (*net.TCPConn, error) {
	var c net.Conn
	err := ns.Do(func() (err error) {
		c, err = net.DialTimeout("tcp", dst.String(), ioGuard)
		return err
	})
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(ioGuard))
	return c.(*net.TCPConn), nil
}

// peerSeen dials dst's echo server from the client and returns the address
// the server saw, after checking one echo round trip and that the client's
// peer is the original destination.
func peerSeen(t *testing.T, lab *netlab.Lab, dst netip.Addr) netip.Addr {
	t.Helper()
	ap := netip.AddrPortFrom(dst, echoPort)
	c, err := dial(lab.Client, ap)
	if err != nil {
		t.Fatalf("dial %s: %v", ap, err)
	}
	defer c.Close()
	if got := netip.MustParseAddrPort(c.RemoteAddr().String()); got != ap {
		t.Errorf("client's peer = %s, want %s", got, ap)
	}
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("%s: reading PEER line: %v", ap, err)
	}
	peer, err := netip.ParseAddr(strings.TrimSpace(strings.TrimPrefix(line, "PEER ")))
	if err != nil {
		t.Fatalf("%s: bad PEER line %q", ap, line)
	}
	fmt.Fprintf(c, "ping %s\n", dst)
	if echo, err := r.ReadString('\n'); err != nil || echo != fmt.Sprintf("ping %s\n", dst) {
		t.Fatalf("%s: echo = %q, %v", ap, echo, err)
	}
	return peer
}

// isReset reports whether err is a connection reset (or refusal).
func isReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED)
}
