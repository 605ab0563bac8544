package udp

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
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
	for _, r := range results {
		buf := make([]byte, maxDatagram)
		for i, n := range sizes {
			want := netip.AddrPortFrom(r.remote.Addr(), uint16(4000+i))
			_ = r.client.SetReadDeadline(time.Now().Add(failAfter))
			got, from, err := r.client.ReadFromUDPAddrPort(buf)
			if err != nil {
				t.Fatalf("waiting for the %d-byte reply from %s: %v", n, want, err)
			}
			if from != want || !bytes.Equal(buf[:got], payloadOf(n, i)) {
				t.Errorf("got %d bytes from %s, want %d intact bytes from %s", got, from, n, want)
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
