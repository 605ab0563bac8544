package dns

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

const testSOA = "example. 3600 IN SOA ns.example. host.example. 1 7200 900 1209600 300"

func TestAnswerTTL(t *testing.T) {
	msg := func(rcode int, sections ...[]string) *dns.Msg {
		m := &dns.Msg{MsgHdr: dns.MsgHdr{Response: true, Rcode: rcode}}
		secs := []*[]dns.RR{&m.Answer, &m.Ns, &m.Extra}
		for i, lines := range sections {
			for _, l := range lines {
				*secs[i] = append(*secs[i], mustRR(l))
			}
		}
		return m
	}
	for _, tc := range []struct {
		name string
		m    *dns.Msg
		ttl  uint32
		ok   bool
	}{
		{"smallest of answers", msg(dns.RcodeSuccess, []string{"a. 300 IN A 192.0.2.1", "a. 200 IN A 192.0.2.2"}), 200, true},
		{"authority counts", msg(dns.RcodeSuccess, []string{"a. 300 IN A 192.0.2.1"}, []string{"a. 100 IN NS ns.a."}), 100, true},
		{"NXDOMAIN: SOA MINIMUM below TTL", msg(dns.RcodeNameError, nil, []string{testSOA}), 300, true},
		{"NODATA: SOA TTL below MINIMUM", msg(dns.RcodeSuccess, nil, []string{"example. 60 IN SOA ns.example. host.example. 1 7200 900 1209600 900"}), 60, true},
		{"NXDOMAIN without SOA", msg(dns.RcodeNameError), 0, false},
		{"NODATA without SOA", msg(dns.RcodeSuccess), 0, false},
		{"SERVFAIL", msg(dns.RcodeServerFailure), 0, false},
		{"FORMERR", msg(dns.RcodeFormatError, nil, []string{testSOA}), 0, false},
		{"truncated", func() *dns.Msg {
			m := msg(dns.RcodeSuccess, []string{"a. 300 IN A 192.0.2.1"})
			m.Truncated = true
			return m
		}(), 0, false},
	} {
		ttl, ok := answerTTL(tc.m)
		if ttl != tc.ttl && tc.ok || ok != tc.ok {
			t.Errorf("%s: answerTTL = %d, %v; want %d, %v", tc.name, ttl, ok, tc.ttl, tc.ok)
		}
	}
}

// TestEntryDropsMetaRecords: OPT and TSIG records are dropped from every
// section of a cached answer. An OPT in the answer section (from a broken
// upstream) was kept, its flags counted as a TTL and overwritten with one
// by the slow path only, so the fast path answered differently (found by
// FuzzWireCacheUpstream).
func TestEntryDropsMetaRecords(t *testing.T) {
	opt := func(flags uint32) dns.RR {
		return &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT, Class: 1232, Ttl: flags}}
	}
	tsig := &dns.TSIG{Hdr: dns.RR_Header{Name: "k.", Rrtype: dns.TypeTSIG, Class: dns.ClassANY}, Algorithm: dns.HmacSHA256}
	a := mustRR("a.example. 300 IN A 192.0.2.1")
	ns := mustRR("example. 600 IN NS ns.example.")
	glue := mustRR("ns.example. 600 IN A 192.0.2.53")
	r := &dns.Msg{MsgHdr: dns.MsgHdr{Response: true},
		Answer: []dns.RR{opt(0), a, tsig}, Ns: []dns.RR{ns, opt(5)}, Extra: []dns.RR{opt(0x8000), glue, tsig}}
	e := newEntry(r, time.Unix(0, 0), 0, 24*time.Hour)
	if !slices.Equal(e.msg.Answer, []dns.RR{a}) || !slices.Equal(e.msg.Ns, []dns.RR{ns}) || !slices.Equal(e.msg.Extra, []dns.RR{glue}) {
		t.Errorf("entry keeps %v / %v / %v", e.msg.Answer, e.msg.Ns, e.msg.Extra)
	}
	if e.ttl != 300*time.Second {
		t.Errorf("lifetime %v, want the A record's 300s", e.ttl)
	}
	if len(r.Answer) != 3 || r.Answer[0].Header().Rrtype != dns.TypeOPT {
		t.Error("the upstream message was modified")
	}
}

// cacheSetup is a Handler with an injected clock in front of a zone server.
type cacheSetup struct {
	h   *Handler
	z   *zone
	s   *server
	clk *fakeClock
}

