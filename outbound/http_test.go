package outbound

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
)

func httpConfig(server netip.AddrPort) Config {
	return Config{Name: "web", Type: TypeHTTP, Server: server, Timeout: testTimeout}
}

func TestHTTPConnectEcho(t *testing.T) {
	checkGoroutines(t)
	srv := newServers(t)
	echo4 := startEcho(t, srv, "127.0.0.1:0")
	var echo6 netip.AddrPort
	if haveIPv6(t) {
		echo6 = startEcho(t, srv, "[::1]:0")
	}
	proxy := newFakeHTTP(t, srv, func(f *fakeHTTP) { f.names["echo.test"] = echo4 })
	tests := []struct {
		name   string
		prefer bool
		dst    Dest
		want   string // request target and Host header
	}{
		{"ipv4", false, Dest{Addr: echo4, Domain: "echo.test"}, echo4.String()},
		{"ipv6", false, Dest{Addr: echo6}, fmt.Sprintf("[::1]:%d", echo6.Port())},
		{"domain", true, Dest{Addr: echo4, Domain: "echo.test."}, fmt.Sprintf("echo.test:%d", echo4.Port())},
		{"header injection", true, Dest{Addr: echo4, Domain: "a.test\r\nX-Evil: 1"}, echo4.String()},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !tt.dst.Addr.IsValid() {
				t.Skip("no IPv6 loopback")
			}
			cfg := httpConfig(proxy.Addr)
			cfg.PreferNames = tt.prefer
			o := mustNew(t, cfg)
			c, err := o.DialTCP(context.Background(), tt.dst)
			if err != nil {
				t.Fatalf("DialTCP: %v", err)
			}
			defer c.Close()
			expectEcho(t, c, "hello through CONNECT")
			expectEcho(t, c, strings.Repeat("y", 100000))
			reqs, raw := proxy.Requests()
			if len(reqs) != i+1 {
				t.Fatalf("proxy saw %d requests, want %d", len(reqs), i+1)
			}
			if r := reqs[i]; r.Method != http.MethodConnect || r.RequestURI != tt.want {
				t.Errorf("request %s %s, want CONNECT %s", r.Method, r.RequestURI, tt.want)
			}
			if want := "CONNECT " + tt.want + " HTTP/1.1\r\nHost: " + tt.want + "\r\n\r\n"; raw[i] != want {
				t.Errorf("request bytes %q, want %q", raw[i], want)
			}
			if st := o.Stats(); st.Dials != 1 || st.Failures.Total() != 0 {
				t.Errorf("stats = %+v", st)
			}
		})
	}
}

func TestHTTPAuth(t *testing.T) {
	checkGoroutines(t)
	srv := newServers(t)
	echo := startEcho(t, srv, "127.0.0.1:0")
	// base64("carol:pa:ss") — the password may contain ':'.
	proxy := newFakeHTTP(t, srv, func(f *fakeHTTP) { f.auth = "Basic Y2Fyb2w6cGE6c3M=" })
	cfg := httpConfig(proxy.Addr)
	cfg.Username, cfg.Password = "carol", "pa:ss"
	c, err := mustNew(t, cfg).DialTCP(context.Background(), Dest{Addr: echo})
	if err != nil {
		t.Fatalf("DialTCP with the right credentials: %v", err)
	}
	expectEcho(t, c, "authenticated")
	_ = c.Close()

	cfg.Password = "wrong"
	o := mustNew(t, cfg)
	_, err = o.DialTCP(context.Background(), Dest{Addr: echo})
	expectKind(t, err, KindAuth, "http proxy "+proxy.Addr.String()+" refused CONNECT to "+echo.String()+
		": HTTP/1.1 407 Proxy Authentication Required (credentials rejected)")
	if o.Stats().Failures.Auth != 1 {
		t.Errorf("stats = %+v, want one auth failure", o.Stats())
	}
	_, err = mustNew(t, httpConfig(proxy.Addr)).DialTCP(context.Background(), Dest{Addr: echo})
	expectKind(t, err, KindAuth, "(no credentials configured)")
}

func TestHTTPStatus(t *testing.T) {
	checkGoroutines(t)
	tests := []struct {
		status int
		kind   FailureKind
	}{
		{401, KindAuth}, // tinyproxy's answer to wrong credentials
		{403, KindRefused},
		{404, KindProxy},
		{500, KindProxy},
		{502, KindProxy},
		{503, KindProxy},
		{504, KindTimeout},
		{101, KindProxy},
		{301, KindProxy},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.status), func(t *testing.T) {
			srv := newServers(t)
			proxy := newFakeHTTP(t, srv, func(f *fakeHTTP) { f.status = tt.status })
			o := mustNew(t, httpConfig(proxy.Addr))
			_, err := o.DialTCP(context.Background(), Dest{Addr: netip.MustParseAddrPort("198.18.0.5:443")})
			expectKind(t, err, tt.kind, fmt.Sprintf("refused CONNECT to 198.18.0.5:443: HTTP/1.1 %d %s", tt.status, http.StatusText(tt.status)))
		})
	}
}

