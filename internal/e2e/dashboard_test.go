package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/internal/dashboard"
	"github.com/gatewayd/gatewayd/internal/netlab"
)

// Dashboard test setup.
const (
	streamPort = 8081 // an HTTP server that keeps its answer coming: curl's flow stays open
	// browserGuard bounds one headless Chromium run (start, load, render,
	// exit) on a loaded 2-core machine: a failure guard, not a measurement.
	browserGuard = 2 * time.Minute
	// browserBudget is the page's virtual time: its polls run a few
	// times (every 2 s and 5 s) before the DOM is read.
	browserBudget = "12000"
)

// TestDashboardInBrowser: gatewayd runs in the lab with the status
// endpoint on its LAN address and the query log on; the LAN client curls
// a name it resolved, digs a blocked name, keeps a UDP session; then a
// real headless Chromium in the client namespace loads the dashboard, and
// the rendered page shows what a person would look for: the client (named
// by the DHCP leases file) with the destinations it uses, counters that
// moved, the blocked name in the DNS panel, rule hits; no console output;
// a screenshot is kept as an artifact.
func TestDashboardInBrowser(t *testing.T) {
	netlab.RequireTools(t, "dig", "dnsmasq", "curl", "chromium")
	lab := netlab.NewT(t)
	up := lab.Remotes[2]
	startDnsmasq(t, lab, up)
	dir := t.TempDir()
	block := filepath.Join(dir, "block.txt")
	leases := filepath.Join(dir, "dhcp.leases")
	writeTestFile(t, block, "0.0.0.0 blocked.example.test\n")
	writeTestFile(t, leases, fmt.Sprintf("%d 02:00:00:00:01:02 %s e2e-laptop 01:02:00:00:00:01:02\n",
		time.Now().Add(time.Hour).Unix(), lab.ClientAddr.V4))

	// www.example.test (dnsmasq's answer) serves a stream on the server.
	web := netip.AddrPortFrom(netip.MustParseAddr("198.19.7.8"), streamPort)
	ctx, cancel := context.WithTimeout(context.Background(), ioGuard)
	defer cancel()
	if err := lab.Server.AddAddr(ctx, "lo", netip.PrefixFrom(web.Addr(), 32)); err != nil {
		t.Fatal(err)
	}
	serve(t, lab.Server, web, streamHTTP(t))
	udpDst := netip.AddrPortFrom(lab.Remotes[0].V4, udpEchoPort)
	serveUDPEcho(t, lab.Server, udpDst)

	ep := netip.AddrPortFrom(lab.GatewayLAN.V4, statusPort)
	g := newPolicyGW(t, lab, opts{dns: fmt.Sprintf("upstreams = [%q]\nresolv_conf = \"\"\ntimeout = \"1s\"\nblock_lists = [%q]\n",
		"udp://"+up.V4.String()+":53", block)}, fmt.Sprintf(`[status]
listen = %q
query_log = true
dhcp_leases = %q

[[rule]]
proto = "tcp"
port = [%d]
outbound = "direct"

[[rule]]
proto = "udp"
port = [%d]
outbound = "direct"
`, ep.String(), leases, streamPort, udpEchoPort))
	g.start()
	g.waitLog("status listening", logGuard)
	base := "http://" + ep.String()
	getNow(t, lab, base) // the first throughput sample, before the traffic

	// Traffic: DNS (a normal and a blocked name), a streaming HTTP flow by
	// curl to the address DNS gave, a UDP session.
	if out, err := dig(t, lab.Client, "@198.18.50.50", "+short", "www.example.test", "A"); err != nil || strings.TrimSpace(out) != web.Addr().String() {
		t.Fatalf("dig www.example.test = %q, %v", out, err)
	}
	if out, _ := dig(t, lab.Client, "@198.18.50.50", "blocked.example.test", "A"); !strings.Contains(out, "status: NXDOMAIN") {
		t.Fatalf("blocked name not NXDOMAIN:\n%s", out)
	}
	curlLog := &syncBuffer{}
	if _, err := lab.Client.Start(context.Background(), curlLog, "curl", "-sS", "-N", "--max-time", "600",
		"http://"+web.String()+"/"); err != nil {
		t.Fatal(err)
	}
	uc := clientUDP(t, lab, false)
	exchange(t, uc, udpDst, []byte("hello dashboard"))

	// The API sees it all, and two samples give the graph a point.
	waitDashboard(t, lab, base, web, udpDst)
	fillHistory(t, lab, base, func() { exchange(t, uc, udpDst, []byte("still here")) })

	artifacts := artifactDir(t)
	dom, console := runChromium(t, lab, artifacts, "--dump-dom", base+"/")
	if err := os.WriteFile(filepath.Join(artifacts, "dashboard.html"), []byte(dom), 0o644); err != nil {
		t.Fatal(err)
	}
	if len(console) > 0 {
		t.Errorf("the page wrote to the console:\n%s", strings.Join(console, "\n"))
	}
	checkDOM(t, dom, lab, web, udpDst)

	for name, size := range map[string]string{"dashboard.png": "1280,900", "dashboard-phone.png": "390,844"} {
		png := filepath.Join(artifacts, name)
		_, console = runChromium(t, lab, artifacts, "--screenshot="+png, "--window-size="+size, "--hide-scrollbars", base+"/")
		if len(console) > 0 {
			t.Errorf("the page wrote to the console (screenshot %s):\n%s", name, strings.Join(console, "\n"))
		}
		if b, err := os.ReadFile(png); err != nil || !bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")) {
			t.Errorf("screenshot %s: not a PNG (%d bytes, %v)", png, len(b), err)
		}
	}
	t.Logf("artifacts (DOM, screenshot) in %s", artifacts)
	if out := curlLog.String(); strings.Contains(out, "curl:") {
		t.Errorf("curl failed: %s", out)
	}
	g.stop()
}

func writeTestFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// streamHTTP answers any request with a response whose body keeps coming,
// a line every 100 ms, until the client or the test goes.
func streamHTTP(t *testing.T) func(*net.TCPConn) {
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	return func(c *net.TCPConn) {
		_ = c.SetDeadline(time.Time{}) // serve's deadline would end the stream
		buf := make([]byte, 4096)
		if _, err := c.Read(buf); err != nil {
			return
		}
		if _, err := fmt.Fprint(c, "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n"); err != nil {
			return
		}
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				if _, err := c.Write(bytes.Repeat([]byte{'s'}, 1000)); err != nil {
					return
				}
			}
		}
	}
}

// getNow fetches /api/now from the LAN client.
func getNow(t *testing.T, lab *netlab.Lab, base string) dashboard.NowView {
	t.Helper()
	var v dashboard.NowView
	getJSON(t, lab, base+dashboard.PathNow, &v)
	return v
}

func getJSON(t *testing.T, lab *netlab.Lab, url string, v any) {
	t.Helper()
	body, err := statusGet(lab.Client, url)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(body), v); err != nil {
		t.Fatalf("%s: %v\n%s", url, err, body)
	}
}

// waitDashboard waits until the API lists the curl flow and the UDP
// session and the throughput graph has a point with traffic down.
func waitDashboard(t *testing.T, lab *netlab.Lab, base string, web, udpDst netip.AddrPort) {
	t.Helper()
	deadline := time.Now().Add(2 * ioGuard)
	for {
		var flows dashboard.FlowsView
		getJSON(t, lab, base+dashboard.PathFlows, &flows)
		now := getNow(t, lab, base)
		var sawWeb, sawUDP, sawRate bool
		for _, f := range flows.Flows {
			sawWeb = sawWeb || f.Destination == web.String() && f.BytesDown > 0
			sawUDP = sawUDP || f.Destination == udpDst.String()
		}
		for _, p := range now.Throughput {
			sawRate = sawRate || p.Down > 0
		}
		if sawWeb && sawUDP && sawRate {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the API did not show the traffic: web flow %v, UDP session %v, a throughput point %v\nflows %+v\nthroughput %+v",
				sawWeb, sawUDP, sawRate, flows, now.Throughput)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// fillHistory polls /api/now for $GWD_DASHBOARD_HISTORY (a duration,
// e.g. 90s; unset: not at all), so the screenshots show that much of the
// throughput graph: for the README's picture. keep runs before each poll
// (keeps the UDP session from idling out).
func fillHistory(t *testing.T, lab *netlab.Lab, base string, keep func()) {
	t.Helper()
	v := os.Getenv("GWD_DASHBOARD_HISTORY")
	if v == "" {
		return
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		t.Fatalf("GWD_DASHBOARD_HISTORY=%q: %v", v, err)
	}
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(time.Second) {
		keep()
		getNow(t, lab, base)
	}
}

// artifactDir is $GATEWAYD_ARTIFACTS, else a new temporary directory
// that outlives the test (its path is logged).
func artifactDir(t *testing.T) string {
	t.Helper()
	if d := os.Getenv("GATEWAYD_ARTIFACTS"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	d, err := os.MkdirTemp("", "gatewayd-artifacts-")
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// consoleLine is how Chromium's stderr log (--enable-logging=stderr)
// reports what a page wrote to the console, errors and uncaught
// exceptions included: `[...:INFO:CONSOLE:1] "Uncaught TypeError: ...",
// source: URL (LINE)`.
var consoleLine = regexp.MustCompile(`:CONSOLE(:\d+)?\] .*`)

// runChromium runs headless Chromium in the client namespace with args
// (ending in the URL) and returns its standard output and the console
// lines it logged.
func runChromium(t *testing.T, lab *netlab.Lab, artifacts string, args ...string) (string, []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), browserGuard)
	defer cancel()
	argv := append([]string{
		"--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + t.TempDir(), "--enable-logging=stderr", "--v=0",
		// No name lookups: the page is reached by address, and the
		// browser's own lookups would fill the DNS panel.
		"--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE " + lab.GatewayLAN.V4.String(),
		"--virtual-time-budget=" + browserBudget,
	}, args...)
	cmd := lab.Client.Command(ctx, "chromium", argv...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil || strings.Contains(stderr.String(), "Page load failed") {
		t.Fatalf("chromium %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	log := filepath.Join(artifacts, "chromium.log")
	f, err := os.OpenFile(log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err == nil {
		_, _ = f.Write(stderr.Bytes())
		_ = f.Close()
	}
	return stdout.String(), consoleLine.FindAllString(stderr.String(), -1)
}

// checkDOM checks the rendered page as a person would read it.
func checkDOM(t *testing.T, dom string, lab *netlab.Lab, web, udpDst netip.AddrPort) {
	t.Helper()
	if !strings.Contains(dom, `id="error" class="note bad" hidden=""`) {
		t.Errorf("the page shows an error: %s", element(dom, "p", "error"))
	}
	client := lab.ClientAddr.V4.String()
	flows := element(dom, "tbody", "flows-body")
	for _, want := range []string{client, "e2e-laptop", web.String(), "www.example.test", udpDst.String(), "rule[0]", "rule[1]", "direct"} {
		if !strings.Contains(flows, want) {
			t.Errorf("the flows table lacks %q:\n%s", want, flows)
		}
	}
	clients := element(dom, "tbody", "clients-body")
	for _, want := range []string{"e2e-laptop", client, "www.example.test"} {
		if !strings.Contains(clients, want) {
			t.Errorf("the clients table lacks %q:\n%s", want, clients)
		}
	}
	for id, least := range map[string]int{"tcp-flows": 1, "udp-sessions": 1} {
		if n := number(t, element(dom, "div", id)); n < least {
			t.Errorf("%s shows %d, want at least %d", id, n, least)
		}
	}
	// "queries · blocked": at least the two digs, one blocked.
	if m := regexp.MustCompile(`>(\d+) · (\d+)<`).FindStringSubmatch(element(dom, "div", "dns-total")); m == nil || atoi(m[1]) < 2 || atoi(m[2]) < 1 {
		t.Errorf("DNS totals: %s, want at least 2 queries, 1 blocked", element(dom, "div", "dns-total"))
	}
	if rate := element(dom, "div", "rate-now"); !strings.Contains(rate, "/s / ") {
		t.Errorf("no LAN rate shown: %s", rate)
	}
	if note := element(dom, "p", "querylog-note"); !strings.Contains(note, `hidden=""`) {
		t.Errorf("the query-log-off note shows with the query log on: %s", note)
	}
	recent := element(dom, "tbody", "recent-body")
	for _, want := range []string{"blocked.example.test.", "blocked (NXDOMAIN)", "www.example.test.", web.Addr().String()} {
		if !strings.Contains(recent, want) {
			t.Errorf("the recent queries lack %q:\n%s", want, recent)
		}
	}
	if b := element(dom, "tbody", "blocked-body"); !strings.Contains(b, "blocked.example.test.") {
		t.Errorf("top blocked lacks the blocked name:\n%s", b)
	}
	rules := element(dom, "tbody", "rules-body")
	if m := regexp.MustCompile(`<td>rule\[0\]</td><td>proto=tcp port=8081</td><td>direct</td><td class="num">(\d+)</td>`).FindStringSubmatch(rules); m == nil || atoi(m[1]) < 1 {
		t.Errorf("the rules table does not show rule[0] (port 8081) with a TCP hit:\n%s", rules)
	}
	if up := element(dom, "tbody", "upstreams-body"); !strings.Contains(up, "udp://"+lab.Remotes[2].V4.String()+":53") {
		t.Errorf("the upstreams table lacks dnsmasq:\n%s", up)
	}
}

// element returns the element <tag id="id"...>...</tag> of dom (not
// nested in one of its own tag), or "".
func element(dom, tag, id string) string {
	start := strings.Index(dom, "<"+tag+` id="`+id+`"`)
	if start < 0 {
		start = strings.Index(dom, `id="`+id+`"`)
		if start < 0 {
			return ""
		}
		start = strings.LastIndex(dom[:start], "<"+tag)
	}
	end := strings.Index(dom[start:], "</"+tag+">")
	if end < 0 {
		return dom[start:]
	}
	return dom[start : start+end+len(tag)+3]
}

// number is the first integer in an element's text.
func number(t *testing.T, el string) int {
	t.Helper()
	m := regexp.MustCompile(`>(\d+)<`).FindStringSubmatch(el)
	if m == nil {
		t.Errorf("no number in %q", el)
		return -1
	}
	return atoi(m[1])
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}
