package dns

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/miekg/dns"
)

func TestHosts(t *testing.T) {
	up := &zone{}
	s := startServer(t, up.ServeDNS)
	h := newHandler(t, Config{
		Upstreams: []string{"udp://" + s.addr},
		Hosts: map[string][]string{
			"nas.lan":          {"192.168.1.5", "fd00::5"},
			"Printer.LAN.":     {"192.168.1.6"},
			"router.lan":       {"::ffff:192.168.1.1"},
			"v6only.lan":       {"fd00::7"},
			"rebind.public.io": {"10.0.0.1"},
		},
		RebindProtection: true,
	})
	for _, tc := range []struct {
		name  string
		qtype uint16
		want  []string
	}{
		{"nas.lan.", dns.TypeA, []string{"192.168.1.5"}},
		{"NAS.lan.", dns.TypeAAAA, []string{"fd00::5"}},
		{"nas.lan.", dns.TypeANY, []string{"192.168.1.5", "fd00::5"}},
		{"nas.lan.", dns.TypeMX, nil}, // NODATA
		{"printer.lan.", dns.TypeA, []string{"192.168.1.6"}},
		{"printer.lan.", dns.TypeAAAA, nil}, // NODATA for the other family
		{"router.lan.", dns.TypeA, []string{"192.168.1.1"}},
		{"v6only.lan.", dns.TypeA, nil},
		{"rebind.public.io.", dns.TypeA, []string{"10.0.0.1"}}, // hosts entries are trusted
	} {
		r := ask(t, h, tc.name, tc.qtype)
		wantRcode(t, r, dns.RcodeSuccess)
		if got := addrs(r); !slices.Equal(got, tc.want) {
			t.Errorf("%s %s: %v, want %v", tc.name, dns.TypeToString[tc.qtype], got, tc.want)
		}
		if !r.Authoritative || r.Question[0].Name != tc.name {
			t.Errorf("%s: AA %v question %q", tc.name, r.Authoritative, r.Question[0].Name)
		}
		for _, rr := range r.Answer {
			if rr.Header().Ttl != localTTL || rr.Header().Name != tc.name {
				t.Errorf("%s: record %v", tc.name, rr)
			}
		}
	}
	// Exact names only: a subdomain goes upstream.
	ask(t, h, "x.nas.lan.", dns.TypeA)
	if s.queries.Load() != 1 {
		t.Errorf("upstream queries %d, want 1 (for x.nas.lan)", s.queries.Load())
	}
	if st := h.Stats(); st.Hosts != 9 {
		t.Errorf("hosts answers %d", st.Hosts)
	}
	if name, ok := h.Memory().Lookup(netip.MustParseAddr("192.168.1.5")); !ok || name != "nas.lan" {
		t.Errorf("memory of a hosts answer: %q %v", name, ok)
	}
}

func TestSplitDNS(t *testing.T) {
	mk := func(addr string) (*zone, *server) {
		z := &zone{}
		for _, n := range []string{"host.lan.", "a.corp.example.", "a.b.corp.example.", "www.example."} {
			z.set(n+" A", n+" 60 IN A "+addr)
		}
		return z, startServer(t, z.ServeDNS)
	}
	_, def := mk("192.0.2.1")
	_, lan := mk("192.168.1.2")
	_, corp := mk("10.1.0.1")
	_, corpB := mk("10.2.0.1")
	h := newHandler(t, Config{
		Upstreams: []string{"udp://" + def.addr},
		Split: map[string][]string{
			"lan":            {"udp://" + lan.addr},
			"corp.example":   {"tcp://" + corp.addr},
			"b.corp.example": {"udp://" + corpB.addr},
		},
		RebindProtection: true,
	})
	for _, tc := range []struct {
		name string
		want string
	}{
		{"host.lan.", "192.168.1.2"},
		{"a.corp.example.", "10.1.0.1"},
		{"a.b.corp.example.", "10.2.0.1"}, // longest suffix wins
		{"www.example.", "192.0.2.1"},
	} {
		r := ask(t, h, tc.name, dns.TypeA)
		if got := addrs(r); !slices.Equal(got, []string{tc.want}) {
			t.Errorf("%s: %v, want %s (rcode %s)", tc.name, got, tc.want, dns.RcodeToString[r.Rcode])
		}
	}
	if def.queries.Load() != 1 || lan.queries.Load() != 1 || corp.queries.Load() != 1 || corpB.queries.Load() != 1 {
		t.Errorf("queries default %d lan %d corp %d corpB %d, want 1 each",
			def.queries.Load(), lan.queries.Load(), corp.queries.Load(), corpB.queries.Load())
	}
	if corp.udp.Load() != 0 {
		t.Error("tcp:// split upstream was asked over UDP")
	}
}

