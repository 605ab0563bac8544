package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/internal/status"
)

func runStatusCLI(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = runStatus(args, &o, &e)
	return code, o.String(), e.String()
}

// statusFixture is a /status document as gatewayd serves it.
const statusFixture = `{
  "version": "v1.4.0",
  "go_version": "go1.26.8",
  "started": "2026-01-02T03:04:05Z",
  "uptime_seconds": 93784.2,
  "config": {"path": "/etc/gatewayd/gateway.toml", "sha256": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
  "listeners": [{"name": "tcp", "addr": "127.0.0.1:15001"}, {"name": "status", "addr": "127.0.0.1:9090"}],
  "flows": {"active": 3, "by_proto": {"udp": 1, "tcp": 2}, "by_outbound": {"direct": 3}},
  "active_flows": [
    {"proto": "tcp", "client": "198.18.0.2:40000", "destination": "198.19.0.10:443", "domain": "big.example",
     "outbound": "direct", "bytes_up": 1536, "bytes_down": 3221225472, "started": "2026-01-02T03:04:05Z", "age_seconds": 61.4},
    {"proto": "udp", "client": "[2001:2::2]:5353", "destination": "[2001:2:0:1::10]:443",
     "outbound": "direct", "bytes_up": 10, "bytes_down": 0, "started": "2026-01-02T03:04:05Z", "age_seconds": 5},
    {"proto": "tcp", "client": "198.18.0.3:40001", "destination": "198.19.0.11:80", "domain": "evil\u001b[2J.example",
     "outbound": "direct", "bytes_up": 1, "bytes_down": 1, "started": "2026-01-02T03:04:05Z", "age_seconds": 1}
  ]
}`