// The response header is read exactly: bytes the proxy sends right after
// it (in the same segment) arrive through the returned conn. Interim 1xx
// responses are skipped; bare-LF line ends are accepted.
func TestHTTPByteExact(t *testing.T) {
	checkGoroutines(t)
	banner := []byte("SSH-2.0-first bytes of the server\r\n")
	tests := map[string]func(*fakeHTTP){
		"plain":  func(f *fakeHTTP) {},
		"fields": func(f *fakeHTTP) { f.reply = "HTTP/1.0 200 OK\r\nVia: 1.1 p\r\nContent-Length: 99\r\n\r\n" },
		"interim": func(f *fakeHTTP) {
			f.prefix = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: x\r\n\r\n"
		},
		"bare LF":  func(f *fakeHTTP) { f.reply = "HTTP/1.1 200 OK\nVia: p\n\n" },
		"LF CR LF": func(f *fakeHTTP) { f.reply = "HTTP/1.1 204 Tunnel\n\r\n" },
	}
	for name, configure := range tests {
		t.Run(name, func(t *testing.T) {
			srv := newServers(t)
			echo := startEcho(t, srv, "127.0.0.1:0")
			proxy := newFakeHTTP(t, srv, func(f *fakeHTTP) { configure(f); f.banner = banner })
			c, err := mustNew(t, httpConfig(proxy.Addr)).DialTCP(context.Background(), Dest{Addr: echo})
			if err != nil {
				t.Fatalf("DialTCP: %v", err)
			}
			defer c.Close()
			expectBytes(t, c, banner)
			expectEcho(t, c, "after the banner")
		})
	}
}

// Broken proxies give errors within the timeout, without panics.
func TestHTTPMalformed(t *testing.T) {
	checkGoroutines(t)
	endless := "HTTP/1.1 200 OK\r\n" + strings.Repeat("X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n", 200)
	tests := []struct {
		name     string
		response string
		hang     bool
		kind     FailureKind
		want     string
	}{
		{"close at once", "", false, KindHandshake, "unexpected EOF"},
		{"not http", "SSH-2.0-OpenSSH\r\n\r\n", false, KindHandshake, "not an HTTP/1 status line: \"SSH-2.0-OpenSSH\""},
		{"http/2", "HTTP/2 200\r\n\r\n", false, KindHandshake, "not an HTTP/1 status line"},
		{"bad code", "HTTP/1.1 2x0 OK\r\n\r\n", false, KindHandshake, "bad status code"},
		{"code too big", "HTTP/1.1 999 Huh\r\n\r\n", false, KindHandshake, "bad status code"},
		{"code glued to reason", "HTTP/1.1 200OK\r\n\r\n", false, KindHandshake, "bad status code"},
		{"cut short", "HTTP/1.1 200 Connection established\r\n", false, KindHandshake, "unexpected EOF"},
		{"stalls", "HTTP/1.1 200 Connection established\r\n", true, KindTimeout, "reading the response"},
		{"silent", "", true, KindTimeout, "reading the response"},
		{"over-long header", endless, true, KindHandshake, "response header longer than 8192 bytes"},
		{"too many interim", strings.Repeat("HTTP/1.1 100 Continue\r\n\r\n", 6), true, KindHandshake, "too many interim"},
		{"control bytes quoted", "HTTP/1.1 502 \x1b[31mred\r\n\r\n", false, KindProxy, "HTTP/1.1 502 ?[31mred"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServers(t)
			addr := srv.listenTCP(t, "127.0.0.1:0", func(c *net.TCPConn) {
				buf := make([]byte, 4096)
				if _, err := c.Read(buf); err != nil {
					return
				}
				if _, err := c.Write([]byte(tt.response)); err != nil {
					return
				}
				if tt.hang {
					hold(srv)
				}
				_ = c.Close()
			})
			cfg := httpConfig(addr)
			err := dialShort(t, cfg, "198.18.0.1:443")
			expectKind(t, err, tt.kind, tt.want, "http proxy "+addr.String())
		})
	}
}

func TestHTTPNoUDP(t *testing.T) {
	o := mustNew(t, httpConfig(netip.MustParseAddrPort("198.18.0.1:3128")))
	u, err := o.OpenUDP(context.Background(), testClient)
	if u != nil {
		t.Errorf("OpenUDP returned %v", u)
	}
	expectKind(t, err, KindUnsupported, "carries only TCP")
	if st := o.Stats(); st.Failures.Unsupported != 1 {
		t.Errorf("stats = %+v, want one unsupported", st)
	}
}
