package outbound

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/internal/testutil"
)

// failAfter bounds this package's own waits for something that should
// happen (checkGoroutines and waitFor use testutil.FailAfter).
const failAfter = 5 * time.Second

// testLogger logs at debug level into the test output.
func testLogger(t testing.TB) *slog.Logger { return testutil.Logger(t) }

// logBuffer collects log output for assertions; safe for concurrent use.
type logBuffer = testutil.LogBuffer

// checkGoroutines fails the test if goroutines started during it are still
// running at cleanup (bounded by testutil.FailAfter); call it first.
func checkGoroutines(t *testing.T) { testutil.CheckGoroutines(t) }

// waitFor polls cond until it holds or testutil.FailAfter passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	testutil.WaitFor(t, what, cond)
}

// needRoot skips privileged tests for non-root users, except in CI, where
// they must run.
func needRoot(t *testing.T) {
	t.Helper()
	testutil.NeedRoot(t, "SO_MARK, SO_BINDTODEVICE")
}

// haveIPv6 reports whether ::1 is usable.
func haveIPv6(t testing.TB) bool { return testutil.HaveIPv6(t) }

// servers tracks the goroutines and conns of a test server so cleanup can
// end them all.
type servers struct {
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns []io.Closer
	done  chan struct{}
}

func newServers(t testing.TB) *servers {
	s := &servers{done: make(chan struct{})}
	t.Cleanup(s.stop)
	return s
}

// track registers c to be closed at cleanup; false if cleanup has begun
// (c is closed at once).
func (s *servers) track(c io.Closer) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.done:
		_ = c.Close()
		return false
	default:
	}
	s.conns = append(s.conns, c)
	return true
}

func (s *servers) goFunc(fn func()) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		fn()
	}()
}

func (s *servers) stop() {
	s.mu.Lock()
	close(s.done)
	for _, c := range s.conns {
		_ = c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// listenTCP opens a loopback listener (addr "127.0.0.1:0" or "[::1]:0")
// whose accepted conns run handle, tracked by s.
func (s *servers) listenTCP(t testing.TB, addr string, handle func(*net.TCPConn)) netip.AddrPort {
	t.Helper()
	ln, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(netip.MustParseAddrPort(addr)))
	if err != nil {
		t.Fatalf("listening on %s: %v", addr, err)
	}
	s.track(ln)
	s.goFunc(func() {
		for {
			c, err := ln.AcceptTCP()
			if err != nil {
				return
			}
			if !s.track(c) {
				return
			}
			s.goFunc(func() { handle(c) })
		}
	})
	return ln.Addr().(*net.TCPAddr).AddrPort()
}

// startEcho runs a TCP echo server on addr.
func startEcho(t testing.TB, s *servers, addr string) netip.AddrPort {
	return s.listenTCP(t, addr, func(c *net.TCPConn) {
		_, _ = io.Copy(c, c)
		_ = c.CloseWrite()
	})
}

// startUDPEcho runs a UDP echo server on addr.
func startUDPEcho(t testing.TB, s *servers, addr string) netip.AddrPort {
	t.Helper()
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(addr)))
	if err != nil {
		t.Fatalf("listening on %s: %v", addr, err)
	}
	s.track(c)
	s.goFunc(func() {
		buf := make([]byte, 65535)
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			_, _ = c.WriteToUDPAddrPort(buf[:n], from)
		}
	})
	return c.LocalAddr().(*net.UDPAddr).AddrPort()
}

// relay copies both ways between a and b until both directions end.
func relay(a, b *net.TCPConn) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, _ = io.Copy(b, a)
		_ = b.CloseWrite()
	}()
	_, _ = io.Copy(a, b)
	_ = a.CloseWrite()
	wg.Wait()
}

// expectEcho writes msg on c and reads it back.
func expectEcho(t testing.TB, c net.Conn, msg string) {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(failAfter))
	defer func() { _ = c.SetDeadline(time.Time{}) }()
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatalf("writing %q: %v", msg, err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("reading the echo of %q: %v (got %q)", msg, err, got)
	}
	if string(got) != msg {
		t.Fatalf("echo = %q, want %q", got, msg)
	}
}

// expectBytes reads len(want) bytes from c and compares.
func expectBytes(t testing.TB, c net.Conn, want []byte) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(failAfter))
	defer func() { _ = c.SetReadDeadline(time.Time{}) }()
	got := make([]byte, len(want))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("reading %d bytes: %v (got %q)", len(want), err, got)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("read %q, want %q", got, want)
	}
}

// expectKind checks err's failure kind and that its text contains each
// of wants.
func expectKind(t testing.TB, err error, kind FailureKind, wants ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("err = nil, want a %s failure", kind)
	}
	if got := KindOf(err); got != kind {
		t.Errorf("KindOf(%q) = %s, want %s", err, got, kind)
	}
	for _, w := range wants {
		if !bytes.Contains([]byte(err.Error()), []byte(w)) {
			t.Errorf("error %q does not contain %q", err, w)
		}
	}
}

// mustNew builds an outbound or fails the test.
func mustNew(t testing.TB, cfg Config) Outbound {
	t.Helper()
	o, err := New(cfg)
	if err != nil {
		t.Fatalf("New(%+v): %v", cfg, err)
	}
	return o
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t testing.TB) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := ln.Addr().(*net.TCPAddr).AddrPort()
	_ = ln.Close()
	return a
}

// readFull reads exactly n bytes or returns an error.
func readFull(r io.Reader, n int) ([]byte, error) {
	b := make([]byte, n)
	_, err := io.ReadFull(r, b)
	return b, err
}

var errTestProtocol = errors.New("fake server: protocol error")

// dialShort dials dst through the outbound cfg configures, with
// shortTimeout, and fails the test if that took much longer; it returns
// the dial's error.
func dialShort(t *testing.T, cfg Config, dst string) error {
	t.Helper()
	cfg.Timeout = shortTimeout
	start := time.Now()
	_, err := mustNew(t, cfg).DialTCP(context.Background(), Dest{Addr: netip.MustParseAddrPort(dst)})
	if d := time.Since(start); d > shortTimeout+time.Second {
		t.Errorf("DialTCP took %s with a %s timeout", d, shortTimeout)
	}
	return err
}
