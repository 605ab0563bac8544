package dashboard

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

var (
	t0      = time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	laptop  = netip.MustParseAddr("198.18.1.2")
	phone   = netip.MustParseAddr("198.18.1.3")
	printer = netip.MustParseAddr("2001:2:1::9")
)

// testSource is a daemon of two clients with three flows, DNS with the
// query log on and one rule.
func testSource(t *testing.T) Source {
	leases := filepath.Join(t.TempDir(), "dhcp.leases")
	writeFile(t, leases, "1765105200 aa:bb:cc:00:00:02 198.18.1.2 laptop 01:aa:bb:cc:00:00:02\n"+
		"1765105200 aa:bb:cc:00:00:03 198.18.1.3 * *\n"+
		"duid 00:01:00:01:2c:aa\n")
	return Source{
		Version: "v1.2.3",
		Start:   t0.Add(-90 * time.Second),
		Config:  func() ConfigInfo { return ConfigInfo{Path: "/etc/gatewayd/gateway.toml", SHA256: "abcd"} },
		Interception: func() Interception {
			return Interception{Installed: true, Reapplies: 2, LastReapply: t0.Add(-time.Minute), Failsafe: "open"}
		},
		Counters: func() Counters {
			return Counters{TCPActive: 2, UDPActive: 1, DNSQueries: 8, DNSCacheHits: 2, DNSBlocked: 1}
		},
		Flows: func() []Flow {
			return []Flow{
				{Proto: "tcp", Client: netip.AddrPortFrom(laptop, 40000), Dst: netip.MustParseAddrPort("198.19.0.1:443"),
					Domain: "www.example.test", Outbound: "direct", Rule: "default", Up: 100, Down: 5000, Start: t0.Add(-10 * time.Second)},
				{Proto: "udp", Client: netip.AddrPortFrom(laptop, 40001), Dst: netip.MustParseAddrPort("198.19.0.2:7100"),
					Outbound: "proxy", Rule: "games", Up: 10, Down: 20, Start: t0.Add(-2 * time.Second)},
				{Proto: "tcp", Client: netip.AddrPortFrom(phone, 50000), Dst: netip.MustParseAddrPort("198.19.0.3:80"),
					Domain: "www.example.test", Outbound: "direct", Rule: "default", Up: 1, Down: 2, Start: t0.Add(-time.Second)},
			}
		},
		LANBytes: func() (uint64, uint64, error) { return 0, 0, nil },
		Upstreams: func() []Upstream {
			return []Upstream{{Name: "udp://198.19.0.53:53", Queries: 5, Errors: 1, Latency: 1500 * time.Microsecond}}
		},
		Queries: func() []Query {
			return []Query{{Time: t0, Client: laptop, Name: "blocked.example.test.", Type: "A", Result: "blocked", Rcode: "NXDOMAIN", Latency: 20 * time.Microsecond}}
		},
		TopBlocked: func(n int) []NameCount { return []NameCount{{Name: "blocked.example.test.", Count: 3}}[:min(n, 1)] },
		Rules: func() Rules {
			return Rules{Rules: []Rule{{Label: "games", Match: "proto=udp port=7100", Outbound: "proxy", HitsUDP: 4}},
				Default: "direct", FastPath: FastPath{Enabled: true, Static: 3, Learned: 7}}
		},
		MAC:        func(a netip.Addr) string { return map[netip.Addr]string{phone: "aa:bb:cc:00:00:33"}[a] },
		HostNames:  map[netip.Addr]string{phone: "phone.lan", printer: "printer.lan"},
		LeasesPath: leases,
	}
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

func newTest(src Source) *Dashboard {
	d := New(src, nil)
	d.now = func() time.Time { return t0 }
	return d
}

// get runs one GET through d's handler and decodes its JSON into v.
func get(t *testing.T, d *Dashboard, target string, v any) {
	t.Helper()
	rec := httptest.NewRecorder()
	d.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, target, nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", target, rec.Code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("GET %s: Content-Type %q", target, ct)
	}
	dec := json.NewDecoder(rec.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("GET %s: %v", target, err)
	}
}

