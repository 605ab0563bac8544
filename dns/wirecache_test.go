package dns

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// newFastSetup is newCacheSetup with an info-level logger: debug logging
// sends every query down the slow path.
func newFastSetup(t *testing.T) *cacheSetup {
	t.Helper()
	c := newCacheSetup(t, Config{})
	h, err := New(Config{Upstreams: []string{"udp://" + c.s.addr}, Now: c.clk.Now},
		slog.New(slog.NewTextHandler(&testWriter{t: t}, &slog.HandlerOptions{Level: slog.LevelInfo})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	c.h = h
	return c
}

func packQuery(t *testing.T, id uint16, name string, qtype uint16, udpSize uint16) []byte {
	t.Helper()
	m := new(dns.Msg).SetQuestion(name, qtype)
	m.Id = id
	if udpSize > 0 {
		m.SetEdns0(udpSize, false)
	}
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func unpack(t *testing.T, b []byte) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	if err := m.Unpack(b); err != nil {
		t.Fatalf("unpacking %x: %v", b, err)
	}
	return m
}

func TestCachedUDPRepeatsTheSlowAnswer(t *testing.T) {
	c := newFastSetup(t)
	c.z.set("a.example. A", "a.example. 300 IN A 198.18.0.1", "a.example. 300 IN A 198.18.0.2")
	ctx := context.Background()
	q := QueryInfo{Client: testClient, Transport: "udp"}

	first := packQuery(t, 1, "a.example.", dns.TypeA, 1232)
	if _, ok := c.h.CachedUDP(first, nil); ok {
		t.Fatal("hit before any answer")
	}
	slow, ok := c.h.HandleWire(ctx, first, q)
	if !ok {
		t.Fatal("no slow answer")
	}
	c.clk.Advance(100 * time.Second)
	fast, ok := c.h.CachedUDP(packQuery(t, 2, "a.example.", dns.TypeA, 1232), nil)
	if !ok {
		t.Fatal("repeat was not a fast hit")
	}
	want, got := unpack(t, slow), unpack(t, fast)
	if got.Id != 2 || !got.Response || got.Rcode != dns.RcodeSuccess {
		t.Fatalf("fast reply header %+v", got.MsgHdr)
	}
	if !slices.Equal(addrs(got), addrs(want)) || !slices.Equal(ttls(got), []uint32{200, 200}) {
		t.Errorf("fast answer %v ttls %v, want %v ttls 200", addrs(got), ttls(got), addrs(want))
	}
	if got.IsEdns0() == nil || got.IsEdns0().UDPSize() != want.IsEdns0().UDPSize() {
		t.Errorf("EDNS record not kept: %v", got.Extra)
	}
	if st := c.h.Stats(); st.CacheHits != 1 || st.QueriesUDP != 2 || st.Forwarded != 1 {
		t.Errorf("stats %+v", st)
	}

	// Another EDNS size is another query: it may truncate differently.
	if _, ok := c.h.CachedUDP(packQuery(t, 3, "a.example.", dns.TypeA, 512), nil); ok {
		t.Error("a query with another EDNS size hit")
	}
	// TCP answers are not memoized for UDP.
	tcpQ := packQuery(t, 4, "b.example.", dns.TypeA, 1232)
	c.z.set("b.example. A", "b.example. 300 IN A 198.18.0.3")
	if _, ok := c.h.HandleWire(ctx, tcpQ, QueryInfo{Client: testClient, Transport: "tcp"}); !ok {
		t.Fatal("no tcp answer")
	}
	if _, ok := c.h.CachedUDP(tcpQ, nil); ok {
		t.Error("a tcp answer was memoized")
	}

	// With less than a second left, the Handler decides again.
	c.clk.Advance(199*time.Second + 500*time.Millisecond)
	if _, ok := c.h.CachedUDP(packQuery(t, 5, "a.example.", dns.TypeA, 1232), nil); ok {
		t.Error("hit with half a second left")
	}
}

func TestCachedUDPSkipsUncacheableAndDebug(t *testing.T) {
	c := newFastSetup(t)
	c.z.set("z.example. A", "z.example. 0 IN A 198.18.0.9") // TTL 0: not cacheable
	q := QueryInfo{Client: testClient, Transport: "udp"}
	wire := packQuery(t, 1, "z.example.", dns.TypeA, 1232)
	if _, ok := c.h.HandleWire(context.Background(), wire, q); !ok {
		t.Fatal("no answer")
	}
	if _, ok := c.h.CachedUDP(wire, nil); ok {
		t.Error("an uncacheable answer was memoized")
	}

	d := newCacheSetup(t, Config{}) // debug logger: every query is logged by the slow path
	d.z.set("a.example. A", "a.example. 300 IN A 198.18.0.1")
	wire = packQuery(t, 1, "a.example.", dns.TypeA, 1232)
	if _, ok := d.h.HandleWire(context.Background(), wire, q); !ok {
		t.Fatal("no answer")
	}
	if _, ok := d.h.CachedUDP(wire, nil); ok {
		t.Error("fast path taken with debug logging on")
	}
}

func TestTTLOffsets(t *testing.T) {
	m := new(dns.Msg).SetQuestion("a.example.", dns.TypeA)
	m.Response = true
	m.Answer = []dns.RR{mustRR("a.example. 60 IN CNAME b.example."), mustRR("b.example. 60 IN A 198.18.0.1")}
	m.Ns = []dns.RR{mustRR("example. 60 IN NS ns.example.")}
	m.Extra = []dns.RR{mustRR("ns.example. 60 IN AAAA 2001:2::1")}
	m.SetEdns0(1232, true)
	m.Compress = true
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	offs, ok := ttlOffsets(b)
	if !ok || len(offs) != 4 {
		t.Fatalf("offsets %v ok %v, want 4", offs, ok)
	}
	for _, o := range offs {
		binary.BigEndian.PutUint32(b[o:], 7)
	}
	got := unpack(t, b)
	for _, rr := range slices.Concat(got.Answer, got.Ns, got.Extra) {
		if rr.Header().Rrtype == dns.TypeOPT {
			if o := rr.(*dns.OPT); !o.Do() || o.UDPSize() != 1232 {
				t.Errorf("OPT changed: %v", o)
			}
		} else if rr.Header().Ttl != 7 {
			t.Errorf("%v: TTL not rewritten", rr)
		}
	}
	for _, bad := range [][]byte{b[:len(b)-1], append(slices.Clone(b), 0), b[:11]} {
		if _, ok := ttlOffsets(bad); ok {
			t.Errorf("accepted a malformed message of %d bytes", len(bad))
		}
	}
}

func TestWireCacheBounded(t *testing.T) {
	c := newWireCache(8)
	now := time.Now()
	reply := func(name string) []byte {
		m := new(dns.Msg).SetQuestion(name, dns.TypeA)
		m.Response = true
		m.Answer = []dns.RR{mustRR(name + " 60 IN A 198.18.0.1")}
		b, _ := m.Pack()
		return b
	}
	for i := range 100 {
		name := fmt.Sprintf("n%d.example.", i)
		c.put(packQuery(t, 1, name, dns.TypeA, 0), reply(name), now.Add(time.Minute))
		if len(c.m) > 8 {
			t.Fatalf("%d entries after %d puts", len(c.m), i+1)
		}
	}
	last := packQuery(t, 9, "n99.example.", dns.TypeA, 0)
	if out, ok := c.get(last, now, nil); !ok || unpack(t, out).Id != 9 {
		t.Error("the newest entry is gone")
	}
}

// TestHitBatchOrder: a batch's answers go out grouped by reply address,
// then client, longest first, so runs to one client coalesce (UDP GSO).
func TestHitBatchOrder(t *testing.T) {
	h := newHitBatch(&Server{})
	r1, r2 := netip.MustParseAddrPort("198.19.53.53:53"), netip.MustParseAddrPort("198.19.8.8:53")
	c1, c2 := netip.MustParseAddrPort("198.18.1.2:1000"), netip.MustParseAddrPort("198.18.1.2:2000")
	in := []struct {
		dst, to netip.AddrPort
		size    int
	}{{r2, c1, 60}, {r1, c2, 60}, {r1, c1, 40}, {r1, c2, 60}, {r1, c1, 60}, {r2, c1, 60}, {r1, c2, 30}}
	for i, e := range in {
		h.dst[i], h.to[i], h.outs[i] = e.dst, e.to, make([]byte, e.size)
	}
	h.n = len(in)
	order := h.order[:h.n]
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, h.compare)
	var got []string
	for _, i := range order {
		got = append(got, fmt.Sprintf("%s>%s/%d", h.dst[i], h.to[i], len(h.outs[i])))
	}
	want := []string{ // netip order: 198.19.8.8 before 198.19.53.53
		"198.19.8.8:53>198.18.1.2:1000/60", "198.19.8.8:53>198.18.1.2:1000/60",
		"198.19.53.53:53>198.18.1.2:1000/60", "198.19.53.53:53>198.18.1.2:1000/40",
		"198.19.53.53:53>198.18.1.2:2000/60", "198.19.53.53:53>198.18.1.2:2000/60", "198.19.53.53:53>198.18.1.2:2000/30",
	}
	if !slices.Equal(got, want) {
		t.Errorf("send order\n%v\nwant\n%v", got, want)
	}
}
