package outbound

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/internal/testutil"
)

func directConfig() Config {
	return Config{Name: "wan", Type: TypeDirect, Timeout: testTimeout}
}

// Direct dials the IP, never the domain, with the configured source when
// its family matches.
func TestDirectTCP(t *testing.T) {
	checkGoroutines(t)
	srv := newServers(t)
	seen := make(chan netip.AddrPort, 4)
	echo := srv.listenTCP(t, "127.0.0.1:0", func(c *net.TCPConn) {
		seen <- c.RemoteAddr().(*net.TCPAddr).AddrPort()
		buf := make([]byte, 1024)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			_, _ = c.Write(buf[:n])
		}
	})
	tests := []struct {
		name   string
		source string
		want   netip.Addr // the source the server sees
	}{
		{"kernel's choice", "", netip.MustParseAddr("127.0.0.1")},
		{"source", "127.0.0.2", netip.MustParseAddr("127.0.0.2")},
		{"mapped source", "::ffff:127.0.0.3", netip.MustParseAddr("127.0.0.3")},
		{"other family's source unused", "::1", netip.MustParseAddr("127.0.0.1")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := directConfig()
			if tt.source != "" {
				cfg.Source = netip.MustParseAddr(tt.source)
			}
			o := mustNew(t, cfg)
			c, err := o.DialTCP(context.Background(), Dest{Addr: echo, Domain: "unresolvable.invalid"})
			if err != nil {
				t.Fatalf("DialTCP: %v", err)
			}
			defer c.Close()
			expectUpstreamKeepAlive(t, c)
			expectEcho(t, c, "direct")
			if got := (<-seen).Addr(); got != tt.want {
				t.Errorf("server saw source %s, want %s", got, tt.want)
			}
			if st := o.Stats(); st.Dials != 1 || st.Failures.Total() != 0 {
				t.Errorf("stats = %+v", st)
			}
		})
	}
}

func TestDirectTCPFailures(t *testing.T) {
	checkGoroutines(t)
	o := mustNew(t, directConfig())
	addr := closedPort(t)
	_, err := o.DialTCP(context.Background(), Dest{Addr: addr})
	expectKind(t, err, KindRefused, "dialing "+addr.String())
	_, err = o.DialTCP(context.Background(), Dest{})
	expectKind(t, err, KindOther, "invalid destination")
	if st := o.Stats(); st.Dials != 2 || st.Failures.Refused != 1 || st.Failures.Other != 1 {
		t.Errorf("stats = %+v", st)
	}
}

// Direct UDP is a plain unconnected *net.UDPConn of the client's family
// (so the udp package batches on it) that reaches any remote.
func TestDirectUDP(t *testing.T) {
	checkGoroutines(t)
	srv := newServers(t)
	echo := startUDPEcho(t, srv, "127.0.0.1:0")
	echo2 := startUDPEcho(t, srv, "127.0.0.1:0")
	cfg := directConfig()
	cfg.Source = netip.MustParseAddr("127.0.0.4")
	o := mustNew(t, cfg)
	u, err := o.OpenUDP(context.Background(), testClient)
	if err != nil {
		t.Fatalf("OpenUDP: %v", err)
	}
	defer u.Close()
	uc, ok := u.(*net.UDPConn)
	if !ok {
		t.Fatalf("OpenUDP returned a %T, want *net.UDPConn", u)
	}
	if la := uc.LocalAddr().(*net.UDPAddr).AddrPort(); la.Addr() != cfg.Source {
		t.Errorf("bound to %s, want the source %s", la, cfg.Source)
	}
	if uc.RemoteAddr() != nil {
		t.Errorf("socket is connected to %s", uc.RemoteAddr())
	}
	udpExchange(t, u, echo, "one")
	udpExchange(t, u, echo2, "two")

	if haveIPv6(t) {
		echo6 := startUDPEcho(t, srv, "[::1]:0")
		u6, err := o.OpenUDP(context.Background(), netip.MustParseAddrPort("[2001:2:1::2]:5353"))
		if err != nil {
			t.Fatalf("OpenUDP for an IPv6 client: %v", err)
		}
		defer u6.Close()
		if la := u6.(*net.UDPConn).LocalAddr().(*net.UDPAddr); la.IP.To4() != nil || !la.IP.IsUnspecified() {
			t.Errorf("IPv6 client's socket bound to %s, want [::] (the source is IPv4)", la)
		}
		udpExchange(t, u6, echo6, "six")
	}
	if st := o.Stats(); st.Failures.Total() != 0 {
		t.Errorf("stats = %+v", st)
	}
}

func TestReject(t *testing.T) {
	o := mustNew(t, Config{Name: "block", Type: TypeReject})
	start := time.Now()
	c, err := o.DialTCP(context.Background(), Dest{Addr: netip.MustParseAddrPort("198.18.0.1:443"), Domain: "ads.test"})
	if c != nil || !errors.Is(err, ErrRejected) {
		t.Errorf("DialTCP = %v, %v; want nil, ErrRejected", c, err)
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("reject took %s", d)
	}
	u, err := o.OpenUDP(context.Background(), testClient)
	if u != nil || !errors.Is(err, ErrRejected) {
		t.Errorf("OpenUDP = %v, %v; want nil, ErrRejected", u, err)
	}
	expectKind(t, err, KindRejected, `outbound "block"`)
	if st := o.Stats(); st.Dials != 2 || st.Rejected != 2 || st.Failures.Total() != 0 {
		t.Errorf("stats = %+v, want 2 rejected dials and no failures", st)
	}
}

// expectUpstreamKeepAlive checks that c probes after a minute of silence
// (sockopt.UpstreamKeepAlive), not after Go's 15 s.
func expectUpstreamKeepAlive(t *testing.T, c *net.TCPConn) {
	t.Helper()
	if on, idle := testutil.KeepAlive(t, c); on != 1 || idle != 60 {
		t.Errorf("SO_KEEPALIVE %d, TCP_KEEPIDLE %d s; want 1 and 60", on, idle)
	}
}
