package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/internal/netlab"
	"github.com/gatewayd/gatewayd/internal/status"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// statusPort is the status endpoint's port in these tests: the default.
const statusPort = 9090

// statusGet fetches url over a connection opened inside ns.
func statusGet(ns *netlab.NS, url string) (string, error) {
	c := &http.Client{
		Timeout: ioGuard,
		Transport: &http.Transport{
			DisableKeepAlives: true,
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				var conn net.Conn
				err := ns.Do(func() (err error) {
					var d net.Dialer
					conn, err = d.DialContext(ctx, network, addr)
					return err
				})
				return conn, err
			},
		},
	}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s: %s", url, resp.Status, body)
	}
	return string(body), nil
}

// metrics is a parsed /metrics answer.
type metrics map[string]*dto.MetricFamily

// scrape fetches /metrics from inside the gateway namespace and parses it
// with the Prometheus text parser.
func scrape(t *testing.T, lab *netlab.Lab, ap netip.AddrPort) metrics {
	t.Helper()
	text, err := statusGet(lab.Gateway, "http://"+ap.String()+status.PathMetrics)
	if err != nil {
		t.Fatalf("scraping %s: %v", ap, err)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("Prometheus text parser: %v\n%s", err, text)
	}
	return fams
}

// value is the sample of family name with exactly labels (name, value
// pairs), counter or gauge; it fails the test if there is none.
func (m metrics) value(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
	for _, s := range m[name].GetMetric() {
		got := map[string]string{}
		for _, l := range s.GetLabel() {
			got[l.GetName()] = l.GetValue()
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			continue
		}
		if s.Counter != nil {
			return s.GetCounter().GetValue()
		}
		return s.GetGauge().GetValue()
	}
	t.Fatalf("/metrics has no sample %s%v", name, want)
	return 0
}

// statusGW starts gatewayd with the status section given and waits until
// the endpoint listens.
func statusGW(t *testing.T, lab *netlab.Lab, o opts, statusSection string) *gw {
	t.Helper()
	g := newGW(t, lab, o)
	appendConfig(t, g.cfg, "[status]\n"+statusSection)
	g.start()
	g.waitLog("status listening", 10*time.Second)
	return g
}

// tcpExchange runs one flow to the echo server at dst: it reads the PEER
// line, sends n bytes, reads them back and returns the bytes sent and
// received. keep leaves the connection open (returned) instead of closing.
func tcpExchange(t *testing.T, lab *netlab.Lab, dst netip.AddrPort, n int, keep bool) (up, down int, c *net.TCPConn) {
	t.Helper()
	c, err := dial(lab.Client, dst)
	if err != nil {
		t.Fatalf("dial %s: %v", dst, err)
	}
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("%s: PEER line: %v", dst, err)
	}
	payload := bytes.Repeat([]byte{'x'}, n)
	if _, err := c.Write(payload); err != nil {
		t.Fatalf("%s: write: %v", dst, err)
	}
	echo := make([]byte, n)
	if _, err := io.ReadFull(r, echo); err != nil || !bytes.Equal(echo, payload) {
		t.Fatalf("%s: echo of %d bytes: %v", dst, n, err)
	}
	if !keep {
		_ = c.Close()
		c = nil
	}
	return n, len(line) + n, c
}

