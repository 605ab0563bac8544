package dns

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// fuzzUpstream answers every question in-process: a few A/AAAA records
// (one private, to reach rebinding protection), many for names starting
// with "big" (to reach truncation), NXDOMAIN with SOA for "nx", SERVFAIL
// for "fail", an error for "err".
func fuzzUpstream() *fakeUpstream {
	return &fakeUpstream{name: "fuzz", fn: func(_ context.Context, m *dns.Msg) (*dns.Msg, error) {
		q := m.Question[0]
		r := new(dns.Msg).SetReply(m)
		var label string
		if off, end := dns.NextLabel(q.Name, 0); !end {
			label = q.Name[:off-1]
		}
		switch label {
		case "err":
			return nil, fmt.Errorf("fuzz upstream down")
		case "fail":
			r.Rcode = dns.RcodeServerFailure
			return r, nil
		case "nx":
			r.Rcode = dns.RcodeNameError
			r.Ns = append(r.Ns, mustRR(testSOA))
			return r, nil
		}
		n := 2
		if len(label) >= 3 && label[:3] == "big" {
			n = 200
		}
		for i := range n {
			hdr := dns.RR_Header{Name: q.Name, Class: dns.ClassINET, Ttl: uint32(30 + i)}
			switch q.Qtype {
			case dns.TypeA:
				hdr.Rrtype = dns.TypeA
				a := netip.AddrFrom4([4]byte{192, 0, 2, byte(i)})
				if label == "priv" {
					a = netip.AddrFrom4([4]byte{192, 168, 0, byte(i)})
				}
				r.Answer = append(r.Answer, &dns.A{Hdr: hdr, A: a.AsSlice()})
			case dns.TypeAAAA:
				hdr.Rrtype = dns.TypeAAAA
				a := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(i)})
				r.Answer = append(r.Answer, &dns.AAAA{Hdr: hdr, AAAA: a.AsSlice()})
			case dns.TypeTXT:
				hdr.Rrtype = dns.TypeTXT
				r.Answer = append(r.Answer, &dns.TXT{Hdr: hdr, Txt: []string{fmt.Sprintf("record %d of %s", i, q.Name)}})
			}
		}
		if len(r.Answer) == 0 {
			r.Ns = append(r.Ns, mustRR(testSOA))
		}
		r.SetEdns0(upstreamEDNSSize, doBit(m))
		return r, nil
	}}
}

