package udp

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
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

// logBuffer collects log output for assertions; safe for concurrent use.
type logBuffer struct{ testutil.LogBuffer }

// logger logs at debug level into b.
func (b *logBuffer) logger() *slog.Logger { return b.Logger() }

// checkGoroutines fails the test if goroutines started during it are still
// running at cleanup; call it first.
func checkGoroutines(t *testing.T) { testutil.CheckGoroutines(t) }

// waitFor polls cond until it holds or failAfter passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	testutil.WaitFor(t, what, cond)
}

// needRoot skips privileged tests for non-root users, except in CI, where
// they must run.
func needRoot(t *testing.T) {
	t.Helper()
	testutil.NeedRoot(t, "IP_TRANSPARENT, SO_MARK, network namespaces")
}

// The UDP socket helpers every datagram test uses (internal/testutil).
var (
	listenUDP      = testutil.ListenUDP
	localAddr      = testutil.LocalAddr
	expectDatagram = testutil.ExpectDatagram
)

func sendTo(t testing.TB, c *net.UDPConn, to netip.AddrPort, msg string) {
	t.Helper()
	if _, err := c.WriteToUDPAddrPort([]byte(msg), to); err != nil {
		t.Fatalf("sending %q to %s: %v", msg, to, err)
	}
}

// sockoptRecvOrigDst asks for IP_ORIGDSTADDR, which needs no privilege.
var sockoptRecvOrigDst = sockopt.Chain(sockopt.RecvOrigDst)

// fdCount is the number of open descriptors of the test process.
func fdCount(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatalf("counting descriptors: %v", err)
	}
	return len(ents)
}

// origDstCmsg is the control message the kernel attaches for dst.
func origDstCmsg(dst netip.AddrPort) []byte { return testutil.OrigDstCmsg(dst) }

// redirected is an upstream that sends everything to one backend instead of
// the destination, and reports the destination asked for. It embeds the
// *net.UDPConn, so it keeps SyscallConn and the bufferless wait.
type redirected struct {
	*net.UDPConn
	to   netip.AddrPort
	dsts chan<- netip.AddrPort
}

// batchConn lets the session read the upstream's datagrams in batches: only
// sending is redirected.
func (r redirected) batchConn() *net.UDPConn { return r.UDPConn }

func (r redirected) WriteToUDPAddrPort(b []byte, dst netip.AddrPort) (int, error) {
	select {
	case r.dsts <- dst:
	default:
	}
	return r.UDPConn.WriteToUDPAddrPort(b, r.to)
}

// harness is a Server on a plain loopback listener. IP_RECVORIGDSTADDR needs
// no privilege, so the kernel's real control messages are decoded; the
// listener is unknown to the loop guard, so a datagram to it (whose original
// destination is the listener itself) is relayed. Upstreams send to backend
// instead, and reply sockets are plain loopback sockets: binding a foreign
// address would need IP_TRANSPARENT.
type harness struct {
	s       *Server
	addr    netip.AddrPort      // the listener
	backend *net.UDPConn        // where every upstream sends
	dsts    chan netip.AddrPort // destinations the upstreams were asked for
	remotes chan netip.AddrPort // remotes reply sockets were opened for
	served  chan error
}

func startHarness(t *testing.T, cfg Config, log *slog.Logger) *harness {
	t.Helper()
	return startHarnessWith(t, cfg, log, nil)
}

// startHarnessWith lets setup adjust the server before it serves.
func startHarnessWith(t *testing.T, cfg Config, log *slog.Logger, setup func(*Server)) *harness {
	t.Helper()
	h := &harness{
		backend: listenUDP(t, "127.0.0.1:0"),
		dsts:    make(chan netip.AddrPort, 64),
		remotes: make(chan netip.AddrPort, 64),
		served:  make(chan error, 1),
	}
	to := localAddr(h.backend)
	cfg.Dialer = DialerFunc(func(ctx context.Context, client netip.AddrPort, route int) (Upstream, error) {
		up, err := DirectDialer{}.OpenUpstream(ctx, client, route)
		if err != nil {
			return nil, err
		}
		return redirected{UDPConn: up.(*net.UDPConn), to: to, dsts: h.dsts}, nil
	})
	if log == nil {
		log = testLogger(t)
	}
	h.s = New(cfg, log)
	h.s.raw = nil // bound (faked) reply sockets only
	h.s.openReply = func(remote netip.AddrPort) (*net.UDPConn, error) {
		select {
		case h.remotes <- remote:
		default:
		}
		return net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	}
	lc := net.ListenConfig{Control: sockoptRecvOrigDst}
	pc, err := lc.ListenPacket(context.Background(), "udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("opening listener: %v", err)
	}
	ln := pc.(*net.UDPConn)
	h.addr = localAddr(ln)
	h.s.listeners = append(h.s.listeners, ln)
	if setup != nil {
		setup(h.s)
	}
	go func() { h.served <- h.s.Serve() }()
	t.Cleanup(func() {
		h.s.Shutdown(0)
		if err := <-h.served; err != nil {
			t.Errorf("Serve returned %v, want nil after Shutdown", err)
		}
	})
	return h
}

// next receives one value from ch or fails.
func next[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(failAfter):
		t.Fatalf("timed out waiting for %s", what)
		var zero T
		return zero
	}
}

// upstreamRecvBuffer is the test upstreams' receive buffer, as the direct
// outbound's (a download burst for one client queues there).
const upstreamRecvBuffer = 1 << 20

// DirectDialer is the tests' Dialer, as the daemon's "direct" outbound:
// it sends straight to the original destinations from one
// unconnected socket per client, bound to the wildcard address of the
// client's family. Every socket carries SO_MARK=Mark (0 sets no mark) so the
// TPROXY rules let it pass; the mark must not intersect the TPROXY
// fwmark/mask.
type DirectDialer struct {
	Mark uint32
}

// OpenUpstream implements Dialer; every route goes direct.
func (d DirectDialer) OpenUpstream(ctx context.Context, client netip.AddrPort, _ int) (Upstream, error) {
	network, laddr := "udp6", netip.IPv6Unspecified()
	if client.Addr().Unmap().Is4() {
		network, laddr = "udp4", netip.IPv4Unspecified()
	}
	uc, err := sockopt.ListenUDP(ctx, network, netip.AddrPortFrom(laddr, 0), sockopt.Mark(d.Mark), sockopt.RecvBuffer(upstreamRecvBuffer))
	if err != nil {
		return nil, fmt.Errorf("opening upstream socket for %s: %w", client, err)
	}
	return uc, nil
}
