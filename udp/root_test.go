package udp

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"github.com/gatewayd/gatewayd/internal/testutil"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// bypassMark is an arbitrary SO_MARK for the privileged tests.
const bypassMark = 0x2

// sockoptInt reads one integer socket option of c.
func sockoptInt(t *testing.T, c syscall.Conn, level, opt int) int {
	t.Helper()
	raw, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var v int
	var serr error
	if err := raw.Control(func(fd uintptr) { v, serr = unix.GetsockoptInt(int(fd), level, opt) }); err != nil {
		t.Fatal(err)
	}
	if serr != nil {
		t.Fatalf("getsockopt(%d, %d): %v", level, opt, serr)
	}
	return v
}

// expectOpts checks that each option of c is set to its value.
func expectOpts(t *testing.T, what string, c syscall.Conn, want map[[2]int]int) {
	t.Helper()
	for lo, v := range want {
		if got := sockoptInt(t, c, lo[0], lo[1]); got != v {
			t.Errorf("%s: option %d/%#x = %d, want %d", what, lo[0], lo[1], got, v)
		}
	}
}

// haveIPv6 reports whether the IPv6 loopback is usable (internal/testutil).
var haveIPv6 = testutil.HaveIPv6

// The listener options are accepted and work: datagrams sent straight to
// a listener carry the listener itself as original destination, which the
// loop guard drops. On the dual-stack socket IPv4 datagrams decode too
// (they carry the SOL_IP message).
func TestListenTransparent(t *testing.T) {
	needRoot(t)
	checkGoroutines(t)
	addrs := []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:0")}
	v6 := haveIPv6(t)
	if v6 {
		addrs = append(addrs, netip.MustParseAddrPort("[::1]:0"), netip.MustParseAddrPort("[::]:0"))
	}
	s := New(Config{Listen: addrs}, testLogger(t))
	if err := s.Listen(context.Background()); err != nil {
		t.Fatalf("Listen: %v", err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve() }()

	s.mu.Lock()
	lns := append([]*net.UDPConn(nil), s.listeners...)
	s.mu.Unlock()
	sent := 0
	for _, ln := range lns {
		a := listenerAddr(ln)
		if a.Port() == 0 {
			t.Fatalf("listener %s has no port", a)
		}
		want := map[[2]int]int{
			{unix.SOL_IP, unix.IP_TRANSPARENT}:     1,
			{unix.SOL_IP, unix.IP_RECVORIGDSTADDR}: 1,
		}
		if !a.Addr().Is4() {
			want[[2]int{unix.SOL_IPV6, unix.IPV6_TRANSPARENT}] = 1
			want[[2]int{unix.SOL_IPV6, unix.IPV6_RECVORIGDSTADDR}] = 1
		}
		expectOpts(t, a.String(), ln, want)

		targets := []netip.AddrPort{a}
		if a.Addr().IsUnspecified() {
			targets = []netip.AddrPort{
				netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), a.Port()),
				netip.AddrPortFrom(netip.MustParseAddr("::1"), a.Port()),
			}
		}
		for _, dst := range targets {
			c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(dst))
			if err != nil {
				t.Fatalf("dialing %s: %v", dst, err)
			}
			if _, err := c.Write([]byte("loop?")); err != nil {
				t.Fatalf("sending to %s: %v", dst, err)
			}
			_ = c.Close()
			sent++
		}
	}
	waitFor(t, "loop drops", func() bool { return s.Stats().DropLoop == uint64(sent) })
	if st := s.Stats(); st.DropNoOrigDst != 0 || st.SessionsTotal != 0 {
		t.Errorf("Stats = %+v, want only loop drops", st)
	}
	s.Shutdown(0)
	if err := <-served; err != nil {
		t.Errorf("Serve = %v, want nil", err)
	}
}

// Listen closes what it opened and names the address that failed.
func TestListenNamesFailingAddress(t *testing.T) {
	needRoot(t)
	checkGoroutines(t)
	busy := listenUDP(t, "127.0.0.1:0")
	taken := localAddr(busy)
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

// inFreshNetns runs f on a locked thread inside a new network namespace
// whose loopback is up and also carries addrs, then returns the thread to
// the original namespace. Sockets f opens stay in the new namespace, which
// is held open until the test ends.
func inFreshNetns(t testing.TB, addrs []netip.Prefix, f func()) {
	t.Helper()
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatalf("reading the current netns: %v", err)
	}
	defer orig.Close()
	ns, err := netns.New()
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatalf("creating a netns: %v", err)
	}
	t.Cleanup(func() { _ = ns.Close() })
	defer func() {
		if err := netns.Set(orig); err != nil {
			// Stay locked: the thread dies with the goroutine instead of
			// serving others from the wrong namespace.
			t.Errorf("returning to the original netns: %v", err)
			return
		}
		runtime.UnlockOSThread()
	}()

	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatalf("netlink handle: %v", err)
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err != nil {
		t.Fatalf("finding lo: %v", err)
	}
	if err := h.LinkSetUp(lo); err != nil {
		t.Fatalf("bringing lo up: %v", err)
	}
	for _, p := range addrs {
		a := &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}}
		if p.Addr().Is6() {
			a.Flags = unix.IFA_F_NODAD
		}
		if err := h.AddrAdd(lo, a); err != nil {
			t.Fatalf("adding %s to lo: %v", p, err)
		}
		// The kernel installs an IPv6 address's local route from a work
		// queue, even without DAD; until then datagrams to it are lost.
		waitFor(t, "local route to "+p.Addr().String(), func() bool {
			rs, err := h.RouteGet(p.Addr().AsSlice())
			return err == nil && len(rs) > 0 && rs[0].Type == unix.RTN_LOCAL
		})
	}
	f()
}