func FuzzHandleWire(f *testing.F) {
	seed := func(name string, qtype uint16, mods ...func(*dns.Msg)) {
		m := new(dns.Msg).SetQuestion(name, qtype)
		for _, mod := range mods {
			mod(m)
		}
		wire, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(wire, uint16(0), false)
		f.Add(wire, uint16(1232), true)
	}
	edns := func(size uint16, do bool) func(*dns.Msg) {
		return func(m *dns.Msg) { m.SetEdns0(size, do) }
	}
	seed("a.example.", dns.TypeA)
	seed("big.example.", dns.TypeA, edns(512, false))
	seed("big.example.", dns.TypeTXT, edns(4096, true))
	seed("nx.example.", dns.TypeAAAA)
	seed("fail.example.", dns.TypeA)
	seed("err.example.", dns.TypeA)
	seed("priv.example.", dns.TypeA)
	seed("nas.lan.", dns.TypeA)
	seed("x.ads.example.", dns.TypeAAAA)
	seed("a.example.", dns.TypeA, func(m *dns.Msg) { m.Opcode = dns.OpcodeNotify })
	seed("a.example.", dns.TypeA, func(m *dns.Msg) { m.Question = append(m.Question, m.Question[0]) })
	seed("a.example.", dns.TypeA, edns(1232, false), func(m *dns.Msg) { m.IsEdns0().SetVersion(1) })
	f.Add([]byte{0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0}, uint16(0), false)
	f.Add([]byte{}, uint16(0), true)

	clk := newClock()
	h, err := New(Config{
		Upstreams:        []string{"udp://192.0.2.53"}, // replaced below
		Hosts:            map[string][]string{"nas.lan": {"192.168.1.5", "fd00::5"}},
		RebindProtection: true,
		ServeStale:       true,
		CacheSize:        64,
		MemorySize:       64,
		Now:              clk.Now,
	}, nil)
	if err != nil {
		f.Fatal(err)
	}
	h.upstream = NewGroup(time.Second, []Upstream{fuzzUpstream()}, nil)
	var b blockBuilder
	_ = b.add(stringsReader("ads.example\n"))
	h.block = b.build()

	f.Fuzz(func(t *testing.T, wire []byte, size uint16, tcp bool) {
		q := QueryInfo{Client: testClient, Transport: "udp", MaxSize: int(size)}
		if tcp {
			q.Transport = "tcp"
		}
		clk.Advance(7 * time.Second) // entries expire and go stale as the fuzzer runs
		out, ok := h.HandleWire(context.Background(), wire, q)
		if !ok {
			if len(out) != 0 {
				t.Fatal("bytes returned with ok=false")
			}
			return
		}
		limit := min(max(int(size), dns.MinMsgSize), dns.MaxMsgSize)
		if req := new(dns.Msg); size == 0 && req.Unpack(wire) == nil {
			limit = MaxSizeFor(req, q.Transport) // HandleWire's default
		}
		if len(out) > limit {
			t.Fatalf("reply of %d bytes exceeds MaxSize %d", len(out), limit)
		}
		if len(wire) < headerLen || len(out) < headerLen {
			t.Fatalf("reply %x to input %x", out, wire)
		}
		if out[0] != wire[0] || out[1] != wire[1] || out[2]&0x80 == 0 {
			t.Fatalf("reply header %x does not answer %x", out[:4], wire[:4])
		}
		r := new(dns.Msg)
		if err := r.Unpack(out); err != nil {
			t.Fatalf("reply does not decode: %v\n%x", err, out)
		}
	})
}

// replySeeds are packed upstream answers to a.example. A for the wire
// cache targets: plain, compressed with several sections, EDNS, negative,
// and many records (truncated to 512 bytes).
func replySeeds(f *testing.F) [][]byte {
	var out [][]byte
	add := func(m *dns.Msg) {
		m.Response = true
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		out = append(out, b)
	}
	m := new(dns.Msg).SetQuestion("a.example.", dns.TypeA)
	m.Answer = []dns.RR{mustRR("a.example. 60 IN A 198.18.0.1")}
	add(m)
	m = new(dns.Msg).SetQuestion("a.example.", dns.TypeA)
	m.Compress = true
	m.Answer = []dns.RR{mustRR("a.example. 300 IN CNAME b.example."), mustRR("b.example. 120 IN A 198.18.0.2")}
	m.Ns = []dns.RR{mustRR("example. 3600 IN NS ns.example.")}
	m.Extra = []dns.RR{mustRR("ns.example. 3600 IN AAAA 2001:2::53"), mustRR("ns.example. 3600 IN TXT \"t\"")}
	m.SetEdns0(1232, true)
	add(m)
	m = new(dns.Msg).SetQuestion("a.example.", dns.TypeA)
	m.Rcode = dns.RcodeNameError
	m.Ns = []dns.RR{mustRR(testSOA)}
	add(m)
	m = new(dns.Msg).SetQuestion("a.example.", dns.TypeA)
	for i := range 60 {
		m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: "a.example.", Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 90}, A: []byte{198, 18, 1, byte(i)}})
	}
	add(m)
	return out
}

