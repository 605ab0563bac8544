package lan

import (
	"errors"
	"net/netip"
	"testing"
	"time"
)

// fakeInterfaces serves a fixed interface list and counts the reads.
type fakeInterfaces struct {
	list  []Iface
	err   error
	reads int
}

func (f *fakeInterfaces) read() ([]Iface, error) {
	f.reads++
	return f.list, f.err
}

func prefixes(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

func TestAddrs(t *testing.T) {
	f := &fakeInterfaces{list: []Iface{
		{"br-lan", prefixes("198.18.1.1/24", "2001:2:1::1/64")},
		{"lan7", prefixes("198.18.7.1/24")},
		{"wan0", prefixes("198.18.2.1/24", "2001:2:2::1/64")},
		{"lo", prefixes("127.0.0.1/8", "::1/128")},
	}}
	l := NewAddrs([]string{"br-lan", "lan+"}, f.read)
	for addr, want := range map[string]bool{
		"127.0.0.1":          true,  // loopback, whatever the interfaces
		"127.9.9.9":          true,  // all of 127/8
		"::1":                true,  //
		"::ffff:127.0.0.1":   true,  // mapped loopback
		"198.18.1.2":         true,  // br-lan subnet
		"::ffff:198.18.1.77": true,  // mapped, still the LAN
		"2001:2:1::99":       true,  // br-lan IPv6 subnet
		"198.18.7.20":        true,  // lan7 matches "lan+"
		"198.18.2.2":         false, // the WAN subnet
		"2001:2:2::2":        false, //
		"198.19.0.10":        false, // beyond the WAN
		"198.18.1.1":         true,  // the router's own LAN address
	} {
		if got := l.InLAN(netip.MustParseAddr(addr)); got != want {
			t.Errorf("allowed(%s) = %v, want %v", addr, got, want)
		}
	}
	if !l.IsLANAddr(netip.MustParseAddr("198.18.1.1")) || !l.IsLANAddr(netip.MustParseAddr("2001:2:1::1")) {
		t.Error("the LAN addresses are not known as the router's")
	}
	if l.IsLANAddr(netip.MustParseAddr("198.18.2.1")) || l.IsLANAddr(netip.MustParseAddr("198.18.1.2")) {
		t.Error("a WAN address or a LAN client's counts as a LAN address of the router")
	}
	if f.reads != 1 {
		t.Errorf("interfaces read %d times within Refresh, want 1", f.reads)
	}
}

// TestLANClientsFollowChanges: a LAN address change is picked up once the
// cache is stale; a failed read keeps the last list.
func TestAddrsFollowChanges(t *testing.T) {
	f := &fakeInterfaces{list: []Iface{{"br-lan", prefixes("198.18.1.1/24")}}}
	l := NewAddrs([]string{"br-lan"}, f.read)
	client := netip.MustParseAddr("198.18.9.5")
	if l.InLAN(client) {
		t.Fatal("client outside the LAN subnet allowed")
	}
	f.list = []Iface{{"br-lan", prefixes("198.18.9.1/24")}}
	l.age(Refresh) // as if Refresh had passed
	if !l.InLAN(client) {
		t.Error("new LAN subnet not picked up after Refresh")
	}
	f.list, f.err = nil, errors.New("netlink: no buffer space")
	l.age(Refresh)
	if !l.InLAN(client) {
		t.Error("a failed interface read dropped the known LAN subnets")
	}
}

// TestLANClientsUnreadable: without any interface list only loopback is
// allowed.
func TestAddrsUnreadable(t *testing.T) {
	f := &fakeInterfaces{err: errors.New("no netlink")}
	l := NewAddrs([]string{"br-lan"}, f.read)
	if l.InLAN(netip.MustParseAddr("198.18.1.2")) || !l.InLAN(netip.MustParseAddr("127.0.0.1")) {
		t.Error("unreadable interfaces: want loopback only")
	}
}

// age makes the cached reading older by d.
func (l *Addrs) age(d time.Duration) {
	v := *l.cur.Load()
	v.at = v.at.Add(-d)
	l.cur.Store(&v)
}

func TestMatches(t *testing.T) {
	patterns := []string{"br-lan", "eth+"}
	for name, want := range map[string]bool{
		"br-lan": true, "br-lan2": false, "eth0": true, "eth": true, "et": false, "wan": false,
	} {
		if got := MatchesAny(patterns, name); got != want {
			t.Errorf("MatchesAny(%v, %q) = %v, want %v", patterns, name, got, want)
		}
	}
}

func TestOverlap(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want bool
	}{
		{"br-lan", "br-lan", true}, {"br-lan", "br-wan", false},
		{"lan+", "lan0", true}, {"lan0", "lan+", true}, {"lan+", "wan0", false},
		{"la+", "lan+", true}, {"lan+", "wan+", false},
	} {
		if got := Overlap(c.a, c.b); got != c.want {
			t.Errorf("Overlap(%q, %q) = %v, want %v", c.a, c.b, got, c.want)
		}
	}
}

