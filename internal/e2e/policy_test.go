package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/config"
	"github.com/gatewayd/gatewayd/internal/netlab"
)

// The policy tests (issue 5) route flows by rules to outbounds: direct,
// reject, and real upstream proxies from Debian running in the server
// namespace. Every proxy connects out from an address of its own (see
// policy_proxies_test.go), so the PEER line of the test servers tells
// which way a flow went:
//
//	the gateway's WAN address   relayed by gatewayd, outbound "direct"
//	a proxy's egress address    through that proxy
//	the client's own address    forwarded by the kernel (fast path; the lab has no NAT)

// policyPort is a port the rules match on; an echo server (peerEcho)
// listens on it where a test needs one.
const policyPort = 7300

// newPolicyGW is newGW with policy (the [[outbound]], [route] and [[rule]]
// tables, and any table configText leaves out, such as [tcp]) appended to
// the config, which `gatewayd check` must accept.
func newPolicyGW(t *testing.T, lab *netlab.Lab, o opts, policy string) *gw {
	t.Helper()
	g := newGW(t, lab, o)
	appendConfig(t, g.cfg, "\n"+policy)
	if out, err := g.cmd("check"); err != nil {
		t.Fatalf("gatewayd check: %v\n%s", err, out)
	}
	return g
}

// policyMetrics scrapes gatewayd's /metrics at the default status.listen
// (the config leaves [status] alone), once the endpoint listens.
func policyMetrics(t *testing.T, g *gw) metrics {
	t.Helper()
	g.waitLog("status listening", logGuard)
	return scrape(t, g.lab, netip.MustParseAddrPort(config.DefaultStatusListen))
}

// logGuard bounds the wait for a line in gatewayd's log (lines come
// through a pipe, a little after the event): a failure guard for a loaded
// machine, not a measurement.
const logGuard = 15 * time.Second

