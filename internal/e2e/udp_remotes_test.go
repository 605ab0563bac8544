package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gatewayd/gatewayd/internal/listen"
	"github.com/gatewayd/gatewayd/internal/netlab"
)

// Many remotes from one client socket (a BitTorrent DHT node, a P2P game).
const (
	manyRemotes       = 5000
	manyRemotesPort   = 20000 // first server port; lab.Remotes × ports
	manyRemotesSize   = 64    // payload bytes, a DHT ping's order of size
	manyRemotesFlight = 256   // datagrams in flight (unanswered) at most
	// manyRemotesFds is how many descriptors gatewayd may add for one
	// client's 5 000 remotes: its session's upstream, the reply path's
	// raw socket, and slack for the Go runtime.
	manyRemotesFds = 16
)

// TestUDPManyRemotes: one client socket sends one datagram to each of
// 5 000 remote address:port pairs (many ports on the lab's three remote
// addresses), per family; the server echoes from the address:port the
// client targeted, and every reply must come back from it. gatewayd's
// descriptors and RSS are reported, and descriptors must not grow with
// the number of remotes.
//
// The client keeps at most manyRemotesFlight datagrams unanswered, so the
// test does not depend on how fast gatewayd drains its listener's buffer;
// the first window still arrives while the session's upstream is opening.
func TestUDPManyRemotes(t *testing.T) {
	lab := netlab.NewT(t)
	g := newGW(t, lab, opts{})
	g.start()
	pid := g.proc.Pid()
	requireReplyTracked(t, lab)
	baseFds, baseRSS := fdCount(t, pid), rssKiB(t, pid)
	t.Logf("gatewayd at start: %d fds, RSS %d KiB", baseFds, baseRSS)
	for _, v6 := range []bool{false, true} {
		var targets []netip.AddrPort
		for i := range manyRemotes {
			r := lab.Remotes[i%len(lab.Remotes)]
			a := r.V4
			if v6 {
				a = r.V6
			}
			targets = append(targets, netip.AddrPortFrom(a, uint16(manyRemotesPort+i/len(lab.Remotes))))
		}
		closeServers := serveUDPEchoMany(t, lab.Server, targets)
		got := sendToMany(t, lab, v6, targets)
		fds, rss := fdCount(t, pid), rssKiB(t, pid)
		t.Logf("v6=%v: %d of %d replies delivered; gatewayd %d fds (%+d), RSS %d KiB (%+d)",
			v6, got, len(targets), fds, fds-baseFds, rss, rss-baseRSS)
		if got != len(targets) {
			t.Errorf("v6=%v: %d of %d replies delivered", v6, got, len(targets))
		}
		if fds > baseFds+manyRemotesFds {
			t.Errorf("v6=%v: gatewayd holds %d fds for %d remotes, %d at start", v6, fds, len(targets), baseFds)
		}
		closeServers()
	}
	// Fragmented raw replies pass conntrack's reassembly as well: 60 KB
	// both ways, under the same rule.
	for _, v6 := range []bool{false, true} {
		dst := netip.AddrPortFrom(lab.Remotes[0].V4, udpEchoPort)
		if v6 {
			dst = netip.AddrPortFrom(lab.Remotes[0].V6, udpEchoPort)
		}
		serveUDPEcho(t, lab.Server, dst)
		exchange(t, clientUDP(t, lab, v6), dst, bytes.Repeat([]byte("fragment"), 60000/8))
	}
	// The check itself: one datagram from a source the client never
	// talked to, per family, is what the rule drops.
	for _, a := range []netip.Addr{lab.Remotes[0].V4, lab.Remotes[0].V6} {
		err := lab.Gateway.Do(func() error {
			c, err := listen.ReplySocket(netip.AddrPortFrom(a, manyRemotesPort-1), 0)
			if err != nil {
				return err
			}
			defer c.Close()
			client := lab.ClientAddr.V4
			if a.Is6() {
				client = lab.ClientAddr.V6
			}
			// The drop in OUTPUT shows as EPERM.
			if _, err = c.WriteToUDPAddrPort([]byte("canary"), netip.AddrPortFrom(client, 9)); !errors.Is(err, syscall.EPERM) {
				return fmt.Errorf("sent (%v), want EPERM from the DROP rule", err)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("canary from %s: %v", a, err)
		}
	}
	for _, bin := range []string{"iptables", "ip6tables"} {
		out, err := lab.Gateway.Run(context.Background(), bin, "-w", "5", "-L", "OUTPUT", "-v", "-x", "-n")
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(out, "\n") {
			if f := strings.Fields(line); len(f) > 2 && f[2] == "DROP" && f[0] != "1" {
				t.Errorf("%s: %s datagrams to the client dropped as not ESTABLISHED, want 1 (the canary): %s", bin, f[0], line)
			}
		}
	}
	g.stop()
}

// requireReplyTracked makes the gateway drop UDP towards the LAN that is
// not ESTABLISHED in conntrack: a reply whose source is not exactly the
// address:port the client sent to would start a new entry and be lost.
// (It also turns conntrack on in the gateway namespace.)
func requireReplyTracked(t *testing.T, lab *netlab.Lab) {
	t.Helper()
	for _, bin := range []string{"iptables", "ip6tables"} {
		if _, err := lab.Gateway.Run(context.Background(), bin, "-w", "5", "-A", "OUTPUT", "-o", netlab.LANBridge,
			"-p", "udp", "-m", "conntrack", "!", "--ctstate", "ESTABLISHED", "-j", "DROP"); err != nil {
			t.Fatal(err)
		}
	}
}

// serveUDPEchoMany binds a socket to every target in ns, each echoing
// what it gets from its own address:port. The returned function closes
// them and waits for their goroutines.
func serveUDPEchoMany(t *testing.T, ns *netlab.NS, targets []netip.AddrPort) func() {
	t.Helper()
	conns := make([]*net.UDPConn, 0, len(targets))
	err := ns.Do(func() error {
		for _, a := range targets {
			c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(a))
			if err != nil {
				return err
			}
			conns = append(conns, c)
		}
		return nil
	})
	var wg sync.WaitGroup
	closeAll := func() {
		for _, c := range conns {
			_ = c.Close()
		}
		wg.Wait()
	}
	if err != nil {
		closeAll()
		t.Fatalf("binding %d echo sockets in %s: %v", len(targets), ns.Name, err)
	}
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 2048)
			for {
				n, src, err := c.ReadFromUDPAddrPort(buf)
				if err != nil {
					return
				}
				_, _ = c.WriteToUDPAddrPort(buf[:n], src)
			}
		}()
	}
	t.Cleanup(closeAll)
	return closeAll
}

