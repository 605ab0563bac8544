package netlab

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// tcpThrough listens on dst:port in the server namespace, dials it from the
// client namespace, exchanges a line and returns the peer address the server
// saw.
func tcpThrough(t *testing.T, l *Lab, dst netip.Addr) netip.Addr {
	t.Helper()
	var ln net.Listener
	if err := l.Server.Do(func() (err error) {
		ln, err = net.Listen("tcp", netip.AddrPortFrom(dst, 0).String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()

	type accepted struct {
		peer netip.Addr
		err  error
	}
	ch := make(chan accepted, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			ch <- accepted{err: err}
			return
		}
		defer c.Close()
		buf := make([]byte, 5)
		if _, err := io.ReadFull(c, buf); err != nil {
			ch <- accepted{err: err}
			return
		}
		_, err = c.Write(buf)
		ch <- accepted{peer: c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().Unmap(), err: err}
	}()

	var c net.Conn
	if err := l.Client.Do(func() (err error) {
		c, err = net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
		return err
	}); err != nil {
		t.Fatalf("dial %s from client ns: %v", ln.Addr(), err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "hello" {
		t.Fatalf("echo: %q, %v", buf, err)
	}
	a := <-ch
	if a.err != nil {
		t.Fatal(a.err)
	}
	return a.peer
}

func TestTCPThroughGateway(t *testing.T) {
	l := NewT(t)
	for _, tc := range []struct{ dst, wantPeer netip.Addr }{
		{l.Remotes[0].V4, l.ClientAddr.V4},
		{l.Remotes[0].V6, l.ClientAddr.V6},
	} {
		if got := tcpThrough(t, l, tc.dst); got != tc.wantPeer {
			t.Errorf("server saw peer %v for %v, want %v (no NAT)", got, tc.dst, tc.wantPeer)
		}
	}
}

func netnsList(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		t.Fatalf("ip netns list: %v: %s", err, out)
	}
	return string(out)
}

func TestCloseRemovesNamespacesAndProcs(t *testing.T) {
	Require(t)
	l, err := New(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	for _, n := range l.Namespaces() {
		if !strings.Contains(netnsList(t), n.Name) {
			t.Fatalf("namespace %s not listed", n.Name)
		}
	}
	p, err := l.Gateway.Start(context.Background(), nil, "sleep", "300")
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Done():
	default:
		t.Error("process started in the lab still running after Close")
	}
	list := netnsList(t)
	for _, n := range l.Namespaces() {
		if strings.Contains(list, n.Name) {
			t.Errorf("namespace %s still listed after Close", n.Name)
		}
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := l.Gateway.Start(context.Background(), nil, "true"); err == nil {
		t.Error("Start after Close succeeded")
	}
}

func TestTwoLabsCoexist(t *testing.T) {
	a, b := NewT(t), NewT(t)
	if a.ID == b.ID {
		t.Fatalf("labs share ID %s", a.ID)
	}
	for _, l := range []*Lab{a, b} {
		if got := tcpThrough(t, l, l.Remotes[1].V4); got != l.ClientAddr.V4 {
			t.Errorf("%s: peer %v", l.ID, got)
		}
		if got := tcpThrough(t, l, l.Remotes[2].V6); got != l.ClientAddr.V6 {
			t.Errorf("%s: peer %v", l.ID, got)
		}
	}
}

func TestProcSignalWaitKill(t *testing.T) {
	l := NewT(t)
	var log strings.Builder
	p, err := l.Server.Start(context.Background(), &log, "sh", "-c", "ip -br addr show lo; exec sleep 300")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(200 * time.Millisecond); err == nil || !strings.Contains(err.Error(), "did not exit") {
		t.Fatalf("Wait on running process: %v", err)
	}
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(5 * time.Second); err == nil || !strings.Contains(err.Error(), "terminated") {
		t.Fatalf("Wait after SIGTERM: %v", err)
	}
	p.Kill()
	p.Kill()
	if !strings.Contains(log.String(), "198.19.0.10/32") {
		t.Errorf("process did not run in the server ns; output %q", log.String())
	}

	q, err := l.Client.Start(context.Background(), nil, "sleep", "300")
	if err != nil {
		t.Fatal(err)
	}
	q.Kill()
	if err := q.Wait(time.Second); err == nil {
		t.Error("killed process reported success")
	}
}

func TestDoSwitchesAndRestores(t *testing.T) {
	l := NewT(t)
	hasBridge := func() bool {
		_, err := net.InterfaceByName(LANBridge)
		return err == nil
	}
	var inside bool
	if err := l.Gateway.Do(func() error { inside = hasBridge(); return nil }); err != nil {
		t.Fatal(err)
	}
	if !inside {
		t.Errorf("%s not visible inside Do", LANBridge)
	}
	if err := l.Client.Do(func() error { return fmt.Errorf("boom") }); err == nil || err.Error() != "boom" {
		t.Errorf("Do error = %v", err)
	}
	// Every thread that may be reused must be back in the original namespace.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	host, err := netnsOfThread()
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		_ = l.Server.Do(func() error { return nil })
	}
	done := make(chan string, 20)
	for i := 0; i < 20; i++ {
		go func() {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			ns, _ := netnsOfThread()
			done <- ns
		}()
	}
	for i := 0; i < 20; i++ {
		if ns := <-done; ns != host {
			t.Fatalf("a thread is in %q after Do, want %q", ns, host)
		}
	}
}

func TestHelpers(t *testing.T) {
	l := NewT(t)
	ctx := context.Background()
	rules, err := l.Gateway.IPRules(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"198.19.0.0/16 via 198.18.2.2", "2001:2:ff::/64 via 2001:2:2::2", "lookup main"} {
		if !strings.Contains(rules, want) {
			t.Errorf("IPRules lacks %q:\n%s", want, rules)
		}
	}
	for _, fam := range []int{4, 6} {
		before, err := l.Gateway.IptablesSave(ctx, fam)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(before, "*mangle") {
			t.Errorf("IptablesSave(%d) = %q", fam, before)
		}
		bin := map[int]string{4: "iptables", 6: "ip6tables"}[fam]
		if _, err := l.Gateway.Run(ctx, bin, "-t", "mangle", "-A", "PREROUTING", "-j", "ACCEPT"); err != nil {
			t.Fatal(err)
		}
		after, _ := l.Gateway.IptablesSave(ctx, fam)
		if NormalizeSave(before) == NormalizeSave(after) {
			t.Errorf("family %d: rule change not visible in NormalizeSave", fam)
		}
	}
	if err := l.Gateway.Sysctl(ctx, "net.ipv4.ip_early_demux", "0"); err != nil {
		t.Fatal(err)
	}
	if out, err := l.Gateway.Run(ctx, "sysctl", "-n", "net.ipv4.ip_early_demux"); err != nil || strings.TrimSpace(out) != "0" {
		t.Errorf("sysctl in gateway ns: %q, %v", out, err)
	}
	if _, err := l.Gateway.Run(ctx, "false"); err == nil || !strings.Contains(err.Error(), l.Gateway.Name+": false") {
		t.Errorf("Run error lacks command line: %v", err)
	}
}

func TestNormalizeSave(t *testing.T) {
	in := "# Generated by iptables-save v1.8.9 on Mon\n*mangle\n:PREROUTING ACCEPT [12:345]\n[3:4] -A PREROUTING -j X\nCOMMIT\n# Completed on Mon\n"
	want := "*mangle\n:PREROUTING ACCEPT [0:0]\n[0:0] -A PREROUTING -j X\nCOMMIT\n"
	if got := NormalizeSave(in); got != want {
		t.Errorf("NormalizeSave = %q, want %q", got, want)
	}
}

func TestSweepStale(t *testing.T) {
	Require(t)
	// A pid that just exited stands in for a crashed test binary.
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	if pidAlive(pid) {
		t.Skipf("pid %d reused already", pid)
	}
	name := fmt.Sprintf("%s%d-1-dead-gw", NamePrefix, pid)
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	t.Cleanup(func() { _ = deleteNS(context.Background(), name) })
	l := NewT(t) // New sweeps
	if strings.Contains(netnsList(t), name) {
		t.Errorf("stale namespace %s not swept", name)
	}
	if !strings.Contains(netnsList(t), l.Gateway.Name) {
		t.Errorf("own namespace %s swept", l.Gateway.Name)
	}
}

func TestLabPid(t *testing.T) {
	for in, want := range map[string]int{"gwdlab-123-4-abcd-gw": 123, "gwdlab-x-1": 0, "other-1-2": 0, "gwdlab-77": 0} {
		if got, _ := labPid(in); got != want {
			t.Errorf("labPid(%q) = %d, want %d", in, got, want)
		}
	}
}

// fakeTB records Skipf/Fatalf instead of stopping the goroutine.
type fakeTB struct {
	testing.TB
	skipped, failed string
}

func (f *fakeTB) Helper()                        {}
func (f *fakeTB) Skipf(format string, a ...any)  { f.skipped = fmt.Sprintf(format, a...) }
func (f *fakeTB) Fatalf(format string, a ...any) { f.failed = fmt.Sprintf(format, a...) }

func TestRequireSkipsOrFails(t *testing.T) {
	var f fakeTB
	requireWith(&f, []string{"root (euid 0)", "ip6tables in PATH"}, false)
	if f.failed != "" || !strings.Contains(f.skipped, "root (euid 0), ip6tables in PATH") {
		t.Errorf("non-CI: skipped %q failed %q", f.skipped, f.failed)
	}
	f = fakeTB{}
	requireWith(&f, []string{"root (euid 0)"}, true)
	if f.skipped != "" || !strings.Contains(f.failed, "root (euid 0)") {
		t.Errorf("CI: skipped %q failed %q", f.skipped, f.failed)
	}
	f = fakeTB{}
	requireWith(&f, nil, true)
	if f.skipped != "" || f.failed != "" {
		t.Errorf("nothing missing: skipped %q failed %q", f.skipped, f.failed)
	}
}

// netnsOfThread identifies the calling thread's network namespace.
func netnsOfThread() (string, error) {
	return os.Readlink(fmt.Sprintf("/proc/self/task/%d/ns/net", syscall.Gettid()))
}
