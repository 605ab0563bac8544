package outbound

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

// testTimeout is the outbounds' handshake timeout in tests that expect
// no timeout; shortTimeout is for tests that expect one.
const (
	testTimeout  = 3 * time.Second
	shortTimeout = 300 * time.Millisecond
)

func socksConfig(server netip.AddrPort) Config {
	return Config{Name: "proxy", Type: TypeSOCKS5, Server: server, Timeout: testTimeout}
}

// Data flows both ways through the proxy to a real echo server, for IP
// destinations of both families and for domains (sent only when
// preferred and valid).
func TestSOCKS5ConnectEcho(t *testing.T) {
	checkGoroutines(t)
	srv := newServers(t)
	echo4 := startEcho(t, srv, "127.0.0.1:0")
	var echo6 netip.AddrPort
	if haveIPv6(t) {
		echo6 = startEcho(t, srv, "[::1]:0")
	}
	proxy := newFakeSOCKS(t, srv, func(f *fakeSOCKS) { f.names["echo.test"] = echo4 })

	tests := []struct {
		name   string
		prefer bool
		dst    Dest
		want   string // target as the proxy received it
	}{
		{"ipv4", false, Dest{Addr: echo4}, "1:" + echo4.String()},
		{"ipv4-mapped", false, Dest{Addr: netip.AddrPortFrom(netip.AddrFrom16(echo4.Addr().As16()), echo4.Port())}, "1:" + echo4.String()},
		{"ipv6", false, Dest{Addr: echo6}, fmt.Sprintf("4:%s:%d", echo6.Addr(), echo6.Port())},
		{"domain not preferred", false, Dest{Addr: echo4, Domain: "echo.test"}, "1:" + echo4.String()},
		{"domain preferred", true, Dest{Addr: echo4, Domain: "echo.test."}, fmt.Sprintf("3:echo.test:%d", echo4.Port())},
		{"invalid domain falls back to IP", true, Dest{Addr: echo4, Domain: "evil\r\n.test"}, "1:" + echo4.String()},
		{"IP literal domain sent as IP", true, Dest{Addr: echo4, Domain: "127.0.0.1"}, "1:" + echo4.String()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !tt.dst.Addr.IsValid() {
				t.Skip("no IPv6 loopback")
			}
			cfg := socksConfig(proxy.Addr)
			cfg.PreferNames = tt.prefer
			o := mustNew(t, cfg)
			c, err := o.DialTCP(context.Background(), tt.dst)
			if err != nil {
				t.Fatalf("DialTCP: %v", err)
			}
			defer c.Close()
			if got := c.RemoteAddr().(*net.TCPAddr).AddrPort(); got != proxy.Addr {
				t.Errorf("conn goes to %s, want the proxy %s", got, proxy.Addr)
			}
			expectEcho(t, c, "hello through socks5")
			expectEcho(t, c, strings.Repeat("x", 100000))
			if got := proxy.Targets(); got[len(got)-1] != tt.want {
				t.Errorf("proxy got target %s, want %s", got[len(got)-1], tt.want)
			}
			st := o.Stats()
			if st.Dials != 1 || st.Failures.Total() != 0 || st.Dialing != 0 {
				t.Errorf("stats = %+v, want 1 dial, no failures, none in progress", st)
			}
		})
	}
}

func TestSOCKS5Auth(t *testing.T) {
	checkGoroutines(t)
	srv := newServers(t)
	echo := startEcho(t, srv, "127.0.0.1:0")
	proxy := newFakeSOCKS(t, srv, func(f *fakeSOCKS) { f.user, f.pass = "alice", "s3cret" })

	cfg := socksConfig(proxy.Addr)
	cfg.Username, cfg.Password = "alice", "s3cret"
	c, err := mustNew(t, cfg).DialTCP(context.Background(), Dest{Addr: echo})
	if err != nil {
		t.Fatalf("DialTCP with the right credentials: %v", err)
	}
	expectEcho(t, c, "authenticated")
	_ = c.Close()

	cfg.Password = "wrong"
	o := mustNew(t, cfg)
	_, err = o.DialTCP(context.Background(), Dest{Addr: echo})
	expectKind(t, err, KindAuth, "rejected username \"alice\"", proxy.Addr.String())
	if got := o.Stats().Failures.Auth; got != 1 {
		t.Errorf("Failures.Auth = %d, want 1", got)
	}

	// No credentials configured: the proxy finds no acceptable method.
	o = mustNew(t, socksConfig(proxy.Addr))
	_, err = o.DialTCP(context.Background(), Dest{Addr: echo})
	expectKind(t, err, KindAuth, "accepts none of the offered authentication methods")

	proxy.mu.Lock()
	methods := slices.Clone(proxy.methods)
	proxy.mu.Unlock()
	want := [][]byte{{0, 2}, {0, 2}, {0}}
	if fmt.Sprint(methods) != fmt.Sprint(want) {
		t.Errorf("offered methods = %v, want %v", methods, want)
	}
}

