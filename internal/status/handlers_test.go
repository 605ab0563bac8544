package status

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/internal/metrics"
	"github.com/gatewayd/gatewayd/internal/metrics/metricstest"
)

// testHost is the Host header the handler tests send: the default address.
const testHost = DefaultAddr

// newTestServer builds a Server whose handler the tests call directly.
func newTestServer(t *testing.T, cfg Config) *Server {
	t.Helper()
	s, err := New(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// do runs one request through s's handler.
func do(s *Server, method, target, host string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, nil)
	req.Host = host
	rec := httptest.NewRecorder()
	s.handler().ServeHTTP(rec, req)
	return rec
}

func TestMetricsHandler(t *testing.T) {
	s := newTestServer(t, Config{Metrics: metrics.NewRegistry(
		func(w *metrics.Writer) {
			w.Counter(metrics.Bytes, metrics.BytesHelp, 2000, metrics.L("proto", "tcp"), metrics.L("direction", "down"))
		},
		GoCollector(),
		func(w *metrics.Writer) { w.Counter("bad name", "Broken collector.", 1) },
	)})
	rec := do(s, http.MethodGet, PathMetrics, testHost)
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", rec.Code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "text/plain; version=0.0.4; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	if rec.Header().Get("Content-Length") != fmt.Sprint(rec.Body.Len()) {
		t.Errorf("Content-Length %q for a %d-byte body", rec.Header().Get("Content-Length"), rec.Body.Len())
	}
	e := metricstest.Parse(t, rec.Body.String())
	if got := e.Value(t, "gatewayd_bytes_total", "proto", "tcp", "direction", "down"); got != 2000 {
		t.Errorf("bytes down = %v, want 2000", got)
	}
	if e["go_goroutines"] == nil {
		t.Error("runtime metrics missing")
	}
}

// TestStatusHandler checks the JSON document: counts, order, limit, ages,
// listeners and the config digest, before and after SetConfig.
func TestStatusHandler(t *testing.T) {
	start := time.Now().Add(-90 * time.Second)
	ap := netip.MustParseAddrPort
	flows := []Flow{
		{Proto: "tcp", Client: ap("198.18.0.2:40000"), Destination: ap("198.19.0.10:443"), Domain: "small.example",
			Outbound: "direct", BytesUp: 10, BytesDown: 20, Start: start.Add(60 * time.Second)},
		{Proto: "udp", Client: ap("[2001:2::2]:5353"), Destination: ap("[2001:2:0:1::10]:443"),
			Outbound: "direct", BytesUp: 5000, BytesDown: 900000, Start: start},
		{Proto: "tcp", Client: ap("198.18.0.3:40001"), Destination: ap("198.19.0.11:80"), Domain: "big.example",
			Outbound: "proxy", BytesUp: 1 << 20, BytesDown: 1 << 30, Start: start.Add(30 * time.Second)},
	}
	calls := 0
	s := newTestServer(t, Config{
		Version: "v1.2.3", Start: start,
		ConfigPath: "/etc/gatewayd/gateway.toml", ConfigSHA256: ConfigDigest([]byte("version = 1\n")),
		Flows: func() []Flow { calls++; return flows },
		Listeners: func() []Listener {
			return []Listener{{Name: "tcp", Addr: ap("127.0.0.1:15001")}, {Name: "udp", Addr: ap("[::1]:15001")}}
		},
	})
	rec := do(s, http.MethodGet, PathStatus, testHost)
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("GET /status: %d %q %s", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
	}
	var snap Snapshot
	if err := json.Unmarshal(rec.Body.Bytes(), &snap); err != nil {
		t.Fatal(err)
	}
	if snap.Version != "v1.2.3" || snap.GoVersion == "" || snap.UptimeSeconds < 89 || snap.UptimeSeconds > 89+failAfter.Seconds() {
		t.Errorf("version %q go %q uptime %v", snap.Version, snap.GoVersion, snap.UptimeSeconds)
	}
	if snap.Config.Path != "/etc/gatewayd/gateway.toml" || snap.Config.SHA256 != ConfigDigest([]byte("version = 1\n")) {
		t.Errorf("config %+v", snap.Config)
	}
	if len(snap.Listeners) != 2 || snap.Listeners[1].Addr != ap("[::1]:15001") {
		t.Errorf("listeners %+v (no status listener before Listen)", snap.Listeners)
	}
	if snap.Flows.Active != 3 || snap.Flows.ByProto["tcp"] != 2 || snap.Flows.ByProto["udp"] != 1 ||
		snap.Flows.ByOutbound["direct"] != 2 || snap.Flows.ByOutbound["proxy"] != 1 {
		t.Errorf("flow summary %+v", snap.Flows)
	}
	var order []string
	for _, f := range snap.ActiveFlows {
		order = append(order, f.Client.String())
	}
	if got := strings.Join(order, " "); got != "198.18.0.3:40001 [2001:2::2]:5353 198.18.0.2:40000" {
		t.Errorf("flows in order %s, want largest first", got)
	}
	big := snap.ActiveFlows[0]
	if big.Domain != "big.example" || big.Outbound != "proxy" || big.BytesDown != 1<<30 || big.AgeSeconds < 59 || big.AgeSeconds > 59+failAfter.Seconds() {
		t.Errorf("largest flow %+v", big)
	}
	if flows[0].AgeSeconds != 0 || flows[0].Client != ap("198.18.0.2:40000") {
		t.Error("the handler modified the daemon's flow slice")
	}

	rec = do(s, http.MethodGet, PathStatus+"?limit=1", testHost)
	if err := json.Unmarshal(rec.Body.Bytes(), &snap); err != nil || len(snap.ActiveFlows) != 1 || snap.Flows.Active != 3 {
		t.Errorf("limit=1: %d flows listed of %d (%v)", len(snap.ActiveFlows), snap.Flows.Active, err)
	}
	rec = do(s, http.MethodGet, PathStatus+"?limit=0", testHost)
	if !strings.Contains(rec.Body.String(), `"active_flows": []`) {
		t.Errorf("limit=0 should list an empty array:\n%s", rec.Body)
	}
	for _, bad := range []string{"-1", "x", "1e3"} {
		if rec := do(s, http.MethodGet, PathStatus+"?limit="+bad, testHost); rec.Code != http.StatusBadRequest {
			t.Errorf("limit=%s: %d, want 400", bad, rec.Code)
		}
	}

	s.SetConfig("/tmp/new.toml", ConfigDigest([]byte("version = 2\n")))
	rec = do(s, http.MethodGet, PathStatus, testHost)
	if err := json.Unmarshal(rec.Body.Bytes(), &snap); err != nil || snap.Config.Path != "/tmp/new.toml" ||
		snap.Config.SHA256 != ConfigDigest([]byte("version = 2\n")) {
		t.Errorf("after SetConfig: %+v %v", snap.Config, err)
	}
}

func TestStatusHandlerNoFlows(t *testing.T) {
	s := newTestServer(t, Config{})
	body := do(s, http.MethodGet, PathStatus, testHost).Body.String()
	for _, want := range []string{`"listeners": []`, `"active_flows": []`, `"active": 0`} {
		if !strings.Contains(body, want) {
			t.Errorf("empty status lacks %s:\n%s", want, body)
		}
	}
}

func TestConfigDigest(t *testing.T) {
	// FIPS 180-2 test vector: SHA-256("abc").
	if got := ConfigDigest([]byte("abc")); got != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Errorf("ConfigDigest(abc) = %s", got)
	}
}

