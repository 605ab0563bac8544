package status

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"
)

// The daemon runs the endpoint with its relays: opened before the rules go
// in, shut down with them.
var _ interface {
	Listen(context.Context) error
	Serve() error
	Shutdown(time.Duration)
} = (*Server)(nil)

// failAfter guards every blocking step of a test; it is never a timing
// assertion, only a way to fail instead of hanging.
const failAfter = 10 * time.Second

// goroutinePoll is how often checkGoroutines re-counts.
const goroutinePoll = 10 * time.Millisecond

// checkGoroutines fails the test if goroutines started during it are still
// running at cleanup (registered first, so it runs after other cleanups).
func checkGoroutines(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(failAfter)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				t.Errorf("goroutines leaked: %d before, %d after\n%s",
					before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
				return
			}
			time.Sleep(goroutinePoll)
		}
	})
}

func TestNewRefusesExposedAddresses(t *testing.T) {
	for _, c := range []struct {
		listen  string
		allow   bool
		wantErr string // "" means accepted
	}{
		{"", false, ""}, // the default, loopback
		{"127.0.0.2:9100", false, ""},
		{"[::1]:9090", false, ""},
		{"[::ffff:127.0.0.1]:9090", false, ""},
		{"198.18.0.1:9090", false, "not a loopback address"},
		{"[2001:2::1]:9090", false, "not a loopback address"},
		{"198.18.0.1:9090", true, ""},
		{"[2001:2::1]:9090", true, ""},
		{"0.0.0.0:9090", false, "wildcard"},
		{"0.0.0.0:9090", true, "wildcard"},
		{"[::]:9090", true, "wildcard"},
	} {
		var ap netip.AddrPort
		if c.listen != "" {
			ap = netip.MustParseAddrPort(c.listen)
		}
		s, err := New(Config{Listen: ap, AllowNonLoopback: c.allow}, nil)
		switch {
		case c.wantErr == "" && err != nil:
			t.Errorf("%q allow=%v: %v", c.listen, c.allow, err)
		case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
			t.Errorf("%q allow=%v: error %v, want one saying %q", c.listen, c.allow, err, c.wantErr)
		case c.listen == "" && err == nil && s.cfg.Listen.String() != DefaultAddr:
			t.Errorf("default listen address %s, want %s", s.cfg.Listen, DefaultAddr)
		}
	}
}

// startServer runs a Server on a free loopback port until the test ends.
func startServer(t *testing.T, cfg Config) *Server {
	t.Helper()
	cfg.Listen = netip.MustParseAddrPort("127.0.0.1:0")
	s, err := New(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Listen(context.Background()); err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve() }()
	t.Cleanup(func() {
		s.Shutdown(time.Second)
		select {
		case err := <-served:
			if err != nil {
				t.Errorf("Serve after Shutdown: %v", err)
			}
		case <-time.After(failAfter):
			t.Error("Serve did not return after Shutdown")
		}
	})
	return s
}

func get(t *testing.T, url string) (int, string, error) {
	t.Helper()
	c := &http.Client{Timeout: failAfter, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func TestServerLifecycle(t *testing.T) {
	checkGoroutines(t)
	s := startServer(t, Config{Version: "v9"})
	addr := s.Addr()
	if !addr.IsValid() || addr.Port() == 0 || !addr.Addr().IsLoopback() {
		t.Fatalf("Addr() = %v, want the bound loopback address", addr)
	}
	code, body, err := get(t, "http://"+addr.String()+PathHealth)
	if err != nil || code != http.StatusOK || body != "ok\n" {
		t.Fatalf("healthz: %d %q %v", code, body, err)
	}
	snap, _, err := FetchStatus(context.Background(), nil, addr.String())
	if err != nil {
		t.Fatal(err)
	}
	if snap.Version != "v9" || len(snap.Listeners) != 1 || snap.Listeners[0] != (Listener{Name: "status", Addr: addr}) {
		t.Errorf("status over TCP: %+v", snap)
	}
	if err := s.Listen(context.Background()); err == nil {
		t.Error("a second Listen succeeded")
	}
}

func TestServerShutdownBeforeServe(t *testing.T) {
	checkGoroutines(t)
	s, err := New(Config{Listen: netip.MustParseAddrPort("127.0.0.1:0")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Serve(); err == nil {
		t.Error("Serve before Listen succeeded")
	}
	if err := s.Listen(context.Background()); err != nil {
		t.Fatal(err)
	}
	addr := s.Addr()
	_ = s.Close()
	if err := s.Serve(); err != nil {
		t.Errorf("Serve after Shutdown = %v, want nil", err)
	}
	if c, err := net.DialTimeout("tcp", addr.String(), failAfter); err == nil {
		c.Close()
		t.Error("listener still open after Shutdown without Serve")
	}
}

func TestListenErrorNamesAddress(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	ap := netip.MustParseAddrPort(busy.Addr().String())
	s, err := New(Config{Listen: ap}, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = s.Listen(context.Background())
	if err == nil || !strings.Contains(err.Error(), "listening for status requests on "+ap.String()) {
		t.Errorf("Listen on a busy port: %v", err)
	}
}

func TestServerRefusesClients(t *testing.T) {
	asked := make(chan netip.Addr, 1)
	s := startServer(t, Config{AllowClient: func(a netip.Addr) bool {
		select {
		case asked <- a:
		default:
		}
		return false
	}})
	if _, _, err := get(t, "http://"+s.Addr().String()+PathHealth); err == nil {
		t.Fatal("a refused client got an answer")
	}
	select {
	case a := <-asked:
		if a != netip.MustParseAddr("127.0.0.1") {
			t.Errorf("AllowClient asked about %v, want 127.0.0.1", a)
		}
	default:
		t.Error("AllowClient was never asked")
	}
}

func TestFetchStatusUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now: connection refused
	_, _, err = FetchStatus(context.Background(), nil, addr)
	if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), addr) {
		t.Errorf("FetchStatus from a closed port: %v, want ErrUnreachable naming %s", err, addr)
	}
	if _, _, err := FetchStatus(context.Background(), nil, "no-port"); err == nil || errors.Is(err, ErrUnreachable) {
		t.Errorf("FetchStatus(no-port) = %v, want an address error", err)
	}
}
