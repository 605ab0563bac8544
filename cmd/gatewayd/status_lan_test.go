package main

import (
	"errors"
	"net/netip"
	"testing"
	"time"
)

// fakeInterfaces serves a fixed interface list and counts the reads.
type fakeInterfaces struct {
	list  []ifaceAddrs
	err   error
	reads int
}

func (f *fakeInterfaces) read() ([]ifaceAddrs, error) {
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

func TestLANClients(t *testing.T) {
	f := &fakeInterfaces{list: []ifaceAddrs{
		{"br-lan", prefixes("198.18.1.1/24", "2001:2:1::1/64")},
		{"lan7", prefixes("198.18.7.1/24")},
		{"wan0", prefixes("198.18.2.1/24", "2001:2:2::1/64")},
		{"lo", prefixes("127.0.0.1/8", "::1/128")},
	}}
	l := &lanClients{ifaces: []string{"br-lan", "lan+"}, interfaces: f.read}
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
		if got := l.allowed(netip.MustParseAddr(addr)); got != want {
			t.Errorf("allowed(%s) = %v, want %v", addr, got, want)
		}
	}
	if !l.hasAddr(netip.MustParseAddr("198.18.1.1")) || !l.hasAddr(netip.MustParseAddr("2001:2:1::1")) {
		t.Error("the LAN addresses are not known as the router's")
	}
	if l.hasAddr(netip.MustParseAddr("198.18.2.1")) || l.hasAddr(netip.MustParseAddr("198.18.1.2")) {
		t.Error("a WAN address or a LAN client's counts as a LAN address of the router")
	}
	if f.reads != 1 {
		t.Errorf("interfaces read %d times within localRefresh, want 1", f.reads)
	}
}

// TestLANClientsFollowChanges: a LAN address change is picked up once the
// cache is stale; a failed read keeps the last list.
func TestLANClientsFollowChanges(t *testing.T) {
	f := &fakeInterfaces{list: []ifaceAddrs{{"br-lan", prefixes("198.18.1.1/24")}}}
	l := &lanClients{ifaces: []string{"br-lan"}, interfaces: f.read}
	client := netip.MustParseAddr("198.18.9.5")
	if l.allowed(client) {
		t.Fatal("client outside the LAN subnet allowed")
	}
	f.list = []ifaceAddrs{{"br-lan", prefixes("198.18.9.1/24")}}
	l.at = time.Now().Add(-localRefresh) // as if localRefresh had passed
	if !l.allowed(client) {
		t.Error("new LAN subnet not picked up after localRefresh")
	}
	f.list, f.err = nil, errors.New("netlink: no buffer space")
	l.at = time.Now().Add(-localRefresh)
	if !l.allowed(client) {
		t.Error("a failed interface read dropped the known LAN subnets")
	}
}

// TestLANClientsUnreadable: without any interface list only loopback is
// allowed.
func TestLANClientsUnreadable(t *testing.T) {
	f := &fakeInterfaces{err: errors.New("no netlink")}
	l := &lanClients{ifaces: []string{"br-lan"}, interfaces: f.read}
	if l.allowed(netip.MustParseAddr("198.18.1.2")) || !l.allowed(netip.MustParseAddr("127.0.0.1")) {
		t.Error("unreadable interfaces: want loopback only")
	}
}

func TestMatchesIface(t *testing.T) {
	patterns := []string{"br-lan", "eth+"}
	for name, want := range map[string]bool{
		"br-lan": true, "br-lan2": false, "eth0": true, "eth": true, "et": false, "wan": false,
	} {
		if got := matchesIface(patterns, name); got != want {
			t.Errorf("matchesIface(%v, %q) = %v, want %v", patterns, name, got, want)
		}
	}
}

// TestSystemInterfaces reads the real interface list: loopback is there,
// with its address and without link-local ones.
func TestSystemInterfaces(t *testing.T) {
	all, err := systemInterfaces()
	if err != nil {
		t.Fatal(err)
	}
	for _, ifc := range all {
		for _, p := range ifc.addrs {
			if p.Addr().IsLinkLocalUnicast() || p.Addr().Is4In6() {
				t.Errorf("%s: address %s should have been skipped or unmapped", ifc.name, p)
			}
			if ifc.name == "lo" && p.Addr() == netip.MustParseAddr("127.0.0.1") {
				return
			}
		}
	}
	t.Errorf("127.0.0.1 on lo not found in %+v", all)
}