// Every failure code becomes an error that names the proxy, the command,
// the target, the code and its meaning, of the right kind.
func TestSOCKS5ReplyCodes(t *testing.T) {
	checkGoroutines(t)
	tests := []struct {
		rep  byte
		kind FailureKind
		text string
	}{
		{1, KindProxy, "general SOCKS server failure"},
		{2, KindRefused, "connection not allowed by ruleset"},
		{3, KindUnreachable, "network unreachable"},
		{4, KindUnreachable, "host unreachable"},
		{5, KindRefused, "connection refused"},
		{6, KindTimeout, "TTL expired"},
		{7, KindProxy, "command not supported"},
		{8, KindProxy, "address type not supported"},
		{9, KindProxy, "unassigned reply code"},
		{0xff, KindProxy, "unassigned reply code"},
	}
	dst := Dest{Addr: netip.MustParseAddrPort("198.18.0.9:443"), Domain: "x.test"}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.rep), func(t *testing.T) {
			srv := newServers(t)
			proxy := newFakeSOCKS(t, srv, func(f *fakeSOCKS) { f.rep = tt.rep })
			cfg := socksConfig(proxy.Addr)
			cfg.PreferNames = true
			o := mustNew(t, cfg)
			_, err := o.DialTCP(context.Background(), dst)
			want := fmt.Sprintf("socks5 proxy %s refused CONNECT to x.test:443: %s (rep %d)", proxy.Addr, tt.text, tt.rep)
			expectKind(t, err, tt.kind, want)
			if got := o.Stats().Failures.Total(); got != 1 {
				t.Errorf("failures = %d, want 1", got)
			}
			_, err = o.OpenUDP(context.Background(), netip.MustParseAddrPort("198.18.1.2:5000"))
			expectKind(t, err, tt.kind, "refused UDP ASSOCIATE", fmt.Sprintf("(rep %d)", tt.rep))
		})
	}
}

// The reply is read exactly, whatever the type of its bound address: the
// bytes the proxy sends in the same segment right after it arrive through
// the returned conn.
func TestSOCKS5ByteExact(t *testing.T) {
	checkGoroutines(t)
	banner := []byte("220 first bytes from the server\r\n")
	bnds := map[string][]byte{
		"ipv4":   {1, 198, 18, 0, 1, 0x04, 0x38},
		"ipv6":   append(append([]byte{4}, netip.MustParseAddr("2001:2::1").AsSlice()...), 0x04, 0x38),
		"domain": append(append([]byte{3, 12}, "relay.test.x"...), 0, 80),
		"empty":  {3, 0, 0, 80},
		"long":   append(append([]byte{3, 255}, strings.Repeat("a", 255)...), 0, 80),
	}
	for name, bnd := range bnds {
		t.Run(name, func(t *testing.T) {
			srv := newServers(t)
			echo := startEcho(t, srv, "127.0.0.1:0")
			proxy := newFakeSOCKS(t, srv, func(f *fakeSOCKS) { f.bnd, f.banner = bnd, banner })
			c, err := mustNew(t, socksConfig(proxy.Addr)).DialTCP(context.Background(), Dest{Addr: echo})
			if err != nil {
				t.Fatalf("DialTCP: %v", err)
			}
			defer c.Close()
			expectBytes(t, c, banner)
			expectEcho(t, c, "after the banner")
		})
	}
}

// hold keeps c open until the test's servers stop.
func hold(srv *servers) { <-srv.done }

