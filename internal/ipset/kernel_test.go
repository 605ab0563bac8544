package ipset_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/internal/ipset"
	"github.com/gatewayd/gatewayd/internal/ipset/ipsettest"
	"github.com/gatewayd/gatewayd/internal/netlab"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// wantTranscript is what scenario records, on the real kernel and on the
// fake alike: the fake is only worth its tests if it fails where the
// kernel fails, with the same errors.
const wantTranscript = `list missing: ENOENT
add to missing set: ENOENT
del from missing set: ENOENT
create plain: ok
add with timeout to plain: timeout
create gwdt4: ok
create gwdt4 again: ok
create gwdt4 exclusive: EEXIST
create gwdt4 other maxelem: EEXIST
create gwdt4 as inet6: ok
add 198.18.5.0/24: ok
add 198.18.5.0/24 exclusive: exist
add 198.18.5.0/24 replace: ok
add IPv6 address: invalid protocol
add /33: invalid cidr
add 198.18.6.7/24: ok
add 198.18.7.7 without cidr: ok
add 198.18.8.8/32 timeout 300: ok
add fifth: errno 4352
update 198.18.8.8 in full set: ok
del absent: exist
list gwdt4: hash:net inet maxelem 4 timeouts refs=0 [198.18.5.0/24 perm, 198.18.6.0/24 perm, 198.18.7.7/32 perm, 198.18.8.8/32 timed]
destroy referenced: busy
destroy unreferenced: ok
Ensure gwdt_plain (replaces it): ok
list gwdt_plain: hash:net inet maxelem 4 timeouts refs=0 []
Ensure gwdt_plain, referenced, other maxelem: replacing ipset gwdt_plain (it has maxelem 4): destroying ipset gwdt_plain (remove the iptables rules that match it first): ipset is referenced by a rule: busy
Ensure gwdt6: ok
Ensure gwdt6 again: ok
Sync gwdt6 2001:2::/48 ::/0: ok {Added:3 Removed:0 Missing:0}
Add 2001:2:1::5/128 10m: ok
Add 2001:2:1::6/128 10m: ok
Add 2001:2:1::7/128 10m: adding 2001:2:1::7/128 to ipset gwdt6: ipset is full: errno 4352
Sync gwdt6 2001:2::/48 2001:2:1::5/128: ok {Added:1 Removed:2 Missing:0}
list gwdt6: hash:net inet6 maxelem 5 timeouts refs=0 [2001:2::/48 perm, 2001:2:1::5/128 perm, 2001:2:1::6/128 timed]
Sync gwdt6 with an IPv4 prefix: syncing ipset gwdt6: prefix 198.18.0.0/24 does not belong in a family inet6 set
Sync gwdt6 five prefixes: syncing ipset gwdt6: 1 of 5 entries did not fit (maxelem 5): ipset is full {Added:4 Removed:2 Missing:1}
Add to missing set: adding 198.18.0.1/32 to ipset gwdt_missing: ipset does not exist: no such file or directory
Delete 2001:2:e::/48 (absent): ok
Delete 2001:2:a::/48: ok
Delete from missing set: deleting 198.18.0.1/32 from ipset gwdt_missing: ipset does not exist: no such file or directory
list gwdt6: hash:net inet6 maxelem 5 timeouts refs=0 [2001:2:1::6/128 timed, 2001:2:b::/48 perm, 2001:2:c::/48 perm, 2001:2:d::/48 perm]
Destroy gwdt6: ok
Destroy gwdt6 again: ok
Destroy gwdt_plain: ok
`

