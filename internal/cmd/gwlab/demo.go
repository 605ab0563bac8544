package main

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/gatewayd/gatewayd/internal/netlab"
)

const (
	demoPort   = 80
	demoBigMiB = 256
)

// demo shows interception end to end: rules installed, real curl through
// the gateway over IPv4 and IPv6, the server seeing the gateway, the
// per-flow log, and plain forwarding again after SIGTERM.
func demo(ctx context.Context, a *app) (err error) {
	began := time.Now()
	dir, err := os.MkdirTemp("", "gwlab-demo-")
	if err != nil {
		return fmt.Errorf("creating a temp dir: %w", err)
	}
	defer os.RemoveAll(dir)

	a.section("1. Lab")
	lab, teardown, err := a.newLab(ctx)
	if err != nil {
		return err
	}
	defer teardown() // the success path calls it again and checks the result
	remote := lab.Remotes[0]
	a.printf("client %s, %s  --  %s %s [gateway] %s %s, %s  --  server, which also holds the remote hosts %s, %s\n",
		lab.ClientAddr.V4, lab.ClientAddr.V6, netlab.LANBridge, lab.GatewayLAN.V4, netlab.WANIf,
		lab.GatewayWAN.V4, lab.GatewayWAN.V6, remote.V4, remote.V6)
	a.printf("no NAT anywhere: a forwarded flow reaches the server from the client's address, a relayed one from the gateway's WAN address\n")

	srv, err := startHTTP(lab.Server, a.log,
		netip.AddrPortFrom(remote.V4, demoPort), netip.AddrPortFrom(remote.V6, demoPort))
	if err != nil {
		return err
	}
	defer srv.Close()
	a.printf("HTTP server listening on %s:%d and [%s]:%d in the server namespace\n", remote.V4, demoPort, remote.V6, demoPort)

	g, err := newGatewayd(ctx, a, lab.Gateway, dir, "debug")
	if err != nil {
		return err
	}
	a.printf("config: %s with state_dir under %s and level = \"debug\"; `gatewayd check`: OK\n", a.opt.config, dir)
	defer func() {
		if tail := g.logTail(50); err != nil && tail != "" {
			a.printf("\n--- gatewayd log (for the failure below) ---\n%s\n", indent(tail))
		}
	}()

	a.section("2. Start gatewayd in the gateway namespace")
	if err := g.start(ctx); err != nil {
		return err
	}
	a.printf("gatewayd (pid %d) logged \"interception installed\"\n", g.proc.Pid())
	if err := a.showRules(ctx, lab.Gateway); err != nil {
		return err
	}

	a.section("3. curl from the client namespace, through the gateway")
	for _, dst := range []netip.Addr{remote.V4, remote.V6} {
		if err := a.curlHello(ctx, lab, srv, dst, gatewayAddr(lab, dst), "intercepted (the gateway's WAN address)"); err != nil {
			return err
		}
	}
	if err := a.curlBig(ctx, lab, srv, remote.V4); err != nil {
		return err
	}

	a.section("4. gatewayd's per-flow debug log")
	if err := a.showFlows(ctx, g, lab); err != nil {
		return err
	}

	a.section("5. SIGTERM to gatewayd")
	if err := g.stop(); err != nil {
		return err
	}
	a.printf("gatewayd exited cleanly; its last lines:\n%s\n", indent(lastLines(g.out.String(), 3)))
	left, err := gwdRulesLeft(ctx, lab.Gateway)
	if err != nil {
		return err
	}
	if len(left) > 0 {
		return fmt.Errorf("after SIGTERM, gatewayd's rules are still in the gateway namespace:\n%s", indent(strings.Join(left, "\n")))
	}
	save, err := lab.Gateway.IptablesSave(ctx, 4)
	if err != nil {
		return err
	}
	a.printf("no GWD_ chain or jump left in the IPv4 or IPv6 mangle table, no fwmark rule; iptables-save -t mangle (IPv4) now:\n%s\n",
		indent(netlab.NormalizeSave(save)))

	a.section("6. curl again: plain kernel forwarding")
	for _, dst := range []netip.Addr{remote.V4, remote.V6} {
		if err := a.curlHello(ctx, lab, srv, dst, clientAddr(lab, dst), "plain forwarding (the client's own address)"); err != nil {
			return err
		}
	}

	a.section("7. Tear down")
	_ = srv.Close()
	if err := teardown(); err != nil {
		return err
	}
	a.printf("lab %s removed (no namespaces left)\n", lab.ID)
	a.printf("\ndemo OK in %v\n", time.Since(began).Round(100*time.Millisecond))
	return nil
}