func TestNow(t *testing.T) {
	var v NowView
	get(t, newTest(testSource(t)), PathNow, &v)
	last := t0.Add(-time.Minute)
	want := NowView{
		Version: "v1.2.3", Started: t0.Add(-90 * time.Second), UptimeSeconds: 90,
		Config:       ConfigInfo{Path: "/etc/gatewayd/gateway.toml", SHA256: "abcd"},
		Interception: InterceptionView{Installed: true, SelfHeals: 2, LastSelfHeal: &last, Failsafe: "open"},
		TCPFlows:     2, UDPSessions: 1,
		DNS:           DNSSummary{Enabled: true, Queries: 8, CacheHits: 2, Blocked: 1, CacheHitRatio: 0.25},
		QueryLog:      true,
		Throughput:    []Point{}, // one sample: no rate yet
		SampleSeconds: 2, GapSeconds: 6,
	}
	if !reflect.DeepEqual(v, want) {
		t.Errorf("/api/now =\n%+v\nwant\n%+v", v, want)
	}
}

func TestNowWithoutParts(t *testing.T) {
	var v NowView
	get(t, newTest(Source{Version: "dev", Start: t0}), PathNow, &v)
	want := NowView{Version: "dev", Started: t0, Throughput: []Point{}, SampleSeconds: 2, GapSeconds: 6}
	if !reflect.DeepEqual(v, want) {
		t.Errorf("/api/now without a daemon's parts =\n%+v\nwant\n%+v", v, want)
	}
}

// TestThroughput: samples taken as pages poll give rates; polls closer
// than sampleEvery share a sample, and a pause longer than gapAfter is a
// gap, not a rate averaged over it.
func TestThroughput(t *testing.T) {
	src := testSource(t)
	var rx, tx, queries uint64
	src.LANBytes = func() (uint64, uint64, error) { return rx, tx, nil }
	src.Counters = func() Counters { return Counters{DNSQueries: queries} }
	d := newTest(src)
	now := t0
	d.now = func() time.Time { return now }
	poll := func(after time.Duration, drx, dtx, dq uint64) NowView {
		now = now.Add(after)
		rx, tx, queries = rx+drx, tx+dtx, queries+dq
		var v NowView
		get(t, d, PathNow, &v)
		return v
	}
	poll(0, 0, 0, 0)
	poll(2*time.Second, 2000, 8000, 4)
	poll(time.Second, 1_000_000, 0, 0) // too soon: no sample, so its bytes count in the next
	v := poll(time.Second, 0, 0, 0)
	poll(time.Minute, 5, 5, 5) // nobody looked for a minute: a gap
	w := poll(2*time.Second, 4000, 0, 2)
	want := []Point{
		{T: t0.Add(2 * time.Second).UnixMilli(), Up: 1000, Down: 4000, DNSQPS: 2},
		{T: t0.Add(4 * time.Second).UnixMilli(), Up: 500_000, Down: 0, DNSQPS: 0},
	}
	if !reflect.DeepEqual(v.Throughput, want) {
		t.Errorf("throughput %+v, want %+v", v.Throughput, want)
	}
	if v.DNS.QPS != 0 {
		t.Errorf("DNS q/s %v, want 0 (no query in the last interval)", v.DNS.QPS)
	}
	want = append(want, Point{T: now.UnixMilli(), Up: 2000, DNSQPS: 1})
	if !reflect.DeepEqual(w.Throughput, want) || w.DNS.QPS != 1 {
		t.Errorf("after a gap: throughput %+v, q/s %v; want %+v, 1", w.Throughput, w.DNS.QPS, want)
	}
	for range historyLen + 10 {
		poll(2*time.Second, 1, 1, 0)
	}
	if n := len(d.hist.points()); n != historyLen-1 {
		t.Errorf("after %d samples the history has %d points, want %d (a fixed ring)", historyLen+16, n, historyLen-1)
	}
}