// scenario runs raw Kernel calls and Sets operations against k and
// records each outcome. ref adds or removes an iptables rule matching the
// named IPv4 set.
func scenario(t *testing.T, k ipset.Kernel, ref func(name string, on bool) error) string {
	var b strings.Builder
	rec := func(what string, err error) { fmt.Fprintf(&b, "%s: %s\n", what, errText(err)) }
	u32 := func(v uint32) *uint32 { return &v }
	ip := net.ParseIP
	entry := func(s string, cidr uint8, timeout *uint32, replace bool) *netlink.IPSetEntry {
		return &netlink.IPSetEntry{IP: ip(s), CIDR: cidr, Timeout: timeout, Replace: replace}
	}
	_, err := k.IpsetList("gwdt_missing")
	rec("list missing", err)
	rec("add to missing set", k.IpsetAdd("gwdt_missing", entry("198.18.0.1", 32, nil, true)))
	rec("del from missing set", k.IpsetDel("gwdt_missing", entry("198.18.0.1", 32, nil, false)))
	rec("create plain", k.IpsetCreate("gwdt_plain", ipset.TypeHashNet, netlink.IpsetCreateOptions{Replace: true}))
	rec("add with timeout to plain", k.IpsetAdd("gwdt_plain", entry("198.18.0.0", 24, u32(5), true)))

	four := netlink.IpsetCreateOptions{Replace: true, Timeout: u32(0), Family: unix.AF_INET, MaxElements: 4}
	rec("create gwdt4", k.IpsetCreate("gwdt4", ipset.TypeHashNet, four))
	rec("create gwdt4 again", k.IpsetCreate("gwdt4", ipset.TypeHashNet, four))
	excl := four
	excl.Replace = false
	rec("create gwdt4 exclusive", k.IpsetCreate("gwdt4", ipset.TypeHashNet, excl))
	other := four
	other.MaxElements = 8
	rec("create gwdt4 other maxelem", k.IpsetCreate("gwdt4", ipset.TypeHashNet, other))
	v6 := four
	v6.Family = unix.AF_INET6
	rec("create gwdt4 as inet6", k.IpsetCreate("gwdt4", ipset.TypeHashNet, v6)) // accepted, and stays inet
	rec("add 198.18.5.0/24", k.IpsetAdd("gwdt4", entry("198.18.5.0", 24, u32(0), false)))
	rec("add 198.18.5.0/24 exclusive", k.IpsetAdd("gwdt4", entry("198.18.5.0", 24, u32(0), false)))
	rec("add 198.18.5.0/24 replace", k.IpsetAdd("gwdt4", entry("198.18.5.0", 24, u32(0), true)))
	rec("add IPv6 address", k.IpsetAdd("gwdt4", entry("2001:2::1", 128, u32(0), true)))
	rec("add /33", k.IpsetAdd("gwdt4", entry("198.18.6.0", 33, u32(0), true)))
	rec("add 198.18.6.7/24", k.IpsetAdd("gwdt4", entry("198.18.6.7", 24, u32(0), true)))
	rec("add 198.18.7.7 without cidr", k.IpsetAdd("gwdt4", entry("198.18.7.7", 0, nil, true)))
	rec("add 198.18.8.8/32 timeout 300", k.IpsetAdd("gwdt4", entry("198.18.8.8", 32, u32(300), true)))
	rec("add fifth", k.IpsetAdd("gwdt4", entry("198.18.9.9", 32, u32(300), true)))
	rec("update 198.18.8.8 in full set", k.IpsetAdd("gwdt4", entry("198.18.8.8", 32, u32(600), true)))
	rec("del absent", k.IpsetDel("gwdt4", entry("198.18.9.9", 32, nil, false)))

	s := ipset.New(k)
	list := func(name string) {
		info, err := s.List(name)
		if err != nil {
			rec("list "+name, err)
			return
		}
		fmt.Fprintf(&b, "list %s: %s\n", name, infoText(info))
	}
	list("gwdt4")
	if err := ref("gwdt4", true); err != nil {
		t.Fatal(err)
	}
	rec("destroy referenced", k.IpsetDestroy("gwdt4"))
	if err := ref("gwdt4", false); err != nil {
		t.Fatal(err)
	}
	rec("destroy unreferenced", k.IpsetDestroy("gwdt4"))

	plain := ipset.Set{Name: "gwdt_plain", Family: ipset.IPv4, MaxElem: 4}
	rec("Ensure gwdt_plain (replaces it)", s.Ensure(plain))
	list("gwdt_plain")
	if err := ref("gwdt_plain", true); err != nil {
		t.Fatal(err)
	}
	plain.MaxElem = 8
	rec("Ensure gwdt_plain, referenced, other maxelem", s.Ensure(plain))
	if err := ref("gwdt_plain", false); err != nil {
		t.Fatal(err)
	}

	ctx := context.Background()
	six := ipset.Set{Name: "gwdt6", Family: ipset.IPv6, MaxElem: 5}
	rec("Ensure gwdt6", s.Ensure(six))
	rec("Ensure gwdt6 again", s.Ensure(six))
	sync := func(what string, ps ...string) {
		res, err := s.Sync(ctx, "gwdt6", prefixes(t, ps...))
		fmt.Fprintf(&b, "Sync gwdt6 %s: %s %+v\n", what, errText(err), res)
	}
	sync("2001:2::/48 ::/0", "2001:2::/48", "::/0")
	for _, a := range []string{"2001:2:1::5/128", "2001:2:1::6/128", "2001:2:1::7/128"} {
		rec("Add "+a+" 10m", s.Add("gwdt6", prefixes(t, a)[0], 10*time.Minute))
	}
	sync("2001:2::/48 2001:2:1::5/128", "2001:2::/48", "2001:2:1::5/128")
	list("gwdt6")
	_, err = s.Sync(ctx, "gwdt6", prefixes(t, "198.18.0.0/24"))
	rec("Sync gwdt6 with an IPv4 prefix", err)
	sync("five prefixes", "2001:2:a::/48", "2001:2:b::/48", "2001:2:c::/48", "2001:2:d::/48", "2001:2:e::/48")
	rec("Add to missing set", s.Add("gwdt_missing", prefixes(t, "198.18.0.1/32")[0], 0))
	rec("Delete 2001:2:e::/48 (absent)", s.Delete("gwdt6", prefixes(t, "2001:2:e::/48")[0]))
	rec("Delete 2001:2:a::/48", s.Delete("gwdt6", prefixes(t, "2001:2:a::/48")[0]))
	rec("Delete from missing set", s.Delete("gwdt_missing", prefixes(t, "198.18.0.1/32")[0]))
	list("gwdt6")
	rec("Destroy gwdt6", s.Destroy("gwdt6"))
	rec("Destroy gwdt6 again", s.Destroy("gwdt6"))
	rec("Destroy gwdt_plain", s.Destroy("gwdt_plain"))
	return b.String()
}

