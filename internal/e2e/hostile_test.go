package e2e

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/internal/netlab"
)

// Hostile flood settings.
const (
	// floodPorts is how many client source ports the UDP flood cycles
	// through: every one is a session in gatewayd, far more than
	// max_sessions.
	floodPorts = 20_000
	// floodMin is how long the flood runs at least; it goes on until the
	// probes are done, floodMax at most.
	floodMin = 8 * time.Second
	floodMax = 60 * time.Second
	// floodSinkPort is where the flood goes in the server namespace: an
	// echo server answering every datagram, so gatewayd relays both ways.
	floodSinkPort = 7400
	// probeTries and probeTimeout: the DNS probe retries like a stub
	// resolver would; a query lost in a full receive queue is expected.
	probeTries   = 10
	probeTimeout = time.Second
	// hostileMaxSessions is udp.max_sessions as shipped.
	hostileMaxSessions = 4096
	hostileNoFile      = 16384
)

// hostileRSSBound is the most resident memory gatewayd may reach during
// the flood: a bound that catches runaway growth, not what a small router
// can spare. The UDP relay makes it this high: the flood keeps
// max_sessions (4 096) UDP sessions open, evicting the oldest, and a
// session that relayed a datagram in the last second holds a 64 KiB
// receive buffer (udp.bufferLinger), 1 MiB when its upstream has
// datagrams queued; the Go heap went to 384 MiB in such a flood. Small
// datagrams dirty only the start of each buffer, so the RSS stays far
// lower: measured 110-185 MiB, with gatewayd at rest about 14 MiB. The
// rest of the flood costs little: the DNS hijack answers garbage in its
// read loop, and the TCP and status probes are single flows.
const hostileRSSBound = 320 * mib

// floodCount counts what the flood senders sent.
type floodCount struct{ udp, dns atomic.Int64 }

// udpFlood sends UDP datagrams from the client's IPv4 address and source
// ports 10000..10000+floodPorts-1, cycling, to the sink on every remote,
// through a raw socket (one descriptor for all the ports), as fast as it
// can until stop is closed.
func udpFlood(lab *netlab.Lab, stop <-chan struct{}, n *atomic.Int64) error {
	return lab.Client.Do(func() error {
		c, err := net.ListenPacket("ip4:udp", lab.ClientAddr.V4.String())
		if err != nil {
			return err
		}
		defer c.Close()
		pkt := make([]byte, 8+32)
		copy(pkt[8:], "hostile udp flood payload 012345")
		dsts := make([]*net.IPAddr, len(lab.Remotes))
		for i, r := range lab.Remotes {
			dsts[i] = &net.IPAddr{IP: r.V4.AsSlice()}
		}
		for i := 0; ; i++ {
			if i%256 == 0 {
				select {
				case <-stop:
					return nil
				default:
				}
			}
			binary.BigEndian.PutUint16(pkt[0:], uint16(soakUDPPortBase+i%floodPorts))
			binary.BigEndian.PutUint16(pkt[2:], floodSinkPort)
			binary.BigEndian.PutUint16(pkt[4:], uint16(len(pkt)))
			binary.BigEndian.PutUint16(pkt[6:], 0) // no checksum (IPv4)
			if _, err := c.WriteTo(pkt, dsts[i%len(dsts)]); err == nil {
				n.Add(1)
			}
		}
	})
}