func TestFlows(t *testing.T) {
	var v FlowsView
	get(t, newTest(testSource(t)), PathFlows, &v)
	want := FlowsView{At: t0.UnixMilli(), Total: 3, Flows: []FlowView{
		{Proto: "tcp", Client: "198.18.1.2:40000", ClientIP: "198.18.1.2", MAC: "aa:bb:cc:00:00:02", Hostname: "laptop",
			Destination: "198.19.0.1:443", Domain: "www.example.test", Outbound: "direct", Rule: "default",
			BytesUp: 100, BytesDown: 5000, AgeSeconds: 10,
			ID: "tcp 198.18.1.2:40000 198.19.0.1:443 " + itoa(t0.Add(-10*time.Second).UnixNano())},
		{Proto: "udp", Client: "198.18.1.2:40001", ClientIP: "198.18.1.2", MAC: "aa:bb:cc:00:00:02", Hostname: "laptop",
			Destination: "198.19.0.2:7100", Outbound: "proxy", Rule: "games", BytesUp: 10, BytesDown: 20, AgeSeconds: 2,
			ID: "udp 198.18.1.2:40001 198.19.0.2:7100 " + itoa(t0.Add(-2*time.Second).UnixNano())},
		// The neighbour table's MAC wins over the lease's; the lease has
		// no host name, [dns.hosts] has one.
		{Proto: "tcp", Client: "198.18.1.3:50000", ClientIP: "198.18.1.3", MAC: "aa:bb:cc:00:00:33", Hostname: "phone.lan",
			Destination: "198.19.0.3:80", Domain: "www.example.test", Outbound: "direct", Rule: "default",
			BytesUp: 1, BytesDown: 2, AgeSeconds: 1,
			ID: "tcp 198.18.1.3:50000 198.19.0.3:80 " + itoa(t0.Add(-time.Second).UnixNano())},
	}}
	if !reflect.DeepEqual(v, want) {
		t.Errorf("/api/flows =\n%+v\nwant\n%+v", v, want)
	}
	var one FlowsView
	get(t, newTest(testSource(t)), PathFlows+"?limit=1", &one)
	if one.Total != 3 || len(one.Flows) != 1 || one.Flows[0].BytesDown != 5000 {
		t.Errorf("?limit=1: %+v, want the largest of 3", one)
	}
	rec := httptest.NewRecorder()
	newTest(testSource(t)).Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, PathFlows+"?limit=-1", nil))
	if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), `limit "-1"`) {
		t.Errorf("?limit=-1: %d %s, want 400 naming it", rec.Code, rec.Body)
	}
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }

func TestClients(t *testing.T) {
	var v ClientsView
	get(t, newTest(testSource(t)), PathClients, &v)
	want := ClientsView{Clients: []ClientView{
		{IP: "198.18.1.2", MAC: "aa:bb:cc:00:00:02", Hostname: "laptop", Flows: 2, TCP: 1, UDP: 1, BytesUp: 110, BytesDown: 5020,
			TopDomains: []NameCount{{Name: "www.example.test", Count: 1}}},
		{IP: "198.18.1.3", MAC: "aa:bb:cc:00:00:33", Hostname: "phone.lan", Flows: 1, TCP: 1, BytesUp: 1, BytesDown: 2,
			TopDomains: []NameCount{{Name: "www.example.test", Count: 1}}},
	}}
	if !reflect.DeepEqual(v, want) {
		t.Errorf("/api/clients =\n%+v\nwant\n%+v", v, want)
	}
}

func TestDNS(t *testing.T) {
	var v DNSView
	get(t, newTest(testSource(t)), PathDNS, &v)
	want := DNSView{
		DNSSummary: DNSSummary{Enabled: true, Queries: 8, CacheHits: 2, Blocked: 1, CacheHitRatio: 0.25},
		QueryLog:   true,
		Upstreams:  []UpstreamView{{Upstream: Upstream{Name: "udp://198.19.0.53:53", Queries: 5, Errors: 1}, LatencyMS: 1.5}},
		Recent: []QueryView{{Time: t0, Client: "198.18.1.2", Hostname: "laptop", Name: "blocked.example.test.", Type: "A",
			Result: "blocked", Rcode: "NXDOMAIN", LatencyMS: 0.02}},
		TopBlocked: []NameCount{{Name: "blocked.example.test.", Count: 3}},
	}
	if !reflect.DeepEqual(v, want) {
		t.Errorf("/api/dns =\n%+v\nwant\n%+v", v, want)
	}
}

