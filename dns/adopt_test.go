package dns

import (
	"net/netip"
	"testing"

	"github.com/miekg/dns"
)

func TestAdoptKeepsCacheMemoryAndCounts(t *testing.T) {
	c := newCacheSetup(t, Config{})
	c.z.set("a.example. A", "a.example. 300 IN A 198.18.3.1")
	ask(t, c.h, "a.example.", dns.TypeA)
	if st := c.h.Stats(); st.Forwarded != 1 {
		t.Fatalf("forwarded %d", st.Forwarded)
	}

	h2 := newHandler(t, Config{Upstreams: []string{"udp://" + c.s.addr}, Now: c.clk.Now,
		Hosts: map[string][]string{"nas.lan": {"198.18.0.5"}}})
	h2.Adopt(c.h)
	r := ask(t, h2, "a.example.", dns.TypeA)
	if got := addrs(r); len(got) != 1 || got[0] != "198.18.3.1" {
		t.Fatalf("answer after adopt: %v", got)
	}
	st := h2.Stats()
	if st.Forwarded != 1 || st.CacheHits != 1 || st.QueriesUDP != 2 {
		t.Errorf("stats after adopt %+v: want the cached answer (1 forwarded, 1 hit, 2 queries)", st)
	}
	if name, ok := h2.Memory().Lookup(netip.MustParseAddr("198.18.3.1")); !ok || name != "a.example" {
		t.Errorf("memory after adopt: %q %v", name, ok)
	}
	if got := addrs(ask(t, h2, "nas.lan.", dns.TypeA)); len(got) != 1 || got[0] != "198.18.0.5" {
		t.Errorf("the new config's hosts: %v", got)
	}
}