// dnsFlood sends garbage to port 53 at random addresses of the remote
// prefix of src's family (every datagram to another address: gatewayd
// answers the ones with a header from a socket bound to each), cycling
// through the garbage kinds, as fast as it can until stop is closed.
func dnsFlood(ns *netlab.NS, src netip.Addr, seed uint64, stop <-chan struct{}, n *atomic.Int64) error {
	return ns.Do(func() error {
		c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0)))
		if err != nil {
			return err
		}
		defer c.Close()
		r := rand.New(rand.NewPCG(seed, 0))
		for i := 0; ; i++ {
			if i%64 == 0 {
				select {
				case <-stop:
					return nil
				default:
				}
			}
			var dst netip.Addr
			if src.Is4() {
				dst = netip.AddrFrom4([4]byte{198, 19, byte(r.IntN(256)), byte(r.IntN(256))})
			} else {
				a := [16]byte{0x20, 0x01, 0, 0x02, 0, 0xff}
				binary.BigEndian.PutUint64(a[8:], r.Uint64())
				dst = netip.AddrFrom16(a)
			}
			b, _ := garbage(r, i%garbageKinds)
			if _, err := c.WriteToUDPAddrPort(b, netip.AddrPortFrom(dst, 53)); err == nil {
				n.Add(1)
			}
			// Drain FORMERR answers so they don't pile up here.
			if i%32 == 0 {
				buf := make([]byte, 512)
				for {
					_ = c.SetReadDeadline(time.Now())
					if _, _, err := c.ReadFromUDPAddrPort(buf); err != nil {
						break
					}
				}
			}
		}
	})
}

// probeDNS asks the hijack for soakName(k) A at dst, retrying like a stub
// resolver, and returns how many tries it took.
func probeDNS(lab *netlab.Lab, dst netip.AddrPort, k int) (int, error) {
	var tries int
	err := lab.Client.Do(func() error {
		c, err := newDNSClient(lab.ClientAddr.V4)
		if err != nil {
			return err
		}
		defer c.c.Close()
		var last error
		for tries = 1; tries <= probeTries; tries++ {
			id := uint16(rand.Uint32())
			got, err := c.exchange(soakQuery(k, false, id), dst, true, probeTimeout)
			if err == nil {
				return checkSoakAnswer(got, k, false, id)
			}
			last = err
		}
		tries--
		return fmt.Errorf("no answer in %d tries: %w", probeTries, last)
	})
	return tries, err
}

