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
)

// Where the upstream proxies listen: ports on the server's eth0 address,
// which gatewayd reaches over the WAN link.
const (
	dantePort      = 1080 // danted: SOCKS5 without authentication, CONNECT and UDP ASSOCIATE
	microsocksPort = 1081 // microsocks: SOCKS5 with username/password
	tinyproxyPort  = 3128 // tinyproxy: HTTP CONNECT with basic auth
)

// Each proxy's own outgoing address, on the server's lo next to the
// remotes: a test server seeing it as the peer knows the flow came
// through that proxy. microsocks and tinyproxy bind one address, so they
// connect out over IPv4 only.
const (
	danteEgress4      = "198.19.1.1"
	danteEgress6      = "2001:2:ff::1:1"
	microsocksEgress4 = "198.19.1.2"
	tinyproxyEgress4  = "198.19.1.3"
)

// The credentials the authenticating proxies accept.
const (
	proxyUser = "gwd"
	proxyPass = "s3cret"
)

// proxyStart bounds a proxy's start-up, until it listens.
const proxyStart = 5 * time.Second

// upstream is a proxy running in the server namespace.
type upstream struct {
	proc   *netlab.Proc
	log    *syncBuffer
	addr   netip.AddrPort // where it listens
	egress netlab.Addrs   // where it connects out from; V6 unset for IPv4-only proxies
}

// startUpstream adds the proxy's egress addresses to the server's lo,
// starts it and waits until it listens on addr. Its log is shown if the
// test fails.
func startUpstream(t *testing.T, lab *netlab.Lab, egress netlab.Addrs, addr netip.AddrPort, name string, args ...string) *upstream {
	t.Helper()
	ctx := context.Background()
	for _, a := range []netip.Addr{egress.V4, egress.V6} {
		if a.IsValid() {
			if err := lab.Server.AddAddr(ctx, "lo", netip.PrefixFrom(a, a.BitLen())); err != nil {
				t.Fatal(err)
			}
		}
	}
	u := &upstream{log: &syncBuffer{}, addr: addr, egress: egress}
	p, err := lab.Server.Start(ctx, u.log, name, args...)
	if err != nil {
		t.Fatal(err)
	}
	u.proc = p
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s log:\n%s", name, u.log.String())
		}
	})
	if err := lab.Server.WaitListening(ctx, addr, proxyStart); err != nil {
		t.Fatalf("%s did not start (%v):\n%s", name, err, u.log.String())
	}
	return u
}

// writeConf writes a proxy's config file into a fresh test directory.
func writeConf(t *testing.T, name, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// startDante runs dante-server (danted) without authentication: TCP
// CONNECT and UDP ASSOCIATE (with the replies, "udpreply") from anyone to
// anywhere, every session logged to stderr. "0/0" is any address of
// either family.
func startDante(t *testing.T, lab *netlab.Lab) *upstream {
	t.Helper()
	netlab.RequireTools(t, "danted")
	addr := netip.AddrPortFrom(lab.ServerAddr.V4, dantePort)
	conf := writeConf(t, "danted.conf", fmt.Sprintf(`logoutput: stderr
internal: %s port = %d
external: %s
external: %s
socksmethod: none
clientmethod: none
user.privileged: root
user.unprivileged: nobody
client pass {
	from: 0/0 to: 0/0
	log: connect disconnect error
}
socks pass {
	from: 0/0 to: 0/0
	command: connect udpassociate udpreply
	log: connect disconnect error
}
`, addr.Addr(), addr.Port(), danteEgress4, danteEgress6))
	egress := netlab.Addrs{V4: netip.MustParseAddr(danteEgress4), V6: netip.MustParseAddr(danteEgress6)}
	// -N 1: one mother process; -p: a pid file of the test's own.
	return startUpstream(t, lab, egress, addr, "danted", "-f", conf, "-N", "1",
		"-p", filepath.Join(filepath.Dir(conf), "danted.pid"))
}

// startMicrosocks runs microsocks requiring proxyUser/proxyPass (RFC 1929).
func startMicrosocks(t *testing.T, lab *netlab.Lab) *upstream {
	t.Helper()
	netlab.RequireTools(t, "microsocks")
	addr := netip.AddrPortFrom(lab.ServerAddr.V4, microsocksPort)
	return startUpstream(t, lab, netlab.Addrs{V4: netip.MustParseAddr(microsocksEgress4)}, addr, "microsocks",
		"-i", addr.Addr().String(), "-p", fmt.Sprint(addr.Port()),
		"-u", proxyUser, "-P", proxyPass, "-b", microsocksEgress4)
}

// startTinyproxy runs tinyproxy in the foreground requiring basic auth
// (proxyUser/proxyPass) and allowing CONNECT to echoPort only.
func startTinyproxy(t *testing.T, lab *netlab.Lab) *upstream {
	t.Helper()
	netlab.RequireTools(t, "tinyproxy")
	addr := netip.AddrPortFrom(lab.ServerAddr.V4, tinyproxyPort)
	conf := writeConf(t, "tinyproxy.conf", fmt.Sprintf(`User nobody
Group nogroup
Listen %s
Port %d
Bind %s
Timeout 30
LogLevel Info
MaxClients 64
ConnectPort %d
BasicAuth %s %s
`, addr.Addr(), addr.Port(), tinyproxyEgress4, echoPort, proxyUser, proxyPass))
	return startUpstream(t, lab, netlab.Addrs{V4: netip.MustParseAddr(tinyproxyEgress4)}, addr, "tinyproxy", "-d", "-c", conf)
}

// waitUpstreamLog waits for substr in the proxy's log.
func waitUpstreamLog(t *testing.T, u *upstream, substr string) {
	t.Helper()
	deadline := time.Now().Add(logGuard)
	for !strings.Contains(u.log.String(), substr) {
		if time.Now().After(deadline) {
			t.Errorf("proxy log has no %q within %v", substr, logGuard)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}