// Reply sockets bind a foreign address (IP_TRANSPARENT), share it
// (SO_REUSEADDR), carry the mark, and what they send arrives from the
// foreign address. Plain sockets cannot bind it at all.
func TestReplySocketsForeignAddress(t *testing.T) {
	needRoot(t)
	checkGoroutines(t)
	local4, foreign4 := netip.MustParseAddr("198.18.0.1"), netip.MustParseAddrPort("198.18.0.9:53")
	local6, foreign6 := netip.MustParseAddr("2001:2::1"), netip.MustParseAddrPort("[2001:2::9]:53")
	s := New(Config{BypassMark: bypassMark}, testLogger(t))
	defer s.Shutdown(0)

	type pair struct {
		receiver *net.UDPConn
		foreign  netip.AddrPort
		socks    []*net.UDPConn
	}
	var pairs []pair
	inFreshNetns(t, []netip.Prefix{netip.PrefixFrom(local4, 32), netip.PrefixFrom(local6, 128)}, func() {
		for _, tc := range []struct {
			local   netip.Addr
			foreign netip.AddrPort
		}{{local4, foreign4}, {local6, foreign6}} {
			recv, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(tc.local, 0)))
			if err != nil {
				t.Fatalf("listening on %s: %v", tc.local, err)
			}
			t.Cleanup(func() { _ = recv.Close() })
			plain, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(tc.foreign))
			if err == nil {
				_ = plain.Close()
				t.Errorf("a plain socket bound the foreign %s", tc.foreign)
			} else if !errors.Is(err, unix.EADDRNOTAVAIL) {
				t.Errorf("plain bind of %s: %v, want EADDRNOTAVAIL", tc.foreign, err)
			}
			p := pair{receiver: recv, foreign: tc.foreign}
			for range 2 { // the second bind of the same address needs SO_REUSEADDR
				rs, err := s.openReplySocket(tc.foreign)
				if err != nil {
					t.Fatalf("openReplySocket(%s): %v", tc.foreign, err)
				}
				t.Cleanup(func() { _ = rs.Close() })
				p.socks = append(p.socks, rs)
			}
			pairs = append(pairs, p)
		}
	})

	for _, p := range pairs {
		family := unix.AF_INET
		if p.foreign.Addr().Is6() {
			family = unix.AF_INET6
		}
		for i, rs := range p.socks {
			expectOpts(t, p.foreign.String(), rs, map[[2]int]int{
				{unix.SOL_IP, unix.IP_TRANSPARENT}:   1,
				{unix.SOL_SOCKET, unix.SO_REUSEADDR}: 1,
				{unix.SOL_SOCKET, unix.SO_MARK}:      bypassMark,
				{unix.SOL_SOCKET, unix.SO_DOMAIN}:    family,
			})
			if la := localAddr(rs); la != p.foreign {
				t.Errorf("reply socket bound to %s, want %s", la, p.foreign)
			}
			msg := "from afar " + string(rune('0'+i))
			sendTo(t, rs, localAddr(p.receiver), msg)
			if from := expectDatagram(t, p.receiver, msg); from != p.foreign {
				t.Errorf("reply arrived from %s, want the foreign %s", from, p.foreign)
			}
		}
	}
}

// The reply cache opens one socket per remote (mapped or not), reuses it,
// and the datagram reaches the client from the remote's address. (With
// the raw sockets off: the path of streaming remotes.)
func TestReplyCacheInNetns(t *testing.T) {
	needRoot(t)
	checkGoroutines(t)
	local := netip.MustParseAddr("198.18.0.1")
	remote := netip.MustParseAddrPort("198.18.0.9:4500")
	s := New(Config{BypassMark: bypassMark}, testLogger(t))
	s.raw = nil
	defer s.Shutdown(0)
	var client *net.UDPConn
	var ss *session
	var slot replySlot
	inFreshNetns(t, []netip.Prefix{netip.PrefixFrom(local, 32)}, func() {
		var err error
		client, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(local, 0)))
		if err != nil {
			t.Fatalf("listening: %v", err)
		}
		t.Cleanup(func() { _ = client.Close() })
		ss = &session{client: localAddr(client)}
		// Reply sockets are opened in the session goroutine's namespace,
		// this thread's.
		s.deliver(ss, &slot, []byte("one"), netip.AddrPortFrom(netip.AddrFrom16(remote.Addr().As16()), remote.Port()), s.now())
	})
	if from := expectDatagram(t, client, "one"); from != remote {
		t.Errorf("arrived from %s, want %s", from, remote)
	}
	s.deliver(ss, &slot, []byte("two"), remote, s.now()) // cached: no socket opened outside the netns
	if from := expectDatagram(t, client, "two"); from != remote {
		t.Errorf("arrived from %s, want %s", from, remote)
	}
	if st := s.Stats(); st.ReplySockets != 1 || st.DatagramsDown != 2 || st.DropReplySocket != 0 {
		t.Errorf("Stats = %+v, want one reply socket, two datagrams", st)
	}
}
