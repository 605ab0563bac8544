package tcp

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/internal/sockopt"
	"github.com/gatewayd/gatewayd/internal/testutil"
)

// failAfter guards every blocking step of a test; it is never a timing
// assertion, only a way to fail instead of hanging.
const failAfter = testutil.FailAfter

// testLogger logs at debug level into the test output.
func testLogger(t testing.TB) *slog.Logger { return testutil.Logger(t) }

// checkGoroutines fails the test if goroutines started during it are still
// running at cleanup; call it first.
func checkGoroutines(t *testing.T) { testutil.CheckGoroutines(t) }

// listenLoopback opens a plain (non-transparent) loopback listener.
func listenLoopback(t testing.TB) *net.TCPListener {
	t.Helper()
	ln, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatalf("listening on loopback: %v", err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	return ln
}

// tcpPair returns the two ends of one loopback TCP connection.
func tcpPair(t testing.TB) (dialed, accepted *net.TCPConn) {
	t.Helper()
	ln := listenLoopback(t)
	defer ln.Close()
	dialed = dial(t, ln.Addr())
	accepted, err := ln.AcceptTCP()
	if err != nil {
		t.Fatalf("accepting: %v", err)
	}
	t.Cleanup(func() { _ = accepted.Close() })
	return dialed, accepted
}

func dial(t testing.TB, a net.Addr) *net.TCPConn {
	t.Helper()
	c, err := net.DialTCP("tcp", nil, a.(*net.TCPAddr))
	if err != nil {
		t.Fatalf("dialing %s: %v", a, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// dialerFunc adapts a function to Dialer.
type dialerFunc func(ctx context.Context, dst netip.AddrPort) (*net.TCPConn, error)

func (f dialerFunc) DialTCP(ctx context.Context, fl Flow) (*net.TCPConn, error) {
	return f(ctx, fl.Dst)
}

// backend is an upstream server; each accepted conn is handed to the test.
type backend struct {
	ln    *net.TCPListener
	conns chan *net.TCPConn
}

func newBackend(t testing.TB) *backend {
	t.Helper()
	b := &backend{ln: listenLoopback(t), conns: make(chan *net.TCPConn, 16)}
	go func() {
		for {
			c, err := b.ln.AcceptTCP()
			if err != nil {
				close(b.conns)
				return
			}
			b.conns <- c
		}
	}()
	t.Cleanup(func() {
		_ = b.ln.Close()
		for c := range b.conns {
			_ = c.Close()
		}
	})
	return b
}

// dialer dials the backend whatever the destination, and reports each
// destination it was asked for on dsts.
func (b *backend) dialer(dsts chan<- netip.AddrPort) Dialer {
	return dialerFunc(func(ctx context.Context, dst netip.AddrPort) (*net.TCPConn, error) {
		if dsts != nil {
			dsts <- dst
		}
		return DirectDialer{Timeout: failAfter}.DialTCP(ctx, Flow{Dst: b.ln.Addr().(*net.TCPAddr).AddrPort()})
	})
}

func (b *backend) accept(t testing.TB) *net.TCPConn {
	t.Helper()
	select {
	case c := <-b.conns:
		t.Cleanup(func() { _ = c.Close() })
		return c
	case <-time.After(failAfter):
		t.Fatal("backend: no connection")
		return nil
	}
}

// startServer serves cfg on a plain loopback listener that is not known to
// the loop guard (IP_TRANSPARENT needs root), so flows to it are relayed.
func startServer(t *testing.T, cfg Config) (*Server, net.Addr) {
	t.Helper()
	s := New(cfg, testLogger(t))
	ln := listenLoopback(t)
	s.listeners = append(s.listeners, ln)
	served := make(chan error, 1)
	go func() { served <- s.Serve() }()
	t.Cleanup(func() {
		s.Shutdown(0)
		if err := <-served; err != nil {
			t.Errorf("Serve returned %v, want nil after Shutdown", err)
		}
	})
	return s, ln.Addr()
}

// expectReset fails unless reading c ends in a connection reset.
func expectReset(t testing.TB, c *net.TCPConn) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(failAfter))
	_, err := io.Copy(io.Discard, c)
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("reading after the flow ended: got %v, want connection reset", err)
	}
}

// expectTransfer writes msg on from and expects to to receive it.
func expectTransfer(t testing.TB, from, to *net.TCPConn, msg string) {
	t.Helper()
	if _, err := from.Write([]byte(msg)); err != nil {
		t.Fatalf("writing %q: %v", msg, err)
	}
	_ = to.SetReadDeadline(time.Now().Add(failAfter))
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(to, buf); err != nil {
		t.Fatalf("reading %q: %v", msg, err)
	}
	if string(buf) != msg {
		t.Fatalf("got %q, want %q", buf, msg)
	}
	_ = to.SetReadDeadline(time.Time{})
}

// waitFor polls cond until it holds or failAfter passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	testutil.WaitFor(t, what, cond)
}

// expectRefused connects to a and expects the server to reset the
// connection. On loopback the RST can arrive before connect() has returned,
// so the reset may show in the dial or in the first read.
func expectRefused(t testing.TB, a net.Addr) {
	t.Helper()
	c, err := net.DialTCP("tcp", nil, a.(*net.TCPAddr))
	if errors.Is(err, syscall.ECONNRESET) {
		return
	}
	if err != nil {
		t.Fatalf("dialing %s: %v", a, err)
	}
	defer c.Close()
	expectReset(t, c)
}

// DirectDialer is the tests' Dialer: it connects straight to the
// original destination, as the daemon's "direct" outbound does. Every socket
// carries SO_MARK=Mark (0 sets no mark) so the TPROXY rules let it pass;
// the mark must not intersect the TPROXY fwmark/mask. Timeout bounds the
// connect (0: only the context bounds it). MPTCP is off; keepalive is
// sockopt.UpstreamKeepAlive.
type DirectDialer struct {
	Mark    uint32
	Timeout time.Duration
}

// DialTCP implements Dialer.
func (d DirectDialer) DialTCP(ctx context.Context, f Flow) (*net.TCPConn, error) {
	dst := f.Dst
	nd := net.Dialer{Timeout: d.Timeout, Control: sockopt.Chain(sockopt.Mark(d.Mark)), KeepAliveConfig: sockopt.UpstreamKeepAlive()}
	nd.SetMultipathTCP(false)
	return sockopt.DialTCP(ctx, &nd, dst, dst.String())
}
