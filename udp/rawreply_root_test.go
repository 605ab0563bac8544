package udp

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/gatewayd/gatewayd/internal/udpio"
)

// Replies from the raw sockets reach the client from the remote's
// address:port, for both families, intact from 0 bytes to 60 KB over a
// 1500-byte MTU (gatewayd fragments; the client's kernel reassembles); no
// descriptor per remote is opened; the raw sockets carry the bypass mark;
// router-local sources are refused.
func TestRawRepliesInNetns(t *testing.T) {
	needRoot(t)
	checkGoroutines(t)
	local4, local6 := netip.MustParseAddr("198.18.0.1"), netip.MustParseAddr("2001:2::1")
	s := New(Config{BypassMark: bypassMark, IsLocal: func(a netip.Addr) bool { return a == local4 || a == local6 }}, testLogger(t))
	defer s.Shutdown(0)
	sizes := []int{0, 1, 100, 1371, 1372, 1452, 1453, 1472, 1473, 8000, 60000}
	type result struct {
		client *net.UDPConn
		remote netip.AddrPort
	}
	var results []result
	fdsBefore := 0
	inFreshNetns(t, []netip.Prefix{netip.PrefixFrom(local4, 32), netip.PrefixFrom(local6, 128)}, func() {
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			t.Fatalf("finding lo: %v", err)
		}
		if err := netlink.LinkSetMTU(lo, 1500); err != nil {
			t.Fatalf("setting lo's MTU: %v", err)
		}
		for _, tc := range []struct {
			local  netip.Addr
			remote string
		}{{local4, "198.18.0.9"}, {local6, "2001:2::9"}} {
			client, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(tc.local, 0)))
			if err != nil {
				t.Fatalf("listening on %s: %v", tc.local, err)
			}
			t.Cleanup(func() { _ = client.Close() })
			if err := client.SetReadBuffer(4 << 20); err != nil {
				t.Fatal(err)
			}
			ss := &session{client: localAddr(client)}
			var slot replySlot
			fdsBefore = fdCount(t)
			for i, n := range sizes {
				remote := netip.AddrPortFrom(netip.MustParseAddr(tc.remote), uint16(4000+i))
				s.deliver(ss, &slot, payloadOf(n, i), remote, s.now())
			}
			// A router-local source is never spoofed.
			s.deliver(ss, &slot, []byte("local"), netip.AddrPortFrom(tc.local, 53), s.now())
			results = append(results, result{client, netip.AddrPortFrom(netip.MustParseAddr(tc.remote), 0)})
		}
	})
	// Each reply comes from its own remote port (in any order: the
	// kernel may reorder packets sent from different CPUs).
	for _, r := range results {
		buf := make([]byte, udpio.MaxDatagram)
		seen := map[int]bool{}
		for range sizes {
			_ = r.client.SetReadDeadline(time.Now().Add(failAfter))
			got, from, err := r.client.ReadFromUDPAddrPort(buf)
			if err != nil {
				t.Fatalf("after %d replies from %s: %v", len(seen), r.remote.Addr(), err)
			}
			i := int(from.Port()) - 4000
			if from.Addr() != r.remote.Addr() || i < 0 || i >= len(sizes) || seen[i] {
				t.Errorf("unexpected reply of %d bytes from %s", got, from)
				continue
			}
			seen[i] = true
			if !bytes.Equal(buf[:got], payloadOf(sizes[i], i)) {
				t.Errorf("reply from %s: %d bytes, want %d intact bytes", from, got, sizes[i])
			}
		}
	}
	st := s.Stats()
	want := uint64(2 * len(sizes))
	if st.DatagramsDown != want || st.DatagramsDownRaw != want || st.ReplySockets != 0 || st.DropLocalSource != 2 || st.DropSendDown != 0 {
		t.Errorf("Stats = %+v, want %d datagrams, all raw, 2 local-source drops", st, want)
	}
	// Two families' raw sockets; nothing per remote.
	if fds := fdCount(t); fds > fdsBefore+2*rawPerFamily() {
		t.Errorf("%d descriptors after %d remotes, %d before", fds, 2*len(sizes), fdsBefore)
	}
	// The raw path allocates nothing per datagram.
	ss := &session{client: localAddr(results[0].client)}
	var slot replySlot
	remote := netip.MustParseAddrPort("198.18.0.9:4000")
	p := payloadOf(100, 0)
	if n := testing.AllocsPerRun(100, func() { slot = replySlot{}; s.deliver(ss, &slot, p, remote, s.now()) }); n != 0 && !raceEnabled {
		t.Errorf("%v allocations per raw reply, want 0", n)
	}
	for i := range s.raw.fams {
		socks := s.raw.fams[i].socks.Load()
		if socks == nil {
			t.Fatalf("family %d: no raw sockets open", i)
		}
		for _, snd := range *socks {
			expectOpts(t, "raw reply socket", syscall.Conn(snd.f), map[[2]int]int{
				{unix.SOL_SOCKET, unix.SO_MARK}: bypassMark,
			})
		}
	}
}