// sameButTTL fails unless got has want's header (but the ID), question
// and records, and every record but OPT has TTL ttl in got.
func sameButTTL(t *testing.T, got, want *dns.Msg, ttl uint32) {
	t.Helper()
	if got.MsgHdr.Id = want.Id; got.MsgHdr != want.MsgHdr || !slices.Equal(got.Question, want.Question) {
		t.Fatalf("header or question changed:\n%v\nwant\n%v", got, want)
	}
	for i, sec := range [][2][]dns.RR{{got.Answer, want.Answer}, {got.Ns, want.Ns}, {got.Extra, want.Extra}} {
		if len(sec[0]) != len(sec[1]) {
			t.Fatalf("section %d: %d records, want %d", i, len(sec[0]), len(sec[1]))
		}
		for j, rr := range sec[0] {
			w := dns.Copy(sec[1][j])
			if rr.Header().Rrtype != dns.TypeOPT {
				if rr.Header().Ttl != ttl {
					t.Fatalf("section %d record %d: TTL %d, want %d: %v", i, j, rr.Header().Ttl, ttl, rr)
				}
				w.Header().Ttl = ttl
			}
			if rr.String() != w.String() {
				t.Fatalf("section %d record %d: %v, want %v", i, j, rr, w)
			}
		}
	}
}

// FuzzWireCache stores arbitrary bytes as a packed reply and reads them
// back: a reply is memoized iff the TTL walk accepts it and finds a TTL,
// and the copy differs from it only in the ID and at the TTL offsets
// (inside the message, past the header, not overlapping). What the Handler
// stores is packed by miekg/dns: the reply, unpacked and packed again
// (compressed) is always memoized, and the copy unpacks to the same
// header, question and records, with every TTL but OPT's (the EDNS flags)
// rewritten. (Arbitrary bytes need not: a name compressed into a TTL field
// changes with it.)
func FuzzWireCache(f *testing.F) {
	for _, b := range replySeeds(f) {
		f.Add(b, uint16(58))
	}
	f.Add([]byte{0, 1, 0x81, 0x80, 0, 0, 0, 1, 0, 0, 0, 0, 0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 0}, uint16(0))
	query := []byte{0xab, 0xcd, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 'a', 0, 0, 1, 0, 1}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	f.Fuzz(func(t *testing.T, reply []byte, left uint16) {
		ttl := uint32(left) + 2 // get drops entries with under a second left
		out, offs, hit := wireRoundTrip(t, query, reply, now, ttl)
		if walked := offs != nil; hit != (walked && len(offs) > 0) {
			t.Fatalf("hit %v; TTL walk %v with %d TTLs", hit, walked, len(offs))
		}
		if hit {
			want := bytes.Clone(reply)
			copy(want, query[:2])
			prev := headerLen
			for _, o := range offs {
				if int(o) < prev || int(o)+4 > len(reply) {
					t.Fatalf("TTL offsets %v in a %d-byte message", offs, len(reply))
				}
				binary.BigEndian.PutUint32(want[o:], ttl)
				prev = int(o) + 4
			}
			if !bytes.Equal(out, want) {
				t.Fatalf("copy\n%x\nwant\n%x", out, want)
			}
		}

		m := new(dns.Msg)
		if m.Unpack(reply) != nil {
			return
		}
		m.Compress = true
		packed, err := m.Pack()
		want := new(dns.Msg)
		if err != nil || len(packed) > dns.MaxMsgSize || want.Unpack(packed) != nil {
			return // not something the Handler could send
		}
		out, offs, hit = wireRoundTrip(t, query, packed, now, ttl)
		nonOPT := 0
		for _, rr := range slices.Concat(want.Answer, want.Ns, want.Extra) {
			if rr.Header().Rrtype != dns.TypeOPT {
				nonOPT++
			}
		}
		if offs == nil || len(offs) != nonOPT || hit != (nonOPT > 0) {
			t.Fatalf("packed by miekg/dns: TTL walk %v for %d records but OPT, hit %v\n%x", offs, nonOPT, hit, packed)
		}
		if !hit {
			return
		}
		got := new(dns.Msg)
		if err := got.Unpack(out); err != nil {
			t.Fatalf("the TTL-rewritten copy does not unpack: %v\n%x", err, out)
		}
		if got.Id != binary.BigEndian.Uint16(query) {
			t.Fatalf("copy has ID %d", got.Id)
		}
		sameButTTL(t, got, want, ttl)
	})
}