// TestDNSQueryLogOff: without the query log the answer says so and lists
// no query and no name.
func TestDNSQueryLogOff(t *testing.T) {
	src := testSource(t)
	src.Queries, src.TopBlocked = nil, nil
	var v DNSView
	get(t, newTest(src), PathDNS, &v)
	if v.QueryLog || len(v.Recent) != 0 || len(v.TopBlocked) != 0 || v.Recent == nil || v.TopBlocked == nil {
		t.Errorf("query log off: %+v, want query_log false and empty (not null) lists", v)
	}
	var n NowView
	get(t, newTest(src), PathNow, &n)
	if n.QueryLog {
		t.Error("/api/now says the query log is on")
	}
}

func TestRules(t *testing.T) {
	var v Rules
	get(t, newTest(testSource(t)), PathRules, &v)
	want := Rules{Rules: []Rule{{Label: "games", Match: "proto=udp port=7100", Outbound: "proxy", HitsUDP: 4}},
		Default: "direct", FastPath: FastPath{Enabled: true, Static: 3, Learned: 7}}
	if !reflect.DeepEqual(v, want) {
		t.Errorf("/api/rules = %+v, want %+v", v, want)
	}
	var none Rules
	get(t, newTest(Source{}), PathRules, &none)
	if none.Rules == nil || len(none.Rules) != 0 {
		t.Errorf("/api/rules without a policy = %+v, want an empty list", none)
	}
}

// TestPage: the page and its files are served from the binary; other
// paths are 404, other methods 405.
func TestPage(t *testing.T) {
	h := newTest(Source{}).Handler()
	for path, want := range map[string]struct{ ctype, text string }{
		"/":              {"text/html; charset=utf-8", `<script src="dashboard.js"`},
		"/dashboard.js":  {"text/javascript; charset=utf-8", `"/api/now"`},
		"/dashboard.css": {"text/css; charset=utf-8", "prefers-color-scheme: dark"},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		if rec.Header().Get("Content-Security-Policy") != contentPolicy {
			t.Errorf("GET %s: no Content-Security-Policy", path)
		}
		if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != want.ctype || !strings.Contains(rec.Body.String(), want.text) {
			t.Errorf("GET %s: %d %q, body has %q: %v", path, rec.Code, rec.Header().Get("Content-Type"), want.text, strings.Contains(rec.Body.String(), want.text))
		}
	}
	for _, c := range []struct {
		method, path string
		code         int
	}{
		{http.MethodGet, "/nothing", http.StatusNotFound},
		{http.MethodPost, PathNow, http.StatusMethodNotAllowed},
		{http.MethodHead, PathNow, http.StatusOK},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(c.method, c.path, nil))
		if rec.Code != c.code {
			t.Errorf("%s %s: %d, want %d", c.method, c.path, rec.Code, c.code)
		}
	}
}

// TestLeases: the file is read again only when it changes; a missing
// file gives no names, not an error.
func TestLeases(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dhcp.leases")
	l := &leases{path: path}
	if got, err := l.get(); got != nil || err != nil {
		t.Fatalf("missing file: %v, %v", got, err)
	}
	writeFile(t, path, "0 aa:bb:cc:dd:ee:ff 198.18.1.7 tv *\nnot a lease\n1 2 3\n1 00:11:22:33:44:55 bad-ip x *\n"+
		"1765105200 1234567 2001:2:1::7 tv6 00:01:00:01:aa\n")
	got, err := l.get()
	want := map[netip.Addr]Lease{
		netip.MustParseAddr("198.18.1.7"):  {MAC: "aa:bb:cc:dd:ee:ff", Hostname: "tv"},
		netip.MustParseAddr("2001:2:1::7"): {Hostname: "tv6"},
	}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("leases %v, %v; want %v", got, err, want)
	}
	writeFile(t, path, "0 aa:bb:cc:dd:ee:01 198.18.1.8 radio *\n")
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(path, later, later); err != nil {
		t.Fatal(err)
	}
	if got, _ := l.get(); len(got) != 1 || got[netip.MustParseAddr("198.18.1.8")].Hostname != "radio" {
		t.Errorf("after the file changed: %v", got)
	}
}