func (a *app) section(title string) { a.printf("\n== %s ==\n", title) }

func (a *app) printf(format string, args ...any) { fmt.Fprintf(a.out, format, args...) }

func gatewayAddr(lab *netlab.Lab, dst netip.Addr) netip.Addr {
	if dst.Is4() {
		return lab.GatewayWAN.V4
	}
	return lab.GatewayWAN.V6
}

func clientAddr(lab *netlab.Lab, dst netip.Addr) netip.Addr {
	if dst.Is4() {
		return lab.ClientAddr.V4
	}
	return lab.ClientAddr.V6
}

// curl runs curl in the client namespace, never through a proxy.
func curl(ctx context.Context, lab *netlab.Lab, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	base := []string{"-sS", "--noproxy", "*", "--max-time", "15"}
	return lab.Client.Run(ctx, "curl", append(base, args...)...)
}

// url is http://dst/path (port 80), with IPv6 literals in brackets.
func url(dst netip.Addr, path string) string {
	host := dst.String()
	if dst.Is6() {
		host = "[" + host + "]"
	}
	return "http://" + host + path
}

// curlArgs adds -g (no URL globbing, for the brackets) to IPv6 URLs.
func curlArgs(dst netip.Addr, args ...string) []string {
	if dst.Is6() {
		return append([]string{"-g"}, args...)
	}
	return args
}

// curlHello fetches / from dst and checks that the server saw wantPeer.
func (a *app) curlHello(ctx context.Context, lab *netlab.Lab, srv *httpServer, dst, wantPeer netip.Addr, meaning string) error {
	u := url(dst, "/")
	args := curlArgs(dst, u)
	a.printf("$ curl -sS %s\n", strings.Join(args, " "))
	n := len(srv.requests())
	out, err := curl(ctx, lab, args...)
	if err != nil {
		return fmt.Errorf("fetching %s from the client: %w", u, err)
	}
	a.printf("%s\n", indent(out))
	reqs := srv.requests()
	if len(reqs) != n+1 {
		return fmt.Errorf("fetching %s: the server logged %d requests, want 1", u, len(reqs)-n)
	}
	got := reqs[n].Peer.Addr()
	if got != wantPeer {
		return fmt.Errorf("fetching %s: the server saw client %s, want %s", u, got, wantPeer)
	}
	a.printf("    -> server saw client %s: %s\n", got, meaning)
	return nil
}

// curlBig downloads demoBigMiB MiB and checks size and interception.
func (a *app) curlBig(ctx context.Context, lab *netlab.Lab, srv *httpServer, dst netip.Addr) error {
	u := url(dst, "/big?mb="+strconv.Itoa(demoBigMiB))
	a.printf("$ curl -sS -o /dev/null -w '%%{size_download} bytes %%{speed_download} B/s' %s\n", u)
	n := len(srv.requests())
	out, err := curl(ctx, lab, "-o", "/dev/null", "-w", "%{size_download} bytes %{speed_download} B/s", u)
	if err != nil {
		return fmt.Errorf("downloading %s: %w", u, err)
	}
	var size, speed float64
	if _, err := fmt.Sscanf(out, "%g bytes %g B/s", &size, &speed); err != nil {
		return fmt.Errorf("downloading %s: cannot parse curl's %q: %w", u, out, err)
	}
	a.printf("    %s  (%.2f Gbit/s)\n", strings.TrimSpace(out), speed*8/1e9)
	if want := float64(demoBigMiB << 20); size != want {
		return fmt.Errorf("downloading %s: got %.0f bytes, want %.0f", u, size, want)
	}
	reqs := srv.requests()
	if len(reqs) != n+1 || reqs[n].Peer.Addr() != gatewayAddr(lab, dst) {
		return fmt.Errorf("downloading %s: server requests %v, want one from the gateway", u, reqs[n:])
	}
	a.printf("    -> server saw client %s: intercepted (the gateway's WAN address)\n", reqs[n].Peer.Addr())
	return nil
}