func TestHealthHandler(t *testing.T) {
	var health error
	s := newTestServer(t, Config{Health: func() error { return health }})
	if rec := do(s, http.MethodGet, PathHealth, testHost); rec.Code != http.StatusOK || rec.Body.String() != "ok\n" {
		t.Errorf("healthy: %d %q", rec.Code, rec.Body)
	}
	health = errors.New("tcp listener stopped")
	rec := do(s, http.MethodGet, PathHealth, testHost)
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "tcp listener stopped") {
		t.Errorf("unhealthy: %d %q", rec.Code, rec.Body)
	}
}

// TestReadOnly: only GET and HEAD are served, on the known paths only.
func TestReadOnly(t *testing.T) {
	s := newTestServer(t, Config{})
	for _, path := range []string{PathMetrics, PathStatus, PathHealth, "/"} {
		for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch} {
			rec := do(s, m, path, testHost)
			if rec.Code != http.StatusMethodNotAllowed || !strings.Contains(rec.Header().Get("Allow"), "GET") {
				t.Errorf("%s %s: %d, Allow %q; want 405 allowing GET", m, path, rec.Code, rec.Header().Get("Allow"))
			}
		}
		if rec := do(s, http.MethodHead, path, testHost); rec.Code != http.StatusOK {
			t.Errorf("HEAD %s: %d", path, rec.Code)
		}
		rec := do(s, http.MethodGet, path, testHost)
		if rec.Header().Get("Cache-Control") != "no-store" || rec.Header().Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s: headers %v", path, rec.Header())
		}
	}
	for _, path := range []string{"/metrics/", "/status/x", "/debug/pprof/", "/etc/passwd"} {
		if rec := do(s, http.MethodGet, path, testHost); rec.Code != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", path, rec.Code)
		}
	}
}

// TestHostGuard: requests must name the endpoint by IP, localhost or a
// configured name (DNS rebinding guard).
func TestHostGuard(t *testing.T) {
	s := newTestServer(t, Config{Hosts: []string{"Router.LAN."}})
	for host, want := range map[string]int{
		"127.0.0.1:9090":      http.StatusOK,
		"127.0.0.1":           http.StatusOK,
		"[::1]:9090":          http.StatusOK,
		"[2001:2::1]":         http.StatusOK,
		"198.18.0.1:9090":     http.StatusOK,
		"localhost:9090":      http.StatusOK,
		"LOCALHOST.":          http.StatusOK,
		"router.lan:9090":     http.StatusOK,
		"evil.example:9090":   http.StatusMisdirectedRequest,
		"127.0.0.1.nip.io":    http.StatusMisdirectedRequest,
		"":                    http.StatusMisdirectedRequest,
		"router.lan.evil.com": http.StatusMisdirectedRequest,
	} {
		if rec := do(s, http.MethodGet, PathHealth, host); rec.Code != want {
			t.Errorf("Host %q: %d, want %d", host, rec.Code, want)
		}
	}
}