// Broken proxies give errors of the right kind, within the timeout,
// without panics.
func TestSOCKS5Malformed(t *testing.T) {
	checkGoroutines(t)
	type step func(c *net.TCPConn) error
	read := func(n int) step { return func(c *net.TCPConn) error { _, err := readFull(c, n); return err } }
	write := func(b ...byte) step { return func(c *net.TCPConn) error { _, err := c.Write(b); return err } }
	greet := read(3) // VER NMETHODS NO-AUTH
	noAuth := write(5, 0)
	request := read(10) // VER CMD RSV ATYP=1 ADDR(4) PORT(2)
	tests := []struct {
		name   string
		script []step
		hang   bool // keep the conn open after the script
		kind   FailureKind
		want   string
	}{
		{"close after the greeting", []step{greet}, false, KindHandshake, "reading method selection: unexpected EOF"},
		{"not socks", []step{greet, write('H', 'T', 'T', 'P')}, false, KindHandshake, "not a SOCKS5 server"},
		{"socks4 version", []step{greet, write(4, 0)}, false, KindHandshake, "version 0x04"},
		{"method not offered", []step{greet, write(5, 2)}, false, KindHandshake, "chose authentication method 0x02"},
		{"unknown method", []step{greet, write(5, 0x80)}, false, KindHandshake, "method 0x80"},
		{"silent", nil, true, KindTimeout, "reading method selection"},
		{"half a method selection", []step{greet, write(5)}, true, KindTimeout, "reading method selection"},
		{"reply cut short", []step{greet, noAuth, request, write(5, 0, 0, 1, 127)}, false, KindHandshake, "bound address: unexpected EOF"},
		{"reply head cut short", []step{greet, noAuth, request, write(5, 0)}, false, KindHandshake, "reading the reply to CONNECT"},
		{"reply stalls", []step{greet, noAuth, request, write(5, 0, 0, 4, 1, 2, 3)}, true, KindTimeout, "reading the reply to CONNECT"},
		{"reply version", []step{greet, noAuth, request, write(1, 0, 0, 1, 0, 0, 0, 0, 0, 0)}, false, KindHandshake, "reply version 0x01"},
		{"unknown atyp", []step{greet, noAuth, request, write(5, 0, 0, 9, 0, 0, 0, 0, 0, 0)}, false, KindHandshake, "unknown address type 0x09"},
		{"domain cut short", []step{greet, noAuth, request, write(5, 0, 0, 3, 200, 'a', 'b')}, false, KindHandshake, "unexpected EOF"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServers(t)
			addr := srv.listenTCP(t, "127.0.0.1:0", func(c *net.TCPConn) {
				for _, s := range tt.script {
					if s(c) != nil {
						return
					}
				}
				if tt.hang {
					hold(srv)
				}
				_ = c.Close()
			})
			cfg := socksConfig(addr)
			err := dialShort(t, cfg, "198.18.0.1:80")
			expectKind(t, err, tt.kind, tt.want, "socks5 proxy "+addr.String())
		})
	}
}

func TestSOCKS5ProxyDown(t *testing.T) {
	checkGoroutines(t)
	addr := closedPort(t)
	o := mustNew(t, socksConfig(addr))
	_, err := o.DialTCP(context.Background(), Dest{Addr: netip.MustParseAddrPort("198.18.0.1:80")})
	expectKind(t, err, KindRefused, "dialing socks5 proxy "+addr.String())
	_, err = o.OpenUDP(context.Background(), netip.MustParseAddrPort("198.18.1.2:5000"))
	expectKind(t, err, KindRefused, "UDP association for 198.18.1.2:5000: dialing socks5 proxy")
	if st := o.Stats(); st.Dials != 2 || st.Failures.Refused != 2 {
		t.Errorf("stats = %+v, want 2 dials refused", st)
	}
}

// Cancelling the caller's context interrupts a handshake at once and is
// not counted as a timeout.
func TestSOCKS5Cancel(t *testing.T) {
	checkGoroutines(t)
	srv := newServers(t)
	addr := srv.listenTCP(t, "127.0.0.1:0", func(c *net.TCPConn) { hold(srv) })
	o := mustNew(t, socksConfig(addr))
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	start := time.Now()
	_, err := o.DialTCP(ctx, Dest{Addr: netip.MustParseAddrPort("198.18.0.1:80")})
	if d := time.Since(start); d > testTimeout/2 {
		t.Errorf("DialTCP returned after %s, long after the cancel", d)
	}
	expectKind(t, err, KindCanceled)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want it to wrap context.Canceled", err)
	}
	if st := o.Stats(); st.Failures.Canceled != 1 || st.Failures.Timeout != 0 {
		t.Errorf("stats = %+v, want one cancelled dial", st)
	}

	// A context deadline shorter than Timeout wins.
	ctx, cancel2 := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel2()
	start = time.Now()
	_, err = o.DialTCP(ctx, Dest{Addr: netip.MustParseAddrPort("198.18.0.1:80")})
	if d := time.Since(start); d > testTimeout/2 {
		t.Errorf("DialTCP returned after %s, long after the context deadline", d)
	}
	expectKind(t, err, KindTimeout)
}