func newCacheSetup(t *testing.T, cfg Config) *cacheSetup {
	z := &zone{soa: testSOA, nx: map[string]bool{"nx.example.": true}}
	s := startServer(t, z.ServeDNS)
	clk := newClock()
	cfg.Upstreams = []string{"udp://" + s.addr}
	cfg.Now = clk.Now
	return &cacheSetup{h: newHandler(t, cfg), z: z, s: s, clk: clk}
}

func TestCacheDecrementsAndExpires(t *testing.T) {
	c := newCacheSetup(t, Config{})
	c.z.set("a.example. A", "a.example. 300 IN A 192.0.2.1", "a.example. 400 IN A 192.0.2.2")
	for _, step := range []struct {
		advance time.Duration
		ttl     uint32
		queries int64
	}{
		{0, 300, 1},                 // miss: the smallest TTL for the whole answer
		{100 * time.Second, 200, 1}, // hit, decremented
		{199*time.Second + 500*time.Millisecond, 0, 1}, // half a second left
		{500 * time.Millisecond, 300, 2},               // expired: asked again
	} {
		c.clk.Advance(step.advance)
		r := ask(t, c.h, "A.Example.", dns.TypeA)
		if got := ttls(r); !slices.Equal(got, []uint32{step.ttl, step.ttl}) {
			t.Errorf("after %v: TTLs %v, want %d", step.advance, got, step.ttl)
		}
		if r.Question[0].Name != "A.Example." {
			t.Errorf("question %q: the client's spelling is not echoed", r.Question[0].Name)
		}
		if n := c.s.queries.Load(); n != step.queries {
			t.Errorf("after %v: %d upstream queries, want %d", step.advance, n, step.queries)
		}
	}
	if s := c.h.Stats(); s.CacheHits != 2 || s.CacheMisses != 2 || s.Forwarded != 2 || s.QueriesUDP != 4 {
		t.Errorf("stats %+v", s)
	}
}

func TestCacheClamps(t *testing.T) {
	for _, tc := range []struct {
		name           string
		minTTL, maxTTL time.Duration
		recordTTL      int
		want           uint32
	}{
		{"min raises", 600 * time.Second, 0, 5, 600},
		{"max lowers", 0, time.Minute, 3600, 60},
		{"inside", 10 * time.Second, time.Hour, 300, 300},
		{"default max is a day", 0, 0, 7 * 86400, 86400},
		{"TTL 0 not cached without min", 0, 0, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCacheSetup(t, Config{MinTTL: tc.minTTL, MaxTTL: tc.maxTTL})
			c.z.set("a.example. A", fmt.Sprintf("a.example. %d IN A 192.0.2.1", tc.recordTTL))
			if got := ttls(ask(t, c.h, "a.example.", dns.TypeA)); got[0] != tc.want {
				t.Errorf("TTL %d, want %d", got[0], tc.want)
			}
			ask(t, c.h, "a.example.", dns.TypeA)
			wantQueries := int64(1)
			if tc.want == 0 {
				wantQueries = 2
			}
			if n := c.s.queries.Load(); n != wantQueries {
				t.Errorf("%d upstream queries for two asks, want %d", n, wantQueries)
			}
		})
	}
}

func TestNegativeCaching(t *testing.T) {
	c := newCacheSetup(t, Config{})
	// NXDOMAIN: SOA TTL 3600, MINIMUM 300 -> cached 300 s.
	r := ask(t, c.h, "nx.example.", dns.TypeA)
	wantRcode(t, r, dns.RcodeNameError)
	if len(r.Ns) != 1 || r.Ns[0].Header().Ttl != 300 {
		t.Fatalf("NXDOMAIN authority %v, want the SOA with TTL 300", r.Ns)
	}
	c.clk.Advance(299 * time.Second)
	r = ask(t, c.h, "nx.example.", dns.TypeA)
	wantRcode(t, r, dns.RcodeNameError)
	if r.Ns[0].Header().Ttl != 1 || c.s.queries.Load() != 1 {
		t.Errorf("NXDOMAIN hit: SOA TTL %d, %d upstream queries", r.Ns[0].Header().Ttl, c.s.queries.Load())
	}
	c.clk.Advance(time.Second)
	ask(t, c.h, "nx.example.", dns.TypeA)
	if c.s.queries.Load() != 2 {
		t.Errorf("NXDOMAIN not refetched after 300 s")
	}

	// NODATA: a name with an A record, asked for AAAA.
	c.z.set("a.example. A", "a.example. 60 IN A 192.0.2.1")
	for range 2 {
		r = ask(t, c.h, "a.example.", dns.TypeAAAA)
		wantRcode(t, r, dns.RcodeSuccess)
		if len(r.Answer) != 0 || len(r.Ns) != 1 {
			t.Fatalf("NODATA: %v", r)
		}
	}
	if c.s.queries.Load() != 3 {
		t.Errorf("NODATA not cached: %d upstream queries", c.s.queries.Load())
	}

	// Without a SOA a negative answer is not cached.
	c.z.mu.Lock()
	c.z.soa = ""
	c.z.mu.Unlock()
	ask(t, c.h, "b.example.", dns.TypeA)
	ask(t, c.h, "b.example.", dns.TypeA)
	if c.s.queries.Load() != 5 {
		t.Errorf("negative answer without SOA cached: %d upstream queries", c.s.queries.Load())
	}
}

