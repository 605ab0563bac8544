package outbound

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
)

// fakeHTTP is an in-process HTTP CONNECT proxy, built on net/http's
// request parser: status 0 dials the target for real and relays.
type fakeHTTP struct {
	t    testing.TB
	srv  *servers
	Addr netip.AddrPort

	auth    string                    // required Proxy-Authorization value, if set
	status  int                       // status to answer instead of connecting (0: connect)
	names   map[string]netip.AddrPort // what host names "resolve" to
	prefix  string                    // sent before the final response (interim responses)
	reply   string                    // success response head (default "HTTP/1.1 200 Connection established\r\n\r\n")
	banner  []byte                    // sent in the same write as the success response
	mu      sync.Mutex
	request []*http.Request
	raw     []string // the bytes of each request head
}

// newFakeHTTP starts a fake proxy; configure sets its options before it
// runs.
func newFakeHTTP(t testing.TB, srv *servers, configure func(*fakeHTTP)) *fakeHTTP {
	f := &fakeHTTP{t: t, srv: srv, names: map[string]netip.AddrPort{},
		reply: "HTTP/1.1 200 Connection established\r\n\r\n"}
	if configure != nil {
		configure(f)
	}
	f.Addr = srv.listenTCP(t, "127.0.0.1:0", f.handle)
	return f
}

func (f *fakeHTTP) handle(c *net.TCPConn) {
	if err := f.serve(c); err != nil {
		f.t.Logf("fake http proxy: %v", err)
	}
	_ = c.Close()
}

func (f *fakeHTTP) serve(c *net.TCPConn) error {
	var raw strings.Builder
	br := bufio.NewReader(io.TeeReader(c, &raw))
	req, err := http.ReadRequest(br)
	if err != nil {
		return err
	}
	f.mu.Lock()
	f.request = append(f.request, req)
	f.raw = append(f.raw, raw.String())
	f.mu.Unlock()
	if req.Method != http.MethodConnect {
		_, err := io.WriteString(c, "HTTP/1.1 405 Method Not Allowed\r\n\r\n")
		return err
	}
	if f.auth != "" && req.Header.Get("Proxy-Authorization") != f.auth {
		_, err := io.WriteString(c, "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"t\"\r\nContent-Length: 0\r\n\r\n")
		return err
	}
	if f.status != 0 {
		_, err := fmt.Fprintf(c, "%sHTTP/1.1 %d %s\r\nContent-Length: 0\r\n\r\n", f.prefix, f.status, http.StatusText(f.status))
		return err
	}
	host, port, err := net.SplitHostPort(req.RequestURI)
	if err != nil {
		return err
	}
	to, ok := f.names[host]
	if !ok {
		ap, err := netip.ParseAddrPort(net.JoinHostPort(host, port))
		if err != nil {
			_, _ = io.WriteString(c, "HTTP/1.1 502 Bad Gateway\r\n\r\n")
			return err
		}
		to = ap
	}
	up, err := net.DialTCP("tcp", nil, net.TCPAddrFromAddrPort(to))
	if err != nil {
		_, _ = io.WriteString(c, "HTTP/1.1 503 Service Unavailable\r\n\r\n")
		return err
	}
	if !f.srv.track(up) {
		return nil
	}
	if _, err := c.Write(append([]byte(f.prefix+f.reply), f.banner...)); err != nil {
		return err
	}
	if br.Buffered() > 0 {
		return fmt.Errorf("client sent %d bytes before the response", br.Buffered())
	}
	relay(c, up)
	return nil
}

func (f *fakeHTTP) Requests() ([]*http.Request, []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.request), slices.Clone(f.raw)
}