// payloadOf is a recognisable payload of n bytes for datagram i.
func payloadOf(n, i int) []byte {
	p := bytes.Repeat([]byte(fmt.Sprintf("<%d:%d>", i, n)), n/4+1)
	return p[:n]
}

// BenchmarkReplyPaths compares the two reply paths of a session reader,
// per batch of sessionBatch datagrams to a client in a fresh namespace
// (lo at a 1500-byte MTU, the client never reads: the receiving kernel
// drops at its buffer, the same for both): "stream" is one remote sending
// them all (bound: sendmmsg with UDP GSO), "scatter" is a different
// remote for each (bound: one sendmsg per cached socket).
func BenchmarkReplyPaths(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root (network namespaces, raw sockets)")
	}
	local := netip.MustParseAddr("198.18.0.1")
	for _, size := range []int{100, 1200} {
		for _, shape := range []string{"stream", "scatter"} {
			for _, path := range []string{"raw", "bound"} {
				b.Run(fmt.Sprintf("%s/%s/%d", shape, path, size), func(b *testing.B) {
					s := New(Config{BypassMark: bypassMark, MaxReplySockets: 8192}, nil)
					defer s.Shutdown(0)
					if path == "bound" {
						s.raw = nil
					}
					inFreshNetns(b, []netip.Prefix{netip.PrefixFrom(local, 32)}, func() {
						lo, err := netlink.LinkByName("lo")
						if err != nil {
							b.Fatal(err)
						}
						if err := netlink.LinkSetMTU(lo, 1500); err != nil {
							b.Fatal(err)
						}
						client, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(local, 0)))
						if err != nil {
							b.Fatal(err)
						}
						defer client.Close()
						ss := &session{client: localAddr(client), pendingTotal: &s.pendingBytes}
						db := newDownBatch(sessionBatch)
						const remotes = 4096
						var slot replySlot
						from := func(i int) netip.AddrPort {
							if shape == "stream" {
								return netip.MustParseAddrPort("198.18.0.9:4000")
							}
							return netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 18, 1 + byte(i>>8&0x0f), byte(i)}), uint16(4000+i))
						}
						fill := func(round int) {
							var ds []testDatagram
							for i := range sessionBatch {
								ds = append(ds, testDatagram{p: payload(i, size), from: from(round*sessionBatch + i)})
							}
							fillBatch(b, db.rb, ds)
						}
						// Warm up: every remote's bound socket opened (cached).
						for r := range remotes / sessionBatch {
							fill(r)
							slot = replySlot{}
							s.deliverBatch(ss, &slot, db, s.now())
						}
						rounds := remotes / sessionBatch
						b.SetBytes(int64(size * sessionBatch))
						// CPU time of this (locked) thread, which also runs
						// the sends' softirq work: steadier than wall time
						// on a shared machine.
						cpu0 := threadCPU(b)
						b.ResetTimer()
						for i := 0; b.Loop(); i++ {
							if shape == "scatter" {
								fill(i % rounds)
							}
							if path == "raw" {
								slot = replySlot{} // no run ever reaches bulkAfter
							}
							s.deliverBatch(ss, &slot, db, s.now())
						}
						b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*sessionBatch), "ns/datagram")
						b.ReportMetric(float64(threadCPU(b)-cpu0)/float64(b.N*sessionBatch), "cpu-ns/datagram")
						st := s.Stats()
						b.ReportMetric(float64(st.ReplySockets), "sockets")
						if st.DropSendDown+st.DropReplySocket > 0 {
							b.Errorf("drops: %+v", st)
						}
					})
				})
			}
		}
	}
}

