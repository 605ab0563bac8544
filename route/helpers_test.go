package route

import (
	"net"
	"net/netip"
	"testing"
)

func pfx(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

func ports(ss ...string) []PortRange {
	var out []PortRange
	for _, s := range ss {
		r, err := ParsePortRange(s)
		if err != nil {
			panic(err)
		}
		out = append(out, r)
	}
	return out
}

func macs(ss ...string) []net.HardwareAddr {
	var out []net.HardwareAddr
	for _, s := range ss {
		m, err := net.ParseMAC(s)
		if err != nil {
			panic(err)
		}
		out = append(out, m)
	}
	return out
}

func mustCompile(t testing.TB, rules []RuleSpec, def string) *Table {
	t.Helper()
	tab, err := Compile(rules, def)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return tab
}

// tcp and udp build flows from a client port 40000 to dst.
func tcp(dst string) Flow {
	return Flow{Proto: ProtoTCP, Src: netip.MustParseAddrPort("198.18.0.2:40000"), Dst: netip.MustParseAddrPort(dst)}
}

func udp(dst string) Flow {
	f := tcp(dst)
	f.Proto = ProtoUDP
	return f
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

// probeFlows returns flows to dst that vary every other condition: both
// protocols, several ports, sources, MACs (and none), interfaces and
// domains (and none).
func probeFlows(dst netip.Addr) []Flow {
	var out []Flow
	for _, proto := range []string{ProtoTCP, ProtoUDP} {
		for _, port := range []uint16{22, 80, 443, 8080} {
			for _, src := range []string{"198.18.0.2", "198.18.1.2", "2001:2:1::2"} {
				for _, mac := range []net.HardwareAddr{nil, macs("02:00:00:00:00:01")[0]} {
					for _, iface := range []string{"", "br-lan", "guest"} {
						for _, dom := range []string{"", "example.org", "example.com", "tracker.example.net"} {
							out = append(out, Flow{
								Proto: proto, Src: netip.AddrPortFrom(mustAddr(src), 40000),
								Dst: netip.AddrPortFrom(dst, port), MAC: mac, Iface: iface, Domain: dom,
							})
						}
					}
				}
			}
		}
	}
	return out
}