func TestPrivateAddr(t *testing.T) {
	for _, tc := range []struct {
		addr string
		want bool
	}{
		{"10.1.2.3", true}, {"172.16.0.1", true}, {"172.31.255.255", true}, {"172.32.0.1", false},
		{"192.168.0.1", true}, {"127.0.0.1", true}, {"127.9.9.9", true}, {"169.254.1.1", true},
		{"0.0.0.0", true}, {"::1", true}, {"::", true}, {"fc00::1", true}, {"fd12::1", true},
		{"fe80::1", true}, {"::ffff:10.0.0.1", true}, {"::ffff:8.8.8.8", false},
		{"8.8.8.8", false}, {"100.64.0.1", false}, {"2001:db8::1", false}, {"198.18.0.1", false},
	} {
		if got := privateAddr(netip.MustParseAddr(tc.addr)); got != tc.want {
			t.Errorf("privateAddr(%s) = %v, want %v", tc.addr, got, tc.want)
		}
	}
}

func TestRebindingProtection(t *testing.T) {
	z := &zone{}
	z.set("evil.example. A", "evil.example. 60 IN A 203.0.113.1", "evil.example. 60 IN A 192.168.1.1")
	z.set("evil6.example. AAAA", "evil6.example. 60 IN AAAA ::ffff:127.0.0.1")
	z.set("cname.example. A", "cname.example. 60 IN CNAME evil.example.", "evil.example. 60 IN A 10.0.0.1")
	z.set("fine.example. A", "fine.example. 60 IN A 203.0.113.2")
	z.set("svc.allowed.example. A", "svc.allowed.example. 60 IN A 10.0.0.2")
	z.set("home.lan. A", "home.lan. 60 IN A 192.168.1.3")
	up := startServer(t, z.ServeDNS)
	cfg := Config{
		Upstreams:        []string{"udp://" + up.addr},
		Split:            map[string][]string{"lan": {"udp://" + up.addr}},
		RebindProtection: true,
		RebindAllow:      []string{"allowed.example"},
	}
	h := newHandler(t, cfg)
	for _, tc := range []struct {
		name  string
		qtype uint16
		rcode int
	}{
		{"evil.example.", dns.TypeA, dns.RcodeRefused},
		{"evil6.example.", dns.TypeAAAA, dns.RcodeRefused},
		{"cname.example.", dns.TypeA, dns.RcodeRefused},
		{"fine.example.", dns.TypeA, dns.RcodeSuccess},
		{"svc.allowed.example.", dns.TypeA, dns.RcodeSuccess}, // allow-listed suffix
		{"home.lan.", dns.TypeA, dns.RcodeSuccess},            // split DNS upstream
		{"evil.example.", dns.TypeA, dns.RcodeRefused},        // cached, still refused
	} {
		r := ask(t, h, tc.name, tc.qtype)
		wantRcode(t, r, tc.rcode)
		if tc.rcode == dns.RcodeRefused {
			if len(r.Answer) != 0 {
				t.Errorf("%s: refused reply carries %v", tc.name, r.Answer)
			}
			if ede := findEDE(r); ede == nil || ede.InfoCode != dns.ExtendedErrorCodeBlocked {
				t.Errorf("%s: EDE %v, want Blocked", tc.name, ede)
			}
		}
	}
	if st := h.Stats(); st.Rebinding != 4 {
		t.Errorf("rebinding refusals %d, want 4", st.Rebinding)
	}
	if _, ok := h.Memory().Lookup(netip.MustParseAddr("192.168.1.1")); ok {
		t.Error("a refused answer's address was remembered")
	}

	cfg.RebindProtection = false
	off := newHandler(t, cfg)
	wantRcode(t, ask(t, off, "evil.example.", dns.TypeA), dns.RcodeSuccess)
}