// threadCPU is the calling thread's user and system CPU time in ns.
func threadCPU(tb testing.TB) int64 {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_THREAD, &ru); err != nil {
		tb.Fatal(err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// A remote that streams (more than bulkAfter datagrams in a row) moves to
// a bound reply socket; if no bound socket can be had (the fd
// limit), its datagrams keep going by raw socket.
func TestStreamingRemoteGetsBoundSocket(t *testing.T) {
	needRoot(t)
	checkGoroutines(t)
	local := netip.MustParseAddr("198.18.0.1")
	remote := netip.MustParseAddrPort("198.18.0.9:443")
	for _, bindFails := range []bool{false, true} {
		s := New(Config{BypassMark: bypassMark}, testLogger(t))
		binds := 0
		if bindFails {
			s.openReply = func(netip.AddrPort) (*net.UDPConn, error) { binds++; return nil, unix.EMFILE }
		}
		const n = 2 * bulkAfter
		var client *net.UDPConn
		inFreshNetns(t, []netip.Prefix{netip.PrefixFrom(local, 32)}, func() {
			var err error
			client, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(local, 0)))
			if err != nil {
				t.Fatalf("listening: %v", err)
			}
			if err := client.SetReadBuffer(1 << 20); err != nil {
				t.Fatal(err)
			}
			ss := &session{client: localAddr(client)}
			var slot replySlot
			for i := range n {
				s.deliver(ss, &slot, []byte(fmt.Sprint(i)), remote, s.now())
			}
		})
		// Every datagram arrives from the remote. (gatewayd sends them in
		// order, the raw ones flushed before the first bound one; the
		// kernel may still reorder across CPUs, so order is not checked.)
		got := map[string]bool{}
		buf := make([]byte, 64)
		for range n {
			_ = client.SetReadDeadline(time.Now().Add(failAfter))
			k, from, err := client.ReadFromUDPAddrPort(buf)
			if err != nil {
				t.Fatalf("bind fails=%v: after %d datagrams: %v", bindFails, len(got), err)
			}
			if from != remote {
				t.Errorf("datagram %q from %s, want %s", buf[:k], from, remote)
			}
			got[string(buf[:k])] = true
		}
		for i := range n {
			if !got[fmt.Sprint(i)] {
				t.Errorf("bind fails=%v: datagram %d missing", bindFails, i)
			}
		}
		st := s.Stats()
		wantRaw, wantSockets := uint64(bulkAfter), uint64(1)
		if bindFails {
			wantRaw, wantSockets = n, 0
		}
		if st.DatagramsDown != n || st.DatagramsDownRaw != wantRaw || st.ReplySockets != wantSockets || st.DropReplySocket != 0 {
			t.Errorf("bind fails=%v: Stats = %+v, want %d datagrams, %d raw, %d reply sockets", bindFails, st, n, wantRaw, wantSockets)
		}
		if bindFails && binds != 1 {
			t.Errorf("%d binds tried for %d datagrams, want 1 (then bulkAfter more by raw socket)", binds, n)
		}
		s.Shutdown(0)
		_ = client.Close()
	}
}
