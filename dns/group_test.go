package dns

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func mustUpstream(t testing.TB, spec string) Upstream {
	t.Helper()
	u, err := ParseUpstream(spec, UpstreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func upstreamStats(g *Group, name string) UpstreamStats {
	for _, s := range g.stats.snapshot() {
		if s.Upstream == name {
			return s
		}
	}
	return UpstreamStats{Upstream: name}
}

func TestGroupFailsOverAndRemembers(t *testing.T) {
	z := &zone{}
	z.set("a.example. A", "a.example. 60 IN A 192.0.2.1")
	good := startServer(t, z.ServeDNS)
	dead := mustUpstream(t, "udp://"+closedPort(t))
	g := NewGroup(time.Second, []Upstream{dead, mustUpstream(t, "udp://"+good.addr)}, nil)
	for i := range 3 {
		r, err := g.Exchange(context.Background(), aQuery("a.example."))
		if err != nil || len(r.Answer) != 1 {
			t.Fatalf("exchange %d: %v %v", i, err, r)
		}
	}
	// The dead upstream was tried once; then it was remembered as failed
	// and put last, behind the working one.
	if s := upstreamStats(g, dead.String()); s.Queries != 1 || s.Errors != 1 {
		t.Errorf("dead upstream: %+v, want 1 query, 1 error", s)
	}
	if s := upstreamStats(g, "udp://"+good.addr); s.Queries != 3 || s.Errors != 0 || s.LatencyCount != 3 || s.LatencySum <= 0 {
		t.Errorf("good upstream: %+v, want 3 answered queries", s)
	}
}

func TestGroupPenaltyOrder(t *testing.T) {
	clk := newClock()
	fail := errors.New("down")
	a := &fakeUpstream{name: "a", fn: func(context.Context, *dns.Msg) (*dns.Msg, error) { return nil, fail }}
	b := &fakeUpstream{name: "b", fn: func(context.Context, *dns.Msg) (*dns.Msg, error) { return nil, fail }}
	c := &fakeUpstream{name: "c", fn: func(ctx context.Context, m *dns.Msg) (*dns.Msg, error) {
		return new(dns.Msg).SetReply(m), nil
	}}
	g := NewGroup(time.Second, []Upstream{a, b, c}, nil)
	g.now = clk.Now
	order := func() string {
		var names []string
		for _, u := range g.order() {
			names = append(names, u.String())
		}
		return strings.Join(names, ",")
	}
	if got := order(); got != "a,b,c" {
		t.Fatalf("initial order %s", got)
	}
	if _, err := g.Exchange(context.Background(), aQuery("x.example.")); err != nil {
		t.Fatal(err)
	}
	// b failed after a: a has been failing longer, so it goes first of the two.
	if got := order(); got != "c,a,b" {
		t.Errorf("order after a and b failed: %s, want c,a,b", got)
	}
	clk.Advance(failPenalty)
	if got := order(); got != "a,b,c" {
		t.Errorf("order after the penalty: %s, want a,b,c", got)
	}
}

func TestGroupFailsOverOnServfailAndWrongQuestion(t *testing.T) {
	for _, tc := range []struct {
		name string
		bad  func(m *dns.Msg) *dns.Msg
	}{
		{"servfail", func(m *dns.Msg) *dns.Msg { return new(dns.Msg).SetRcode(m, dns.RcodeServerFailure) }},
		{"refused", func(m *dns.Msg) *dns.Msg { return new(dns.Msg).SetRcode(m, dns.RcodeRefused) }},
		{"other question", func(m *dns.Msg) *dns.Msg {
			r := new(dns.Msg).SetReply(m)
			r.Question[0].Name = "evil.example."
			return r
		}},
		{"not a response", func(m *dns.Msg) *dns.Msg { return m.Copy() }},
		// What miekg/dns unpacks from an NSEC3 whose RDATA ends before
		// its salt: packed again, its salt length overflows (found by
		// FuzzWireCacheUpstream).
		{"record that does not repack", func(m *dns.Msg) *dns.Msg {
			r := new(dns.Msg).SetReply(m)
			r.Answer = []dns.RR{&dns.NSEC3{Hdr: dns.RR_Header{Name: "x.example.", Rrtype: dns.TypeNSEC3, Class: dns.ClassINET, Ttl: 60},
				Hash: 1, Iterations: 1, SaltLength: 33}}
			return r
		}},
	} {
		bad := &fakeUpstream{name: "bad", fn: func(_ context.Context, m *dns.Msg) (*dns.Msg, error) { return tc.bad(m), nil }}
		good := &fakeUpstream{name: "good", fn: func(_ context.Context, m *dns.Msg) (*dns.Msg, error) {
			r := new(dns.Msg).SetReply(m)
			r.Answer = append(r.Answer, mustRR("x.example. 60 IN A 192.0.2.9"))
			return r, nil
		}}
		g := NewGroup(time.Second, []Upstream{bad, good}, nil)
		r, err := g.Exchange(context.Background(), aQuery("x.example."))
		if err != nil || len(r.Answer) != 1 || good.n.Load() != 1 {
			t.Errorf("%s: got %v %v, want the second upstream's answer", tc.name, err, r)
		}
	}
}

func TestGroupAllDownIsBounded(t *testing.T) {
	const timeout = 100 * time.Millisecond
	for _, tc := range []struct {
		name  string
		addrs []string
		limit time.Duration
	}{
		// Port unreachable comes back at once.
		{"closed ports", []string{closedPort(t), closedPort(t)}, timeout},
		// Silence costs one timeout per upstream.
		{"silent", []string{blackhole(t), blackhole(t)}, 2*timeout + 500*time.Millisecond},
	} {
		var ups []Upstream
		for _, a := range tc.addrs {
			ups = append(ups, mustUpstream(t, "udp://"+a))
		}
		g := NewGroup(timeout, ups, nil)
		start := time.Now()
		_, err := g.Exchange(context.Background(), aQuery("x.example."))
		took := time.Since(start)
		if err == nil {
			t.Fatalf("%s: exchange succeeded", tc.name)
		}
		if took > tc.limit {
			t.Errorf("%s: failing took %v, want <= %v", tc.name, took, tc.limit)
		}
		if !strings.Contains(err.Error(), "all 2 upstreams failed") {
			t.Errorf("%s: error %q does not say all failed", tc.name, err)
		}
	}
	if _, err := NewGroup(timeout, nil, nil).Exchange(context.Background(), aQuery("x.")); !errors.Is(err, ErrNoUpstreams) {
		t.Errorf("empty group: %v, want ErrNoUpstreams", err)
	}
}

func TestHandlerServfailWhenAllDown(t *testing.T) {
	h := newHandler(t, Config{
		Upstreams: []string{"udp://" + closedPort(t), "udp://" + blackhole(t)},
		Timeout:   100 * time.Millisecond,
	})
	start := time.Now()
	r := ask(t, h, "x.example.", dns.TypeA)
	if took := time.Since(start); took > time.Second {
		t.Errorf("SERVFAIL took %v", took)
	}
	wantRcode(t, r, dns.RcodeServerFailure)
	if ede := findEDE(r); ede == nil || ede.InfoCode != dns.ExtendedErrorCodeNetworkError {
		t.Errorf("EDE %v, want Network Error", ede)
	}
	if s := h.Stats(); s.ServFail != 1 || s.CacheMisses != 1 || len(s.Upstreams) != 2 || s.Upstreams[0].Errors != 1 || s.Upstreams[1].Errors != 1 {
		t.Errorf("stats %+v", s)
	}
}

func findEDE(m *dns.Msg) *dns.EDNS0_EDE {
	if opt := m.IsEdns0(); opt != nil {
		for _, o := range opt.Option {
			if e, ok := o.(*dns.EDNS0_EDE); ok {
				return e
			}
		}
	}
	return nil
}

func TestParseResolvConf(t *testing.T) {
	in := `# Interface wan
search lan
nameserver 198.19.0.53
nameserver 2001:2::53
nameserver 198.19.0.53
nameserver 127.0.0.1
nameserver ::1
nameserver 0.0.0.0
nameserver fe80::1%eth1
nameserver bogus
nameserver
options ndots:1
`
	got, err := parseResolvConf(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	var s []string
	for _, ap := range got {
		s = append(s, ap.String())
	}
	want := []string{"198.19.0.53:53", "[2001:2::53]:53", "[fe80::1%eth1]:53"}
	if !slices.Equal(s, want) {
		t.Errorf("got %v, want %v", s, want)
	}
}

func TestResolvConfFollowsFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "resolv.conf.auto")
	rc := ResolvConfUpstreams(path, UpstreamOptions{}, testLog(t))
	rc.recheck = 0
	names := func() string {
		var n []string
		for _, u := range rc.Upstreams() {
			n = append(n, u.String())
		}
		return strings.Join(n, " ")
	}
	if got := names(); got != "" {
		t.Errorf("missing file: %q", got)
	}
	write := func(content string, mtime time.Time) {
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(path, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	t0 := time.Now().Add(-time.Hour)
	write("nameserver 198.19.0.53\n", t0)
	if got := names(); got != "udp://198.19.0.53:53" {
		t.Errorf("first read: %q", got)
	}
	first := rc.Upstreams()[0]
	write("nameserver 198.19.0.54\nnameserver 198.19.0.53\n", t0.Add(time.Second))
	if got := names(); got != "udp://198.19.0.54:53 udp://198.19.0.53:53" {
		t.Errorf("after change: %q", got)
	}
	if rc.Upstreams()[1] != first {
		t.Error("an unchanged nameserver got a new upstream")
	}
	// WAN down: the file is emptied; the last list stays.
	write("# no nameservers\n", t0.Add(2*time.Second))
	if got := names(); got != "udp://198.19.0.54:53 udp://198.19.0.53:53" {
		t.Errorf("after emptying: %q", got)
	}
	// A Group consults it on every exchange. 192.0.2.0/24 is TEST-NET-1:
	// the try fails (unreachable or timeout) and the error names it.
	g := NewGroup(time.Second, nil, rc)
	write("nameserver 192.0.2.255\n", t0.Add(3*time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := g.Exchange(ctx, aQuery("a.example.")); err == nil || !strings.Contains(err.Error(), "udp://192.0.2.255:53") {
		t.Errorf("exchange via resolv.conf: %v", err)
	}
}
