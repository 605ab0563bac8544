package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/config"
	"github.com/gatewayd/gatewayd/gateway"
	"github.com/gatewayd/gatewayd/internal/status"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// relayGuard bounds every wait of these tests; it is not a timing
// assertion.
const relayGuard = 10 * time.Second

// statusDaemon builds the daemon's parts for config text (DNS off: no
// resolver to build), without opening anything.
func statusDaemon(t *testing.T, text string) *daemon {
	t.Helper()
	cfg, err := config.Load(writeConfig(t, "version = 1\n[dns]\nenabled = false\n"+text))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	spec, err := cfg.Gateway()
	if err != nil {
		t.Fatal(err)
	}
	d, err := newDaemon(cfg, &kernel{g: gateway.New(spec, gateway.Options{Log: log})}, log, new(slog.LevelVar))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// startStatusEndpoint runs d's status endpoint on a free loopback port until the
// test ends, and returns it with its address.
func startStatusEndpoint(t *testing.T, d *daemon) (*statusEndpoint, string) {
	t.Helper()
	d.cfg.Status.Listen.AddrPort = netip.MustParseAddrPort("127.0.0.1:0")
	r := newStatusEndpoint(d)
	if r == nil {
		t.Fatal("no status endpoint for an enabled [status]")
	}
	if err := r.Listen(context.Background()); err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- r.Serve() }()
	t.Cleanup(func() {
		r.Shutdown(time.Second)
		select {
		case err := <-served:
			if err != nil {
				t.Errorf("Serve returned %v, want nil", err)
			}
		case <-time.After(relayGuard):
			t.Error("Serve did not return after Shutdown")
		}
	})
	return r, r.srv.Addr().String()
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	c := &http.Client{Timeout: relayGuard}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s, %v\n%s", url, resp.Status, err, body)
	}
	return string(body)
}

func parseMetrics(t *testing.T, text string) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("Prometheus text parser: %v\n%s", err, text)
	}
	return fams
}

// sample is the value of family name's sample with exactly labels
// (name, value pairs); false if there is none.
func sample(fams map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
	for _, m := range f.GetMetric() {
		if len(m.GetLabel())*2 != len(labels) {
			continue
		}
		match := true
		for _, l := range m.GetLabel() {
			i := slices.Index(labels, l.GetName())
			if i < 0 || i%2 != 0 || labels[i+1] != l.GetValue() {
				match = false
			}
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		}
	}
	return 0, false
}

func TestStatusEndpointServes(t *testing.T) {
	d := statusDaemon(t, "")
	r, addr := startStatusEndpoint(t, d)

	fams := parseMetrics(t, httpGet(t, "http://"+addr+status.PathMetrics))
	for _, s := range []struct {
		name   string
		labels []string
	}{
		{"gatewayd_build_info", []string{"version", version}},
		{"gatewayd_flows_total", []string{"proto", "tcp"}},
		{"gatewayd_flows_total", []string{"proto", "udp"}},
		{"gatewayd_bytes_total", []string{"proto", "tcp", "direction", "up"}},
		{"gatewayd_udp_drops_total", []string{"reason", "loop"}},
		{"gatewayd_rule_reapplies_total", nil},
		{"gatewayd_outbound_dials_total", []string{"outbound", "direct"}}, // without rules too: every flow goes through an outbound
		{"go_goroutines", nil},
		{"process_resident_memory_bytes", nil},
	} {
		if _, ok := sample(fams, s.name, s.labels...); !ok {
			t.Errorf("/metrics lacks %s%v", s.name, s.labels)
		}
	}
	for name := range fams {
		if strings.HasPrefix(name, "gatewayd_dns_") || strings.HasPrefix(name, "gatewayd_fastpath_") {
			t.Errorf("/metrics has %s, but DNS and the fast path are off", name)
		}
	}

	var snap status.Snapshot
	if err := json.Unmarshal([]byte(httpGet(t, "http://"+addr+status.PathStatus)), &snap); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(d.cfg.Path())
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	if snap.Version != version || snap.Config.Path != d.cfg.Path() || snap.Config.SHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("/status version %q, config %+v; want %q, %s with its SHA-256", snap.Version, snap.Config, version, d.cfg.Path())
	}
	if !slices.Contains(snap.Listeners, status.Listener{Name: "status", Addr: r.srv.Addr()}) {
		t.Errorf("/status listeners %v lack the endpoint's own", snap.Listeners)
	}
	if snap.Flows.Active != 0 || len(snap.ActiveFlows) != 0 {
		t.Errorf("/status flows %+v, want none", snap.Flows)
	}
}

