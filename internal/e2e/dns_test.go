package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/internal/netlab"
	mdns "github.com/miekg/dns"
)

// startDnsmasq runs a real upstream resolver (dnsmasq) in the server
// namespace on addr:53, serving a small test zone.
func startDnsmasq(t *testing.T, lab *netlab.Lab, addrs netlab.Addrs) *netlab.Proc {
	t.Helper()
	log := &syncBuffer{}
	p, err := lab.Server.Start(context.Background(), log, "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null",
		"--no-resolv", "--no-hosts", "--bind-interfaces", "--user=root", "--pid-file=",
		"--listen-address="+addrs.V4.String(), "--listen-address="+addrs.V6.String(), "--port=53",
		"--host-record=www.example.test,198.19.7.8,2001:2:ff::78",
		"--host-record=blocked.example.test,198.19.7.9",
		"--address=/private.example.test/10.1.2.3",
		"--local-ttl=300", "--log-queries", "--log-facility=-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("dnsmasq log:\n%s", log.String())
		}
	})
	deadline := time.Now().Add(ioGuard)
	for !strings.Contains(log.String(), "started") {
		if time.Now().After(deadline) {
			t.Fatalf("dnsmasq did not start:\n%s", log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return p
}

// dnsLab is a lab with dnsmasq upstream and gatewayd hijacking DNS.
func dnsLab(t *testing.T) (*netlab.Lab, *gw, *netlab.Proc) {
	netlab.RequireTools(t, "dig", "dnsmasq")
	lab := netlab.NewT(t)
	up := lab.Remotes[2]
	dnsmasq := startDnsmasq(t, lab, up)
	block := filepath.Join(t.TempDir(), "block.txt")
	if err := os.WriteFile(block, []byte("0.0.0.0 blocked.example.test\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	g := newGW(t, lab, opts{dns: fmt.Sprintf("upstreams = [%q]\nresolv_conf = \"\"\ntimeout = \"1s\"\nblock_lists = [%q]\n",
		"udp://"+up.V4.String()+":53", block)})
	g.start()
	return lab, g, dnsmasq
}

// dig runs dig in the client namespace and returns its output.
func dig(t *testing.T, ns *netlab.NS, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return ns.Run(ctx, "dig", append([]string{"+time=3", "+tries=1"}, args...)...)
}

// TestDNSHijackAnswersFromQueriedAddress: queries to arbitrary addresses,
// over UDP and TCP, IPv4 and IPv6, are answered by gatewayd from exactly
// the queried address; the repeat is a cache hit.
func TestDNSHijackAnswersFromQueriedAddress(t *testing.T) {
	lab, g, _ := dnsLab(t)
	for _, server := range []string{"198.18.50.50", "198.19.99.1", "2001:2:50::50"} {
		for _, tr := range []string{"+notcp", "+tcp"} {
			out, err := dig(t, lab.Client, "@"+server, tr, "+short", "www.example.test", "A")
			if err != nil || strings.TrimSpace(out) != "198.19.7.8" {
				t.Errorf("dig @%s %s www.example.test A = %q, %v", server, tr, out, err)
			}
		}
		// Reply source checked on the client's own unconnected socket.
		dst := netip.AddrPortFrom(netip.MustParseAddr(server), 53)
		c := clientUDP(t, lab, dst.Addr().Is6())
		q := new(mdns.Msg)
		q.SetQuestion("www.example.test.", mdns.TypeAAAA)
		wire, _ := q.Pack()
		if _, err := c.WriteToUDPAddrPort(wire, dst); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 1500)
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, src, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("answer from %s: %v", dst, err)
		}
		var r mdns.Msg
		if err := r.Unpack(buf[:n]); err != nil || len(r.Answer) != 1 || !strings.Contains(r.Answer[0].String(), "2001:2:ff::78") {
			t.Errorf("AAAA answer from %s: %v %v", dst, r.Answer, err)
		}
		if unmapAP(src) != dst {
			t.Errorf("answer came from %s, want %s", src, dst)
		}
	}
	// The log arrives through a pipe: wait for the ninth line.
	deadline := time.Now().Add(logGuard)
	for strings.Count(g.log.String(), "name=www.example.test.") < 9 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	log := g.log.String()
	if n := strings.Count(log, "name=www.example.test."); n != 9 {
		t.Errorf("gatewayd logged %d queries for www.example.test, want 9", n)
	}
	if !strings.Contains(log, "cached=true") {
		t.Errorf("no cache hit logged:\n%s", log)
	}
	g.stop()
}

// TestDNSPolicies: block list, rebinding protection, WAN queries, and an
// upstream that is down.
func TestDNSPolicies(t *testing.T) {
	lab, g, dnsmasq := dnsLab(t)
	if out, _ := dig(t, lab.Client, "@198.18.50.50", "blocked.example.test", "A"); !strings.Contains(out, "status: NXDOMAIN") {
		t.Errorf("blocked name not NXDOMAIN:\n%s", out)
	}
	if out, _ := dig(t, lab.Client, "@198.18.50.50", "private.example.test", "A"); !strings.Contains(out, "status: REFUSED") {
		t.Errorf("rebinding answer not refused:\n%s", out)
	}
	// From the WAN side, to the gateway's WAN address: nothing answers.
	if out, err := dig(t, lab.Server, "@"+lab.GatewayWAN.V4.String(), "www.example.test", "A"); err == nil || strings.Contains(out, "198.19.7.8") {
		t.Errorf("a WAN query got an answer:\n%s", out)
	}
	dnsmasq.Kill()
	start := time.Now()
	out, _ := dig(t, lab.Client, "@198.18.50.50", "other.example.test", "A")
	if !strings.Contains(out, "status: SERVFAIL") {
		t.Errorf("upstream down: want SERVFAIL, got:\n%s", out)
	}
	t.Logf("SERVFAIL after %v with the upstream down (timeout 1s)", time.Since(start).Round(time.Millisecond))
	g.stop()
}
