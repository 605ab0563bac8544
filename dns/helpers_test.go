package dns

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// testLog returns a logger writing to t.Log while the test runs (the
// singleflight goroutine may outlive a test that gave up on it).
func testLog(t testing.TB) *slog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(func() { w.done.Store(true) })
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct {
	t    testing.TB
	done atomic.Bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	if !w.done.Load() {
		w.t.Log(strings.TrimSuffix(string(p), "\n"))
	}
	return len(p), nil
}

// fakeClock is an injectable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// server is a miekg DNS server on 127.0.0.1, UDP and TCP on the same port.
type server struct {
	addr    string // 127.0.0.1:port
	queries atomic.Int64
	udp     atomic.Int64 // queries that came over UDP
}

// startServer serves h on UDP and TCP. TLS, if not nil, wraps the TCP side.
func startServer(t testing.TB, h dns.HandlerFunc) *server {
	return startServerTLS(t, h, nil)
}

func startServerTLS(t testing.TB, h dns.HandlerFunc, wrap func(net.Listener) net.Listener) *server {
	t.Helper()
	s := new(server)
	var (
		ln  net.Listener
		pc  net.PacketConn
		err error
	)
	for range 20 { // a free TCP port may be taken on UDP: try another
		if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			t.Fatalf("listen tcp: %v", err)
		}
		if pc, err = net.ListenPacket("udp", ln.Addr().String()); err == nil {
			break
		}
		_ = ln.Close()
	}
	if err != nil {
		t.Fatalf("listen udp: %v", err)
	}
	s.addr = ln.Addr().String()
	if wrap != nil {
		ln = wrap(ln)
	}
	counted := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		s.queries.Add(1)
		if w.LocalAddr().Network() == "udp" {
			s.udp.Add(1)
		}
		h(w, r)
	})
	for _, srv := range []*dns.Server{
		{PacketConn: pc, Handler: counted},
		{Listener: ln, Handler: counted},
	} {
		ready := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(ready) }
		go func() { _ = srv.ActivateAndServe() }()
		<-ready
		t.Cleanup(func() { _ = srv.Shutdown() })
	}
	return s
}

// closedPort returns a loopback address where nothing listens (UDP: the
// kernel answers port unreachable, TCP: reset).
func closedPort(t testing.TB) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	_ = pc.Close()
	return addr
}

// blackhole returns a loopback UDP address that reads and never answers.
func blackhole(t testing.TB) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			if _, _, err := pc.ReadFrom(buf); err != nil {
				return
			}
		}
	}()
	return pc.LocalAddr().String()
}

// zone answers from fixed records: rrs maps "name TYPE" (lowercase FQDN) to
// zone-file lines; names in nx get NXDOMAIN; other questions get NODATA.
// Negative answers carry soa if it is set.
type zone struct {
	mu  sync.Mutex
	rrs map[string][]string
	nx  map[string]bool
	soa string
	// last is the last query received.
	last *dns.Msg
	// oversize ignores the client's UDP size (no truncation over UDP).
	oversize bool
}

func (z *zone) set(key string, rrs ...string) {
	z.mu.Lock()
	defer z.mu.Unlock()
	if z.rrs == nil {
		z.rrs = make(map[string][]string)
	}
	z.rrs[key] = rrs
}

func (z *zone) lastQuery() *dns.Msg {
	z.mu.Lock()
	defer z.mu.Unlock()
	return z.last
}

func (z *zone) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	z.mu.Lock()
	z.last = r.Copy()
	q := r.Question[0]
	lines, ok := z.rrs[strings.ToLower(q.Name)+" "+dns.TypeToString[q.Qtype]]
	nx, soa := z.nx[strings.ToLower(q.Name)], z.soa
	z.mu.Unlock()
	m := new(dns.Msg).SetReply(r)
	m.RecursionAvailable = true
	switch {
	case ok:
		for _, l := range lines {
			m.Answer = append(m.Answer, mustRR(l))
		}
	case nx:
		m.Rcode = dns.RcodeNameError
	}
	if len(m.Answer) == 0 && soa != "" {
		m.Ns = append(m.Ns, mustRR(soa))
	}
	size := dns.MinMsgSize
	if opt := r.IsEdns0(); opt != nil {
		m.SetEdns0(opt.UDPSize(), opt.Do())
		size = int(opt.UDPSize())
	}
	if w.LocalAddr().Network() == "udp" && !z.oversize {
		m.Truncate(size)
	}
	_ = w.WriteMsg(m)
}

