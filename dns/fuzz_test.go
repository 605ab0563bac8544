package dns

import (
	"context"
	"fmt"
	"net/netip"
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