// sendToMany sends one datagram to every target from one client socket
// and returns how many distinct targets answered from their own
// address:port. It stops waiting once every target has answered, or when
// no reply has come for failAfterQuiet.
func sendToMany(t *testing.T, lab *netlab.Lab, v6 bool, targets []netip.AddrPort) int {
	t.Helper()
	const failAfterQuiet = 20 * time.Second
	c := clientUDPBuffered(t, lab, v6)
	var (
		mu       sync.Mutex
		cond     = sync.NewCond(&mu)
		got      = make([]bool, len(targets))
		replies  int
		lastSeen = time.Now()
		bad      atomic.Int64
	)
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for {
			n, src, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			i := int(binary.BigEndian.Uint32(buf[:4]))
			if n != manyRemotesSize || i >= len(targets) || unmapAP(src) != targets[i] {
				bad.Add(1)
				continue
			}
			mu.Lock()
			if !got[i] {
				got[i] = true
				replies++
				lastSeen = time.Now()
				cond.Broadcast()
			}
			mu.Unlock()
		}
	}()
	// A ticker wakes the waiters so they can notice a quiet period.
	stopTick := make(chan struct{})
	go func() {
		tk := time.NewTicker(100 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-stopTick:
				return
			case <-tk.C:
				cond.Broadcast()
			}
		}
	}()
	defer close(stopTick)

	// waitUntil waits for ok, or until no reply came for quiet; it
	// reports whether ok held.
	waitUntil := func(ok func() bool, quiet time.Duration) bool {
		mu.Lock()
		defer mu.Unlock()
		for !ok() {
			if time.Since(lastSeen) > quiet {
				return false
			}
			cond.Wait()
		}
		return true
	}
	payload := make([]byte, manyRemotesSize)
	for i, dst := range targets {
		// Datagrams lost on the way never free their window slot: after
		// a quiet second go on regardless (the count decides, not this).
		waitUntil(func() bool { return i-replies < manyRemotesFlight }, time.Second)
		binary.BigEndian.PutUint32(payload, uint32(i))
		copy(payload[4:], fmt.Sprintf("|%s|", dst))
		if _, err := c.WriteToUDPAddrPort(payload, dst); err != nil {
			t.Fatalf("sending to %s: %v", dst, err)
		}
	}
	waitUntil(func() bool { return replies == len(targets) }, failAfterQuiet)
	_ = c.Close()
	<-done
	if n := bad.Load(); n > 0 {
		t.Errorf("v6=%v: %d replies malformed or from the wrong source", v6, n)
	}
	mu.Lock()
	defer mu.Unlock()
	if replies < len(targets) {
		var missing []string
		for i, ok := range got {
			if !ok && len(missing) < 10 {
				missing = append(missing, targets[i].String())
			}
		}
		t.Logf("v6=%v: no reply from e.g. %s", v6, strings.Join(missing, ", "))
	}
	return replies
}