func TestIsLocalAndIface(t *testing.T) {
	f := &fakeInterfaces{list: []Iface{
		{"br-lan", prefixes("198.18.1.1/24")},
		{"lan7", prefixes("198.18.7.1/24")},
		{"wan0", prefixes("198.18.2.1/24")},
	}}
	l := NewAddrs([]string{"br-lan", "lan+"}, f.read)
	if !l.IsLocal(netip.MustParseAddr("198.18.2.1")) || !l.IsLocal(netip.MustParseAddr("::ffff:198.18.1.1")) {
		t.Error("a router address is not local")
	}
	if l.IsLocal(netip.MustParseAddr("198.18.1.2")) {
		t.Error("a LAN client is local")
	}
	if got := l.Iface(netip.MustParseAddr("198.18.7.9")); got != "lan7" {
		t.Errorf("Iface(lan7 client) = %q", got)
	}
	if got := l.Iface(netip.MustParseAddr("198.18.2.9")); got != "" {
		t.Errorf("Iface(WAN address) = %q, want none", got)
	}
	l.SetPatterns([]string{"wan+"})
	if !l.InLAN(netip.MustParseAddr("198.18.2.9")) || l.InLAN(netip.MustParseAddr("198.18.1.2")) {
		t.Error("SetPatterns not followed")
	}
	if got := NewAddrs([]string{"br-lan"}, f.read).Iface(netip.MustParseAddr("198.19.0.1")); got != "br-lan" {
		t.Errorf("one LAN interface: Iface = %q, want it", got)
	}
}

// TestSystemLoopback: the real interfaces hold loopback's addresses.
func TestSystemLoopback(t *testing.T) {
	var l = NewAddrs(nil, nil)
	if !l.IsLocal(netip.MustParseAddr("127.0.0.1")) || !l.IsLocal(netip.MustParseAddr("::ffff:127.0.0.1")) {
		t.Error("loopback is not local")
	}
	if l.IsLocal(netip.MustParseAddr("198.19.255.254")) {
		t.Error("198.19.255.254 reported local")
	}
}

// TestSystemInterfaces reads the real interface list: loopback is there,
// with its address and without link-local ones.
func TestSystemInterfaces(t *testing.T) {
	all, err := SystemInterfaces()
	if err != nil {
		t.Fatal(err)
	}
	for _, ifc := range all {
		for _, p := range ifc.Prefixes {
			if p.Addr().IsLinkLocalUnicast() || p.Addr().Is4In6() {
				t.Errorf("%s: address %s should have been skipped or unmapped", ifc.Name, p)
			}
			if ifc.Name == "lo" && p.Addr() == netip.MustParseAddr("127.0.0.1") {
				return
			}
		}
	}
	t.Errorf("127.0.0.1 on lo not found in %+v", all)
}