// serveStatusFixture serves body as /status and returns its host:port.
func serveStatusFixture(t *testing.T, body string) string {
	t.Helper()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != status.PathStatus {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(ts.Close)
	return strings.TrimPrefix(ts.URL, "http://")
}

func TestStatusSummary(t *testing.T) {
	addr := serveStatusFixture(t, statusFixture)
	code, out, errOut := runStatusCLI("-addr", addr)
	if code != exitOK {
		t.Fatalf("status: code %d, stderr %q", code, errOut)
	}
	for _, want := range []string{
		"gatewayd v1.4.0 (go1.26.8)",
		"up:        1d2h3m4s",
		"config:    /etc/gatewayd/gateway.toml (sha256 ba7816bf8f01)",
		"listening: tcp 127.0.0.1:15001, status 127.0.0.1:9090",
		"flows:     3 active: tcp 2, udp 1; outbound direct 3",
		"largest flows (3 of 3):",
		"PROTO  CLIENT            DESTINATION           DOMAIN",
		"tcp    198.18.0.2:40000  198.19.0.10:443       big.example",
		"direct    1.5 KiB  3.0 GiB  1m1s",
		"udp    [2001:2::2]:5353  [2001:2:0:1::10]:443  -",
		`"evil\x1b[2J.example"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "\x1b") {
		t.Error("a terminal escape from the network reached the output")
	}

	_, out, _ = runStatusCLI("-addr", addr, "-top", "1")
	if !strings.Contains(out, "largest flows (1 of 3)") || strings.Contains(out, "2001:2::2") {
		t.Errorf("-top 1:\n%s", out)
	}
	_, out, _ = runStatusCLI("-addr", addr, "-top", "0")
	if strings.Contains(out, "PROTO") {
		t.Errorf("-top 0 still lists flows:\n%s", out)
	}
}

func TestStatusJSON(t *testing.T) {
	addr := serveStatusFixture(t, statusFixture)
	code, out, errOut := runStatusCLI("-json", "-addr", addr)
	if code != exitOK || out != statusFixture {
		t.Errorf("-json: code %d, stderr %q, output differs from the document:\n%s", code, errOut, out)
	}
}

func TestStatusUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // connection refused from now on
	code, out, errOut := runStatusCLI("-addr", addr)
	if code != exitFailure || out != "" || !strings.Contains(errOut, "gatewayd is not reachable at "+addr) ||
		!strings.Contains(errOut, "is gatewayd running") {
		t.Errorf("unreachable: code %d, stdout %q, stderr %q", code, out, errOut)
	}
}

func TestStatusBadAnswers(t *testing.T) {
	for body, want := range map[string]string{
		"<html>hello</html>": "decoding",
		"":                   "decoding",
	} {
		code, _, errOut := runStatusCLI("-addr", serveStatusFixture(t, body))
		if code != exitFailure || !strings.Contains(errOut, want) {
			t.Errorf("answer %q: code %d, stderr %q", body, code, errOut)
		}
	}
	ts := httptest.NewServer(http.NotFoundHandler())
	defer ts.Close()
	code, _, errOut := runStatusCLI("-addr", strings.TrimPrefix(ts.URL, "http://"))
	if code != exitFailure || !strings.Contains(errOut, "404 Not Found") {
		t.Errorf("404: code %d, stderr %q", code, errOut)
	}
}

func TestStatusUsage(t *testing.T) {
	for _, args := range [][]string{{"extra"}, {"-bogus"}, {"-top", "-1"}, {"-timeout", "0s"}, {"-addr", "no-port"}} {
		code, _, errOut := runStatusCLI(args...)
		want := exitUsage
		if args[0] == "-addr" {
			want = exitFailure // a malformed address is only found when fetching
		}
		if code != want || errOut == "" {
			t.Errorf("%v: code %d, stderr %q; want %d and a message", args, code, errOut, want)
		}
	}
}

// TestStatusAgainstServer runs the subcommand against the real endpoint.
func TestStatusAgainstServer(t *testing.T) {
	srv, err := status.New(status.Config{
		Listen:  netip.MustParseAddrPort("127.0.0.1:0"),
		Version: "v-test",
		Flows: func() []status.Flow {
			return []status.Flow{{Proto: "udp", Client: netip.MustParseAddrPort("198.18.0.9:1000"),
				Destination: netip.MustParseAddrPort("198.19.0.9:53"), BytesDown: 2048, Start: time.Now()}}
		},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(context.Background()); err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve() }()
	defer srv.Shutdown(time.Second)
	code, out, errOut := runStatusCLI("-addr", srv.Addr().String())
	if code != exitOK {
		t.Fatalf("code %d, stderr %q", code, errOut)
	}
	for _, want := range []string{"gatewayd v-test", "flows:     1 active: udp 1", "198.18.0.9:1000", "2.0 KiB", "status " + srv.Addr().String()} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestHumanUnits(t *testing.T) {
	for n, want := range map[uint64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB",
		5 << 20: "5.0 MiB", 3 << 30: "3.0 GiB", 1 << 62: "4.0 EiB", ^uint64(0): "16.0 EiB"} {
		if got := humanBytes(n); got != want {
			t.Errorf("humanBytes(%d) = %q, want %q", n, got, want)
		}
	}
	for d, want := range map[time.Duration]string{-time.Second: "0s", 1400 * time.Millisecond: "1s",
		61 * time.Minute: "1h1m0s", 49*time.Hour + 2*time.Second: "2d1h0m2s"} {
		if got := humanDuration(d); got != want {
			t.Errorf("humanDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

// TestStatusAddressFromConfig: without -addr, the endpoint is the one the
// config's status.listen names.
func TestStatusAddressFromConfig(t *testing.T) {
	addr := serveStatusFixture(t, statusFixture)
	cfg := writeConfig(t, "version = 1\n[status]\nlisten = \""+addr+"\"\n")
	code, out, errOut := runStatusCLI("-c", cfg)
	if code != exitOK || !strings.Contains(out, "gatewayd v1.4.0") {
		t.Errorf("status -c: code %d, stderr %q, out:\n%s", code, errOut, out)
	}

	off := writeConfig(t, "version = 1\n[status]\nenabled = false\n")
	code, _, errOut = runStatusCLI("-c", off)
	if code != exitFailure || !strings.Contains(errOut, "status.enabled = false") {
		t.Errorf("disabled endpoint: code %d, stderr %q", code, errOut)
	}
	bad := writeConfig(t, "version = 1\n[status]\nlisten = \"0.0.0.0:9090\"\n")
	code, _, errOut = runStatusCLI("-c", bad)
	if code != exitConfig || !strings.Contains(errOut, "status.listen") {
		t.Errorf("invalid config: code %d, stderr %q; want %d naming status.listen", code, errOut, exitConfig)
	}
	code, _, errOut = runStatusCLI("-c", filepath.Join(t.TempDir(), "missing.toml"))
	if code != exitFailure || !strings.Contains(errOut, "missing.toml") {
		t.Errorf("missing -c file: code %d, stderr %q", code, errOut)
	}
	code, _, errOut = runStatusCLI("-c", cfg, "-addr", addr)
	if code != exitUsage || errOut == "" {
		t.Errorf("-c with -addr: code %d, stderr %q; want a usage error", code, errOut)
	}
}

// TestStatusAddressDefault: with no default config file, the built-in
// address is used; with one, its status.listen.
func TestStatusAddressDefault(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "gateway.toml")
	var errOut strings.Builder
	if a, code := statusAddrFromConfig(missing, false, &errOut); code != exitOK || a != status.DefaultAddr {
		t.Errorf("no default config: %q, code %d (%s); want %s", a, code, errOut.String(), status.DefaultAddr)
	}
	cfg := writeConfig(t, "version = 1\n[status]\nlisten = \"[::1]:19090\"\n")
	if a, code := statusAddrFromConfig(cfg, false, &errOut); code != exitOK || a != "[::1]:19090" {
		t.Errorf("default config: %q, code %d (%s); want its status.listen", a, code, errOut.String())
	}
}

// TestStatusSubcommandDispatch: `gatewayd status` reaches runStatus with
// its own flags.
func TestStatusSubcommandDispatch(t *testing.T) {
	addr := serveStatusFixture(t, statusFixture)
	code, out, errOut := runCLI("status", "-addr", addr, "-top", "1")
	if code != exitOK || !strings.Contains(out, "largest flows (1 of 3)") {
		t.Errorf("gatewayd status: code %d, stderr %q, out:\n%s", code, errOut, out)
	}
}