func TestNegativeCachingCapped(t *testing.T) {
	c := newCacheSetup(t, Config{MaxTTL: 48 * time.Hour})
	c.z.mu.Lock()
	c.z.soa = "example. 86400 IN SOA ns.example. host.example. 1 7200 900 1209600 86400"
	c.z.mu.Unlock()
	if r := ask(t, c.h, "nx.example.", dns.TypeA); r.Ns[0].Header().Ttl != uint32(maxNegativeTTL/time.Second) {
		t.Errorf("negative TTL %d, want the %v cap", r.Ns[0].Header().Ttl, maxNegativeTTL)
	}
}

func TestCacheLRUBound(t *testing.T) {
	c := newCacheSetup(t, Config{CacheSize: 3})
	for i := range 5 {
		name := fmt.Sprintf("n%d.example.", i)
		c.z.set(name+" A", name+" 600 IN A 192.0.2.1")
		ask(t, c.h, name, dns.TypeA)
		if i == 2 {
			ask(t, c.h, "n0.example.", dns.TypeA) // n0 is now more recent than n1
		}
	}
	s := c.h.Stats()
	if s.CacheEntries != 3 || s.CacheEvicted != 2 {
		t.Errorf("entries %d evicted %d, want 3 and 2", s.CacheEntries, s.CacheEvicted)
	}
	before := c.s.queries.Load()
	for _, n := range []string{"n0", "n3", "n4"} { // kept
		ask(t, c.h, n+".example.", dns.TypeA)
	}
	if c.s.queries.Load() != before {
		t.Errorf("recently used entries were evicted")
	}
	ask(t, c.h, "n1.example.", dns.TypeA)
	if c.s.queries.Load() != before+1 {
		t.Errorf("least recently used entry n1 is still cached")
	}
}

func TestCacheKey(t *testing.T) {
	c := newCacheSetup(t, Config{})
	c.z.set("a.example. A", "a.example. 600 IN A 192.0.2.1")
	ask(t, c.h, "a.example.", dns.TypeA)
	ask(t, c.h, "A.EXAMPLE.", dns.TypeA) // same key
	ask(t, c.h, "a.example.", dns.TypeA, func(m *dns.Msg) { m.IsEdns0().SetDo() })
	ask(t, c.h, "a.example.", dns.TypeA, noEDNS) // no OPT: DO clear, same key as the first
	ask(t, c.h, "a.example.", dns.TypeAAAA)
	if n := c.s.queries.Load(); n != 3 {
		t.Errorf("%d upstream queries, want 3 (plain, DO, AAAA)", n)
	}
	if q := c.z.lastQuery(); q.IsEdns0() == nil || q.IsEdns0().UDPSize() != upstreamEDNSSize || q.Id == 0 {
		t.Errorf("upstream query %v lacks EDNS %d", q, upstreamEDNSSize)
	}
}

