package dns

import (
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func TestLearnedHook(t *testing.T) {
	type learn struct {
		name string
		addr netip.Addr
		ttl  time.Duration
	}
	var mu sync.Mutex
	var got []learn
	c := newCacheSetup(t, Config{})
	h, err := New(Config{Upstreams: []string{"udp://" + c.s.addr}, Now: c.clk.Now,
		Learned: func(name string, addr netip.Addr, ttl time.Duration) {
			mu.Lock()
			got = append(got, learn{name, addr, ttl})
			mu.Unlock()
		}}, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	c.z.set("cdn.example. A", "cdn.example. 300 IN A 198.18.7.1", "cdn.example. 300 IN A 198.18.7.2")
	learned := func() []learn {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(got)
	}

	ask(t, h, "CDN.example.", dns.TypeA)
	want := []learn{{"cdn.example", netip.MustParseAddr("198.18.7.1"), 300 * time.Second},
		{"cdn.example", netip.MustParseAddr("198.18.7.2"), 300 * time.Second}}
	if l := learned(); !slices.Equal(l, want) {
		t.Fatalf("learned %v, want %v", l, want)
	}
	c.clk.Advance(100 * time.Second) // 200 s left: a hit tells nothing new
	ask(t, h, "cdn.example.", dns.TypeA)
	if l := learned(); len(l) != 2 {
		t.Fatalf("a cache hit was reported again: %v", l)
	}
	c.clk.Advance(201 * time.Second) // expired: the upstream answer is new
	ask(t, h, "cdn.example.", dns.TypeA)
	if l := learned(); len(l) != 4 {
		t.Fatalf("a fresh answer after expiry was not reported: %v", l)
	}
}