// waitMetric polls /metrics until cond holds for it, and returns it.
func waitMetric(t *testing.T, lab *netlab.Lab, ap netip.AddrPort, what string, cond func(metrics) bool) metrics {
	t.Helper()
	deadline := time.Now().Add(ioGuard)
	for {
		m := scrape(t, lab, ap)
		if cond(m) {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("/metrics: timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestStatusMetricsCountTraffic: TCP flows, a UDP session and DNS queries
// sent from the client show in /metrics exactly (parsed with the
// Prometheus text parser), live flows in /status, and `gatewayd status`
// prints them.
func TestStatusMetricsCountTraffic(t *testing.T) {
	netlab.RequireTools(t, "dig", "dnsmasq")
	lab := netlab.NewT(t)
	up := lab.Remotes[2]
	startDnsmasq(t, lab, up)
	serveAll(t, lab)
	serveUDPAll(t, lab)
	g := statusGW(t, lab, opts{dns: fmt.Sprintf("upstreams = [%q]\nresolv_conf = \"\"\ntimeout = \"1s\"\n", "udp://"+up.V4.String()+":53")},
		fmt.Sprintf("enabled = true\nlisten = \"127.0.0.1:%d\"\n", statusPort))
	ep := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), statusPort)

	m0 := scrape(t, lab, ep)
	if v := m0.value(t, "gatewayd_build_info", "version", "dev"); v != 1 {
		t.Errorf("gatewayd_build_info = %v, want 1", v)
	}
	for _, name := range []string{"go_goroutines", "process_resident_memory_bytes", "gatewayd_rule_reapplies_total"} {
		if m0[name] == nil {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	tcpTotal0 := m0.value(t, "gatewayd_flows_total", "proto", "tcp")

	// TCP: three flows over IPv4 and IPv6 end; one stays open.
	var wantUp, wantDown int
	for i, dst := range []netip.AddrPort{
		netip.AddrPortFrom(lab.Remotes[0].V4, echoPort),
		netip.AddrPortFrom(lab.Remotes[1].V4, echoPort),
		netip.AddrPortFrom(lab.Remotes[0].V6, echoPort),
	} {
		u, d, _ := tcpExchange(t, lab, dst, 1000*(i+1), false)
		wantUp, wantDown = wantUp+u, wantDown+d
	}
	liveDst := netip.AddrPortFrom(lab.Remotes[1].V6, echoPort)
	liveUp, liveDown, live := tcpExchange(t, lab, liveDst, 5000, true)

	// UDP: one client socket, one session, three datagrams each way.
	uc := clientUDP(t, lab, false)
	udpDst := netip.AddrPortFrom(lab.Remotes[0].V4, udpEchoPort)
	var udpUp, udpDown int
	for _, n := range []int{100, 200, 300} {
		payload := bytes.Repeat([]byte{'u'}, n)
		_, peer := exchange(t, uc, udpDst, payload)
		udpUp += n
		udpDown += len("PEER "+peer.String()+"|") + n
	}

	// /status while the flow and the session are live. The TCP bytes down
	// are those the client acknowledged: wait for a delayed ACK.
	liveClient := netip.MustParseAddrPort(live.LocalAddr().String())
	udpClient := unmapAP(netip.MustParseAddrPort(uc.LocalAddr().String()))
	wantTCP := status.Flow{Proto: "tcp", Client: liveClient, Destination: liveDst, Outbound: "direct",
		BytesUp: uint64(liveUp), BytesDown: uint64(liveDown)}
	wantUDP := status.Flow{Proto: "udp", Client: udpClient, Destination: udpDst, Outbound: "direct",
		BytesUp: uint64(udpUp), BytesDown: uint64(udpDown)}
	var flows []status.Flow
	deadline := time.Now().Add(ioGuard)
	for !hasFlow(flows, wantTCP) || !hasFlow(flows, wantUDP) {
		if time.Now().After(deadline) {
			t.Fatalf("/status active flows %+v\nlack %+v\nor %+v", flows, wantTCP, wantUDP)
		}
		body, err := statusGet(lab.Gateway, "http://"+ep.String()+status.PathStatus)
		if err != nil {
			t.Fatal(err)
		}
		var snap status.Snapshot
		if err := json.Unmarshal([]byte(body), &snap); err != nil {
			t.Fatalf("/status: %v\n%s", err, body)
		}
		flows = snap.ActiveFlows
		time.Sleep(50 * time.Millisecond)
	}

	out, err := g.cmd("status")
	if err != nil {
		t.Fatalf("gatewayd status: %v\n%s", err, out)
	}
	for _, want := range []string{"gatewayd dev", "flows:", "tcp", liveClient.String(), liveDst.String(), udpDst.String(), "status 127.0.0.1:9090"} {
		if !strings.Contains(out, want) {
			t.Errorf("gatewayd status output lacks %q:\n%s", want, out)
		}
	}

	// The open flow and session, by outbound, in /metrics.
	open := scrape(t, lab, ep)
	for _, proto := range []string{"tcp", "udp"} {
		if got := open.value(t, "gatewayd_outbound_flows_active", "outbound", "direct", "proto", proto); got != 1 {
			t.Errorf("gatewayd_outbound_flows_active{outbound=direct,proto=%s} = %v, want 1", proto, got)
		}
	}

	// TCP bytes are counted when a flow ends.
	_ = live.Close()
	wantUp, wantDown = wantUp+liveUp, wantDown+liveDown
	m := waitMetric(t, lab, ep, "the TCP flows to end", func(m metrics) bool {
		return m.value(t, "gatewayd_flows_active", "proto", "tcp") == 0
	})
	if got := m.value(t, "gatewayd_flows_total", "proto", "tcp") - tcpTotal0; got != 4 {
		t.Errorf("gatewayd_flows_total{proto=tcp} rose by %v, want 4", got)
	}
	for dir, want := range map[string]int{"up": wantUp, "down": wantDown} {
		if got := m.value(t, "gatewayd_bytes_total", "proto", "tcp", "direction", dir); got != float64(want) {
			t.Errorf("gatewayd_bytes_total{proto=tcp,direction=%s} = %v, want %d", dir, got, want)
		}
	}
	for name, want := range map[string]float64{"gatewayd_flows_total": 1, "gatewayd_flows_active": 1} {
		if got := m.value(t, name, "proto", "udp"); got != want {
			t.Errorf("%s{proto=udp} = %v, want %v", name, got, want)
		}
	}
	for dir, want := range map[string]int{"up": udpUp, "down": udpDown} {
		if got := m.value(t, "gatewayd_bytes_total", "proto", "udp", "direction", dir); got != float64(want) {
			t.Errorf("gatewayd_bytes_total{proto=udp,direction=%s} = %v, want %d", dir, got, want)
		}
		if got := m.value(t, "gatewayd_udp_datagrams_total", "direction", dir); got != 3 {
			t.Errorf("gatewayd_udp_datagrams_total{direction=%s} = %v, want 3", dir, got)
		}
	}

	// DNS: two UDP queries for one name (a miss, then a hit) and one over
	// TCP; the hijack is not the TCP relay.
	for _, tr := range []string{"+notcp", "+notcp", "+tcp"} {
		if out, err := dig(t, lab.Client, "@198.18.50.50", tr, "+short", "www.example.test", "A"); err != nil || strings.TrimSpace(out) != "198.19.7.8" {
			t.Fatalf("dig %s www.example.test = %q, %v", tr, out, err)
		}
	}
	m = scrape(t, lab, ep)
	for _, c := range []struct {
		name, label, value string
		want               float64
	}{
		{"gatewayd_dns_queries_total", "transport", "udp", 2},
		{"gatewayd_dns_queries_total", "transport", "tcp", 1},
		{"gatewayd_dns_query_results_total", "result", "cache_miss", 1},
		{"gatewayd_dns_query_results_total", "result", "cache_hit", 2},
		{"gatewayd_dns_upstream_queries_total", "upstream", "udp://" + up.V4.String() + ":53", 1},
	} {
		if got := m.value(t, c.name, c.label, c.value); got != c.want {
			t.Errorf("%s{%s=%s} = %v, want %v", c.name, c.label, c.value, got, c.want)
		}
	}
	if got := m.value(t, "gatewayd_flows_total", "proto", "tcp") - tcpTotal0; got != 4 {
		t.Errorf("after DNS over TCP, gatewayd_flows_total{proto=tcp} rose by %v, want still 4", got)
	}
	g.stop()
}

// TestStatusNotReachableFromWAN: with the endpoint on the gateway's LAN
// address, the LAN client gets its answers; the WAN side gets none, neither
// at the LAN address (routed to the router) nor at the WAN address.
func TestStatusNotReachableFromWAN(t *testing.T) {
	lab := netlab.NewT(t)
	lanEP := netip.AddrPortFrom(lab.GatewayLAN.V4, statusPort)
	g := statusGW(t, lab, opts{}, fmt.Sprintf("listen = %q\n", lanEP.String()))

	body, err := statusGet(lab.Client, "http://"+lanEP.String()+status.PathMetrics)
	if err != nil {
		t.Fatalf("LAN client: %v", err)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	if _, err := p.TextToMetricFamilies(strings.NewReader(body)); err != nil {
		t.Errorf("LAN client's /metrics does not parse: %v", err)
	}

	// The server reaches the LAN address at the IP level: a refusal below
	// is the endpoint's, not routing's.
	ctx, cancel := context.WithTimeout(context.Background(), ioGuard)
	defer cancel()
	if err := lab.Server.Ping(ctx, lab.GatewayLAN.V4, 3*time.Second); err != nil {
		t.Fatalf("server cannot reach the gateway's LAN address: %v", err)
	}
	for _, ep := range []netip.AddrPort{lanEP, netip.AddrPortFrom(lab.GatewayWAN.V4, statusPort)} {
		body, err := statusGet(lab.Server, "http://"+ep.String()+status.PathStatus)
		if err == nil {
			t.Errorf("WAN side got an answer from %s:\n%s", ep, body)
		}
		// No byte of an answer either, at the socket level.
		if n, err := firstBytes(lab.Server, ep); n > 0 {
			t.Errorf("WAN side read %d bytes from %s (%v)", n, ep, err)
		}
	}
	g.waitLog("status: refused a client not allowed to connect", 5*time.Second)

	// `gatewayd status` in the gateway namespace finds the endpoint through
	// the config; its source is the router's own LAN address.
	out, err := g.cmd("status")
	if err != nil || !strings.Contains(out, "status "+lanEP.String()) {
		t.Errorf("gatewayd status: %v\n%s", err, out)
	}
	g.stop()
}

// hasFlow reports whether flows has one like want, start and age aside.
func hasFlow(flows []status.Flow, want status.Flow) bool {
	for _, f := range flows {
		f.Start, f.AgeSeconds = time.Time{}, 0
		if f == want {
			return true
		}
	}
	return false
}

// firstBytes connects from ns to ep, sends a request and returns how many
// bytes come back before the connection ends (or fails to open).
func firstBytes(ns *netlab.NS, ep netip.AddrPort) (int, error) {
	c, err := dial(ns, ep)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	fmt.Fprintf(c, "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n", status.PathMetrics, ep)
	n, err := io.Copy(io.Discard, c)
	return int(n), err
}
