package dns

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func TestParseUpstream(t *testing.T) {
	for _, tc := range []struct {
		spec, want, err string
	}{
		{spec: "udp://198.19.0.53:53", want: "udp://198.19.0.53:53"},
		{spec: "198.19.0.53", want: "udp://198.19.0.53:53"},
		{spec: "198.19.0.53:5353", want: "udp://198.19.0.53:5353"},
		{spec: "2001:2::53", want: "udp://[2001:2::53]:53"},
		{spec: "[2001:2::53]", want: "udp://[2001:2::53]:53"},
		{spec: "tcp://[2001:2::53]:53", want: "tcp://[2001:2::53]:53"},
		{spec: "tcp://198.19.0.53", want: "tcp://198.19.0.53:53"},
		{spec: "tls://198.19.0.53:853#dns.example", want: "tls://198.19.0.53:853#dns.example"},
		{spec: "tls://198.19.0.53#dns.example", want: "tls://198.19.0.53:853#dns.example"},
		{spec: "tls://[2001:2::53]", want: "tls://[2001:2::53]:853"},
		{spec: "udp://[::ffff:198.19.0.53]:53", want: "udp://198.19.0.53:53"},
		{spec: "https://198.19.0.53", err: `unknown scheme "https"`},
		{spec: "udp://dns.example:53", err: `host "dns.example" is not an IP address`},
		{spec: "dns.example", err: "not an IP address"},
		{spec: "udp://198.19.0.53:99999", err: `bad port "99999"`},
		{spec: "udp://198.19.0.53:0", err: "port 0"},
		{spec: "udp://198.19.0.53#x", err: "needs tls://"},
		{spec: "tls://198.19.0.53#", err: "empty server name"},
		{spec: "", err: "not an IP address"},
	} {
		u, err := ParseUpstream(tc.spec, UpstreamOptions{})
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseUpstream(%q) error %v, want %q", tc.spec, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseUpstream(%q): %v", tc.spec, err)
			continue
		}
		if u.String() != tc.want {
			t.Errorf("ParseUpstream(%q) = %s, want %s", tc.spec, u, tc.want)
		}
	}
}

func aQuery(name string) *dns.Msg {
	m := new(dns.Msg).SetQuestion(name, dns.TypeA)
	m.SetEdns0(upstreamEDNSSize, false)
	return m
}

func TestUDPUpstreamRetriesTruncatedOverTCP(t *testing.T) {
	s := startServer(t, func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg).SetReply(r)
		if w.LocalAddr().Network() == "udp" {
			m.Truncated = true
		} else {
			m.Answer = append(m.Answer, mustRR("big.example. 60 IN A 192.0.2.7"))
		}
		_ = w.WriteMsg(m)
	})
	u, err := ParseUpstream("udp://"+s.addr, UpstreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r, err := u.Exchange(context.Background(), aQuery("big.example."))
	if err != nil {
		t.Fatalf("Exchange: %v", err)
	}
	if r.Truncated || len(r.Answer) != 1 {
		t.Fatalf("got TC=%v answers %d, want the TCP answer\n%v", r.Truncated, len(r.Answer), r)
	}
	if s.udp.Load() != 1 || s.queries.Load() != 2 {
		t.Errorf("server saw %d queries (%d udp), want 1 over UDP then 1 over TCP", s.queries.Load(), s.udp.Load())
	}
}

// countingListener counts accepted connections and can close them all.
type countingListener struct {
	net.Listener
	accepted atomic.Int64
	mu       sync.Mutex
	conns    []net.Conn
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.accepted.Add(1)
		l.mu.Lock()
		l.conns = append(l.conns, c)
		l.mu.Unlock()
	}
	return c, err
}

func (l *countingListener) closeConns() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.conns {
		_ = c.Close()
	}
	l.conns = nil
}

func TestStreamUpstreamReusesAndRedials(t *testing.T) {
	z := &zone{}
	z.set("a.example. A", "a.example. 60 IN A 192.0.2.1")
	var cl *countingListener
	s := startServerTLS(t, z.ServeDNS, func(ln net.Listener) net.Listener {
		cl = &countingListener{Listener: ln}
		return cl
	})
	u, err := ParseUpstream("tcp://"+s.addr, UpstreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = u.(*streamUpstream).Close() })
	for i := range 3 {
		if _, err := u.Exchange(context.Background(), aQuery("a.example.")); err != nil {
			t.Fatalf("exchange %d: %v", i, err)
		}
	}
	if n := cl.accepted.Load(); n != 1 {
		t.Errorf("3 sequential exchanges opened %d connections, want 1", n)
	}
	// The server drops the idle connection: the next exchange notices and
	// redials instead of failing.
	cl.closeConns()
	time.Sleep(20 * time.Millisecond)
	if _, err := u.Exchange(context.Background(), aQuery("a.example.")); err != nil {
		t.Fatalf("exchange after server closed the idle connection: %v", err)
	}
	if n := cl.accepted.Load(); n != 2 {
		t.Errorf("connections after redial: %d, want 2", n)
	}
}

// selfSigned returns a certificate for name and the pool that trusts it.
func selfSigned(t testing.TB, name string) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		DNSNames:              []string{name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}

func TestDoTUpstream(t *testing.T) {
	cert, pool := selfSigned(t, "dns.example")
	z := &zone{}
	z.set("a.example. A", "a.example. 60 IN A 192.0.2.1")
	s := startServerTLS(t, z.ServeDNS, func(ln net.Listener) net.Listener {
		return tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}})
	})
	opt := UpstreamOptions{TLSConfig: &tls.Config{RootCAs: pool}}
	for _, tc := range []struct {
		spec string
		ok   bool
	}{
		{"tls://" + s.addr + "#dns.example", true},
		{"tls://" + s.addr + "#other.example", false}, // name not in the certificate
		{"tls://" + s.addr, false},                    // no IP SAN
	} {
		u, err := ParseUpstream(tc.spec, opt)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		r, err := u.Exchange(ctx, aQuery("a.example."))
		cancel()
		_ = u.(*streamUpstream).Close()
		if tc.ok && (err != nil || len(r.Answer) != 1) {
			t.Errorf("%s: %v, %v", tc.spec, err, r)
		}
		if !tc.ok && err == nil {
			t.Errorf("%s: exchange succeeded despite a certificate for another name", tc.spec)
		}
	}
}

// A server that ignores the advertised EDNS size sends a datagram that is
// cut to the receive buffer; the answer is fetched over TCP instead.
func TestUDPUpstreamRetriesOversizeOverTCP(t *testing.T) {
	z := &zone{oversize: true}
	var many []string
	for i := range 100 {
		many = append(many, fmt.Sprintf("many.example. 60 IN AAAA 2001:db8::%x", i))
	}
	z.set("many.example. AAAA", many...)
	s := startServer(t, z.ServeDNS)
	u := mustUpstream(t, "udp://"+s.addr)
	m := new(dns.Msg).SetQuestion("many.example.", dns.TypeAAAA)
	m.SetEdns0(upstreamEDNSSize, false)
	r, err := u.Exchange(context.Background(), m)
	if err != nil || len(r.Answer) != 100 {
		t.Fatalf("Exchange: %v, %v", err, r)
	}
	if s.udp.Load() != 1 || s.queries.Load() != 2 {
		t.Errorf("server saw %d queries (%d udp), want 1 over UDP then 1 over TCP", s.queries.Load(), s.udp.Load())
	}
}