// errText renders an error the same way for the kernel and the fake:
// errno names for plain errnos, the rest as its message.
func errText(err error) string {
	var en syscall.Errno
	switch {
	case err == nil:
		return "ok"
	case errors.As(err, &en) && err == error(en):
		return unix.ErrnoName(en)
	}
	return err.Error()
}

func infoText(info ipset.Info) string {
	var es []string
	for _, e := range info.Entries {
		kind := "perm"
		if !e.Permanent() {
			kind = "timed"
		}
		es = append(es, e.Prefix.String()+" "+kind)
	}
	to := "no-timeouts"
	if info.Timeouts {
		to = "timeouts"
	}
	return fmt.Sprintf("%s %s maxelem %d %s refs=%d [%s]", info.Type, info.Family, info.MaxElem, to, info.References, strings.Join(es, ", "))
}

func TestFakeKernelMatchesTranscript(t *testing.T) {
	k := ipsettest.New()
	refs := map[string]bool{}
	k.Referenced = func(name string) bool { return refs[name] }
	got := scenario(t, k, func(name string, on bool) error { refs[name] = on; return nil })
	if got != wantTranscript {
		t.Errorf("fake kernel transcript differs:\n%s", diffLines(got, wantTranscript))
	}
	if names := k.Names(); len(names) != 0 {
		t.Errorf("sets left: %v", names)
	}
}

// TestRealKernelMatchesTranscript runs the scenario on the kernel, in the
// gateway namespace of a fresh lab, through the netlink Kernel gatewayd
// uses.
func TestRealKernelMatchesTranscript(t *testing.T) {
	l := netlab.NewT(t)
	k := labKernel(t, l.Gateway)
	ctx := context.Background()
	ref := func(name string, on bool) error {
		op := "-D"
		if on {
			op = "-A"
		}
		_, err := l.Gateway.Run(ctx, "iptables", "-w", "-t", "mangle", op, "PREROUTING", "-m", "set", "--match-set", name, "dst", "-j", "RETURN")
		return err
	}
	got := scenario(t, k, ref)
	if got != wantTranscript {
		t.Errorf("kernel transcript differs:\n%s", diffLines(got, wantTranscript))
	}
	for _, name := range []string{"gwdt4", "gwdt6", "gwdt_plain"} {
		if _, err := k.IpsetList(name); !errors.Is(err, unix.ENOENT) {
			t.Errorf("set %s left in the namespace (list: %v)", name, err)
		}
	}
}

// labKernel opens the netlink Kernel of ns; the handle is closed with the
// test.
func labKernel(t *testing.T, ns *netlab.NS) ipset.Kernel {
	t.Helper()
	k, err := ipset.NewNetlink(ns.NetlinkHandle(t))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestNewNetlinkNeedsNetfilterSocket(t *testing.T) {
	if _, err := ipset.NewNetlink(nil); err == nil {
		t.Error("NewNetlink(nil) succeeded")
	}
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE) // opening a socket needs no privilege
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if _, err := ipset.NewNetlink(h); err == nil || !strings.Contains(err.Error(), "NETLINK_NETFILTER") {
		t.Errorf("NewNetlink(route-only handle) = %v, want a NETLINK_NETFILTER error", err)
	}
}

// diffLines shows the first differing line of two transcripts with
// context.
func diffLines(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := 0; i < max(len(g), len(w)); i++ {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			return fmt.Sprintf("line %d:\n got: %s\nwant: %s\n--- full got ---\n%s", i+1, gl, wl, got)
		}
	}
	return ""
}
