package dns

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

func TestMalformedQueries(t *testing.T) {
	h := newHandler(t, Config{Upstreams: []string{"udp://" + closedPort(t)}})
	q := QueryInfo{Client: testClient, Transport: "udp", MaxSize: 512}
	base := func() *dns.Msg { return new(dns.Msg).SetQuestion("a.example.", dns.TypeA) }
	for _, tc := range []struct {
		name  string
		mod   func(*dns.Msg)
		rcode int // -1: no reply
	}{
		{"response", func(m *dns.Msg) { m.Response = true }, -1},
		{"no question", func(m *dns.Msg) { m.Question = nil }, dns.RcodeFormatError},
		{"two questions", func(m *dns.Msg) { m.Question = append(m.Question, m.Question[0]) }, dns.RcodeFormatError},
		{"notify", func(m *dns.Msg) { m.Opcode = dns.OpcodeNotify }, dns.RcodeNotImplemented},
		{"update", func(m *dns.Msg) { m.Opcode = dns.OpcodeUpdate }, dns.RcodeNotImplemented},
		{"EDNS version 1", func(m *dns.Msg) { m.SetEdns0(1232, false); m.IsEdns0().SetVersion(1) }, dns.RcodeBadVers},
		{"two OPT", func(m *dns.Msg) { m.SetEdns0(1232, false); m.SetEdns0(1232, false) }, dns.RcodeFormatError},
		{"chaos class", func(m *dns.Msg) { m.Question[0].Qclass = dns.ClassCHAOS }, dns.RcodeRefused},
		{"AXFR", func(m *dns.Msg) { m.Question[0].Qtype = dns.TypeAXFR }, dns.RcodeRefused},
		{"qtype OPT", func(m *dns.Msg) { m.Question[0].Qtype = dns.TypeOPT }, dns.RcodeFormatError},
		{"not FQDN", func(m *dns.Msg) { m.Question[0].Name = "a.example" }, dns.RcodeFormatError},
		{"empty label", func(m *dns.Msg) { m.Question[0].Name = "a..example." }, dns.RcodeFormatError},
		{"nil record", func(m *dns.Msg) { m.Extra = append(m.Extra, nil) }, dns.RcodeFormatError},
	} {
		req := base()
		tc.mod(req)
		r := h.Handle(context.Background(), req, q)
		if tc.rcode == -1 {
			if r != nil {
				t.Errorf("%s: got a reply", tc.name)
			}
			continue
		}
		if r == nil {
			t.Errorf("%s: no reply", tc.name)
			continue
		}
		if r.Rcode != tc.rcode || r.Id != req.Id || !r.Response {
			t.Errorf("%s: rcode %s id %d, want %s id %d", tc.name, dns.RcodeToString[r.Rcode], r.Id, dns.RcodeToString[tc.rcode], req.Id)
		}
		if _, err := r.Pack(); err != nil {
			t.Errorf("%s: reply does not pack: %v", tc.name, err)
		}
	}
	if r := h.Handle(context.Background(), nil, q); r != nil {
		t.Error("reply to a nil message")
	}
	if st := h.Stats(); st.Malformed != 14 {
		t.Errorf("malformed %d, want 14", st.Malformed)
	}
}

func TestHandleWireMalformed(t *testing.T) {
	h := newHandler(t, Config{Upstreams: []string{"udp://" + closedPort(t)}})
	q := QueryInfo{Client: testClient, Transport: "udp", MaxSize: 512}
	query, _ := new(dns.Msg).SetQuestion("a.example.", dns.TypeA).Pack()
	for _, tc := range []struct {
		name  string
		wire  []byte
		reply bool
		rcode int
	}{
		{"empty", nil, false, 0},
		{"short header", []byte{1, 2, 3}, false, 0},
		{"header only, query", []byte{0xab, 0xcd, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0}, true, dns.RcodeFormatError},
		{"header only, response", []byte{0xab, 0xcd, 0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0}, false, 0},
		// miekg/dns decodes a question cut in its class as class 0.
		{"cut class", query[:len(query)-2], true, dns.RcodeRefused},
		{"cut name", query[:len(query)-6], true, dns.RcodeFormatError},
		{"label pointer loop", append(append([]byte{0xab, 0xcd, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0}, 0xc0, 12), 0, 1, 0, 1), true, dns.RcodeFormatError},
	} {
		out, ok := h.HandleWire(context.Background(), tc.wire, q)
		if ok != tc.reply {
			t.Errorf("%s: reply %v, want %v", tc.name, ok, tc.reply)
			continue
		}
		if !ok {
			continue
		}
		r := new(dns.Msg)
		if err := r.Unpack(out); err != nil {
			t.Errorf("%s: reply does not unpack: %v", tc.name, err)
			continue
		}
		if r.Rcode != tc.rcode || !r.Response || r.Id != uint16(tc.wire[0])<<8|uint16(tc.wire[1]) {
			t.Errorf("%s: reply %v", tc.name, r)
		}
	}
	if st := h.Stats(); st.Malformed != 7 || st.QueriesUDP != 7 {
		t.Errorf("malformed %d queries %d, want 7 and 7", st.Malformed, st.QueriesUDP)
	}
}