// showRules prints what gatewayd installed in the gateway namespace,
// with the bypass RETURN lines folded.
func (a *app) showRules(ctx context.Context, ns *netlab.NS) error {
	for _, fam := range []int{4, 6} {
		save, err := ns.IptablesSave(ctx, fam)
		if err != nil {
			return err
		}
		var lines, bypass []string
		for _, l := range strings.Split(netlab.NormalizeSave(save), "\n") {
			if d, ok := bypassDst(l); ok {
				if len(bypass) == 0 {
					lines = append(lines, "") // placeholder for the folded line
				}
				bypass = append(bypass, d)
				continue
			}
			if l != "" {
				lines = append(lines, l)
			}
		}
		for i, l := range lines {
			if l == "" {
				lines[i] = fmt.Sprintf("-A GWD_PRE -d <%d bypassed prefixes: %s ...> -j RETURN",
					len(bypass), strings.Join(bypass[:min(4, len(bypass))], ", "))
			}
		}
		a.printf("iptables-save -t mangle, IPv%d (counters zeroed, bypass list folded):\n%s\n", fam, indent(strings.Join(lines, "\n")))
	}
	rules, err := ns.IPRules(ctx)
	if err != nil {
		return err
	}
	var pr []string
	fam := ""
	for _, l := range strings.Split(rules, "\n") {
		if h, ok := strings.CutPrefix(l, "== ip "); ok {
			fam = "IPv" + h[1:2] + ": " // "== ip -4 rule ==", "== ip -6 route ..."
		}
		if strings.Contains(l, "fwmark") || strings.HasPrefix(l, "local default") {
			pr = append(pr, fam+strings.TrimSpace(l))
		}
	}
	a.printf("policy routing (ip rule / ip route show table all, gatewayd's lines):\n%s\n", indent(strings.Join(pr, "\n")))
	return nil
}

var bypassRE = regexp.MustCompile(`^-A GWD_PRE -d (\S+) -j RETURN$`)

func bypassDst(line string) (string, bool) {
	m := bypassRE.FindStringSubmatch(line)
	if m == nil {
		return "", false
	}
	return m[1], true
}

// flowField extracts key=value from a gatewayd text log line.
func flowField(line, key string) string {
	m := regexp.MustCompile(`(?:^| )` + key + `=(\S+)`).FindStringSubmatch(line)
	if m == nil {
		return ""
	}
	return m[1]
}

const flowMsg = `msg="tcp flow closed"`

// showFlows waits for the three flows of step 3 in gatewayd's log, prints
// them and checks that they came from the client.
func (a *app) showFlows(ctx context.Context, g *gatewayd, lab *netlab.Lab) error {
	if err := g.waitLog(ctx, flowMsg, 3, 5*time.Second); err != nil {
		return err
	}
	var shown []string
	var maxDown int64
	for _, l := range strings.Split(g.out.String(), "\n") {
		if !strings.Contains(l, flowMsg) {
			continue
		}
		shown = append(shown, l)
		client, err := netip.ParseAddrPort(flowField(l, "client"))
		if err != nil || (client.Addr() != lab.ClientAddr.V4 && client.Addr() != lab.ClientAddr.V6) {
			return fmt.Errorf("flow log line without the lab client as client: %s", l)
		}
		down, _ := strconv.ParseInt(flowField(l, "down"), 10, 64)
		maxDown = max(maxDown, down)
	}
	if len(shown) != 3 {
		return fmt.Errorf("gatewayd logged %d flows, want 3", len(shown))
	}
	if maxDown < demoBigMiB<<20 {
		return fmt.Errorf("no flow log line shows the %d MiB download (largest down=%d)", demoBigMiB, maxDown)
	}
	a.printf("%s\n", indent(strings.Join(shown, "\n")))
	a.printf("    -> one line per relayed flow: client, original destination (dst), bytes up/down, duration, why it ended\n")
	return nil
}

// lastLines returns the last n non-empty lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