func TestStatusEndpointDisabled(t *testing.T) {
	d := statusDaemon(t, "[status]\nenabled = false\n")
	if r := newStatusEndpoint(d); r != nil {
		t.Error("status endpoint built although status.enabled = false")
	}
	isStatus := func(s service) bool { _, ok := s.(*statusEndpoint); return ok }
	if slices.ContainsFunc(d.services(), isStatus) {
		t.Error("daemon services include a status endpoint although status.enabled = false")
	}
	if !slices.ContainsFunc(statusDaemon(t, "").services(), isStatus) {
		t.Error("enabled: the daemon's services lack the status endpoint")
	}
}

// TestStatusRelayRetriesListen: an address taken at start does not stop
// the daemon; the endpoint comes up once the address is free.
func TestStatusEndpointRetriesListen(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := statusDaemon(t, "")
	d.cfg.Status.Listen.AddrPort = netip.MustParseAddrPort(busy.Addr().String())
	r := newStatusEndpoint(d)
	r.retry = 20 * time.Millisecond
	if err := r.Listen(context.Background()); err != nil {
		t.Fatalf("Listen on a taken address: %v, want nil (retried)", err)
	}
	served := make(chan error, 1)
	go func() { served <- r.Serve() }()
	_ = busy.Close()
	deadline := time.Now().Add(relayGuard)
	for !r.srv.Addr().IsValid() {
		if time.Now().After(deadline) {
			t.Fatal("status endpoint did not come up once its address was free")
		}
		time.Sleep(r.retry)
	}
	if body := httpGet(t, "http://"+r.srv.Addr().String()+status.PathHealth); body != "ok\n" {
		t.Errorf("/healthz = %q", body)
	}
	r.Shutdown(time.Second)
	if err := <-served; err != nil {
		t.Errorf("Serve returned %v, want nil", err)
	}
}

// TestStatusRelayShutdownWhileRetrying: Shutdown ends a Serve that is
// still waiting for its address.
func TestStatusEndpointShutdownWhileRetrying(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	d := statusDaemon(t, "")
	d.cfg.Status.Listen.AddrPort = netip.MustParseAddrPort(busy.Addr().String())
	r := newStatusEndpoint(d)
	_ = r.Listen(context.Background())
	served := make(chan error, 1)
	go func() { served <- r.Serve() }()
	r.Shutdown(0)
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("Serve returned %v, want nil", err)
		}
	case <-time.After(relayGuard):
		t.Fatal("Serve still retrying after Shutdown")
	}
}

const policyConfig = `
[[outbound]]
name = "proxy"
type = "socks5"
server = "198.18.1.1:1080"

[[rule]]
dst = ["198.19.0.0/16"]
outbound = "proxy"
`

func TestStatusPolicyNames(t *testing.T) {
	direct := statusDaemon(t, "")
	v := newStatusView(direct)
	if p := v.pol.Load(); p.disp.RouteName(0) != "direct" {
		t.Errorf("no rules: udp route 0 %q, want direct", p.disp.RouteName(0))
	}
	if _, ok := v.outboundStats()["direct"]; !ok {
		t.Errorf("no rules: outbound stats %v lack direct, which every flow goes through", v.outboundStats())
	}

	routed := statusDaemon(t, policyConfig)
	v = newStatusView(routed)
	p := v.pol.Load()
	names := map[string]bool{}
	for r := range 2 {
		names[p.disp.RouteName(r)] = true
	}
	if !names["direct"] || !names["proxy"] {
		t.Errorf("routes 0 and 1 named %v, want direct and proxy", names)
	}
	for _, r := range []int{2, 99, -1} {
		if got := p.disp.RouteName(r); got != "" {
			t.Errorf("unknown route %d named %q, want \"\"", r, got)
		}
	}

	stats := v.outboundStats()
	if _, ok := stats["proxy"]; !ok {
		t.Errorf("outbound stats %v lack the proxy", stats)
	}

	// A reload's policy replaces the names.
	v.setPolicy(direct.pol)
	if got := v.pol.Load().disp.RouteName(0); got != "direct" {
		t.Errorf("after setPolicy without rules: route 0 named %q, want direct", got)
	}
}

// TestStatusRelayReloaded: a reload's config digest reaches /status.
func TestStatusEndpointReloaded(t *testing.T) {
	d := statusDaemon(t, "")
	r, addr := startStatusEndpoint(t, d)
	next := statusDaemon(t, "[log]\nlevel = \"debug\"\n")
	r.reloaded(next.cfg, next.pol)
	var snap status.Snapshot
	if err := json.Unmarshal([]byte(httpGet(t, "http://"+addr+status.PathStatus)), &snap); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(next.cfg.Path())
	if snap.Config.Path != next.cfg.Path() || snap.Config.SHA256 != status.ConfigDigest(data) {
		t.Errorf("after reload /status config = %+v, want %s", snap.Config, next.cfg.Path())
	}
}
