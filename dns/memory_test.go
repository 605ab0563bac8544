package dns

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func TestMemoryExpiry(t *testing.T) {
	clk := newClock()
	m := newMemory(100, clk.Now)
	r := new(dns.Msg)
	r.Answer = []dns.RR{
		mustRR("www.example.com. 60 IN CNAME cdn.example.net."),
		mustRR("cdn.example.net. 60 IN A 192.0.2.1"),
		mustRR("cdn.example.net. 300 IN AAAA 2001:db8::1"),
		mustRR("cdn.example.net. 0 IN A 192.0.2.2"),
	}
	m.record("WWW.example.com.", r)
	check := func(addr string, want string) {
		t.Helper()
		name, ok := m.Lookup(netip.MustParseAddr(addr))
		if want == "" && ok || want != "" && name != want {
			t.Errorf("Lookup(%s) = %q, %v; want %q", addr, name, ok, want)
		}
	}
	check("192.0.2.1", "www.example.com") // the asked name, not the CNAME target
	check("::ffff:192.0.2.1", "www.example.com")
	check("2001:db8::1", "www.example.com")
	check("192.0.2.2", "") // TTL 0
	clk.Advance(59 * time.Second)
	check("192.0.2.1", "www.example.com")
	clk.Advance(time.Second)
	check("192.0.2.1", "")
	check("2001:db8::1", "www.example.com")
	clk.Advance(240 * time.Second)
	check("2001:db8::1", "")

	// The latest answer for an address wins.
	m.record("other.example.", &dns.Msg{Answer: []dns.RR{mustRR("other.example. 60 IN A 192.0.2.9")}})
	m.record("third.example.", &dns.Msg{Answer: []dns.RR{mustRR("third.example. 60 IN A 192.0.2.9")}})
	check("192.0.2.9", "third.example")
}

func TestMemoryBound(t *testing.T) {
	clk := newClock()
	m := newMemory(10, clk.Now)
	for i := range 25 {
		m.record(fmt.Sprintf("n%d.example.", i), &dns.Msg{Answer: []dns.RR{
			mustRR(fmt.Sprintf("n%d.example. 60 IN A 192.0.2.%d", i, i)),
		}})
	}
	if m.Len() != 10 {
		t.Errorf("%d entries, want 10", m.Len())
	}
	if _, ok := m.Lookup(netip.MustParseAddr("192.0.2.14")); ok {
		t.Error("old entry kept")
	}
	if n, ok := m.Lookup(netip.MustParseAddr("192.0.2.24")); !ok || n != "n24.example" {
		t.Errorf("newest entry: %q %v", n, ok)
	}
}

func TestMemoryFromHandler(t *testing.T) {
	c := newCacheSetup(t, Config{})
	c.z.set("a.example. A", "a.example. 100 IN A 192.0.2.1")
	a := netip.MustParseAddr("192.0.2.1")
	ask(t, c.h, "a.example.", dns.TypeA) // miss
	c.clk.Advance(101 * time.Second)
	if _, ok := c.h.Memory().Lookup(a); ok {
		t.Fatal("memory outlived the record")
	}
	ask(t, c.h, "a.example.", dns.TypeA) // refetched: fresh 100 s
	c.clk.Advance(50 * time.Second)
	ask(t, c.h, "a.example.", dns.TypeA) // hit with TTL 50: memory until +50 s
	c.clk.Advance(49 * time.Second)
	if n, ok := c.h.Memory().Lookup(a); !ok || n != "a.example" {
		t.Errorf("after a cache hit: %q %v", n, ok)
	}
	c.clk.Advance(time.Second)
	if _, ok := c.h.Memory().Lookup(a); ok {
		t.Error("memory outlived the served TTL")
	}
}
