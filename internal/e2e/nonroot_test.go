package e2e

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/internal/netlab"
	"golang.org/x/sys/unix"
)

// The unprivileged identity gatewayd runs as in these tests: nobody/nogroup
// on Debian. Any uid without other privileges would do; the shipped systemd
// unit uses a dedicated "gatewayd" user.
const (
	nonrootUID = 65534
	nonrootGID = 65534
)

// nonrootCaps are the only capabilities the router image grants gatewayd
// (rootfs/lib/systemd/system/gatewayd.service), as a setpriv capability
// list that drops everything else: NET_ADMIN for iptables, netlink and
// SO_MARK, NET_RAW for IP_TRANSPARENT, NET_BIND_SERVICE for a listener on a
// port below 1024.
const nonrootCaps = "-all,+net_admin,+net_raw,+net_bind_service"

// nonrootCapMask is nonrootCaps as a capability bit set, as /proc/PID/status
// shows it.
const nonrootCapMask = 1<<unix.CAP_NET_ADMIN | 1<<unix.CAP_NET_RAW | 1<<unix.CAP_NET_BIND_SERVICE

// asNonroot turns g into a gatewayd that runs the way the systemd unit runs
// it: as nonrootUID with exactly nonrootCaps as ambient (and bounding)
// capabilities, no_new_privs set, reading a root-owned config and keeping
// its state in a directory owned by that user (systemd's RuntimeDirectory=).
// Every later g.start and g.cmd (cleanup) goes through setpriv.
func asNonroot(t *testing.T, g *gw, o opts) {
	t.Helper()
	netlab.RequireTools(t, "setpriv")
	// A world-searchable directory, like /usr/bin and /etc/gatewayd: the
	// test's own temp dirs are 0700 root.
	dir, err := os.MkdirTemp("", "gwd-nonroot-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "run")
	if err := os.Mkdir(state, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(state, nonrootUID, nonrootGID); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "gateway.toml")
	if err := os.WriteFile(cfg, []byte(configText(state, o)), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "gatewayd")
	if err := copyExecutable(g.bin, bin); err != nil {
		t.Fatal(err)
	}
	// exec all the way down, so g.proc's pid is gatewayd's own.
	wrapper := fmt.Sprintf("#!/bin/sh\nexec setpriv --reuid=%d --regid=%d --clear-groups --no-new-privs"+
		" --bounding-set=%[3]s --inh-caps=%[3]s --ambient-caps=%[3]s %[4]s \"$@\"\n",
		nonrootUID, nonrootGID, nonrootCaps, bin)
	g.bin = filepath.Join(dir, "gatewayd-nonroot")
	if err := os.WriteFile(g.bin, []byte(wrapper), 0o755); err != nil {
		t.Fatal(err)
	}
	g.cfg = cfg
}

// copyExecutable copies the built binary to dst, mode 0755.
func copyExecutable(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("copying gatewayd: %w", err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		return fmt.Errorf("copying gatewayd: %w", err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copying gatewayd to %s: %w", dst, err)
	}
	return out.Close()
}

// procStatus returns the named fields of /proc/PID/status ("Uid", "CapEff").
func procStatus(t *testing.T, pid int) map[string]string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			m[k] = strings.TrimSpace(v)
		}
	}
	return m
}

// checkIdentity fails unless pid runs as nonrootUID (real, effective, saved
// and filesystem ids) with exactly nonrootCapMask permitted, effective,
// ambient and bounding.
func checkIdentity(t *testing.T, pid int) {
	t.Helper()
	st := procStatus(t, pid)
	u := strconv.Itoa(nonrootUID)
	if want := strings.Join([]string{u, u, u, u}, "\t"); st["Uid"] != want {
		t.Errorf("gatewayd Uid line %q, want %q", st["Uid"], want)
	}
	for _, k := range []string{"CapPrm", "CapEff", "CapAmb", "CapBnd"} {
		got, err := strconv.ParseUint(st[k], 16, 64)
		if err != nil || got != nonrootCapMask {
			t.Errorf("gatewayd %s = %s, want %016x", k, st[k], uint64(nonrootCapMask))
		}
	}
	if st["NoNewPrivs"] != "1" {
		t.Errorf("gatewayd NoNewPrivs = %q, want 1", st["NoNewPrivs"])
	}
}