// waitLogRE waits for a line of gatewayd's log matching re and returns
// its submatches.
func waitLogRE(t *testing.T, g *gw, re *regexp.Regexp) []string {
	t.Helper()
	deadline := time.Now().Add(logGuard)
	for {
		if m := re.FindStringSubmatch(g.log.String()); m != nil {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("gatewayd logged no line matching %s within %v", re, logGuard)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// logValue matches one slog text value, quoted or not.
const logValue = `("(?:[^"\\]|\\.)*"|\S*)`

// logUnquote returns the text of a value logValue matched.
func logUnquote(v string) string {
	if u, err := strconv.Unquote(v); err == nil {
		return u
	}
	return v
}

// flowLogRE matches msg's log line for a flow to dst (slog text format)
// and captures the value of key.
func flowLogRE(msg string, dst netip.AddrPort, key string) *regexp.Regexp {
	return regexp.MustCompile(`msg="` + regexp.QuoteMeta(msg) + `".* dst="?` + regexp.QuoteMeta(dst.String()) +
		`"? .*\b` + key + `=` + logValue)
}

// routedTo returns the outbound the dispatcher logged for the TCP flow to
// dst ("tcp flow routed ... outbound=NAME").
func routedTo(t *testing.T, g *gw, dst netip.AddrPort) string {
	t.Helper()
	return logUnquote(waitLogRE(t, g, flowLogRE("tcp flow routed", dst, "outbound"))[1])
}

// routedFrom is routedTo for the flow from src (any port) to dst, for
// destinations several flows in a test go to.
func routedFrom(t *testing.T, g *gw, src netip.Addr, dst netip.AddrPort) string {
	t.Helper()
	client := strings.TrimSuffix(netip.AddrPortFrom(src, 0).String(), ":0")
	re := regexp.MustCompile(`msg="tcp flow routed".* client="?` + regexp.QuoteMeta(client) + `:\d+"? dst="?` +
		regexp.QuoteMeta(dst.String()) + `"? .*\boutbound=` + logValue)
	return logUnquote(waitLogRE(t, g, re)[1])
}

// closedErr returns the err of the relay's "tcp flow closed" line for the
// flow to dst, which must have ended on a dial error.
func closedErr(t *testing.T, g *gw, dst netip.AddrPort) string {
	t.Helper()
	re := regexp.MustCompile(`msg="tcp flow closed".* dst="?` + regexp.QuoteMeta(dst.String()) +
		`"? .*reason="dial error" err=` + logValue)
	return logUnquote(waitLogRE(t, g, re)[1])
}

// expectReset connects from the client to dst, where policy or a failing
// upstream ends the flow, and requires a reset (at connect, or at the
// first read: gatewayd's TPROXY listener completes the handshake first).
// It returns how long the failure took, for the log: whether a timer was
// involved is told by the cause gatewayd logs and counts (closedErr,
// dial failure kinds), not by wall-clock margins a loaded machine can
// eat. A flow that is never reset fails at the client's ioGuard deadline.
func expectReset(t *testing.T, lab *netlab.Lab, dst netip.AddrPort) time.Duration {
	t.Helper()
	start := time.Now()
	c, err := dial(lab.Client, dst)
	if err == nil {
		var n int
		n, err = c.Read(make([]byte, 64))
		c.Close()
		if err == nil {
			err = fmt.Errorf("read %d bytes: the flow was relayed", n)
		}
	}
	took := time.Since(start)
	if !isReset(err) {
		t.Errorf("flow to %s: %v after %v, want a connection reset", dst, err, took.Round(time.Millisecond))
	}
	return took
}

// peerFrom connects from src (an address of the client) to dst, a peerEcho
// server, and returns the address the server saw.
func peerFrom(t *testing.T, lab *netlab.Lab, src netip.Addr, dst netip.AddrPort) netip.Addr {
	t.Helper()
	var c net.Conn
	err := lab.Client.Do(func() (err error) {
		d := net.Dialer{Timeout: ioGuard, LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0))}
		c, err = d.Dial("tcp", dst.String())
		return err
	})
	if err != nil {
		t.Fatalf("dial %s from %s: %v", dst, src, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(ioGuard))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("%s from %s: reading PEER line: %v", dst, src, err)
	}
	peer, err := netip.ParseAddr(strings.TrimSpace(strings.TrimPrefix(line, "PEER ")))
	if err != nil {
		t.Fatalf("%s from %s: bad PEER line %q", dst, src, line)
	}
	return peer
}

// pick returns a's address of dst's family.
func pick(a netlab.Addrs, dst netip.Addr) netip.Addr {
	if dst.Is4() {
		return a.V4
	}
	return a.V6
}

// hostPrefix is a as a single-address prefix, as the config writes it.
func hostPrefix(a netip.Addr) string { return netip.PrefixFrom(a, a.BitLen()).String() }

// dnsVia is the [dns] section of a gatewayd that forwards to the resolver
// on dns (startDnsmasq's) over UDP, with no resolv.conf and a 1s timeout.
func dnsVia(dns netlab.Addrs) string {
	return fmt.Sprintf("upstreams = [%q]\nresolv_conf = \"\"\ntimeout = \"1s\"\n", "udp://"+dns.V4.String()+":53")
}

// serveNamed makes www.example.test's addresses in startDnsmasq's zone
// real: on the server's lo, with an echo server on each. It returns them.
func serveNamed(t *testing.T, lab *netlab.Lab) netlab.Addrs {
	t.Helper()
	named := netlab.Addrs{V4: netip.MustParseAddr("198.19.7.8"), V6: netip.MustParseAddr("2001:2:ff::78")}
	for _, a := range []netip.Addr{named.V4, named.V6} {
		if err := lab.Server.AddAddr(context.Background(), "lo", netip.PrefixFrom(a, a.BitLen())); err != nil {
			t.Fatal(err)
		}
		serve(t, lab.Server, netip.AddrPortFrom(a, echoPort), peerEcho)
	}
	return named
}
