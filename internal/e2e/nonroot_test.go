package e2e

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
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
// Every later g.start and g.cmd (cleanup) goes through setpriv, with env
// ("KEY=value") added to gatewayd's environment. It returns the path of the
// gatewayd binary itself.
func asNonroot(t *testing.T, g *gw, o opts, env ...string) string {
	t.Helper()
	netlab.RequireTools(t, "setpriv")
	dir := publicDir(t)
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
	var quoted strings.Builder
	for _, kv := range env {
		fmt.Fprintf(&quoted, "%q ", kv) // the values are paths: no $ or `
	}
	wrapper := fmt.Sprintf("#!/bin/sh\nexec env %ssetpriv --reuid=%d --regid=%d --clear-groups --no-new-privs"+
		" --bounding-set=%[4]s --inh-caps=%[4]s --ambient-caps=%[4]s %[5]s \"$@\"\n",
		quoted.String(), nonrootUID, nonrootGID, nonrootCaps, bin)
	g.bin = filepath.Join(dir, "gatewayd-nonroot")
	if err := os.WriteFile(g.bin, []byte(wrapper), 0o755); err != nil {
		t.Fatal(err)
	}
	g.cfg = cfg
	return bin
}

// publicDir returns a new world-searchable directory, like /usr/bin and
// /etc/gatewayd (the test's own temp dirs are 0700 root), removed at the
// end of the test.
func publicDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "gwd-nonroot-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
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
	o := opts{dns: dnsVia(up)}
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
	sameState(t, lab, before, "after SIGTERM")

	g.start()
	g.kill()
	if out, err := g.cmd("cleanup"); err != nil {
		t.Fatalf("cleanup as non-root: %v\n%s", err, out)
	}
	sameState(t, lab, before, "after SIGKILL + cleanup")
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
	bin := asNonroot(t, g, opts{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := lab.Gateway.Run(ctx, "setpriv", "--reuid="+strconv.Itoa(nonrootUID), "--regid="+strconv.Itoa(nonrootGID),
		"--clear-groups", "--inh-caps=-all", "--ambient-caps=-all", bin, "-c", g.cfg)
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

// shippedLockMode is the mode rootfs/usr/lib/tmpfiles.d/gatewayd.conf
// gives /run/xtables.lock (group: the gatewayd user's).
func shippedLockMode(t *testing.T) os.FileMode {
	t.Helper()
	const conf = "../../rootfs/usr/lib/tmpfiles.d/gatewayd.conf"
	b, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 5 && f[0] == "f" && f[1] == "/run/xtables.lock" && f[3] == "root" && f[4] == "gatewayd" {
			m, err := strconv.ParseUint(f[2], 8, 32)
			if err != nil {
				t.Fatalf("%s: mode %q: %v", conf, f[2], err)
			}
			return os.FileMode(m)
		}
	}
	t.Fatalf("%s: no \"f /run/xtables.lock MODE root gatewayd\" line", conf)
	return 0
}

// legacyIptables returns a directory whose iptables, ip6tables and their
// -save/-restore run the legacy (non-nft) backend, for the front of PATH.
func legacyIptables(t *testing.T) string {
	t.Helper()
	dir := publicDir(t)
	for _, name := range []string{"iptables", "ip6tables"} {
		for _, suffix := range []string{"", "-save", "-restore"} {
			target, err := exec.LookPath(name + "-legacy" + suffix)
			if err != nil {
				t.Fatalf("legacy iptables: %v", err)
			}
			// xtables-legacy-multi picks the tool by the name it was run as.
			if err := os.Symlink(target, filepath.Join(dir, name+suffix)); err != nil {
				t.Fatal(err)
			}
		}
	}
	return dir
}

// TestNonrootLegacyIptables: with the legacy iptables backend, which
// serialises its callers on an xtables lock file, gatewayd as non-root
// works when the lock has the mode and group the shipped tmpfiles.d entry
// gives it, and not when it is root-only, as iptables-legacy creates it.
// (The lock is a test file, named by XTABLES_LOCKFILE, not the host's
// /run/xtables.lock.)
func TestNonrootLegacyIptables(t *testing.T) {
	netlab.RequireTools(t, "iptables-legacy", "iptables-legacy-save", "iptables-legacy-restore",
		"ip6tables-legacy", "ip6tables-legacy-save", "ip6tables-legacy-restore")
	lab := netlab.NewT(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	legacySave := func() string {
		t.Helper()
		var b strings.Builder
		for _, bin := range []string{"iptables-legacy-save", "ip6tables-legacy-save"} {
			out, err := lab.Gateway.Run(ctx, bin, "-t", "mangle")
			if err != nil {
				t.Fatal(err)
			}
			b.WriteString(out)
		}
		return b.String()
	}
	if _, err := lab.Gateway.Run(ctx, "iptables-legacy", "-t", "mangle", "-S"); err != nil {
		t.Skipf("this kernel has no legacy iptables: %v", err)
	}
	serveAll(t, lab)
	serveUDPAll(t, lab)
	lock := filepath.Join(publicDir(t), "xtables.lock")
	if err := os.WriteFile(lock, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	g := newGW(t, lab, opts{})
	asNonroot(t, g, opts{}, "PATH="+legacyIptables(t)+":"+os.Getenv("PATH"), "XTABLES_LOCKFILE="+lock)

	// Root-only, as iptables-legacy leaves it: nothing that changes the
	// tables works, and gatewayd says why: it cannot start, and cleanup
	// cannot put back the table the failed start kept aside. (Reading
	// with iptables-save takes no lock.)
	runCtx, runCancel := context.WithTimeout(ctx, ioGuard)
	out, err := lab.Gateway.Run(runCtx, g.bin, "-c", g.cfg)
	runCancel()
	if err == nil || !strings.Contains(out+err.Error(), "can't open lock file") {
		t.Errorf("gatewayd with a root-only xtables lock: %v\n%s", err, out)
	}
	out, err = g.cmd("cleanup")
	if err == nil || !strings.Contains(out+err.Error(), "can't open lock file") {
		t.Errorf("cleanup with a root-only xtables lock: %v\n%s", err, out)
	}

	if err := os.Chown(lock, 0, nonrootGID); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(lock, shippedLockMode(t)); err != nil {
		t.Fatal(err)
	}
	g.start()
	checkIdentity(t, g.proc.Pid())
	if s := legacySave(); !strings.Contains(s, "-j GWD_PRE") || !strings.Contains(s, "TPROXY") {
		t.Errorf("no gatewayd rules in the legacy mangle tables:\n%s", s)
	}
	for _, r := range []struct{ dst, wan netip.Addr }{
		{lab.Remotes[0].V4, lab.GatewayWAN.V4}, {lab.Remotes[0].V6, lab.GatewayWAN.V6},
	} {
		if got := peerSeen(t, lab, r.dst); got != r.wan {
			t.Errorf("TCP to %s: server saw %s, want the gateway's WAN address %s", r.dst, got, r.wan)
		}
		dst := netip.AddrPortFrom(r.dst, udpEchoPort)
		if _, peer := exchange(t, clientUDP(t, lab, r.dst.Is6()), dst, []byte("legacy")); peer.Addr() != r.wan {
			t.Errorf("UDP to %s: server saw %s, want %s", dst, peer, r.wan)
		}
	}
	g.stop()
	if s := legacySave(); strings.Contains(s, "GWD_") || strings.Contains(s, "TPROXY") {
		t.Errorf("gatewayd rules left in the legacy mangle tables after SIGTERM:\n%s", s)
	}
}