// TestHostileLANFlood: from the LAN at full rate, random bytes to port 53
// at random addresses (a new one each datagram), compression-pointer
// loops, QDCOUNT 65535, truncated headers and responses to port 53, and a
// UDP flood from 20 000 source ports to an echo server. During it a normal
// DNS query (retried like a stub resolver) and an HTTP request through
// gatewayd are answered, more than once; gatewayd's RSS stays under
// hostileRSSBound; it does not crash or log a panic or an error, still
// serves /metrics after, and stops cleanly.
func TestHostileLANFlood(t *testing.T) {
	netlab.RequireTools(t, "prlimit", "curl")
	lab := netlab.NewT(t)
	for _, r := range lab.Remotes {
		serveUDPEcho(t, lab.Server, netip.AddrPortFrom(r.V4, floodSinkPort))
	}
	web := netip.AddrPortFrom(lab.Remotes[0].V4, whoHTTPPort)
	serveWho(t, lab.Server, web, false)
	up := lab.Remotes[2].V4
	answered := serveSoakDNS(t, lab.Server, up)
	ep := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), statusPort)
	g := newGW(t, lab, opts{
		level: "info",
		udp:   fmt.Sprintf("max_sessions = %d\n", hostileMaxSessions),
		dns:   fmt.Sprintf("upstreams = [%q]\nresolv_conf = \"\"\ntimeout = \"2s\"\n", "udp://"+up.String()+":53"),
	})
	g.wrap = []string{"prlimit", fmt.Sprintf("--nofile=%d:%d", hostileNoFile, hostileNoFile)}
	appendConfig(t, g.cfg, fmt.Sprintf("[tcp]\nmax_connections = %d\n", soakMaxConns))
	appendConfig(t, g.cfg, fmt.Sprintf("[status]\nenabled = true\nlisten = %q\n", ep))
	g.start()
	g.waitLog("status listening", 10*time.Second)
	pid := g.proc.Pid()
	rss0, err := rssBytes(pid)
	if err != nil {
		t.Fatal(err)
	}
	peak := watchRSS(t, pid)
	logFrom := len(g.log.String())

	stop := make(chan struct{})
	var sent floodCount
	var wg sync.WaitGroup
	floodErrs := make(chan error, 3)
	wg.Go(func() { floodErrs <- udpFlood(lab, stop, &sent.udp) })
	wg.Go(func() { floodErrs <- dnsFlood(lab.Client, lab.ClientAddr.V4, 1, stop, &sent.dns) })
	wg.Go(func() { floodErrs <- dnsFlood(lab.Client, lab.ClientAddr.V6, 2, stop, &sent.dns) })
	start := time.Now()
	stopFlood := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopFlood()

	// Probes: a query for a new name (answered by the lab's DNS server
	// through gatewayd) and an HTTP request, three rounds, during the flood.
	for round := range 3 {
		time.Sleep(floodMin / 4)
		if time.Since(start) > floodMax {
			t.Fatalf("the flood ran for %v before round %d of the probes", floodMax, round)
		}
		dst := netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 19, 53, byte(round + 1)}), 53)
		tries, err := probeDNS(lab, dst, 100+round)
		if err != nil {
			t.Errorf("round %d: DNS query to %s during the flood: %v", round, dst, err)
		} else {
			t.Logf("round %d: DNS query answered during the flood after %d tries", round, tries)
		}
		probeStart := time.Now()
		w := curlWho(t, lab, "http://"+web.String()+"/")
		if w.Peer != lab.GatewayWAN.V4 {
			t.Errorf("round %d: HTTP request during the flood: the server saw %s, want gatewayd's %s", round, w.Peer, lab.GatewayWAN.V4)
		}
		t.Logf("round %d: HTTP request answered during the flood in %v", round, time.Since(probeStart).Round(time.Millisecond))
	}
	for time.Since(start) < floodMin {
		time.Sleep(100 * time.Millisecond)
	}
	stopFlood()
	took := time.Since(start)
	close(floodErrs)
	for err := range floodErrs {
		if err != nil {
			t.Errorf("flood sender: %v", err)
		}
	}
	t.Logf("flood: %d UDP datagrams from %d ports and %d DNS garbage datagrams in %v (%.0f/s); the lab's DNS server answered %d queries",
		sent.udp.Load(), floodPorts, sent.dns.Load(), took.Round(time.Millisecond),
		float64(sent.udp.Load()+sent.dns.Load())/took.Seconds(), answered.Load())

	select {
	case <-g.proc.Done():
		t.Fatalf("gatewayd exited during the flood: %v", g.proc.Wait(0))
	default:
	}
	m := scrape(t, lab, ep)
	t.Logf("gatewayd: RSS %.1f MiB at start, peak %.1f MiB during the flood (bound %d MiB); %v UDP sessions (%v evicted), %v DNS datagrams (%v malformed, %v dropped by the transport)",
		float64(rss0)/mib, float64(peak.Load())/mib, hostileRSSBound/mib,
		m.value(t, "gatewayd_flows_total", "proto", "udp"), m.value(t, "gatewayd_udp_sessions_closed_total", "reason", "evicted"),
		m.value(t, "gatewayd_dns_queries_total", "transport", "udp"), m.value(t, "gatewayd_dns_query_results_total", "result", "malformed"),
		m.value(t, "gatewayd_dns_dropped_total"))
	if p := peak.Load(); p > hostileRSSBound {
		t.Errorf("gatewayd's RSS peaked at %.1f MiB during the flood, bound %d MiB", float64(p)/mib, hostileRSSBound/mib)
	}
	if m.value(t, "gatewayd_dns_query_results_total", "result", "malformed") == 0 {
		t.Error("no malformed DNS datagram counted: the garbage did not reach gatewayd")
	}
	if m.value(t, "gatewayd_flows_total", "proto", "udp") < floodPorts {
		t.Errorf("%v UDP sessions, want at least one per flood port (%d)", m.value(t, "gatewayd_flows_total", "proto", "udp"), floodPorts)
	}
	var warns []string
	for _, l := range logLinesSince(g.log.String(), logFrom) {
		switch {
		case strings.Contains(l, "level=ERROR") || strings.Contains(l, "panic"):
			t.Errorf("gatewayd logged: %s", l)
		case strings.Contains(l, "level=WARN"):
			warns = append(warns, l)
		}
	}
	if len(warns) > 0 {
		t.Logf("gatewayd's warnings during the flood:\n%s", strings.Join(warns, "\n"))
	}
	g.stop()
}