// TestNonrootTCPUDPDNS: gatewayd as an unprivileged user with only the
// three capabilities installs its rules (exec'd iptables-restore included),
// relays TCP and UDP in both families, answers hijacked DNS over UDP and
// TCP, and on SIGTERM, and after SIGKILL with `gatewayd cleanup` run the
// same way (systemd's ExecStopPost), leaves the kernel as it found it.
func TestNonrootTCPUDPDNS(t *testing.T) {
	netlab.RequireTools(t, "dig", "dnsmasq")
	lab := netlab.NewT(t)
	serveAll(t, lab)
	serveUDPAll(t, lab)
	up := lab.Remotes[2]
	startDnsmasq(t, lab, up)
	before := kernelState(t, lab)
	o := opts{dns: fmt.Sprintf("upstreams = [%q]\nresolv_conf = \"\"\ntimeout = \"1s\"\n", "udp://"+up.V4.String()+":53")}
	g := newGW(t, lab, o)
	asNonroot(t, g, o)
	g.start()
	checkIdentity(t, g.proc.Pid())

	for _, r := range []struct{ dst, wan netip.Addr }{
		{lab.Remotes[0].V4, lab.GatewayWAN.V4}, {lab.Remotes[0].V6, lab.GatewayWAN.V6},
	} {
		if got := peerSeen(t, lab, r.dst); got != r.wan {
			t.Errorf("TCP to %s: server saw %s, want the gateway's WAN address %s", r.dst, got, r.wan)
		}
		c := clientUDP(t, lab, r.dst.Is6())
		dst := netip.AddrPortFrom(lab.Remotes[1].V4, udpEchoPort)
		if r.dst.Is6() {
			dst = netip.AddrPortFrom(lab.Remotes[1].V6, udpEchoPort)
		}
		src, peer := exchange(t, c, dst, []byte("nonroot "+dst.String()))
		if src != dst || peer.Addr() != r.wan {
			t.Errorf("UDP to %s: reply from %s, server saw %s; want %s and %s", dst, src, peer, dst, r.wan)
		}
	}
	for _, server := range []string{"198.18.50.50", "2001:2:50::50"} {
		for _, tr := range []string{"+notcp", "+tcp"} {
			out, err := dig(t, lab.Client, "@"+server, tr, "+short", "www.example.test", "A")
			if err != nil || strings.TrimSpace(out) != "198.19.7.8" {
				t.Errorf("dig @%s %s www.example.test A = %q, %v", server, tr, out, err)
			}
		}
	}
	if strings.Contains(g.log.String(), "level=ERROR") {
		t.Errorf("gatewayd logged errors as non-root:\n%s", g.log.String())
	}
	g.stop()
	if after := kernelState(t, lab); after != before {
		t.Errorf("state after SIGTERM differs:\n--- after ---\n%s\n--- before ---\n%s", after, before)
	}

	g.start()
	g.kill()
	if out, err := g.cmd("cleanup"); err != nil {
		t.Fatalf("cleanup as non-root: %v\n%s", err, out)
	}
	if after := kernelState(t, lab); after != before {
		t.Errorf("state after SIGKILL + cleanup differs:\n--- after ---\n%s\n--- before ---\n%s", after, before)
	}
	if got := peerSeen(t, lab, lab.Remotes[0].V4); got != lab.ClientAddr.V4 {
		t.Errorf("after cleanup the flow should be forwarded: server saw %s", got)
	}
}

// TestNonrootWithoutCapsFailsClearly: without NET_ADMIN, gatewayd stops
// with an error that says what it was doing, and changes nothing.
func TestNonrootWithoutCapsFailsClearly(t *testing.T) {
	netlab.RequireTools(t, "setpriv")
	lab := netlab.NewT(t)
	before := kernelState(t, lab)
	g := newGW(t, lab, opts{})
	asNonroot(t, g, opts{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := lab.Gateway.Run(ctx, "setpriv", "--reuid="+strconv.Itoa(nonrootUID), "--regid="+strconv.Itoa(nonrootGID),
		"--clear-groups", "--inh-caps=-all", "--ambient-caps=-all", strings.TrimSuffix(g.bin, "-nonroot"), "-c", g.cfg)
	if err == nil {
		t.Fatalf("gatewayd without capabilities ran:\n%s", out)
	}
	if !strings.Contains(out, "operation not permitted") && !strings.Contains(out, "Permission denied") {
		t.Errorf("error does not say permission was missing:\n%s", out)
	}
	if strings.Contains(out, "panic") {
		t.Errorf("gatewayd panicked:\n%s", out)
	}
	if after := kernelState(t, lab); after != before {
		t.Errorf("a failed start changed the kernel state:\n--- after ---\n%s\n--- before ---\n%s", after, before)
	}
}