func TestSingleflight(t *testing.T) {
	const n = 20
	release := make(chan struct{})
	z := &zone{}
	z.set("slow.example. A", "slow.example. 60 IN A 192.0.2.1")
	s := startServer(t, func(w dns.ResponseWriter, r *dns.Msg) {
		<-release
		z.ServeDNS(w, r)
	})
	h := newHandler(t, Config{Upstreams: []string{"udp://" + s.addr}, Timeout: 5 * time.Second})
	var wg sync.WaitGroup
	replies := make(chan *dns.Msg, n)
	for range n {
		wg.Go(func() { replies <- ask(t, h, "slow.example.", dns.TypeA) })
	}
	key := cacheKey{name: "slow.example.", qtype: dns.TypeA, qclass: dns.ClassINET}
	deadline := time.Now().Add(5 * time.Second)
	for h.flight.waiting(key) < n {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d queries are waiting", h.flight.waiting(key), n)
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	close(replies)
	for r := range replies {
		if len(r.Answer) != 1 {
			t.Errorf("reply without the answer: %v", r)
		}
	}
	if q := s.queries.Load(); q != 1 {
		t.Errorf("%d concurrent identical queries made %d upstream queries, want 1", n, q)
	}
	if st := h.Stats(); st.Forwarded != 1 || st.Shared != n-1 {
		t.Errorf("forwarded %d shared %d, want 1 and %d", st.Forwarded, st.Shared, n-1)
	}
}

func TestSingleflightWaiterGivesUp(t *testing.T) {
	var f flight[string, int]
	release := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		_, err, _ := f.do(ctx, "k", func() (int, error) { <-release; return 1, nil })
		done <- err
	}()
	for f.waiting("k") == 0 {
		time.Sleep(time.Millisecond)
	}
	// A second caller joins, the first gives up: the call goes on for it.
	second := make(chan int)
	go func() {
		v, _, shared := f.do(context.Background(), "k", func() (int, error) { return 2, nil })
		if !shared {
			v = -1
		}
		second <- v
	}()
	for f.waiting("k") < 2 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; err != context.Canceled {
		t.Errorf("first caller: %v", err)
	}
	close(release)
	if v := <-second; v != 1 {
		t.Errorf("second caller got %d, want the shared 1", v)
	}
}

func TestServeStale(t *testing.T) {
	var down bool
	var mu sync.Mutex
	z := &zone{}
	z.set("a.example. A", "a.example. 60 IN A 192.0.2.1")
	s := startServer(t, func(w dns.ResponseWriter, r *dns.Msg) {
		mu.Lock()
		d := down
		mu.Unlock()
		if d {
			_ = w.WriteMsg(new(dns.Msg).SetRcode(r, dns.RcodeServerFailure))
			return
		}
		z.ServeDNS(w, r)
	})
	clk := newClock()
	h := newHandler(t, Config{Upstreams: []string{"udp://" + s.addr}, ServeStale: true, MaxStale: time.Hour, Now: clk.Now})
	ask(t, h, "a.example.", dns.TypeA)
	mu.Lock()
	down = true
	mu.Unlock()
	clk.Advance(61 * time.Second)
	r := ask(t, h, "a.example.", dns.TypeA)
	wantRcode(t, r, dns.RcodeSuccess)
	if got := ttls(r); !slices.Equal(got, []uint32{staleTTL}) {
		t.Errorf("stale TTLs %v, want %d", got, staleTTL)
	}
	if ede := findEDE(r); ede == nil || ede.InfoCode != dns.ExtendedErrorCodeStaleAnswer {
		t.Errorf("EDE %v, want Stale Answer", ede)
	}
	if st := h.Stats(); st.CacheStale != 1 {
		t.Errorf("stale count %d", st.CacheStale)
	}
	clk.Advance(time.Hour) // now 1 h 1 s past expiry: too stale
	wantRcode(t, ask(t, h, "a.example.", dns.TypeA), dns.RcodeServerFailure)

	// Without ServeStale an expired entry is never used.
	h2 := newHandler(t, Config{Upstreams: []string{"udp://" + s.addr}, Now: clk.Now})
	mu.Lock()
	down = false
	mu.Unlock()
	ask(t, h2, "a.example.", dns.TypeA)
	mu.Lock()
	down = true
	mu.Unlock()
	clk.Advance(61 * time.Second)
	wantRcode(t, ask(t, h2, "a.example.", dns.TypeA), dns.RcodeServerFailure)
}

func TestLRU(t *testing.T) {
	l := newLRU[int, string](2)
	l.put(1, "a")
	l.put(2, "b")
	l.get(1)
	if ev := l.put(3, "c"); ev != 1 {
		t.Errorf("evicted %d", ev)
	}
	if _, ok := l.get(2); ok {
		t.Error("2 was not the least recently used")
	}
	if v, _ := l.get(1); v != "a" {
		t.Error("1 lost")
	}
	l.put(1, "A")
	l.remove(3)
	l.remove(9)
	if v, _ := l.get(1); v != "A" || l.len() != 1 {
		t.Errorf("after replace/remove: %q len %d", v, l.len())
	}
}