func TestHandleWireAnswers(t *testing.T) {
	c := newCacheSetup(t, Config{})
	c.z.set("a.example. A", "a.example. 60 IN A 192.0.2.1")
	req := new(dns.Msg).SetQuestion("a.example.", dns.TypeA)
	wire, _ := req.Pack()
	out, ok := c.h.HandleWire(context.Background(), wire, QueryInfo{Client: testClient, Transport: "tcp", MaxSize: dns.MaxMsgSize})
	if !ok {
		t.Fatal("no reply")
	}
	r := new(dns.Msg)
	if err := r.Unpack(out); err != nil || len(r.Answer) != 1 || r.Id != req.Id {
		t.Fatalf("reply %v, %v", r, err)
	}
	if st := c.h.Stats(); st.QueriesTCP != 1 {
		t.Errorf("tcp queries %d", st.QueriesTCP)
	}
}

func TestEDNSMirrored(t *testing.T) {
	c := newCacheSetup(t, Config{})
	c.z.set("a.example. A", "a.example. 60 IN A 192.0.2.1")
	r := ask(t, c.h, "a.example.", dns.TypeA, noEDNS)
	if r.IsEdns0() != nil {
		t.Error("reply to a query without EDNS has an OPT record")
	}
	if !r.RecursionAvailable || !r.RecursionDesired {
		t.Errorf("RA %v RD %v", r.RecursionAvailable, r.RecursionDesired)
	}
	r = ask(t, c.h, "a.example.", dns.TypeA, func(m *dns.Msg) { m.IsEdns0().SetDo() })
	opt := r.IsEdns0()
	if opt == nil || !opt.Do() || opt.UDPSize() != upstreamEDNSSize {
		t.Errorf("OPT %v, want DO and size %d", opt, upstreamEDNSSize)
	}
	if q := c.z.lastQuery(); q.IsEdns0() == nil || !q.IsEdns0().Do() {
		t.Error("DO not passed upstream")
	}
	n := 0
	for _, rr := range r.Extra {
		if rr.Header().Rrtype == dns.TypeOPT {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d OPT records in the reply", n)
	}
}

func TestTruncationToClientSize(t *testing.T) {
	z := &zone{}
	var many []string
	for i := range 100 {
		many = append(many, fmt.Sprintf("many.example. 60 IN AAAA 2001:db8::%x", i))
	}
	z.set("many.example. AAAA", many...)
	s := startServer(t, z.ServeDNS) // about 2.9 KB: UDP upstream answers TC, fetched over TCP
	h := newHandler(t, Config{Upstreams: []string{"udp://" + s.addr}})
	for _, tc := range []struct {
		name      string
		transport string
		size      int // client EDNS size; 0: no EDNS
		full      bool
	}{
		{"no EDNS over UDP", "udp", 0, false},
		{"EDNS 512", "udp", 512, false},
		{"EDNS 1232", "udp", 1232, false},
		{"EDNS below 512", "udp", 100, false},
		{"EDNS 4096", "udp", 4096, true},
		{"TCP", "tcp", 0, true},
	} {
		req := new(dns.Msg).SetQuestion("many.example.", dns.TypeAAAA)
		if tc.size > 0 {
			req.SetEdns0(uint16(tc.size), false)
		}
		r := askMsg(t, h, req, tc.transport) // checks packed size <= MaxSize
		if tc.full != (len(r.Answer) == 100) || r.Truncated == tc.full {
			t.Errorf("%s: %d answers, TC=%v; want full=%v", tc.name, len(r.Answer), r.Truncated, tc.full)
		}
		if tc.size > 0 && r.IsEdns0() == nil {
			t.Errorf("%s: truncation dropped the OPT record", tc.name)
		}
		if !r.Compress {
			t.Errorf("%s: reply not compressed", tc.name)
		}
	}
	if s.udp.Load() != 1 || s.queries.Load() != 2 {
		t.Errorf("upstream: %d queries, %d over UDP; want UDP then TCP once", s.queries.Load(), s.udp.Load())
	}
}

func TestQueryLog(t *testing.T) {
	c := newCacheSetup(t, Config{})
	c.z.set("a.example. A", "a.example. 60 IN CNAME b.example.", "b.example. 60 IN A 192.0.2.1")
	var buf bytes.Buffer
	c.h.log = slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ask(t, c.h, "a.example.", dns.TypeA)
	ask(t, c.h, "a.example.", dns.TypeA)
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("log:\n%s", buf.String())
	}
	for i, want := range []string{"source=upstream cached=false", "source=cache cached=true"} {
		for _, part := range []string{"client=192.168.1.10:40000", "name=a.example.", "type=A", "rcode=NOERROR",
			`answer="CNAME b.example. A 192.0.2.1"`, want, "latency="} {
			if !strings.Contains(lines[i], part) {
				t.Errorf("log line %d lacks %q:\n%s", i, part, lines[i])
			}
		}
	}
}