// wireRoundTrip puts reply in a new wire cache, fresh for ttl seconds
// from now, and gets it back for query at now. offs is ttlOffsets(reply),
// nil if the walk fails.
func wireRoundTrip(t *testing.T, query, reply []byte, now time.Time, ttl uint32) (out []byte, offs []uint16, hit bool) {
	t.Helper()
	c := newWireCache(4)
	orig := bytes.Clone(reply)
	c.put(query, reply, now.Add(time.Duration(ttl)*time.Second))
	if !bytes.Equal(reply, orig) {
		t.Fatal("put modified the reply")
	}
	offs, ok := ttlOffsets(reply)
	if !ok {
		offs = nil
	} else if offs == nil {
		offs = []uint16{}
	}
	out, hit = c.get(query, now, nil)
	return out, offs, hit
}

// FuzzWireCacheUpstream sends arbitrary upstream answers (forced to
// answer the question asked) through the Handler: the reply unpacks, and
// whenever the fast path answers a repeat of the query, its bytes are
// exactly what the slow path answers at that moment, and they unpack to
// the first reply with only the ID and the TTLs (down by the time elapsed)
// changed.
func FuzzWireCacheUpstream(f *testing.F) {
	for _, b := range replySeeds(f) {
		f.Add(b, uint16(dns.TypeA), uint16(1232), false, uint8(10))
		f.Add(b, uint16(dns.TypeA), uint16(0), true, uint8(0))
	}
	f.Fuzz(func(t *testing.T, reply []byte, qtype, udpSize uint16, do bool, elapsed uint8) {
		clk := newClock()
		h, err := New(Config{Upstreams: []string{"udp://192.0.2.53"}, RebindProtection: true, CacheSize: 8, Now: clk.Now}, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		h.upstream = NewGroup(time.Second, []Upstream{&fakeUpstream{name: "fuzz", fn: func(_ context.Context, m *dns.Msg) (*dns.Msg, error) {
			r := new(dns.Msg)
			if err := r.Unpack(reply); err != nil {
				return nil, err
			}
			r.Id, r.Response, r.Question = m.Id, true, m.Question
			return r, nil
		}}}, nil)
		query := func(id uint16) []byte {
			m := new(dns.Msg).SetQuestion("a.example.", qtype)
			m.Id = id
			if udpSize > 0 || do {
				m.SetEdns0(udpSize, do)
			}
			b, err := m.Pack()
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
		ctx := context.Background()
		q := QueryInfo{Client: testClient, Transport: "udp"}
		first, ok := h.HandleWire(ctx, query(1), q)
		want := new(dns.Msg)
		if !ok {
			t.Fatal("no reply")
		}
		if err := want.Unpack(first); err != nil {
			t.Fatalf("reply does not unpack: %v\n%x", err, first)
		}
		clk.Advance(time.Duration(elapsed) * time.Second)
		fast, hit := h.CachedUDP(query(2), nil)
		if !hit {
			return
		}
		slow, ok := h.HandleWire(ctx, query(2), q)
		if !ok || !bytes.Equal(fast, slow) {
			t.Fatalf("fast path\n%x\nslow path\n%x", fast, slow)
		}
		got := new(dns.Msg)
		if err := got.Unpack(fast); err != nil {
			t.Fatalf("fast reply: %v", err)
		}
		if got.Id != 2 {
			t.Fatalf("fast reply ID %d, want 2", got.Id)
		}
		ttl := ^uint32(0)
		for _, rr := range slices.Concat(want.Answer, want.Ns, want.Extra) {
			if rr.Header().Rrtype != dns.TypeOPT {
				ttl = rr.Header().Ttl
			}
		}
		if ttl == ^uint32(0) || ttl < uint32(elapsed)+1 {
			t.Fatalf("fast hit %ds after a reply with TTL %d", elapsed, ttl)
		}
		sameButTTL(t, got, want, ttl-uint32(elapsed))
	})
}