func mustRR(s string) dns.RR {
	rr, err := dns.NewRR(s)
	if err != nil {
		panic(fmt.Sprintf("bad test RR %q: %v", s, err))
	}
	return rr
}

// newHandler returns a Handler for cfg, closed when the test ends.
func newHandler(t testing.TB, cfg Config) *Handler {
	t.Helper()
	h, err := New(cfg, testLog(t))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = h.Close() })
	return h
}

var testClient = netip.MustParseAddrPort("192.168.1.10:40000")

// ask sends name/qtype to h over UDP (with EDNS 1232 unless a mod changes
// it) and checks the reply's invariants: ID and question echoed, packed
// size within MaxSize.
func ask(t testing.TB, h *Handler, name string, qtype uint16, mods ...func(*dns.Msg)) *dns.Msg {
	t.Helper()
	req := new(dns.Msg).SetQuestion(name, qtype)
	req.SetEdns0(upstreamEDNSSize, false)
	for _, m := range mods {
		m(req)
	}
	return askMsg(t, h, req, "udp")
}

func askMsg(t testing.TB, h *Handler, req *dns.Msg, transport string) *dns.Msg {
	t.Helper()
	q := QueryInfo{Client: testClient, Transport: transport, MaxSize: MaxSizeFor(req, transport)}
	resp := h.Handle(context.Background(), req, q)
	if resp == nil {
		t.Fatalf("no reply to %v", req.Question)
	}
	wire, err := resp.Pack()
	if err != nil {
		t.Fatalf("packing reply: %v", err)
	}
	if len(wire) > q.MaxSize {
		t.Fatalf("reply is %d bytes, MaxSize %d", len(wire), q.MaxSize)
	}
	if resp.Id != req.Id || !resp.Response {
		t.Fatalf("reply id %d response %v, want id %d response", resp.Id, resp.Response, req.Id)
	}
	return resp
}

func noEDNS(m *dns.Msg) { m.Extra = nil }

// ttls returns the TTL of every answer record.
func ttls(m *dns.Msg) []uint32 {
	var out []uint32
	for _, rr := range m.Answer {
		out = append(out, rr.Header().Ttl)
	}
	return out
}

// addrs returns the addresses of m's A/AAAA answers.
func addrs(m *dns.Msg) []string {
	var out []string
	for _, rr := range m.Answer {
		if a, ok := rrAddr(rr); ok {
			out = append(out, a.String())
		}
	}
	return out
}

func wantRcode(t testing.TB, m *dns.Msg, rcode int) {
	t.Helper()
	if m.Rcode != rcode {
		t.Fatalf("rcode %s, want %s\n%v", dns.RcodeToString[m.Rcode], dns.RcodeToString[rcode], m)
	}
}

// fakeUpstream is an in-process Upstream.
type fakeUpstream struct {
	name string
	fn   func(ctx context.Context, m *dns.Msg) (*dns.Msg, error)
	n    atomic.Int64
}

func (f *fakeUpstream) String() string { return f.name }

func (f *fakeUpstream) Exchange(ctx context.Context, m *dns.Msg) (*dns.Msg, error) {
	f.n.Add(1)
	return f.fn(ctx, m)
}

var _ io.Closer = (*Group)(nil)
var _ Upstream = (*Group)(nil)
var _ Upstream = (*udpUpstream)(nil)
var _ Upstream = (*streamUpstream)(nil)

var netip0 = netip.IPv4Unspecified()

func stringsReader(s string) io.Reader { return strings.NewReader(s) }