// clientUDPBuffered is clientUDP with a receive buffer that holds every
// reply even if the test's reader is descheduled (SO_RCVBUFFORCE, root).
func clientUDPBuffered(t *testing.T, lab *netlab.Lab, v6 bool) *net.UDPConn {
	t.Helper()
	laddr := netip.AddrPortFrom(lab.ClientAddr.V4, 0)
	if v6 {
		laddr = netip.AddrPortFrom(lab.ClientAddr.V6, 0)
	}
	var c *net.UDPConn
	err := lab.Client.Do(func() error {
		lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
			var serr error
			if err := rc.Control(func(fd uintptr) {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 32<<20)
			}); err != nil {
				return err
			}
			return serr
		}}
		pc, err := lc.ListenPacket(context.Background(), "udp", laddr.String())
		if err != nil {
			return err
		}
		c = pc.(*net.UDPConn)
		return nil
	})
	if err != nil {
		t.Fatalf("client socket on %s: %v", laddr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// rssKiB is the resident set size of pid in KiB (VmRSS).
func rssKiB(t *testing.T, pid int) int {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			var kib int
			if _, err := fmt.Sscanf(strings.TrimSpace(rest), "%d kB", &kib); err != nil {
				t.Fatalf("parsing VmRSS %q: %v", rest, err)
			}
			return kib
		}
	}
	t.Fatalf("no VmRSS in /proc/%d/status", pid)
	return 0
}

// TestUDPStreamingRemote: a remote that answers many datagrams in a row
// gets a bound reply socket after bulkAfter (64) raw replies, per family;
// every reply arrives from it.
func TestUDPStreamingRemote(t *testing.T) {
	lab := netlab.NewT(t)
	serveUDPAll(t, lab)
	g := newGW(t, lab, opts{})
	g.start()
	ep := netip.MustParseAddrPort("127.0.0.1:9090")
	const n = 300
	for i, v6 := range []bool{false, true} {
		c := clientUDP(t, lab, v6)
		dst := netip.AddrPortFrom(lab.Remotes[0].V4, udpEchoPort)
		if v6 {
			dst = netip.AddrPortFrom(lab.Remotes[0].V6, udpEchoPort)
		}
		for j := range n {
			payload := bytes.Repeat([]byte{byte(j)}, 1200)
			if src, _ := exchange(t, c, dst, payload); src != dst {
				t.Fatalf("v6=%v: reply %d from %s, want %s", v6, j, src, dst)
			}
		}
		m := scrape(t, lab, ep)
		if got := m.value(t, "gatewayd_udp_raw_replies_total"); got != float64(64*(i+1)) {
			t.Errorf("v6=%v: %v raw replies, want the first 64 of each family's stream", v6, got)
		}
		if got := m.value(t, "gatewayd_udp_reply_sockets"); got != float64(i+1) {
			t.Errorf("v6=%v: %v bound reply sockets, want one per streaming remote", v6, got)
		}
	}
	g.stop()
}
